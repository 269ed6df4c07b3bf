/*
 * log: the users and the interaction log a model is trained from.
 *
 *   users.csv         user_id,tier (the file `recsys-model import --users`
 *                     reads): membership tiers, and users who should be in
 *                     the model even without interactions.
 *   interactions.csv  user_id,item_id[,weight][,timestamp][,event] with a
 *                     header, columns in any order.
 *
 * Each interaction row gives a weight and says whether it is a purchase:
 *   - event (optional): "purchase" or "view"; without the column every row
 *     is a purchase. Purchases make the item owned (excluded from the
 *     user's recommendations, as the importer's purchases file does);
 *     views do not.
 *   - weight (optional): a number > 0; without it a purchase weighs 1 and
 *     a view weighs the view weight given (--view-weight), so views count
 *     less than purchases.
 *   - timestamp (optional): an integer >= 0, unix seconds or, with
 *     recsys-train --timestamp-unit ms, milliseconds; it orders the
 *     holdout, and the latest is the model's data end (FORMAT.md).
 * Users are numbered in order of first appearance, users.csv first. Items
 * must be in the catalog; rows naming other items are counted and either
 * skipped or refused (log_opts.unknown_error).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct catalog;
struct idmap;

/* One interaction row, resolved. */
struct interaction {
    uint32_t user, item;
    float weight;
    uint32_t purchase; /* 1 for a purchase, 0 for a view */
    int64_t time;      /* 0 without a timestamp column */
};

/* Owned by the struct; interactions_free releases it. */
struct interactions {
    uint32_t user_count;
    char **user_ids;
    uint32_t *tier;           /* user_count tiers (0 unless users.csv says otherwise) */
    struct idmap *user_index; /* keys borrowed from user_ids */
    struct interaction *events;
    size_t event_count;
    int has_time;           /* the log had a timestamp column */
    uint64_t unknown_rows;  /* rows skipped for an item not in the catalog */
    uint64_t unknown_items; /* distinct such item ids */
    uint32_t user_cap;
    size_t event_cap;
};

struct interactions_opts {
    float view_weight; /* weight of a view without a weight column */
    int unknown_error; /* an unknown item is an error rather than skipped */
};

/* interactions_read_users - add the users of users.csv at @path, with their tiers.
 * Call before interactions_read. Returns 0, ERR_INVALID ("<file>:<line>: <problem>"
 * in @e), -errno or -ENOMEM. */
int interactions_read_users(const char *path, struct interactions *l, struct err *e);

/* interactions_read - append the interactions at @path, items resolved in @c.
 * Returns 0, ERR_INVALID (a malformed row; with unknown_error, an unknown
 * item; a log without interactions), -errno or -ENOMEM. On failure @l
 * still needs interactions_free. */
int interactions_read(const char *path, const struct catalog *c, const struct interactions_opts *o,
                      struct interactions *l, struct err *e);

/* interactions_free - release what interactions_read_users and interactions_read filled in. */
void interactions_free(struct interactions *l);
