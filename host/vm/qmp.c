#include "vm/qmp.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"

#define GREETING_ID 0 /* the greeting answers no command: it completes this pseudo one */

struct qmp_cmd {
	uint64_t id;
	char name[40];
	int64_t deadline_ns;
	qmp_done_fn fn;
	void *arg;
	struct qmp_cmd *next;
};

/* ---- commands in flight ---- */

static void rearm(struct qmp *q)
{
	int64_t due = 0;

	if (!q->loop)
		return;
	for (struct qmp_cmd *c = q->cmds; c; c = c->next)
		if (!due || c->deadline_ns < due)
			due = c->deadline_ns;
	if (due)
		loop_timer_arm(q->loop, &q->timer, ms_until(due));
	else
		loop_timer_cancel(q->loop, &q->timer);
}

static struct qmp_cmd *take(struct qmp *q, uint64_t id)
{
	for (struct qmp_cmd **pp = &q->cmds; *pp; pp = &(*pp)->next) {
		struct qmp_cmd *c = *pp;

		if (c->id == id) {
			*pp = c->next;
			q->n_cmds--;
			return c;
		}
	}
	return NULL;
}

/* c is out of the list: its callback runs once, then it goes. */
static void complete(struct qmp *q, struct qmp_cmd *c, struct qmp_reply *r)
{
	rearm(q);
	c->fn(c->arg, r);
	free(c);
}

static void fail(struct qmp *q, struct qmp_cmd *c, int errnum, const char *why)
{
	struct qmp_reply r = { .class = "" };

	kerr_set(&r.err, errnum, "QMP %s: %s", c->name, why);
	complete(q, c, &r);
}

static void fail_all(struct qmp *q, int errnum, const char *why)
{
	struct qmp_cmd *c;

	while ((c = q->cmds)) {
		q->cmds = c->next;
		q->n_cmds--;
		fail(q, c, errnum, why);
	}
}

/* The commands past their deadline end with ETIMEDOUT; a late answer is dropped. */
static void expire(struct qmp *q)
{
	int64_t now = mono_ns();
	struct qmp_cmd *c;

	do {
		for (c = q->cmds; c && c->deadline_ns > now; c = c->next)
			;
		if (c) {
			take(q, c->id);
			fail(q, c, ETIMEDOUT, "QEMU did not answer in time");
		}
	} while (c);
}

static void on_timer(struct loop_timer *t)
{
	expire(container_of(t, struct qmp, timer));
}

/* ---- the connection ---- */

/* The connection is unusable from now on. */
static void broken(struct qmp *q, int errnum, const char *why)
{
	if (q->fd >= 0) {
		if (q->loop)
			loop_del(q->loop, &q->w);
		close(q->fd);
		q->fd = -1;
	}
	buf_free(&q->out);
	fail_all(q, errnum, why);
	if (q->loop)
		loop_timer_cancel(q->loop, &q->timer);
}

static void answer(struct qmp *q, json_object *o, uint64_t id)
{
	struct qmp_cmd *c = take(q, id);
	struct qmp_reply r = { .ok = 1, .class = "" };
	json_object *e, *v;

	if (!c) {
		log_debug("QMP: an answer to command %llu, which is no longer awaited",
		          (unsigned long long)id);
		return;
	}
	if (!json_object_object_get_ex(o, "return", &r.ret) &&
	    json_object_object_get_ex(o, "error", &e)) {
		r.ok = 0;
		r.class = json_object_object_get_ex(e, "class", &v) ? json_object_get_string(v)
		                                                    : "GenericError";
		json_object_object_get_ex(e, "desc", &v);
		kerr_set(&r.err, EIO, "QMP %s failed: %s", c->name,
		         v ? json_object_get_string(v) : "(no description)");
	}
	complete(q, c, &r);
}

static void dispatch(struct qmp *q, json_object *o)
{
	json_object *v, *data = NULL;

	if (json_object_object_get_ex(o, "event", &v)) {
		json_object_object_get_ex(o, "data", &data);
		if (q->on_event)
			q->on_event(q->event_arg, json_object_get_string(v), data);
	} else if (json_object_object_get_ex(o, "QMP", &v)) {
		answer(q, o, GREETING_ID);
	} else if (json_object_object_get_ex(o, "id", &v) &&
	           json_object_is_type(v, json_type_int)) {
		answer(q, o, (uint64_t)json_object_get_int64(v));
	} else {
		log_debug("QMP: a message that is neither an answer nor an event: skipped");
	}
}

/* The next whole line in the buffer, dispatched: 1, or 0 when there is none, or -1 when the
 * connection broke. */
static int one_line(struct qmp *q)
{
	char *nl = q->fd >= 0 ? memchr(q->buf, '\n', q->have) : NULL;
	json_object *o;

	if (!nl) {
		if (q->fd >= 0 && q->have == sizeof(q->buf))
			broken(q, EPROTO, "a QMP line over 64 KiB");
		return q->fd >= 0 ? 0 : -1;
	}
	*nl = '\0';
	o = json_tokener_parse(q->buf);
	q->have -= (size_t)(nl + 1 - q->buf);
	memmove(q->buf, nl + 1, q->have);
	if (!o || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		broken(q, EPROTO, "QEMU sent malformed JSON");
		return -1;
	}
	dispatch(q, o);
	json_object_put(o);
	return 1;
}

/* What the socket has, read (0), or the connection broke (-1). */
static int read_in(struct qmp *q)
{
	ssize_t n;

	do
		n = read(q->fd, q->buf + q->have, sizeof(q->buf) - q->have);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return 0;
	if (n <= 0) {
		broken(q, ECONNRESET, n ? strerror(errno) : "QEMU closed the connection");
		return -1;
	}
	q->have += (size_t)n;
	return 0;
}

static int flush_out(struct qmp *q)
{
	while (buf_pending(&q->out)) {
		ssize_t n = send(q->fd, q->out.p + q->out.off, buf_pending(&q->out), MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) {
			broken(q, ECONNRESET, strerror(errno));
			return -1;
		}
		q->out.off += (size_t)n;
	}
	if (q->loop)
		loop_mod(q->loop, &q->w, EPOLLIN | (buf_pending(&q->out) ? EPOLLOUT : 0));
	return 0;
}

static void on_ready(struct loop_watch *w, uint32_t events)
{
	struct qmp *q = container_of(w, struct qmp, w);

	if ((events & EPOLLOUT) && flush_out(q) < 0)
		return;
	if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && read_in(q) == 0)
		while (one_line(q) > 0)
			;
}

int qmp_attach(struct qmp *q, struct loop *loop, kerr_t *err)
{
	q->w.fd = q->fd;
	q->w.fn = on_ready;
	q->timer.fn = on_timer;
	if (loop_add(loop, &q->w, EPOLLIN | (buf_pending(&q->out) ? EPOLLOUT : 0), err) < 0)
		return -1;
	q->loop = loop;
	rearm(q);
	while (one_line(q) > 0) /* what came after the last awaited answer */
		;
	return 0;
}

int qmp_lend(struct qmp *q, kerr_t *err)
{
	if (q->fd < 0)
		return kerr_set(err, ECONNRESET, "QMP: the connection is closed");
	if (q->n_cmds || buf_pending(&q->out))
		return kerr_set(err, EBUSY, "QMP: %u commands in flight", q->n_cmds);
	if (q->loop) {
		loop_del(q->loop, &q->w);
		loop_timer_cancel(q->loop, &q->timer);
	}
	q->loop = NULL;
	q->lent = 1;
	return 0;
}

int qmp_take_back(struct qmp *q, struct loop *loop, kerr_t *err)
{
	q->lent = 0;
	q->have = 0; /* the child read on from there */
	return qmp_attach(q, loop, err);
}

void qmp_close(struct qmp *q)
{
	broken(q, ECANCELED, "the connection was closed");
	q->have = 0;
	q->loop = NULL;
}

/* ---- sending ---- */

/* The line goes out now or is kept; fd rides on its first byte (SCM_RIGHTS), which needs an
 * empty queue. */
static int send_line(struct qmp *q, const char *line, int fd, kerr_t *err)
{
	char ctl[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = (void *)line, .iov_len = strlen(line) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n = 0;

	if (fd >= 0) {
		struct cmsghdr *cm;

		if (buf_pending(&q->out))
			return kerr_set(err, EAGAIN, "QMP: an fd cannot follow unsent commands");
		mh.msg_control = ctl;
		mh.msg_controllen = sizeof(ctl);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
		do
			n = sendmsg(q->fd, &mh, MSG_NOSIGNAL);
		while (n < 0 && errno == EINTR);
		if (n < 0)
			return kerr_sys(err, "QMP: send an fd");
	}
	if (buf_append(&q->out, line + n, iov.iov_len - (size_t)n) < 0)
		return kerr_set(err, ENOMEM, "out of memory");
	return flush_out(q) < 0 ? kerr_set(err, ECONNRESET, "QMP: the connection broke") : 0;
}

static int queue(struct qmp *q, const char *cmd, json_object *args, int fd, int64_t deadline_ns,
                 qmp_done_fn fn, void *arg, kerr_t *err)
{
	json_object *o = json_object_new_object();
	struct qmp_cmd *c = NULL;
	char *line = NULL;
	int rc = -1;

	json_object_object_add(o, "execute", json_object_new_string(cmd));
	if (args)
		json_object_object_add(o, "arguments", args);
	json_object_object_add(o, "id", json_object_new_int64((int64_t)q->seq + 1));
	if (q->fd < 0)
		kerr_set(err, ECONNRESET, "QMP %s: the connection is closed", cmd);
	else if (q->lent)
		kerr_set(err, EBUSY, "QMP %s: the VM is being snapshotted", cmd);
	else if (q->n_cmds >= QMP_MAX_IN_FLIGHT)
		kerr_set(err, EBUSY, "QMP %s: %d commands in flight already", cmd, q->n_cmds);
	else if (!(c = calloc(1, sizeof(*c))) ||
	         asprintf(&line, "%s\n", json_object_to_json_string_ext(o, 0)) < 0)
		kerr_set(err, ENOMEM, "out of memory");
	else
		rc = send_line(q, line, fd, err);
	json_object_put(o);
	free(line);
	if (rc < 0) {
		free(c);
		return -1;
	}
	*c = (struct qmp_cmd){ .id = ++q->seq, .deadline_ns = deadline_ns, .fn = fn, .arg = arg };
	snprintf(c->name, sizeof(c->name), "%s", cmd);
	c->next = q->cmds;
	q->cmds = c;
	q->n_cmds++;
	rearm(q);
	return 0;
}

int qmp_send(struct qmp *q, const char *cmd, json_object *args, int timeout_ms, qmp_done_fn fn,
             void *arg, kerr_t *err)
{
	return queue(q, cmd, args, -1, mono_ns() + (int64_t)timeout_ms * 1000000, fn, arg, err);
}

/* ---- waiting in place ---- */

struct waiter {
	int done, ok;
	json_object *ret;
	kerr_t err;
};

static void waited(void *arg, struct qmp_reply *r)
{
	struct waiter *w = arg;

	w->done = 1;
	w->ok = r->ok;
	if (r->ok)
		w->ret = json_object_get(r->ret);
	else
		w->err = r->err;
}

/* Reads and dispatches until w is done, a line at a time (what follows its answer waits
 * for the next command); every command's deadline still holds. */
static void pump(struct qmp *q, struct waiter *w)
{
	while (!w->done) {
		if (one_line(q) != 0)
			continue;
		int64_t due = 0;
		struct pollfd p = { .fd = q->fd, .events = POLLIN };

		for (struct qmp_cmd *c = q->cmds; c; c = c->next)
			if (!due || c->deadline_ns < due)
				due = c->deadline_ns;
		if (buf_pending(&q->out))
			p.events |= POLLOUT;
		if (poll(&p, 1, due ? ms_until(due) : 0) <= 0) {
			expire(q);
			continue;
		}
		if ((p.revents & POLLOUT) && flush_out(q) < 0)
			continue;
		if (p.revents & (POLLIN | POLLHUP | POLLERR))
			read_in(q);
	}
}

static int wait_for(struct qmp *q, struct waiter *w, json_object **ret, kerr_t *err)
{
	pump(q, w);
	if (!w->ok) {
		*err = w->err;
		return -1;
	}
	if (ret)
		*ret = w->ret;
	else
		json_object_put(w->ret);
	return 0;
}

int qmp_call_fd(struct qmp *q, const char *cmd, json_object *args, int fd, json_object **ret,
                int64_t deadline_ns, kerr_t *err)
{
	struct waiter w = { 0 };

	if (queue(q, cmd, args, fd, deadline_ns, waited, &w, err) < 0)
		return -1;
	return wait_for(q, &w, ret, err);
}

int qmp_call(struct qmp *q, const char *cmd, json_object *args, json_object **ret,
             int64_t deadline_ns, kerr_t *err)
{
	return qmp_call_fd(q, cmd, args, -1, ret, deadline_ns, err);
}

int qmp_open(struct qmp *q, int fd, int64_t deadline_ns, kerr_t *err)
{
	struct qmp_cmd *greet = calloc(1, sizeof(*greet));
	struct waiter w = { 0 };

	*q = (struct qmp){ .fd = fd };
	if (!greet || fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
		free(greet);
		qmp_close(q);
		return kerr_set(err, ENOMEM, "QMP: set up the connection");
	}
	*greet = (struct qmp_cmd){
		.id = GREETING_ID, .deadline_ns = deadline_ns, .fn = waited, .arg = &w
	};
	snprintf(greet->name, sizeof(greet->name), "greeting");
	q->cmds = greet;
	q->n_cmds = 1;
	if (wait_for(q, &w, NULL, err) < 0 ||
	    qmp_call(q, "qmp_capabilities", NULL, NULL, deadline_ns, err) < 0) {
		qmp_close(q);
		return -1;
	}
	return 0;
}
