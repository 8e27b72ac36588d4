#include "proxy/glink.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "base/util.h"
#include "rpc/ttrpc_client.h"

/* What we queue for a guest that stops reading (requests, stdin within the credit the guest
 * granted): past this, sends fail and their callers answer UNAVAILABLE. What the guest
 * sends us is bounded by the frame limit (the reader holds one frame) and, per client, by
 * the task proxy's CLIENT_MAX_PENDING. */
#define GLINK_MAX_PENDING (32u << 20)

static void link_down(struct glink *l)
{
	struct glink_route *r;

	if (!l->up)
		return;
	l->up = 0;
	l->broken = 0;
	loop_del(l->loop, &l->w);
	close(l->w.fd);
	l->w.fd = -1;
	while ((r = l->routes)) {
		l->routes = r->next;
		free(r);
	}
	buf_free(&l->out);
	if (l->on_down)
		l->on_down(l, l->down_arg);
}

static struct glink_route *find(struct glink *l, uint32_t gid)
{
	for (struct glink_route *r = l->routes; r; r = r->next)
		if (r->gid == gid)
			return r;
	return NULL;
}

static void deliver(struct glink *l, const struct ttrpc_header *h, const uint8_t *data)
{
	struct glink_route *r = find(l, h->stream);
	glink_frame_fn fn;
	void *owner;
	uintptr_t tag;

	if (!r)
		return; /* its client left: drop */
	fn = r->fn;
	owner = r->owner;
	tag = r->tag;
	/* A Response ends the stream; free the route before the callback may open others. */
	if (h->type == TTRPC_RESPONSE)
		glink_close(l, h->stream);
	fn(owner, tag, h, data);
}

static void parse(struct glink *l)
{
	while (l->up) {
		struct ttrpc_header h;
		const uint8_t *data;

		switch (ttrpc_reader_next(&l->rd, &h, &data)) {
		case TTRPC_NEED_MORE: return;
		case TTRPC_OVERSIZED:
			/* The guest never sends these; a corrupt stream cannot be resynchronised.
			 */
			link_down(l);
			return;
		case TTRPC_FRAME: deliver(l, &h, data); break;
		}
	}
}

static void link_event(struct loop_watch *w, uint32_t events)
{
	struct glink *l = container_of(w, struct glink, w);

	if (l->broken) {
		link_down(l);
		return;
	}
	if (events & EPOLLOUT) {
		if (buf_flush(&l->out, w->fd) < 0) {
			link_down(l);
			return;
		}
		if (!buf_pending(&l->out))
			loop_mod(l->loop, w, EPOLLIN);
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		ssize_t n = ttrpc_reader_fill(&l->rd, w->fd);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			link_down(l);
			return;
		}
		parse(l);
	}
}

int glink_start(struct glink *l, struct loop *loop, int fd, kerr_t *err)
{
	l->loop = loop;
	l->w.fd = fd;
	l->w.fn = link_event;
	l->next_id = 1;
	l->broken = 0;
	ttrpc_reader_reset(&l->rd);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	if (loop_add(loop, &l->w, EPOLLIN, err) < 0)
		return -1;
	l->up = 1;
	return 0;
}

void glink_stop(struct glink *l)
{
	void (*fn)(struct glink *, void *) = l->on_down;

	l->on_down = NULL;
	link_down(l);
	l->on_down = fn;
	ttrpc_reader_free(&l->rd);
}

uint32_t glink_open(struct glink *l, glink_frame_fn fn, void *owner, uintptr_t tag)
{
	struct glink_route *r;

	if (!l->up || l->next_id > 0x7ffffffd)
		return 0;
	r = calloc(1, sizeof(*r));
	if (!r)
		return 0;
	r->gid = l->next_id;
	l->next_id += 2;
	r->fn = fn;
	r->owner = owner;
	r->tag = tag;
	r->next = l->routes;
	l->routes = r;
	return r->gid;
}

void glink_close(struct glink *l, uint32_t gid)
{
	for (struct glink_route **pp = &l->routes; *pp; pp = &(*pp)->next) {
		if ((*pp)->gid == gid) {
			struct glink_route *r = *pp;

			*pp = r->next;
			free(r);
			return;
		}
	}
}

void glink_close_owner(struct glink *l, void *owner)
{
	struct glink_route **pp = &l->routes;

	while (*pp) {
		if ((*pp)->owner == owner) {
			struct glink_route *r = *pp;

			*pp = r->next;
			free(r);
		} else {
			pp = &(*pp)->next;
		}
	}
}

int glink_send(struct glink *l, uint32_t gid, uint8_t type, uint8_t flags, const void *data,
               uint32_t len)
{
	struct ttrpc_header h = { len, gid, type, flags };
	uint8_t hdr[TTRPC_HEADER_LEN];

	if (!l->up || l->broken)
		return -1;
	if (buf_pending(&l->out) + len > GLINK_MAX_PENDING)
		return -1;
	ttrpc_header_encode(hdr, &h);
	if (buf_append(&l->out, hdr, sizeof(hdr)) < 0 ||
	    (len && buf_append(&l->out, data, len) < 0))
		return -1;
	if (buf_flush(&l->out, l->w.fd) < 0) {
		l->broken = 1;
		loop_mod(l->loop, &l->w, EPOLLIN | EPOLLOUT); /* a broken fd reports at once */
		return -1;
	}
	loop_mod(l->loop, &l->w, EPOLLIN | (buf_pending(&l->out) ? EPOLLOUT : 0));
	return 0;
}

int glink_request(struct glink *l, uint32_t gid, uint8_t flags, const char *service,
                  const char *method, const uint8_t *payload, size_t len)
{
	_cleanup_free_ uint8_t *frame = NULL;
	size_t n;

	if (ttrpc_encode_request(gid, service, method, payload, len, &frame, &n) < 0)
		return -1;
	return glink_send(l, gid, TTRPC_REQUEST, flags, frame + TTRPC_HEADER_LEN,
	                  (uint32_t)(n - TTRPC_HEADER_LEN));
}
