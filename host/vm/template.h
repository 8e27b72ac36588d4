/* VM templates: a VM booted once with its RAM in a shared file and its device state saved;
 * clones map that file privately (copy on write) and load the state.
 *
 * A template lives in <dir>/<key>/ (meta.json, state) with its memory in
 * <mem_dir>/<key>.mem. The key hashes everything that shapes the VM: the kernel, initrd
 * and disk image contents, the VMM binary, and the VMM command line (memory, vCPUs,
 * devices, kernel command line, accelerator). A changed input is a new key, so a stale
 * template is never restored. <dir>/<key>.lock serialises building and removal. */
#ifndef KUASAR_TEMPLATE_H
#define KUASAR_TEMPLATE_H

#include <stdint.h>
#include <sys/types.h>

#include "base/err.h"
#include "base/sha256.h"
#include "vm/vmm.h"

#define TPL_DIR_DEFAULT "/var/lib/kuasar/templates"
#define TPL_MEM_DIR_DEFAULT "/dev/shm/kuasar"
#define TPL_KEY_LEN 32

struct tpl_store {
	char dir[KPATH_SIZE / 2];
	char mem_dir[KPATH_SIZE / 2];
	/* Opens n taps that go nowhere for a template VM's NICs (the net layer's
	 * podnet_scratch_taps; set by whoever builds templates with NICs). */
	int (*scratch_taps)(unsigned n, int *fds, kerr_t *err);
	/* Where a template's VMM runs (a cgroup directory; "" : the builder's own): its
	 * memory file is shared by every clone, and charged there, once. */
	char cgroup[KPATH_SIZE];
};

/* Each template path plus a short suffix (".tmp", "/build", ".failed") fits in this. */
#define TPL_PATH_SIZE (KPATH_SIZE + 16)

struct template
{
	char key[TPL_KEY_LEN + 1];
	char dir[KPATH_SIZE];
	char meta[KPATH_SIZE];
	char state[KPATH_SIZE];
	char lock[KPATH_SIZE];
	char mem[KPATH_SIZE];
};

/* What meta.json records. */
struct tpl_info {
	char key[TPL_KEY_LEN + 1];
	char created[32];
	char qemu_version[64];
	char kernel[256], initrd[256];
	char accel[8];
	unsigned memory_mib, vcpus;
	long long state_bytes;
	char state_sha256[SHA256_HEX_SIZE];
	char mem[KPATH_SIZE];
	double build_ms;
	double app_ready_ms; /* an appliance's app: its start to ready, in the template VM */
	/* Not in meta.json: what the memory file holds now (it is sparse), and when a clone
	 * was last restored from it (or it was built). */
	unsigned long long mem_used_kib;
	long long last_used; /* seconds since the epoch */
};

/* NULL or "" selects the defaults. */
/* NULL or "" for a directory means its default; ENAMETOOLONG when a path does not fit. */
int tpl_store_init(struct tpl_store *s, const char *dir, const char *mem_dir, kerr_t *err);
/* The key for cfg's shape under accel (which must be resolved, not auto). */
int tpl_key(const struct tpl_store *s, const struct vm_config *cfg, enum accel accel,
            char key[TPL_KEY_LEN + 1], kerr_t *err);
int tpl_paths(const struct tpl_store *s, const char *key, struct template *t, kerr_t *err);
/* Whether the template is complete and intact: meta.json for this key, the state file's
 * size and SHA-256 as recorded, the memory file's size. ENOENT when it does not exist. */
int tpl_verify(const struct template *t, struct tpl_info *info, kerr_t *err);
/* Takes the template's lock (shared or exclusive) before deadline; returns the fd that
 * holds it. */
int tpl_lock(const struct template *t, int exclusive, int64_t deadline_ns, kerr_t *err);
/* Boots cfg's shape as a template VM (in <dir>/<key>/build) and saves it under its key.
 * The caller holds the exclusive lock. */
int tpl_build(const struct tpl_store *s, const struct vm_config *cfg, enum accel accel,
              struct template *t, struct tpl_info *info, kerr_t *err);
/* Records a restore (the directory's mtime), for `template list` and `prune`. */
void tpl_touch(const struct template *t);
/* Makes mem_dir (0700) if missing; ENOSPC when it has less than mib MiB free (a VMM whose
 * memory file cannot be filled dies of SIGBUS once its guest touches the missing pages); 0
 * if it has, or cannot tell. */
int tpl_mem_room(const char *mem_dir, unsigned mib, kerr_t *err);
/* Removes the template's files (clones that map its memory keep their pages). */
int tpl_remove_files(const struct template *t, kerr_t *err);
/* Processes that map the template's memory (its clones); returns how many, fills pids. */
int tpl_users(const struct template *t, pid_t *pids, int max);
/* Calls fn for every template in the store, in directory order. */
int tpl_list(const struct tpl_store *s,
             void (*fn)(const struct template *t, const struct tpl_info *info, const char *problem,
                        void *arg),
             void *arg);

/* The template the VMM would restore for cfg: its key resolved, verified (ENOENT: none),
 * building it under the lock when build is set and it is missing. Returns the fd holding
 * a shared lock on it (close it once the clone's VMM has mapped the memory; removal waits
 * for it), -1 on error. A template found broken (EBADMSG) is removed, so that the next
 * start builds a fresh one; this one gets the error. */
int tpl_acquire(const struct tpl_store *s, const struct vm_config *cfg, enum accel accel, int build,
                struct template *t, struct tpl_info *info, int *built, kerr_t *err);

#endif
