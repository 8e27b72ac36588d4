/* The task proxy's guards against a hostile guest and a leaving client, without a VM: the
 * loop never hands a freed watch to a later callback of the same batch, guest events pass
 * only for this sandbox's containers, and a guest answer racing a client's hang-up frees
 * the connection once (the double free of issue 19; run under ASan by make check). */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fsat.h"
#include "base/loop.h"
#include "base/util.h"
#include "events.pb-c.h"
#include "host/proxy.pb-c.h"
#include "proxy/bundle.h"
#include "proxy/callbound.h"
#include "proxy/event_filter.h"
#include "proxy/events_fwd.h"
#include "proxy/glink.h"
#include "proxy/podsnap.h"
#include "proxy/pooled.h"
#include "proxy/taskproxy.h"
#include "rpc/ttrpc_client.h"
#include "sandbox.pb-c.h"
#include "tap.h"
#include "ttrpc.pb-c.h"

/* ---- the loop ---- */

struct victim {
	struct loop_watch w;
};

static struct loop tl;
static struct victim *doomed;
static int victim_calls;

static void killer_fn(struct loop_watch *w, uint32_t events)
{
	loop_del(&tl, &doomed->w);
	close(doomed->w.fd);
	free(doomed);
	doomed = NULL;
	loop_del(&tl, w);
}

static void victim_fn(struct loop_watch *w, uint32_t events)
{
	victim_calls++;
}

static struct loop_timer stopper;

static void stop_loop(struct loop_timer *t)
{
	tl.stop = 1;
}

/* Two watches ready in one batch, the killer first (epoll reports fds in the order they
 * became ready); it frees the other. */
static void test_loop_batch(void)
{
	int a[2], b[2];
	struct loop_watch killer = { .fn = killer_fn };
	kerr_t err;

	ok(loop_init(&tl, &err) == 0, "loop");
	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a);
	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b);
	doomed = calloc(1, sizeof(*doomed));
	doomed->w.fd = b[0];
	doomed->w.fn = victim_fn;
	killer.fd = a[0];
	loop_add(&tl, &killer, EPOLLIN, &err);
	loop_add(&tl, &doomed->w, EPOLLIN, &err);
	write(a[1], "x", 1);
	write(b[1], "x", 1);
	stopper.fn = stop_loop;
	loop_timer_arm(&tl, &stopper, 200);
	loop_run(&tl);
	loop_timer_cancel(&tl, &stopper);
	ok(!doomed && victim_calls == 0,
	   "a watch deleted by an earlier callback of the batch is not called");
	close(a[0]);
	close(a[1]);
	close(b[1]);
	close(tl.epfd);
}

/* ---- the event filter ---- */

static int owns_c1(const char *id, void *arg)
{
	return !strcmp(id, "c1");
}

static int check(const char *topic, const char *type, const ProtobufCMessage *m,
                 struct event_checked *out)
{
	uint8_t buf[1024];
	size_t n = m ? protobuf_c_message_pack(m, buf) : 0;
	char why[256];
	int rc = event_check(topic, type, buf, n, owns_c1, NULL, out, why, sizeof(why));

	if (rc < 0)
		printf("# dropped: %s\n", why);
	return rc;
}

static void test_event_filter(void)
{
	Containerd__Events__TaskExit ex = CONTAINERD__EVENTS__TASK_EXIT__INIT;
	Containerd__Events__TaskOOM oom = CONTAINERD__EVENTS__TASK_OOM__INIT;
	Containerd__Events__TaskExit *back;
	struct event_checked out;
	/* container_id "c1" then "c2": a protobuf reader takes the last, as containerd does. */
	static const uint8_t twice[] = { 0x0a, 2, 'c', '1', 0x0a, 2, 'c', '2' };
	char why[256];

	ex.container_id = "c1";
	ex.id = "c1";
	ex.exit_status = 3;
	ok(check("/tasks/exit", "containerd.events.TaskExit", &ex.base, &out) == 0,
	   "an exit of our container passes");
	back = containerd__events__task_exit__unpack(NULL, out.len, out.value);
	ok(back && !strcmp(back->container_id, "c1") && back->exit_status == 3,
	   "what passes is the checked event");
	containerd__events__task_exit__free_unpacked(back, NULL);
	free(out.value);
	ex.container_id = "c2";
	ok(check("/tasks/exit", "containerd.events.TaskExit", &ex.base, &out) < 0,
	   "an exit of another sandbox's container is dropped");
	oom.container_id = "c2";
	ok(check("/tasks/oom", "containerd.events.TaskOOM", &oom.base, &out) < 0,
	   "an OOM of another sandbox's container is dropped");
	oom.container_id = "c1";
	ok(check("/tasks/oom", "containerd.events.TaskOOM", &oom.base, &out) == 0,
	   "our own OOM passes");
	free(out.value);
	ok(check("/tasks/exit", "containerd.events.TaskOOM", &oom.base, &out) < 0,
	   "a type that is not the topic's is dropped");
	ok(check("/containers/delete", "containerd.events.TaskOOM", &oom.base, &out) < 0,
	   "a topic that is not a task event is dropped");
	ok(check("/tasks/oom", NULL, &oom.base, &out) < 0, "no type is dropped");
	ok(event_check("/tasks/oom", "containerd.events.TaskOOM", twice, sizeof(twice), owns_c1,
	               NULL, &out, why, sizeof(why)) < 0,
	   "a repeated container id is read as containerd reads it (the last: c2, dropped)");
	ok(event_check("/tasks/oom", "containerd.events.TaskOOM", (const uint8_t *)"\x0a\x09", 2,
	               owns_c1, NULL, &out, why, sizeof(why)) < 0,
	   "a malformed event is dropped");
	ex.container_id = "c1";
	ex.id = "../x";
	ok(check("/tasks/exit", "containerd.events.TaskExit", &ex.base, &out) < 0,
	   "an exit naming a malformed process id is dropped");
}

/* ---- a guest answer racing the client's hang-up ---- */

static void send_frame(int fd, uint32_t sid, uint8_t type, const uint8_t *data, uint32_t len)
{
	struct ttrpc_header h = { len, sid, type, 0 };
	uint8_t hdr[TTRPC_HEADER_LEN];

	ttrpc_header_encode(hdr, &h);
	write_all(fd, hdr, sizeof(hdr));
	write_all(fd, data, len);
}

/* The guest's end: reads until a whole request frame has come, returns its stream id. */
static uint32_t guest_read_request(int guest)
{
	struct ttrpc_reader rd = { 0 };
	struct ttrpc_header h = { 0 };
	const uint8_t *d;
	uint32_t gid = 0;

	for (int i = 0; i < 200 && !gid; i++) {
		if (ttrpc_reader_fill(&rd, guest) < 0 && errno != EAGAIN)
			break;
		if (ttrpc_reader_next(&rd, &h, &d) == TTRPC_FRAME && h.type == TTRPC_REQUEST)
			gid = h.stream;
		else
			usleep(5000);
	}
	ttrpc_reader_free(&rd);
	return gid;
}

static void run_for(struct loop *l, int ms)
{
	stopper.fn = stop_loop;
	loop_timer_arm(l, &stopper, ms);
	l->stop = 0;
	loop_run(l);
	loop_timer_cancel(l, &stopper);
	l->stop = 0;
}

/* A task proxy on a socketpair link: the test holds the guest's end and one client. */
struct rig {
	char dir[32], sock[128], shared[128];
	struct glink link;
	struct taskproxy tp;
	int guest, client;
};

/* The task proxy serving, its directory made (/tmp/kuasar-<tag>.XXXXXX); no client yet. */
static int rig_init(struct rig *r, const char *tag)
{
	int sv[2];
	kerr_t err;

	memset(r, 0, sizeof(*r));
	r->client = -1;
	snprintf(r->dir, sizeof(r->dir), "/tmp/kuasar-%s.XXXXXX", tag);
	mkdtemp(r->dir);
	snprintf(r->sock, sizeof(r->sock), "%s/task.sock", r->dir);
	snprintf(r->shared, sizeof(r->shared), "%s/shared", r->dir);
	mkdir(r->shared, 0755);
	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	r->guest = sv[1];
	if (loop_init(&tl, &err) < 0 || glink_start(&r->link, &tl, sv[0], &err) < 0 ||
	    taskproxy_start(&r->tp, &tl, &r->link, r->sock, r->shared, &err) < 0)
		return -1;
	return 0;
}

/* Up, with a client that sent one request (service/method; a stream when bidi) which the
 * guest has read: its guest stream id, 0 if it never came. */
static uint32_t rig_up(struct rig *r, const char *service, const char *method, int bidi)
{
	uint8_t *frame = NULL;
	size_t flen;
	kerr_t err;

	if (rig_init(r, "tp") < 0)
		return 0;
	r->client = unix_connect(r->sock, &err);
	ttrpc_encode_request(1, service, method, NULL, 0, &frame, &flen);
	if (bidi)
		frame[9] = TTRPC_FLAG_REMOTE_OPEN;
	write_all(r->client, frame, flen);
	free(frame);
	run_for(&tl, 50);
	return guest_read_request(r->guest);
}

static void rig_down(struct rig *r)
{
	if (r->client >= 0)
		close(r->client);
	taskproxy_stop(&r->tp);
	glink_stop(&r->link);
	close(r->guest);
	close(tl.epfd);
	unlink(r->sock);
	rmdir(r->shared);
	rmdir(r->dir);
}

static void test_answer_after_hangup(void)
{
	Ttrpc__Response resp = TTRPC__RESPONSE__INIT;
	struct rig r;
	uint8_t rbuf[64];
	uint32_t gid;

	signal(SIGPIPE, SIG_IGN);
	gid = rig_up(&r, "containerd.task.v3.Task", "Wait", 0);
	ok(gid != 0, "the Wait reached the guest (stream %u)", gid);
	/* The answer is on the link before the hang-up: one batch holds both, the link first. */
	send_frame(r.guest, gid, TTRPC_RESPONSE, rbuf,
	           (uint32_t)ttrpc__response__pack(&resp, rbuf));
	close(r.client);
	r.client = -1;
	run_for(&tl, 100);
	ok(r.tp.n_conns == 0, "the connection was closed once (ASan checks the free)");
	rig_down(&r);
}

/* ---- a guest that does not answer ---- */

/* The next response frame the client reads within ms: its stream and payload (malloc'd). */
static int client_response(int fd, int ms, uint32_t *sid, Ttrpc__Response **out)
{
	struct ttrpc_reader rd = { 0 };
	struct ttrpc_header h;
	const uint8_t *d;
	int rc = -1;

	fcntl(fd, F_SETFL, O_NONBLOCK);
	for (int i = 0; i < ms / 5 && rc < 0; i++) {
		run_for(&tl, 5);
		ttrpc_reader_fill(&rd, fd);
		if (ttrpc_reader_next(&rd, &h, &d) == TTRPC_FRAME && h.type == TTRPC_RESPONSE) {
			*sid = h.stream;
			*out = ttrpc__response__unpack(NULL, h.length, d);
			rc = *out ? 0 : -1;
		}
	}
	ttrpc_reader_free(&rd);
	return rc;
}

static void test_late_guest(void)
{
	Ttrpc__Response resp = TTRPC__RESPONSE__INIT, *got = NULL;
	struct rig r;
	uint8_t buf[64], *frame = NULL;
	size_t flen;
	uint32_t gid, sid = 0;
	int64_t t0;

	gid = rig_up(&r, "containerd.task.v3.Task", "Stats", 0);
	resp.payload.data = (uint8_t *)"A";
	resp.payload.len = 1;
	send_frame(r.guest, gid, TTRPC_RESPONSE, buf, (uint32_t)ttrpc__response__pack(&resp, buf));
	ok(client_response(r.client, 500, &sid, &got) == 0 && sid == 1 && got->payload.len == 1,
	   "the guest's Stats answer reaches the client");
	ttrpc__response__free_unpacked(got, NULL);
	/* The same Stats again; the guest reads it and says nothing. */
	ttrpc_encode_request(3, "containerd.task.v3.Task", "Stats", NULL, 0, &frame, &flen);
	write_all(r.client, frame, flen);
	free(frame);
	t0 = mono_ns();
	ok(client_response(r.client, 2000, &sid, &got) == 0 && sid == 3 && got->payload.len == 1 &&
	       got->payload.data[0] == 'A' && !got->status,
	   "a late guest's Stats is answered with its last answer, in %lld ms",
	   (long long)((mono_ns() - t0) / 1000000));
	ttrpc__response__free_unpacked(got, NULL);
	/* A call with nothing to give for it: DEADLINE_EXCEEDED, within its bound. */
	ttrpc_encode_request(5, "containerd.task.v3.Task", "Pids", NULL, 0, &frame, &flen);
	write_all(r.client, frame, flen);
	free(frame);
	ok(client_response(r.client, 2000, &sid, &got) == 0 && sid == 5 && got->status &&
	       got->status->code == RPC_DEADLINE_EXCEEDED,
	   "an unanswered Pids, never answered before, ends with DEADLINE_EXCEEDED: %s",
	   got && got->status ? got->status->message : "");
	if (got)
		ttrpc__response__free_unpacked(got, NULL);
	rig_down(&r);
}

static void test_answer_cache(void)
{
	struct answers c = { 0 };
	char key[8];

	ok(call_kind("containerd.task.v3.Task", "Stats", 0) == CALL_CACHED &&
	       call_kind("containerd.task.v2.Task", "Kill", 0) == CALL_KILL &&
	       call_kind("containerd.task.v3.Task", "Wait", 0) == CALL_OPEN &&
	       call_kind("containerd.services.streaming.v1.Streaming", "Stream", 1) == CALL_OPEN &&
	       call_bound_ms(CALL_OPEN) == 0,
	   "call kinds and bounds");
	for (int i = 0; i < ANSWERS_MAX + 10; i++) {
		snprintf(key, sizeof(key), "%d", i);
		answers_put(&c, "Stats", (uint8_t *)key, (uint32_t)strlen(key), (uint8_t *)"r", 1,
		            i);
	}
	ok(answers_get(&c, "Stats", (uint8_t *)"0", 1) == NULL &&
	       answers_get(&c, "Stats", (uint8_t *)"73", 2) != NULL,
	   "at most %d answers kept, the oldest replaced", ANSWERS_MAX);
	answers_put(&c, "Stats", (uint8_t *)"73", 2, (uint8_t *)"new", 3, 100);
	ok(answers_get(&c, "Stats", (uint8_t *)"73", 2)->resp_len == 3 &&
	       !answers_get(&c, "State", (uint8_t *)"73", 2),
	   "a newer answer to the same request replaces it; methods are apart");
	answers_free(&c);
}

/* ---- a guest that floods ---- */

/* ASan keeps freed memory in quarantine: RSS says nothing there. */
#ifdef __SANITIZE_ADDRESS__
#define RSS_MEANINGFUL 0
#else
#define RSS_MEANINGFUL 1
#endif

static void rss_bounded(long grew_kib, long max_kib, const char *what)
{
	if (RSS_MEANINGFUL)
		ok(grew_kib < max_kib, "%s stay bounded (+%ld KiB)", what, grew_kib);
	else
		skip("%s: RSS under ASan includes its quarantine", what);
}

static long rss_kib(void)
{
	char *st = NULL, *p;
	long kib = -1;

	if (read_file("/proc/self/status", &st, NULL, 1 << 16, NULL) < 0)
		return -1;
	p = strstr(st, "VmRSS:");
	if (p)
		kib = strtol(p + 6, NULL, 10);
	free(st);
	return kib;
}

/* The guest sends output on a client's stream as fast as it can, ignoring credit, while the
 * client does not read: the proxy holds at most CLIENT_MAX_PENDING for it, then drops it. */
static void test_output_flood(void)
{
	static uint8_t chunk[64 << 10];
	struct rig r;
	size_t sent = 0;
	long before, peak = 0;
	uint32_t gid = rig_up(&r, "containerd.services.streaming.v1.Streaming", "Stream", 1);

	before = rss_kib();
	for (int i = 0; i < 3200; i++) { /* 200 MiB, on after the client is dropped */
		send_frame(r.guest, gid, TTRPC_DATA, chunk, sizeof(chunk));
		sent += sizeof(chunk);
		run_for(&tl, 0);
		if (rss_kib() > peak)
			peak = rss_kib();
	}
	printf("# flood: %zu MiB sent, proxy RSS %ld -> peak %ld KiB (+%ld KiB)\n", sent >> 20,
	       before, peak, peak - before);
	ok(gid && r.tp.n_conns == 0, "the client that stopped reading is dropped");
	rss_bounded(peak - before, 16 * 1024, "the proxy's buffers for a flooding guest");
	rig_down(&r);
}

/* Events while containerd does not read them: at most EVENTS_MAX_PENDING wait, the rest are
 * dropped and counted. */
static void test_event_flood(void)
{
	char dir[] = "/tmp/kuasar-ev.XXXXXX", sock[128];
	static uint8_t value[4096];
	struct events_fwd *ev;
	long before, peak = 0;
	int lfd;
	kerr_t err;

	mkdtemp(dir);
	snprintf(sock, sizeof(sock), "%s/ttrpc.sock", dir);
	lfd = unix_listen(sock, &err); /* accepts (the backlog) and never reads */
	loop_init(&tl, &err);
	ev = events_fwd_new(&tl, sock);
	before = rss_kib();
	for (int i = 0; i < 50000; i++) { /* 200 MiB of events */
		events_fwd_publish(ev, "k8s.io", "/tasks/exit", "containerd.events.TaskExit", value,
		                   sizeof(value), 0);
		if (i % 256 == 0) {
			run_for(&tl, 0);
			if (rss_kib() > peak)
				peak = rss_kib();
		}
	}
	printf("# event flood: 195 MiB published, RSS %ld -> peak %ld KiB (+%ld KiB)\n", before,
	       peak, peak - before);
	rss_bounded(peak - before, 8 * 1024, "events waiting for containerd");
	events_fwd_free(ev);
	close(lfd);
	close(tl.epfd);
	unlink(sock);
	rmdir(dir);
}

/* ---- the bundle in the share, played against by the guest ---- */

static char scratch[64], share[128], hostb[128];

static int is_mounted(const char *path)
{
	char *info = NULL, pat[200];
	int yes;

	snprintf(pat, sizeof(pat), " %s ", path);
	if (read_file("/proc/self/mountinfo", &info, NULL, 1 << 20, NULL) < 0)
		return 0;
	yes = strstr(info, pat) != NULL;
	free(info);
	return yes;
}

static int mounts_in_share(void)
{
	char *info = NULL, *p;
	int n = 0;

	if (read_file("/proc/self/mountinfo", &info, NULL, 1 << 20, NULL) < 0)
		return -1;
	for (p = info; (p = strstr(p, share)); p++)
		n++;
	free(info);
	return n;
}

static void write_spec(const char *volume)
{
	char path[256], text[1024];

	snprintf(text, sizeof(text),
	         "{\"root\":{\"path\":\"rootfs\"},\"mounts\":[{\"destination\":\"/data\","
	         "\"type\":\"bind\",\"source\":\"%s\",\"options\":[\"rbind\"]}]}",
	         volume);
	snprintf(path, sizeof(path), "%s/config.json", hostb);
	write_file_atomic(path, text, strlen(text), NULL);
}

static int prepare(struct bundles *b, const char *id, int block, kerr_t *err)
{
	char gb[256];

	return bundle_prepare(b, id, hostb, NULL, 0, block ? "/run/kuasar/block/0/rootfs" : NULL,
	                      gb, sizeof(gb), err);
}

static void set_hook(const char *script)
{
	static char path[160];

	snprintf(path, sizeof(path), "%s.hook", scratch);
	write_file_atomic(path, script, strlen(script), NULL);
	chmod(path, 0755);
	setenv("KUASAR_TEST_BUNDLE_HOOK", path, 1);
}

static void hostile_after_create(struct bundles *b, int block)
{
	char p[256], q[256];
	kerr_t err;

	ok(prepare(b, "c1", block, &err) == 0, "%s bundle prepared", block ? "block" : "9p");
	snprintf(p, sizeof(p), "%s/c1/mounts/0/marker", share);
	ok(access(p, F_OK) == 0, "the volume is bound into the share");
	/* The guest moves the bundle away and puts a link to the scratch tmpfs in its place,
	 * with rootfs and mounts/0 lookalikes behind it. */
	snprintf(p, sizeof(p), "%s/c1", share);
	snprintf(q, sizeof(q), "%s/moved", share);
	ok(rename(p, q) == 0, "the guest renames the bundle (it holds mounts)");
	ok(symlink(scratch, p) == 0, "and plants a link to a host tmpfs in its place");
	ok(bundle_remove(b, "c1") == 0, "the bundle is removed");
	snprintf(p, sizeof(p), "%s/rootfs", scratch);
	ok(is_mounted(p), "the host tmpfs the link points at is still mounted");
	snprintf(p, sizeof(p), "%s/rootfs/keep", scratch);
	ok(access(p, F_OK) == 0, "and what it holds is untouched");
	ok(mounts_in_share() == 0, "our own mounts went, wherever they were moved");
	rm_tree_at(b->share_fd, "moved");
}

static void hostile_in_prepare(struct bundles *b)
{
	char p[256];
	kerr_t err;

	set_hook("#!/bin/sh\nln -s \"${0%.hook}\" \"$1/mounts\"\n");
	ok(prepare(b, "c2", 0, &err) < 0 && err.errnum == EEXIST,
	   "a mounts link planted after the bundle's mkdir is refused: %s", err.msg);
	snprintf(p, sizeof(p), "%s/0", scratch);
	ok(access(p, F_OK) < 0, "nothing was made behind the link");
	set_hook("#!/bin/sh\nln -s \"${0%.hook}/rootfs\" \"$1/rootfs\"\n");
	ok(prepare(b, "c3", 0, &err) < 0, "a planted rootfs link is refused: %s", err.msg);
	ok(is_mounted(scratch) && mounts_in_share() == 0, "no mount was made or left");
	snprintf(p, sizeof(p), "%s/c3", share);
	ok(access(p, F_OK) < 0, "the failed bundle is gone");
	unsetenv("KUASAR_TEST_BUNDLE_HOOK");
	write_spec("/does/not/exist");
	ok(prepare(b, "c4", 0, &err) < 0 && strstr(err.msg, "/does/not/exist"),
	   "a missing bind source is a clear error: %s", err.msg);
	ok(mounts_in_share() == 0, "and leaves no mount");
}

static void test_bundle_hostile(void)
{
	char p[256];
	struct bundles b;
	kerr_t err;

	if (getuid() != 0 || unshare(CLONE_NEWNS) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		skip("bundles need root and a mount namespace");
		return;
	}
	snprintf(scratch, sizeof(scratch), "/tmp/kuasar-scratch.XXXXXX");
	mkdtemp(scratch);
	mount("tmpfs", scratch, "tmpfs", 0, NULL);
	snprintf(p, sizeof(p), "%s/rootfs", scratch);
	mkdir(p, 0755);
	mount("tmpfs", p, "tmpfs", 0, NULL); /* a host mount a link in the share points at */
	snprintf(p, sizeof(p), "%s/rootfs/keep", scratch);
	write_file_atomic(p, "x", 1, NULL);
	snprintf(share, sizeof(share), "/tmp/kuasar-share.XXXXXX");
	mkdtemp(share);
	snprintf(hostb, sizeof(hostb), "/tmp/kuasar-hostb.XXXXXX");
	mkdtemp(hostb);
	snprintf(p, sizeof(p), "%s/rootfs", hostb);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/vol", hostb);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/vol/marker", hostb);
	write_file_atomic(p, "x", 1, NULL);
	snprintf(p, sizeof(p), "%s/vol", hostb);
	write_spec(p);
	ok(bundles_open(&b, share, &err) == 0, "the share is opened");
	hostile_after_create(&b, 0);
	hostile_after_create(&b, 1);
	hostile_in_prepare(&b);
	bundles_close(&b);
	umount2(scratch, MNT_DETACH | UMOUNT_NOFOLLOW);
	rmdir(scratch);
	rm_tree(share);
	rm_tree(hostb);
	snprintf(p, sizeof(p), "%s.hook", scratch);
	unlink(p);
}

/* ---- a pooled VM becoming a sandbox ---- */

static void mk(const char *dir, const char *rel, const char *text)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	if (text)
		write_file_atomic(p, text, strlen(text), NULL);
	else
		mkdir(p, 0755);
}

static int has(const char *dir, const char *rel, const char *text)
{
	char p[512], *got = NULL;
	int same;

	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	if (!text)
		return access(p, F_OK) == 0;
	if (read_file(p, &got, NULL, 4096, NULL) < 0)
		return 0;
	same = !strcmp(got, text);
	free(got);
	return same;
}

/* run/.pool/NAME (the VM's: its share with what the guest wrote) and run/ID (Create's: its
 * state, the pod's files); plant: the guest made shared/.pod a link to a host directory. */
static void pool_dirs(const char *run, int plant)
{
	char host[512];

	mk(run, ".pool", NULL);
	mk(run, ".pool/kuasar-pool-0-1", NULL);
	mk(run, ".pool/kuasar-pool-0-1/vm.json", "{}");
	mk(run, ".pool/kuasar-pool-0-1/shared", NULL);
	mk(run, ".pool/kuasar-pool-0-1/shared/guest-file", "guest");
	mk(run, "pod1", NULL);
	mk(run, "pod1/sandbox.json", "{\"id\":\"pod1\"}");
	mk(run, "pod1/shared", NULL);
	mk(run, "pod1/shared/.pod", NULL);
	mk(run, "pod1/shared/.pod/hosts", "127.0.0.1 localhost\n");
	snprintf(host, sizeof(host), "%s/host-secret", run);
	mkdir(host, 0700);
	if (plant) {
		char link[512];

		snprintf(link, sizeof(link), "%s/.pool/kuasar-pool-0-1/shared/.pod", run);
		symlink(host, link);
	}
}

static void test_pool_swap(void)
{
	char run[] = "/tmp/kuasar-pool.XXXXXX", p[600];
	struct pool_take t;
	char *msg;
	kerr_t err;

	if (!mkdtemp(run))
		return;
	pool_dirs(run, 0);
	ok(pool_dir_swap(run, "kuasar-pool-0-1", "pod1", &err) == 0, "swapped");
	ok(has(run, "pod1/vm.json", "{}") && has(run, "pod1/sandbox.json", "{\"id\":\"pod1\"}"),
	   "the sandbox's directory holds the VM's files and Create's state");
	ok(has(run, "pod1/shared/guest-file", "guest") &&
	       has(run, "pod1/shared/.pod/hosts", "127.0.0.1 localhost\n"),
	   "its share is the VM's, with the pod's files moved in");
	ok(!has(run, ".pool/kuasar-pool-0-1", NULL), "nothing left in the pool");
	rm_tree(run);

	mkdtemp(strcpy(run, "/tmp/kuasar-pool.XXXXXX"));
	pool_dirs(run, 1);
	ok(pool_dir_swap(run, "kuasar-pool-0-1", "pod1", &err) < 0 && err.errnum == EEXIST,
	   "a .pod the guest planted fails the take: %s", err.msg);
	snprintf(p, sizeof(p), "%s/host-secret", run);
	ok(has(p, "", NULL) && !has(run, "host-secret/hosts", NULL),
	   "nothing moved through the guest's link");
	rm_tree(run);

	t = (struct pool_take){ .id = "pod1", .hostname = "web", .netns = "/run/netns/x" };
	t.sysctls = "{\"net.ipv4.ip_forward\":\"1\"}";
	msg = pool_take_format(&t);
	ok(msg && pool_take_parse(msg, strlen(msg), &t, &err) == 0 && !strcmp(t.id, "pod1") &&
	       !strcmp(t.hostname, "web") && !strcmp(t.sysctls, "{\"net.ipv4.ip_forward\":\"1\"}"),
	   "the take message round trip");
	free(t.sysctls);
	free(msg);
	ok(pool_take_parse("{\"id\":\"../x\",\"hostname\":\"\",\"netns\":\"\"}", 40, &t, &err) < 0,
	   "an id with ../ refused: %s", err.msg);
	ok(pool_take_parse("[1]", 3, &t, &err) < 0 && err.errnum == EINVAL, "not an object");
}

/* ---- a pod's snapshot, the guest played ---- */

static void own_call(struct taskproxy *tp, const struct tp_call *call, const char *method,
                     const uint8_t *payload, size_t len, void *arg)
{
	podsnap_on_call(tp, call, payload, len, arg);
}

/* The next request the guest is sent within ~1 s: its stream (0: none), method and, for a
 * MountShare, whether it unmounts. */
static uint32_t guest_call(int guest, char *method, size_t n, int *unmount)
{
	struct ttrpc_reader rd = { 0 };
	struct ttrpc_header h = { 0 };
	const uint8_t *d;
	uint32_t gid = 0;

	method[0] = '\0';
	for (int i = 0; i < 200 && !gid; i++) {
		run_for(&tl, 5);
		ttrpc_reader_fill(&rd, guest);
		if (ttrpc_reader_next(&rd, &h, &d) == TTRPC_FRAME && h.type == TTRPC_REQUEST) {
			Ttrpc__Request *q = ttrpc__request__unpack(NULL, h.length, d);
			Kuasar__Sandbox__V1__MountShareRequest *m =
			    q ? kuasar__sandbox__v1__mount_share_request__unpack(
			            NULL, q->payload.len, q->payload.data)
			      : NULL;

			gid = h.stream;
			snprintf(method, n, "%s", q ? q->method : "?");
			*unmount = m && m->unmount;
			if (m)
				kuasar__sandbox__v1__mount_share_request__free_unpacked(m, NULL);
			if (q)
				ttrpc__request__free_unpacked(q, NULL);
		}
	}
	ttrpc_reader_free(&rd);
	return gid;
}

static void guest_ok(int guest, uint32_t gid)
{
	Ttrpc__Response resp = TTRPC__RESPONSE__INIT;
	uint8_t buf[16];

	send_frame(guest, gid, TTRPC_RESPONSE, buf, (uint32_t)ttrpc__response__pack(&resp, buf));
}

static void snapshot_ask(struct rig *r, uint32_t sid, const char *dir)
{
	Kuasar__Proxy__V1__SnapshotRequest req = KUASAR__PROXY__V1__SNAPSHOT_REQUEST__INIT;
	char mem[160], state[160];
	uint8_t buf[512], *frame = NULL;
	size_t flen;

	snprintf(mem, sizeof(mem), "%s/s.mem", dir);
	snprintf(state, sizeof(state), "%s/state", dir);
	req.mem_path = mem;
	req.state_path = state;
	req.disk_dir = (char *)dir;
	ttrpc_encode_request(sid, PROXY_SERVICE, "Snapshot", buf,
	                     kuasar__proxy__v1__snapshot_request__pack(&req, buf), &frame, &flen);
	write_all(r->client, frame, flen);
	free(frame);
}

/* The client's answer to stream sid within ms: its code (-1: none) and message. */
static int snapshot_answer(struct rig *r, uint32_t sid, int ms, char *msg, size_t n)
{
	Ttrpc__Response *got = NULL;
	uint32_t s = 0;
	int code = -1;

	msg[0] = '\0';
	if (client_response(r->client, ms, &s, &got) == 0 && s == sid) {
		code = got->status ? got->status->code : 0;
		snprintf(msg, n, "%s", got->status ? got->status->message : "");
	}
	if (got)
		ttrpc__response__free_unpacked(got, NULL);
	return code;
}

/* A task proxy whose own calls go to a podsnap of a VM that is only its vm.json (no VMM,
 * no QMP): what the guest answers at each step, it cannot turn into more than a clear error,
 * and the share it let go is asked back. */
static int snap_rig(struct rig *r, struct podsnap *s, struct vm *vm)
{
	static const char vmjson[] = "{\"qemu\":\"q\",\"kernel\":\"/k\",\"memory_mib\":64,"
	                             "\"vcpus\":1,\"nics\":0,\"accel\":\"tcg\",\"link\":"
	                             "\"serial\",\"mem_path\":\"/dev/shm/none.mem\"}";
	kerr_t err;

	if (rig_init(r, "ps") < 0)
		return -1;
	vm_init(vm, "pod");
	snprintf(vm->paths.state, sizeof(vm->paths.state), "%s/vm.json", r->dir);
	if (write_file_atomic(vm->paths.state, vmjson, sizeof(vmjson) - 1, &err) < 0)
		return -1;
	fcntl(r->guest, F_SETFL, O_NONBLOCK);
	*s = (struct podsnap){ .loop = &tl,
		               .tp = &r->tp,
		               .link = &r->link,
		               .vm = vm,
		               .run_dir = r->dir,
		               .cgroup = "",
		               .guest_ms = 200,
		               .result_fd = -1 };
	r->tp.on_own = own_call;
	r->tp.own_arg = s;
	r->client = unix_connect(r->sock, &err);
	return r->client < 0 ? -1 : 0;
}

static void test_snapshot_guest(void)
{
	static struct podsnap s;
	static struct vm vm;
	struct rig r;
	char m[64], msg[512];
	uint32_t gid;
	int un = 0, code;

	ok(snap_rig(&r, &s, &vm) == 0, "a task proxy with a pod snapshotter");
	snapshot_ask(&r, 1, "relative/dir");
	ok(snapshot_answer(&r, 1, 500, msg, sizeof(msg)) == RPC_INVALID_ARGUMENT &&
	       !guest_call(r.guest, m, sizeof(m), &un),
	   "a relative path is refused before the guest is asked: %s", msg);
	snapshot_ask(&r, 3, r.dir);
	gid = guest_call(r.guest, m, sizeof(m), &un);
	ok(gid && !strcmp(m, "MountShare") && un, "the guest is asked to let its share go");
	send_frame(r.guest, gid, TTRPC_RESPONSE, (const uint8_t *)"\xff\xff", 2);
	code = snapshot_answer(&r, 3, 500, msg, sizeof(msg));
	ok(code == RPC_UNAVAILABLE && strstr(msg, "malformed") && !vm.qmp.lent,
	   "a malformed answer ends the call, nothing lent: %s", msg);
	snapshot_ask(&r, 5, r.dir);
	gid = guest_call(r.guest, m, sizeof(m), &un);
	code = snapshot_answer(&r, 5, 1000, msg, sizeof(msg));
	ok(gid && code == RPC_UNAVAILABLE && strstr(msg, "did not answer MountShare in 200 ms"),
	   "a guest that says nothing is given its step's bound: %s", msg);
	snapshot_ask(&r, 7, r.dir);
	gid = guest_call(r.guest, m, sizeof(m), &un);
	guest_ok(r.guest, gid);
	gid = guest_call(r.guest, m, sizeof(m), &un);
	ok(gid && !strcmp(m, "MountShare") && !un,
	   "the snapshot could not start (no QMP): the share is asked back all the same");
	guest_ok(r.guest, gid);
	gid = guest_call(r.guest, m, sizeof(m), &un);
	ok(gid && !strcmp(m, "SyncClock"), "then the clock");
	send_frame(r.guest, gid, TTRPC_RESPONSE, (const uint8_t *)"\x0a\x01", 2);
	code = snapshot_answer(&r, 7, 1000, msg, sizeof(msg));
	ok(code == RPC_UNAVAILABLE && strstr(msg, "QMP"),
	   "and the call says why the snapshot failed, not what the guest said after: %s", msg);
	unlink(vm.paths.state);
	rig_down(&r);
}

int main(void)
{
	test_loop_batch();
	test_event_filter();
	test_answer_after_hangup();
	test_answer_cache();
	test_late_guest();
	test_output_flood();
	test_event_flood();
	test_pool_swap();
	test_bundle_hostile();
	test_snapshot_guest();
	return done_testing();
}
