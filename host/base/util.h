/* Small host helpers: scoped cleanup, time, fds, files. */
#ifndef KUASAR_UTIL_H
#define KUASAR_UTIL_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

#include "base/err.h"

/* Sizes with names. An id (sandbox, container, VM) is at most ID_MAX characters; a hostname
 * at most HOSTNAME_MAX (the kernel's limit); a path this program builds below a configured
 * directory fits KPATH_SIZE bytes, and one that would not is an error (fmt_path), never
 * silently cut. Paths handed to us from outside (bundles) use PATH_MAX. */
#define ID_MAX 64
#define HOSTNAME_MAX 64
#define KPATH_SIZE 512

/* The struct that holds member ptr points to (callbacks get a pointer to an embedded
 * watch or timer). */
#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

static inline void freep(void *p)
{
	free(*(void **)p);
}

static inline void closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}

#define _cleanup_free_ __attribute__((cleanup(freep)))
#define _cleanup_close_ __attribute__((cleanup(closep)))

/* Hands an fd out of a _cleanup_close_ scope. */
static inline int take_fd(int *fd)
{
	int r = *fd;

	*fd = -1;
	return r;
}
#define TAKE_FD(fd) take_fd(&(fd))

/* snprintf for paths and other text that must not be cut: 0, or -1 with errno ENAMETOOLONG
 * when it does not fit (buf then holds the cut text, for messages only). */
int fmt_path(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The same for messages, where keeping what fits is the right thing. */
void fmt_msg(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Blocks the signals in sigs (a 0-terminated list) and returns a non-blocking, close-on-exec
 * signalfd for them, -1 with errno on failure. */
int signalfd_for(const int *sigs);

int64_t mono_ns(void);
int64_t real_ns(void);
/* Milliseconds left until a CLOCK_MONOTONIC deadline in ns, at least 0; -1 for no deadline. */
int ms_until(int64_t deadline_ns);

int write_all(int fd, const void *buf, size_t len);
/* Writes path atomically: a temporary file, fsync, rename. */
int write_file_atomic(const char *path, const void *data, size_t len, kerr_t *err);
/* Reads a whole (small) file; the result is NUL-terminated. */
int read_file(const char *path, char **out, size_t *len, size_t max, kerr_t *err);
/* The same from an open fd (name for messages). */
int read_fd(int fd, const char *name, char **out, size_t *len, size_t max, kerr_t *err);
int mkdir_p(const char *path, int mode, kerr_t *err);
/* Ids name directories: 1-64 of [A-Za-z0-9_.-], no leading dot (so no '..'). */
int id_valid(const char *id, kerr_t *err);
int unix_connect(const char *path, kerr_t *err);
int unix_listen(const char *path, kerr_t *err);

/* A process's memory from /proc/PID/smaps_rollup, in KiB. USS is its private pages
 * (what killing it frees); PSS adds its share of pages it shares with others. */
struct proc_mem {
	unsigned long long rss_kib, pss_kib, uss_kib;
};
int proc_mem(pid_t pid, struct proc_mem *m, kerr_t *err);

#endif
