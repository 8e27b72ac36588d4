/* ttrpc framing shared by the guest server and the host client.
 * Frame: 10-byte big-endian header { u32 length (data only), u32 stream id, u8 type,
 * u8 flags } followed by the data. See containerd/ttrpc PROTOCOL.md. */
#ifndef KUASAR_TTRPC_WIRE_H
#define KUASAR_TTRPC_WIRE_H

#include <stdint.h>

#define TTRPC_HEADER_LEN 10
/* Larger frames are discarded and answered with RESOURCE_EXHAUSTED on their stream. */
#define TTRPC_MAX_DATA (4u << 20)

enum ttrpc_type {
	TTRPC_REQUEST = 1,
	TTRPC_RESPONSE = 2,
	TTRPC_DATA = 3,
};

enum ttrpc_flags {
	TTRPC_FLAG_REMOTE_CLOSED = 0x1,
	TTRPC_FLAG_REMOTE_OPEN = 0x2,
	TTRPC_FLAG_NO_DATA = 0x4,
};

/* gRPC status codes used on the wire. */
enum rpc_code {
	RPC_OK = 0,
	RPC_CANCELLED = 1,
	RPC_UNKNOWN = 2,
	RPC_INVALID_ARGUMENT = 3,
	RPC_DEADLINE_EXCEEDED = 4,
	RPC_NOT_FOUND = 5,
	RPC_ALREADY_EXISTS = 6,
	RPC_PERMISSION_DENIED = 7,
	RPC_RESOURCE_EXHAUSTED = 8,
	RPC_FAILED_PRECONDITION = 9,
	RPC_ABORTED = 10,
	RPC_OUT_OF_RANGE = 11,
	RPC_UNIMPLEMENTED = 12,
	RPC_INTERNAL = 13,
	RPC_UNAVAILABLE = 14,
};

struct ttrpc_header {
	uint32_t length;
	uint32_t stream;
	uint8_t type;
	uint8_t flags;
};

static inline void ttrpc_put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline uint32_t ttrpc_get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void ttrpc_header_encode(uint8_t out[TTRPC_HEADER_LEN], const struct ttrpc_header *h)
{
	ttrpc_put_u32(out, h->length);
	ttrpc_put_u32(out + 4, h->stream);
	out[8] = h->type;
	out[9] = h->flags;
}

static inline void ttrpc_header_decode(struct ttrpc_header *h, const uint8_t in[TTRPC_HEADER_LEN])
{
	h->length = ttrpc_get_u32(in);
	h->stream = ttrpc_get_u32(in + 4);
	h->type = in[8];
	h->flags = in[9];
}

#endif
