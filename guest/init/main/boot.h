/* Early boot of PID 1: mounts, console, command line, and the way out (power off). */
#ifndef KUASAR_BOOT_H
#define KUASAR_BOOT_H

#include <stddef.h>
#include <stdint.h>

#define KUASAR_VERSION "0.1.0"

struct boot_state {
	/* CLOCK_MONOTONIC at the init's entry: kernel start to init exec. */
	uint64_t init_ns;
	/* CLOCK_MONOTONIC when the guest link was first served; 0 before. */
	uint64_t link_ns;
	uint32_t link_resets;
	/* Started from the initramfs and moved onto a tmpfs root. */
	int moved_root;
};

extern struct boot_state boot;

uint64_t mono_now(void);
/* Reads up to size-1 bytes of path, NUL-terminated; the length or -1. */
int boot_read_file(const char *path, char *buf, size_t size);
/* From the initramfs, moves onto a tmpfs root and re-executes there (pivot_root needs a
 * real mount as /); returns at once on a disk root or in the re-executed copy. */
void boot_leave_initramfs(char **argv, char **envp);
/* Mounts the basics and opens the console; fatal errors power off. */
void boot_early(void);
/* Sync and power off (or reset, which the VMM is told to treat as exit). Never returns. */
__attribute__((noreturn)) void boot_poweroff(void);
__attribute__((noreturn)) void boot_fatal(const char *what, int errnum);

#endif
