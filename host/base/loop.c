#include "base/loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/util.h"

int loop_init(struct loop *l, kerr_t *err)
{
	memset(l, 0, sizeof(*l));
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0)
		return kerr_sys(err, "epoll_create1");
	return 0;
}

int loop_add(struct loop *l, struct loop_watch *w, uint32_t events, kerr_t *err)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	w->events = events;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, w->fd, &ev) < 0)
		return kerr_sys(err, "epoll_ctl add fd %d", w->fd);
	return 0;
}

void loop_mod(struct loop *l, struct loop_watch *w, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	if (w->events == events)
		return;
	w->events = events;
	epoll_ctl(l->epfd, EPOLL_CTL_MOD, w->fd, &ev);
}

void loop_del(struct loop *l, struct loop_watch *w)
{
	if (w->fd >= 0)
		epoll_ctl(l->epfd, EPOLL_CTL_DEL, w->fd, NULL);
	for (int i = 0; i < l->batch_n; i++)
		if (l->batch[i].data.ptr == w)
			l->batch[i].data.ptr = NULL;
}

void loop_close(struct loop *l, struct loop_watch *w)
{
	if (w->fd < 0)
		return;
	loop_del(l, w);
	close(w->fd);
	w->fd = -1;
}

void *loop_accept(struct loop *l, int listen_fd, size_t size, size_t off,
                  void (*fn)(struct loop_watch *w, uint32_t events))
{
	int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	struct loop_watch *w;
	char *obj;
	kerr_t err;

	if (fd < 0)
		return NULL;
	obj = calloc(1, size);
	if (!obj) {
		close(fd);
		return NULL;
	}
	w = (struct loop_watch *)(obj + off);
	w->fd = fd;
	w->fn = fn;
	if (loop_add(l, w, EPOLLIN, &err) < 0) {
		close(fd);
		free(obj);
		return NULL;
	}
	return obj;
}

void loop_timer_cancel(struct loop *l, struct loop_timer *t)
{
	struct loop_timer **pp;

	for (pp = &l->timers; *pp; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	}
	t->due_ns = 0;
	t->next = NULL;
}

void loop_timer_arm(struct loop *l, struct loop_timer *t, int64_t ms)
{
	struct loop_timer **pp;

	loop_timer_cancel(l, t);
	t->due_ns = mono_ns() + ms * 1000000;
	for (pp = &l->timers; *pp && (*pp)->due_ns <= t->due_ns; pp = &(*pp)->next)
		;
	t->next = *pp;
	*pp = t;
}

static int next_timeout_ms(struct loop *l)
{
	if (!l->timers)
		return -1;
	return ms_until(l->timers->due_ns);
}

static void run_timers(struct loop *l)
{
	int64_t now = mono_ns();

	while (l->timers && l->timers->due_ns <= now) {
		struct loop_timer *t = l->timers;

		l->timers = t->next;
		t->next = NULL;
		t->due_ns = 0;
		t->fn(t);
	}
}

void loop_run(struct loop *l)
{
	struct epoll_event evs[32];

	while (!l->stop) {
		int n = epoll_wait(l->epfd, evs, 32, next_timeout_ms(l));

		if (n < 0 && errno != EINTR)
			break;
		l->batch = evs;
		l->batch_n = n > 0 ? n : 0;
		for (int i = 0; i < l->batch_n; i++) {
			struct loop_watch *w = evs[i].data.ptr;

			if (w) /* NULL: deleted by an earlier callback of this batch */
				w->fn(w, evs[i].events);
		}
		l->batch = NULL;
		l->batch_n = 0;
		run_timers(l);
	}
}
