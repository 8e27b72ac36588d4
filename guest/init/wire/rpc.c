#include "wire/rpc.h"

#include <pb_decode.h>
#include <pb_encode.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/fmt.h"
#include "core/klog.h"
#include "ttrpc.pb.h"
#include "wire/link.h"

static const uint8_t *frame_lo, *frame_hi;

void rpc_frame_bounds(const uint8_t *data, size_t len)
{
	frame_lo = data;
	frame_hi = data ? data + len : NULL;
}

/* Zero-copy: the payload stays in the frame buffer, we only note where it is. Only a view
 * inside the frame is kept: a bytes field sent with another wire type (a varint) reaches
 * us as a substream over nanopb's own stack buffer, which is gone once decoding returns. */
bool rpc_view_decode(pb_istream_t *s, const pb_field_t *f, void **arg)
{
	struct bytes_view *v = *arg;
	const uint8_t *p = s->state;

	(void)f;
	if (!frame_lo || p < frame_lo || p > frame_hi || s->bytes_left > (size_t)(frame_hi - p))
		PB_RETURN_ERROR(s, "bytes field not in the frame");
	v->p = p;
	v->n = s->bytes_left;
	return pb_read(s, NULL, s->bytes_left);
}

bool rpc_view_encode(pb_ostream_t *s, const pb_field_t *f, void *const *arg)
{
	const struct bytes_view *v = *arg;

	if (!v->n)
		return true;
	return pb_encode_tag_for_field(s, f) && pb_encode_string(s, v->p, v->n);
}

/* Frames a Response {status?, payload} on a stream. */
static void send_to(struct conn *c, uint32_t stream, int code, const char *msg,
                    const uint8_t *payload, size_t len)
{
	ttrpc_Response r = { 0 };
	struct bytes_view v = { payload, len };
	struct txbuf *b;
	size_t size;
	pb_ostream_t os;

	if (code) {
		r.has_status = true;
		r.status.code = code;
		kfmt(r.status.message, sizeof(r.status.message), "%s", msg);
	}
	r.payload.funcs.encode = rpc_view_encode;
	r.payload.arg = &v;
	if (!pb_get_encoded_size(&size, ttrpc_Response_fields, &r) ||
	    !(b = conn_frame_alloc(size))) {
		warn("stream %u: cannot build a response", stream);
		return;
	}
	os = pb_ostream_from_buffer(b->data + TTRPC_HEADER_LEN, size);
	if (!pb_encode(&os, ttrpc_Response_fields, &r)) {
		free(b);
		return;
	}
	conn_send(c, b, stream, TTRPC_RESPONSE, 0);
}

static void send_response(struct rpc_ctx *ctx, int code, const char *msg, const uint8_t *payload,
                          size_t len)
{
	ctx->replied = 1;
	send_to(ctx->conn, ctx->stream, code, msg, payload, len);
}

/* Encodes msg into a malloc'd buffer; NULL on failure. */
static uint8_t *encode_msg(const pb_msgdesc_t *fields, const void *msg, size_t *size)
{
	uint8_t *buf;
	pb_ostream_t os;

	if (!pb_get_encoded_size(size, fields, msg) || !(buf = malloc(*size ? *size : 1)))
		return NULL;
	os = pb_ostream_from_buffer(buf, *size);
	if (!pb_encode(&os, fields, msg)) {
		free(buf);
		return NULL;
	}
	return buf;
}

void rpc_defer(struct rpc_ctx *ctx, struct rpc_pending *p)
{
	p->conn_id = ctx->conn->id;
	p->stream = ctx->stream;
	ctx->replied = 1;
}

void rpc_pending_reply(const struct rpc_pending *p, const pb_msgdesc_t *fields, const void *msg)
{
	struct conn *c = link_conn_by_id(p->conn_id);
	size_t size;
	uint8_t *buf;

	if (!c)
		return; /* the caller went away; nobody to tell */
	buf = encode_msg(fields, msg, &size);
	if (buf)
		send_to(c, p->stream, RPC_OK, NULL, buf, size);
	else
		send_to(c, p->stream, RPC_INTERNAL, "cannot encode the reply", NULL, 0);
	free(buf);
}

int rpc_stream_send(const struct rpc_pending *p, uint8_t type, uint8_t flags,
                    const pb_msgdesc_t *fields, const void *msg)
{
	struct conn *c = link_conn_by_id(p->conn_id);
	struct txbuf *b;
	size_t size = 0;
	pb_ostream_t os;

	if (!c || c->broken)
		return -1;
	if ((fields && !pb_get_encoded_size(&size, fields, msg)) || !(b = conn_frame_alloc(size)))
		return 0; /* this message is lost, the stream is not */
	os = pb_ostream_from_buffer(b->data + TTRPC_HEADER_LEN, size);
	if (fields && !pb_encode(&os, fields, msg)) {
		free(b);
		return 0;
	}
	conn_send(c, b, p->stream, type, flags);
	return 0;
}

void rpc_pending_error(const struct rpc_pending *p, int code, const char *fmt, ...)
{
	struct conn *c = link_conn_by_id(p->conn_id);
	char msg[256];
	va_list ap;

	if (!c)
		return;
	va_start(ap, fmt);
	kvfmt(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	send_to(c, p->stream, code, msg, NULL, 0);
}

void rpc_error(struct rpc_ctx *ctx, int code, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	kvfmt(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	debug("stream %u: status %d: %s", ctx->stream, code, msg);
	send_response(ctx, code, msg, NULL, 0);
}

void rpc_reply(struct rpc_ctx *ctx, const pb_msgdesc_t *fields, const void *msg)
{
	size_t size;
	uint8_t *buf = encode_msg(fields, msg, &size);

	if (!buf) {
		rpc_error(ctx, RPC_INTERNAL, "cannot encode the reply");
		return;
	}
	send_response(ctx, RPC_OK, NULL, buf, size);
	free(buf);
}

int rpc_decode(struct rpc_ctx *ctx, const pb_msgdesc_t *fields, void *msg)
{
	pb_istream_t is = pb_istream_from_buffer(ctx->payload, ctx->payload_len);

	if (pb_decode(&is, fields, msg))
		return 0;
	/* nanopb's own messages are compiled out for size (PB_NO_ERRMSG). */
	rpc_error(ctx, RPC_INVALID_ARGUMENT, "unmarshal request: malformed protobuf");
	return -1;
}

static const struct rpc_service *find_service(const struct rpc_services *set, const char *name)
{
	for (size_t i = 0; i < set->n; i++)
		if (!strcmp(set->list[i]->name, name))
			return set->list[i];
	return NULL;
}

static rpc_handler find_method(const struct rpc_service *s, const char *name)
{
	for (size_t i = 0; i < s->n_methods; i++)
		if (!strcmp(s->methods[i].name, name))
			return s->methods[i].fn;
	return NULL;
}

static void call(struct rpc_ctx *ctx, const struct rpc_services *set, const ttrpc_Request *req)
{
	const struct rpc_service *s = find_service(set, req->service);
	rpc_handler fn;

	if (!s) {
		rpc_error(ctx, RPC_UNIMPLEMENTED, "service %s", req->service);
		return;
	}
	fn = find_method(s, req->method);
	if (!fn) {
		rpc_error(ctx, RPC_UNIMPLEMENTED, "method %s", req->method);
		return;
	}
	debug("stream %u: %s/%s", ctx->stream, req->service, req->method);
	fn(ctx);
	if (!ctx->replied)
		rpc_error(ctx, RPC_INTERNAL, "%s/%s gave no answer", req->service, req->method);
}

/* Stream id rules as ttrpc's server applies them: client ids are odd and increase.
 * One exception: a virtio-serial port has no session marker, and a host that reconnects
 * quickly can send its first request before we read the EOF of the previous session (a
 * template clone's host never closed the template's session at all). A request on stream
 * 1, which starts every client, then starts a new session. */
static int check_stream(struct rpc_ctx *ctx)
{
	if (ctx->stream == 1 && ctx->conn->last_stream && ctx->conn->kind == CONN_SERIAL) {
		debug("virtio-serial: stream 1 again, a new host session");
		conn_new_session(ctx->conn);
	}
	if (ctx->stream % 2 != 1) {
		rpc_error(ctx, RPC_INVALID_ARGUMENT,
		          "StreamID must be odd for client initiated streams");
		return -1;
	}
	if (ctx->stream <= ctx->conn->last_stream) {
		rpc_error(ctx, RPC_INVALID_ARGUMENT,
		          "StreamID cannot be re-used and must increment");
		return -1;
	}
	ctx->conn->last_stream = ctx->stream;
	return 0;
}

void rpc_on_request(struct rpc_ctx *ctx, const struct rpc_services *set, const uint8_t *data,
                    size_t len)
{
	ttrpc_Request req = { 0 };
	struct bytes_view v = { NULL, 0 };
	pb_istream_t is = pb_istream_from_buffer(data, len);

	if (check_stream(ctx) < 0)
		return;
	req.payload.funcs.decode = rpc_view_decode;
	req.payload.arg = &v;
	if (!pb_decode(&is, ttrpc_Request_fields, &req)) {
		rpc_error(ctx, RPC_INVALID_ARGUMENT,
		          "unmarshal request error: malformed ttrpc Request");
		return;
	}
	ctx->payload = v.p;
	ctx->payload_len = v.n;
	call(ctx, set, &req);
}
