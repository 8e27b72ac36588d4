#include "base/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

int fmt_path(char *buf, size_t n, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vsnprintf(buf, n, fmt, ap);
	va_end(ap);
	if (r < 0 || (size_t)r >= n) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

void fmt_msg(char *buf, size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, n, fmt, ap);
	va_end(ap);
}

int signalfd_for(const int *sigs)
{
	sigset_t set;

	sigemptyset(&set);
	for (; *sigs; sigs++)
		sigaddset(&set, *sigs);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -1;
	return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

static int64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t mono_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

int64_t real_ns(void)
{
	return clock_ns(CLOCK_REALTIME);
}

int ms_until(int64_t deadline_ns)
{
	int64_t left;

	if (deadline_ns <= 0)
		return -1;
	left = deadline_ns - mono_ns();
	if (left <= 0)
		return 0;
	return (int)((left + 999999) / 1000000);
}

int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int write_file_atomic(const char *path, const void *data, size_t len, kerr_t *err)
{
	char tmp[4096];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return kerr_sys(err, "create %s", tmp);
	if (write_all(fd, data, len) < 0 || fsync(fd) < 0) {
		kerr_sys(err, "write %s", tmp);
		close(fd);
		unlink(tmp);
		return -1;
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		kerr_sys(err, "rename %s to %s", tmp, path);
		unlink(tmp);
		return -1;
	}
	return 0;
}

int read_fd(int fd, const char *name, char **out, size_t *len, size_t max, kerr_t *err)
{
	_cleanup_free_ char *buf = malloc(max + 1);
	size_t have = 0;

	if (!buf)
		return kerr_set(err, ENOMEM, "read %s: out of memory", name);
	for (;;) {
		ssize_t n = read(fd, buf + have, max + 1 - have);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return kerr_sys(err, "read %s", name);
		if (n == 0)
			break;
		have += (size_t)n;
		if (have > max)
			return kerr_set(err, EFBIG, "read %s: larger than %zu bytes", name, max);
	}
	buf[have] = '\0';
	if (len)
		*len = have;
	*out = buf;
	buf = NULL;
	return 0;
}

int read_file(const char *path, char **out, size_t *len, size_t max, kerr_t *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return kerr_sys(err, "open %s", path);
	return read_fd(fd, path, out, len, max, err);
}

int mkdir_p(const char *path, int mode, kerr_t *err)
{
	char buf[4096];
	size_t n = strlen(path);

	if (n >= sizeof(buf))
		return kerr_set(err, ENAMETOOLONG, "mkdir %s: path too long", path);
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, (mode_t)mode) < 0 && errno != EEXIST)
			return kerr_sys(err, "mkdir %s", buf);
		*p = '/';
	}
	if (mkdir(buf, (mode_t)mode) < 0 && errno != EEXIST)
		return kerr_sys(err, "mkdir %s", buf);
	return 0;
}

int id_valid(const char *id, kerr_t *err)
{
	size_t n = strlen(id);

	if (n == 0 || n > ID_MAX || id[0] == '.')
		return kerr_set(err, EINVAL,
		                "invalid id `%.*s`: 1 to %d characters, no leading dot", ID_MAX + 8,
		                id, ID_MAX);
	for (size_t i = 0; i < n; i++) {
		char c = id[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.'))
			return kerr_set(err, EINVAL, "invalid id `%s`: only [A-Za-z0-9_.-] allowed",
			                id);
	}
	return 0;
}

static int unix_addr(struct sockaddr_un *sa, const char *path, kerr_t *err)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return kerr_set(err, ENAMETOOLONG, "socket path %s is too long", path);
	strcpy(sa->sun_path, path);
	return 0;
}

int unix_connect(const char *path, kerr_t *err)
{
	struct sockaddr_un sa;
	_cleanup_close_ int fd = -1;

	if (unix_addr(&sa, path, err) < 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return kerr_sys(err, "socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return kerr_sys(err, "connect to %s", path);
	return TAKE_FD(fd);
}

int unix_listen(const char *path, kerr_t *err)
{
	struct sockaddr_un sa;
	_cleanup_close_ int fd = -1;

	if (unix_addr(&sa, path, err) < 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return kerr_sys(err, "socket");
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 128) < 0)
		return kerr_sys(err, "listen on %s", path);
	return TAKE_FD(fd);
}

int proc_mem(pid_t pid, struct proc_mem *m, kerr_t *err)
{
	char path[64], *text = NULL, *line, *save = NULL;
	unsigned long long v, pc = 0, pd = 0;

	memset(m, 0, sizeof(*m));
	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", pid);
	if (read_file(path, &text, NULL, 1 << 16, err) < 0)
		return -1;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (sscanf(line, "Rss: %llu", &v) == 1)
			m->rss_kib = v;
		else if (sscanf(line, "Pss: %llu", &v) == 1)
			m->pss_kib = v;
		else if (sscanf(line, "Private_Clean: %llu", &v) == 1)
			pc = v;
		else if (sscanf(line, "Private_Dirty: %llu", &v) == 1)
			pd = v;
	}
	free(text);
	m->uss_kib = pc + pd;
	return 0;
}
