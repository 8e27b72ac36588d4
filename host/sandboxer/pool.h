/* The warm pool: VMs restored before any pod asks, handed to RunPodSandbox.
 *
 * Each member is a `kuasar-sandboxer proxy --pool` process of the daemon's (fd 3 a socketpair:
 * its results come in, the take message goes out) with its VMM, in <run_dir>/.pool/<name> and
 * in a cgroup of its own at the lowest CPU weight. It is restored from the template, reseeded,
 * its clock set and its share mounted, its tap in a netns of its own; then it waits, idle.
 * A start of the member's shape (vCPUs, memory, root filesystem mode) with a pod netns takes
 * one: its proxy and VMM move into the pod's cgroup, and the proxy makes the VM the sandbox
 * (proxy/pooled.h). One pod, one VM: a member is never reused. Members are made one at a time
 * and never while a sandbox starts; a shape no pod asked for in pool_idle_secs loses its
 * members. After a restart the daemon discards what an earlier one pooled. */
#ifndef KUASAR_POOL_H
#define KUASAR_POOL_H

#include <stdint.h>
#include <sys/types.h>

#include "base/loop.h"
#include "base/util.h"

#define POOL_SHAPES 4
#define POOL_BUSY_CGROUPS 16

struct pool_shape {
	unsigned vcpus, memory_mib;
	int block; /* containers' root filesystems as disks */
};

struct pool_member;
struct sandboxer;

struct pool {
	struct sandboxer *sbx;
	struct pool_member *members;
	struct pool_shape shapes[POOL_SHAPES]; /* [0] the default */
	int64_t used_ns[POOL_SHAPES];          /* when a pod last asked for it; 0: slot free */
	struct loop_timer timer;               /* refill and retire */
	int64_t backoff_until;                 /* after a member failed: no new one before */
	unsigned seq;
	unsigned served, missed; /* starts a member served, and starts that found none */
	char busy_cg[POOL_BUSY_CGROUPS][ID_MAX + 1]; /* members' cgroups to remove again */
};

/* What a start takes over from a member. */
struct pool_handout {
	char name[ID_MAX + 1];
	pid_t proxy, vmm;
	int ctl_fd; /* the member's fd 3: the take has been sent; its result comes here */
};

/* Discards what an earlier daemon pooled, then starts filling (when the config has a pool). */
void pool_init(struct pool *pool, struct sandboxer *sbx);
/* A ready member of the shape for the sandbox: the take message sent (id, hostname, netns,
 * sysctls), its processes moved into the cgroup <cg_parent>/<cg_id> when cg_parent is set.
 * -1 when there is none. Either way the shape counts as asked for. */
int pool_take(struct pool *pool, const struct pool_shape *shape, const char *take_msg,
              const char *cg_parent, const char *cg_id, struct pool_handout *out);
/* A sandbox start has ended: refilling may go on once no other one runs. */
void pool_kick(struct pool *pool);
/* Removes what is left of a taken member that failed its start (its directory, holding what
 * Create made, and its cgroup). */
void pool_clear(struct pool *pool, const char *name);
/* Kills every member and removes what it had (the daemon exits). */
void pool_stop(struct pool *pool);

#endif
