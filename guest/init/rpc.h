/* ttrpc request dispatch from tables, and the reply helpers handlers use. */
#ifndef KUASAR_RPC_H
#define KUASAR_RPC_H

#include <pb.h>
#include <stddef.h>
#include <stdint.h>

#include "ttrpc.h"

struct rpc_ctx {
	struct conn *conn;
	uint32_t stream;
	const uint8_t *payload;
	size_t payload_len;
	int replied;
};

typedef void (*rpc_handler)(struct rpc_ctx *ctx);

struct rpc_method {
	const char *name;
	rpc_handler fn;
};

struct rpc_service {
	const char *name;
	const struct rpc_method *methods;
	size_t n_methods;
};

/* Decodes the request payload; on failure answers INVALID_ARGUMENT and returns -1. */
int rpc_decode(struct rpc_ctx *ctx, const pb_msgdesc_t *fields, void *msg);
void rpc_reply(struct rpc_ctx *ctx, const pb_msgdesc_t *fields, const void *msg);
void rpc_error(struct rpc_ctx *ctx, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

extern const struct rpc_service sandbox_service;

#endif
