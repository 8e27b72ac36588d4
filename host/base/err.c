#include "base/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int kerr_set(kerr_t *err, int errnum, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return -1;
	err->errnum = errnum;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return -1;
}

int kerr_sys(kerr_t *err, const char *fmt, ...)
{
	int saved = errno;
	size_t n;
	va_list ap;

	if (!err)
		return -1;
	err->errnum = saved;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	n = strlen(err->msg);
	snprintf(err->msg + n, sizeof(err->msg) - n, ": %s", strerror(saved));
	errno = saved;
	return -1;
}

int kerr_wrap(kerr_t *err, const char *fmt, ...)
{
	char ctx[512], old[sizeof(err->msg)];
	va_list ap;
	int n;

	if (!err)
		return -1;
	va_start(ap, fmt);
	vsnprintf(ctx, sizeof(ctx), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	/* The message keeps what fits: the context first, then as much of the cause. */
	n = snprintf(err->msg, sizeof(err->msg), "%s: ", ctx);
	if (n >= 0 && (size_t)n < sizeof(err->msg))
		snprintf(err->msg + n, sizeof(err->msg) - (size_t)n, "%.*s",
		         (int)(sizeof(err->msg) - 1 - (size_t)n), old);
	return -1;
}
