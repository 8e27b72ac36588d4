/* The abuse sequence the guest link must survive, shared by the in-process unit test
 * (tests/unit/test-link.c) and the real-VM probe (tests/tools/linkpoke.c). Header-only so
 * its TAP counters are the includer's. */
#ifndef KUASAR_LINK_ABUSE_H
#define KUASAR_LINK_ABUSE_H

#include <stdlib.h>

#include "base/util.h"
#include "proto/ttrpc_wire.h"
#include "rpc/ttrpc_client.h"
#include "sandbox.pb-c.h"
#include "tap.h"
#include "task.pb-c.h"

#ifndef KUASAR_VERSION
#define KUASAR_VERSION "0.1.0"
#endif

/* The driver sets these: the client end of the link, and a pump that lets the server run
 * (a no-op when the server is a real VM). */
static int cli_fd;
static void (*pump)(void);
static const char *expect_link = "virtio-serial";

static void send_bytes(const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n) {
		size_t k = n < 65536 ? n : 65536;

		if (write_all(cli_fd, b, k) < 0)
			abort();
		pump();
		b += k;
		n -= k;
	}
}

static int rpc(uint32_t stream, const char *svc, const char *method, const uint8_t *payload,
               size_t len, struct ttrpc_status *st, uint8_t **resp, size_t *rlen)
{
	uint8_t *frame;
	size_t flen;
	struct ttrpc_header h;
	uint8_t *data = NULL;
	kerr_t err;
	struct ttrpc_client c;

	ttrpc_encode_request(stream, svc, method, payload, len, &frame, &flen);
	send_bytes(frame, flen);
	free(frame);
	ttrpc_client_init(&c, cli_fd);
	if (ttrpc_read_frame(&c, &h, &data, mono_ns() + 2000000000, &err) < 0) {
		printf("# %s\n", err.msg);
		return -1;
	}
	ttrpc_reader_free(&c.rd);
	if (h.stream != stream || h.type != TTRPC_RESPONSE)
		return -1;
	*resp = NULL;
	if (ttrpc_decode_response(data ? data : (uint8_t *)"", h.length, st, resp, rlen) < 0)
		return -1;
	free(data);
	return 0;
}

static int code_of(uint32_t stream, const char *svc, const char *method, const uint8_t *p, size_t n)
{
	struct ttrpc_status st;
	uint8_t *resp = NULL;
	size_t rlen;

	if (rpc(stream, svc, method, p, n, &st, &resp, &rlen) < 0)
		return -1;
	free(resp);
	return st.code;
}

static uint32_t stream = 1;

/* Reads one response frame and returns its status code, -1 if none or on the wrong stream. */
static int read_code(uint32_t want_stream)
{
	struct ttrpc_client c;
	struct ttrpc_header h;
	struct ttrpc_status st = { 0 };
	uint8_t *data = NULL, *p = NULL;
	size_t pl;
	kerr_t err;
	int rc = -1;

	ttrpc_client_init(&c, cli_fd);
	if (ttrpc_read_frame(&c, &h, &data, mono_ns() + 2000000000, &err) == 0 &&
	    h.stream == want_stream && ttrpc_decode_response(data, h.length, &st, &p, &pl) == 0)
		rc = st.code;
	ttrpc_reader_free(&c.rd);
	free(data);
	free(p);
	return rc;
}

static void check_works(const char *after)
{
	struct ttrpc_status st;
	uint8_t *resp = NULL;
	size_t rlen = 0;
	Kuasar__Sandbox__V1__CheckResponse *r = NULL;

	stream += 2;
	if (rpc(stream, "kuasar.sandbox.v1.Sandbox", "Check", NULL, 0, &st, &resp, &rlen) == 0 &&
	    st.code == 0)
		r = kuasar__sandbox__v1__check_response__unpack(NULL, rlen, resp);
	ok(r && !strcmp(r->version, KUASAR_VERSION) && !strcmp(r->link, expect_link) &&
	       r->kernel_to_init_ns > 0 && r->init_to_link_ns > 0,
	   "Check answers %s", after);
	if (r)
		kuasar__sandbox__v1__check_response__free_unpacked(r, NULL);
	free(resp);
}

static void test_abuse(void)
{
	static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0xff, 0x0f };
	uint8_t hdr[TTRPC_HEADER_LEN];
	struct ttrpc_header h = { (5u << 20), 0, TTRPC_REQUEST, 0 };
	uint8_t *big;

	check_works("at first");
	stream += 2;
	is_int(code_of(stream, "no.such.Service", "Check", NULL, 0), 12,
	       "unknown service: UNIMPLEMENTED");
	stream += 2;
	is_int(code_of(stream, "kuasar.sandbox.v1.Sandbox", "Nope", NULL, 0), 12,
	       "unknown method: UNIMPLEMENTED");
	is_int(code_of(stream + 1, "kuasar.sandbox.v1.Sandbox", "Check", NULL, 0), 3,
	       "even stream id: INVALID_ARGUMENT");
	is_int(code_of(stream, "kuasar.sandbox.v1.Sandbox", "Check", NULL, 0), 3,
	       "reused stream id: INVALID_ARGUMENT");
	check_works("after bad stream ids");
	stream += 2;
	is_int(code_of(stream, "kuasar.sandbox.v1.Sandbox", "Check", junk, sizeof(junk)), 3,
	       "malformed payload: INVALID_ARGUMENT");
	stream += 2;
	big = calloc(1, h.length);
	h.stream = stream;
	ttrpc_header_encode(hdr, &h);
	send_bytes(hdr, sizeof(hdr));
	send_bytes(big, h.length);
	free(big);
	is_int(read_code(stream), 8, "5 MiB frame: RESOURCE_EXHAUSTED on its stream");
	check_works("after an oversized frame");
	h = (struct ttrpc_header){ sizeof(junk), stream + 2, TTRPC_REQUEST, 0 };
	stream += 2;
	ttrpc_header_encode(hdr, &h);
	send_bytes(hdr, sizeof(hdr));
	send_bytes(junk, sizeof(junk));
	is_int(read_code(stream), 3, "malformed Request envelope: INVALID_ARGUMENT");
	check_works("after a malformed envelope");
	stream += 2;
	h = (struct ttrpc_header){ 0, stream, TTRPC_DATA, 0 };
	ttrpc_header_encode(hdr, &h);
	send_bytes(hdr, sizeof(hdr));
	is_int(read_code(stream), 3, "data frame on an unknown stream: INVALID_ARGUMENT");
	check_works("after a stray data frame");
}

static void test_entropy_limit(void)
{
	Kuasar__Sandbox__V1__AddEntropyRequest req = KUASAR__SANDBOX__V1__ADD_ENTROPY_REQUEST__INIT;
	uint8_t data[5000] = { 0 }, buf[6000];
	size_t n;

	req.data.data = data;
	req.data.len = sizeof(data);
	n = kuasar__sandbox__v1__add_entropy_request__pack(&req, buf);
	stream += 2;
	is_int(code_of(stream, "kuasar.sandbox.v1.Sandbox", "AddEntropy", buf, n), 3,
	       "5000 bytes of entropy (limit 4096): INVALID_ARGUMENT");
}

static void test_share_args(void)
{
	Kuasar__Sandbox__V1__MountShareRequest req = KUASAR__SANDBOX__V1__MOUNT_SHARE_REQUEST__INIT;
	uint8_t buf[128];
	size_t n;

	req.fstype = "ntfs";
	n = kuasar__sandbox__v1__mount_share_request__pack(&req, buf);
	stream += 2;
	is_int(code_of(stream, "kuasar.sandbox.v1.Sandbox", "MountShare", buf, n), 3,
	       "MountShare of an unknown filesystem type: INVALID_ARGUMENT");
}

/* The Task API refuses what it cannot act on with the codes containerd expects. */
static void test_task_errors(void)
{
	Containerd__Task__V3__StateRequest st = CONTAINERD__TASK__V3__STATE_REQUEST__INIT;
	Containerd__Task__V3__CreateTaskRequest cr =
	    CONTAINERD__TASK__V3__CREATE_TASK_REQUEST__INIT;
	uint8_t buf[512];
	size_t n;

	st.id = "no-such-container";
	n = containerd__task__v3__state_request__pack(&st, buf);
	stream += 2;
	is_int(code_of(stream, "containerd.task.v3.Task", "State", buf, n), 5,
	       "State of an unknown container: NOT_FOUND");
	stream += 2;
	is_int(code_of(stream, "containerd.task.v2.Task", "State", buf, n), 5,
	       "the v2 service name answers too");
	stream += 2;
	is_int(code_of(stream, "containerd.task.v3.Task", "Kill", buf, n), 5,
	       "Kill of an unknown container: NOT_FOUND");
	cr.id = "../escape";
	cr.bundle = "/nonexistent";
	n = containerd__task__v3__create_task_request__pack(&cr, buf);
	stream += 2;
	is_int(code_of(stream, "containerd.task.v3.Task", "Create", buf, n), 3,
	       "Create with '..' in the id: INVALID_ARGUMENT");
	cr.id = "c1";
	n = containerd__task__v3__create_task_request__pack(&cr, buf);
	stream += 2;
	is_int(code_of(stream, "containerd.task.v3.Task", "Create", buf, n), 5,
	       "Create from a missing bundle: NOT_FOUND");
	cr.id = "";
	n = containerd__task__v3__create_task_request__pack(&cr, buf);
	stream += 2;
	is_int(code_of(stream, "containerd.task.v3.Task", "Create", buf, n), 3,
	       "Create without an id: INVALID_ARGUMENT");
	stream += 2;
	is_int(code_of(stream, "containerd.task.v3.Task", "Checkpoint", NULL, 0), 12,
	       "Checkpoint: UNIMPLEMENTED");
	/* The payload (a bytes field) sent as a varint: nanopb would hand over a view of its
	 * own stack buffer; the init must refuse it, not keep it (fuzzing found this). */
	{
		static const uint8_t body[] = { 0x0a, 23,  'c', 'o', 'n',  't',  'a', 'i',  'n',
			                        'e',  'r', 'd', '.', 't',  'a',  's', 'k',  '.',
			                        'v',  '3', '.', 'T', 'a',  's',  'k', 0x12, 4,
			                        'E',  'x', 'e', 'c', 0x18, 0x85, 0x01 };
		uint8_t frame[TTRPC_HEADER_LEN + sizeof(body)];
		struct ttrpc_header h = { sizeof(body), 0, TTRPC_REQUEST, 0 };

		stream += 2;
		h.stream = stream;
		ttrpc_header_encode(frame, &h);
		memcpy(frame + TTRPC_HEADER_LEN, body, sizeof(body));
		send_bytes(frame, sizeof(frame));
		is_int(read_code(stream), 3, "a payload sent as a varint: INVALID_ARGUMENT");
		check_works("after it");
	}
}

/* Streaming stdio refuses what it cannot use and keeps serving. */
static void open_stream(uint32_t id)
{
	uint8_t *frame;
	size_t len;

	ttrpc_encode_request(id, "containerd.services.streaming.v1.Streaming", "Stream", NULL, 0,
	                     &frame, &len);
	frame[9] = TTRPC_FLAG_REMOTE_OPEN;
	send_bytes(frame, len);
	free(frame);
}

static void send_data(uint32_t id, const uint8_t *p, size_t n)
{
	uint8_t hdr[TTRPC_HEADER_LEN];
	struct ttrpc_header h = { (uint32_t)n, id, TTRPC_DATA, 0 };

	ttrpc_header_encode(hdr, &h);
	send_bytes(hdr, sizeof(hdr));
	if (n)
		send_bytes(p, n);
}

static void test_stream_abuse(void)
{
	static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0x01 };
	/* Any { type_url: "containerd.types.transfer.Data" } before any StreamInit */
	static const uint8_t early[] = { 0x0a, 0x1e, 'c', 'o', 'n', 't', 'a', 'i', 'n', 'e', 'r',
		                         'd',  '.',  't', 'y', 'p', 'e', 's', '.', 't', 'r', 'a',
		                         'n',  's',  'f', 'e', 'r', '.', 'D', 'a', 't', 'a' };

	stream += 2;
	open_stream(stream);
	send_data(stream, junk, sizeof(junk));
	is_int(read_code(stream), 3, "a stream fed malformed protobuf ends with INVALID_ARGUMENT");
	stream += 2;
	open_stream(stream);
	send_data(stream, early, sizeof(early));
	is_int(read_code(stream), 3,
	       "data before StreamInit ends the stream with INVALID_ARGUMENT");
	check_works("after abused streams");
}

#endif
