#include "proxy/taskproxy_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "base/log.h"
#include "proxy/rootdisk.h"
#include "rpc/agent.h"
#include "rpc/ttrpc_client.h"
#include "ttrpc.pb-c.h"

/* The guest sees a hot-added disk once its SCSI probe has run: MountShare answers NOT_FOUND
 * until then and is asked again, this often, for this long. */
#define DISK_RETRY_MS 2
#define DISK_WAIT_NS (5 * 1000000000LL)

static void on_mounted(void *owner, uintptr_t tag, const struct ttrpc_header *h,
                       const uint8_t *data);
static void on_built(struct loop_watch *w, uint32_t events);

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
void tp_disk_release(struct taskproxy *tp, const char *id)
{
	struct rootdisk *d = tp->disks && id[0] ? rootdisk_find(tp->disks, id) : NULL;

	if (!d)
		return;
	d->releasing = 1;
	if (tp->gone || !d->plugged ||
	    guest_mount(tp, d->target, 1, on_unmounted, tp, d->target) < 0)
		rootdisk_detach(tp->disks, d, !tp->gone);
}

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

static int ask_mount(struct tp_conn *c, struct tp_stream *s)
{
	return guest_mount(c->tp, s->target, 0, on_mounted, c, s->sid);
}

static void mount_retry(struct loop_timer *t)
{
	struct tp_stream *s = container_of(t, struct tp_stream, retry);
	struct tp_conn *c = s->c;

	if (ask_mount(c, s) < 0) {
		tp_client_error(c, s->sid, RPC_UNAVAILABLE, "the sandbox's guest link is down");
		tp_stream_end(c, s);
		tp_conn_reap(c);
	}
}

/* The root disk is mounted: the held Create goes on, on a route opened now (the guest wants
 * rising stream ids, after the MountShare ones). */
static void release_held(struct tp_conn *c, struct tp_stream *s)
{
	uint8_t *held = s->held;

	s->held = NULL;
	glink_close(c->tp->link, s->gid);
	s->gid = glink_open(c->tp->link, tp_from_guest, c, s->sid);
	if (!s->gid) {
		tp_client_error(c, s->sid, RPC_UNAVAILABLE, "the sandbox's guest link is down");
		s->held = held;
		tp_stream_drop(c, s);
		return;
	}
	tp_forward(c, s, TTRPC_REQUEST, s->held_flags, held, s->held_len);
	free(held);
}

static void on_mounted(void *owner, uintptr_t tag, const struct ttrpc_header *h,
                       const uint8_t *data)
{
	struct tp_conn *c = owner;
	struct tp_stream *s = tp_stream_find(c, (uint32_t)tag);
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
		tp_client_error(
		    c, s->sid, RPC_FAILED_PRECONDITION,
		    "Create %s: the guest did not mount the root disk (SCSI target %u): %s",
		    s->undo, s->target, msg);
		tp_stream_end(c, s);
	}
	tp_conn_reap(c);
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
		tp_client_error(c, s->sid, RPC_INTERNAL, "Create %s: its root disk is gone",
		                s->undo);
	} else if (rc != 0 || rootdisk_plug(c->tp->disks, d, &err) < 0) {
		tp_client_error(c, s->sid, RPC_FAILED_PRECONDITION, "Create %s: root disk: %s",
		                s->undo, err.msg);
	} else {
		log_info("Create %s: root disk on SCSI target %u, %zu layers built into %s in %.1f "
		         "ms",
		         s->undo, d->target, d->n_layers, d->img.path, d->img.build_ms);
		s->plugging = 1;
		return;
	}
	tp_stream_end(c, s);
	tp_conn_reap(c);
}

/* A Create whose root disk the guest must mount first: the request waits in the stream,
 * while the disk's image is built if it must be. */
void tp_disk_hold(struct tp_conn *c, struct tp_stream *s, uint8_t flags, uint8_t *buf, uint32_t len,
                  unsigned target)
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
		tp_client_error(c, s->sid, RPC_INTERNAL, "Create %s: its root disk is gone",
		                s->undo);
	} else if (d->build_pid > 0) {
		if (watch_build(c, s, d, &err) == 0)
			return;
		tp_client_error(c, s->sid, RPC_INTERNAL, "Create %s: %s", s->undo, err.msg);
	} else if (rootdisk_plug(c->tp->disks, d, &err) == 0) {
		s->plugging = 1;
		return;
	} else {
		tp_client_error(c, s->sid, RPC_FAILED_PRECONDITION, "Create %s: root disk: %s",
		                s->undo, err.msg);
	}
	tp_stream_end(c, s);
}

/* The Create waiting for d's plug: its disk is on the bus and the guest mounts it, or the
 * Create fails. */
void tp_disk_on_plugged(void *arg, struct rootdisk *d, const kerr_t *err)
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
		tp_client_error(c, s->sid, RPC_FAILED_PRECONDITION, "Create %s: root disk: %s",
		                s->undo, err->msg);
	} else {
		s->mount_deadline_ns = mono_ns() + DISK_WAIT_NS;
		if (ask_mount(c, s) == 0)
			return;
		tp_client_error(c, s->sid, RPC_UNAVAILABLE, "the sandbox's guest link is down");
	}
	tp_stream_end(c, s);
	tp_conn_reap(c);
}

void tp_disk_stream_free(struct taskproxy *tp, struct tp_stream *s)
{
	if (s->building) {
		loop_del(tp->loop, &s->build_w);
		close(s->build_w.fd);
	}
	if (s->held) {
		loop_timer_cancel(tp->loop, &s->retry);
		free(s->held);
		bundle_remove(&tp->bundles, s->undo);
		tp_disk_release(tp, s->undo);
	}
}
