#include "vm/appliance.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/util.h"

static int json_path_of(struct appliance *a, json_object *o, const char *key, const char *def,
                        char *out, kerr_t *err)
{
	const char *v = jget_str(o, key, def);

	if (!*v || strchr(v, '/'))
		return kerr_set(err, EINVAL, "%s/app.json: %s must be a file name in the directory",
		                a->dir, key);
	return fmt_path(out, KPATH_SIZE, "%s/%s", a->dir, v) < 0
	           ? kerr_set(err, ENAMETOOLONG, "%s: path too long", a->dir)
	           : 0;
}

int appliance_open(const char *dir, const struct vm_config *base, const char *mem_dir,
                   struct appliance *a, kerr_t *err)
{
	char path[KPATH_SIZE], tdir[KPATH_SIZE], *text = NULL;
	json_object *o;
	int rc = -1;

	memset(a, 0, sizeof(*a));
	if (snprintf(a->dir, sizeof(a->dir), "%s", dir) >= (int)sizeof(a->dir))
		return kerr_set(err, ENAMETOOLONG, "%s: path too long", dir);
	if (fmt_path(path, sizeof(path), "%s/app.json", dir) < 0 ||
	    read_file(path, &text, NULL, 1 << 16, err) < 0)
		return kerr_wrap(err, "appliance %s (tools/mkimage.sh --app makes one)", dir);
	o = json_tokener_parse(text);
	free(text);
	if (!o || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return kerr_set(err, EINVAL, "%s: not a JSON object", path);
	}
	a->cfg = *base;
	if (json_path_of(a, o, "kernel", "vmlinux", a->kernel, err) == 0 &&
	    json_path_of(a, o, "initrd", "kuasar.initrd", a->initrd, err) == 0 &&
	    json_path_of(a, o, "disk", "app.erofs", a->disk, err) == 0)
		rc = 0;
	snprintf(a->name, sizeof(a->name), "%s", jget_str(o, "name", ""));
	snprintf(a->digest, sizeof(a->digest), "%s", jget_str(o, "digest", ""));
	snprintf(a->ready, sizeof(a->ready), "%s", jget_str(o, "ready", ""));
	if (!strncmp(a->ready, "tcp:", 4) || !strncmp(a->ready, "http:", 5))
		a->port = (unsigned)strtoul(strchr(a->ready, ':') + 1, NULL, 10);
	a->cfg.memory_mib = (unsigned)jget_int(o, "memory_mib", (int)a->cfg.memory_mib);
	a->cfg.vcpus = (unsigned)jget_int(o, "vcpus", (int)a->cfg.vcpus);
	a->cfg.app_timeout_ms = jget_int(o, "ready_timeout_ms", APP_TIMEOUT_MS);
	json_object_put(o);
	if (rc < 0)
		return -1;
	if (a->cfg.memory_mib < 64 || a->cfg.memory_mib > 65536 || a->cfg.vcpus < 1 ||
	    a->cfg.vcpus > 64)
		return kerr_set(err, EINVAL, "%s: memory_mib 64-65536 and vcpus 1-64", path);
	a->cfg.kernel = a->kernel;
	a->cfg.initrd = a->initrd;
	a->cfg.app_disk = a->disk;
	if (fmt_path(tdir, sizeof(tdir), "%s/templates", dir) < 0 ||
	    tpl_store_init(&a->store, tdir, mem_dir, err) < 0)
		return kerr_wrap(err, "%s: templates", dir);
	return 0;
}
