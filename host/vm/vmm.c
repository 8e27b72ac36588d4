/* What every VMM backend shares: a VM's default settings, the paths of its files, and the
 * guest link it gets. The QEMU command line is qemu.c's. */
#include "vm/vmm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void vm_config_defaults(struct vm_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->qemu = "qemu-system-x86_64";
	cfg->kernel = "/var/lib/kuasar/vmlinux.bin";
	cfg->initrd = "/var/lib/kuasar/kuasar.initrd";
	cfg->memory_mib = 256;
	cfg->vcpus = 1;
	cfg->accel = ACCEL_AUTO;
	cfg->log_level = "info";
	cfg->kernel_params = "";
	cfg->boot_timeout_ms = 60000;
	cfg->entropy_source = "/dev/urandom";
}

int vm_paths_init(struct vm_paths *p, const char *run_dir, const char *id, kerr_t *err)
{
	if (fmt_path(p->dir, sizeof(p->dir), "%s/%s", run_dir, id) < 0 ||
	    fmt_path(p->qmp, sizeof(p->qmp), "%s/qmp.sock", p->dir) < 0 ||
	    fmt_path(p->agent, sizeof(p->agent), "%s/agent.sock", p->dir) < 0 ||
	    fmt_path(p->console, sizeof(p->console), "%s/console.sock", p->dir) < 0 ||
	    fmt_path(p->console_log, sizeof(p->console_log), "%s/console.log", p->dir) < 0 ||
	    fmt_path(p->vmm_log, sizeof(p->vmm_log), "%s/vmm.log", p->dir) < 0 ||
	    fmt_path(p->state, sizeof(p->state), "%s/vm.json", p->dir) < 0 ||
	    fmt_path(p->shared, sizeof(p->shared), "%s/shared", p->dir) < 0)
		return kerr_sys(err, "files of VM `%s` in %s", id, run_dir);
	return 0;
}

int link_parse(const char *s, enum link_kind *out)
{
	if (!strcmp(s, "auto"))
		*out = LINK_AUTO;
	else if (!strcmp(s, "serial") || !strcmp(s, "virtio-serial"))
		*out = LINK_SERIAL;
	else if (!strcmp(s, "vsock"))
		*out = LINK_VSOCK;
	else
		return -1;
	return 0;
}

const char *link_name(enum link_kind k)
{
	return k == LINK_VSOCK ? "vsock" : k == LINK_SERIAL ? "virtio-serial" : "auto";
}

int link_resolve(enum link_kind want, enum link_kind *got, char *why, size_t n)
{
	int fd;

	if (want == LINK_SERIAL) {
		*got = LINK_SERIAL;
		return 0;
	}
	fd = open("/dev/vhost-vsock", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		close(fd);
		*got = LINK_VSOCK;
		return 0;
	}
	snprintf(why, n, "/dev/vhost-vsock: %s", strerror(errno));
	if (want == LINK_VSOCK)
		return -1;
	*got = LINK_SERIAL;
	return 0;
}
