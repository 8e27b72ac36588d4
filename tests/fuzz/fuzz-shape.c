/* libFuzzer: a VM's shape as JSON (a snapshot's meta.json, the shape a pod's proxy answers
 * a Snapshot with, a kept VM's vm.json), read back and checked before a VMM is started from
 * it, then written and read again. */
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vm/vmsnap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vm_shape sh, again;
	json_tokener *tok = json_tokener_new();
	json_object *o = json_tokener_parse_ex(tok, (const char *)data, (int)size), *out;
	kerr_t err;

	json_tokener_free(tok);
	if (o && vm_shape_read(o, &sh, &err) == 0) {
		out = json_object_new_object();
		vm_shape_write(out, &sh.cfg);
		if (vm_shape_read(out, &again, &err) < 0 || again.cfg.n_disks != sh.cfg.n_disks)
			abort(); /* what was accepted must read back */
		json_object_put(out);
	}
	json_object_put(o);
	return 0;
}
