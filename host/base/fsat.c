#include "base/fsat.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/util.h"

int open_beneath(int dirfd, const char *path, int flags, mode_t mode)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC | O_NOFOLLOW),
		.mode = (flags & O_CREAT) ? mode : 0,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};

	return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

static int mount_id_at(int dirfd, const char *name, int flags, uint64_t *id)
{
	struct statx stx;

	if (statx(dirfd, name, flags | AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_MNT_ID, &stx) <
	    0)
		return -1;
	if (!(stx.stx_mask & STATX_MNT_ID))
		return errno = ENOTSUP, -1;
	*id = stx.stx_mnt_id;
	return 0;
}

int fd_mount_id(int fd, uint64_t *id)
{
	return mount_id_at(fd, "", AT_EMPTY_PATH, id);
}

int umount_fd(int fd)
{
	char path[32];

	/* The magic link is followed on purpose: it is our own fd, and it names the mount's
	 * root however the guest renamed the directories above it. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return umount2(path, MNT_DETACH);
}

int open_mount_root(int dirfd, const char *name)
{
	uint64_t parent, mine;
	int fd = open_beneath(dirfd, name, O_PATH | O_DIRECTORY, 0);

	if (fd < 0)
		return -1;
	if (fd_mount_id(dirfd, &parent) < 0 || fd_mount_id(fd, &mine) < 0) {
		close(fd);
		return -1;
	}
	if (parent == mine) {
		close(fd);
		return errno = EINVAL, -1;
	}
	return fd;
}

/* Empties the directory open as fd; subdirectories on another mount are refused (EBUSY),
 * never entered: a bind mount of somebody's data must not be emptied through us. */
static int rm_contents(int fd, uint64_t mnt, int depth)
{
	DIR *d = fdopendir(fd);
	struct dirent *e;
	int rc = 0;

	if (!d) {
		close(fd);
		return -1;
	}
	while ((e = readdir(d))) {
		uint64_t id;
		int sub;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) == 0 || errno == ENOENT)
			continue;
		if (errno != EISDIR && errno != EPERM) {
			rc = -1;
			continue;
		}
		if (depth > 64 || mount_id_at(dirfd(d), e->d_name, 0, &id) < 0 || id != mnt) {
			errno = EBUSY;
			rc = -1;
			continue;
		}
		sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0 || rm_contents(sub, mnt, depth + 1) < 0 ||
		    unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR) < 0)
			rc = -1;
	}
	closedir(d);
	return rc;
}

int rm_tree_at(int dirfd, const char *name)
{
	uint64_t mnt;
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		/* A link or a file where the directory was: it goes itself, nothing behind it. */
		if (errno == ELOOP || errno == ENOTDIR)
			return unlinkat(dirfd, name, 0) < 0 && errno != ENOENT ? -1 : 0;
		return -1;
	}
	if (fd_mount_id(fd, &mnt) < 0) {
		close(fd);
		return -1;
	}
	if (rm_contents(fd, mnt, 0) < 0)
		return -1;
	return unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT ? -1 : 0;
}

int rm_tree(const char *path)
{
	return rm_tree_at(AT_FDCWD, path);
}

struct mnt {
	uint64_t id;
	char *rel; /* below the directory */
};

/* The mounts below dir in mountinfo, oldest first (at most max). */
static size_t mounts_below(const char *dir, struct mnt *out, size_t max)
{
	_cleanup_free_ char *info = NULL;
	char *line, *save = NULL;
	size_t len = strlen(dir), n = 0;

	if (read_file("/proc/self/mountinfo", &info, NULL, 4 << 20, NULL) < 0)
		return 0;
	for (line = strtok_r(info, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		unsigned long long id;
		char mp[4096];

		/* fields: id parent major:minor root mountpoint ... */
		if (sscanf(line, "%llu %*s %*s %*s %4095s", &id, mp) == 2 &&
		    !strncmp(mp, dir, len) && mp[len] == '/' && n < max) {
			out[n].id = id;
			out[n].rel = strdup(mp + len + 1);
			if (out[n].rel)
				n++;
		}
	}
	return n;
}

void umount_below(const char *dir)
{
	struct mnt m[256];
	size_t n = mounts_below(dir, m, sizeof(m) / sizeof(m[0]));
	_cleanup_close_ int dfd = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	while (n--) {
		uint64_t id = 0;
		int fd = dfd < 0 ? -1 : open_beneath(dfd, m[n].rel, O_PATH, 0);

		if (fd >= 0 && fd_mount_id(fd, &id) == 0 && id == m[n].id) {
			if (umount_fd(fd) < 0)
				fprintf(stderr, "kuasar: warning: umount %s/%s: %s\n", dir,
				        m[n].rel, strerror(errno));
		} else {
			fprintf(stderr,
			        "kuasar: warning: mount %llu at %s/%s is not where mountinfo says "
			        "(moved or replaced below it): left alone\n",
			        (unsigned long long)m[n].id, dir, m[n].rel);
		}
		if (fd >= 0)
			close(fd);
		free(m[n].rel);
	}
}

int read_file_beneath(int dirfd, const char *path, char **out, size_t *len, size_t max, kerr_t *err)
{
	_cleanup_close_ int fd = open_beneath(dirfd, path, O_RDONLY | O_NONBLOCK, 0);
	struct stat st;

	if (fd < 0)
		return kerr_sys(err, "open %s", path);
	if (fstat(fd, &st) < 0)
		return kerr_sys(err, "stat %s", path);
	if (!S_ISREG(st.st_mode))
		return kerr_set(err, EINVAL, "%s is not a regular file", path);
	return read_fd(fd, path, out, len, max, err);
}

int write_file_at(int dirfd, const char *name, const void *data, size_t len, kerr_t *err)
{
	char tmp[512];
	int fd;

	if (fmt_path(tmp, sizeof(tmp), ".%s.tmp", name) < 0)
		return kerr_sys(err, "%s", name);
	unlinkat(dirfd, tmp, 0); /* whatever was left there, a link included */
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return kerr_sys(err, "create %s", tmp);
	if (write_all(fd, data, len) < 0 || fsync(fd) < 0) {
		kerr_sys(err, "write %s", tmp);
		close(fd);
		unlinkat(dirfd, tmp, 0);
		return -1;
	}
	close(fd);
	if (renameat(dirfd, tmp, dirfd, name) < 0) {
		kerr_sys(err, "rename %s to %s", tmp, name);
		unlinkat(dirfd, tmp, 0);
		return -1;
	}
	return 0;
}
