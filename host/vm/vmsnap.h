/* Snapshots of running VMs, for forks: the VM's RAM goes into a memory file by a migration
 * into a short-lived VMM that maps that file shared, which then saves the device
 * state on its own (x-ignore-shared). The VM is paused for the copy (one pass over its RAM)
 * and goes on running. Forks are restored from the pair as template clones are (vm_restore):
 * the file mapped copy-on-write, the state loaded.
 *
 * Only a VM whose RAM is a memory backend named "mem" can be snapshotted (it was restored
 * from a template, an appliance's snapshot or another snapshot): a cold boot's RAM block
 * has another name and it has a balloon, which forks must never have (a guest's balloon
 * would punch holes in the snapshot's file through QEMU before 8.1). */
#ifndef KUASAR_VMSNAP_H
#define KUASAR_VMSNAP_H

#include <json-c/json.h>

#include "base/err.h"
#include "vm/template.h"
#include "vm/vm.h"

/* What makes a VMM the same as another: its binary, boot files, disks, size, devices and
 * accelerator, as vm.json and a snapshot's meta.json record them. cfg points into it. */
struct vm_shape {
	char qemu[KPATH_SIZE], kernel[KPATH_SIZE], initrd[KPATH_SIZE], image[KPATH_SIZE];
	char app_disk[KPATH_SIZE], mem_path[KPATH_SIZE];
	struct vm_disk disks[VM_MAX_DISKS]; /* a pod's containers' root disks */
	struct vm_config cfg;
};

struct vm_snap_times {
	int64_t stop_ns;   /* CLOCK_MONOTONIC: the VM was asked to stop */
	double pause_ms;   /* from then until `cont` answered */
	double migrate_ms; /* from then until the migration ended */
	double save_ms;    /* the VM running: the stream loaded, the device state saved, the
	                    * short-lived VMM gone */
	double total_ms;
	long long state_bytes;
};

/* Reads the shape from a vm.json or meta.json object (untrusted: checked). */
int vm_shape_read(json_object *o, struct vm_shape *sh, kerr_t *err);
/* Adds the shape's fields to o (what vm_shape_read reads back), accel and link as cfg has
 * them (a running VM's state file then says which it got). */
void vm_shape_write(json_object *o, const struct vm_config *cfg);
/* Adds a disk to the shape (a container's root disk plugged at run time); EINVAL for a
 * node name, target or path that a command line cannot carry, E2BIG past VM_MAX_DISKS. */
int vm_shape_add_disk(struct vm_shape *sh, const char *node, unsigned target, const char *path,
                      kerr_t *err);
/* Makes the shape's disks the snapshot's own: each linked (or copied, across file systems)
 * into dir as disk-<target>.img, read-only, and the shape pointed at the copies, so that
 * forks keep them whatever becomes of the originals. */
int vm_shape_keep_disks(struct vm_shape *sh, int dirfd, const char *dir, kerr_t *err);
/* The shape of a running VM (attached with vm_attach) from its vm.json. */
int vm_shape_of(const struct vm *vm, struct vm_shape *sh, kerr_t *err);

/* Where the snapshot's short-lived VMM runs, and how it gets taps that go nowhere for the
 * VM's NICs (the net layer's podnet_scratch_taps; a tap backend is part of what a NIC's
 * state needs). */
struct vm_snap_env {
	const char *run_dir;
	int (*scratch_taps)(unsigned n, int *fds, kerr_t *err);
};

/* Snapshots the running VM into mem_path (created) and state_path. EOPNOTSUPP when its RAM
 * cannot be (see above), EBUSY when QEMU says why not (a mounted 9p share). The VM runs on
 * whatever happens, and on failure nothing of the snapshot is left. */
int vm_snapshot(struct vm *vm, const struct vm_shape *sh, const struct vm_snap_env *env,
                const char *mem_path, const char *state_path, struct vm_snap_times *t, kerr_t *err);

/* What a snapshotter killed midway leaves: its short-lived VMM (killed) and that VMM's
 * directory in run_dir, for the VM id. */
void vm_snapshot_cleanup(const char *run_dir, const char *id);

/* ---- the store (snapstore.c) ----
 * A snapshot lives in <dir>/<name>/ (meta.json, state, its root disks as disk-<target>.img)
 * with its memory in <mem_dir>/<name>.mem; <dir>/<name>.lock serialises taking, forking
 * (shared) and removal, as the template store's functions (tpl_lock, tpl_users,
 * tpl_remove_files) do with the struct template filled here. kuasar-ctl keeps the store;
 * the sandboxer's pods start from it (io.kuasar.snapshot). */
#define SNAP_DIR_DEFAULT "/var/lib/kuasar/snapshots"

/* t filled for snapshot name (an id, not ending in .lock: EINVAL). */
int snap_paths(const char *dir, const char *mem_dir, const char *name, struct template *t,
               kerr_t *err);
/* The shape meta.json records, checked, with the files where the store says (never where
 * meta.json says): EBADMSG when any is missing or wrong. *meta, if asked, gets the JSON. */
int snap_read_meta(const struct template *t, struct vm_shape *sh, json_object **meta, kerr_t *err);
/* Snapshot name, verified, ready to restore: the fd holding its shared lock (close it once
 * the VMMs map its memory), -1 on error (ENOENT: no such snapshot). */
int snap_open(const char *dir, const char *mem_dir, const char *name, struct vm_shape *sh,
              struct template *t, kerr_t *err);
/* Removes the snapshot's disk-*.img (before tpl_remove_files, which removes the rest). */
void snap_drop_disks(const struct template *t);

#endif
