/* kuasar-ctl events ID [--count N] [--timeout MS]: the guest's task events, queued ones
 * first, one line each. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "ctl/ctl.h"
#include "events.pb-c.h"
#include "sandbox.pb-c.h"
#include "vm/vm.h"

#define EVENTS_SERVICE "kuasar.sandbox.v1.Sandbox"

static void print_event(const Kuasar__Sandbox__V1__Event *e)
{
	const ProtobufCBinaryData *v = &e->event->value;
	const char *type = e->event->type_url;

	printf("%s", e->topic);
	if (!strcmp(type, "containerd.events.TaskExit")) {
		Containerd__Events__TaskExit *x =
		    containerd__events__task_exit__unpack(NULL, v->len, v->data);

		if (x)
			printf(" container=%s id=%s pid=%u exit_status=%u", x->container_id, x->id,
			       x->pid, x->exit_status);
		containerd__events__task_exit__free_unpacked(x, NULL);
	} else if (!strcmp(type, "containerd.events.TaskExecAdded") ||
	           !strcmp(type, "containerd.events.TaskExecStarted")) {
		Containerd__Events__TaskExecStarted *x =
		    containerd__events__task_exec_started__unpack(NULL, v->len, v->data);

		if (x)
			printf(" container=%s exec=%s", x->container_id, x->exec_id);
		containerd__events__task_exec_started__free_unpacked(x, NULL);
	} else {
		/* Every other task event starts with container_id = 1. */
		Containerd__Events__TaskOOM *x =
		    containerd__events__task_oom__unpack(NULL, v->len, v->data);

		if (x)
			printf(" container=%s", x->container_id);
		containerd__events__task_oom__free_unpacked(x, NULL);
	}
	if (e->dropped)
		printf(" (%u dropped before)", e->dropped);
	printf("\n");
	fflush(stdout);
}

static int subscribe(struct vm *vm, kerr_t *err)
{
	uint8_t *frame = NULL;
	size_t len;
	int rc;

	if (ttrpc_encode_request(1, EVENTS_SERVICE, "GetEvents", NULL, 0, &frame, &len) < 0)
		return kerr_set(err, ENOMEM, "encode GetEvents");
	/* A server-streaming call: the request says no data follows from us. */
	frame[9] = TTRPC_FLAG_REMOTE_CLOSED;
	rc = write_all(vm->link.fd, frame, len);
	free(frame);
	return rc < 0 ? kerr_sys(err, "send GetEvents") : 0;
}

static int next_event(struct vm *vm, int64_t deadline, kerr_t *err)
{
	struct ttrpc_header h;
	uint8_t *data = NULL;
	Kuasar__Sandbox__V1__Event *e;

	if (ttrpc_read_frame(&vm->link, &h, &data, deadline, err) < 0)
		return -1;
	if (h.stream != 1 || h.type != TTRPC_DATA) {
		free(data);
		return kerr_set(err, EPROTO, "GetEvents ended (frame type %u)", h.type);
	}
	e = kuasar__sandbox__v1__event__unpack(NULL, h.length, data);
	free(data);
	if (!e || !e->event)
		return kerr_set(err, EPROTO, "malformed event");
	print_event(e);
	kuasar__sandbox__v1__event__free_unpacked(e, NULL);
	return 0;
}

int ctl_events(int argc, char **argv)
{
	unsigned count = 0, timeout = 0;
	struct vm vm;
	kerr_t err;
	int64_t deadline;

	for (int i = 2; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--count") &&
		    ctl_parse_uint(argv[i + 1], 1, 1000000, &count) == 0)
			continue;
		if (!strcmp(argv[i], "--timeout") &&
		    ctl_parse_uint(argv[i + 1], 1, 86400000, &timeout) == 0)
			continue;
		argc = 0;
	}
	if (argc < 2 || argc % 2) {
		fprintf(stderr, "usage: kuasar-ctl events ID [--count N] [--timeout MS]\n");
		return 2;
	}
	if (vm_attach(&vm, ctl_run_dir(), argv[1], &err) < 0)
		return ctl_fail(&err);
	vm.sigfd = ctl_watch_signals();
	deadline = timeout ? mono_ns() + (int64_t)timeout * 1000000 : 0;
	if (subscribe(&vm, &err) < 0) {
		vm_release(&vm);
		return ctl_fail(&err);
	}
	for (unsigned n = 0; !count || n < count; n++)
		if (next_event(&vm, deadline, &err) < 0) {
			vm_release(&vm);
			/* Running out of time with what was asked for delivered is the normal end.
			 */
			return err.errnum == ETIMEDOUT && !count ? 0 : ctl_fail(&err);
		}
	vm_release(&vm);
	return 0;
}
