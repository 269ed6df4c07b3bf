/*
 * catalog_fields: the catalog CSV's columns and how its per-item values are
 * spelled, shared by `recsys-model import` and `recsys-train`, so that both
 * accept the same file and say the same thing about a bad value.
 *
 *     item_id,category,price_cents,on_sale,member_tier
 *
 * price_cents an integer >= 0; on_sale one of 0, 1, true, false (any case);
 * member_tier an integer in 0..255.
 */
#pragma once

#include <stdint.h>

#include "csv.h"
#include "err.h"
#include "model/model.h"

enum catalog_column {
    CATALOG_ITEM,
    CATALOG_CATEGORY,
    CATALOG_PRICE,
    CATALOG_ON_SALE,
    CATALOG_TIER,
    CATALOG_COLUMNS
};

/* The header names, indexed by enum catalog_column (for csv_header). */
extern const char *const catalog_columns[CATALOG_COLUMNS];

/* catalog_values - price, on_sale and tier of record @rec (its columns in
 * @cols, as csv_header found them) into @a; the category is the caller's.
 * Returns 0, or ERR_INVALID with "<file>:<line>: <column> '<value>' is not
 * <what it must be>" in @e. */
int catalog_values(const struct csv *r, const struct csv_record *rec, const uint32_t *cols,
                   struct model_item_attr *a, struct err *e);
