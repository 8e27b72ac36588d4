/* gRPC over HTTP/2 (prior knowledge, no TLS) on unix sockets, with libnghttp2.
 *
 * Server: a table of { path, handler }; the loop feeds each connection. A handler answers
 * with grpc_reply / grpc_reply_error, now or later (a held Wait). A call whose stream goes
 * away before its answer gets its on_cancel hook and is freed; the owner must drop it.
 *
 * Client: blocking unary calls (the CRI test client, tests of the daemon). */
#ifndef KUASAR_GRPC_H
#define KUASAR_GRPC_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/loop.h"

/* containerd's limit for one message. */
#define GRPC_MAX_MESSAGE (16u << 20)

struct grpc_call;
struct grpc_server;

typedef void (*grpc_handler_fn)(struct grpc_call *call, const uint8_t *msg, size_t len);

struct grpc_method {
	const char *path; /* "/package.Service/Method" */
	grpc_handler_fn fn;
};

struct grpc_server {
	struct loop *loop;
	struct loop_watch listen;
	const struct grpc_method *methods;
	size_t n_methods;
	void *ctx;
	unsigned n_conns;
};

int grpc_server_listen(struct grpc_server *s, struct loop *loop, const char *path, kerr_t *err);
void grpc_server_close(struct grpc_server *s);

void *grpc_call_ctx(struct grpc_call *call);
/* Hook run if the client goes away before the answer; the call is freed right after. */
void grpc_call_on_cancel(struct grpc_call *call, void (*fn)(struct grpc_call *, void *), void *arg);
void grpc_reply(struct grpc_call *call, const ProtobufCMessage *msg);
void grpc_reply_error(struct grpc_call *call, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

struct grpc_status {
	int code;
	char message[512];
};

/* One unary call on a fresh connection. *resp is malloc'd. Returns -1 (err set) when the
 * call could not be made; a gRPC error is a return of 0 with st->code set. */
int grpc_call_unary(const char *sock, const char *path, const uint8_t *req, size_t req_len,
                    uint8_t **resp, size_t *resp_len, struct grpc_status *st, int timeout_ms,
                    kerr_t *err);
/* The same with protobuf-c messages; a non-OK status becomes an error naming its code. */
int grpc_call_msg(const char *sock, const char *path, const ProtobufCMessage *req,
                  const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
                  int timeout_ms, kerr_t *err);

#endif
