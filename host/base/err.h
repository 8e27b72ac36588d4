/* Host error objects: an errno plus a message that gains context on the way up.
 *
 *   if (connect(...) < 0)
 *           return kerr_sys(err, "connect to %s", path);
 *   if (qmp_open(&q, path, err) < 0)
 *           return kerr_wrap(err, "start sandbox `%s`", id);
 *
 * yields "start sandbox `a`: connect to /run/...: No such file or directory". */
#ifndef KUASAR_ERR_H
#define KUASAR_ERR_H

#include <stddef.h>

typedef struct kerr {
	int errnum;
	char msg[1024];
} kerr_t;

/* Each returns -1 so callers can `return kerr_...(...)`. */
int kerr_set(kerr_t *err, int errnum, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Like kerr_set with the current errno appended as text. */
int kerr_sys(kerr_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prepends "context: " to the message already in err. */
int kerr_wrap(kerr_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
