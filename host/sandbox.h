/* kuasar-sandboxer's sandboxes: one VM each, driven from the daemon's one loop.
 *
 * Lifecycle: Create writes the directory and state; Start forks a starter process that boots
 * the VM (the blocking part) and exits, leaving the VMM running; the daemon then attaches
 * to it exactly as it re-adopts VMMs after its own restart: pidfd, guest link, task socket,
 * event subscription. Stop asks the guest to power off, then forces. State files are
 * written atomically at every change. */
#ifndef KUASAR_SANDBOX_H
#define KUASAR_SANDBOX_H

#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "glink.h"
#include "grpc.h"
#include "loop.h"
#include "taskproxy.h"
#include "vm.h"

enum sb_state { SB_CREATED, SB_STARTING, SB_READY, SB_STOPPING, SB_STOPPED };

struct sb_waiter {
	struct grpc_call *call;
	struct sandbox *sb;
	struct sb_waiter *next;
};

struct sandboxer;

struct sandbox {
	char id[65];
	struct sandboxer *sbx;
	enum sb_state state;
	struct vm vm;
	unsigned vcpus, memory_mib;
	char hostname[128];
	char netns[256];
	int64_t created_ns, started_ns, exited_ns; /* CLOCK_REALTIME */
	int exit_status;
	char last_error[512];
	pid_t pid; /* the VMM */
	struct loop_watch pidfd_w;
	/* Start in flight */
	pid_t starter;
	int starter_pidfd;
	struct loop_watch starter_w; /* the starter's result pipe */
	struct grpc_call *start_call;
	/* Stop in flight */
	struct grpc_call *stop_calls[8];
	int n_stop_calls;
	struct loop_timer stop_timer;
	uint32_t shutdown_gid;
	struct sb_waiter *waiters;
	struct glink link;
	struct taskproxy tp;
	uint32_t events_gid;
	char task_address[400];
	struct sandbox *next;
};

struct events_fwd;

struct sandboxer {
	struct sb_config cfg;
	struct loop loop;
	struct grpc_server grpc;
	struct sandbox *sandboxes;
	unsigned n_sandboxes;
	struct events_fwd *events;
};

struct sandbox *sandbox_find(struct sandboxer *sbx, const char *id);
/* Create: directory and state only. errnum EEXIST when the id is taken. */
int sandbox_create(struct sandboxer *sbx, const char *id, unsigned vcpus, unsigned memory_mib,
                   const char *hostname, const char *netns, struct sandbox **out, kerr_t *err);
/* Start: the answer (StartResponse or an error) goes to call when the guest is ready. */
void sandbox_start(struct sandbox *sb, struct grpc_call *call);
void sandbox_stop(struct sandbox *sb, unsigned timeout_secs, struct grpc_call *call);
/* Shutdown: stops if needed and forgets the sandbox, leaving nothing behind. */
int sandbox_remove(struct sandbox *sb, kerr_t *err);
void sandbox_add_waiter(struct sandbox *sb, struct grpc_call *call);
const char *sandbox_state_name(const struct sandbox *sb);
/* Re-adopts every sandbox recorded under the run directory. */
void sandbox_recover_all(struct sandboxer *sbx);
/* Answers a Start call from the sandbox's current data. */
void sandbox_reply_start(struct sandbox *sb, struct grpc_call *call);

/* Controller service (controller.c). */
extern const struct grpc_method controller_methods[];
extern const size_t controller_n_methods;

/* Task events to containerd (events_fwd.c). */
struct events_fwd *events_fwd_new(struct loop *loop, const char *ttrpc_path);
void events_fwd_publish(struct events_fwd *ev, const char *ns, const char *topic,
                        const char *type_url, const uint8_t *event, size_t len, int64_t ts_ns);

#endif
