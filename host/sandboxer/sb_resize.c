#include "sandboxer/sb_resize.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "google/protobuf/empty.pb-c.h"
#include "host/proxy.pb-c.h"
#include "rpc/grpc.h"
#include "rpc/ttrpc_client.h"
#include "sandboxer/sandbox.h"
#include "sandboxer/sb_cgroup.h"

#define RESIZE_TIMEOUT_MS 30000

/* One resize waiting for the task proxy's answer. The sandbox is found again by id when the
 * answer comes: it may have gone meanwhile. */
struct resize_call {
	struct sandboxer *sbx;
	char id[ID_MAX + 1];
	struct grpc_call *call;
	struct loop_watch w;
	struct loop_timer timer;
	struct ttrpc_reader rd;
	unsigned mib;
};

/* The VM's memory for r (its boot size when r has no limit) and r's CPUs against its
 * vCPUs: a VM grows neither (no hotplug), so more than it booted with is refused. */
static int resize_check(const struct sandbox *sb, const struct pod_resize *r, unsigned *mib,
                        kerr_t *err)
{
	int64_t limit = r->memory > 0 ? r->memory + (r->ovh_memory > 0 ? r->ovh_memory : 0) : 0;

	*mib = sb->memory_mib;
	if (limit > 0 && pod_vm_mib(&sb->sbx->cfg, limit, mib, err) < 0)
		return -1;
	if (*mib > sb->memory_mib)
		return kerr_set(err, EINVAL,
		                "memory limit of %lld bytes needs a VM of %u MiB, and this one "
		                "booted with %u MiB: a VM cannot grow past that (no memory "
		                "hotplug); recreate the pod to give it more",
		                (long long)limit, *mib, sb->memory_mib);
	if (r->cpu_quota > 0) {
		int64_t period = r->cpu_period > 0 ? r->cpu_period : 100000;
		int64_t cpus = (r->cpu_quota + period - 1) / period;

		if (cpus > sb->vcpus)
			return kerr_set(err, EINVAL,
			                "cpu quota %lld/%lld asks for %lld CPUs and the VM has %u "
			                "vCPUs (no CPU hotplug): recreate the pod to give it more",
			                (long long)r->cpu_quota, (long long)period, (long long)cpus,
			                sb->vcpus);
	}
	return 0;
}

static void call_free(struct resize_call *rc)
{
	loop_timer_cancel(&rc->sbx->loop, &rc->timer);
	if (rc->w.fd >= 0) {
		loop_del(&rc->sbx->loop, &rc->w);
		close(rc->w.fd);
	}
	ttrpc_reader_free(&rc->rd);
	free(rc);
}

static void call_cancelled(struct grpc_call *call, void *arg)
{
	(void)call;
	call_free(arg);
}

static void call_end(struct resize_call *rc, int code, const char *msg)
{
	struct sandbox *sb = sandbox_find(rc->sbx, rc->id);

	grpc_call_on_cancel(rc->call, NULL, NULL);
	if (code) {
		grpc_reply_error(rc->call, code, "sandbox %s: resize: %s", rc->id, msg);
	} else {
		if (sb) { /* a restarted daemon reads it back */
			sb->memory_now_mib = rc->mib;
			sandbox_save(sb);
		}
		log_info("sandbox %s resized: the VM has %u MiB", rc->id, rc->mib);
		grpc_reply(rc->call, NULL);
	}
	call_free(rc);
}

static void on_answer(struct loop_watch *w, uint32_t events)
{
	struct resize_call *rc = container_of(w, struct resize_call, w);
	struct ttrpc_header h;
	struct ttrpc_status st = { 0 };
	const uint8_t *data;
	uint8_t *payload = NULL;
	size_t n = 0;
	ssize_t got = ttrpc_reader_fill(&rc->rd, w->fd);

	(void)events;
	if (got < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (ttrpc_reader_next(&rc->rd, &h, &data) != TTRPC_FRAME) {
		if (got <= 0)
			call_end(rc, RPC_UNAVAILABLE, "the task proxy closed the connection");
		return;
	}
	if (h.type != TTRPC_RESPONSE || h.stream != 1 ||
	    ttrpc_decode_response(data ? data : (const uint8_t *)"", h.length, &st, &payload, &n) <
	        0) {
		call_end(rc, RPC_INTERNAL, "the task proxy's answer is malformed");
		return;
	}
	free(payload);
	call_end(rc, st.code, st.message);
}

static void on_timeout(struct loop_timer *t)
{
	struct resize_call *rc = container_of(t, struct resize_call, timer);

	call_end(rc, RPC_DEADLINE_EXCEEDED, "the task proxy did not answer in time");
}

/* A connection to the sandbox's task socket that never blocks the loop (a full backlog
 * fails at once); -1 with err set. */
static int proxy_connect(const struct sandbox *sb, kerr_t *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (fmt_path(sa.sun_path, sizeof(sa.sun_path), "%s/" TASK_SOCK, sb->paths.dir) < 0)
		return kerr_set(err, ENAMETOOLONG, "task socket path too long");
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return kerr_sys(err, "socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		kerr_sys(err, "connect to %s", sa.sun_path);
		close(fd);
		return -1;
	}
	return fd;
}

/* Sends the Resize request; -1 with err set. */
static int send_resize(struct resize_call *rc, const struct sandbox *sb, const struct pod_resize *r,
                       kerr_t *err)
{
	Kuasar__Proxy__V1__ResizeRequest req = KUASAR__PROXY__V1__RESIZE_REQUEST__INIT;
	uint8_t payload[64], *frame = NULL;
	size_t n, flen;
	ssize_t w;

	req.cpu_quota = r->cpu_quota > 0 ? r->cpu_quota : -1;
	req.cpu_period = r->cpu_period > 0 ? (uint64_t)r->cpu_period : 100000;
	req.memory_mib = rc->mib;
	n = kuasar__proxy__v1__resize_request__pack(&req, payload);
	rc->w.fd = proxy_connect(sb, err);
	if (rc->w.fd < 0)
		return -1;
	if (ttrpc_encode_request(1, "kuasar.proxy.v1.Proxy", "Resize", payload, n, &frame, &flen) <
	    0)
		return kerr_set(err, ENOMEM, "out of memory");
	w = write(rc->w.fd, frame, flen);
	free(frame);
	if (w != (ssize_t)flen)
		return kerr_sys(err, "write to the task proxy");
	rc->w.fn = on_answer;
	return loop_add(&rc->sbx->loop, &rc->w, EPOLLIN, err);
}

/* The host side of the CPU limit: the sandbox's cgroup, the overhead's quota added. */
static int host_cpu(const struct sandbox *sb, const struct pod_resize *r, kerr_t *err)
{
	int64_t period = r->cpu_period > 0 ? r->cpu_period : 100000;
	int64_t quota =
	    r->cpu_quota > 0 ? r->cpu_quota + (r->ovh_cpu_quota > 0 ? r->ovh_cpu_quota : 0) : -1;

	if (!sb->has_cgroup)
		return 0;
	return sb_cgroup_set_cpu(sb->cg_parent, sb->id, quota, period, err);
}

void sandbox_resize(struct sandbox *sb, const struct pod_resize *r, struct grpc_call *call)
{
	struct resize_call *rc = calloc(1, sizeof(*rc));
	kerr_t err;

	if (!rc) {
		grpc_reply_error(call, RPC_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	rc->sbx = sb->sbx;
	rc->call = call;
	rc->w.fd = -1;
	rc->timer.fn = on_timeout;
	snprintf(rc->id, sizeof(rc->id), "%s", sb->id);
	if (resize_check(sb, r, &rc->mib, &err) < 0 || host_cpu(sb, r, &err) < 0 ||
	    send_resize(rc, sb, r, &err) < 0) {
		grpc_reply_error(call,
		                 err.errnum == EINVAL ? RPC_INVALID_ARGUMENT : RPC_UNAVAILABLE,
		                 "sandbox %s: resize: %s", sb->id, err.msg);
		call_free(rc);
		return;
	}
	grpc_call_on_cancel(call, call_cancelled, rc);
	loop_timer_arm(&sb->sbx->loop, &rc->timer, RESIZE_TIMEOUT_MS);
}
