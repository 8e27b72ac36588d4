#include "services/portfwd.h"

#include <errno.h>
#include <netinet/in.h>
#include <pb_decode.h>
#include <pb_encode.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/ev.h"
#include "core/klog.h"
#include "core/sys.h"
#include "sandbox.pb.h"
#include "wire/link.h"

#define FWD_MAX 32
/* Each side assumes FWD_WINDOW_BASE of the other at the start, and grants the rest of its
 * own window in its first frame: an init or proxy of an older build (64 KiB) keeps to
 * its own. */
#define FWD_WINDOW_BASE (64u << 10)
#define FWD_WINDOW (256u << 10)
#define FWD_CHUNK (32u << 10)

struct fwd {
	struct watch w; /* the connection to the port */
	struct rpc_pending at;
	int used, polled, connected, v6;
	unsigned port;
	int64_t credit; /* bytes the host still takes */
	uint32_t taken; /* delivered to the port since our last grant */
	int local_eof;  /* the port's side ended; our close frame went */
	int remote_eof; /* the host's side ended; we shut ours once buf is delivered */
	uint8_t *buf;   /* from the host, not yet delivered (at most FWD_WINDOW) */
	size_t len, cap;
};

static struct fwd fwds[FWD_MAX];

static void unwatch(struct fwd *f)
{
	if (f->polled)
		ev_del(&f->w);
	f->polled = 0;
}

static void fwd_free(struct fwd *f, int reset)
{
	if (!f->used) {
		f->w.fd = -1;
		return;
	}
	unwatch(f);
	if (f->w.fd >= 0 && reset) { /* the peer sees a reset, as the host's client did */
		struct linger l = { 1, 0 };

		setsockopt(f->w.fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	}
	if (f->w.fd >= 0)
		close(f->w.fd);
	free(f->buf);
	memset(f, 0, sizeof(*f));
	f->w.fd = -1;
}

static int send_data(struct fwd *f, const uint8_t *p, size_t n, uint32_t window)
{
	kuasar_sandbox_v1_PortData d = kuasar_sandbox_v1_PortData_init_zero;
	struct bytes_view v = { p, n };

	d.data.funcs.encode = n ? rpc_view_encode : NULL;
	d.data.arg = &v;
	d.window = window;
	return rpc_stream_send(&f->at, TTRPC_DATA, 0, kuasar_sandbox_v1_PortData_fields, &d);
}

/* In the epoll set only while there is something to wait for (EPOLLHUP cannot be masked). */
static void watch(struct fwd *f)
{
	uint32_t ev = f->connected ? (!f->local_eof && f->credit > 0 ? EPOLLIN : 0u) |
	                                 (f->len ? EPOLLOUT : 0u)
	                           : EPOLLOUT;

	if (ev && !f->polled)
		f->polled = ev_add(&f->w, ev) == 0;
	else if (ev)
		ev_mod(&f->w, ev);
	else
		unwatch(f);
}

/* What the host sent goes to the port; what the port took is granted back. */
static int deliver(struct fwd *f)
{
	ssize_t n = 0;

	while (f->len && (n = write(f->w.fd, f->buf, f->len)) > 0) {
		memmove(f->buf, f->buf + n, f->len - (size_t)n);
		f->len -= (size_t)n;
		f->taken += (uint32_t)n;
	}
	if (f->len && n < 0 && errno != EAGAIN && errno != EINTR)
		return -1;
	if (f->taken && !f->remote_eof) {
		if (send_data(f, NULL, 0, f->taken) < 0)
			return -1;
		f->taken = 0;
	}
	if (f->remote_eof && !f->len)
		shutdown(f->w.fd, SHUT_WR);
	return 0;
}

/* The port's bytes, within the host's window, to the host. */
static int collect(struct fwd *f)
{
	static uint8_t chunk[FWD_CHUNK];
	size_t want = f->credit < (int64_t)FWD_CHUNK ? (size_t)f->credit : FWD_CHUNK;
	ssize_t n;

	if (f->local_eof || !want)
		return 0;
	n = read(f->w.fd, chunk, want);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	if (n == 0) {
		f->local_eof = 1;
		return rpc_stream_send(&f->at, TTRPC_DATA,
		                       TTRPC_FLAG_REMOTE_CLOSED | TTRPC_FLAG_NO_DATA, NULL, NULL);
	}
	f->credit -= n;
	return send_data(f, chunk, (size_t)n, 0);
}

static void settle(struct fwd *f)
{
	if (f->local_eof && f->remote_eof && !f->len)
		fwd_free(f, 0); /* both sides closed: the stream is over, no answer follows */
	else
		watch(f);
}

static void broke(struct fwd *f)
{
	rpc_pending_error(&f->at, RPC_UNAVAILABLE, "port %u: the connection broke (errno %d)",
	                  f->port, errno);
	fwd_free(f, 1);
}

static void on_sock(struct watch *w, uint32_t events);
static int dialled(struct fwd *f, int e);

/* 127.0.0.1 first, then ::1, as containerd dials localhost for runc's pods. */
static void dial(struct fwd *f)
{
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(f->port) };
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons(f->port) };
	int rc;

	a4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a6.sin6_addr = in6addr_loopback;
	f->w.fd =
	    sys_socket(f->v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	f->w.fn = on_sock;
	f->connected = 0;
	if (f->w.fd < 0) {
		broke(f);
		return;
	}
	rc = f->v6 ? connect(f->w.fd, (struct sockaddr *)&a6, sizeof(a6))
	           : connect(f->w.fd, (struct sockaddr *)&a4, sizeof(a4));
	if (rc < 0 && errno != EINPROGRESS) {
		dialled(f, errno);
		return;
	}
	f->connected = rc == 0;
	watch(f);
}

/* The connect's outcome e: on to ::1 after 127.0.0.1 failed, or the stream ends with it.
 * Returns 1 when connected. */
static int dialled(struct fwd *f, int e)
{
	if (!e)
		return f->connected = 1;
	unwatch(f);
	close(f->w.fd);
	f->w.fd = -1;
	if (!f->v6++) {
		dial(f);
		return 0;
	}
	rpc_pending_error(&f->at, RPC_UNAVAILABLE, "port %u: %s on the guest's loopback", f->port,
	                  e == ECONNREFUSED ? "nothing listens" : "cannot connect");
	fwd_free(f, 0);
	return 0;
}

static void on_sock(struct watch *w, uint32_t events)
{
	struct fwd *f = (struct fwd *)w;

	if (!link_conn_by_id(f->at.conn_id)) { /* the host's link is gone */
		fwd_free(f, 1);
		return;
	}
	if (!f->connected) {
		int e = 0;
		socklen_t n = sizeof(e);

		if (getsockopt(f->w.fd, SOL_SOCKET, SO_ERROR, &e, &n) < 0)
			e = errno;
		if (!dialled(f, e))
			return;
	}
	if (((events & EPOLLOUT) && deliver(f) < 0) ||
	    ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && collect(f) < 0)) {
		broke(f);
		return;
	}
	settle(f);
}

void portfwd_open(struct rpc_ctx *ctx)
{
	kuasar_sandbox_v1_PortForwardRequest req = kuasar_sandbox_v1_PortForwardRequest_init_zero;
	struct fwd *f = NULL;

	if (rpc_decode(ctx, kuasar_sandbox_v1_PortForwardRequest_fields, &req) < 0)
		return;
	if (!req.port || req.port > 65535) {
		rpc_error(ctx, RPC_INVALID_ARGUMENT, "port %u is not a TCP port", req.port);
		return;
	}
	/* A slot is free, or its forward's link is gone. */
	for (int i = 0; i < FWD_MAX && !f; i++)
		if (!fwds[i].used || !link_conn_by_id(fwds[i].at.conn_id))
			f = &fwds[i];
	if (!f) {
		rpc_error(ctx, RPC_RESOURCE_EXHAUSTED, "at most %d forwarded connections", FWD_MAX);
		return;
	}
	fwd_free(f, 1);
	f->used = 1;
	f->port = req.port;
	f->credit = FWD_WINDOW_BASE;
	rpc_defer(ctx, &f->at);
	send_data(f, NULL, 0, FWD_WINDOW - FWD_WINDOW_BASE);
	dial(f);
}

/* Room for need bytes of the host's, in steps of the base window. */
static int grow(struct fwd *f, size_t need)
{
	size_t cap = (need + FWD_WINDOW_BASE - 1) / FWD_WINDOW_BASE * FWD_WINDOW_BASE;
	uint8_t *b = realloc(f->buf, cap);

	if (!b)
		return -1;
	f->buf = b;
	f->cap = cap;
	return 0;
}

/* The host's PortData: bytes for the port, the window it grants, or its reset. */
static int take(struct fwd *f, const uint8_t *data, size_t len)
{
	kuasar_sandbox_v1_PortData d = kuasar_sandbox_v1_PortData_init_zero;
	struct bytes_view v = { NULL, 0 };
	pb_istream_t is = pb_istream_from_buffer(data, len);

	d.data.funcs.decode = rpc_view_decode;
	d.data.arg = &v;
	if (!pb_decode(&is, kuasar_sandbox_v1_PortData_fields, &d))
		return RPC_INVALID_ARGUMENT;
	if (d.reset)
		return -1;
	if (f->len + v.n > FWD_WINDOW)
		return RPC_RESOURCE_EXHAUSTED;
	if (f->len + v.n > f->cap && grow(f, f->len + v.n) < 0)
		return RPC_RESOURCE_EXHAUSTED;
	if (v.n)
		memcpy(f->buf + f->len, v.p, v.n);
	f->len += v.n;
	f->credit += d.window;
	return 0;
}

int portfwd_on_data(struct conn *c, const struct ttrpc_header *h, const uint8_t *data)
{
	struct fwd *f = NULL;
	int rc = 0;

	for (int i = 0; i < FWD_MAX && !f; i++)
		if (fwds[i].used && fwds[i].at.conn_id == c->id && fwds[i].at.stream == h->stream)
			f = &fwds[i];
	if (!f)
		return -1;
	if (h->length && !(h->flags & TTRPC_FLAG_NO_DATA))
		rc = take(f, data, h->length);
	if (rc) {
		if (rc > 0)
			rpc_pending_error(&f->at, rc, "port %u: a PortData that %s", f->port,
			                  rc == RPC_INVALID_ARGUMENT ? "does not decode"
			                                             : "overruns its window");
		fwd_free(f, 1);
		return 0;
	}
	if (h->flags & TTRPC_FLAG_REMOTE_CLOSED)
		f->remote_eof = 1;
	if (f->connected && deliver(f) < 0) {
		broke(f);
		return 0;
	}
	settle(f);
	return 0;
}
