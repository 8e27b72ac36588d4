/* Turns a container's host bundle (what containerd sends in Task.Create) into one the guest
 * can use, inside the sandbox's shared directory:
 *   <shared>/<id>/rootfs      the request's rootfs mounts (overlay, bind) mounted here
 *   <shared>/<id>/mounts/<n>  host sources of bind mounts (hosts, resolv.conf, volumes)
 *   <shared>/<id>/config.json the spec with root and mount sources as guest paths and
 *                             host-only fields (netns paths, hooks, LSM labels) adapted. */
#ifndef KUASAR_BUNDLE_H
#define KUASAR_BUNDLE_H

#include <json-c/json.h>
#include <stddef.h>

#include "base/err.h"
#include "containerd/types.pb-c.h"

/* Where the guest mounts the share. */
#define GUEST_SHARED "/run/kuasar/shared"
/* Where the guest mounts a container's root disk on SCSI target %u (MountShare "erofs"). */
#define GUEST_ROOT_DISK "/run/kuasar/block/%u/rootfs"

/* Makes src visible at dst (dst exists: a directory or an empty file). */
typedef int (*bundle_bind_fn)(const char *src, const char *dst, kerr_t *err);

/* Rewrites spec in place for the guest; bind sources get mount points below host_dir/mounts
 * and are handed to bind. hostname: the pod's, for containers that were to share its UTS
 * namespace. */
int spec_rewrite(json_object *spec, const char *id, const char *host_dir, const char *guest_dir,
                 const char *hostname, bundle_bind_fn bind, kerr_t *err);

/* The pod's /etc/hosts, /etc/resolv.conf and /etc/hostname live in <shared>/.pod/ (ids
 * never start with a dot). containerd writes these files only for its own sandboxes and
 * leaves them to a remote controller, so the sandboxer writes them at Create, from the pod's
 * config, and every container that does not mount its own gets them. resolv: the file's
 * text (NULL: a copy of the host's, as containerd does without a DNS config). */
#define POD_FILES_DIR ".pod"
int pod_files_write(const char *shared, const char *hostname, const char *resolv, kerr_t *err);

/* Prepares <shared>/<id> and returns the guest's bundle path. Undoes itself on failure.
 * guest_root: NULL to mount the rootfs mounts on <shared>/<id>/rootfs, or where the guest
 * has the container's root filesystem already (a root disk, rootdisk.h), for root.path. */
int bundle_prepare(const char *shared, const char *id, const char *host_bundle,
                   Containerd__Types__Mount **rootfs, size_t n_rootfs, const char *guest_root,
                   const char *hostname, char *guest_bundle, size_t n, kerr_t *err);
/* Unmounts everything below <shared>/<id> and removes it; 0 when nothing is left. */
int bundle_remove(const char *shared, const char *id);

#endif
