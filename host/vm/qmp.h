/* QMP client (json-c): one synchronous command at a time, events skipped. */
#ifndef KUASAR_QMP_H
#define KUASAR_QMP_H

#include <json-c/json.h>
#include <stdint.h>

#include "base/err.h"

struct qmp {
	int fd;
	char buf[65536];
	size_t have;
};

/* Takes a connected fd, reads the greeting and negotiates capabilities before deadline_ns.
 * The fd is owned (and on failure closed) by q. */
int qmp_open(struct qmp *q, int fd, int64_t deadline_ns, kerr_t *err);
void qmp_close(struct qmp *q);
/* Runs cmd with optional args (ownership taken); *ret gets the "return" value if asked. */
int qmp_call(struct qmp *q, const char *cmd, json_object *args, json_object **ret,
             int64_t deadline_ns, kerr_t *err);
/* The same, passing fd along (SCM_RIGHTS) for commands such as getfd. */
int qmp_call_fd(struct qmp *q, const char *cmd, json_object *args, int fd, json_object **ret,
                int64_t deadline_ns, kerr_t *err);

#endif
