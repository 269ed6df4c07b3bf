/*
 * als: implicit-feedback matrix factorization by alternating least squares
 * (Hu, Koren, Volinsky, "Collaborative Filtering for Implicit Feedback
 * Datasets", 2008).
 *
 * Each observed (user, item) pair with weight r counts as a preference
 * p = 1 held with confidence c = 1 + alpha * r; every other pair as p = 0
 * with confidence 1. ALS alternates two exact minimisations of
 *
 *     sum over all (u, i) of c_ui (p_ui - x_u . y_i)^2
 *         + lambda (sum ||x_u||^2 + sum ||y_i||^2)
 *
 * first over the user factors X with the item factors Y fixed, then the
 * reverse. With Y fixed the loss splits into one small least-squares
 * problem per user:
 *
 *     (Y^T Y + Y_u^T (C_u - I) Y_u + lambda I) x_u = Y_u^T C_u p_u
 *
 * where Y^T Y is shared by all users (one OpenBLAS product per half
 * iteration) and the correction involves only the user's own items, which
 * is what makes implicit ALS affordable. Each step cannot increase the
 * loss, so the loss falls monotonically.
 *
 * Deterministic: the initial factors come from @seed row by row, and each
 * row's solve depends only on the other side's factors, so the result is
 * the same to the bit for any number of threads.
 */
#pragma once

#include <stdatomic.h>
#include <stdint.h>

#include "base/err.h"

/* Observed pairs as compressed rows: row r's entries are cols[off[r] ..
 * off[r+1]) with weights w[...] (> 0; repeated pairs already summed). */
struct als_rows {
    uint32_t rows, cols;
    const uint64_t *off; /* rows + 1 */
    const uint32_t *col;
    const float *w;
};

struct als_params {
    uint32_t factors;     /* k, 1..1024 */
    uint32_t iterations;  /* full iterations (users, then items) */
    uint32_t threads;     /* >= 1 */
    float regularization; /* lambda >= 0 */
    float alpha;          /* confidence per unit of weight, >= 0 */
    uint64_t seed;
    /* 0: solve each row exactly (Cholesky). Otherwise this many
     * conjugate-gradient steps per row from its previous value: cheaper,
     * approximate, the loss still never rises, still deterministic. */
    uint32_t cg_steps;
    /* Optional (NULL = none): the solvers add the rows they finish here, so
     * a progress bar can show an iteration's advance (progress.h). */
    _Atomic uint64_t *done;
};

/* Called after every full iteration with its number (1-based), the loss
 * above and the seconds the iteration took. Return nonzero to stop. */
typedef int (*als_progress_fn)(void *ctx, uint32_t iteration, double loss, double seconds);

/* als_train - factor @users (user x item rows) and @items (the same pairs
 * as item x user rows) into X (users x factors) and Y (items x factors),
 * row-major, both allocated by the caller.
 * Returns 0, ERR_INVALID for bad parameters, -ENOMEM, or -errno from
 * starting threads; @e says which. */
int als_train(const struct als_rows *users, const struct als_rows *items,
              const struct als_params *p, float *X, float *Y, als_progress_fn progress, void *ctx,
              struct err *e);

/* als_loss - the loss above for X and Y. */
double als_loss(const struct als_rows *users, const struct als_params *p, const float *X,
                const float *Y, uint32_t items);
