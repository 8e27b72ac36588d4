#include "runtime/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/fmt.h"
#include "core/sys.h"

static const struct spawn_args *args;
/* Where errors go: the parent's status pipe until Create answered, then the program's
 * stderr (an exec that fails after Start is the program's failure, exit 127). */
static int report_fd;

__attribute__((noreturn)) static void die(const char *what, const char *path)
{
	char msg[512];
	size_t n =
	    kfmt(msg, sizeof(msg), "%s%s%s%s: %s%s", report_fd == 2 ? "kuasar-init: " : "", what,
	         path ? " " : "", path ? path : "", err_str(errno), report_fd == 2 ? "\n" : "");

	(void)!write(report_fd, msg, n);
	_exit(127);
}

static void join(char *buf, size_t n, const char *a, const char *b)
{
	kfmt(buf, n, "%s%s%s", a, b[0] == '/' ? "" : "/", b);
}

/* mkdir -p, for mount targets inside the new root. */
static int mkdir_p(const char *path, mode_t mode)
{
	char buf[512];
	size_t n = strlen(path);

	if (n >= sizeof(buf))
		return errno = ENAMETOOLONG, -1;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			if (mkdir(buf, mode) < 0 && errno != EEXIST)
				return -1;
			*p = '/';
		}
	return mkdir(buf, mode) < 0 && errno != EEXIST ? -1 : 0;
}

/* A bind mount of a file needs a file to mount over. */
static int make_target(const char *target, const char *source, int bind)
{
	struct stat st;
	int fd;

	if (bind && sys_stat(source, &st) == 0 && !S_ISDIR(st.st_mode)) {
		char dir[512];
		char *slash;

		kfmt(dir, sizeof(dir), "%s", target);
		slash = strrchr(dir, '/');
		if (slash && slash != dir) {
			*slash = '\0';
			if (mkdir_p(dir, 0755) < 0)
				return -1;
		}
		fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0 && errno != EISDIR)
			return -1;
		if (fd >= 0)
			close(fd);
		return 0;
	}
	return mkdir_p(target, 0755);
}

/* Refuses targets that leave the root through "..": a spec cannot mount over the guest. */
static int escapes(const char *dest)
{
	for (const char *p = dest; (p = str_find(p, "..")); p += 2)
		if ((p == dest || p[-1] == '/') && (p[2] == '/' || p[2] == '\0'))
			return 1;
	return 0;
}

static void do_mount(const struct oci_mount *m)
{
	char target[512];
	unsigned long flags = m->flags & ~(unsigned long)(MS_BIND | MS_REC | MS_RDONLY);

	if (escapes(m->dest)) {
		errno = EINVAL;
		die("mount destination escapes the root:", m->dest);
	}
	join(target, sizeof(target), args->rootfs, m->dest);
	if (make_target(target, m->source, m->bind) < 0)
		die("create mount point", target);
	if (m->bind) {
		if (mount(m->source, target, NULL, MS_BIND | (m->flags & MS_REC), NULL) < 0)
			die("bind mount", m->source);
		/* Bind mounts take their flags on a remount. */
		if ((m->flags & MS_RDONLY) || flags)
			if (mount(NULL, target, NULL,
			          MS_BIND | MS_REMOUNT | flags | (m->flags & MS_RDONLY), NULL) < 0)
				die("remount bind mount", target);
	} else if (mount(m->source, target, m->type, m->flags, m->data[0] ? m->data : NULL) < 0) {
		/* cgroup v1 names in specs map to the v2 hierarchy here. */
		if (!strcmp(m->type, "cgroup") &&
		    mount("cgroup2", target, "cgroup2", m->flags, NULL) == 0)
			return;
		die("mount", target);
	}
	if ((m->rattr_set || m->rattr_clr) &&
	    sys_mount_setattr_tree(target, m->rattr_set, m->rattr_clr) < 0)
		die("set recursive attributes of", target);
	if (m->propagation && mount(NULL, target, NULL, m->propagation, NULL) < 0)
		die("set propagation of", target);
}

/* The device nodes every container gets, bound from the init's devtmpfs. */
static void default_devices(void)
{
	static const char *const nodes[] = { "null", "zero", "full", "random", "urandom", "tty" };
	static const char *const links[][2] = {
		{ "/proc/self/fd", "fd" },       { "/proc/self/fd/0", "stdin" },
		{ "/proc/self/fd/1", "stdout" }, { "/proc/self/fd/2", "stderr" },
		{ "pts/ptmx", "ptmx" },
	};
	char target[512], src[64], dev[512];

	join(dev, sizeof(dev), args->rootfs, "/dev");
	if (mkdir_p(dev, 0755) < 0)
		die("create", dev);
	for (size_t i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++) {
		kfmt(target, sizeof(target), "%s/%s", dev, nodes[i]);
		kfmt(src, sizeof(src), "/dev/%s", nodes[i]);
		if (make_target(target, src, 1) < 0 || mount(src, target, NULL, MS_BIND, NULL) < 0)
			die("bind device", target);
	}
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
		kfmt(target, sizeof(target), "%s/%s", dev, links[i][1]);
		if (symlink(links[i][0], target) < 0 && errno != EEXIST)
			die("symlink", target);
	}
	kfmt(target, sizeof(target), "%s/shm", dev);
	mkdir_p(target, 01777);
}

static void setup_rootfs(void)
{
	const struct oci_spec *s = args->spec;

	/* Nothing we mount may propagate back into the init's namespace. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		die("make / private", NULL);
	/* pivot_root needs the new root to be a mount point. */
	if (mount(args->rootfs, args->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
		die("bind the root filesystem", args->rootfs);
	for (unsigned i = 0; i < s->n_mounts; i++)
		do_mount(&s->mounts[i]);
	default_devices();
}

static void pivot(void)
{
	if (chdir(args->rootfs) < 0)
		die("chdir", args->rootfs);
	/* pivot_root(".", ".") stacks the old root under the new one; detach it right away. */
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		die("pivot_root to", args->rootfs);
	if (umount2(".", MNT_DETACH) < 0)
		die("detach the old root", NULL);
	if (chdir("/") < 0)
		die("chdir /", NULL);
}

static void mask_paths(void)
{
	const struct oci_spec *s = args->spec;
	struct stat st;

	for (unsigned i = 0; i < s->n_masked; i++) {
		const char *p = s->masked[i];

		if (sys_stat(p, &st) < 0)
			continue; /* nothing to hide */
		if (S_ISDIR(st.st_mode)
		        ? mount("tmpfs", p, "tmpfs", MS_RDONLY, "size=0,mode=000") < 0
		        : mount("/dev/null", p, NULL, MS_BIND, NULL) < 0)
			die("mask", p);
	}
	for (unsigned i = 0; i < s->n_readonly; i++) {
		const char *p = s->readonly[i];

		if (sys_stat(p, &st) < 0)
			continue;
		if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0 ||
		    mount(NULL, p, NULL,
		          MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
		          NULL) < 0)
			die("make read-only", p);
	}
	if (s->root_readonly && mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0)
		die("remount the root read-only", NULL);
}

static void write_file(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0 || write(fd, value, strlen(value)) < 0)
		die("write", path);
	close(fd);
}

static void sysctls(void)
{
	const struct oci_spec *s = args->spec;

	for (unsigned i = 0; i < s->n_sysctl; i++)
		if (sysctl_write(s->sysctl_keys[i], s->sysctl_values[i]) < 0)
			die("write the sysctl", s->sysctl_keys[i]);
}

static void limits(void)
{
	const struct oci_process *p = &args->spec->process;
	char adj[16];

	for (unsigned i = 0; i < p->n_rlimits; i++) {
		struct rlimit r = { p->rlimits[i].soft, p->rlimits[i].hard };

		if (sys_setrlimit((int)p->rlimits[i].resource, &r) < 0)
			die("setrlimit", NULL);
	}
	if (p->has_oom_score_adj) {
		kfmt(adj, sizeof(adj), "%d", p->oom_score_adj);
		write_file("/proc/self/oom_score_adj", adj);
	}
}

/* Order matters: the bounding set is dropped while we still have CAP_SETPCAP, uid/gid
 * change with PR_SET_KEEPCAPS so the permitted set survives, then the sets are applied. */
static void drop_bounding(const struct oci_process *p)
{
	for (int cap = 0; cap <= 63; cap++) {
		if (p->caps[CAP_BOUNDING] & (1ULL << cap))
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			die("drop capability from the bounding set", NULL);
	}
}

static void set_caps(const struct oci_process *p)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	for (int i = 0; i < 2; i++) {
		d[i].effective = (uint32_t)(p->caps[CAP_EFFECTIVE] >> (32 * i));
		d[i].permitted = (uint32_t)(p->caps[CAP_PERMITTED] >> (32 * i));
		d[i].inheritable = (uint32_t)(p->caps[CAP_INHERITABLE] >> (32 * i));
	}
	if (syscall(SYS_capset, &h, d) < 0)
		die("capset", NULL);
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	for (int cap = 0; cap <= 63; cap++)
		if ((p->caps[CAP_AMBIENT] & (1ULL << cap)) &&
		    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
			die("raise an ambient capability", NULL);
}

static void user(void)
{
	const struct oci_process *p = &args->spec->process;
	gid_t gids[OCI_MAX_GIDS];

	if (p->has_caps)
		drop_bounding(p);
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		die("keep capabilities", NULL);
	for (unsigned i = 0; i < p->n_gids; i++)
		gids[i] = p->gids[i];
	/* Raw calls: this child has one thread (core/sys.h). */
	if (syscall(SYS_setgroups, p->n_gids, gids) < 0)
		die("setgroups", NULL);
	if (syscall(SYS_setresgid, p->gid, p->gid, p->gid) < 0)
		die("setgid", NULL);
	if (syscall(SYS_setresuid, p->uid, p->uid, p->uid) < 0)
		die("setuid", NULL);
	if (p->has_caps)
		set_caps(p);
	prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
}

/* The terminal comes from the container's own devpts (so ttyname() works inside), and
 * its master goes back to the init over the console socket, as runc's console socket. */
static void open_terminal(void)
{
	char buf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { (void *)"t", 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = buf, .msg_controllen = sizeof(buf)
	};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	int unlock = 0, m, slave;

	m = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0 || ioctl(m, TIOCSPTLCK, &unlock) < 0)
		die("open /dev/ptmx in the container", NULL);
	slave = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY);
	if (slave < 0)
		die("open the terminal", NULL);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &m, sizeof(int));
	if (sys_sendmsg(args->console_fd, &msg, 0) != 1)
		die("send the terminal to the init", NULL);
	close(m);
	close(args->console_fd);
	for (int i = 0; i < 3; i++)
		if (dup2(slave, i) < 0)
			die("set up the terminal", NULL);
	if (slave > 2)
		close(slave);
}

static void stdio(void)
{
	if (setsid() < 0)
		die("setsid", NULL);
	if (args->console_fd >= 0) {
		open_terminal();
		if (ioctl(0, TIOCSCTTY, 0) < 0)
			die("set the controlling terminal", NULL);
		return;
	}
	for (int i = 0; i < 3; i++)
		if (args->stdio[i] != i && dup2(args->stdio[i], i) < 0)
			die("set up stdio", NULL);
}

/* The program as execvp would find it, with the container's PATH (not ours), looked up
 * before Create answers: like runc, a missing binary fails Create with its name rather than
 * starting a container that exits 127. */
static char program[512];

static void find_program(void)
{
	const struct oci_process *p = &args->spec->process;
	const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

	for (unsigned i = 0; i < p->n_env; i++)
		if (!strncmp(p->env[i], "PATH=", 5))
			path = p->env[i] + 5;
	if (strchr(p->args[0], '/')) {
		kfmt(program, sizeof(program), "%s", p->args[0]);
		if (access(program, X_OK) < 0)
			die("exec", p->args[0]);
		return;
	}
	for (const char *d = path; *d;) {
		size_t n = (size_t)(strchrnul(d, ':') - d);

		kfmt(program, sizeof(program), "%.*s/%s", (int)n, d, p->args[0]);
		if (access(program, X_OK) == 0)
			return;
		d += n + (d[n] == ':');
	}
	errno = ENOENT;
	die("exec: not found in PATH:", p->args[0]);
}

__attribute__((noreturn)) static void exec_program(void)
{
	const struct oci_process *p = &args->spec->process;

	execve(program, (char *const *)p->args, (char *const *)p->env);
	die("exec", program);
}

static void wait_start(void)
{
	char c;

	if (args->start_fd < 0)
		return;
	/* Start writes a byte; EOF means the container was deleted before it started. */
	if (read(args->start_fd, &c, 1) != 1)
		_exit(137);
	close(args->start_fd);
}

static void install_seccomp(void)
{
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, args->seccomp) < 0)
		die("install the seccomp filter", NULL);
}

static void build_container(void)
{
	const struct oci_spec *s = args->spec;

	if ((s->namespaces & CLONE_NEWCGROUP) && unshare(CLONE_NEWCGROUP) < 0)
		die("unshare the cgroup namespace", NULL);
	setup_rootfs();
	if ((s->namespaces & CLONE_NEWUTS) && s->hostname &&
	    sethostname(s->hostname, strlen(s->hostname)) < 0)
		die("sethostname", s->hostname);
	pivot();
	mask_paths();
	sysctls();
}

/* Exec: enter the running container's namespaces (the pid namespace was entered by the
 * parent before forking us). setns into a mount namespace moves us to its root. */
static void join_container(void)
{
	static const int types[4] = { CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWCGROUP };

	for (int i = 0; i < 4; i++)
		if (args->ns_fds[i] >= 0 && setns(args->ns_fds[i], types[i]) < 0)
			die("join the container's namespaces", NULL);
	if (chdir("/") < 0)
		die("chdir /", NULL);
}

void spawn_child(const struct spawn_args *a)
{
	const struct oci_process *p = &a->spec->process;
	sigset_t none;
	char c;

	args = a;
	report_fd = a->status_fd;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	sys_signal_disposition(SIGPIPE, SIG_DFL);
	if (read(a->go_fd, &c, 1) != 1)
		_exit(127);
	if (a->ns_fds[0] >= 0)
		join_container();
	else
		build_container();
	stdio();
	limits();
	/* Without no_new_privs the filter can only be installed while we still hold
	 * CAP_SYS_ADMIN, so it goes in before the user switch (and then also filters the
	 * few setup calls left); with it, right before exec. */
	if (a->seccomp && !p->no_new_privs)
		install_seccomp();
	user();
	if (chdir(p->cwd) < 0)
		die("chdir", p->cwd);
	if (p->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		die("set no_new_privs", NULL);
	find_program();
	/* Success (one zero byte): Create answers now; the program runs once started. */
	(void)!write(a->status_fd, "", 1);
	close(a->status_fd);
	report_fd = 2;
	wait_start();
	if (a->seccomp && p->no_new_privs)
		install_seccomp();
	exec_program();
}
