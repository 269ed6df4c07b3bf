/*
 * filter: which items a query may return, decided once per call.
 *
 * filter_build() turns the request's id lists into the model's terms before
 * the scan: item ids into a sorted, distinct array of blocked item indices
 * (owned in the model snapshot, owned per the request, excluded), category
 * names into a bitmap. filter_keep() then costs a few loads and a binary
 * search per candidate, with no hashing and no allocation; score_topn calls
 * it only for items that would enter the top-N.
 *
 * Recommend, SimilarItems and the popularity fallback all filter through
 * filter_keep, and CheckEligibility reads its owned set from the same
 * builder, so each rule is written once, here.
 *
 * Also here: the checks of request fields the queries share (ids, counts),
 * so every query words its INVALID_ARGUMENT messages the same way.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "engine/query.h"

/* What to filter, straight from a request. Id lists are the protobuf-c
 * repeated string fields; ids not in the model are ignored. */
struct filter_spec {
    const struct model_user *user; /* whose snapshot purchases to block; NULL: nobody's */
    /* The user's items owned now, when recorded events changed them
     * (live.h): blocked instead of the snapshot's purchases. NULL: those. */
    const uint32_t *owned_now;
    uint32_t owned_now_count;
    char *const *owned_ids; /* owned_item_ids: bought after the snapshot */
    size_t owned_count;
    char *const *exclude_ids; /* exclude_item_ids */
    size_t exclude_count;
    char *const *categories; /* empty: every category; unknown names match nothing */
    size_t category_count;
    int64_t self;         /* an item index to block too (SimilarItems), or -1 */
    int purchasable_only; /* also block items the user's membership includes */
};

/* Per-call filter state; everything it points to is in the query's arena
 * or the model. */
struct filter {
    const struct model_item_attr *attrs;
    const uint32_t *blocked; /* ascending, distinct item indices */
    uint32_t blocked_count;
    const uint64_t *category_mask; /* bit c set: category c allowed; NULL: all */
    uint32_t user_tier;            /* 0 for an unknown user */
    int purchasable_only;
};

/* filter_build - check @spec's lists and resolve them against q->model.
 * @f receives the filter; its arrays are allocated in q->arena.
 * Returns 0, ERR_INVALID (too many ids or categories, an id longer than
 * MODEL_ID_MAX; the field is named in @e), -ENOMEM, or an LMDB code from
 * an id lookup. */
int filter_build(const struct query *q, const struct filter_spec *spec, struct filter *f,
                 struct err *e);

/* filter_keep - whether item @item may be returned: on sale, in an allowed
 * category, not blocked, and with purchasable_only not included in the
 * user's membership. A score_filter_fn; @filter is a const struct filter *.
 * It only reads, so the parts of a split scan call it at once. */
int filter_keep(const void *filter, uint32_t item);

/* filter_blocks - whether @item is in f->blocked. */
int filter_blocks(const struct filter *f, uint32_t item);

/* filter_in_membership - whether a user of @user_tier gets an item of
 * @item_tier through membership: tier 0 items are in no membership. */
static inline int filter_in_membership(uint32_t item_tier, uint32_t user_tier)
{
    return item_tier > 0 && user_tier >= item_tier;
}

/* ---- request checks ---------------------------------------------------- */

/* filter_find_user - look up the request's user through q->slot. An empty
 * or unknown id is no error: *known = 0 (a new user owns nothing, tier 0).
 * Returns 0, or the LMDB/errno code of a failed lookup with text in @e. */
int filter_find_user(const struct query *q, const char *id, struct model_user *u, int *known,
                     struct err *e);

/* filter_check_id - @id, the request field @field, must be at most
 * MODEL_ID_MAX bytes, and non-empty when @required.
 * Returns 0 or ERR_INVALID ("user_id is empty"). */
int filter_check_id(const char *field, const char *id, int required, struct err *e);

/* filter_check_model - @name, a request's `model` field, must name the
 * model q serves: "" (the route) or q->model_name.
 * Returns 0, ERR_INVALID (longer than MODEL_ID_MAX) or ERR_NOT_FOUND
 * ("model 'candidate' not found"). */
int filter_check_model(const struct query *q, const char *name, struct err *e);

/* filter_check_count - the number of results a request asks for: @count,
 * or QUERY_COUNT_DEFAULT when it is 0, into *n.
 * Returns 0 or ERR_INVALID ("count 5000 exceeds 1000"). */
int filter_check_count(uint32_t count, uint32_t *n, struct err *e);

/* filter_check_ids - a repeated id field: at most @max entries, each at
 * most MODEL_ID_MAX bytes. Returns 0 or ERR_INVALID naming @field. */
int filter_check_ids(const char *field, char *const *ids, size_t count, size_t max, struct err *e);
