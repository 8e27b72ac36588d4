/* One VMM process per sandbox. QEMU (microvm) today; the command line is built here and
 * nowhere else. */
#ifndef KUASAR_VMM_H
#define KUASAR_VMM_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"
#include "vm/accel.h"

/* What carries ttrpc to the guest: vhost-vsock where the host has it, else a virtio-serial
 * port on a unix socket. */
enum link_kind { LINK_AUTO, LINK_SERIAL, LINK_VSOCK };

/* A virtio-net NIC on a tap the caller opened (in the pod's netns). */
struct vm_nic {
	int fd; /* the tap; the VMM gets it as fd 3 + its index */
	uint8_t mac[6];
	unsigned mtu; /* 0: the device does not advertise one */
};
#define VM_MAX_NICS 4
/* The MAC a template VM (and so every clone's device, until the guest changes it) has on
 * NIC i: locally administered, never on the wire (the NIC stays down until configured). */
void vm_template_mac(unsigned i, uint8_t mac[6]);

/* A read-only disk on the SCSI bus from the start: a container's root disk that was
 * hot-added to the VM a snapshot was taken of (its device must be there for the state to
 * load). node is QEMU's block node and device id, as the hot-plug named it. */
struct vm_disk {
	char node[32];
	unsigned target; /* SCSI id, channel 0, LUN 0 */
	char path[KPATH_SIZE];
};
#define VM_MAX_DISKS 16

struct vm_config {
	const char *qemu;   /* VMM binary */
	const char *kernel; /* PVH vmlinux or bzImage */
	const char *initrd; /* NULL or "" to boot from image */
	const char *image;  /* raw root disk (root=/dev/vda, read-only), or NULL */
	/* An appliance's bundle (EROFS, read-only, shared by every clone): a virtio-blk disk
	 * with the serial "kuasar-app", whose app kuasar-init runs at boot. A template of it is
	 * saved only once the app is ready, within app_timeout_ms. NULL: no app. */
	const char *app_disk;
	int app_timeout_ms;
	unsigned memory_mib;
	unsigned vcpus;
	enum accel accel;
	const char *log_level;     /* kuasar.log= in the guest */
	const char *kernel_params; /* appended to the kernel command line */
	int boot_timeout_ms;       /* spawn to link ready */
	int until_console;         /* benchmarks: ready at the init's first console line */
	enum link_kind link;
	unsigned guest_cid;         /* with LINK_VSOCK; chosen at start when 0 */
	const char *entropy_source; /* backs the guest's virtio-rng */
	/* Guest RAM in a file (templates): shared for the template VM, private (copy on
	 * write) for its clones. NULL: anonymous memory. */
	const char *mem_path;
	int mem_shared;
	/* A clone: no kernel, initrd or command line; the device state comes by QMP
	 * (migrate-incoming) into a VMM started with -incoming defer. */
	int restore;
	/* With restore: the same VMM held paused (-S) instead of waiting for state, for
	 * measuring what starting the process alone costs. */
	int no_guest;
	/* With restore: the state comes in but the VM stays paused (-S), and what it saves
	 * later carries no run state, so that what loads it runs at once (a snapshot's
	 * short-lived VMM, whose RAM is the snapshot's memory file). */
	int hold;
	/* NICs: cold boots get each pod interface's MAC and MTU on the device; templates and
	 * their clones get template MACs (the guest is told the pod's). vhost_net: the data
	 * path in the host kernel (/dev/vhost-net). */
	const struct vm_nic *nics;
	unsigned n_nics;
	int vhost_net;
	/* A virtio-scsi controller (bus "scsi.0") for disks added at run time: virtio-mmio has
	 * no hotplug, a SCSI bus does (container root disks, QMP blockdev-add + scsi-hd). */
	int disk_bus;
	const struct vm_disk *disks; /* on that bus from the start (needs disk_bus) */
	unsigned n_disks;
	/* A cgroup directory the VMM moves into before exec, NULL to stay in ours: a
	 * template's VMM is charged to the daemon, not to the pod whose start built it. */
	const char *cgroup;
};

/* TCG's code cache, in MiB (part of the VMM's own memory). */
#define QEMU_TCG_TB_MIB 32
#define QEMU_TCG_TB_MIB_STR "32"

int link_parse(const char *s, enum link_kind *out);
const char *link_name(enum link_kind k);
/* auto becomes vsock when /dev/vhost-vsock opens, else serial; vsock without the device is
 * an error. */
int link_resolve(enum link_kind want, enum link_kind *got, char *why, size_t n);

void vm_config_defaults(struct vm_config *cfg);

/* Paths of one VM's files inside its directory. */
struct vm_paths {
	char dir[KPATH_SIZE];
	char qmp[KPATH_SIZE];
	char agent[KPATH_SIZE];
	char console[KPATH_SIZE];
	char console_log[KPATH_SIZE];
	char vmm_log[KPATH_SIZE];
	char state[KPATH_SIZE];
	char shared[KPATH_SIZE]; /* exported to the guest (9p, tag "kuasar") */
};

/* ENAMETOOLONG when a path would not fit. */
int vm_paths_init(struct vm_paths *p, const char *run_dir, const char *id, kerr_t *err);

/* A NULL-terminated argv for the VMM; free with argv_free. */
char **qemu_argv(const struct vm_config *cfg, const struct vm_paths *p, const char *id,
                 enum accel accel);
void argv_free(char **argv);
/* 1 if path is an ELF (PVH-bootable vmlinux), 0 for a bzImage or anything else. */
int kernel_is_elf(const char *path);
/* Host TSC frequency in kHz for tsc_early_khz under TCG, 0 if unknown. */
unsigned long host_tsc_khz(void);

#endif
