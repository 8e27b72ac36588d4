/* The child side of creating a container process: everything between clone() and execve(),
 * run in the new namespaces. Nothing here returns to the init's loop: on error the child
 * reports through its status pipe and exits. */
#ifndef KUASAR_SPAWN_H
#define KUASAR_SPAWN_H

#include "runtime/oci.h"

struct spawn_args {
	const struct oci_spec *spec;
	const char *rootfs; /* absolute path in the guest */
	int ns_fds[4];      /* exec: mnt, uts, ipc, cgroup to join (-1: build a container) */
	int go_fd;          /* read: the parent has placed us in our cgroup */
	int status_fd;      /* write: "" on success, else an error message */
	int start_fd;       /* read: released by Start (-1: exec right away) */
	int stdio[3];       /* fds for 0, 1, 2 (unused with a terminal) */
	int console_fd;     /* terminal: the pty is opened inside the container and its
	                       master sent back on this socket; -1 without a terminal */
	struct sock_fprog *seccomp; /* compiled filter or NULL */
};

/* Runs in the cloned child; never returns. */
__attribute__((noreturn)) void spawn_child(const struct spawn_args *a);

#endif
