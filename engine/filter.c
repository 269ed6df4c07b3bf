#include "engine/filter.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MASK_BITS 64

/* ---- request checks ---------------------------------------------------- */

int filter_check_id(const char *field, const char *id, int required, struct err *e)
{
    size_t len = strlen(id);
    if (len == 0 && required)
        return err_set(e, ERR_INVALID, "%s is empty", field);
    if (len > MODEL_ID_MAX)
        return err_set(e, ERR_INVALID, "%s is %zu bytes, longer than %d", field, len, MODEL_ID_MAX);
    return 0;
}

int filter_find_user(const struct query *q, const char *id, struct model_user *u, int *known,
                     struct err *e)
{
    *known = 0;
    if (id[0] == '\0')
        return 0;
    int rc = model_find_user(q->model, q->slot, id, strlen(id), u);
    if (rc == ERR_NOT_FOUND)
        return 0;
    if (rc != 0)
        return err_set(e, rc, "failed to look up user '%s' (%s)", id, err_strerror(rc));
    *known = 1;
    return 0;
}

int filter_check_model(const struct query *q, const char *name, struct err *e)
{
    int rc = filter_check_id("model", name, 0, e);
    if (rc != 0 || name[0] == '\0' || strcmp(name, q->model_name) == 0)
        return rc;
    return err_set(e, ERR_NOT_FOUND, "model '%s' not found", name);
}

int filter_check_count(uint32_t count, uint32_t *n, struct err *e)
{
    if (count > QUERY_COUNT_MAX)
        return err_set(e, ERR_INVALID, "count %u exceeds %d", count, QUERY_COUNT_MAX);
    *n = count == 0 ? QUERY_COUNT_DEFAULT : count;
    return 0;
}

int filter_check_ids(const char *field, char *const *ids, size_t count, size_t max, struct err *e)
{
    if (count > max)
        return err_set(e, ERR_INVALID, "%s has %zu entries, more than %zu", field, count, max);
    for (size_t i = 0; i < count; i++) {
        size_t len = strlen(ids[i]);
        if (len > MODEL_ID_MAX)
            return err_set(e, ERR_INVALID, "%s[%zu] is %zu bytes, longer than %d", field, i, len,
                           MODEL_ID_MAX);
    }
    return 0;
}

/* The lists filter_build reads, each against its limit. */
static int check_spec(const struct filter_spec *spec, struct err *e)
{
    int rc =
        filter_check_ids("owned_item_ids", spec->owned_ids, spec->owned_count, QUERY_IDS_MAX, e);
    if (rc == 0)
        rc = filter_check_ids("exclude_item_ids", spec->exclude_ids, spec->exclude_count,
                              QUERY_IDS_MAX, e);
    if (rc == 0)
        rc = filter_check_ids("categories", spec->categories, spec->category_count,
                              QUERY_CATEGORIES_MAX, e);
    return rc;
}

/* ---- building ---------------------------------------------------------- */

/* Append the indices of the ids the model knows to blocked[*n ..]. */
static int resolve_items(const struct query *q, char *const *ids, size_t count, uint32_t *blocked,
                         uint32_t *n, struct err *e)
{
    for (size_t i = 0; i < count; i++) {
        int rc = model_find_item(q->model, q->slot, ids[i], strlen(ids[i]), &blocked[*n]);
        if (rc == ERR_NOT_FOUND)
            continue;
        if (rc != 0)
            return err_set(e, rc, "failed to look up item '%s' (%s)", ids[i], err_strerror(rc));
        (*n)++;
    }
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Sort and drop duplicates; returns the new length. */
static uint32_t sort_unique(uint32_t *v, uint32_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof(*v), cmp_u32);
    uint32_t out = 1;
    for (uint32_t i = 1; i < n; i++)
        if (v[i] != v[out - 1])
            v[out++] = v[i];
    return out;
}

static int build_blocked(const struct query *q, const struct filter_spec *spec, struct filter *f,
                         struct err *e)
{
    uint32_t owned = spec->owned_now != NULL ? spec->owned_now_count
                     : spec->user != NULL    ? spec->user->owned_count
                                             : 0;
    /* Bounded: owned by the model, the lists by check_spec, so no overflow. */
    size_t cap = (size_t)owned + spec->owned_count + spec->exclude_count + 1;
    uint32_t *blocked = arena_alloc(q->arena, cap * sizeof(*blocked));
    if (blocked == NULL)
        return err_set(e, -ENOMEM, "out of memory for %zu blocked items", cap);
    if (spec->owned_now != NULL)
        memcpy(blocked, spec->owned_now, (size_t)owned * sizeof(*blocked));
    else if (spec->user != NULL)
        model_user_owned(spec->user, blocked);
    uint32_t n = owned;
    int rc = resolve_items(q, spec->owned_ids, spec->owned_count, blocked, &n, e);
    if (rc == 0)
        rc = resolve_items(q, spec->exclude_ids, spec->exclude_count, blocked, &n, e);
    if (rc != 0)
        return rc;
    if (spec->self >= 0)
        blocked[n++] = (uint32_t)spec->self;
    f->blocked = blocked;
    f->blocked_count = sort_unique(blocked, n);
    return 0;
}

/* The category bitmap, or NULL (all categories) when the request names none. */
static int build_categories(const struct query *q, const struct filter_spec *spec, struct filter *f,
                            struct err *e)
{
    f->category_mask = NULL;
    if (spec->category_count == 0)
        return 0;
    size_t words = (model_category_count(q->model) + MASK_BITS - 1) / MASK_BITS;
    uint64_t *mask = arena_calloc(q->arena, words, sizeof(*mask));
    if (mask == NULL)
        return err_set(e, -ENOMEM, "out of memory for a category mask");
    for (size_t i = 0; i < spec->category_count; i++) {
        const char *name = spec->categories[i];
        uint32_t cat;
        if (model_find_category(q->model, name, strlen(name), &cat) == 0)
            mask[cat / MASK_BITS] |= UINT64_C(1) << (cat % MASK_BITS);
    }
    f->category_mask = mask;
    return 0;
}

int filter_build(const struct query *q, const struct filter_spec *spec, struct filter *f,
                 struct err *e)
{
    int rc = check_spec(spec, e);
    if (rc != 0)
        return rc;
    f->attrs = model_item_attrs(q->model);
    f->user_tier = spec->user != NULL ? spec->user->tier : 0;
    f->purchasable_only = spec->purchasable_only;
    rc = build_blocked(q, spec, f, e);
    if (rc != 0)
        return rc;
    return build_categories(q, spec, f, e);
}

/* ---- checking ---------------------------------------------------------- */

int filter_blocks(const struct filter *f, uint32_t item)
{
    uint32_t lo = 0, hi = f->blocked_count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (f->blocked[mid] < item)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < f->blocked_count && f->blocked[lo] == item;
}

static int category_allowed(const struct filter *f, uint32_t cat)
{
    return f->category_mask == NULL || (f->category_mask[cat / MASK_BITS] >> (cat % MASK_BITS)) & 1;
}

int filter_keep(const void *filter, uint32_t item)
{
    const struct filter *f = filter;
    const struct model_item_attr *a = &f->attrs[item];
    if (!a->on_sale || !category_allowed(f, a->category))
        return 0;
    if (f->purchasable_only && filter_in_membership(a->tier, f->user_tier))
        return 0;
    return !filter_blocks(f, item);
}
