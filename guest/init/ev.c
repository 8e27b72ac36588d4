#include "ev.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "klog.h"

#define LOOP_BATCH 32

static int epfd = -1;

int ev_init(void)
{
	epfd = epoll_create1(EPOLL_CLOEXEC);
	return epfd < 0 ? -1 : 0;
}

static int ctl(int op, struct watch *w, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	if (epoll_ctl(epfd, op, w->fd, &ev) < 0) {
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
	epoll_ctl(epfd, EPOLL_CTL_DEL, w->fd, NULL);
}

int ev_once(int timeout_ms)
{
	struct epoll_event evs[LOOP_BATCH];
	int n = epoll_wait(epfd, evs, LOOP_BATCH, timeout_ms);

	for (int i = 0; i < n; i++) {
		struct watch *w = evs[i].data.ptr;
		w->fn(w, evs[i].events);
	}
	return n;
}
