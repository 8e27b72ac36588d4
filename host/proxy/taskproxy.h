/* A sandbox's task socket (ttrpc+unix://<dir>/task.sock): containerd's Task API (v3 and v2
 * names) and Streaming, served by forwarding to the guest over the sandbox's one link.
 * Client stream ids are remapped onto fresh guest ids; Create prepares the bundle in the
 * share first and Delete removes it after the guest is done. A client that reads too slowly
 * is dropped rather than allowed to hold up the link. */
#ifndef KUASAR_TASKPROXY_H
#define KUASAR_TASKPROXY_H

#include <stdint.h>

#include "base/loop.h"
#include "base/util.h"
#include "proxy/bundle.h"
#include "proxy/callbound.h"
#include "proxy/glink.h"

struct tp_conn;
struct tp_ctr;
struct rootdisks;

/* Containers deleted lately, whose last events (a delete, an exec's exit) may still be on
 * their way from the guest. */
#define TP_TOMBS 16
#define TP_TOMB_NS (10 * 1000000000LL)

/* A call on the proxy's own service (PROXY_SERVICE), answered by whoever the taskproxy hands
 * it to, later, through taskproxy_answer: the connection may be gone by then. */
#define PROXY_SERVICE "kuasar.proxy.v1.Proxy"
struct tp_call {
	uint64_t conn; /* the connection's serial */
	uint32_t sid;
};

struct tp_tomb {
	char id[ID_MAX + 1];
	int64_t ns;
};

struct taskproxy {
	struct loop *loop;
	struct loop_watch listen;
	struct glink *link;
	char path[KPATH_SIZE];
	struct bundles bundles; /* the containers' bundles in the share */
	struct tp_conn *conns;
	unsigned n_conns;
	/* containerd's namespace (metadata containerd-namespace-ttrpc), for events. */
	char ns[64];
	char hostname[HOSTNAME_MAX + 1]; /* the pod's */
	void (*on_ns)(struct taskproxy *tp, void *arg);
	void *arg;
	/* Containers created and not yet deleted (what a gone VM's tasks answer for). */
	struct tp_ctr *ctrs;
	unsigned n_ctrs;
	struct tp_tomb tombs[TP_TOMBS];
	unsigned next_tomb;
	/* The VM is gone: task requests are answered here (task_gone.h) until containerd has
	 * deleted every container, then on_idle is called. */
	int gone;
	int64_t gone_ns;
	void (*on_idle)(struct taskproxy *tp, void *arg);
	/* rootfs = "block": containers' layers become disks on the VM (rootdisk.h); NULL: the
	 * share carries every root filesystem. */
	struct rootdisks *disks;
	/* The guest's last answers to Stats, State and Pids, given for it when it is late. */
	struct answers answers;
	/* A Kill the guest did not answer in time (callbound.h): the VM must go. NULL: the
	 * Kill fails with DEADLINE_EXCEEDED instead. */
	void (*on_stuck)(struct taskproxy *tp, const char *why, void *arg);
	int64_t late_warn_ns; /* late answers are told at most every 10 s */
	unsigned late;
	/* A PROXY_SERVICE call; NULL: they are refused as UNIMPLEMENTED. */
	void (*on_own)(struct taskproxy *tp, const struct tp_call *call, const char *method,
	               const uint8_t *payload, size_t len, void *arg);
	void *own_arg;
	uint64_t next_serial;
};

int taskproxy_start(struct taskproxy *tp, struct loop *loop, struct glink *link, const char *path,
                    const char *shared, kerr_t *err);
/* The guest link broke: every call in flight ends with UNAVAILABLE. */
void taskproxy_link_down(struct taskproxy *tp);
/* The VM is gone for good: calls in flight end (a Wait with the exit a killed process
 * reports), and from now on the tasks are answered here. */
void taskproxy_vm_gone(struct taskproxy *tp);
/* Whether container id is this sandbox's: created (or being created) here, or deleted in
 * the last TP_TOMB_NS. The check guest events pass (event_filter.h); arg is the taskproxy. */
int taskproxy_owns(const char *id, void *arg);
/* Answers a PROXY_SERVICE call: OK with payload when code is 0, else code and message. A
 * call whose connection has gone is dropped. */
void taskproxy_answer(struct taskproxy *tp, const struct tp_call *call, int code,
                      const uint8_t *payload, size_t len, const char *message);
/* Closes the socket and every connection. */
void taskproxy_stop(struct taskproxy *tp);

#endif
