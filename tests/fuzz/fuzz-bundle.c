/* libFuzzer: a container's config.json (from containerd's bundle) rewritten for the guest,
 * bind sources staged by a fake that only checks its arguments; pod_files_write once. */
#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "proxy/bundle.h"

static char share[128];

/* Where scratch files go: tools/fuzz.sh gives each run a directory it removes after. */
static const char *fuzz_tmp(void)
{
	const char *t = getenv("KUASAR_FUZZ_TMP");

	return t && t[0] ? t : "/tmp";
}

static int fake_bind(void *ctx, size_t n, const char *src, kerr_t *err)
{
	return src[0] == '/' && n < 256 ? 0 : kerr_set(err, 22, "bad bind");
}

static int has_pod_file(void *ctx, const char *name)
{
	return strcmp(name, "hostname") != 0; /* one missing, so both paths run */
}

/* The pod files are written into a real share once, as the daemon does at Create. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	kerr_t err;

	snprintf(share, sizeof(share), "%s/kuasar-fuzz-bundle.XXXXXX", fuzz_tmp());
	if (!mkdtemp(share) || pod_files_write(share, "pod", "nameserver 10.0.0.53\n", &err) < 0)
		abort();
	return 0;
}

/* Host mounts below sources under /nest, as a read-only volume's may have. */
static int fake_submounts(const char *src, int (*each)(void *, const char *), void *arg,
                          kerr_t *err)
{
	(void)err;
	if (strncmp(src, "/nest", 5))
		return 0;
	return each(arg, "a") || each(arg, "a/b c") ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct spec_stage st = { .bind = fake_bind,
		                              .has_pod_file = has_pod_file,
		                              .vm_mib = 256,
		                              .submounts = fake_submounts };
	struct json_tokener *tok = json_tokener_new();
	json_object *spec;
	kerr_t err;

	spec =
	    json_tokener_parse_ex(tok, (const char *)data, (int)(size > 1 << 20 ? 1 << 20 : size));
	json_tokener_free(tok);
	if (!spec)
		return 0;
	if (spec_rewrite(spec, "ctr", GUEST_SHARED "/ctr", &st, &err) == 0)
		(void)json_object_to_json_string(spec);
	json_object_put(spec);
	return 0;
}
