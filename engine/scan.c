/*
 * scan: the process-wide choice of item-matrix copy (scan.h).
 */
#include "engine/scan.h"

#include <stdatomic.h>
#include <string.h>

#include "engine/score.h"
#include "engine/split.h"

/* MODEL_ELEM_COUNT stands for "auto". Set once at start; atomic so that a
 * test may change it between calls from any thread. */
static _Atomic int preferred = MODEL_ELEM_COUNT;

/* Smallest first: the order "auto" tries the copies in. */
static const enum model_elem by_size[] = {MODEL_ELEM_INT8, MODEL_ELEM_BF16, MODEL_ELEM_F32};

int scan_select(const char *name, struct err *e)
{
    if (strcmp(name, "auto") == 0) {
        atomic_store(&preferred, MODEL_ELEM_COUNT);
        return 0;
    }
    for (int elem = 0; elem < MODEL_ELEM_COUNT; elem++)
        if (strcmp(name, model_elem_names[elem]) == 0) {
            atomic_store(&preferred, elem);
            return 0;
        }
    return err_set(e, ERR_INVALID, "unknown scan '%s' (want auto, f32, bf16 or int8)", name);
}

const char *scan_preference(void)
{
    int p = atomic_load(&preferred);
    return p == MODEL_ELEM_COUNT ? "auto" : model_elem_names[p];
}

static uint64_t matrix_bytes(const struct model *m, enum model_elem elem)
{
    return (uint64_t)model_item_count(m) * model_stride(m) *
           score_elem_bytes((enum score_elem)elem);
}

/* Whether "auto" takes @elem: present in @m, and faster to scan than f32
 * with the current kernel on a catalog this large. */
static int worth_scanning(const struct model *m, enum model_elem elem)
{
    if (elem == MODEL_ELEM_F32)
        return 1;
    return model_item_copy(m, elem) != NULL && score_reduced_pays((enum score_elem)elem) &&
           matrix_bytes(m, MODEL_ELEM_F32) >= SCAN_REDUCED_BYTES;
}

/* Set once at start, like the preference. */
static _Atomic unsigned long long split_bytes = SCAN_SPLIT_BYTES;

void scan_split_from(unsigned long long bytes)
{
    atomic_store(&split_bytes, bytes);
}

unsigned scan_parts(const struct model *m, enum model_elem elem)
{
    return matrix_bytes(m, elem) < atomic_load(&split_bytes) ? 1 : split_parts();
}

enum model_elem scan_elem(const struct model *m)
{
    int p = atomic_load(&preferred);
    if (p != MODEL_ELEM_COUNT && model_item_copy(m, p) != NULL)
        return p;
    size_t i = 0;
    while (!worth_scanning(m, by_size[i]))
        i++; /* the last, f32, always is */
    return by_size[i];
}

_Static_assert((int)SCORE_ELEM_BF16 == (int)MODEL_ELEM_BF16 &&
                   (int)SCORE_ELEM_INT8 == (int)MODEL_ELEM_INT8,
               "score and model number element types alike");

void scan_plan(const struct model *m, const float *query, enum model_elem elem,
               struct scan_plan *out)
{
    uint32_t stride = model_stride(m);
    *out = (struct scan_plan){
        .scan = {.query = query,
                 .matrix = model_item_matrix(m),
                 .rows = model_item_count(m),
                 .stride = stride,
                 .dim = model_dim(m)},
        .elem = elem,
        .parts = scan_parts(m, elem),
        .exact_max_norm = model_item_copy(m, MODEL_ELEM_F32)->max_norm,
    };
    if (elem == MODEL_ELEM_F32)
        return;
    const struct model_item_copy *c = model_item_copy(m, elem);
    out->reduced = (struct score_reduced){
        .elem = (enum score_elem)elem,
        .matrix = c->rows,
        .row_scale = c->scale,
        .max_norm = c->max_norm,
        .max_error = c->max_error,
        .exact_max_norm = out->exact_max_norm,
    };
}
