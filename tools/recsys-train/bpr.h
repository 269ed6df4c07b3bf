/*
 * bpr: Bayesian personalized ranking (Rendle et al., "BPR: Bayesian
 * Personalized Ranking from Implicit Feedback", 2009), learned by
 * stochastic gradient descent.
 *
 * One iteration draws as many triples (u, i, j) as there are training
 * pairs: (u, i) an observed pair, j an item u has not interacted with, and
 * takes one gradient step on
 *
 *     -ln sigmoid(x_u . (y_i - y_j)) + lambda (||x_u||^2 + ||y_i||^2 + ||y_j||^2)
 *
 * The reported loss is the mean of the first term over the iteration's
 * triples, before each step.
 *
 * Threads update the shared factors without locks (Hogwild, Niu et al.
 * 2011): a step can read a row another thread is writing and lose part of
 * that update. The steps are sparse, so such collisions are rare and SGD
 * absorbs them, but the result is not reproducible with more than one
 * thread; with one thread it depends on the seed alone. Every factor is
 * read and written as a relaxed atomic, so a value is never torn.
 */
#pragma once

#include <stdatomic.h>
#include <stdint.h>

#include "base/err.h"
#include "tools/recsys-train/als.h"

struct bpr_params {
    uint32_t factors;     /* k, 1..1024 */
    uint32_t iterations;  /* passes of (training pairs) samples each */
    uint32_t threads;     /* >= 1 */
    float learning_rate;  /* > 0 */
    float regularization; /* lambda >= 0 */
    uint64_t seed;
    _Atomic uint64_t *done; /* optional: samples taken, for a progress bar */
};

/* bpr_train - factor @users (user x item rows, als.h; weights unused) into
 * X (users x factors) and Y (users->cols x factors), row-major, allocated
 * by the caller. @progress as in als_train. Returns 0, ERR_INVALID for bad
 * parameters, or -errno from starting threads; @e says which. */
int bpr_train(const struct als_rows *users, const struct bpr_params *p, float *X, float *Y,
              als_progress_fn progress, void *ctx, struct err *e);
