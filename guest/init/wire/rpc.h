/* ttrpc request dispatch from tables, and the reply helpers handlers use. */
#ifndef KUASAR_RPC_H
#define KUASAR_RPC_H

#include <pb.h>
#include <pb_decode.h>
#include <pb_encode.h>
#include <stddef.h>
#include <stdint.h>

#include "wire/ttrpc.h"

struct rpc_ctx {
	struct conn *conn;
	uint32_t stream;
	const uint8_t *payload;
	size_t payload_len;
	int replied;
};

typedef void (*rpc_handler)(struct rpc_ctx *ctx);

/* Bytes fields as views into the frame buffer (nanopb callbacks): no copies. */
struct bytes_view {
	const uint8_t *p;
	size_t n;
};
bool rpc_view_decode(pb_istream_t *s, const pb_field_t *f, void **arg);
/* The frame being handled: views are only taken inside it (NULL: none are). */
void rpc_frame_bounds(const uint8_t *data, size_t len);
bool rpc_view_encode(pb_ostream_t *s, const pb_field_t *f, void *const *arg);

/* A reply owed later (Wait, Create): where to send it. */
struct rpc_pending {
	uint64_t conn_id;
	uint32_t stream;
};

struct rpc_method {
	const char *name;
	rpc_handler fn;
};

struct rpc_service {
	const char *name;
	const struct rpc_method *methods;
	size_t n_methods;
};

/* What one server answers. */
struct rpc_services {
	const struct rpc_service *const *list;
	size_t n;
};

/* A Request frame's data: checks the stream id, decodes the envelope and calls the
 * handler of service/method in set (UNIMPLEMENTED when there is none). */
void rpc_on_request(struct rpc_ctx *ctx, const struct rpc_services *set, const uint8_t *data,
                    size_t len);

/* Decodes the request payload; on failure answers INVALID_ARGUMENT and returns -1. */
int rpc_decode(struct rpc_ctx *ctx, const pb_msgdesc_t *fields, void *msg);
void rpc_reply(struct rpc_ctx *ctx, const pb_msgdesc_t *fields, const void *msg);
void rpc_error(struct rpc_ctx *ctx, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The handler answers later through p; the connection may be gone by then. */
void rpc_defer(struct rpc_ctx *ctx, struct rpc_pending *p);
void rpc_pending_reply(const struct rpc_pending *p, const pb_msgdesc_t *fields, const void *msg);
void rpc_pending_error(const struct rpc_pending *p, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Any frame on a stream (fields NULL: no payload); -1 when its connection is gone. */
int rpc_stream_send(const struct rpc_pending *p, uint8_t type, uint8_t flags,
                    const pb_msgdesc_t *fields, const void *msg);

#endif
