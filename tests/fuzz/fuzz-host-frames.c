/* libFuzzer: bytes from the guest as the host reads them. The frame reader (fed in pieces,
 * as reads arrive), then what the host does with each frame: responses decoded, event frames
 * unpacked, their timestamps range-checked and the event put through the filter that decides
 * what reaches containerd, as the task proxy does. The filter's promise is checked on every
 * event it lets pass: its container is one the sandbox owns, and what is forwarded decodes to
 * that container. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "events.pb-c.h"
#include "proxy/event_filter.h"
#include "rpc/timestamp.h"
#include "rpc/ttrpc_client.h"
#include "rpc/ttrpc_frame.h"
#include "sandbox.pb-c.h"

/* This sandbox owns c1 and c2. */
static int owns(const char *id, void *arg)
{
	return !strcmp(id, "c1") || !strcmp(id, "c2");
}

/* Every event the filter passes names an owned container, in what is forwarded too. */
static void filter(const Kuasar__Sandbox__V1__Event *ev)
{
	struct event_checked out;
	char why[256];
	ProtobufCMessage *m;

	if (!ev->event || event_check(ev->topic, ev->event->type_url, ev->event->value.data,
	                              ev->event->value.len, owns, NULL, &out, why, sizeof(why)) < 0)
		return;
	if (!owns(out.container_id, NULL))
		abort();
	/* Every task event keeps its container id in field 1; TaskOOM has nothing else. */
	m = protobuf_c_message_unpack(&containerd__events__task_oom__descriptor, NULL, out.len,
	                              out.value);
	if (!m ||
	    strcmp(((Containerd__Events__TaskOOM *)(void *)m)->container_id, out.container_id))
		abort();
	protobuf_c_message_free_unpacked(m, NULL);
	free(out.value);
}

static void consume(const struct ttrpc_header *h, const uint8_t *data)
{
	struct ttrpc_status st;
	uint8_t *payload = NULL;
	size_t plen = 0;

	if (h->type == TTRPC_RESPONSE) {
		if (ttrpc_decode_response(data ? data : (const uint8_t *)"", h->length, &st,
		                          &payload, &plen) == 0)
			free(payload);
	} else if (h->type == TTRPC_DATA && data) {
		Kuasar__Sandbox__V1__Event *ev =
		    kuasar__sandbox__v1__event__unpack(NULL, h->length, data);
		int64_t ns;

		if (ev) {
			(void)ts_to_ns(ev->timestamp, &ns);
			filter(ev);
			kuasar__sandbox__v1__event__free_unpacked(ev, NULL);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ttrpc_reader r = { 0 };
	size_t off = 0;

	/* The first byte picks the read size, so frames straddle reads. */
	size_t step = size ? (size_t)data[0] % 64 + 1 : 1;

	while (off < size) {
		size_t n = size - off < step ? size - off : step;
		struct ttrpc_header h;
		const uint8_t *d;
		enum ttrpc_next k;

		if (ttrpc_reader_feed(&r, data + off, n) < 0)
			break;
		off += n;
		while ((k = ttrpc_reader_next(&r, &h, &d)) != TTRPC_NEED_MORE)
			if (k == TTRPC_FRAME)
				consume(&h, d);
	}
	ttrpc_reader_free(&r);
	return 0;
}
