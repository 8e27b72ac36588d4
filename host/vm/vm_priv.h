/* What the files of host/vm/ share about a VM's start and its waits; not for other
 * folders (vm.h is the interface). */
#ifndef KUASAR_VM_PRIV_H
#define KUASAR_VM_PRIV_H

#include <stdint.h>

#include "vm/vm.h"

/* vm.c: the VMM process. */
/* Notes the VMM's exit (reaped when it is our child). */
void vm_reap(struct vm *vm);
/* Waits until fd is ready (fd < 0: until the console moved) while watching the VMM,
 * signals and the console; ECHILD when the VMM died, EINTR on a signal, ETIMEDOUT. */
int vm_wait_for(struct vm *vm, int fd, short events, int64_t deadline_ns, kerr_t *err);
int vm_wait_exit(struct vm *vm, int64_t deadline_ns);
/* Link, CID, directory: what a cold boot and a restore both need first. */
int vm_setup(struct vm *vm, const struct vm_config *cfg, const char *run_dir, kerr_t *err);
/* Forks the VMM and records it in vm.json before it may exec. */
int vm_spawn(struct vm *vm, const struct vm_config *cfg, enum accel accel, int keep, kerr_t *err);
int vm_write_state(struct vm *vm, const struct vm_config *cfg, kerr_t *err);
/* A step that lost its peer usually means the VMM died: says that instead. */
int vm_step_failed(struct vm *vm, int timeout_ms, kerr_t *err);

/* console.c */
/* The error for a VMM that exited: its status, its last log line, the console's tail. */
int vm_exited_error(struct vm *vm, kerr_t *err);

/* guest_link.c */
int vm_open_qmp(struct vm *vm, int64_t deadline, kerr_t *err);
/* QEMU creates its server sockets while starting: retries until path accepts. */
int vm_connect_retry(struct vm *vm, const char *path, int64_t deadline_ns, kerr_t *err);
/* The client's wait hook while a call to the guest is pending. */
int vm_link_wait(void *ctx, int fd, int64_t deadline_ns, kerr_t *err);
/* Takes fd (the guest link) and asks until the guest answers Check. */
int vm_check_guest(struct vm *vm, int fd, int64_t deadline_ns, kerr_t *err);
int vm_connect_guest(struct vm *vm, int64_t deadline_ns, kerr_t *err);
int vm_wait_console(struct vm *vm, int64_t deadline, kerr_t *err);

/* snapshot.c: migration steps over QMP, each waiting for its answer. */
/* x-ignore-shared: RAM in a shared memory file is not sent (templates, snapshots). */
int vm_set_ignore_shared(struct vm *vm, int on, int64_t deadline, kerr_t *err);
/* Hands fd to the VMM under name (QMP getfd), for an fd: migration URI. */
int vm_pass_fd(struct vm *vm, int fd, const char *name, int64_t deadline, kerr_t *err);
/* cmd ("migrate" or "migrate-incoming") to uri. */
int vm_migrate_cmd(struct vm *vm, const char *cmd, const char *uri, int64_t deadline, kerr_t *err);
/* Polls query-migrate until the outgoing migration completed (0) or failed (-1). */
int vm_migration_done(struct vm *vm, int64_t deadline, kerr_t *err);
/* query-migrate's answer: 0 completed, 1 still going, -1 failed or cancelled (err says why). */
int vm_migration_status(json_object *r, kerr_t *err);

#endif
