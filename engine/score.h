/*
 * score: dot products and fused score + top-N selection over a factor matrix.
 *
 * The full scan is memory-bound (every item row is read once per query), so
 * the kernel does the least work per row that it can: it scores a block of
 * rows in vector registers, then compares the whole block against the worst
 * score currently kept in one vector compare. Only a row that beats it pays
 * for the filter predicate and a heap update; once the heap is warm that is
 * a small fraction of the rows.
 *
 * Kernels: AVX-512F, AVX2 and portable C, all in one binary (x86-64 only for
 * the first two), one of them chosen for the whole process: the best the CPU
 * supports, unless score_select_kernel() names one. They follow one
 * summation order (score_kernel.h), so they return the same scores to the
 * bit and the same rows on the same data, and score_row() gives any row's
 * score exactly as a scan computes it.
 *
 * Order: a higher score is better; between equal scores the lower row index
 * is better. Scores are never NaN (the model refuses non-finite factors).
 *
 * No allocation; safe from any thread. The only global state is the choice
 * of kernel.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* Floats summed in independent lanes by score_dot: a whole model row block
 * (MODEL_ROW_ALIGN_FLOATS), so a padded row needs no scalar tail. */
#define SCORE_LANES 16

/* One selected row. */
struct score_hit {
    uint32_t index; /* row index in the scanned matrix */
    float score;
};

/* score_filter_fn - whether row @index may be returned (nonzero) or not (0).
 * @ctx is the filter_ctx given to score_topn. Called at most once per row,
 * in ascending row order, and only for rows whose score would enter the
 * current top-N. */
typedef int (*score_filter_fn)(const void *ctx, uint32_t index);

/* What score_topn scans. Row i's score is
 *     dot(query, matrix + i * stride)                         (row_scale NULL)
 *     dot(query, matrix + i * stride) * query_scale * row_scale[i]   (otherwise)
 * the second being the cosine when the scales are inverse norms. */
struct score_scan {
    const float *query;  /* dim floats, then zeros up to a multiple of SCORE_LANES */
    const float *matrix; /* rows x stride floats; each row as the query */
    uint32_t rows;
    uint32_t stride;        /* floats from one row to the next, >= dim rounded up to SCORE_LANES */
    uint32_t dim;           /* floats that take part in the score */
    const float *row_scale; /* NULL, or rows per-row multipliers */
    float query_scale;      /* used only with row_scale */
};

/* score_dot - dot product of @len floats at @a and @b. The products are
 * summed in SCORE_LANES independent lanes (element k goes to lane k mod
 * SCORE_LANES), which are then added pairwise; so the result is the same
 * whether or not zero padding follows the @len floats, and scanning a
 * padded row over its whole block gives the same value as over @len. */
float score_dot(const float *a, const float *b, uint32_t len);

/* score_row - row @index's score in @s exactly as score_topn computes it. */
float score_row(const struct score_scan *s, uint32_t index);

/* score_topn - the @n best rows of @s that @keep accepts.
 * @keep:       NULL accepts every row.
 * @filter_ctx: passed to @keep.
 * @out:        @n entries of scratch; receives the selected rows, best
 *              first (see the order above).
 * Returns the number of rows in @out: min(@n, rows accepted). */
uint32_t score_topn(const struct score_scan *s, uint32_t n, score_filter_fn keep,
                    const void *filter_ctx, struct score_hit *out);

/* Rows offered for exact scoring that are scored together: their f32 rows
 * are far apart, each a cache miss on a large catalog, and scored in a
 * batch the misses overlap. Clustered 10^6 x 64, top 10, int8, 2,639 rows
 * scored exactly a query: 4.95 ms a query one at a time, 4.06 ms 16 at a
 * time (medians of 8 runs on a busy machine); prefetching each row as it
 * was offered measured no better (4.52 ms). */
#define SCORE_PENDING 16

/* The best rows so far: a binary heap whose root is the worst of them.
 * Declared here for score_select_* below; only the score module touches
 * its fields. */
struct score_best {
    struct score_hit *heap; /* count entries of the caller's n-entry scratch */
    uint32_t n, count;
    /* A row is offered only with a score strictly above this. Kept by the
     * score offered: -INFINITY until n rows are kept, then the root's
     * score (a later row with an equal score has a higher index, so it is
     * worse). Kept by exact score: the root's exact score less @bound,
     * rounded down. */
    float threshold;
    score_filter_fn keep; /* NULL accepts every row */
    const void *filter_ctx;
    /* Added to the indices kernels offer: a part of a split scan offers
     * its rows from 0, the filter and the hits take the matrix's. */
    uint32_t base;
    /* NULL: rows are kept by the score offered. Else offered scores are
     * approximate, each within @bound of score_row(@exact, row) (borrowed,
     * for the selection's life): an offered row is scored exactly and kept
     * by that score, and @rescored counts those rows. */
    const struct score_scan *exact;
    double bound;
    uint32_t rescored;
    /* Offered rows waiting to be scored exactly, in ascending order. */
    uint32_t pending_count;
    uint32_t pending[SCORE_PENDING];
};

/* ---- splitting a scan ---------------------------------------------------- */

/* score_topn_split - score_topn with the rows cut into @parts contiguous
 * parts (1..SPLIT_PARTS_MAX) that split_run scans at once, each keeping its
 * best @n; the same result as score_topn. @keep must be safe to call from
 * several threads at once. @scratch: @parts * @n entries. */
uint32_t score_topn_split(const struct score_scan *s, uint32_t n, score_filter_fn keep,
                          const void *filter_ctx, unsigned parts, struct score_hit *scratch,
                          struct score_hit *out);

/* ---- scanning a reduced-precision copy ----------------------------------- */

/* Element types a scan can read; the values match enum model_elem. */
enum score_elem { SCORE_ELEM_F32, SCORE_ELEM_BF16, SCORE_ELEM_INT8, SCORE_ELEM_COUNT };

/* score_elem_bytes - the size of one @elem element: 4, 2 or 1. */
static inline unsigned score_elem_bytes(enum score_elem elem)
{
    static const unsigned char bytes[SCORE_ELEM_COUNT] = {4, 2, 1};
    return bytes[elem];
}

/* Longest row (stride) a reduced scan takes: the model's dimension limit. */
#define SCORE_STRIDE_MAX 4096

/* A reduced-precision copy of a score_scan's matrix. Row i of it stands
 * for the real vector w_i: bf16 row i as floats, or row_scale[i] times int8
 * row i. The bounds are over all rows, v_i being the f32 row; each may be
 * any upper bound, a loose one only costs speed. */
struct score_reduced {
    enum score_elem elem;   /* SCORE_ELEM_BF16 or SCORE_ELEM_INT8 */
    const void *matrix;     /* rows x stride elements (uint16_t bf16 bits or int8_t),
                               64-byte aligned rows, zero padded */
    const float *row_scale; /* int8: rows scales, finite and >= 0 */
    /* int8: NULL, or the same rows regrouped by score_int8_block, which
     * kernels that score 16 rows an instruction read instead (bit for bit
     * the same scores). */
    const uint8_t *blocked;
    double max_norm;       /* >= max ||w_i|| */
    double max_error;      /* >= max ||w_i - v_i|| */
    double exact_max_norm; /* >= max ||v_i|| */
};

/* ---- int8 rows regrouped by block ------------------------------------------
 *
 * An int8 row of 64 elements is one vector: scoring it is one VNNI
 * multiply-add, but then its 16 partial sums must be folded into one, and
 * folding takes more instructions than the products (30 shuffles and 15
 * adds for 16 rows). Regrouped, a vector holds 4 elements of each of 16
 * rows, so one multiply-add by 4 query elements, broadcast, adds to all 16
 * rows' scores at once, and nothing is left to fold. The layout: blocks of
 * SCORE_BLOCK_ROWS rows, the last padded; in block b, the 4 bytes at
 * 64 g + 4 r are elements 4g .. 4g+3 of row 16 b + r, each plus 128 (as an
 * unsigned byte: VNNI multiplies unsigned by signed bytes); padding rows
 * are zeros (128). It costs a second copy of the int8 rows in memory. */

#define SCORE_BLOCK_ROWS 16

/* score_int8_blocked_bytes - the size of the regrouped copy of @rows int8
 * rows of @stride elements (a multiple of SCORE_LANES). */
size_t score_int8_blocked_bytes(uint32_t rows, uint32_t stride);

/* score_int8_block - regroup @rows int8 rows of @stride elements at @in
 * into @out (score_int8_blocked_bytes, 64-byte aligned). */
void score_int8_block(const int8_t *in, uint32_t rows, uint32_t stride, uint8_t *out);

/* score_int8_blocked_read - whether the current kernel's int8 scan reads
 * a regrouped copy when given one (AVX512-VNNI's does); when it does not,
 * making one only costs memory. */
int score_int8_blocked_read(void);

/* score_topn_reduced - score_topn over @r instead of s->matrix, with the
 * same result: the same rows, in the same order, with the same exact f32
 * scores (score_row), whatever the copy's precision.
 *
 * A row's exact score differs from its reduced score by at most B, bounded
 * from the query's norm, its own rounding and @r's bounds (score_reduced.c).
 * The scan keeps the best @n rows by exact score, S being the worst of
 * them so far, and scores a row exactly only when its reduced score is
 * above S - B: every row it passes over has an exact score below S, so it
 * cannot be in the answer. No row is scored twice and the f32 matrix is
 * read only at the rows scored exactly, however close the scores are: a
 * copy far from the f32 rows, or many scores within B of the n-th, only
 * costs more rows scored exactly. *@rescored (may be NULL) receives their
 * number.
 * With @parts > 1 the scan is split as score_topn_split splits it, each
 * part keeping its own best @n. s->row_scale must be NULL. @scratch:
 * @parts * @n entries. @out: @n entries. Returns the number of rows in
 * @out. */
uint32_t score_topn_reduced(const struct score_scan *s, const struct score_reduced *r, uint32_t n,
                            score_filter_fn keep, const void *filter_ctx, unsigned parts,
                            struct score_hit *scratch, struct score_hit *out, uint32_t *rescored);

/* ---- selecting by scores computed elsewhere -------------------------------- */

/* The reduced scan's selection, for approximate scores that come from
 * elsewhere (BatchRecommend's sgemm): rows offered with approximate
 * scores, kept by their exact ones. */

/* score_select_init - an empty selection of the best @n rows that @keep
 * accepts, in @scratch (@n entries), by score_row(@exact), for rows offered
 * with scores within @bound of it. @exact is borrowed until the selection
 * is merged. */
void score_select_init(struct score_best *b, uint32_t n, score_filter_fn keep,
                       const void *filter_ctx, struct score_hit *scratch,
                       const struct score_scan *exact, double bound);

/* score_select_block - offer rows @first .. @first + @count - 1 with the
 * approximate scores @scores; rows must come in ascending order. */
void score_select_block(struct score_best *b, uint32_t first, const float *scores, uint32_t count);

/* score_select_merge - the best @n rows of the @count selections @parts
 * (the parts of one scan, each offered its own rows), best first into
 * @out (@n entries), with their exact scores: the top @n of all the rows
 * offered. Returns the number of rows in @out. */
uint32_t score_select_merge(const struct score_best *parts, unsigned count, uint32_t n,
                            struct score_hit *out);

/* score_float_bound - a bound on |x - score_row(@s, i)| for any x computed
 * as a float32 dot product of @s->query and row i, in any order, with or
 * without fused multiply-adds (sgemm's), for rows of norm at most
 * @max_norm: both are within dim * 2^-24 * ||query|| * @max_norm of the
 * real dot product (the classic bound on a float sum, and
 * Cauchy-Schwarz), doubled, widened. */
double score_float_bound(const struct score_scan *s, double max_norm);

/* ---- kernel choice ----------------------------------------------------- */

/* score_select_kernel - make @name the kernel of every later scan: "auto"
 * (the best this CPU supports: avx512, then avx2, then portable), "avx512"
 * (needs AVX-512F), "avx2" (needs AVX2) or "portable". Without a call, the
 * first scan selects "auto". Safe at any time from any thread: a scan
 * already running finishes with the kernel it started with, and all kernels
 * return the same results.
 * Returns 0, or ERR_INVALID when @name is unknown or names a kernel this
 * CPU or build lacks; @e (may be NULL) says which. */
int score_select_kernel(const char *name, struct err *e);

/* score_kernel_name - the kernel scans use: "avx512", "avx2" or
 * "portable" (selecting "auto" first if none was selected). Static string. */
const char *score_kernel_name(void);

/* score_reduced_kernel_name - the code that scans @elem copies under the
 * current kernel: the selected kernel's own, or the best one after it that
 * the CPU runs ("avx512-bf16" needs AVX512_BF16, "avx512-vnni" AVX512_VNNI
 * and AVX512BW; without them the avx512 kernel scans those with "avx2").
 * Static string. */
const char *score_reduced_kernel_name(enum score_elem elem);
