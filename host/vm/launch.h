/* Starting a sandbox VM: restored from a template when one is wanted, else cold booted. */
#ifndef KUASAR_LAUNCH_H
#define KUASAR_LAUNCH_H

#include "base/err.h"
#include "vm/template.h"
#include "vm/vmm.h"

struct vm;
/* Starts vm restored from the template of cfg's shape when s is set (building it first if
 * it is missing), else cold boots; a template that cannot be used (locked too long, broken,
 * failed to build or load) falls back to a cold boot. vm->boot_mode says which way it
 * started, vm->boot_note why (the reason is also meant for the log). */
int vm_launch(struct vm *vm, const struct vm_config *cfg, const struct tpl_store *s,
              const char *run_dir, int keep, kerr_t *err);

#endif
