/* libFuzzer: the readiness matcher kuasar-init runs over an appliance's output, which the
 * app (a container: untrusted to PID 1) controls. Input: PATTERN, a NUL, TEXT. Besides not
 * crashing or hanging: the answer is -1, 0 or 1, and the text escaped atom by atom and
 * anchored always matches itself. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/match.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char buf[1024], self[2 * RE_MAX_ATOMS + 3];
	const char *text;
	size_t n = size < sizeof(buf) - 2 ? size : sizeof(buf) - 2, len;
	int rc;

	memcpy(buf, data, n);
	buf[n] = buf[n + 1] = '\0';
	text = buf + strlen(buf) + 1; /* after the first NUL, or "" */
	rc = re_match(buf, text);
	if (rc < -1 || rc > 1)
		abort();
	len = strlen(text);
	if (len > RE_MAX_ATOMS - 1)
		return 0;
	self[0] = '^';
	for (size_t i = 0; i < len; i++) {
		self[1 + 2 * i] = '\\';
		self[2 + 2 * i] = text[i];
	}
	memcpy(self + 1 + 2 * len, "$", 2);
	if (re_match(self, text) != 1)
		abort();
	return 0;
}
