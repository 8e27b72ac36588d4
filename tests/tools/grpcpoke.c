/* grpcpoke: one raw gRPC call, for tests of the sandboxer's bad-input handling.
 *
 *   grpcpoke SOCK PATH [--id ID] [--field2 N] [--netns PATH] [--hex HEX] [--zeros N]
 *
 * The request is { 1: ID, 2: N, 4: PATH } (sandbox_id, for Stop timeout_secs, for Create
 * netns_path), or HEX bytes,
 * or N zero bytes. Prints "code=C bytes=B message=M text=T" (T: the answer's printable bytes)
 * and exits 0 whenever an answer came. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/grpc.h"

static size_t put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	do {
		p[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v);
	return n;
}

int main(int argc, char **argv)
{
	uint8_t *req = NULL, *resp = NULL;
	size_t len = 0, rlen = 0;
	struct grpc_status st;
	kerr_t err;

	if (argc < 3) {
		fprintf(
		    stderr,
		    "usage: grpcpoke SOCK PATH [--id ID] [--field2 N] [--hex HEX] [--zeros N]\n");
		return 2;
	}
	req = calloc(1, 64u << 20);
	for (int i = 3; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--id")) {
			size_t n = strlen(argv[i + 1]);

			req[len++] = 0x0a;
			len += put_varint(req + len, n);
			memcpy(req + len, argv[i + 1], n);
			len += n;
		} else if (!strcmp(argv[i], "--netns")) {
			size_t n = strlen(argv[i + 1]);

			req[len++] = 0x22;
			len += put_varint(req + len, n);
			memcpy(req + len, argv[i + 1], n);
			len += n;
		} else if (!strcmp(argv[i], "--field2")) {
			req[len++] = 0x10;
			len += put_varint(req + len, strtoull(argv[i + 1], NULL, 10));
		} else if (!strcmp(argv[i], "--hex")) {
			for (const char *h = argv[i + 1]; h[0] && h[1]; h += 2) {
				char b[3] = { h[0], h[1], 0 };

				req[len++] = (uint8_t)strtoul(b, NULL, 16);
			}
		} else if (!strcmp(argv[i], "--zeros")) {
			size_t n = strtoull(argv[i + 1], NULL, 10);

			if (n > (64u << 20) - len)
				return 2;
			len += n;
		}
	}
	if (grpc_call_unary(argv[1], argv[2], req, len, &resp, &rlen, &st, 60000, &err) < 0) {
		fprintf(stderr, "grpcpoke: %s\n", err.msg);
		return 1;
	}
	/* The answer's printable bytes: enough to find strings (states, addresses) in it. */
	printf("code=%d bytes=%zu message=%s text=", st.code, rlen, st.message);
	for (size_t i = 0; i < rlen; i++)
		putchar(resp[i] >= 0x20 && resp[i] < 0x7f ? resp[i] : '.');
	putchar('\n');
	free(req);
	free(resp);
	return 0;
}
