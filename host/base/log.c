#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum log_level level = LOG_INFO;
static char prefix[96];

void log_set_prefix(const char *p)
{
	snprintf(prefix, sizeof(prefix), "[%s]", p);
}

void log_set_level(const char *name)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };

	for (int i = 0; i < 4; i++)
		if (!strcmp(name, names[i]))
			level = (enum log_level)i;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	static const char *const tags[] = { "error", "warn", "info", "debug" };
	struct timespec ts;
	char line[2048];
	va_list ap;

	if (lvl > level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%lld.%03ld kuasar-sandboxer%s: %s: %s\n", (long long)ts.tv_sec,
	        ts.tv_nsec / 1000000, prefix, tags[lvl], line);
}
