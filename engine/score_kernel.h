/*
 * score_kernel: what score.c and the CPU-specific scan kernels share.
 * Internal to the score module; callers use score.h.
 *
 * A kernel scans every row of a struct score_scan in ascending order and
 * offers the rows whose score beats the running threshold to a struct
 * score_best, which applies the filter and keeps the best n. The threshold
 * only rises, so a kernel may compare a whole block of scores against the
 * value it read before the block; score_best_offer_block() checks each
 * offered row again against the current one.
 *
 * The canonical summation order (every kernel must follow it to the bit):
 * a row's padded length is split into blocks of SCORE_LANES floats; lane j
 * starts at +0 and adds, block by block in order, the product of element j
 * of the block of the row and of the query, each product rounded to float
 * before the add (no fused multiply-add). The lanes are then combined
 * pairwise: lane j += lane j+8 (j < 8), then j += j+4, j += j+2, j += j+1,
 * and lane 0 is the dot product. With a row scale, the score is
 * (dot * query_scale) * row_scale[i], rounded after each multiply. Float
 * addition is commutative, so only the pairing matters, not the operand
 * order within a pair; a kernel may reduce many rows at once with shuffles.
 *
 * GCC contracts a multiply and an add into an FMA wherever the target has
 * one, even across intrinsics (its default -ffp-contract=fast), and clang
 * does within an expression: both are switched off below, for every file
 * that includes this header, before any function is defined.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "engine/score.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

/* score_best_offer - row @index with @score: kept if it beats the current
 * threshold and the filter accepts it. Rows must be offered in ascending
 * index order. */
void score_best_offer(struct score_best *b, uint32_t index, float score);

/* score_best_flush - score and keep the rows offered for exact scoring
 * that still wait (struct score_best.pending): at the end of a scan, and
 * whenever SCORE_PENDING wait. */
void score_best_flush(struct score_best *b);

/* score_best_offer_block - offer rows @first + i for each bit i set in
 * @mask, lowest first, with scores @scores[i]. */
void score_best_offer_block(struct score_best *b, uint32_t first, uint32_t mask,
                            const float *scores);

/* score_best_push - insert @hit into the best n regardless of index order
 * (ties still go to the lower index) and of the filter: for rows already
 * filtered, such as the rows the parts of a split scan kept. */
void score_best_push(struct score_best *b, struct score_hit hit);

/* score_best_finish - sort the kept rows best first; returns their count. */
uint32_t score_best_finish(struct score_best *b);

/* score_part_range - rows [*first, *first + *count) are part @part of
 * @rows rows cut into @parts contiguous parts of near-equal size, each
 * starting on a multiple of SCORE_BLOCK_ROWS (so a part may be empty). */
void score_part_range(uint32_t rows, unsigned part, unsigned parts, uint32_t *first,
                      uint32_t *count);

/* score_block_row - row @r of the block at @rows, or row @last for the
 * positions past it: a kernel's last, short block reads its last row again
 * in place of the missing ones and masks them off. */
static inline const float *score_block_row(const float *rows, size_t stride, uint32_t r,
                                           uint32_t last)
{
    return rows + (r < last ? r : last) * stride;
}

/* A kernel: offer every row of @s that beats b->threshold to @b, in
 * ascending order. Rows are read over s->dim rounded up to SCORE_LANES,
 * which is at most s->stride. */
typedef void (*score_scan_fn)(const struct score_scan *s, struct score_best *b);

/* What a reduced kernel scans: the query rounded to the copy's type.
 *
 * bf16: row i's reduced score is some float near dot(query_f32, w_i); the
 * kernels may sum in any order (score.h's bound allows for it).
 * int8: row i's reduced score is exactly
 *     (float)dot(query_i8, row_i) * (query_scale * row_scale[i])
 * with the integer dot product exact, rounded after each multiply, so every
 * int8 kernel gives the same scores to the bit. */
struct score_qscan {
    const uint16_t *query_bf16; /* bf16: stride elements, zero padded */
    const float *query_f32;     /* bf16: the same values as floats */
    const int8_t *query_i8;     /* int8: stride elements in -127..127, zero padded */
    const int16_t *query_i16;   /* int8: the same values as int16 */
    int32_t query_sum;          /* int8: the sum of query_i8 */
    float query_scale;          /* int8 */
    const void *matrix;         /* rows x stride elements */
    const float *row_scale;     /* int8 */
    const uint8_t *blocked;     /* int8: NULL, or matrix regrouped (score_int8_block) */
    uint32_t rows, stride;
};

/* A reduced kernel: offer every row of @q whose reduced score beats
 * b->threshold to @b, in ascending order. */
typedef void (*score_qscan_fn)(const struct score_qscan *q, struct score_best *b);

void score_qscan_bf16_portable(const struct score_qscan *q, struct score_best *b);
void score_qscan_int8_portable(const struct score_qscan *q, struct score_best *b);

#if defined(__x86_64__)
void score_scan_avx512(const struct score_scan *s, struct score_best *b);
void score_scan_avx2(const struct score_scan *s, struct score_best *b);
void score_qscan_bf16_avx512(const struct score_qscan *q, struct score_best *b);
void score_qscan_int8_avx512(const struct score_qscan *q, struct score_best *b);
void score_qscan_bf16_avx2(const struct score_qscan *q, struct score_best *b);
void score_qscan_int8_avx2(const struct score_qscan *q, struct score_best *b);
#endif

/* score_qscan_kernel - the reduced kernel for @elem under the current
 * kernel choice (score_reduced_kernel_name). */
score_qscan_fn score_qscan_kernel(enum score_elem elem);
