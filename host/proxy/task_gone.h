/* What a task proxy answers once its VM is gone, as a shim answers for processes that died:
 * every container it knows has exited with the VM, so State, Wait and Delete report that
 * (with the status a SIGKILL gives), Kill and Shutdown succeed, and containerd can delete
 * the tasks cleanly instead of retrying on a closed connection. A pure function of the
 * request: the task proxy does the I/O. */
#ifndef KUASAR_TASK_GONE_H
#define KUASAR_TASK_GONE_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

/* What a process killed with its VM reports (128 + SIGKILL). */
#define TASK_GONE_STATUS 137

struct task_gone {
	int64_t exited_ns; /* when the VM was found gone (CLOCK_REALTIME) */
	uint32_t shim_pid;
	/* Whether a container (not an exec) is known: created and not yet deleted. */
	int (*known)(const char *id, void *arg);
	void *arg;
};

struct task_gone_answer {
	int code; /* 0, or the RPC status code with msg */
	char msg[256];
	uint8_t *payload; /* code 0: the response message (malloc'd; free it) */
	size_t len;
	char deleted[ID_MAX + 1]; /* a container Delete removed: forget it */
};

/* Answers a containerd.task.v2/v3 request (method and its payload) for a gone VM. */
void task_gone_answer(const struct task_gone *g, const char *method, const uint8_t *req, size_t len,
                      struct task_gone_answer *a);
/* The answer a Wait already in flight when the VM went gets (code 0, payload set). */
void task_gone_wait(const struct task_gone *g, struct task_gone_answer *a);

#endif
