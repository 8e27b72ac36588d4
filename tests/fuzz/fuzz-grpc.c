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
#include "sockfeed.h"

static struct loop loop;
static struct grpc_server srv;
static char path[108];
static struct sockfeed feed = { .loop = &loop, .client = -1 };

static void echo(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	if (len % 2)
		grpc_reply_error(call, 3, "odd message of %zu bytes", len);
	else
		grpc_reply(call, NULL);
}

static const struct grpc_method methods[] = { { "/fuzz.v1.Fuzz/Echo", echo } };

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
	sockfeed(&feed, path, data, size, 200000000LL, 0);
	return 0;
}
