#include "vm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "base/fsat.h"
#include "base/json.h"
#include "base/syscalls.h"
#include "base/util.h"
#include "vm/vm_priv.h"
#include "vm/vmsnap.h"

/* Under real KVM our guest answers in well under a second; a guest that has not answered
 * by then is taken as KVM not working (e.g. a nested PVM device). */
#define KVM_BOOT_PROBE_MS 5000

void vm_init(struct vm *vm, const char *id)
{
	memset(vm, 0, sizeof(*vm));
	snprintf(vm->id, sizeof(vm->id), "%s", id);
	snprintf(vm->hostname, sizeof(vm->hostname), "%s", id);
	snprintf(vm->boot_mode, sizeof(vm->boot_mode), "cold");
	vm->pidfd = vm->sigfd = vm->con_listen = vm->con_fd = -1;
	vm->qmp.fd = -1;
	vm->link.fd = -1;
}

void vm_phases(const struct vm *vm, struct phases *ph)
{
	if (vm->t.qmp_ns)
		phases_mark_at(ph, "vmm", vm->t.qmp_ns);
	if (vm->t.load_ns)
		phases_mark_at(ph, "load", vm->t.load_ns);
	if (vm->t.link_ns)
		phases_mark_at(ph, "link", vm->t.link_ns);
}

/* The NICs' taps become fds 3, 4, ... (the numbers on the command line). */
static void child_nic_fds(const struct vm_nic *nics, unsigned n)
{
	int tmp[VM_MAX_NICS];

	/* Out of the way first: a tap may already sit on one of the target numbers. */
	for (unsigned i = 0; i < n && i < VM_MAX_NICS; i++) {
		tmp[i] = fcntl(nics[i].fd, F_DUPFD_CLOEXEC, 64);
		if (tmp[i] < 0)
			_exit(126);
	}
	for (unsigned i = 0; i < n && i < VM_MAX_NICS; i++)
		if (dup2(tmp[i], 3 + (int)i) < 0)
			_exit(126);
	sys_close_from(3 + (int)(n < VM_MAX_NICS ? n : VM_MAX_NICS));
}

/* In the VMM's child: into cgroup (a v2 directory), with a word on stderr if it cannot. */
static void enter_cgroup(const char *cgroup)
{
	char path[KPATH_SIZE];
	int fd;

	if (fmt_path(path, sizeof(path), "%s/cgroup.procs", cgroup) < 0)
		return;
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "0", 1) != 1)
		dprintf(2, "kuasar: warning: the VMM stays in its parent's cgroup: %s: %s\n", path,
		        strerror(errno));
	if (fd >= 0)
		close(fd);
}

static void child_exec(char **argv, const struct vm_config *cfg, int log_fd, int keep, int go_fd)
{
	sigset_t all;
	int null = open("/dev/null", O_RDONLY);
	char go;

	/* Without --keep the VMM must not outlive us, whatever kills us. */
	if (!keep)
		prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* Not before the parent has recorded this pid in vm.json: a VMM that runs can always
	 * be found (and stopped) by its state, whenever the parent dies. */
	if (read(go_fd, &go, 1) != 1)
		_exit(127);
	if (cfg->cgroup && cfg->cgroup[0])
		enter_cgroup(cfg->cgroup);
	/* Its own session: a terminal's Ctrl-C reaches us, and we stop the VM cleanly. */
	setsid();
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	dup2(null, 0);
	dup2(log_fd, 1);
	dup2(log_fd, 2);
	child_nic_fds(cfg->nics, cfg->n_nics);
	execvp(argv[0], argv);
	dprintf(2, "kuasar: fatal: unable to exec %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

int vm_spawn(struct vm *vm, const struct vm_config *cfg, enum accel accel, int keep, kerr_t *err)
{
	struct vm_config c = *cfg;
	char **argv;
	int go[2], rc;

	c.link = vm->link_type;
	c.guest_cid = vm->cid;
	argv = qemu_argv(&c, &vm->paths, vm->id, accel);
	_cleanup_close_ int log_fd =
	    open(vm->paths.vmm_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (log_fd < 0) {
		argv_free(argv);
		return kerr_sys(err, "create %s", vm->paths.vmm_log);
	}
	if (pipe2(go, O_CLOEXEC) < 0) {
		argv_free(argv);
		return kerr_sys(err, "pipe");
	}
	vm->t.spawn_ns = mono_ns();
	vm->pid = fork();
	if (vm->pid == 0) {
		close(go[1]);
		child_exec(argv, cfg, log_fd, keep, go[0]);
	}
	argv_free(argv);
	close(go[0]);
	if (vm->pid < 0) {
		close(go[1]);
		return kerr_sys(err, "fork");
	}
	vm->is_child = 1;
	vm->accel = accel;
	vm->pidfd = sys_pidfd_open(vm->pid);
	/* The state first, then the VMM may exec (a failure leaves it to exit at the EOF). */
	if (vm->pidfd < 0)
		rc = kerr_sys(err, "pidfd_open");
	else if ((rc = vm_write_state(vm, cfg, err)) == 0 && write(go[1], "g", 1) != 1)
		rc = kerr_sys(err, "start the VMM");
	close(go[1]);
	return rc;
}

static int boot_steps(struct vm *vm, const struct vm_config *cfg, int64_t deadline, kerr_t *err)
{
	if (vm_open_qmp(vm, deadline, err) < 0)
		return -1;
	if (cfg->until_console)
		return vm_wait_console(vm, deadline, err);
	return vm_connect_guest(vm, deadline, err);
}

int vm_write_state(struct vm *vm, const struct vm_config *cfg, kerr_t *err)
{
	json_object *o = json_object_new_object();
	const char *s;
	int rc;

	json_object_object_add(o, "id", json_object_new_string(vm->id));
	json_object_object_add(o, "pid", json_object_new_int(vm->pid));
	vm_shape_write(o, cfg);
	json_object_object_add(o, "accel", json_object_new_string(accel_name(vm->accel)));
	json_object_object_add(o, "link", json_object_new_string(link_name(vm->link_type)));
	json_object_object_add(o, "cid", json_object_new_int64(vm->cid));
	json_object_object_add(o, "boot", json_object_new_string(vm->boot_mode));
	json_object_object_add(o, "template", json_object_new_string(vm->template_key));
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
	rc = write_file_atomic(vm->paths.state, s, strlen(s), err);
	json_object_put(o);
	return rc;
}

/* A step that lost its peer usually means the VMM died: say that instead. */
int vm_step_failed(struct vm *vm, int timeout_ms, kerr_t *err)
{
	struct pollfd p = { .fd = vm->pidfd, .events = POLLIN };

	if (err->errnum == ETIMEDOUT) {
		char tail[1024];

		/* The console's end, here: the directory goes with the failed VM. */
		vm_console_tail(vm, tail, sizeof(tail));
		return kerr_wrap(err,
		                 "no answer from the guest within %d ms; console ends with:\n%s\n",
		                 timeout_ms, tail[0] ? tail : "(nothing)");
	}
	if (err->errnum != ECHILD && poll(&p, 1, 200) == 1) {
		vm_reap(vm);
		if (vm->exited)
			return vm_exited_error(vm, err);
	}
	return -1;
}

static int boot_once(struct vm *vm, const struct vm_config *cfg, enum accel accel, int keep,
                     int timeout_ms, kerr_t *err)
{
	int64_t deadline = mono_ns() + (int64_t)timeout_ms * 1000000;

	/* The state exists as soon as a VMM does (vm_spawn): whatever kills us now, shutdown
	 * can find the VMM (or its remains) by it. Rewritten once the guest answered. */
	if (vm_spawn(vm, cfg, accel, keep, err) < 0)
		return -1;
	if (boot_steps(vm, cfg, deadline, err) == 0)
		return 0;
	return vm_step_failed(vm, timeout_ms, err);
}

static int make_dir(struct vm *vm, const char *run_dir, kerr_t *err)
{
	if (mkdir_p(run_dir, 0755, err) < 0)
		return -1;
	if (mkdir(vm->paths.dir, 0700) < 0 && !(errno == EEXIST && vm->reuse_dir)) {
		if (errno == EEXIST)
			return kerr_set(err, EEXIST, "sandbox `%s` already exists (%s)", vm->id,
			                vm->paths.dir);
		return kerr_sys(err, "mkdir %s", vm->paths.dir);
	}
	if (mkdir(vm->paths.shared, 0755) < 0 && !(errno == EEXIST && vm->reuse_dir))
		return kerr_sys(err, "mkdir %s", vm->paths.shared);
	vm->con_listen = unix_listen(vm->paths.console, err);
	return vm->con_listen < 0 ? -1 : 0;
}

/* Kills what one boot attempt started but keeps the directory for the next attempt. */
static void undo_boot(struct vm *vm)
{
	if (vm->pid > 0 && !vm->exited) {
		kill(vm->pid, SIGKILL);
		if (vm->is_child)
			waitpid(vm->pid, &vm->exit_status, 0);
	}
	vm->exited = 0;
	vm->pid = 0;
	if (vm->pidfd >= 0)
		close(vm->pidfd);
	vm->pidfd = -1;
	qmp_close(&vm->qmp);
	ttrpc_client_close(&vm->link);
	if (vm->con_fd >= 0)
		close(vm->con_fd);
	vm->con_fd = -1;
	vm->con_len = 0;
	memset(&vm->t, 0, sizeof(vm->t));
	unlink(vm->paths.qmp);
	unlink(vm->paths.agent);
}

/* auto: KVM only when it has booted our guest on this host; otherwise TCG. */
static int boot_auto(struct vm *vm, const struct vm_config *cfg, const char *run_dir, int keep,
                     kerr_t *err)
{
	enum accel a;
	char why[256];
	kerr_t kerr;
	int probe_ms =
	    cfg->boot_timeout_ms < KVM_BOOT_PROBE_MS ? cfg->boot_timeout_ms : KVM_BOOT_PROBE_MS;

	if (accel_cache_get(run_dir, &a, vm->accel_why, sizeof(vm->accel_why)) == 0)
		return boot_once(vm, cfg, a, keep, cfg->boot_timeout_ms, err);
	if (kvm_probe(why, sizeof(why)) < 0) {
		accel_cache_put(run_dir, ACCEL_TCG, why);
		snprintf(vm->accel_why, sizeof(vm->accel_why), "%s", why);
		return boot_once(vm, cfg, ACCEL_TCG, keep, cfg->boot_timeout_ms, err);
	}
	if (boot_once(vm, cfg, ACCEL_KVM, keep, probe_ms, &kerr) == 0) {
		snprintf(vm->accel_why, sizeof(vm->accel_why), "a guest booted under KVM");
		accel_cache_put(run_dir, ACCEL_KVM, vm->accel_why);
		return 0;
	}
	if (kerr.errnum == EINTR)
		return kerr_set(err, EINTR, "%s", kerr.msg);
	undo_boot(vm);
	snprintf(vm->accel_why, sizeof(vm->accel_why),
	         "/dev/kvm runs code but our guest did not boot under it: %.180s", kerr.msg);
	accel_cache_put(run_dir, ACCEL_TCG, vm->accel_why);
	return boot_once(vm, cfg, ACCEL_TCG, keep, cfg->boot_timeout_ms, err);
}

/* Guest CIDs are host-wide: a random one in [3, 2^31) does not collide in practice, and
 * QEMU refuses to start (a clear error) if it ever does. */
static unsigned random_cid(void)
{
	unsigned r = 0;

	if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
		r = (unsigned)getpid() * 2654435761u;
	return 3 + r % 0x7ffffffcu;
}

/* Link, CID, directory: what a cold boot and a restore both need first. */
int vm_setup(struct vm *vm, const struct vm_config *cfg, const char *run_dir, kerr_t *err)
{
	char why[256];

	if (id_valid(vm->id, err) < 0)
		return -1;
	if (link_resolve(cfg->link, &vm->link_type, why, sizeof(why)) < 0)
		return kerr_set(err, ENODEV, "start sandbox `%s`: vsock link requested but %s",
		                vm->id, why);
	if (vm->link_type == LINK_VSOCK)
		vm->cid = cfg->guest_cid ? cfg->guest_cid : random_cid();
	if (vm_paths_init(&vm->paths, run_dir, vm->id, err) < 0)
		return -1;
	if (make_dir(vm, run_dir, err) < 0) {
		if (err->errnum != EEXIST)
			rm_tree(vm->paths.dir);
		/* Not ours: no later vm_destroy may remove another VM's directory. */
		vm->paths.dir[0] = '\0';
		return kerr_wrap(err, "start sandbox `%s`", vm->id);
	}
	return 0;
}

int vm_start(struct vm *vm, const struct vm_config *cfg, const char *run_dir, int keep, kerr_t *err)
{
	int rc;

	if (vm_setup(vm, cfg, run_dir, err) < 0)
		return -1;
	if (cfg->accel == ACCEL_AUTO) {
		rc = boot_auto(vm, cfg, run_dir, keep, err);
	} else {
		snprintf(vm->accel_why, sizeof(vm->accel_why), "requested");
		rc = boot_once(vm, cfg, cfg->accel, keep, cfg->boot_timeout_ms, err);
	}
	if (rc == 0)
		rc = vm_write_state(vm, cfg, err);
	if (rc < 0) {
		vm_destroy(vm);
		return kerr_wrap(err, "start sandbox `%s` (accel %s)", vm->id,
		                 accel_name(vm->accel));
	}
	return 0;
}

static int pid_is_our_vmm(pid_t pid, const char *id)
{
	char path[64], want[200], *cmd = NULL;
	size_t len = 0;
	int ok = 0;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	if (read_file(path, &cmd, &len, 1 << 16, NULL) < 0)
		return 0;
	snprintf(want, sizeof(want), "kuasar-%s,process=kuasar-%s", id, id);
	for (size_t i = 0; i < len; i += strlen(cmd + i) + 1)
		if (!strcmp(cmd + i, want))
			ok = 1;
	free(cmd);
	return ok;
}

/* The VMM's pid, link and CID, and the name it was started with (its "id": a pooled VM
 * keeps its pool name after it became a sandbox) into vmm_name. */
static int read_state(struct vm *vm, char vmm_name[ID_MAX + 1], kerr_t *err)
{
	char *s = NULL;
	json_object *o, *v;

	if (read_file(vm->paths.state, &s, NULL, 1 << 16, err) < 0)
		return kerr_wrap(err, "sandbox `%s` not found", vm->id);
	o = json_tokener_parse(s);
	free(s);
	if (!o || !json_object_object_get_ex(o, "pid", &v)) {
		json_object_put(o);
		return kerr_set(err, EINVAL, "%s is malformed", vm->paths.state);
	}
	vm->pid = json_object_get_int(v);
	snprintf(vmm_name, ID_MAX + 1, "%s", jget_str(o, "id", vm->id));
	vm->link_type = LINK_SERIAL;
	if (!strcmp(jget_str(o, "link", ""), "vsock") && json_object_object_get_ex(o, "cid", &v)) {
		vm->link_type = LINK_VSOCK;
		vm->cid = (unsigned)json_object_get_int64(v);
	}
	json_object_put(o);
	return 0;
}

pid_t vm_find_vmm(const char *run_dir, const char *id)
{
	char name[ID_MAX + 1];
	struct vm vm;

	vm_init(&vm, id);
	if (vm_paths_init(&vm.paths, run_dir, id, NULL) < 0 || read_state(&vm, name, NULL) < 0 ||
	    vm.pid <= 0 || !pid_is_our_vmm(vm.pid, name))
		return 0;
	return vm.pid;
}

int vm_attach(struct vm *vm, const char *run_dir, const char *id, kerr_t *err)
{
	char name[ID_MAX + 1];
	int fd;

	vm_init(vm, id);
	if (id_valid(id, err) < 0)
		return -1;
	if (vm_paths_init(&vm->paths, run_dir, id, err) < 0 || read_state(vm, name, err) < 0)
		return -1;
	if (vm->pid <= 0 || !pid_is_our_vmm(vm->pid, name))
		return kerr_set(err, ESRCH, "sandbox `%s`: its VMM (pid %d) is not running", id,
		                vm->pid);
	vm->pidfd = sys_pidfd_open(vm->pid);
	if (vm->pidfd < 0)
		return kerr_sys(err, "pidfd_open %d", vm->pid);
	fd = vm_link_connect(vm, mono_ns() + 10000000000LL, err);
	if (fd < 0)
		return kerr_wrap(err, "sandbox `%s`: guest link", id);
	ttrpc_client_init(&vm->link, fd);
	vm->link.wait = vm_link_wait;
	vm->link.wait_ctx = vm;
	return 0;
}

int vm_shutdown(struct vm *vm, int timeout_ms, kerr_t *err)
{
	int64_t deadline = mono_ns() + (int64_t)timeout_ms * 1000000;
	kerr_t e;
	int forced = 0;

	if (vm->link.fd >= 0 && agent_shutdown(&vm->link, deadline, &e) < 0 && e.errnum != ECHILD &&
	    e.errnum != ECONNRESET)
		kerr_set(err, e.errnum, "%s", e.msg);
	if (vm_wait_exit(vm, deadline) < 0) {
		forced = 1;
		if (vm->qmp.fd >= 0)
			qmp_call(&vm->qmp, "quit", NULL, NULL, mono_ns() + 1000000000, &e);
		if (vm_wait_exit(vm, mono_ns() + 2000000000LL) < 0)
			kill(vm->pid, SIGKILL);
	}
	vm_destroy(vm);
	if (forced)
		return kerr_set(err, ETIMEDOUT,
		                "sandbox `%s`: the guest did not power off within %d ms; stopped "
		                "by force",
		                vm->id, timeout_ms);
	return 0;
}

void vm_release(struct vm *vm)
{
	qmp_close(&vm->qmp);
	ttrpc_client_close(&vm->link);
	if (vm->pidfd >= 0)
		close(vm->pidfd);
	if (vm->con_fd >= 0)
		close(vm->con_fd);
	if (vm->con_listen >= 0)
		close(vm->con_listen);
	vm->pidfd = vm->con_fd = vm->con_listen = -1;
	unlink(vm->paths.console);
}

int vm_prepare_guest(struct vm *vm, struct guest_prep *out, kerr_t *err)
{
	int64_t deadline = mono_ns() + 10000000000LL;

	/* Randomness first: a clone's RNG state is its template's until reseeded. */
	if (agent_add_entropy(&vm->link, 64, strcmp(vm->boot_mode, "cold") != 0,
	                      &out->entropy_avail, deadline, err) < 0)
		return -1;
	phases_mark(vm->phases, "reseed");
	if (agent_sync_clock(&vm->link, &out->clock, deadline, err) < 0)
		return -1;
	phases_mark(vm->phases, "clock");
	if (agent_set_hostname(&vm->link, vm->hostname, vm->pod_etc, deadline, err) < 0)
		return -1;
	phases_mark(vm->phases, "hostname");
	if (vm->no_share)
		return 0;
	if (agent_mount_share(&vm->link, "9p", &out->share_magic, deadline, err) < 0)
		return -1;
	phases_mark(vm->phases, "share");
	return 0;
}

void vm_destroy(struct vm *vm)
{
	if (vm->pid > 0 && !vm->exited) {
		kill(vm->pid, SIGKILL);
		if (vm->is_child) {
			waitpid(vm->pid, &vm->exit_status, 0);
		} else {
			struct pollfd p = { .fd = vm->pidfd, .events = POLLIN };

			poll(&p, 1, 5000);
		}
		vm->exited = 1;
	}
	vm_release(vm);
	vm_remove_dir(vm);
}

void vm_remove_dir(struct vm *vm)
{
	if (!vm->paths.dir[0])
		return;
	umount_below(vm->paths.dir);
	if (rm_tree(vm->paths.dir) < 0)
		fprintf(stderr, "kuasar: warning: remove %s: %s\n", vm->paths.dir, strerror(errno));
}

/* ---- appliances ---- */

static int app_not_ready(struct vm *vm, const Kuasar__Sandbox__V1__AppStatus *a, kerr_t *err)
{
	char tail[1024];

	vm_console_tail(vm, tail, sizeof(tail));
	if (!a || a->state == KUASAR__SANDBOX__V1__APP_STATUS__STATE__NONE)
		return kerr_set(err, ENOENT,
		                "the guest runs no app (no appliance disk, or a guest "
		                "without appliance support)");
	if (a->state == KUASAR__SANDBOX__V1__APP_STATUS__STATE__EXITED)
		return kerr_set(err, ECHILD,
		                "the app exited with status %u before it was ready; "
		                "console:\n%s",
		                a->exit_status, tail);
	return kerr_set(err, EIO, "the app could not start: %s; console:\n%s", a->detail, tail);
}

int vm_wait_app(struct vm *vm, int timeout_ms, double *ready_ms, kerr_t *err)
{
	int64_t deadline = mono_ns() + (int64_t)(timeout_ms > 0 ? timeout_ms : 60000) * 1000000;

	for (;;) {
		agent_check_t *r = NULL;
		const Kuasar__Sandbox__V1__AppStatus *a;
		int64_t next = mono_ns() + 20000000;
		kerr_t e;
		int rc = 1;

		if (agent_check(&vm->link, &r, mono_ns() + 10000000000LL, err) < 0)
			return kerr_wrap(err, "waiting for the app to be ready");
		a = r->app;
		if (a && a->state == KUASAR__SANDBOX__V1__APP_STATUS__STATE__READY) {
			if (ready_ms)
				*ready_ms = (double)(a->ready_ns - a->started_ns) / 1e6;
			rc = 0;
		} else if (!a || a->state != KUASAR__SANDBOX__V1__APP_STATUS__STATE__STARTING) {
			rc = app_not_ready(vm, a, err);
		} else if (mono_ns() >= deadline) {
			char tail[1024];

			vm_console_tail(vm, tail, sizeof(tail));
			rc = kerr_set(err, ETIMEDOUT,
			              "the app was not ready within %d ms (it is still starting); "
			              "console:\n%s",
			              timeout_ms, tail);
		}
		agent_check_free(r);
		if (rc <= 0)
			return rc;
		while (mono_ns() < next)
			if (vm_wait_for(vm, -1, 0, next, &e) < 0 && e.errnum != ETIMEDOUT)
				return kerr_set(err, e.errnum, "waiting for the app: %s", e.msg);
	}
}
