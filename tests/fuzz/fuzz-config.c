/* libFuzzer: config.toml as the daemon and every task proxy read it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/config.h"
#include "vm/vmm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sb_config c;
	struct vm_config vc;
	char *text = malloc(size + 1);
	kerr_t err;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;
	config_defaults(&c);
	if (config_parse(&c, text, "fuzz.toml", &err) == 0)
		config_vm(&c, &vc);
	free(text);
	return 0;
}
