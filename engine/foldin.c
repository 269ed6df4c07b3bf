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
 * solves. The loops are written so that their inner loop runs along a row
 * with a scalar factor (an axpy), which the compiler vectorizes without
 * reordering a sum: A is kept as its upper triangle, row-major, and
 * factored as A = U^T U.
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
    uint32_t f; /* factor columns */
    /* f x f, row-major, the full symmetric Y'^T Y (foldin_user reads the
     * upper triangle); then f more: g = sum_i beta_i y'_i with a bias
     * column, else zeros. */
    double a[];
};

/* Rows converted to double per dsyrk: 1024 x 65 doubles is 520 KiB, which
 * stays in a core's L2 between the conversion writing it and dsyrk reading
 * it. 10^6 x 64, one thread, medians of 5 runs on a busy 2-core EPYC
 * (bench/foldin): 256 rows 0.23 s, 1024 rows 0.21 s, 4096 rows 0.23 s. */
#define BLOCK_ROWS 1024

/* A pivot of the Cholesky factorization at or below this fraction of its
 * diagonal entry (before factoring) counts as zero: A is then singular to
 * working precision. Rounding leaves the pivot of an exactly singular
 * matrix at a few f * DBL_EPSILON of it rather than at 0, and a solve
 * through such a pivot would return noise of any size. A regularized
 * system stays far above it: its pivots are at least lambda, and lambda =
 * 0.05 against a diagonal entry of 10^6 (a million unit-sized items) is
 * 5e-8 of it. */
#define PIVOT_EPS (64 * DBL_EPSILON)

static uint32_t factor_columns(const struct model *m)
{
    return model_dim(m) - (model_info(m)->has_bias ? 1u : 0u);
}

int foldin_prepare(struct model *m, struct err *e)
{
    uint32_t f = factor_columns(m), cols = model_dim(m), stride = model_stride(m),
             items = model_item_count(m);
    if (f == 0 || f > FOLDIN_FACTORS_MAX)
        return 0;
    size_t gram_bytes = sizeof(struct gram) + ((size_t)f * f + f) * sizeof(double);
    struct gram *gr = malloc(gram_bytes);
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
    for (uint32_t j = 0; j < f; j++)
        for (uint32_t k = j; k < f; k++)
            gr->a[(size_t)j * f + k] = gr->a[(size_t)k * f + j] = acc[(size_t)j * cols + k];
    for (uint32_t j = 0; j < f; j++)
        gr->a[(size_t)f * f + j] = cols > f ? acc[(size_t)j * cols + f] : 0.0;
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
 * the baseline, and the loader picks one for the CPU: the baseline's two
 * doubles per instruction, without FMA, took 1.4 times as long at f = 64
 * and 20 interactions, 1.7 times at 100 (bench/foldin). FMA rounds a
 * product and a sum once, so the result may differ in its last bits
 * between the two, far below the float it is rounded to. The FMA clone
 * uses 256-bit vectors: the triangular loops are short, 20 elements on
 * average at f = 64, and a wider vector leaves more of each to its scalar
 * tail. */
#if defined(__x86_64__)
#define KERNEL __attribute__((target_clones("fma", "default")))
#else
#define KERNEL
#endif

/* Pivot rows eliminated together: each pass over the trailing matrix
 * subtracts this many rows' outer products, so the matrix is read and
 * written a quarter as often as one row at a time. Interactions are added
 * to A in groups of the same size, for the same reason. */
#define PANEL 4

/* sub4 - r[k] -= t0 a0[k] + t1 a1[k] + t2 a2[k] + t3 a3[k] for k < @len:
 * the update all three kernels below are made of, written on its own so
 * that its loop starts at 0 and the compiler vectorizes it (a loop from
 * the diagonal, inside the triangle's loop, it did not). */
static inline void sub4(double *restrict r, const double *restrict a0, const double *restrict a1,
                        const double *restrict a2, const double *restrict a3, double t0, double t1,
                        double t2, double t3, uint32_t len)
{
    for (uint32_t k = 0; k < len; k++)
        r[k] -= t0 * a0[k] + t1 * a1[k] + t2 * a2[k] + t3 * a3[k];
}

static inline void sub1(double *restrict r, const double *restrict a0, double t0, uint32_t len)
{
    for (uint32_t k = 0; k < len; k++)
        r[k] -= t0 * a0[k];
}

/* add_outers - A += sum_i s[i] z_i z_i^T on the upper triangle of the
 * f x f matrix @A, z_i being row i of @Z (n x f). */
KERNEL static void add_outers(double *restrict A, const double *restrict Z,
                              const double *restrict s, uint32_t n, uint32_t f)
{
    uint32_t i = 0;
    for (; i + PANEL <= n; i += PANEL) {
        const double *z0 = Z + (size_t)i * f, *z1 = z0 + f, *z2 = z1 + f, *z3 = z2 + f;
        for (uint32_t j = 0; j < f; j++)
            sub4(A + (size_t)j * f + j, z0 + j, z1 + j, z2 + j, z3 + j, -s[i] * z0[j],
                 -s[i + 1] * z1[j], -s[i + 2] * z2[j], -s[i + 3] * z3[j], f - j);
    }
    for (; i < n; i++) {
        const double *z = Z + (size_t)i * f;
        for (uint32_t j = 0; j < f; j++)
            sub1(A + (size_t)j * f + j, z + j, -s[i] * z[j], f - j);
    }
}

/* cholesky - factor the upper triangle of @A (f x f, row-major) in place
 * into U, A = U^T U, PANEL rows at a time (right-looking: each panel's
 * rows are factored, then their outer products taken from the rest).
 * @diag: f doubles, which receive the inverses of U's diagonal. Returns
 * the column whose pivot is not positive to working precision
 * (PIVOT_EPS), or f when A is positive definite. */
KERNEL static uint32_t cholesky(double *restrict A, double *restrict diag, uint32_t f)
{
    for (uint32_t j = 0; j < f; j++)
        diag[j] = A[(size_t)j * f + j];
    for (uint32_t j0 = 0; j0 < f; j0 += PANEL) {
        uint32_t end = f - j0 < PANEL ? f : j0 + PANEL;
        for (uint32_t j = j0; j < end; j++) {
            double *restrict uj = A + (size_t)j * f;
            double d = uj[j];
            /* Also refuses NaN. */
            if (!(d > PIVOT_EPS * diag[j]))
                return j;
            d = sqrt(d);
            uj[j] = d;
            double inv = diag[j] = 1.0 / d;
            for (uint32_t k = j + 1; k < f; k++)
                uj[k] *= inv;
            for (uint32_t i = j + 1; i < end; i++)
                sub1(A + (size_t)i * f + i, uj + i, uj[i], f - i);
        }
        const double *u0 = A + (size_t)j0 * f, *u1 = u0 + f, *u2 = u1 + f, *u3 = u2 + f;
        for (uint32_t i = end; i < f && end - j0 == PANEL; i++)
            sub4(A + (size_t)i * f + i, u0 + i, u1 + i, u2 + i, u3 + i, u0[i], u1[i], u2[i], u3[i],
                 f - i);
    }
    return f;
}

/* solve - overwrite @b with the solution of U^T U x = b, U from cholesky,
 * @inv its diagonal's inverses. */
KERNEL static void solve(const double *restrict U, const double *restrict inv, double *restrict b,
                         uint32_t f)
{
    /* U^T z = b, by columns of U^T (rows of U): axpys. */
    for (uint32_t j = 0; j < f; j++) {
        b[j] *= inv[j];
        sub1(b + j + 1, U + (size_t)j * f + j + 1, b[j], f - j - 1);
    }
    /* U x = z, by rows of U: dot products, each summed in four
     * independent sums, which the compiler keeps in one vector, rather
     * than one chain of dependent additions. */
    for (uint32_t j = f; j-- > 0;) {
        const double *uj = U + (size_t)j * f;
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

int foldin_user(const struct model *m, const struct foldin_item *items, uint32_t n, struct arena *a,
                float *x, struct err *e)
{
    const struct gram *gr = model_gram(m);
    assert(gr != NULL);
    uint32_t f = gr->f, stride = model_stride(m);
    int has_bias = model_info(m)->has_bias != 0;
    const struct model_training *t = model_training(m);
    double lambda = t->regularization, alpha = t->alpha;
    /* A (f x f), b, the pivots' diagonal, then Z (n x f: the items'
     * factors) and s (n: alpha w_i). */
    size_t count = ((size_t)f + 2) * f + ((size_t)n * (f + 1));
    double *A = arena_alloc(a, count * sizeof(double));
    if (A == NULL)
        return err_set(e, -ENOMEM, "out of memory for the fold-in of %u items at %u factors", n, f);
    double *b = A + (size_t)f * f, *diag = b + f, *Z = diag + f, *s = Z + (size_t)n * f;

    memcpy(A, gr->a, (size_t)f * f * sizeof(double));
    for (uint32_t j = 0; j < f; j++) {
        A[(size_t)j * f + j] += lambda;
        b[j] = -gr->a[(size_t)f * f + j]; /* -g, zeros without a bias */
    }
    const float *matrix = model_item_matrix(m);
    for (uint32_t k = 0; k < n; k++) {
        assert(items[k].item < model_item_count(m) && items[k].weight > 0);
        const float *row = matrix + (size_t)items[k].item * stride;
        double *z = Z + (size_t)k * f;
        s[k] = alpha * items[k].weight;
        double c = 1.0 + s[k];
        /* The item's coefficient in b: c (p - beta) for its own term,
         * plus beta to undo its share of -g, which counted it with c = 1. */
        double coef = has_bias ? c * (1.0 - row[f]) + row[f] : c;
        for (uint32_t j = 0; j < f; j++) {
            z[j] = row[j];
            b[j] += coef * z[j];
        }
    }
    add_outers(A, Z, s, n, f);
    uint32_t bad = cholesky(A, diag, f);
    if (bad < f)
        return err_set(e, ERR_INVALID,
                       "fold-in of %u items: the system is singular at factor %u "
                       "(regularization %g)",
                       n, bad, lambda);
    solve(A, diag, b, f);
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
