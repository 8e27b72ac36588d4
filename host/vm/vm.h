/* A sandbox VM: its directory, its VMM process, QMP and the guest link. Every failure path
 * kills and reaps the VMM and removes the directory. */
#ifndef KUASAR_VM_H
#define KUASAR_VM_H

#include <stdint.h>
#include <sys/types.h>

#include "base/phases.h"
#include "rpc/agent.h"
#include "rpc/ttrpc_client.h"
#include "vm/qmp.h"
#include "vm/vmm.h"

struct vm_times {
	int64_t spawn_ns;           /* fork of the VMM (CLOCK_MONOTONIC) */
	int64_t qmp_ns;             /* QMP answered */
	int64_t console_ns;         /* the init's first console line, 0 if not seen */
	int64_t load_ns;            /* a clone's device state handed to the VMM */
	int64_t link_ns;            /* Check answered over the guest link */
	uint64_t kernel_to_init_ns; /* as the guest measured it */
	uint64_t init_to_link_ns;
};

struct vm {
	char id[ID_MAX + 1];
	struct vm_paths paths;
	pid_t pid;
	int pidfd;
	int is_child;
	int exited;
	int exit_status;
	int sigfd; /* SIGINT/SIGTERM while waiting, -1 if not watched */
	int kick;  /* wake the VMM's main loop while the first answer is pending */
	/* Called about every 50 ms while waiting (kuasar-ctl run tails output with it). */
	void (*tick)(void *arg);
	void *tick_arg;
	int64_t tick_ns; /* 0: 50 ms */
	int con_listen, con_fd;
	char con_line[512];
	size_t con_len;
	struct qmp qmp;
	struct ttrpc_client link;
	enum accel accel;
	char accel_why[256];
	struct vm_times t;
	char link_kind[16]; /* as the guest reported it */
	enum link_kind link_type;
	unsigned cid;  /* vsock guest CID, 0 without vsock */
	int reuse_dir; /* the directory exists already (the sandboxer made it at Create) */
	char hostname[HOSTNAME_MAX +
	              1]; /* set in the guest by vm_prepare_guest; the id unless changed */
	/* How it started: "cold" (kernel boot) or "template" (restored), the template's key,
	 * and why a template was not used or what happened to it. */
	char boot_mode[16];
	char template_key[33];
	char boot_note[512];
	int no_share; /* vm_prepare_guest leaves the share unmounted (appliances bring their root)
	               */
	struct phases *phases; /* when set, vm_prepare_guest marks each of its steps there */
	const struct pod_etc *pod_etc; /* when set, SetHostname gives the guest the pod's files */
	/* The guest's "container ...: created" lines (where a Create went in the guest) are
	 * logged, at most 10 a second and in printable characters: the guest writes them. */
	int echo_created;
	int64_t echo_ns;
	unsigned echo_budget;
};

struct guest_prep {
	struct clock_sync clock;
	uint32_t entropy_avail;
	uint64_t share_magic;
};

void vm_init(struct vm *vm, const char *id);
/* Marks how the VM came up in ph: "vmm" (spawned until QMP answered), "load" (a clone's
 * device state in), "link" (until the guest answered Check). */
void vm_phases(const struct vm *vm, struct phases *ph);
/* A fresh guest (cold booted or a clone) gets the host's randomness with a reseed first,
 * then the host's time, its hostname and the share, before anything runs in it. */
int vm_prepare_guest(struct vm *vm, struct guest_prep *out, kerr_t *err);
/* Creates the VM directory, spawns the VMM and waits until the guest answers Check.
 * keep: the VMM outlives this process (no parent-death signal). */
int vm_start(struct vm *vm, const struct vm_config *cfg, const char *run_dir, int keep,
             kerr_t *err);
/* Restores a clone: a new VMM maps mem_path privately, loads the device state from
 * state_path and continues; waits until the guest answers Check. */
int vm_restore(struct vm *vm, const struct vm_config *cfg, const char *state_path,
               const char *run_dir, int keep, kerr_t *err);
/* The floor under any restore: the clone's VMM process (same command line, held paused,
 * no guest state) started until QMP answers (vm->t.qmp_ns), then killed and removed. */
int vm_floor(struct vm *vm, const struct vm_config *cfg, const char *run_dir, kerr_t *err);
/* For a template: saves the running VM's device state to state_path (guest RAM stays in
 * the shared memory file: x-ignore-shared), then stops the VMM and waits for its exit. */
int vm_save_template(struct vm *vm, const char *state_path, kerr_t *err);
/* An appliance: waits until the guest reports its app ready (polling Check). Its app's
 * start-to-ready time goes to ready_ms. An app that failed or exited, or is not ready after
 * timeout_ms, is an error that quotes the console. */
int vm_wait_app(struct vm *vm, int timeout_ms, double *ready_ms, kerr_t *err);
/* Attaches to a VM started earlier with keep (for ping and shutdown). */
int vm_attach(struct vm *vm, const char *run_dir, const char *id, kerr_t *err);
/* Asks the guest to power off and waits for the VMM to exit; escalates to QMP quit, then
 * SIGKILL. Returns -1 if it had to force. Always leaves nothing behind. */
int vm_shutdown(struct vm *vm, int timeout_ms, kerr_t *err);
/* Kills the VMM if it runs, reaps it, closes everything, removes the directory. */
void vm_destroy(struct vm *vm);
/* Unmounts what is mounted below the VM's directory, then removes it. */
void vm_remove_dir(struct vm *vm);
/* Releases fds without touching the VMM (for --keep). */
void vm_release(struct vm *vm);
/* Connects the guest link (vm->link is not touched); returns the fd. */
int vm_link_connect(struct vm *vm, int64_t deadline_ns, kerr_t *err);
/* The same in two steps that never wait, for a loop: one attempt at the link, its fd
 * connected, or for vsock maybe still connecting (*connecting set: the fd turns writable when
 * done, and vm_link_finish says how it went). -1 with err when this attempt failed. */
int vm_link_begin(struct vm *vm, int *connecting, kerr_t *err);
int vm_link_finish(const struct vm *vm, int fd, kerr_t *err);
/* The pid of the sandbox's VMM if its state names one that runs, else 0. */
pid_t vm_find_vmm(const char *run_dir, const char *id);
/* Reads what the console socket has (QEMU's logfile keeps it all); whoever keeps a VM
 * running must keep calling this when con_fd is readable, or the guest's console stalls. */
void vm_console_pump(struct vm *vm);
/* Last lines of the console log, for error messages. */
void vm_console_tail(const struct vm *vm, char *buf, size_t n);

#endif
