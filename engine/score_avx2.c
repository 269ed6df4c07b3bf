/*
 * score_avx2: the AVX2 scan kernel.
 *
 * The structure of score_avx512.c at half the width. A block is 8 rows, one
 * score per lane of a ymm register. A row's SCORE_LANES partial sums take
 * two registers (lanes 0-7 and 8-15); their add is level 1 of the
 * canonical fold (j += j+8), so each row leaves one register. Rows are
 * scored one after the other, in address order, and folded pairwise as
 * they come (level 2), so at most 4 folded pairs and one row's sums are
 * live in the 16 registers. Levels 3 and 4 pair lanes across rows with
 * shuffles and leave row h + 2e at position 4h + e; one permute puts row p
 * at position p. It uses no FMA on purpose (score_kernel.h): a multiply
 * and an add cost the same here as one FMA once the scan waits on memory.
 *
 * One compare and a movemask give an 8-bit mask of the rows that beat the
 * threshold. The last block of fewer than 8 rows reads its last row again
 * in place of the missing ones and masks them off.
 */
#include "engine/score_kernel.h"

#if defined(__x86_64__)

#include <immintrin.h>
#include <stddef.h>

#define TARGET __attribute__((target("avx2")))
#define INLINE static inline __attribute__((always_inline))

enum { ROWS = 8 }; /* rows per block: one score per lane of a ymm register */

/* @a + @b, as floats or, with @integer, as the int32 lanes whose bits they
 * hold (the int8 kernel's exact sums); @integer is a constant wherever
 * this is inlined. */
TARGET INLINE __m256 add(__m256 a, __m256 b, int integer)
{
    if (integer)
        return _mm256_castsi256_ps(
            _mm256_add_epi32(_mm256_castps_si256(a), _mm256_castps_si256(b)));
    return _mm256_add_ps(a, b);
}

/* Level 2 for rows in @a and @b: j += j+4. Returns a's 4 sums in the low
 * half and b's in the high half. */
TARGET INLINE __m256 fold4(__m256 a, __m256 b, int integer)
{
    return add(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31), integer);
}

/* Level 3: j += j+2 within each half. Half h of the result holds 2 sums of
 * a's row h, then 2 of b's row h. */
TARGET INLINE __m256 fold2(__m256 a, __m256 b, int integer)
{
    return add(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(1, 0, 1, 0)),
               _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 2, 3, 2)), integer);
}

/* Level 4: j += j+1. Half h of the result holds the dot products of a's two
 * rows in half h, then b's two. */
TARGET INLINE __m256 fold1(__m256 a, __m256 b, int integer)
{
    return add(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)),
               _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)), integer);
}

/* Row @row's SCORE_LANES partial sums with @query over @blocks lane blocks,
 * folded through level 1 (lane j += lane j+8). */
TARGET INLINE __m256 row_lanes(const float *row, const float *query, uint32_t blocks)
{
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    for (size_t k = 0; k < (size_t)blocks * SCORE_LANES; k += SCORE_LANES) {
        lo = _mm256_add_ps(lo, _mm256_mul_ps(_mm256_loadu_ps(row + k), _mm256_loadu_ps(query + k)));
        hi = _mm256_add_ps(
            hi, _mm256_mul_ps(_mm256_loadu_ps(row + k + 8), _mm256_loadu_ps(query + k + 8)));
    }
    return _mm256_add_ps(lo, hi);
}

/* The network: the 8 rows' level-1 sums in @a folded to one register, row
 * r's dot product at position r. */
TARGET INLINE __m256 fold8rows(const __m256 *a, int integer)
{
    __m256 u[ROWS / 2];
#pragma GCC unroll 4
    for (uint32_t r = 0; r < ROWS; r += 2)
        u[r / 2] = fold4(a[r], a[r + 1], integer);
    /* The network leaves row h + 2e at position 4h + e. */
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    return _mm256_permutevar8x32_ps(
        fold1(fold2(u[0], u[1], integer), fold2(u[2], u[3], integer), integer), order);
}

/* The dot products with @query of the rows at @rows + r * @stride, r = 0 ..
 * 7 with r clamped to @last, at position r; @blocks lane blocks each. */
TARGET INLINE __m256 block_dots(const float *query, const float *rows, size_t stride, uint32_t last,
                                uint32_t blocks)
{
    __m256 a[ROWS];
    /* One copy of the row loop, as in score_avx512.c. */
#pragma GCC unroll 1
    for (uint32_t r = 0; r < ROWS; r++)
        a[r] = row_lanes(score_block_row(rows, stride, r, last), query, blocks);
    return fold8rows(a, 0);
}

/* Lanes 0 .. @count-1 set: the rows of a block that exist. */
TARGET INLINE __m256i valid_lanes(uint32_t count)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)count),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Scores of the @count rows from @first (1 <= count <= ROWS) at positions
 * 0 .. count-1; the other positions repeat the last row. */
TARGET INLINE __m256 block_scores(const struct score_scan *s, uint32_t first, uint32_t count,
                                  uint32_t blocks)
{
    __m256 v =
        block_dots(s->query, s->matrix + (size_t)first * s->stride, s->stride, count - 1, blocks);
    if (s->row_scale == NULL)
        return v;
    /* The masked load reads no scale past the last row. */
    __m256 scale = _mm256_maskload_ps(s->row_scale + first, valid_lanes(count));
    return _mm256_mul_ps(_mm256_mul_ps(v, _mm256_set1_ps(s->query_scale)), scale);
}

/* Offers the rows of @v, the first @count scored from row @first, that beat
 * the threshold. */
TARGET INLINE void offer_above(struct score_best *b, uint32_t first, uint32_t count, __m256 v)
{
    __m256 above = _mm256_cmp_ps(v, _mm256_set1_ps(b->threshold), _CMP_GT_OQ);
    uint32_t mask = (uint32_t)_mm256_movemask_ps(above) & ((1u << count) - 1);
    if (mask == 0)
        return;
    _Alignas(32) float scores[ROWS];
    _mm256_store_ps(scores, v);
    score_best_offer_block(b, first, mask, scores);
}

TARGET void score_scan_avx2(const struct score_scan *s, struct score_best *b)
{
    uint32_t blocks = (s->dim + SCORE_LANES - 1) / SCORE_LANES, first = 0;
    for (; s->rows - first >= ROWS; first += ROWS)
        offer_above(b, first, ROWS, block_scores(s, first, ROWS, blocks));
    if (first < s->rows) {
        uint32_t count = s->rows - first;
        offer_above(b, first, count, block_scores(s, first, count, blocks));
    }
}

/* ==== reduced kernels ===================================================
 *
 * Same shape, 8 rows per block. bf16 elements are widened to floats (a
 * bf16 is the high half of a float) and multiplied with the query's floats
 * 8 at a time. int8 elements are widened to int16 and multiplied pairwise
 * into int32 by VPMADDWD, 16 at a time, exactly; VPMADDUBSW would take 32
 * but saturates its int16 pair sums.
 */

/* 8 bf16 at @p as floats. */
TARGET INLINE __m256 widen_bf16(const uint16_t *p)
{
    return _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_load_si128((const __m128i *)p)), 16));
}

TARGET INLINE __m256 bf16_row(const uint16_t *row, const float *query, uint32_t stride)
{
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    for (uint32_t k = 0; k < stride; k += 16) {
        lo = _mm256_add_ps(lo, _mm256_mul_ps(widen_bf16(row + k), _mm256_loadu_ps(query + k)));
        hi = _mm256_add_ps(hi,
                           _mm256_mul_ps(widen_bf16(row + k + 8), _mm256_loadu_ps(query + k + 8)));
    }
    return _mm256_add_ps(lo, hi);
}

TARGET void score_qscan_bf16_avx2(const struct score_qscan *q, struct score_best *b)
{
    const uint16_t *rows = q->matrix;
    for (uint32_t first = 0; first < q->rows; first += ROWS) {
        uint32_t count = q->rows - first < ROWS ? q->rows - first : ROWS;
        const uint16_t *block = rows + (size_t)first * q->stride;
        __m256 a[ROWS];
#pragma GCC unroll 1
        for (uint32_t r = 0; r < ROWS; r++) {
            const uint16_t *row = block + (size_t)(r < count ? r : count - 1) * q->stride;
            a[r] = bf16_row(row, q->query_f32, q->stride);
        }
        offer_above(b, first, count, fold8rows(a, 0));
    }
}

TARGET INLINE __m256i int8_row(const int8_t *row, const int16_t *query, uint32_t stride)
{
    __m256i acc = _mm256_setzero_si256();
    for (uint32_t k = 0; k < stride; k += 16) {
        __m256i v = _mm256_cvtepi8_epi16(_mm_load_si128((const __m128i *)(row + k)));
        acc = _mm256_add_epi32(
            acc, _mm256_madd_epi16(v, _mm256_loadu_si256((const __m256i *)(query + k))));
    }
    return acc;
}

TARGET void score_qscan_int8_avx2(const struct score_qscan *q, struct score_best *b)
{
    const int8_t *rows = q->matrix;
    const __m256 qscale = _mm256_set1_ps(q->query_scale);
    for (uint32_t first = 0; first < q->rows; first += ROWS) {
        uint32_t count = q->rows - first < ROWS ? q->rows - first : ROWS;
        const int8_t *block = rows + (size_t)first * q->stride;
        __m256 a[ROWS];
#pragma GCC unroll 1
        for (uint32_t r = 0; r < ROWS; r++) {
            const int8_t *row = block + (size_t)(r < count ? r : count - 1) * q->stride;
            a[r] = _mm256_castsi256_ps(int8_row(row, q->query_i16, q->stride));
        }
        __m256i dots = _mm256_castps_si256(fold8rows(a, 1));
        __m256 scale = _mm256_maskload_ps(q->row_scale + first, valid_lanes(count));
        offer_above(b, first, count,
                    _mm256_mul_ps(_mm256_cvtepi32_ps(dots), _mm256_mul_ps(qscale, scale)));
    }
}

#endif
