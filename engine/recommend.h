/*
 * recommend: the Recommend query.
 */
#pragma once

#include "engine/filter.h"
#include "engine/live.h"
#include "engine/query.h"
#include "engine/score.h"
#include "recsys/v1/recommender.pb-c.h"

/* recommend_run - top-N items for req->user_id.
 * Known user: score = dot(user, item), source PERSONALIZED. A user with
 * recorded events (q->events; known to the model or not): the same with a
 * vector folded in from all their interactions (foldin.h), source
 * FOLDED_IN. Unknown user, or one whose vector is all zero: the model's
 * popularity ranking, source POPULAR (score = purchase count).
 * Never returned: items the user owns (model, recorded events or
 * req->owned_item_ids; a recorded refund gives an item back), items
 * not on sale, req->exclude_item_ids, items outside req->categories (when
 * given), and with purchasable_only items included in the user's membership.
 * Ties go to the lower item index.
 * @out receives the response, allocated in q->arena.
 * Returns 0, ERR_INVALID (empty user_id, count > QUERY_COUNT_MAX, too many
 * ids or categories; text in @e), ERR_NOT_FOUND (req->model names another
 * model than q->model_name: filter_check_model), -ENOMEM. */
int recommend_run(const struct query *q, const Recsys__V1__RecommendRequest *req,
                  Recsys__V1__RecommendResponse **out, struct err *e);

/* A Recommend request checked and resolved against q->model: what
 * recommend_run, and BatchRecommend for each of its requests, score. */
struct recommend_plan {
    uint32_t n;             /* results wanted: count, or QUERY_COUNT_DEFAULT for 0 */
    int known;              /* the model knows the user */
    struct model_user user; /* when known */
    /* Known, with a vector that is not all zero. A user the training log
     * never saw (listed only for a membership tier) has no taste to score
     * with and gets the popularity ranking, as an unknown user does, but
     * with the tier and purchases the model records. */
    int personalized;
    /* The vector to score with when personalized: the user's row of the
     * model, or one folded in from their events (in q->arena). */
    const float *vector;
    int folded;            /* vector was folded in: source FOLDED_IN */
    struct live_user live; /* the user's recorded events, under q->model */
    struct filter filter;  /* every rule of Recommend, resolved */
};

/* recommend_prepare - check @req and resolve it into @p (allocations in
 * q->arena). Returns 0 or recommend_run's errors. */
int recommend_prepare(const struct query *q, const Recsys__V1__RecommendRequest *req,
                      struct recommend_plan *p, struct err *e);

/* recommend_source - the Source a plan's answer is given with. */
Recsys__V1__Source recommend_source(const struct recommend_plan *p);

/* recommend_popular - cold start: the first @n items of @m's popularity
 * ranking that @f keeps into @hits, scored by their purchase count; returns
 * how many. */
uint32_t recommend_popular(const struct model *m, const struct filter *f, uint32_t n,
                           struct score_hit *hits);

/* recommend_respond - the RecommendResponse listing @n hits (item indices
 * and scores, best first) of q->model; shared with similar_run.
 * @out receives the response, allocated in q->arena with copies of the ids.
 * Returns 0 or -ENOMEM. */
int recommend_respond(const struct query *q, const struct score_hit *hits, uint32_t n,
                      Recsys__V1__Source source, Recsys__V1__RecommendResponse **out,
                      struct err *e);
