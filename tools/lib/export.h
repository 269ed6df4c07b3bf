/*
 * export: read an ALS export directory (model/EXPORT.md), the factors and
 * purchases tools/spark/recsys_als.py writes, for
 * `recsys-model import --from-spark`.
 *
 * export_open() reads the manifest and checks it against the directory;
 * then the tables are read in this order, each part streamed through one
 * buffer, never held whole:
 *  1. export_read_items: the item ids and the item matrix (small: one copy
 *     in memory is what the writer needs).
 *  2. export_read_user_ids: the user ids only, skipping the factors, and
 *     how many rows each part holds.
 *  3. export_read_purchases: the (user, item) pairs.
 *  4. export_fill_users: the user factors, parsed straight into the model
 *     file being written (the writer's struct model_rows), parts in
 *     parallel, each at the row its part starts on. A 10^7 x 64 matrix is
 *     2.5 GB: reading it into memory first would double the import's peak.
 * Every problem is "<file>:<line>: <problem>", the file under the export
 * directory. The factor text is read with decimal_f32, correctly rounded.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "model/model.h"

struct export;
struct ids;

enum export_table { EXPORT_USERS, EXPORT_ITEMS, EXPORT_PURCHASES, EXPORT_TABLES };

/* The manifest. Borrowed from the struct export; valid until export_close. */
struct export_manifest {
    uint32_t factors;               /* 1..FORMAT_DIM_MAX */
    const char *model_version;      /* a valid version (1..MODEL_ID_MAX bytes of UTF-8) */
    int64_t created_at;             /* unix seconds, >= 0 */
    struct model_training training; /* the record the model gets; from_file = 1 */
    uint64_t rows[EXPORT_TABLES];   /* lines each table's parts hold */
};

/* export_open - read @dir's manifest and check it against the directory:
 * its keys and values, every listed part present with its size, no other
 * part file, no compressed part. The caller owns *out (export_close).
 * Returns 0, ERR_INVALID with the problem in @e, -errno or -ENOMEM. */
int export_open(const char *dir, struct export **out, struct err *e);

/* export_close - release @x. NULL is a no-op. */
void export_close(struct export *x);

const struct export_manifest *export_manifest(const struct export *x);

/* export_read_items - the items: *ids (the caller owns it, ids_free) in
 * line order and *matrix (malloc'd rows x factors floats, the caller
 * frees it), also after a failure. Returns 0, ERR_INVALID (a bad line, a
 * duplicate id, a row count other than the manifest's), -errno or
 * -ENOMEM. */
int export_read_items(struct export *x, struct ids **ids, float **matrix, struct err *e);

/* export_read_user_ids - the users' ids in line order, as for the items,
 * and each part's first row, which export_fill_users needs. Checks each
 * line's id and that a tab follows it; the factors wait for
 * export_fill_users. */
int export_read_user_ids(struct export *x, struct ids **ids, struct err *e);

/* export_read_purchases - append every purchase as user << 32 | item to
 * *pairs (*n of *cap, grown with realloc; the caller frees it), users and
 * items resolved in @users and @items. Returns 0, ERR_INVALID (a bad
 * line, an unknown id), -errno or -ENOMEM. */
int export_read_purchases(struct export *x, const struct ids *users, const struct ids *items,
                          uint64_t **pairs, size_t *n, size_t *cap, struct err *e);

/* export_fill_users - parse the user factors into @dst: row r (the r-th
 * id export_read_user_ids returned) at @dst + r * @stride, the first
 * factors floats of it; the rest is left as it is. Call after
 * export_read_user_ids with @users its result: each line's id is compared
 * with the one read then, so a part changed in between is refused, not
 * mixed. Uses one thread per core, at most one per part. Returns 0,
 * ERR_INVALID (the first bad line in part order), -errno or -ENOMEM. */
int export_fill_users(struct export *x, const struct ids *users, float *dst, uint32_t stride,
                      struct err *e);
