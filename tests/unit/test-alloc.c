/* PID 1's allocator (guest/init/alloc.c), built here under other names: sizes across the
 * classes and the mmap path, reuse, realloc keeping content, calloc zeroing, alignment. */
#include <stdint.h>
#include <stdlib.h>

#include "tap.h"

void *k_malloc(size_t n);
void k_free(void *p);
void *k_calloc(size_t m, size_t n);
void *k_realloc(void *p, size_t n);

static int filled(const unsigned char *p, size_t n, unsigned char v)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != v)
			return 0;
	return 1;
}

int main(void)
{
	static const size_t sizes[] = { 1, 15, 16, 17, 100, 4000, 32752, 32753, 70000, 5u << 20 };
	unsigned char *blocks[10], *p, *q;
	int aligned = 1, intact = 1;

	for (int i = 0; i < 10; i++) {
		blocks[i] = k_malloc(sizes[i]);
		aligned &= blocks[i] && ((uintptr_t)blocks[i] % 16) == 0;
		memset(blocks[i], i + 1, sizes[i]);
	}
	ok(aligned, "every size is allocated, 16-byte aligned");
	for (int i = 0; i < 10; i++)
		intact &= filled(blocks[i], sizes[i], (unsigned char)(i + 1));
	ok(intact, "blocks do not overlap");
	for (int i = 0; i < 10; i++)
		k_free(blocks[i]);
	p = k_malloc(100);
	ok(p == blocks[4], "a freed block of the same class is reused");
	memset(p, 0xaa, 100);
	k_free(p);
	q = k_calloc(10, 10);
	ok(q && filled(q, 100, 0), "calloc zeroes a reused block");
	q = k_realloc(q, 50);
	ok(q && filled(q, 50, 0), "shrinking realloc keeps the block");
	memset(q, 7, 50);
	q = k_realloc(q, 100000);
	ok(q && filled(q, 50, 7), "growing realloc keeps the content (into the mmap path)");
	q = k_realloc(q, 8u << 20);
	ok(q && filled(q, 50, 7), "and again, mapping to mapping");
	k_free(q);
	ok(k_calloc((size_t)1 << 62, 16) == NULL, "calloc overflow is refused");
	ok(k_realloc(NULL, 10) != NULL, "realloc(NULL) allocates");
	{
		void *a = k_malloc(24), *b;

		k_free(a);
		k_free(NULL);
		b = k_malloc(24);
		ok(a && b == a,
		   "free(NULL) is a no-op: the free list still hands back the last block");
		k_free(b);
	}
	for (int round = 0; round < 3; round++) {
		unsigned char *many[2000];

		for (int i = 0; i < 2000; i++) {
			many[i] = k_malloc((size_t)(i % 700) + 1);
			many[i][0] = (unsigned char)i;
		}
		intact = 1;
		for (int i = 0; i < 2000; i++) {
			intact &= many[i][0] == (unsigned char)i;
			k_free(many[i]);
		}
	}
	ok(intact, "2000 live small blocks, three rounds of reuse");
	return done_testing();
}
