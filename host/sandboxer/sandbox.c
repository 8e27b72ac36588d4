#include "sandboxer/sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fsat.h"
#include "base/json.h"
#include "base/log.h"
#include "base/syscalls.h"
#include "base/util.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "host/sandbox_controller.pb-c.h"
#include "net/podnet.h"
#include "proxy/pooled.h"
#include "proxy/proxy_result.h"
#include "rpc/agent.h"
#include "rpc/timestamp.h"
#include "sandbox.pb-c.h"
#include "sandboxer/sb_cgroup.h"
#include "vm/vm.h"
#include "vm/vmsnap.h"

#define STATE_FILE "sandbox.json"
/* How long a process told to exit (or killed) gets before we kill it (or give up on it). */
#define KILL_GRACE_MS 5000

static const char *const state_names[] = { "created", "starting", "ready", "stopping", "stopped" };

const char *sandbox_state_name(const struct sandbox *sb)
{
	return state_names[sb->state];
}

/* The --id its proxy runs with. */
static const char *proxy_name(const struct sandbox *sb)
{
	return sb->proxy_name[0] ? sb->proxy_name : sb->id;
}

struct sandbox *sandbox_find(struct sandboxer *sbx, const char *id)
{
	for (struct sandbox *sb = sbx->sandboxes; sb; sb = sb->next)
		if (!strcmp(sb->id, id))
			return sb;
	return NULL;
}

/* Written at every change (write, fsync, rename) so a restarted daemon finds it. */
void sandbox_save(struct sandbox *sb)
{
	json_object *o = json_object_new_object();
	char path[KPATH_SIZE];
	const char *s;
	kerr_t err;
	int rc;

	json_object_object_add(o, "id", json_object_new_string(sb->id));
	json_object_object_add(o, "state",
	                       json_object_new_string(sb->state == SB_STARTING ? "created"
	                                              : sb->state == SB_STOPPING
	                                                  ? "ready"
	                                                  : sandbox_state_name(sb)));
	json_object_object_add(o, "vcpus", json_object_new_int((int)sb->vcpus));
	json_object_object_add(o, "memory_mib", json_object_new_int((int)sb->memory_mib));
	json_object_object_add(o, "memory_now_mib", json_object_new_int((int)sb->memory_now_mib));
	json_object_object_add(o, "hostname", json_object_new_string(sb->hostname));
	json_object_object_add(o, "netns", json_object_new_string(sb->netns));
	json_object_object_add(o, "appliance", json_object_new_string(sb->appliance));
	json_object_object_add(o, "snapshot", json_object_new_string(sb->snapshot));
	json_object_object_add(o, "rootfs", json_object_new_string(sb->rootfs));
	json_object_object_add(o, "cgroup_parent", json_object_new_string(sb->cg_parent));
	json_object_object_add(o, "spec",
	                       json_object_new_string(sb->spec_json ? sb->spec_json : ""));
	json_object_object_add(o, "vmm_pid", json_object_new_int(sb->pid));
	json_object_object_add(o, "proxy_pid", json_object_new_int(sb->proxy));
	json_object_object_add(o, "proxy_id", json_object_new_string(sb->proxy_name));
	json_object_object_add(o, "created_ns", json_object_new_int64(sb->created_ns));
	json_object_object_add(o, "started_ns", json_object_new_int64(sb->started_ns));
	json_object_object_add(o, "exited_ns", json_object_new_int64(sb->exited_ns));
	json_object_object_add(o, "exit_status", json_object_new_int(sb->exit_status));
	json_object_object_add(o, "error", json_object_new_string(sb->last_error));
	json_object_object_add(o, "boot", json_object_new_string(sb->boot));
	json_object_object_add(o, "network", json_object_new_string(sb->network));
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
	rc = fmt_path(path, sizeof(path), "%s/" STATE_FILE, sb->paths.dir) < 0
	         ? kerr_sys(&err, "state file in %s", sb->paths.dir)
	         : write_file_atomic(path, s, strlen(s), &err);
	if (rc < 0)
		log_warn("sandbox %s: cannot save its state: %s", sb->id, err.msg);
	json_object_put(o);
}

static struct sandbox *sandbox_new(struct sandboxer *sbx, const char *id, kerr_t *err)
{
	struct sandbox *sb = calloc(1, sizeof(*sb));

	if (!sb) {
		kerr_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	sb->sbx = sbx;
	if (id_valid(id, err) < 0 || vm_paths_init(&sb->paths, sbx->cfg.run_dir, id, err) < 0 ||
	    (fmt_path(sb->task_address, sizeof(sb->task_address), "ttrpc+unix://%s/" TASK_SOCK,
	              sb->paths.dir) < 0 &&
	     kerr_sys(err, "task socket of `%s`", id) < 0)) {
		free(sb);
		return NULL;
	}
	memcpy(sb->id, id, strlen(id) + 1);
	sb->vmm_w.fd = sb->proxy_w.fd = sb->result_w.fd = -1;
	sb->next = sbx->sandboxes;
	sbx->sandboxes = sb;
	sbx->n_sandboxes++;
	return sb;
}

static void sandbox_free(struct sandbox *sb)
{
	struct sandboxer *sbx = sb->sbx;

	for (struct sandbox **pp = &sbx->sandboxes; *pp; pp = &(*pp)->next) {
		if (*pp == sb) {
			*pp = sb->next;
			break;
		}
	}
	sbx->n_sandboxes--;
	cg_drain_cancel(&sb->drain);
	free(sb->spec_json);
	free(sb);
}

/* An appliance is named, never a path: a pod's annotation must not pick host files. */
int sandbox_appliance_check(const char *name, kerr_t *err)
{
	size_t n = strlen(name);

	if (!n || n > APPLIANCE_NAME_MAX || name[0] == '.' ||
	    strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != n)
		return kerr_set(err, EINVAL,
		                "annotation %s=`%.64s`: an appliance name (letters, digits, . _ -; "
		                "not starting with a dot; at most %d)",
		                APPLIANCE_ANNOTATION, name, APPLIANCE_NAME_MAX);
	return 0;
}

int sandbox_create(struct sandboxer *sbx, const char *id, const struct sb_create *c,
                   struct sandbox **out, kerr_t *err)
{
	struct sandbox *sb;

	if (sandbox_find(sbx, id))
		return kerr_set(err, EEXIST, "sandbox `%s` already exists", id);
	if (c->hostname && strlen(c->hostname) > HOSTNAME_MAX)
		return kerr_set(err, EINVAL,
		                "sandbox `%s`: hostname `%.64s...` is over %d characters", id,
		                c->hostname, HOSTNAME_MAX);
	sb = sandbox_new(sbx, id, err);
	if (!sb)
		return -1;
	if ((c->cgroup_parent && c->cgroup_parent[0] &&
	     sb_cgroup_parent_path(c->cgroup_parent, sb->cg_parent, sizeof(sb->cg_parent), err) <
	         0) ||
	    (c->netns && strlen(c->netns) >= sizeof(sb->netns) &&
	     kerr_set(err, ENAMETOOLONG, "netns path of %zu bytes", strlen(c->netns))) ||
	    (c->appliance && sandbox_appliance_check(c->appliance, err) < 0) ||
	    (c->snapshot && strlen(c->snapshot) > ID_MAX &&
	     kerr_set(err, EINVAL, "annotation " SNAPSHOT_ANNOTATION ": a name of %zu bytes",
	              strlen(c->snapshot))) ||
	    (c->rootfs && strcmp(c->rootfs, "9p") && strcmp(c->rootfs, "block") &&
	     kerr_set(err, EINVAL, "annotation " ROOTFS_ANNOTATION "=`%.16s`: 9p or block",
	              c->rootfs))) {
		sandbox_free(sb);
		return kerr_wrap(err, "sandbox `%s`", id);
	}
	if (!sb->cg_parent[0])
		snprintf(sb->cg_parent, sizeof(sb->cg_parent), "%s", sbx->cfg.cgroup_parent);
	if (mkdir(sb->paths.dir, 0700) < 0) {
		if (errno == EEXIST)
			kerr_set(err, EEXIST, "sandbox `%s`: %s already exists", id, sb->paths.dir);
		else
			kerr_sys(err, "mkdir %s", sb->paths.dir);
		sandbox_free(sb);
		return -1;
	}
	sb->vcpus = c->vcpus;
	sb->memory_mib = c->memory_mib;
	snprintf(sb->hostname, sizeof(sb->hostname), "%s", c->hostname ? c->hostname : "");
	snprintf(sb->netns, sizeof(sb->netns), "%s", c->netns ? c->netns : "");
	snprintf(sb->appliance, sizeof(sb->appliance), "%s", c->appliance ? c->appliance : "");
	snprintf(sb->snapshot, sizeof(sb->snapshot), "%s", c->snapshot ? c->snapshot : "");
	snprintf(sb->rootfs, sizeof(sb->rootfs), "%s", c->rootfs ? c->rootfs : "");
	sb->spec_json = c->spec_json ? strdup(c->spec_json) : NULL;
	sb->created_ns = real_ns();
	sandbox_save(sb);
	*out = sb;
	return 0;
}

/* ---- replies ---- */

/* Answers a Start call from the sandbox's current data. */
static void sandbox_reply_start(struct sandbox *sb, struct grpc_call *call)
{
	Containerd__Services__Sandbox__V1__StartResponse r =
	    CONTAINERD__SERVICES__SANDBOX__V1__START_RESPONSE__INIT;
	Google__Protobuf__Timestamp created = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	Google__Protobuf__Any spec = GOOGLE__PROTOBUF__ANY__INIT;
	json_object *o = json_object_new_object();
	const char *json;

	r.sandbox_id = sb->id;
	r.pid = (uint32_t)sb->pid;
	ts_from_ns(&created, sb->created_ns);
	r.created_at = &created;
	r.address = sb->task_address;
	r.version = 3;
	/* containerd decodes the spec it is handed; a minimal valid one says what the pod is. */
	json_object_object_add(o, "ociVersion", json_object_new_string("1.1.0"));
	if (sb->hostname[0])
		json_object_object_add(o, "hostname", json_object_new_string(sb->hostname));
	json = sb->spec_json ? sb->spec_json
	                     : json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	spec.type_url = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
	spec.value.data = (uint8_t *)json;
	spec.value.len = strlen(json);
	r.spec = &spec;
	grpc_reply(call, &r.base);
	json_object_put(o);
}

static void reply_wait(struct grpc_call *call, struct sandbox *sb)
{
	Containerd__Services__Sandbox__V1__WaitResponse r =
	    CONTAINERD__SERVICES__SANDBOX__V1__WAIT_RESPONSE__INIT;
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;

	r.exit_status = (uint32_t)sb->exit_status;
	ts_from_ns(&ts, sb->exited_ns ? sb->exited_ns : real_ns());
	r.exited_at = &ts;
	grpc_reply(call, &r.base);
}

static void waiter_cancel(struct grpc_call *call, void *arg)
{
	struct sb_waiter *w = arg;

	for (struct sb_waiter **pp = &w->sb->waiters; *pp; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	}
	free(w);
}

void sandbox_add_waiter(struct sandbox *sb, struct grpc_call *call)
{
	struct sb_waiter *w;

	if (sb->state == SB_STOPPED) {
		reply_wait(call, sb);
		return;
	}
	w = calloc(1, sizeof(*w));
	if (!w) {
		grpc_reply_error(call, RPC_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	w->call = call;
	w->sb = sb;
	w->next = sb->waiters;
	sb->waiters = w;
	grpc_call_on_cancel(call, waiter_cancel, w);
}

unsigned sandbox_n_waiters(const struct sandbox *sb)
{
	unsigned n = 0;

	for (const struct sb_waiter *w = sb->waiters; w; w = w->next)
		n++;
	return n;
}

static void start_cancel(struct grpc_call *call, void *arg)
{
	((struct sandbox *)arg)->start_call = NULL;
}

static void call_set_cancel(struct grpc_call *call, void *arg)
{
	struct call_set *s = arg;

	for (int i = 0; i < s->n; i++) {
		if (s->calls[i] == call) {
			s->calls[i] = s->calls[--s->n];
			return;
		}
	}
}

/* 0, or -1 with the call answered when the set is full. */
static int call_set_add(struct call_set *s, struct grpc_call *call, const char *what)
{
	if (s->n >= (int)(sizeof(s->calls) / sizeof(s->calls[0]))) {
		grpc_reply_error(call, RPC_RESOURCE_EXHAUSTED, "too many %s calls in flight", what);
		return -1;
	}
	s->calls[s->n++] = call;
	grpc_call_on_cancel(call, call_set_cancel, s);
	return 0;
}

/* Answers every call in the set: OK, or err's message when err is set. */
static void call_set_answer(struct call_set *s, const kerr_t *err)
{
	while (s->n) {
		struct grpc_call *c = s->calls[--s->n];

		grpc_call_on_cancel(c, NULL, NULL);
		if (err)
			grpc_reply_error(c, RPC_INTERNAL, "%s", err->msg);
		else
			grpc_reply(c, NULL);
	}
}

/* ---- the VM is gone ---- */

/* Whatever is left of the sandbox's processes (a VMM spawned but not yet recorded, orphans
 * of a killed proxy): its cgroup knows them all. */
static void remove_now(struct sandbox *sb);

/* The cgroup is empty (or still is not, KILL_GRACE_MS later): a stopped sandbox's goes, and
 * a removal that waited for it goes on. */
static void remains_gone(struct cg_drain *d, int emptied)
{
	struct sandbox *sb = container_of(d, struct sandbox, drain);

	if (!emptied)
		log_warn("sandbox %s: processes remain in its cgroup %d ms after SIGKILL", sb->id,
		         KILL_GRACE_MS);
	if (emptied && sb->has_cgroup && sb->state == SB_STOPPED && !sb->proxy &&
	    sb_cgroup_remove(sb->cg_parent, sb->id) == 0) {
		sb->has_cgroup = 0;
		sandbox_save(sb);
	}
	if (sb->remove_pending) {
		sb->remove_pending = 0;
		remove_now(sb);
	}
}

/* Killed from the loop, and waited for by pidfd: the loop never waits. */
static void kill_remains(struct sandbox *sb, int proxy_pidfd)
{
	cg_drain_start(&sb->drain, &sb->sbx->loop, sb->has_cgroup ? sb->cg_parent : "", sb->id,
	               proxy_pidfd, KILL_GRACE_MS, remains_gone);
}

static void remove_stopped(struct loop_timer *t);

/* The proxy takes the taps and filters out of the pod netns when its VMM exits; this
 * covers a proxy that died first. CNI's own interfaces are CNI's to remove. */
static void net_release(struct sandbox *sb)
{
	kerr_t err;

	if (sb->netns[0] && podnet_detach(sb->netns, &err) < 0)
		log_warn("sandbox %s: pod network: %s", sb->id, err.msg);
}

/* A proxy that outlives its VMM (answering for the VM's tasks until containerd deletes
 * them) is left alone by the stop; its own exit releases the cgroup. */
static void became_stopped_as(struct sandbox *sb, int status, int proxy_lingers);

static void became_stopped(struct sandbox *sb, int status)
{
	became_stopped_as(sb, status, 0);
}

static void became_stopped_as(struct sandbox *sb, int status, int proxy_lingers)
{
	struct sb_waiter *w;

	/* A VMM whose proxy died before it is our orphan (we are the subreaper): reap it. */
	if (sb->vmm_w.fd >= 0) {
		siginfo_t si;

		waitid(P_PIDFD, (id_t)sb->vmm_w.fd, &si, WEXITED | WNOHANG);
	}
	if (!proxy_lingers)
		loop_close(&sb->sbx->loop, &sb->proxy_w);
	loop_close(&sb->sbx->loop, &sb->vmm_w);
	loop_close(&sb->sbx->loop, &sb->result_w);
	loop_timer_cancel(&sb->sbx->loop, &sb->stop_timer);
	/* Root filesystems mounted for containers must not outlive the VM: containerd removes
	 * their snapshots next. */
	umount_below(sb->paths.dir);
	unlink(sb->paths.qmp);
	unlink(sb->paths.agent);
	net_release(sb);
	sb->state = SB_STOPPED;
	sb->exit_status = status;
	sb->exited_ns = real_ns();
	sb->pid = 0;
	sandbox_save(sb);
	if (!proxy_lingers) {
		sb->proxy = 0;
		kill_remains(sb, -1);
	}
	while ((w = sb->waiters)) {
		sb->waiters = w->next;
		grpc_call_on_cancel(w->call, NULL, NULL);
		reply_wait(w->call, sb);
		free(w);
	}
	call_set_answer(&sb->stops, NULL);
	/* A Shutdown waited for this; it finishes from the loop, after our caller is done
	 * with sb. */
	if (sb->shutdowns.n) {
		sb->remove_timer.fn = remove_stopped;
		loop_timer_arm(&sb->sbx->loop, &sb->remove_timer, 0);
	}
}

static void kill_vmm(struct sandbox *sb)
{
	if (sb->vmm_w.fd >= 0)
		sys_pidfd_send_signal(sb->vmm_w.fd, SIGKILL);
}

/* ---- waiting without blocking the loop ---- */

/* A child that was told to exit (or killed) and only needs reaping: the loop waits for it,
 * never a handler. Still there after kill_after_ms, it is killed. */
struct reaper {
	struct loop *loop;
	struct loop_watch w;
	struct loop_timer t;
};

static void reaper_done(struct loop_watch *w, uint32_t events)
{
	struct reaper *r = container_of(w, struct reaper, w);
	siginfo_t si;

	loop_del(r->loop, w);
	loop_timer_cancel(r->loop, &r->t);
	waitid(P_PIDFD, (id_t)w->fd, &si, WEXITED | WNOHANG);
	close(w->fd);
	free(r);
}

static void reaper_timeout(struct loop_timer *t)
{
	struct reaper *r = container_of(t, struct reaper, t);

	sys_pidfd_send_signal(r->w.fd, SIGKILL);
}

/* Takes over the pidfd watched by w. */
static void reap_later(struct sandbox *sb, struct loop_watch *w, int kill_after_ms)
{
	struct reaper *r;
	kerr_t err;

	if (w->fd < 0)
		return;
	loop_del(&sb->sbx->loop, w);
	r = calloc(1, sizeof(*r));
	if (!r) {
		sys_pidfd_send_signal(w->fd, SIGKILL);
		close(w->fd);
		w->fd = -1;
		return;
	}
	r->loop = &sb->sbx->loop;
	r->w.fd = w->fd;
	r->w.fn = reaper_done;
	r->t.fn = reaper_timeout;
	w->fd = -1;
	if (loop_add(r->loop, &r->w, EPOLLIN, &err) < 0) {
		log_warn("sandbox %s: %s", sb->id, err.msg);
		sys_pidfd_send_signal(r->w.fd, SIGKILL);
		close(r->w.fd);
		free(r);
		return;
	}
	loop_timer_arm(r->loop, &r->t, kill_after_ms);
}

/* The proxy exits with the VMM's status; an adopted one (not our child) left it in a file. */
static int proxy_status(struct sandbox *sb)
{
	siginfo_t si = { 0 };
	char path[KPATH_SIZE], *text = NULL;
	int status = 255;

	if (sb->proxy_child && sb->proxy_w.fd >= 0 &&
	    waitid(P_PIDFD, (id_t)sb->proxy_w.fd, &si, WEXITED | WNOHANG) == 0 && si.si_pid)
		return si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
	if (fmt_path(path, sizeof(path), "%s/vmm-exit", sb->paths.dir) == 0 &&
	    read_file(path, &text, NULL, 64, NULL) == 0) {
		status = atoi(text);
		free(text);
	}
	return status;
}

static int vmm_running(struct sandbox *sb)
{
	struct pollfd p = { .fd = sb->vmm_w.fd, .events = POLLIN };

	return p.fd >= 0 && poll(&p, 1, 0) == 0; /* a look, not a wait */
}

/* The VMM, killed after its proxy died, is gone: the sandbox is over. */
static void vmm_killed(struct loop_watch *w, uint32_t events)
{
	became_stopped(container_of(w, struct sandbox, vmm_w), 137);
}

/* SIGKILL did not end it (a process stuck in the kernel): the sandbox is over regardless. */
static void kill_timeout(struct loop_timer *t)
{
	struct sandbox *sb = container_of(t, struct sandbox, stop_timer);

	log_warn("sandbox %s: still not gone %d ms after SIGKILL (VMM %d, task proxy %d); "
	         "giving up on it",
	         sb->id, KILL_GRACE_MS, sb->pid, sb->proxy);
	became_stopped(sb, 137);
}

static void result_event(struct loop_watch *w, uint32_t events);

static void proxy_exited(struct loop_watch *w, uint32_t events)
{
	struct sandbox *sb = container_of(w, struct sandbox, proxy_w);
	int status;

	if (sb->state == SB_STOPPED) { /* it outlived its VMM; now the rest goes */
		siginfo_t si;

		if (sb->proxy_child)
			waitid(P_PIDFD, (id_t)w->fd, &si, WEXITED | WNOHANG);
		loop_close(&sb->sbx->loop, w);
		sb->proxy = 0;
		sandbox_save(sb);
		kill_remains(sb, -1);
		return;
	}

	/* Its start result first (it may have exited right after writing it). */
	if (sb->result_w.fd >= 0) {
		result_event(&sb->result_w, EPOLLIN);
		return;
	}
	status = proxy_status(sb);
	loop_close(&sb->sbx->loop, &sb->proxy_w);
	/* Without its proxy nobody serves the task socket: the sandbox is over. The VMM's
	 * exit, an event like any other, completes the stop. */
	if (vmm_running(sb)) {
		char how[48];

		if (!sb->proxy_child)
			fmt_msg(how, sizeof(how), "how is unknown: adopted after a restart");
		else if (status > 128)
			fmt_msg(how, sizeof(how), "killed by signal %d", status - 128);
		else
			fmt_msg(how, sizeof(how), "exit status %d", status);
		log_warn("sandbox %s: task proxy %d died (%s; its own last line is above) with the "
		         "VMM running; stopping the VMM",
		         sb->id, sb->proxy, how);
		fmt_msg(sb->last_error, sizeof(sb->last_error), "task proxy died (%s)", how);
		kill_vmm(sb);
		sb->vmm_w.fn = vmm_killed; /* still watched: it has not exited */
		sb->stop_timer.fn = kill_timeout;
		loop_timer_arm(&sb->sbx->loop, &sb->stop_timer, KILL_GRACE_MS);
		return;
	}
	log_info("sandbox %s: VMM %d exited (status %d)", sb->id, sb->pid, status);
	became_stopped(sb, status);
}

/* The VMM's exit status, which its proxy leaves in vmm-exit as soon as it sees the exit. */
static int vmm_exit_file(struct sandbox *sb, int *status)
{
	char path[KPATH_SIZE], *text = NULL;

	if (fmt_path(path, sizeof(path), "%s/vmm-exit", sb->paths.dir) < 0 ||
	    read_file(path, &text, NULL, 64, NULL) < 0)
		return -1;
	*status = atoi(text);
	free(text);
	return 0;
}

#define EXIT_FILE_POLLS 50 /* of 20 ms */

static void vmm_status_poll(struct loop_timer *t)
{
	struct sandbox *sb = container_of(t, struct sandbox, stop_timer);
	int status = 137;

	if (vmm_exit_file(sb, &status) < 0 && ++sb->exit_polls < EXIT_FILE_POLLS &&
	    sb->proxy_w.fd >= 0) {
		loop_timer_arm(&sb->sbx->loop, t, 20);
		return;
	}
	log_info("sandbox %s: VMM %d exited (status %d)", sb->id, sb->pid, status);
	became_stopped_as(sb, status, sb->proxy_w.fd >= 0);
}

/* The sandbox is over when its VMM is: NOTREADY at once. Its proxy may stay a while to
 * answer for the VM's tasks (containerd then deletes them cleanly); its exit is awaited
 * separately. */
static void vmm_exited(struct loop_watch *w, uint32_t events)
{
	struct sandbox *sb = container_of(w, struct sandbox, vmm_w);

	loop_del(&sb->sbx->loop, w);
	sb->exit_polls = 0;
	sb->stop_timer.fn = vmm_status_poll;
	loop_timer_arm(&sb->sbx->loop, &sb->stop_timer, 0);
}

static int watch_pid(struct sandbox *sb, struct loop_watch *w, pid_t pid,
                     void (*fn)(struct loop_watch *, uint32_t), kerr_t *err)
{
	w->fd = sys_pidfd_open(pid);
	if (w->fd < 0)
		return kerr_sys(err, "pidfd_open %d", pid);
	w->fn = fn;
	if (loop_add(&sb->sbx->loop, w, EPOLLIN, err) < 0) {
		close(w->fd);
		w->fd = -1;
		return -1;
	}
	return 0;
}

/* ---- start ---- */

static void start_answer_error(struct sandbox *sb, int code, const char *msg)
{
	if (!sb->start_call)
		return;
	grpc_call_on_cancel(sb->start_call, NULL, NULL);
	grpc_reply_error(sb->start_call, code, "start sandbox %s: %s", sb->id, msg);
	sb->start_call = NULL;
}

/* Kills what a start left: the VMM it spawned, if any, and its proxy, reaped when it exits
 * (it does right after reporting a failure). */
static void kill_start(struct sandbox *sb)
{
	pid_t pid = vm_find_vmm(sb->sbx->cfg.run_dir, sb->id);

	if (pid > 0)
		kill(pid, SIGKILL);
	if (sb->proxy_w.fd >= 0)
		reap_later(sb, &sb->proxy_w, KILL_GRACE_MS);
	else if (sb->proxy > 0)
		kill(sb->proxy, SIGKILL);
	kill_remains(sb, -1);
	if (pid > 0)
		waitpid(pid, NULL, WNOHANG);
}

static void start_failed(struct sandbox *sb, const char *msg)
{
	kill_start(sb);
	if (sb->from_pool) /* what Create made, exchanged into the pool's directory */
		pool_clear(&sb->sbx->pool, sb->proxy_name);
	sb->from_pool = 0;
	pool_kick(&sb->sbx->pool);
	fmt_msg(sb->last_error, sizeof(sb->last_error), "%s", msg);
	log_warn("sandbox %s: start failed: %s", sb->id, msg);
	mkdir(sb->paths.dir, 0700);
	became_stopped(sb, 255);
	start_answer_error(sb, RPC_FAILED_PRECONDITION, msg);
	/* containerd forgets a sandbox whose Start failed without a Shutdown (RunPodSandbox
	 * only deletes its own record), so nothing would ever remove it: it goes now, from the
	 * loop, as a Shutdown would take it; a Shutdown that comes anyway finds it gone. */
	sb->remove_timer.fn = remove_stopped;
	loop_timer_arm(&sb->sbx->loop, &sb->remove_timer, 0);
}

static void pool_fallback(struct sandbox *sb, const char *why);

static void result_event(struct loop_watch *w, uint32_t events)
{
	struct sandbox *sb = container_of(w, struct sandbox, result_w);
	char buf[PROXY_RESULT_MAX];
	ssize_t n = read(w->fd, buf, sizeof(buf));
	struct proxy_result r;
	kerr_t err;

	if (n < 0 && errno == EAGAIN)
		return;
	loop_close(&sb->sbx->loop, w);
	if (n <= 0 || proxy_result_parse(buf, (size_t)n, &r) < 0) {
		start_failed(sb, n > 0 ? "the task proxy sent a malformed result"
		                       : "the task proxy died without a result");
		return;
	}
	if (!r.ok && sb->from_pool && (r.errnum == EXDEV || r.errnum == ESRCH)) {
		pool_fallback(sb, r.message);
		return;
	}
	if (!r.ok) {
		start_failed(sb, r.message);
		return;
	}
	sb->pid = r.vmm_pid;
	if (watch_pid(sb, &sb->vmm_w, r.vmm_pid, vmm_exited, &err) < 0) {
		start_failed(sb, err.msg);
		return;
	}
	sb->state = SB_READY;
	sb->started_ns = real_ns();
	sb->last_error[0] = 0;
	if (!strcmp(r.boot_mode, "pool"))
		fmt_msg(sb->boot, sizeof(sb->boot), "pool (template %s)", r.template_key);
	else if (!strcmp(r.boot_mode, "template"))
		fmt_msg(sb->boot, sizeof(sb->boot), "template %s", r.template_key);
	else if (!strcmp(r.boot_mode, "fork"))
		fmt_msg(sb->boot, sizeof(sb->boot), "snapshot %s", sb->snapshot);
	else
		fmt_msg(sb->boot, sizeof(sb->boot), "cold");
	fmt_msg(sb->network, sizeof(sb->network), "%s", r.net);
	sandbox_save(sb);
	log_info("sandbox %s: ready in %lld ms (%s; VMM %d, proxy %d, %s; network: %s; Start took "
	         "%.1f ms)",
	         sb->id, r.boot_ms, sb->boot, sb->pid, sb->proxy, r.accel, sb->network,
	         (mono_ns() - sb->start_ns) / 1e6);
	sb->from_pool = 0;
	pool_kick(&sb->sbx->pool);
	if (sb->start_call) {
		grpc_call_on_cancel(sb->start_call, NULL, NULL);
		sandbox_reply_start(sb, sb->start_call);
		sb->start_call = NULL;
	}
}

/* The proxy is this binary again: fd 3 carries its start result. */
/* The pod's sysctls, as the spec it was created with has them (compact JSON), or "". */
static const char *spec_sysctls(const struct sandbox *sb)
{
	json_object *spec = sb->spec_json ? json_tokener_parse(sb->spec_json) : NULL, *lin, *sys;
	const char *s = "";

	if (spec && json_object_object_get_ex(spec, "linux", &lin) &&
	    json_object_object_get_ex(lin, "sysctl", &sys))
		s = strdup(json_object_to_json_string_ext(sys, JSON_C_TO_STRING_PLAIN));
	json_object_put(spec);
	return s ? s : "";
}

/* In the child: the proxy (the leak of spec_sysctls' string is the exec's). */
static void exec_proxy(struct sandbox *sb, int result_fd)
{
	const struct sb_config *c = &sb->sbx->cfg;
	char vcpus[16], mem[16];
	sigset_t none;

	snprintf(vcpus, sizeof(vcpus), "%u", sb->vcpus);
	snprintf(mem, sizeof(mem), "%u", sb->memory_mib);
	if (dup2(result_fd, 3) < 0)
		_exit(127);
	if (sb->has_cgroup && sb_cgroup_enter(sb->cg_parent, sb->id) < 0)
		dprintf(2, "kuasar-sandboxer: warning: sandbox %s: cannot enter its cgroup: %s\n",
		        sb->id, strerror(errno));
	sys_close_from(4);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execl("/proc/self/exe", "kuasar-sandboxer", "proxy", "--id", sb->id, "--config",
	      sb->sbx->config_path, "--run-dir", c->run_dir, "--containerd-ttrpc",
	      c->containerd_ttrpc, "--vcpus", vcpus, "--memory", mem, "--log-level",
	      c->debug ? "debug" : c->log_level, "--hostname", sb->hostname, "--netns", sb->netns,
	      "--appliance", sb->appliance, "--snapshot", sb->snapshot, "--rootfs", sb->rootfs,
	      "--builder-cgroup", sb->sbx->own_cgroup, "--sysctls", spec_sysctls(sb), (char *)NULL);
	dprintf(3, "E %d exec /proc/self/exe: %s", errno, strerror(errno));
	_exit(127);
}

/* The start is in flight: its answer goes to call when the proxy reports. */
static void start_wait(struct sandbox *sb, struct grpc_call *call)
{
	sb->state = SB_STARTING;
	sb->start_call = call;
	grpc_call_on_cancel(call, start_cancel, sb);
	sandbox_save(sb);
}

static int sandbox_block(const struct sandbox *sb)
{
	return sb->rootfs[0] ? !strcmp(sb->rootfs, "block") : sb->sbx->cfg.rootfs_block;
}

/* The take message for a pooled VM, NULL without memory. */
static char *take_message(const struct sandbox *sb)
{
	struct pool_take t = { 0 };
	char *msg;

	memcpy(t.id, sb->id, sizeof(t.id));
	memcpy(t.hostname, sb->hostname, sizeof(t.hostname));
	memcpy(t.netns, sb->netns, sizeof(t.netns));
	t.sysctls = (char *)spec_sysctls(sb);
	msg = pool_take_format(&t);
	if (t.sysctls[0])
		free(t.sysctls);
	return msg;
}

/* A pooled VM of the sandbox's shape takes the start, if there is one (1). Pods on the
 * host's network and appliances get VMs of their own. */
static int start_pooled(struct sandbox *sb, struct grpc_call *call)
{
	struct pool_shape shape = { sb->vcpus, sb->memory_mib, sandbox_block(sb) };
	struct pool_handout h;
	char *msg;
	kerr_t err;
	int rc;

	if (sb->no_pool || !sb->netns[0] || sb->appliance[0] || sb->snapshot[0] ||
	    !sb->sbx->cfg.pool)
		return 0;
	msg = take_message(sb);
	rc = msg ? pool_take(&sb->sbx->pool, &shape, msg, sb->has_cgroup ? sb->cg_parent : NULL,
	                     sb->id, &h)
	         : -1;
	free(msg);
	if (rc < 0)
		return 0;
	sb->proxy = h.proxy;
	sb->proxy_child = 1;
	sb->from_pool = 1;
	memcpy(sb->proxy_name, h.name, sizeof(sb->proxy_name));
	sb->result_w.fd = h.ctl_fd;
	sb->result_w.fn = result_event;
	if (loop_add(&sb->sbx->loop, &sb->result_w, EPOLLIN, &err) < 0 ||
	    watch_pid(sb, &sb->proxy_w, sb->proxy, proxy_exited, &err) < 0) {
		kill(h.proxy, SIGKILL);
		kill(h.vmm, SIGKILL);
		loop_close(&sb->sbx->loop, &sb->result_w);
		grpc_reply_error(call, RPC_INTERNAL, "%s", err.msg);
		return 1;
	}
	log_info("sandbox %s: takes the pooled VM %s (VMM %d)", sb->id, h.name, h.vmm);
	start_wait(sb, call);
	return 1;
}

/* The pooled VM could not serve the sandbox and changed nothing (its VMM had died, or the
 * pod has another number of interfaces): the sandbox starts a VM of its own. */
static void pool_fallback(struct sandbox *sb, const char *why)
{
	struct grpc_call *call = sb->start_call;

	if (!call) {
		start_failed(sb, why);
		return;
	}
	log_info("sandbox %s: the pooled VM %s cannot serve it (%s); it gets its own", sb->id,
	         sb->proxy_name, why);
	loop_close(&sb->sbx->loop, &sb->proxy_w); /* it exits by itself, reaped as an orphan */
	grpc_call_on_cancel(call, NULL, NULL);
	sb->start_call = NULL;
	sb->proxy = 0;
	sb->proxy_name[0] = 0;
	sb->from_pool = 0;
	sb->state = SB_CREATED;
	sb->no_pool = 1;
	sandbox_start(sb, call);
	sb->no_pool = 0;
}

void sandbox_start(struct sandbox *sb, struct grpc_call *call)
{
	int p[2];
	kerr_t err;

	switch (sb->state) {
	case SB_READY: {
		sandbox_reply_start(sb, call);
		return;
	}
	case SB_STARTING:
		grpc_reply_error(call, RPC_FAILED_PRECONDITION, "sandbox %s is already starting",
		                 sb->id);
		return;
	case SB_STOPPING:
	case SB_STOPPED:
		grpc_reply_error(call, RPC_FAILED_PRECONDITION, "sandbox %s is %s", sb->id,
		                 sandbox_state_name(sb));
		return;
	case SB_CREATED: break;
	}
	sb->start_ns = mono_ns();
	if (sb->cg_parent[0]) {
		sb->has_cgroup = sb_cgroup_create(sb->cg_parent, sb->id, &err) == 0;
		if (!sb->has_cgroup)
			log_warn("sandbox %s: runs without a cgroup of its own: %s", sb->id,
			         err.msg);
	}
	if (start_pooled(sb, call))
		return;
	if (pipe2(p, O_CLOEXEC) < 0) {
		grpc_reply_error(call, RPC_INTERNAL, "pipe: %s", strerror(errno));
		return;
	}
	sb->proxy = fork();
	if (sb->proxy == 0)
		exec_proxy(sb, p[1]);
	close(p[1]);
	if (sb->proxy < 0) {
		close(p[0]);
		grpc_reply_error(call, RPC_INTERNAL, "fork: %s", strerror(errno));
		return;
	}
	sb->proxy_child = 1;
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	sb->result_w.fd = p[0];
	sb->result_w.fn = result_event;
	if (loop_add(&sb->sbx->loop, &sb->result_w, EPOLLIN, &err) < 0 ||
	    watch_pid(sb, &sb->proxy_w, sb->proxy, proxy_exited, &err) < 0) {
		kill(sb->proxy, SIGKILL);
		loop_close(&sb->sbx->loop, &sb->result_w);
		grpc_reply_error(call, RPC_INTERNAL, "%s", err.msg);
		return;
	}
	start_wait(sb, call);
}

/* ---- stop ---- */

static void stop_timeout(struct loop_timer *t)
{
	struct sandbox *sb = container_of(t, struct sandbox, stop_timer);

	log_warn("sandbox %s: the guest did not power off in time; killing the VMM", sb->id);
	kill_vmm(sb);
}

/* Kills a start in flight: its proxy and whatever VMM it spawned. */
static void abort_start(struct sandbox *sb)
{
	if (sb->proxy > 0)
		kill(sb->proxy, SIGKILL);
	kill_start(sb);
	start_answer_error(sb, RPC_CANCELLED, "stopped while starting");
}

void sandbox_stop(struct sandbox *sb, unsigned timeout_secs, struct grpc_call *call)
{
	if (sb->state == SB_CREATED)
		became_stopped(sb, 0);
	if (sb->state == SB_STARTING) {
		abort_start(sb);
		became_stopped(sb, 137);
	}
	if (sb->state == SB_STOPPED) {
		grpc_reply(call, NULL);
		return;
	}
	if (call_set_add(&sb->stops, call, "Stop") < 0 || sb->state == SB_STOPPING)
		return;
	sb->state = SB_STOPPING;
	if (!timeout_secs)
		timeout_secs = sb->sbx->cfg.stop_timeout_secs;
	sb->stop_timer.fn = stop_timeout;
	loop_timer_arm(&sb->sbx->loop, &sb->stop_timer, (int64_t)timeout_secs * 1000);
	/* The proxy asks the guest to power off. */
	if (sys_pidfd_send_signal(sb->proxy_w.fd, SIGTERM) < 0)
		kill_vmm(sb);
	log_info("sandbox %s: stopping (timeout %u s)", sb->id, timeout_secs);
}

/* ---- shutdown: stop if needed, then forget ---- */

static void remove_now(struct sandbox *sb)
{
	kerr_t err;
	int rc = 0;

	/* A proxy still answering for a gone VM's tasks: containerd is done with them now. It
	 * dies at once unless stuck in the kernel; our child is reaped here, not left a zombie. */
	if (sb->proxy_w.fd >= 0) {
		sys_pidfd_send_signal(sb->proxy_w.fd, SIGKILL);
		kill_remains(sb, sb->proxy_w.fd);
		loop_close(&sb->sbx->loop, &sb->proxy_w);
		sb->proxy = 0;
	}
	if (sb->drain.active) {
		sb->remove_pending = 1; /* remains_gone goes on */
		return;
	}

	umount_below(sb->paths.dir);
	/* A snapshot's short-lived VMM whose proxy died midway (podsnap.h). */
	vm_snapshot_cleanup(sb->sbx->cfg.run_dir, sb->id);
	if (sb->cg_parent[0])
		sb_cgroup_remove(sb->cg_parent, sb->id);
	if (rm_tree(sb->paths.dir) < 0 && errno != ENOENT)
		rc = kerr_sys(&err, "sandbox %s: remove %s", sb->id, sb->paths.dir);
	call_set_answer(&sb->shutdowns, rc < 0 ? &err : NULL);
	if (rc < 0)
		return; /* known still, so a later Shutdown can try again */
	log_info("sandbox %s: removed", sb->id);
	sandbox_free(sb);
}

static void remove_stopped(struct loop_timer *t)
{
	remove_now(container_of(t, struct sandbox, remove_timer));
}

/* Still there after the VMM was killed: the proxy hangs (stopped, or stuck in the kernel). */
static void shutdown_timeout(struct loop_timer *t)
{
	struct sandbox *sb = container_of(t, struct sandbox, stop_timer);

	if (sb->proxy_w.fd >= 0) {
		log_warn("sandbox %s: task proxy %d did not exit after its VMM was killed; "
		         "killing it",
		         sb->id, sb->proxy);
		sys_pidfd_send_signal(sb->proxy_w.fd, SIGKILL);
		sb->stop_timer.fn = kill_timeout;
		loop_timer_arm(&sb->sbx->loop, &sb->stop_timer, KILL_GRACE_MS);
	}
}

void sandbox_shutdown(struct sandbox *sb, struct grpc_call *call)
{
	if (call_set_add(&sb->shutdowns, call, "Shutdown") < 0)
		return;
	if (sb->shutdowns.n > 1)
		return; /* the first one's removal answers it too */
	if (sb->state == SB_STARTING) {
		abort_start(sb);
		became_stopped(sb, 137);
	}
	if (sb->state == SB_READY || sb->state == SB_STOPPING) {
		/* The proxy exits with its VMM; that exit, an event, completes the removal. */
		if (sb->state == SB_READY)
			log_info("sandbox %s: shutting down", sb->id);
		sb->state = SB_STOPPING;
		sandbox_save(sb);
		kill_vmm(sb);
		sb->stop_timer.fn = shutdown_timeout;
		loop_timer_arm(&sb->sbx->loop, &sb->stop_timer, KILL_GRACE_MS);
		return;
	}
	if (sb->state != SB_STOPPED)
		became_stopped(sb, 0);
	/* From the loop: an event of this round may still name the sandbox. */
	sb->remove_timer.fn = remove_stopped;
	loop_timer_arm(&sb->sbx->loop, &sb->remove_timer, 0);
}

/* ---- recovery ---- */

int sandbox_proxy_is(pid_t pid, const char *id)
{
	char path[64], *cmd = NULL;
	size_t len = 0;
	int args = 0, ok = 0;

	if (pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	if (read_file(path, &cmd, &len, 1 << 16, NULL) < 0)
		return 0;
	for (size_t i = 0; i < len; i += strlen(cmd + i) + 1, args++) {
		if (args == 1 && strcmp(cmd + i, "proxy"))
			break;
		if (!strcmp(cmd + i, "--id") && i + 5 < len && !strcmp(cmd + i + 5, id))
			ok = 1;
	}
	free(cmd);
	return ok;
}

/* Kills what is left of a sandbox that cannot be re-adopted. */
static void abandon(struct sandbox *sb, pid_t proxy, const char *why)
{
	pid_t vmm = vm_find_vmm(sb->sbx->cfg.run_dir, sb->id);

	if (sandbox_proxy_is(proxy, proxy_name(sb)))
		kill(proxy, SIGKILL);
	if (vmm > 0)
		kill(vmm, SIGKILL);
	log_warn("sandbox %s: %s", sb->id, why);
	snprintf(sb->last_error, sizeof(sb->last_error), "%s", why);
	became_stopped(sb, 255);
}

/* A sandbox that was ready when the daemon went away: both its processes must still run. */
static void adopt(struct sandbox *sb, pid_t proxy)
{
	pid_t vmm = vm_find_vmm(sb->sbx->cfg.run_dir, sb->id);
	kerr_t err;

	if (vmm <= 0 || !sandbox_proxy_is(proxy, proxy_name(sb))) {
		abandon(sb, proxy,
		        vmm <= 0 ? "VMM gone while the sandboxer was down"
		                 : "task proxy gone while the sandboxer was down");
		return;
	}
	sb->pid = vmm;
	sb->proxy = proxy;
	sb->proxy_child = 0;
	sb->has_cgroup = sb->cg_parent[0] != 0;
	if (watch_pid(sb, &sb->proxy_w, proxy, proxy_exited, &err) < 0 ||
	    watch_pid(sb, &sb->vmm_w, vmm, vmm_exited, &err) < 0) {
		abandon(sb, proxy, err.msg);
		return;
	}
	sb->state = SB_READY;
	log_info("sandbox %s: re-adopted VMM %d and task proxy %d", sb->id, vmm, proxy);
}

static void recover_one(struct sandboxer *sbx, const char *id)
{
	char path[KPATH_SIZE];
	_cleanup_free_ char *text = NULL;
	json_object *o;
	struct sandbox *sb;
	const char *state;
	kerr_t err;

	if (id_valid(id, NULL) < 0 ||
	    fmt_path(path, sizeof(path), "%s/%s/" STATE_FILE, sbx->cfg.run_dir, id) < 0 ||
	    read_file(path, &text, NULL, 1 << 16, NULL) < 0)
		return;
	o = json_tokener_parse(text);
	if (!o) {
		log_warn("sandbox %s: %s is malformed; left alone", id, path);
		return;
	}
	sb = sandbox_new(sbx, id, &err);
	if (!sb) {
		log_warn("sandbox %s: not recovered: %s", id, err.msg);
		json_object_put(o);
		return;
	}
	sb->vcpus = (unsigned)jget_int(o, "vcpus", 0);
	sb->memory_mib = (unsigned)jget_int(o, "memory_mib", 0);
	sb->memory_now_mib = (unsigned)jget_int(o, "memory_now_mib", 0);
	snprintf(sb->hostname, sizeof(sb->hostname), "%s", jget_str(o, "hostname", ""));
	snprintf(sb->netns, sizeof(sb->netns), "%s", jget_str(o, "netns", ""));
	snprintf(sb->appliance, sizeof(sb->appliance), "%s", jget_str(o, "appliance", ""));
	snprintf(sb->snapshot, sizeof(sb->snapshot), "%s", jget_str(o, "snapshot", ""));
	snprintf(sb->rootfs, sizeof(sb->rootfs), "%s", jget_str(o, "rootfs", ""));
	snprintf(sb->cg_parent, sizeof(sb->cg_parent), "%s",
	         jget_str(o, "cgroup_parent", sbx->cfg.cgroup_parent));
	sb->spec_json = jget_str(o, "spec", "")[0] ? strdup(jget_str(o, "spec", "")) : NULL;
	snprintf(sb->last_error, sizeof(sb->last_error), "%s", jget_str(o, "error", ""));
	snprintf(sb->boot, sizeof(sb->boot), "%s", jget_str(o, "boot", ""));
	snprintf(sb->network, sizeof(sb->network), "%s", jget_str(o, "network", ""));
	if (id_valid(jget_str(o, "proxy_id", id), NULL) == 0)
		snprintf(sb->proxy_name, sizeof(sb->proxy_name), "%s", jget_str(o, "proxy_id", id));
	sb->created_ns = jget_int(o, "created_ns", 0);
	sb->started_ns = jget_int(o, "started_ns", 0);
	sb->exited_ns = jget_int(o, "exited_ns", 0);
	sb->exit_status = (int)jget_int(o, "exit_status", 0);
	state = jget_str(o, "state", "");
	if (!strcmp(state, "ready"))
		adopt(sb, (pid_t)jget_int(o, "proxy_pid", 0));
	else if (!strcmp(state, "starting"))
		abandon(sb, (pid_t)jget_int(o, "proxy_pid", 0),
		        "start interrupted by a sandboxer restart");
	else if (!strcmp(state, "created"))
		sb->state = SB_CREATED;
	else
		sb->state = SB_STOPPED;
	json_object_put(o);
}

void sandbox_recover_all(struct sandboxer *sbx)
{
	DIR *d = opendir(sbx->cfg.run_dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			recover_one(sbx, de->d_name);
	closedir(d);
}

static int tracked_child(const struct sandboxer *sbx, pid_t pid)
{
	for (const struct sandbox *sb = sbx->sandboxes; sb; sb = sb->next)
		if (sb->pid == pid || sb->proxy == pid)
			return 1;
	return 0;
}

void sandbox_reap_orphans(struct sandboxer *sbx)
{
	_cleanup_free_ char *list = NULL;
	char path[64], *p, *end;

	snprintf(path, sizeof(path), "/proc/self/task/%d/children", getpid());
	if (read_file(path, &list, NULL, 1 << 20, NULL) < 0)
		return;
	for (p = list; *p; p = end) {
		long pid = strtol(p, &end, 10);

		if (end == p)
			break;
		if (pid > 0 && !tracked_child(sbx, (pid_t)pid) &&
		    waitpid((pid_t)pid, NULL, WNOHANG) > 0)
			log_debug("reaped orphan %ld", pid);
	}
}
