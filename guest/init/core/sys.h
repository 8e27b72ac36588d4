/* What every layer of the init shares about this boot: its clock, small file reads, and
 * the facts of the boot that later layers report (the link's first hour, its resets). */
#ifndef KUASAR_GUEST_SYS_H
#define KUASAR_GUEST_SYS_H

#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define KUASAR_VERSION "0.1.0"

struct boot_state {
	/* CLOCK_MONOTONIC at the init's entry: kernel start to init exec. */
	uint64_t init_ns;
	/* CLOCK_MONOTONIC when the guest link was first served; 0 before. */
	uint64_t link_ns;
	uint32_t link_resets;
	/* Started from the initramfs and moved onto a tmpfs root. */
	int moved_root;
};

extern struct boot_state boot;

uint64_t mono_now(void);
/* Reads up to size-1 bytes of path, NUL-terminated; the length or -1. */
int boot_read_file(const char *path, char *buf, size_t size);
/* Writes value to the sysctl name (dots or slashes between words of a-z, A-Z, 0-9, '_', '-';
 * the dots become slashes under /proc/sys). -1 with errno: EINVAL for a name that is not
 * one, ENOENT for one this kernel lacks, or the write's. */
int sysctl_write(const char *name, const char *value);

/* The system calls the init makes where musl's wrappers would bring more than the call:
 * musl's set*id, setgroups and setrlimit stop every thread to apply the change to each
 * (2 KB of synccall, semaphores and timed waits), which a single-threaded process never
 * needs; stat and fstat go through a statx fallback; clock_gettime brings the vDSO lookup;
 * sigaction keeps a signal restorer for handlers the init never installs (it only ignores
 * or defaults SIGPIPE, and takes signals by signalfd); and the socket, pipe, epoll, fcntl
 * and signalfd wrappers carry fallbacks for kernels older than ours (which has every flag
 * they emulate). The kernel's structures are musl's on x86_64. */
/* mount_setattr(2) on a whole tree (musl has no wrapper; the UAPI values are fixed). */
#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x1u
#define MOUNT_ATTR_NOSUID 0x2u
#define MOUNT_ATTR_NODEV 0x4u
#define MOUNT_ATTR_NOEXEC 0x8u
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
static inline int sys_mount_setattr_tree(const char *path, unsigned set, unsigned clr)
{
	struct {
		uint64_t attr_set, attr_clr, propagation, userns_fd;
	} ma = { set, clr, 0, 0 };

	return (int)syscall(SYS_mount_setattr, AT_FDCWD, path, 0x8000 /* AT_RECURSIVE */, &ma,
	                    sizeof(ma));
}

static inline int sys_clock_gettime(clockid_t id, struct timespec *ts)
{
	return (int)syscall(SYS_clock_gettime, id, ts);
}

static inline int sys_stat(const char *path, struct stat *st)
{
	return (int)syscall(SYS_newfstatat, AT_FDCWD, path, st, 0);
}

static inline int sys_fstat(int fd, struct stat *st)
{
	return (int)syscall(SYS_fstat, fd, st);
}

static inline int sys_statfs(const char *path, struct statfs *st)
{
	return (int)syscall(SYS_statfs, path, st);
}

/* SIG_IGN or SIG_DFL for sig: no handler, so no restorer. */
static inline int sys_signal_disposition(int sig, void (*how)(int))
{
	struct {
		void (*handler)(int);
		unsigned long flags;
		void (*restorer)(void);
		uint64_t mask;
	} sa = { how, 0, 0, 0 };

	return (int)syscall(SYS_rt_sigaction, sig, &sa, NULL, sizeof(sa.mask));
}

static inline int sys_setrlimit(int resource, const struct rlimit *r)
{
	return (int)syscall(SYS_prlimit64, 0, resource, r, NULL);
}

static inline int sys_fcntl(int fd, int cmd, long arg)
{
	return (int)syscall(SYS_fcntl, fd, cmd, arg);
}

static inline int sys_socket(int domain, int type, int protocol)
{
	return (int)syscall(SYS_socket, domain, type, protocol);
}

static inline int sys_socketpair(int domain, int type, int protocol, int sv[2])
{
	return (int)syscall(SYS_socketpair, domain, type, protocol, sv);
}

static inline int sys_accept4(int fd, int flags)
{
	return (int)syscall(SYS_accept4, fd, NULL, NULL, flags);
}

static inline int sys_pipe2(int p[2], int flags)
{
	return (int)syscall(SYS_pipe2, p, flags);
}

static inline ssize_t sys_sendmsg(int fd, const struct msghdr *m, int flags)
{
	return syscall(SYS_sendmsg, fd, m, flags);
}

static inline ssize_t sys_recvmsg(int fd, struct msghdr *m, int flags)
{
	return syscall(SYS_recvmsg, fd, m, flags);
}

static inline int sys_epoll_create1(int flags)
{
	return (int)syscall(SYS_epoll_create1, flags);
}

static inline int sys_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	return (int)syscall(SYS_epoll_ctl, epfd, op, fd, ev);
}

static inline int sys_epoll_wait(int epfd, struct epoll_event *evs, int n, int timeout_ms)
{
	return (int)syscall(SYS_epoll_wait, epfd, evs, n, timeout_ms);
}

static inline int sys_signalfd(const sigset_t *set, int flags)
{
	return (int)syscall(SYS_signalfd4, -1, set, (size_t)8, flags);
}

#endif
