/* The init's one event loop: epoll over every fd the init serves (signals via signalfd,
 * the guest link, uevents). Callbacks run to completion; nothing blocks. */
#ifndef KUASAR_LOOP_H
#define KUASAR_LOOP_H

#include <stdint.h>

struct watch;
typedef void (*watch_fn)(struct watch *w, uint32_t events);

struct watch {
	int fd;
	watch_fn fn;
};

int loop_init(void);
int loop_add(struct watch *w, uint32_t events);
int loop_mod(struct watch *w, uint32_t events);
void loop_del(struct watch *w);
/* Runs one round: waits up to timeout_ms (-1: forever) and dispatches what is ready.
 * Returns how many events ran, 0 on timeout. */
int loop_once(int timeout_ms);

#endif
