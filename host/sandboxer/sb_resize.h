/* In-place pod resize (containerd >= 2.3's UpdatePodSandboxResources, which reaches
 * Controller.Update as the sandbox's "updated-resources" extension): checked against what
 * the VM can do, the host cgroup's CPU limit set, and the guest's part (its pod cgroup and
 * the balloon) asked of the sandbox's task proxy on the loop. */
#ifndef KUASAR_SB_RESIZE_H
#define KUASAR_SB_RESIZE_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "proxy/config.h"

struct sandbox;
struct grpc_call;

#define UPDATED_RESOURCES_KEY "updated-resources"

/* What a resize asks for: the pod's resources and its RuntimeClass overhead. */
struct pod_resize {
	int64_t cpu_quota, cpu_period, memory; /* resources; <= 0: none */
	int64_t ovh_cpu_quota, ovh_memory;     /* overhead; <= 0: none */
};

/* containerd's extension value: JSON {"Overhead": {...}, "Resources": {...}} with CRI's
 * LinuxContainerResources field names (cpu_period, cpu_quota, memory_limit_in_bytes).
 * EINVAL when it is not that. */
int pod_resize_parse(const uint8_t *json, size_t len, struct pod_resize *out, kerr_t *err);
#define VM_MIN_MIB 64 /* the least a VM boots and runs a container in */

/* The VM's memory for a pod cgroup limit of limit bytes: the limit less the VMM's and the
 * task proxy's own (memory_overhead_mb); EINVAL naming the least limit that works. */
int pod_vm_mib(const struct sb_config *cfg, int64_t limit, unsigned *mem, kerr_t *err);
/* Applies r to sb, answering call when done (or at once when refused). */
void sandbox_resize(struct sandbox *sb, const struct pod_resize *r, struct grpc_call *call);

#endif
