#include "proxy/event_filter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "events.pb-c.h"

/* The topics a task shim publishes, each with the one type it carries. A second id field
 * (an exec's, or the process an exit is for) is named where the type has one. */
static const struct event_kind {
	const char *topic, *type_url;
	const ProtobufCMessageDescriptor *desc;
	const char *sub_id;
} kinds[] = {
	{ "/tasks/create", "containerd.events.TaskCreate",
	  &containerd__events__task_create__descriptor, NULL },
	{ "/tasks/start", "containerd.events.TaskStart",
	  &containerd__events__task_start__descriptor, NULL },
	{ "/tasks/delete", "containerd.events.TaskDelete",
	  &containerd__events__task_delete__descriptor, "id" },
	{ "/tasks/exit", "containerd.events.TaskExit", &containerd__events__task_exit__descriptor,
	  "id" },
	{ "/tasks/oom", "containerd.events.TaskOOM", &containerd__events__task_oom__descriptor,
	  NULL },
	{ "/tasks/exec-added", "containerd.events.TaskExecAdded",
	  &containerd__events__task_exec_added__descriptor, "exec_id" },
	{ "/tasks/exec-started", "containerd.events.TaskExecStarted",
	  &containerd__events__task_exec_started__descriptor, "exec_id" },
	{ "/tasks/paused", "containerd.events.TaskPaused",
	  &containerd__events__task_paused__descriptor, NULL },
	{ "/tasks/resumed", "containerd.events.TaskResumed",
	  &containerd__events__task_resumed__descriptor, NULL },
};

static const struct event_kind *kind_of(const char *topic)
{
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (!strcmp(kinds[i].topic, topic))
			return &kinds[i];
	return NULL;
}

/* The string field called name of a decoded message, "" when unset. */
static const char *field_str(const ProtobufCMessage *m, const char *name)
{
	const ProtobufCFieldDescriptor *f =
	    protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
	const char *s;

	if (!f || f->type != PROTOBUF_C_TYPE_STRING || f->label == PROTOBUF_C_LABEL_REPEATED)
		return "";
	s = *(const char *const *)(const void *)((const char *)m + f->offset);
	return s ? s : "";
}

/* An exec id, or the id an exit or delete names: empty, or an id as containerd makes them. */
static int sub_id_ok(const char *id)
{
	return !id[0] || id_valid(id, NULL) == 0;
}

static int decide(const struct event_kind *k, const ProtobufCMessage *m, event_owns_fn owns,
                  void *arg, struct event_checked *out, char *why, size_t n)
{
	const char *cid = field_str(m, "container_id");

	if (id_valid(cid, NULL) < 0) {
		fmt_msg(why, n, "%s: malformed container id `%.80s`", k->topic, cid);
		return -1;
	}
	if (!owns(cid, arg)) {
		fmt_msg(why, n, "%s for container %s, which is not this sandbox's", k->topic, cid);
		return -1;
	}
	if (k->sub_id && !sub_id_ok(field_str(m, k->sub_id))) {
		fmt_msg(why, n, "%s for %s: malformed %s", k->topic, cid, k->sub_id);
		return -1;
	}
	snprintf(out->container_id, sizeof(out->container_id), "%s", cid);
	out->len = protobuf_c_message_get_packed_size(m);
	out->value = malloc(out->len ? out->len : 1);
	if (!out->value) {
		fmt_msg(why, n, "%s: out of memory", k->topic);
		return -1;
	}
	protobuf_c_message_pack(m, out->value);
	return 0;
}

int event_check(const char *topic, const char *type_url, const uint8_t *value, size_t len,
                event_owns_fn owns, void *arg, struct event_checked *out, char *why, size_t n)
{
	const struct event_kind *k = topic ? kind_of(topic) : NULL;
	ProtobufCMessage *m;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!k) {
		fmt_msg(why, n, "topic `%.64s` is not a task event", topic ? topic : "");
		return -1;
	}
	if (!type_url || strcmp(type_url, k->type_url)) {
		fmt_msg(why, n, "%s with type `%.80s`, not %s", topic, type_url ? type_url : "",
		        k->type_url);
		return -1;
	}
	if (len > EVENT_VALUE_MAX) {
		fmt_msg(why, n, "%s of %zu bytes, over %u", topic, len, EVENT_VALUE_MAX);
		return -1;
	}
	m = protobuf_c_message_unpack(k->desc, NULL, len, value);
	if (!m) {
		fmt_msg(why, n, "%s: malformed %s", topic, k->type_url);
		return -1;
	}
	rc = decide(k, m, owns, arg, out, why, n);
	protobuf_c_message_free_unpacked(m, NULL);
	return rc;
}
