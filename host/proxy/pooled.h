/* A pooled VM's proxy (`kuasar-sandboxer proxy --pool`): the VM is restored and made unique
 * before any pod asks for it, waits in <run_dir>/.pool/<name>, and becomes a sandbox when the
 * daemon hands it one (the take message on fd 3). What is here is the proxy's side of that
 * hand-over; proxy.c runs it. */
#ifndef KUASAR_POOLED_H
#define KUASAR_POOLED_H

#include <stddef.h>

#include "base/err.h"
#include "base/util.h"
#include "vm/vm.h"

/* Pooled VMs wait in <run_dir>/POOL_DIR/<name>. */
#define POOL_DIR ".pool"
/* Their names: POOL_PREFIX<shape>-<random hex>, valid ids that no pod's id is likely to be. */
#define POOL_PREFIX "kuasar-pool-"
/* The take message's most bytes (its sysctls are the most of it). */
#define POOL_TAKE_MAX 16384

/* What the daemon hands a pooled VM: the sandbox it becomes. */
struct pool_take {
	char id[ID_MAX + 1];
	char hostname[HOSTNAME_MAX + 1];
	char netns[256];
	char *sysctls; /* the pod's, a JSON object of strings, "" for none; the caller frees */
};

/* The take message for t (the daemon's side); NULL without memory. The caller frees. */
char *pool_take_format(const struct pool_take *t);
/* Parses a take message; EINVAL for anything else. */
int pool_take_parse(const char *msg, size_t len, struct pool_take *t, kerr_t *err);
/* Waits, pumping the VM's console, until the daemon's message comes on ctl_fd (its length,
 * in buf) or the VM cannot be handed out: the VMM exited, SIGTERM came. A daemon that died
 * leaves it waiting for the next one, which discards it (SIGKILL). */
int pooled_wait(struct vm *vm, int ctl_fd, char *buf, size_t n, kerr_t *err);
/* The pooled VM's directory <run_dir>/.pool/<name> becomes the sandbox's <run_dir>/<id>:
 * the two are exchanged, then what the daemon's Create left (its state, the pod's files in
 * shared/.pod) moves into the VM's, and the rest goes. The VM's share is the guest's to
 * write: nothing there is followed or replaced. */
int pool_dir_swap(const char *run_dir, const char *name, const char *id, kerr_t *err);

#endif
