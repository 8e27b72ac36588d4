/* libFuzzer: the start result line a task proxy writes to the daemon, as the daemon parses
 * it (a proxy may be killed mid-write or be another binary). */
#include <stdint.h>

#include "proxy/proxy_result.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_result r;
	char buf[PROXY_RESULT_MAX];

	if (proxy_result_parse((const char *)data, size, &r) == 0)
		(void)proxy_result_format(&r, buf, sizeof(buf)); /* what parsed must format */
	return 0;
}
