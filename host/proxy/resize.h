/* In-place pod resize, the proxy's part (kuasar.proxy.v1.Proxy/Resize from the daemon): the
 * guest's pod cgroup gets the new CPU limit and memory.max, and the VM's balloon, where it
 * has one, takes back from the guest what is above the new memory size or gives it back.
 * Shrinking sets the guest's limit first (what no longer fits is reclaimed or OOM-killed in
 * the pod's cgroup, inside the VM), then inflates the balloon; growing deflates first. One
 * resize at a time; each step is bounded, so a stuck guest fails the call, never the loop. */
#ifndef KUASAR_RESIZE_H
#define KUASAR_RESIZE_H

#include <stdint.h>

#include "base/loop.h"
#include "proxy/gcall.h"
#include "proxy/glink.h"
#include "proxy/taskproxy.h"
#include "vm/qmp.h"

struct resize {
	struct loop *loop;
	struct taskproxy *tp;
	struct glink *link;
	struct qmp *balloon; /* the VMM's QMP when the VM has a balloon, else NULL */
	unsigned boot_mib;   /* the VM's memory as booted: the most it can be given */
	unsigned *vm_mib;    /* the size containers' limits are capped by, kept current */
	/* The call in flight. */
	int busy;
	struct tp_call call;
	int64_t quota;
	uint64_t period;
	unsigned mib;
	int step;
	struct gcall gc; /* the guest's step */
};

/* tp's PROXY_SERVICE method Resize (arg: the resize). */
void resize_on_call(struct taskproxy *tp, const struct tp_call *call, const uint8_t *payload,
                    size_t len, void *arg);

#endif
