#include "proxy/task_gone.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "google/protobuf/empty.pb-c.h"
#include "proto/ttrpc_wire.h"
#include "rpc/timestamp.h"
#include "task.pb-c.h"

static void fail(struct task_gone_answer *a, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(struct task_gone_answer *a, int code, const char *fmt, ...)
{
	va_list ap;

	a->code = code;
	va_start(ap, fmt);
	vsnprintf(a->msg, sizeof(a->msg), fmt, ap);
	va_end(ap);
}

static void pack(struct task_gone_answer *a, const ProtobufCMessage *m)
{
	a->len = protobuf_c_message_get_packed_size(m);
	a->payload = malloc(a->len ? a->len : 1);
	if (!a->payload) {
		fail(a, RPC_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	protobuf_c_message_pack(m, a->payload);
}

/* The container a request names (field 1 of every task request here), or NULL with a
 * answered: malformed (parsed false), or not one we know. */
static const char *target(const struct task_gone *g, int parsed, const char *id,
                          struct task_gone_answer *a)
{
	if (!parsed) {
		fail(a, RPC_INVALID_ARGUMENT, "malformed request");
		return NULL;
	}
	if (!id || !id[0] || !g->known(id, g->arg)) {
		fail(a, RPC_NOT_FOUND, "container %s: not found (its VM has exited)", id ? id : "");
		return NULL;
	}
	return id;
}

static void state(const struct task_gone *g, const uint8_t *req, size_t len,
                  struct task_gone_answer *a)
{
	Containerd__Task__V3__StateRequest *r =
	    containerd__task__v3__state_request__unpack(NULL, len, req);
	Containerd__Task__V3__StateResponse s = CONTAINERD__TASK__V3__STATE_RESPONSE__INIT;
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;

	if (target(g, r != NULL, r ? r->id : NULL, a)) {
		s.id = r->id;
		s.exec_id = r->exec_id;
		s.status = CONTAINERD__TYPES__STATUS__STOPPED;
		s.exit_status = TASK_GONE_STATUS;
		ts_from_ns(&ts, g->exited_ns);
		s.exited_at = &ts;
		pack(a, &s.base);
	}
	if (r)
		containerd__task__v3__state_request__free_unpacked(r, NULL);
}

static void delete_(const struct task_gone *g, const uint8_t *req, size_t len,
                    struct task_gone_answer *a)
{
	Containerd__Task__V3__DeleteRequest *r =
	    containerd__task__v3__delete_request__unpack(NULL, len, req);
	Containerd__Task__V3__DeleteResponse d = CONTAINERD__TASK__V3__DELETE_RESPONSE__INIT;
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;

	if (target(g, r != NULL, r ? r->id : NULL, a)) {
		d.exit_status = TASK_GONE_STATUS;
		ts_from_ns(&ts, g->exited_ns);
		d.exited_at = &ts;
		pack(a, &d.base);
		if (!a->code && (!r->exec_id || !r->exec_id[0]))
			snprintf(a->deleted, sizeof(a->deleted), "%s", r->id);
	}
	if (r)
		containerd__task__v3__delete_request__free_unpacked(r, NULL);
}

void task_gone_wait(const struct task_gone *g, struct task_gone_answer *a)
{
	Containerd__Task__V3__WaitResponse w = CONTAINERD__TASK__V3__WAIT_RESPONSE__INIT;
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;

	memset(a, 0, sizeof(*a));
	w.exit_status = TASK_GONE_STATUS;
	ts_from_ns(&ts, g->exited_ns);
	w.exited_at = &ts;
	pack(a, &w.base);
}

/* Wait, Kill: the container must be known; the answer does not depend on the request. */
static void simple(const struct task_gone *g, const char *method, const uint8_t *req, size_t len,
                   struct task_gone_answer *a)
{
	Containerd__Task__V3__WaitRequest *r =
	    containerd__task__v3__wait_request__unpack(NULL, len, req);
	Google__Protobuf__Empty e = GOOGLE__PROTOBUF__EMPTY__INIT;

	/* Wait, Kill (and Pids, Stats) all start with the container id as field 1. */
	if (target(g, r != NULL, r ? r->id : NULL, a)) {
		if (!strcmp(method, "Wait"))
			task_gone_wait(g, a);
		else
			pack(a, &e.base);
	}
	if (r)
		containerd__task__v3__wait_request__free_unpacked(r, NULL);
}

void task_gone_answer(const struct task_gone *g, const char *method, const uint8_t *req, size_t len,
                      struct task_gone_answer *a)
{
	Containerd__Task__V3__ConnectResponse c = CONTAINERD__TASK__V3__CONNECT_RESPONSE__INIT;
	Google__Protobuf__Empty e = GOOGLE__PROTOBUF__EMPTY__INIT;

	memset(a, 0, sizeof(*a));
	if (!strcmp(method, "State"))
		state(g, req, len, a);
	else if (!strcmp(method, "Delete"))
		delete_(g, req, len, a);
	else if (!strcmp(method, "Wait") || !strcmp(method, "Kill"))
		simple(g, method, req, len, a);
	else if (!strcmp(method, "Connect")) {
		c.shim_pid = g->shim_pid;
		c.version = "3";
		pack(a, &c.base);
	} else if (!strcmp(method, "Shutdown"))
		pack(a, &e.base);
	else
		fail(a, RPC_FAILED_PRECONDITION,
		     "%s: the sandbox's VM has exited; its tasks only answer State, Wait, Kill and "
		     "Delete",
		     method);
}
