/* One unary call to the guest's sandbox service over the guest link, from the loop and
 * bounded: its answer, or why there is none (the link down, a malformed answer, no answer
 * in time), comes to done once. For the proxy's own multi-step work (a resize, a snapshot),
 * each step one call. */
#ifndef KUASAR_GCALL_H
#define KUASAR_GCALL_H

#include <stddef.h>
#include <stdint.h>

#include "base/loop.h"
#include "proxy/glink.h"

struct gcall;
/* code 0: payload (n bytes, freed after) is the answer; else RPC code and msg say why. */
typedef void (*gcall_done_fn)(struct gcall *c, int code, const char *msg, const uint8_t *payload,
                              size_t n);

struct gcall {
	struct loop *loop;
	struct glink *link;
	int timeout_ms;
	gcall_done_fn done;
	/* In flight. */
	uint32_t gid;
	char method[32];
	struct loop_timer timer;
};

/* Sends method with the request buf; done comes later, or now (UNAVAILABLE) when the link
 * is down. One call at a time per gcall. */
void gcall_start(struct gcall *c, const char *method, const uint8_t *buf, size_t n);
/* Forgets the call in flight (its answer is dropped); done does not come. */
void gcall_cancel(struct gcall *c);

#endif
