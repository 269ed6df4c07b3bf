/*
 * als: implicit ALS (als.h).
 *
 * One half iteration solves every row of one side against the other side's
 * fixed factors F (k columns):
 *
 *   G = F^T F                                  once, cblas_ssyrk
 *   per row r with entries (j, w), c = 1 + alpha w:
 *     A = G + sum (c - 1) f_j f_j^T + lambda I  cblas_ssyrk on the rows
 *                                               f_j sqrt(c - 1), gathered
 *     b = sum c f_j                             cblas_sgemv
 *     x_r = A^-1 b                              LAPACK sposv (Cholesky)
 *
 * OpenBLAS ships LAPACK's Fortran entry points; sposv_ is declared here
 * because Debian's OpenBLAS has no LAPACKE header. The threads here each
 * take a fixed contiguous range of rows, and OpenBLAS runs single-threaded
 * under them, so nothing depends on timing.
 */
#include "tools/recsys-train/als.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "tools/recsys-train/factors.h"

/* LAPACK: solve A X = B for symmetric positive definite A (column-major). */
extern void sposv_(const char *uplo, const int *n, const int *nrhs, float *a, const int *lda,
                   float *b, const int *ldb, int *info);

#define FACTORS_MAX 1024
#define THREADS_MAX 256
/* Entries ahead whose factor row is prefetched (a miss costs several rows' work). */
#define PREFETCH_AHEAD 4

/* One side's solve: rows of @rows against the fixed factors @fixed. */
struct half {
    const struct als_rows *rows;
    const float *fixed;
    const float *gram; /* k x k, upper triangle */
    float *out;        /* rows x k */
    uint32_t k;
    float lambda, alpha;
    uint32_t cg_steps;      /* 0: Cholesky; else conjugate-gradient steps */
    _Atomic uint64_t *done; /* rows solved, for a progress bar; may be NULL */
    int failed;             /* a solve's matrix was not positive definite */
};

struct worker {
    struct half *h;
    uint32_t first, end;
    float *a;        /* k x k */
    float *b;        /* 4 k: right-hand side, and CG's residual, direction, A p */
    float *gathered; /* longest row x k */
    float *scale;    /* 2 x longest row: CG's c - 1 per entry, and F p */
    int failed;
};

static uint32_t longest_row(const struct als_rows *r)
{
    uint64_t longest = 0;
    for (uint32_t i = 0; i < r->rows; i++)
        longest = r->off[i + 1] - r->off[i] > longest ? r->off[i + 1] - r->off[i] : longest;
    return (uint32_t)longest;
}

/* Gathers row @r's entries' factor rows into w->gathered, each scaled by
 * sqrt(c - 1) when @scaled (else as they are, with c - 1 in w->scale),
 * and sets w->b to the right-hand side sum c f. Returns the entry count. */
static uint64_t gather(const struct half *h, struct worker *w, uint32_t r, int scaled)
{
    uint32_t k = h->k;
    uint64_t lo = h->rows->off[r], n = h->rows->off[r + 1] - lo;
    float *restrict gathered = w->gathered;
    memset(w->b, 0, k * sizeof(float));
    for (uint64_t e = 0; e < n; e++) {
        const float *restrict f = h->fixed + (size_t)h->rows->col[lo + e] * k;
        float c = 1 + h->alpha * h->rows->w[lo + e], s = scaled ? sqrtf(c - 1) : 1;
        /* The rows are scattered over the fixed side's matrix: fetch the
         * row PREFETCH_AHEAD entries on while this one is scaled. */
        if (e + PREFETCH_AHEAD < n) {
            const char *next =
                (const char *)(h->fixed + (size_t)h->rows->col[lo + e + PREFETCH_AHEAD] * k);
            for (size_t at = 0; at < k * sizeof(float); at += 64)
                __builtin_prefetch(next + at);
        }
        for (uint32_t j = 0; j < k; j++)
            gathered[e * k + j] = f[j] * s;
        w->scale[e] = c - 1;
        cblas_saxpy((int)k, c, f, 1, w->b, 1);
    }
    return n;
}

/* x_r for row @r into h->out, exactly: A x = b by Cholesky. */
static int solve_row(const struct half *h, struct worker *w, uint32_t r)
{
    uint32_t k = h->k;
    uint64_t n = gather(h, w, r, 1);
    memcpy(w->a, h->gram, (size_t)k * k * sizeof(float));
    if (n > 0)
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)k, (int)n, 1.0f, w->gathered,
                    (int)k, 1.0f, w->a, (int)k);
    for (uint32_t j = 0; j < k; j++)
        w->a[(size_t)j * k + j] += h->lambda;
    /* Row-major upper is column-major lower. */
    int kk = (int)k, one = 1, info;
    sposv_("L", &kk, &one, w->a, &kk, w->b, &kk, &info);
    if (info != 0)
        return -1;
    memcpy(h->out + (size_t)r * k, w->b, k * sizeof(float));
    return 0;
}

/* @out = A @v for the row gathered unscaled: G v + lambda v + F^T ((c - 1) .* F v). */
static void apply(const struct half *h, const struct worker *w, uint64_t n, const float *v,
                  float *out)
{
    int k = (int)h->k;
    float *fv = w->scale + n;
    cblas_ssymv(CblasRowMajor, CblasUpper, k, 1.0f, h->gram, k, v, 1, 0.0f, out, 1);
    cblas_saxpy(k, h->lambda, v, 1, out, 1);
    if (n == 0)
        return;
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n, k, 1.0f, w->gathered, k, v, 1, 0.0f, fv, 1);
    for (uint64_t e = 0; e < n; e++)
        fv[e] *= w->scale[e];
    cblas_sgemv(CblasRowMajor, CblasTrans, (int)n, k, 1.0f, w->gathered, k, fv, 1, 1.0f, out, 1);
}

/* x_r for row @r into h->out by h->cg_steps conjugate-gradient steps
 * from its current value (Takacs, Pilaszy, Tikk 2011). Each step
 * minimises the row's part of the loss along its direction, so the loss
 * still never rises; A is not formed, so a row costs k^2 + 4 n k per step
 * instead of n k^2 + k^3 / 3. */
static int solve_row_cg(const struct half *h, struct worker *w, uint32_t r)
{
    uint32_t k = h->k;
    uint64_t n = gather(h, w, r, 0);
    float *x = h->out + (size_t)r * k, *res = w->b + k, *dir = w->b + 2 * k, *ap = w->b + 3 * k;
    apply(h, w, n, x, ap);
    for (uint32_t j = 0; j < k; j++)
        dir[j] = res[j] = w->b[j] - ap[j];
    float rs = cblas_sdot((int)k, res, 1, res, 1);
    for (uint32_t step = 0; step < h->cg_steps && rs > 1e-20f; step++) {
        apply(h, w, n, dir, ap);
        float along = cblas_sdot((int)k, dir, 1, ap, 1);
        if (!(along > 0))
            return -1;
        float a = rs / along;
        cblas_saxpy((int)k, a, dir, 1, x, 1);
        cblas_saxpy((int)k, -a, ap, 1, res, 1);
        float next = cblas_sdot((int)k, res, 1, res, 1);
        for (uint32_t j = 0; j < k; j++)
            dir[j] = res[j] + next / rs * dir[j];
        rs = next;
    }
    return 0;
}

static void *work(void *arg)
{
    struct worker *w = arg;
    for (uint32_t r = w->first; r < w->end && !w->failed; r++) {
        w->failed = (w->h->cg_steps ? solve_row_cg : solve_row)(w->h, w, r) != 0;
        /* In batches, so the counter's cache line is not fought over. */
        if (w->h->done != NULL && ((r - w->first) % 256 == 255 || r + 1 == w->end))
            atomic_fetch_add_explicit(w->h->done, (r - w->first) % 256 + 1, memory_order_relaxed);
    }
    return NULL;
}

/* Solves every row of @h on @threads threads. */
static int run_half(struct half *h, uint32_t threads, struct err *e)
{
    uint32_t k = h->k, longest = longest_row(h->rows);
    struct worker w[THREADS_MAX] = {{0}};
    pthread_t t[THREADS_MAX];
    uint32_t started = 0;
    int rc = 0;
    for (uint32_t i = 0; i < threads && rc == 0; i++) {
        w[i] = (struct worker){.h = h,
                               .first = (uint32_t)((uint64_t)h->rows->rows * i / threads),
                               .end = (uint32_t)((uint64_t)h->rows->rows * (i + 1) / threads),
                               .a = malloc((size_t)k * k * sizeof(float)),
                               .b = malloc(4 * (size_t)k * sizeof(float)),
                               .gathered = malloc(((size_t)longest + 1) * k * sizeof(float)),
                               .scale = malloc(2 * ((size_t)longest + 1) * sizeof(float))};
        if (w[i].a == NULL || w[i].b == NULL || w[i].gathered == NULL || w[i].scale == NULL)
            rc = err_set(e, -ENOMEM, "out of memory for a solver thread");
        else if (i > 0 && (rc = pthread_create(&t[i], NULL, work, &w[i])) != 0)
            rc = err_set(e, -rc, "failed to start a training thread (%s)", strerror(rc));
        else
            started = i + 1;
    }
    if (rc == 0 && threads > 0)
        work(&w[0]);
    for (uint32_t i = 1; i < started; i++)
        pthread_join(t[i], NULL);
    for (uint32_t i = 0; i < threads; i++) {
        h->failed |= w[i].failed;
        free(w[i].a), free(w[i].b), free(w[i].gathered), free(w[i].scale);
    }
    if (rc == 0 && h->failed)
        rc = err_set(e, ERR_INVALID,
                     "a least-squares system was not positive definite "
                     "(raise --regularization)");
    return rc;
}

/* F^T F, upper triangle, of @n rows of @k factors. */
static void gram(const float *f, uint32_t n, uint32_t k, float *g)
{
    memset(g, 0, (size_t)k * k * sizeof(float));
    if (n > 0)
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)k, (int)n, 1.0f, f, (int)k, 0.0f, g,
                    (int)k);
}

static double seconds(void)
{
    return (double)clock_ns() / 1e9;
}

/* Users per block of the quadratic form in als_loss. */
#define LOSS_BLOCK 256

/* sum over the rows x of @X of x^T G x, with G = Y^T Y (@g, upper
 * triangle): a block of rows at a time through dsymm. In double, because
 * the loss is compared across iterations to a relative 1e-6 and more. */
static double quadratic(const float *X, uint32_t rows, uint32_t k, const float *g, double *gd,
                        double *xb, double *t)
{
    for (size_t j = 0; j < (size_t)k * k; j++)
        gd[j] = g[j];
    double sum = 0;
    for (uint32_t first = 0; first < rows; first += LOSS_BLOCK) {
        uint32_t n = rows - first < LOSS_BLOCK ? rows - first : LOSS_BLOCK;
        for (size_t j = 0; j < (size_t)n * k; j++)
            xb[j] = X[(size_t)first * k + j];
        cblas_dsymm(CblasRowMajor, CblasRight, CblasUpper, (int)n, (int)k, 1.0, gd, (int)k, xb,
                    (int)k, 0.0, t, (int)k);
        for (size_t j = 0; j < (size_t)n * k; j++)
            sum += xb[j] * t[j];
    }
    return sum;
}

/* The loss over all pairs without visiting them: the sum of (x_u . y_i)^2
 * over every pair is sum_u x_u^T (Y^T Y) x_u, and the observed pairs
 * correct it to c (1 - s)^2 where they have confidence c and preference 1. */
double als_loss(const struct als_rows *users, const struct als_params *p, const float *X,
                const float *Y, uint32_t items)
{
    uint32_t k = p->factors;
    float *g = malloc((size_t)k * k * sizeof(float));
    double *gd = malloc((size_t)k * k * sizeof(double));
    double *xb = malloc((size_t)LOSS_BLOCK * k * sizeof(double));
    double *t = malloc((size_t)LOSS_BLOCK * k * sizeof(double));
    double loss = NAN, norms = 0;
    if (g == NULL || gd == NULL || xb == NULL || t == NULL)
        goto out;
    gram(Y, items, k, g);
    loss = quadratic(X, users->rows, k, g, gd, xb, t);
    for (uint32_t u = 0; u < users->rows; u++) {
        const float *x = X + (size_t)u * k;
        for (uint64_t e = users->off[u]; e < users->off[u + 1]; e++) {
            const float *y = Y + (size_t)users->col[e] * k;
            double s = 0, c = 1 + (double)p->alpha * users->w[e];
            for (uint32_t j = 0; j < k; j++)
                s += (double)x[j] * y[j];
            loss += c * (1 - s) * (1 - s) - s * s;
        }
    }
    for (size_t j = 0; j < (size_t)users->rows * k; j++)
        norms += (double)X[j] * X[j];
    for (size_t j = 0; j < (size_t)items * k; j++)
        norms += (double)Y[j] * Y[j];
    loss += p->regularization * norms;
out:
    free(g), free(gd), free(xb), free(t);
    return loss;
}

int als_train(const struct als_rows *users, const struct als_rows *items,
              const struct als_params *p, float *X, float *Y, als_progress_fn progress, void *ctx,
              struct err *e)
{
    uint32_t k = p->factors;
    if (k < 1 || k > FACTORS_MAX || p->threads < 1 || p->threads > THREADS_MAX ||
        !(p->regularization >= 0) || !(p->alpha >= 0))
        return err_set(e, ERR_INVALID,
                       "factors 1..%d, threads 1..%d, regularization and "
                       "alpha >= 0",
                       FACTORS_MAX, THREADS_MAX);
    if (users->cols != items->rows || items->cols != users->rows)
        return err_set(e, ERR_INVALID, "the user and item rows do not describe the same pairs");
    /* Our threads split the rows; OpenBLAS threads under them would only
     * contend, and would make nothing faster. */
    openblas_set_num_threads(1);
    float *g = malloc((size_t)k * k * sizeof(float));
    if (g == NULL)
        return err_set(e, -ENOMEM, "out of memory for a %u x %u matrix", k, k);
    factors_init(X, users->rows, k, p->seed, 0);
    factors_init(Y, items->rows, k, p->seed, 1);
    int rc = 0;
    for (uint32_t it = 1; it <= p->iterations && rc == 0; it++) {
        double start = seconds();
        struct half h = {.k = k,
                         .lambda = p->regularization,
                         .alpha = p->alpha,
                         .cg_steps = p->cg_steps,
                         .gram = g,
                         .done = p->done};
        gram(Y, items->rows, k, g);
        h.rows = users, h.fixed = Y, h.out = X;
        rc = run_half(&h, p->threads, e);
        if (rc == 0) {
            gram(X, users->rows, k, g);
            h.rows = items, h.fixed = X, h.out = Y, h.failed = 0;
            rc = run_half(&h, p->threads, e);
        }
        if (rc != 0 || progress == NULL)
            continue;
        /* The loss is part of the iteration's reported time. */
        double loss = als_loss(users, p, X, Y, items->rows);
        if (progress(ctx, it, loss, seconds() - start) != 0)
            break;
    }
    free(g);
    return rc;
}
