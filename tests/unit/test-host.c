/* Host library pieces that need no VM: ttrpc request/response encoding, ids, errors, the
 * QEMU command line. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fsat.h"
#include "base/util.h"
#include "google/rpc/status.pb-c.h"
#include "rpc/agent.h"
#include "rpc/ttrpc_client.h"
#include "tap.h"
#include "ttrpc.pb-c.h"
#include "vm/vm.h"
#include "vm/vmm.h"

static void test_request(void)
{
	uint8_t *frame = NULL;
	size_t len = 0;
	struct ttrpc_header h;
	Ttrpc__Request *r;

	ok(ttrpc_encode_request(7, "svc.S", "M", (const uint8_t *)"\x01\x02", 2, &frame, &len) == 0,
	   "encode request");
	ttrpc_header_decode(&h, frame);
	is_int(h.length, len - TTRPC_HEADER_LEN, "header length covers the data only");
	is_int(h.stream, 7, "stream id");
	is_int(h.type, TTRPC_REQUEST, "request type");
	is_int(frame[0], 0, "length is big endian");
	r = ttrpc__request__unpack(NULL, h.length, frame + TTRPC_HEADER_LEN);
	ok(r && !strcmp(r->service, "svc.S") && !strcmp(r->method, "M") && r->payload.len == 2,
	   "request fields round-trip");
	ttrpc__request__free_unpacked(r, NULL);
	free(frame);
}

static void test_response(void)
{
	Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
	Ttrpc__Response resp = TTRPC__RESPONSE__INIT;
	struct ttrpc_status out;
	uint8_t buf[256], *payload = NULL;
	size_t len, plen = 9;

	st.code = 5;
	st.message = "nope";
	resp.status = &st;
	len = ttrpc__response__pack(&resp, buf);
	ok(ttrpc_decode_response(buf, len, &out, &payload, &plen) == 0, "decode error response");
	is_int(out.code, 5, "status code");
	is_str(out.message, "nope", "status message");
	is_int(plen, 0, "no payload");
	free(payload);
	ok(ttrpc_decode_response((const uint8_t *)"\xff\xff\xff", 3, &out, &payload, &plen) < 0,
	   "malformed response is rejected");
	is_str(rpc_code_name(8), "RESOURCE_EXHAUSTED", "code names");
	is_str(rpc_code_name(99), "CODE_OUT_OF_RANGE", "unknown code name");
}

static void test_ids(void)
{
	kerr_t err;

	ok(id_valid("pod-1_a.b", &err) == 0, "plain id accepted");
	ok(id_valid("..", &err) < 0 && err.errnum == EINVAL, "'..' rejected");
	ok(id_valid("../etc", &err) < 0, "'../etc' rejected");
	ok(id_valid("a/b", &err) < 0, "slash rejected");
	ok(id_valid("", &err) < 0, "empty rejected");
	ok(id_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", &err) < 0,
	   "65 characters rejected");
}

static void test_err(void)
{
	kerr_t err;

	errno = ENOENT;
	kerr_sys(&err, "open %s", "/x");
	kerr_wrap(&err, "start `%s`", "a");
	is_str(err.msg, "start `a`: open /x: No such file or directory", "context is prepended");
	is_int(err.errnum, ENOENT, "errno kept");
}

static int has_arg(char **argv, const char *prefix)
{
	for (; *argv; argv++)
		if (!strncmp(*argv, prefix, strlen(prefix)))
			return 1;
	return 0;
}

static void test_argv(void)
{
	struct vm_config cfg;
	struct vm_paths p;
	char **argv;

	char longdir[KPATH_SIZE];
	kerr_t err;

	vm_config_defaults(&cfg);
	memset(longdir, 'd', sizeof(longdir) - 1);
	longdir[0] = '/';
	longdir[sizeof(longdir) - 1] = 0;
	ok(vm_paths_init(&p, longdir, "x1", &err) < 0 && err.errnum == ENAMETOOLONG,
	   "a run directory too long for the VM's paths is an error, not a cut path");
	longdir[KPATH_SIZE - 8] = 0;
	ok(vm_paths_init(&p, longdir, "x1", &err) < 0 && err.errnum == ENAMETOOLONG,
	   "so is one whose directory fits but whose socket paths do not");
	ok(vm_paths_init(&p, "/run/kuasar", "x1", &err) == 0, "paths of a VM");
	argv = qemu_argv(&cfg, &p, "x1", ACCEL_TCG);
	ok(has_arg(argv, "microvm,acpi=off"), "microvm without ACPI");
	ok(has_arg(argv, "-no-reboot"), "guest reset ends the VMM");
	ok(has_arg(argv, "virtserialport,chardev=agent,name=io.kuasar.agent"), "agent port");
	ok(has_arg(argv, "kuasar-x1,process=kuasar-x1"), "process named after the sandbox");
	ok(host_tsc_khz() == 0 || has_arg(argv, "console=ttyS0 quiet reboot=t panic=-1 pci=off "
	                                        "lapic_timer_hz=1000000000 kuasar.log=info "
	                                        "tsc_early_khz="),
	   "tsc_early_khz under TCG");
	for (char **a = argv; *a; a++)
		if (!strncmp(*a, "console=", 8))
			ok(host_tsc_khz() == 0 || strstr(*a, " tsc=reliable"),
			   "tsc=reliable under TCG (no clocksource watchdog waking an idle VM)");
	ok(!has_arg(argv, "vhost-vsock-device"), "no vsock device on a serial link");
	argv_free(argv);
	argv = qemu_argv(&cfg, &p, "x1", ACCEL_KVM);
	ok(!has_arg(argv, "console=ttyS0 quiet reboot=t panic=-1 pci=off lapic_timer_hz=1000000000 "
	                  "kuasar.log=info tsc"),
	   "no tsc_early_khz under KVM");
	argv_free(argv);
	cfg.link = LINK_VSOCK;
	cfg.guest_cid = 42;
	argv = qemu_argv(&cfg, &p, "x1", ACCEL_KVM);
	ok(has_arg(argv, "vhost-vsock-device,guest-cid=42"),
	   "vsock link adds vhost-vsock with the CID");
	argv_free(argv);
}

/* rm_tree must never empty a bind mount it finds inside the tree. */
static void test_rm_tree(void)
{
	char top[] = "/tmp/kuasar-rmtree.XXXXXX", keep[] = "/tmp/kuasar-keep.XXXXXX";
	char p[256];
	int fd;

	if (getuid() != 0) {
		skip("rm_tree and bind mounts need root");
		return;
	}
	mkdtemp(top);
	mkdtemp(keep);
	snprintf(p, sizeof(p), "%s/precious", keep);
	fd = open(p, O_WRONLY | O_CREAT, 0644);
	close(fd);
	snprintf(p, sizeof(p), "%s/a/b/mnt", top);
	mkdir_p(p, 0755, NULL);
	ok(mount(keep, p, NULL, MS_BIND, NULL) == 0, "bind a directory into the tree");
	ok(rm_tree(top) < 0 && errno == EBUSY, "rm_tree refuses to enter the bind mount");
	snprintf(p, sizeof(p), "%s/precious", keep);
	ok(access(p, F_OK) == 0, "what the mount shows is untouched");
	snprintf(p, sizeof(p), "%s/a/b/mnt", top);
	umount2(p, MNT_DETACH);
	ok(rm_tree(top) == 0 && access(top, F_OK) < 0, "after the unmount the tree goes");
	snprintf(p, sizeof(p), "%s/precious", keep);
	unlink(p);
	rmdir(keep);
}

static void put_frame(struct ttrpc_reader *r, uint32_t len, uint32_t stream, const char *fill)
{
	struct ttrpc_header h = { len, stream, TTRPC_DATA, 0 };
	uint8_t hdr[TTRPC_HEADER_LEN];

	ttrpc_header_encode(hdr, &h);
	ttrpc_reader_feed(r, hdr, sizeof(hdr));
	if (fill)
		ttrpc_reader_feed(r, fill, strlen(fill));
}

/* The one frame reader every host side uses: frames split anywhere, empty frames, and an
 * oversized frame skipped as its bytes arrive, the stream intact after it. */
static void test_frame_reader(void)
{
	struct ttrpc_reader r = { 0 };
	struct ttrpc_header h;
	const uint8_t *d;
	uint8_t hdr[TTRPC_HEADER_LEN];
	struct ttrpc_header big = { TTRPC_MAX_DATA + 1, 7, TTRPC_REQUEST, 0 };
	static uint8_t junk[1 << 16];
	size_t left;

	put_frame(&r, 5, 1, "he");
	ok(ttrpc_reader_next(&r, &h, &d) == TTRPC_NEED_MORE, "half a frame is not a frame");
	ttrpc_reader_feed(&r, "llo", 3);
	ok(ttrpc_reader_next(&r, &h, &d) == TTRPC_FRAME && h.stream == 1 && h.length == 5 &&
	       !memcmp(d, "hello", 5),
	   "the rest completes it");
	put_frame(&r, 0, 3, NULL);
	ok(ttrpc_reader_next(&r, &h, &d) == TTRPC_FRAME && h.stream == 3 && !d,
	   "an empty frame has no data");
	ttrpc_header_encode(hdr, &big);
	ttrpc_reader_feed(&r, hdr, sizeof(hdr));
	ok(ttrpc_reader_next(&r, &h, &d) == TTRPC_OVERSIZED && h.stream == 7,
	   "an oversized frame is reported by its header");
	for (left = big.length; left > sizeof(junk); left -= sizeof(junk)) {
		ttrpc_reader_feed(&r, junk, sizeof(junk));
		if (ttrpc_reader_next(&r, &h, &d) != TTRPC_NEED_MORE)
			break;
	}
	ok(left <= sizeof(junk), "its data is skipped without being kept (buffer %zu bytes)",
	   r.cap);
	ttrpc_reader_feed(&r, junk, left);
	put_frame(&r, 2, 9, "ok");
	ok(ttrpc_reader_next(&r, &h, &d) == TTRPC_FRAME && h.stream == 9 && !memcmp(d, "ok", 2),
	   "the frame after it is read whole");
	ok(ttrpc_reader_next(&r, &h, &d) == TTRPC_NEED_MORE, "and nothing more");
	ttrpc_reader_free(&r);
}

/* Steps timed one after another; past PHASES_MAX they add to the last. */
static void test_phases(void)
{
	struct phases ph;
	char line[256];

	phases_begin(&ph, 1000000);
	phases_mark_at(&ph, "restore", 41000000);
	phases_mark_at(&ph, "share", 43500000);
	phases_format(&ph, line, sizeof(line));
	ok(!strcmp(line, "restore 40.0 ms, share 2.5 ms; 42.5 ms in all"), "formatted: %s", line);
	for (int i = 0; i < 20; i++)
		phases_mark_at(&ph, "more", 44000000 + i * 1000000);
	ok(ph.n == PHASES_MAX && ph.step[PHASES_MAX - 1].ns == 7000000,
	   "steps past the table add to its last (%u steps)", ph.n);
	phases_mark(NULL, "x"); /* no phases: nothing happens */
}

/* Feeds text to a VM's console as the guest would and returns what the log got. */
static void console_feed(const char *text, char *logged, size_t n)
{
	struct vm vm;
	int sv[2], saved = dup(2), fd = open("/tmp", O_TMPFILE | O_RDWR, 0600);
	ssize_t r;

	vm_init(&vm, "echo-test");
	vm.echo_created = 1;
	socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv);
	vm.con_fd = sv[0];
	dup2(fd, 2);
	for (size_t off = 0; off < strlen(text); off += 4000) {
		(void)!write(sv[1], text + off,
		             strlen(text) - off < 4000 ? strlen(text) - off : 4000);
		vm_console_pump(&vm);
	}
	dup2(saved, 2);
	r = pread(fd, logged, n - 1, 0);
	logged[r > 0 ? r : 0] = '\0';
	close(saved), close(fd), close(sv[0]), close(sv[1]);
}

/* Guest console lines reach the log only as the guest's Create reports, bounded, clean. */
static void test_console_echo(void)
{
	static char text[8192], logged[8192];
	size_t len = 0;
	int lines = 0;

	console_feed("[1.0] kuasar-init: info: container c1: created, pid 7: spec 10 us\n"
	             "[1.1] kuasar-init: info: something else\n"
	             "[1.2] kuasar-init: info: container c2: created, pid 8: \033[2J\n",
	             logged, sizeof(logged));
	ok(strstr(logged, "guest: container c1: created, pid 7: spec 10 us") != NULL,
	   "a created line is logged");
	ok(!strstr(logged, "something else"), "other guest lines are not");
	ok(strstr(logged, "pid 8: ?[2J") && !strchr(logged, '\033'), "escapes become ?");
	for (int i = 0; i < 30; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len,
		                        "kuasar-init: info: container f%d: created, pid 1: x\n", i);
	console_feed(text, logged, sizeof(logged));
	for (char *p = logged; (p = strstr(p, "guest: container")); p++)
		lines++;
	ok(lines == 10, "a flood is cut to 10 lines a second (%d logged)", lines);
}

/* One NTP-style round (ns): the guest 45 behind the host, 10 of round trip on the wire. */
static void test_clock_estimate(void)
{
	const int64_t t[4] = { 100, 60, 70, 120 };
	int64_t off, rtt;

	ok(!clock_round_estimate(t, 0, &off, &rtt) && off == 45 && rtt == 10,
	   "offset and round trip of one round (%lld, %lld)", (long long)off, (long long)rtt);
	ok(clock_round_estimate(t, 40, &off, &rtt), "within half the round trip plus tolerance");
	ok(!clock_round_estimate(t, 39, &off, &rtt), "not one nanosecond past it");
}

int main(void)
{
	test_clock_estimate();
	test_phases();
	test_console_echo();
	test_frame_reader();
	test_request();
	test_response();
	test_ids();
	test_err();
	test_argv();
	test_rm_tree();
	return done_testing();
}
