/* A growable byte buffer with a read offset: what a non-blocking writer keeps pending. */
#ifndef KUASAR_BUF_H
#define KUASAR_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
	uint8_t *p;
	size_t off, len, cap;
};

int buf_append(struct buf *b, const void *data, size_t n);
static inline size_t buf_pending(const struct buf *b)
{
	return b->len - b->off;
}
/* Writes what it can; returns 0 (drained or would block) or -1 on a write error. */
int buf_flush(struct buf *b, int fd);
void buf_free(struct buf *b);

#endif
