/* libFuzzer: bytes from the guest as the host reads them. The frame reader (fed in pieces,
 * as reads arrive), then what the host does with each frame: responses decoded, event frames
 * unpacked and their timestamps range-checked, as the task proxy does. */
#include <stdint.h>
#include <stdlib.h>

#include "rpc/timestamp.h"
#include "rpc/ttrpc_client.h"
#include "rpc/ttrpc_frame.h"
#include "sandbox.pb-c.h"

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
