/*
 * eligibility: can this user buy these items now, and if not, why.
 *
 * The rules are a table walked in order; the first that applies gives the
 * reason. The owned set is the filter module's blocked set built from the
 * user's snapshot purchases with their recorded events applied (live.h)
 * and the request's owned_item_ids only, so "owned" means the same here as
 * in Recommend.
 */
#include "engine/eligibility.h"

#include <errno.h>
#include <string.h>

#include "engine/filter.h"
#include "engine/live.h"

static int owned(const struct filter *f, uint32_t item)
{
    return filter_blocks(f, item);
}

static int in_membership(const struct filter *f, uint32_t item)
{
    return filter_in_membership(f->attrs[item].tier, f->user_tier);
}

static int off_sale(const struct filter *f, uint32_t item)
{
    return !f->attrs[item].on_sale;
}

static int always(const struct filter *f, uint32_t item)
{
    return 1;
}

/* After "unknown item", which needs no index and so comes before the table. */
static const struct rule {
    int (*applies)(const struct filter *f, uint32_t item);
    Recsys__V1__Reason reason;
} rules[] = {
    {owned, RECSYS__V1__REASON__ALREADY_OWNED},
    {in_membership, RECSYS__V1__REASON__INCLUDED_IN_MEMBERSHIP},
    {off_sale, RECSYS__V1__REASON__NOT_FOR_SALE},
    {always, RECSYS__V1__REASON__PURCHASABLE},
};

static Recsys__V1__Reason first_rule(const struct filter *f, uint32_t item)
{
    size_t i = 0;
    while (!rules[i].applies(f, item))
        i++;
    return rules[i].reason;
}

/* Fill @r for the item named @id. */
static int judge(const struct query *q, const struct filter *f, const char *id,
                 Recsys__V1__EligibilityResult *r, struct err *e)
{
    size_t len = strlen(id);
    recsys__v1__eligibility_result__init(r);
    r->item_id = arena_strndup(q->arena, id, len);
    if (r->item_id == NULL)
        return err_set(e, -ENOMEM, "out of memory for an eligibility result");
    uint32_t item;
    int rc = model_find_item(q->model, q->slot, id, len, &item);
    if (rc == ERR_NOT_FOUND) {
        r->reason = RECSYS__V1__REASON__UNKNOWN_ITEM;
        return 0;
    }
    if (rc != 0)
        return err_set(e, rc, "failed to look up item '%s' (%s)", id, err_strerror(rc));
    r->reason = first_rule(f, item);
    r->eligible = r->reason == RECSYS__V1__REASON__PURCHASABLE;
    r->price_cents = f->attrs[item].price_cents;
    return 0;
}

static int check_request(const struct query *q, const Recsys__V1__EligibilityRequest *req,
                         struct err *e)
{
    int rc = filter_check_model(q, req->model, e);
    if (rc == 0)
        rc = filter_check_id("user_id", req->user_id, 1, e);
    if (rc != 0)
        return rc;
    if (req->n_item_ids == 0)
        return err_set(e, ERR_INVALID, "item_ids is empty");
    return filter_check_ids("item_ids", req->item_ids, req->n_item_ids, QUERY_IDS_MAX, e);
}

int eligibility_run(const struct query *q, const Recsys__V1__EligibilityRequest *req,
                    Recsys__V1__EligibilityResponse **out, struct err *e)
{
    int rc = check_request(q, req, e);
    if (rc != 0)
        return rc;

    struct model_user user;
    int known;
    rc = filter_find_user(q, req->user_id, &user, &known, e);
    struct live_user live;
    if (rc == 0)
        rc = live_user(q, req->user_id, known ? &user : NULL, &live, e);
    if (rc != 0)
        return rc;
    const struct filter_spec spec = {
        .user = known ? &user : NULL,
        .owned_now = live.events > 0 ? live.owned : NULL,
        .owned_now_count = live.owned_count,
        .owned_ids = req->owned_item_ids,
        .owned_count = req->n_owned_item_ids,
        .self = -1,
    };
    struct filter f;
    rc = filter_build(q, &spec, &f, e);
    if (rc != 0)
        return rc;

    size_t n = req->n_item_ids;
    Recsys__V1__EligibilityResponse *resp = arena_alloc(q->arena, sizeof(*resp));
    Recsys__V1__EligibilityResult *results = arena_alloc(q->arena, n * sizeof(*results));
    Recsys__V1__EligibilityResult **list = arena_alloc(q->arena, n * sizeof(*list));
    const char *version = model_info(q->model)->version;
    if (resp == NULL || results == NULL || list == NULL)
        return err_set(e, -ENOMEM, "out of memory for %zu eligibility results", n);
    recsys__v1__eligibility_response__init(resp);
    for (size_t i = 0; i < n; i++) {
        rc = judge(q, &f, req->item_ids[i], &results[i], e);
        if (rc != 0)
            return rc;
        list[i] = &results[i];
    }
    resp->n_results = n;
    resp->results = list;
    resp->model_version = arena_strndup(q->arena, version, strlen(version));
    resp->model_name = arena_strndup(q->arena, q->model_name, strlen(q->model_name));
    if (resp->model_version == NULL || resp->model_name == NULL)
        return err_set(e, -ENOMEM, "out of memory for an eligibility response");
    *out = resp;
    return 0;
}
