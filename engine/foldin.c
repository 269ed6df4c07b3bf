/*
 * foldin: the implicit-ALS fold-in (foldin.h).
 *
 * At load, the Gram matrix of the item factors, in double: the f32 rows are
 * converted a block at a time and multiplied by OpenBLAS's dsyrk into a
 * double accumulator, so every product is exact and every sum double. The
 * bias column, when there is one, rides along as column f: the
 * (f + 1) x (f + 1) product's last column is g = sum_i beta_i y'_i, so one
 * pass gives both.
 *
 * Per request, in the call's arena: A = Gram + lambda I plus one rank-1
 * term per interaction, b, then A's Cholesky factor and two triangular
 * solves. A is factored as A = U^T U in its upper triangle, row-major, and
 * every loop that costs f^2 or more runs along a row with scalar factors
 * (axpys), which the compiler vectorizes without reordering a sum.
 *
 * Those rows are short (20 elements on average at f = 64), so each starts
 * at the multiple of 4 at or below the diagonal and rows are padded with
 * zeros to a multiple of 4 (ld): every loop is whole vectors of 4 doubles,
 * with no scalar tail, at the price of up to 3 entries below the diagonal
 * per row. Those entries are computed but never read into the upper
 * triangle: every update writes column k of one row from column k of
 * another, scaled by an entry of the upper triangle.
 */
#include "engine/foldin.h"

#include <assert.h>
#include <cblas.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* What foldin_prepare gives the model: one malloc block, so model_close's
 * free() frees all of it. */
struct gram {
    uint32_t f;  /* factor columns */
    uint32_t ld; /* doubles per row of a: f rounded up to a multiple of 4 */
    /* f rows of ld: the full symmetric Y'^T Y, zeros in the padding; then
     * ld more: g = sum_i beta_i y'_i with a bias column, else zeros. */
    double a[];
};

/* Rows converted to double per dsyrk: 1024 x 65 doubles is 520 KiB, which
 * stays in a core's L2 between the conversion writing it and dsyrk reading
 * it. 10^6 x 64, one thread, medians of 5 runs on a busy 2-core EPYC
 * (bench/foldin): 256 rows 0.23 s, 1024 rows 0.21 s, 4096 rows 0.23 s. */
#define BLOCK_ROWS 1024

/* A pivot of the Cholesky factorization at or below PIVOT_EPS f times its
 * diagonal entry (before factoring) counts as zero: A is then singular to
 * working precision. Pivot j of an exactly singular matrix comes out of
 * rounding not as 0 but within about j DBL_EPSILON of that entry (the
 * classic bound: the column of U above it has that entry as its squared
 * norm), and a solve through it would return noise of any size. A
 * regularized system stays far above: its pivots are at least lambda, and
 * lambda = 0.05 against a diagonal entry of 10^6 (a million unit-sized
 * items) is 5e-8 of it, where the bound at f = 512 is 5e-13. */
#define PIVOT_EPS (4 * DBL_EPSILON)

static uint32_t factor_columns(const struct model *m)
{
    return model_dim(m) - (model_info(m)->has_bias ? 1u : 0u);
}

int foldin_prepare(struct model *m, struct err *e)
{
    uint32_t f = factor_columns(m), cols = model_dim(m), stride = model_stride(m),
             items = model_item_count(m), ld = (f + 3) & ~3u;
    if (f == 0 || f > FOLDIN_FACTORS_MAX)
        return 0;
    struct gram *gr = calloc(1, sizeof(struct gram) + ((size_t)f + 1) * ld * sizeof(double));
    double *acc = calloc((size_t)cols * cols, sizeof(double));
    double *block = malloc((size_t)BLOCK_ROWS * cols * sizeof(double));
    int rc = 0;
    if (gr == NULL || acc == NULL || block == NULL) {
        rc = err_set(e, -ENOMEM, "out of memory for the %u x %u Gram matrix", f, f);
        free(gr);
        goto out;
    }
    const float *matrix = model_item_matrix(m);
    for (uint32_t first = 0; first < items; first += BLOCK_ROWS) {
        uint32_t rows = items - first < BLOCK_ROWS ? items - first : BLOCK_ROWS;
        for (uint32_t r = 0; r < rows; r++) {
            const float *row = matrix + (size_t)(first + r) * stride;
            double *to = block + (size_t)r * cols;
            for (uint32_t j = 0; j < cols; j++)
                to[j] = row[j];
        }
        /* acc += block^T block, upper triangle. */
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)cols, (int)rows, 1.0, block,
                    (int)cols, 1.0, acc, (int)cols);
    }
    gr->f = f;
    gr->ld = ld;
    for (uint32_t j = 0; j < f; j++)
        for (uint32_t k = j; k < f; k++)
            gr->a[(size_t)j * ld + k] = gr->a[(size_t)k * ld + j] = acc[(size_t)j * cols + k];
    for (uint32_t j = 0; j < f && cols > f; j++)
        gr->a[(size_t)f * ld + j] = acc[(size_t)j * cols + f];
    model_set_gram(m, gr);
out:
    free(block);
    free(acc);
    return rc;
}

bool foldin_ready(const struct model *m)
{
    return model_gram(m) != NULL;
}

/* The request's kernels are compiled twice, for FMA (with AVX) and for
 * the baseline, and kernels() picks one for the CPU: the baseline's two
 * doubles per instruction, without FMA, took 1.5 times as long at f = 64
 * (17.2 us against 11.2 for 20 interactions, 50 against 32 for 100;
 * bench/foldin). FMA rounds a product and a sum once, so the result may
 * differ in its last bits between the two, far below the float it is
 * rounded to. The FMA copy uses 256-bit vectors, which the loops' short
 * rows fill better than AVX-512's. Each kernel is written once, always
 * inlined into its two copies; the choice is a plain test, not an ifunc
 * (target_clones), whose resolver runs before ThreadSanitizer's runtime is
 * up and faults there. */
#define KERNEL static inline __attribute__((always_inline))
#if defined(__x86_64__)
#define FMA_COPY __attribute__((target("fma")))
#else
#define FMA_COPY
#endif

/* Pivot rows eliminated together: each pass over the trailing matrix
 * subtracts this many rows' outer products, so the matrix is read and
 * written a quarter as often as one row at a time. Interactions are added
 * to A in groups of the same size, for the same reason. */
#define PANEL 4

/* sub4 - r[k] -= t0 a0[k] + t1 a1[k] + t2 a2[k] + t3 a3[k] for k < @len,
 * a multiple of 4: the update the kernels below are made of, written on
 * its own so that its loop starts at 0 and the compiler vectorizes it (a
 * loop from the diagonal, inside the triangle's loop, it did not). The
 * products are summed in pairs, two FMA chains instead of one of four. */
static inline void sub4(double *restrict r, const double *restrict a0, const double *restrict a1,
                        const double *restrict a2, const double *restrict a3, double t0, double t1,
                        double t2, double t3, uint32_t len)
{
    for (uint32_t k = 0; k < len; k++)
        r[k] -= (t0 * a0[k] + t1 * a1[k]) + (t2 * a2[k] + t3 * a3[k]);
}

static inline void sub1(double *restrict r, const double *restrict a0, double t0, uint32_t len)
{
    for (uint32_t k = 0; k < len; k++)
        r[k] -= t0 * a0[k];
}

/* The first column of row @j's loops: the multiple of 4 at or below it. */
static inline uint32_t from(uint32_t j)
{
    return j & ~3u;
}

/* add_outers - A += sum_i s[i] z_i z_i^T on the upper triangle of @A (f
 * rows of @ld), z_i being row i of @Z (n rows of ld, zero padded). */
KERNEL void add_outers(double *restrict A, const double *restrict Z, const double *restrict s,
                       uint32_t n, uint32_t f, uint32_t ld)
{
    uint32_t i = 0;
    for (; i + PANEL <= n; i += PANEL) {
        const double *z0 = Z + (size_t)i * ld, *z1 = z0 + ld, *z2 = z1 + ld, *z3 = z2 + ld;
        for (uint32_t j = 0; j < f; j++) {
            uint32_t k = from(j);
            sub4(A + (size_t)j * ld + k, z0 + k, z1 + k, z2 + k, z3 + k, -s[i] * z0[j],
                 -s[i + 1] * z1[j], -s[i + 2] * z2[j], -s[i + 3] * z3[j], ld - k);
        }
    }
    for (; i < n; i++) {
        const double *z = Z + (size_t)i * ld;
        for (uint32_t j = 0; j < f; j++)
            sub1(A + (size_t)j * ld + from(j), z + from(j), -s[i] * z[j], ld - from(j));
    }
}

/* cholesky - factor the upper triangle of @A (f rows of @ld) in place into
 * U, A = U^T U, PANEL rows at a time (right-looking: each panel's rows are
 * factored, then their outer products taken from the rows below it).
 * @inv: f doubles; receives the inverses of U's diagonal. Returns the
 * column whose pivot is not positive to working precision (PIVOT_EPS), or
 * f when A is positive definite. */
KERNEL uint32_t cholesky(double *restrict A, double *restrict inv, uint32_t f, uint32_t ld)
{
    double eps = PIVOT_EPS * f;
    for (uint32_t j = 0; j < f; j++)
        inv[j] = A[(size_t)j * ld + j]; /* the diagonal before factoring */
    for (uint32_t j0 = 0; j0 < f; j0 += PANEL) {
        uint32_t end = f - j0 < PANEL ? f : j0 + PANEL;
        for (uint32_t j = j0; j < end; j++) {
            double *restrict uj = A + (size_t)j * ld;
            double d = uj[j];
            /* Also refuses NaN. */
            if (!(d > eps * inv[j]))
                return j;
            d = sqrt(d);
            uj[j] = d;
            inv[j] = 1.0 / d;
            for (uint32_t k = j + 1; k < f; k++)
                uj[k] *= inv[j];
            for (uint32_t i = j + 1; i < end; i++)
                sub1(A + (size_t)i * ld + j0, uj + j0, uj[i], ld - j0);
        }
        const double *u0 = A + (size_t)j0 * ld, *u1 = u0 + ld, *u2 = u1 + ld, *u3 = u2 + ld;
        for (uint32_t i = end; i < f && end - j0 == PANEL; i++) {
            uint32_t k = from(i);
            sub4(A + (size_t)i * ld + k, u0 + k, u1 + k, u2 + k, u3 + k, u0[i], u1[i], u2[i], u3[i],
                 ld - k);
        }
    }
    return f;
}

/* solve - overwrite @b with the solution of U^T U x = b, U from cholesky
 * (f rows of @ld), @inv its diagonal's inverses. */
KERNEL void solve(const double *restrict U, const double *restrict inv, double *restrict b,
                  uint32_t f, uint32_t ld)
{
    /* U^T z = b, by columns of U^T (rows of U): axpys. */
    for (uint32_t j = 0; j < f; j++) {
        b[j] *= inv[j];
        for (uint32_t k = j + 1; k < f; k++)
            b[k] -= b[j] * U[(size_t)j * ld + k];
    }
    /* U x = z, by rows of U: dot products, each summed in four
     * independent sums, which the compiler keeps in one vector, rather
     * than one chain of dependent additions. */
    for (uint32_t j = f; j-- > 0;) {
        const double *uj = U + (size_t)j * ld;
        double s[4] = {0, 0, 0, 0};
        uint32_t k = j + 1;
        for (; k + 4 <= f; k += 4)
            for (uint32_t l = 0; l < 4; l++)
                s[l] += uj[k + l] * b[k + l];
        for (; k < f; k++)
            s[0] += uj[k] * b[k];
        b[j] = (b[j] - ((s[0] + s[1]) + (s[2] + s[3]))) * inv[j];
    }
}

/* The kernels' two copies, as a table. */
struct kernels {
    void (*add_outers)(double *restrict A, const double *restrict Z, const double *restrict s,
                       uint32_t n, uint32_t f, uint32_t ld);
    uint32_t (*cholesky)(double *restrict A, double *restrict inv, uint32_t f, uint32_t ld);
    void (*solve)(const double *restrict U, const double *restrict inv, double *restrict b,
                  uint32_t f, uint32_t ld);
};

#define COPIES(name, attr)                                                                         \
    attr static void add_outers_##name(double *restrict A, const double *restrict Z,               \
                                       const double *restrict s, uint32_t n, uint32_t f,           \
                                       uint32_t ld)                                                \
    {                                                                                              \
        add_outers(A, Z, s, n, f, ld);                                                             \
    }                                                                                              \
    attr static uint32_t cholesky_##name(double *restrict A, double *restrict inv, uint32_t f,     \
                                         uint32_t ld)                                              \
    {                                                                                              \
        return cholesky(A, inv, f, ld);                                                            \
    }                                                                                              \
    attr static void solve_##name(const double *restrict U, const double *restrict inv,            \
                                  double *restrict b, uint32_t f, uint32_t ld)                     \
    {                                                                                              \
        solve(U, inv, b, f, ld);                                                                   \
    }                                                                                              \
    static const struct kernels name##_kernels = {add_outers_##name, cholesky_##name, solve_##name};

COPIES(fma, FMA_COPY)
COPIES(base, )

static const struct kernels *kernels(void)
{
#if defined(__x86_64__)
    if (__builtin_cpu_supports("fma"))
        return &fma_kernels;
#endif
    return &base_kernels;
}

int foldin_user(const struct model *m, const struct foldin_item *items, uint32_t n, struct arena *a,
                float *x, struct err *e)
{
    const struct kernels *kern = kernels();
    const struct gram *gr = model_gram(m);
    assert(gr != NULL);
    uint32_t f = gr->f, ld = gr->ld, stride = model_stride(m);
    int has_bias = model_info(m)->has_bias != 0;
    const struct model_training *t = model_training(m);
    double alpha = t->alpha, lambda = t->regularization;
    /* Spark's rule (FORMAT.md): lambda grows with the user's items, which
     * are distinct here. With none it is 0; without a bias the right-hand
     * side is then 0 too and x = 0, given directly because Y^T Y alone may
     * be singular. */
    if (t->regularization_scaling == MODEL_SCALING_PER_INTERACTION) {
        lambda *= n;
        if (n == 0 && !has_bias) {
            memset(x, 0, stride * sizeof(*x));
            return 0;
        }
    }
    /* A (f x ld), b (ld), inv (ld), Z (n x ld: the items' factors, zero
     * padded) and s (n: alpha w_i), A on a 32-byte boundary for the
     * vector loads (the arena gives 16). */
    size_t count = ((size_t)f + 2 + n) * ld + n;
    char *mem = arena_alloc(a, count * sizeof(double) + 16);
    if (mem == NULL)
        return err_set(e, -ENOMEM, "out of memory for the fold-in of %u items at %u factors", n, f);
    double *A = (double *)(mem + ((uintptr_t)mem & 16)), *b = A + (size_t)f * ld, *inv = b + ld,
           *Z = inv + ld, *s = Z + (size_t)n * ld;

    memcpy(A, gr->a, (size_t)f * ld * sizeof(double));
    for (uint32_t j = 0; j < f; j++) {
        A[(size_t)j * ld + j] += lambda;
        b[j] = -gr->a[(size_t)f * ld + j]; /* -g, zeros without a bias */
    }
    const float *matrix = model_item_matrix(m);
    /* The user's rows are far apart in a large catalog, each a cache miss:
     * asked for all at once, the misses overlap. 10^6 x 64, 20
     * interactions: 15-18 us without, 11.6 with (bench/foldin). */
    for (uint32_t k = 0; k < n; k++)
        for (uint32_t j = 0; j < f; j += 16)
            __builtin_prefetch(matrix + (size_t)items[k].item * stride + j);
    for (uint32_t k = 0; k < n; k++) {
        assert(items[k].item < model_item_count(m) && items[k].weight > 0);
        const float *row = matrix + (size_t)items[k].item * stride;
        double *z = Z + (size_t)k * ld;
        s[k] = alpha * items[k].weight;
        double c = 1.0 + s[k];
        /* The item's coefficient in b: c (p - beta) for its own term,
         * plus beta to undo its share of -g, which counted it with c = 1. */
        double coef = has_bias ? c * (1.0 - row[f]) + row[f] : c;
        for (uint32_t j = 0; j < f; j++) {
            z[j] = row[j];
            b[j] += coef * z[j];
        }
        for (uint32_t j = f; j < ld; j++)
            z[j] = 0.0;
    }
    kern->add_outers(A, Z, s, n, f, ld);
    uint32_t bad = kern->cholesky(A, inv, f, ld);
    if (bad < f)
        return err_set(e, ERR_INVALID,
                       "fold-in of %u items: the system is singular at factor %u "
                       "(regularization %g)",
                       n, bad, lambda);
    kern->solve(A, inv, b, f, ld);
    for (uint32_t j = 0; j < f; j++) {
        x[j] = (float)b[j];
        if (!isfinite(x[j]))
            return err_set(e, ERR_INVALID, "fold-in of %u items: factor %u is %g", n, j, b[j]);
    }
    for (uint32_t j = f; j < stride; j++)
        x[j] = 0.0f;
    if (has_bias)
        x[f] = 1.0f;
    return 0;
}
