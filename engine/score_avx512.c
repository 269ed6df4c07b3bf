/*
 * score_avx512: the AVX-512F scan kernel.
 *
 * A block is 16 rows, one score per lane of a zmm register. Each row's
 * SCORE_LANES partial sums fit one register too, so the kernel scores the
 * 16 rows one after the other, each to the end, into 16 accumulators: the
 * matrix is read in address order, as the hardware prefetcher expects, with
 * one row pointer live (scoring lane block by lane block across the 16 rows
 * needs 16 pointers, more than the general registers, and spills them).
 * No prefetch instructions: prefetching 1 to 16 KiB ahead measured no
 * faster than the hardware prefetcher alone.
 *
 * A four-level shuffle network then folds the 16 accumulators into one
 * register of 16 dot products, pairing lanes exactly as the canonical order
 * of score_kernel.h does (j += j+8, j += j+4, j += j+2, j += j+1), for all
 * rows at once: 15 adds and 30 shuffles per block, where folding each row
 * on its own would take 64 of each, and 16 inserts to gather the scores.
 * The network leaves row q + 4e at position 4q + e; one permute puts row
 * p at position p.
 *
 * One vcmpps against the threshold gives a 16-bit mask; a zero mask (most
 * blocks once the heap is warm) costs nothing more. The last block of fewer
 * than 16 rows reads its last row again in place of the missing ones and
 * masks them off, so it runs the same code.
 */
#include "engine/score_kernel.h"

#if defined(__x86_64__)

#include <immintrin.h>
#include <stddef.h>
#include <string.h>

#define TARGET __attribute__((target("avx512f")))
#define INLINE static inline __attribute__((always_inline))

enum { ROWS = 16 }; /* rows per block: one score per lane of a zmm register */

/* @a + @b, as floats or, with @integer, as the int32 lanes whose bits they
 * hold: the int8 kernel reuses the network on exact integer sums. @integer
 * is a constant wherever this is inlined, so the test costs nothing. */
TARGET INLINE __m512 add(__m512 a, __m512 b, int integer)
{
    if (integer)
        return _mm512_castsi512_ps(
            _mm512_add_epi32(_mm512_castps_si512(a), _mm512_castps_si512(b)));
    return _mm512_add_ps(a, b);
}

/* Level 1 for rows in @a and @b: lane j += lane j+8. Returns a's 8 sums in
 * lanes 0-7 and b's in lanes 8-15. */
TARGET INLINE __m512 fold8(__m512 a, __m512 b, int integer)
{
    return add(_mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(1, 0, 1, 0)),
               _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 2, 3, 2)), integer);
}

/* Level 2 for two rows in each of @a and @b: j += j+4 within each row's
 * 8 sums. Returns 4 rows of 4 sums, one per 128-bit quarter: a's first,
 * a's second, b's first, b's second. */
TARGET INLINE __m512 fold4(__m512 a, __m512 b, int integer)
{
    return add(_mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(2, 0, 2, 0)),
               _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 1, 3, 1)), integer);
}

/* Level 3: j += j+2 within each quarter. Quarter q of the result holds 2
 * sums of a's row q, then 2 of b's row q. */
TARGET INLINE __m512 fold2(__m512 a, __m512 b, int integer)
{
    return add(_mm512_shuffle_ps(a, b, _MM_SHUFFLE(1, 0, 1, 0)),
               _mm512_shuffle_ps(a, b, _MM_SHUFFLE(3, 2, 3, 2)), integer);
}

/* Level 4: j += j+1. Quarter q of the result holds the dot products of a's
 * two rows in quarter q, then b's two. */
TARGET INLINE __m512 fold1(__m512 a, __m512 b, int integer)
{
    return add(_mm512_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)),
               _mm512_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)), integer);
}

/* Row @row's SCORE_LANES partial sums with @query over @blocks lane blocks. */
TARGET INLINE __m512 row_lanes(const float *row, const float *query, uint32_t blocks)
{
    __m512 acc = _mm512_setzero_ps();
    for (size_t k = 0; k < (size_t)blocks * SCORE_LANES; k += SCORE_LANES)
        acc =
            _mm512_add_ps(acc, _mm512_mul_ps(_mm512_loadu_ps(row + k), _mm512_loadu_ps(query + k)));
    return acc;
}

/* The network: 16 rows' partial sums folded to one register, row r's dot
 * product at position r. @v holds the rows @packed to a register (1, 2 or
 * 4), 16 / @packed registers: one row per register (its 16 lanes), or the
 * registers level 1 or level 2 leaves (2 rows of 8 sums, 4 rows of 4 in
 * quarters), which is what one load of 2 or 4 short int8 rows, multiplied
 * by as many copies of the query, gives. @packed is a constant wherever
 * this is inlined. */
TARGET INLINE __m512 fold_packed(const __m512 *v, unsigned packed, int integer)
{
    __m512 t[ROWS / 2], u[ROWS / 4];
    /* Level 1 when each register holds one row; level 2 unless each holds
     * four already. */
    const __m512 *w = v;
    if (packed == 1) {
#pragma GCC unroll 8
        for (uint32_t m = 0; m < ROWS / 2; m++)
            t[m] = fold8(v[2 * m], v[2 * m + 1], integer);
        w = t;
    }
    if (packed <= 2) {
#pragma GCC unroll 4
        for (uint32_t g = 0; g < ROWS / 4; g++)
            u[g] = fold4(w[2 * g], w[2 * g + 1], integer);
    } else {
#pragma GCC unroll 4
        for (uint32_t g = 0; g < ROWS / 4; g++)
            u[g] = v[g];
    }
    /* The network leaves row q + 4e at position 4q + e. */
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    return _mm512_permutexvar_ps(
        order, fold1(fold2(u[0], u[1], integer), fold2(u[2], u[3], integer), integer));
}

/* The network on one row per register. */
TARGET INLINE __m512 fold16(const __m512 *acc, int integer)
{
    return fold_packed(acc, 1, integer);
}

/* The dot products with @query of the rows at @rows + r * @stride, r = 0 ..
 * 15 with r clamped to @last, at position r; @blocks lane blocks each. */
TARGET INLINE __m512 block_dots(const float *query, const float *rows, size_t stride, uint32_t last,
                                uint32_t blocks)
{
    __m512 acc[ROWS];
    /* One copy of the row loop, not 16: unrolled, with its 16 inner loops
     * end to end, it scanned a 10^6 x 64 catalog a quarter slower (68% of
     * the read floor instead of 91%, measured in one run). */
#pragma GCC unroll 1
    for (uint32_t r = 0; r < ROWS; r++)
        acc[r] = row_lanes(score_block_row(rows, stride, r, last), query, blocks);
    return fold16(acc, 0);
}

/* Scores of the @count rows from @first (1 <= count <= ROWS) at positions
 * 0 .. count-1; the other positions repeat the last row. */
TARGET INLINE __m512 block_scores(const struct score_scan *s, uint32_t first, uint32_t count,
                                  uint32_t blocks)
{
    __m512 v =
        block_dots(s->query, s->matrix + (size_t)first * s->stride, s->stride, count - 1, blocks);
    if (s->row_scale == NULL)
        return v;
    /* The masked load reads no scale past the last row. */
    __m512 scale = _mm512_maskz_loadu_ps((__mmask16)((1u << count) - 1), s->row_scale + first);
    return _mm512_mul_ps(_mm512_mul_ps(v, _mm512_set1_ps(s->query_scale)), scale);
}

/* Offers the rows of @v, the first @count scored from row @first, that beat
 * the threshold. */
TARGET INLINE void offer_above(struct score_best *b, uint32_t first, uint32_t count, __m512 v)
{
    __mmask16 valid = (__mmask16)((1u << count) - 1);
    __mmask16 above = _mm512_mask_cmp_ps_mask(valid, v, _mm512_set1_ps(b->threshold), _CMP_GT_OQ);
    if (above == 0)
        return;
    _Alignas(64) float scores[ROWS];
    _mm512_store_ps(scores, v);
    score_best_offer_block(b, first, above, scores);
}

TARGET void score_scan_avx512(const struct score_scan *s, struct score_best *b)
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

 * Same shape: 16 rows per block, each row's lanes summed in one register,
 * the network folding 16 registers into one of 16 scores. bf16 rows are
 * multiplied by VDPBF16PS, 32 elements per instruction; int8 rows by
 * VPDPBUSD, 64 per instruction. VPDPBUSD multiplies unsigned by signed
 * bytes: flipping a row byte's sign bit gives v + 128 as unsigned, so the
 * sum is dot + 128 * sum(query), and that constant comes off after the
 * fold. Integer sums are exact, so the int8 network may pair lanes any
 * way; it reuses the float one's shuffles on the integer bits.
 */

#define TARGET_BF16 __attribute__((target("avx512f,avx512bw,avx512bf16")))
#define TARGET_VNNI __attribute__((target("avx512f,avx512bw,avx512vnni")))

/* Unlike the f32 kernel, these do more work per byte than the hardware
 * prefetcher allows for: without a software prefetch the int8 scan of a
 * 10^6 x 128 catalog ran at 57% of the read floor and 2.5x the f32 scan's
 * speed; 2 KiB ahead at 70% and 3.0x, 8 KiB ahead at 80-89% and 3.4-3.5x,
 * 16 KiB no better (bench/score, one run each, same machine). */
#define PREFETCH_BYTES 8192
/* A block of 16 rows is scanned in one go, its lines prefetched every
 * 512 bytes: on a 10^6 x 64 int8 copy, read cold (bench/score), without
 * any prefetch the packed scan took 3.8-4.1 ms against 2.6-2.8 ms with,
 * while a scan of the same rows repeated back to back, part of them left
 * in the last-level cache, does not show the difference. */
#define PREFETCH_LINE_STEP 512

/* Prefetches, PREFETCH_BYTES ahead, the lines of the block of @bytes at
 * @block, PREFETCH_LINE_STEP apart. */
TARGET INLINE void prefetch_block(const void *block, size_t bytes)
{
    for (size_t k = 0; k < bytes; k += PREFETCH_LINE_STEP)
        _mm_prefetch((const char *)block + PREFETCH_BYTES + k, _MM_HINT_T0);
}

/* Where a row's elements end: @chunks whole vectors, then the elements
 * @tail selects (the rows are zero padded to 16 elements, so a row of bf16
 * ends on half a vector at most, an int8 row on a quarter). */
struct row_shape {
    uint32_t chunks;
    __mmask64 tail; /* bytes of the last, partial vector; 0 if none */
};

INLINE struct row_shape row_shape(uint32_t row_bytes)
{
    uint32_t rest = row_bytes % 64;
    return (struct row_shape){row_bytes / 64, rest ? ((__mmask64)1 << rest) - 1 : 0};
}

TARGET_BF16 INLINE __m512 bf16_row(const uint16_t *row, const uint16_t *query, struct row_shape sh)
{
    __m512 acc = _mm512_setzero_ps();
    for (uint32_t c = 0; c < sh.chunks; c++, row += 32, query += 32) {
        _mm_prefetch((const char *)row + PREFETCH_BYTES, _MM_HINT_T0);
        acc = _mm512_dpbf16_ps(acc, (__m512bh)_mm512_loadu_si512(row),
                               (__m512bh)_mm512_loadu_si512(query));
    }
    if (sh.tail)
        acc = _mm512_dpbf16_ps(acc, (__m512bh)_mm512_maskz_loadu_epi8(sh.tail, row),
                               (__m512bh)_mm512_maskz_loadu_epi8(sh.tail, query));
    return acc;
}

/* The reduced scores of the 16 rows from @first, the last row standing in
 * for rows past @count (the f32 kernel's convention). */
TARGET_BF16 INLINE __m512 bf16_block(const struct score_qscan *q, uint32_t first, uint32_t count,
                                     struct row_shape sh)
{
    const uint16_t *row = (const uint16_t *)q->matrix + (size_t)first * q->stride;
    __m512 acc[ROWS];
#pragma GCC unroll 1
    for (uint32_t r = 0; r < ROWS; r++) {
        acc[r] = bf16_row(row, q->query_bf16, sh);
        row += r + 1 < count ? q->stride : 0;
    }
    return fold16(acc, 0);
}

TARGET_BF16 void score_qscan_bf16_avx512(const struct score_qscan *q, struct score_best *b)
{
    struct row_shape sh = row_shape(q->stride * 2);
    for (uint32_t first = 0; first < q->rows; first += ROWS) {
        uint32_t count = q->rows - first < ROWS ? q->rows - first : ROWS;
        offer_above(b, first, count, bf16_block(q, first, count, sh));
    }
}

TARGET_VNNI INLINE __m512i int8_row(const int8_t *row, const int8_t *query, struct row_shape sh)
{
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    __m512i acc = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (uint32_t c = 0; c < sh.chunks; c++, row += 64, query += 64) {
        _mm_prefetch((const char *)row + PREFETCH_BYTES, _MM_HINT_T0);
        acc = _mm512_dpbusd_epi32(acc, _mm512_xor_si512(_mm512_loadu_si512(row), flip),
                                  _mm512_loadu_si512(query));
    }
    if (sh.tail)
        acc =
            _mm512_dpbusd_epi32(acc, _mm512_xor_si512(_mm512_maskz_loadu_epi8(sh.tail, row), flip),
                                _mm512_maskz_loadu_epi8(sh.tail, query));
    return acc;
}

TARGET_VNNI INLINE __m512i int8_block(const struct score_qscan *q, uint32_t first, uint32_t count,
                                      struct row_shape sh)
{
    const int8_t *row = (const int8_t *)q->matrix + (size_t)first * q->stride;
    __m512 acc[ROWS];
#pragma GCC unroll 1
    for (uint32_t r = 0; r < ROWS; r++) {
        acc[r] = _mm512_castsi512_ps(int8_row(row, q->query_i8, sh));
        row += r + 1 < count ? q->stride : 0;
    }
    return _mm512_castps_si512(fold16(acc, 1));
}

/* int8_block for 16 rows of a stride of 16, 32 or 64 bytes: @packed = 64
 * / stride rows per vector. The rows are consecutive, so one pointer
 * reaches all of them, one load takes @packed rows, and the products stay
 * in registers, with no loop to run per row. @query holds @packed copies
 * of the query; the network starts at the level its layout matches. */
TARGET_VNNI INLINE __m512i int8_block_packed(const struct score_qscan *q, uint32_t first,
                                             __m512i query, unsigned packed)
{
    const int8_t *row = (const int8_t *)q->matrix + (size_t)first * q->stride;
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    prefetch_block(row, (size_t)ROWS * q->stride);
    __m512 acc[ROWS];
    uint32_t vectors = ROWS / packed;
#pragma GCC unroll 16
    for (uint32_t r = 0; r < vectors; r++)
        acc[r] = _mm512_castsi512_ps(
            _mm512_dpbusd_epi32(_mm512_setzero_si512(),
                                _mm512_xor_si512(_mm512_loadu_si512(row + 64 * r), flip), query));
    return _mm512_castps_si512(fold_packed(acc, packed, 1));
}

/* Offers the rows of a block, the @count from @first, whose int8 scores
 * beat the threshold: @sums holds their dot products plus @offset (128
 * times the query's sum, from the sign flip), @qscale the query's scale. */
TARGET_VNNI INLINE void offer_int8(struct score_best *b, const float *row_scale, uint32_t first,
                                   uint32_t count, __m512i sums, __m512i offset, __m512 qscale)
{
    __m512i dots = _mm512_sub_epi32(sums, offset);
    __m512 scale = _mm512_maskz_loadu_ps((__mmask16)((1u << count) - 1), row_scale + first);
    offer_above(b, first, count,
                _mm512_mul_ps(_mm512_cvtepi32_ps(dots), _mm512_mul_ps(qscale, scale)));
}

/* @packed: 64 / stride for a stride of 16, 32 or 64 bytes, else 0 (every
 * block by int8_block). */
TARGET_VNNI INLINE void int8_scan(const struct score_qscan *q, struct score_best *b,
                                  struct row_shape sh, unsigned packed)
{
    const __m512i offset = _mm512_set1_epi32(128 * q->query_sum);
    const __m512 qscale = _mm512_set1_ps(q->query_scale);
    /* The query once per row a vector holds. */
    _Alignas(64) int8_t copies[64] = {0};
    for (unsigned c = 0; c < packed; c++)
        memcpy(copies + c * q->stride, q->query_i8, q->stride);
    const __m512i query = _mm512_load_si512(copies);
    for (uint32_t first = 0; first < q->rows; first += ROWS) {
        uint32_t count = q->rows - first < ROWS ? q->rows - first : ROWS;
        __m512i block = packed && count == ROWS ? int8_block_packed(q, first, query, packed)
                                                : int8_block(q, first, count, sh);
        offer_int8(b, q->row_scale, first, count, block, offset, qscale);
    }
}

/* A block of a regrouped copy (score.h: score_int8_block): 16 rows'
 * integer dot products, row r in lane r, plus 128 times the query's sum.
 * @q4: the query's 4-element groups. Four accumulators, so that
 * consecutive multiply-adds do not wait for each other; integer sums are
 * exact in any order. */
TARGET_VNNI INLINE __m512i int8_blocked_dots(const uint8_t *block, const int32_t *q4,
                                             uint32_t groups)
{
    __m512i acc[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                      _mm512_setzero_si512()};
    for (uint32_t g = 0; g < groups; g += 4)
#pragma GCC unroll 4
        for (uint32_t k = 0; k < 4; k++)
            acc[k] = _mm512_dpbusd_epi32(acc[k], _mm512_loadu_si512(block + 64 * (g + k)),
                                         _mm512_set1_epi32(q4[g + k]));
    return _mm512_add_epi32(_mm512_add_epi32(acc[0], acc[1]), _mm512_add_epi32(acc[2], acc[3]));
}

/* The scan of a regrouped copy: no folding, no flip, no per-row loop.
 * @groups = stride / 4, a multiple of 4; a constant for the common
 * strides, whose query groups then stay in registers. */
TARGET_VNNI INLINE void int8_scan_blocked(const struct score_qscan *q, struct score_best *b,
                                          uint32_t groups)
{
    /* A local copy: no store the loop makes can change it, so the
     * compiler may keep its groups in registers. */
    int32_t q4[SCORE_STRIDE_MAX / 4];
    memcpy(q4, q->query_i8, (size_t)groups * sizeof(*q4));
    const __m512i offset = _mm512_set1_epi32(128 * q->query_sum);
    const __m512 qscale = _mm512_set1_ps(q->query_scale);
    const uint8_t *block = q->blocked;
    const float *row_scale = q->row_scale;
    uint32_t rows = q->rows;
    size_t block_bytes = (size_t)ROWS * q->stride;
    for (uint32_t first = 0; first < rows; first += ROWS, block += block_bytes) {
        uint32_t count = rows - first < ROWS ? rows - first : ROWS;
        prefetch_block(block, block_bytes);
        offer_int8(b, row_scale, first, count, int8_blocked_dots(block, q4, groups), offset,
                   qscale);
    }
}

/* The scan of rows of @stride bytes, a constant wherever this is inlined:
 * the regrouped copy when there is one, else the rows as the file has
 * them, packed to a vector when they are short enough. */
TARGET_VNNI INLINE void int8_scan_stride(const struct score_qscan *q, struct score_best *b,
                                         uint32_t stride)
{
    if (q->blocked != NULL)
        int8_scan_blocked(q, b, stride / 4);
    else
        int8_scan(q, b, row_shape(stride),
                  stride == 16   ? 4
                  : stride == 32 ? 2
                  : stride == 64 ? 1
                                 : 0);
}

/* Each common stride gets its own copy of the scan, its row shape and
 * packing constants: a stride of 64 bytes (dimensions 49-64) scanned 1.7
 * times as fast that way as through the general loop, at 10^4 x 64 where
 * the copy is in the caches (14 us against 24 us a query, same run). */
TARGET_VNNI void score_qscan_int8_avx512(const struct score_qscan *q, struct score_best *b)
{
    switch (q->stride) {
    case 16:
        int8_scan_stride(q, b, 16);
        break;
    case 32:
        int8_scan_stride(q, b, 32);
        break;
    case 64:
        int8_scan_stride(q, b, 64);
        break;
    case 128:
        int8_scan_stride(q, b, 128);
        break;
    default:
        int8_scan_stride(q, b, q->stride);
    }
}

#endif
