/* A small allocator for PID 1, replacing musl's mallocng (about 7 KB of the 100 KB budget).
 *
 * The init is single-threaded and allocates little: frames, specs, token arrays, stream
 * buffers. Requests up to 32 KiB come from power-of-two size classes carved out of 64 KiB
 * chunks and recycled through per-class free lists (chunks are never returned); larger ones
 * are their own mmap and go back on free. Every block carries a 16-byte header with its class
 * (or its mapping length), which keeps the payload 16-byte aligned. Children cloned from PID 1
 * get a private copy, as with any allocator. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define MIN_SHIFT 4  /* 16 bytes */
#define MAX_SHIFT 15 /* 32 KiB */
#define CLASSES (MAX_SHIFT - MIN_SHIFT + 1)
#define CHUNK (64u << 10)
#define BIG ((size_t)-1)

struct header {
	size_t cls;   /* class index, or BIG */
	size_t bytes; /* BIG: the mapping's length, header included */
};

struct free_block {
	struct free_block *next;
};

static struct free_block *free_lists[CLASSES];

/* Through an integer: the compiler treats malloc's result as a fresh object and would
 * otherwise object to looking in front of it. */
static struct header *hdr(void *p)
{
	return (struct header *)((uintptr_t)p - sizeof(struct header));
}
static char *chunk_pos, *chunk_end;

static size_t class_of(size_t n)
{
	size_t cls = 0;

	while (((size_t)1 << (cls + MIN_SHIFT)) < n)
		cls++;
	return cls;
}

static void *carve(size_t block)
{
	void *p;

	if ((size_t)(chunk_end - chunk_pos) < block) {
		p = mmap(NULL, CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return NULL;
		chunk_pos = p;
		chunk_end = chunk_pos + CHUNK;
	}
	p = chunk_pos;
	chunk_pos += block;
	return p;
}

static void *big(size_t n)
{
	size_t len = (n + sizeof(struct header) + 4095) & ~(size_t)4095;
	struct header *h;

	if (len < n)
		return NULL;
	h = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (h == MAP_FAILED)
		return NULL;
	h->cls = BIG;
	h->bytes = len;
	return h + 1;
}

void *malloc(size_t n)
{
	struct header *h;
	size_t cls;

	if (n > ((size_t)1 << MAX_SHIFT) - sizeof(struct header)) {
		void *p = big(n);

		if (!p)
			errno = ENOMEM;
		return p;
	}
	cls = class_of(n + sizeof(struct header));
	if (free_lists[cls]) {
		h = (struct header *)free_lists[cls];
		free_lists[cls] = free_lists[cls]->next;
	} else if (!(h = carve((size_t)1 << (cls + MIN_SHIFT)))) {
		errno = ENOMEM;
		return NULL;
	}
	h->cls = cls;
	return h + 1;
}

void free(void *p)
{
	struct header *h = hdr(p);
	struct free_block *b = (struct free_block *)h;
	size_t cls;

	if (!p)
		return;
	cls = h->cls; /* the link overwrites the header */
	if (cls == BIG) {
		munmap(h, h->bytes);
		return;
	}
	if (cls >= CLASSES)
		__builtin_trap(); /* not ours, or freed twice and overwritten: stop here */
	b->next = free_lists[cls];
	free_lists[cls] = b;
}

static size_t capacity(const struct header *h)
{
	return h->cls == BIG ? h->bytes - sizeof(*h)
	                     : ((size_t)1 << (h->cls + MIN_SHIFT)) - sizeof(*h);
}

void *calloc(size_t m, size_t n)
{
	size_t total = m * n;
	void *p;

	if (n && total / n != m) {
		errno = ENOMEM;
		return NULL;
	}
	p = malloc(total);
	if (p && hdr(p)->cls != BIG) /* fresh mappings are zero already */
		memset(p, 0, total);
	return p;
}

void *realloc(void *p, size_t n)
{
	void *q;
	size_t have;

	if (!p)
		return malloc(n);
	have = capacity(hdr(p));
	if (n <= have)
		return p;
	q = malloc(n);
	if (q) {
		memcpy(q, p, have);
		free(p);
	}
	return q;
}
