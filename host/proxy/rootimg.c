#include "proxy/rootimg.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/fsat.h"
#include "base/log.h"
#include "base/sha256.h"
#include "base/syscalls.h"

#define IMG_SUFFIX ".erofs"
#define LOCK_SUFFIX ".lock"
#define BUILD_PREFIX ".build-"
#define CACHE_LOCK ".lock"
/* A new image is not swept this soon: its builder's user has yet to take it. */
#define SWEEP_MIN_AGE_S 60

/* The cache holds what every pod's root disk is built from: it must be a real directory of
 * ours that nobody else may write, or an image could be swapped under a pod. */
static int cache_check(const char *cache, kerr_t *err)
{
	struct stat st;

	if (mkdir_p(cache, 0700, err) < 0)
		return -1;
	if (lstat(cache, &st) < 0)
		return kerr_sys(err, "stat %s", cache);
	if (!S_ISDIR(st.st_mode))
		return kerr_set(err, ENOTDIR, "%s is not a directory (a link?)", cache);
	if (st.st_uid != geteuid() || (st.st_mode & 022))
		return kerr_set(err, EPERM,
		                "%s is owned by uid %u with mode %03o: it must be ours and written "
		                "by nobody else",
		                cache, (unsigned)st.st_uid, (unsigned)(st.st_mode & 0777));
	return 0;
}

/* The cache's lock (see rootimg.h). */
static int cache_lock(const char *cache, kerr_t *err)
{
	kerr_t mine;
	char path[KPATH_SIZE];
	int fd;

	if (!err)
		err = &mine;
	if (cache_check(cache, err) < 0 ||
	    fmt_path(path, sizeof(path), "%s/" CACHE_LOCK, cache) < 0)
		return kerr_wrap(err, "rootfs cache %s", cache);
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || flock(fd, LOCK_EX) < 0) {
		if (err)
			kerr_sys(err, "lock %s", path);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* A key's build lock, exclusive: waits (nb: 0) or fails at once (nb: 1). Whoever holds it
 * may unlink it, so the file locked must still be the one at path. */
static int key_lock(const char *path, int nb, kerr_t *err)
{
	for (;;) {
		struct stat a, b;
		int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);

		if (fd < 0 || flock(fd, LOCK_EX | (nb ? LOCK_NB : 0)) < 0) {
			kerr_sys(err, "lock %s", path);
			if (fd >= 0)
				close(fd);
			return -1;
		}
		if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino &&
		    a.st_dev == b.st_dev)
			return fd;
		close(fd);
	}
}

static int key_paths(const char *cache, const char *key, char *lock, char *build, kerr_t *err)
{
	if (fmt_path(lock, KPATH_SIZE, "%s/%s" LOCK_SUFFIX, cache, key) < 0 ||
	    fmt_path(build, KPATH_SIZE, "%s/" BUILD_PREFIX "%s", cache, key) < 0)
		return kerr_set(err, ENAMETOOLONG, "rootfs image %s in %s: path too long", key,
		                cache);
	return 0;
}

/* Layers are snapshot directories; a committed one never changes, so its path and identity
 * name its content. */
static int image_key(char *const *lowers, size_t n, char *key, size_t key_len, kerr_t *err)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	char d[SHA256_HEX_SIZE];
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return kerr_sys(err, "rootfs image key");
	fprintf(f, "kuasar rootfs image 1\n");
	for (size_t i = 0; i < n; i++) {
		struct stat st;

		int bad = stat(lowers[i], &st) < 0 ? errno : !S_ISDIR(st.st_mode) ? ENOTDIR : 0;

		if (bad) {
			fclose(f);
			errno = bad;
			return kerr_sys(err, "layer %s", lowers[i]);
		}
		fprintf(f, "%s %llu %llu %lld.%09ld\n", lowers[i], (unsigned long long)st.st_dev,
		        (unsigned long long)st.st_ino, (long long)st.st_ctim.tv_sec,
		        st.st_ctim.tv_nsec);
	}
	fclose(f);
	sha256_hex(text, len, d);
	fmt_msg(key, key_len, "%.32s", d);
	return 0;
}

/* The last non-empty line mkfs wrote (its complaint), into line. */
static void last_line(const char *logp, char *line, size_t n)
{
	_cleanup_free_ char *text = NULL;
	char *end, *start;

	line[0] = '\0';
	if (read_file(logp, &text, NULL, 1 << 16, NULL) < 0)
		return;
	end = text + strlen(text);
	while (end > text && (end[-1] == '\n' || end[-1] == ' '))
		*--end = '\0';
	start = strrchr(text, '\n');
	fmt_msg(line, n, "%s", start ? start + 1 : text);
}

/* Why mkfs failed, in words: its status, its last line, and a full filesystem named. */
static int mkfs_failed(const char *dir, const char *logp, int status, kerr_t *err)
{
	char line[256], what[64];
	struct statvfs vfs;

	last_line(logp, line, sizeof(line));
	if (WIFSIGNALED(status))
		snprintf(what, sizeof(what), "killed by signal %d", WTERMSIG(status));
	else
		snprintf(what, sizeof(what), "exit status %d", WEXITSTATUS(status));
	if (statvfs(dir, &vfs) == 0 && vfs.f_bavail * vfs.f_frsize < (4u << 20))
		return kerr_set(err, ENOSPC,
		                "mkfs.erofs failed (%s): the rootfs cache's filesystem is full "
		                "(%llu KiB free)%s%s",
		                what, (unsigned long long)(vfs.f_bavail * vfs.f_frsize / 1024),
		                line[0] ? ": " : "", line);
	return kerr_set(err, EIO, "mkfs.erofs failed (%s)%s%s", what, line[0] ? ": " : "", line);
}

/* mkfs.erofs IMAGE SOURCE, in the builder's process group, dead with the builder. */
static int run_mkfs(const char *dir, const char *image, const char *src, kerr_t *err)
{
	char logp[KPATH_SIZE];
	int status, fd;
	pid_t pid;

	if (fmt_path(logp, sizeof(logp), "%s/mkfs.log", dir) < 0)
		return kerr_sys(err, "mkfs log in %s", dir);
	pid = fork();
	if (pid < 0)
		return kerr_sys(err, "fork for mkfs.erofs");
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		sys_close_from(3);
		execlp("mkfs.erofs", "mkfs.erofs", "--quiet", image, src, (char *)NULL);
		dprintf(2, "exec mkfs.erofs: %s (make deps installs erofs-utils)\n",
		        strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	return mkfs_failed(dir, logp, status, err);
}

/* The merged view of the layers: a read-only overlay (two lowers at least, so one layer
 * gets an empty second), whose whiteouts the image must not carry as files. */
static int mount_layers(const char *dir, char *const *lowers, size_t n, const char *merged,
                        kerr_t *err)
{
	char opts[ROOTIMG_OPTS_MAX + KPATH_SIZE], empty[KPATH_SIZE];
	size_t used = (size_t)snprintf(opts, sizeof(opts), "lowerdir=");

	if (fmt_path(empty, sizeof(empty), "%s/empty", dir) < 0 || mkdir(empty, 0755) < 0)
		return kerr_sys(err, "empty layer in %s", dir);
	for (size_t i = 0; i < n + (n == 1); i++) {
		const char *l = i < n ? lowers[i] : empty;

		if (used + strlen(l) + 2 > ROOTIMG_OPTS_MAX)
			return kerr_set(err, E2BIG, "%zu layers: overlay options over %d bytes", n,
			                ROOTIMG_OPTS_MAX);
		used += (size_t)snprintf(opts + used, sizeof(opts) - used, "%s%s", i ? ":" : "", l);
	}
	if (mount("overlay", merged, "overlay", MS_RDONLY, opts) < 0)
		return kerr_sys(err, "mount the layers' overlay on %s", merged);
	return 0;
}

/* With the key's lock held: the merged layers into build/image.erofs, then into place. */
static int build_locked(const char *cache, char *const *lowers, size_t n, const struct rootimg *img,
                        const char *dir, kerr_t *err)
{
	char merged[KPATH_SIZE], tmp[KPATH_SIZE];
	int rc, lock;

	if (access(img->path, F_OK) == 0)
		return 0; /* built while we waited */
	umount_below(dir);
	rm_tree(dir); /* what a build that died left */
	if (fmt_path(merged, sizeof(merged), "%s/merged", dir) < 0 ||
	    fmt_path(tmp, sizeof(tmp), "%s/image" IMG_SUFFIX, dir) < 0 || mkdir(dir, 0700) < 0 ||
	    mkdir(merged, 0755) < 0)
		return kerr_sys(err, "build directory %s", dir);
	rc = mount_layers(dir, lowers, n, merged, err);
	if (rc == 0) {
		rc = run_mkfs(dir, tmp, merged, err);
		umount2(merged, MNT_DETACH);
	}
	if (rc == 0) {
		lock = cache_lock(cache, err);
		if (lock < 0 || rename(tmp, img->path) < 0)
			rc = lock < 0 ? -1 : kerr_sys(err, "rename %s to %s", tmp, img->path);
		if (lock >= 0)
			close(lock);
	}
	umount_below(dir);
	rm_tree(dir);
	return rc;
}

int rootimg_build(const char *cache, char *const *lowers, size_t n, const struct rootimg *img,
                  kerr_t *err)
{
	char lockp[KPATH_SIZE], dir[KPATH_SIZE];
	int fd, rc;

	if (key_paths(cache, img->key, lockp, dir, err) < 0 || cache_check(cache, err) < 0)
		return -1;
	fd = key_lock(lockp, 0, err);
	if (fd < 0)
		return -1;
	rc = build_locked(cache, lowers, n, img, dir, err);
	unlink(lockp);
	close(fd);
	return rc < 0 ? kerr_wrap(err, "rootfs image of %zu layers", n) : 0;
}

void rootimg_leave_cgroup(const char *cgroup, const char *what)
{
	char path[KPATH_SIZE];
	int fd;

	if (!cgroup || !cgroup[0] || fmt_path(path, sizeof(path), "%s/cgroup.procs", cgroup) < 0)
		return;
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "0", 1) != 1)
		dprintf(2, "kuasar: warning: %s stays in the pod's cgroup: %s: %s\n", what, path,
		        strerror(errno));
	if (fd >= 0)
		close(fd);
}

/* The builder child: its own process group (killed whole, mkfs with it), dead with the
 * proxy, only its error pipe open (as fd 3, close-on-exec so that mkfs never holds it). */
static void builder_main(const char *cache, char *const *lowers, size_t n,
                         const struct rootimg *img, const char *cgroup, int pipe_w)
{
	kerr_t e = { 0 };
	int rc;

	setpgid(0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (dup3(pipe_w, 3, O_CLOEXEC) < 0)
		_exit(127);
	sys_close_from(4);
	rootimg_leave_cgroup(cgroup, "rootfs image build");
	/* Its mounts die with it. */
	rc = unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0
	         ? kerr_sys(&e, "mount namespace for the build")
	         : rootimg_build(cache, lowers, n, img, &e);
	if (rc < 0 && write_all(3, e.msg, strlen(e.msg)) < 0)
		_exit(2);
	_exit(rc < 0 ? 1 : 0);
}

pid_t rootimg_build_child(const char *cache, char *const *lowers, size_t n,
                          const struct rootimg *img, const char *cgroup, int *pidfd, int *errfd,
                          kerr_t *err)
{
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		return kerr_sys(err, "pipe for a rootfs image build");
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return kerr_sys(err, "fork a rootfs image build");
	}
	if (pid == 0)
		builder_main(cache, lowers, n, img, cgroup, p[1]);
	close(p[1]);
	setpgid(pid, pid); /* as the child does: whichever runs first */
	*pidfd = sys_pidfd_open(pid);
	if (*pidfd < 0) {
		kerr_sys(err, "pidfd of the rootfs image build %d", pid);
		rootimg_build_kill(pid);
		waitpid(pid, NULL, 0); /* just killed: no wait to speak of */
		close(p[0]);
		return -1;
	}
	*errfd = p[0];
	return pid;
}

void rootimg_build_kill(pid_t pid)
{
	kill(-pid, SIGKILL); /* the builder's group: it and its mkfs.erofs */
	kill(pid, SIGKILL);
}

int rootimg_init(const char *cache, char *const *lowers, size_t n, struct rootimg *img, kerr_t *err)
{
	memset(img, 0, sizeof(*img));
	img->fd = -1;
	img->t0_ns = mono_ns();
	if (image_key(lowers, n, img->key, sizeof(img->key), err) < 0)
		return -1;
	if (fmt_path(img->path, sizeof(img->path), "%s/%s" IMG_SUFFIX, cache, img->key) < 0)
		return kerr_sys(err, "rootfs image in %s", cache);
	return 0;
}

/* Under the cache lock: a build lock nobody holds goes, with what its build left. */
static void sweep_key(const char *cache, const char *key)
{
	char lockp[KPATH_SIZE], dir[KPATH_SIZE];
	int fd;

	if (key_paths(cache, key, lockp, dir, NULL) < 0 || (fd = key_lock(lockp, 1, NULL)) < 0)
		return;
	umount_below(dir);
	rm_tree(dir);
	unlink(lockp);
	close(fd);
}

static int has_suffix(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a > b && !strcmp(s + a - b, suffix);
}

/* Under the cache lock: an image nobody holds (shared lock) goes, unless it is new. */
static void sweep_image(const char *path, const char *name)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return;
	if (fstat(fd, &st) == 0 && st.st_mtime < time(NULL) - SWEEP_MIN_AGE_S &&
	    flock(fd, LOCK_EX | LOCK_NB) == 0) {
		log_info("rootfs cache: %s is no longer used, removed", name);
		unlink(path);
	}
	close(fd);
}

static void sweep_locked(const char *cache)
{
	char path[KPATH_SIZE], key[64];
	struct dirent *de;
	DIR *d = opendir(cache);

	while (d && (de = readdir(d))) {
		const char *name = de->d_name;

		if (fmt_path(path, sizeof(path), "%s/%s", cache, name) < 0)
			continue;
		if (!strncmp(name, BUILD_PREFIX, strlen(BUILD_PREFIX))) {
			sweep_key(cache, name + strlen(BUILD_PREFIX));
		} else if (name[0] != '.' && has_suffix(name, LOCK_SUFFIX)) {
			fmt_msg(key, sizeof(key), "%.*s", (int)(strlen(name) - strlen(LOCK_SUFFIX)),
			        name);
			sweep_key(cache, key);
		} else if (name[0] != '.' && has_suffix(name, IMG_SUFFIX)) {
			sweep_image(path, name);
		}
	}
	if (d)
		closedir(d);
}

int rootimg_hold(const char *cache, struct rootimg *img, kerr_t *err)
{
	int lock = cache_lock(cache, err), fd;

	if (lock < 0)
		return -1;
	sweep_locked(cache);
	fd = open(img->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || flock(fd, LOCK_SH) < 0) {
		int e = errno;

		if (fd >= 0)
			close(fd);
		close(lock);
		errno = e;
		return e == ENOENT ? 0 : kerr_sys(err, "open %s", img->path);
	}
	close(lock);
	img->fd = fd;
	return 1;
}

int rootimg_get(const char *cache, char *const *lowers, size_t n, struct rootimg *img, kerr_t *err)
{
	int rc;

	if (rootimg_init(cache, lowers, n, img, err) < 0)
		return -1;
	rc = rootimg_hold(cache, img, err);
	if (rc == 0) {
		if (rootimg_build(cache, lowers, n, img, err) < 0)
			return -1;
		img->built = 1;
		img->build_ms = (double)(mono_ns() - img->t0_ns) / 1e6;
		rc = rootimg_hold(cache, img, err);
		if (rc == 0)
			return kerr_set(err, ENOENT, "rootfs image %s vanished once built",
			                img->path);
	}
	return rc < 0 ? -1 : 0;
}

void rootimg_put(const char *cache, struct rootimg *img)
{
	int lock, fd;

	if (img->fd < 0)
		return;
	lock = cache_lock(cache, NULL);
	close(img->fd);
	img->fd = -1;
	/* The last user out removes it; a builder that found it meanwhile rebuilds it
	 * (rootdisk_built). */
	fd = open(img->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0)
		unlink(img->path);
	if (fd >= 0)
		close(fd);
	if (lock >= 0)
		close(lock);
}

void rootimg_sweep(const char *cache)
{
	int lock = cache_lock(cache, NULL);

	if (lock < 0)
		return;
	sweep_locked(cache);
	close(lock);
}
