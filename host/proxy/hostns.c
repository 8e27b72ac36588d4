#include "proxy/hostns.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "base/log.h"

static int host_fd = -1, own_fd = -1;

int hostns_init(void)
{
	int host = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC), own;

	if (host < 0)
		return -1;
	if (unshare(CLONE_NEWNS) < 0)
		goto fail;
	/* Host mounts still reach ours where the host shares them; ours never go back. */
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0 ||
	    (own = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC)) < 0) {
		int e = errno;

		if (setns(host, CLONE_NEWNS) < 0)
			abort();
		errno = e;
		goto fail;
	}
	host_fd = host;
	own_fd = own;
	return 0;
fail:
	close(host);
	return -1;
}

int hostns_enter(void)
{
	return host_fd < 0 ? 0 : setns(host_fd, CLONE_NEWNS);
}

void hostns_leave(void)
{
	if (own_fd >= 0 && setns(own_fd, CLONE_NEWNS) < 0) {
		log_error("fatal: cannot return to our mount namespace: %s", strerror(errno));
		abort();
	}
}
