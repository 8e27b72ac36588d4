#include "proxy/taskproxy_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "google/rpc/status.pb-c.h"
#include "proxy/bundle.h"
#include "proxy/rootdisk.h"
#include "proxy/task_gone.h"
#include "rpc/agent.h"
#include "rpc/ttrpc_client.h"
#include "task.pb-c.h"
#include "ttrpc.pb-c.h"

/* A client holding more unread output than this is dropped (streams are credit-bounded, so
 * only a client that stopped reading gets here). */
#define CLIENT_MAX_PENDING (8u << 20)
#define MAX_STREAMS_PER_CONN 4096

struct tp_ctr {
	char id[ID_MAX + 1];
	struct tp_ctr *next;
};

static int ctr_known(const char *id, void *arg)
{
	const struct taskproxy *tp = arg;

	for (const struct tp_ctr *k = tp->ctrs; k; k = k->next)
		if (!strcmp(k->id, id))
			return 1;
	return 0;
}

static void ctr_add(struct taskproxy *tp, const char *id)
{
	struct tp_ctr *k;

	if (ctr_known(id, tp) || !(k = calloc(1, sizeof(*k))))
		return;
	snprintf(k->id, sizeof(k->id), "%s", id);
	k->next = tp->ctrs;
	tp->ctrs = k;
	tp->n_ctrs++;
}

static void ctr_del(struct taskproxy *tp, const char *id)
{
	for (struct tp_ctr **pp = &tp->ctrs; *pp; pp = &(*pp)->next) {
		if (!strcmp((*pp)->id, id)) {
			struct tp_ctr *k = *pp;
			struct tp_tomb *t = &tp->tombs[tp->next_tomb++ % TP_TOMBS];

			snprintf(t->id, sizeof(t->id), "%s", id);
			t->ns = mono_ns();
			*pp = k->next;
			free(k);
			tp->n_ctrs--;
			return;
		}
	}
}

/* A Create of id in flight: the guest may speak of the container before it answers. */
static int create_in_flight(const struct taskproxy *tp, const char *id)
{
	for (const struct tp_conn *c = tp->conns; c; c = c->next)
		for (const struct tp_stream *s = c->streams; s; s = s->next)
			if (!strcmp(s->undo, id))
				return 1;
	return 0;
}

int taskproxy_owns(const char *id, void *arg)
{
	const struct taskproxy *tp = arg;
	int64_t now = mono_ns();

	if (!id[0])
		return 0;
	if (ctr_known(id, arg) || create_in_flight(tp, id))
		return 1;
	for (unsigned i = 0; i < TP_TOMBS; i++)
		if (!strcmp(tp->tombs[i].id, id) && now - tp->tombs[i].ns < TP_TOMB_NS)
			return 1;
	return 0;
}

static const char *const task_services[] = { "containerd.task.v3.Task", "containerd.task.v2.Task" };

int tp_is_task_service(const char *s)
{
	return !strcmp(s, task_services[0]) || !strcmp(s, task_services[1]);
}

static void conn_close(struct tp_conn *c);

static void client_send(struct tp_conn *c, const struct ttrpc_header *h, const uint8_t *data)
{
	uint8_t hdr[TTRPC_HEADER_LEN];

	if (c->dead)
		return;
	ttrpc_header_encode(hdr, h);
	if (buf_append(&c->out, hdr, sizeof(hdr)) < 0 ||
	    (h->length && buf_append(&c->out, data, h->length) < 0) ||
	    buf_pending(&c->out) > CLIENT_MAX_PENDING) {
		c->dead = 1;
		return;
	}
	if (buf_flush(&c->out, c->w.fd) < 0) {
		c->dead = 1;
		return;
	}
	loop_mod(c->tp->loop, &c->w, EPOLLIN | (buf_pending(&c->out) ? EPOLLOUT : 0));
}

void tp_client_error(struct tp_conn *c, uint32_t sid, int code, const char *fmt, ...)
{
	Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
	Ttrpc__Response r = TTRPC__RESPONSE__INIT;
	char msg[1024];
	uint8_t buf[1200];
	struct ttrpc_header h = { 0, sid, TTRPC_RESPONSE, 0 };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	st.code = code;
	st.message = msg;
	r.status = &st;
	h.length = (uint32_t)ttrpc__response__pack(&r, buf);
	client_send(c, &h, buf);
}

/* Answers a client stream with an OK response carrying payload. */
static void client_reply(struct tp_conn *c, uint32_t sid, const uint8_t *payload, size_t len)
{
	Ttrpc__Response r = TTRPC__RESPONSE__INIT;
	struct ttrpc_header h = { 0, sid, TTRPC_RESPONSE, 0 };
	uint8_t *buf;

	r.payload.data = (uint8_t *)payload;
	r.payload.len = len;
	h.length = (uint32_t)ttrpc__response__get_packed_size(&r);
	buf = malloc(h.length ? h.length : 1);
	if (!buf) {
		c->dead = 1;
		return;
	}
	ttrpc__response__pack(&r, buf);
	client_send(c, &h, buf);
	free(buf);
}

static void gone_setup(const struct taskproxy *tp, struct task_gone *g)
{
	g->exited_ns = tp->gone_ns;
	g->shim_pid = (uint32_t)getpid();
	g->known = ctr_known;
	g->arg = (void *)tp;
}

static void answer_gone(struct tp_conn *c, uint32_t sid, const struct task_gone_answer *a)
{
	if (a->code)
		tp_client_error(c, sid, a->code, "%s", a->msg);
	else
		client_reply(c, sid, a->payload, a->len);
}

/* A request after the VM went: answered here, the guest is gone. */
static void on_request_gone(struct tp_conn *c, uint32_t sid, const Ttrpc__Request *req)
{
	struct taskproxy *tp = c->tp;
	struct task_gone_answer a;
	struct task_gone g;

	if (!tp_is_task_service(req->service)) {
		tp_client_error(c, sid, RPC_UNAVAILABLE, "%s: the sandbox's VM has exited",
		                req->service);
		return;
	}
	gone_setup(tp, &g);
	task_gone_answer(&g, req->method, req->payload.data, req->payload.len, &a);
	answer_gone(c, sid, &a);
	free(a.payload);
	if (a.deleted[0]) {
		ctr_del(tp, a.deleted);
		if (!tp->n_ctrs && tp->on_idle)
			tp->on_idle(tp, tp->arg);
	}
}

struct tp_stream *tp_stream_find(struct tp_conn *c, uint32_t sid)
{
	for (struct tp_stream *s = c->streams; s; s = s->next)
		if (s->sid == sid)
			return s;
	return NULL;
}

/* A stream goes; a Create still waiting for its root disk was never seen by the guest, so
 * what it made goes too. */
static void stream_free(struct taskproxy *tp, struct tp_stream *s)
{
	loop_timer_cancel(tp->loop, &s->bound);
	free(s->key);
	free(s->ph);
	tp_disk_stream_free(tp, s);
	free(s);
}

void tp_stream_drop(struct tp_conn *c, struct tp_stream *s)
{
	for (struct tp_stream **pp = &c->streams; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			c->n_streams--;
			stream_free(c->tp, s);
			return;
		}
	}
}

void tp_stream_end(struct tp_conn *c, struct tp_stream *s)
{
	glink_close(c->tp->link, s->gid);
	tp_stream_drop(c, s);
}

void tp_conn_reap(struct tp_conn *c)
{
	if (c->dead)
		conn_close(c);
}

static int response_ok(const uint8_t *data, size_t len)
{
	Ttrpc__Response *r = ttrpc__response__unpack(NULL, len, data);
	int ok = r && (!r->status || r->status->code == 0);

	if (r)
		ttrpc__response__free_unpacked(r, NULL);
	return ok;
}

/* A guest frame for one of this client's streams. */
void tp_from_guest(void *owner, uintptr_t tag, const struct ttrpc_header *gh, const uint8_t *data)
{
	struct tp_conn *c = owner;
	struct tp_stream *s = tp_stream_find(c, (uint32_t)tag);
	struct ttrpc_header h = *gh;

	if (!s)
		return;
	log_context("a guest frame (type %u) for client stream %u", gh->type, s->sid);
	h.stream = s->sid;
	if (gh->type == TTRPC_RESPONSE) {
		/* Only Create and Delete answers are looked into, and those that may be given
		 * again for a late guest are kept; the rest pass through. */
		int ok = (s->cleanup[0] || s->undo[0] || s->kind == CALL_CACHED) &&
		         response_ok(data, gh->length);

		if (s->kind == CALL_CACHED && ok)
			answers_put(&c->tp->answers, s->method, s->key, s->key_len, data,
			            gh->length, mono_ns());
		if (s->cleanup[0] && ok) {
			bundle_remove(&c->tp->bundles, s->cleanup);
			tp_disk_release(c->tp, s->cleanup);
			ctr_del(c->tp, s->cleanup);
		}
		if (s->undo[0] && !ok) {
			bundle_remove(&c->tp->bundles, s->undo);
			tp_disk_release(c->tp, s->undo);
		} else if (s->undo[0]) {
			ctr_add(c->tp, s->undo);
		}
		if (s->ph) {
			phases_mark(s->ph, "guest");
			log_phases(s->ph, "container %s", s->ph_what);
		}
		tp_stream_drop(c, s);
	} else if (gh->type == TTRPC_DATA && (gh->flags & TTRPC_FLAG_REMOTE_CLOSED)) {
		s->guest_closed = 1;
		if (s->client_closed)
			tp_stream_end(c, s);
	}
	client_send(c, &h, data);
	if (c->dead)
		conn_close(c);
}

int tp_forward(struct tp_conn *c, struct tp_stream *s, uint8_t type, uint8_t flags,
               const uint8_t *data, uint32_t len)
{
	if (glink_send(c->tp->link, s->gid, type, flags, data, len) < 0) {
		tp_client_error(c, s->sid, RPC_UNAVAILABLE, "the sandbox's guest link is down");
		tp_stream_end(c, s);
		return -1;
	}
	return 0;
}

static void note_namespace(struct tp_conn *c, const Ttrpc__Request *req)
{
	for (size_t i = 0; i < req->n_metadata; i++) {
		const Ttrpc__KeyValue *kv = req->metadata[i];

		if (kv->key && kv->value && !strcmp(kv->key, "containerd-namespace-ttrpc") &&
		    strlen(kv->value) < sizeof(c->tp->ns) && strcmp(c->tp->ns, kv->value)) {
			snprintf(c->tp->ns, sizeof(c->tp->ns), "%s", kv->value);
			if (c->tp->on_ns)
				c->tp->on_ns(c->tp, c->tp->arg);
		}
	}
}

/* ---- bounds on guest calls (callbound.h) ---- */

static void late_warn(struct taskproxy *tp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void late_warn(struct taskproxy *tp, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	tp->late++;
	if (mono_ns() - tp->late_warn_ns < 10 * 1000000000LL)
		return;
	tp->late_warn_ns = mono_ns();
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warn("%s (%u late answers so far)", msg, tp->late);
}

/* The guest did not answer s in time: the proxy answers for it. */
static void bound_hit(struct loop_timer *t)
{
	struct tp_stream *s = container_of(t, struct tp_stream, bound);
	struct tp_conn *c = s->c;
	struct taskproxy *tp = c->tp;
	int ms = call_bound_ms(s->kind);
	const struct answer *a;

	if (s->kind == CALL_KILL && tp->on_stuck) {
		late_warn(tp, "the guest did not answer Kill in %d ms: stopping its VM", ms);
		tp->on_stuck(tp, "the guest did not answer Kill", tp->arg);
		return; /* answered when the VM is gone (taskproxy_vm_gone) */
	}
	a = s->kind == CALL_CACHED ? answers_get(&tp->answers, s->method, s->key, s->key_len)
	                           : NULL;
	if (a) {
		struct ttrpc_header h = { a->resp_len, s->sid, TTRPC_RESPONSE, 0 };

		late_warn(
		    tp, "the guest did not answer %s in %d ms: its last answer (%.1f s old) given",
		    s->method, ms, (double)(mono_ns() - a->ns) / 1e9);
		client_send(c, &h, a->resp);
	} else {
		late_warn(tp, "the guest did not answer %s in %d ms", s->method, ms);
		tp_client_error(c, s->sid, RPC_DEADLINE_EXCEEDED,
		                "%s: the guest did not answer in %d ms", s->method, ms);
	}
	tp_stream_end(c, s);
	tp_conn_reap(c);
}

static void bound_setup(struct tp_conn *c, struct tp_stream *s, const Ttrpc__Request *req)
{
	s->kind = call_kind(req->service, req->method, s->bidi);
	s->bound.fn = bound_hit;
	snprintf(s->method, sizeof(s->method), "%s", req->method);
	if (s->kind == CALL_CACHED && req->payload.len <= ANSWER_MAX_LEN) {
		s->key = malloc(req->payload.len ? req->payload.len : 1);
		if (s->key && req->payload.len)
			memcpy(s->key, req->payload.data, req->payload.len);
		s->key_len = s->key ? (uint32_t)req->payload.len : 0;
	}
	if (call_bound_ms(s->kind))
		loop_timer_arm(c->tp->loop, &s->bound, call_bound_ms(s->kind));
}

/* The request of a Request frame, or NULL with the client answered: stream ids must rise,
 * streams are bounded, the envelope must decode. */
static Ttrpc__Request *request_read(struct tp_conn *c, const struct ttrpc_header *h,
                                    const uint8_t *data)
{
	Ttrpc__Request *req;

	if (!(h->stream & 1) || h->stream <= c->last_sid) {
		tp_client_error(c, h->stream, RPC_INVALID_ARGUMENT,
		                "stream id %u: client stream ids must be odd and increasing",
		                h->stream);
		return NULL;
	}
	c->last_sid = h->stream;
	if (c->n_streams >= MAX_STREAMS_PER_CONN) {
		tp_client_error(c, h->stream, RPC_RESOURCE_EXHAUSTED, "more than %d open streams",
		                MAX_STREAMS_PER_CONN);
		return NULL;
	}
	req = ttrpc__request__unpack(NULL, h->length, data);
	if (!req || !req->service || !req->method) {
		if (req)
			ttrpc__request__free_unpacked(req, NULL);
		tp_client_error(c, h->stream, RPC_INVALID_ARGUMENT, "malformed ttrpc request");
		return NULL;
	}
	return req;
}

/* A stream for the request with a route to the guest; NULL with the client answered. */
static struct tp_stream *stream_open(struct tp_conn *c, const struct ttrpc_header *h,
                                     const Ttrpc__Request *req, const struct intercept *in)
{
	struct tp_stream *s = calloc(1, sizeof(*s));

	if (!s) {
		tp_client_error(c, h->stream, RPC_RESOURCE_EXHAUSTED, "out of memory");
		return NULL;
	}
	s->sid = h->stream;
	s->c = c;
	s->bidi = !!(h->flags & TTRPC_FLAG_REMOTE_OPEN);
	s->is_wait = tp_is_task_service(req->service) && !strcmp(req->method, "Wait");
	bound_setup(c, s, req);
	snprintf(s->cleanup, sizeof(s->cleanup), "%s", in->cleanup);
	snprintf(s->undo, sizeof(s->undo), "%s", in->created);
	s->gid = glink_open(c->tp->link, tp_from_guest, c, s->sid);
	s->next = c->streams;
	c->streams = s;
	c->n_streams++;
	if (!s->gid) {
		tp_client_error(c, s->sid, RPC_UNAVAILABLE, "the sandbox's guest link is down");
		tp_stream_drop(c, s);
		return NULL;
	}
	return s;
}

/* A call on the proxy's own service: handed over, never forwarded to the guest. */
static void own_call(struct tp_conn *c, uint32_t sid, const Ttrpc__Request *req)
{
	struct tp_call call = { c->serial, sid };

	if (!c->tp->on_own) {
		tp_client_error(c, sid, RPC_UNIMPLEMENTED, "%s is not served here", req->service);
		return;
	}
	c->tp->on_own(c->tp, &call, req->method, req->payload.data, req->payload.len,
	              c->tp->own_arg);
}

/* Create and Start of a container are timed: the host's part, then the guest's. */
static void time_call(struct tp_stream *s, const Ttrpc__Request *req, const char *created,
                      int64_t t0)
{
	Containerd__Task__V3__StartRequest *sr = NULL;

	if (!tp_is_task_service(req->service) || s->ph)
		return;
	if (created[0]) {
		fmt_msg(s->ph_what, sizeof(s->ph_what), "create %s", created);
	} else if (!strcmp(req->method, "Start") &&
	           (sr = containerd__task__v3__start_request__unpack(NULL, req->payload.len,
	                                                             req->payload.data))) {
		fmt_msg(s->ph_what, sizeof(s->ph_what), "start %s%s%s", sr->id,
		        sr->exec_id[0] ? " exec " : "", sr->exec_id);
		containerd__task__v3__start_request__free_unpacked(sr, NULL);
	} else {
		return;
	}
	if ((s->ph = malloc(sizeof(*s->ph)))) {
		phases_begin(s->ph, t0);
		phases_mark(s->ph, created[0] ? "bundle" : "proxy");
	}
}

/* A Request frame from the client: validate, tp_intercept, open a guest route, forward. */
static void on_request(struct tp_conn *c, const struct ttrpc_header *h, const uint8_t *data)
{
	int64_t t0 = mono_ns();
	struct intercept in = { 0 };
	Ttrpc__Request *req = request_read(c, h, data);
	struct tp_stream *s;
	int rc = 0;

	if (!req)
		return;
	log_context("%s/%s, client stream %u", req->service, req->method, h->stream);
	note_namespace(c, req);
	if (!strcmp(req->service, PROXY_SERVICE))
		own_call(c, h->stream, req);
	else if (c->tp->gone)
		on_request_gone(c, h->stream, req);
	else if (tp_intercept(c, h->stream, req, &in) == 0) {
		s = stream_open(c, h, req, &in);
		if (!s) {
			rc = -1;
		} else {
			time_call(s, req, in.created, t0);
			if (!in.payload)
				tp_forward(c, s, TTRPC_REQUEST, h->flags, data, h->length);
			else
				rc = tp_forward_rewritten(c, s, req, h->flags, &in);
		}
	}
	/* A Create the guest never saw: its bundle and root disk go. */
	if (rc < 0 && in.created[0]) {
		bundle_remove(&c->tp->bundles, in.created);
		tp_disk_release(c->tp, in.created);
	}
	free(in.payload);
	ttrpc__request__free_unpacked(req, NULL);
}

static void on_frame(struct tp_conn *c, const struct ttrpc_header *h, const uint8_t *data)
{
	struct tp_stream *s;

	switch (h->type) {
	case TTRPC_REQUEST: on_request(c, h, data); break;
	case TTRPC_DATA:
		s = tp_stream_find(c, h->stream);
		if (!s || tp_forward(c, s, TTRPC_DATA, h->flags, data, h->length) < 0)
			break;
		if (h->flags & TTRPC_FLAG_REMOTE_CLOSED) {
			s->client_closed = 1;
			if (s->guest_closed) {
				tp_stream_end(c, s);
			}
		}
		break;
	default: break; /* responses are the server's to send */
	}
}

/* Frames from the client; an oversized one is skipped and answered. */
static void parse(struct tp_conn *c)
{
	while (!c->dead) {
		struct ttrpc_header h;
		const uint8_t *data;

		switch (ttrpc_reader_next(&c->rd, &h, &data)) {
		case TTRPC_NEED_MORE: return;
		case TTRPC_OVERSIZED:
			tp_client_error(c, h.stream, RPC_RESOURCE_EXHAUSTED,
			                "frame of %u bytes is over the %u byte limit", h.length,
			                TTRPC_MAX_DATA);
			break;
		case TTRPC_FRAME: on_frame(c, &h, data ? data : (const uint8_t *)""); break;
		}
	}
}

static void conn_event(struct loop_watch *w, uint32_t events)
{
	struct tp_conn *c = container_of(w, struct tp_conn, w);

	if ((events & EPOLLOUT) && buf_flush(&c->out, w->fd) < 0)
		c->dead = 1;
	if (!c->dead && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
		ssize_t n = ttrpc_reader_fill(&c->rd, w->fd);

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			c->dead = 1;
		else if (n > 0)
			parse(c);
	}
	if (c->dead) {
		conn_close(c);
		return;
	}
	loop_mod(c->tp->loop, w, EPOLLIN | (buf_pending(&c->out) ? EPOLLOUT : 0));
}

/* The client left: its open streams end on the guest side too (stdin sees EOF). */
static void conn_close(struct tp_conn *c)
{
	struct taskproxy *tp = c->tp;
	struct tp_stream *s;

	log_context("closing a task connection with %u streams", c->n_streams);
	for (struct tp_conn **pp = &tp->conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	tp->n_conns--;
	/* Every open stream is closed toward the guest: a stdio stream sees EOF, and a unary
	 * call it holds open (a Wait) is forgotten there instead of piling up. */
	while ((s = c->streams)) {
		glink_send(tp->link, s->gid, TTRPC_DATA,
		           TTRPC_FLAG_REMOTE_CLOSED | TTRPC_FLAG_NO_DATA, NULL, 0);
		c->streams = s->next;
		stream_free(tp, s);
	}
	glink_close_owner(tp->link, c);
	loop_del(tp->loop, &c->w);
	close(c->w.fd);
	buf_free(&c->out);
	ttrpc_reader_free(&c->rd);
	free(c);
}

static void accept_event(struct loop_watch *w, uint32_t events)
{
	struct taskproxy *tp = container_of(w, struct taskproxy, listen);
	struct tp_conn *c =
	    loop_accept(tp->loop, w->fd, sizeof(*c), offsetof(struct tp_conn, w), conn_event);

	if (!c)
		return;
	c->tp = tp;
	c->serial = ++tp->next_serial;
	c->next = tp->conns;
	tp->conns = c;
	tp->n_conns++;
}

void taskproxy_answer(struct taskproxy *tp, const struct tp_call *call, int code,
                      const uint8_t *payload, size_t len, const char *message)
{
	for (struct tp_conn *c = tp->conns; c; c = c->next) {
		if (c->serial != call->conn || c->dead)
			continue;
		if (code)
			tp_client_error(c, call->sid, code, "%s", message);
		else
			client_reply(c, call->sid, payload, len);
		return;
	}
}

int taskproxy_start(struct taskproxy *tp, struct loop *loop, struct glink *link, const char *path,
                    const char *shared, kerr_t *err)
{
	int fd;

	tp->loop = loop;
	tp->link = link;
	snprintf(tp->path, sizeof(tp->path), "%s", path);
	tp->listen.fd = -1;
	if (tp->disks) {
		tp->disks->on_plugged = tp_disk_on_plugged;
		tp->disks->arg = tp;
	}
	if (bundles_open(&tp->bundles, shared, err) < 0)
		return -1;
	fd = unix_listen(path, err);
	if (fd < 0)
		return kerr_wrap(err, "task socket");
	tp->listen.fd = fd;
	tp->listen.fn = accept_event;
	if (loop_add(loop, &tp->listen, EPOLLIN, err) < 0) {
		close(fd);
		tp->listen.fd = -1;
		return -1;
	}
	return 0;
}

void taskproxy_stop(struct taskproxy *tp)
{
	while (tp->conns)
		conn_close(tp->conns);
	while (tp->ctrs)
		ctr_del(tp, tp->ctrs->id);
	if (tp->disks)
		rootdisks_release(tp->disks);
	bundles_close(&tp->bundles);
	answers_free(&tp->answers);
	if (tp->listen.fd >= 0) {
		loop_del(tp->loop, &tp->listen);
		close(tp->listen.fd);
		tp->listen.fd = -1;
		unlink(tp->path);
	}
}

void taskproxy_link_down(struct taskproxy *tp)
{
	for (struct tp_conn *c = tp->conns; c; c = c->next) {
		struct tp_stream *s;

		while ((s = c->streams)) {
			tp_client_error(c, s->sid, RPC_UNAVAILABLE,
			                "the sandbox's guest link was lost");
			c->streams = s->next;
			c->n_streams--;
			stream_free(tp, s);
		}
		/* A connection that died here is closed by its own event handler: this may run
		 * inside a call on that very connection. */
	}
	/* Their unmount answers went with the link: the disks leave the VM anyway. */
	if (tp->disks)
		rootdisks_unplug_released(tp->disks);
}

void taskproxy_vm_gone(struct taskproxy *tp)
{
	struct task_gone_answer wait;
	struct task_gone g;

	if (tp->gone)
		return;
	tp->gone = 1;
	tp->gone_ns = real_ns();
	gone_setup(tp, &g);
	task_gone_wait(&g, &wait);
	for (struct tp_conn *c = tp->conns; c; c = c->next) {
		struct tp_stream *s;

		while ((s = c->streams)) {
			if (s->is_wait)
				answer_gone(c, s->sid, &wait);
			else if (s->kind == CALL_KILL) /* its process is gone with the VM */
				client_reply(c, s->sid, NULL, 0);
			else
				tp_client_error(c, s->sid, RPC_UNAVAILABLE,
				                "the sandbox's VM has exited");
			c->streams = s->next;
			c->n_streams--;
			stream_free(tp, s);
		}
		glink_close_owner(tp->link, c);
	}
	if (tp->disks)
		rootdisks_release(tp->disks);
	free(wait.payload);
	if (!tp->n_ctrs && tp->on_idle)
		tp->on_idle(tp, tp->arg);
}
