/* libFuzzer: bytes from the host as kuasar-init receives them on its link: frame
 * reassembly, the ttrpc envelope, and every service's request decoding and handling (the
 * sandbox service, Task API v2 and v3, Streaming), the real serve_on_frame path.
 *
 * The handlers are real, so this process is fenced first: its own UTS, network and mount
 * namespaces (SetHostname, SetupNetwork and MountShare act there, /run is a tmpfs), and the
 * calls that would reach the machine itself are wrapped at link time: adjtimex (SyncClock
 * steps the clock) and the entropy ioctls (AddEntropy would credit fuzz bytes to the host's
 * pool). Shutdown ends the input instead of powering off. Needs root. */
#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/timex.h>
#include <unistd.h>

#include "core/ev.h"
#include "core/sys.h"
#include "services/serve.h"
#include "wire/link.h"
#include "wire/ttrpc.h"

static jmp_buf powered_off;

uint32_t link_local_cid(void)
{
	return 0;
}

static void fuzz_poweroff(void)
{
	longjmp(powered_off, 1);
}

int __wrap_adjtimex(struct timex *tx);
int __wrap_adjtimex(struct timex *tx)
{
	(void)tx;
	return 0;
}

int __real_ioctl(int fd, unsigned long req, void *arg);
int __wrap_ioctl(int fd, unsigned long req, void *arg);
int __wrap_ioctl(int fd, unsigned long req, void *arg)
{
	if (req == RNDADDENTROPY || req == RNDRESEEDCRNG)
		return 0;
	return __real_ioctl(fd, req, arg);
}

static struct conn srv;
static int peer = -1;

struct conn *link_conn_by_id(uint64_t id)
{
	return srv.id == id ? &srv : NULL;
}

static void srv_close(struct conn *c)
{
	conn_reset(c);
}

static void fence(void)
{
	if (unshare(CLONE_NEWUTS | CLONE_NEWNET | CLONE_NEWNS) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("tmpfs", "/run", "tmpfs", 0, "size=16m") < 0) {
		fprintf(stderr, "fuzz-guest-frames: cannot fence itself (root needed): %s\n",
		        strerror(errno));
		exit(1);
	}
}

static void drain(void)
{
	char buf[65536];

	while (ev_once(0) > 0)
		;
	while (read(peer, buf, sizeof(buf)) > 0)
		;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	sandbox_poweroff = fuzz_poweroff;
	int sv[2];

	fence();
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0 ||
	    ev_init() < 0)
		exit(1);
	peer = sv[1];
	conn_init(&srv, sv[0], CONN_SERIAL, serve_on_frame, srv_close);
	ev_add(&srv.w, EPOLLIN);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A new session per input, as after a link reset: no state carries over. */
	conn_reset(&srv);
	if (!setjmp(powered_off)) {
		/* In pieces, as reads arrive; the first byte picks their size. */
		size_t step = size ? (size_t)data[0] % 128 + 1 : 1;

		for (size_t off = 0; off < size; off += step) {
			size_t n = size - off < step ? size - off : step;

			if (ttrpc_rx_feed(&srv.rx, data + off, n) < 0)
				break;
			drain();
		}
	}
	drain();
	return 0;
}
