/* Host cgroups for sandboxes: each sandbox's task proxy and VMM run in
 * <root>/<parent>/<id> (cgroup v2, or v1's cpuacct, memory and pids hierarchies), which gives
 * Metrics real figures and cleanup the list of whatever is left. Best effort: a host where the
 * cgroup cannot be made runs the sandbox without one, and says so. */
#ifndef KUASAR_CGROUP_H
#define KUASAR_CGROUP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/err.h"
#include "base/loop.h"
#include "base/util.h"

struct cg_stats {
	uint64_t cpu_usec;
	uint64_t memory_bytes;
	uint64_t memory_limit; /* 0: none */
	uint64_t pids;
};

/* A pod's cgroup_parent as kubelet gives it, as a path below the cgroup root: cgroupfs
 * style "/kubepods/burstable/pod<uid>" loses its leading slash; systemd style
 * "kubepods-burstable-pod<uid>.slice" becomes kubepods.slice/kubepods-burstable.slice/...
 * EINVAL for "..", empty components or a path that does not fit. */
int sb_cgroup_parent_path(const char *pod_parent, char *out, size_t n, kerr_t *err);
/* Creates <root>/<parent>/<id>, with the parent's missing levels. */
int sb_cgroup_create(const char *parent, const char *id, kerr_t *err);
/* The CPU limit: cpu.max on v2, cfs_quota_us and cfs_period_us on v1 (quota <= 0: none). */
int sb_cgroup_set_cpu(const char *parent, const char *id, int64_t quota, int64_t period,
                      kerr_t *err);
/* Moves the calling process in (a forked child, before exec). */
int sb_cgroup_enter(const char *parent, const char *id);
/* Moves process pid (all its threads) in. */
int sb_cgroup_move(const char *parent, const char *id, pid_t pid);
/* Its CPU weight (cpu.weight, 1 to 10000, 100 the default; v1's cpu.shares to scale). */
int sb_cgroup_set_weight(const char *parent, const char *id, unsigned weight, kerr_t *err);
int sb_cgroup_stats(const char *parent, const char *id, struct cg_stats *st, kerr_t *err);
/* Emptying a sandbox's cgroup from the loop: every process in it is killed and watched by
 * pidfd (our orphans reaped as they go), the cgroup read again once they are gone, until it
 * is empty; done(d, 1) then, or done(d, 0) after the timeout. One more pidfd (the task
 * proxy's, which may live outside any cgroup) can be waited for with them. */
struct cg_drain {
	struct loop *loop;
	char parent[256], id[ID_MAX + 1];
	struct cg_drain_pid *pids;
	unsigned n, live;
	struct loop_timer timer;
	int active;
	void (*done)(struct cg_drain *d, int emptied);
};

/* done may run before this returns, when nothing is left. parent "": no cgroup to read. */
void cg_drain_start(struct cg_drain *d, struct loop *loop, const char *parent, const char *id,
                    int pidfd, int timeout_ms, void (*done)(struct cg_drain *d, int emptied));
/* Stops watching, without calling done. */
void cg_drain_cancel(struct cg_drain *d);
/* The calling process's own cgroup directory (v2; on v1 its memory hierarchy's), where image
 * builds and template VMs are charged, as containerd's unpacking is; "" when it cannot be
 * told. */
void sb_cgroup_self(char *out, size_t n);
/* Removes it (empty by then); 0 when it is gone or never existed. */
int sb_cgroup_remove(const char *parent, const char *id);

#endif
