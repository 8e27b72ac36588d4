#include "rpc/ttrpc_client.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "google/rpc/status.pb-c.h"
#include "ttrpc.pb-c.h"

static const char *const code_names[] = {
	"OK",
	"CANCELLED",
	"UNKNOWN",
	"INVALID_ARGUMENT",
	"DEADLINE_EXCEEDED",
	"NOT_FOUND",
	"ALREADY_EXISTS",
	"PERMISSION_DENIED",
	"RESOURCE_EXHAUSTED",
	"FAILED_PRECONDITION",
	"ABORTED",
	"OUT_OF_RANGE",
	"UNIMPLEMENTED",
	"INTERNAL",
	"UNAVAILABLE",
	"DATA_LOSS",
	"UNAUTHENTICATED",
};

const char *rpc_code_name(int code)
{
	if (code < 0 || code >= (int)(sizeof(code_names) / sizeof(code_names[0])))
		return "CODE_OUT_OF_RANGE";
	return code_names[code];
}

static int poll_wait(void *ctx, int fd, int64_t deadline_ns, kerr_t *err)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int n;

	(void)ctx;
	do
		n = poll(&p, 1, ms_until(deadline_ns));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return kerr_sys(err, "poll");
	return n == 0 ? kerr_set(err, ETIMEDOUT, "timed out") : 0;
}

void ttrpc_client_init(struct ttrpc_client *c, int fd)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->next_stream = 1;
	c->wait = poll_wait;
}

void ttrpc_client_close(struct ttrpc_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	ttrpc_reader_free(&c->rd);
}

int ttrpc_encode_request(uint32_t stream, const char *service, const char *method,
                         const uint8_t *payload, size_t len, uint8_t **out, size_t *out_len)
{
	Ttrpc__Request req = TTRPC__REQUEST__INIT;
	struct ttrpc_header h = { 0, stream, TTRPC_REQUEST, 0 };
	size_t size;
	uint8_t *buf;

	req.service = (char *)service;
	req.method = (char *)method;
	req.payload.data = (uint8_t *)payload;
	req.payload.len = len;
	size = ttrpc__request__get_packed_size(&req);
	buf = malloc(TTRPC_HEADER_LEN + size);
	if (!buf)
		return -1;
	h.length = (uint32_t)size;
	ttrpc_header_encode(buf, &h);
	ttrpc__request__pack(&req, buf + TTRPC_HEADER_LEN);
	*out = buf;
	*out_len = TTRPC_HEADER_LEN + size;
	return 0;
}

int ttrpc_decode_response(const uint8_t *data, size_t len, struct ttrpc_status *st,
                          uint8_t **payload, size_t *payload_len)
{
	Ttrpc__Response *r = ttrpc__response__unpack(NULL, len, data);

	if (!r)
		return -1;
	st->code = r->status ? r->status->code : 0;
	snprintf(st->message, sizeof(st->message), "%s",
	         r->status && r->status->message ? r->status->message : "");
	*payload_len = r->payload.len;
	*payload = malloc(r->payload.len ? r->payload.len : 1);
	if (*payload && r->payload.len)
		memcpy(*payload, r->payload.data, r->payload.len);
	ttrpc__response__free_unpacked(r, NULL);
	return *payload ? 0 : -1;
}

int ttrpc_send_frame(struct ttrpc_client *c, const struct ttrpc_header *h, const void *data,
                     kerr_t *err)
{
	uint8_t hdr[TTRPC_HEADER_LEN];

	ttrpc_header_encode(hdr, h);
	if (write_all(c->fd, hdr, sizeof(hdr)) < 0 ||
	    (h->length && write_all(c->fd, data, h->length) < 0))
		return kerr_sys(err, "write to the guest link");
	return 0;
}

int ttrpc_read_frame(struct ttrpc_client *c, struct ttrpc_header *h, uint8_t **data,
                     int64_t deadline_ns, kerr_t *err)
{
	for (;;) {
		const uint8_t *d;
		ssize_t n;

		switch (ttrpc_reader_next(&c->rd, h, &d)) {
		case TTRPC_FRAME:
			*data = NULL;
			if (h->length && !(*data = malloc(h->length)))
				return kerr_set(err, ENOMEM, "out of memory");
			if (h->length)
				memcpy(*data, d, h->length);
			return 0;
		case TTRPC_OVERSIZED:
			return kerr_set(err, EPROTO,
			                "the guest sent a %u byte frame, over the %u limit",
			                h->length, TTRPC_MAX_DATA);
		case TTRPC_NEED_MORE: break;
		}
		if (c->wait(c->wait_ctx, c->fd, deadline_ns, err) < 0)
			return -1;
		n = ttrpc_reader_fill(&c->rd, c->fd);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return kerr_sys(err, "read from the guest link");
		if (n == 0)
			return kerr_set(err, ECONNRESET, "the guest link closed");
	}
}

static int wait_response(struct ttrpc_client *c, uint32_t stream, struct ttrpc_status *st,
                         uint8_t **resp, size_t *resp_len, int64_t deadline_ns, kerr_t *err)
{
	for (;;) {
		struct ttrpc_header h;
		_cleanup_free_ uint8_t *data = NULL;

		if (ttrpc_read_frame(c, &h, &data, deadline_ns, err) < 0)
			return -1;
		if (h.stream != stream || h.type != TTRPC_RESPONSE) {
			if (c->on_frame)
				c->on_frame(c->frame_ctx, &h, data);
			continue;
		}
		if (ttrpc_decode_response(data ? data : (uint8_t *)"", h.length, st, resp,
		                          resp_len) < 0)
			return kerr_set(err, EPROTO, "malformed response on stream %u", stream);
		return 0;
	}
}

int ttrpc_call_raw(struct ttrpc_client *c, uint32_t stream, const char *service, const char *method,
                   const uint8_t *payload, size_t len, struct ttrpc_status *st, uint8_t **resp,
                   size_t *resp_len, int64_t deadline_ns, kerr_t *err)
{
	_cleanup_free_ uint8_t *frame = NULL;
	size_t flen;

	if (ttrpc_encode_request(stream, service, method, payload, len, &frame, &flen) < 0)
		return kerr_set(err, ENOMEM, "encode request");
	if (write_all(c->fd, frame, flen) < 0)
		return kerr_sys(err, "write to the guest link");
	return wait_response(c, stream, st, resp, resp_len, deadline_ns, err);
}

int ttrpc_call(struct ttrpc_client *c, const char *service, const char *method,
               const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
               ProtobufCMessage **resp, int64_t deadline_ns, kerr_t *err)
{
	size_t len = protobuf_c_message_get_packed_size(req), rlen = 0;
	_cleanup_free_ uint8_t *payload = malloc(len ? len : 1);
	_cleanup_free_ uint8_t *rbuf = NULL;
	struct ttrpc_status st;
	uint32_t stream = c->next_stream;

	if (!payload)
		return kerr_set(err, ENOMEM, "out of memory");
	protobuf_c_message_pack(req, payload);
	c->next_stream += 2;
	if (ttrpc_call_raw(c, stream, service, method, payload, len, &st, &rbuf, &rlen, deadline_ns,
	                   err) < 0)
		return kerr_wrap(err, "%s/%s", service, method);
	if (st.code)
		return kerr_set(err, EREMOTEIO, "%s/%s: %s: %s", service, method,
		                rpc_code_name(st.code), st.message);
	*resp = protobuf_c_message_unpack(resp_desc, NULL, rlen, rbuf);
	if (!*resp)
		return kerr_set(err, EPROTO, "%s/%s: malformed reply", service, method);
	return 0;
}
