/* What kuasar-ctl's commands share: the run directory, the template store, the default
 * kernel and initrd, the VM options of boot and run, and small helpers. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "ctl/ctl.h"
#include "vm/template.h"
#include "vm/vm.h"

static const char *run_dir = "/run/kuasar";
static char default_kernel[PATH_MAX], default_initrd[PATH_MAX];
static struct tpl_store templates;
static int use_template;

const struct tpl_store *ctl_templates(void)
{
	return &templates;
}

const struct tpl_store *ctl_template_use(void)
{
	return use_template ? &templates : NULL;
}

int ctl_fail(const kerr_t *err)
{
	fprintf(stderr, "kuasar-ctl: error: %s\n", err->msg);
	return 1;
}

const char *ctl_run_dir(void)
{
	return run_dir;
}

/* Kernel and initrd default to the ones next to this binary (a build tree), else the
 * installed ones under /var/lib/kuasar. */
static void find_defaults(void)
{
	char exe[PATH_MAX], *dir;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	struct stat st;

	snprintf(default_kernel, sizeof(default_kernel), "/var/lib/kuasar/vmlinux.bin");
	snprintf(default_initrd, sizeof(default_initrd), "/var/lib/kuasar/kuasar.initrd");
	if (n <= 0)
		return;
	exe[n] = '\0';
	dir = dirname(exe);
	if (snprintf(default_kernel, sizeof(default_kernel), "%s/vmlinux.bin", dir) > 0 &&
	    stat(default_kernel, &st) < 0)
		snprintf(default_kernel, sizeof(default_kernel), "/var/lib/kuasar/vmlinux.bin");
	if (snprintf(default_initrd, sizeof(default_initrd), "%s/kuasar.initrd", dir) > 0 &&
	    stat(default_initrd, &st) < 0)
		snprintf(default_initrd, sizeof(default_initrd), "/var/lib/kuasar/kuasar.initrd");
}

/* SIGINT and SIGTERM are read through a signalfd while a VM starts, so an interrupted
 * boot still kills and reaps its VMM and removes its files. */
int ctl_watch_signals(void)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, 0 };

	return signalfd_for(sigs);
}

int ctl_parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || end == s || v < min || v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

void ctl_random_id(char *buf, size_t n)
{
	unsigned char r[4] = { 0 };

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		r[0] = (unsigned char)getpid();
	snprintf(buf, n, "vm-%02x%02x%02x%02x", r[0], r[1], r[2], r[3]);
}

void ctl_config_defaults(struct vm_config *cfg)
{
	const char *level = getenv("KUASAR_GUEST_LOG");

	vm_config_defaults(cfg);
	cfg->kernel = default_kernel;
	cfg->initrd = default_initrd;
	if (level && *level)
		cfg->log_level = level;
}

int ctl_vm_option(int c, const char *arg, struct vm_config *cfg)
{
	switch (c) {
	case 'k': cfg->kernel = arg; return 1;
	case 'q': cfg->qemu = arg; return 1;
	case 'l': cfg->log_level = arg; return 1;
	case 'm':
		if (ctl_parse_uint(arg, 64, 1 << 20, &cfg->memory_mib) < 0)
			return fprintf(stderr, "kuasar-ctl: --memory: 64 to 1048576 MiB\n"), -1;
		return 1;
	case 'c':
		if (ctl_parse_uint(arg, 1, 255, &cfg->vcpus) < 0)
			return fprintf(stderr, "kuasar-ctl: --vcpus: 1 to 255\n"), -1;
		return 1;
	case 'a':
		if (accel_parse(arg, &cfg->accel) < 0)
			return fprintf(stderr, "kuasar-ctl: --accel: auto, kvm or tcg\n"), -1;
		return 1;
	case 'T': use_template = 1; return 1;
	default: return 0;
	}
}

int ctl_record_netns(const struct vm *vm, const char *netns, kerr_t *err)
{
	char path[KPATH_SIZE];

	if (fmt_path(path, sizeof(path), "%s/" CTL_NETNS_FILE, vm->paths.dir) < 0)
		return kerr_set(err, ENAMETOOLONG, "%s: path too long", vm->paths.dir);
	return write_file_atomic(path, netns, strlen(netns), err);
}

int ctl_setup(kerr_t *err)
{
	const char *env = getenv("KUASAR_RUN_DIR");

	if (env && *env)
		run_dir = env;
	if (tpl_store_init(&templates, getenv("KUASAR_TEMPLATE_DIR"),
	                   getenv("KUASAR_TEMPLATE_MEM_DIR"), err) < 0)
		return -1;
	find_defaults();
	return 0;
}

void ctl_set_run_dir(const char *dir)
{
	run_dir = dir;
}
