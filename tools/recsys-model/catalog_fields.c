/*
 * catalog_fields: the catalog's columns and value spellings (catalog_fields.h).
 */
#include "catalog_fields.h"

#include <strings.h>

#include "opts.h"
#include "quote.h"

const char *const catalog_columns[CATALOG_COLUMNS] = {
    [CATALOG_ITEM] = "item_id",    [CATALOG_CATEGORY] = "category", [CATALOG_PRICE] = "price_cents",
    [CATALOG_ON_SALE] = "on_sale", [CATALOG_TIER] = "member_tier",
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
    enum catalog_column column;
    int (*parse)(const char *s, struct model_item_attr *a);
    const char *want;
} value_columns[] = {
    {CATALOG_PRICE, parse_price, "an integer >= 0"},
    {CATALOG_ON_SALE, parse_on_sale, "one of 0, 1, true, false"},
    {CATALOG_TIER, parse_tier, "an integer in 0..255"},
};

int catalog_values(const struct csv *r, const struct csv_record *rec, const uint32_t *cols,
                   struct model_item_attr *a, struct err *e)
{
    char q[QUOTE_BUF];
    for (size_t i = 0; i < sizeof(value_columns) / sizeof(value_columns[0]); i++) {
        const struct value_column *c = &value_columns[i];
        const char *s = rec->fields[cols[c->column]];
        if (c->parse(s, a) != 0)
            return csv_fail(r, rec->line, e, "%s '%s' is not %s", catalog_columns[c->column],
                            quote(q, sizeof(q), s, rec->lens[cols[c->column]]), c->want);
    }
    return 0;
}
