/*
 * foldin: a user's vector computed at request time from their interactions,
 * as one implicit-ALS half-step would compute it (tools/recsys-train/als.h).
 *
 * A user whose events came after the model's snapshot (purchases and views
 * the live-events log holds) has no row in the model, or a stale one. With
 * the item factors Y fixed, the trainer's user row is the exact minimiser of
 *
 *     sum over all items i of c_i (p_i - x . y_i)^2 + lambda ||x||^2
 *
 * with p_i = 1 and c_i = 1 + alpha w_i for the user's items (w_i their
 * weight), p_i = 0 and c_i = 1 for the rest. lambda is the trainer's:
 * unscaled for recsys-train, times the user's number of items n for a
 * model trained by Spark MLlib (model_training()->regularization_scaling),
 * so the lambda below is that product then. That is the linear system
 *
 *     (Y^T Y + lambda I + sum_user alpha w_i y_i y_i^T) x
 *         = sum_user (1 + alpha w_i) y_i
 *
 * whose matrix is the Gram matrix Y^T Y, the same for every user, plus one
 * rank-1 term per interaction. foldin_prepare() computes the Gram once per
 * model, at load; foldin_user() adds the user's terms and solves by
 * Cholesky (foldin.c), in microseconds: bench/foldin gives the figures.
 *
 * With an item bias (model_info()->has_bias: the last used column of an
 * item row is its bias beta_i, the user row holds 1.0 there, and an item's
 * score is x . y'_i + beta_i with y'_i the factor columns) the residual is
 * p_i - beta_i - x . y'_i, so the matrix is the same over the factor
 * columns and the right-hand side becomes
 *
 *     -sum_all beta_i y'_i + sum_user (c_i (1 - beta_i) + beta_i) y'_i
 *
 * whose first sum, g, foldin_prepare() also computes at load.
 *
 * Everything is computed in double and the result rounded to float once:
 * the Gram sums a million products per entry, which float would carry to
 * four or five digits at best.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/err.h"
#include "model/model.h"

/* Widest model folded in, in factor columns (model_dim less the bias
 * column). A request builds the f x f matrix in doubles, 2 MiB of arena at
 * 512 (and the model keeps a Gram as big), and its Cholesky factor costs
 * f^3 / 3 flops, 45 million at 512: 1.9 ms of a worker per request,
 * against 11 us at 64 (bench/foldin), and growing with the cube of f. A
 * wider model is served without fold-in (foldin_ready() false). */
#define FOLDIN_FACTORS_MAX 512

/* One of the user's interactions. */
struct foldin_item {
    uint32_t item; /* item index, < model_item_count(); distinct within a call */
    float weight;  /* w > 0, finite: repeated events of one item summed first */
};

/* foldin_prepare - compute the Gram matrix of @m's item factors (and g with
 * a bias column) in double and give it to @m (model_set_gram), where
 * foldin_user() reads it. Call it once, on the thread that opened @m,
 * before @m is shared (model_set_gram's rule): the reloader does, before
 * publishing. It reads the whole f32 item matrix once: 0.17 s for
 * 10^6 x 64 on one core of a busy 2-core EPYC (bench/foldin). Allocates the Gram (f * f + f
 * doubles, which model_close frees) and a scratch block of 0.5 MiB it
 * frees before returning.
 * Returns 0, also when @m has more than FOLDIN_FACTORS_MAX factor columns
 * or none (then nothing is set and foldin_ready() stays false); or
 * -ENOMEM, with the text in @e (may be NULL), and @m without a Gram. */
int foldin_prepare(struct model *m, struct err *e);

/* foldin_ready - whether @m holds what foldin_user() needs: foldin_prepare
 * ran on it and set its Gram. */
bool foldin_ready(const struct model *m);

/* foldin_user - the vector implicit ALS gives a user with the @n
 * interactions @items (n may be 0: then the vector of a user with none),
 * using model_training(@m)'s regularization (lambda) and alpha.
 * @m:     a model foldin_ready() accepts (asserted).
 * @items: @n entries as struct foldin_item says; borrowed for the call.
 * @a:     the call's arena: about (f + n + 2) * f * 8 bytes of scratch
 *         are taken from it (33 KiB at f = 64, plus 0.5 KiB an
 *         interaction), released with the arena.
 * @x:     receives model_stride(@m) floats, a user row as the model stores
 *         them: the f factors, 1.0 in the bias column when the model has
 *         one, zeros after; scanned like model_user_matrix()'s rows. Left
 *         unspecified on failure.
 * @e:     receives the reason on failure; may be NULL.
 * Returns 0; ERR_INVALID when the matrix is not positive definite to
 * double precision (only with lambda = 0, when the items' factors do not
 * span all f columns; the caller falls back to the user's stored row or
 * the popularity ranking), or when a factor overflows float; -ENOMEM when
 * the arena cannot grow. No lock, no malloc beyond the arena's; safe from
 * any number of threads at once, each with its own arena. */
int foldin_user(const struct model *m, const struct foldin_item *items, uint32_t n, struct arena *a,
                float *x, struct err *e);
