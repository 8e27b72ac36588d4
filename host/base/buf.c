#include "base/buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int buf_append(struct buf *b, const void *data, size_t n)
{
	if (b->off && b->off == b->len)
		b->off = b->len = 0;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		uint8_t *p;

		if (b->off) {
			memmove(b->p, b->p + b->off, b->len - b->off);
			b->len -= b->off;
			b->off = 0;
		}
		while (cap < b->len + n)
			cap *= 2;
		if (cap != b->cap) {
			p = realloc(b->p, cap);
			if (!p)
				return -1;
			b->p = p;
			b->cap = cap;
		}
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	return 0;
}

int buf_flush(struct buf *b, int fd)
{
	while (b->off < b->len) {
		ssize_t w = write(fd, b->p + b->off, b->len - b->off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return errno == EAGAIN ? 0 : -1;
		b->off += (size_t)w;
	}
	b->off = b->len = 0;
	return 0;
}

void buf_free(struct buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}
