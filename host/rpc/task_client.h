/* Client of the guest's Task API (containerd.task.v3.Task), for kuasar-ctl. */
#ifndef KUASAR_TASK_CLIENT_H
#define KUASAR_TASK_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "rpc/ttrpc_client.h"

#define TASK_SERVICE "containerd.task.v3.Task"

struct task_io {
	const char *stdin_uri, *stdout_uri, *stderr_uri;
	int terminal;
};

int task_create(struct ttrpc_client *c, const char *id, const char *bundle,
                const struct task_io *io, uint32_t *pid, int64_t deadline_ns, kerr_t *err);
int task_exec(struct ttrpc_client *c, const char *id, const char *exec_id, const char *process_json,
              const struct task_io *io, int64_t deadline_ns, kerr_t *err);
int task_start(struct ttrpc_client *c, const char *id, const char *exec_id, uint32_t *pid,
               int64_t deadline_ns, kerr_t *err);
/* Blocks until the process exits (or the deadline). */
int task_wait(struct ttrpc_client *c, const char *id, const char *exec_id, uint32_t *exit_status,
              int64_t deadline_ns, kerr_t *err);
int task_kill(struct ttrpc_client *c, const char *id, const char *exec_id, uint32_t sig, int all,
              int64_t deadline_ns, kerr_t *err);
int task_delete(struct ttrpc_client *c, const char *id, const char *exec_id, uint32_t *exit_status,
                int64_t deadline_ns, kerr_t *err);

int task_resize(struct ttrpc_client *c, const char *id, const char *exec_id, uint32_t width,
                uint32_t height, int64_t deadline_ns, kerr_t *err);
/* resources_json: an OCI LinuxResources object. */
int task_update(struct ttrpc_client *c, const char *id, const char *resources_json,
                int64_t deadline_ns, kerr_t *err);
int task_pause(struct ttrpc_client *c, const char *id, int pause, int64_t deadline_ns, kerr_t *err);

struct task_state {
	uint32_t pid, exit_status;
	const char *status; /* created, running, stopped, paused */
};
int task_state(struct ttrpc_client *c, const char *id, const char *exec_id, struct task_state *out,
               int64_t deadline_ns, kerr_t *err);
int task_pids(struct ttrpc_client *c, const char *id, uint32_t *pids, size_t max, size_t *n,
              int64_t deadline_ns, kerr_t *err);

struct task_stats {
	uint64_t pids, pids_limit, cpu_usec, memory, memory_limit, oom_kills;
	uint64_t rss, inactive_file; /* memory.stat's anon (what kubelet calls rss) */
};
int task_stats(struct ttrpc_client *c, const char *id, struct task_stats *out, int64_t deadline_ns,
               kerr_t *err);

#endif
