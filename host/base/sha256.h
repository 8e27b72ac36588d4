/* SHA-256 (FIPS 180-4), small and dependency-free: template keys and state checksums are
 * computed in every task proxy, and linking a crypto library costs each of those processes
 * more private memory than the proxy itself. */
#ifndef KUASAR_SHA256_H
#define KUASAR_SHA256_H

#include <stddef.h>
#include <stdint.h>

/* 64 hex digits and their NUL. */
#define SHA256_HEX_SIZE 65

struct sha256 {
	uint32_t h[8];
	uint64_t len; /* bytes hashed so far */
	uint8_t block[64];
	size_t fill;
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t n);
void sha256_final(struct sha256 *s, uint8_t out[32]);
/* The digest of data as 64 lowercase hex digits. */
void sha256_hex(const void *data, size_t n, char out[SHA256_HEX_SIZE]);
void sha256_to_hex(const uint8_t d[32], char out[SHA256_HEX_SIZE]);

#endif
