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

#include "base/syscalls.h"
#include "base/util.h"

/* Under real KVM our guest answers in well under a second; a guest that has not answered
 * by then is taken as KVM not working (e.g. a nested PVM device). */
#define KVM_BOOT_PROBE_MS 5000
#define CONNECT_RETRY_NS 1000000
#define KUASAR_VSOCK_PORT 1024

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

static void reap(struct vm *vm)
{
	int status = 0;

	if (vm->exited)
		return;
	if (vm->is_child) {
		if (waitpid(vm->pid, &status, WNOHANG) <= 0)
			return;
		vm->exit_status = status;
	}
	vm->exited = 1;
}

static void console_line(struct vm *vm)
{
	vm->con_line[vm->con_len] = '\0';
	if (!vm->t.console_ns && strstr(vm->con_line, "kuasar-init:"))
		vm->t.console_ns = mono_ns();
	vm->con_len = 0;
}

/* Accepts QEMU's console connection, then reads it line by line (console.log keeps all). */
void vm_console_pump(struct vm *vm)
{
	char buf[4096];
	ssize_t n;

	if (vm->con_fd < 0) {
		vm->con_fd = accept4(vm->con_listen, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		return;
	}
	n = read(vm->con_fd, buf, sizeof(buf));
	if (n <= 0) {
		if (n == 0 || errno != EAGAIN) {
			close(vm->con_fd);
			vm->con_fd = -1;
		}
		return;
	}
	for (ssize_t i = 0; i < n; i++) {
		if (buf[i] == '\n' || vm->con_len == sizeof(vm->con_line) - 1)
			console_line(vm);
		else
			vm->con_line[vm->con_len++] = buf[i];
	}
}

void vm_console_tail(const struct vm *vm, char *buf, size_t n)
{
	char *log = NULL, *p;
	size_t len = 0;
	int lines = 0;

	buf[0] = '\0';
	if (read_file(vm->paths.console_log, &log, &len, 1 << 20, NULL) < 0)
		return;
	for (p = log + len; p > log && lines < 6; p--)
		if (p[-1] == '\n' && p != log + len)
			lines++;
	snprintf(buf, n, "%s", p);
	free(log);
}

/* The VMM's last words (its stderr goes to vmm.log). */
static void vmm_log_last_line(const struct vm *vm, char *buf, size_t n)
{
	char *log = NULL, *end, *start;
	size_t len = 0;

	buf[0] = '\0';
	if (read_file(vm->paths.vmm_log, &log, &len, 1 << 20, NULL) < 0)
		return;
	end = log + len;
	while (end > log && end[-1] == '\n')
		end--;
	*end = '\0';
	start = strrchr(log, '\n');
	snprintf(buf, n, "%s", start ? start + 1 : log);
	free(log);
}

static int vmm_exited_error(struct vm *vm, kerr_t *err)
{
	char tail[1024], last[256];

	vm_console_tail(vm, tail, sizeof(tail));
	vmm_log_last_line(vm, last, sizeof(last));
	if (vm->is_child && WIFSIGNALED(vm->exit_status))
		kerr_set(err, ECHILD, "the VMM was killed by signal %d%s%s",
		         WTERMSIG(vm->exit_status), last[0] ? ": " : "", last);
	else if (vm->is_child)
		kerr_set(err, ECHILD, "the VMM exited with status %d%s%s",
		         WEXITSTATUS(vm->exit_status), last[0] ? ": " : "", last);
	else
		kerr_set(err, ECHILD, "the VMM exited");
	if (tail[0])
		kerr_wrap(err, "console ends with:\n%s\n", tail);
	return -1;
}

#define TICK_NS 50000000

/* Waits until fd is ready (fd < 0: until the console moved) while watching the VMM,
 * signals and the console. */
static int wait_for(struct vm *vm, int fd, short events, int64_t deadline_ns, kerr_t *err)
{
	for (;;) {
		int64_t until = deadline_ns;
		int tick = 0;

		int64_t period = vm->tick_ns ? vm->tick_ns : TICK_NS;

		if (vm->tick && (until <= 0 || until > mono_ns() + period)) {
			until = mono_ns() + period;
			tick = 1;
		}
		struct pollfd p[4] = {
			{ .fd = vm->pidfd, .events = POLLIN },
			{ .fd = vm->sigfd, .events = POLLIN },
			{ .fd = vm->con_fd >= 0 ? vm->con_fd : vm->con_listen, .events = POLLIN },
			{ .fd = fd, .events = events },
		};
		int n = poll(p, 4, ms_until(until));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return kerr_sys(err, "poll");
		if (n == 0 && tick) {
			vm->tick(vm->tick_arg);
			continue;
		}
		if (n == 0)
			return kerr_set(err, ETIMEDOUT, "timed out");
		if (p[0].revents) {
			reap(vm);
			if (vm->exited || !vm->is_child)
				return vmm_exited_error(vm, err);
		}
		if (p[1].revents) {
			struct signalfd_siginfo si;

			if (read(vm->sigfd, &si, sizeof(si)) > 0)
				return kerr_set(err, EINTR, "interrupted by signal %u",
				                si.ssi_signo);
		}
		if (p[2].revents) {
			vm_console_pump(vm);
			/* Without an fd to wait for, console progress is what the caller waits on.
			 */
			if (fd < 0)
				return 0;
		}
		if (fd >= 0 && p[3].revents)
			return 0;
	}
}

/* QEMU stops reading a chardev while the guest has not opened its virtio-serial port,
 * and only looks again when its main loop wakes up, which an idle TCG guest may not cause
 * for hundreds of milliseconds. A cheap QMP command wakes it: while waiting for the first
 * answer, kick every KICK_NS. */
#define KICK_NS 20000000

static int link_wait(void *ctx, int fd, int64_t deadline_ns, kerr_t *err)
{
	struct vm *vm = ctx;

	while (vm->kick && vm->qmp.fd >= 0) {
		int64_t until = mono_ns() + KICK_NS;

		if (until > deadline_ns)
			break;
		if (wait_for(vm, fd, POLLIN, until, err) == 0)
			return 0;
		if (err->errnum != ETIMEDOUT)
			return -1;
		if (qmp_call(&vm->qmp, "query-status", NULL, NULL, deadline_ns, err) < 0)
			return kerr_wrap(err, "kick the VMM's main loop");
	}
	return wait_for(vm, fd, POLLIN, deadline_ns, err);
}

/* QEMU creates its server sockets while starting: retry until they accept. */
static int connect_retry(struct vm *vm, const char *path, int64_t deadline_ns, kerr_t *err)
{
	for (;;) {
		int fd = unix_connect(path, err);

		if (fd >= 0)
			return fd;
		if (err->errnum != ENOENT && err->errnum != ECONNREFUSED)
			return -1;
		if (mono_ns() + CONNECT_RETRY_NS > deadline_ns)
			return kerr_set(err, ETIMEDOUT, "%s did not appear in time", path);
		if (wait_for(vm, -1, 0, mono_ns() + CONNECT_RETRY_NS, err) < 0 &&
		    err->errnum != ETIMEDOUT)
			return -1;
	}
}

static void child_exec(char **argv, int log_fd, int keep)
{
	sigset_t all;
	int null = open("/dev/null", O_RDONLY);

	/* Without --keep the VMM must not outlive us, whatever kills us. */
	if (!keep)
		prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* Its own session: a terminal's Ctrl-C reaches us, and we stop the VM cleanly. */
	setsid();
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	dup2(null, 0);
	dup2(log_fd, 1);
	dup2(log_fd, 2);
	sys_close_from(3);
	execvp(argv[0], argv);
	dprintf(2, "kuasar: fatal: unable to exec %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

static int spawn(struct vm *vm, const struct vm_config *cfg, enum accel accel, int keep,
                 kerr_t *err)
{
	struct vm_config c = *cfg;
	char **argv;

	c.link = vm->link_type;
	c.guest_cid = vm->cid;
	argv = qemu_argv(&c, &vm->paths, vm->id, accel);
	_cleanup_close_ int log_fd =
	    open(vm->paths.vmm_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (log_fd < 0) {
		argv_free(argv);
		return kerr_sys(err, "create %s", vm->paths.vmm_log);
	}
	vm->t.spawn_ns = mono_ns();
	vm->pid = fork();
	if (vm->pid == 0)
		child_exec(argv, log_fd, keep);
	argv_free(argv);
	if (vm->pid < 0)
		return kerr_sys(err, "fork");
	vm->is_child = 1;
	vm->accel = accel;
	vm->pidfd = sys_pidfd_open(vm->pid);
	if (vm->pidfd < 0)
		return kerr_sys(err, "pidfd_open");
	return 0;
}

/* One non-blocking vsock connect, bounded by deadline; -1 with err on any failure. */
static int vsock_try(struct vm *vm, int64_t deadline_ns, kerr_t *err)
{
	struct sockaddr_vm sa = { .svm_family = AF_VSOCK,
		                  .svm_cid = vm->cid,
		                  .svm_port = KUASAR_VSOCK_PORT };
	_cleanup_close_ int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	if (fd < 0)
		return kerr_sys(err, "vsock socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
		return kerr_sys(err, "connect to vsock %u:%u", vm->cid, KUASAR_VSOCK_PORT);
	if (wait_for(vm, fd, POLLOUT, deadline_ns, err) < 0)
		return -1;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 || soerr) {
		errno = soerr ? soerr : errno;
		return kerr_sys(err, "connect to vsock %u:%u", vm->cid, KUASAR_VSOCK_PORT);
	}
	/* The ttrpc client writes with blocking semantics. */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	return TAKE_FD(fd);
}

/* Until the guest listens, connects are reset or time out: retry until the deadline. */
static int vsock_connect_retry(struct vm *vm, int64_t deadline_ns, kerr_t *err)
{
	for (;;) {
		int64_t until = mono_ns() + 500000000;
		int fd = vsock_try(vm, until < deadline_ns ? until : deadline_ns, err);

		if (fd >= 0 || err->errnum == ECHILD || err->errnum == EINTR ||
		    mono_ns() >= deadline_ns)
			return fd;
		if (wait_for(vm, -1, 0, mono_ns() + 10 * CONNECT_RETRY_NS, err) < 0 &&
		    err->errnum != ETIMEDOUT)
			return -1;
	}
}

int vm_link_connect(struct vm *vm, int64_t deadline_ns, kerr_t *err)
{
	if (vm->link_type == LINK_VSOCK)
		return vsock_connect_retry(vm, deadline_ns, err);
	return connect_retry(vm, vm->paths.agent, deadline_ns, err);
}

/* Asks over fd (connected to the guest link) until the guest answers Check. */
static int check_guest(struct vm *vm, int fd, int64_t deadline_ns, kerr_t *err)
{
	agent_check_t *chk = NULL;

	ttrpc_client_init(&vm->link, fd);
	vm->link.wait = link_wait;
	vm->link.wait_ctx = vm;
	vm->kick = 1;
	if (agent_check(&vm->link, &chk, deadline_ns, err) < 0)
		return kerr_wrap(err, "wait for kuasar-init to answer");
	vm->kick = 0;
	vm->t.link_ns = mono_ns();
	vm->t.kernel_to_init_ns = chk->kernel_to_init_ns;
	vm->t.init_to_link_ns = chk->init_to_link_ns;
	snprintf(vm->link_kind, sizeof(vm->link_kind), "%s", chk->link);
	agent_check_free(chk);
	return 0;
}

static int connect_guest(struct vm *vm, int64_t deadline_ns, kerr_t *err)
{
	int fd = vm_link_connect(vm, deadline_ns, err);

	if (fd < 0)
		return kerr_wrap(err, "connect to the guest link");
	return check_guest(vm, fd, deadline_ns, err);
}

static int wait_console(struct vm *vm, int64_t deadline, kerr_t *err)
{
	while (!vm->t.console_ns)
		if (wait_for(vm, -1, 0, deadline, err) < 0)
			return kerr_wrap(err, "wait for the init's first console line");
	return 0;
}

static int open_qmp(struct vm *vm, int64_t deadline, kerr_t *err)
{
	int fd = connect_retry(vm, vm->paths.qmp, deadline, err);

	if (fd < 0)
		return kerr_wrap(err, "connect to QMP");
	if (qmp_open(&vm->qmp, fd, deadline, err) < 0)
		return kerr_wrap(err, "QMP handshake");
	vm->t.qmp_ns = mono_ns();
	return 0;
}

static int boot_steps(struct vm *vm, const struct vm_config *cfg, int64_t deadline, kerr_t *err)
{
	if (open_qmp(vm, deadline, err) < 0)
		return -1;
	if (cfg->until_console)
		return wait_console(vm, deadline, err);
	return connect_guest(vm, deadline, err);
}

static int write_state(struct vm *vm, const struct vm_config *cfg, kerr_t *err)
{
	json_object *o = json_object_new_object();
	const char *s;
	int rc;

	json_object_object_add(o, "id", json_object_new_string(vm->id));
	json_object_object_add(o, "pid", json_object_new_int(vm->pid));
	json_object_object_add(o, "accel", json_object_new_string(accel_name(vm->accel)));
	json_object_object_add(o, "kernel", json_object_new_string(cfg->kernel));
	json_object_object_add(o, "initrd", json_object_new_string(cfg->initrd ? cfg->initrd : ""));
	json_object_object_add(o, "image", json_object_new_string(cfg->image ? cfg->image : ""));
	json_object_object_add(o, "memory_mib", json_object_new_int((int)cfg->memory_mib));
	json_object_object_add(o, "vcpus", json_object_new_int((int)cfg->vcpus));
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
static int step_failed(struct vm *vm, int timeout_ms, kerr_t *err)
{
	struct pollfd p = { .fd = vm->pidfd, .events = POLLIN };

	if (err->errnum == ETIMEDOUT)
		return kerr_wrap(err, "no answer from the guest within %d ms (console: %s)",
		                 timeout_ms, vm->paths.console_log);
	if (err->errnum != ECHILD && poll(&p, 1, 200) == 1) {
		reap(vm);
		if (vm->exited)
			return vmm_exited_error(vm, err);
	}
	return -1;
}

static int boot_once(struct vm *vm, const struct vm_config *cfg, enum accel accel, int keep,
                     int timeout_ms, kerr_t *err)
{
	int64_t deadline = mono_ns() + (int64_t)timeout_ms * 1000000;

	if (spawn(vm, cfg, accel, keep, err) < 0)
		return -1;
	/* The state exists as soon as a VMM does: whatever kills us now, shutdown can find
	 * the VMM (or its remains) by this file. Rewritten once the guest answered. */
	if (write_state(vm, cfg, err) < 0)
		return -1;
	if (boot_steps(vm, cfg, deadline, err) == 0)
		return 0;
	return step_failed(vm, timeout_ms, err);
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

static void accel_cache_path(const char *run_dir, char *buf, size_t n)
{
	snprintf(buf, n, "%s/accel.json", run_dir);
}

static void boot_id(char *buf, size_t n)
{
	char *s = NULL;

	if (read_file("/proc/sys/kernel/random/boot_id", &s, NULL, 64, NULL) == 0) {
		s[strcspn(s, "\n")] = '\0';
		snprintf(buf, n, "%s", s);
		free(s);
	} else {
		snprintf(buf, n, "unknown");
	}
}

/* The KVM verdict is remembered per host boot (the cache lives in the run dir). */
static int accel_cache_get(const char *run_dir, enum accel *a, char *why, size_t n)
{
	char path[512], bid[64], *s = NULL;
	json_object *o, *v;
	int rc = -1;

	accel_cache_path(run_dir, path, sizeof(path));
	if (read_file(path, &s, NULL, 4096, NULL) < 0)
		return -1;
	boot_id(bid, sizeof(bid));
	o = json_tokener_parse(s);
	free(s);
	if (o && json_object_object_get_ex(o, "boot_id", &v) &&
	    !strcmp(json_object_get_string(v), bid) && json_object_object_get_ex(o, "accel", &v) &&
	    accel_parse(json_object_get_string(v), a) == 0 && *a != ACCEL_AUTO) {
		json_object_object_get_ex(o, "why", &v);
		snprintf(why, n, "%s (remembered for this host boot)", json_object_get_string(v));
		rc = 0;
	}
	json_object_put(o);
	return rc;
}

static void accel_cache_put(const char *run_dir, enum accel a, const char *why)
{
	char path[512], bid[64];
	json_object *o = json_object_new_object();
	const char *s;

	boot_id(bid, sizeof(bid));
	json_object_object_add(o, "boot_id", json_object_new_string(bid));
	json_object_object_add(o, "accel", json_object_new_string(accel_name(a)));
	json_object_object_add(o, "why", json_object_new_string(why));
	s = json_object_to_json_string(o);
	accel_cache_path(run_dir, path, sizeof(path));
	write_file_atomic(path, s, strlen(s), NULL);
	json_object_put(o);
}

int vm_known_accel(const struct vm_config *cfg, const char *run_dir, enum accel *out)
{
	char why[256];

	if (cfg->accel != ACCEL_AUTO) {
		*out = cfg->accel;
		return 0;
	}
	if (accel_cache_get(run_dir, out, why, sizeof(why)) == 0)
		return 0;
	if (kvm_probe(why, sizeof(why)) < 0) {
		accel_cache_put(run_dir, ACCEL_TCG, why);
		*out = ACCEL_TCG;
		return 0;
	}
	return -1;
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
static int setup(struct vm *vm, const struct vm_config *cfg, const char *run_dir, kerr_t *err)
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
		return kerr_wrap(err, "start sandbox `%s`", vm->id);
	}
	return 0;
}

int vm_start(struct vm *vm, const struct vm_config *cfg, const char *run_dir, int keep, kerr_t *err)
{
	int rc;

	if (setup(vm, cfg, run_dir, err) < 0)
		return -1;
	if (cfg->accel == ACCEL_AUTO) {
		rc = boot_auto(vm, cfg, run_dir, keep, err);
	} else {
		snprintf(vm->accel_why, sizeof(vm->accel_why), "requested");
		rc = boot_once(vm, cfg, cfg->accel, keep, cfg->boot_timeout_ms, err);
	}
	if (rc == 0)
		rc = write_state(vm, cfg, err);
	if (rc < 0) {
		vm_destroy(vm);
		return kerr_wrap(err, "start sandbox `%s` (accel %s)", vm->id,
		                 accel_name(vm->accel));
	}
	return 0;
}

static int wait_exit(struct vm *vm, int64_t deadline_ns);

static int set_ignore_shared(struct vm *vm, int64_t deadline, kerr_t *err)
{
	json_object *cap = json_object_new_object(), *caps = json_object_new_array(),
	            *args = json_object_new_object();

	json_object_object_add(cap, "capability", json_object_new_string("x-ignore-shared"));
	json_object_object_add(cap, "state", json_object_new_boolean(1));
	json_object_array_add(caps, cap);
	json_object_object_add(args, "capabilities", caps);
	return qmp_call(&vm->qmp, "migrate-set-capabilities", args, NULL, deadline, err);
}

/* Hands fd to the VMM under name (QMP getfd), for an fd: migration URI. */
static int pass_fd(struct vm *vm, int fd, const char *name, int64_t deadline, kerr_t *err)
{
	json_object *args = json_object_new_object();

	json_object_object_add(args, "fdname", json_object_new_string(name));
	return qmp_call_fd(&vm->qmp, "getfd", args, fd, NULL, deadline, err);
}

static int migrate_cmd(struct vm *vm, const char *cmd, const char *uri, int64_t deadline,
                       kerr_t *err)
{
	json_object *args = json_object_new_object();

	json_object_object_add(args, "uri", json_object_new_string(uri));
	return qmp_call(&vm->qmp, cmd, args, NULL, deadline, err);
}

/* The device state goes in while the VMM waits (-incoming defer). The template was saved
 * running, so the clone runs as soon as the state is loaded: no `cont`. The serial link is
 * connected before the load, so the port the template left connected stays connected and
 * the guest serves us at once; a load that fails makes QEMU exit, which the waits below
 * notice. */
static int restore_steps(struct vm *vm, const char *state_path, int64_t deadline, kerr_t *err)
{
	_cleanup_close_ int link = -1;
	_cleanup_close_ int st = -1;

	if (open_qmp(vm, deadline, err) < 0)
		return -1;
	if (vm->link_type == LINK_SERIAL) {
		link = connect_retry(vm, vm->paths.agent, deadline, err);
		if (link < 0)
			return kerr_wrap(err, "connect to the guest link");
	}
	st = open(state_path, O_RDONLY | O_CLOEXEC);
	if (st < 0)
		return kerr_sys(err, "open the template's device state %s", state_path);
	if (set_ignore_shared(vm, deadline, err) < 0 ||
	    pass_fd(vm, st, "state", deadline, err) < 0 ||
	    migrate_cmd(vm, "migrate-incoming", "fd:state", deadline, err) < 0)
		return kerr_wrap(err, "load the template's device state");
	vm->t.load_ns = mono_ns();
	if (link < 0) {
		link = vm_link_connect(vm, deadline, err);
		if (link < 0)
			return kerr_wrap(err, "connect to the guest link");
	}
	return check_guest(vm, TAKE_FD(link), deadline, err);
}

int vm_restore(struct vm *vm, const struct vm_config *cfg, const char *state_path,
               const char *run_dir, int keep, kerr_t *err)
{
	struct vm_config c = *cfg;
	int64_t deadline = mono_ns() + (int64_t)cfg->boot_timeout_ms * 1000000;
	int rc;

	c.restore = 1;
	c.mem_shared = 0;
	if (!c.mem_path || c.accel == ACCEL_AUTO)
		return kerr_set(err, EINVAL, "restore `%s`: no template memory or accelerator",
		                vm->id);
	if (setup(vm, &c, run_dir, err) < 0)
		return -1;
	snprintf(vm->accel_why, sizeof(vm->accel_why), "the template's");
	snprintf(vm->boot_mode, sizeof(vm->boot_mode), "template");
	rc = spawn(vm, &c, c.accel, keep, err);
	if (rc == 0)
		rc = write_state(vm, &c, err);
	if (rc == 0 && restore_steps(vm, state_path, deadline, err) < 0)
		rc = step_failed(vm, cfg->boot_timeout_ms, err);
	if (rc == 0)
		rc = write_state(vm, &c, err);
	if (rc < 0) {
		vm_destroy(vm);
		snprintf(vm->boot_mode, sizeof(vm->boot_mode), "cold");
		return kerr_wrap(err, "restore sandbox `%s` (accel %s)", vm->id,
		                 accel_name(c.accel));
	}
	return 0;
}

int vm_floor(struct vm *vm, const struct vm_config *cfg, const char *run_dir, kerr_t *err)
{
	struct vm_config c = *cfg;
	int64_t deadline = mono_ns() + (int64_t)cfg->boot_timeout_ms * 1000000;
	int rc;

	c.restore = c.no_guest = 1;
	c.mem_shared = 0;
	if (setup(vm, &c, run_dir, err) < 0)
		return -1;
	rc = spawn(vm, &c, c.accel == ACCEL_AUTO ? ACCEL_TCG : c.accel, 0, err);
	if (rc == 0 && open_qmp(vm, deadline, err) < 0)
		rc = step_failed(vm, cfg->boot_timeout_ms, err);
	vm_destroy(vm);
	return rc;
}

static int migration_done(struct vm *vm, int64_t deadline, kerr_t *err)
{
	for (;;) {
		json_object *r = NULL, *v;
		const char *st;
		int rc = 1;

		if (qmp_call(&vm->qmp, "query-migrate", NULL, &r, deadline, err) < 0)
			return -1;
		st = json_object_object_get_ex(r, "status", &v) ? json_object_get_string(v) : "";
		if (!strcmp(st, "completed"))
			rc = 0;
		else if (!strcmp(st, "failed") || !strcmp(st, "cancelled"))
			rc = kerr_set(err, EIO, "migration %s: %s", st,
			              json_object_object_get_ex(r, "error-desc", &v)
			                  ? json_object_get_string(v)
			                  : "(no reason given)");
		json_object_put(r);
		if (rc <= 0)
			return rc;
		if (mono_ns() > deadline)
			return kerr_set(err, ETIMEDOUT, "migration did not complete in time");
		if (wait_for(vm, -1, 0, mono_ns() + 2000000, err) < 0 && err->errnum != ETIMEDOUT)
			return -1;
	}
}

int vm_save_template(struct vm *vm, const char *state_path, kerr_t *err)
{
	int64_t deadline = mono_ns() + 30000000000LL;
	_cleanup_close_ int fd =
	    open(state_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	kerr_t e;

	if (fd < 0)
		return kerr_sys(err, "create %s", state_path);
	/* Migrating a running VM: QEMU stops it for the final device state, and the state
	 * records "running", so clones run as soon as they are loaded. */
	if (set_ignore_shared(vm, deadline, err) < 0 ||
	    pass_fd(vm, fd, "state", deadline, err) < 0 ||
	    migrate_cmd(vm, "migrate", "fd:state", deadline, err) < 0 ||
	    migration_done(vm, deadline, err) < 0)
		return kerr_wrap(err, "save the device state");
	if (fsync(fd) < 0)
		return kerr_sys(err, "fsync %s", state_path);
	qmp_call(&vm->qmp, "quit", NULL, NULL, deadline, &e);
	if (wait_exit(vm, mono_ns() + 5000000000LL) < 0)
		return kerr_set(err, ETIMEDOUT, "the template's VMM did not exit after saving");
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

static int read_state(struct vm *vm, kerr_t *err)
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
	vm->link_type = LINK_SERIAL;
	if (json_object_object_get_ex(o, "link", &v) &&
	    !strcmp(json_object_get_string(v), "vsock") &&
	    json_object_object_get_ex(o, "cid", &v)) {
		vm->link_type = LINK_VSOCK;
		vm->cid = (unsigned)json_object_get_int64(v);
	}
	json_object_put(o);
	return 0;
}

pid_t vm_find_vmm(const char *run_dir, const char *id)
{
	struct vm vm;

	vm_init(&vm, id);
	if (vm_paths_init(&vm.paths, run_dir, id, NULL) < 0 || read_state(&vm, NULL) < 0 ||
	    vm.pid <= 0 || !pid_is_our_vmm(vm.pid, id))
		return 0;
	return vm.pid;
}

int vm_attach(struct vm *vm, const char *run_dir, const char *id, kerr_t *err)
{
	int fd;

	vm_init(vm, id);
	if (id_valid(id, err) < 0)
		return -1;
	if (vm_paths_init(&vm->paths, run_dir, id, err) < 0 || read_state(vm, err) < 0)
		return -1;
	if (vm->pid <= 0 || !pid_is_our_vmm(vm->pid, id))
		return kerr_set(err, ESRCH, "sandbox `%s`: its VMM (pid %d) is not running", id,
		                vm->pid);
	vm->pidfd = sys_pidfd_open(vm->pid);
	if (vm->pidfd < 0)
		return kerr_sys(err, "pidfd_open %d", vm->pid);
	fd = vm_link_connect(vm, mono_ns() + 10000000000LL, err);
	if (fd < 0)
		return kerr_wrap(err, "sandbox `%s`: guest link", id);
	ttrpc_client_init(&vm->link, fd);
	vm->link.wait = link_wait;
	vm->link.wait_ctx = vm;
	return 0;
}

static int wait_exit(struct vm *vm, int64_t deadline_ns)
{
	kerr_t e;

	while (!vm->exited) {
		if (wait_for(vm, -1, 0, deadline_ns, &e) < 0 && e.errnum != ECHILD)
			return -1;
		if (!vm->is_child)
			vm->exited = 1;
	}
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
	if (wait_exit(vm, deadline) < 0) {
		forced = 1;
		if (vm->qmp.fd >= 0)
			qmp_call(&vm->qmp, "quit", NULL, NULL, mono_ns() + 1000000000, &e);
		if (wait_exit(vm, mono_ns() + 2000000000LL) < 0)
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
	if (agent_add_entropy(&vm->link, 64, &out->entropy_avail, deadline, err) < 0 ||
	    agent_sync_clock(&vm->link, &out->clock, deadline, err) < 0 ||
	    agent_set_hostname(&vm->link, vm->hostname, deadline, err) < 0)
		return -1;
	return agent_mount_share(&vm->link, "9p", &out->share_magic, deadline, err);
}

/* Detaches every mount below dir (bind-mounted root filesystems in the share), deepest
 * first, so that removing the directory can never reach into what they expose. */
void umount_below(const char *dir)
{
	char *info = NULL, *line, *save = NULL, *mnts[64];
	size_t len = strlen(dir), n = 0;

	if (read_file("/proc/self/mountinfo", &info, NULL, 1 << 20, NULL) < 0)
		return;
	for (line = strtok_r(info, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char mp[4096];

		/* fields: id parent major:minor root mountpoint ... */
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) == 1 && !strncmp(mp, dir, len) &&
		    mp[len] == '/' && n < 64)
			mnts[n++] = strdup(mp);
	}
	while (n--) {
		if (mnts[n] && umount2(mnts[n], MNT_DETACH) < 0)
			fprintf(stderr, "kuasar: warning: umount %s: %s\n", mnts[n],
			        strerror(errno));
		free(mnts[n]);
	}
	free(info);
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
