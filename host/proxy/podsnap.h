/* A snapshot of the pod's running VM (kuasar.proxy.v1.Proxy/Snapshot, from kuasar-ctl
 * snapshot POD): the sandboxer owns its VMs, so containerd is not asked.
 *
 * On the loop, one step at a time, each bounded: the guest unmounts its share (a mounted 9p
 * share blocks migration; a container that binds from it keeps it, and QEMU then refuses);
 * the containers' root disks are linked into the snapshot; a child process, out of the
 * pod's cgroup (the snapshot's memory is not the pod's), is lent the VMM's QMP connection
 * and runs vm_snapshot in place (the VM pauses for the copy of its RAM); its exit is seen on
 * a pidfd; QMP comes back to the loop, the share is mounted again and the guest's clock is
 * set. Meanwhile QMP refuses what a container start or removal would send (EBUSY). */
#ifndef KUASAR_PODSNAP_H
#define KUASAR_PODSNAP_H

#include <stdint.h>
#include <sys/types.h>

#include "base/loop.h"
#include "proxy/gcall.h"
#include "proxy/glink.h"
#include "proxy/taskproxy.h"
#include "vm/vmsnap.h"

struct podsnap {
	struct loop *loop;
	struct taskproxy *tp;
	struct glink *link;
	struct vm *vm;
	const char *run_dir;
	const char *cgroup; /* where the child goes (the daemon's builds'), "" : stay */
	int guest_ms;       /* each guest step's bound; 0: 10 s */
	/* The call in flight. */
	int busy;
	struct tp_call call;
	int step;
	struct gcall gc;           /* the guest's steps */
	struct loop_timer timer;   /* the child's bound */
	struct loop_watch child_w; /* the child's pidfd */
	pid_t child;
	int result_fd;
	char mem[KPATH_SIZE], state[KPATH_SIZE];
	struct vm_shape shape;
	struct vm_snap_times times;
	int code; /* the snapshot's outcome, answered once the VM is whole again */
	char msg[1024];
	int64_t clock_t0;
	int64_t clock_off;
};

/* tp's PROXY_SERVICE method Snapshot (arg: the podsnap). */
void podsnap_on_call(struct taskproxy *tp, const struct tp_call *call, const uint8_t *payload,
                     size_t len, void *arg);

#endif
