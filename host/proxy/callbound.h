/* No host call waits on a stuck guest. Every Task call the proxy forwards has a bound by
 * its kind; past it the proxy answers for the guest:
 *   Stats, State, Pids   from the last answer the guest gave to the same request (with its
 *                        age in the log), else DEADLINE_EXCEEDED; containerd's node-wide
 *                        stats never stall on one VM;
 *   Kill                 the guest is stuck: the VM is stopped (SIGKILL to the VMM) and the
 *                        call answered as a gone VM's (its containers exited, 137), so
 *                        StopContainer always ends and kubelet's escalation is never wedged;
 *   the rest             DEADLINE_EXCEEDED.
 * Wait and streams are held open by design and have no bound. Kinds and the answer cache are
 * pure; the task proxy arms the timers. */
#ifndef KUASAR_CALLBOUND_H
#define KUASAR_CALLBOUND_H

#include <stddef.h>
#include <stdint.h>

enum call_kind {
	CALL_OPEN,   /* no bound: Wait, streams, non-Task services' streams */
	CALL_CACHED, /* Stats, State, Pids */
	CALL_KILL,
	CALL_CREATE, /* may build and hot-add a root disk first */
	CALL_OTHER,
};

#define CALL_CACHED_MS 500
#define CALL_KILL_MS 2000
#define CALL_CREATE_MS 120000 /* kubelet's own runtime request timeout */
#define CALL_OTHER_MS 10000

/* bidi: the request opened a stream. */
enum call_kind call_kind(const char *service, const char *method, int bidi);
/* Its bound in ms, 0 for none. */
int call_bound_ms(enum call_kind k);

/* The last good answers to cached calls, keyed by method and request payload (a container
 * or exec id), at most ANSWERS_MAX, the oldest replaced. */
#define ANSWERS_MAX 64
#define ANSWER_MAX_LEN (64u << 10)

struct answer {
	char method[16];
	uint8_t *req, *resp; /* the request payload; the response frame's data */
	uint32_t req_len, resp_len;
	int64_t ns; /* CLOCK_MONOTONIC when it came */
};

struct answers {
	struct answer a[ANSWERS_MAX];
};

/* Keeps resp as the answer to method(req); an answer too big is not kept. */
void answers_put(struct answers *c, const char *method, const uint8_t *req, uint32_t req_len,
                 const uint8_t *resp, uint32_t resp_len, int64_t now_ns);
const struct answer *answers_get(const struct answers *c, const char *method, const uint8_t *req,
                                 uint32_t req_len);
void answers_free(struct answers *c);

#endif
