#include "proxy/taskproxy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "google/rpc/status.pb-c.h"
#include "proxy/bundle.h"
#include "proxy/rootdisk.h"
#include "proxy/task_gone.h"
#include "rpc/agent.h"
#include "rpc/ttrpc_client.h"
#include "task.pb-c.h"
#include "ttrpc.pb-c.h"

/* A client holding more unread output than this is dropped (streams are credit-bounded, so
 * only a client that stopped reading gets here). */
#define CLIENT_MAX_PENDING (8u << 20)
#define MAX_STREAMS_PER_CONN 4096
/* The guest sees a hot-added disk once its SCSI probe has run: MountShare answers NOT_FOUND
 * until then and is asked again, this often, for this long. */
#define DISK_RETRY_MS 2
#define DISK_WAIT_NS (5 * 1000000000LL)

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
	struct tp_conn *next;
};

struct tp_ctr {
	char id[ID_MAX + 1];
	struct tp_ctr *next;
};

static int ctr_known(const char *id, void *arg)
{
	const struct taskproxy *tp = arg;

	for (const struct tp_ctr *k = tp->ctrs; k; k = k->next)
		if (!strcmp(k->id, id))
			return 1;
	return 0;
}

static void ctr_add(struct taskproxy *tp, const char *id)
{
	struct tp_ctr *k;

	if (ctr_known(id, tp) || !(k = calloc(1, sizeof(*k))))
		return;
	snprintf(k->id, sizeof(k->id), "%s", id);
	k->next = tp->ctrs;
	tp->ctrs = k;
	tp->n_ctrs++;
}

static void ctr_del(struct taskproxy *tp, const char *id)
{
	for (struct tp_ctr **pp = &tp->ctrs; *pp; pp = &(*pp)->next) {
		if (!strcmp((*pp)->id, id)) {
			struct tp_ctr *k = *pp;
			struct tp_tomb *t = &tp->tombs[tp->next_tomb++ % TP_TOMBS];

			snprintf(t->id, sizeof(t->id), "%s", id);
			t->ns = mono_ns();
			*pp = k->next;
			free(k);
			tp->n_ctrs--;
			return;
		}
	}
}

/* A Create of id in flight: the guest may speak of the container before it answers. */
static int create_in_flight(const struct taskproxy *tp, const char *id)
{
	for (const struct tp_conn *c = tp->conns; c; c = c->next)
		for (const struct tp_stream *s = c->streams; s; s = s->next)
			if (!strcmp(s->undo, id))
				return 1;
	return 0;
}

int taskproxy_owns(const char *id, void *arg)
{
	const struct taskproxy *tp = arg;
	int64_t now = mono_ns();

	if (!id[0])
		return 0;
	if (ctr_known(id, arg) || create_in_flight(tp, id))
		return 1;
	for (unsigned i = 0; i < TP_TOMBS; i++)
		if (!strcmp(tp->tombs[i].id, id) && now - tp->tombs[i].ns < TP_TOMB_NS)
			return 1;
	return 0;
}

static const char *const task_services[] = { "containerd.task.v3.Task", "containerd.task.v2.Task" };

static int is_task_service(const char *s)
{
	return !strcmp(s, task_services[0]) || !strcmp(s, task_services[1]);
}

static void conn_close(struct tp_conn *c);

static void client_send(struct tp_conn *c, const struct ttrpc_header *h, const uint8_t *data)
{
	uint8_t hdr[TTRPC_HEADER_LEN];

	if (c->dead)
		return;
	ttrpc_header_encode(hdr, h);
	if (buf_append(&c->out, hdr, sizeof(hdr)) < 0 ||
	    (h->length && buf_append(&c->out, data, h->length) < 0) ||
	    buf_pending(&c->out) > CLIENT_MAX_PENDING) {
		c->dead = 1;
		return;
	}
	if (buf_flush(&c->out, c->w.fd) < 0) {
		c->dead = 1;
		return;
	}
	loop_mod(c->tp->loop, &c->w, EPOLLIN | (buf_pending(&c->out) ? EPOLLOUT : 0));
}

/* Answers a client stream with an error status (the guest never saw it). */
static void client_error(struct tp_conn *c, uint32_t sid, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void client_error(struct tp_conn *c, uint32_t sid, int code, const char *fmt, ...)
{
	Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
	Ttrpc__Response r = TTRPC__RESPONSE__INIT;
	char msg[1024];
	uint8_t buf[1200];
	struct ttrpc_header h = { 0, sid, TTRPC_RESPONSE, 0 };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	st.code = code;
	st.message = msg;
	r.status = &st;
	h.length = (uint32_t)ttrpc__response__pack(&r, buf);
	client_send(c, &h, buf);
}

/* Answers a client stream with an OK response carrying payload. */
static void client_reply(struct tp_conn *c, uint32_t sid, const uint8_t *payload, size_t len)
{
	Ttrpc__Response r = TTRPC__RESPONSE__INIT;
	struct ttrpc_header h = { 0, sid, TTRPC_RESPONSE, 0 };
	uint8_t *buf;

	r.payload.data = (uint8_t *)payload;
	r.payload.len = len;
	h.length = (uint32_t)ttrpc__response__get_packed_size(&r);
	buf = malloc(h.length ? h.length : 1);
	if (!buf) {
		c->dead = 1;
		return;
	}
	ttrpc__response__pack(&r, buf);
	client_send(c, &h, buf);
	free(buf);
}

static void gone_setup(const struct taskproxy *tp, struct task_gone *g)
{
	g->exited_ns = tp->gone_ns;
	g->shim_pid = (uint32_t)getpid();
	g->known = ctr_known;
	g->arg = (void *)tp;
}

static void answer_gone(struct tp_conn *c, uint32_t sid, const struct task_gone_answer *a)
{
	if (a->code)
		client_error(c, sid, a->code, "%s", a->msg);
	else
		client_reply(c, sid, a->payload, a->len);
}

/* A request after the VM went: answered here, the guest is gone. */
static void on_request_gone(struct tp_conn *c, uint32_t sid, const Ttrpc__Request *req)
{
	struct taskproxy *tp = c->tp;
	struct task_gone_answer a;
	struct task_gone g;

	if (!is_task_service(req->service)) {
		client_error(c, sid, RPC_UNAVAILABLE, "%s: the sandbox's VM has exited",
		             req->service);
		return;
	}
	gone_setup(tp, &g);
	task_gone_answer(&g, req->method, req->payload.data, req->payload.len, &a);
	answer_gone(c, sid, &a);
	free(a.payload);
	if (a.deleted[0]) {
		ctr_del(tp, a.deleted);
		if (!tp->n_ctrs && tp->on_idle)
			tp->on_idle(tp, tp->arg);
	}
}

static struct tp_stream *stream_find(struct tp_conn *c, uint32_t sid)
{
	for (struct tp_stream *s = c->streams; s; s = s->next)
		if (s->sid == sid)
			return s;
	return NULL;
}

/* ---- root disks ---- */

/* MountShare "erofs" for a root disk, its answer to fn. */
static int guest_mount(struct taskproxy *tp, unsigned target, int unmount, glink_frame_fn fn,
                       void *owner, uintptr_t tag)
{
	Kuasar__Sandbox__V1__MountShareRequest req = KUASAR__SANDBOX__V1__MOUNT_SHARE_REQUEST__INIT;
	uint8_t buf[64];
	char t[16];
	uint32_t gid;
	size_t n;

	snprintf(t, sizeof(t), "%u", target);
	req.tag = t;
	req.fstype = "erofs";
	req.unmount = unmount;
	n = kuasar__sandbox__v1__mount_share_request__pack(&req, buf);
	gid = glink_open(tp->link, fn, owner, tag);
	if (!gid)
		return -1;
	if (glink_request(tp->link, gid, 0, AGENT_SANDBOX_SERVICE, "MountShare", buf, n) < 0) {
		glink_close(tp->link, gid);
		return -1;
	}
	return 0;
}

/* The guest has let go of the disk (or could not say): it leaves the VM. */
static void on_unmounted(void *owner, uintptr_t tag, const struct ttrpc_header *h,
                         const uint8_t *data)
{
	struct taskproxy *tp = owner;
	struct rootdisk *d = rootdisk_find_target(tp->disks, (unsigned)tag);

	if (d && d->releasing && !d->unplugging)
		rootdisk_detach(tp->disks, d, !tp->gone);
}

/* Container id is done with its root disk, if it has one: the guest unmounts it, then it
 * is unplugged and its image let go. */
static void disk_release(struct taskproxy *tp, const char *id)
{
	struct rootdisk *d = tp->disks && id[0] ? rootdisk_find(tp->disks, id) : NULL;

	if (!d)
		return;
	d->releasing = 1;
	if (tp->gone || !d->plugged ||
	    guest_mount(tp, d->target, 1, on_unmounted, tp, d->target) < 0)
		rootdisk_detach(tp->disks, d, !tp->gone);
}

/* A stream goes; a Create still waiting for its root disk was never seen by the guest, so
 * what it made goes too. */
static void stream_free(struct taskproxy *tp, struct tp_stream *s)
{
	loop_timer_cancel(tp->loop, &s->bound);
	free(s->key);
	if (s->building) {
		loop_del(tp->loop, &s->build_w);
		close(s->build_w.fd);
	}
	if (s->held) {
		loop_timer_cancel(tp->loop, &s->retry);
		free(s->held);
		bundle_remove(&tp->bundles, s->undo);
		disk_release(tp, s->undo);
	}
	free(s);
}

static void stream_drop(struct tp_conn *c, struct tp_stream *s)
{
	for (struct tp_stream **pp = &c->streams; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			c->n_streams--;
			stream_free(c->tp, s);
			return;
		}
	}
}

static int response_ok(const uint8_t *data, size_t len)
{
	Ttrpc__Response *r = ttrpc__response__unpack(NULL, len, data);
	int ok = r && (!r->status || r->status->code == 0);

	if (r)
		ttrpc__response__free_unpacked(r, NULL);
	return ok;
}

/* A guest frame for one of this client's streams. */
static void from_guest(void *owner, uintptr_t tag, const struct ttrpc_header *gh,
                       const uint8_t *data)
{
	struct tp_conn *c = owner;
	struct tp_stream *s = stream_find(c, (uint32_t)tag);
	struct ttrpc_header h = *gh;

	if (!s)
		return;
	log_context("a guest frame (type %u) for client stream %u", gh->type, s->sid);
	h.stream = s->sid;
	if (gh->type == TTRPC_RESPONSE) {
		/* Only Create and Delete answers are looked into, and those that may be given
		 * again for a late guest are kept; the rest pass through. */
		int ok = (s->cleanup[0] || s->undo[0] || s->kind == CALL_CACHED) &&
		         response_ok(data, gh->length);

		if (s->kind == CALL_CACHED && ok)
			answers_put(&c->tp->answers, s->method, s->key, s->key_len, data,
			            gh->length, mono_ns());
		if (s->cleanup[0] && ok) {
			bundle_remove(&c->tp->bundles, s->cleanup);
			disk_release(c->tp, s->cleanup);
			ctr_del(c->tp, s->cleanup);
		}
		if (s->undo[0] && !ok) {
			bundle_remove(&c->tp->bundles, s->undo);
			disk_release(c->tp, s->undo);
		} else if (s->undo[0]) {
			ctr_add(c->tp, s->undo);
		}
		stream_drop(c, s);
	} else if (gh->type == TTRPC_DATA && (gh->flags & TTRPC_FLAG_REMOTE_CLOSED)) {
		s->guest_closed = 1;
		if (s->client_closed) {
			glink_close(c->tp->link, s->gid);
			stream_drop(c, s);
		}
	}
	client_send(c, &h, data);
	if (c->dead)
		conn_close(c);
}

static int forward(struct tp_conn *c, struct tp_stream *s, uint8_t type, uint8_t flags,
                   const uint8_t *data, uint32_t len)
{
	if (glink_send(c->tp->link, s->gid, type, flags, data, len) < 0) {
		client_error(c, s->sid, RPC_UNAVAILABLE, "the sandbox's guest link is down");
		glink_close(c->tp->link, s->gid);
		stream_drop(c, s);
		return -1;
	}
	return 0;
}

static void note_namespace(struct tp_conn *c, const Ttrpc__Request *req)
{
	for (size_t i = 0; i < req->n_metadata; i++) {
		const Ttrpc__KeyValue *kv = req->metadata[i];

		if (kv->key && kv->value && !strcmp(kv->key, "containerd-namespace-ttrpc") &&
		    strlen(kv->value) < sizeof(c->tp->ns) && strcmp(c->tp->ns, kv->value)) {
			snprintf(c->tp->ns, sizeof(c->tp->ns), "%s", kv->value);
			if (c->tp->on_ns)
				c->tp->on_ns(c->tp, c->tp->arg);
		}
	}
}

/* stdio must be streams served on this socket (io_type = "streaming"): the guest cannot
 * open the host's FIFOs or log files. */
static int check_stdio(const char *const uri[3], char *why, size_t n)
{
	static const char *const names[3] = { "stdin", "stdout", "stderr" };

	for (int i = 0; i < 3; i++) {
		if (uri[i] && uri[i][0] && !strstr(uri[i], "streaming_id=")) {
			snprintf(why, n,
			         "%s `%s` is not a streaming URI: configure the runtime with "
			         "io_type = \"streaming\"",
			         names[i], uri[i]);
			return -1;
		}
	}
	return 0;
}

/* With rootfs = "block": the container's layers as a disk on the VM, when they can be one
 * (*target set, groot the guest's path for it); -1 with the client answered on error. */
static int root_disk(struct tp_conn *c, uint32_t sid,
                     const Containerd__Task__V3__CreateTaskRequest *cr, int *target, char *groot,
                     size_t n)
{
	struct rootdisk *d = NULL;
	char why[300], **lowers;
	size_t nl;
	kerr_t err;
	int rc;

	if (id_valid(cr->id, &err) < 0) {
		client_error(c, sid, RPC_INVALID_ARGUMENT, "Create: %s", err.msg);
		return -1;
	}
	rc = rootdisk_lowers(cr->rootfs, cr->n_rootfs, &lowers, &nl, why, sizeof(why), &err);
	if (rc == 0) {
		log_info("Create %s: root filesystem over the share: %s", cr->id, why);
		return 0;
	}
	if (rc > 0)
		rc = rootdisk_reserve(c->tp->disks, cr->id, lowers, nl, &d, &err);
	rootdisk_free_lowers(lowers, nl);
	if (rc < 0) {
		client_error(c, sid,
		             err.errnum == EEXIST   ? RPC_ALREADY_EXISTS
		             : err.errnum == EINVAL ? RPC_INVALID_ARGUMENT
		                                    : RPC_FAILED_PRECONDITION,
		             "Create %s: root disk: %s", cr->id, err.msg);
		return -1;
	}
	if (d->build_pid <= 0)
		log_info("Create %s: root disk on SCSI target %u, %s (cached)", cr->id, d->target,
		         d->img.path);
	else
		log_info("Create %s: root disk on SCSI target %u: building %s from %zu layers",
		         cr->id, d->target, d->img.path, nl);
	*target = (int)d->target;
	snprintf(groot, n, GUEST_ROOT_DISK, d->target);
	return 0;
}

/* Task.Create: prepare the bundle in the share and point the request at it. Returns the
 * new payload (malloc'd) or NULL with the client already answered. */
static uint8_t *rewrite_create(struct tp_conn *c, uint32_t sid, const Ttrpc__Request *req,
                               size_t *out_len, char *created, size_t created_len, int *target)
{
	Containerd__Task__V3__CreateTaskRequest *cr;
	char gbundle[512], why[600], groot[64];
	uint8_t *out = NULL;
	char *old_bundle;
	size_t n_rootfs;
	Containerd__Types__Mount **rootfs;
	kerr_t err;

	cr = containerd__task__v3__create_task_request__unpack(NULL, req->payload.len,
	                                                       req->payload.data);
	if (!cr) {
		client_error(c, sid, RPC_INVALID_ARGUMENT, "Create: malformed CreateTaskRequest");
		return NULL;
	}
	if (check_stdio((const char *const[]){ cr->stdin, cr->stdout, cr->stderr }, why,
	                sizeof(why)) < 0) {
		client_error(c, sid, RPC_INVALID_ARGUMENT, "Create %s: %s", cr->id, why);
		goto out;
	}
	if (c->tp->disks && root_disk(c, sid, cr, target, groot, sizeof(groot)) < 0)
		goto out;
	if (bundle_prepare(&c->tp->bundles, cr->id, cr->bundle, cr->rootfs, cr->n_rootfs,
	                   *target >= 0 ? groot : NULL, c->tp->hostname, gbundle, sizeof(gbundle),
	                   &err) < 0) {
		client_error(c, sid,
		             err.errnum == EEXIST   ? RPC_ALREADY_EXISTS
		             : err.errnum == EINVAL ? RPC_INVALID_ARGUMENT
		                                    : RPC_FAILED_PRECONDITION,
		             "Create %s: %s", cr->id, err.msg);
		if (*target >= 0)
			disk_release(c->tp, cr->id);
		goto out;
	}
	old_bundle = cr->bundle;
	rootfs = cr->rootfs;
	n_rootfs = cr->n_rootfs;
	cr->bundle = gbundle;
	cr->rootfs = NULL;
	cr->n_rootfs = 0;
	*out_len = containerd__task__v3__create_task_request__get_packed_size(cr);
	out = malloc(*out_len ? *out_len : 1);
	if (out) {
		containerd__task__v3__create_task_request__pack(cr, out);
		snprintf(created, created_len, "%s", cr->id);
	} else
		client_error(c, sid, RPC_RESOURCE_EXHAUSTED, "Create: out of memory");
	cr->bundle = old_bundle;
	cr->rootfs = rootfs;
	cr->n_rootfs = n_rootfs;
	if (!out) {
		bundle_remove(&c->tp->bundles, cr->id);
		disk_release(c->tp, cr->id);
	}
out:
	containerd__task__v3__create_task_request__free_unpacked(cr, NULL);
	return out;
}

static int check_exec(struct tp_conn *c, uint32_t sid, const Ttrpc__Request *req)
{
	Containerd__Task__V3__ExecProcessRequest *er;
	char why[600];
	int rc = 0;

	er = containerd__task__v3__exec_process_request__unpack(NULL, req->payload.len,
	                                                        req->payload.data);
	if (!er) {
		client_error(c, sid, RPC_INVALID_ARGUMENT, "Exec: malformed ExecProcessRequest");
		return -1;
	}
	if (check_stdio((const char *const[]){ er->stdin, er->stdout, er->stderr }, why,
	                sizeof(why)) < 0) {
		client_error(c, sid, RPC_INVALID_ARGUMENT, "Exec %s/%s: %s", er->id, er->exec_id,
		             why);
		rc = -1;
	}
	containerd__task__v3__exec_process_request__free_unpacked(er, NULL);
	return rc;
}

static void delete_target(const Ttrpc__Request *req, char *id, size_t n)
{
	Containerd__Task__V3__DeleteRequest *dr;

	dr =
	    containerd__task__v3__delete_request__unpack(NULL, req->payload.len, req->payload.data);
	if (!dr)
		return;
	if ((!dr->exec_id || !dr->exec_id[0]) && dr->id && dr->id[0] && id_valid(dr->id, NULL) == 0)
		snprintf(id, n, "%s", dr->id);
	containerd__task__v3__delete_request__free_unpacked(dr, NULL);
}

static void on_mounted(void *owner, uintptr_t tag, const struct ttrpc_header *h,
                       const uint8_t *data);

static int ask_mount(struct tp_conn *c, struct tp_stream *s)
{
	return guest_mount(c->tp, s->target, 0, on_mounted, c, s->sid);
}

static void mount_retry(struct loop_timer *t)
{
	struct tp_stream *s = container_of(t, struct tp_stream, retry);
	struct tp_conn *c = s->c;

	if (ask_mount(c, s) < 0) {
		client_error(c, s->sid, RPC_UNAVAILABLE, "the sandbox's guest link is down");
		glink_close(c->tp->link, s->gid);
		stream_drop(c, s);
		if (c->dead)
			conn_close(c);
	}
}

/* The guest's answer to mounting a Create's root disk: not there yet (asked again), mounted
 * where the bundle says (the Create goes on), or an error for the client. */
/* The guest's MountShare answer for s's root disk: 0 when it is mounted where asked, else
 * the error code with msg. */
static int mount_answer(const struct tp_stream *s, const struct ttrpc_header *h,
                        const uint8_t *data, char *msg, size_t n)
{
	Ttrpc__Response *r = ttrpc__response__unpack(NULL, h->length, data);
	Kuasar__Sandbox__V1__MountShareResponse *mr = NULL;
	char want[64];
	int code = RPC_INTERNAL;

	snprintf(msg, n, "malformed answer");
	if (r && r->status && r->status->code) {
		code = r->status->code;
		snprintf(msg, n, "%s", r->status->message ? r->status->message : "");
	} else if (r) {
		mr = kuasar__sandbox__v1__mount_share_response__unpack(NULL, r->payload.len,
		                                                       r->payload.data);
		snprintf(want, sizeof(want), GUEST_ROOT_DISK, s->target);
		code = mr && mr->mountpoint && !strcmp(mr->mountpoint, want) ? 0 : RPC_INTERNAL;
		snprintf(msg, n, "mounted on `%s`, not %s",
		         mr && mr->mountpoint ? mr->mountpoint : "", want);
	}
	if (mr)
		kuasar__sandbox__v1__mount_share_response__free_unpacked(mr, NULL);
	if (r)
		ttrpc__response__free_unpacked(r, NULL);
	return code;
}

/* The root disk is mounted: the held Create goes on, on a route opened now (the guest wants
 * rising stream ids, after the MountShare ones). */
static void release_held(struct tp_conn *c, struct tp_stream *s)
{
	uint8_t *held = s->held;

	s->held = NULL;
	glink_close(c->tp->link, s->gid);
	s->gid = glink_open(c->tp->link, from_guest, c, s->sid);
	if (!s->gid) {
		client_error(c, s->sid, RPC_UNAVAILABLE, "the sandbox's guest link is down");
		s->held = held;
		stream_drop(c, s);
		return;
	}
	forward(c, s, TTRPC_REQUEST, s->held_flags, held, s->held_len);
	free(held);
}

static void on_mounted(void *owner, uintptr_t tag, const struct ttrpc_header *h,
                       const uint8_t *data)
{
	struct tp_conn *c = owner;
	struct tp_stream *s = stream_find(c, (uint32_t)tag);
	char msg[512];
	int code;

	if (!s || !s->held || h->type != TTRPC_RESPONSE)
		return;
	log_context("the guest's MountShare answer for Create %s", s->undo);
	code = mount_answer(s, h, data, msg, sizeof(msg));
	if (code == RPC_NOT_FOUND && mono_ns() < s->mount_deadline_ns) {
		loop_timer_arm(c->tp->loop, &s->retry, DISK_RETRY_MS);
		return;
	}
	if (code == 0) {
		release_held(c, s);
	} else {
		client_error(
		    c, s->sid, RPC_FAILED_PRECONDITION,
		    "Create %s: the guest did not mount the root disk (SCSI target %u): %s",
		    s->undo, s->target, msg);
		glink_close(c->tp->link, s->gid);
		stream_drop(c, s);
	}
	if (c->dead)
		conn_close(c);
}

static int watch_build(struct tp_conn *c, struct tp_stream *s, const struct rootdisk *d,
                       kerr_t *err);

/* The Create's image is built: its disk goes into the VM, then the guest mounts it. */
static void on_built(struct loop_watch *w, uint32_t events)
{
	struct tp_stream *s = container_of(w, struct tp_stream, build_w);
	struct tp_conn *c = s->c;
	struct rootdisk *d = rootdisk_find(c->tp->disks, s->undo);
	kerr_t err;
	int rc;

	loop_del(c->tp->loop, &s->build_w);
	close(s->build_w.fd);
	s->building = 0;
	rc = d ? rootdisk_built(c->tp->disks, d, &err) : 0;
	if (rc == 1 && watch_build(c, s, d, &err) == 0)
		return; /* built again: its image was removed before it could be held */
	if (!d) {
		client_error(c, s->sid, RPC_INTERNAL, "Create %s: its root disk is gone", s->undo);
	} else if (rc != 0 || rootdisk_plug(c->tp->disks, d, &err) < 0) {
		client_error(c, s->sid, RPC_FAILED_PRECONDITION, "Create %s: root disk: %s",
		             s->undo, err.msg);
	} else {
		log_info("Create %s: root disk on SCSI target %u, %zu layers built into %s in %.1f "
		         "ms",
		         s->undo, d->target, d->n_layers, d->img.path, d->img.build_ms);
		s->plugging = 1;
		return;
	}
	glink_close(c->tp->link, s->gid);
	stream_drop(c, s);
	if (c->dead)
		conn_close(c);
}

/* Watches d's builder with a copy of its pidfd: if the disk is released meanwhile (a
 * Delete), the build is killed, the copy still turns readable, and the Create is answered
 * with the disk gone; the watch never outlives its fd. */
static int watch_build(struct tp_conn *c, struct tp_stream *s, const struct rootdisk *d,
                       kerr_t *err)
{
	s->build_w.fd = fcntl(d->build_pidfd, F_DUPFD_CLOEXEC, 0);
	s->build_w.fn = on_built;
	if (s->build_w.fd < 0)
		return kerr_sys(err, "watch the image build");
	if (loop_add(c->tp->loop, &s->build_w, EPOLLIN, err) < 0) {
		close(s->build_w.fd);
		return -1;
	}
	s->building = 1;
	return 0;
}

/* A Create whose root disk the guest must mount first: the request waits in the stream,
 * while the disk's image is built if it must be. */
static void hold_create(struct tp_conn *c, struct tp_stream *s, uint8_t flags, uint8_t *buf,
                        uint32_t len, unsigned target)
{
	struct rootdisk *d = rootdisk_find(c->tp->disks, s->undo);
	kerr_t err;

	s->held = buf;
	s->held_len = len;
	s->held_flags = flags;
	s->target = target;
	s->c = c;
	s->retry.fn = mount_retry;
	s->mount_deadline_ns = mono_ns() + DISK_WAIT_NS;
	if (!d) {
		client_error(c, s->sid, RPC_INTERNAL, "Create %s: its root disk is gone", s->undo);
	} else if (d->build_pid > 0) {
		if (watch_build(c, s, d, &err) == 0)
			return;
		client_error(c, s->sid, RPC_INTERNAL, "Create %s: %s", s->undo, err.msg);
	} else if (rootdisk_plug(c->tp->disks, d, &err) == 0) {
		s->plugging = 1;
		return;
	} else {
		client_error(c, s->sid, RPC_FAILED_PRECONDITION, "Create %s: root disk: %s",
		             s->undo, err.msg);
	}
	glink_close(c->tp->link, s->gid);
	stream_drop(c, s);
}

/* The Create waiting for d's plug: its disk is on the bus and the guest mounts it, or the
 * Create fails. */
static void on_plugged(void *arg, struct rootdisk *d, const kerr_t *err)
{
	struct taskproxy *tp = arg;
	struct tp_stream *s = NULL;
	struct tp_conn *c;

	for (c = tp->conns; c && !s; c = s ? c : c->next)
		for (s = c->streams; s && !(s->plugging && !strcmp(s->undo, d->id)); s = s->next)
			;
	if (!s)
		return;
	s->plugging = 0;
	if (err) {
		client_error(c, s->sid, RPC_FAILED_PRECONDITION, "Create %s: root disk: %s",
		             s->undo, err->msg);
	} else {
		s->mount_deadline_ns = mono_ns() + DISK_WAIT_NS;
		if (ask_mount(c, s) == 0)
			return;
		client_error(c, s->sid, RPC_UNAVAILABLE, "the sandbox's guest link is down");
	}
	glink_close(c->tp->link, s->gid);
	stream_drop(c, s);
	if (c->dead)
		conn_close(c);
}

/* ---- bounds on guest calls (callbound.h) ---- */

static void late_warn(struct taskproxy *tp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void late_warn(struct taskproxy *tp, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	tp->late++;
	if (mono_ns() - tp->late_warn_ns < 10 * 1000000000LL)
		return;
	tp->late_warn_ns = mono_ns();
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warn("%s (%u late answers so far)", msg, tp->late);
}

/* The guest did not answer s in time: the proxy answers for it. */
static void bound_hit(struct loop_timer *t)
{
	struct tp_stream *s = container_of(t, struct tp_stream, bound);
	struct tp_conn *c = s->c;
	struct taskproxy *tp = c->tp;
	int ms = call_bound_ms(s->kind);
	const struct answer *a;

	if (s->kind == CALL_KILL && tp->on_stuck) {
		late_warn(tp, "the guest did not answer Kill in %d ms: stopping its VM", ms);
		tp->on_stuck(tp, "the guest did not answer Kill", tp->arg);
		return; /* answered when the VM is gone (taskproxy_vm_gone) */
	}
	a = s->kind == CALL_CACHED ? answers_get(&tp->answers, s->method, s->key, s->key_len)
	                           : NULL;
	if (a) {
		struct ttrpc_header h = { a->resp_len, s->sid, TTRPC_RESPONSE, 0 };

		late_warn(
		    tp, "the guest did not answer %s in %d ms: its last answer (%.1f s old) given",
		    s->method, ms, (double)(mono_ns() - a->ns) / 1e9);
		client_send(c, &h, a->resp);
	} else {
		late_warn(tp, "the guest did not answer %s in %d ms", s->method, ms);
		client_error(c, s->sid, RPC_DEADLINE_EXCEEDED,
		             "%s: the guest did not answer in %d ms", s->method, ms);
	}
	glink_close(tp->link, s->gid);
	stream_drop(c, s);
	if (c->dead)
		conn_close(c);
}

static void bound_setup(struct tp_conn *c, struct tp_stream *s, const Ttrpc__Request *req)
{
	s->kind = call_kind(req->service, req->method, s->bidi);
	s->bound.fn = bound_hit;
	snprintf(s->method, sizeof(s->method), "%s", req->method);
	if (s->kind == CALL_CACHED && req->payload.len <= ANSWER_MAX_LEN) {
		s->key = malloc(req->payload.len ? req->payload.len : 1);
		if (s->key && req->payload.len)
			memcpy(s->key, req->payload.data, req->payload.len);
		s->key_len = s->key ? (uint32_t)req->payload.len : 0;
	}
	if (call_bound_ms(s->kind))
		loop_timer_arm(c->tp->loop, &s->bound, call_bound_ms(s->kind));
}

/* The request of a Request frame, or NULL with the client answered: stream ids must rise,
 * streams are bounded, the envelope must decode. */
static Ttrpc__Request *request_read(struct tp_conn *c, const struct ttrpc_header *h,
                                    const uint8_t *data)
{
	Ttrpc__Request *req;

	if (!(h->stream & 1) || h->stream <= c->last_sid) {
		client_error(c, h->stream, RPC_INVALID_ARGUMENT,
		             "stream id %u: client stream ids must be odd and increasing",
		             h->stream);
		return NULL;
	}
	c->last_sid = h->stream;
	if (c->n_streams >= MAX_STREAMS_PER_CONN) {
		client_error(c, h->stream, RPC_RESOURCE_EXHAUSTED, "more than %d open streams",
		             MAX_STREAMS_PER_CONN);
		return NULL;
	}
	req = ttrpc__request__unpack(NULL, h->length, data);
	if (!req || !req->service || !req->method) {
		if (req)
			ttrpc__request__free_unpacked(req, NULL);
		client_error(c, h->stream, RPC_INVALID_ARGUMENT, "malformed ttrpc request");
		return NULL;
	}
	return req;
}

/* What the proxy does to a Task request before the guest sees it. */
struct intercept {
	uint8_t *payload; /* Create: the rewritten request (malloc'd), else NULL */
	size_t len;
	char cleanup[ID_MAX + 1]; /* Delete: whose bundle goes once it succeeds */
	char created[ID_MAX + 1]; /* Create: whose bundle was made */
	int target;               /* Create: its root disk's SCSI target, or -1 */
};

/* -1 with the client answered when the request is refused. */
static int intercept(struct tp_conn *c, uint32_t sid, const Ttrpc__Request *req,
                     struct intercept *in)
{
	in->target = -1;
	if (!is_task_service(req->service))
		return 0;
	if (!strcmp(req->method, "Create")) {
		in->payload = rewrite_create(c, sid, req, &in->len, in->created,
		                             sizeof(in->created), &in->target);
		return in->payload ? 0 : -1;
	}
	if (!strcmp(req->method, "Exec"))
		return check_exec(c, sid, req);
	if (!strcmp(req->method, "Delete"))
		delete_target(req, in->cleanup, sizeof(in->cleanup));
	return 0;
}

/* A stream for the request with a route to the guest; NULL with the client answered. */
static struct tp_stream *stream_open(struct tp_conn *c, const struct ttrpc_header *h,
                                     const Ttrpc__Request *req, const struct intercept *in)
{
	struct tp_stream *s = calloc(1, sizeof(*s));

	if (!s) {
		client_error(c, h->stream, RPC_RESOURCE_EXHAUSTED, "out of memory");
		return NULL;
	}
	s->sid = h->stream;
	s->c = c;
	s->bidi = !!(h->flags & TTRPC_FLAG_REMOTE_OPEN);
	s->is_wait = is_task_service(req->service) && !strcmp(req->method, "Wait");
	bound_setup(c, s, req);
	snprintf(s->cleanup, sizeof(s->cleanup), "%s", in->cleanup);
	snprintf(s->undo, sizeof(s->undo), "%s", in->created);
	s->gid = glink_open(c->tp->link, from_guest, c, s->sid);
	s->next = c->streams;
	c->streams = s;
	c->n_streams++;
	if (!s->gid) {
		client_error(c, s->sid, RPC_UNAVAILABLE, "the sandbox's guest link is down");
		stream_drop(c, s);
		return NULL;
	}
	return s;
}

/* The rewritten Create, keeping the client's metadata and timeout: forwarded, or held until
 * its root disk is mounted. -1 when it never reached the guest (the client answered). */
static int forward_rewritten(struct tp_conn *c, struct tp_stream *s, const Ttrpc__Request *req,
                             uint8_t flags, const struct intercept *in)
{
	Ttrpc__Request copy = *req;
	uint8_t *buf;
	size_t n;
	int rc;

	copy.payload.data = in->payload;
	copy.payload.len = in->len;
	n = ttrpc__request__get_packed_size(&copy);
	buf = malloc(n ? n : 1);
	if (!buf) {
		client_error(c, s->sid, RPC_RESOURCE_EXHAUSTED, "out of memory");
		glink_close(c->tp->link, s->gid);
		stream_drop(c, s);
		return -1;
	}
	ttrpc__request__pack(&copy, buf);
	if (in->target >= 0) {
		hold_create(c, s, flags, buf, (uint32_t)n, (unsigned)in->target);
		return 0;
	}
	rc = forward(c, s, TTRPC_REQUEST, flags, buf, (uint32_t)n);
	free(buf);
	return rc;
}

/* A Request frame from the client: validate, intercept, open a guest route, forward. */
static void on_request(struct tp_conn *c, const struct ttrpc_header *h, const uint8_t *data)
{
	struct intercept in = { 0 };
	Ttrpc__Request *req = request_read(c, h, data);
	struct tp_stream *s;
	int rc = 0;

	if (!req)
		return;
	log_context("%s/%s, client stream %u", req->service, req->method, h->stream);
	note_namespace(c, req);
	if (c->tp->gone)
		on_request_gone(c, h->stream, req);
	else if (intercept(c, h->stream, req, &in) == 0) {
		s = stream_open(c, h, req, &in);
		if (!s)
			rc = -1;
		else if (!in.payload)
			forward(c, s, TTRPC_REQUEST, h->flags, data, h->length);
		else
			rc = forward_rewritten(c, s, req, h->flags, &in);
	}
	/* A Create the guest never saw: its bundle and root disk go. */
	if (rc < 0 && in.created[0]) {
		bundle_remove(&c->tp->bundles, in.created);
		disk_release(c->tp, in.created);
	}
	free(in.payload);
	ttrpc__request__free_unpacked(req, NULL);
}

static void on_frame(struct tp_conn *c, const struct ttrpc_header *h, const uint8_t *data)
{
	struct tp_stream *s;

	switch (h->type) {
	case TTRPC_REQUEST: on_request(c, h, data); break;
	case TTRPC_DATA:
		s = stream_find(c, h->stream);
		if (!s || forward(c, s, TTRPC_DATA, h->flags, data, h->length) < 0)
			break;
		if (h->flags & TTRPC_FLAG_REMOTE_CLOSED) {
			s->client_closed = 1;
			if (s->guest_closed) {
				glink_close(c->tp->link, s->gid);
				stream_drop(c, s);
			}
		}
		break;
	default: break; /* responses are the server's to send */
	}
}

/* Frames from the client; an oversized one is skipped and answered. */
static void parse(struct tp_conn *c)
{
	while (!c->dead) {
		struct ttrpc_header h;
		const uint8_t *data;

		switch (ttrpc_reader_next(&c->rd, &h, &data)) {
		case TTRPC_NEED_MORE: return;
		case TTRPC_OVERSIZED:
			client_error(c, h.stream, RPC_RESOURCE_EXHAUSTED,
			             "frame of %u bytes is over the %u byte limit", h.length,
			             TTRPC_MAX_DATA);
			break;
		case TTRPC_FRAME: on_frame(c, &h, data ? data : (const uint8_t *)""); break;
		}
	}
}

static void conn_event(struct loop_watch *w, uint32_t events)
{
	struct tp_conn *c = container_of(w, struct tp_conn, w);

	if ((events & EPOLLOUT) && buf_flush(&c->out, w->fd) < 0)
		c->dead = 1;
	if (!c->dead && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
		ssize_t n = ttrpc_reader_fill(&c->rd, w->fd);

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			c->dead = 1;
		else if (n > 0)
			parse(c);
	}
	if (c->dead) {
		conn_close(c);
		return;
	}
	loop_mod(c->tp->loop, w, EPOLLIN | (buf_pending(&c->out) ? EPOLLOUT : 0));
}

/* The client left: its open streams end on the guest side too (stdin sees EOF). */
static void conn_close(struct tp_conn *c)
{
	struct taskproxy *tp = c->tp;
	struct tp_stream *s;

	log_context("closing a task connection with %u streams", c->n_streams);
	for (struct tp_conn **pp = &tp->conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	tp->n_conns--;
	/* Every open stream is closed toward the guest: a stdio stream sees EOF, and a unary
	 * call it holds open (a Wait) is forgotten there instead of piling up. */
	while ((s = c->streams)) {
		glink_send(tp->link, s->gid, TTRPC_DATA,
		           TTRPC_FLAG_REMOTE_CLOSED | TTRPC_FLAG_NO_DATA, NULL, 0);
		c->streams = s->next;
		stream_free(tp, s);
	}
	glink_close_owner(tp->link, c);
	loop_del(tp->loop, &c->w);
	close(c->w.fd);
	buf_free(&c->out);
	ttrpc_reader_free(&c->rd);
	free(c);
}

static void accept_event(struct loop_watch *w, uint32_t events)
{
	struct taskproxy *tp = container_of(w, struct taskproxy, listen);
	struct tp_conn *c;
	kerr_t err;
	int fd;

	fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->tp = tp;
	c->w.fd = fd;
	c->w.fn = conn_event;
	if (loop_add(tp->loop, &c->w, EPOLLIN, &err) < 0) {
		close(fd);
		free(c);
		return;
	}
	c->next = tp->conns;
	tp->conns = c;
	tp->n_conns++;
}

int taskproxy_start(struct taskproxy *tp, struct loop *loop, struct glink *link, const char *path,
                    const char *shared, kerr_t *err)
{
	int fd;

	tp->loop = loop;
	tp->link = link;
	snprintf(tp->path, sizeof(tp->path), "%s", path);
	tp->listen.fd = -1;
	if (tp->disks) {
		tp->disks->on_plugged = on_plugged;
		tp->disks->arg = tp;
	}
	if (bundles_open(&tp->bundles, shared, err) < 0)
		return -1;
	fd = unix_listen(path, err);
	if (fd < 0)
		return kerr_wrap(err, "task socket");
	tp->listen.fd = fd;
	tp->listen.fn = accept_event;
	if (loop_add(loop, &tp->listen, EPOLLIN, err) < 0) {
		close(fd);
		tp->listen.fd = -1;
		return -1;
	}
	return 0;
}

void taskproxy_stop(struct taskproxy *tp)
{
	while (tp->conns)
		conn_close(tp->conns);
	while (tp->ctrs)
		ctr_del(tp, tp->ctrs->id);
	if (tp->disks)
		rootdisks_release(tp->disks);
	bundles_close(&tp->bundles);
	answers_free(&tp->answers);
	if (tp->listen.fd >= 0) {
		loop_del(tp->loop, &tp->listen);
		close(tp->listen.fd);
		tp->listen.fd = -1;
		unlink(tp->path);
	}
}

void taskproxy_link_down(struct taskproxy *tp)
{
	for (struct tp_conn *c = tp->conns; c; c = c->next) {
		struct tp_stream *s;

		while ((s = c->streams)) {
			client_error(c, s->sid, RPC_UNAVAILABLE,
			             "the sandbox's guest link was lost");
			c->streams = s->next;
			c->n_streams--;
			stream_free(tp, s);
		}
		/* A connection that died here is closed by its own event handler: this may run
		 * inside a call on that very connection. */
	}
	/* Their unmount answers went with the link: the disks leave the VM anyway. */
	if (tp->disks)
		rootdisks_unplug_released(tp->disks);
}

void taskproxy_vm_gone(struct taskproxy *tp)
{
	struct task_gone_answer wait;
	struct task_gone g;

	if (tp->gone)
		return;
	tp->gone = 1;
	tp->gone_ns = real_ns();
	gone_setup(tp, &g);
	task_gone_wait(&g, &wait);
	for (struct tp_conn *c = tp->conns; c; c = c->next) {
		struct tp_stream *s;

		while ((s = c->streams)) {
			if (s->is_wait)
				answer_gone(c, s->sid, &wait);
			else if (s->kind == CALL_KILL) /* its process is gone with the VM */
				client_reply(c, s->sid, NULL, 0);
			else
				client_error(c, s->sid, RPC_UNAVAILABLE,
				             "the sandbox's VM has exited");
			c->streams = s->next;
			c->n_streams--;
			stream_free(tp, s);
		}
		glink_close_owner(tp->link, c);
	}
	if (tp->disks)
		rootdisks_release(tp->disks);
	free(wait.payload);
	if (!tp->n_ctrs && tp->on_idle)
		tp->on_idle(tp, tp->arg);
}
