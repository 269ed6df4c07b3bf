/*
 * test_score: score_dot against a double-precision dot product, and
 * score_topn against a full sort of every row's score (the tie rule applied
 * by qsort), on random matrices of many shapes, with planted ties, a random
 * filter and per-row scales.
 */
#include "score.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    /* splitmix64: deterministic, so a failure reproduces. */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static float rng_float(void) /* uniform in [-1, 1) */
{
    return (float)((double)(rng_next() >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static uint32_t rng_below(uint32_t n)
{
    return (uint32_t)(rng_next() % n);
}

static uint32_t round16(uint32_t n)
{
    return (n + 15) / 16 * 16;
}

/* rows x stride floats, 64-byte aligned: dim random floats, zeros up to the
 * lane block, and NaN beyond it, so a scan that reads past its block fails. */
static float *make_matrix(uint32_t rows, uint32_t dim, uint32_t stride)
{
    size_t bytes = ((size_t)rows * stride * sizeof(float) + 63) / 64 * 64;
    float *m = aligned_alloc(64, bytes ? bytes : 64);
    for (uint32_t r = 0; r < rows; r++)
        for (uint32_t c = 0; c < stride; c++)
            m[(size_t)r * stride + c] = c < dim ? rng_float() : c < round16(dim) ? 0.0f : NAN;
    return m;
}

/* ---- score_dot --------------------------------------------------------- */

static void test_dot_matches_double(void)
{
    rng_state = 1;
    for (uint32_t dim = 1; dim <= 200; dim++) {
        float *a = make_matrix(1, dim, round16(dim));
        float *b = make_matrix(1, dim, round16(dim));
        double ref = 0, mag = 0;
        for (uint32_t i = 0; i < dim; i++) {
            ref += (double)a[i] * b[i];
            mag += fabs((double)a[i] * b[i]);
        }
        float got = score_dot(a, b, dim);
        float padded = score_dot(a, b, round16(dim));
        free(a);
        free(b);
        CHECK(fabs(got - ref) <= 1e-5 * mag + 1e-30);
        /* The scan multiplies whole blocks; padding must not change the value. */
        CHECK(got == padded);
    }
}

static void test_dot_exact_on_integers(void)
{
    float a[40], b[40];
    double ref = 0;
    for (int i = 0; i < 40; i++) {
        a[i] = (float)(i - 20);
        b[i] = (float)(3 * i % 7 - 3);
        ref += (double)a[i] * b[i];
    }
    CHECK(score_dot(a, b, 40) == (float)ref);
    CHECK(score_dot(a, b, 0) == 0.0f);
    CHECK(score_dot(a, b, 1) == a[0] * b[0]);
}

/* ---- score_topn against a full sort ------------------------------------ */

/* The filter under test: a random set of accepted rows; it records its
 * calls so the test can check when it is consulted. */
struct fake_filter {
    const unsigned char *accept;
    uint32_t calls;
    int64_t last; /* last row asked about */
    int out_of_order;
};

static int fake_keep(const void *ctx, uint32_t index)
{
    struct fake_filter *f = (struct fake_filter *)ctx;
    f->calls++;
    if ((int64_t)index <= f->last)
        f->out_of_order = 1;
    f->last = index;
    return f->accept[index];
}

static int cmp_hit(const void *pa, const void *pb)
{
    const struct score_hit *a = pa, *b = pb;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

struct shape {
    uint32_t rows, dim, n;
    uint32_t extra_stride; /* floats of NaN padding after the lane block */
    int scaled;            /* row_scale and query_scale (cosine-like) */
    int filtered;          /* random filter accepting ~70% of the rows */
    uint32_t dup_rows;     /* rows overwritten with a copy of another row: ties */
};

/* Runs one shape; returns 0 when score_topn agrees with the reference. */
static int run_shape(const struct shape *sh, uint64_t seed)
{
    rng_state = seed;
    uint32_t stride = round16(sh->dim) + sh->extra_stride;
    float *matrix = make_matrix(sh->rows, sh->dim, stride);
    float *query = make_matrix(1, sh->dim, round16(sh->dim));
    float *scale = malloc(((size_t)sh->rows + 1) * sizeof(float));
    unsigned char *accept = malloc((size_t)sh->rows + 1);
    struct score_hit *ref = malloc(((size_t)sh->rows + 1) * sizeof(*ref));
    struct score_hit *got = malloc(((size_t)sh->n + 1) * sizeof(*got));
    int bad = 0;

    for (uint32_t r = 0; r < sh->rows; r++) {
        scale[r] = 0.25f + (rng_float() + 1.0f);
        accept[r] = !sh->filtered || rng_below(10) < 7;
    }
    for (uint32_t k = 0; k < sh->dup_rows && sh->rows > 1; k++) {
        uint32_t from = rng_below(sh->rows), to = rng_below(sh->rows);
        memcpy(matrix + (size_t)to * stride, matrix + (size_t)from * stride,
               stride * sizeof(float));
        scale[to] = scale[from];
    }
    float query_scale = sh->scaled ? 0.5f + rng_float() * 0.25f : 1.0f;

    /* Reference: every accepted row, scored with score_dot over dim only. */
    uint32_t passing = 0;
    for (uint32_t r = 0; r < sh->rows; r++) {
        if (!accept[r])
            continue;
        float s = score_dot(query, matrix + (size_t)r * stride, sh->dim);
        if (sh->scaled)
            s = s * query_scale * scale[r];
        ref[passing++] = (struct score_hit){r, s};
    }
    qsort(ref, passing, sizeof(*ref), cmp_hit);

    const struct score_scan scan = {
        .query = query,
        .matrix = matrix,
        .rows = sh->rows,
        .stride = stride,
        .dim = sh->dim,
        .row_scale = sh->scaled ? scale : NULL,
        .query_scale = query_scale,
    };
    struct fake_filter ff = {accept, 0, -1, 0};
    uint32_t count = score_topn(&scan, sh->n, sh->filtered ? fake_keep : NULL, &ff, got);

    uint32_t want = passing < sh->n ? passing : sh->n;
    if (count != want) {
        fprintf(stderr, "  rows %u dim %u n %u: %u hits, want %u\n", sh->rows, sh->dim, sh->n,
                count, want);
        bad = 1;
    }
    for (uint32_t i = 0; !bad && i < count; i++) {
        if (got[i].index != ref[i].index || got[i].score != ref[i].score) {
            fprintf(stderr, "  rows %u dim %u n %u: hit %u is row %u (%.9g), want row %u (%.9g)\n",
                    sh->rows, sh->dim, sh->n, i, got[i].index, got[i].score, ref[i].index,
                    ref[i].score);
            bad = 1;
        }
    }
    for (uint32_t i = 0; !bad && i < sh->rows && i < 50; i++) {
        float s = score_row(&scan, i);
        float want_s = score_dot(query, matrix + (size_t)i * stride, sh->dim);
        if (sh->scaled)
            want_s = want_s * query_scale * scale[i];
        if (s != want_s) {
            fprintf(stderr, "  score_row(%u) = %.9g, want %.9g\n", i, s, want_s);
            bad = 1;
        }
    }
    if (ff.out_of_order || ff.calls > sh->rows) {
        fprintf(stderr, "  filter called %u times, out of order %d\n", ff.calls, ff.out_of_order);
        bad = 1;
    }
    /* Once the heap is warm, a row that cannot enter is not shown to the
     * filter: on a large scan for a few rows the filter sees a small part. */
    if (sh->filtered && sh->rows >= 10000 && sh->n <= 10 && ff.calls > sh->rows / 10) {
        fprintf(stderr, "  filter called for %u of %u rows\n", ff.calls, sh->rows);
        bad = 1;
    }
    free(matrix);
    free(query);
    free(scale);
    free(accept);
    free(ref);
    free(got);
    return bad;
}

static const struct shape shapes[] = {
    {5, 3, 10, 0, 0, 0, 0},
    {5, 3, 10, 0, 0, 1, 2},
    {1000, 1, 1, 0, 0, 0, 0},
    {1000, 1, 1, 16, 1, 1, 300},
    {3000, 17, 10, 0, 0, 0, 100},
    {3000, 17, 10, 16, 0, 1, 100},
    {2000, 64, 100, 0, 1, 0, 200},
    {2000, 64, 100, 0, 1, 1, 0},
    {500, 16, 500, 0, 0, 0, 50},
    {500, 16, 500, 0, 1, 1, 50},
    {700, 3, 1000, 0, 0, 1, 10},
    {20000, 100, 10, 0, 0, 1, 500},
    {20000, 100, 50, 32, 1, 0, 2000},
    {20000, 3, 1000, 0, 0, 1, 5000},
    {1, 1, 1, 0, 0, 0, 0},
    {0, 8, 10, 0, 0, 0, 0},
    {100, 8, 0, 0, 0, 1, 0},
};

static void test_topn_matches_full_sort(void)
{
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
        for (uint64_t seed = 1; seed <= 3; seed++)
            CHECK(run_shape(&shapes[i], 1000 * i + seed) == 0);
}

/* Every row equal: the result is the n lowest accepted indices. */
static void test_topn_all_tied(void)
{
    enum { ROWS = 300, DIM = 5, STRIDE = 16, N = 20 };
    static _Alignas(64) float matrix[ROWS * STRIDE];
    static _Alignas(64) float query[STRIDE] = {1, 2, 3, 4, 5};
    for (int r = 0; r < ROWS; r++)
        for (int c = 0; c < DIM; c++)
            matrix[r * STRIDE + c] = 0.5f;
    const struct score_scan scan = {query, matrix, ROWS, STRIDE, DIM, NULL, 0};
    struct score_hit out[N];
    CHECK(score_topn(&scan, N, NULL, NULL, out) == N);
    for (uint32_t i = 0; i < N; i++)
        CHECK(out[i].index == i && out[i].score == 7.5f);
}

int main(int argc, char **argv)
{
    static const struct check_case cases[] = {
        CHECK_CASE(test_dot_matches_double),
        CHECK_CASE(test_dot_exact_on_integers),
        CHECK_CASE(test_topn_matches_full_sort),
        CHECK_CASE(test_topn_all_tied),
    };
    return check_main(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
