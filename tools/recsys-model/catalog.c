/*
 * catalog: read a catalog CSV (catalog.h).
 */
#include "catalog.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "csv.h"
#include "idmap.h"
#include "opts.h"
#include "quote.h"

enum { CAT_ITEM, CAT_CATEGORY, CAT_PRICE, CAT_ON_SALE, CAT_TIER, CAT_COLUMNS };
static const char *const catalog_columns[CAT_COLUMNS] = {
    [CAT_ITEM] = "item_id",    [CAT_CATEGORY] = "category", [CAT_PRICE] = "price_cents",
    [CAT_ON_SALE] = "on_sale", [CAT_TIER] = "member_tier",
};

static int parse_price(const char *s, struct model_item_attr *a)
{
    uint64_t v;
    int rc = opts_parse_uint(s, 0, INT64_MAX, &v);
    a->price_cents = (int64_t)v;
    return rc;
}

static int parse_on_sale(const char *s, struct model_item_attr *a)
{
    static const struct {
        const char *text;
        uint8_t value;
    } words[] = {{"0", 0}, {"1", 1}, {"false", 0}, {"true", 1}};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strcasecmp(s, words[i].text) == 0) {
            a->on_sale = words[i].value;
            return 0;
        }
    return ERR_INVALID;
}

static int parse_tier(const char *s, struct model_item_attr *a)
{
    uint64_t v;
    int rc = opts_parse_uint(s, 0, CATALOG_TIER_MAX, &v);
    a->tier = (uint8_t)v;
    return rc;
}

/* The catalog columns that are plain values of the item's attributes. */
static const struct attr_column {
    int column;
    int (*parse)(const char *s, struct model_item_attr *a);
    const char *want;
} attr_columns[] = {
    {CAT_PRICE, parse_price, "an integer >= 0"},
    {CAT_ON_SALE, parse_on_sale, "one of 0, 1, true, false"},
    {CAT_TIER, parse_tier, "an integer in 0..255"},
};

/* Room for twice as many items in the three per-item arrays. */
static int grow_items(struct catalog *c)
{
    uint32_t n = c->item_cap ? c->item_cap * 2 : 1024;
    char **ids = realloc(c->item_ids, n * sizeof(*ids));
    if (ids != NULL)
        c->item_ids = ids;
    struct model_item_attr *attrs = ids ? realloc(c->attrs, n * sizeof(*attrs)) : NULL;
    if (attrs != NULL)
        c->attrs = attrs;
    uint64_t *line = attrs ? realloc(c->line, n * sizeof(*line)) : NULL;
    if (line == NULL)
        return -ENOMEM;
    c->line = line;
    c->item_cap = n;
    return 0;
}

/* Category @name's index; a new name is added at the end. */
static int category_index(struct catalog *c, const struct csv *r, const struct csv_record *rec,
                          uint32_t col, uint32_t *index, struct err *e)
{
    const char *name = rec->fields[col];
    size_t len = rec->lens[col];
    char q[QUOTE_BUF];
    if (len == 0 || len > MODEL_ID_MAX || memchr(name, '\n', len) != NULL)
        return csv_fail(r, rec->line, e, "category '%s' must be 1..%d bytes without a newline",
                        quote(q, sizeof(q), name, len), MODEL_ID_MAX);
    if (idmap_get(c->category_index, name, len, index) == 0)
        return 0;
    if (c->category_count == c->category_cap) {
        uint32_t cap = c->category_cap ? c->category_cap * 2 : 16;
        char **p = realloc(c->categories, cap * sizeof(*p));
        if (p == NULL)
            return err_set(e, -ENOMEM, "out of memory for categories");
        c->categories = p;
        c->category_cap = cap;
    }
    char *copy = strdup(name);
    uint32_t unused;
    if (copy == NULL || idmap_put(c->category_index, copy, len, c->category_count, &unused) < 0) {
        free(copy);
        return err_set(e, -ENOMEM, "out of memory for categories");
    }
    *index = c->category_count;
    c->categories[c->category_count++] = copy;
    return 0;
}

/* A catalog read on its own: item @id is new (its index the next one), or
 * listed twice. */
static int define_item(struct catalog *c, const struct csv *r, const struct csv_record *rec,
                       const char *id, uint32_t len, uint32_t *item, struct err *e)
{
    char q[QUOTE_BUF];
    if (len == 0 || len > MODEL_ID_MAX || memchr(id, '\n', len) != NULL)
        return csv_fail(r, rec->line, e, "item id '%s' must be 1..%d bytes without a newline",
                        quote(q, sizeof(q), id, len), MODEL_ID_MAX);
    if (c->count == c->item_cap && grow_items(c) != 0)
        return err_set(e, -ENOMEM, "out of memory for %u items", c->count);
    char *copy = strdup(id);
    uint32_t existing;
    int rc = copy == NULL ? -ENOMEM : idmap_put(c->item_index, copy, len, c->count, &existing);
    if (rc < 0) {
        free(copy);
        return err_set(e, -ENOMEM, "out of memory for %u items", c->count);
    }
    if (rc == 1) {
        free(copy);
        return csv_fail(r, rec->line, e, "item '%s' is listed twice (first on line %llu)",
                        quote(q, sizeof(q), id, len), (unsigned long long)c->line[existing]);
    }
    c->item_ids[c->count] = copy;
    c->attrs[c->count] = (struct model_item_attr){0};
    c->line[c->count] = 0;
    *item = c->count++;
    return 0;
}

/* Against the given ids: a known item, listed once. */
static int given_item(struct catalog *c, const struct csv *r, const struct csv_record *rec,
                      const char *id, uint32_t len, uint32_t *item, struct err *e)
{
    char q[QUOTE_BUF];
    if (ids_find(c->given, id, len, item) != 0)
        return csv_fail(r, rec->line, e, "item '%s' is not in %s", quote(q, sizeof(q), id, len),
                        ids_path(c->given));
    if (c->line[*item] != 0)
        return csv_fail(r, rec->line, e, "item '%s' is listed twice (first on line %llu)",
                        quote(q, sizeof(q), id, len), (unsigned long long)c->line[*item]);
    return 0;
}

static int catalog_row(struct catalog *c, const struct csv *r, const struct csv_record *rec,
                       const uint32_t *cols, struct err *e)
{
    const char *id = rec->fields[cols[CAT_ITEM]];
    uint32_t item, len = rec->lens[cols[CAT_ITEM]];
    char q[QUOTE_BUF];
    int rc = c->given != NULL ? given_item(c, r, rec, id, len, &item, e)
                              : define_item(c, r, rec, id, len, &item, e);
    if (rc != 0)
        return rc;
    c->line[item] = rec->line;
    struct model_item_attr *a = &c->attrs[item];
    rc = category_index(c, r, rec, cols[CAT_CATEGORY], &a->category, e);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < sizeof(attr_columns) / sizeof(attr_columns[0]); i++) {
        const struct attr_column *ac = &attr_columns[i];
        const char *s = rec->fields[cols[ac->column]];
        if (ac->parse(s, a) != 0)
            return csv_fail(r, rec->line, e, "%s '%s' is not %s", catalog_columns[ac->column],
                            quote(q, sizeof(q), s, rec->lens[cols[ac->column]]), ac->want);
    }
    return 0;
}

/* Against given ids, every one of them must have been listed. */
static int check_complete(const struct catalog *c, struct err *e)
{
    for (uint32_t i = 0; c->given != NULL && i < c->count; i++) {
        const char *id = ids_array(c->given)[i];
        char q[QUOTE_BUF];
        if (c->line[i] == 0)
            return err_set(e, ERR_INVALID, "%s: item '%s' (%s:%u) is not in the catalog",
                           c->path, quote(q, sizeof(q), id, strlen(id)), ids_path(c->given),
                           i + 1);
    }
    if (c->count == 0)
        return err_set(e, ERR_INVALID, "%s: no items (a model needs at least one)", c->path);
    return 0;
}

int catalog_read(const char *path, const struct ids *items, struct catalog *c, struct err *e)
{
    uint32_t cols[CAT_COLUMNS];
    struct csv *r = NULL;
    struct csv_record rec;
    c->path = path;
    c->given = items;
    if (items != NULL) {
        c->count = ids_count(items);
        c->attrs = calloc(c->count ? c->count : 1, sizeof(*c->attrs));
        c->line = calloc(c->count ? c->count : 1, sizeof(*c->line));
        if (c->attrs == NULL || c->line == NULL)
            return err_set(e, -ENOMEM, "out of memory for %u catalog entries", c->count);
    } else if (idmap_create(1024, &c->item_index) != 0) {
        return err_set(e, -ENOMEM, "out of memory for the catalog");
    }
    if (idmap_create(16, &c->category_index) != 0)
        return err_set(e, -ENOMEM, "out of memory for the catalog");
    int rc = csv_open(path, &r, e);
    if (rc == 0)
        rc = csv_header(r, catalog_columns, CAT_COLUMNS, cols, e);
    while (rc == 0 && (rc = csv_next(r, &rec, e)) == 1)
        rc = catalog_row(c, r, &rec, cols, e);
    csv_close(r);
    return rc != 0 ? rc : check_complete(c, e);
}

int catalog_find(const struct catalog *c, const char *id, size_t len, uint32_t *item)
{
    if (c->given != NULL)
        return ids_find(c->given, id, len, item);
    return idmap_get(c->item_index, id, len, item);
}

void catalog_free(struct catalog *c)
{
    for (uint32_t i = 0; i < c->category_count; i++)
        free(c->categories[i]);
    for (uint32_t i = 0; c->item_ids != NULL && i < c->count; i++)
        free(c->item_ids[i]);
    free(c->categories);
    free(c->item_ids);
    free(c->attrs);
    free(c->line);
    idmap_destroy(c->category_index);
    idmap_destroy(c->item_index);
}
