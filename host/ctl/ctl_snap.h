/* Snapshots of running VMs and their forks (ctl_snapshot.c), for kuasar-ctl snapshot, fork
 * and bench fork. A snapshot lives in <KUASAR_SNAPSHOT_DIR>/<name>/ (meta.json, state) with
 * its memory in <template memory dir>/snapshots/<name>.mem; <dir>/<name>.lock serialises
 * taking, forking (shared) and removal. */
#ifndef KUASAR_CTL_SNAP_H
#define KUASAR_CTL_SNAP_H

#include "base/err.h"
#include "ctl/ctl_clone.h"
#include "vm/template.h"
#include "vm/vmsnap.h"

/* Snapshots the kept VM id as name (which must not exist). */
int ctl_snapshot_take(const char *id, const char *name, struct vm_snap_times *tm, kerr_t *err);
/* The snapshot name, verified, ready to fork: sh is its VM's shape with its memory, t its
 * files. Returns the fd that holds a shared lock on it (close it once the forks run: their
 * VMMs map the memory by then), -1 on error (ENOENT: no such snapshot). */
int ctl_snapshot_open(const char *name, struct vm_shape *sh, struct template *t, kerr_t *err);
/* Removes the snapshot name; EBUSY while a process maps its memory, unless in_use_too (a
 * snapshot taken for one fork command goes once its forks map it: their pages stay). */
int ctl_snapshot_remove(const char *name, int in_use_too, kerr_t *err);

/* Starts n forks of the snapshot (opened above) with ids base (n = 1) or base-I, each
 * made unique and on cl[i].netns (or a scratch tap), each reported on stderr unless quiet;
 * *started says how many run. */
int ctl_fork_start(const struct vm_shape *sh, const struct template *t, struct clone *cl,
                   unsigned n, const char *base, int sigfd, int keep, int quiet, unsigned *started,
                   kerr_t *err);

#endif
