#include "vm/vmm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_ARGS 64

int kernel_is_elf(const char *path)
{
	unsigned char magic[4] = { 0 };
	FILE *f = fopen(path, "rbe");
	int n;

	if (!f)
		return 0;
	n = (int)fread(magic, 1, sizeof(magic), f);
	fclose(f);
	return n == 4 && !memcmp(magic,
	                         "\x7f"
	                         "ELF",
	                         4);
}

unsigned long host_tsc_khz(void)
{
	FILE *f = fopen("/proc/cpuinfo", "re");
	char line[256];
	double mhz = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "cpu MHz : %lf", &mhz) == 1)
			break;
	fclose(f);
	return (unsigned long)(mhz * 1000.0 + 0.5);
}

struct args {
	char *v[MAX_ARGS + 1];
	int n;
};

static void add(struct args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add(struct args *a, const char *fmt, ...)
{
	va_list ap;

	if (a->n >= MAX_ARGS)
		abort(); /* a programming error: the table below is fixed */
	va_start(ap, fmt);
	if (vasprintf(&a->v[a->n], fmt, ap) < 0)
		abort();
	va_end(ap);
	a->n++;
}

static void add_cmdline(struct args *a, const struct vm_config *cfg, enum accel accel)
{
	char tsc[64] = "";
	unsigned long khz = host_tsc_khz();

	/* Under TCG, microvm's TSC calibration never finishes without a known frequency. The
	 * emulated TSC runs off the host's clock, so it is reliable: tsc=reliable spares the
	 * guest its clocksource watchdog, which woke an idle VM's QEMU 15 times a second (1
	 * without it). */
	if (accel == ACCEL_TCG && khz)
		snprintf(tsc, sizeof(tsc), " tsc_early_khz=%lu tsc=reliable", khz);
	/* reboot=t: a guest reboot is a triple fault, which -no-reboot turns into VMM exit.
	 * pci=off: microvm has no PCI bus, probing it only prints an error.
	 * lapic_timer_hz: QEMU runs the LAPIC timer at 1 GHz; saying so spares the guest its
	 * calibration (kernel/patches/0001), about 220 ms under TCG. */
	add(a, "-append");
	add(a,
	    "console=ttyS0 quiet reboot=t panic=-1 pci=off lapic_timer_hz=1000000000 "
	    "kuasar.log=%s%s%s%s%s",
	    cfg->log_level, tsc, cfg->image && cfg->image[0] ? " root=/dev/vda ro" : "",
	    cfg->kernel_params[0] ? " " : "", cfg->kernel_params);
}

void vm_template_mac(unsigned i, uint8_t mac[6])
{
	static const uint8_t base[6] = { 0x02, 0x4b, 0x51, 0x00, 0x00, 0x00 };

	memcpy(mac, base, 6);
	mac[5] = (uint8_t)i;
}

/* Each tap is fd 3 + i in the VMM (vm.c puts it there). A template's NICs (mem_path set:
 * the template VM or a clone) have its MACs and no MTU, so that one template serves pods
 * of any MAC and MTU. */
static void add_nics(struct args *a, const struct vm_config *cfg)
{
	for (unsigned i = 0; i < cfg->n_nics && i < VM_MAX_NICS; i++) {
		int shape = cfg->mem_path != NULL;
		const struct vm_nic *n = shape ? NULL : &cfg->nics[i];
		uint8_t m[6];
		char mtu[24] = "";

		if (!n)
			vm_template_mac(i, m);
		else
			memcpy(m, n->mac, 6);
		if (n && n->mtu)
			snprintf(mtu, sizeof(mtu), ",host_mtu=%u", n->mtu);
		add(a, "-netdev");
		add(a, "tap,id=net%u,fd=%u%s", i, 3 + i, cfg->vhost_net ? ",vhost=on" : "");
		add(a, "-device");
		add(a, "virtio-net-device,netdev=net%u,mac=%02x:%02x:%02x:%02x:%02x:%02x%s", i,
		    m[0], m[1], m[2], m[3], m[4], m[5], mtu);
	}
}

/* The machine: microvm, its accelerator, CPUs and memory. */
static void add_machine(struct args *a, const struct vm_config *cfg, const char *id,
                        enum accel accel)
{
	add(a, "%s", cfg->qemu);
	add(a, "-name");
	add(a, "kuasar-%s,process=kuasar-%s", id, id);
	/* acpi=off: the guest kernel has no ACPI; QEMU then lists the virtio-mmio devices on
	 * the kernel command line. */
	/* A bzImage needs microvm's linuxboot option ROM; a vmlinux ELF boots through PVH.
	 * The PIT and PIC stay: without them the guest cannot verify its LAPIC timer under
	 * TCG, disables it, and every sleep or timeout in the guest then waits for some other
	 * interrupt to come along. */
	add(a, "-machine");
	add(a, "microvm,acpi=off,x-option-roms=%s,pit=on,pic=on,isa-serial=on,rtc=on%s",
	    kernel_is_elf(cfg->kernel) ? "off" : "on", cfg->mem_path ? ",memory-backend=mem" : "");
	/* TCG's translated code lives in a buffer that grows to 1 GiB by default: capped, so the
	 * VMM's own memory has a bound the pod's limit can account for. */
	add(a, "-accel");
	add(a, "%s", accel == ACCEL_KVM ? "kvm" : "tcg,tb-size=" QEMU_TCG_TB_MIB_STR);
	add(a, "-cpu");
	add(a, "%s", accel == ACCEL_KVM ? "host" : "max");
	add(a, "-m");
	add(a, "%uM", cfg->memory_mib);
	add(a, "-smp");
	add(a, "%u", cfg->vcpus);
	add(a, "-nodefaults");
	add(a, "-no-user-config");
	add(a, "-nographic");
	add(a, "-no-reboot");
	if (cfg->mem_path) {
		/* share=on: the template's writes reach the file; share=off: a clone's stay in
		 * its own copy-on-write pages. The template's file is filled once, by the template
		 * VMM (prealloc), so that its pages are charged there and a clone's reads never
		 * allocate file pages charged to the pod that happened to read first. */
		add(a, "-object");
		add(a, "memory-backend-file,id=mem,size=%uM,mem-path=%s,share=%s%s",
		    cfg->memory_mib, cfg->mem_path, cfg->mem_shared ? "on" : "off",
		    cfg->mem_shared ? ",prealloc=on" : "");
	}
}

/* What boots (kernel, initrd) or is restored, and the disks. */
static void add_boot_and_disks(struct args *a, const struct vm_config *cfg, enum accel accel)
{
	if (!cfg->restore) {
		add(a, "-kernel");
		add(a, "%s", cfg->kernel);
	}
	if (!cfg->restore && cfg->initrd && cfg->initrd[0]) {
		add(a, "-initrd");
		add(a, "%s", cfg->initrd);
	}
	if (cfg->image && cfg->image[0]) {
		add(a, "-drive");
		add(a, "id=root,file=%s,format=raw,if=none,readonly=on", cfg->image);
		add(a, "-device");
		add(a, "virtio-blk-device,drive=root");
	}
	if (cfg->app_disk && cfg->app_disk[0]) {
		add(a, "-drive");
		add(a, "id=app,file=%s,format=raw,if=none,readonly=on", cfg->app_disk);
		add(a, "-device");
		add(a, "virtio-blk-device,drive=app,serial=kuasar-app");
	}
	if (cfg->disk_bus) {
		add(a, "-device");
		add(a, "virtio-scsi-device,id=scsi");
	}
	for (unsigned i = 0; cfg->disk_bus && i < cfg->n_disks; i++) {
		const struct vm_disk *d = &cfg->disks[i];

		add(a, "-blockdev");
		add(a, "driver=raw,node-name=%s,read-only=on,file.driver=file,file.filename=%s",
		    d->node, d->path);
		add(a, "-device");
		add(a, "scsi-hd,id=%s,drive=%s,bus=scsi.0,scsi-id=%u,lun=0", d->node, d->node,
		    d->target);
	}
	if (!cfg->restore)
		add_cmdline(a, cfg, accel);
	else if (cfg->no_guest)
		add(a, "-S");
	else {
		add(a, "-incoming");
		add(a, "defer");
	}
	if (cfg->restore && cfg->hold) {
		add(a, "-S");
		add(a, "-global");
		add(a, "migration.store-global-state=off");
	}
}

/* The console, QMP, the guest link and the share. */
static void add_channels(struct args *a, const struct vm_config *cfg, const struct vm_paths *p)
{
	/* The console goes to our socket while we watch, and always to console.log. */
	add(a, "-chardev");
	add(a, "socket,id=con,path=%s,server=off,logfile=%s,logappend=on", p->console,
	    p->console_log);
	add(a, "-serial");
	add(a, "chardev:con");
	add(a, "-chardev");
	add(a, "socket,id=qmp,path=%s,server=on,wait=off", p->qmp);
	add(a, "-mon");
	add(a, "chardev=qmp,mode=control");
	/* The guest link: a virtio-serial port (no vhost-vsock needed on the host). */
	add(a, "-device");
	add(a, "virtio-serial-device,max_ports=2");
	add(a, "-chardev");
	add(a, "socket,id=agent,path=%s,server=on,wait=off", p->agent);
	add(a, "-device");
	add(a, "virtserialport,chardev=agent,name=io.kuasar.agent");
	if (cfg->link == LINK_VSOCK) {
		add(a, "-device");
		add(a, "vhost-vsock-device,guest-cid=%u", cfg->guest_cid);
	}
	/* The share: bundles and root filesystems, mounted by the guest on request. */
	add(a, "-fsdev");
	/* Root filesystems are mounts below the share: remap inode numbers across them. */
	add(a, "local,id=share,path=%s,security_model=none,multidevs=remap", p->shared);
	add(a, "-device");
	add(a, "virtio-9p-device,fsdev=share,mount_tag=kuasar");
}

char **qemu_argv(const struct vm_config *cfg, const struct vm_paths *p, const char *id,
                 enum accel accel)
{
	struct args a = { .n = 0 };
	char **out;

	add_machine(&a, cfg, id, accel);
	add_boot_and_disks(&a, cfg, accel);
	add_channels(&a, cfg, p);
	add_nics(&a, cfg);
	/* Entropy from the host for the guest's hwrng. */
	add(&a, "-object");
	add(&a, "rng-random,id=rng,filename=%s",
	    cfg->entropy_source ? cfg->entropy_source : "/dev/urandom");
	add(&a, "-device");
	add(&a, "virtio-rng-device,rng=rng");
	/* A balloon gives memory back to the host when a pod is resized down; only on a VM
	 * whose RAM is its own. QEMU before 8.1 discards a ballooned page of a file-backed RAM
	 * by punching a hole in the file even when it is mapped privately, and the pages a
	 * guest balloons are the guest's choice: in a template clone that would reach the
	 * template's memory file and every other clone of it. */
	if (!cfg->mem_path) {
		add(&a, "-device");
		add(&a, "virtio-balloon-device");
	}
	out = calloc((size_t)a.n + 1, sizeof(char *));
	if (!out)
		abort();
	memcpy(out, a.v, (size_t)a.n * sizeof(char *));
	return out;
}

void argv_free(char **argv)
{
	if (!argv)
		return;
	for (char **p = argv; *p; p++)
		free(*p);
	free(argv);
}
