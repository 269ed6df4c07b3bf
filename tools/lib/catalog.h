/*
 * catalog: catalog.csv, the items' attributes, for `recsys-model import`
 * and `recsys-train`, so that both accept the same file and say the same
 * thing about a bad row.
 *
 *     item_id,category,price_cents,on_sale,member_tier   (columns in any order)
 *
 * price_cents an integer >= 0; on_sale one of 0, 1, true, false (any case);
 * member_tier an integer in 0..255; category 1..MODEL_ID_MAX bytes without
 * a newline. Categories are numbered in order of first appearance.
 *
 * The tools differ in what defines the items:
 * - import: the id file that names the item factor rows. The catalog must
 *   list each of those ids exactly once and no other; item i is row i.
 * - recsys-train: the catalog itself. Its rows are the items, in file
 *   order; each id is 1..MODEL_ID_MAX bytes without a newline, listed once.
 * The first problem stops the read with "<file>:<line>: <problem>".
 */
#pragma once

#include <stdint.h>

#include "base/err.h"
#include "model/model.h"

struct ids;
struct idmap;

/* Everything owned by the struct; catalog_free releases it. */
struct catalog {
    uint32_t count;                /* items */
    char **ids;                    /* count ids in file order, or NULL when an id file names them */
    struct model_item_attr *attrs; /* count records, item i's at i */
    char **categories;             /* category_count names, in order of first appearance */
    uint32_t category_count;
    struct idmap *index; /* item id -> item, keys borrowed from ids; NULL when ids is */
    uint64_t skipped;    /* rows left out by CATALOG_SKIP_UNLISTED */
};

/* catalog_read flags. */
enum {
    /* With @items: a row naming an id @items lacks is skipped and counted
     * in c->skipped instead of refused (an import whose factors do not
     * cover every item the catalog sells, as Spark gives none to an item
     * without ratings). Every id of @items must still be listed. */
    CATALOG_SKIP_UNLISTED = 1,
};

/* catalog_read - read the catalog at @path into @c (zeroed by the caller).
 * @items: the id file that defines the items (import), or NULL when the
 * catalog does (recsys-train). @flags: CATALOG_* or 0.
 * Returns 0, ERR_INVALID (a bad file, with "<file>:<line>: <problem>" in
 * @e), -errno or -ENOMEM. On failure @c still needs catalog_free. */
int catalog_read(const char *path, const struct ids *items, unsigned flags, struct catalog *c,
                 struct err *e);

/* catalog_free - release what catalog_read filled in. */
void catalog_free(struct catalog *c);
