/* The sandboxer's one event loop: fds in an epoll set, plus one-shot timers. Callbacks run
 * on the loop; nothing blocks in them for long. */
#ifndef KUASAR_LOOP_H
#define KUASAR_LOOP_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"

struct loop;
struct epoll_event;

struct loop_watch {
	int fd;
	uint32_t events;
	void (*fn)(struct loop_watch *w, uint32_t events);
};

struct loop_timer {
	int64_t due_ns; /* CLOCK_MONOTONIC; 0 when not armed */
	void (*fn)(struct loop_timer *t);
	struct loop_timer *next;
};

struct loop {
	int epfd;
	int stop;
	struct loop_timer *timers; /* sorted by due_ns */
	/* The batch being dispatched: loop_del clears a watch's later events in it, so an
	 * object freed by one callback is never handed to the next one of the same batch. */
	struct epoll_event *batch;
	int batch_n;
};

int loop_init(struct loop *l, kerr_t *err);
int loop_add(struct loop *l, struct loop_watch *w, uint32_t events, kerr_t *err);
/* Changes the events watched; a no-op when they are unchanged. */
void loop_mod(struct loop *l, struct loop_watch *w, uint32_t events);
/* Stops watching w. Its events still pending in the batch being dispatched are dropped,
 * so w may be freed right after this, even from inside a callback. */
void loop_del(struct loop *l, struct loop_watch *w);
/* loop_del, then closes w's fd and marks it closed (fd -1); nothing for a closed one. */
void loop_close(struct loop *l, struct loop_watch *w);
/* Accepts one connection on listen_fd into a zeroed object of size bytes whose watch sits at
 * offset off, watched for EPOLLIN with fn. Returns the object (the caller's to link and,
 * with loop_del and close, to free), or NULL with nothing kept (no connection, or no
 * memory). */
void *loop_accept(struct loop *l, int listen_fd, size_t size, size_t off,
                  void (*fn)(struct loop_watch *w, uint32_t events));
/* Arms (or re-arms) a timer to fire once after ms. */
void loop_timer_arm(struct loop *l, struct loop_timer *t, int64_t ms);
void loop_timer_cancel(struct loop *l, struct loop_timer *t);
/* Runs until loop->stop is set. */
void loop_run(struct loop *l);

#endif
