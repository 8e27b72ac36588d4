/* File operations that cannot be steered by what another party writes into a directory.
 *
 * A sandbox's share is a host directory the guest writes through 9p with its own links and
 * renames, so a path string under it means whatever the guest last made it mean. Below such
 * a directory the host works only from a directory fd it opened itself: single names with
 * the *at() calls, longer paths with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
 * RESOLVE_NO_MAGICLINKS), and mounts by the fd of their root, never by path (SECURITY.md). */
#ifndef KUASAR_FSAT_H
#define KUASAR_FSAT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/err.h"

/* openat2 confined to dirfd's tree, following no link of any kind; -1 with errno (ELOOP
 * for a link, EXDEV for an escape). */
int open_beneath(int dirfd, const char *path, int flags, mode_t mode);
/* The id of the mount fd lives on (as in /proc/self/mountinfo). */
int fd_mount_id(int fd, uint64_t *id);
/* Detaches the mount whose root fd is open, wherever it has been moved since. */
int umount_fd(int fd);
/* The root of the mount on dir's entry name, opened O_PATH: -1 with EINVAL when name is not
 * a mount point (a directory the guest may have put there instead). */
int open_mount_root(int dirfd, const char *name);

/* Removes a directory tree without following links or entering another mount: a mount
 * point inside (even a bind mount from the same filesystem) makes it fail with EBUSY and
 * leaves what the mount shows untouched. rm_tree_at removes dirfd's entry name (a link
 * there is removed itself, never followed). */
int rm_tree(const char *path);
int rm_tree_at(int dirfd, const char *name);
/* Detaches every mount below dir, deepest first, so that removing the directory can never
 * reach into what they expose. Each is opened below dir without following links and its
 * mount id checked against mountinfo's before it is detached, so a renamed or replaced
 * path component makes it skip that mount (with a warning), never detach another one. */
void umount_below(const char *dir);

/* A regular file below dirfd (no links, no FIFOs or devices), at most max bytes. */
int read_file_beneath(int dirfd, const char *path, char **out, size_t *len, size_t max,
                      kerr_t *err);
/* Writes dirfd's entry name atomically (a new temporary, fsync, renameat over whatever
 * name was, a link included, never through it). */
int write_file_at(int dirfd, const char *name, const void *data, size_t len, kerr_t *err);

#endif
