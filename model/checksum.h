/*
 * checksum: the model file's 64-bit content hash (FORMAT.md, "Checksum").
 *
 * A streaming hash over a byte sequence: four independent multiply-rotate
 * lanes over 32-byte stripes of little-endian 64-bit words, so the CPU
 * keeps four multiplies in flight, then a merge, the tail and a final mix.
 * checksum_content() feeds it the model's logical content (every key/value
 * pair in key order), so the value does not depend on how LMDB laid out
 * its pages.
 */
#pragma once

#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>

struct checksum {
    uint64_t lane[4];
    uint64_t total;    /* bytes fed so far */
    uint8_t buf[32];   /* a partial stripe */
    uint32_t buffered; /* bytes in buf, < 32 */
};

void checksum_init(struct checksum *c);
void checksum_update(struct checksum *c, const void *data, size_t len);
/* checksum_final - the hash of everything fed so far; @c is unchanged and
 * may be fed more. */
uint64_t checksum_final(const struct checksum *c);

/* checksum_content - the checksum of a model's content as seen by @txn.
 * @dbi: the meta, items and users databases, in that order.
 * Hashes, per database, its name and pair count, then every pair in key
 * order except meta/checksum. Returns 0 or an LMDB code. */
int checksum_content(MDB_txn *txn, const MDB_dbi dbi[3], uint64_t *out);
