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

/* Every request answered here (State, Wait, Kill, Delete) starts with the container id (1)
 * and the exec id (2): one decoder for all. NULL, answered, when the request is malformed
 * or names a container we do not know. */
typedef Containerd__Task__V3__DeleteRequest target_t;

static target_t *target(const struct task_gone *g, const uint8_t *req, size_t len,
                        struct task_gone_answer *a)
{
	target_t *r = containerd__task__v3__delete_request__unpack(NULL, len, req);

	if (!r) {
		fail(a, RPC_INVALID_ARGUMENT, "malformed request");
		return NULL;
	}
	if (!r->id || !r->id[0] || !g->known(r->id, g->arg)) {
		fail(a, RPC_NOT_FOUND, "container %s: not found (its VM has exited)",
		     r->id ? r->id : "");
		containerd__task__v3__delete_request__free_unpacked(r, NULL);
		return NULL;
	}
	return r;
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

static void answer_target(const struct task_gone *g, const char *method, const target_t *r,
                          struct task_gone_answer *a)
{
	Containerd__Task__V3__StateResponse st = CONTAINERD__TASK__V3__STATE_RESPONSE__INIT;
	Containerd__Task__V3__DeleteResponse d = CONTAINERD__TASK__V3__DELETE_RESPONSE__INIT;
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	Google__Protobuf__Empty e = GOOGLE__PROTOBUF__EMPTY__INIT;

	ts_from_ns(&ts, g->exited_ns);
	if (!strcmp(method, "State")) {
		st.id = r->id;
		st.exec_id = r->exec_id;
		st.status = CONTAINERD__TYPES__STATUS__STOPPED;
		st.exit_status = TASK_GONE_STATUS;
		st.exited_at = &ts;
		pack(a, &st.base);
	} else if (!strcmp(method, "Delete")) {
		d.exit_status = TASK_GONE_STATUS;
		d.exited_at = &ts;
		pack(a, &d.base);
		if (!a->code && (!r->exec_id || !r->exec_id[0]))
			snprintf(a->deleted, sizeof(a->deleted), "%s", r->id);
	} else if (!strcmp(method, "Wait")) {
		task_gone_wait(g, a);
	} else { /* Kill: it is dead already */
		pack(a, &e.base);
	}
}

void task_gone_answer(const struct task_gone *g, const char *method, const uint8_t *req, size_t len,
                      struct task_gone_answer *a)
{
	Containerd__Task__V3__ConnectResponse c = CONTAINERD__TASK__V3__CONNECT_RESPONSE__INIT;
	Google__Protobuf__Empty e = GOOGLE__PROTOBUF__EMPTY__INIT;
	target_t *r;

	memset(a, 0, sizeof(*a));
	if (!strcmp(method, "State") || !strcmp(method, "Delete") || !strcmp(method, "Wait") ||
	    !strcmp(method, "Kill")) {
		r = target(g, req, len, a);
		if (r) {
			answer_target(g, method, r, a);
			containerd__task__v3__delete_request__free_unpacked(r, NULL);
		}
	} else if (!strcmp(method, "Connect")) {
		c.shim_pid = g->shim_pid;
		c.version = "3";
		pack(a, &c.base);
	} else if (!strcmp(method, "Shutdown")) {
		pack(a, &e.base);
	} else {
		fail(a, RPC_FAILED_PRECONDITION,
		     "%s: the sandbox's VM has exited; its tasks only answer State, Wait, Kill and "
		     "Delete",
		     method);
	}
}
