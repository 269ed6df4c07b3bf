/*
 * sha256: SHA-256 (FIPS 180-4), for what must be reproducible outside the
 * daemon by anyone with a standard library: the route's assignment of
 * users to arms (engine/route.h). Not for secrets: no effort against
 * timing.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define SHA256_BYTES 32

/* A hash in progress. Plain data: on the stack, no cleanup. */
struct sha256 {
    uint32_t h[8];
    uint64_t bytes;    /* hashed so far */
    uint8_t block[64]; /* the partial block */
    size_t used;       /* bytes in block */
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t len);
/* sha256_final - the digest of everything given to @s; @s is spent. */
void sha256_final(struct sha256 *s, uint8_t out[SHA256_BYTES]);

/* sha256 - the digest of @len bytes at @data, in one call. */
void sha256(const void *data, size_t len, uint8_t out[SHA256_BYTES]);
