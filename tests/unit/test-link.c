/* Both sides of the guest link in one process: the host's ttrpc client (protobuf-c) talks
 * to the init's ttrpc server and sandbox service (nanopb) over a socketpair, including the
 * abuse the init must survive: garbage, oversized frames, bad stream ids, unknown methods,
 * malformed protobuf. */
#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "core/ev.h"
#include "core/sys.h"
#include "link-abuse.h"
#include "services/serve.h"
#include "wire/link.h"
#include "wire/ttrpc.h"

/* What the guest's link.c would provide (the test is the link). */
uint32_t link_local_cid(void)
{
	return 0;
}

static struct conn srv;

struct conn *link_conn_by_id(uint64_t id)
{
	return srv.id == id ? &srv : NULL;
}

static int closed;

static void srv_close(struct conn *c)
{
	(void)c;
	closed = 1;
}

static void run_server(void)
{
	while (ev_once(0) > 0)
		;
}

int main(void)
{
	int sv[2];

	boot.init_ns = 250000000;
	boot.link_ns = 290000000;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 || ev_init() < 0)
		return 1;
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	cli_fd = sv[1];
	pump = run_server;
	conn_init(&srv, sv[0], CONN_SERIAL, serve_on_frame, srv_close);
	ev_add(&srv.w, EPOLLIN);
	test_abuse();
	test_entropy_limit();
	test_share_args();
	test_task_errors();
	test_stream_abuse();
	ok(!closed, "the connection stayed up through all of it");
	return done_testing();
}
