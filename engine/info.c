#include "engine/info.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#include "server/metrics.h"
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
    return 0;
}

static int describe_reloads(const struct query *q, Recsys__V1__ModelInfo *r)
{
    const struct reload_snapshot *s = q->reload;
    if (s == NULL)
        return 0;
    r->last_reload_error = copy(q->arena, s->last_error);
    if (r->last_reload_error == NULL)
        return -ENOMEM;
    r->reload_count = s->reload_count;
    r->failed_reload_count = s->failed_count;
    r->last_reload_attempt_unix = s->last_attempt_unix;
    return 0;
}

int info_run(const struct query *q, const Recsys__V1__ModelInfoRequest *req,
             Recsys__V1__ModelInfo **out, struct err *e)
{
    Recsys__V1__ModelInfo *r = arena_alloc(q->arena, sizeof(*r));
    if (r == NULL)
        return err_set(e, -ENOMEM, "out of memory for model info");
    recsys__v1__model_info__init(r);
    /* A static string: it outlives every call. */
    r->kernel = (char *)score_kernel_name();
    if ((q->model != NULL && describe_model(q, r) != 0) || describe_reloads(q, r) != 0)
        return err_set(e, -ENOMEM, "out of memory for model info");
    *out = r;
    return 0;
}

/* ---- the same facts as Prometheus series ---------------------------------- */

static void write_model(const struct model *m, FILE *out)
{
    const struct model_info *mi = model_info(m);
    fputs("# HELP recsys_model_info The model served; labels describe it, the value is 1.\n"
          "# TYPE recsys_model_info gauge\n"
          "recsys_model_info{version=",
          out);
    metrics_label(out, mi->version);
    fputs(",checksum=", out);
    metrics_label(out, mi->checksum);
    fprintf(out, ",element_type=\"%s\",scan=\"%s\",kernel=\"%s\"} 1\n",
            model_elem_names[mi->elem_type], model_elem_names[scan_elem(m)], score_kernel_name());
    metrics_series(out, "recsys_model_items", "gauge", "Items in the model served.",
                   (double)mi->item_count);
    metrics_series(out, "recsys_model_users", "gauge", "Users in the model served.",
                   (double)mi->user_count);
    metrics_series(out, "recsys_model_dimension", "gauge", "Factor dimension of the model served.",
                   (double)mi->dim);
    metrics_series(out, "recsys_model_created_timestamp_seconds", "gauge",
                   "When the model served was created, unix seconds.", (double)mi->created_at);
    metrics_series(out, "recsys_model_loaded_timestamp_seconds", "gauge",
                   "When the model served was loaded, unix seconds.", (double)mi->loaded_at);
}

int info_write_metrics(const struct reload_snapshot *snap, FILE *out)
{
    metrics_series(out, "recsys_model_loaded", "gauge",
                   "1 while a model is served, 0 while none is.", snap->model != NULL);
    if (snap->model != NULL)
        write_model(snap->model, out);
    metrics_series(out, "recsys_model_loads_total", "counter",
                   "Models loaded, the first one included.", (double)snap->reload_count);
    metrics_series(out, "recsys_model_load_failures_total", "counter",
                   "Load attempts refused: a missing or invalid model file.",
                   (double)snap->failed_count);
    metrics_series(out, "recsys_model_last_load_attempt_timestamp_seconds", "gauge",
                   "When the model file was last loaded or refused, unix seconds.",
                   (double)snap->last_attempt_unix);
    metrics_series(out, "recsys_model_directory_watched", "gauge",
                   "1 while the model's directory is followed for new files; 0 from its "
                   "removal until it is back.",
                   snap->watching);
    metrics_series(out, "recsys_model_last_load_failed", "gauge",
                   "1 when the last load attempt was refused (or the model withdrawn), else 0.",
                   snap->last_error[0] != '\0');
    return ferror(out) ? -EIO : 0;
}
