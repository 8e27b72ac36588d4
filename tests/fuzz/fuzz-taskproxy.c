/* libFuzzer: bytes from a task client (containerd) as a sandbox's task proxy reads them on
 * task.sock: frame reading, the ttrpc envelope, stream id rules, Create's request decoding
 * and bundle preparation and rewriting, Exec's stdio checks, Delete's target, and forwarding
 * to the guest link (a socketpair whose other end only drains). Each input is a fresh
 * connection to a real task proxy; the loop runs until the proxy has read it all.
 *
 * Create prepares bundles for real (it mounts the request's rootfs into the share), so the
 * process runs in a mount namespace of its own first. Needs root. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/loop.h"
#include "base/util.h"
#include "proxy/glink.h"
#include "proxy/taskproxy.h"
#include "sockfeed.h"

static struct loop loop;
static struct glink link_;
static struct taskproxy tp;
static int guest = -1;
static struct sockfeed feed = { .loop = &loop, .client = -1 };

/* The guest's end only drains. */
static void drain_guest(void)
{
	char buf[65536];

	while (read(guest, buf, sizeof(buf)) > 0)
		;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *t = getenv("KUASAR_FUZZ_TMP");
	char dir[128], sock[160], shared[160];
	int sv[2];
	kerr_t err;

	snprintf(dir, sizeof(dir), "%s/kuasar-fuzz-tp.XXXXXX", t && t[0] ? t : "/tmp");
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		fprintf(stderr, "fuzz-taskproxy: no mount namespace (root needed): %s\n",
		        strerror(errno));
		exit(1);
	}
	if (!mkdtemp(dir) || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		exit(1);
	snprintf(sock, sizeof(sock), "%s/task.sock", dir);
	snprintf(shared, sizeof(shared), "%s/shared", dir);
	mkdir(shared, 0755);
	guest = sv[1];
	fcntl(guest, F_SETFL, O_NONBLOCK);
	feed.idle = drain_guest;
	if (loop_init(&loop, &err) < 0 || glink_start(&link_, &loop, sv[0], &err) < 0 ||
	    taskproxy_start(&tp, &loop, &link_, sock, shared, &err) < 0) {
		fprintf(stderr, "fuzz-taskproxy: %s\n", err.msg);
		exit(1);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The client leaves after its bytes, as containerd does on a restart: the proxy then
	 * ends its streams toward the guest. */
	sockfeed(&feed, tp.path, data, size, 20000000LL, 200000LL);
	return 0;
}
