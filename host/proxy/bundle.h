/* Turns a container's host bundle (what containerd sends in Task.Create) into one the guest
 * can use, inside the sandbox's shared directory:
 *   <shared>/<id>/rootfs      the request's rootfs mounts (overlay, bind) mounted here
 *   <shared>/<id>/mounts/<n>  host sources of bind mounts (hosts, resolv.conf, volumes)
 *   <shared>/<id>/config.json the spec with root and mount sources as guest paths and
 *                             host-only fields (netns paths, hooks, LSM labels) adapted.
 * The guest writes the share: everything here is done from directory fds, and mounts are
 * unmounted by the fds of their roots (base/fsat.h, SECURITY.md). */
#ifndef KUASAR_BUNDLE_H
#define KUASAR_BUNDLE_H

#include <json-c/json.h>
#include <stddef.h>

#include "base/err.h"
#include "base/util.h"
#include "containerd/types.pb-c.h"

/* Where the guest mounts the share. */
#define GUEST_SHARED "/run/kuasar/shared"
/* Where the guest mounts a container's root disk on SCSI target %u (MountShare "erofs"). */
#define GUEST_ROOT_DISK "/run/kuasar/block/%u/rootfs"
/* The pod's pid namespace, as a container spec names it for the guest to join. */
#define GUEST_POD_PIDNS "/run/kuasar/pod/ns/pid"
/* The pod's /dev/shm in the guest: one tmpfs its containers bind. */
#define GUEST_POD_SHM "/run/kuasar/pod/shm"
/* The pod's /etc files in the guest's tmpfs, when SetHostname wrote them there
 * (guest runtime/podns.h POD_ETC_DIR). */
#define GUEST_POD_ETC "/run/kuasar/pod/etc"

/* What the rewrite needs of the filesystem, kept apart so that the rewrite is a pure function
 * of the spec. */
struct spec_stage {
	/* Makes host path src visible as mount n of the container (<bundle>/mounts/<n>). */
	int (*bind)(void *ctx, size_t n, const char *src, kerr_t *err);
	/* Whether the share has the pod's file name (hosts, resolv.conf, hostname). */
	int (*has_pod_file)(void *ctx, const char *name);
	void *ctx;
	/* The VM's memory in MiB (0: unknown): every container's memory limit is capped below
	 * it, so a container that outgrows the VM is OOM-killed in its own cgroup, as on a
	 * host, before the guest or the pod's host cgroup runs out. */
	unsigned vm_mib;
	/* Calls each(arg, rel) for every mount the host has below host path src (rel: its path
	 * relative to src), stopping at the first nonzero return (NULL: none looked for). */
	int (*submounts)(const char *src, int (*each)(void *arg, const char *rel), void *arg,
	                 kerr_t *err);
	/* Where the guest keeps the pod's /etc files (GUEST_POD_ETC), NULL: they are bound
	 * from the share. */
	const char *pod_etc;
};

/* The most mounts a container spec may have in the guest (kuasar-init's OCI_MAX_MOUNTS),
 * the pod's three /etc files the rewrite may add included. */
#define GUEST_MAX_MOUNTS 128
#define POD_FILE_MOUNTS 3

/* What the guest keeps for itself (kernel, kuasar-init, page cache) below a container's
 * memory cap. */
#define GUEST_RESERVE_MIB 24

/* Rewrites spec in place for the guest (guest_dir: the bundle's path in the guest); bind
 * sources are staged through st. */
int spec_rewrite(json_object *spec, const char *id, const char *guest_dir,
                 const struct spec_stage *st, kerr_t *err);

/* The pod's /etc/hosts, /etc/resolv.conf and /etc/hostname live in <shared>/.pod/ (ids
 * never start with a dot). containerd writes these files only for its own sandboxes and
 * leaves them to a remote controller, so the sandboxer writes them at Create, from the pod's
 * config, and every container that does not mount its own gets them. resolv: the file's
 * text (NULL: a copy of the host's, as containerd does without a DNS config). */
#define POD_FILES_DIR ".pod"
int pod_files_write(const char *shared, const char *hostname, const char *resolv, kerr_t *err);

struct bundle;

/* A sandbox's bundles: the share's root, opened once (the guest sees only what is inside
 * it, so it cannot replace it), and per container the mounts made for it. */
struct bundles {
	int share_fd;
	char shared[KPATH_SIZE]; /* for messages */
	unsigned vm_mib;         /* spec_stage.vm_mib */
	const char *pod_etc;     /* spec_stage.pod_etc */
	struct bundle *list;
};

int bundles_open(struct bundles *b, const char *shared, kerr_t *err);
/* Removes every bundle left and closes the share. */
void bundles_close(struct bundles *b);

/* Prepares <shared>/<id>, which must not exist yet, and returns the guest's bundle path.
 * Undoes itself on failure. guest_root: NULL to mount the rootfs mounts on
 * <shared>/<id>/rootfs, or where the guest has the container's root filesystem already (a
 * root disk, rootdisk.h), for root.path. */
int bundle_prepare(struct bundles *b, const char *id, const char *host_bundle,
                   Containerd__Types__Mount **rootfs, size_t n_rootfs, const char *guest_root,
                   char *guest_bundle, size_t n, kerr_t *err);
/* Unmounts the bundle's mounts by their fds and removes <shared>/<id>; 0 when nothing is
 * left. */
int bundle_remove(struct bundles *b, const char *id);

#endif
