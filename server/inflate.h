/*
 * inflate: a compressed request message, inflated within a bound.
 *
 * gRPC's core inflates a compressed message completely before it checks the
 * size limit, so a 1 MB gzip body that inflates to 1 GiB costs 1 GiB (issue
 * 11, finding 2). The server therefore turns the core's decompression off
 * and inflates here, stopping as soon as the output would pass the request
 * limit: a bomb costs at most that limit, however far it would inflate.
 * gzip and deflate, the two algorithms of grpc-encoding, are accepted, so
 * clients that compress (grpc-js, grpc-java with a compressor) keep working.
 */
#pragma once

#include <grpc/grpc.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"

/* inflate_message - inflate the @n slices of @in, compressed with
 * @algorithm, into one block of the arena @a.
 * @max:  the largest inflated message accepted, in bytes.
 * @data, @len: receive the message; in @a, valid until it is reset.
 * Returns 0, ERR_TOO_BIG (it inflates past @max: RESOURCE_EXHAUSTED, as
 * the core answers a plain message over the limit), ERR_INVALID (corrupt
 * or truncated data, an algorithm other than gzip and deflate), or -ENOMEM. */
int inflate_message(grpc_compression_algorithm algorithm, const grpc_slice *in, size_t n,
                    size_t max, struct arena *a, const uint8_t **data, size_t *len);
