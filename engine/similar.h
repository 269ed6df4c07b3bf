/*
 * similar: the SimilarItems query.
 */
#pragma once

#include "engine/query.h"
#include "recsys/v1/recommender.pb-c.h"

/* similar_run - the items closest to req->item_id by cosine similarity of
 * their factor vectors, best first, ties to the lower index. Never returned:
 * the item itself, items not on sale, req->exclude_item_ids, items outside
 * req->categories, and (when req->user_id is set and known) that user's
 * owned items. source is PERSONALIZED when user_id names a known user,
 * otherwise SOURCE_UNSPECIFIED.
 * Returns 0, ERR_INVALID (empty item_id, bad count, too many ids),
 * ERR_NOT_FOUND (unknown item_id, or another model named), -ENOMEM. */
int similar_run(const struct query *q, const Recsys__V1__SimilarItemsRequest *req,
                Recsys__V1__RecommendResponse **out, struct err *e);
