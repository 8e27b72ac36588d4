/* The task proxy's inside, shared by its files and by nothing else: a client connection
 * (taskproxy.c: framing, streams, forwarding), what is done to a Task request before the
 * guest sees it (taskproxy_create.c), and a Create held while its root disk is built,
 * plugged and mounted (taskproxy_disk.c). */
#ifndef KUASAR_TASKPROXY_INT_H
#define KUASAR_TASKPROXY_INT_H

#include <stdint.h>

#include "base/buf.h"
#include "base/phases.h"
#include "proxy/taskproxy.h"
#include "rpc/ttrpc_frame.h"
#include "ttrpc.pb-c.h"

struct rootdisk;

struct tp_stream {
	uint32_t sid, gid;
	int bidi;                        /* opened with REMOTE_OPEN: a stream, not a unary call */
	int is_wait;                     /* a Task Wait (answered with an exit if the VM goes) */
	int client_closed, guest_closed; /* a stream ends when both sent an empty close */
	char cleanup[ID_MAX + 1]; /* Delete of this container: remove its bundle on success */
	char undo[ID_MAX + 1];    /* Create of this container: remove its bundle if it fails */
	/* A Create with a root disk: the rewritten request waits here until the guest has
	 * mounted the disk. */
	uint8_t *held;
	uint32_t held_len;
	uint8_t held_flags;
	unsigned target;
	int64_t mount_deadline_ns;
	struct loop_timer retry;
	int building; /* its image is being built: build_w watches the builder */
	int plugging; /* its disk is being hot-added (rootdisks' on_plugged ends it) */
	struct loop_watch build_w;
	/* The call's bound (callbound.h), and for cached kinds what it asked. */
	enum call_kind kind;
	struct loop_timer bound;
	char method[16];
	uint8_t *key;
	uint32_t key_len;
	struct tp_conn *c;
	struct tp_stream *next;
	/* A container's Create or Start: where its time went, logged at the guest's answer. */
	struct phases *ph;
	char ph_what[ID_MAX + 24];
};

struct tp_conn {
	struct loop_watch w;
	struct taskproxy *tp;
	struct ttrpc_reader rd;
	uint32_t last_sid;
	unsigned n_streams;
	struct tp_stream *streams;
	struct buf out;
	int dead;
	uint64_t serial; /* taskproxy_answer finds it by this */
	struct tp_conn *next;
};

/* What the proxy does to a Task request before the guest sees it. */
struct intercept {
	uint8_t *payload; /* Create: the rewritten request (malloc'd), else NULL */
	size_t len;
	char cleanup[ID_MAX + 1]; /* Delete: whose bundle goes once it succeeds */
	char created[ID_MAX + 1]; /* Create: whose bundle was made */
	int target;               /* Create: its root disk's SCSI target, or -1 */
};

/* taskproxy.c */
int tp_is_task_service(const char *s);
/* Answers a client stream with an error status (the guest never saw it). */
void tp_client_error(struct tp_conn *c, uint32_t sid, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
struct tp_stream *tp_stream_find(struct tp_conn *c, uint32_t sid);
void tp_stream_drop(struct tp_conn *c, struct tp_stream *s);
/* The stream ends toward the guest too: its route closed, then the stream dropped. */
void tp_stream_end(struct tp_conn *c, struct tp_stream *s);
/* Closes the connection if a send found it dead; only from outside its own handler. */
void tp_conn_reap(struct tp_conn *c);
/* A guest frame for one of c's streams (the route's glink callback). */
void tp_from_guest(void *owner, uintptr_t tag, const struct ttrpc_header *gh, const uint8_t *data);
/* -1 with the client answered and the stream dropped when the link is down. */
int tp_forward(struct tp_conn *c, struct tp_stream *s, uint8_t type, uint8_t flags,
               const uint8_t *data, uint32_t len);

/* taskproxy_create.c */
/* -1 with the client answered when the request is refused. */
int tp_intercept(struct tp_conn *c, uint32_t sid, const Ttrpc__Request *req, struct intercept *in);
/* The rewritten Create, keeping the client's metadata and timeout: forwarded, or held until
 * its root disk is mounted. -1 when it never reached the guest (the client answered). */
int tp_forward_rewritten(struct tp_conn *c, struct tp_stream *s, const Ttrpc__Request *req,
                         uint8_t flags, const struct intercept *in);

/* taskproxy_disk.c */
/* Container id is done with its root disk, if it has one: the guest unmounts it, then it
 * is unplugged and its image let go. */
void tp_disk_release(struct taskproxy *tp, const char *id);
/* A Create whose root disk the guest must mount first: the request (buf, taken) waits in
 * the stream while the disk's image is built if it must be, then plugged and mounted. */
void tp_disk_hold(struct tp_conn *c, struct tp_stream *s, uint8_t flags, uint8_t *buf, uint32_t len,
                  unsigned target);
/* What a held Create owns goes with its stream (a Create the guest never saw). */
void tp_disk_stream_free(struct taskproxy *tp, struct tp_stream *s);
/* rootdisks' on_plugged: the Create waiting for d goes on, or fails. arg is the taskproxy. */
void tp_disk_on_plugged(void *arg, struct rootdisk *d, const kerr_t *err);

#endif
