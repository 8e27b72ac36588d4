/* Task events from the guests to containerd's ttrpc event service
 * (containerd.services.events.ttrpc.v1.Events/Forward), over one connection opened when
 * the first event comes and re-opened after a failure. Answers are read and dropped;
 * nothing waits on them. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "host/events_ttrpc.pb-c.h"
#include "proxy/events_fwd.h"
#include "rpc/timestamp.h"
#include "rpc/ttrpc_client.h"

/* Events queued while containerd is slow; beyond this they are dropped (and counted). */
#define EVENTS_MAX_PENDING (4u << 20)
/* Drops are told at most this often. */
#define DROP_WARN_NS (10 * 1000000000LL)

struct events_fwd {
	struct loop *loop;
	struct loop_watch w;
	char path[108];
	struct buf out;
	uint32_t next_stream;
	unsigned dropped;
	int64_t warned_ns; /* the last warning of drops */
	int warned;
};

static void fwd_close(struct events_fwd *ev)
{
	if (ev->w.fd < 0)
		return;
	loop_del(ev->loop, &ev->w);
	close(ev->w.fd);
	ev->w.fd = -1;
	buf_free(&ev->out);
}

static void fwd_event(struct loop_watch *w, uint32_t events)
{
	struct events_fwd *ev = container_of(w, struct events_fwd, w);
	uint8_t buf[4096];

	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		ssize_t n = read(w->fd, buf, sizeof(buf));

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			fwd_close(ev);
			return;
		}
	}
	if ((events & EPOLLOUT) && buf_flush(&ev->out, w->fd) < 0) {
		fwd_close(ev);
		return;
	}
	loop_mod(ev->loop, w, EPOLLIN | (buf_pending(&ev->out) ? EPOLLOUT : 0));
}

struct events_fwd *events_fwd_new(struct loop *loop, const char *ttrpc_path)
{
	struct events_fwd *ev;

	if (!ttrpc_path || !ttrpc_path[0])
		return NULL;
	ev = calloc(1, sizeof(*ev));
	if (!ev)
		return NULL;
	ev->loop = loop;
	ev->w.fd = -1;
	ev->w.fn = fwd_event;
	snprintf(ev->path, sizeof(ev->path), "%s", ttrpc_path);
	return ev;
}

static int fwd_connect(struct events_fwd *ev)
{
	kerr_t err;
	int fd;

	if (ev->w.fd >= 0)
		return 0;
	fd = unix_connect(ev->path, &err);
	if (fd < 0) {
		if (!ev->warned++)
			log_warn("events: %s; task events are dropped until it answers", err.msg);
		return -1;
	}
	ev->warned = 0;
	/* Never a blocking write on the loop: a containerd that stops reading fills the
	 * queue, and past EVENTS_MAX_PENDING events are dropped. */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	ev->w.fd = fd;
	ev->next_stream = 1;
	if (loop_add(ev->loop, &ev->w, EPOLLIN, &err) < 0) {
		close(fd);
		ev->w.fd = -1;
		return -1;
	}
	return 0;
}

void events_fwd_publish(struct events_fwd *ev, const char *ns, const char *topic,
                        const char *type_url, const uint8_t *event, size_t len, int64_t ts_ns)
{
	Containerd__Services__Events__Ttrpc__V1__ForwardRequest req =
	    CONTAINERD__SERVICES__EVENTS__TTRPC__V1__FORWARD_REQUEST__INIT;
	Containerd__Services__Events__Ttrpc__V1__Envelope env =
	    CONTAINERD__SERVICES__EVENTS__TTRPC__V1__ENVELOPE__INIT;
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
	_cleanup_free_ uint8_t *payload = NULL, *frame = NULL;
	size_t n, flen;

	if (!ev)
		return;
	log_debug("event %s %s", ns, topic);
	if (fwd_connect(ev) < 0)
		return;
	ts_from_ns(&ts, ts_ns);
	any.type_url = (char *)type_url;
	any.value.data = (uint8_t *)event;
	any.value.len = len;
	env.timestamp = &ts;
	env.namespace_ = (char *)ns;
	env.topic = (char *)topic;
	env.event = &any;
	req.envelope = &env;
	n = containerd__services__events__ttrpc__v1__forward_request__get_packed_size(&req);
	payload = malloc(n ? n : 1);
	if (!payload)
		return;
	containerd__services__events__ttrpc__v1__forward_request__pack(&req, payload);
	if (ttrpc_encode_request(ev->next_stream, "containerd.services.events.ttrpc.v1.Events",
	                         "Forward", payload, n, &frame, &flen) < 0)
		return;
	ev->next_stream += 2;
	if (buf_pending(&ev->out) + flen > EVENTS_MAX_PENDING) {
		ev->dropped++;
		if (mono_ns() - ev->warned_ns >= DROP_WARN_NS) {
			log_warn("events: containerd is not reading; dropped %u events",
			         ev->dropped);
			ev->warned_ns = mono_ns();
		}
		return;
	}
	if (buf_append(&ev->out, frame, flen) < 0 || buf_flush(&ev->out, ev->w.fd) < 0) {
		fwd_close(ev);
		return;
	}
	loop_mod(ev->loop, &ev->w, EPOLLIN | (buf_pending(&ev->out) ? EPOLLOUT : 0));
}

void events_fwd_free(struct events_fwd *ev)
{
	if (!ev)
		return;
	fwd_close(ev);
	buf_free(&ev->out);
	free(ev);
}
