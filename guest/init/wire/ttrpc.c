#include "wire/ttrpc.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core/klog.h"

/* A peer that stops reading must not make PID 1 buffer without bound. */
#define TX_LIMIT (64u << 20)
#define RX_CHUNK (64u << 10)

void ttrpc_rx_init(struct ttrpc_rx *rx, ttrpc_frame_fn fn, void *owner)
{
	memset(rx, 0, sizeof(*rx));
	rx->on_frame = fn;
	rx->owner = owner;
}

void ttrpc_rx_reset(struct ttrpc_rx *rx)
{
	free(rx->data);
	rx->data = NULL;
	rx->hdr_have = rx->data_have = rx->discard = 0;
}

static void frame_done(struct ttrpc_rx *rx, const uint8_t *data)
{
	struct ttrpc_header h = rx->h;

	rx->hdr_have = 0;
	rx->data_have = 0;
	rx->on_frame(rx, &h, data);
}

/* Header complete: decide between discarding an oversized frame and buffering it. */
static int start_body(struct ttrpc_rx *rx)
{
	ttrpc_header_decode(&rx->h, rx->hdr);
	if (rx->h.length > TTRPC_MAX_DATA) {
		rx->discard = rx->h.length;
		return 0;
	}
	if (rx->h.length == 0) {
		frame_done(rx, (const uint8_t *)"");
		return 0;
	}
	rx->data = malloc(rx->h.length);
	return rx->data ? 0 : -1;
}

static size_t take_header(struct ttrpc_rx *rx, const uint8_t *buf, size_t n)
{
	size_t k = TTRPC_HEADER_LEN - rx->hdr_have;

	if (k > n)
		k = n;
	memcpy(rx->hdr + rx->hdr_have, buf, k);
	rx->hdr_have += k;
	return k;
}

static size_t take_discard(struct ttrpc_rx *rx, size_t n)
{
	size_t k = rx->discard < n ? rx->discard : n;

	rx->discard -= k;
	if (!rx->discard)
		frame_done(rx, NULL);
	return k;
}

static size_t take_body(struct ttrpc_rx *rx, const uint8_t *buf, size_t n)
{
	size_t k = rx->h.length - rx->data_have;
	uint8_t *data;

	if (k > n)
		k = n;
	memcpy(rx->data + rx->data_have, buf, k);
	rx->data_have += k;
	if (rx->data_have == rx->h.length) {
		data = rx->data;
		rx->data = NULL;
		frame_done(rx, data);
		free(data);
	}
	return k;
}

int ttrpc_rx_feed(struct ttrpc_rx *rx, const uint8_t *buf, size_t n)
{
	while (n) {
		size_t k;

		if (rx->discard)
			k = take_discard(rx, n);
		else if (rx->hdr_have < TTRPC_HEADER_LEN) {
			k = take_header(rx, buf, n);
			if (rx->hdr_have == TTRPC_HEADER_LEN && start_body(rx) < 0)
				return -1;
		} else
			k = take_body(rx, buf, n);
		buf += k;
		n -= k;
	}
	return 0;
}

const char *conn_kind_name(enum conn_kind k)
{
	return k == CONN_SERIAL ? "virtio-serial" : "vsock";
}

static uint64_t next_conn_id = 1;

void conn_init(struct conn *c, int fd, enum conn_kind kind, ttrpc_frame_fn on_frame,
               void (*on_close)(struct conn *))
{
	memset(c, 0, sizeof(*c));
	c->id = next_conn_id++;
	c->w.fd = fd;
	c->w.fn = conn_on_event;
	c->kind = kind;
	c->on_close = on_close;
	ttrpc_rx_init(&c->rx, on_frame, c);
}

void conn_reset(struct conn *c)
{
	struct txbuf *b, *next;

	ttrpc_rx_reset(&c->rx);
	for (b = c->tx_head; b; b = next) {
		next = b->next;
		free(b);
	}
	c->tx_head = c->tx_tail = NULL;
	c->tx_bytes = 0;
	c->last_stream = 0;
	c->broken = 0;
	c->id = next_conn_id++;
}

void conn_new_session(struct conn *c)
{
	c->last_stream = 0;
	c->id = next_conn_id++;
}

struct txbuf *conn_frame_alloc(size_t len)
{
	struct txbuf *b = malloc(sizeof(*b) + TTRPC_HEADER_LEN + len);

	if (b) {
		b->next = NULL;
		b->len = TTRPC_HEADER_LEN + len;
		b->off = 0;
	}
	return b;
}

/* Writes as much queued output as the fd takes now. -1 on a write error. */
static int tx_drain(struct conn *c)
{
	while (c->tx_head) {
		struct txbuf *b = c->tx_head;
		ssize_t n = write(c->w.fd, b->data + b->off, b->len - b->off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -1;
		}
		b->off += (size_t)n;
		c->tx_bytes -= (size_t)n;
		if (b->off == b->len) {
			c->tx_head = b->next;
			if (!c->tx_head)
				c->tx_tail = NULL;
			free(b);
		}
	}
	return 0;
}

static void update_events(struct conn *c)
{
	ev_mod(&c->w, EPOLLIN | (c->tx_head ? EPOLLOUT : 0));
}

void conn_send(struct conn *c, struct txbuf *b, uint32_t stream, uint8_t type, uint8_t flags)
{
	struct ttrpc_header h = { (uint32_t)(b->len - TTRPC_HEADER_LEN), stream, type, flags };
	int was_idle = !c->tx_head;

	ttrpc_header_encode(b->data, &h);
	if (c->broken || c->tx_bytes + b->len > TX_LIMIT) {
		warn("%s: peer is not reading, dropping the connection", conn_kind_name(c->kind));
		c->broken = 1;
		free(b);
		return;
	}
	if (c->tx_tail)
		c->tx_tail->next = b;
	else
		c->tx_head = b;
	c->tx_tail = b;
	c->tx_bytes += b->len;
	if (tx_drain(c) < 0)
		c->broken = 1;
	else if (was_idle != !c->tx_head)
		update_events(c);
}

void conn_flush(struct conn *c, int timeout_ms)
{
	struct pollfd p = { .fd = c->w.fd, .events = POLLOUT };

	while (c->tx_head && !c->broken && poll(&p, 1, timeout_ms) > 0)
		if (tx_drain(c) < 0)
			break;
}

static void conn_read(struct conn *c)
{
	static uint8_t buf[RX_CHUNK];

	for (;;) {
		ssize_t n = read(c->w.fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			c->broken = 1;
			return;
		}
		if (ttrpc_rx_feed(&c->rx, buf, (size_t)n) < 0) {
			warn("%s: out of memory for a frame, dropping the connection",
			     conn_kind_name(c->kind));
			c->broken = 1;
		}
		if (c->broken)
			return;
	}
}

void conn_on_event(struct watch *w, uint32_t events)
{
	struct conn *c = (struct conn *)w;

	if (events & EPOLLIN)
		conn_read(c);
	else if (events & (EPOLLHUP | EPOLLERR))
		c->broken = 1;
	if (!c->broken && (events & EPOLLOUT)) {
		if (tx_drain(c) < 0)
			c->broken = 1;
		else if (!c->tx_head)
			update_events(c);
	}
	if (c->broken)
		c->on_close(c);
}
