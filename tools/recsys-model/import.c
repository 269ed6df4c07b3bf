/*
 * import: build a model file from factors trained elsewhere.
 *
 *     recsys-model import --user-factors U.npy --user-ids users.txt
 *         --item-factors V.npy --item-ids items.txt --catalog catalog.csv
 *         [--users users.csv] [--purchases purchases.csv]
 *         --model-version V [--created-at UNIX] [--quantize bf16,int8]
 *         [--regularization L] [--regularization-scaling none|per-interaction]
 *         [--alpha A] [--view-weight W] [--data-end UNIX_MS] -o model.lmdb
 *
 *     recsys-model import --from-spark DIR --catalog catalog.csv
 *         [--users users.csv] [--model-version V] [--created-at UNIX]
 *         [--quantize bf16,int8] -o model.lmdb
 *
 * Either takes --catalog-extra skip: catalog rows for items the factors do
 * not cover are left out (and counted on stderr) instead of refused.
 *
 * The inputs are read in dependency order, each checked completely before
 * the next is read: the two matrices and their ids (rows, dimensions,
 * finite factors), then the catalog, which must list every item exactly
 * once, then the optional users' tiers and the purchases, which may only
 * name ids the factors define. The first problem stops the import with
 * "<file>:<line>: <problem>", before anything is written; model_write then
 * publishes the file atomically, so a failed import leaves the destination
 * as it was.
 *
 * From .npy files, the training flags describe how the factors were
 * trained (FORMAT.md, "Training record"). Given any of them, the file gets
 * a record, with the documented default for each one not given; given
 * none, it gets no record and is the file an import without them has
 * always written. The item matrix is used where it is mapped. The user
 * matrix is too, unless an item bias has to be folded in, which needs one
 * more column on the user side and so a copy.
 *
 * From an export directory (--from-spark, model/EXPORT.md), its manifest
 * gives the training record, the version and the creation time (the flags
 * may override the last two), and its purchases are the owned items. The
 * user factors are the one input parsed last: straight into the model
 * file (struct model_rows), so the largest matrix is never held twice; a
 * bad line there still fails the write and leaves nothing.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/writer.h"
#include "tools/lib/catalog.h"
#include "tools/lib/csv.h"
#include "tools/lib/export.h"
#include "tools/lib/ids.h"
#include "tools/lib/npy.h"
#include "tools/lib/opts.h"
#include "tools/lib/publish.h"
#include "tools/lib/quote.h"
#include "tools/lib/users.h"
#include "tools/recsys-model/cmd.h"

struct import_args {
    const char *from_spark;
    const char *user_factors, *user_ids, *item_factors, *item_ids;
    const char *catalog, *users, *purchases;
    const char *version, *out;
    uint64_t created_at;
    unsigned quantize;
    const char *regularization, *alpha, *view_weight; /* NULL: not given */
    const char *scaling;                              /* NULL: not given */
    const char *catalog_extra;                        /* NULL or "error": refuse; "skip" */
    uint64_t data_end;                                /* NOT_GIVEN: not given */
};

/* Above --data-end's and --created-at's ranges, so no value given can be it. */
#define NOT_GIVEN UINT64_MAX

#define ARG(member) offsetof(struct import_args, member)
/* The four .npy inputs and --model-version are required unless
 * --from-spark is given, which excludes them (check_sources). */
static const struct opt import_opts[] = {
    {"from-spark", 0, OPT_STRING, ARG(from_spark), false, 0, 0, "DIR"},
    {"user-factors", 0, OPT_STRING, ARG(user_factors), false, 0, 0, "U.npy"},
    {"user-ids", 0, OPT_STRING, ARG(user_ids), false, 0, 0, "users.txt"},
    {"item-factors", 0, OPT_STRING, ARG(item_factors), false, 0, 0, "V.npy"},
    {"item-ids", 0, OPT_STRING, ARG(item_ids), false, 0, 0, "items.txt"},
    {"catalog", 0, OPT_STRING, ARG(catalog), true, 0, 0, "catalog.csv"},
    {"catalog-extra", 0, OPT_STRING, ARG(catalog_extra), false, 0, 0, "skip|error"},
    {"users", 0, OPT_STRING, ARG(users), false, 0, 0, "users.csv"},
    {"purchases", 0, OPT_STRING, ARG(purchases), false, 0, 0, "purchases.csv"},
    {"model-version", 0, OPT_STRING, ARG(version), false, 0, 0, "V"},
    {"created-at", 0, OPT_UINT, ARG(created_at), false, 0, INT64_MAX, "UNIX"},
    {"quantize", 0, OPT_COPIES, ARG(quantize), false, 0, 0, "bf16,int8"},
    {"regularization", 0, OPT_STRING, ARG(regularization), false, 0, 0, "L"},
    {"alpha", 0, OPT_STRING, ARG(alpha), false, 0, 0, "A"},
    {"view-weight", 0, OPT_STRING, ARG(view_weight), false, 0, 0, "W"},
    {"regularization-scaling", 0, OPT_STRING, ARG(scaling), false, 0, 0, "none|per-interaction"},
    {"data-end", 0, OPT_UINT, ARG(data_end), false, 0, INT64_MAX, "UNIX_MS"},
    {"output", 'o', OPT_STRING, ARG(out), true, 0, 0, "FILE"},
    {.name = NULL},
};

/* Everything one import holds; freed by import_free. */
struct import {
    const struct import_args *a;
    struct export *x; /* --from-spark */
    float *item_copy; /* the export's item matrix */
    struct npy_file U, V;
    struct ids *users, *items;
    uint32_t dim, has_bias;
    const float *user_factors; /* U's map, or user_copy */
    float *user_copy;          /* U with the bias column of 1.0, when has_bias */
    struct catalog cat;        /* the items' attributes, in the order of items */
    /* users and purchases */
    uint32_t *user_tier; /* NULL without --users */
    uint64_t *pairs;     /* purchases as user << 32 | item */
    size_t npairs, pairs_cap;
    uint64_t *owned_offsets; /* CSR of the distinct pairs */
    uint32_t *owned_items;
    struct model_training training; /* written when from_file, i.e. a flag was given */
};

/* ==== factors and ids =============================================== */

/* The id file @ids names the rows of @m, one line per row. */
static int check_rows(const struct npy_file *m, const char *npy_path, const struct ids *ids,
                      struct err *e)
{
    uint64_t rows = m->view.rows, n = ids_count(ids);
    char q[QUOTE_BUF];
    if (n > rows)
        return err_set(e, ERR_INVALID, "%s:%llu: id '%s' has no row: %s has %llu rows",
                       ids_path(ids), (unsigned long long)rows + 1,
                       quote(q, sizeof(q), ids_array(ids)[rows], strlen(ids_array(ids)[rows])),
                       npy_path, (unsigned long long)rows);
    if (n < rows)
        return err_set(e, ERR_INVALID, "%s: %llu ids, but %s has %llu rows", ids_path(ids),
                       (unsigned long long)n, npy_path, (unsigned long long)rows);
    return 0;
}

/* Every factor finite, named by row id and column on failure. */
static int check_finite(const struct npy_view *v, const char *path, const struct ids *ids,
                        struct err *e)
{
    char q[QUOTE_BUF];
    for (uint64_t r = 0; r < v->rows; r++)
        for (uint64_t c = 0; c < v->cols; c++) {
            float f = v->data[r * v->cols + c];
            const char *id = ids_array(ids)[r];
            if (!isfinite(f))
                return err_set(e, ERR_INVALID, "%s: row %llu ('%s'), column %llu is %s", path,
                               (unsigned long long)r, quote(q, sizeof(q), id, strlen(id)),
                               (unsigned long long)c, isnan(f) ? "NaN" : "infinite");
        }
    return 0;
}

/* The two matrices agree on the dimension, or the items carry exactly one
 * more column: an item bias, which the user side must multiply by 1.0. */
static int fold_bias(struct import *im, struct err *e)
{
    const struct npy_view *u = &im->U.view, *v = &im->V.view;
    im->dim = (uint32_t)v->cols;
    im->user_factors = u->data;
    if (v->cols == u->cols)
        return 0;
    if (v->cols != u->cols + 1)
        return err_set(e, ERR_INVALID,
                       "dimension mismatch: users %llu (%s), items %llu (%s); the items may "
                       "have exactly one more column, an item bias",
                       (unsigned long long)u->cols, im->a->user_factors,
                       (unsigned long long)v->cols, im->a->item_factors);
    im->has_bias = 1;
    im->user_copy = malloc((u->rows ? u->rows : 1) * v->cols * sizeof(float));
    if (im->user_copy == NULL)
        return err_set(e, -ENOMEM, "out of memory for the user factors with a bias column");
    for (uint64_t r = 0; r < u->rows; r++) {
        float *dst = im->user_copy + r * v->cols;
        memcpy(dst, u->data + r * u->cols, u->cols * sizeof(float));
        dst[u->cols] = 1.0f;
    }
    im->user_factors = im->user_copy;
    return 0;
}

static int load_factors(struct import *im, struct err *e)
{
    const struct import_args *a = im->a;
    int rc;
    if ((rc = npy_map(a->user_factors, &im->U, e)) != 0 ||
        (rc = ids_read(a->user_ids, &im->users, e)) != 0 ||
        (rc = check_rows(&im->U, a->user_factors, im->users, e)) != 0 ||
        (rc = npy_map(a->item_factors, &im->V, e)) != 0 ||
        (rc = ids_read(a->item_ids, &im->items, e)) != 0 ||
        (rc = check_rows(&im->V, a->item_factors, im->items, e)) != 0)
        return rc;
    if (im->V.view.rows == 0)
        return err_set(e, ERR_INVALID, "%s: no items (a model needs at least one)",
                       a->item_factors);
    if ((rc = check_finite(&im->U.view, a->user_factors, im->users, e)) != 0 ||
        (rc = check_finite(&im->V.view, a->item_factors, im->items, e)) != 0)
        return rc;
    return fold_bias(im, e);
}

/* ==== users and purchases =========================================== */

/* A users.csv row may only name a user with a factor row. */
static int find_user(void *ctx, const struct csv *r, uint64_t line, const char *id, uint32_t len,
                     uint32_t *user, struct err *e)
{
    const struct ids *users = ctx;
    char q[QUOTE_BUF];
    if (ids_find(users, id, len, user) != 0)
        return csv_fail(r, line, e, "user '%s' is not in %s", quote(q, sizeof(q), id, len),
                        ids_path(users));
    return 0;
}

/* Users the file does not list keep tier 0. */
static int read_users(struct import *im, struct err *e)
{
    if (im->a->users == NULL)
        return 0;
    uint32_t n = ids_count(im->users);
    im->user_tier = calloc(n ? n : 1, sizeof(*im->user_tier));
    if (im->user_tier == NULL)
        return err_set(e, -ENOMEM, "out of memory for %u users", n);
    const struct users_find f = {find_user, im->users, &im->user_tier};
    return users_read(im->a->users, &f, e);
}

enum { BUY_USER, BUY_ITEM, BUY_COLUMNS };
static const char *const purchases_columns[BUY_COLUMNS] = {
    [BUY_USER] = "user_id", [BUY_ITEM] = "item_id"};

static int purchases_row(struct import *im, const struct csv *r, const struct csv_record *rec,
                         const uint32_t *cols, struct err *e)
{
    const char *uid = rec->fields[cols[BUY_USER]], *iid = rec->fields[cols[BUY_ITEM]];
    uint32_t user, item, ulen = rec->lens[cols[BUY_USER]], ilen = rec->lens[cols[BUY_ITEM]];
    char q[QUOTE_BUF];
    if (ids_find(im->users, uid, ulen, &user) != 0)
        return csv_fail(r, rec->line, e,
                        "user '%s' is not in %s: a purchase can only be recorded for a user "
                        "with a factor row",
                        quote(q, sizeof(q), uid, ulen), ids_path(im->users));
    if (ids_find(im->items, iid, ilen, &item) != 0)
        return csv_fail(r, rec->line, e, "item '%s' is not in %s", quote(q, sizeof(q), iid, ilen),
                        ids_path(im->items));
    if (im->npairs == im->pairs_cap) {
        size_t cap = im->pairs_cap ? im->pairs_cap * 2 : 1024;
        uint64_t *p = realloc(im->pairs, cap * sizeof(*p));
        if (p == NULL)
            return err_set(e, -ENOMEM, "out of memory for %zu purchases", cap);
        im->pairs = p;
        im->pairs_cap = cap;
    }
    im->pairs[im->npairs++] = (uint64_t)user << 32 | item;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Sorted, distinct pairs -> owned lists: user u owns
 * owned_items[owned_offsets[u] .. owned_offsets[u + 1]). A repeated purchase
 * row counts once, in the owned list and in the popularity ranking. */
static int build_owned(struct import *im, struct err *e)
{
    uint32_t users = ids_count(im->users);
    /* Without a purchases file there are no pairs and no array: qsort's
     * pointer must not be NULL even for zero elements. */
    if (im->npairs > 0)
        qsort(im->pairs, im->npairs, sizeof(*im->pairs), cmp_u64);
    size_t kept = 0;
    for (size_t i = 0; i < im->npairs; i++)
        if (kept == 0 || im->pairs[i] != im->pairs[kept - 1])
            im->pairs[kept++] = im->pairs[i];
    im->npairs = kept;
    im->owned_offsets = calloc((size_t)users + 1, sizeof(*im->owned_offsets));
    im->owned_items = malloc((kept ? kept : 1) * sizeof(*im->owned_items));
    if (im->owned_offsets == NULL || im->owned_items == NULL)
        return err_set(e, -ENOMEM, "out of memory for %zu purchases", kept);
    for (size_t i = 0; i < kept; i++) {
        im->owned_offsets[(im->pairs[i] >> 32) + 1]++;
        im->owned_items[i] = (uint32_t)im->pairs[i];
    }
    for (uint32_t u = 0; u < users; u++)
        im->owned_offsets[u + 1] += im->owned_offsets[u];
    /* The lists hold it all now; freed before the model is written, the
     * import's peak. */
    free(im->pairs);
    im->pairs = NULL;
    im->npairs = im->pairs_cap = 0;
    return 0;
}

static int read_purchases(struct import *im, struct err *e)
{
    if (im->a->purchases == NULL)
        return 0;
    uint32_t cols[BUY_COLUMNS];
    struct csv *r = NULL;
    struct csv_record rec;
    int rc = csv_open(im->a->purchases, &r, e);
    if (rc == 0)
        rc = csv_header(r, purchases_columns, BUY_COLUMNS, cols, e);
    while (rc == 0 && (rc = csv_next(r, &rec, e)) == 1)
        rc = purchases_row(im, r, &rec, cols, e);
    csv_close(r);
    return rc != 0 ? rc : build_owned(im, e);
}

/* ==== the catalog ==================================================== */

/* The items' attributes; with --catalog-extra skip, rows for items the
 * factors lack are counted and left out. */
static int read_catalog(struct import *im, struct err *e)
{
    const char *extra = im->a->catalog_extra;
    int skip = extra != NULL && strcmp(extra, "skip") == 0;
    int rc = catalog_read(im->a->catalog, im->items, skip ? CATALOG_SKIP_UNLISTED : 0, &im->cat, e);
    if (rc == 0 && im->cat.skipped > 0)
        fprintf(stderr, "%s: left out %llu rows for items without factors (--catalog-extra skip)\n",
                im->a->catalog, (unsigned long long)im->cat.skipped);
    return rc;
}

/* ==== an export directory (--from-spark) ============================= */

static int fill_users(void *ctx, float *dst, uint32_t stride, struct err *e)
{
    const struct import *im = ctx;
    return export_fill_users(im->x, im->users, dst, stride, e);
}

/* Everything but the user factors, which fill_users parses while the
 * model is written. */
static int load_export(struct import *im, struct err *e)
{
    int rc;
    if ((rc = export_open(im->a->from_spark, &im->x, e)) != 0 ||
        (rc = export_read_items(im->x, &im->items, &im->item_copy, e)) != 0 ||
        (rc = export_read_user_ids(im->x, &im->users, e)) != 0)
        return rc;
    const struct export_manifest *m = export_manifest(im->x);
    im->dim = m->factors;
    im->training = m->training;
    return 0;
}

static int read_export_purchases(struct import *im, struct err *e)
{
    int rc = export_read_purchases(im->x, im->users, im->items, &im->pairs, &im->npairs,
                                   &im->pairs_cap, e);
    return rc != 0 ? rc : build_owned(im, e);
}

/* ==== the training record ========================================== */

/* The real-valued training flags: the text opts_parse kept, the record's
 * member it fills, and whether 0 itself is allowed (the reader's rule,
 * FORMAT.md). */
static const struct {
    const char *name;
    size_t text, value;
    int zero_ok;
} training_reals[] = {
    {"regularization", ARG(regularization), offsetof(struct model_training, regularization), 1},
    {"alpha", ARG(alpha), offsetof(struct model_training, alpha), 1},
    {"view-weight", ARG(view_weight), offsetof(struct model_training, view_weight), 0},
};

/* Fills @t from the training flags, the defaults for those not given;
 * t->from_file says whether any was, i.e. whether to write a record.
 * Returns 0, or ERR_INVALID for a value the file could not hold. */
static int parse_training(const struct import_args *a, struct model_training *t, struct err *e)
{
    *t = (struct model_training){.regularization = MODEL_DEFAULT_REGULARIZATION,
                                 .alpha = MODEL_DEFAULT_ALPHA,
                                 .view_weight = MODEL_DEFAULT_VIEW_WEIGHT};
    for (size_t i = 0; i < sizeof(training_reals) / sizeof(training_reals[0]); i++) {
        const char *s = *(const char *const *)((const char *)a + training_reals[i].text);
        if (s == NULL)
            continue;
        char *end;
        double x = strtod(s, &end);
        /* Checked as the float the file holds: a double too large for one
         * would become infinite there. */
        float f = (float)x;
        if (end == s || *end != '\0' || !isfinite(x) || !isfinite(f) ||
            (training_reals[i].zero_ok ? f < 0 : !(f > 0)))
            return err_set(e, ERR_INVALID, "--%s: '%s' is not a finite number %s 0",
                           training_reals[i].name, s, training_reals[i].zero_ok ? ">=" : ">");
        *(float *)((char *)t + training_reals[i].value) = f;
        t->from_file = 1;
    }
    if (a->data_end != NOT_GIVEN) {
        t->data_end_unix_ms = (int64_t)a->data_end;
        t->from_file = 1;
    }
    if (a->scaling != NULL) {
        if (strcmp(a->scaling, "per-interaction") == 0)
            t->regularization_scaling = MODEL_SCALING_PER_INTERACTION;
        else if (strcmp(a->scaling, "none") != 0)
            return err_set(e, ERR_INVALID,
                           "--regularization-scaling: '%s' is not none or per-interaction",
                           a->scaling);
        t->from_file = 1;
    }
    return 0;
}

/* ==== the model ===================================================== */

static int write_model(struct import *im, struct err *e)
{
    const struct import_args *a = im->a;
    const struct export_manifest *m = im->x != NULL ? export_manifest(im->x) : NULL;
    const struct model_rows rows = {fill_users, im};
    struct model_src src = {
        .dim = im->dim,
        .has_bias = im->has_bias,
        .user_count = ids_count(im->users),
        .item_count = ids_count(im->items),
        .user_factors = m != NULL ? NULL : im->user_factors,
        .user_rows = m != NULL ? &rows : NULL,
        .item_factors = m != NULL ? im->item_copy : im->V.view.data,
        .user_ids = ids_array(im->users),
        .item_ids = ids_array(im->items),
        .user_tier = im->user_tier,
        .owned_offsets = im->owned_offsets,
        .owned_items = im->owned_items,
        .attrs = im->cat.attrs,
        .categories = (const char *const *)im->cat.categories,
        .category_count = im->cat.category_count,
        .version = a->version != NULL ? a->version : m->model_version,
        .created_at = a->created_at != NOT_GIVEN ? (int64_t)a->created_at
                      : m != NULL                ? m->created_at
                                                 : (int64_t)time(NULL),
        .quantize = a->quantize,
        .training = im->training.from_file ? &im->training : NULL,
    };
    return publish_model(im->a->out, &src, e);
}

static void import_free(struct import *im)
{
    export_close(im->x);
    free(im->item_copy);
    npy_unmap(&im->U);
    npy_unmap(&im->V);
    ids_free(im->users);
    ids_free(im->items);
    free(im->user_copy);
    catalog_free(&im->cat);
    free(im->user_tier);
    free(im->pairs);
    free(im->owned_offsets);
    free(im->owned_items);
}

/* Either --from-spark, or the four .npy inputs and --model-version; the
 * export's manifest says how it was trained and holds the purchases. */
static int check_sources(const struct import_args *a, struct err *e)
{
    if (a->catalog_extra != NULL && strcmp(a->catalog_extra, "skip") != 0 &&
        strcmp(a->catalog_extra, "error") != 0)
        return err_set(e, ERR_INVALID, "--catalog-extra: '%s' is not skip or error",
                       a->catalog_extra);
    const char *npy[] = {a->user_factors, a->user_ids, a->item_factors, a->item_ids};
    const char *npy_names[] = {"--user-factors", "--user-ids", "--item-factors", "--item-ids"};
    for (size_t i = 0; i < sizeof(npy) / sizeof(npy[0]); i++) {
        if (a->from_spark != NULL && npy[i] != NULL)
            return err_set(e, ERR_INVALID, "--from-spark excludes %s", npy_names[i]);
        if (a->from_spark == NULL && npy[i] == NULL)
            return err_set(e, ERR_INVALID, "%s is required (or --from-spark DIR)", npy_names[i]);
    }
    if (a->from_spark == NULL)
        return a->version != NULL
                   ? 0
                   : err_set(e, ERR_INVALID, "--model-version is required (or --from-spark DIR)");
    const char *given = a->purchases != NULL        ? "--purchases"
                        : a->regularization != NULL ? "--regularization"
                        : a->alpha != NULL          ? "--alpha"
                        : a->view_weight != NULL    ? "--view-weight"
                        : a->scaling != NULL        ? "--regularization-scaling"
                        : a->data_end != NOT_GIVEN  ? "--data-end"
                                                    : NULL;
    if (given != NULL)
        return err_set(e, ERR_INVALID,
                       "--from-spark excludes %s: the export's manifest and purchases say it",
                       given);
    return 0;
}

int import_main(int argc, char **argv, struct err *e)
{
    struct import_args a = {.created_at = NOT_GIVEN, .data_end = NOT_GIVEN};
    struct import im = {.a = &a};
    if (opts_parse(import_opts, argc, argv, &a, NULL, 0, NULL, e) != 0 ||
        check_sources(&a, e) != 0 || parse_training(&a, &im.training, e) != 0)
        return CMD_EXIT_USAGE;
    size_t vlen = a.version != NULL ? strlen(a.version) : 1;
    if (vlen == 0 || vlen > MODEL_ID_MAX) {
        err_set(e, ERR_INVALID, "--model-version must be 1..%d bytes", MODEL_ID_MAX);
        return CMD_EXIT_USAGE;
    }

    int rc;
    if (a.from_spark != NULL)
        rc = load_export(&im, e);
    else
        rc = load_factors(&im, e);
    if (rc == 0 && (rc = read_catalog(&im, e)) == 0 && (rc = read_users(&im, e)) == 0 &&
        (rc = a.from_spark != NULL ? read_export_purchases(&im, e) : read_purchases(&im, e)) == 0) {
        /* Every id is resolved: the users' index is not needed while
         * the model is written, the import's peak. */
        ids_drop_index(im.users);
        rc = write_model(&im, e);
    }
    import_free(&im);
    return rc == 0 ? CMD_EXIT_OK : CMD_EXIT_FAILED;
}
