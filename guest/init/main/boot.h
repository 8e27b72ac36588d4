/* Early boot of PID 1: mounts, console, command line, and the way out (power off). */
#ifndef KUASAR_BOOT_H
#define KUASAR_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include "core/sys.h"

/* From the initramfs, moves onto a tmpfs root and re-executes there (pivot_root needs a
 * real mount as /); returns at once on a disk root or in the re-executed copy. */
void boot_leave_initramfs(char **argv, char **envp);
/* Mounts the basics and opens the console; fatal errors power off. */
void boot_early(void);
/* Sync and power off (or reset, which the VMM is told to treat as exit). Never returns. */
__attribute__((noreturn)) void boot_poweroff(void);
__attribute__((noreturn)) void boot_fatal(const char *what, int errnum);

#endif
