#include "runtime/podns.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/fmt.h"
#include "core/klog.h"

static pid_t holder;

/* The holder, PID 1 of the pod's namespace: reaps what is orphaned there, for good. Signals
 * from inside its namespace without a handler do not reach a namespace's init, so no
 * container of the pod can end it; nor can the OOM killer. */
static __attribute__((noreturn)) void hold(void)
{
	sigset_t chld;
	int fd;

	syscall(SYS_close_range, 3, ~0U, 0);
	prctl(PR_SET_NAME, "kuasar-pod");
	fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		(void)!write(fd, "-1000", 5);
		close(fd);
	}
	/* SIGCHLD stays blocked (inherited from PID 1), so it is kept pending for the wait. */
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	for (;;) {
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		syscall(SYS_rt_sigtimedwait, &chld, NULL, NULL, 8);
	}
}

static pid_t start_holder(void)
{
	long pid = syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, 0, 0, 0, 0);

	if (pid == 0)
		hold();
	if (pid > 0)
		info("pod pid namespace: holder %ld", pid);
	return (pid_t)pid;
}

int podns_pid_fd(void)
{
	char path[40];

	if (holder <= 0 && (holder = start_holder()) < 0) {
		holder = 0;
		return -1;
	}
	kfmt(path, sizeof(path), "/proc/%d/ns/pid", (int)holder);
	return open(path, O_RDONLY | O_CLOEXEC);
}

int podns_on_exit(pid_t pid, int wait_status)
{
	if (!holder || pid != holder)
		return 0;
	warn("pod pid namespace: holder %d ended (status 0x%x); its processes went with it", pid,
	     wait_status);
	holder = 0;
	return 1;
}

int podns_shm(void)
{
	static int mounted;

	if (mounted)
		return 0;
	/* /run/kuasar is the init's (the share is mounted below it). */
	if ((mkdir("/run/kuasar/pod", 0711) < 0 && errno != EEXIST) ||
	    (mkdir(PODNS_SHM_PATH, 01777) < 0 && errno != EEXIST))
		return -1;
	if (mount("shm", PODNS_SHM_PATH, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
	          "mode=1777,size=65536k") < 0)
		return -1;
	mounted = 1;
	info("pod shm: a tmpfs at " PODNS_SHM_PATH);
	return 0;
}
