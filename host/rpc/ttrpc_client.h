/* Host ttrpc client: synchronous calls over one byte stream (the guest link). A wait hook
 * lets the caller watch other things (the VMM's pidfd, signals) while a call is pending. */
#ifndef KUASAR_HOST_TTRPC_H
#define KUASAR_HOST_TTRPC_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "proto/ttrpc_wire.h"
#include "rpc/ttrpc_frame.h"

/* Returns 0 when fd is readable, -1 with err set on timeout or when something else failed. */
typedef int (*ttrpc_wait_fn)(void *ctx, int fd, int64_t deadline_ns, kerr_t *err);

/* Frames that are not the answer being waited for (stream data, other streams' ends). */
typedef void (*ttrpc_client_frame_fn)(void *ctx, const struct ttrpc_header *h, const uint8_t *data);

struct ttrpc_client {
	int fd;
	uint32_t next_stream;
	struct ttrpc_reader rd;
	ttrpc_wait_fn wait;
	void *wait_ctx;
	ttrpc_client_frame_fn on_frame;
	void *frame_ctx;
};

struct ttrpc_status {
	int code;
	char message[512];
};

void ttrpc_client_init(struct ttrpc_client *c, int fd);
void ttrpc_client_close(struct ttrpc_client *c);

/* Builds a whole Request frame (header included); *out is malloc'd. */
int ttrpc_encode_request(uint32_t stream, const char *service, const char *method,
                         const uint8_t *payload, size_t len, uint8_t **out, size_t *out_len);
/* Parses a Response frame's data into status and a malloc'd payload copy. */
int ttrpc_decode_response(const uint8_t *data, size_t len, struct ttrpc_status *st,
                          uint8_t **payload, size_t *payload_len);

int ttrpc_send_frame(struct ttrpc_client *c, const struct ttrpc_header *h, const void *data,
                     kerr_t *err);
/* Reads the next frame; *data is malloc'd (NULL for empty frames). */
int ttrpc_read_frame(struct ttrpc_client *c, struct ttrpc_header *h, uint8_t **data,
                     int64_t deadline_ns, kerr_t *err);
/* Sends a request on stream and waits for that stream's response. */
int ttrpc_call_raw(struct ttrpc_client *c, uint32_t stream, const char *service, const char *method,
                   const uint8_t *payload, size_t len, struct ttrpc_status *st, uint8_t **resp,
                   size_t *resp_len, int64_t deadline_ns, kerr_t *err);
/* A unary call with protobuf-c messages; a non-OK status becomes an error. */
int ttrpc_call(struct ttrpc_client *c, const char *service, const char *method,
               const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
               ProtobufCMessage **resp, int64_t deadline_ns, kerr_t *err);
const char *rpc_code_name(int code);

#endif
