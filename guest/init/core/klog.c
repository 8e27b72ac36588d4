#include "core/klog.h"
#include "core/sys.h"

#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/fmt.h"

int klog_level = KLOG_INFO;
static int log_fd = 2;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void klog_set_fd(int fd)
{
	log_fd = fd;
}

int klog_parse_level(const char *s)
{
	for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++)
		if (!strcmp(s, level_names[i]))
			return i;
	return -1;
}

void klog(int level, const char *fmt, ...)
{
	char line[512];
	struct timespec ts;
	size_t n;
	va_list ap;
	int saved = errno;

	if (level > klog_level)
		return;
	sys_clock_gettime(CLOCK_MONOTONIC, &ts);
	n = kfmt(line, sizeof(line), "[%5lu.%06lu] kuasar-init: %s: ", (unsigned long)ts.tv_sec,
	         (unsigned long)ts.tv_nsec / 1000, level_names[level]);
	va_start(ap, fmt);
	n += kvfmt(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* The console may be slow or gone; a log line is never worth blocking PID 1 on retries. */
	(void)!write(log_fd, line, n);
	errno = saved;
}
