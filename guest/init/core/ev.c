#include "core/ev.h"
#include "core/sys.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core/klog.h"

#define LOOP_BATCH 32

static int epfd = -1;
/* The batch being dispatched: ev_del clears a watch's later events in it, so an object freed
 * by one callback is never handed to the next one of the same batch. */
static struct epoll_event *batch;
static int batch_n;

int ev_init(void)
{
	epfd = sys_epoll_create1(EPOLL_CLOEXEC);
	return epfd < 0 ? -1 : 0;
}

static int ctl(int op, struct watch *w, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	if (sys_epoll_ctl(epfd, op, w->fd, &ev) < 0) {
		warn("epoll_ctl(%d) on fd %d: errno %d", op, w->fd, errno);
		return -1;
	}
	return 0;
}

int ev_add(struct watch *w, uint32_t events)
{
	return ctl(EPOLL_CTL_ADD, w, events);
}

int ev_mod(struct watch *w, uint32_t events)
{
	return ctl(EPOLL_CTL_MOD, w, events);
}

void ev_del(struct watch *w)
{
	sys_epoll_ctl(epfd, EPOLL_CTL_DEL, w->fd, NULL);
	for (int i = 0; i < batch_n; i++)
		if (batch[i].data.ptr == w)
			batch[i].data.ptr = 0;
}

int ev_once(int timeout_ms)
{
	struct epoll_event evs[LOOP_BATCH];
	int n = sys_epoll_wait(epfd, evs, LOOP_BATCH, timeout_ms);

	batch = evs;
	batch_n = n > 0 ? n : 0;
	for (int i = 0; i < batch_n; i++) {
		struct watch *w = evs[i].data.ptr;

		if (w) /* NULL: deleted by an earlier callback of this batch */
			w->fn(w, evs[i].events);
	}
	batch = 0;
	batch_n = 0;
	return n;
}
