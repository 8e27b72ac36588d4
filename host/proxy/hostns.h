/* The proxy's mounts live in a mount namespace of its own, a slave of the host's: what it
 * stages in the share (containers' rootfs and volumes) never shows on the host, so a host
 * path a container binds stays the host's to unmount and remove, as under runc, and what
 * the proxy leaves mounted goes with it and its VMM. Host paths are still cloned from the
 * host's namespace, as it is at that moment (a host whose root is not a shared mount
 * propagates nothing into ours): hostns_enter and hostns_leave bracket that. */
#ifndef KUASAR_PROXY_HOSTNS_H
#define KUASAR_PROXY_HOSTNS_H

/* Moves the (single-threaded) process into a namespace of its own; 0, or -1 with errno and
 * the process still in the host's. */
int hostns_init(void);
/* Into the host's namespace, and back (a process that cannot return aborts: its mounts
 * would land on the host). Without hostns_init both do nothing. setns resets the current
 * directory: nothing here works relative to it. */
int hostns_enter(void);
void hostns_leave(void);

#endif
