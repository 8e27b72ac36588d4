/* kuasar-sandboxer's sandboxes: one VM each, driven from the daemon's one loop.
 *
 * The daemon is the control plane: Controller calls, state on disk, stop and cleanup. Each
 * running sandbox has a task proxy process (this binary, `kuasar-sandboxer proxy`) that boots
 * the VM and then owns the data plane: the guest link, the task socket containerd holds
 * connections to, and the event forwarding. containerd treats a closed task connection as a
 * dead task, so those connections must not live in a daemon that restarts: the proxy and
 * the VMM outlive the daemon, and a restarted daemon re-adopts both by their pids. State
 * files are written atomically at every change. */
#ifndef KUASAR_SANDBOX_H
#define KUASAR_SANDBOX_H

#include <stdint.h>
#include <sys/types.h>

#include "base/loop.h"
#include "base/util.h"
#include "proxy/config.h"
#include "rpc/grpc.h"
#include "sandboxer/pool.h"
#include "sandboxer/sb_cgroup.h"
#include "vm/vmm.h"

enum sb_state { SB_CREATED, SB_STARTING, SB_READY, SB_STOPPING, SB_STOPPED };

struct sb_waiter {
	struct grpc_call *call;
	struct sandbox *sb;
	struct sb_waiter *next;
};

struct sandboxer;

/* Calls that wait for the same moment (the sandbox stopped, or removed); a call whose
 * client goes away first leaves the set. */
struct call_set {
	struct grpc_call *calls[8];
	int n;
};

/* The pod annotation naming an appliance (a directory name under appliance_dir) that the
 * sandbox is restored from, its app already serving. */
#define APPLIANCE_ANNOTATION "io.kuasar.appliance"
#define APPLIANCE_NAME_MAX 64
/* The pod annotation naming a snapshot (kuasar-ctl snapshot, in snapshot_dir) that the
 * sandbox is restored from: its processes carry on from the snapshot's moment. */
#define SNAPSHOT_ANNOTATION "io.kuasar.snapshot"
/* The pod annotation choosing how its containers' root filesystems reach the VM: "9p" or
 * "block" ([sandboxer] rootfs is the default). */
#define ROOTFS_ANNOTATION "io.kuasar.rootfs"
/* The task socket in the sandbox's directory. */
#define TASK_SOCK "task.sock"

struct sandbox {
	char id[ID_MAX + 1];
	struct sandboxer *sbx;
	enum sb_state state;
	struct vm_paths paths;
	unsigned vcpus, memory_mib;
	unsigned memory_now_mib; /* after an in-place resize; 0: memory_mib */
	int64_t start_ns;        /* when Start came (CLOCK_MONOTONIC), for the log */
	char hostname[HOSTNAME_MAX + 1];
	char netns[256];
	char appliance[APPLIANCE_NAME_MAX + 1]; /* io.kuasar.appliance, "" for none */
	char snapshot[ID_MAX + 1];              /* io.kuasar.snapshot, "" for none */
	char rootfs[8];                         /* io.kuasar.rootfs, "" for the default */
	char cg_parent[256]; /* its cgroup is <cg_parent>/<id> (below the cgroup root) */
	char network[512];   /* the pod network as its VM got it, or why it has none */
	char *spec_json;     /* the pod as an OCI spec, handed back by Start */
	int64_t created_ns, started_ns, exited_ns; /* CLOCK_REALTIME */
	int exit_status;
	char last_error[512];
	char boot[48];               /* "cold" or "template <key>" */
	pid_t pid;                   /* the VMM */
	pid_t proxy;                 /* its task proxy (our child unless adopted after a restart) */
	char proxy_name[ID_MAX + 1]; /* the --id its proxy runs with: a pooled VM's name, or id */
	int from_pool;               /* the start in flight took a pooled VM */
	int no_pool;                 /* the start in flight must not (the pooled one failed) */
	struct loop_watch vmm_w, proxy_w; /* pidfds */
	int proxy_child;
	int has_cgroup;
	struct loop_watch result_w; /* the proxy's start result pipe */
	struct grpc_call *start_call;
	struct call_set stops;
	struct loop_timer stop_timer;
	int exit_polls; /* vmm-exit reads while its proxy writes it */
	struct call_set shutdowns;
	struct loop_timer remove_timer; /* Shutdown's last step, run from the loop */
	struct cg_drain drain;          /* what is left in its cgroup, being killed */
	int remove_pending;             /* Shutdown's last step waits for the drain */
	struct sb_waiter *waiters;
	char task_address[KPATH_SIZE];
	struct sandbox *next;
};

struct sandboxer {
	struct sb_config cfg;
	const char *config_path; /* handed to the proxies */
	char own_cgroup[512];    /* the daemon's cgroup v2 dir: where image builds run */
	struct loop loop;
	struct grpc_server grpc;
	struct sandbox *sandboxes;
	unsigned n_sandboxes;
	struct pool pool;
};

struct sandbox *sandbox_find(struct sandboxer *sbx, const char *id);
/* Reaps every exited child that is no sandbox's proxy or VMM (those are waited for by their
 * pidfds): orphans the daemon inherits as subreaper. */
void sandbox_reap_orphans(struct sandboxer *sbx);
/* What Create knows of a sandbox (strings may be NULL). */
struct sb_create {
	unsigned vcpus, memory_mib;
	const char *hostname;
	const char *netns;         /* CNI's, empty or NULL for host network */
	const char *spec_json;     /* the pod as an OCI spec */
	const char *cgroup_parent; /* the pod's (kubelet's) cgroup; NULL: the configured one */
	const char *appliance;     /* the io.kuasar.appliance annotation, NULL if none */
	const char *snapshot;      /* the io.kuasar.snapshot annotation, NULL if none */
	const char *rootfs;        /* the io.kuasar.rootfs annotation, NULL if none */
};
/* EINVAL unless name is an appliance name (not a path). */
int sandbox_appliance_check(const char *name, kerr_t *err);
/* Create: directory and state only. errnum EEXIST when the id is taken. */
int sandbox_create(struct sandboxer *sbx, const char *id, const struct sb_create *c,
                   struct sandbox **out, kerr_t *err);
/* Start: the answer (StartResponse or an error) goes to call when the guest is ready. */
void sandbox_start(struct sandbox *sb, struct grpc_call *call);
void sandbox_stop(struct sandbox *sb, unsigned timeout_secs, struct grpc_call *call);
/* Shutdown: stops if needed and forgets the sandbox, leaving nothing behind; the answer
 * goes to call once that is done (a VMM or proxy that is slow to die never holds the loop). */
void sandbox_shutdown(struct sandbox *sb, struct grpc_call *call);
void sandbox_add_waiter(struct sandbox *sb, struct grpc_call *call);
/* How many Wait calls are held open. */
unsigned sandbox_n_waiters(const struct sandbox *sb);
const char *sandbox_state_name(const struct sandbox *sb);
/* Whether pid is a task proxy started with --id name (its command line says so). */
int sandbox_proxy_is(pid_t pid, const char *name);
/* Writes the sandbox's state file (write, fsync, rename), as every change does. */
void sandbox_save(struct sandbox *sb);
/* Re-adopts every sandbox recorded under the run directory. */
void sandbox_recover_all(struct sandboxer *sbx);

/* Controller service (controller.c). */
extern const struct grpc_method controller_methods[];
extern const size_t controller_n_methods;

/* Run as containerd-shim-kuasar-v1 (shim_compat.c). */
int shim_compat_main(int argc, char **argv);

#endif
