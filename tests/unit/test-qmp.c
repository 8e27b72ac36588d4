/* The QMP client on the loop, against a fake QEMU on a socketpair: answers matched by id in
 * any order, QEMU's error class passed on, events dispatched, a silent QEMU timed out per
 * command while the loop goes on serving, a broken connection failing what is in flight;
 * and the root disk's unplug driven by DEVICE_DELETED and the error class. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/loop.h"
#include "base/util.h"
#include "proxy/rootdisk.h"
#include "tap.h"
#include "vm/qmp.h"

static struct loop tl;
static int tl_live; /* the loop is the test's (not the handshake thread's) */
static struct loop_timer stopper;

static void stop_loop(struct loop_timer *t)
{
	tl.stop = 1;
}

static void run_for(int ms)
{
	stopper.fn = stop_loop;
	loop_timer_arm(&tl, &stopper, ms);
	tl.stop = 0;
	loop_run(&tl);
	loop_timer_cancel(&tl, &stopper);
	tl.stop = 0;
}

/* ---- the fake QEMU ---- */

static char fake_buf[8192];
static size_t fake_have;

static void fake_say(int fd, const char *line)
{
	write_all(fd, line, strlen(line));
	write_all(fd, "\n", 1);
}

/* The next command the client sent (the loop runs meanwhile, up to ms): its id, its text
 * in cmd; 0 when none came. */
static long fake_next(int fd, char *cmd, size_t n, int ms)
{
	for (int i = 0; i <= ms / 5; i++) {
		char *nl = memchr(fake_buf, '\n', fake_have);
		ssize_t got;

		if (nl) {
			const char *id = NULL;

			*nl = '\0';
			fmt_msg(cmd, n, "%s", fake_buf);
			fake_have -= (size_t)(nl + 1 - fake_buf);
			memmove(fake_buf, nl + 1, fake_have);
			/* The command's own id is the last one: arguments may hold an "id". */
			for (const char *at = strstr(cmd, "\"id\":"); at;
			     at = strstr(at + 1, "\"id\":"))
				id = at;
			return id ? strtol(id + 5, NULL, 10) : 0;
		}
		got = read(fd, fake_buf + fake_have, sizeof(fake_buf) - fake_have);
		if (got > 0)
			fake_have += (size_t)got;
		else if (tl.epfd > 0 && tl_live)
			run_for(5);
		else
			usleep(5000);
	}
	return 0;
}

/* QEMU's side of the handshake, in a thread: the greeting, then qmp_capabilities answered. */
static void *handshake(void *arg)
{
	int fd = *(int *)arg;
	char cmd[256];
	long id;

	fake_say(fd, "{\"QMP\": {\"version\": {}, \"capabilities\": []}}");
	id = fake_next(fd, cmd, sizeof(cmd), 1000);
	if (id && strstr(cmd, "qmp_capabilities")) {
		snprintf(cmd, sizeof(cmd), "{\"return\": {}, \"id\": %ld}", id);
		fake_say(fd, cmd);
	}
	return NULL;
}

static int fake_open(struct qmp *q)
{
	pthread_t t;
	int sv[2];
	kerr_t err;
	int rc;

	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	fake_have = 0;
	pthread_create(&t, NULL, handshake, &sv[1]);
	rc = qmp_open(q, sv[0], mono_ns() + 2000000000LL, &err);
	pthread_join(t, NULL);
	if (rc < 0) {
		fprintf(stderr, "# %s\n", err.msg);
		close(sv[1]);
		return -1;
	}
	return sv[1];
}

/* ---- the client ---- */

struct got {
	int n, ok;
	char class[32], msg[256];
	int64_t ns;
};

static void record(void *arg, struct qmp_reply *r)
{
	struct got *g = arg;

	g->n++;
	g->ok = r->ok;
	g->ns = mono_ns();
	fmt_msg(g->class, sizeof(g->class), "%s", r->class);
	fmt_msg(g->msg, sizeof(g->msg), "%s", r->ok ? "" : r->err.msg);
}

static int events_seen;

static void on_event(void *arg, const char *event, json_object *data)
{
	events_seen += !strcmp(event, "DEVICE_DELETED");
}

static void test_ids_classes_events(void)
{
	struct got a = { 0 }, b = { 0 }, c = { 0 };
	struct qmp q;
	char cmd[512], line[256];
	long ida, idb;
	kerr_t err;
	int fake = fake_open(&q);

	ok(fake >= 0, "greeting and capabilities read");
	loop_init(&tl, &err);
	tl_live = 1;
	q.on_event = on_event;
	ok(qmp_attach(&q, &tl, &err) == 0, "attached to the loop");
	qmp_send(&q, "query-status", NULL, 200, record, &a, &err);
	qmp_send(&q, "device_del", NULL, 5000, record, &b, &err);
	ida = fake_next(fake, cmd, sizeof(cmd), 200);
	idb = fake_next(fake, cmd, sizeof(cmd), 200);
	ok(ida > 1 && idb == ida + 1 && strstr(cmd, "device_del"), "each command has its id");
	/* An event, then the second command's error before the first's answer. */
	fake_say(fake, "{\"event\": \"DEVICE_DELETED\", \"data\": {\"device\": \"x\"}}");
	snprintf(line, sizeof(line),
	         "{\"error\": {\"class\": \"DeviceNotFound\", \"desc\": \"no x\"}, \"id\": %ld}",
	         idb);
	fake_say(fake, line);
	run_for(50);
	ok(events_seen == 1, "the event reached on_event");
	ok(b.n == 1 && !b.ok && !strcmp(b.class, "DeviceNotFound") && strstr(b.msg, "no x"),
	   "the answer found its command out of order, with QEMU's class: %s", b.msg);
	run_for(250);
	ok(a.n == 1 && !a.ok && !a.class[0] && strstr(a.msg, "in time"),
	   "the unanswered command timed out on its own: %s", a.msg);
	snprintf(line, sizeof(line), "{\"return\": {}, \"id\": %ld}", ida);
	fake_say(fake, line);
	run_for(20);
	ok(a.n == 1, "its late answer is dropped");
	qmp_send(&q, "stop", NULL, 5000, record, &c, &err);
	close(fake);
	run_for(50);
	ok(c.n == 1 && !c.ok && !c.class[0], "a lost connection fails what is in flight: %s",
	   c.msg);
	ok(qmp_send(&q, "cont", NULL, 100, record, &c, &err) < 0 && c.n == 1,
	   "and nothing more is sent: %s", err.msg);
	qmp_close(&q);
	tl_live = 0;
	close(tl.epfd);
}

/* ---- a silent QEMU holds up no one else ---- */

struct ticker {
	struct loop_timer t;
	int n;
	int64_t last_ns, worst_ns;
};

static void tick(struct loop_timer *t)
{
	struct ticker *k = container_of(t, struct ticker, t);
	int64_t now = mono_ns();

	if (k->last_ns && now - k->last_ns - 50000000 > k->worst_ns)
		k->worst_ns = now - k->last_ns - 50000000;
	k->last_ns = now;
	k->n++;
	loop_timer_arm(&tl, t, 50);
}

static void test_silent_qemu(void)
{
	struct ticker k = { .t.fn = tick };
	struct got a = { 0 };
	struct qmp q;
	char cmd[512], line[128];
	kerr_t err;
	int fake = fake_open(&q);
	long id;

	loop_init(&tl, &err);
	tl_live = 1;
	qmp_attach(&q, &tl, &err);
	qmp_send(&q, "blockdev-add", NULL, 10000, record, &a, &err);
	id = fake_next(fake, cmd, sizeof(cmd), 200);
	loop_timer_arm(&tl, &k.t, 50);
	run_for(5000); /* QEMU says nothing for 5 s */
	ok(k.n >= 90 && k.worst_ns < 100000000,
	   "with QMP silent for 5 s the loop ran %d 50 ms timers, the latest %lld ms late", k.n,
	   (long long)(k.worst_ns / 1000000));
	snprintf(line, sizeof(line), "{\"return\": {}, \"id\": %ld}", id);
	fake_say(fake, line);
	run_for(20);
	ok(a.n == 1 && a.ok, "then the answer came to its command");
	loop_timer_cancel(&tl, &k.t);
	qmp_close(&q);
	close(fake);
	tl_live = 0;
	close(tl.epfd);
}

/* ---- the root disk's unplug ---- */

static struct rootdisk *fake_disk(struct rootdisks *rd, unsigned seq)
{
	struct rootdisk *d = calloc(1, sizeof(*d));

	d->seq = seq;
	d->target = seq;
	d->img.fd = d->build_pidfd = d->build_errfd = -1;
	fmt_msg(d->id, sizeof(d->id), "c%u", seq);
	fmt_msg(d->node, sizeof(d->node), "rootfs%u.%u", seq, seq);
	d->node_added = d->plugged = 1;
	d->next = rd->list;
	rd->list = d;
	return d;
}

static void answer(int fd, long id, const char *error_class)
{
	char line[256];

	if (error_class)
		snprintf(
		    line, sizeof(line),
		    "{\"error\": {\"class\": \"%s\", \"desc\": \"Node is in use\"}, \"id\": %ld}",
		    error_class, id);
	else
		snprintf(line, sizeof(line), "{\"return\": {}, \"id\": %ld}", id);
	fake_say(fd, line);
}

static void unplug_event(void *arg, const char *event, json_object *data)
{
	rootdisks_qmp_event(arg, event, data);
}

static void test_unplug(void)
{
	static struct rootdisks rd;
	struct qmp q;
	char cmd[512];
	kerr_t err;
	int fake = fake_open(&q);
	long id;

	loop_init(&tl, &err);
	tl_live = 1;
	q.on_event = unplug_event;
	q.event_arg = &rd;
	qmp_attach(&q, &tl, &err);
	rootdisks_init(&rd, &tl, &q, "/nonexistent", NULL);
	rootdisk_detach(&rd, fake_disk(&rd, 3), 1);
	id = fake_next(fake, cmd, sizeof(cmd), 200);
	ok(id && strstr(cmd, "device_del") && strstr(cmd, "rootfs3.3"), "device_del first: %s",
	   cmd);
	answer(fake, id, NULL);
	ok(fake_next(fake, cmd, sizeof(cmd), 100) == 0,
	   "no blockdev-del before QEMU says DEVICE_DELETED");
	fake_say(fake, "{\"event\": \"DEVICE_DELETED\", \"data\": {\"device\": \"rootfs3.3\"}}");
	id = fake_next(fake, cmd, sizeof(cmd), 200);
	ok(id && strstr(cmd, "blockdev-del"), "blockdev-del after the event");
	answer(fake, id, "GenericError");
	id = fake_next(fake, cmd, sizeof(cmd), 200);
	ok(id && strstr(cmd, "blockdev-del"), "asked again while its class says in use");
	answer(fake, id, NULL);
	run_for(20);
	ok(rd.list == NULL, "then the disk is let go");
	/* The VM going away: nothing is unplugged, the disk goes at once. */
	rootdisks_closing(&rd);
	rootdisk_detach(&rd, fake_disk(&rd, 4), 1);
	ok(rd.list == NULL && fake_next(fake, cmd, sizeof(cmd), 50) == 0,
	   "a VM going away gets no device_del");
	rootdisks_release(&rd);
	qmp_close(&q);
	close(fake);
	tl_live = 0;
	close(tl.epfd);
}

/* ---- lent to a snapshot's child ---- */

/* While a child drives QMP in place (a pod's snapshot), the loop neither reads it nor
 * sends on it; what the child left unread is read once it is taken back. */
static void test_lend(void)
{
	struct got a = { 0 }, b = { 0 };
	struct qmp q;
	char cmd[512], line[256];
	long id;
	kerr_t err;
	int fake = fake_open(&q);

	loop_init(&tl, &err);
	tl_live = 1;
	events_seen = 0;
	q.on_event = on_event;
	qmp_attach(&q, &tl, &err);
	qmp_send(&q, "query-status", NULL, 2000, record, &a, &err);
	ok(qmp_lend(&q, &err) < 0 && err.errnum == EBUSY, "not lent with a command in flight: %s",
	   err.msg);
	id = fake_next(fake, cmd, sizeof(cmd), 200);
	snprintf(line, sizeof(line), "{\"return\": {}, \"id\": %ld}", id);
	fake_say(fake, line);
	run_for(30);
	ok(a.n == 1 && a.ok && qmp_lend(&q, &err) == 0, "lent once idle");
	ok(qmp_send(&q, "device_add", NULL, 200, record, &b, &err) < 0 && err.errnum == EBUSY &&
	       b.n == 0,
	   "a command meanwhile is refused: %s", err.msg);
	fake_say(fake, "{\"event\": \"DEVICE_DELETED\", \"data\": {\"device\": \"x\"}}");
	run_for(30);
	ok(events_seen == 0, "nothing is read while lent");
	ok(qmp_take_back(&q, &tl, &err) == 0, "taken back");
	run_for(30);
	ok(events_seen == 1, "what came meanwhile is read then");
	ok(qmp_send(&q, "cont", NULL, 200, record, &b, &err) == 0 &&
	       fake_next(fake, cmd, sizeof(cmd), 200) > id && strstr(cmd, "cont"),
	   "and commands go out again");
	close(fake);
	run_for(20);
	qmp_close(&q);
	tl_live = 0;
	close(tl.epfd);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	test_ids_classes_events();
	test_silent_qemu();
	test_unplug();
	test_lend();
	return done_testing();
}
