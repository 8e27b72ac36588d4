/* The pod's shared pid namespace (shareProcessNamespace): a small holder process, PID 1 of a
 * namespace the pod's containers join, made when the first container asks for it. Its init
 * reaps the pod's orphans and ignores the signals its namespace can send it; the VM's own
 * processes (kuasar-init above all) stay outside. The IPC and UTS namespaces a pod shares
 * are the VM's own: the VM is the pod's node; so is its /dev/shm, one tmpfs made at the
 * first container that binds it. */
#ifndef KUASAR_GUEST_PODNS_H
#define KUASAR_GUEST_PODNS_H

#include <sys/types.h>

/* What a container spec names to join the pod's pid namespace (linux.namespaces path). */
#define PODNS_PID_PATH "/run/kuasar/pod/ns/pid"

/* The pod's /dev/shm: one tmpfs every container of the pod binds (CRI's pod IPC, and the
 * node's, which in a VM is the pod's). */
#define PODNS_SHM_PATH "/run/kuasar/pod/shm"

/* The pod's /etc/hostname, hosts and resolv.conf, written once by SetHostname (the host's
 * pod_files) for the containers to bind: no container start reads them over the share. */
#define POD_ETC_DIR "/run/kuasar/pod/etc"

/* Mounts the pod's shm tmpfs if it is not there yet (64 MiB, as containerd's); 0 or -1 with
 * errno. */
int podns_shm(void);

/* An fd of the pod's pid namespace (O_CLOEXEC, the caller's to close), its holder started
 * first if there is none; -1 with errno. */
int podns_pid_fd(void);
/* Reaped child pid: 1 if it was the holder (a warning; the next container that asks makes a
 * new one), else 0. */
int podns_on_exit(pid_t pid, int wait_status);

#endif
