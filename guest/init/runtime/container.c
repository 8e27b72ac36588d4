#include "runtime/container.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/ev.h"
#include "core/fmt.h"
#include "core/klog.h"
#include "core/sys.h"
#include "events.pb.h"
#include "runtime/events.h"
#include "runtime/oci.h"
#include "runtime/podns.h"
#include "runtime/seccomp.h"
#include "runtime/spawn.h"
#include "runtime/stream.h"

#define MAX_CONTAINERS 64
#define MAX_PROCS 32 /* per container; [0] is the container's own process */
#define MAX_WAITERS 16

enum pstate { P_FREE, P_CREATING, P_CREATED, P_RUNNING, P_STOPPED };

struct container;

struct proc {
	enum pstate state;
	struct container *ctr;
	char exec_id[CTR_ID_MAX + 1];
	pid_t pid;
	int reaped;
	uint32_t exit_status;
	uint64_t exited_ns;
	int start_fd;          /* write end: Start releases the process */
	struct watch status_w; /* read end: the child's setup result */
	int console_fd;        /* terminal: where the child sends the pty master */
	char status_msg[512];
	size_t status_len;
	struct ctr_created create_reply;
	struct ctr_waited waiters[MAX_WAITERS];
	unsigned n_waiters;
	char uri[3][513];
	int terminal;
	int pty;               /* master of its terminal (ResizePty), -1 without one */
	struct oci_spec *spec; /* exec processes own theirs; [0] uses the container's */
};

struct container {
	int used;
	char id[CTR_ID_MAX + 1];
	char bundle[513];
	char rootfs[1024];
	char cgroup[256];
	int paused;
	struct oci_spec *spec;
	struct sock_fprog seccomp; /* compiled once, for the container and its execs */
	struct proc procs[MAX_PROCS];
	uint64_t t[4]; /* Create: began, spec read, cgroup made, cloned (monotonic ns) */
};

static struct container containers[MAX_CONTAINERS];

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	sys_clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct container *find(const char *id)
{
	for (int i = 0; i < MAX_CONTAINERS; i++)
		if (containers[i].used && !strcmp(containers[i].id, id))
			return &containers[i];
	return NULL;
}

/* exec_id "" is the container's own process. */
static struct proc *find_proc(struct container *c, const char *exec_id)
{
	if (!exec_id || !exec_id[0])
		return &c->procs[0];
	for (int i = 1; i < MAX_PROCS; i++)
		if (c->procs[i].state != P_FREE && !strcmp(c->procs[i].exec_id, exec_id))
			return &c->procs[i];
	return NULL;
}

static int lookup(const char *id, const char *exec_id, struct container **c, struct proc **p,
                  char *err, size_t n)
{
	*c = find(id);
	if (!*c)
		return kfail(err, n, RPC_NOT_FOUND, "container %s: not found", id);
	*p = find_proc(*c, exec_id);
	if (!*p || (*p)->state == P_FREE || (*p)->state == P_CREATING)
		return kfail(err, n, RPC_NOT_FOUND, "process %s in container %s: not found",
		             exec_id && exec_id[0] ? exec_id : "(init)", id);
	return 0;
}

/* Container and exec ids name cgroups and files: no separators, no dot names. */
static int id_ok(const char *id)
{
	return id[0] && id[0] != '.' && !strchr(id, '/') && strlen(id) <= CTR_ID_MAX;
}

static int read_small_file(const char *path, char **out, size_t *len, size_t max)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	ssize_t r;

	if (fd < 0)
		return -1;
	if (sys_fstat(fd, &st) < 0 || (size_t)st.st_size > max) {
		close(fd);
		errno = EFBIG;
		return -1;
	}
	*out = malloc((size_t)st.st_size + 1);
	r = *out ? read(fd, *out, (size_t)st.st_size) : -1;
	close(fd);
	if (r != st.st_size) {
		free(*out);
		errno = EIO;
		return -1;
	}
	*len = (size_t)r;
	return 0;
}

static int open_stdio(const struct ctr_stdio *io, int fds[3], char *err, size_t n)
{
	for (int i = 0; i < 3; i++)
		fds[i] = -1;
	/* A terminal is opened inside the container (spawn.c), its master attached to the
	 * streams once it arrives (on_status); the stdout stream must be there already. */
	if (io->terminal)
		return stream_is_open(io->uri[1]) ? 0
		                                  : kfail(err, n, RPC_INVALID_ARGUMENT,
		                                          "a terminal needs a stdout stream");
	for (int i = 0; i < 3; i++) {
		const char *u = io->uri[i];
		int flags = i == 0 ? O_RDONLY : O_WRONLY | O_CREAT | O_APPEND;
		int rc = stream_bind(u, i == 0 ? STREAM_IN : STREAM_OUT, &fds[i], err, n);

		if (rc == 1)
			continue;
		if (rc)
			return rc;
		if (!u[0])
			fds[i] = open("/dev/null", (i == 0 ? O_RDONLY : O_WRONLY) | O_CLOEXEC);
		else if (!strncmp(u, "file://", 7) && u[7] == '/')
			fds[i] = open(u + 7, flags | O_CLOEXEC | O_NOCTTY, 0644);
		else
			return kfail(err, n, RPC_INVALID_ARGUMENT,
			             "stdio URI `%s`: streaming_id=, file:///path or none", u);
		if (fds[i] < 0)
			return kfail(err, n, RPC_INVALID_ARGUMENT, "open stdio %s: %s", u,
			             err_str(errno));
	}
	return 0;
}

static void close_fds(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0) {
			close(fds[i]);
			fds[i] = -1;
		}
}

static uint32_t exit_code(int status)
{
	if (WIFSIGNALED(status))
		return 128u + (uint32_t)WTERMSIG(status);
	return (uint32_t)WEXITSTATUS(status);
}

/* --- events -------------------------------------------------------------------------- */

static void set_ts(google_protobuf_Timestamp *t, bool *has, uint64_t ns)
{
	*has = true;
	t->seconds = (int64_t)(ns / 1000000000u);
	t->nanos = (int32_t)(ns % 1000000000u);
}

#define PUBLISH(topic, type, ev)                                                                   \
	events_publish(topic, "containerd.events." #type, containerd_events_##type##_fields, &ev)

static void ev_created(struct proc *p)
{
	struct container *c = p->ctr;

	if (p == &c->procs[0]) {
		containerd_events_TaskCreate ev = { 0 };

		kfmt(ev.container_id, sizeof(ev.container_id), "%s", c->id);
		kfmt(ev.bundle, sizeof(ev.bundle), "%s", c->bundle);
		ev.has_io = true;
		kfmt(ev.io.stdin, sizeof(ev.io.stdin), "%s", p->uri[0]);
		kfmt(ev.io.stdout, sizeof(ev.io.stdout), "%s", p->uri[1]);
		kfmt(ev.io.stderr, sizeof(ev.io.stderr), "%s", p->uri[2]);
		ev.io.terminal = p->terminal;
		ev.pid = (uint32_t)p->pid;
		PUBLISH("/tasks/create", TaskCreate, ev);
	} else {
		containerd_events_TaskExecAdded ev = { 0 };

		kfmt(ev.container_id, sizeof(ev.container_id), "%s", c->id);
		kfmt(ev.exec_id, sizeof(ev.exec_id), "%s", p->exec_id);
		PUBLISH("/tasks/exec-added", TaskExecAdded, ev);
	}
}

static void ev_started(struct proc *p)
{
	struct container *c = p->ctr;

	if (p == &c->procs[0]) {
		containerd_events_TaskStart ev = { 0 };

		kfmt(ev.container_id, sizeof(ev.container_id), "%s", c->id);
		ev.pid = (uint32_t)p->pid;
		PUBLISH("/tasks/start", TaskStart, ev);
	} else {
		containerd_events_TaskExecStarted ev = { 0 };

		kfmt(ev.container_id, sizeof(ev.container_id), "%s", c->id);
		kfmt(ev.exec_id, sizeof(ev.exec_id), "%s", p->exec_id);
		ev.pid = (uint32_t)p->pid;
		PUBLISH("/tasks/exec-started", TaskExecStarted, ev);
	}
}

/* containerd names the init process by the container id in exit events. */
static void ev_exited(struct proc *p)
{
	struct container *c = p->ctr;
	containerd_events_TaskExit ev = { 0 };

	if (p == &c->procs[0])
		events_unwatch_oom(c->id);
	kfmt(ev.container_id, sizeof(ev.container_id), "%s", c->id);
	kfmt(ev.id, sizeof(ev.id), "%s", p == &c->procs[0] ? c->id : p->exec_id);
	ev.pid = (uint32_t)p->pid;
	ev.exit_status = p->exit_status;
	set_ts(&ev.exited_at, &ev.has_exited_at, p->exited_ns);
	PUBLISH("/tasks/exit", TaskExit, ev);
}

static void ev_deleted(struct container *c, struct proc *p)
{
	containerd_events_TaskDelete ev = { 0 };

	kfmt(ev.container_id, sizeof(ev.container_id), "%s", c->id);
	kfmt(ev.id, sizeof(ev.id), "%s", p == &c->procs[0] ? "" : p->exec_id);
	ev.pid = (uint32_t)p->pid;
	ev.exit_status = p->exit_status;
	set_ts(&ev.exited_at, &ev.has_exited_at, p->exited_ns);
	PUBLISH("/tasks/delete", TaskDelete, ev);
}

static void ev_paused(struct container *c, int paused)
{
	if (paused) {
		containerd_events_TaskPaused ev = { 0 };

		kfmt(ev.container_id, sizeof(ev.container_id), "%s", c->id);
		PUBLISH("/tasks/paused", TaskPaused, ev);
	} else {
		containerd_events_TaskResumed ev = { 0 };

		kfmt(ev.container_id, sizeof(ev.container_id), "%s", c->id);
		PUBLISH("/tasks/resumed", TaskResumed, ev);
	}
}

static void finish_waiters(struct proc *p)
{
	struct ctr_exit e = { p->pid, p->exit_status, p->exited_ns };

	for (unsigned i = 0; i < p->n_waiters; i++)
		p->waiters[i].fn(&p->waiters[i].reply, &e);
	p->n_waiters = 0;
}

/* An empty process slot: no fds, owned by its container. */
static void proc_init(struct container *c, struct proc *p)
{
	memset(p, 0, sizeof(*p));
	p->start_fd = p->status_w.fd = p->pty = p->console_fd = -1;
	p->ctr = c;
}

/* Releases an exec's slot for reuse. */
static void free_exec(struct proc *p)
{
	if (p->pty >= 0)
		close(p->pty);
	if (p->start_fd >= 0)
		close(p->start_fd);
	free(p->spec);
	proc_init(p->ctr, p);
}

static void free_container(struct container *c)
{
	for (int i = 0; i < MAX_PROCS; i++) {
		if (i > 0)
			free(c->procs[i].spec);
		if (c->procs[i].start_fd >= 0)
			close(c->procs[i].start_fd);
		if (c->procs[i].pty >= 0)
			close(c->procs[i].pty);
	}
	free(c->spec);
	free(c->seccomp.filter);
	memset(c, 0, sizeof(*c));
}

/* The setup result: a zero byte, or an error message, then EOF. */
static void creation_failed(struct proc *p, const char *msg)
{
	struct container *c = p->ctr;

	kill(p->pid, SIGKILL);
	if (!p->reaped)
		waitpid(p->pid, NULL, 0);
	if (p->start_fd >= 0)
		close(p->start_fd);
	p->start_fd = -1;
	if (p->console_fd >= 0)
		close(p->console_fd);
	p->console_fd = -1;
	p->create_reply.fn(&p->create_reply.reply, 0, msg);
	if (p == &c->procs[0]) {
		cgroup_remove(c->cgroup);
		free_container(c);
	} else {
		free_exec(p);
	}
}

/* The child sent its pty master (before its status): stdout and stdin streams use it. */
static int attach_terminal(struct proc *p)
{
	char buf[CMSG_SPACE(sizeof(int))], c;
	struct iovec iov = { &c, 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = buf, .msg_controllen = sizeof(buf)
	};
	struct cmsghdr *cm;
	char err[128];
	int m = -1;

	if (sys_recvmsg(p->console_fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) != 1 ||
	    !(cm = CMSG_FIRSTHDR(&msg)) || cm->cmsg_type != SCM_RIGHTS)
		return -1;
	memcpy(&m, CMSG_DATA(cm), sizeof(int));
	close(p->console_fd);
	p->console_fd = -1;
	p->pty = m;
	if (stream_attach_fd(p->uri[1], STREAM_OUT, sys_fcntl(m, F_DUPFD_CLOEXEC, 0), err,
	                     sizeof(err)) != 1)
		return -1;
	return stream_attach_fd(p->uri[0], STREAM_IN, sys_fcntl(m, F_DUPFD_CLOEXEC, 0), err,
	                        sizeof(err)) > 1
	           ? -1
	           : 0;
}

/* The child died before it could report: say so, and whether the memory limit killed it
 * (a limit too small to start in), from the container cgroup's memory.events. */
static void setup_died(struct proc *p)
{
	struct cgroup_stats st;
	char msg[160];

	if (p->ctr->cgroup[0] && cgroup_stats(p->ctr->cgroup, &st) == 0 && st.oom_kills) {
		kfmt(msg, sizeof(msg),
		     "the container process was killed for memory during setup (memory limit %llu "
		     "bytes, %llu OOM kills)",
		     (unsigned long long)st.memory_max, (unsigned long long)st.oom_kills);
		creation_failed(p, msg);
		return;
	}
	creation_failed(p, "the container process died during setup");
}

/* Where the Create's time went in here: the host's bench reads this line back. */
static void created_said(const struct container *c, pid_t pid)
{
	uint64_t now = mono_now();

	info("container %s: created, pid %d: spec %llu us, cgroup %llu us, clone %llu us, setup "
	     "%llu us",
	     c->id, pid, (unsigned long long)(c->t[1] - c->t[0]) / 1000,
	     (unsigned long long)(c->t[2] - c->t[1]) / 1000,
	     (unsigned long long)(c->t[3] - c->t[2]) / 1000,
	     (unsigned long long)(now - c->t[3]) / 1000);
}

static void on_status(struct watch *w, uint32_t events)
{
	struct proc *p = (struct proc *)((char *)w - offsetof(struct proc, status_w));
	ssize_t r =
	    read(w->fd, p->status_msg + p->status_len, sizeof(p->status_msg) - 1 - p->status_len);

	(void)events;
	if (r > 0) {
		p->status_len += (size_t)r;
		if (p->status_len < sizeof(p->status_msg) - 1)
			return;
	} else if (r < 0 && errno == EAGAIN) {
		return;
	}
	ev_del(w);
	close(w->fd);
	w->fd = -1;
	p->status_msg[p->status_len] = '\0';
	if (p->status_len == 1 && p->status_msg[0] == '\0' && p->console_fd >= 0 &&
	    attach_terminal(p) < 0) {
		creation_failed(p, "the container's terminal could not be attached");
		return;
	}
	if (p->status_len == 1 && p->status_msg[0] == '\0') {
		if (p == &p->ctr->procs[0])
			created_said(p->ctr, p->pid);
		p->state = P_CREATED;
		p->create_reply.fn(&p->create_reply.reply, p->pid, NULL);
		if (p == &p->ctr->procs[0])
			events_watch_oom(p->ctr->id, p->ctr->cgroup);
		ev_created(p);
		if (p->reaped) { /* killed between its report and now */
			p->state = P_STOPPED;
			ev_exited(p);
			finish_waiters(p);
		}
	} else if (p->status_len) {
		creation_failed(p, p->status_msg);
	} else {
		setup_died(p);
	}
}

/* clone3 with CLONE_INTO_CGROUP: the child is born in its cgroup, never counted
 * elsewhere, and no migration (which takes a global lock) is needed. Fork semantics: no
 * stack given, the child runs on a copy of ours. */
static long clone_into(int flags, const char *cgroup)
{
	struct clone_args ca;
	int cgfd = open(cgroup, O_PATH | O_DIRECTORY | O_CLOEXEC);
	long pid;

	if (cgfd < 0)
		return -1;
	memset(&ca, 0, sizeof(ca));
	ca.flags = (uint64_t)(unsigned)flags | CLONE_INTO_CGROUP;
	ca.exit_signal = SIGCHLD;
	ca.cgroup = (uint64_t)cgfd;
	pid = syscall(SYS_clone3, &ca, sizeof(ca));
	if (pid != 0) {
		int saved = errno;

		close(cgfd);
		errno = saved;
	}
	return pid;
}

struct launch {
	struct proc *p;
	const struct oci_spec *spec;
	const char *rootfs;
	int stdio[3];
	int ns_fds[4];
	int pidns_fd; /* exec: the container's pid namespace, -1 for a new one */
	int clone_flags;
	int terminal;
	struct sock_fprog *seccomp;
};

/* Clones the child, places it in the cgroup, lets it set itself up; the result arrives on
 * the status pipe in the event loop. */
/* The three pipes a launch needs, as go, status and start pairs: all or none. */
static int launch_pipes(int p[6])
{
	for (int i = 0; i < 3; i++) {
		if (sys_pipe2(p + 2 * i, O_CLOEXEC) < 0) {
			close_fds(p, 2 * i);
			return -1;
		}
	}
	return 0;
}

/* The parent's side once the child is cloned: its ends closed, the child told to go, its
 * status watched. */
static void launched(struct launch *l, const int p[6], long pid)
{
	l->p->pid = (pid_t)pid;
	l->p->start_fd = p[5];
	(void)!write(p[1], "g", 1);
	close(p[1]);
	sys_fcntl(p[2], F_SETFL, O_NONBLOCK);
	l->p->status_w.fd = p[2];
	l->p->status_w.fn = on_status;
	l->p->state = P_CREATING;
	ev_add(&l->p->status_w, EPOLLIN);
}

static int launch(struct launch *l, const char *cgroup, char *err, size_t n)
{
	int p[6], sv[2] = { -1, -1 }, self_ns = -1; /* go, status, start pipes */
	struct spawn_args a;
	long pid;

	if (launch_pipes(p) < 0)
		return kfail(err, n, RPC_INTERNAL, "pipe: %s", err_str(errno));
	if (l->terminal && sys_socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		close_fds(p, 6);
		return kfail(err, n, RPC_INTERNAL, "console socket: %s", err_str(errno));
	}
	a = (struct spawn_args){ .spec = l->spec,
		                 .rootfs = l->rootfs,
		                 .go_fd = p[0],
		                 .status_fd = p[3],
		                 .start_fd = p[4],
		                 .seccomp = l->seccomp,
		                 .console_fd = sv[1] };
	l->p->console_fd = sv[0];
	memcpy(a.stdio, l->stdio, sizeof(a.stdio));
	memcpy(a.ns_fds, l->ns_fds, sizeof(a.ns_fds));
	/* An exec's child must be born in the container's pid namespace. */
	if (l->pidns_fd >= 0) {
		self_ns = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
		if (self_ns < 0 || setns(l->pidns_fd, CLONE_NEWPID) < 0) {
			int e = errno;

			close_fds((int[]){ self_ns, sv[0], sv[1] }, 3);
			close_fds(p, 6);
			l->p->console_fd = -1;
			return kfail(err, n, RPC_FAILED_PRECONDITION,
			             "enter the container's pid namespace: %s", err_str(e));
		}
	}
	pid = clone_into(l->clone_flags, cgroup);
	if (pid == 0)
		spawn_child(&a);
	if (self_ns >= 0) {
		if (setns(self_ns, CLONE_NEWPID) < 0)
			warn("return to our own pid namespace: errno %d", errno);
		close(self_ns);
	}
	close_fds((int[]){ p[0], p[3], p[4], sv[1] }, 4);
	if (pid < 0) {
		close_fds((int[]){ p[1], p[2], p[5], l->p->console_fd }, 4);
		return kfail(err, n, RPC_INTERNAL, "clone: %s", err_str(errno));
	}
	launched(l, p, pid);
	return 0;
}

static int load_spec(struct container *c, const char *bundle, char *err, size_t n)
{
	char path[600], *text = NULL;
	size_t len = 0;
	struct stat st;
	int rc;

	if (bundle[0] != '/')
		return kfail(err, n, RPC_INVALID_ARGUMENT, "bundle %s: must be an absolute path",
		             bundle);
	kfmt(path, sizeof(path), "%s/config.json", bundle);
	if (read_small_file(path, &text, &len, OCI_MAX_BYTES) < 0)
		return kfail(err, n, errno == ENOENT ? RPC_NOT_FOUND : RPC_INVALID_ARGUMENT,
		             "%s: %s", path, errno == EFBIG ? "larger than 1 MiB" : err_str(errno));
	c->spec = malloc(sizeof(*c->spec));
	rc = c->spec ? oci_parse(c->spec, text, len, err, n) : -1;
	free(text);
	if (rc < 0)
		return c->spec
		           ? RPC_INVALID_ARGUMENT
		           : kfail(err, n, RPC_RESOURCE_EXHAUSTED, "out of memory for the spec");
	if (c->spec->root[0] == '/')
		kfmt(c->rootfs, sizeof(c->rootfs), "%s", c->spec->root);
	else
		kfmt(c->rootfs, sizeof(c->rootfs), "%s/%s", bundle, c->spec->root);
	if (sys_stat(c->rootfs, &st) < 0 || !S_ISDIR(st.st_mode))
		return kfail(err, n, RPC_NOT_FOUND, "rootfs %s: %s", c->rootfs,
		             errno ? err_str(errno) : "not a directory");
	return 0;
}

static struct container *alloc_container(void)
{
	for (int i = 0; i < MAX_CONTAINERS; i++)
		if (!containers[i].used) {
			struct container *c = &containers[i];

			memset(c, 0, sizeof(*c));
			for (int k = 0; k < MAX_PROCS; k++)
				proc_init(c, &c->procs[k]);
			c->used = 1;
			return c;
		}
	return NULL;
}

static void keep_uris(struct proc *p, const struct ctr_stdio *io)
{
	for (int i = 0; i < 3; i++)
		kfmt(p->uri[i], sizeof(p->uri[i]), "%s", io->uri[i]);
	p->terminal = io->terminal;
}

/* What the pod shares is made at the first container that asks for it. */
static int launch_in_pod(struct container *c, struct launch *l, char *err, size_t n)
{
	if (c->spec->pod_shm && podns_shm() < 0)
		return kfail(err, n, RPC_INTERNAL, "the pod's shm: %s", err_str(errno));
	if (c->spec->pod_pid && (l->pidns_fd = podns_pid_fd()) < 0)
		return kfail(err, n, RPC_INTERNAL, "the pod's pid namespace: %s", err_str(errno));
	return launch(l, c->cgroup, err, n);
}

int ctr_create(const char *id, const char *bundle, const struct ctr_stdio *io,
               const struct ctr_created *done, char *err, size_t n)
{
	struct container *c;
	struct launch l = { .pidns_fd = -1, .ns_fds = { -1, -1, -1, -1 } };
	const char *what = "";
	int rc;

	if (!id_ok(id))
		return kfail(err, n, RPC_INVALID_ARGUMENT, "container id `%s` is not valid", id);
	if (find(id))
		return kfail(err, n, RPC_ALREADY_EXISTS, "container %s: already exists", id);
	c = alloc_container();
	if (!c)
		return kfail(err, n, RPC_RESOURCE_EXHAUSTED, "at most %d containers",
		             MAX_CONTAINERS);
	c->t[0] = mono_now();
	kfmt(c->id, sizeof(c->id), "%s", id);
	kfmt(c->bundle, sizeof(c->bundle), "%s", bundle);
	if ((rc = load_spec(c, bundle, err, n)) != 0)
		goto out;
	if (c->spec->seccomp.present &&
	    seccomp_compile(&c->spec->seccomp, &c->seccomp, err, n) < 0) {
		rc = RPC_INVALID_ARGUMENT;
		goto out;
	}
	c->t[1] = mono_now(); /* config.json read and parsed, its seccomp filter compiled */
	if (cgroup_create(id, &c->spec->resources, c->cgroup, sizeof(c->cgroup), &what) < 0) {
		rc = kfail(err, n, RPC_FAILED_PRECONDITION, "cgroup %s: %s: %s", id, what,
		           err_str(errno));
		goto out;
	}
	c->t[2] = mono_now();
	if ((rc = open_stdio(io, l.stdio, err, n)) != 0) {
		cgroup_remove(c->cgroup);
		goto out;
	}
	l.p = &c->procs[0];
	l.spec = c->spec;
	l.rootfs = c->rootfs;
	l.seccomp = c->seccomp.filter ? &c->seccomp : NULL;
	l.terminal = io->terminal;
	/* The cgroup namespace is entered by the child once it sits in its cgroup. */
	l.clone_flags = c->spec->namespaces & ~CLONE_NEWCGROUP;
	l.p->create_reply = *done;
	keep_uris(l.p, io);
	rc = launch_in_pod(c, &l, err, n);
	close_fds(&l.pidns_fd, 1);
	close_fds(l.stdio, 3);
	if (rc) {
		cgroup_remove(c->cgroup);
		goto out;
	}
	c->t[3] = mono_now();
	return 0;
out:
	close_fds(l.stdio, 3);
	free_container(c);
	return rc;
}

static int open_ns(pid_t pid, const char *ns)
{
	char path[64];

	kfmt(path, sizeof(path), "/proc/%d/ns/%s", pid, ns);
	return open(path, O_RDONLY | O_CLOEXEC);
}

static struct proc *alloc_exec(struct container *c)
{
	for (int i = 1; i < MAX_PROCS; i++)
		if (c->procs[i].state == P_FREE)
			return &c->procs[i];
	return NULL;
}

static int exec_launch(struct container *c, struct proc *p, const struct ctr_stdio *io, char *err,
                       size_t n)
{
	static const char *const names[4] = { "mnt", "uts", "ipc", "cgroup" };
	pid_t init = c->procs[0].pid;
	struct launch l = { .p = p,
		            .spec = p->spec,
		            .rootfs = "/",
		            .pidns_fd = -1,
		            .terminal = io->terminal,
		            .seccomp = c->seccomp.filter ? &c->seccomp : NULL };
	int rc;

	for (int i = 0; i < 4; i++)
		l.ns_fds[i] = open_ns(init, names[i]);
	l.pidns_fd = open_ns(init, "pid");
	if (l.ns_fds[0] < 0 || l.pidns_fd < 0) {
		rc = kfail(err, n, RPC_FAILED_PRECONDITION, "open the namespaces of pid %d: %s",
		           init, err_str(errno));
	} else if ((rc = open_stdio(io, l.stdio, err, n)) == 0) {
		rc = launch(&l, c->cgroup, err, n);
	}
	close_fds(l.stdio, 3);
	close_fds(l.ns_fds, 4);
	close_fds(&l.pidns_fd, 1);
	return rc;
}

int ctr_exec(const char *id, const char *exec_id, const char *process_json, size_t len,
             const struct ctr_stdio *io, const struct ctr_created *done, char *err, size_t n)
{
	struct container *c = find(id);
	struct proc *p;
	int rc;

	if (!c)
		return kfail(err, n, RPC_NOT_FOUND, "container %s: not found", id);
	if (!id_ok(exec_id))
		return kfail(err, n, RPC_INVALID_ARGUMENT, "exec id `%s` is not valid", exec_id);
	if (find_proc(c, exec_id))
		return kfail(err, n, RPC_ALREADY_EXISTS, "exec %s in %s: already exists", exec_id,
		             id);
	if (c->procs[0].state != P_RUNNING)
		return kfail(err, n, RPC_FAILED_PRECONDITION, "container %s is not running", id);
	p = alloc_exec(c);
	if (!p)
		return kfail(err, n, RPC_RESOURCE_EXHAUSTED, "at most %d execs", MAX_PROCS - 1);
	p->spec = malloc(sizeof(*p->spec));
	if (!p->spec)
		return kfail(err, n, RPC_RESOURCE_EXHAUSTED, "out of memory");
	memset(p->spec, 0, offsetof(struct oci_spec, pool));
	p->spec->pool_used = 0;
	if (oci_parse_process(p->spec, process_json, len, err, n) < 0) {
		free(p->spec);
		p->spec = NULL;
		return RPC_INVALID_ARGUMENT;
	}
	kfmt(p->exec_id, sizeof(p->exec_id), "%s", exec_id);
	p->create_reply = *done;
	keep_uris(p, io);
	p->pty = -1;
	rc = exec_launch(c, p, io, err, n);
	if (rc)
		free_exec(p);
	return rc;
}

int ctr_start(const char *id, const char *exec_id, pid_t *pid, char *err, size_t n)
{
	struct container *c;
	struct proc *p;
	int rc = lookup(id, exec_id, &c, &p, err, n);

	if (rc)
		return rc;
	if (p->state != P_CREATED)
		return kfail(err, n, RPC_FAILED_PRECONDITION, "process %d is %s, not created",
		             p->pid, p->state == P_RUNNING ? "running" : "stopped");
	if (write(p->start_fd, "s", 1) != 1)
		return kfail(err, n, RPC_INTERNAL, "release process %d: %s", p->pid,
		             err_str(errno));
	close(p->start_fd);
	p->start_fd = -1;
	p->state = P_RUNNING;
	*pid = p->pid;
	ev_started(p);
	return 0;
}

static void signal_pid(pid_t pid, void *arg)
{
	kill(pid, *(int *)arg);
}

int ctr_kill(const char *id, const char *exec_id, int sig, int all, char *err, size_t n)
{
	struct container *c;
	struct proc *p;
	int rc = lookup(id, exec_id, &c, &p, err, n);

	if (rc)
		return rc;
	if (sig <= 0 || sig >= 65)
		return kfail(err, n, RPC_INVALID_ARGUMENT, "signal %d is not valid", sig);
	if (all && p == &c->procs[0]) {
		cgroup_pids(c->cgroup, signal_pid, &sig);
		return 0;
	}
	if (p->state == P_STOPPED)
		return kfail(err, n, RPC_NOT_FOUND, "process %d: already finished", p->pid);
	if (kill(p->pid, sig) < 0)
		return kfail(err, n, RPC_INTERNAL, "kill %d: %s", p->pid, err_str(errno));
	return 0;
}

/* A process that never started is killed and reaped on delete. */
static void reap_unstarted(struct proc *p)
{
	int status;

	if (p->state != P_CREATED)
		return;
	kill(p->pid, SIGKILL);
	if (!p->reaped && waitpid(p->pid, &status, 0) == p->pid) {
		p->reaped = 1;
		p->exit_status = exit_code(status);
		p->exited_ns = realtime_ns();
	}
	p->state = P_STOPPED;
	ev_exited(p);
	finish_waiters(p);
}

int ctr_delete(const char *id, const char *exec_id, struct ctr_exit *out, char *err, size_t n)
{
	struct container *c;
	struct proc *p;
	int rc = lookup(id, exec_id, &c, &p, err, n);

	if (rc)
		return rc;
	if (p->state == P_RUNNING)
		return kfail(err, n, RPC_FAILED_PRECONDITION,
		             "process %d is running: kill it first", p->pid);
	reap_unstarted(p);
	*out = (struct ctr_exit){ p->pid, p->exit_status, p->exited_ns };
	ev_deleted(c, p);
	if (p != &c->procs[0]) {
		free_exec(p);
		return 0;
	}
	for (int i = 1; i < MAX_PROCS; i++)
		reap_unstarted(&c->procs[i]);
	if (cgroup_remove(c->cgroup) < 0)
		warn("container %s: cgroup %s not removed: errno %d", id, c->cgroup, errno);
	info("container %s: deleted", id);
	free_container(c);
	return 0;
}

static enum proc_status status_of(const struct container *c, const struct proc *p)
{
	switch (p->state) {
	case P_CREATED: return PS_CREATED;
	case P_RUNNING: return c->paused ? PS_PAUSED : PS_RUNNING;
	case P_STOPPED: return PS_STOPPED;
	default: return PS_UNKNOWN;
	}
}

int ctr_state(const char *id, const char *exec_id, struct ctr_state *out, char *err, size_t n)
{
	struct container *c;
	struct proc *p;
	int rc = lookup(id, exec_id, &c, &p, err, n);

	if (rc)
		return rc;
	out->bundle = c->bundle;
	out->pid = p->pid;
	out->status = status_of(c, p);
	for (int i = 0; i < 3; i++)
		out->uri[i] = p->uri[i];
	out->terminal = p->terminal;
	out->exit_status = p->exit_status;
	out->exited_ns = p->exited_ns;
	return 0;
}

int ctr_wait(const char *id, const char *exec_id, const struct ctr_waited *waiter, int *done,
             struct ctr_exit *out, char *err, size_t n)
{
	struct container *c;
	struct proc *p;
	int rc = lookup(id, exec_id, &c, &p, err, n);

	if (rc)
		return rc;
	*done = p->state == P_STOPPED;
	if (*done) {
		*out = (struct ctr_exit){ p->pid, p->exit_status, p->exited_ns };
		return 0;
	}
	/* Full: the oldest waiter goes (with an error, should its caller still listen). Waits
	 * of callers that left are normally dropped by ctr_forget_waiter; this bounds what a
	 * client that never says so can leave behind. */
	if (p->n_waiters >= MAX_WAITERS) {
		rpc_pending_error(&p->waiters[0].reply, RPC_ABORTED,
		                  "more than %d waiters for this process: the oldest is dropped",
		                  MAX_WAITERS);
		memmove(&p->waiters[0], &p->waiters[1], (MAX_WAITERS - 1) * sizeof(p->waiters[0]));
		p->n_waiters--;
	}
	p->waiters[p->n_waiters++] = *waiter;
	return 0;
}

void ctr_forget_waiter(uint64_t conn_id, uint32_t stream)
{
	for (int i = 0; i < MAX_CONTAINERS; i++)
		for (int k = 0; containers[i].used && k < MAX_PROCS; k++) {
			struct proc *p = &containers[i].procs[k];

			for (unsigned w = 0; w < p->n_waiters; w++)
				if (p->waiters[w].reply.conn_id == conn_id &&
				    p->waiters[w].reply.stream == stream) {
					memmove(&p->waiters[w], &p->waiters[w + 1],
					        (p->n_waiters - w - 1) * sizeof(p->waiters[0]));
					p->n_waiters--;
					return;
				}
		}
}

int ctr_pids(const char *id, void (*fn)(pid_t pid, void *arg), void *arg, char *err, size_t n)
{
	struct container *c = find(id);

	if (!c)
		return kfail(err, n, RPC_NOT_FOUND, "container %s: not found", id);
	if (cgroup_pids(c->cgroup, fn, arg) < 0)
		return kfail(err, n, RPC_INTERNAL, "read %s: %s", c->cgroup, err_str(errno));
	return 0;
}

int ctr_pause(const char *id, int pause, char *err, size_t n)
{
	struct container *c = find(id);

	if (!c)
		return kfail(err, n, RPC_NOT_FOUND, "container %s: not found", id);
	if (c->procs[0].state != P_RUNNING)
		return kfail(err, n, RPC_FAILED_PRECONDITION, "container %s is not running", id);
	if (c->paused == pause)
		return kfail(err, n, RPC_FAILED_PRECONDITION, "container %s is already %s", id,
		             pause ? "paused" : "running");
	if (cgroup_freeze(c->cgroup, pause) < 0)
		return kfail(err, n, RPC_INTERNAL, "%s %s: %s", pause ? "freeze" : "thaw",
		             c->cgroup, err_str(errno));
	c->paused = pause;
	ev_paused(c, pause);
	return 0;
}

int ctr_update(const char *id, const char *resources_json, size_t len, char *err, size_t n)
{
	struct container *c = find(id);
	struct oci_resources r;
	const char *what = "";

	if (!c)
		return kfail(err, n, RPC_NOT_FOUND, "container %s: not found", id);
	if (oci_parse_resources(&r, resources_json, len, err, n) < 0)
		return RPC_INVALID_ARGUMENT;
	if (cgroup_apply(c->cgroup, &r, &what) < 0)
		return kfail(err, n, RPC_FAILED_PRECONDITION, "update %s: %s: %s", id, what,
		             err_str(errno));
	return 0;
}

int ctr_stats(const char *id, struct cgroup_stats *st, char *err, size_t n)
{
	struct container *c = find(id);

	if (!c)
		return kfail(err, n, RPC_NOT_FOUND, "container %s: not found", id);
	if (cgroup_stats(c->cgroup, st) < 0)
		return kfail(err, n, RPC_INTERNAL, "read the stats of %s: %s", c->cgroup,
		             err_str(errno));
	return 0;
}

int ctr_resize(const char *id, const char *exec_id, unsigned w, unsigned h, char *err, size_t n)
{
	struct container *c;
	struct proc *p;
	struct winsize ws = { (unsigned short)h, (unsigned short)w, 0, 0 };
	int rc = lookup(id, exec_id, &c, &p, err, n);

	if (rc)
		return rc;
	if (p->pty < 0)
		return kfail(err, n, RPC_FAILED_PRECONDITION, "process %d has no terminal", p->pid);
	if (ioctl(p->pty, TIOCSWINSZ, &ws) < 0)
		return kfail(err, n, RPC_INTERNAL, "resize the terminal: %s", err_str(errno));
	return 0;
}

int ctr_close_io(const char *id, const char *exec_id, char *err, size_t n)
{
	struct container *c;
	struct proc *p;
	int rc = lookup(id, exec_id, &c, &p, err, n);

	if (rc)
		return rc;
	stream_close_input(p->uri[0]);
	return 0;
}

/* The signal a container asked for after its VM is made unique again (a restored clone or
 * a fork): KUASAR_FORK_SIGNAL=N or =USR1, USR2, HUP in its environment; 0 if none. */
static int fork_signal(const struct oci_process *p)
{
	static const char key[] = "KUASAR_FORK_SIGNAL=";
	static const struct {
		const char *name;
		int sig;
	} names[] = { { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 }, { "HUP", SIGHUP } };

	for (unsigned i = 0; i < p->n_env; i++) {
		const char *v = p->env[i], *end;
		uint64_t n;

		if (strncmp(v, key, sizeof(key) - 1))
			continue;
		v += sizeof(key) - 1;
		if (!strncmp(v, "SIG", 3))
			v += 3;
		for (unsigned k = 0; k < sizeof(names) / sizeof(names[0]); k++)
			if (!strcmp(v, names[k].name))
				return names[k].sig;
		n = parse_u64(v, &end);
		return end != v && !*end && n > 0 && n < 65 ? (int)n : 0;
	}
	return 0;
}

unsigned ctr_made_unique(void)
{
	unsigned sent = 0;

	for (int i = 0; i < MAX_CONTAINERS; i++) {
		struct container *c = &containers[i];
		int sig = c->used && c->spec ? fork_signal(&c->spec->process) : 0;

		if (sig && c->procs[0].state == P_RUNNING && kill(c->procs[0].pid, sig) == 0)
			sent++;
	}
	return sent;
}

pid_t ctr_init_pid(const char *id)
{
	struct container *c = find(id);

	return c ? c->procs[0].pid : 0;
}

void ctr_on_exit(pid_t pid, int wait_status)
{
	for (int i = 0; i < MAX_CONTAINERS; i++) {
		struct container *c = &containers[i];

		if (!c->used)
			continue;
		for (int k = 0; k < MAX_PROCS; k++) {
			struct proc *p = &c->procs[k];

			if (p->state == P_FREE || p->pid != pid)
				continue;
			p->reaped = 1;
			p->exit_status = exit_code(wait_status);
			p->exited_ns = realtime_ns();
			if (p->state == P_CREATING)
				return; /* the status pipe's EOF reports it */
			p->state = P_STOPPED;
			info("container %s: %s%s exited with %u", c->id, k ? "exec " : "process",
			     k ? p->exec_id : "", p->exit_status);
			/* Without a pid namespace of its own, nothing ends the container's other
			 * processes with its init: they are killed, as runc's shim does. */
			if (!k && !(c->spec->namespaces & CLONE_NEWPID))
				cgroup_kill(c->cgroup);
			ev_exited(p);
			finish_waiters(p);
			return;
		}
	}
}
