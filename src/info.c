#include "info.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

/* Names of the element types, indexed by MODEL_ELEM_*. */
static const char *const elem_names[] = {
    [MODEL_ELEM_F32] = "f32",
};

static char *copy(struct arena *a, const char *s)
{
    return arena_strndup(a, s, strlen(s));
}

int info_run(const struct query *q, const Recsys__V1__ModelInfoRequest *req,
             Recsys__V1__ModelInfo **out, struct err *e)
{
    const struct model_info *mi = model_info(q->model);
    Recsys__V1__ModelInfo *r = arena_alloc(q->arena, sizeof(*r));
    if (r == NULL)
        return err_set(e, -ENOMEM, "out of memory for model info");
    recsys__v1__model_info__init(r);
    /* model_open refuses element types it has no name for. */
    assert(mi->elem_type < sizeof(elem_names) / sizeof(elem_names[0]));
    r->element_type = copy(q->arena, elem_names[mi->elem_type]);
    r->model_version = copy(q->arena, mi->version);
    r->path = copy(q->arena, mi->path);
    r->checksum = copy(q->arena, mi->checksum);
    if (r->element_type == NULL || r->model_version == NULL || r->path == NULL ||
        r->checksum == NULL)
        return err_set(e, -ENOMEM, "out of memory for model info");
    r->created_at_unix = mi->created_at;
    r->loaded_at_unix = mi->loaded_at;
    r->dimension = mi->dim;
    r->user_count = mi->user_count;
    r->item_count = mi->item_count;
    *out = r;
    return 0;
}
