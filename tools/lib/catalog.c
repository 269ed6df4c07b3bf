/*
 * catalog: catalog.csv -> items, attributes, categories (catalog.h).
 *
 * A row is read in the same steps in both modes: its item, its category,
 * its values. With an id file the item is looked up there and a second row
 * for it is refused at once. Without one the row becomes a new item at the
 * end, and its id is entered (a repeated id refused) only after the rest of
 * the row, so that a repeated row with a bad value is reported for the
 * value, as recsys-train always did.
 */
#include "tools/lib/catalog.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tools/lib/csv.h"
#include "tools/lib/idmap.h"
#include "tools/lib/ids.h"
#include "tools/lib/opts.h"
#include "tools/lib/quote.h"

/* ==== columns and values ============================================ */

enum column { ITEM, CATEGORY, PRICE, ON_SALE, TIER, COLUMNS };

static const char *const columns[COLUMNS] = {
    [ITEM] = "item_id",    [CATEGORY] = "category", [PRICE] = "price_cents",
    [ON_SALE] = "on_sale", [TIER] = "member_tier",
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
    int rc = opts_parse_uint(s, 0, 255, &v);
    a->tier = (uint8_t)v;
    return rc;
}

/* The columns that are plain values of the item's attributes. */
static const struct value_column {
    enum column column;
    int (*parse)(const char *s, struct model_item_attr *a);
    const char *want;
} value_columns[] = {
    {PRICE, parse_price, "an integer >= 0"},
    {ON_SALE, parse_on_sale, "one of 0, 1, true, false"},
    {TIER, parse_tier, "an integer in 0..255"},
};

/* ==== reading ======================================================= */

struct reader {
    struct catalog *c;
    const struct ids *items; /* NULL: the catalog defines the items */
    unsigned flags;          /* CATALOG_* */
    struct csv *r;
    uint32_t cols[COLUMNS];
    uint32_t item_cap; /* without items: room in c->ids and c->attrs */
    uint64_t *line;    /* with items: the line that listed each, 0 = none yet */
    uint32_t category_cap;
    struct idmap *category_index; /* keys borrowed from c->categories */
};

static const char *field(const struct reader *rd, const struct csv_record *rec, enum column col)
{
    return rec->fields[rd->cols[col]];
}

static uint32_t field_len(const struct reader *rd, const struct csv_record *rec, enum column col)
{
    return rec->lens[rd->cols[col]];
}

/* With an id file every item has its slot from the start; without one the
 * arrays grow, doubling, as rows come. */
static int start(struct reader *rd, struct err *e)
{
    struct catalog *c = rd->c;
    int no_memory = idmap_create(16, &rd->category_index) != 0;
    if (rd->items == NULL)
        return no_memory || idmap_create(1024, &c->index) != 0
                   ? err_set(e, -ENOMEM, "out of memory for the catalog")
                   : 0;
    c->count = ids_count(rd->items);
    c->attrs = calloc(c->count, sizeof(*c->attrs));
    rd->line = calloc(c->count, sizeof(*rd->line));
    if (no_memory || c->attrs == NULL || rd->line == NULL)
        return err_set(e, -ENOMEM, "out of memory for %u catalog entries", c->count);
    return 0;
}

static int grow(struct reader *rd, struct err *e)
{
    struct catalog *c = rd->c;
    uint32_t n = rd->item_cap ? rd->item_cap * 2 : 1024;
    char **ids = realloc(c->ids, n * sizeof(*ids));
    if (ids != NULL)
        c->ids = ids;
    struct model_item_attr *attrs = realloc(c->attrs, n * sizeof(*attrs));
    if (attrs != NULL)
        c->attrs = attrs;
    if (ids == NULL || attrs == NULL)
        return err_set(e, -ENOMEM, "out of memory for %u items", rd->item_cap);
    rd->item_cap = n;
    return 0;
}

/* The row's item in the id file, not listed before; 1 for a row to skip
 * (CATALOG_SKIP_UNLISTED). */
static int listed_item(struct reader *rd, const struct csv_record *rec, uint32_t *item,
                       struct err *e)
{
    const char *id = field(rd, rec, ITEM);
    uint32_t len = field_len(rd, rec, ITEM);
    char q[QUOTE_BUF];
    if (ids_find(rd->items, id, len, item) != 0) {
        if (rd->flags & CATALOG_SKIP_UNLISTED) {
            rd->c->skipped++;
            return 1;
        }
        return csv_fail(rd->r, rec->line, e,
                        "item '%s' is not in %s (--catalog-extra skip leaves out the catalog's "
                        "items that have no factors)",
                        quote(q, sizeof(q), id, len), ids_path(rd->items));
    }
    if (rd->line[*item] != 0)
        return csv_fail(rd->r, rec->line, e, "item '%s' is listed twice (first on line %llu)",
                        quote(q, sizeof(q), id, len), (unsigned long long)rd->line[*item]);
    rd->line[*item] = rec->line;
    return 0;
}

/* The row as a new item at the end, its id not yet entered (claim). */
static int new_item(struct reader *rd, const struct csv_record *rec, uint32_t *item, struct err *e)
{
    struct catalog *c = rd->c;
    const char *id = field(rd, rec, ITEM);
    uint32_t len = field_len(rd, rec, ITEM);
    char q[QUOTE_BUF];
    int rc = c->count == rd->item_cap ? grow(rd, e) : 0;
    if (rc != 0)
        return rc;
    if (len == 0 || len > MODEL_ID_MAX || memchr(id, '\n', len) != NULL)
        return csv_fail(rd->r, rec->line, e, "item_id '%s' must be 1..%d bytes without a newline",
                        quote(q, sizeof(q), id, len), MODEL_ID_MAX);
    *item = c->count;
    memset(&c->attrs[*item], 0, sizeof(c->attrs[*item]));
    return 0;
}

/* Enter the new item's id; its slot is the catalog's from here on. */
static int claim(struct reader *rd, const struct csv_record *rec, struct err *e)
{
    struct catalog *c = rd->c;
    const char *id = field(rd, rec, ITEM);
    uint32_t len = field_len(rd, rec, ITEM), first;
    char q[QUOTE_BUF];
    if ((c->ids[c->count] = strdup(id)) == NULL)
        return err_set(e, -ENOMEM, "out of memory for item ids");
    int rc = idmap_put(c->index, c->ids[c->count], len, c->count, &first);
    c->count++;
    if (rc < 0)
        return err_set(e, -ENOMEM, "out of memory for item ids");
    if (rc == 1)
        return csv_fail(rd->r, rec->line, e, "item '%s' is listed twice (first as item %u)",
                        quote(q, sizeof(q), id, len), first + 1);
    return 0;
}

/* The row's category's index; a new name is added at the end. */
static int category(struct reader *rd, const struct csv_record *rec, uint32_t *index, struct err *e)
{
    struct catalog *c = rd->c;
    const char *name = field(rd, rec, CATEGORY);
    uint32_t len = field_len(rd, rec, CATEGORY), unused;
    char q[QUOTE_BUF];
    if (len == 0 || len > MODEL_ID_MAX || memchr(name, '\n', len) != NULL)
        return csv_fail(rd->r, rec->line, e, "category '%s' must be 1..%d bytes without a newline",
                        quote(q, sizeof(q), name, len), MODEL_ID_MAX);
    if (idmap_get(rd->category_index, name, len, index) == 0)
        return 0;
    if (c->category_count == rd->category_cap) {
        uint32_t cap = rd->category_cap ? rd->category_cap * 2 : 16;
        char **p = realloc(c->categories, cap * sizeof(*p));
        if (p == NULL)
            return err_set(e, -ENOMEM, "out of memory for categories");
        c->categories = p;
        rd->category_cap = cap;
    }
    char *copy = strdup(name);
    if (copy == NULL || idmap_put(rd->category_index, copy, len, c->category_count, &unused) < 0) {
        free(copy);
        return err_set(e, -ENOMEM, "out of memory for categories");
    }
    *index = c->category_count;
    c->categories[c->category_count++] = copy;
    return 0;
}

/* Price, on_sale and tier, each refused as "<column> '<value>' is not
 * <what it must be>". */
static int values(const struct reader *rd, const struct csv_record *rec, struct model_item_attr *a,
                  struct err *e)
{
    char q[QUOTE_BUF];
    for (size_t i = 0; i < sizeof(value_columns) / sizeof(value_columns[0]); i++) {
        const struct value_column *v = &value_columns[i];
        const char *s = field(rd, rec, v->column);
        if (v->parse(s, a) != 0)
            return csv_fail(rd->r, rec->line, e, "%s '%s' is not %s", columns[v->column],
                            quote(q, sizeof(q), s, field_len(rd, rec, v->column)), v->want);
    }
    return 0;
}

static int row(struct reader *rd, const struct csv_record *rec, struct err *e)
{
    uint32_t item;
    int rc = rd->items != NULL ? listed_item(rd, rec, &item, e) : new_item(rd, rec, &item, e);
    if (rc == 1)
        return 0;
    if (rc == 0)
        rc = category(rd, rec, &rd->c->attrs[item].category, e);
    if (rc == 0)
        rc = values(rd, rec, &rd->c->attrs[item], e);
    if (rc == 0 && rd->items == NULL)
        rc = claim(rd, rec, e);
    return rc;
}

/* With an id file, an item the catalog does not list. */
static int check_listed(const struct reader *rd, const char *path, struct err *e)
{
    char q[QUOTE_BUF];
    for (uint32_t i = 0; rd->items != NULL && i < rd->c->count; i++) {
        const char *id = ids_array(rd->items)[i];
        if (rd->line[i] == 0)
            return err_set(e, ERR_INVALID, "%s: item '%s' (%s:%u) is not in the catalog", path,
                           quote(q, sizeof(q), id, strlen(id)), ids_path(rd->items), i + 1);
    }
    return 0;
}

int catalog_read(const char *path, const struct ids *items, unsigned flags, struct catalog *c,
                 struct err *e)
{
    struct reader rd = {.c = c, .items = items, .flags = flags};
    struct csv_record rec;
    int rc = start(&rd, e);
    if (rc == 0)
        rc = csv_open(path, &rd.r, e);
    if (rc == 0)
        rc = csv_header(rd.r, columns, COLUMNS, rd.cols, e);
    while (rc == 0 && (rc = csv_next(rd.r, &rec, e)) == 1)
        rc = row(&rd, &rec, e);
    if (rc == 0)
        rc = check_listed(&rd, path, e);
    if (rc == 0 && c->count == 0)
        rc = err_set(e, ERR_INVALID, "%s: no items (a model needs at least one)", path);
    csv_close(rd.r);
    free(rd.line);
    idmap_destroy(rd.category_index);
    return rc;
}

void catalog_free(struct catalog *c)
{
    for (uint32_t i = 0; c->ids != NULL && i < c->count; i++)
        free(c->ids[i]);
    for (uint32_t i = 0; i < c->category_count; i++)
        free(c->categories[i]);
    free(c->ids);
    free(c->attrs);
    free(c->categories);
    idmap_destroy(c->index);
}
