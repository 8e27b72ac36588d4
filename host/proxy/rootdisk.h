/* Container root filesystems as read-only disks ([sandboxer] rootfs = "block").
 *
 * containerd's overlay snapshotter hands Task.Create an overlay mount: the image's layers
 * (lowerdir) and the container's empty upper layer. Here the layers become one EROFS image,
 * built once per layer set (the merged view of a read-only overlay of them, so whiteouts are
 * applied) and kept in the cache directory while any sandbox uses it: every user holds a
 * shared flock on it, and the last one out removes it. The image is hot-added to the VM's
 * virtio-scsi bus (QMP blockdev-add + device_add scsi-hd, one SCSI target per container)
 * and the guest mounts it under a tmpfs overlay (MountShare fstype "erofs"), so the
 * container's writes live in guest memory, as they would in the upper layer, and go with
 * the container.
 *
 * Anything else (a bind mount, no rootfs mounts, an upper layer that already holds files)
 * is not turned into a disk: the container uses the share as with rootfs = "9p". */
#ifndef KUASAR_ROOTDISK_H
#define KUASAR_ROOTDISK_H

#include <stddef.h>

#include "base/err.h"
#include "base/loop.h"
#include "base/util.h"
#include "containerd/types.pb-c.h"
#include "proxy/rootimg.h"
#include "vm/qmp.h"
#include "vm/vmm.h"

#define ROOTDISK_MAX_TARGETS 256 /* virtio-scsi's targets: one per container */

/* The overlay lowers of containerd's rootfs mounts, in lowers (malloc'd strings, *n of
 * them): 1 when they can become a disk, 0 when not (why says so), -1 on malformed mounts. */
int rootdisk_lowers(Containerd__Types__Mount **m, size_t n_m, char ***lowers, size_t *n, char *why,
                    size_t why_len, kerr_t *err);
void rootdisk_free_lowers(char **lowers, size_t n);

struct rootdisk {
	char id[ID_MAX + 1];
	unsigned target;
	char node[32]; /* QEMU's block node and device id */
	struct rootimg img;
	char **layers; /* what the image is built from (kept for a rebuild) */
	size_t n_layers;
	int rebuilt; /* its image vanished once built and was built again */
	/* Its image being built (a cache miss): the builder child, its pidfd, its error pipe. */
	pid_t build_pid;
	int build_pidfd, build_errfd;
	unsigned seq;   /* its number, never reused: how QMP answers find it */
	int busy;       /* a QMP command for it is in flight: its answer moves it on */
	int node_added; /* blockdev-add done */
	int plugged;    /* device_add done */
	int releasing;  /* its container is done: the guest unmounts it, then it is unplugged */
	int unplugging; /* device_del sent: then DEVICE_DELETED, then blockdev-del */
	int deleted;    /* QEMU said DEVICE_DELETED */
	int awaiting_event;
	int64_t unplug_ns;
	int64_t due_ns; /* the next blockdev-del, or the end of the wait for DEVICE_DELETED */
	struct rootdisk *next;
};

struct rootdisks {
	struct loop *loop;
	/* Asks again for a node still in use, ends waits for DEVICE_DELETED, reaps builders. */
	struct loop_timer timer;
	struct qmp *qmp; /* attached to loop: commands never wait in place */
	int qmp_timeout_ms;
	int closing; /* the VM is going away: nothing more is unplugged */
	/* A plug ended (err NULL: the disk is on the bus), for a disk not being released. */
	void (*on_plugged)(void *arg, struct rootdisk *d, const kerr_t *err);
	void *arg;
	char cache[KPATH_SIZE];
	char builder_cgroup[KPATH_SIZE]; /* where image builds run ("" : the proxy's own) */
	/* Killed builders not yet reaped: the timer reaps them, the loop never waits. */
	pid_t reap[ROOTDISK_MAX_TARGETS];
	unsigned n_reap;
	struct rootdisk *list;
	unsigned seq;
	unsigned char used[ROOTDISK_MAX_TARGETS / 8];
};

void rootdisks_init(struct rootdisks *rd, struct loop *loop, struct qmp *qmp, const char *cache,
                    const char *builder_cgroup);
/* Targets the VM came with (a pod restored from a snapshot has its parent's containers'
 * disks): never given to a new container. */
void rootdisks_keep_targets(struct rootdisks *rd, const struct vm_disk *disks, unsigned n);
/* Container id's root disk: a free SCSI target and its image of lowers, held when the cache
 * has it, else being built by a child (build_pidfd turns readable when it is done). */
int rootdisk_reserve(struct rootdisks *rd, const char *id, char *const *lowers, size_t n,
                     struct rootdisk **out, kerr_t *err);
/* The build ended: its image is held (0); or it was removed before it could be held (its
 * last user let go of it right after another builder made it), and a new build is under
 * way once (1: build_pidfd is the new builder's); or -1 with the builder's complaint. */
int rootdisk_built(struct rootdisks *rd, struct rootdisk *d, kerr_t *err);
/* Hot-adds the disk of a held image to the VM's SCSI bus (blockdev-add, device_add);
 * rd->on_plugged says how it went. -1 when it cannot even be asked. */
int rootdisk_plug(struct rootdisks *rd, struct rootdisk *d, kerr_t *err);
/* Container id's disk, unless it is being released. */
struct rootdisk *rootdisk_find(struct rootdisks *rd, const char *id);
struct rootdisk *rootdisk_find_target(struct rootdisks *rd, unsigned target);
/* Unplugs the disk (when the VM still runs) and lets go of its image and target once QEMU
 * has let go of it: device_del, QEMU's DEVICE_DELETED event, blockdev-del (asked again while
 * QEMU's class says the node is still in use, up to 5 s). */
void rootdisk_detach(struct rootdisks *rd, struct rootdisk *d, int vm_running);
/* QMP's events, for DEVICE_DELETED. */
void rootdisks_qmp_event(struct rootdisks *rd, const char *event, json_object *data);
/* The VM is being stopped: disks let go of are not unplugged any more. */
void rootdisks_closing(struct rootdisks *rd);
/* Unplugs the disks whose unmount the guest will never answer (the link went down). */
void rootdisks_unplug_released(struct rootdisks *rd);
/* Every disk, at the end: the VM is gone. */
void rootdisks_release(struct rootdisks *rd);

#endif
