#include "proxy/resize.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "host/proxy.pb-c.h"
#include "proxy/bundle.h"
#include "rpc/ttrpc_client.h"
#include "sandbox.pb-c.h"

#define RESIZE_STEP_MS 10000
#define BALLOON_MS 5000

enum { STEP_GUEST = 1, STEP_BALLOON };

static void next_step(struct resize *r);

static void finish(struct resize *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void finish(struct resize *r, int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	gcall_cancel(&r->gc);
	r->busy = 0;
	if (code)
		log_warn("resize: %s", msg);
	taskproxy_answer(r->tp, &r->call, code, NULL, 0, msg);
}

/* The guest's pod cgroup: memory.max leaves the guest's reserve out of a reduced size. */
static uint64_t guest_memory_max(const struct resize *r)
{
	if (!r->mib || r->mib >= r->boot_mib)
		return 0;
	return (uint64_t)(r->mib > GUEST_RESERVE_MIB ? r->mib - GUEST_RESERVE_MIB : 1) << 20;
}

static void on_guest(struct gcall *c, int code, const char *msg, const uint8_t *payload, size_t n)
{
	struct resize *r = container_of(c, struct resize, gc);

	(void)payload;
	(void)n;
	if (code)
		finish(r, code, "the guest refused the pod's limits: %s", msg);
	else
		next_step(r);
}

static void guest_limits(struct resize *r)
{
	Kuasar__Sandbox__V1__SetPodResourcesRequest req =
	    KUASAR__SANDBOX__V1__SET_POD_RESOURCES_REQUEST__INIT;
	uint8_t buf[64];

	req.cpu_quota = r->quota;
	req.cpu_period = r->period;
	req.memory_max = guest_memory_max(r);
	r->gc.loop = r->loop;
	r->gc.link = r->link;
	r->gc.timeout_ms = RESIZE_STEP_MS;
	r->gc.done = on_guest;
	gcall_start(&r->gc, "SetPodResources", buf,
	            kuasar__sandbox__v1__set_pod_resources_request__pack(&req, buf));
}

static void on_balloon(void *arg, struct qmp_reply *q)
{
	struct resize *r = arg;

	if (!q->ok) {
		finish(r, RPC_INTERNAL, "the VM's balloon to %u MiB: %s", r->mib, q->err.msg);
		return;
	}
	next_step(r);
}

static void balloon(struct resize *r)
{
	json_object *args;
	kerr_t err;

	if (!r->balloon) { /* the guest's limit alone holds the pod to its size */
		next_step(r);
		return;
	}
	args = json_object_new_object();
	json_object_object_add(args, "value", json_object_new_int64((int64_t)r->mib << 20));
	if (qmp_send(r->balloon, "balloon", args, BALLOON_MS, on_balloon, r, &err) < 0)
		finish(r, RPC_UNAVAILABLE, "the VM's balloon: %s", err.msg);
}

/* The steps in order, one byte each in r->step: shrinking sets the guest's limit before
 * the balloon takes the memory, growing gives the memory before the limit is raised. */
static void next_step(struct resize *r)
{
	int step = r->step & 0xff;

	r->step >>= 8;
	switch (step) {
	case STEP_GUEST: guest_limits(r); break;
	case STEP_BALLOON: balloon(r); break;
	default:
		if (r->mib)
			*r->vm_mib = r->mib;
		log_info("resized: cpu %lld/%llu, memory %u MiB%s", (long long)r->quota,
		         (unsigned long long)r->period, *r->vm_mib,
		         r->balloon ? "" : " (no balloon: the guest's limit holds it)");
		finish(r, 0, "resized");
	}
}

static int check(const struct resize *r, const Kuasar__Proxy__V1__ResizeRequest *req, char *why,
                 size_t n)
{
	if (req->memory_mib > r->boot_mib) {
		snprintf(why, n, "%u MiB is more than the %u MiB the VM booted with",
		         req->memory_mib, r->boot_mib);
		return -1;
	}
	if (req->memory_mib && req->memory_mib <= GUEST_RESERVE_MIB) {
		snprintf(why, n, "%u MiB leaves nothing above the guest's %u MiB reserve",
		         req->memory_mib, (unsigned)GUEST_RESERVE_MIB);
		return -1;
	}
	if (req->cpu_quota > 0 && (req->cpu_period < 1000 || req->cpu_period > 1000000)) {
		snprintf(why, n, "cpu period %llu us is outside 1000..1000000",
		         (unsigned long long)req->cpu_period);
		return -1;
	}
	return 0;
}

static void start(struct resize *r, const struct tp_call *call,
                  const Kuasar__Proxy__V1__ResizeRequest *req)
{
	r->busy = 1;
	r->call = *call;
	r->quota = req->cpu_quota;
	r->period = req->cpu_period ? req->cpu_period : 100000;
	r->mib = req->memory_mib;
	if (r->mib && r->mib > *r->vm_mib)
		r->step = STEP_BALLOON | STEP_GUEST << 8;
	else if (r->mib && r->mib < *r->vm_mib)
		r->step = STEP_GUEST | STEP_BALLOON << 8;
	else
		r->step = STEP_GUEST;
	next_step(r);
}

void resize_on_call(struct taskproxy *tp, const struct tp_call *call, const uint8_t *payload,
                    size_t len, void *arg)
{
	struct resize *r = arg;
	Kuasar__Proxy__V1__ResizeRequest *req;
	char why[256];

	if (r->busy) {
		taskproxy_answer(tp, call, RPC_ABORTED, NULL, 0, "a resize is in progress");
		return;
	}
	req = kuasar__proxy__v1__resize_request__unpack(NULL, len, payload);
	if (!req) {
		taskproxy_answer(tp, call, RPC_INVALID_ARGUMENT, NULL, 0,
		                 "malformed ResizeRequest");
		return;
	}
	if (check(r, req, why, sizeof(why)) < 0)
		taskproxy_answer(tp, call, RPC_INVALID_ARGUMENT, NULL, 0, why);
	else
		start(r, call, req);
	kuasar__proxy__v1__resize_request__free_unpacked(req, NULL);
}
