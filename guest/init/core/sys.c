#include "core/sys.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct boot_state boot;

uint64_t mono_now(void)
{
	struct timespec ts;

	sys_clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int boot_read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return (int)n;
}

static int sysctl_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

int sysctl_write(const char *name, const char *value)
{
	char path[128] = "/proc/sys/";
	size_t o = 10, len = strlen(value);
	int fd, ok;

	for (const char *c = name; *c; c++, o++) {
		int sep = *c == '.' || *c == '/';

		if (o + 2 > sizeof(path) || (!sep && !sysctl_char(*c)) ||
		    (sep && (o == 10 || path[o - 1] == '/'))) {
			errno = EINVAL;
			return -1;
		}
		path[o] = sep ? '/' : *c;
	}
	if (o == 10 || path[o - 1] == '/') {
		errno = EINVAL;
		return -1;
	}
	path[o] = 0;
	fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	ok = write(fd, value, len) == (ssize_t)len;
	if (!ok && !errno)
		errno = EIO;
	close(fd);
	return ok ? 0 : -1;
}
