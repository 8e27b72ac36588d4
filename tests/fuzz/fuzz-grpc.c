/* libFuzzer: bytes from a gRPC client (containerd) as the sandboxer's gRPC server reads them:
 * HTTP/2 (nghttp2), headers, the gRPC message framing and the 16 MiB limit. Each input is
 * written on a fresh connection to a real server (a method table with one method that
 * answers), then the server's loop runs until it has closed the connection. */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/loop.h"
#include "base/util.h"
#include "rpc/grpc.h"

static struct loop loop;
static struct grpc_server srv;
static char path[108];
static int client = -1;
static int64_t deadline;
static struct loop_timer tick;

static void echo(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	if (len % 2)
		grpc_reply_error(call, 3, "odd message of %zu bytes", len);
	else
		grpc_reply(call, NULL);
}

static const struct grpc_method methods[] = { { "/fuzz.v1.Fuzz/Echo", echo } };

/* Drains what the server wrote; stops the loop once it closed the connection (or after
 * a while, for an input that keeps it open). */
static void on_tick(struct loop_timer *t)
{
	char buf[65536];
	ssize_t n;

	while ((n = read(client, buf, sizeof(buf))) > 0)
		;
	if (n == 0 || (n < 0 && errno != EAGAIN) || mono_ns() > deadline) {
		loop.stop = 1;
		return;
	}
	loop_timer_arm(&loop, t, 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	kerr_t err;

	const char *t = getenv("KUASAR_FUZZ_TMP");

	snprintf(path, sizeof(path), "%s/kuasar-fuzz-grpc.%d.sock", t && t[0] ? t : "/tmp",
	         (int)getpid());
	unlink(path);
	srv.methods = methods;
	srv.n_methods = 1;
	if (loop_init(&loop, &err) < 0 || grpc_server_listen(&srv, &loop, path, &err) < 0) {
		fprintf(stderr, "fuzz-grpc: %s\n", err.msg);
		exit(1);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (size > 65536)
		return 0;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	client = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (client < 0 || connect(client, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (client >= 0)
			close(client);
		return 0;
	}
	if (write_all(client, data, size) < 0) {
		close(client);
		return 0;
	}
	shutdown(client, SHUT_WR);
	deadline = mono_ns() + 200000000LL;
	tick.fn = on_tick;
	loop_timer_arm(&loop, &tick, 0);
	loop.stop = 0;
	loop_run(&loop);
	loop_timer_cancel(&loop, &tick);
	close(client);
	/* The server notices the close on a later round; let it, so connections do not pile. */
	loop.stop = 0;
	deadline = 0;
	return 0;
}
