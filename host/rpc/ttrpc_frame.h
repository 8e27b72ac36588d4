/* Reading ttrpc frames from a byte stream: one buffer and one parser for every host reader
 * (the blocking guest-link client, the task proxy's guest link and its containerd clients).
 *
 *   ttrpc_reader_fill(r, fd) reads what the fd has;
 *   ttrpc_reader_next(r, &h, &data) then hands out whole frames one by one.
 *
 * Parsing is a pure function of the bytes read so far; the fd loop is the caller's. */
#ifndef KUASAR_TTRPC_FRAME_H
#define KUASAR_TTRPC_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto/ttrpc_wire.h"

struct ttrpc_reader {
	uint8_t *buf;
	size_t start, end, cap; /* unread bytes are buf[start, end) */
	uint32_t discard;       /* data bytes of an oversized frame still to skip */
};

enum ttrpc_next {
	TTRPC_NEED_MORE, /* no whole frame yet */
	TTRPC_FRAME,     /* *h and *data (NULL when empty, valid until the next fill) */
	TTRPC_OVERSIZED, /* *h of a frame over TTRPC_MAX_DATA; its data is skipped as it comes */
};

enum ttrpc_next ttrpc_reader_next(struct ttrpc_reader *r, struct ttrpc_header *h,
                                  const uint8_t **data);
/* Appends n bytes as if read (tests, fuzzing); -1 when out of memory. */
int ttrpc_reader_feed(struct ttrpc_reader *r, const void *bytes, size_t n);
/* One read(2) into the buffer: > 0 bytes read, 0 at end of stream, -1 with errno (EAGAIN
 * and EINTR included; ENOMEM when the buffer cannot grow). */
ssize_t ttrpc_reader_fill(struct ttrpc_reader *r, int fd);
void ttrpc_reader_reset(struct ttrpc_reader *r);
void ttrpc_reader_free(struct ttrpc_reader *r);

#endif
