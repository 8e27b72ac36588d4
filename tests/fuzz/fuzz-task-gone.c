/* libFuzzer: the answers a task proxy gives for a VM that is gone (task_gone_answer), for
 * any method and payload containerd may send. The first byte picks the method. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/task_gone.h"

static int known(const char *id, void *arg)
{
	(void)arg;
	return id[0] == 'c'; /* "c..." containers exist, others do not */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const methods[] = { "State",   "Wait",     "Delete", "Kill",
		                               "Connect", "Shutdown", "Exec",   "Stats" };
	struct task_gone g = { .exited_ns = 1795800000000000000LL, .shim_pid = 7, .known = known };
	struct task_gone_answer a;

	if (!size)
		return 0;
	task_gone_answer(&g, methods[data[0] % 8], data + 1, size - 1, &a);
	if (a.code == 0 && !a.payload)
		abort(); /* an OK answer always has its message */
	if (a.deleted[0] && !known(a.deleted, NULL))
		abort(); /* only a known container is ever forgotten */
	free(a.payload);
	return 0;
}
