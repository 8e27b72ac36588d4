#include "proxy/portfwd.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "rpc/agent.h"
#include "sandbox.pb-c.h"

/* Each side assumes PF_WINDOW_BASE of the other at the start and grants the rest of its
 * own window in its first frame: a guest of an older build (64 KiB) keeps to its own. */
#define PF_WINDOW_BASE (64u << 10)
#define PF_WINDOW (256u << 10)
#define PF_CHUNK (32u << 10)

struct pf_conn {
	struct loop_watch w; /* the client's connection */
	struct portfwd *pf;
	uint32_t gid; /* its guest stream, 0 once that is over */
	unsigned port;
	struct buf out; /* from the guest, not yet written to the client */
	int64_t credit; /* bytes the guest still takes */
	uint32_t taken; /* written to the client since our last grant */
	int polled;     /* in the epoll set */
	int client_eof; /* the client half-closed; our close frame went */
	int guest_eof;  /* the guest half-closed; we shut our side once out is drained */
	struct pf_conn *next;
};

static int send_data(struct pf_conn *c, const uint8_t *p, size_t n, uint32_t window, int reset)
{
	static uint8_t frame[PF_CHUNK + 32];
	Kuasar__Sandbox__V1__PortData d = KUASAR__SANDBOX__V1__PORT_DATA__INIT;
	uint8_t flags = reset ? TTRPC_FLAG_REMOTE_CLOSED : 0;

	d.data.data = (uint8_t *)p;
	d.data.len = n;
	d.window = window;
	d.reset = reset;
	n = kuasar__sandbox__v1__port_data__pack(&d, frame);
	return glink_send(c->pf->link, c->gid, TTRPC_DATA, flags, frame, (uint32_t)n);
}

static void conn_free(struct pf_conn *c, int reset)
{
	struct portfwd *pf = c->pf;

	if (c->gid && reset)
		send_data(c, NULL, 0, 0, 1);
	if (c->gid)
		glink_close(pf->link, c->gid);
	if (c->polled)
		loop_del(pf->loop, &c->w);
	if (reset) { /* the client sees a reset, as from a connection that broke */
		struct linger l = { 1, 0 };

		setsockopt(c->w.fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	}
	close(c->w.fd);
	buf_free(&c->out);
	for (struct pf_conn **pp = &pf->conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	pf->n--;
	free(c);
}

/* In the epoll set only while there is something to wait for: a socket's EPOLLHUP cannot be
 * masked, and a half-closed client would otherwise wake the loop for ever. */
static void watch(struct pf_conn *c)
{
	uint32_t ev =
	    (!c->client_eof && c->credit > 0 ? EPOLLIN : 0) | (buf_pending(&c->out) ? EPOLLOUT : 0);
	kerr_t e;

	if (ev && !c->polled)
		c->polled = loop_add(c->pf->loop, &c->w, ev, &e) == 0;
	else if (ev)
		loop_mod(c->pf->loop, &c->w, ev);
	else if (c->polled) {
		loop_del(c->pf->loop, &c->w);
		c->polled = 0;
	}
}

/* What the guest sent goes to the client; what the client took is granted back. Returns -1
 * when the client's side broke. Ends the connection once both sides are done. */
static int to_client(struct pf_conn *c)
{
	size_t before = buf_pending(&c->out);

	if (buf_flush(&c->out, c->w.fd) < 0)
		return -1;
	c->taken += (uint32_t)(before - buf_pending(&c->out));
	if (c->taken && c->gid && !c->guest_eof) {
		if (send_data(c, NULL, 0, c->taken, 0) < 0)
			return -1;
		c->taken = 0;
	}
	if (c->guest_eof && !buf_pending(&c->out))
		shutdown(c->w.fd, SHUT_WR);
	return 0;
}

/* The client's bytes, within the guest's window, to the guest. */
static int from_client(struct pf_conn *c)
{
	static uint8_t chunk[PF_CHUNK];
	size_t want = c->credit < (int64_t)PF_CHUNK ? (size_t)c->credit : PF_CHUNK;
	ssize_t n;

	if (c->client_eof || !want)
		return 0;
	n = read(c->w.fd, chunk, want);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	if (n == 0) {
		c->client_eof = 1;
		return glink_send(c->pf->link, c->gid, TTRPC_DATA,
		                  TTRPC_FLAG_REMOTE_CLOSED | TTRPC_FLAG_NO_DATA, NULL, 0);
	}
	c->credit -= n;
	return send_data(c, chunk, (size_t)n, 0, 0);
}

static void settle(struct pf_conn *c)
{
	if (c->client_eof && c->guest_eof && !buf_pending(&c->out)) {
		conn_free(c, 0);
		return;
	}
	watch(c);
}

static void on_client(struct loop_watch *w, uint32_t events)
{
	struct pf_conn *c = container_of(w, struct pf_conn, w);

	if ((events & EPOLLOUT) && to_client(c) < 0) {
		conn_free(c, 1);
		return;
	}
	if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && from_client(c) < 0) {
		conn_free(c, 1);
		return;
	}
	settle(c);
}

/* A PortData from the guest: its bytes for the client, the window it grants, or its reset. */
static int from_guest(struct pf_conn *c, const uint8_t *data, uint32_t len)
{
	Kuasar__Sandbox__V1__PortData *d = kuasar__sandbox__v1__port_data__unpack(NULL, len, data);
	int rc = 0;

	if (!d)
		return -1;
	if (d->reset || buf_pending(&c->out) + d->data.len > PF_WINDOW) /* or past its window */
		rc = -1;
	else if (d->data.len && buf_append(&c->out, d->data.data, d->data.len) < 0)
		rc = -1;
	else
		c->credit += d->window;
	kuasar__sandbox__v1__port_data__free_unpacked(d, NULL);
	return rc;
}

static void on_guest(void *owner, uintptr_t tag, const struct ttrpc_header *h, const uint8_t *data)
{
	struct pf_conn *c = owner;

	(void)tag;
	if (h->type == TTRPC_RESPONSE) { /* an error ends the stream: the port is closed */
		c->gid = 0;              /* glink has closed the route */
		log_debug("port-forward to %u: the guest ended the stream", c->port);
		conn_free(c, 1);
		return;
	}
	if (h->type != TTRPC_DATA)
		return;
	if (data && h->length && !(h->flags & TTRPC_FLAG_NO_DATA) &&
	    from_guest(c, data, h->length) < 0) {
		conn_free(c, 1);
		return;
	}
	if (h->flags & TTRPC_FLAG_REMOTE_CLOSED)
		c->guest_eof = 1;
	if (to_client(c) < 0) {
		conn_free(c, 1);
		return;
	}
	settle(c);
}

static int open_stream(struct pf_conn *c)
{
	Kuasar__Sandbox__V1__PortForwardRequest req =
	    KUASAR__SANDBOX__V1__PORT_FORWARD_REQUEST__INIT;
	uint8_t buf[16];
	size_t n;

	req.port = c->port;
	n = kuasar__sandbox__v1__port_forward_request__pack(&req, buf);
	c->gid = glink_open(c->pf->link, on_guest, c, 0);
	if (!c->gid || glink_request(c->pf->link, c->gid, TTRPC_FLAG_REMOTE_OPEN,
	                             AGENT_SANDBOX_SERVICE, "PortForward", buf, n) < 0)
		return -1;
	return send_data(c, NULL, 0, PF_WINDOW - PF_WINDOW_BASE, 0);
}

static void on_accept(struct loop_watch *w, uint32_t events)
{
	struct portfwd *pf = container_of(w, struct portfwd, lw);
	struct pf_conn *c;

	(void)events;
	c = loop_accept(pf->loop, w->fd, sizeof(*c), offsetof(struct pf_conn, w), on_client);
	if (!c)
		return;
	c->pf = pf;
	c->polled = 1;
	c->credit = PF_WINDOW_BASE;
	c->port = sklookup_port(c->w.fd);
	c->next = pf->conns;
	pf->conns = c;
	pf->n++;
	if (pf->n > PORTFWD_MAX_CONNS || !c->port || open_stream(c) < 0) {
		log_warn("port-forward to %u refused: %s", c->port,
		         pf->n > PORTFWD_MAX_CONNS ? "too many at once" : "the guest link is down");
		conn_free(c, 1);
		return;
	}
	log_debug("port-forward to %u: connected", c->port);
}

int portfwd_start(struct portfwd *pf, struct loop *loop, struct glink *link, const char *netns,
                  kerr_t *err)
{
	pf->loop = loop;
	pf->link = link;
	pf->conns = NULL;
	pf->n = 0;
	if (sklookup_start(&pf->sk, netns, err) < 0)
		return -1;
	pf->lw.fd = pf->sk.listen_fd;
	pf->lw.fn = on_accept;
	if (loop_add(loop, &pf->lw, EPOLLIN, err) < 0) {
		sklookup_stop(&pf->sk);
		return -1;
	}
	return 0;
}

static void reset_all(struct portfwd *pf, int link_up)
{
	while (pf->conns) {
		if (!link_up)
			pf->conns->gid = 0;
		conn_free(pf->conns, 1);
	}
}

void portfwd_link_down(struct portfwd *pf)
{
	reset_all(pf, 0);
}

void portfwd_stop(struct portfwd *pf)
{
	if (!pf->loop)
		return;
	reset_all(pf, 1);
	loop_del(pf->loop, &pf->lw);
	sklookup_stop(&pf->sk);
	pf->loop = NULL;
}
