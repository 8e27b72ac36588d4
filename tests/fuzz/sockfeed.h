/* For harnesses whose target is a server on a loop (the gRPC server, a task proxy): one
 * fuzz input is one client connection. The bytes are written, the client's end is closed,
 * and the loop runs until the server has closed its side (or max_ns passed); then, the
 * client gone, for after_ns more so the server sees that too. idle() runs at each turn
 * (draining what else the server writes to). */
#ifndef KUASAR_SOCKFEED_H
#define KUASAR_SOCKFEED_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/loop.h"
#include "base/util.h"

struct sockfeed {
	struct loop *loop;
	void (*idle)(void);
	struct loop_timer tick;
	int client;
	int64_t deadline;
};

static void sockfeed_tick(struct loop_timer *t)
{
	struct sockfeed *f = container_of(t, struct sockfeed, tick);
	char buf[65536];
	ssize_t n = -1;

	if (f->idle)
		f->idle();
	if (f->client >= 0)
		while ((n = read(f->client, buf, sizeof(buf))) > 0)
			;
	if ((f->client >= 0 && (n == 0 || errno != EAGAIN)) || mono_ns() > f->deadline) {
		f->loop->stop = 1;
		return;
	}
	loop_timer_arm(f->loop, t, 0);
}

static void sockfeed_run_for(struct sockfeed *f, int64_t ns)
{
	f->deadline = mono_ns() + ns;
	f->tick.fn = sockfeed_tick;
	loop_timer_arm(f->loop, &f->tick, 0);
	f->loop->stop = 0;
	loop_run(f->loop);
	loop_timer_cancel(f->loop, &f->tick);
	f->loop->stop = 0;
}

static void sockfeed(struct sockfeed *f, const char *path, const uint8_t *data, size_t size,
                     int64_t max_ns, int64_t after_ns)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (size > 65536)
		return;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	f->client = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (f->client < 0)
		return;
	if (connect(f->client, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    write_all(f->client, data, size) == 0) {
		shutdown(f->client, SHUT_WR);
		sockfeed_run_for(f, max_ns);
	}
	close(f->client);
	f->client = -1;
	if (after_ns)
		sockfeed_run_for(f, after_ns);
}

#endif
