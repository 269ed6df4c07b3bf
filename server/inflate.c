#include "server/inflate.h"

#include <errno.h>
#include <string.h>
#define ZLIB_CONST /* next_in points to const: the slices are the core's */
#include <zlib.h>

#include "base/err.h"

/* The first output block: a few times the input, as protobuf messages of
 * ids compress 3-5x, and at least 64 KiB. It doubles from there, up to
 * @max + 1, the byte that tells the limit was passed. */
#define INFLATE_FIRST_BLOCK (64u << 10)
#define INFLATE_RATIO_GUESS 8

/* zlib's windowBits: 15 is the largest window; +16 reads a gzip wrapper,
 * plain 15 a zlib one, which is what grpc-encoding "deflate" carries. */
static const int window_bits[GRPC_COMPRESS_ALGORITHMS_COUNT] = {
    [GRPC_COMPRESS_DEFLATE] = 15,
    [GRPC_COMPRESS_GZIP] = 15 + 16,
};

/* grow - a block of @want bytes holding the @used already written. */
static uint8_t *grow(struct arena *a, uint8_t *old, size_t used, size_t want)
{
    uint8_t *buf = arena_alloc(a, want);
    if (buf != NULL && used > 0)
        memcpy(buf, old, used);
    return buf;
}

int inflate_message(grpc_compression_algorithm algorithm, const grpc_slice *in, size_t n,
                    size_t max, struct arena *a, const uint8_t **data, size_t *len)
{
    if ((unsigned)algorithm >= GRPC_COMPRESS_ALGORITHMS_COUNT || window_bits[algorithm] == 0)
        return ERR_INVALID;
    size_t in_len = 0;
    for (size_t i = 0; i < n; i++)
        in_len += GRPC_SLICE_LENGTH(in[i]);
    /* One byte more than the limit: producing it proves the limit passed. */
    size_t cap = max + 1, size = INFLATE_FIRST_BLOCK;
    if (in_len <= cap / INFLATE_RATIO_GUESS && in_len * INFLATE_RATIO_GUESS > size)
        size = in_len * INFLATE_RATIO_GUESS;
    if (size > cap)
        size = cap;
    uint8_t *out = grow(a, NULL, 0, size);
    if (out == NULL)
        return -ENOMEM;

    z_stream z;
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, window_bits[algorithm]) != Z_OK)
        return -ENOMEM;
    int rc = 0, zrc = Z_OK;
    size_t used = 0;
    for (size_t i = 0; i < n && zrc != Z_STREAM_END && rc == 0; i++) {
        z.next_in = GRPC_SLICE_START_PTR(in[i]);
        z.avail_in = (uInt)GRPC_SLICE_LENGTH(in[i]);
        while (z.avail_in > 0 && zrc != Z_STREAM_END) {
            if (used == size) {
                if (size == cap) {
                    rc = ERR_TOO_BIG;
                    break;
                }
                size_t next = size > cap / 2 ? cap : size * 2;
                out = grow(a, out, used, next);
                if (out == NULL) {
                    rc = -ENOMEM;
                    break;
                }
                size = next;
            }
            z.next_out = out + used;
            z.avail_out = (uInt)(size - used);
            zrc = inflate(&z, Z_NO_FLUSH);
            used = size - z.avail_out;
            if (zrc != Z_OK && zrc != Z_STREAM_END && zrc != Z_BUF_ERROR) {
                rc = ERR_INVALID;
                break;
            }
        }
    }
    inflateEnd(&z);
    if (rc == 0 && used > max)
        rc = ERR_TOO_BIG;
    if (rc == 0 && zrc != Z_STREAM_END)
        rc = ERR_INVALID; /* truncated */
    if (rc != 0)
        return rc;
    *data = out;
    *len = used;
    return 0;
}
