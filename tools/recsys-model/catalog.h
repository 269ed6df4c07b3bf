/*
 * catalog: the catalog CSV, item_id,category,price_cents,on_sale,member_tier
 * (README, "Serving your own model"), shared by `recsys-model import` and
 * `recsys-train`.
 *
 * Two ways to read one. Against a list of item ids (import: the rows of an
 * item factor matrix), where the catalog must list every one of them
 * exactly once. Or on its own (the trainer: the catalog is the list of
 * items), where its rows define the items in file order. Categories get
 * indices in order of first appearance. Every error is
 * "<file>:<line>: <problem>".
 */
#pragma once

#include <stdint.h>

#include "err.h"
#include "ids.h"
#include "model/model.h"

/* Membership tiers of items and users are one byte in the model. */
#define CATALOG_TIER_MAX 255

struct catalog {
    const char *path;
    uint32_t count;                /* items */
    struct model_item_attr *attrs; /* by item index */
    char **categories;             /* names in order of first appearance, owned */
    uint32_t category_count;
    /* Read on its own: the ids in file order, owned. NULL otherwise. */
    char **item_ids;
    /* private */
    const struct ids *given;
    uint64_t *line; /* catalog line that listed each item; 0 = none yet */
    uint32_t category_cap, item_cap;
    struct idmap *category_index, *item_index;
};

/* catalog_read - read @path into @c (zeroed by the caller). @items: the
 * ids the catalog must list, each exactly once; NULL: the catalog's own
 * rows define the items. Returns 0, ERR_INVALID with the file, line and
 * problem in @e, -errno or -ENOMEM. catalog_free releases @c either way. */
int catalog_read(const char *path, const struct ids *items, struct catalog *c, struct err *e);

/* catalog_find - the index of item @id (@len bytes). 0 and *item, or
 * ERR_NOT_FOUND. */
int catalog_find(const struct catalog *c, const char *id, size_t len, uint32_t *item);

void catalog_free(struct catalog *c);
