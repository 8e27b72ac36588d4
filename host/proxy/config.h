/* kuasar-sandboxer's configuration: /var/lib/kuasar/config.toml. Kuasar's keys ([sandbox]
 * log_level; [hypervisor] path, vcpus, memory_in_mb, kernel_path, image_path, initrd_path,
 * kernel_params, entropy_source, debug) plus ours ([hypervisor] accel, link, template;
 * [sandboxer] listen, run_dir, containerd_ttrpc, memory_overhead_mb, stop_timeout_secs,
 * cgroup_parent, template_dir, template_memory_dir, appliance_dir, snapshot_dir, rootfs,
 * rootfs_cache_dir,
 * allow_host_network, pool, pool_idle_secs). A
 * missing file means defaults; an unknown key or a bad value is an error naming the line. */
#ifndef KUASAR_CONFIG_H
#define KUASAR_CONFIG_H

#include "base/err.h"
#include "vm/vmm.h"

#define CONFIG_DEFAULT_PATH "/var/lib/kuasar/config.toml"

struct sb_config {
	char log_level[16];
	char qemu[256];
	unsigned vcpus;
	unsigned memory_mib;
	char kernel[256];
	char image[256];
	char initrd[256];
	char kernel_params[512];
	char entropy_source[256];
	int debug;
	enum accel accel;
	enum link_kind link;
	char listen[108];
	char run_dir[160];
	char containerd_ttrpc[108]; /* "" : events are not forwarded */
	unsigned overhead_mib;      /* added to a pod's memory limit */
	unsigned stop_timeout_secs; /* Stop's default when containerd sends 0 */
	unsigned boot_timeout_ms;
	char cgroup_parent[128]; /* "" : sandboxes get no cgroup of their own */
	int template;            /* restore sandboxes from VM templates (the default) */
	char template_dir[200];
	char template_memory_dir[200];
	/* Pods annotated io.kuasar.appliance=NAME restore <appliance_dir>/NAME (mkimage --app). */
	char appliance_dir[200];
	/* Pods annotated io.kuasar.snapshot=NAME restore <snapshot_dir>/NAME (kuasar-ctl
	 * snapshot), its memory in <template_memory_dir>/snapshots. */
	char snapshot_dir[200];
	/* Container root filesystems: over the 9p share (0), or as read-only EROFS disks built
	 * from the image's layers, cached in rootfs_cache_dir while pods use them (1). */
	int rootfs_block;
	char rootfs_cache_dir[200];
	/* Host-network pods: refused (0, the default: a VM cannot share the host's network
	 * stack), or given a VM without a NIC (1). */
	int allow_host_network;
	/* Pooled VMs kept ready per VM shape (0: no pool), and how long a shape no pod asked for
	 * keeps its members (0: for ever). */
	unsigned pool;
	unsigned pool_idle_secs;
};

void config_defaults(struct sb_config *c);
/* Parses TOML text (the subset the keys need: tables, strings, integers, booleans). */
int config_parse(struct sb_config *c, const char *text, const char *name, kerr_t *err);
/* Defaults, then the file if it exists. */
int config_load(struct sb_config *c, const char *path, kerr_t *err);
/* The VM settings a sandbox starts from. */
void config_vm(const struct sb_config *c, struct vm_config *vm);

#endif
