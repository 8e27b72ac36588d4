/* ttrpc server side: frame reassembly (pure, unit-tested on the host) and connections
 * with a bounded transmit queue. */
#ifndef KUASAR_GUEST_TTRPC_H
#define KUASAR_GUEST_TTRPC_H

#include <stddef.h>
#include <stdint.h>

#include "core/ev.h"
#include "proto/ttrpc_wire.h"

struct ttrpc_rx;
/* data is NULL when the frame exceeded TTRPC_MAX_DATA and was discarded. */
typedef void (*ttrpc_frame_fn)(struct ttrpc_rx *rx, const struct ttrpc_header *h,
                               const uint8_t *data);

struct ttrpc_rx {
	uint8_t hdr[TTRPC_HEADER_LEN];
	size_t hdr_have;
	struct ttrpc_header h;
	uint8_t *data;
	size_t data_have;
	size_t discard;
	ttrpc_frame_fn on_frame;
	void *owner;
};

void ttrpc_rx_init(struct ttrpc_rx *rx, ttrpc_frame_fn fn, void *owner);
/* Feeds received bytes; calls on_frame for each complete frame. -1 if out of memory. */
int ttrpc_rx_feed(struct ttrpc_rx *rx, const uint8_t *buf, size_t n);
void ttrpc_rx_reset(struct ttrpc_rx *rx);

enum conn_kind { CONN_SERIAL, CONN_VSOCK };

struct txbuf {
	struct txbuf *next;
	size_t len, off;
	uint8_t data[];
};

struct conn {
	struct watch w;
	/* Changes with every session: a deferred reply for an old session is dropped. */
	uint64_t id;
	enum conn_kind kind;
	struct ttrpc_rx rx;
	uint32_t last_stream;
	struct txbuf *tx_head, *tx_tail;
	size_t tx_bytes;
	int broken;
	void (*on_close)(struct conn *c);
};

/* on_frame gets every whole frame the peer sends (rx->owner is c). */
void conn_init(struct conn *c, int fd, enum conn_kind kind, ttrpc_frame_fn on_frame,
               void (*on_close)(struct conn *));
/* Drops buffered input and output and starts a new ttrpc session on the same fd. */
void conn_reset(struct conn *c);
/* Forgets the stream ids and pending replies of the session so far, keeping the byte
 * stream as it is. */
void conn_new_session(struct conn *c);
/* Allocates a frame with room for len data bytes after the header. */
struct txbuf *conn_frame_alloc(size_t len);
/* Queues a frame built in a txbuf (header filled here) and writes what the fd takes. */
void conn_send(struct conn *c, struct txbuf *b, uint32_t stream, uint8_t type, uint8_t flags);
/* Writes queued output, waiting at most timeout_ms; used before power off. */
void conn_flush(struct conn *c, int timeout_ms);
void conn_on_event(struct watch *w, uint32_t events);
const char *conn_kind_name(enum conn_kind k);

#endif
