/*
 * score_reduced: the scan of a reduced-precision copy, the selection that
 * keeps rows by exact score while they are offered by approximate ones
 * (score_select_*, which BatchRecommend also runs on sgemm's scores), and
 * the portable reduced kernels.
 *
 * The bound. For query u and item i (v_i its f32 row, w_i the real vector
 * its reduced row stands for, û the rounded query the kernel multiplies):
 *
 *     u.v_i - û.w_i = u.(v_i - w_i) + (u - û).w_i
 *     |u.v_i - û.w_i| <= ||u|| E + ||u - û|| W          (Cauchy-Schwarz)
 *
 * with E = max ||v_i - w_i|| and W = max ||w_i|| measured at load. Three
 * more terms cover arithmetic: the kernel's float rounding of û.w_i (its
 * products summed in at most stride adds, each off by at most 2^-24 of the
 * running sum of magnitudes, which is at most ||û|| W; an int8 kernel only
 * rounds three times), the flushing of subnormal products and inputs by
 * AVX512_BF16, and score_row's own rounding of u.v_i (||u|| V, V = max
 * ||v_i||, likewise). Everything is computed in double and the sum is
 * widened by 2^-20 of itself, which dwarfs the double rounding.
 *
 * Nothing here trusts how the copy was made: the bound uses measured
 * distances, so a poor copy costs rows scored exactly, never a wrong
 * answer.
 *
 * Why rows are scored as they are offered, not kept as candidates and
 * scored at the end: a fixed number of candidates (4n + 16, before) holds
 * the answer only when the scores below the n-th are spread wider than B.
 * Trained factors are not: clusters of near-identical items, and the demo
 * model's planted topics, put hundreds of rows within B of the n-th score,
 * and then the proof failed and the query scanned the f32 matrix in full
 * after the reduced one (the int8 scan of the demo 10^6 x 64 model took
 * 2.5 times as long as f32's). Scoring exactly every row whose reduced
 * score comes within B of the n-th exact score so far needs no proof
 * after the scan, costs one f32 row per such row, and keeps a heap of n,
 * not 4n + 16.
 */
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/score_kernel.h"
#include "engine/split.h"

/* ---- the query, rounded like the rows ----------------------------------- */

/* bf16 nearest to @f (ties to even), as the writer rounds; 0 for a value
 * whose bf16 would be subnormal, which AVX512_BF16 reads as 0 anyway. */
static uint16_t bf16_round(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof(bits));
    uint32_t r = bits + 0x7fff + ((bits >> 16) & 1);
    if ((r & 0x7f800000) == 0x7f800000)
        r = bits; /* would round to infinity: truncate */
    if ((r & 0x7f800000) == 0)
        return 0;
    return (uint16_t)(r >> 16);
}

static float bf16_float(uint16_t v)
{
    uint32_t bits = (uint32_t)v << 16;
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}

/* A query rounded for a reduced scan, and the norms the bound needs. */
struct rounded {
    _Alignas(64) uint16_t bf16[SCORE_STRIDE_MAX];
    _Alignas(64) float f32[SCORE_STRIDE_MAX];
    _Alignas(64) int8_t i8[SCORE_STRIDE_MAX];
    _Alignas(64) int16_t i16[SCORE_STRIDE_MAX];
    double exact[SCORE_STRIDE_MAX]; /* û, exactly */
    double norm;                    /* ||u|| */
    double rnorm;                   /* ||û|| */
    double distance;                /* ||u - û|| */
};

static void round_bf16(const float *u, uint32_t stride, struct rounded *q, struct score_qscan *qs)
{
    for (uint32_t k = 0; k < stride; k++) {
        q->bf16[k] = bf16_round(u[k]);
        q->f32[k] = bf16_float(q->bf16[k]);
        q->exact[k] = q->f32[k];
    }
    qs->query_bf16 = q->bf16;
    qs->query_f32 = q->f32;
}

/* Symmetric: the largest magnitude maps to 127. */
static void round_int8(const float *u, uint32_t stride, struct rounded *q, struct score_qscan *qs)
{
    float max = 0;
    for (uint32_t k = 0; k < stride; k++)
        max = fabsf(u[k]) > max ? fabsf(u[k]) : max;
    float scale = max / 127;
    int32_t sum = 0;
    for (uint32_t k = 0; k < stride; k++) {
        long v = scale > 0 ? lrintf(u[k] / scale) : 0;
        v = v > 127 ? 127 : v < -127 ? -127 : v;
        q->i8[k] = (int8_t)v;
        q->i16[k] = (int16_t)v;
        q->exact[k] = (double)scale * v; /* exact: 24 bits times 7 */
        sum += (int32_t)v;
    }
    qs->query_i8 = q->i8;
    qs->query_i16 = q->i16;
    qs->query_sum = sum;
    qs->query_scale = scale;
}

static void norms(const float *u, uint32_t stride, struct rounded *q)
{
    double n = 0, r = 0, d = 0;
    for (uint32_t k = 0; k < stride; k++) {
        n += (double)u[k] * u[k];
        r += q->exact[k] * q->exact[k];
        d += (u[k] - q->exact[k]) * (u[k] - q->exact[k]);
    }
    q->norm = sqrt(n);
    q->rnorm = sqrt(r);
    q->distance = sqrt(d);
}

/* B of the comment at the top: no row's exact score exceeds its reduced
 * score by more. */
static double bound(const struct score_reduced *r, const struct rounded *q, uint32_t stride)
{
    double rounding = (stride + 8) * 0x1p-23;
    double b = q->norm * r->max_error + q->distance * r->max_norm +
               rounding * q->rnorm * r->max_norm + rounding * q->norm * r->exact_max_norm +
               stride * 0x1p-120 * (1 + q->rnorm + r->max_norm);
    return b * (1 + 0x1p-20);
}

/* ---- the scan ------------------------------------------------------------ */

/* A reduced scan, split or not: each part keeps its own best n. */
struct reduced_split {
    const struct score_qscan *q;
    score_qscan_fn scan; /* read once, so every part uses one kernel */
    size_t elem_bytes;
    unsigned parts;
    struct score_best part[SPLIT_PARTS_MAX];
};

static void scan_part(void *arg, unsigned part)
{
    struct reduced_split *job = arg;
    struct score_best *b = &job->part[part];
    struct score_qscan sub = *job->q;
    score_part_range(sub.rows, part, job->parts, &b->base, &sub.rows);
    sub.matrix = (const char *)sub.matrix + (size_t)b->base * sub.stride * job->elem_bytes;
    if (sub.row_scale != NULL)
        sub.row_scale += b->base;
    /* Parts start on a block (score_part_range). */
    if (sub.blocked != NULL)
        sub.blocked += (size_t)b->base * sub.stride;
    if (sub.rows > 0)
        job->scan(&sub, b);
    score_best_flush(b);
}

/* ---- the proof -------------------------------------------------------------- */

void score_select_init(struct score_best *b, uint32_t n, score_filter_fn keep,
                       const void *filter_ctx, struct score_hit *scratch,
                       const struct score_scan *exact, double bound)
{
    *b = (struct score_best){.heap = scratch,
                             .n = n,
                             .threshold = -INFINITY,
                             .keep = keep,
                             .filter_ctx = filter_ctx,
                             .exact = exact,
                             .bound = bound};
}

/* Whether any of SCORE_LANES scores at @s beats @threshold: branch free,
 * and on its own, so that GCC vectorises it (inside the caller's loop it
 * did not). */
static int any_above(const float *s, float threshold)
{
    int above = 0;
    for (uint32_t j = 0; j < SCORE_LANES; j++)
        above |= s[j] > threshold;
    return above;
}

/* Most blocks hold no row above the threshold once the heap is warm: the
 * test above skips them, sixteen scores at a time. */
void score_select_block(struct score_best *b, uint32_t first, const float *scores, uint32_t count)
{
    uint32_t i = 0;
    for (; i + SCORE_LANES <= count; i += SCORE_LANES) {
        if (!any_above(scores + i, b->threshold))
            continue;
        for (uint32_t j = 0; j < SCORE_LANES; j++)
            if (scores[i + j] > b->threshold)
                score_best_offer(b, first + i + j, scores[i + j]);
    }
    for (; i < count; i++)
        if (scores[i] > b->threshold)
            score_best_offer(b, first + i, scores[i]);
    score_best_flush(b);
}

double score_float_bound(const struct score_scan *s, double max_norm)
{
    double norm = 0;
    for (uint32_t k = 0; k < s->dim; k++)
        norm += (double)s->query[k] * s->query[k];
    /* The last term covers a BLAS that flushes subnormal products to 0. */
    return (2 * (s->stride + 8) * 0x1p-23 * sqrt(norm) * max_norm + s->stride * 0x1p-120) *
           (1 + 0x1p-20);
}

uint32_t score_topn_reduced(const struct score_scan *s, const struct score_reduced *r, uint32_t n,
                            score_filter_fn keep, const void *filter_ctx, unsigned parts,
                            struct score_hit *scratch, struct score_hit *out, uint32_t *rescored)
{
    assert(s->row_scale == NULL && s->stride <= SCORE_STRIDE_MAX);
    assert(r->elem == SCORE_ELEM_BF16 || r->elem == SCORE_ELEM_INT8);
    assert(parts >= 1 && parts <= SPLIT_PARTS_MAX);
    if (rescored != NULL)
        *rescored = 0;
    if (n == 0)
        return 0;
    /* Per thread, not on the stack: 60 KiB is more than a small thread
     * stack should give one frame. The parts only read it, while this
     * thread waits for them. */
    static _Thread_local struct rounded q;
    struct score_qscan qs = {.matrix = r->matrix,
                             .row_scale = r->row_scale,
                             .blocked = r->blocked,
                             .rows = s->rows,
                             .stride = s->stride};
    if (r->elem == SCORE_ELEM_BF16)
        round_bf16(s->query, s->stride, &q, &qs);
    else
        round_int8(s->query, s->stride, &q, &qs);
    norms(s->query, s->stride, &q);

    struct reduced_split job = {.q = &qs,
                                .scan = score_qscan_kernel(r->elem),
                                .elem_bytes = score_elem_bytes(r->elem),
                                .parts = parts};
    double b = bound(r, &q, s->stride);
    for (unsigned p = 0; p < parts; p++)
        score_select_init(&job.part[p], n, keep, filter_ctx, scratch + (size_t)p * n, s, b);
    split_run(scan_part, &job, parts);
    for (unsigned p = 0; p < parts && rescored != NULL; p++)
        *rescored += job.part[p].rescored;
    return score_select_merge(job.part, parts, n, out);
}

/* ---- int8 rows regrouped by block ------------------------------------------ */

size_t score_int8_blocked_bytes(uint32_t rows, uint32_t stride)
{
    size_t blocks = ((size_t)rows + SCORE_BLOCK_ROWS - 1) / SCORE_BLOCK_ROWS;
    return blocks * SCORE_BLOCK_ROWS * stride;
}

/* Four elements at a time: adding 128 to a byte in two's complement is
 * flipping its top bit. */
void score_int8_block(const int8_t *in, uint32_t rows, uint32_t stride, uint8_t *out)
{
    memset(out, 128, score_int8_blocked_bytes(rows, stride));
    for (uint32_t i = 0; i < rows; i++) {
        uint8_t *to = out + (size_t)(i / SCORE_BLOCK_ROWS) * SCORE_BLOCK_ROWS * stride +
                      4 * (i % SCORE_BLOCK_ROWS);
        const int8_t *row = in + (size_t)i * stride;
        for (uint32_t g = 0; g < stride / 4; g++) {
            uint32_t four;
            memcpy(&four, row + 4 * g, sizeof(four));
            four ^= 0x80808080u;
            memcpy(to + 64 * g, &four, sizeof(four));
        }
    }
}

/* ---- portable kernels ---------------------------------------------------- */

/* Both sum in SCORE_LANES independent lanes, as score_dot does, so that
 * GCC at -O2 vectorises them without -ffast-math. */

void score_qscan_bf16_portable(const struct score_qscan *q, struct score_best *b)
{
    const uint16_t *rows = q->matrix;
    for (uint32_t i = 0; i < q->rows; i++) {
        const uint16_t *row = rows + (size_t)i * q->stride;
        float acc[SCORE_LANES] = {0};
        for (uint32_t k = 0; k < q->stride; k += SCORE_LANES) {
            uint32_t bits[SCORE_LANES];
            float v[SCORE_LANES];
#pragma GCC unroll 16
            for (uint32_t j = 0; j < SCORE_LANES; j++)
                bits[j] = (uint32_t)row[k + j] << 16;
            memcpy(v, bits, sizeof(v));
#pragma GCC unroll 16
            for (uint32_t j = 0; j < SCORE_LANES; j++)
                acc[j] += v[j] * q->query_f32[k + j];
        }
#pragma GCC unroll 4
        for (uint32_t width = SCORE_LANES / 2; width > 0; width /= 2)
#pragma GCC unroll 8
            for (uint32_t j = 0; j < width; j++)
                acc[j] += acc[j + width];
        if (acc[0] > b->threshold)
            score_best_offer(b, i, acc[0]);
    }
}

void score_qscan_int8_portable(const struct score_qscan *q, struct score_best *b)
{
    const int8_t *rows = q->matrix;
    for (uint32_t i = 0; i < q->rows; i++) {
        const int8_t *row = rows + (size_t)i * q->stride;
        int32_t acc[SCORE_LANES] = {0};
        for (uint32_t k = 0; k < q->stride; k += SCORE_LANES)
#pragma GCC unroll 16
            for (uint32_t j = 0; j < SCORE_LANES; j++)
                acc[j] += row[k + j] * q->query_i16[k + j];
        int32_t dot = 0;
#pragma GCC unroll 16
        for (uint32_t j = 0; j < SCORE_LANES; j++)
            dot += acc[j];
        float score = (float)dot * (q->query_scale * q->row_scale[i]);
        if (score > b->threshold)
            score_best_offer(b, i, score);
    }
}
