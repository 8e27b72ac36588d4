/* Host error objects: an errno plus a message that gains context on the way up.
 *
 *   if (connect(...) < 0)
 *           return kerr_sys(err, "connect to %s", path);
 *   if (qmp_open(&q, path, err) < 0)
 *           return kerr_wrap(err, "start sandbox `%s`", id);
 *
 * yields "start sandbox `a`: connect to /run/...: No such file or directory".
 *
 * The convention, host and guest alike. A function that can fail returns an int: >= 0 (0,
 * a count, an fd) when it did its job, -1 when it did not. A function declared in a header
 * says why in the kerr_t *err it takes last, and returns the -1 of the kerr_* call that
 * filled it, in one statement; a static helper may leave the reason in errno instead, when
 * its caller turns that into a kerr at once. Never both: a function that fills err does not
 * also leave a message elsewhere, and one that answers "not applicable" as well as "failed"
 * says so with a third value (1 / 0 / -1) documented where it is declared, its reason for
 * "not applicable" in an out parameter named why. Context is added on the way up with
 * kerr_wrap, never by formatting a new message over the old. The RPC edge (a handler, the
 * proxy's client_error) turns err into the caller's status code once. A void function
 * never returns an expression. Resources go with cleanup attributes (_cleanup_free_,
 * _cleanup_close_ and TAKE_FD in base/util.h) in new and touched code; a goto chain only
 * where the order of undoing is the point. The guest's handlers do the same with an RPC
 * code and a message buffer: `return kfail(why, n, RPC_X, "...")` (core/fmt.h). */
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
