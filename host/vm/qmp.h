/* QMP client (json-c). Every command carries an "id"; QEMU's answer is matched to it, and
 * events go to on_event, so one connection serves both ways of waiting:
 *
 *   - on an event loop (qmp_attach): qmp_send queues a command and returns; its callback runs
 *     from the loop with the answer, QEMU's error class, or a timeout of its own. The loop
 *     never waits on QEMU.
 *   - before a loop exists (launching, restoring, saving a template: nothing else is served
 *     yet): qmp_call waits for its own answer, handing any other answer and event on.
 *
 * A connection that breaks (EOF, a malformed line) fails every command in flight with
 * ECONNRESET or EPROTO and stays closed. */
#ifndef KUASAR_QMP_H
#define KUASAR_QMP_H

#include <json-c/json.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/loop.h"

/* What a command came to. ok: ret is QEMU's "return" (borrowed for the callback's length).
 * Otherwise err says why and class is QEMU's error class ("GenericError", "DeviceNotFound",
 * ...), or "" when QEMU never answered (timeout, connection lost). */
struct qmp_reply {
	int ok;
	json_object *ret;
	const char *class;
	kerr_t err;
};

typedef void (*qmp_done_fn)(void *arg, struct qmp_reply *r);
typedef void (*qmp_event_fn)(void *arg, const char *event, json_object *data);

struct qmp_cmd;

struct qmp {
	int fd;
	char buf[65536];
	size_t have;
	struct buf out;       /* what the socket has not taken yet */
	uint64_t seq;         /* the last id sent */
	struct qmp_cmd *cmds; /* in flight, oldest first */
	unsigned n_cmds;
	struct loop *loop; /* NULL until qmp_attach */
	struct loop_watch w;
	struct loop_timer timer; /* the earliest deadline in flight */
	qmp_event_fn on_event;
	void *event_arg;
	int lent; /* qmp_lend: another process drives it; nothing is sent or read here */
};

#define QMP_MAX_IN_FLIGHT 64

/* Takes a connected fd, reads the greeting and negotiates capabilities before deadline_ns.
 * The fd is owned (and on failure closed) by q. */
int qmp_open(struct qmp *q, int fd, int64_t deadline_ns, kerr_t *err);
/* Closes the connection; commands in flight end with ECANCELED. */
void qmp_close(struct qmp *q);
/* Serves q from loop from now on: answers and events are read as they come. */
int qmp_attach(struct qmp *q, struct loop *loop, kerr_t *err);
/* Lends the connection to a child process that drives it in place (a snapshot): off the
 * loop, and every qmp_send refused with EBUSY until qmp_take_back. EBUSY while commands are
 * in flight or unsent. The child clears lent and loop in its copy. */
int qmp_lend(struct qmp *q, kerr_t *err);
/* Back on loop once the child has exited; what it left unread is read here. */
int qmp_take_back(struct qmp *q, struct loop *loop, kerr_t *err);
/* Queues cmd with optional args (ownership taken); fn(arg, reply) runs from the loop once,
 * when QEMU answers or after timeout_ms. -1 only when it cannot be sent at all (closed, too
 * many in flight); fn is then not called. */
int qmp_send(struct qmp *q, const char *cmd, json_object *args, int timeout_ms, qmp_done_fn fn,
             void *arg, kerr_t *err);
/* Runs cmd and waits for its answer (only where no loop is being served); *ret gets the
 * "return" value if asked. */
int qmp_call(struct qmp *q, const char *cmd, json_object *args, json_object **ret,
             int64_t deadline_ns, kerr_t *err);
/* The same, passing fd along (SCM_RIGHTS) for commands such as getfd. */
int qmp_call_fd(struct qmp *q, const char *cmd, json_object *args, int fd, json_object **ret,
                int64_t deadline_ns, kerr_t *err);

#endif
