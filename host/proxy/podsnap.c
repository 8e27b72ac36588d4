#include "proxy/podsnap.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "base/syscalls.h"
#include "base/util.h"
#include "host/proxy.pb-c.h"
#include "net/podnet.h"
#include "proxy/rootdisk.h"
#include "proxy/rootimg.h"
#include "rpc/agent.h"
#include "rpc/ttrpc_client.h"
#include "sandbox.pb-c.h"

#define GUEST_STEP_MS 10000
/* vm_snapshot bounds itself at 120 s; the child is killed past this. */
#define CHILD_MS 150000
#define CLOCK_TOLERANCE_NS 1000000

enum { STEP_UNMOUNT = 1, STEP_CHILD, STEP_MOUNT, STEP_CLOCK, STEP_CLOCK_SET };

/* What the child says of its vm_snapshot, in one write. */
struct child_result {
	int errnum;
	char msg[1024];
	struct vm_snap_times t;
};

static void answer(struct podsnap *s)
{
	Kuasar__Proxy__V1__SnapshotResponse r = KUASAR__PROXY__V1__SNAPSHOT_RESPONSE__INIT;
	json_object *o = json_object_new_object();
	uint8_t *buf;
	size_t n;

	vm_shape_write(o, &s->shape.cfg);
	r.shape_json = (char *)json_object_to_json_string_ext(o, 0);
	r.pause_ms = s->times.pause_ms;
	r.migrate_ms = s->times.migrate_ms;
	r.save_ms = s->times.save_ms;
	r.total_ms = s->times.total_ms;
	r.state_bytes = s->times.state_bytes;
	n = kuasar__proxy__v1__snapshot_response__get_packed_size(&r);
	buf = malloc(n ? n : 1);
	if (!buf) {
		taskproxy_answer(s->tp, &s->call, RPC_RESOURCE_EXHAUSTED, NULL, 0, "out of memory");
	} else {
		kuasar__proxy__v1__snapshot_response__pack(&r, buf);
		taskproxy_answer(s->tp, &s->call, 0, buf, n, NULL);
	}
	free(buf);
	json_object_put(o);
}

/* The call ends: with the snapshot's outcome when code is 0 here. */
static void finish(struct podsnap *s, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void finish(struct podsnap *s, int code, const char *fmt, ...)
{
	va_list ap;

	if (code && !s->code) {
		s->code = code;
		va_start(ap, fmt);
		vsnprintf(s->msg, sizeof(s->msg), fmt, ap);
		va_end(ap);
	}
	loop_timer_cancel(s->loop, &s->timer);
	gcall_cancel(&s->gc);
	s->busy = 0;
	if (s->code) {
		log_warn("snapshot: %s", s->msg);
		taskproxy_answer(s->tp, &s->call, s->code, NULL, 0, s->msg);
		return;
	}
	log_info("snapshot: paused %.1f ms, %.1f ms in all, %lld bytes of device state",
	         s->times.pause_ms, s->times.total_ms, s->times.state_bytes);
	answer(s);
}

static void step(struct podsnap *s, int next);

static void on_guest(struct gcall *c, int code, const char *msg, const uint8_t *payload, size_t n);

/* One request to the guest's sandbox service; its answer comes to on_guest. */
static void guest_call(struct podsnap *s, const char *method, const uint8_t *buf, size_t n)
{
	gcall_start(&s->gc, method, buf, n);
}

static void share_call(struct podsnap *s, int unmount)
{
	Kuasar__Sandbox__V1__MountShareRequest req = KUASAR__SANDBOX__V1__MOUNT_SHARE_REQUEST__INIT;
	uint8_t buf[64];

	req.fstype = "9p";
	req.unmount = unmount;
	guest_call(s, "MountShare", buf, kuasar__sandbox__v1__mount_share_request__pack(&req, buf));
}

static void clock_call(struct podsnap *s, int64_t offset, int apply)
{
	Kuasar__Sandbox__V1__SyncClockRequest req = KUASAR__SANDBOX__V1__SYNC_CLOCK_REQUEST__INIT;
	uint8_t buf[64];

	req.offset_ns = offset;
	req.apply = apply;
	s->clock_t0 = req.host_send_ns = real_ns();
	guest_call(s, "SyncClock", buf, kuasar__sandbox__v1__sync_clock_request__pack(&req, buf));
}

/* One clock round's answer: in tolerance, done; else the offset is applied. */
static void clock_answer(struct podsnap *s, const uint8_t *payload, size_t n)
{
	Kuasar__Sandbox__V1__SyncClockResponse *r =
	    kuasar__sandbox__v1__sync_clock_response__unpack(NULL, n, payload);
	int64_t t[4] = { s->clock_t0, 0, 0, real_ns() }, rtt;
	int settled;

	if (!r) {
		finish(s, RPC_INTERNAL, "the guest's SyncClock answer is malformed");
		return;
	}
	t[1] = r->guest_recv_ns;
	t[2] = r->guest_send_ns;
	kuasar__sandbox__v1__sync_clock_response__free_unpacked(r, NULL);
	settled = clock_round_estimate(t, CLOCK_TOLERANCE_NS, &s->clock_off, &rtt);
	step(s, settled ? 0 : STEP_CLOCK_SET);
}

static void on_guest(struct gcall *c, int code, const char *msg, const uint8_t *payload, size_t n)
{
	struct podsnap *s = container_of(c, struct podsnap, gc);

	if (code && s->step == STEP_UNMOUNT)
		finish(s, code == RPC_FAILED_PRECONDITION ? code : RPC_UNAVAILABLE,
		       "the guest keeps its share mounted: %s", msg);
	else if (code && s->step == STEP_MOUNT)
		finish(s, RPC_INTERNAL, "the share could not be mounted again: %s", msg);
	else if (code)
		finish(s, RPC_INTERNAL, "the guest's clock after the pause: %s", msg);
	else if (s->step == STEP_CLOCK)
		clock_answer(s, payload, n);
	else
		step(s, s->step == STEP_UNMOUNT ? STEP_CHILD
		        : s->step == STEP_MOUNT ? STEP_CLOCK
		                                : 0);
}

/* ---- the child that snapshots ---- */

static int scratch_taps(unsigned n, int *fds, kerr_t *err)
{
	return podnet_scratch_taps(n, fds, err);
}

static void child_main(struct podsnap *s, int out)
{
	struct vm v = *s->vm;
	struct vm_snap_env env = { .run_dir = s->run_dir, .scratch_taps = scratch_taps };
	struct child_result r = { 0 };
	kerr_t err = { 0 };

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	rootimg_leave_cgroup(s->cgroup, "the snapshot");
	v.qmp.lent = 0;
	v.qmp.loop = NULL;
	v.sigfd = -1;
	if (vm_snapshot(&v, &s->shape, &env, s->mem, s->state, &r.t, &err) < 0) {
		r.errnum = err.errnum ? err.errnum : EIO;
		fmt_msg(r.msg, sizeof(r.msg), "%s", err.msg);
	}
	_exit(write(out, &r, sizeof(r)) == (ssize_t)sizeof(r) ? 0 : 1);
}

/* The child's result, once it has exited (its pipe holds it whole, or nothing). */
static void child_done(struct loop_watch *w, uint32_t events)
{
	struct podsnap *s = container_of(w, struct podsnap, child_w);
	struct child_result r = { .errnum = EIO };
	kerr_t err;

	(void)events;
	loop_close(s->loop, &s->child_w);
	loop_timer_cancel(s->loop, &s->timer);
	waitpid(s->child, NULL, WNOHANG);
	s->child = 0;
	if (read(s->result_fd, &r, sizeof(r)) != (ssize_t)sizeof(r)) {
		if (!s->msg[0])
			fmt_msg(s->msg, sizeof(s->msg),
			        "the snapshot's process ended without a word");
		fmt_msg(r.msg, sizeof(r.msg), "%s", s->msg);
		vm_snapshot_cleanup(s->run_dir, s->vm->id);
	}
	close(s->result_fd);
	s->result_fd = -1;
	if (qmp_take_back(&s->vm->qmp, s->loop, &err) < 0)
		log_warn("snapshot: the VMM's QMP connection: %s", err.msg);
	s->times = r.t;
	if (r.errnum) {
		s->code = r.errnum == EOPNOTSUPP || r.errnum == EBUSY ? RPC_FAILED_PRECONDITION
		                                                      : RPC_INTERNAL;
		fmt_msg(s->msg, sizeof(s->msg), "%s%s", r.msg,
		        r.errnum == EBUSY && strstr(r.msg, "VirtFS")
		            ? " (a container still uses the share: a 9p root filesystem or a host "
		              "volume; a pod whose containers have root disks and no host volumes "
		              "can be snapshotted)"
		            : "");
	}
	step(s, STEP_MOUNT);
}

static int child_start(struct podsnap *s, kerr_t *err)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		return kerr_sys(err, "pipe");
	if (qmp_lend(&s->vm->qmp, err) < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	s->child = fork();
	if (s->child == 0)
		child_main(s, p[1]);
	close(p[1]);
	s->result_fd = p[0];
	s->child_w.fd = s->child > 0 ? sys_pidfd_open(s->child) : -1;
	s->child_w.fn = child_done;
	if (s->child_w.fd >= 0 && loop_add(s->loop, &s->child_w, EPOLLIN, err) == 0) {
		loop_timer_arm(s->loop, &s->timer, CHILD_MS);
		return 0;
	}
	kerr_sys(err, "start the snapshot's process");
	if (s->child > 0) {
		kill(s->child, SIGKILL);
		waitpid(s->child, NULL, 0); /* just killed: no wait to speak of */
	}
	if (s->child_w.fd >= 0)
		close(s->child_w.fd);
	close(s->result_fd);
	s->result_fd = -1;
	s->child = 0;
	qmp_take_back(&s->vm->qmp, s->loop, &(kerr_t){ 0 });
	return -1;
}

static void step(struct podsnap *s, int next)
{
	kerr_t err;

	s->step = next;
	switch (next) {
	case STEP_UNMOUNT: share_call(s, 1); break;
	case STEP_CHILD:
		if (child_start(s, &err) < 0) {
			s->code = RPC_UNAVAILABLE;
			fmt_msg(s->msg, sizeof(s->msg), "%s", err.msg);
			step(s, STEP_MOUNT);
		}
		break;
	case STEP_MOUNT: share_call(s, 0); break;
	case STEP_CLOCK: clock_call(s, 0, 0); break;
	case STEP_CLOCK_SET: clock_call(s, s->clock_off, 1); break;
	default: finish(s, 0, "done");
	}
}

static void on_timeout(struct loop_timer *t)
{
	struct podsnap *s = container_of(t, struct podsnap, timer);

	if (s->child > 0) {
		fmt_msg(s->msg, sizeof(s->msg), "the snapshot took more than %d s",
		        CHILD_MS / 1000);
		kill(s->child, SIGKILL); /* its exit, on the pidfd, goes on */
	}
}

/* ---- the call ---- */

/* The disks on the bus, each idle and plugged, into the shape. */
static int shape_disks(struct podsnap *s, kerr_t *err)
{
	struct rootdisks *rd = s->tp->disks;

	for (struct rootdisk *d = rd ? rd->list : NULL; d; d = d->next) {
		if (d->busy || d->build_pid > 0 || d->releasing || d->unplugging || !d->plugged)
			return kerr_set(err, EAGAIN, "container %s's root disk is being %s", d->id,
			                d->plugged ? "removed" : "added");
		if (vm_shape_add_disk(&s->shape, d->node, d->target, d->img.path, err) < 0)
			return -1;
	}
	return 0;
}

static int check_path(const char *what, const char *p, kerr_t *err)
{
	size_t n = strlen(p);

	if (p[0] != '/' || strstr(p, "/../") || (n >= 3 && !strcmp(p + n - 3, "/..")) ||
	    n >= KPATH_SIZE)
		return kerr_set(err, EINVAL, "%s `%.64s` is not an absolute path without `..`",
		                what, p);
	return 0;
}

/* What can be done before the guest is asked: paths, the VM's shape, its disks kept. */
static int prepare(struct podsnap *s, const Kuasar__Proxy__V1__SnapshotRequest *req, kerr_t *err)
{
	int dirfd, rc;

	if (check_path("mem_path", req->mem_path, err) < 0 ||
	    check_path("state_path", req->state_path, err) < 0 ||
	    check_path("disk_dir", req->disk_dir, err) < 0)
		return -1;
	snprintf(s->mem, sizeof(s->mem), "%s", req->mem_path);
	snprintf(s->state, sizeof(s->state), "%s", req->state_path);
	if (vm_shape_of(s->vm, &s->shape, err) < 0 || shape_disks(s, err) < 0)
		return -1;
	dirfd = open(req->disk_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dirfd < 0)
		return kerr_sys(err, "open %s", req->disk_dir);
	rc = vm_shape_keep_disks(&s->shape, dirfd, req->disk_dir, err);
	close(dirfd);
	return rc;
}

static int rpc_code(int errnum)
{
	switch (errnum) {
	case EINVAL: return RPC_INVALID_ARGUMENT;
	case EAGAIN: return RPC_UNAVAILABLE;
	case EOPNOTSUPP: return RPC_FAILED_PRECONDITION;
	default: return RPC_INTERNAL;
	}
}

void podsnap_on_call(struct taskproxy *tp, const struct tp_call *call, const uint8_t *payload,
                     size_t len, void *arg)
{
	struct podsnap *s = arg;
	Kuasar__Proxy__V1__SnapshotRequest *req;
	kerr_t err;

	if (s->busy) {
		taskproxy_answer(tp, call, RPC_UNAVAILABLE, NULL, 0, "a snapshot is in progress");
		return;
	}
	req = kuasar__proxy__v1__snapshot_request__unpack(NULL, len, payload);
	if (!req) {
		taskproxy_answer(tp, call, RPC_INVALID_ARGUMENT, NULL, 0,
		                 "malformed SnapshotRequest");
		return;
	}
	s->busy = 1;
	s->call = *call;
	s->gc = (struct gcall){ .loop = s->loop,
		                .link = s->link,
		                .done = on_guest,
		                .timeout_ms = s->guest_ms > 0 ? s->guest_ms : GUEST_STEP_MS };
	s->code = 0;
	s->msg[0] = '\0';
	memset(&s->times, 0, sizeof(s->times));
	s->timer.fn = on_timeout;
	if (prepare(s, req, &err) < 0)
		finish(s, rpc_code(err.errnum), "%s", err.msg);
	else
		step(s, STEP_UNMOUNT);
	kuasar__proxy__v1__snapshot_request__free_unpacked(req, NULL);
}
