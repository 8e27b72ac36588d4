/* libFuzzer: containerd's rootfs mounts of a Task.Create (a CreateTaskRequest, protobuf)
 * read for a root disk: which overlay layers, whether the upper layer is empty. Untrusted
 * paths are only stat'ed and opened as directories. */
#include <stdint.h>
#include <stdlib.h>

#include "proxy/rootdisk.h"
#include "task.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Containerd__Task__V3__CreateTaskRequest *cr;
	char why[300], **lowers;
	size_t n;
	kerr_t err;

	cr = containerd__task__v3__create_task_request__unpack(NULL, size, data);
	if (!cr)
		return 0;
	if (rootdisk_lowers(cr->rootfs, cr->n_rootfs, &lowers, &n, why, sizeof(why), &err) > 0) {
		if (!n || !lowers)
			abort();
		for (size_t i = 0; i < n; i++)
			if (lowers[i][0] != '/')
				abort();
	}
	rootdisk_free_lowers(lowers, n);
	containerd__task__v3__create_task_request__free_unpacked(cr, NULL);
	return 0;
}
