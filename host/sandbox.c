#include "sandbox.h"

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
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "host/sandbox_controller.pb-c.h"
#include "log.h"
#include "sandbox.pb-c.h"
#include "util.h"

#define STATE_FILE "sandbox.json"
#define TASK_SOCK "task.sock"

static const char *const state_names[] = { "created", "starting", "ready", "stopping", "stopped" };

const char *sandbox_state_name(const struct sandbox *sb)
{
	return state_names[sb->state];
}

struct sandbox *sandbox_find(struct sandboxer *sbx, const char *id)
{
	for (struct sandbox *sb = sbx->sandboxes; sb; sb = sb->next)
		if (!strcmp(sb->id, id))
			return sb;
	return NULL;
}

static void state_path(const struct sandbox *sb, char *buf, size_t n)
{
	snprintf(buf, n, "%s/%s/" STATE_FILE, sb->sbx->cfg.run_dir, sb->id);
}

/* Written at every change (write, fsync, rename) so a restarted daemon finds it. */
static void state_write(struct sandbox *sb)
{
	json_object *o = json_object_new_object();
	char path[512];
	const char *s;
	kerr_t err;

	json_object_object_add(o, "id", json_object_new_string(sb->id));
	json_object_object_add(o, "state",
	                       json_object_new_string(sb->state == SB_STARTING ? "created"
	                                              : sb->state == SB_STOPPING
	                                                  ? "ready"
	                                                  : sandbox_state_name(sb)));
	json_object_object_add(o, "vcpus", json_object_new_int((int)sb->vcpus));
	json_object_object_add(o, "memory_mib", json_object_new_int((int)sb->memory_mib));
	json_object_object_add(o, "hostname", json_object_new_string(sb->hostname));
	json_object_object_add(o, "netns", json_object_new_string(sb->netns));
	json_object_object_add(o, "namespace", json_object_new_string(sb->tp.ns));
	json_object_object_add(o, "created_ns", json_object_new_int64(sb->created_ns));
	json_object_object_add(o, "started_ns", json_object_new_int64(sb->started_ns));
	json_object_object_add(o, "exited_ns", json_object_new_int64(sb->exited_ns));
	json_object_object_add(o, "exit_status", json_object_new_int(sb->exit_status));
	json_object_object_add(o, "error", json_object_new_string(sb->last_error));
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
	state_path(sb, path, sizeof(path));
	if (write_file_atomic(path, s, strlen(s), &err) < 0)
		log_warn("sandbox %s: cannot save its state: %s", sb->id, err.msg);
	json_object_put(o);
}

static struct sandbox *sandbox_new(struct sandboxer *sbx, const char *id)
{
	struct sandbox *sb = calloc(1, sizeof(*sb));

	if (!sb)
		return NULL;
	snprintf(sb->id, sizeof(sb->id), "%s", id);
	sb->sbx = sbx;
	vm_init(&sb->vm, id);
	vm_paths_init(&sb->vm.paths, sbx->cfg.run_dir, id);
	sb->pidfd_w.fd = -1;
	sb->starter_w.fd = -1;
	sb->starter_pidfd = -1;
	sb->tp.listen.fd = -1;
	sb->link.w.fd = -1;
	snprintf(sb->task_address, sizeof(sb->task_address), "ttrpc+unix://%s/" TASK_SOCK,
	         sb->vm.paths.dir);
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
	free(sb);
}

int sandbox_create(struct sandboxer *sbx, const char *id, unsigned vcpus, unsigned memory_mib,
                   const char *hostname, const char *netns, struct sandbox **out, kerr_t *err)
{
	struct sandbox *sb;
	char dir[400];

	if (id_valid(id, err) < 0)
		return -1;
	if (sandbox_find(sbx, id))
		return kerr_set(err, EEXIST, "sandbox `%s` already exists", id);
	snprintf(dir, sizeof(dir), "%s/%s", sbx->cfg.run_dir, id);
	if (mkdir(dir, 0700) < 0) {
		if (errno == EEXIST)
			return kerr_set(err, EEXIST, "sandbox `%s`: %s already exists", id, dir);
		return kerr_sys(err, "mkdir %s", dir);
	}
	sb = sandbox_new(sbx, id);
	if (!sb) {
		rmdir(dir);
		return kerr_set(err, ENOMEM, "out of memory");
	}
	sb->vcpus = vcpus;
	sb->memory_mib = memory_mib;
	snprintf(sb->hostname, sizeof(sb->hostname), "%s", hostname ? hostname : "");
	snprintf(sb->netns, sizeof(sb->netns), "%s", netns ? netns : "");
	sb->created_ns = real_ns();
	state_write(sb);
	*out = sb;
	return 0;
}

/* ---- replies ---- */

static void set_ts(Google__Protobuf__Timestamp *ts, int64_t ns)
{
	ts->seconds = ns / 1000000000;
	ts->nanos = (int32_t)(ns % 1000000000);
}

void sandbox_reply_start(struct sandbox *sb, struct grpc_call *call)
{
	Containerd__Services__Sandbox__V1__StartResponse r =
	    CONTAINERD__SERVICES__SANDBOX__V1__START_RESPONSE__INIT;
	Google__Protobuf__Timestamp created = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	Google__Protobuf__Any spec = GOOGLE__PROTOBUF__ANY__INIT;
	char json[512];

	r.sandbox_id = sb->id;
	r.pid = (uint32_t)sb->pid;
	set_ts(&created, sb->created_ns);
	r.created_at = &created;
	r.address = sb->task_address;
	r.version = 3;
	/* containerd decodes the spec it is handed; a minimal valid one says what the pod is. */
	snprintf(json, sizeof(json), "{\"ociVersion\":\"1.1.0\",\"hostname\":\"%s\"}",
	         sb->hostname);
	spec.type_url = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
	spec.value.data = (uint8_t *)json;
	spec.value.len = strlen(json);
	r.spec = &spec;
	grpc_reply(call, &r.base);
}

static void reply_wait(struct grpc_call *call, struct sandbox *sb)
{
	Containerd__Services__Sandbox__V1__WaitResponse r =
	    CONTAINERD__SERVICES__SANDBOX__V1__WAIT_RESPONSE__INIT;
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;

	r.exit_status = (uint32_t)sb->exit_status;
	set_ts(&ts, sb->exited_ns ? sb->exited_ns : real_ns());
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

	if (sb->state == SB_STOPPED)
		return reply_wait(call, sb);
	w = calloc(1, sizeof(*w));
	if (!w)
		return grpc_reply_error(call, RPC_RESOURCE_EXHAUSTED, "out of memory");
	w->call = call;
	w->sb = sb;
	w->next = sb->waiters;
	sb->waiters = w;
	grpc_call_on_cancel(call, waiter_cancel, w);
}

static void start_cancel(struct grpc_call *call, void *arg)
{
	((struct sandbox *)arg)->start_call = NULL;
}

static void stop_cancel(struct grpc_call *call, void *arg)
{
	struct sandbox *sb = arg;

	for (int i = 0; i < sb->n_stop_calls; i++) {
		if (sb->stop_calls[i] == call) {
			sb->stop_calls[i] = sb->stop_calls[--sb->n_stop_calls];
			return;
		}
	}
}

/* ---- the VM is gone ---- */

static void detach_runtime(struct sandbox *sb)
{
	taskproxy_stop(&sb->tp);
	glink_stop(&sb->link);
	if (sb->pidfd_w.fd >= 0) {
		loop_del(&sb->sbx->loop, &sb->pidfd_w);
		sb->pidfd_w.fd = -1;
	}
	vm_release(&sb->vm);
	loop_timer_cancel(&sb->sbx->loop, &sb->stop_timer);
}

static void became_stopped(struct sandbox *sb, int status)
{
	struct sb_waiter *w;

	detach_runtime(sb);
	/* Root filesystems mounted for containers must not outlive the VM: containerd removes
	 * their snapshots next. */
	umount_below(sb->vm.paths.dir);
	sb->state = SB_STOPPED;
	sb->exit_status = status;
	sb->exited_ns = real_ns();
	sb->pid = 0;
	state_write(sb);
	while ((w = sb->waiters)) {
		sb->waiters = w->next;
		grpc_call_on_cancel(w->call, NULL, NULL);
		reply_wait(w->call, sb);
		free(w);
	}
	while (sb->n_stop_calls) {
		struct grpc_call *c = sb->stop_calls[--sb->n_stop_calls];

		grpc_call_on_cancel(c, NULL, NULL);
		grpc_reply(c, NULL);
	}
}

static int vmm_status(int pidfd)
{
	siginfo_t si = { 0 };

	if (waitid((idtype_t)3 /* P_PIDFD */, (id_t)pidfd, &si, WEXITED | WNOHANG) < 0)
		return 255; /* not our child (adopted after a restart): status unknown */
	if (si.si_code == CLD_EXITED)
		return si.si_status;
	return 128 + si.si_status;
}

static void vmm_event(struct loop_watch *w, uint32_t events)
{
	struct sandbox *sb = (struct sandbox *)((char *)w - offsetof(struct sandbox, pidfd_w));
	int status = vmm_status(w->fd);

	log_info("sandbox %s: VMM %d exited (status %d)", sb->id, sb->pid, status);
	became_stopped(sb, status);
}

/* ---- guest link and events ---- */

static void subscribe_events(struct sandbox *sb);

static void on_event(void *owner, uintptr_t tag, const struct ttrpc_header *h, const uint8_t *data)
{
	struct sandbox *sb = owner;
	Kuasar__Sandbox__V1__Event *ev;

	if (h->type == TTRPC_RESPONSE) {
		sb->events_gid = 0; /* the guest ended the subscription */
		return;
	}
	if (h->type != TTRPC_DATA || !data)
		return;
	ev = kuasar__sandbox__v1__event__unpack(NULL, h->length, data);
	if (!ev)
		return;
	if (ev->dropped)
		log_warn("sandbox %s: the guest dropped %u events", sb->id, ev->dropped);
	if (ev->event && ev->topic)
		events_fwd_publish(sb->sbx->events, sb->tp.ns[0] ? sb->tp.ns : "k8s.io", ev->topic,
		                   ev->event->type_url, ev->event->value.data, ev->event->value.len,
		                   ev->timestamp ? ev->timestamp->seconds * 1000000000LL +
		                                       ev->timestamp->nanos
		                                 : real_ns());
	kuasar__sandbox__v1__event__free_unpacked(ev, NULL);
}

static void subscribe_events(struct sandbox *sb)
{
	sb->events_gid = glink_open(&sb->link, on_event, sb, 0);
	if (sb->events_gid && glink_request(&sb->link, sb->events_gid, TTRPC_FLAG_REMOTE_CLOSED,
	                                    AGENT_SANDBOX_SERVICE, "GetEvents", NULL, 0) < 0)
		sb->events_gid = 0;
}

static int link_up(struct sandbox *sb, kerr_t *err)
{
	int fd = vm_link_connect(&sb->vm, mono_ns() + 2000000000LL, err);

	if (fd < 0)
		return -1;
	if (glink_start(&sb->link, &sb->sbx->loop, fd, err) < 0) {
		close(fd);
		return -1;
	}
	subscribe_events(sb);
	return 0;
}

static void link_down(struct glink *l, void *arg)
{
	struct sandbox *sb = arg;
	kerr_t err;

	taskproxy_link_down(&sb->tp);
	sb->events_gid = 0;
	if (sb->state != SB_READY)
		return;
	/* The VMM may be gone (its pidfd says so next) or the link just reset: reconnect. */
	if (link_up(sb, &err) < 0)
		log_warn("sandbox %s: guest link lost and not re-established: %s", sb->id, err.msg);
	else
		log_info("sandbox %s: guest link re-established", sb->id);
}

static void on_ns(struct taskproxy *tp, void *arg)
{
	state_write(arg);
}

/* Takes over a running VMM: pidfd, guest link, task socket, events. */
static int attach(struct sandbox *sb, kerr_t *err)
{
	char sock[400];

	vm_init(&sb->vm, sb->id);
	if (vm_attach(&sb->vm, sb->sbx->cfg.run_dir, sb->id, err) < 0)
		return -1;
	sb->pid = sb->vm.pid;
	sb->link.on_down = link_down;
	sb->link.down_arg = sb;
	if (glink_start(&sb->link, &sb->sbx->loop, sb->vm.link.fd, err) < 0)
		goto fail;
	sb->vm.link.fd = -1; /* the glink owns it now */
	snprintf(sock, sizeof(sock), "%s/" TASK_SOCK, sb->vm.paths.dir);
	sb->tp.on_ns = on_ns;
	sb->tp.arg = sb;
	if (taskproxy_start(&sb->tp, &sb->sbx->loop, &sb->link, sock, sb->vm.paths.shared, err) < 0)
		goto fail;
	sb->pidfd_w.fd = sb->vm.pidfd;
	sb->pidfd_w.fn = vmm_event;
	if (loop_add(&sb->sbx->loop, &sb->pidfd_w, EPOLLIN, err) < 0) {
		sb->pidfd_w.fd = -1;
		goto fail;
	}
	subscribe_events(sb);
	sb->state = SB_READY;
	return 0;
fail:
	detach_runtime(sb);
	return -1;
}

/* ---- start ---- */

static void write_result(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void write_result(int fd, const char *fmt, ...)
{
	char buf[1200];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	write_all(fd, buf, n < (int)sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

/* The starter: boots the VM, prepares the guest, leaves the VMM running, reports. */
static void starter_main(struct sandbox *sb, int fd)
{
	struct vm_config cfg;
	struct guest_prep prep;
	struct vm vm;
	kerr_t err;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	config_vm(&sb->sbx->cfg, &cfg);
	cfg.vcpus = sb->vcpus;
	cfg.memory_mib = sb->memory_mib;
	vm_init(&vm, sb->id);
	vm.reuse_dir = 1;
	if (vm_start(&vm, &cfg, sb->sbx->cfg.run_dir, 1, &err) < 0) {
		write_result(fd, "E %d %s", err.errnum, err.msg);
		_exit(1);
	}
	if (vm_prepare_guest(&vm, &prep, &err) < 0) {
		vm_destroy(&vm);
		write_result(fd, "E %d prepare the guest: %s", err.errnum, err.msg);
		_exit(1);
	}
	vm_release(&vm);
	write_result(fd, "OK %d %s %lld", vm.pid, accel_name(vm.accel),
	             (long long)((vm.t.link_ns - vm.t.spawn_ns) / 1000000));
	_exit(0);
}

static void start_failed(struct sandbox *sb, const char *msg)
{
	char dir[400];
	pid_t pid = vm_find_vmm(sb->sbx->cfg.run_dir, sb->id);

	if (pid > 0)
		kill(pid, SIGKILL);
	snprintf(sb->last_error, sizeof(sb->last_error), "%s", msg);
	log_warn("sandbox %s: start failed: %s", sb->id, msg);
	/* The failed boot removed the directory; the sandbox stays known until Shutdown. */
	snprintf(dir, sizeof(dir), "%s/%s", sb->sbx->cfg.run_dir, sb->id);
	mkdir(dir, 0700);
	became_stopped(sb, 255);
	if (sb->start_call) {
		grpc_call_on_cancel(sb->start_call, NULL, NULL);
		grpc_reply_error(sb->start_call, RPC_FAILED_PRECONDITION, "start sandbox %s: %s",
		                 sb->id, msg);
		sb->start_call = NULL;
	}
}

static void starter_event(struct loop_watch *w, uint32_t events)
{
	struct sandbox *sb = (struct sandbox *)((char *)w - offsetof(struct sandbox, starter_w));
	char buf[1300] = "";
	ssize_t n = read(w->fd, buf, sizeof(buf) - 1);
	siginfo_t si;
	kerr_t err;
	int pid = 0;
	char accel[16] = "";
	long long boot_ms = 0;

	if (n < 0 && errno == EAGAIN)
		return;
	loop_del(&sb->sbx->loop, w);
	close(w->fd);
	w->fd = -1;
	waitid((idtype_t)3 /* P_PIDFD */, (id_t)sb->starter_pidfd, &si, WEXITED);
	close(sb->starter_pidfd);
	sb->starter_pidfd = -1;
	sb->starter = 0;
	buf[n > 0 ? n : 0] = 0;
	if (sb->state != SB_STARTING) /* stopped or shut down meanwhile */
		return;
	if (strncmp(buf, "OK ", 3) || sscanf(buf + 3, "%d %15s %lld", &pid, accel, &boot_ms) < 1) {
		const char *msg = buf[0] == 'E' ? strchr(buf + 2, ' ') : NULL;

		return start_failed(sb,
		                    msg ? msg + 1 : "the starter process died without a result");
	}
	if (attach(sb, &err) < 0)
		return start_failed(sb, err.msg);
	sb->started_ns = real_ns();
	sb->last_error[0] = 0;
	state_write(sb);
	log_info("sandbox %s: ready (VMM %d, %s, %lld ms to the guest's answer)", sb->id, sb->pid,
	         accel, boot_ms);
	if (sb->start_call) {
		grpc_call_on_cancel(sb->start_call, NULL, NULL);
		sandbox_reply_start(sb, sb->start_call);
		sb->start_call = NULL;
	}
}

void sandbox_start(struct sandbox *sb, struct grpc_call *call)
{
	int p[2];
	kerr_t err;

	switch (sb->state) {
	case SB_READY: return sandbox_reply_start(sb, call);
	case SB_STARTING:
		return grpc_reply_error(call, RPC_FAILED_PRECONDITION,
		                        "sandbox %s is already starting", sb->id);
	case SB_STOPPING:
	case SB_STOPPED:
		return grpc_reply_error(call, RPC_FAILED_PRECONDITION, "sandbox %s is %s", sb->id,
		                        sandbox_state_name(sb));
	case SB_CREATED: break;
	}
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		return grpc_reply_error(call, RPC_INTERNAL, "pipe: %s", strerror(errno));
	sb->starter = fork();
	if (sb->starter == 0) {
		close(p[0]);
		fcntl(p[1], F_SETFL, 0);
		starter_main(sb, p[1]);
	}
	close(p[1]);
	if (sb->starter < 0) {
		close(p[0]);
		return grpc_reply_error(call, RPC_INTERNAL, "fork: %s", strerror(errno));
	}
	sb->starter_pidfd = (int)syscall(SYS_pidfd_open, sb->starter, 0);
	sb->starter_w.fd = p[0];
	sb->starter_w.fn = starter_event;
	if (loop_add(&sb->sbx->loop, &sb->starter_w, EPOLLIN, &err) < 0) {
		kill(sb->starter, SIGKILL);
		close(p[0]);
		sb->starter_w.fd = -1;
		return grpc_reply_error(call, RPC_INTERNAL, "%s", err.msg);
	}
	sb->state = SB_STARTING;
	sb->start_call = call;
	grpc_call_on_cancel(call, start_cancel, sb);
}

/* ---- stop ---- */

static void force_kill(struct sandbox *sb)
{
	if (sb->vm.pidfd >= 0)
		syscall(SYS_pidfd_send_signal, sb->vm.pidfd, SIGKILL, NULL, 0);
	else if (sb->pid > 0)
		kill(sb->pid, SIGKILL);
}

static void stop_timeout(struct loop_timer *t)
{
	struct sandbox *sb = (struct sandbox *)((char *)t - offsetof(struct sandbox, stop_timer));

	log_warn("sandbox %s: the guest did not power off in time; killing the VMM", sb->id);
	force_kill(sb);
}

static void on_shutdown_answer(void *owner, uintptr_t tag, const struct ttrpc_header *h,
                               const uint8_t *data)
{
	/* The guest powers off after answering; the VMM's exit completes the stop. */
}

/* Kills a start in flight: the starter and whatever VMM it spawned. */
static void abort_start(struct sandbox *sb)
{
	pid_t pid;

	if (sb->starter > 0)
		kill(sb->starter, SIGKILL);
	if (sb->starter_pidfd >= 0) {
		siginfo_t si;

		waitid((idtype_t)3, (id_t)sb->starter_pidfd, &si, WEXITED);
		close(sb->starter_pidfd);
		sb->starter_pidfd = -1;
	}
	if (sb->starter_w.fd >= 0) {
		loop_del(&sb->sbx->loop, &sb->starter_w);
		close(sb->starter_w.fd);
		sb->starter_w.fd = -1;
	}
	sb->starter = 0;
	pid = vm_find_vmm(sb->sbx->cfg.run_dir, sb->id);
	if (pid > 0)
		kill(pid, SIGKILL);
	if (sb->start_call) {
		grpc_call_on_cancel(sb->start_call, NULL, NULL);
		grpc_reply_error(sb->start_call, RPC_CANCELLED,
		                 "sandbox %s was stopped while starting", sb->id);
		sb->start_call = NULL;
	}
}

void sandbox_stop(struct sandbox *sb, unsigned timeout_secs, struct grpc_call *call)
{
	if (sb->state == SB_CREATED || sb->state == SB_STARTING) {
		if (sb->state == SB_STARTING)
			abort_start(sb);
		became_stopped(sb, sb->state == SB_STARTING ? 137 : 0);
	}
	if (sb->state == SB_STOPPED)
		return grpc_reply(call, NULL);
	if (sb->n_stop_calls >= (int)(sizeof(sb->stop_calls) / sizeof(sb->stop_calls[0])))
		return grpc_reply_error(call, RPC_RESOURCE_EXHAUSTED,
		                        "too many Stop calls in flight");
	sb->stop_calls[sb->n_stop_calls++] = call;
	grpc_call_on_cancel(call, stop_cancel, sb);
	if (sb->state == SB_STOPPING)
		return;
	sb->state = SB_STOPPING;
	if (!timeout_secs)
		timeout_secs = sb->sbx->cfg.stop_timeout_secs;
	sb->stop_timer.fn = stop_timeout;
	loop_timer_arm(&sb->sbx->loop, &sb->stop_timer, (int64_t)timeout_secs * 1000);
	sb->shutdown_gid = glink_open(&sb->link, on_shutdown_answer, sb, 0);
	if (!sb->shutdown_gid || glink_request(&sb->link, sb->shutdown_gid, 0,
	                                       AGENT_SANDBOX_SERVICE, "Shutdown", NULL, 0) < 0)
		force_kill(sb);
	log_info("sandbox %s: stopping (timeout %u s)", sb->id, timeout_secs);
}

int sandbox_remove(struct sandbox *sb, kerr_t *err)
{
	char dir[400];

	if (sb->state == SB_STARTING)
		abort_start(sb);
	if (sb->state == SB_READY || sb->state == SB_STOPPING) {
		struct pollfd p = { .fd = sb->vm.pidfd, .events = POLLIN };

		force_kill(sb);
		if (p.fd >= 0 && poll(&p, 1, 5000) != 1)
			return kerr_set(err, ETIMEDOUT, "sandbox %s: VMM %d did not die", sb->id,
			                sb->pid);
		became_stopped(sb, vmm_status(p.fd));
	} else if (sb->state != SB_STOPPED) {
		became_stopped(sb, 0);
	}
	snprintf(dir, sizeof(dir), "%s/%s", sb->sbx->cfg.run_dir, sb->id);
	umount_below(dir);
	if (rm_tree(dir) < 0 && errno != ENOENT)
		return kerr_sys(err, "sandbox %s: remove %s", sb->id, dir);
	log_info("sandbox %s: removed", sb->id);
	sandbox_free(sb);
	return 0;
}

/* ---- recovery ---- */

static int64_t jint(json_object *o, const char *k)
{
	json_object *v;

	return json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : 0;
}

static const char *jstr(json_object *o, const char *k)
{
	json_object *v;

	return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : "";
}

static void recover_one(struct sandboxer *sbx, const char *id)
{
	char path[512];
	_cleanup_free_ char *text = NULL;
	json_object *o;
	struct sandbox *sb;
	const char *state;
	kerr_t err;

	snprintf(path, sizeof(path), "%s/%s/" STATE_FILE, sbx->cfg.run_dir, id);
	if (id_valid(id, NULL) < 0 || read_file(path, &text, NULL, 1 << 16, NULL) < 0)
		return;
	o = json_tokener_parse(text);
	if (!o) {
		log_warn("sandbox %s: %s is malformed; left alone", id, path);
		return;
	}
	sb = sandbox_new(sbx, id);
	if (!sb) {
		json_object_put(o);
		return;
	}
	sb->vcpus = (unsigned)jint(o, "vcpus");
	sb->memory_mib = (unsigned)jint(o, "memory_mib");
	snprintf(sb->hostname, sizeof(sb->hostname), "%s", jstr(o, "hostname"));
	snprintf(sb->netns, sizeof(sb->netns), "%s", jstr(o, "netns"));
	snprintf(sb->tp.ns, sizeof(sb->tp.ns), "%s", jstr(o, "namespace"));
	snprintf(sb->last_error, sizeof(sb->last_error), "%s", jstr(o, "error"));
	sb->created_ns = jint(o, "created_ns");
	sb->started_ns = jint(o, "started_ns");
	sb->exited_ns = jint(o, "exited_ns");
	sb->exit_status = (int)jint(o, "exit_status");
	state = jstr(o, "state");
	if (!strcmp(state, "ready")) {
		if (attach(sb, &err) == 0) {
			log_info("sandbox %s: re-adopted VMM %d", id, sb->pid);
		} else {
			log_warn("sandbox %s: its VMM is gone (%s)", id, err.msg);
			snprintf(sb->last_error, sizeof(sb->last_error),
			         "VMM lost while the sandboxer was down");
			sb->state = SB_READY;
			became_stopped(sb, 255);
		}
	} else if (!strcmp(state, "created")) {
		/* A start cut short by our own death leaves a VMM nobody prepared: kill it. */
		pid_t pid = vm_find_vmm(sbx->cfg.run_dir, id);

		if (pid > 0) {
			kill(pid, SIGKILL);
			snprintf(sb->last_error, sizeof(sb->last_error),
			         "start interrupted by a sandboxer restart");
			became_stopped(sb, 137);
		} else {
			sb->state = SB_CREATED;
		}
	} else {
		sb->state = SB_STOPPED;
	}
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
