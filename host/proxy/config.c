#include "proxy/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "vm/template.h"
#include "vm/vmsnap.h"

void config_defaults(struct sb_config *c)
{
	memset(c, 0, sizeof(*c));
	strcpy(c->log_level, "info");
	strcpy(c->qemu, "qemu-system-x86_64");
	c->vcpus = 1;
	c->memory_mib = 256;
	strcpy(c->kernel, "/var/lib/kuasar/vmlinux.bin");
	strcpy(c->initrd, "/var/lib/kuasar/kuasar.initrd");
	strcpy(c->entropy_source, "/dev/urandom");
	c->accel = ACCEL_AUTO;
	c->link = LINK_AUTO;
	strcpy(c->listen, "/run/kuasar-sandboxer.sock");
	strcpy(c->run_dir, "/run/kuasar");
	strcpy(c->containerd_ttrpc, "/run/containerd/containerd.sock.ttrpc");
	c->overhead_mib = 64;
	c->stop_timeout_secs = 10;
	c->boot_timeout_ms = 60000;
	strcpy(c->cgroup_parent, "kuasar");
	c->template = 1;
	strcpy(c->template_dir, TPL_DIR_DEFAULT);
	strcpy(c->template_memory_dir, TPL_MEM_DIR_DEFAULT);
	strcpy(c->appliance_dir, "/var/lib/kuasar/appliances");
	strcpy(c->snapshot_dir, SNAP_DIR_DEFAULT);
	strcpy(c->rootfs_cache_dir, "/var/lib/kuasar/rootfs");
	c->pool_idle_secs = 600;
}

enum vtype { V_STR, V_UINT, V_BOOL, V_ACCEL, V_LINK, V_LEVEL, V_ROOTFS };

struct key {
	const char *table, *name;
	enum vtype type;
	size_t off, size;
	unsigned long min, max;
};

#define S(t, k, f)                                                                                 \
	{                                                                                          \
		t, k, V_STR, offsetof(struct sb_config, f), sizeof(((struct sb_config *)0)->f), 0, \
		    0                                                                              \
	}
#define U(t, k, f, lo, hi)                                                                         \
	{                                                                                          \
		t, k, V_UINT, offsetof(struct sb_config, f), 0, lo, hi                             \
	}

static const struct key keys[] = {
	{ "sandbox", "log_level", V_LEVEL, offsetof(struct sb_config, log_level), 16, 0, 0 },
	S("hypervisor", "path", qemu),
	U("hypervisor", "vcpus", vcpus, 1, 64),
	U("hypervisor", "memory_in_mb", memory_mib, 64, 1 << 20),
	S("hypervisor", "kernel_path", kernel),
	S("hypervisor", "image_path", image),
	S("hypervisor", "initrd_path", initrd),
	S("hypervisor", "kernel_params", kernel_params),
	S("hypervisor", "entropy_source", entropy_source),
	{ "hypervisor", "debug", V_BOOL, offsetof(struct sb_config, debug), 0, 0, 0 },
	{ "hypervisor", "accel", V_ACCEL, offsetof(struct sb_config, accel), 0, 0, 0 },
	{ "hypervisor", "link", V_LINK, offsetof(struct sb_config, link), 0, 0, 0 },
	U("hypervisor", "boot_timeout_ms", boot_timeout_ms, 100, 600000),
	S("sandboxer", "listen", listen),
	S("sandboxer", "run_dir", run_dir),
	S("sandboxer", "containerd_ttrpc", containerd_ttrpc),
	U("sandboxer", "memory_overhead_mb", overhead_mib, 0, 1 << 16),
	U("sandboxer", "stop_timeout_secs", stop_timeout_secs, 1, 3600),
	S("sandboxer", "cgroup_parent", cgroup_parent),
	{ "hypervisor", "template", V_BOOL, offsetof(struct sb_config, template), 0, 0, 0 },
	S("sandboxer", "template_dir", template_dir),
	S("sandboxer", "template_memory_dir", template_memory_dir),
	S("sandboxer", "appliance_dir", appliance_dir),
	S("sandboxer", "snapshot_dir", snapshot_dir),
	{ "sandboxer", "rootfs", V_ROOTFS, offsetof(struct sb_config, rootfs_block), 0, 0, 0 },
	S("sandboxer", "rootfs_cache_dir", rootfs_cache_dir),
	{ "sandboxer", "allow_host_network", V_BOOL, offsetof(struct sb_config, allow_host_network),
	  0, 0, 0 },
	U("sandboxer", "pool", pool, 0, 64),
	U("sandboxer", "pool_idle_secs", pool_idle_secs, 0, 86400),
};

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = 0;
	return s;
}

/* A basic string "..." with \" \\ \n \t escapes; the rest of the line may only be a comment. */
static int parse_string(const char *v, char *out, size_t n, const char **why)
{
	size_t o = 0;

	if (*v++ != '"')
		return *why = "expected a quoted string", -1;
	for (; *v && *v != '"'; v++) {
		char ch = *v;

		if (ch == '\\') {
			v++;
			ch = *v == 'n' ? '\n' : *v == 't' ? '\t' : *v;
			if (*v != '"' && *v != '\\' && *v != 'n' && *v != 't')
				return *why = "unsupported escape in string", -1;
		}
		if (o + 1 >= n)
			return *why = "string too long", -1;
		out[o++] = ch;
	}
	if (*v != '"')
		return *why = "unterminated string", -1;
	v = trim((char *)v + 1);
	if (*v && *v != '#')
		return *why = "unexpected text after the string", -1;
	out[o] = 0;
	return 0;
}

static int parse_bool(const char *v, int *out, const char **why)
{
	if (!strncmp(v, "true", 4) && (!v[4] || isspace((unsigned char)v[4]) || v[4] == '#'))
		*out = 1;
	else if (!strncmp(v, "false", 5) && (!v[5] || isspace((unsigned char)v[5]) || v[5] == '#'))
		*out = 0;
	else
		return *why = "expected true or false", -1;
	return 0;
}

static int parse_uint(const struct key *k, const char *v, unsigned *out, const char **why)
{
	unsigned long u;
	char *end;

	if (!isdigit((unsigned char)*v))
		return *why = "expected a non-negative integer", -1;
	errno = 0;
	u = strtoul(v, &end, 10);
	end = trim(end);
	if (errno || (*end && *end != '#'))
		return *why = "expected a non-negative integer", -1;
	if (u < k->min || u > k->max) {
		static char range[96];

		snprintf(range, sizeof(range), "out of range (%lu..%lu)", k->min, k->max);
		return *why = range, -1;
	}
	*out = (unsigned)u;
	return 0;
}

static int parse_value(const struct key *k, const char *v, struct sb_config *c, const char **why)
{
	char *field = (char *)c + k->off, tmp[256];

	switch (k->type) {
	case V_STR: return parse_string(v, field, k->size, why);
	case V_LEVEL:
		if (parse_string(v, tmp, sizeof(tmp), why) < 0)
			return -1;
		if (strcmp(tmp, "error") && strcmp(tmp, "warn") && strcmp(tmp, "info") &&
		    strcmp(tmp, "debug") && strcmp(tmp, "trace"))
			return *why = "log_level must be error, warn, info, debug or trace", -1;
		if (!strcmp(tmp, "trace"))
			strcpy(tmp, "debug");
		snprintf(field, k->size, "%s", tmp);
		return 0;
	case V_ACCEL:
		if (parse_string(v, tmp, sizeof(tmp), why) < 0)
			return -1;
		if (accel_parse(tmp, (enum accel *)(void *)field) < 0)
			return *why = "accel must be auto, kvm or tcg", -1;
		return 0;
	case V_LINK:
		if (parse_string(v, tmp, sizeof(tmp), why) < 0)
			return -1;
		if (link_parse(tmp, (enum link_kind *)(void *)field) < 0)
			return *why = "link must be auto, serial or vsock", -1;
		return 0;
	case V_ROOTFS:
		if (parse_string(v, tmp, sizeof(tmp), why) < 0)
			return -1;
		if (strcmp(tmp, "9p") && strcmp(tmp, "block"))
			return *why = "rootfs must be 9p or block", -1;
		*(int *)(void *)field = !strcmp(tmp, "block");
		return 0;
	case V_BOOL: return parse_bool(v, (int *)(void *)field, why);
	case V_UINT: return parse_uint(k, v, (unsigned *)(void *)field, why);
	}
	return -1;
}

static const struct key *find_key(const char *table, const char *name)
{
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (!strcmp(keys[i].table, table) && !strcmp(keys[i].name, name))
			return &keys[i];
	return NULL;
}

static int known_table(const char *t)
{
	return !strcmp(t, "sandbox") || !strcmp(t, "hypervisor") || !strcmp(t, "sandboxer");
}

static int parse_line(struct sb_config *c, char *line, char *table, size_t tn, const char **why,
                      char *what, size_t wn)
{
	char *s = trim(line), *eq, *name;
	const struct key *k;

	if (!*s || *s == '#')
		return 0;
	if (*s == '[') {
		char *e = strchr(s, ']');

		if (!e || (*trim(e + 1) && *trim(e + 1) != '#'))
			return *why = "malformed table header", -1;
		*e = 0;
		s = trim(s + 1);
		if (!known_table(s)) {
			snprintf(what, wn, "unknown table [%s]", s);
			return *why = what, -1;
		}
		snprintf(table, tn, "%s", s);
		return 0;
	}
	eq = strchr(s, '=');
	if (!eq)
		return *why = "expected key = value", -1;
	*eq = 0;
	name = trim(s);
	k = *table ? find_key(table, name) : NULL;
	if (!k) {
		snprintf(what, wn, "unknown key `%s`%s%s%s", name,
		         *table ? " in [" : " outside any table", table, *table ? "]" : "");
		return *why = what, -1;
	}
	if (parse_value(k, trim(eq + 1), c, why) < 0) {
		snprintf(what, wn, "%s.%s: %s", table, name, *why);
		return *why = what, -1;
	}
	return 0;
}

int config_parse(struct sb_config *c, const char *text, const char *name, kerr_t *err)
{
	char table[32] = "", what[512];
	const char *p = text;
	int lineno = 0;

	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		char line[1024];
		const char *why = NULL;

		lineno++;
		if (len >= sizeof(line))
			return kerr_set(err, EINVAL, "%s:%d: line too long", name, lineno);
		memcpy(line, p, len);
		line[len] = 0;
		if (parse_line(c, line, table, sizeof(table), &why, what, sizeof(what)) < 0)
			return kerr_set(err, EINVAL, "%s:%d: %s", name, lineno, why);
		p += len + (nl ? 1 : 0);
	}
	return 0;
}

int config_load(struct sb_config *c, const char *path, kerr_t *err)
{
	_cleanup_free_ char *text = NULL;
	size_t len;

	config_defaults(c);
	if (read_file(path, &text, &len, 1 << 20, err) < 0) {
		if (err->errnum == ENOENT)
			return 0;
		return kerr_wrap(err, "config");
	}
	if (strlen(text) != len)
		return kerr_set(err, EINVAL, "%s: contains a NUL byte", path);
	return config_parse(c, text, path, err);
}

void config_vm(const struct sb_config *c, struct vm_config *vm)
{
	vm_config_defaults(vm);
	vm->qemu = c->qemu;
	vm->kernel = c->kernel;
	vm->initrd = c->initrd[0] ? c->initrd : NULL;
	vm->image = c->image[0] ? c->image : NULL;
	vm->memory_mib = c->memory_mib;
	vm->vcpus = c->vcpus;
	vm->accel = c->accel;
	vm->link = c->link;
	vm->log_level = c->debug ? "debug" : c->log_level;
	vm->kernel_params = c->kernel_params;
	vm->entropy_source = c->entropy_source;
	vm->boot_timeout_ms = (int)c->boot_timeout_ms;
	vm->disk_bus = c->rootfs_block;
}
