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
#include "score_kernel.h"

#if defined(__x86_64__)

#include <immintrin.h>
#include <stddef.h>

#define TARGET __attribute__((target("avx2")))
#define INLINE static inline __attribute__((always_inline))

enum { ROWS = 8 }; /* rows per block: one score per lane of a ymm register */

/* Level 2 for rows in @a and @b: j += j+4. Returns a's 4 sums in the low
 * half and b's in the high half. */
TARGET INLINE __m256 fold4(__m256 a, __m256 b)
{
    return _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
}

/* Level 3: j += j+2 within each half. Half h of the result holds 2 sums of
 * a's row h, then 2 of b's row h. */
TARGET INLINE __m256 fold2(__m256 a, __m256 b)
{
    return _mm256_add_ps(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
}

/* Level 4: j += j+1. Half h of the result holds the dot products of a's two
 * rows in half h, then b's two. */
TARGET INLINE __m256 fold1(__m256 a, __m256 b)
{
    return _mm256_add_ps(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
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

/* The dot products with @query of the rows at @rows + r * @stride, r = 0 ..
 * 7 with r clamped to @last, at position r; @blocks lane blocks each. */
TARGET INLINE __m256 block_dots(const float *query, const float *rows, size_t stride, uint32_t last,
                                uint32_t blocks)
{
    __m256 a[ROWS], u[ROWS / 2];
    /* One copy of the row loop, as in score_avx512.c. */
#pragma GCC unroll 1
    for (uint32_t r = 0; r < ROWS; r++)
        a[r] = row_lanes(score_block_row(rows, stride, r, last), query, blocks);
#pragma GCC unroll 4
    for (uint32_t r = 0; r < ROWS; r += 2)
        u[r / 2] = fold4(a[r], a[r + 1]);
    /* The network leaves row h + 2e at position 4h + e. */
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    return _mm256_permutevar8x32_ps(fold1(fold2(u[0], u[1]), fold2(u[2], u[3])), order);
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
    __m256i valid = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)count),
                                       _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256 scale = _mm256_maskload_ps(s->row_scale + first, valid);
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

#endif
