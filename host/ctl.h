/* Shared by kuasar-ctl's command files. */
#ifndef KUASAR_CTL_H
#define KUASAR_CTL_H

#include <stddef.h>

#include "err.h"
#include "vmm.h"

const char *ctl_run_dir(void);
/* vm_config_defaults plus the kernel and initrd next to this binary, if present. */
void ctl_config_defaults(struct vm_config *cfg);
void ctl_random_id(char *buf, size_t n);
int ctl_parse_uint(const char *s, unsigned min, unsigned max, unsigned *out);
/* Blocks SIGINT/SIGTERM/SIGHUP and returns a signalfd for them. */
int ctl_watch_signals(void);
int ctl_fail(const kerr_t *err);

int ctl_run(int argc, char **argv);

#endif
