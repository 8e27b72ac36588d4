/* One VMM process per sandbox. QEMU (microvm) today; the command line is built here and
 * nowhere else. */
#ifndef KUASAR_VMM_H
#define KUASAR_VMM_H

#include <stddef.h>

#include "accel.h"

struct vm_config {
	const char *qemu;	 /* VMM binary */
	const char *kernel;	 /* PVH vmlinux or bzImage */
	const char *initrd;	 /* NULL or "" to boot from image */
	const char *image;	 /* raw root disk (root=/dev/vda, read-only), or NULL */
	unsigned memory_mib;
	unsigned vcpus;
	enum accel accel;
	const char *log_level;	   /* kuasar.log= in the guest */
	const char *kernel_params; /* appended to the kernel command line */
	int boot_timeout_ms;	   /* spawn to link ready */
	int until_console;	   /* benchmarks: ready at the init's first console line */
};

void vm_config_defaults(struct vm_config *cfg);

/* Paths of one VM's files inside its directory. */
struct vm_paths {
	char dir[256];
	char qmp[300];
	char agent[300];
	char console[300];
	char console_log[300];
	char vmm_log[300];
	char state[300];
};

void vm_paths_init(struct vm_paths *p, const char *run_dir, const char *id);

/* A NULL-terminated argv for the VMM; free with argv_free. */
char **qemu_argv(const struct vm_config *cfg, const struct vm_paths *p, const char *id,
		 enum accel accel);
void argv_free(char **argv);
/* 1 if path is an ELF (PVH-bootable vmlinux), 0 for a bzImage or anything else. */
int kernel_is_elf(const char *path);
/* Host TSC frequency in kHz for tsc_early_khz under TCG, 0 if unknown. */
unsigned long host_tsc_khz(void);

#endif
