/* The guest's one ttrpc server: the services it answers, and where each frame goes
 * (requests to their handlers, stream data to the streams). Above both rpc.c and stream.c,
 * so neither needs the other. */
#include "services/serve.h"

#include "core/klog.h"
#include "runtime/container.h"
#include "runtime/stream.h"
#include "services/portfwd.h"
#include "wire/rpc.h"

static const struct rpc_service *const services[] = {
	&sandbox_service,
	&streaming_service,
	&task_v3_service,
	&task_v2_service,
};

static const struct rpc_services served = { services, sizeof(services) / sizeof(services[0]) };

void serve_on_frame(struct ttrpc_rx *rx, const struct ttrpc_header *h, const uint8_t *data)
{
	struct rpc_ctx ctx = { .conn = rx->owner, .stream = h->stream };

	if (!data) {
		rpc_error(&ctx, RPC_RESOURCE_EXHAUSTED,
		          "message length %u exceed maximum message size of %u", h->length,
		          TTRPC_MAX_DATA);
		return;
	}
	rpc_frame_bounds(data, h->length);
	switch (h->type) {
	case TTRPC_REQUEST: rpc_on_request(&ctx, &served, data, h->length); break;
	case TTRPC_DATA:
		if (stream_on_data(ctx.conn, h, data) == 0 ||
		    portfwd_on_data(ctx.conn, h, data) == 0)
			break;
		/* A close on a unary call held open (Wait): its caller is gone. */
		if ((h->flags & TTRPC_FLAG_REMOTE_CLOSED) && !h->length)
			ctr_forget_waiter(ctx.conn->id, h->stream);
		else
			rpc_error(&ctx, RPC_INVALID_ARGUMENT, "StreamID is no longer active");
		break;
	default:
		/* Unknown frame types are ignored for forward compatibility, as ttrpc does. */
		debug("stream %u: ignoring frame type %u", h->stream, h->type);
	}
	rpc_frame_bounds(NULL, 0);
}
