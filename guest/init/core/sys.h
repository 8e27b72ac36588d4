/* What every layer of the init shares about this boot: its clock, small file reads, and
 * the facts of the boot that later layers report (the link's first hour, its resets). */
#ifndef KUASAR_GUEST_SYS_H
#define KUASAR_GUEST_SYS_H

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

#endif
