/*
 * test_score: score_dot against a double-precision dot product, and
 * score_topn, with every kernel this CPU runs, against a full sort of every
 * row's score (the tie rule applied by qsort) on random matrices of many
 * shapes, with planted ties, random filters and per-row scales. Scores are
 * compared bit for bit: every kernel must follow score_dot's summation
 * order exactly. The rows shown to the filter are checked against the rows
 * that beat the running threshold, computed here from the sorted scores.
 */
#include "engine/score.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rng.h"

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

/* ---- kernels ----------------------------------------------------------- */

static const char *const kernel_names[] = {"portable", "avx2", "avx512"};

#define KERNELS (sizeof(kernel_names) / sizeof(kernel_names[0]))

/* Selects kernel @name; 0 (after a note saying why) if this CPU or build
 * lacks it, so a machine without AVX-512 skips that kernel instead of
 * failing. */
static int use_kernel(const char *name)
{
    struct err e;
    if (score_select_kernel(name, &e) == 0)
        return 1;
    fprintf(stderr, "  skipping kernel %s: %s\n", name, e.msg);
    return 0;
}

/* The kernel "auto" must pick, straight from the CPU's feature flags. */
static const char *expected_auto(void)
{
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx512f"))
        return "avx512";
    if (__builtin_cpu_supports("avx2"))
        return "avx2";
#endif
    return "portable";
}

static void test_select_kernel(void)
{
    struct err e;
    CHECK_RC(score_select_kernel("sse9", &e), ERR_INVALID);
    CHECK_STR_HAS(e.msg, "sse9");
    CHECK_STR_HAS(e.msg, "portable");
    CHECK_OK(score_select_kernel("portable", &e));
    CHECK(strcmp(score_kernel_name(), "portable") == 0);
    CHECK_OK(score_select_kernel("auto", &e));
    CHECK(strcmp(score_kernel_name(), expected_auto()) == 0);
    CHECK_OK(score_select_kernel(expected_auto(), &e));
}

/* ---- score_topn against a full sort ------------------------------------ */

/* The filter under test: a random set of accepted rows; it records the rows
 * it is asked about. */
struct fake_filter {
    const unsigned char *accept;
    uint32_t *asked; /* rows, in the order asked */
    uint32_t calls;
    uint32_t max_calls;
};

static int fake_keep(const void *ctx, uint32_t index)
{
    struct fake_filter *f = (struct fake_filter *)ctx;
    if (f->calls < f->max_calls)
        f->asked[f->calls] = index;
    f->calls++;
    return f->accept[index];
}

static int cmp_hit(const void *pa, const void *pb)
{
    const struct score_hit *a = pa, *b = pb;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

static int same_bits(float a, float b)
{
    return memcmp(&a, &b, sizeof(a)) == 0;
}

/* The rows a fused scan must show the filter, in order: each row whose
 * score is strictly above the n-th best accepted score before it (every
 * row while fewer than n are accepted). Kept scores are held in a plain
 * sorted array, independent of score.c's heap. Returns their count. */
static uint32_t rows_to_ask(const float *scores, const unsigned char *accept, uint32_t rows,
                            uint32_t n, uint32_t *asked)
{
    float *kept = malloc(((size_t)n + 1) * sizeof(*kept)); /* descending */
    uint32_t count = 0, calls = 0;
    for (uint32_t r = 0; r < rows && n > 0; r++) {
        if (count == n && !(scores[r] > kept[n - 1]))
            continue;
        asked[calls++] = r;
        if (!accept[r])
            continue;
        uint32_t at = count < n ? count++ : n - 1;
        for (; at > 0 && kept[at - 1] < scores[r]; at--)
            kept[at] = kept[at - 1];
        kept[at] = scores[r];
    }
    free(kept);
    return calls;
}

struct shape {
    uint32_t rows, dim, n;
    uint32_t extra_stride; /* floats of NaN padding after the lane block */
    int scaled;            /* row_scale and query_scale (cosine-like) */
    int accept_pct;        /* filter accepting this % of the rows; 0: no filter */
    uint32_t dup_rows;     /* rows overwritten with a copy of another row: ties */
};

/* One shape's data, and every row's score computed with score_dot over dim. */
struct fixture {
    uint32_t stride;
    float *matrix, *query, *scale, *scores;
    unsigned char *accept;
    float query_scale;
};

static void fixture_make(struct fixture *fx, const struct shape *sh, uint64_t seed)
{
    rng_state = seed;
    fx->stride = round16(sh->dim) + sh->extra_stride;
    fx->matrix = make_matrix(sh->rows, sh->dim, fx->stride);
    fx->query = make_matrix(1, sh->dim, round16(sh->dim));
    fx->scale = malloc(((size_t)sh->rows + 1) * sizeof(float));
    fx->scores = malloc(((size_t)sh->rows + 1) * sizeof(float));
    fx->accept = malloc((size_t)sh->rows + 1);
    for (uint32_t r = 0; r < sh->rows; r++) {
        fx->scale[r] = 0.25f + (rng_float() + 1.0f);
        fx->accept[r] = sh->accept_pct == 0 || rng_below(100) < (uint32_t)sh->accept_pct;
    }
    for (uint32_t k = 0; k < sh->dup_rows && sh->rows > 1; k++) {
        uint32_t from = rng_below(sh->rows), to = rng_below(sh->rows);
        memcpy(fx->matrix + (size_t)to * fx->stride, fx->matrix + (size_t)from * fx->stride,
               fx->stride * sizeof(float));
        fx->scale[to] = fx->scale[from];
    }
    fx->query_scale = sh->scaled ? 0.5f + rng_float() * 0.25f : 1.0f;
    for (uint32_t r = 0; r < sh->rows; r++) {
        float s = score_dot(fx->query, fx->matrix + (size_t)r * fx->stride, sh->dim);
        fx->scores[r] = sh->scaled ? s * fx->query_scale * fx->scale[r] : s;
    }
}

static void fixture_free(struct fixture *fx)
{
    free(fx->matrix);
    free(fx->query);
    free(fx->scale);
    free(fx->scores);
    free(fx->accept);
}

/* Checks score_topn's rows and scores against the full sort. */
static int check_hits(const struct shape *sh, const struct fixture *fx, const struct score_hit *got,
                      uint32_t count)
{
    struct score_hit *ref = malloc(((size_t)sh->rows + 1) * sizeof(*ref));
    uint32_t passing = 0;
    for (uint32_t r = 0; r < sh->rows; r++)
        if (fx->accept[r])
            ref[passing++] = (struct score_hit){r, fx->scores[r]};
    qsort(ref, passing, sizeof(*ref), cmp_hit);
    uint32_t want = passing < sh->n ? passing : sh->n;
    int bad = count != want;
    if (bad)
        fprintf(stderr, "  %u hits, want %u\n", count, want);
    for (uint32_t i = 0; !bad && i < count; i++) {
        bad = got[i].index != ref[i].index || !same_bits(got[i].score, ref[i].score);
        if (bad)
            fprintf(stderr, "  hit %u is row %u (%a), want row %u (%a)\n", i, got[i].index,
                    got[i].score, ref[i].index, ref[i].score);
    }
    free(ref);
    return bad;
}

/* Checks that the filter saw exactly the rows that beat the threshold. */
static int check_asked(const struct shape *sh, const struct fixture *fx,
                       const struct fake_filter *ff)
{
    if (sh->accept_pct == 0)
        return 0;
    uint32_t *want = malloc(((size_t)sh->rows + 1) * sizeof(*want));
    uint32_t calls = rows_to_ask(fx->scores, fx->accept, sh->rows, sh->n, want);
    int bad = ff->calls != calls || memcmp(ff->asked, want, calls * sizeof(*want)) != 0;
    if (bad)
        fprintf(stderr, "  filter asked about %u rows, want %u (or other rows)\n", ff->calls,
                calls);
    free(want);
    return bad;
}

/* Runs one shape with the selected kernel; returns 0 when score_topn and
 * score_row agree with the reference. */
static int run_shape(const struct shape *sh, uint64_t seed)
{
    struct fixture fx;
    fixture_make(&fx, sh, seed);
    struct score_hit *got = malloc(((size_t)sh->n + 1) * sizeof(*got));
    uint32_t *asked = malloc(((size_t)sh->rows + 1) * sizeof(*asked));
    const struct score_scan scan = {
        .query = fx.query,
        .matrix = fx.matrix,
        .rows = sh->rows,
        .stride = fx.stride,
        .dim = sh->dim,
        .row_scale = sh->scaled ? fx.scale : NULL,
        .query_scale = fx.query_scale,
    };
    struct fake_filter ff = {fx.accept, asked, 0, sh->rows};
    uint32_t count = score_topn(&scan, sh->n, sh->accept_pct ? fake_keep : NULL, &ff, got);

    int bad = check_hits(sh, &fx, got, count) || check_asked(sh, &fx, &ff);
    for (uint32_t i = 0; !bad && i < sh->rows && i < 50; i++) {
        bad = !same_bits(score_row(&scan, i), fx.scores[i]);
        if (bad)
            fprintf(stderr, "  score_row(%u) = %a, want %a\n", i, score_row(&scan, i),
                    fx.scores[i]);
    }
    if (bad)
        fprintf(stderr, "  kernel %s, rows %u dim %u n %u seed %llu\n", score_kernel_name(),
                sh->rows, sh->dim, sh->n, (unsigned long long)seed);
    fixture_free(&fx);
    free(got);
    free(asked);
    return bad;
}

static const struct shape shapes[] = {
    {5, 3, 10, 0, 0, 0, 0},           {5, 3, 10, 0, 0, 70, 2},
    {1000, 1, 1, 0, 0, 0, 0},         {1000, 1, 1, 16, 1, 70, 300},
    {3000, 17, 10, 0, 0, 0, 100},     {3000, 17, 10, 16, 0, 70, 100},
    {2000, 64, 100, 0, 1, 0, 200},    {2000, 64, 100, 0, 1, 70, 0},
    {500, 16, 500, 0, 0, 0, 50},      {500, 16, 500, 0, 1, 70, 50},
    {700, 3, 1000, 0, 0, 70, 10},     {20000, 100, 10, 0, 0, 70, 500},
    {20000, 100, 50, 32, 1, 0, 2000}, {20000, 3, 1000, 0, 0, 70, 5000},
    {5000, 128, 100, 0, 0, 2, 0},     {5000, 31, 20, 0, 1, 100, 0},
    {4000, 300, 7, 0, 0, 50, 0},      {1, 1, 1, 0, 0, 0, 0},
    {0, 8, 10, 0, 0, 0, 0},           {100, 8, 0, 0, 0, 70, 0},
};

static void test_topn_matches_full_sort(void)
{
    for (size_t k = 0; k < KERNELS; k++) {
        if (!use_kernel(kernel_names[k]))
            continue;
        for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
            for (uint64_t seed = 1; seed <= 3; seed++)
                CHECK(run_shape(&shapes[i], 1000 * i + seed) == 0);
    }
}

/* Many small random shapes: every row count around the block sizes (8 and
 * 16 rows), dimensions across and off the lane block, n above and below
 * the row count. */
static void test_topn_random_shapes(void)
{
    for (size_t k = 0; k < KERNELS; k++) {
        if (!use_kernel(kernel_names[k]))
            continue;
        rng_state = 42;
        for (uint64_t seed = 1; seed <= 400; seed++) {
            static const int accept_pcts[] = {0, 100, 70, 10, 0};
            const struct shape sh = {
                .rows = rng_below(70),
                .dim = 1 + rng_below(140),
                .n = 1 + rng_below(rng_below(2) ? 80 : 4),
                .extra_stride = 16 * rng_below(2),
                .scaled = (int)rng_below(2),
                .accept_pct = accept_pcts[rng_below(5)],
                .dup_rows = rng_below(4),
            };
            uint64_t saved = rng_state;
            CHECK(run_shape(&sh, seed) == 0);
            rng_state = saved;
        }
    }
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
    for (size_t k = 0; k < KERNELS; k++) {
        if (!use_kernel(kernel_names[k]))
            continue;
        struct score_hit out[N];
        CHECK(score_topn(&scan, N, NULL, NULL, out) == N);
        for (uint32_t i = 0; i < N; i++)
            CHECK(out[i].index == i && out[i].score == 7.5f);
    }
}

/* ---- switching kernels while scans run -------------------------------- */

struct scanner {
    const struct score_scan *scan;
    const struct score_hit *want; /* N hits */
    atomic_int *done;             /* scanners finished */
    int bad;
};

enum { SWITCH_N = 50, SWITCH_SCANS = 200 };

static void *scan_repeatedly(void *arg)
{
    struct scanner *sc = arg;
    struct score_hit got[SWITCH_N];
    for (int i = 0; i < SWITCH_SCANS && !sc->bad; i++)
        sc->bad = score_topn(sc->scan, SWITCH_N, NULL, NULL, got) != SWITCH_N ||
                  memcmp(got, sc->want, sizeof(got)) != 0;
    atomic_fetch_add(sc->done, 1);
    return NULL;
}

/* score_select_kernel is safe while other threads scan, and every scan
 * returns the same rows whichever kernel it runs with. */
static void test_switch_while_scanning(void)
{
    enum { THREADS = 2 };
    const struct shape sh = {.rows = 3000, .dim = 40, .n = SWITCH_N};
    struct fixture fx;
    fixture_make(&fx, &sh, 7);
    const struct score_scan scan = {fx.query, fx.matrix, sh.rows, fx.stride, sh.dim, NULL, 0};
    struct score_hit want[SWITCH_N];
    CHECK_OK(score_select_kernel("portable", NULL));
    CHECK(score_topn(&scan, SWITCH_N, NULL, NULL, want) == SWITCH_N);

    atomic_int done = 0;
    struct scanner sc[THREADS];
    pthread_t tid[THREADS];
    for (int t = 0; t < THREADS; t++) {
        sc[t] = (struct scanner){&scan, want, &done, 0};
        pthread_create(&tid[t], NULL, scan_repeatedly, &sc[t]);
    }
    for (size_t i = 0; atomic_load(&done) < THREADS; i++)
        score_select_kernel(kernel_names[i % KERNELS], NULL);
    for (int t = 0; t < THREADS; t++)
        pthread_join(tid[t], NULL);
    fixture_free(&fx);
    for (int t = 0; t < THREADS; t++)
        CHECK(sc[t].bad == 0);
}

int main(int argc, char **argv)
{
    static const struct check_case cases[] = {
        CHECK_CASE(test_dot_matches_double),    CHECK_CASE(test_dot_exact_on_integers),
        CHECK_CASE(test_select_kernel),         CHECK_CASE(test_topn_matches_full_sort),
        CHECK_CASE(test_topn_random_shapes),    CHECK_CASE(test_topn_all_tied),
        CHECK_CASE(test_switch_while_scanning),
    };
    return check_main(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
