/* cgroup v2 for containers: /sys/fs/cgroup/kuasar/<id>, limits from the OCI resources,
 * freezing, and the figures Stats reports. */
#ifndef KUASAR_GUEST_CGROUP_H
#define KUASAR_GUEST_CGROUP_H

#include <stdint.h>
#include <sys/types.h>

#include "runtime/oci.h"

#define CGROUP_ROOT "/sys/fs/cgroup/kuasar"

struct cgroup_stats {
	uint64_t memory_current, memory_max, memory_swap_current;
	uint64_t oom_kills, oom_events;
	uint64_t cpu_usage_usec, cpu_user_usec, cpu_system_usec;
	uint64_t cpu_nr_periods, cpu_nr_throttled, cpu_throttled_usec;
	uint64_t pids_current, pids_max;
	/* memory.stat, in the order of mem_fields (cgroup.c) */
	uint64_t mem[14];
};

/* Creates the container's cgroup (path gets its directory) and applies r. errno on failure,
 * with the file that failed in what. */
int cgroup_create(const char *id, const struct oci_resources *r, char *path, size_t n,
                  const char **what);
/* The pod's limits on CGROUP_ROOT, above every container: cpu.max (quota <= 0: none) and
 * memory.max (0: none). errno on failure, with the file in what. */
int cgroup_pod_limits(int64_t cpu_quota, uint64_t cpu_period, uint64_t memory_max,
                      const char **what);
int cgroup_apply(const char *path, const struct oci_resources *r, const char **what);
int cgroup_freeze(const char *path, int frozen);
/* SIGKILL to every process in the cgroup. */
void cgroup_kill(const char *path);
/* Kills whatever is left and removes the directory. */
int cgroup_remove(const char *path);
int cgroup_stats(const char *path, struct cgroup_stats *st);
/* Calls fn for each pid in the cgroup; returns how many. */
int cgroup_pids(const char *path, void (*fn)(pid_t pid, void *arg), void *arg);

#endif
