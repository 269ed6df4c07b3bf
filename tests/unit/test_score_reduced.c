/*
 * test_score_reduced: the scan of a reduced copy (score_topn_reduced)
 * against the exact f32 scan (score_topn), with every kernel this CPU runs:
 * the same rows in the same order with the same scores to the bit, on
 * random, clustered and skewed matrices of many shapes, with and without
 * filters, for copies made well (rounded here, independently of the
 * writer) and badly (noise added, bounds still honest); and how many rows
 * each scan scores exactly, so that a scan that reads the f32 matrix in
 * full fails. And the int8 kernels' reduced scores, which the contract
 * fixes to the bit, against each other.
 */
#include "engine/score.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "engine/score_kernel.h"
#include "engine/split.h"
#include "rng.h"

#include <pthread.h>

static const char *const kernel_names[] = {"portable", "avx2", "avx512"};
#define NKERNELS (sizeof(kernel_names) / sizeof(kernel_names[0]))

/* ---- a matrix and its copies, made here --------------------------------- */

/* The copies a scan may read: the int8 one also regrouped by block, which
 * the AVX512-VNNI kernel reads instead when given it. */
enum { COPY_BF16, COPY_INT8, COPY_INT8_BLOCKED, COPIES };
static const char *const copy_names[COPIES] = {"bf16", "int8", "int8 blocked"};

struct data {
    uint32_t rows, dim, stride;
    float *f32;       /* rows x stride, zero padded */
    uint16_t *bf16;   /* rows x stride */
    int8_t *i8;       /* rows x stride */
    float *scale;     /* rows */
    uint8_t *blocked; /* i8 regrouped (score_int8_block) */
    float *queries;   /* nq x stride */
    uint32_t nq;
    struct score_reduced copy[COPIES];
};

static uint16_t to_bf16(float f)
{
    uint32_t b;
    memcpy(&b, &f, sizeof(b));
    uint32_t lower = b & 0xffff, upper = b >> 16;
    return (uint16_t)(upper + (lower > 0x8000 || (lower == 0x8000 && (upper & 1))));
}

static double bf16_value(uint16_t v)
{
    uint32_t b = (uint32_t)v << 16;
    float f;
    memcpy(&f, &b, sizeof(f));
    return f;
}

/* How rows are drawn: @clusters centres plus @spread noise (clusters 0:
 * plain noise), queries likewise, so many scores crowd near the top; and
 * with @skewed, as implicit ALS leaves them: each row (and query) leans on
 * a shared popularity direction, and is scaled by a log-normal norm
 * (sigma 1), so a few rows are many times longer than most. */
struct shape {
    uint32_t clusters;
    float spread;
    int skewed;
};

static void data_shape(struct data *d, uint32_t rows, uint32_t dim, struct shape sh, uint32_t nq)
{
    uint32_t clusters = sh.clusters;
    float spread = sh.spread;
    *d = (struct data){.rows = rows, .dim = dim, .stride = (dim + 15) / 16 * 16, .nq = nq};
    size_t cells = (size_t)rows * d->stride;
    d->f32 = aligned_alloc(64, (cells * sizeof(float) + 63) / 64 * 64);
    d->bf16 = aligned_alloc(64, (cells * 2 + 63) / 64 * 64);
    d->i8 = aligned_alloc(64, (cells + 63) / 64 * 64);
    d->scale = malloc(rows * sizeof(float));
    d->queries = aligned_alloc(64, (size_t)nq * d->stride * sizeof(float) + 64);
    memset(d->f32, 0, cells * sizeof(float));
    memset(d->queries, 0, (size_t)nq * d->stride * sizeof(float));
    float *centre = calloc((size_t)(clusters + 1) * dim, sizeof(float));
    for (size_t k = 0; k < (size_t)clusters * dim; k++)
        centre[k] = rng_float();
    for (uint32_t i = 0; i < rows + nq; i++) {
        float *v =
            i < rows ? d->f32 + (size_t)i * d->stride : d->queries + (size_t)(i - rows) * d->stride;
        const float *c = clusters ? centre + (size_t)(rng_next() % clusters) * dim : NULL;
        for (uint32_t j = 0; j < dim; j++)
            v[j] = (c ? c[j] : 0) + spread * rng_float();
        if (!sh.skewed)
            continue;
        /* The popularity direction is the first axis; 2 to 4 times a
         * random entry, so it dominates the scores' spread. */
        float norm = rng_lognormal(), lean = 2 + 2 * (rng_float() + 1) / 2;
        v[0] = lean;
        for (uint32_t j = 0; j < dim; j++)
            v[j] *= norm;
    }
    free(centre);
}

static void data_make(struct data *d, uint32_t rows, uint32_t dim, uint32_t clusters, float spread,
                      uint32_t nq)
{
    data_shape(d, rows, dim, (struct shape){clusters, spread, 0}, nq);
}

/* The copies, rounded as FORMAT.md says, plus @noise (in units of the
 * int8 step / bf16 ulp) to make a poor copy; the bounds measured honestly. */
static void data_quantize(struct data *d, int noise)
{
    double nf = 0, nb = 0, eb = 0, ni = 0, ei = 0;
    for (uint32_t i = 0; i < d->rows; i++) {
        const float *v = d->f32 + (size_t)i * d->stride;
        float max = 0;
        for (uint32_t j = 0; j < d->dim; j++)
            max = fmaxf(max, fabsf(v[j]));
        d->scale[i] = max / 127;
        double sf = 0, sb = 0, se = 0, si = 0, sie = 0;
        for (uint32_t j = 0; j < d->stride; j++) {
            size_t k = (size_t)i * d->stride + j;
            int q = max > 0 ? (int)lrintf(v[j] / d->scale[i]) : 0;
            uint16_t b = to_bf16(v[j]);
            if (noise && j < d->dim) {
                q += (int)(rng_next() % (2 * noise + 1)) - noise;
                q = q > 127 ? 127 : q < -127 ? -127 : q;
                b = (uint16_t)(b + (int)(rng_next() % (2 * noise + 1)) - noise);
            }
            d->i8[k] = (int8_t)q;
            d->bf16[k] = b;
            double w = bf16_value(b), x = (double)d->scale[i] * q;
            sf += (double)v[j] * v[j];
            sb += w * w;
            se += (w - v[j]) * (w - v[j]);
            si += x * x;
            sie += (x - v[j]) * (x - v[j]);
        }
        nf = fmax(nf, sf), nb = fmax(nb, sb), eb = fmax(eb, se), ni = fmax(ni, si);
        ei = fmax(ei, sie);
    }
    d->copy[COPY_BF16] = (struct score_reduced){.elem = SCORE_ELEM_BF16,
                                                .matrix = d->bf16,
                                                .max_norm = sqrt(nb) * 1.000001,
                                                .max_error = sqrt(eb) * 1.000001,
                                                .exact_max_norm = sqrt(nf) * 1.000001};
    d->copy[COPY_INT8] = (struct score_reduced){.elem = SCORE_ELEM_INT8,
                                                .matrix = d->i8,
                                                .row_scale = d->scale,
                                                .max_norm = sqrt(ni) * 1.000001,
                                                .max_error = sqrt(ei) * 1.000001,
                                                .exact_max_norm = sqrt(nf) * 1.000001};
    size_t bytes = score_int8_blocked_bytes(d->rows, d->stride);
    d->blocked = aligned_alloc(64, (bytes + 63) / 64 * 64);
    score_int8_block(d->i8, d->rows, d->stride, d->blocked);
    d->copy[COPY_INT8_BLOCKED] = d->copy[COPY_INT8];
    d->copy[COPY_INT8_BLOCKED].blocked = d->blocked;
}

static void data_free(struct data *d)
{
    free(d->f32);
    free(d->bf16);
    free(d->i8);
    free(d->scale);
    free(d->blocked);
    free(d->queries);
}

/* Rows whose index has bit pattern 3 in bits 2-3 are refused. */
static int some_keep(const void *ctx, uint32_t index)
{
    return ((index >> 2) & 3) != 3;
}

/* ---- reduced == exact ----------------------------------------------------- */

struct outcome {
    unsigned queries;
    uint64_t rescored;     /* rows scored exactly, over all queries */
    uint32_t max_rescored; /* by one query */
};

/* Every query of @d, each n, each copy, with and without the filter: the
 * reduced scan returns exactly what the f32 scan does. */
static int same_as_exact(const struct data *d, const uint32_t *ns, size_t nn, struct outcome *o)
{
    for (uint32_t qi = 0; qi < d->nq; qi++)
        for (size_t t = 0; t < nn; t++)
            for (int copy = 0; copy < COPIES; copy++)
                for (int filtered = 0; filtered < 2; filtered++) {
                    uint32_t n = ns[t];
                    struct score_scan s = {.query = d->queries + (size_t)qi * d->stride,
                                           .matrix = d->f32,
                                           .rows = d->rows,
                                           .stride = d->stride,
                                           .dim = d->dim};
                    struct score_hit *want = malloc(n * sizeof(*want));
                    struct score_hit *got = malloc(n * sizeof(*got));
                    struct score_hit *scratch = malloc(n * sizeof(*scratch));
                    score_filter_fn keep = filtered ? some_keep : NULL;
                    uint32_t rescored = UINT32_MAX;
                    uint32_t cw = score_topn(&s, n, keep, NULL, want);
                    uint32_t cg = score_topn_reduced(&s, &d->copy[copy], n, keep, NULL, 1, scratch,
                                                     got, &rescored);
                    int ok = cw == cg && rescored <= d->rows && rescored >= cw;
                    for (uint32_t i = 0; ok && i < cw; i++)
                        ok = want[i].index == got[i].index &&
                             memcmp(&want[i].score, &got[i].score, sizeof(float)) == 0;
                    free(want), free(got), free(scratch);
                    if (!ok) {
                        fprintf(stderr,
                                "rows %u dim %u n %u %s filter %d query %u: counts %u/%u differ, "
                                "rows differ or %u rows rescored\n",
                                d->rows, d->dim, n, copy_names[copy], filtered, qi, cw, cg,
                                rescored);
                        return 0;
                    }
                    o->queries++;
                    o->rescored += rescored;
                    o->max_rescored = rescored > o->max_rescored ? rescored : o->max_rescored;
                }
    return 1;
}

static void test_exact_on_many_shapes(void)
{
    static const uint32_t shapes[][2] = {{1, 1},   {3, 7},      {40, 16},    {100, 33}, {257, 64},
                                         {999, 5}, {1000, 100}, {2050, 128}, {600, 48}, {300, 257}};
    static const uint32_t ns[] = {1, 10, 100, 1000};
    for (size_t k = 0; k < NKERNELS; k++) {
        if (score_select_kernel(kernel_names[k], NULL) != 0)
            continue;
        for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
            struct data d;
            struct outcome o = {0};
            rng_state = 1000 + i;
            data_make(&d, shapes[i][0], shapes[i][1], 0, 1.0f, 3);
            data_quantize(&d, 0);
            int ok = same_as_exact(&d, ns, 4, &o);
            data_free(&d);
            if (!ok)
                fprintf(stderr, "kernel %s\n", kernel_names[k]);
            CHECK(ok);
        }
    }
    CHECK_OK(score_select_kernel("auto", NULL));
}

/* Every kernel on one data set of @sh (@noise: see data_quantize): the
 * reduced scans are exact, and none scored more than @max_share of the
 * rows exactly. */
static int exact_with_every_kernel(uint64_t seed, uint32_t rows, uint32_t dim, struct shape sh,
                                   int noise, double max_share)
{
    static const uint32_t ns[] = {1, 10, 100};
    int ok = 1;
    for (size_t k = 0; k < NKERNELS && ok; k++) {
        if (score_select_kernel(kernel_names[k], NULL) != 0)
            continue;
        struct data d;
        struct outcome o = {0};
        rng_state = seed;
        data_shape(&d, rows, dim, sh, 4);
        data_quantize(&d, noise);
        ok = same_as_exact(&d, ns, 3, &o);
        fprintf(stderr, "%s %u x %u: rows scored exactly per scan: mean %.1f, most %u\n",
                kernel_names[k], rows, dim, (double)o.rescored / o.queries, o.max_rescored);
        ok = ok && o.max_rescored <= max_share * rows;
        data_free(&d);
    }
    score_select_kernel("auto", NULL);
    return ok;
}

/* Clustered rows crowd the top with near ties: more rows fall within the
 * bound of the n-th score, the answer must not change, and no scan may
 * come near reading every f32 row (which the candidate proof did: it
 * failed, and the f32 matrix was scanned in full). */
static void test_exact_on_clustered_data(void)
{
    CHECK(exact_with_every_kernel(77, 5000, 64, (struct shape){20, 0.05f, 0}, 0, 0.25));
    CHECK(exact_with_every_kernel(78, 20000, 32, (struct shape){40, 0.02f, 0}, 0, 0.25));
}

/* Skewed norms: the longest rows set the bounds of the whole copy. With
 * clusters too, on a small catalog: each of the 20 holds 250 rows, of
 * which n = 100 come from one or two, so a good share of those are within
 * the bound of the 100th score (measured: at most 1,724 rows of 5,000). */
static void test_exact_on_skewed_data(void)
{
    CHECK(exact_with_every_kernel(79, 20000, 64, (struct shape){0, 1.0f, 1}, 0, 0.25));
    CHECK(exact_with_every_kernel(80, 5000, 48, (struct shape){20, 0.1f, 1}, 0, 0.5));
}

/* On plain random data a good copy scores exactly little more than the
 * rows that enter the top n while the scan runs (about n ln(rows / n)). */
static void test_rescoring_is_rare(void)
{
    static const uint32_t ns[] = {10, 100};
    struct data d;
    struct outcome o = {0};
    rng_state = 5;
    data_make(&d, 20000, 64, 0, 1.0f, 10);
    data_quantize(&d, 0);
    int ok = same_as_exact(&d, ns, 2, &o);
    data_free(&d);
    CHECK(ok);
    fprintf(stderr, "random 20000 x 64: rows scored exactly per scan: mean %.1f, most %u\n",
            (double)o.rescored / o.queries, o.max_rescored);
    CHECK(o.queries == 120 && o.max_rescored <= 2000);
}

/* A copy far from the f32 rows, with honest bounds: exact answers, found
 * by scoring many rows exactly. */
static void test_poor_copy_still_exact(void)
{
    CHECK(exact_with_every_kernel(9, 3000, 32, (struct shape){0, 1.0f, 0}, 60, 1.0));
}

/* ---- split scans ------------------------------------------------------------ */

/* A split scan returns what the unsplit one does, f32 and reduced, for
 * any number of parts, including more parts than rows. */
static int split_same(const struct data *d, uint32_t n)
{
    for (uint32_t qi = 0; qi < d->nq; qi++)
        for (int filtered = 0; filtered < 2; filtered++) {
            struct score_scan s = {.query = d->queries + (size_t)qi * d->stride,
                                   .matrix = d->f32,
                                   .rows = d->rows,
                                   .stride = d->stride,
                                   .dim = d->dim};
            score_filter_fn keep = filtered ? some_keep : NULL;
            struct score_hit want[100], got[100];
            struct score_hit scratch[4 * 100];
            uint32_t cw = score_topn(&s, n, keep, NULL, want);
            int ok = 1;
            for (unsigned parts = 1; parts <= 4 && ok; parts++) {
                uint32_t cg = score_topn_split(&s, n, keep, NULL, parts, scratch, got);
                ok = cg == cw && memcmp(got, want, cw * sizeof(*got)) == 0;
                for (int copy = 0; copy < COPIES && ok; copy++) {
                    cg = score_topn_reduced(&s, &d->copy[copy], n, keep, NULL, parts, scratch, got,
                                            NULL);
                    ok = cg == cw && memcmp(got, want, cw * sizeof(*got)) == 0;
                }
            }
            if (!ok)
                return 0;
        }
    return 1;
}

static void test_split_matches_unsplit(void)
{
    CHECK_OK(split_start(3, NULL));
    CHECK(split_parts() == 4);
    /* Random, clustered and skewed rows; part boundaries fall inside
     * clusters and among the longest rows alike. */
    static const struct {
        uint32_t rows, dim;
        struct shape shape;
    } shapes[] = {{3, 16, {0, 1.0f, 0}},
                  {1000, 33, {0, 1.0f, 0}},
                  {5000, 64, {0, 1.0f, 0}},
                  {4000, 32, {20, 0.05f, 0}},
                  {4000, 48, {0, 1.0f, 1}}};
    int ok = 1;
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]) && ok; i++) {
        struct data d;
        rng_state = 50 + i;
        data_shape(&d, shapes[i].rows, shapes[i].dim, shapes[i].shape, 3);
        data_quantize(&d, 0);
        ok = split_same(&d, 10) && split_same(&d, 100);
        data_free(&d);
    }
    split_stop();
    CHECK(ok);
}

/* Several callers share the pool at once (a worker per call in the
 * daemon); each still gets its own answer. */
struct caller {
    const struct data *d;
    int ok;
};

static void *call_repeatedly(void *arg)
{
    struct caller *c = arg;
    c->ok = 1;
    for (int i = 0; i < 20 && c->ok; i++)
        c->ok = split_same(c->d, 10);
    return NULL;
}

static void test_split_concurrent_callers(void)
{
    CHECK_OK(split_start(2, NULL));
    struct data d;
    rng_state = 61;
    data_make(&d, 3000, 40, 0, 1.0f, 2);
    data_quantize(&d, 0);
    struct caller c[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        c[i].d = &d;
        pthread_create(&t[i], NULL, call_repeatedly, &c[i]);
    }
    int ok = 1;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        ok &= c[i].ok;
    }
    data_free(&d);
    split_stop();
    CHECK(ok);
}

/* ---- the int8 kernels agree to the bit ------------------------------------- */

/* Every row's reduced score from @scan, by row. */
static void all_scores(score_qscan_fn scan, const struct score_qscan *q, float *out)
{
    struct score_hit *heap = malloc(q->rows * sizeof(*heap));
    struct score_best b = {.heap = heap, .n = q->rows, .threshold = -INFINITY};
    scan(q, &b);
    for (uint32_t i = 0; i < b.count; i++)
        out[heap[i].index] = heap[i].score;
    free(heap);
}

/* Every int8 kernel's reduced scores on @rows x @dim, against the
 * contract's formula computed here. */
static int int8_kernels_agree(uint32_t rows, uint32_t dim)
{
    struct data d;
    data_make(&d, rows, dim, 0, 1.0f, 1);
    data_quantize(&d, 0);
    _Alignas(64) int8_t q8[SCORE_STRIDE_MAX] = {0};
    _Alignas(64) int16_t q16[SCORE_STRIDE_MAX] = {0};
    int32_t sum = 0;
    for (uint32_t j = 0; j < dim; j++) {
        q8[j] = (int8_t)((int)(rng_next() % 255) - 127);
        q16[j] = q8[j];
        sum += q8[j];
    }
    struct score_qscan q = {.query_i8 = q8,
                            .query_i16 = q16,
                            .query_sum = sum,
                            .query_scale = 0.0123f,
                            .matrix = d.i8,
                            .row_scale = d.scale,
                            .rows = d.rows,
                            .stride = d.stride};
    float *want = malloc(d.rows * sizeof(float)), *got = malloc(d.rows * sizeof(float));
    int ok = 1;
    for (uint32_t i = 0; i < d.rows; i++) {
        int32_t dot = 0;
        for (uint32_t j = 0; j < d.stride; j++)
            dot += d.i8[(size_t)i * d.stride + j] * q8[j];
        want[i] = (float)dot * (q.query_scale * d.scale[i]);
    }
    for (size_t k = 0; k < 2 * NKERNELS && ok; k++) {
        if (score_select_kernel(kernel_names[k / 2], NULL) != 0)
            continue;
        q.blocked = k % 2 ? d.blocked : NULL;
        all_scores(score_qscan_kernel(SCORE_ELEM_INT8), &q, got);
        ok = memcmp(want, got, d.rows * sizeof(float)) == 0;
        if (!ok)
            fprintf(stderr, "int8 kernel %s differs at %u x %u%s\n",
                    score_reduced_kernel_name(SCORE_ELEM_INT8), rows, dim,
                    q.blocked ? ", regrouped" : "");
    }
    free(want), free(got);
    data_free(&d);
    return ok;
}

/* The strides the AVX-512 kernel packs 4, 2 or 1 rows to a vector for
 * (16, 32, 64), one it scans in two vectors (128), and others; row counts
 * that end in a short block. */
static void test_int8_kernels_agree(void)
{
    static const uint32_t shapes[][2] = {{333, 100}, {333, 16}, {1000, 32}, {999, 64},
                                         {77, 128},  {50, 48},  {5, 64},    {16, 32}};
    rng_state = 3;
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
        CHECK(int8_kernels_agree(shapes[i][0], shapes[i][1]));
    CHECK_OK(score_select_kernel("auto", NULL));
}

/* Within the kernel bound of the contract: the bf16 kernels sum in their
 * own orders, each within (stride + 8) 2^-23 of sum |products|. */
static void test_bf16_kernels_close(void)
{
    struct data d;
    rng_state = 4;
    data_make(&d, 200, 70, 0, 1.0f, 1);
    data_quantize(&d, 0);
    _Alignas(64) uint16_t qb[80] = {0};
    _Alignas(64) float qf[80] = {0};
    for (uint32_t j = 0; j < 70; j++) {
        qb[j] = to_bf16(rng_float());
        qf[j] = (float)bf16_value(qb[j]);
    }
    struct score_qscan q = {
        .query_bf16 = qb, .query_f32 = qf, .matrix = d.bf16, .rows = d.rows, .stride = d.stride};
    float *got = malloc(d.rows * sizeof(float));
    int ok = 1;
    for (size_t k = 0; k < NKERNELS && ok; k++) {
        if (score_select_kernel(kernel_names[k], NULL) != 0)
            continue;
        all_scores(score_qscan_kernel(SCORE_ELEM_BF16), &q, got);
        for (uint32_t i = 0; i < d.rows && ok; i++) {
            double exact = 0, mag = 0;
            for (uint32_t j = 0; j < d.stride; j++) {
                double p = bf16_value(d.bf16[(size_t)i * d.stride + j]) * qf[j];
                exact += p;
                mag += fabs(p);
            }
            ok = fabs(got[i] - exact) <= (d.stride + 8) * 0x1p-23 * mag;
            if (!ok)
                fprintf(stderr, "bf16 kernel %s row %u: %.9g vs %.9g\n",
                        score_reduced_kernel_name(SCORE_ELEM_BF16), i, got[i], exact);
        }
    }
    free(got);
    data_free(&d);
    CHECK(ok);
    CHECK_OK(score_select_kernel("auto", NULL));
}

/* Each kernel scans reduced copies with its own code or the next one's. */
static void test_reduced_kernel_names(void)
{
    CHECK_OK(score_select_kernel("portable", NULL));
    CHECK(strcmp(score_reduced_kernel_name(SCORE_ELEM_INT8), "portable") == 0);
    CHECK(strcmp(score_reduced_kernel_name(SCORE_ELEM_BF16), "portable") == 0);
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2")) {
        CHECK_OK(score_select_kernel("avx2", NULL));
        CHECK(strcmp(score_reduced_kernel_name(SCORE_ELEM_INT8), "avx2") == 0);
    }
    if (__builtin_cpu_supports("avx512f")) {
        CHECK_OK(score_select_kernel("avx512", NULL));
        int vnni = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw");
        int bf16 = __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw");
        CHECK(strcmp(score_reduced_kernel_name(SCORE_ELEM_INT8), vnni ? "avx512-vnni" : "avx2") ==
              0);
        CHECK(strcmp(score_reduced_kernel_name(SCORE_ELEM_BF16), bf16 ? "avx512-bf16" : "avx2") ==
              0);
    }
#endif
    CHECK_OK(score_select_kernel("auto", NULL));
}

int main(int argc, char **argv)
{
    static const struct check_case cases[] = {
        CHECK_CASE(test_exact_on_many_shapes),  CHECK_CASE(test_exact_on_clustered_data),
        CHECK_CASE(test_exact_on_skewed_data),  CHECK_CASE(test_rescoring_is_rare),
        CHECK_CASE(test_poor_copy_still_exact), CHECK_CASE(test_int8_kernels_agree),
        CHECK_CASE(test_bf16_kernels_close),    CHECK_CASE(test_reduced_kernel_names),
        CHECK_CASE(test_split_matches_unsplit), CHECK_CASE(test_split_concurrent_callers),
    };
    return check_main(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
