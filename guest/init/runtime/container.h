/* Containers and their processes inside the guest: the runtime behind the Task API.
 * Functions return 0 or an RPC status code with a message in err; replies that come later
 * (Create, Exec, Wait) go through the completion the caller hands in with them. */
#ifndef KUASAR_CONTAINER_H
#define KUASAR_CONTAINER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "runtime/cgroup.h"
#include "wire/rpc.h"

#define CTR_ID_MAX 128

enum proc_status { PS_UNKNOWN, PS_CREATED, PS_RUNNING, PS_STOPPED, PS_PAUSED };

struct ctr_stdio {
	const char *uri[3]; /* stdin, stdout, stderr; "" for none */
	int terminal;
};

struct ctr_state {
	const char *bundle;
	pid_t pid;
	enum proc_status status;
	const char *uri[3];
	int terminal;
	uint32_t exit_status;
	uint64_t exited_ns; /* CLOCK_REALTIME */
};

struct ctr_exit {
	pid_t pid;
	uint32_t exit_status;
	uint64_t exited_ns;
};

/* A later answer: where it goes and the function that sends it. err NULL on success. */
struct ctr_created {
	struct rpc_pending reply;
	void (*fn)(const struct rpc_pending *reply, pid_t pid, const char *err);
};
struct ctr_waited {
	struct rpc_pending reply;
	void (*fn)(const struct rpc_pending *reply, const struct ctr_exit *e);
};

int ctr_create(const char *id, const char *bundle, const struct ctr_stdio *io,
               const struct ctr_created *done, char *err, size_t n);
int ctr_exec(const char *id, const char *exec_id, const char *process_json, size_t len,
             const struct ctr_stdio *io, const struct ctr_created *done, char *err, size_t n);
int ctr_start(const char *id, const char *exec_id, pid_t *pid, char *err, size_t n);
int ctr_kill(const char *id, const char *exec_id, int sig, int all, char *err, size_t n);
int ctr_delete(const char *id, const char *exec_id, struct ctr_exit *out, char *err, size_t n);
int ctr_state(const char *id, const char *exec_id, struct ctr_state *out, char *err, size_t n);
/* done=1 with out filled when the process has already exited, else the reply is queued. */
int ctr_wait(const char *id, const char *exec_id, const struct ctr_waited *waiter, int *done,
             struct ctr_exit *out, char *err, size_t n);
/* The caller of a held Wait left (its connection closed): its waiter is dropped. */
void ctr_forget_waiter(uint64_t conn_id, uint32_t stream);
int ctr_pids(const char *id, void (*fn)(pid_t pid, void *arg), void *arg, char *err, size_t n);
int ctr_pause(const char *id, int pause, char *err, size_t n);
int ctr_update(const char *id, const char *resources_json, size_t len, char *err, size_t n);
int ctr_stats(const char *id, struct cgroup_stats *st, char *err, size_t n);
int ctr_resize(const char *id, const char *exec_id, unsigned w, unsigned h, char *err, size_t n);
/* Ends the process's stdin (after what was already received). */
int ctr_close_io(const char *id, const char *exec_id, char *err, size_t n);
pid_t ctr_init_pid(const char *id);
/* The VM was made unique again (a restored clone or a fork): each running container whose
 * environment names KUASAR_FORK_SIGNAL gets that signal. Returns how many were sent. */
unsigned ctr_made_unique(void);

/* A child of PID 1 exited (from the SIGCHLD reaper). */
void ctr_on_exit(pid_t pid, int wait_status);

#endif
