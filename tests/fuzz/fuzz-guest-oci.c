/* libFuzzer: what kuasar-init parses of a container's spec: config.json (and seccomp
 * compiled from it into a BPF program, checked like the kernel would: every jump lands
 * inside the program, it ends in a return), Exec's process and Update's resources. The
 * first byte picks which. */
#include <linux/filter.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/oci.h"
#include "runtime/seccomp.h"

static struct oci_spec spec;

static void check_filter(const struct sock_fprog *f)
{
	if (!f->len || BPF_CLASS(f->filter[f->len - 1].code) != BPF_RET)
		abort();
	for (unsigned i = 0; i < f->len; i++) {
		const struct sock_filter *in = &f->filter[i];

		if (BPF_CLASS(in->code) != BPF_JMP)
			continue;
		if (BPF_OP(in->code) == BPF_JA
		        ? i + 1 + in->k >= f->len
		        : i + 1 + in->jt >= f->len || i + 1 + in->jf >= f->len)
			abort(); /* the kernel would refuse it: a compiler bug */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct oci_resources r;
	struct sock_fprog f;
	char err[256];

	if (!size)
		return 0;
	switch (data[0] % 3) {
	case 0:
		if (oci_parse(&spec, (const char *)data + 1, size - 1, err, sizeof(err)) == 0 &&
		    seccomp_compile(&spec.seccomp, &f, err, sizeof(err)) == 0) {
			check_filter(&f);
			free(f.filter);
		}
		break;
	case 1:
		memset(&spec, 0, sizeof(spec));
		(void)oci_parse_process(&spec, (const char *)data + 1, size - 1, err, sizeof(err));
		break;
	default: (void)oci_parse_resources(&r, (const char *)data + 1, size - 1, err, sizeof(err));
	}
	return 0;
}
