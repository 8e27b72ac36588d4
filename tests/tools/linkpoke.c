/* linkpoke SOCKET: runs the guest-link abuse sequence against a real VM's kuasar-init over
 * the host end of its link (a unix socket), then sends raw garbage, reconnects and checks
 * the init serves the new session. Prints TAP; exits non-zero on any failure. */
#include "link-abuse.h"

static void no_pump(void)
{
}

static int connect_link(const char *path)
{
	kerr_t err;
	int fd = unix_connect(path, &err);

	if (fd < 0)
		printf("# %s\n", err.msg);
	return fd;
}

int main(int argc, char **argv)
{
	static const char garbage[] = "GET / HTTP/1.1\r\nHost: nobody\r\n\r\n\x00\xff\x13\x37";

	if (argc != 2) {
		fprintf(stderr, "usage: linkpoke SOCKET\n");
		return 2;
	}
	pump = no_pump;
	cli_fd = connect_link(argv[1]);
	if (cli_fd < 0)
		return 1;
	test_abuse();
	test_entropy_limit();
	test_share_args();
	test_task_errors();
	test_stream_abuse();
	/* Garbage desynchronises the framing (its "length" is huge): only a new session
	 * recovers, as with ttrpc itself. The init must reset on the host's disconnect. */
	send_bytes(garbage, sizeof(garbage));
	close(cli_fd);
	/* The link contract: a host reconnects only after the init saw it go (link.c). */
	usleep(200000);
	cli_fd = connect_link(argv[1]);
	ok(cli_fd >= 0, "reconnected after garbage");
	stream = 1;
	check_works("in a new session after garbage and a disconnect");
	close(cli_fd);
	return done_testing();
}
