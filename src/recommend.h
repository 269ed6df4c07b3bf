/*
 * recommend: the Recommend query.
 */
#pragma once

#include "query.h"
#include "recsys/v1/recommender.pb-c.h"
#include "score.h"

/* recommend_run - top-N items for req->user_id.
 * Known user: score = dot(user, item), source PERSONALIZED. Unknown user:
 * the model's popularity ranking, source POPULAR (score = purchase count).
 * Never returned: items the user owns (model or req->owned_item_ids), items
 * not on sale, req->exclude_item_ids, items outside req->categories (when
 * given), and with purchasable_only items included in the user's membership.
 * Ties go to the lower item index.
 * @out receives the response, allocated in q->arena.
 * Returns 0 or ERR_INVALID (empty user_id, count > QUERY_COUNT_MAX, too many
 * ids or categories; text in @e), -ENOMEM. */
int recommend_run(const struct query *q, const Recsys__V1__RecommendRequest *req,
                  Recsys__V1__RecommendResponse **out, struct err *e);

/* recommend_respond - the RecommendResponse listing @n hits (item indices
 * and scores, best first) of q->model; shared with similar_run.
 * @out receives the response, allocated in q->arena with copies of the ids.
 * Returns 0 or -ENOMEM. */
int recommend_respond(const struct query *q, const struct score_hit *hits, uint32_t n,
                      Recsys__V1__Source source, Recsys__V1__RecommendResponse **out,
                      struct err *e);
