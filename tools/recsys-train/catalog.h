/*
 * catalog: the items a trained model can recommend, read from catalog.csv.
 *
 * The file is the one `recsys-model import --catalog` reads (columns
 * item_id, category, price_cents, on_sale, member_tier, in any order), but
 * here it also defines the items: the model's items are the catalog's rows,
 * in file order. An item listed twice, a bad value or an id the model
 * cannot hold stops the read with "<file>:<line>: <problem>".
 */
#pragma once

#include <stdint.h>

#include "err.h"
#include "model/model.h"

struct idmap;

/* Everything owned by the struct; catalog_free releases it. */
struct catalog {
    uint32_t count;
    char **ids;                    /* count ids, in file order */
    struct model_item_attr *attrs; /* count records */
    char **categories;             /* names in order of first appearance */
    uint32_t category_count;
    struct idmap *index; /* item id -> row; keys borrowed from ids */
};

/* catalog_read - read @path into @c (zeroed by the caller).
 * Returns 0, ERR_INVALID (bad file, with "<file>:<line>: <problem>" in
 * @e), -errno or -ENOMEM. On failure @c still needs catalog_free. */
int catalog_read(const char *path, struct catalog *c, struct err *e);

/* catalog_free - release what catalog_read filled in. */
void catalog_free(struct catalog *c);
