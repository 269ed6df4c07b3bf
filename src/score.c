/*
 * score: portable kernels.
 *
 * score_dot keeps SCORE_LANES separate partial sums instead of one: the
 * additions into different lanes do not depend on each other, so GCC at -O2
 * turns the inner loop into packed multiplies and adds (four SSE registers on
 * baseline x86-64, two with AVX) without -ffast-math, and the summation
 * order, hence the result, is fixed by the source rather than by the
 * compiler. The unroll pragmas keep the sixteen sums in registers (left
 * alone, GCC -O2 stores them back to the stack after every block) and turn
 * the final pairwise reduction into a few packed adds. The CPU-specific
 * kernels of the performance plan must keep this order, and contract no
 * multiply-add, to agree with this one bit for bit.
 *
 * score_topn keeps the best n rows in a binary heap whose root is the worst
 * of them. Rows arrive in ascending index order, so a later row with a score
 * equal to the root's is worse than it (ties go to the lower index): a row
 * enters only if its score is strictly greater than the root's.
 */
#include "score.h"

#include <assert.h>
#include <stddef.h>

float score_dot(const float *a, const float *b, uint32_t len)
{
    float acc[SCORE_LANES] = {0};
    size_t blocks = len / SCORE_LANES, tail = len % SCORE_LANES;
    for (size_t k = 0; k < blocks; k++, a += SCORE_LANES, b += SCORE_LANES)
#pragma GCC unroll 16
        for (size_t j = 0; j < SCORE_LANES; j++)
            acc[j] += a[j] * b[j];
    for (size_t j = 0; j < tail; j++)
        acc[j] += a[j] * b[j];
#pragma GCC unroll 4
    for (size_t width = SCORE_LANES / 2; width > 0; width /= 2)
#pragma GCC unroll 8
        for (size_t j = 0; j < width; j++)
            acc[j] += acc[j + width];
    return acc[0];
}

/* Floats the scan multiplies per row: whole lane blocks, which the zero
 * padding makes equal to a dot product over dim (see score_dot). */
static uint32_t padded_len(const struct score_scan *s)
{
    return (s->dim + SCORE_LANES - 1) / SCORE_LANES * SCORE_LANES;
}

static float row_score(const struct score_scan *s, uint32_t len, uint32_t index)
{
    float dot = score_dot(s->query, s->matrix + (size_t)index * s->stride, len);
    if (s->row_scale == NULL)
        return dot;
    return dot * s->query_scale * s->row_scale[index];
}

float score_row(const struct score_scan *s, uint32_t index)
{
    assert(index < s->rows);
    return row_score(s, padded_len(s), index);
}

/* ---- heap of the best n, worst at the root ----------------------------- */

static int worse(const struct score_hit *a, const struct score_hit *b)
{
    return a->score < b->score || (a->score == b->score && a->index > b->index);
}

static void swap(struct score_hit *a, struct score_hit *b)
{
    struct score_hit t = *a;
    *a = *b;
    *b = t;
}

static void sift_up(struct score_hit *h, uint32_t i)
{
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!worse(&h[i], &h[parent]))
            break;
        swap(&h[i], &h[parent]);
        i = parent;
    }
}

static void sift_down(struct score_hit *h, uint32_t n, uint32_t i)
{
    for (;;) {
        uint32_t w = i, l = 2 * i + 1, r = l + 1;
        if (l < n && worse(&h[l], &h[w]))
            w = l;
        if (r < n && worse(&h[r], &h[w]))
            w = r;
        if (w == i)
            return;
        swap(&h[i], &h[w]);
        i = w;
    }
}

/* Heap sort: moving the worst to the end each time leaves the best first. */
static void sort_best_first(struct score_hit *h, uint32_t n)
{
    for (uint32_t end = n; end > 1; end--) {
        swap(&h[0], &h[end - 1]);
        sift_down(h, end - 1, 0);
    }
}

static int accepts(score_filter_fn keep, const void *ctx, uint32_t index)
{
    return keep == NULL || keep(ctx, index);
}

uint32_t score_topn(const struct score_scan *s, uint32_t n, score_filter_fn keep,
                    const void *filter_ctx, struct score_hit *out)
{
    uint32_t len = padded_len(s);
    assert(len <= s->stride);
    uint32_t count = 0, i = 0;

    /* Fill: until n rows are kept, every accepted row enters. */
    for (; i < s->rows && count < n; i++) {
        if (!accepts(keep, filter_ctx, i))
            continue;
        out[count] = (struct score_hit){i, row_score(s, len, i)};
        sift_up(out, count++);
    }
    /* Steady state: one compare against the worst kept score per row. */
    for (; i < s->rows; i++) {
        float score = row_score(s, len, i);
        if (score <= out[0].score || !accepts(keep, filter_ctx, i))
            continue;
        out[0] = (struct score_hit){i, score};
        sift_down(out, n, 0);
    }
    sort_best_first(out, count);
    return count;
}
