/*
 * eligibility: the CheckEligibility query.
 */
#pragma once

#include "engine/query.h"
#include "recsys/v1/recommender.pb-c.h"

/* eligibility_run - one result per requested item, in request order, by the
 * first rule that applies: unknown item -> UNKNOWN_ITEM; owned (model or
 * req->owned_item_ids) -> ALREADY_OWNED; item tier > 0 and user tier >= it ->
 * INCLUDED_IN_MEMBERSHIP; not on sale -> NOT_FOR_SALE; else PURCHASABLE
 * (the only eligible reason). An unknown user owns nothing and has tier 0.
 * Returns 0, ERR_INVALID (empty user_id, 0 or more than QUERY_IDS_MAX
 * item_ids, too many owned ids), ERR_NOT_FOUND (another model named),
 * -ENOMEM. */
int eligibility_run(const struct query *q, const Recsys__V1__EligibilityRequest *req,
                    Recsys__V1__EligibilityResponse **out, struct err *e);
