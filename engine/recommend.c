/*
 * recommend: top-N items for a user.
 *
 * A known user is scored against every item in one pass of score_topn, the
 * filter consulted only for items that would make the list. A user the
 * model does not know (cold start), or whose factors are all zero, gets the
 * model's popularity ranking instead, walked in order through the same
 * filter until the list is full: such a user has no taste to score with,
 * and "what others buy most" is the best guess that never fails the caller.
 */
#include "engine/recommend.h"

#include <errno.h>
#include <string.h>

#include "base/clock.h"
#include "engine/filter.h"
#include "engine/scan.h"

/* Nothing to release on failure: every allocation is the arena's. */
static int no_memory(struct err *e, uint32_t n)
{
    return err_set(e, -ENOMEM, "out of memory for a response of %u items", n);
}

int recommend_respond(const struct query *q, const struct score_hit *hits, uint32_t n,
                      Recsys__V1__Source source, Recsys__V1__RecommendResponse **out, struct err *e)
{
    Recsys__V1__RecommendResponse *r = arena_alloc(q->arena, sizeof(*r));
    Recsys__V1__ScoredItem *items = arena_alloc(q->arena, (size_t)n * sizeof(*items));
    Recsys__V1__ScoredItem **list = arena_alloc(q->arena, (size_t)n * sizeof(*list));
    const char *version = model_info(q->model)->version;
    if (r == NULL || items == NULL || list == NULL)
        return no_memory(e, n);
    recsys__v1__recommend_response__init(r);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t len;
        const char *id = model_item_id(q->model, hits[i].index, &len);
        recsys__v1__scored_item__init(&items[i]);
        items[i].item_id = arena_strndup(q->arena, id, len);
        if (items[i].item_id == NULL)
            return no_memory(e, n);
        items[i].score = hits[i].score;
        list[i] = &items[i];
    }
    r->n_items = n;
    r->items = list;
    r->source = source;
    r->model_version = arena_strndup(q->arena, version, strlen(version));
    r->model_name = arena_strndup(q->arena, q->model_name, strlen(q->model_name));
    if (r->model_version == NULL || r->model_name == NULL)
        return no_memory(e, n);
    *out = r;
    return 0;
}

uint32_t recommend_popular(const struct model *m, const struct filter *f, uint32_t n,
                           struct score_hit *hits)
{
    const struct model_pop *pop = model_popularity(m);
    uint32_t items = model_item_count(m), count = 0;
    for (uint32_t i = 0; i < items && count < n; i++)
        if (filter_keep(f, pop[i].item))
            hits[count++] = (struct score_hit){pop[i].item, (float)pop[i].count};
    return count;
}

/* User @u's row of @m's user matrix. */
static const float *user_vector(const struct model *m, const struct model_user *u)
{
    return model_user_matrix(m) + (size_t)u->row * model_stride(m);
}

/* recommend_personalized - a p->personalized user's top p->n by scan into
 * @hits (p->n entries), *@count receiving how many. The scan reads the copy
 * scan.h chooses; a reduced one gives the same result as the f32 matrix
 * (score.h), only sooner. Returns 0 or -ENOMEM. */
static int recommend_personalized(const struct query *q, const struct recommend_plan *p,
                                  struct score_hit *hits, uint32_t *count, struct err *e)
{
    const struct model *m = q->model;
    const struct filter *f = &p->filter;
    uint32_t n = p->n;
    struct scan_plan plan;
    scan_plan(m, p->vector, scan_elem(m), &plan);
    struct score_hit *scratch = arena_alloc(q->arena, (size_t)plan.parts * n * sizeof(*scratch));
    if (scratch == NULL)
        return err_set(e, -ENOMEM, "out of memory for %zu hits", (size_t)plan.parts * n);
    *count = scan_topn(&plan, n, filter_keep, f, scratch, hits);
    return 0;
}

/* fold_in - score the user of @p with a vector folded in from their
 * interactions, when they have recorded events and the model allows it.
 * A model without what the fold-in needs, or a user whose interactions
 * cannot be solved for (only with lambda 0), keeps the model's answer:
 * the events still decide what the user owns. */
static int fold_in(const struct query *q, struct recommend_plan *p, struct err *e)
{
    const struct model *m = q->model;
    if (p->live.events == 0 || p->live.interaction_count == 0 || !foldin_ready(m))
        return 0;
    int64_t start = clock_ns();
    /* 64-byte aligned, as the model's rows are. */
    uint8_t *raw = arena_alloc(q->arena, (size_t)model_stride(m) * sizeof(float) + 64);
    if (raw == NULL)
        return err_set(e, -ENOMEM, "out of memory for a folded-in vector");
    float *x = (float *)(raw + (64 - (uintptr_t)raw % 64) % 64);
    struct err fe = {0};
    int rc = foldin_user(m, p->live.interactions, p->live.interaction_count, q->arena, x, &fe);
    if (rc == ERR_INVALID)
        return 0;
    if (rc != 0)
        return err_set(e, rc, "%s", fe.msg);
    p->vector = x;
    p->folded = 1;
    p->personalized = scan_has_factors(m, x);
    if (q->stats != NULL) {
        q->stats->fold_ins++;
        q->stats->fold_in_ns += (uint64_t)(clock_ns() - start);
    }
    return 0;
}

Recsys__V1__Source recommend_source(const struct recommend_plan *p)
{
    return !p->personalized ? RECSYS__V1__SOURCE__POPULAR
           : p->folded      ? RECSYS__V1__SOURCE__FOLDED_IN
                            : RECSYS__V1__SOURCE__PERSONALIZED;
}

int recommend_prepare(const struct query *q, const Recsys__V1__RecommendRequest *req,
                      struct recommend_plan *p, struct err *e)
{
    int rc = filter_check_model(q, req->model, e);
    if (rc == 0)
        rc = filter_check_id("user_id", req->user_id, 1, e);
    if (rc == 0)
        rc = filter_check_count(req->count, &p->n, e);
    if (rc == 0)
        rc = filter_find_user(q, req->user_id, &p->user, &p->known, e);
    if (rc == 0)
        rc = live_user(q, req->user_id, p->known ? &p->user : NULL, &p->live, e);
    if (rc != 0)
        return rc;
    const struct filter_spec spec = {
        .user = p->known ? &p->user : NULL,
        .owned_now = p->live.events > 0 ? p->live.owned : NULL,
        .owned_now_count = p->live.owned_count,
        .owned_ids = req->owned_item_ids,
        .owned_count = req->n_owned_item_ids,
        .exclude_ids = req->exclude_item_ids,
        .exclude_count = req->n_exclude_item_ids,
        .categories = req->categories,
        .category_count = req->n_categories,
        .self = -1,
        .purchasable_only = req->purchasable_only,
    };
    p->vector = p->known ? user_vector(q->model, &p->user) : NULL;
    p->folded = 0;
    p->personalized = p->known && scan_has_factors(q->model, p->vector);
    rc = fold_in(q, p, e);
    if (rc != 0)
        return rc;
    return filter_build(q, &spec, &p->filter, e);
}

int recommend_run(const struct query *q, const Recsys__V1__RecommendRequest *req,
                  Recsys__V1__RecommendResponse **out, struct err *e)
{
    struct recommend_plan p;
    int rc = recommend_prepare(q, req, &p, e);
    if (rc != 0)
        return rc;
    struct score_hit *hits = arena_alloc(q->arena, (size_t)p.n * sizeof(*hits));
    if (hits == NULL)
        return err_set(e, -ENOMEM, "out of memory for %u results", p.n);
    uint32_t count = 0;
    if (!p.personalized)
        count = recommend_popular(q->model, &p.filter, p.n, hits);
    else if ((rc = recommend_personalized(q, &p, hits, &count, e)) != 0)
        return rc;
    return recommend_respond(q, hits, count, recommend_source(&p), out, e);
}
