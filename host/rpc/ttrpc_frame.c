#include "rpc/ttrpc_frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Reads go in chunks of this much; the buffer never needs more than one whole frame plus a
 * chunk. */
#define CHUNK 65536u
#define CAP_MAX (TTRPC_HEADER_LEN + TTRPC_MAX_DATA + CHUNK)

enum ttrpc_next ttrpc_reader_next(struct ttrpc_reader *r, struct ttrpc_header *h,
                                  const uint8_t **data)
{
	for (;;) {
		size_t left = r->end - r->start;

		if (r->discard) {
			size_t k = left < r->discard ? left : r->discard;

			r->start += k;
			r->discard -= (uint32_t)k;
			if (r->discard)
				return TTRPC_NEED_MORE;
			continue;
		}
		if (left < TTRPC_HEADER_LEN)
			return TTRPC_NEED_MORE;
		ttrpc_header_decode(h, r->buf + r->start);
		if (h->length > TTRPC_MAX_DATA) {
			r->start += TTRPC_HEADER_LEN;
			r->discard = h->length;
			*data = NULL;
			return TTRPC_OVERSIZED;
		}
		if (left < TTRPC_HEADER_LEN + (size_t)h->length)
			return TTRPC_NEED_MORE;
		*data = h->length ? r->buf + r->start + TTRPC_HEADER_LEN : NULL;
		r->start += TTRPC_HEADER_LEN + h->length;
		return TTRPC_FRAME;
	}
}

/* Moves the unread bytes to the front and makes room for at least want more. */
static int make_room(struct ttrpc_reader *r, size_t want)
{
	size_t cap;
	uint8_t *p;

	if (r->start) {
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->end -= r->start;
		r->start = 0;
	}
	if (r->cap - r->end >= want)
		return 0;
	cap = r->cap ? r->cap : 2 * CHUNK;
	while (cap - r->end < want)
		cap *= 2;
	if (cap > CAP_MAX && r->end + want <= CAP_MAX)
		cap = CAP_MAX;
	p = realloc(r->buf, cap);
	if (!p) {
		errno = ENOMEM;
		return -1;
	}
	r->buf = p;
	r->cap = cap;
	return 0;
}

int ttrpc_reader_feed(struct ttrpc_reader *r, const void *bytes, size_t n)
{
	if (make_room(r, n) < 0)
		return -1;
	memcpy(r->buf + r->end, bytes, n);
	r->end += n;
	return 0;
}

ssize_t ttrpc_reader_fill(struct ttrpc_reader *r, int fd)
{
	ssize_t n;

	if (make_room(r, CHUNK) < 0)
		return -1;
	n = read(fd, r->buf + r->end, r->cap - r->end);
	if (n > 0)
		r->end += (size_t)n;
	return n;
}

void ttrpc_reader_reset(struct ttrpc_reader *r)
{
	r->start = r->end = 0;
	r->discard = 0;
}

void ttrpc_reader_free(struct ttrpc_reader *r)
{
	free(r->buf);
	memset(r, 0, sizeof(*r));
}
