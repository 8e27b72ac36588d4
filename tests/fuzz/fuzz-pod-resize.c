/* libFuzzer: the updated-resources extension of a Controller.Update, as containerd sends it
 * for an in-place pod resize (JSON), read by the daemon. */
#include <stdint.h>

#include "sandboxer/sb_resize.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pod_resize r;
	kerr_t err;

	(void)pod_resize_parse(data, size, &r, &err);
	return 0;
}
