#include "engine/info.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#include "engine/filter.h"
#include "engine/scan.h"
#include "engine/score.h"

static char *copy(struct arena *a, const char *s)
{
    return arena_strndup(a, s, strlen(s));
}

/* describe_model - the model's own fields of @r. The strings are copied:
 * the response must not point into a model that may be unmapped once the
 * call has let go of its snapshot. */
static int describe_model(const struct query *q, Recsys__V1__ModelInfo *r)
{
    const struct model_info *mi = model_info(q->model);
    /* model_open refuses element types it has no name for. */
    assert(mi->elem_type < MODEL_ELEM_COUNT);
    r->element_type = copy(q->arena, model_elem_names[mi->elem_type]);
    /* Static strings, like the kernel's. */
    r->scan = (char *)model_elem_names[scan_elem(q->model)];
    r->quantized = arena_alloc(q->arena, MODEL_ELEM_COUNT * sizeof(*r->quantized));
    if (r->quantized == NULL)
        return -ENOMEM;
    for (int elem = MODEL_ELEM_F32 + 1; elem < MODEL_ELEM_COUNT; elem++)
        if (model_item_copy(q->model, elem) != NULL)
            r->quantized[r->n_quantized++] = (char *)model_elem_names[elem];
    r->model_version = copy(q->arena, mi->version);
    r->path = copy(q->arena, mi->path);
    r->checksum = copy(q->arena, mi->checksum);
    if (r->element_type == NULL || r->model_version == NULL || r->path == NULL ||
        r->checksum == NULL)
        return -ENOMEM;
    r->created_at_unix = mi->created_at;
    r->loaded_at_unix = mi->loaded_at;
    r->dimension = mi->dim;
    r->user_count = mi->user_count;
    r->item_count = mi->item_count;
    r->data_end_unix_ms = model_training(q->model)->data_end_unix_ms;
    r->model_name = copy(q->arena, q->model_name);
    if (r->model_name == NULL)
        return -ENOMEM;
    return 0;
}

static int describe_events(const struct query *q, Recsys__V1__ModelInfo *r)
{
    const struct live_status *l = q->live;
    if (l == NULL)
        return 0;
    Recsys__V1__EventsState *s = arena_alloc(q->arena, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    recsys__v1__events_state__init(s);
    s->dir = copy(q->arena, l->dir);
    s->error = copy(q->arena, l->error);
    if (s->dir == NULL || s->error == NULL)
        return -ENOMEM;
    s->fold_ins = l->fold_ins;
    if (q->events != NULL) {
        struct events_stats st;
        events_stats(q->events, &st);
        s->pending_purchases = st.stored[EVENTS_PURCHASE];
        s->pending_views = st.stored[EVENTS_VIEW];
        s->pending_refunds = st.stored[EVENTS_REFUND];
        s->recorded_purchases = st.recorded[EVENTS_PURCHASE];
        s->recorded_views = st.recorded[EVENTS_VIEW];
        s->recorded_refunds = st.recorded[EVENTS_REFUND];
        s->used_bytes = st.used_bytes;
        s->file_bytes = st.file_bytes;
        s->max_bytes = st.max_bytes;
        s->compacted_through_unix_ms = st.compacted_through_ms;
    }
    r->events = s;
    return 0;
}

static int describe_reloads(const struct query *q, Recsys__V1__ModelInfo *r)
{
    const struct model_status *s = q->status;
    if (s == NULL)
        return 0;
    r->last_reload_error = copy(q->arena, s->last_error);
    if (r->last_reload_error == NULL)
        return -ENOMEM;
    r->reload_count = s->loads;
    r->failed_reload_count = s->failed_loads;
    r->last_reload_attempt_unix = s->last_attempt_unix;
    return 0;
}

/* summarize - ModelSummary of listed model @en, whose route share is
 * @share percent. Inside the view's section. */
static Recsys__V1__ModelSummary *summarize(struct arena *a, const struct models_entry *en,
                                           uint32_t share)
{
    Recsys__V1__ModelSummary *s = arena_alloc(a, sizeof(*s));
    if (s == NULL)
        return NULL;
    recsys__v1__model_summary__init(s);
    const struct reload_snapshot *snap = reload_current(en->reload);
    const struct model *m = snap->model;
    const struct model_info *mi = m != NULL ? model_info(m) : NULL;
    s->name = copy(a, en->name);
    s->model_version = copy(a, mi != NULL ? mi->version : "");
    s->path = copy(a, mi != NULL ? mi->path : "");
    s->last_reload_error = copy(a, snap->last_error);
    if (s->name == NULL || s->model_version == NULL || s->path == NULL ||
        s->last_reload_error == NULL)
        return NULL;
    s->loaded = m != NULL;
    if (mi != NULL) {
        s->file_bytes = mi->file_bytes;
        s->user_count = mi->user_count;
        s->item_count = mi->item_count;
        s->loaded_at_unix = mi->loaded_at;
        s->data_end_unix_ms = model_training(m)->data_end_unix_ms;
    }
    s->reload_count = snap->reload_count;
    s->failed_reload_count = snap->failed_count;
    s->last_reload_attempt_unix = snap->last_attempt_unix;
    s->route_share = share;
    return s;
}

/* describe_route - the route in force of view @v. */
static Recsys__V1__Route *describe_route(struct arena *a, const struct models_view *v)
{
    Recsys__V1__Route *r = arena_alloc(a, sizeof(*r));
    const struct route *rt = v->route;
    if (r == NULL)
        return NULL;
    recsys__v1__route__init(r);
    r->default_model = copy(a, rt->default_name);
    r->salt = arena_strndup(a, rt->salt, rt->salt_len);
    r->source = copy(a, v->route_source);
    r->error = copy(a, v->route_error);
    r->dir = copy(a, v->dir);
    r->split = arena_alloc(a, (rt->n_arms + 1) * sizeof(*r->split));
    if (r->default_model == NULL || r->salt == NULL || r->source == NULL || r->error == NULL ||
        r->dir == NULL || r->split == NULL)
        return NULL;
    r->since_unix = v->route_since_unix;
    for (uint32_t i = 0; i < rt->n_arms; i++) {
        Recsys__V1__RouteArm *arm = arena_alloc(a, sizeof(*arm));
        if (arm == NULL)
            return NULL;
        recsys__v1__route_arm__init(arm);
        arm->model = copy(a, rt->arms[i].name);
        if (arm->model == NULL)
            return NULL;
        arm->weight = rt->arms[i].weight;
        r->split[r->n_split++] = arm;
    }
    return r;
}

/* describe_models - every model of the set the call was picked from, the
 * route, and the bytes mapped. */
static int describe_models(const struct query *q, Recsys__V1__ModelInfo *r)
{
    const struct models_view *v = q->models;
    if (v == NULL)
        return 0;
    uint32_t share[MODELS_MAX];
    models_shares(v, share);
    r->models = arena_alloc(q->arena, (v->n + 1) * sizeof(*r->models));
    if (r->models == NULL || (r->route = describe_route(q->arena, v)) == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < v->n; i++)
        if ((r->models[r->n_models++] = summarize(q->arena, &v->entries[i], share[i])) == NULL)
            return -ENOMEM;
    r->mapped_bytes = models_mapped_bytes(v);
    return 0;
}

int info_run(const struct query *q, const Recsys__V1__ModelInfoRequest *req,
             Recsys__V1__ModelInfo **out, struct err *e)
{
    Recsys__V1__ModelInfo *r = arena_alloc(q->arena, sizeof(*r));
    if (r == NULL)
        return err_set(e, -ENOMEM, "out of memory for model info");
    recsys__v1__model_info__init(r);
    int rc = filter_check_model(q, req->model, e);
    if (rc != 0)
        return rc;
    /* A static string: it outlives every call. */
    r->kernel = (char *)score_kernel_name();
    if ((q->model != NULL && describe_model(q, r) != 0) || describe_reloads(q, r) != 0 ||
        describe_events(q, r) != 0 || describe_models(q, r) != 0)
        return err_set(e, -ENOMEM, "out of memory for model info");
    *out = r;
    return 0;
}
