/* The init's one event loop: epoll over every fd the init serves (signals via signalfd,
 * the guest link, uevents). Callbacks run to completion; nothing blocks. */
#ifndef KUASAR_GUEST_EV_H
#define KUASAR_GUEST_EV_H

#include <stdint.h>

struct watch;
typedef void (*watch_fn)(struct watch *w, uint32_t events);

struct watch {
	int fd;
	watch_fn fn;
};

int ev_init(void);
int ev_add(struct watch *w, uint32_t events);
int ev_mod(struct watch *w, uint32_t events);
/* Stops watching w; its events still pending in the batch being dispatched are dropped, so
 * w may be freed right after, even from inside a callback. */
void ev_del(struct watch *w);
/* Runs one round: waits up to timeout_ms (-1: forever) and dispatches what is ready.
 * Returns how many events ran, 0 on timeout. */
int ev_once(int timeout_ms);

#endif
