/*
 * similar: the items closest to one item by cosine similarity.
 *
 * The cosine of items a and b is dot(a, b) * inv_norm[a] * inv_norm[b] with
 * the inverse norms the model computed at load, so the scan is the same
 * fused score + top-N as Recommend with a per-row scale, and no vector is
 * normalised per call. The item itself would always rank first; it is
 * blocked like an excluded id.
 */
#include "engine/similar.h"

#include <errno.h>
#include <string.h>

#include "engine/filter.h"
#include "engine/live.h"
#include "engine/recommend.h"

/* The optional user whose purchases are filtered out: *known is 0 when
 * user_id is empty or names nobody the model knows. */
static int find_item(const struct query *q, const char *id, uint32_t *item, struct err *e)
{
    int rc = model_find_item(q->model, q->slot, id, strlen(id), item);
    if (rc == ERR_NOT_FOUND)
        return err_set(e, ERR_NOT_FOUND, "item '%s' not found", id);
    if (rc != 0)
        return err_set(e, rc, "failed to look up item '%s' (%s)", id, err_strerror(rc));
    return 0;
}

static int check_request(const struct query *q, const Recsys__V1__SimilarItemsRequest *req,
                         uint32_t *n, struct err *e)
{
    int rc = filter_check_model(q, req->model, e);
    if (rc == 0)
        rc = filter_check_id("item_id", req->item_id, 1, e);
    if (rc == 0)
        rc = filter_check_id("user_id", req->user_id, 0, e);
    if (rc == 0)
        rc = filter_check_count(req->count, n, e);
    return rc;
}

int similar_run(const struct query *q, const Recsys__V1__SimilarItemsRequest *req,
                Recsys__V1__RecommendResponse **out, struct err *e)
{
    uint32_t n, item;
    struct model_user user;
    int known;
    int rc = check_request(q, req, &n, e);
    if (rc == 0)
        rc = find_item(q, req->item_id, &item, e);
    if (rc == 0)
        rc = filter_find_user(q, req->user_id, &user, &known, e);
    struct live_user live = {0};
    if (rc == 0 && req->user_id[0] != '\0')
        rc = live_user(q, req->user_id, known ? &user : NULL, &live, e);
    if (rc != 0)
        return rc;

    const struct filter_spec spec = {
        .user = known ? &user : NULL,
        .owned_now = live.events > 0 ? live.owned : NULL,
        .owned_now_count = live.owned_count,
        .exclude_ids = req->exclude_item_ids,
        .exclude_count = req->n_exclude_item_ids,
        .categories = req->categories,
        .category_count = req->n_categories,
        .self = item,
    };
    struct filter f;
    rc = filter_build(q, &spec, &f, e);
    if (rc != 0)
        return rc;

    const struct model *m = q->model;
    uint32_t stride = model_stride(m);
    const float *inv_norms = model_item_inv_norms(m);
    const struct score_scan scan = {
        .query = model_item_matrix(m) + (size_t)item * stride,
        .matrix = model_item_matrix(m),
        .rows = model_item_count(m),
        .stride = stride,
        .dim = model_dim(m),
        .row_scale = inv_norms,
        .query_scale = inv_norms[item],
    };
    struct score_hit *hits = arena_alloc(q->arena, (size_t)n * sizeof(*hits));
    if (hits == NULL)
        return err_set(e, -ENOMEM, "out of memory for %u results", n);
    uint32_t count = score_topn(&scan, n, filter_keep, &f, hits);
    return recommend_respond(
        q, hits, count,
        known ? RECSYS__V1__SOURCE__PERSONALIZED : RECSYS__V1__SOURCE__SOURCE_UNSPECIFIED, out, e);
}
