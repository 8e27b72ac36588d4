/* What a guest may tell containerd about its tasks. The guest is not trusted: a compromised
 * one could publish /tasks/oom or /tasks/exit for another pod's containers, and CRI would
 * mark them OOMKilled or exited. So a guest event goes on to containerd's Events/Forward only
 * if its topic is one a shim publishes, its type is the one that topic carries, it decodes,
 * and the container it names belongs to this sandbox. What is forwarded is the decoded event
 * encoded again, so containerd reads exactly what was checked. A pure function of the bytes:
 * the proxy does the I/O. */
#ifndef KUASAR_EVENT_FILTER_H
#define KUASAR_EVENT_FILTER_H

#include <stddef.h>
#include <stdint.h>

/* The largest event value a guest may send; a shim's events are a few hundred bytes. */
#define EVENT_VALUE_MAX (64u << 10)

/* Whether container id is one of this sandbox's (created here and not long deleted). */
typedef int (*event_owns_fn)(const char *container_id, void *arg);

struct event_checked {
	uint8_t *value; /* the event to forward (malloc'd; free it) */
	size_t len;
	char container_id[80];
};

/* 0 with *out filled when the event may go to containerd; -1 with why (a message for a
 * rate-limited warning) when it is dropped. */
int event_check(const char *topic, const char *type_url, const uint8_t *value, size_t len,
                event_owns_fn owns, void *arg, struct event_checked *out, char *why, size_t n);

#endif
