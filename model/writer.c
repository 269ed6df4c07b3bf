/*
 * writer: struct model_src -> model file (FORMAT.md), published atomically.
 *
 * Steps: validate the whole input first (so a bad input never creates a
 * file), sort ids into LMDB key order (which also finds duplicates), write
 * everything in one write transaction into a temporary file next to the
 * destination, commit, sync, trim the file, and rename it over the
 * destination.
 *
 * Alignment. Blob payloads must start 64-byte aligned in the reader's map.
 * The environment is opened with MDB_WRITEMAP, so a dirty page already lives
 * at its final place in the map and an address seen during the transaction
 * has the same value mod 64 as the reader's (the map is page-aligned in
 * both). But a small value inside a leaf page moves when a later put splits
 * the page, so the blobs are only filled after every put that can move
 * them: all blobs are reserved, then each is looked up again, padded and
 * filled. The header and checksum were put earlier as placeholders of their
 * final size; overwriting a value of the same size is done in place, which
 * moves nothing. A last pass checks that no blob moved.
 */
#include "model/writer.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/checksum.h"
#include "model/format.h"

/* An id (user, item or category) and its index in the source. */
struct entry {
    const char *s;
    uint32_t len;
    uint32_t index;
};

/* The state of one model_write(). */
struct build {
    const struct model_src *src;
    uint32_t stride;
    struct entry *users;   /* user_count, sorted by id */
    struct entry *items;   /* item_count, sorted by id */
    struct entry *cats;    /* category_count, sorted by name */
    uint32_t *item_len;    /* id length by item index */
    uint32_t *cat_len;     /* name length by category index */
    uint32_t *owned;       /* scratch: one user's owned list */
    uint32_t *pop_count;   /* owners per item */
    struct model_pop *pop; /* the ranking */
    uint64_t purchase_count;
    MDB_txn *txn;
    MDB_dbi meta, items_db, users_db;
    struct format_header hdr;
    struct format_training training; /* valid when src->training */
    struct err fill_err;             /* src->user_rows's failure, when fill_failed */
    int fill_failed;
};

/* ==== validation ===================================================== */

static const char *id_problem(const char *s)
{
    size_t len = strnlen(s, MODEL_ID_MAX + 1);
    if (len == 0)
        return "is empty";
    if (len > MODEL_ID_MAX)
        return "is longer than 256 bytes";
    if (memchr(s, '\n', len) != NULL)
        return "contains a newline";
    if (!utf8_valid(s, len))
        return "is not valid UTF-8";
    return NULL;
}

static int entry_cmp(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    return format_key_cmp(x->s, x->len, y->s, y->len);
}

/* Checks @n ids, fills @len (by index; may be NULL) and @sorted (in LMDB key
 * order), and refuses duplicates. @what names the kind in messages. */
static int sort_ids(const char *what, const char *const *ids, uint32_t n, uint32_t *len,
                    struct entry *sorted, struct err *e)
{
    for (uint32_t i = 0; i < n; i++) {
        const char *problem = id_problem(ids[i]);
        if (problem != NULL)
            return err_set(e, ERR_INVALID, "%s %u: id %s", what, i, problem);
        sorted[i] = (struct entry){ids[i], (uint32_t)strlen(ids[i]), i};
        if (len != NULL)
            len[i] = sorted[i].len;
    }
    qsort(sorted, n, sizeof(*sorted), entry_cmp);
    for (uint32_t i = 1; i < n; i++)
        if (entry_cmp(&sorted[i - 1], &sorted[i]) == 0)
            return err_set(e, ERR_INVALID, "%s id \"%s\" appears twice (%ss %u and %u)", what,
                           sorted[i].s, what, sorted[i - 1].index, sorted[i].index);
    return 0;
}

static int check_factors(const char *what, const float *f, uint32_t rows, uint32_t dim,
                         struct err *e)
{
    for (uint64_t r = 0; r < rows; r++)
        for (uint32_t j = 0; j < dim; j++)
            if (!isfinite(f[r * dim + j]))
                return err_set(e, ERR_INVALID, "%s %llu factor %u is not finite", what,
                               (unsigned long long)r, j);
    return 0;
}

/* With an item bias in the last dimension, the user side must hold 1.0
 * there, or the score would scale the bias per user. */
static int check_bias(const struct model_src *s, struct err *e)
{
    if (!s->has_bias)
        return 0;
    for (uint64_t u = 0; u < s->user_count; u++) {
        float b = s->user_factors[u * s->dim + s->dim - 1];
        if (b != 1.0f)
            return err_set(e, ERR_INVALID, "user %llu bias factor is %g, want 1 (has_bias)",
                           (unsigned long long)u, b);
    }
    return 0;
}

static int check_attrs(const struct model_src *s, struct err *e)
{
    for (uint32_t i = 0; i < s->item_count; i++) {
        const struct model_item_attr *a = &s->attrs[i];
        if (a->category >= s->category_count)
            return err_set(e, ERR_INVALID, "item %u category %u is out of range (%u categories)", i,
                           a->category, s->category_count);
        if (a->on_sale > 1)
            return err_set(e, ERR_INVALID, "item %u on_sale is %u, want 0 or 1", i, a->on_sale);
        if (a->price_cents < 0)
            return err_set(e, ERR_INVALID, "item %u price %lld is negative", i,
                           (long long)a->price_cents);
    }
    return 0;
}

/* Owned lists: ranges in order, indices in range. Returns the longest list
 * in *max, the size of the scratch buffer the writer needs. */
static int check_owned(const struct model_src *s, uint64_t *max, struct err *e)
{
    *max = 0;
    if (s->owned_offsets == NULL)
        return 0;
    for (uint32_t u = 0; u < s->user_count; u++) {
        uint64_t lo = s->owned_offsets[u], hi = s->owned_offsets[u + 1];
        if (hi < lo)
            return err_set(e, ERR_INVALID, "user %u owned offsets go backwards (%llu > %llu)", u,
                           (unsigned long long)lo, (unsigned long long)hi);
        for (uint64_t k = lo; k < hi; k++)
            if (s->owned_items[k] >= s->item_count)
                return err_set(e, ERR_INVALID, "user %u owns item index %u, but there are %u items",
                               u, s->owned_items[k], s->item_count);
        if (hi - lo > *max)
            *max = hi - lo;
    }
    return 0;
}

static int check_header_fields(const struct model_src *s, struct err *e)
{
    if (s->dim < 1 || s->dim > FORMAT_DIM_MAX)
        return err_set(e, ERR_INVALID, "dim %u is out of range 1..%u", s->dim, FORMAT_DIM_MAX);
    if (s->has_bias > 1)
        return err_set(e, ERR_INVALID, "has_bias is %u, want 0 or 1", s->has_bias);
    if (s->quantize & ~(1u << MODEL_ELEM_BF16 | 1u << MODEL_ELEM_INT8))
        return err_set(e, ERR_INVALID, "quantize 0x%x names no reduced copy", s->quantize);
    if (s->item_count < 1)
        return err_set(e, ERR_INVALID, "a model needs at least one item");
    if (s->category_count < 1)
        return err_set(e, ERR_INVALID, "a model needs at least one category");
    if (s->version == NULL || s->version[0] == '\0')
        return err_set(e, ERR_INVALID, "model version is empty");
    if (strnlen(s->version, MODEL_ID_MAX + 1) > MODEL_ID_MAX)
        return err_set(e, ERR_INVALID, "model version is longer than %d bytes", MODEL_ID_MAX);
    if (!utf8_valid(s->version, strlen(s->version)))
        return err_set(e, ERR_INVALID, "model version is not valid UTF-8");
    if (s->item_factors == NULL || s->item_ids == NULL || s->attrs == NULL || s->categories == NULL)
        return err_set(e, ERR_INVALID,
                       "item factors, item ids, attributes and categories are required");
    if (s->user_count > 0 &&
        ((s->user_factors == NULL) == (s->user_rows == NULL) || s->user_ids == NULL))
        return err_set(e, ERR_INVALID,
                       "%u users but no user ids, or not exactly one of user "
                       "factors and user rows",
                       s->user_count);
    if (s->owned_offsets != NULL && s->owned_offsets[s->user_count] > s->owned_offsets[0] &&
        s->owned_items == NULL)
        return err_set(e, ERR_INVALID, "owned offsets given but no owned items");
    return 0;
}

/* The record as the file will hold it, checked by the reader's own rule. */
static int check_training(struct build *b, struct err *e)
{
    const struct model_training *t = b->src->training;
    if (t == NULL)
        return 0;
    b->training = (struct format_training){.regularization = t->regularization,
                                           .alpha = t->alpha,
                                           .view_weight = t->view_weight,
                                           .regularization_scaling = t->regularization_scaling,
                                           .data_end_unix_ms = t->data_end_unix_ms};
    char why[128];
    if (format_training_problem(&b->training, why, sizeof(why)) != NULL)
        return err_set(e, ERR_INVALID, "%s", why);
    return 0;
}

static void *alloc_array(size_t n, size_t size)
{
    return calloc(n ? n : 1, size);
}

/* Validates everything and prepares the sorted id tables. */
static int prepare(struct build *b, struct err *e)
{
    const struct model_src *s = b->src;
    int rc = check_header_fields(s, e);
    if (rc == 0)
        rc = check_training(b, e);
    if (rc != 0)
        return rc;
    b->stride = format_stride(s->dim);

    b->users = alloc_array(s->user_count, sizeof(*b->users));
    b->items = alloc_array(s->item_count, sizeof(*b->items));
    b->cats = alloc_array(s->category_count, sizeof(*b->cats));
    b->item_len = alloc_array(s->item_count, sizeof(*b->item_len));
    b->cat_len = alloc_array(s->category_count, sizeof(*b->cat_len));
    b->pop_count = alloc_array(s->item_count, sizeof(*b->pop_count));
    b->pop = alloc_array(s->item_count, sizeof(*b->pop));
    if (!b->users || !b->items || !b->cats || !b->item_len || !b->cat_len || !b->pop_count ||
        !b->pop)
        return err_set(e, -ENOMEM, "out of memory for %u users and %u items", s->user_count,
                       s->item_count);

    uint64_t max_owned = 0;
    rc = sort_ids("user", s->user_ids, s->user_count, NULL, b->users, e);
    if (rc == 0)
        rc = sort_ids("item", s->item_ids, s->item_count, b->item_len, b->items, e);
    if (rc == 0)
        rc = sort_ids("category", s->categories, s->category_count, b->cat_len, b->cats, e);
    if (rc == 0)
        rc = check_factors("item", s->item_factors, s->item_count, s->dim, e);
    /* Rows a producer writes are its to check (writer.h). */
    if (rc == 0 && s->user_factors != NULL)
        rc = check_factors("user", s->user_factors, s->user_count, s->dim, e);
    if (rc == 0 && s->user_factors != NULL)
        rc = check_bias(s, e);
    if (rc == 0)
        rc = check_attrs(s, e);
    if (rc == 0)
        rc = check_owned(s, &max_owned, e);
    if (rc != 0)
        return rc;
    b->owned = alloc_array(max_owned, sizeof(*b->owned));
    if (b->owned == NULL)
        return err_set(e, -ENOMEM, "out of memory for an owned list of %llu items",
                       (unsigned long long)max_owned);
    return 0;
}

static void build_free(struct build *b)
{
    free(b->users);
    free(b->items);
    free(b->cats);
    free(b->item_len);
    free(b->cat_len);
    free(b->owned);
    free(b->pop_count);
    free(b->pop);
}

/* ==== blobs ========================================================== */

static size_t matrix_bytes(uint64_t rows, uint32_t stride)
{
    return (size_t)rows * stride * sizeof(float);
}

static size_t strtab_bytes(uint32_t n, const uint32_t *len)
{
    size_t bytes = ((size_t)n + 1) * sizeof(uint64_t);
    for (uint32_t i = 0; i < n; i++)
        bytes += len[i];
    return bytes;
}

static size_t item_matrix_size(const struct build *b)
{
    return matrix_bytes(b->src->item_count, b->stride);
}

static size_t user_matrix_size(const struct build *b)
{
    return matrix_bytes(b->src->user_count, b->stride);
}

static size_t attrs_size(const struct build *b)
{
    return (size_t)b->src->item_count * sizeof(struct model_item_attr);
}

static size_t item_ids_size(const struct build *b)
{
    return strtab_bytes(b->src->item_count, b->item_len);
}

static size_t categories_size(const struct build *b)
{
    return strtab_bytes(b->src->category_count, b->cat_len);
}

static size_t popularity_size(const struct build *b)
{
    return (size_t)b->src->item_count * sizeof(struct model_pop);
}

/* Fill functions write into a zeroed, aligned payload. */
static void fill_matrix(uint8_t *dst, const float *f, uint32_t rows, uint32_t dim, uint32_t stride)
{
    for (uint64_t r = 0; r < rows; r++)
        memcpy(dst + r * stride * sizeof(float), f + r * dim, dim * sizeof(float));
}

static int fill_item_matrix(struct build *b, uint8_t *dst)
{
    fill_matrix(dst, b->src->item_factors, b->src->item_count, b->src->dim, b->stride);
    return 0;
}

/* From the producer when there is one: its failure is kept in fill_err
 * and the write aborts with it. */
static int fill_user_matrix(struct build *b, uint8_t *dst)
{
    const struct model_rows *rows = b->src->user_rows;
    if (rows == NULL) {
        fill_matrix(dst, b->src->user_factors, b->src->user_count, b->src->dim, b->stride);
        return 0;
    }
    int rc = rows->fill(rows->ctx, (float *)(void *)dst, b->stride, &b->fill_err);
    b->fill_failed = rc != 0;
    return rc;
}

static int fill_attrs(struct build *b, uint8_t *dst)
{
    struct model_item_attr *out = (struct model_item_attr *)dst;
    for (uint32_t i = 0; i < b->src->item_count; i++) {
        const struct model_item_attr *a = &b->src->attrs[i];
        out[i] = (struct model_item_attr){.price_cents = a->price_cents,
                                          .category = a->category,
                                          .on_sale = a->on_sale,
                                          .tier = a->tier};
    }
    return 0;
}

static void fill_strtab(uint8_t *dst, const char *const *s, uint32_t n, const uint32_t *len)
{
    uint64_t *off = (uint64_t *)dst;
    char *bytes = (char *)(off + n + 1);
    off[0] = 0;
    for (uint32_t i = 0; i < n; i++) {
        memcpy(bytes + off[i], s[i], len[i]);
        off[i + 1] = off[i] + len[i];
    }
}

static int fill_item_ids(struct build *b, uint8_t *dst)
{
    fill_strtab(dst, b->src->item_ids, b->src->item_count, b->item_len);
    return 0;
}

static int fill_categories(struct build *b, uint8_t *dst)
{
    fill_strtab(dst, b->src->categories, b->src->category_count, b->cat_len);
    return 0;
}

static int fill_popularity(struct build *b, uint8_t *dst)
{
    memcpy(dst, b->pop, popularity_size(b));
    return 0;
}

/* bf16 nearest to @f, ties to even; toward zero where rounding up would
 * overflow to infinity (the reader refuses infinities). */
static uint16_t bf16_of(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof(bits));
    uint32_t rounded = bits + 0x7fff + ((bits >> 16) & 1);
    if ((rounded & 0x7f800000) == 0x7f800000)
        rounded = bits;
    return (uint16_t)(rounded >> 16);
}

static size_t bf16_size(const struct build *b)
{
    return (size_t)b->src->item_count * b->stride * sizeof(uint16_t);
}

static int fill_bf16(struct build *b, uint8_t *dst)
{
    const struct model_src *s = b->src;
    uint16_t *out = (uint16_t *)dst;
    for (size_t i = 0; i < s->item_count; i++)
        for (uint32_t j = 0; j < s->dim; j++)
            out[i * b->stride + j] = bf16_of(s->item_factors[i * s->dim + j]);
    return 0;
}

static size_t int8_size(const struct build *b)
{
    return (size_t)b->src->item_count * (b->stride + sizeof(float));
}

/* Rows first, then the scales (FORMAT.md). A row's scale maps its largest
 * magnitude to FORMAT_INT8_MAX, which keeps the most precision per row. */
static int fill_int8(struct build *b, uint8_t *dst)
{
    const struct model_src *s = b->src;
    int8_t *out = (int8_t *)dst;
    float *scale = (float *)(dst + (size_t)s->item_count * b->stride);
    for (size_t i = 0; i < s->item_count; i++) {
        const float *v = s->item_factors + i * s->dim;
        float max = 0;
        for (uint32_t j = 0; j < s->dim; j++)
            max = fabsf(v[j]) > max ? fabsf(v[j]) : max;
        scale[i] = max / FORMAT_INT8_MAX;
        if (max == 0)
            continue;
        for (uint32_t j = 0; j < s->dim; j++) {
            long q = lrintf(v[j] / scale[i]);
            out[i * b->stride + j] = (int8_t)(q > FORMAT_INT8_MAX    ? FORMAT_INT8_MAX
                                              : q < -FORMAT_INT8_MAX ? -FORMAT_INT8_MAX
                                                                     : q);
        }
    }
    return 0;
}

static const struct blob_ops {
    size_t (*size)(const struct build *b);
    int (*fill)(struct build *b, uint8_t *dst); /* 0, or the producer's error */
    enum model_elem copy;                       /* an optional blob: the copy it holds */
} blob_ops[FORMAT_BLOB_COUNT] = {
    [FORMAT_BLOB_ITEM_MATRIX] = {.size = item_matrix_size, .fill = fill_item_matrix},
    [FORMAT_BLOB_USER_MATRIX] = {.size = user_matrix_size, .fill = fill_user_matrix},
    [FORMAT_BLOB_ITEM_ATTRS] = {.size = attrs_size, .fill = fill_attrs},
    [FORMAT_BLOB_ITEM_IDS] = {.size = item_ids_size, .fill = fill_item_ids},
    [FORMAT_BLOB_CATEGORIES] = {.size = categories_size, .fill = fill_categories},
    [FORMAT_BLOB_POPULARITY] = {.size = popularity_size, .fill = fill_popularity},
    [FORMAT_BLOB_ITEM_BF16] = {.size = bf16_size, .fill = fill_bf16, .copy = MODEL_ELEM_BF16},
    [FORMAT_BLOB_ITEM_INT8] = {.size = int8_size, .fill = fill_int8, .copy = MODEL_ELEM_INT8},
};

/* Whether the file gets blob @i. */
static int blob_wanted(const struct build *b, int i)
{
    return i < FORMAT_BLOB_REQUIRED || (b->src->quantize & (1u << blob_ops[i].copy));
}

/* ==== the write transaction ========================================== */

static MDB_val str_val(const char *s)
{
    return (MDB_val){strlen(s), (void *)s};
}

static int put_items(struct build *b)
{
    for (uint32_t i = 0; i < b->src->item_count; i++) {
        const struct entry *it = &b->items[i];
        uint32_t index = it->index;
        MDB_val k = {it->len, (void *)it->s}, v = {sizeof(index), &index};
        int rc = mdb_put(b->txn, b->items_db, &k, &v, MDB_APPEND);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Sorted, deduplicated owned list of user @u into b->owned; returns its length. */
static uint32_t owned_list(struct build *b, uint32_t u)
{
    const struct model_src *s = b->src;
    if (s->owned_offsets == NULL)
        return 0;
    uint64_t lo = s->owned_offsets[u], n = s->owned_offsets[u + 1] - lo;
    if (n == 0)
        return 0;
    memcpy(b->owned, s->owned_items + lo, n * sizeof(uint32_t));
    qsort(b->owned, n, sizeof(uint32_t), cmp_u32);
    uint32_t kept = 1;
    for (uint64_t i = 1; i < n; i++)
        if (b->owned[i] != b->owned[kept - 1])
            b->owned[kept++] = b->owned[i];
    return kept;
}

/* Puts every user record and counts the owners of each item on the way. */
static int put_users(struct build *b)
{
    const struct model_src *s = b->src;
    for (uint32_t i = 0; i < s->user_count; i++) {
        const struct entry *ue = &b->users[i];
        uint32_t n = owned_list(b, ue->index);
        struct format_user head = {ue->index, s->user_tier ? s->user_tier[ue->index] : 0, n};
        MDB_val k = {ue->len, (void *)ue->s};
        MDB_val v = {sizeof(head) + (size_t)n * sizeof(uint32_t), NULL};
        int rc = mdb_put(b->txn, b->users_db, &k, &v, MDB_APPEND | MDB_RESERVE);
        if (rc != 0)
            return rc;
        memcpy(v.mv_data, &head, sizeof(head));
        memcpy((char *)v.mv_data + sizeof(head), b->owned, (size_t)n * sizeof(uint32_t));
        for (uint32_t j = 0; j < n; j++)
            b->pop_count[b->owned[j]]++;
        b->purchase_count += n;
    }
    return 0;
}

static int pop_cmp(const void *a, const void *b)
{
    const struct model_pop *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return (x->item > y->item) - (x->item < y->item);
}

static void rank_popularity(struct build *b)
{
    for (uint32_t i = 0; i < b->src->item_count; i++)
        b->pop[i] = (struct model_pop){i, b->pop_count[i]};
    qsort(b->pop, b->src->item_count, sizeof(*b->pop), pop_cmp);
}

static int put_meta(struct build *b, const char *key, const void *data, size_t len)
{
    MDB_val k = str_val(key), v = {len, (void *)data};
    return mdb_put(b->txn, b->meta, &k, &v, 0);
}

/* Reserves every blob, then fills each at its aligned offset (see the top
 * of the file for why filling waits until all are reserved). */
static int put_blobs(struct build *b)
{
    for (int i = 0; i < FORMAT_BLOB_COUNT; i++) {
        if (!blob_wanted(b, i))
            continue;
        MDB_val k = str_val(format_blob_keys[i]);
        MDB_val v = {blob_ops[i].size(b) + FORMAT_BLOB_SLACK, NULL};
        int rc = mdb_put(b->txn, b->meta, &k, &v, MDB_RESERVE);
        if (rc != 0)
            return rc;
    }
    for (int i = 0; i < FORMAT_BLOB_COUNT; i++) {
        if (!blob_wanted(b, i))
            continue;
        MDB_val k = str_val(format_blob_keys[i]), v;
        int rc = mdb_get(b->txn, b->meta, &k, &v);
        if (rc != 0)
            return rc;
        uintptr_t pad =
            (FORMAT_BLOB_ALIGN - (uintptr_t)v.mv_data % FORMAT_BLOB_ALIGN) % FORMAT_BLOB_ALIGN;
        memset(v.mv_data, 0, v.mv_size);
        if ((rc = blob_ops[i].fill(b, (uint8_t *)v.mv_data + pad)) != 0)
            return rc;
        b->hdr.blob_pad[i] = (uint32_t)pad;
    }
    return 0;
}

/* The guard on the in-place overwrite argument: every blob is still where
 * its pad says. */
static int blobs_in_place(struct build *b)
{
    for (int i = 0; i < FORMAT_BLOB_COUNT; i++) {
        if (!blob_wanted(b, i))
            continue;
        MDB_val k = str_val(format_blob_keys[i]), v;
        int rc = mdb_get(b->txn, b->meta, &k, &v);
        if (rc != 0)
            return rc;
        if (((uintptr_t)v.mv_data + b->hdr.blob_pad[i]) % FORMAT_BLOB_ALIGN != 0)
            return ERR_INTERNAL;
    }
    return 0;
}

static void fill_header(struct build *b)
{
    const struct model_src *s = b->src;
    struct format_header *h = &b->hdr;
    memcpy(h->magic, FORMAT_MAGIC, sizeof(h->magic));
    h->format_version = FORMAT_VERSION;
    h->dim = s->dim;
    h->stride = b->stride;
    h->elem_type = MODEL_ELEM_F32;
    h->has_bias = s->has_bias;
    h->category_count = s->category_count;
    h->user_count = s->user_count;
    h->item_count = s->item_count;
    h->purchase_count = b->purchase_count;
    h->created_at = s->created_at;
}

static int open_dbs(struct build *b)
{
    int rc = mdb_dbi_open(b->txn, FORMAT_DB_META, MDB_CREATE, &b->meta);
    if (rc == 0)
        rc = mdb_dbi_open(b->txn, FORMAT_DB_ITEMS, MDB_CREATE, &b->items_db);
    if (rc == 0)
        rc = mdb_dbi_open(b->txn, FORMAT_DB_USERS, MDB_CREATE, &b->users_db);
    return rc;
}

/* Everything between opening the environment and committing. */
static int write_txn(struct build *b)
{
    static const uint64_t zero_checksum;
    static const struct format_header zero_header;
    int rc;
    if ((rc = open_dbs(b)) != 0 || (rc = put_items(b)) != 0 || (rc = put_users(b)) != 0)
        return rc;
    rank_popularity(b);
    fill_header(b);

    /* Every small value before the blobs, whose pads a later put into a
     * leaf page could spoil; header and checksum as placeholders of their
     * final sizes, so their later overwrites stay in place. */
    if ((rc = put_meta(b, FORMAT_KEY_HEADER, &zero_header, sizeof(zero_header))) != 0 ||
        (rc = put_meta(b, FORMAT_KEY_CHECKSUM, &zero_checksum, sizeof(zero_checksum))) != 0 ||
        (rc = put_meta(b, FORMAT_KEY_VERSION, b->src->version, strlen(b->src->version))) != 0 ||
        (b->src->training != NULL &&
         (rc = put_meta(b, FORMAT_KEY_TRAINING, &b->training, sizeof(b->training))) != 0) ||
        (rc = put_blobs(b)) != 0 ||
        (rc = put_meta(b, FORMAT_KEY_HEADER, &b->hdr, sizeof(b->hdr))) != 0)
        return rc;

    MDB_dbi dbi[3] = {b->meta, b->items_db, b->users_db};
    uint64_t sum;
    if ((rc = checksum_content(b->txn, dbi, &sum)) != 0 ||
        (rc = put_meta(b, FORMAT_KEY_CHECKSUM, &sum, sizeof(sum))) != 0)
        return rc;
    return blobs_in_place(b);
}

/* ==== the file ======================================================= */

/* An upper bound on the file size: at worst every leaf page is half full
 * and a value that may not fit a leaf takes whole overflow pages; branch
 * pages add well under half again. The map is only address space and the
 * file is trimmed after the commit, so generous costs nothing. */
static size_t map_size(const struct build *b, size_t psize)
{
    const struct model_src *s = b->src;
    size_t bytes = 1 << 20; /* meta pages, the main database, meta's leaves */
    for (int i = 0; i < FORMAT_BLOB_COUNT; i++)
        if (blob_wanted(b, i))
            bytes += blob_ops[i].size(b) + FORMAT_BLOB_SLACK + 2 * psize;
    for (uint32_t i = 0; i < s->item_count; i++)
        bytes += 2 * (b->item_len[i] + FORMAT_ITEM_VALUE_SIZE + 16);
    for (uint32_t i = 0; i < s->user_count; i++) {
        const struct entry *ue = &b->users[i];
        uint64_t owned =
            s->owned_offsets ? s->owned_offsets[ue->index + 1] - s->owned_offsets[ue->index] : 0;
        size_t v = sizeof(struct format_user) + owned * sizeof(uint32_t);
        bytes += 2 * (ue->len + v + 16) + (v > psize / 4 ? psize : 0);
    }
    return bytes + bytes / 2;
}

static int used_bytes(MDB_env *env, off_t *used)
{
    MDB_envinfo info;
    MDB_stat st;
    int rc = mdb_env_info(env, &info);
    if (rc == 0)
        rc = mdb_env_stat(env, &st);
    if (rc == 0)
        *used = (off_t)(info.me_last_pgno + 1) * st.ms_psize;
    return rc;
}

/* Opens the environment on @tmp, writes, commits and syncs. *used receives
 * the bytes the database occupies. */
static int write_env(struct build *b, const char *tmp, off_t *used, struct err *e)
{
    MDB_env *env = NULL;
    size_t psize = (size_t)sysconf(_SC_PAGESIZE);
    int rc = mdb_env_create(&env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(env, FORMAT_MAX_DBS);
    if (rc == 0)
        rc = mdb_env_set_mapsize(env, map_size(b, psize));
    if (rc == 0)
        rc = mdb_env_open(env, tmp, MDB_NOSUBDIR | MDB_WRITEMAP | MDB_NOLOCK, 0644);
    if (rc == 0)
        rc = mdb_txn_begin(env, NULL, 0, &b->txn);
    if (rc == 0) {
        rc = write_txn(b);
        if (rc == 0)
            rc = mdb_txn_commit(b->txn);
        else
            mdb_txn_abort(b->txn);
        b->txn = NULL;
    }
    if (rc == 0)
        rc = mdb_env_sync(env, 1);
    if (rc == 0)
        rc = used_bytes(env, used);
    if (env != NULL)
        mdb_env_close(env);
    if (b->fill_failed)
        return err_set(e, rc, "%s", b->fill_err.msg);
    if (rc == ERR_INTERNAL)
        return err_set(e, rc, "%s: a blob moved after it was aligned", tmp);
    if (rc != 0)
        return err_set(e, format_lmdb_rc(rc), "%s: failed to write the model (%s)", tmp,
                       mdb_strerror(rc));
    return 0;
}

/* Splits @path into its directory (or ".") and base name. */
static int split_path(const char *path, char **dir, const char **base, struct err *e)
{
    const char *slash = strrchr(path, '/');
    *base = slash ? slash + 1 : path;
    if (**base == '\0')
        return err_set(e, ERR_INVALID, "%s: not a file path", path);
    *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (*dir == NULL)
        return err_set(e, -ENOMEM, "%s: out of memory", path);
    return 0;
}

static int sync_dir(const char *dir, struct err *e)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return err_set(e, -errno, "%s: failed to open the directory (%s)", dir, strerror(errno));
    int rc = 0;
    if (fsync(fd) != 0)
        rc = err_set(e, -errno, "%s: failed to sync the directory (%s)", dir, strerror(errno));
    close(fd);
    return rc;
}

/* WRITEMAP grew the file to the map size; cut it to what the database uses,
 * make it durable, then publish it under its name. */
static int publish(int fd, off_t used, const char *tmp, const char *path, const char *dir,
                   int *renamed, struct err *e)
{
    if (ftruncate(fd, used) != 0)
        return err_set(e, -errno, "%s: failed to trim (%s)", tmp, strerror(errno));
    if (fsync(fd) != 0)
        return err_set(e, -errno, "%s: failed to sync (%s)", tmp, strerror(errno));
    if (rename(tmp, path) != 0)
        return err_set(e, -errno, "%s: failed to rename to %s (%s)", tmp, path, strerror(errno));
    *renamed = 1;
    return sync_dir(dir, e);
}

int model_write(const char *path, const struct model_src *src, struct err *e)
{
    struct build b = {.src = src};
    char *dir = NULL, *tmp = NULL;
    const char *base;
    int fd = -1, renamed = 0;
    off_t used = 0;

    int rc = prepare(&b, e);
    if (rc != 0 || (rc = split_path(path, &dir, &base, e)) != 0)
        goto out;
    size_t tmp_size = strlen(dir) + strlen(base) + sizeof("/..tmp.XXXXXX");
    tmp = malloc(tmp_size);
    if (tmp == NULL) {
        rc = err_set(e, -ENOMEM, "%s: out of memory", path);
        goto out;
    }
    snprintf(tmp, tmp_size, "%s/.%s.tmp.XXXXXX", dir, base);
    fd = mkstemp(tmp);
    if (fd < 0) {
        rc = err_set(e, -errno, "%s: failed to create (%s)", tmp, strerror(errno));
        free(tmp);
        tmp = NULL;
        goto out;
    }
    /* mkstemp makes it 0600; the daemon may run as another user. */
    if (fchmod(fd, 0644) != 0) {
        rc = err_set(e, -errno, "%s: failed to chmod (%s)", tmp, strerror(errno));
        goto out;
    }
    if ((rc = write_env(&b, tmp, &used, e)) != 0)
        goto out;
    rc = publish(fd, used, tmp, path, dir, &renamed, e);
out:
    if (fd >= 0)
        close(fd);
    if (tmp != NULL && !renamed)
        unlink(tmp);
    free(tmp);
    free(dir);
    build_free(&b);
    return rc;
}
