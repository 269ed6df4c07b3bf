/*
 * catalog: catalog.csv -> items, attributes, categories (catalog.h).
 *
 * The values are spelled as the importer spells them: price_cents an
 * integer >= 0, on_sale one of 0, 1, true, false (any case), member_tier
 * 0..255, categories 1..MODEL_ID_MAX bytes without a newline.
 */
#include "catalog.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "recsys-model/catalog_fields.h"
#include "recsys-model/csv.h"
#include "recsys-model/idmap.h"
#include "recsys-model/quote.h"

/* Growth of the parallel arrays, doubling. */
static int grow(struct catalog *c, uint32_t *cap)
{
    uint32_t n = *cap ? *cap * 2 : 1024;
    char **ids = realloc(c->ids, n * sizeof(*ids));
    if (ids != NULL)
        c->ids = ids;
    struct model_item_attr *attrs = realloc(c->attrs, n * sizeof(*attrs));
    if (attrs != NULL)
        c->attrs = attrs;
    if (ids == NULL || attrs == NULL)
        return -ENOMEM;
    *cap = n;
    return 0;
}

static int category(struct catalog *c, struct idmap *names, const struct csv *r,
                    const struct csv_record *rec, uint32_t col, uint32_t *index, struct err *e)
{
    const char *name = rec->fields[col];
    size_t len = rec->lens[col];
    char q[QUOTE_BUF];
    if (len == 0 || len > MODEL_ID_MAX || memchr(name, '\n', len) != NULL)
        return csv_fail(r, rec->line, e, "category '%s' must be 1..%d bytes without a newline",
                        quote(q, sizeof(q), name, len), MODEL_ID_MAX);
    if (idmap_get(names, name, len, index) == 0)
        return 0;
    char **p = realloc(c->categories, (c->category_count + 1) * sizeof(*p));
    if (p == NULL)
        return err_set(e, -ENOMEM, "out of memory for categories");
    c->categories = p;
    uint32_t unused;
    if ((p[c->category_count] = strdup(name)) == NULL ||
        idmap_put(names, p[c->category_count], len, c->category_count, &unused) < 0) {
        free(p[c->category_count]);
        return err_set(e, -ENOMEM, "out of memory for categories");
    }
    *index = c->category_count++;
    return 0;
}

static int row(struct catalog *c, struct idmap *names, const struct csv *r,
               const struct csv_record *rec, const uint32_t *cols, struct err *e)
{
    const char *id = rec->fields[cols[CATALOG_ITEM]];
    uint32_t len = rec->lens[cols[CATALOG_ITEM]], first;
    char q[QUOTE_BUF];
    if (len == 0 || len > MODEL_ID_MAX || memchr(id, '\n', len) != NULL)
        return csv_fail(r, rec->line, e, "item_id '%s' must be 1..%d bytes without a newline",
                        quote(q, sizeof(q), id, len), MODEL_ID_MAX);
    struct model_item_attr *a = &c->attrs[c->count];
    memset(a, 0, sizeof(*a));
    int rc = category(c, names, r, rec, cols[CATALOG_CATEGORY], &a->category, e);
    if (rc == 0)
        rc = catalog_values(r, rec, cols, a, e);
    if (rc != 0)
        return rc;
    if ((c->ids[c->count] = strdup(id)) == NULL)
        return err_set(e, -ENOMEM, "out of memory for item ids");
    rc = idmap_put(c->index, c->ids[c->count], len, c->count, &first);
    if (rc < 0)
        return err_set(e, -ENOMEM, "out of memory for item ids");
    c->count++;
    if (rc == 1)
        return csv_fail(r, rec->line, e, "item '%s' is listed twice (first as item %u)",
                        quote(q, sizeof(q), id, len), first + 1);
    return 0;
}

int catalog_read(const char *path, struct catalog *c, struct err *e)
{
    struct csv *r = NULL;
    struct idmap *names = NULL;
    struct csv_record rec;
    uint32_t cols[CATALOG_COLUMNS], cap = 0;
    int rc = idmap_create(1024, &c->index) != 0 || idmap_create(16, &names) != 0
                 ? err_set(e, -ENOMEM, "out of memory for the catalog")
                 : csv_open(path, &r, e);
    if (rc == 0)
        rc = csv_header(r, catalog_columns, CATALOG_COLUMNS, cols, e);
    while (rc == 0 && (rc = csv_next(r, &rec, e)) == 1)
        rc = c->count == cap && grow(c, &cap) != 0
                 ? err_set(e, -ENOMEM, "out of memory for %u items", cap)
                 : row(c, names, r, &rec, cols, e);
    if (rc == 0 && c->count == 0)
        rc = err_set(e, ERR_INVALID, "%s: no items (a model needs at least one)", path);
    csv_close(r);
    idmap_destroy(names);
    return rc;
}

void catalog_free(struct catalog *c)
{
    for (uint32_t i = 0; i < c->count; i++)
        free(c->ids[i]);
    for (uint32_t i = 0; i < c->category_count; i++)
        free(c->categories[i]);
    free(c->ids);
    free(c->attrs);
    free(c->categories);
    idmap_destroy(c->index);
}
