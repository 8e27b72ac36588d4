/* The pure half of an in-place resize (sb_resize.h): reading containerd's extension and
 * sizing the VM for a pod limit, shared with Create. */
#include <errno.h>
#include <json-c/json.h>
#include <string.h>

#include "sandboxer/sb_resize.h"

static int64_t resources_int(json_object *res, const char *key)
{
	json_object *v;

	if (!res || !json_object_object_get_ex(res, key, &v) ||
	    !json_object_is_type(v, json_type_int))
		return 0;
	return json_object_get_int64(v);
}

int pod_resize_parse(const uint8_t *json, size_t len, struct pod_resize *out, kerr_t *err)
{
	struct json_tokener *tok = json_tokener_new();
	json_object *o, *res = NULL, *ovh = NULL;

	if (!tok)
		return kerr_set(err, ENOMEM, "out of memory");
	if (len > 65536) {
		json_tokener_free(tok);
		return kerr_set(err, EINVAL, UPDATED_RESOURCES_KEY ": %zu bytes is too long", len);
	}
	o = json_tokener_parse_ex(tok, (const char *)json, (int)len);
	if (o && (size_t)tok->char_offset != len) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	if (!o || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return kerr_set(err, EINVAL, UPDATED_RESOURCES_KEY ": not a JSON object");
	}
	json_object_object_get_ex(o, "Resources", &res);
	json_object_object_get_ex(o, "Overhead", &ovh);
	if ((res && !json_object_is_type(res, json_type_object) &&
	     !json_object_is_type(res, json_type_null)) ||
	    (ovh && !json_object_is_type(ovh, json_type_object) &&
	     !json_object_is_type(ovh, json_type_null))) {
		json_object_put(o);
		return kerr_set(err, EINVAL,
		                UPDATED_RESOURCES_KEY ": Resources and Overhead must "
		                                      "be objects");
	}
	memset(out, 0, sizeof(*out));
	out->cpu_quota = resources_int(res, "cpu_quota");
	out->cpu_period = resources_int(res, "cpu_period");
	out->memory = resources_int(res, "memory_limit_in_bytes");
	out->ovh_cpu_quota = resources_int(ovh, "cpu_quota");
	out->ovh_memory = resources_int(ovh, "memory_limit_in_bytes");
	json_object_put(o);
	return 0;
}

int pod_vm_mib(const struct sb_config *cfg, int64_t limit, unsigned *mem, kerr_t *err)
{
	int64_t mib = (limit >> 20) - (int64_t)cfg->overhead_mib;

	if (mib < VM_MIN_MIB)
		return kerr_set(
		    err, EINVAL,
		    "pod memory limit of %lld bytes (with its overhead) leaves %lld MiB for "
		    "the VM once the VMM and task proxy have their %u MiB: a sandbox needs "
		    "a limit of at least %u MiB",
		    (long long)limit, (long long)mib, cfg->overhead_mib,
		    VM_MIN_MIB + cfg->overhead_mib);
	*mem = (unsigned)mib;
	return 0;
}
