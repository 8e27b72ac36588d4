/* Raw system calls glibc 2.36 has no wrapper for, in one place. */
#ifndef KUASAR_SYSCALLS_H
#define KUASAR_SYSCALLS_H

#include <signal.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* waitid() on a pidfd (Linux 5.4). */
#ifndef P_PIDFD
#define P_PIDFD ((idtype_t)3)
#endif

static inline int sys_pidfd_open(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static inline int sys_pidfd_send_signal(int pidfd, int sig)
{
	return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

/* Closes every fd from first up (Linux 5.9); before an execve. */
static inline void sys_close_from(unsigned first)
{
	syscall(SYS_close_range, first, ~0U, 0);
}

#endif
