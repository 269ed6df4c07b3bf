/*
 * eval: how well a ranking predicts the held-out pairs.
 *
 * For every user with held-out items, the ranking's top 10 is taken the way
 * recsysd's Recommend takes it: items the user bought in training (owned)
 * and items not on sale are never recommended, and equal scores go to the
 * lower item row. With H the user's held-out items and hits those in the
 * top 10 (rank r = 1..10):
 *
 *   precision@10 = hits / 10
 *   recall@10    = hits / |H|
 *   NDCG@10      = sum over hits of 1 / log2(r + 1), divided by the same
 *                  sum for a perfect ranking (ranks 1 .. min(10, |H|))
 *
 * each averaged over those users; catalog coverage is the share of the
 * catalog's items that appear in at least one user's top 10.
 */
#pragma once

#include <stdint.h>

#include "base/err.h"
#include "model/model.h"

struct dataset;

#define EVAL_TOP 10

struct eval_result {
    double precision, recall, ndcg, coverage;
    uint32_t users; /* users evaluated (with held-out items) */
};

/* eval_factors - metrics of score(u, i) = X[u] . Y[i] (k floats each),
 * on @threads threads (1..256). Returns 0, -ENOMEM or -errno from
 * starting threads. */
int eval_factors(const struct dataset *d, const struct model_item_attr *attrs, const float *X,
                 const float *Y, uint32_t k, uint32_t threads, struct eval_result *out,
                 struct err *e);

/* eval_popularity - metrics of the popularity ranking: items by their
 * number of training pairs (users who interacted), the same for every
 * user. Returns 0 or -ENOMEM. */
int eval_popularity(const struct dataset *d, const struct model_item_attr *attrs,
                    struct eval_result *out, struct err *e);
