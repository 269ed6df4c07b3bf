/*
 * writer: builds a model file from in-memory inputs and publishes it
 * atomically.
 *
 * model_write() writes a temporary file in the destination's directory,
 * syncs it, and renames it over the destination, so a reader (recsysd
 * watching the path) sees either the old complete file or the new complete
 * file, never a half-written one. On failure the temporary file is removed
 * and the destination is untouched.
 */
#pragma once

#include <stdint.h>

#include "base/err.h"
#include "model/model.h"

/* A producer of the user matrix, for an input too large to hold twice: it
 * writes the rows straight into the file being built. */
struct model_rows {
    /* fill - write the user_count rows, row u at @dst + u * @stride, the
     * first dim floats of each; @dst is zeroed and the padding must stay
     * so. Every value must be finite, and 1.0 in the last column with
     * has_bias: model_write does not check what it did not copy. Returns 0
     * or a negative code with the problem in @e, which model_write then
     * returns (with @e's text), leaving no file. Called at most once. */
    int (*fill)(void *ctx, float *dst, uint32_t stride, struct err *e);
    void *ctx;
};

/* Everything a model file holds, in memory. All pointers are borrowed for
 * the duration of model_write(). */
struct model_src {
    uint32_t dim;                       /* floats per vector (bias column included) */
    uint32_t has_bias;                  /* 1 if the last dimension is an item bias */
    uint32_t user_count;                /* may be 0 */
    uint32_t item_count;                /* >= 1 */
    const float *user_factors;          /* user_count x dim, row-major, finite; or NULL and: */
    const struct model_rows *user_rows; /* the producer of those rows, else NULL */
    const float *item_factors;          /* item_count x dim, row-major, finite */
    const char *const *user_ids;        /* user_count distinct NUL-terminated ids */
    const char *const *item_ids;        /* item_count distinct NUL-terminated ids */
    const uint32_t *user_tier;          /* user_count tiers, or NULL for all 0 */
    /* Owned items as CSR: user u owns owned_items[owned_offsets[u] ..
     * owned_offsets[u+1]) (item indices; any order, duplicates allowed: the
     * writer sorts and deduplicates). NULL offsets = nobody owns anything. */
    const uint64_t *owned_offsets; /* user_count + 1 entries */
    const uint32_t *owned_items;
    const struct model_item_attr *attrs; /* item_count records */
    const char *const *categories;       /* category_count distinct names */
    uint32_t category_count;             /* >= 1 */
    const char *version;                 /* model version string, 1..MODEL_ID_MAX bytes */
    int64_t created_at;                  /* unix seconds */
    /* Reduced-precision copies of the item matrix to add, as bits
     * 1 << MODEL_ELEM_BF16 and 1 << MODEL_ELEM_INT8; 0 for none. bf16 rounds
     * each factor to nearest even; int8 scales each row by its largest
     * magnitude / 127 and rounds to nearest. */
    unsigned quantize;
    /* How the model was trained, written as meta/training (FORMAT.md,
     * "Training record"); NULL writes no record, and a reader then takes
     * the MODEL_DEFAULT_* values. from_file is ignored. */
    const struct model_training *training;
};

/* model_write - validate @src, write it to @path atomically.
 * Returns 0, ERR_INVALID (with the problem in @e: duplicate id, index out of
 * range, non-finite factor, a training record the reader would refuse, ...),
 * or -errno / an LMDB code from writing. */
int model_write(const char *path, const struct model_src *src, struct err *e);
