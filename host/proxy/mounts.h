/* A container's mounts as the guest gives them (part of spec_rewrite, bundle.h):
 *   - a bind of a host path is staged in the share and its source becomes the guest's path;
 *   - read-only is not recursive unless the spec says "rro": what the host has mounted below
 *     a read-only volume stays as writable as it is on the host, as under runc. The share is
 *     one 9p tree in the guest, so each such mount gets a bind of its own, writable, after
 *     the volume's;
 *   - bidirectional propagation ("rshared") is refused: a mount made in the VM cannot reach
 *     the host. Host-to-container ("rslave") works, as the share shows the host's tree;
 *   - /dev/shm of a container in the pod's IPC namespace becomes the pod's shm in the guest
 *     (GUEST_POD_SHM), one tmpfs the pod's containers share; one with an IPC namespace of
 *     its own keeps its own. */
#ifndef KUASAR_PROXY_MOUNTS_H
#define KUASAR_PROXY_MOUNTS_H

#include <json-c/json.h>

#include "base/err.h"
#include "proxy/bundle.h"

/* Rewrites spec's "mounts" for the guest (guest_dir: the bundle's path there). */
int mounts_rewrite(json_object *spec, const char *guest_dir, const struct spec_stage *st,
                   kerr_t *err);

/* spec_stage.submounts from this process's /proc/self/mountinfo: the mounts below src
 * (resolved first; src is the host's, from containerd), each once, outermost first. */
int mounts_host_below(const char *src, int (*each)(void *arg, const char *rel), void *arg,
                      kerr_t *err);

#endif
