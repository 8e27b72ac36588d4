#include "runtime/events.h"

#include <errno.h>
#include <fcntl.h>
#include <pb_encode.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "core/ev.h"
#include "core/fmt.h"
#include "core/klog.h"
#include "core/sys.h"
#include "events.pb.h"
#include "sandbox.pb.h"

#define QUEUE 128
#define MAX_EVENT 640
#define MAX_OOM_WATCHES 64

struct queued {
	char topic[32];
	char type_url[48];
	uint8_t data[MAX_EVENT];
	uint16_t len;
	uint64_t ns;
};

static struct queued queue[QUEUE];
static unsigned head, count, dropped;
static struct rpc_pending subscriber;
static int subscribed;

static uint64_t now_ns(void)
{
	struct timespec ts;

	sys_clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Sends one event as a data frame on the subscriber's stream; -1 if it is gone. */
static int send_event(const struct queued *q, uint32_t lost)
{
	kuasar_sandbox_v1_Event ev = { 0 };
	struct bytes_view v = { q->data, q->len };

	kfmt(ev.topic, sizeof(ev.topic), "%s", q->topic);
	ev.has_event = true;
	kfmt(ev.event.type_url, sizeof(ev.event.type_url), "%s", q->type_url);
	ev.event.value.funcs.encode = rpc_view_encode;
	ev.event.value.arg = &v;
	ev.has_timestamp = true;
	ev.timestamp.seconds = (int64_t)(q->ns / 1000000000u);
	ev.timestamp.nanos = (int32_t)(q->ns % 1000000000u);
	ev.dropped = lost;
	return rpc_stream_send(&subscriber, TTRPC_DATA, 0, kuasar_sandbox_v1_Event_fields, &ev);
}

static void drain(void)
{
	while (subscribed && count) {
		if (send_event(&queue[head], dropped) < 0) {
			subscribed = 0; /* the subscriber went away: keep the rest queued */
			return;
		}
		dropped = 0;
		head = (head + 1) % QUEUE;
		count--;
	}
}

void events_publish(const char *topic, const char *type_url, const pb_msgdesc_t *fields,
                    const void *msg)
{
	struct queued *q;
	pb_ostream_t os;

	if (count == QUEUE) {
		head = (head + 1) % QUEUE;
		count--;
		dropped++;
	}
	q = &queue[(head + count) % QUEUE];
	os = pb_ostream_from_buffer(q->data, sizeof(q->data));
	if (!pb_encode(&os, fields, msg)) {
		warn("event %s: cannot encode", topic);
		return;
	}
	kfmt(q->topic, sizeof(q->topic), "%s", topic);
	kfmt(q->type_url, sizeof(q->type_url), "%s", type_url);
	q->len = (uint16_t)os.bytes_written;
	q->ns = now_ns();
	count++;
	debug("event %s", topic);
	drain();
}

void events_subscribe(const struct rpc_pending *sub)
{
	subscriber = *sub;
	subscribed = 1;
	drain();
}

/* --- OOM kills, from memory.events ----------------------------------------------------- */

struct oom_watch {
	int wd;
	char id[130];
	char path[300];
	uint64_t kills;
};

static struct oom_watch watches[MAX_OOM_WATCHES];
static struct watch inotify_w = { .fd = -1 };

static uint64_t oom_kills(const char *path)
{
	char buf[512];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	const char *p;

	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = str_find(buf, "oom_kill ");
	return p ? parse_u64(p + 9, NULL) : 0;
}

static void check_oom(struct oom_watch *w)
{
	uint64_t kills = oom_kills(w->path);

	if (kills > w->kills) {
		containerd_events_TaskOOM ev = { 0 };

		w->kills = kills;
		kfmt(ev.container_id, sizeof(ev.container_id), "%s", w->id);
		events_publish("/tasks/oom", "containerd.events.TaskOOM",
		               containerd_events_TaskOOM_fields, &ev);
	}
}

static void on_inotify(struct watch *iw, uint32_t events)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;

	(void)events;
	while ((n = read(iw->fd, buf, sizeof(buf))) > 0)
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *e = (struct inotify_event *)p;

			for (int i = 0; i < MAX_OOM_WATCHES; i++)
				if (watches[i].id[0] && watches[i].wd >= 0 &&
				    watches[i].wd == e->wd)
					check_oom(&watches[i]);
			p += sizeof(*e) + e->len;
		}
}

void events_watch_oom(const char *container_id, const char *cgroup)
{
	struct oom_watch *w = NULL;

	if (inotify_w.fd < 0) {
		inotify_w.fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
		inotify_w.fn = on_inotify;
		if (inotify_w.fd >= 0 && ev_add(&inotify_w, EPOLLIN) < 0) {
			close(inotify_w.fd);
			inotify_w.fd = -1;
		}
		if (inotify_w.fd < 0)
			warn("inotify: errno %d; OOM kills are reported when containers exit",
			     errno);
	}
	for (int i = 0; i < MAX_OOM_WATCHES && !w; i++)
		if (!watches[i].id[0])
			w = &watches[i];
	if (!w)
		return;
	kfmt(w->path, sizeof(w->path), "%s/memory.events", cgroup);
	/* Without inotify the watch still exists: the exit path looks at the counter. */
	w->wd = inotify_w.fd >= 0 ? inotify_add_watch(inotify_w.fd, w->path, IN_MODIFY) : -1;
	kfmt(w->id, sizeof(w->id), "%s", container_id);
	w->kills = oom_kills(w->path);
}

void events_unwatch_oom(const char *container_id)
{
	for (int i = 0; i < MAX_OOM_WATCHES; i++)
		if (watches[i].id[0] && !strcmp(watches[i].id, container_id)) {
			/* A kill right before the exit may not have been read yet. */
			check_oom(&watches[i]);
			if (watches[i].wd >= 0)
				inotify_rm_watch(inotify_w.fd, watches[i].wd);
			watches[i].id[0] = '\0';
		}
}
