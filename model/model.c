/*
 * model: open, validate and serve a model file (FORMAT.md).
 *
 * model_open() checks the file once, in three stages, and refuses it at the
 * first problem with "<path>: <problem>":
 *
 *   1. The container: a regular, non-empty LMDB file, long enough for every
 *      page its meta page claims (a shorter file would raise SIGBUS when a
 *      missing page is touched), with the three databases.
 *   2. Structure: the header, the training record, every blob's size,
 *      padding and alignment, every string, attribute, count and index,
 *      the items and users databases against the catalog, the popularity
 *      ranking against the purchases. Every value's bytes are also checked
 *      to lie inside the file before they are read.
 *   3. Values: one pass over both factor matrices (finite factors, zero
 *      row padding, the bias column), which also computes the items'
 *      inverse norms; then the checksum, last, so that a damaged field is
 *      reported as itself rather than as a checksum mismatch.
 *
 * After that the model is trusted: accessors assert instead of checking.
 */
#include "model/model.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "model/checksum.h"
#include "model/format.h"
#include "model/lmdbcheck.h"

const char *const format_blob_keys[FORMAT_BLOB_COUNT] = {
    [FORMAT_BLOB_ITEM_MATRIX] = "item_matrix", [FORMAT_BLOB_USER_MATRIX] = "user_matrix",
    [FORMAT_BLOB_ITEM_ATTRS] = "item_attrs",   [FORMAT_BLOB_ITEM_IDS] = "item_ids",
    [FORMAT_BLOB_CATEGORIES] = "categories",   [FORMAT_BLOB_POPULARITY] = "popularity",
    [FORMAT_BLOB_ITEM_BF16] = "item_bf16",     [FORMAT_BLOB_ITEM_INT8] = "item_int8",
};

const char *const model_elem_names[MODEL_ELEM_COUNT] = {
    [MODEL_ELEM_F32] = "f32",
    [MODEL_ELEM_BF16] = "bf16",
    [MODEL_ELEM_INT8] = "int8",
};

/* The optional blob holding each reduced copy. */
static const enum format_blob copy_blob[MODEL_ELEM_COUNT] = {
    [MODEL_ELEM_BF16] = FORMAT_BLOB_ITEM_BF16,
    [MODEL_ELEM_INT8] = FORMAT_BLOB_ITEM_INT8,
};

/* Databases, in checksum order. */
enum { DB_META, DB_ITEMS, DB_USERS, DB_COUNT };
static const char *const db_names[DB_COUNT] = {FORMAT_DB_META, FORMAT_DB_ITEMS, FORMAT_DB_USERS};

/* A string table blob: count strings, string i is
 * bytes[off[i] .. off[i+1]). */
struct strtab {
    const uint64_t *off;
    const char *bytes;
    uint32_t count;
};

/* A category name and its index, for the sorted name table. */
struct cat_entry {
    const char *name;
    uint32_t len;
    uint32_t index;
};

struct model {
    MDB_env *env;
    MDB_txn **txns; /* one read-only transaction per lookup slot */
    unsigned slots;
    MDB_dbi dbi[DB_COUNT];
    struct format_header hdr;
    const float *item_matrix;
    const float *user_matrix;
    const struct model_item_attr *attrs;
    const struct model_pop *pop;
    struct strtab item_ids;
    struct strtab categories;
    float *inv_norms; /* heap, item_count */
    /* [MODEL_ELEM_F32] always; a reduced copy's rows are NULL when absent. */
    struct model_item_copy copies[MODEL_ELEM_COUNT];
    struct model_scan scan; /* valid when has_scan */
    int has_scan;
    struct model_training training;
    void *gram;                    /* heap, the engine's (model_set_gram) */
    struct cat_entry *cats_sorted; /* heap, category_count, by name */
    struct model_info info;
    char *path;
    char version[MODEL_ID_MAX + 1];
    char checksum[17];
};

/* Scratch state of one model_open(). */
struct load {
    struct model *m;
    const char *path;
    struct err *e;
    MDB_txn *txn;                       /* slot 0's transaction, used to validate */
    const char *map;                    /* the file's first byte in the map */
    uint64_t file_size;                 /* bytes */
    uint64_t psize;                     /* LMDB page size */
    uint64_t last_pgno;                 /* the last page in use */
    uint8_t present[FORMAT_BLOB_COUNT]; /* the blob is in meta */
    int has_training;                   /* meta/training is there */
    const uint8_t *payload[FORMAT_BLOB_COUNT];
    size_t payload_len[FORMAT_BLOB_COUNT];
    uint32_t *owners; /* heap, item_count: users owning each item */
    uint64_t stored_checksum;
};

/* ==== helpers ======================================================== */

static int fail(const struct load *l, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records "<path>: <problem>" and returns @code. */
static int fail(const struct load *l, int code, const char *fmt, ...)
{
    char problem[sizeof(l->e->msg)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(problem, sizeof(problem), fmt, ap);
    va_end(ap);
    return err_set(l->e, code, "%s: %s", l->path, problem);
}

static int fail_lmdb(const struct load *l, int rc, const char *action)
{
    return fail(l, format_lmdb_rc(rc), "failed to %s (%s)", action, mdb_strerror(rc));
}

/* Whether [p, p + len) lies inside the file. LMDB trusts a value's length
 * as stored; a damaged one could point past the end of the map. */
static int in_file(const struct load *l, const void *p, size_t len)
{
    const char *c = p;
    if (c < l->map)
        return 0;
    uint64_t off = (uint64_t)(c - l->map);
    return off <= l->file_size && len <= l->file_size - off;
}

static int all_zero(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != 0)
            return 0;
    return 1;
}

/* ==== stage 1: the container ======================================== */

/* LMDB refuses a file that is not an environment with one of these. */
static int is_not_lmdb(int rc)
{
    return rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH;
}

static int open_env(struct load *l)
{
    struct model *m = l->m;
    struct stat st;
    /* Checked before LMDB sees the file: LMDB reports an empty file as
     * ENOENT, which would read as "missing". */
    if (stat(l->path, &st) != 0)
        return fail(l, -errno, "%s", strerror(errno));
    if (!S_ISREG(st.st_mode))
        return fail(l, ERR_FORMAT, "not a regular file");
    if (st.st_size == 0)
        return fail(l, ERR_FORMAT, "empty file, not a model");
    /* LMDB trusts its page structures: a damaged one crashes it. The file
     * checked is kept open, so that the one LMDB opens below can be proved
     * to be the same. */
    int checked = open(l->path, O_RDONLY | O_CLOEXEC);
    if (checked < 0)
        return fail(l, -errno, "%s", strerror(errno));
    int rc = lmdbcheck_fd(checked, l->e);
    if (rc != 0)
        err_wrap(l->e, rc, "%s", l->path);
    else if (fstat(checked, &st) != 0)
        rc = fail(l, -errno, "%s", strerror(errno));
    close(checked);
    if (rc != 0)
        return rc;
    dev_t checked_dev = st.st_dev;
    ino_t checked_ino = st.st_ino;

    rc = mdb_env_create(&m->env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(m->env, FORMAT_MAX_DBS);
    if (rc != 0)
        return fail_lmdb(l, rc, "create the LMDB environment");
    rc = mdb_env_open(m->env, l->path, MDB_RDONLY | MDB_NOSUBDIR | MDB_NOLOCK | MDB_NOTLS, 0);
    if (is_not_lmdb(rc))
        return fail(l, ERR_FORMAT, "not an LMDB file (%s)", mdb_strerror(rc));
    if (rc != 0)
        return fail(l, format_lmdb_rc(rc), "%s", mdb_strerror(rc));

    /* The size of the file LMDB opened (the path may have been replaced
     * since the stat above), against the pages its meta page claims. */
    int fd;
    MDB_envinfo info;
    MDB_stat ms;
    if ((rc = mdb_env_get_fd(m->env, &fd)) != 0 || (rc = mdb_env_info(m->env, &info)) != 0 ||
        (rc = mdb_env_stat(m->env, &ms)) != 0)
        return fail_lmdb(l, rc, "read the environment");
    if (fstat(fd, &st) != 0)
        return fail(l, -errno, "%s", strerror(errno));
    /* Replaced between the check and LMDB's open: what LMDB holds was never
     * checked. The rename that did it triggers another load. */
    if (st.st_dev != checked_dev || st.st_ino != checked_ino)
        return fail(l, -EAGAIN, "replaced while being opened");
    uint64_t need = ((uint64_t)info.me_last_pgno + 1) * ms.ms_psize;
    if ((uint64_t)st.st_size < need)
        return fail(l, ERR_FORMAT, "truncated: %llu bytes, the database needs %llu",
                    (unsigned long long)st.st_size, (unsigned long long)need);
    l->psize = ms.ms_psize;
    l->last_pgno = info.me_last_pgno;
    l->file_size = (uint64_t)st.st_size;
    m->info.file_bytes = l->file_size;
    return 0;
}

/* Opens the databases in a transaction of their own: LMDB shares a handle
 * with other transactions only once the one that opened it commits. Then
 * begins the lookup slots' transactions, which stay open for the model's
 * life; the file is immutable and MDB_NOLOCK means they hold no lock. */
static int open_txns(struct load *l, unsigned slots)
{
    struct model *m = l->m;
    MDB_txn *txn;
    int rc = mdb_txn_begin(m->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return fail_lmdb(l, rc, "begin a read transaction");
    for (int i = 0; i < DB_COUNT; i++) {
        rc = mdb_dbi_open(txn, db_names[i], 0, &m->dbi[i]);
        if (rc != 0) {
            mdb_txn_abort(txn);
            if (rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE)
                return fail(l, ERR_FORMAT, "no \"%s\" database, not a recsysd model", db_names[i]);
            return fail_lmdb(l, rc, "open a database");
        }
    }
    if ((rc = mdb_txn_commit(txn)) != 0)
        return fail_lmdb(l, rc, "open the databases");

    m->txns = calloc(slots, sizeof(*m->txns));
    if (m->txns == NULL)
        return fail(l, -ENOMEM, "out of memory for %u lookup slots", slots);
    for (; m->slots < slots; m->slots++)
        if ((rc = mdb_txn_begin(m->env, NULL, MDB_RDONLY, &m->txns[m->slots])) != 0)
            return fail_lmdb(l, rc, "begin a lookup transaction");
    l->txn = m->txns[0];
    return 0;
}

/* ==== stage 2: structure ============================================= */

static int get_meta(const struct load *l, const char *key, MDB_val *v)
{
    MDB_val k = {strlen(key), (void *)key};
    int rc = mdb_get(l->txn, l->m->dbi[DB_META], &k, v);
    if (rc == MDB_NOTFOUND)
        return fail(l, ERR_FORMAT, "meta/%s is missing", key);
    if (rc != 0)
        return fail_lmdb(l, rc, "read meta");
    if (!in_file(l, v->mv_data, v->mv_size))
        return fail(l, ERR_FORMAT, "meta/%s lies outside the file", key);
    return 0;
}

/* LMDB does not say where it mapped the file (mdb_env_info's me_mapaddr is
 * the MDB_FIXEDMAP address, NULL here), but its file format does: every
 * page starts with its own 64-bit page number, and a small value lies inside
 * the leaf page that holds it. The header is such a value. */
static int locate_map(struct load *l)
{
    MDB_val k = {strlen(FORMAT_KEY_HEADER), FORMAT_KEY_HEADER}, v;
    int rc = mdb_get(l->txn, l->m->dbi[DB_META], &k, &v);
    if (rc == MDB_NOTFOUND)
        return fail(l, ERR_FORMAT, "meta/%s is missing", FORMAT_KEY_HEADER);
    if (rc != 0)
        return fail_lmdb(l, rc, "read meta");
    uintptr_t page = (uintptr_t)v.mv_data & ~(uintptr_t)(l->psize - 1);
    uint64_t pgno;
    memcpy(&pgno, (const void *)page, sizeof(pgno));
    if (pgno > l->last_pgno)
        return fail(l, ERR_FORMAT, "page %llu is past the last page %llu", (unsigned long long)pgno,
                    (unsigned long long)l->last_pgno);
    l->map = (const char *)(page - pgno * l->psize);
    return 0;
}

/* Every meta key is fetched by name below; with the count right there is
 * nothing else in meta. Notes which optional blobs and keys are there. */
static int check_meta_count(struct load *l)
{
    size_t keys = 3; /* header, version, checksum */
    MDB_val tk = {strlen(FORMAT_KEY_TRAINING), FORMAT_KEY_TRAINING}, tv;
    int trc = mdb_get(l->txn, l->m->dbi[DB_META], &tk, &tv);
    if (trc != 0 && trc != MDB_NOTFOUND)
        return fail_lmdb(l, trc, "read meta");
    l->has_training = trc == 0;
    keys += (size_t)l->has_training;
    for (int b = 0; b < FORMAT_BLOB_COUNT; b++) {
        MDB_val k = {strlen(format_blob_keys[b]), (void *)format_blob_keys[b]}, v;
        int rc = b < FORMAT_BLOB_REQUIRED ? 0 : mdb_get(l->txn, l->m->dbi[DB_META], &k, &v);
        if (rc != 0 && rc != MDB_NOTFOUND)
            return fail_lmdb(l, rc, "read meta");
        l->present[b] = rc == 0;
        keys += l->present[b];
    }
    MDB_stat st;
    int rc = mdb_stat(l->txn, l->m->dbi[DB_META], &st);
    if (rc != 0)
        return fail_lmdb(l, rc, "read meta");
    if (st.ms_entries != keys)
        return fail(l, ERR_FORMAT, "meta has %zu keys, want %zu", st.ms_entries, keys);
    return 0;
}

static int check_header(struct load *l)
{
    struct format_header *h = &l->m->hdr;
    MDB_val v;
    int rc = get_meta(l, FORMAT_KEY_HEADER, &v);
    if (rc != 0)
        return rc;
    if (v.mv_size != sizeof(*h))
        return fail(l, ERR_FORMAT, "header is %zu bytes, want %zu", v.mv_size, sizeof(*h));
    memcpy(h, v.mv_data, sizeof(*h)); /* the value is not aligned */

    if (memcmp(h->magic, FORMAT_MAGIC, sizeof(h->magic)) != 0)
        return fail(l, ERR_FORMAT, "bad magic, not a recsysd model");
    if (h->format_version != FORMAT_VERSION)
        return fail(l, ERR_FORMAT, "format version %u is not supported (want %d)",
                    h->format_version, FORMAT_VERSION);
    if (h->dim < 1 || h->dim > FORMAT_DIM_MAX)
        return fail(l, ERR_FORMAT, "header dim %u is out of range 1..%d", h->dim, FORMAT_DIM_MAX);
    if (h->stride != format_stride(h->dim))
        return fail(l, ERR_FORMAT, "header stride %u is wrong for dim %u (want %u)", h->stride,
                    h->dim, format_stride(h->dim));
    if (h->elem_type != MODEL_ELEM_F32)
        return fail(l, ERR_FORMAT, "element type %u is not supported", h->elem_type);
    if (h->has_bias > 1)
        return fail(l, ERR_FORMAT, "header has_bias is %u, want 0 or 1", h->has_bias);
    if (h->category_count < 1)
        return fail(l, ERR_FORMAT, "header category count is 0");
    if (h->item_count < 1 || h->item_count > UINT32_MAX)
        return fail(l, ERR_FORMAT, "header item count %llu is out of range 1..%u",
                    (unsigned long long)h->item_count, UINT32_MAX);
    if (h->user_count > UINT32_MAX)
        return fail(l, ERR_FORMAT, "header user count %llu is out of range",
                    (unsigned long long)h->user_count);
    for (int i = 0; i < FORMAT_BLOB_COUNT; i++) {
        if (h->blob_pad[i] >= FORMAT_BLOB_SLACK)
            return fail(l, ERR_FORMAT, "header pad %u of %s is out of range", h->blob_pad[i],
                        format_blob_keys[i]);
        if (!l->present[i] && h->blob_pad[i] != 0)
            return fail(l, ERR_FORMAT, "header pad of %s is %u, want 0: the file has no %s",
                        format_blob_keys[i], h->blob_pad[i], format_blob_keys[i]);
    }
    return 0;
}

static int check_version(struct load *l)
{
    MDB_val v;
    int rc = get_meta(l, FORMAT_KEY_VERSION, &v);
    if (rc != 0)
        return rc;
    if (!format_id_ok(v.mv_data, v.mv_size, 1))
        return fail(l, ERR_FORMAT, "model version is empty, too long, holds a NUL or is not UTF-8");
    memcpy(l->m->version, v.mv_data, v.mv_size);
    l->m->version[v.mv_size] = '\0';
    return 0;
}

static int check_stored_checksum(struct load *l)
{
    MDB_val v;
    int rc = get_meta(l, FORMAT_KEY_CHECKSUM, &v);
    if (rc != 0)
        return rc;
    if (v.mv_size != sizeof(l->stored_checksum))
        return fail(l, ERR_FORMAT, "checksum is %zu bytes, want 8", v.mv_size);
    memcpy(&l->stored_checksum, v.mv_data, sizeof(l->stored_checksum));
    return 0;
}

/* The training record, or the defaults when the file has none (files
 * written before it existed, or without one). */
static int check_training(struct load *l)
{
    struct model_training *t = &l->m->training;
    if (!l->has_training) {
        *t = (struct model_training){.regularization = MODEL_DEFAULT_REGULARIZATION,
                                     .alpha = MODEL_DEFAULT_ALPHA,
                                     .view_weight = MODEL_DEFAULT_VIEW_WEIGHT};
        return 0;
    }
    struct format_training ft;
    MDB_val v;
    int rc = get_meta(l, FORMAT_KEY_TRAINING, &v);
    if (rc != 0)
        return rc;
    if (v.mv_size != sizeof(ft))
        return fail(l, ERR_FORMAT, "training is %zu bytes, want %zu", v.mv_size, sizeof(ft));
    memcpy(&ft, v.mv_data, sizeof(ft)); /* the value is not aligned */
    char why[128];
    if (format_training_problem(&ft, why, sizeof(why)) != NULL)
        return fail(l, ERR_FORMAT, "%s", why);
    *t = (struct model_training){.regularization = ft.regularization,
                                 .alpha = ft.alpha,
                                 .view_weight = ft.view_weight,
                                 .regularization_scaling = ft.regularization_scaling,
                                 .data_end_unix_ms = ft.data_end_unix_ms,
                                 .from_file = 1};
    return 0;
}

/* -- blobs -- */

static int check_matrix(struct load *l, enum format_blob b, uint64_t rows)
{
    const struct format_header *h = &l->m->hdr;
    uint64_t want = rows * h->stride * sizeof(float);
    if (l->payload_len[b] != want)
        return fail(l, ERR_FORMAT,
                    "header dim %u does not match %s size (%zu bytes for %llu rows, "
                    "want %llu)",
                    h->dim, format_blob_keys[b], l->payload_len[b], (unsigned long long)rows,
                    (unsigned long long)want);
    return 0;
}

/* The rows' values are checked in stage 3. */
static int check_item_matrix(struct load *l)
{
    l->m->item_matrix = (const float *)l->payload[FORMAT_BLOB_ITEM_MATRIX];
    return check_matrix(l, FORMAT_BLOB_ITEM_MATRIX, l->m->hdr.item_count);
}

static int check_user_matrix(struct load *l)
{
    l->m->user_matrix = (const float *)l->payload[FORMAT_BLOB_USER_MATRIX];
    return check_matrix(l, FORMAT_BLOB_USER_MATRIX, l->m->hdr.user_count);
}

static int check_attrs(struct load *l)
{
    struct model *m = l->m;
    size_t want = m->hdr.item_count * sizeof(struct model_item_attr);
    if (l->payload_len[FORMAT_BLOB_ITEM_ATTRS] != want)
        return fail(l, ERR_FORMAT, "item_attrs is %zu bytes, want %zu for %llu items",
                    l->payload_len[FORMAT_BLOB_ITEM_ATTRS], want,
                    (unsigned long long)m->hdr.item_count);
    m->attrs = (const struct model_item_attr *)l->payload[FORMAT_BLOB_ITEM_ATTRS];
    for (uint32_t i = 0; i < m->hdr.item_count; i++) {
        const struct model_item_attr *a = &m->attrs[i];
        if (a->category >= m->hdr.category_count)
            return fail(l, ERR_FORMAT, "item %u category %u is out of range (%u categories)", i,
                        a->category, m->hdr.category_count);
        if (a->on_sale > 1)
            return fail(l, ERR_FORMAT, "item %u on_sale is %u, want 0 or 1", i, a->on_sale);
        if (a->price_cents < 0)
            return fail(l, ERR_FORMAT, "item %u price %lld is negative", i,
                        (long long)a->price_cents);
        if (a->pad[0] != 0 || a->pad[1] != 0)
            return fail(l, ERR_FORMAT, "item %u attribute padding is not zero", i);
    }
    return 0;
}

/* A string table: offsets from 0, each string 1..MODEL_ID_MAX bytes without
 * NUL or newline, the bytes ending exactly at the end of the payload. */
static int check_strtab(struct load *l, enum format_blob b, uint64_t count, const char *what,
                        struct strtab *t)
{
    const uint8_t *p = l->payload[b];
    size_t len = l->payload_len[b], head = (count + 1) * sizeof(uint64_t);
    if (len < head)
        return fail(l, ERR_FORMAT, "%s is %zu bytes, too short for %llu entries",
                    format_blob_keys[b], len, (unsigned long long)count);
    t->off = (const uint64_t *)p;
    t->bytes = (const char *)p + head;
    t->count = (uint32_t)count;
    if (t->off[0] != 0)
        return fail(l, ERR_FORMAT, "%s offsets do not start at 0", format_blob_keys[b]);
    for (uint32_t i = 0; i < count; i++) {
        uint64_t lo = t->off[i], hi = t->off[i + 1];
        if (hi <= lo || hi - lo > MODEL_ID_MAX || hi > len - head)
            return fail(l, ERR_FORMAT, "%s %u has a bad offset (%llu..%llu)", what, i,
                        (unsigned long long)lo, (unsigned long long)hi);
        if (!format_id_ok(t->bytes + lo, hi - lo, 0))
            return fail(l, ERR_FORMAT, "%s %u contains a NUL or newline, or is not UTF-8", what, i);
    }
    if (t->off[count] != len - head)
        return fail(l, ERR_FORMAT, "%s is %zu bytes, its offsets end at %llu", format_blob_keys[b],
                    len, (unsigned long long)(head + t->off[count]));
    return 0;
}

static int check_item_ids(struct load *l)
{
    return check_strtab(l, FORMAT_BLOB_ITEM_IDS, l->m->hdr.item_count, "item id", &l->m->item_ids);
}

static int cat_cmp(const void *a, const void *b)
{
    const struct cat_entry *x = a, *y = b;
    return format_key_cmp(x->name, x->len, y->name, y->len);
}

/* Categories, plus the by-name table model_find_category() searches. */
static int check_categories(struct load *l)
{
    struct model *m = l->m;
    struct strtab *t = &m->categories;
    int rc = check_strtab(l, FORMAT_BLOB_CATEGORIES, m->hdr.category_count, "category", t);
    if (rc != 0)
        return rc;
    m->cats_sorted = calloc(t->count, sizeof(*m->cats_sorted));
    if (m->cats_sorted == NULL)
        return fail(l, -ENOMEM, "out of memory for %u categories", t->count);
    for (uint32_t i = 0; i < t->count; i++)
        m->cats_sorted[i] =
            (struct cat_entry){t->bytes + t->off[i], (uint32_t)(t->off[i + 1] - t->off[i]), i};
    qsort(m->cats_sorted, t->count, sizeof(*m->cats_sorted), cat_cmp);
    for (uint32_t i = 1; i < t->count; i++)
        if (cat_cmp(&m->cats_sorted[i - 1], &m->cats_sorted[i]) == 0)
            return fail(l, ERR_FORMAT, "category \"%.*s\" appears twice",
                        (int)m->cats_sorted[i].len, m->cats_sorted[i].name);
    return 0;
}

/* Whether @a may precede @b in the ranking. */
static int pop_before(const struct model_pop *a, const struct model_pop *b)
{
    return a->count > b->count || (a->count == b->count && a->item < b->item);
}

/* The order: a permutation of the items, most owners first, ties to the
 * lower index. The counts are compared with the users in check_owners(). */
static int check_popularity(struct load *l)
{
    struct model *m = l->m;
    uint64_t n = m->hdr.item_count;
    if (l->payload_len[FORMAT_BLOB_POPULARITY] != n * sizeof(struct model_pop))
        return fail(l, ERR_FORMAT, "popularity is %zu bytes, want %llu for %llu items",
                    l->payload_len[FORMAT_BLOB_POPULARITY],
                    (unsigned long long)(n * sizeof(struct model_pop)), (unsigned long long)n);
    m->pop = (const struct model_pop *)l->payload[FORMAT_BLOB_POPULARITY];
    uint8_t *seen = calloc(n, 1);
    if (seen == NULL)
        return fail(l, -ENOMEM, "out of memory for %llu items", (unsigned long long)n);
    int rc = 0;
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        const struct model_pop *p = &m->pop[i];
        if (p->item >= n || seen[p->item])
            rc = fail(l, ERR_FORMAT,
                      "popularity is not a permutation of the items (entry %u: item %u)", i,
                      p->item);
        else if (i > 0 && !pop_before(&m->pop[i - 1], p))
            rc = fail(l, ERR_FORMAT, "popularity is not sorted at entry %u", i);
        else
            seen[p->item] = 1;
    }
    free(seen);
    return rc;
}

/* A reduced copy's size; its values are checked in stage 3. */
static int check_copy(struct load *l, enum model_elem elem, size_t row_bytes, size_t row_extra)
{
    enum format_blob b = copy_blob[elem];
    uint64_t n = l->m->hdr.item_count;
    size_t want = n * (row_bytes + row_extra);
    if (l->payload_len[b] != want)
        return fail(l, ERR_FORMAT, "%s is %zu bytes, want %zu for %llu items of stride %u",
                    format_blob_keys[b], l->payload_len[b], want, (unsigned long long)n,
                    l->m->hdr.stride);
    struct model_item_copy *c = &l->m->copies[elem];
    c->rows = l->payload[b];
    c->scale = row_extra ? (const float *)(l->payload[b] + n * row_bytes) : NULL;
    return 0;
}

static int check_item_bf16(struct load *l)
{
    return check_copy(l, MODEL_ELEM_BF16, l->m->hdr.stride * sizeof(uint16_t), 0);
}

/* The scales follow the rows: item_count * stride bytes, a multiple of 16,
 * so they are aligned for floats. */
static int check_item_int8(struct load *l)
{
    return check_copy(l, MODEL_ELEM_INT8, l->m->hdr.stride, sizeof(float));
}

static const struct blob_check {
    int (*check)(struct load *l);
} blob_checks[FORMAT_BLOB_COUNT] = {
    [FORMAT_BLOB_ITEM_MATRIX] = {check_item_matrix},
    [FORMAT_BLOB_USER_MATRIX] = {check_user_matrix},
    [FORMAT_BLOB_ITEM_ATTRS] = {check_attrs},
    [FORMAT_BLOB_ITEM_IDS] = {check_item_ids},
    [FORMAT_BLOB_CATEGORIES] = {check_categories},
    [FORMAT_BLOB_POPULARITY] = {check_popularity},
    [FORMAT_BLOB_ITEM_BF16] = {check_item_bf16},
    [FORMAT_BLOB_ITEM_INT8] = {check_item_int8},
};

/* The frame common to every blob: its pad and slack are zero and its
 * payload is aligned. */
static int load_blob(struct load *l, enum format_blob b)
{
    const char *key = format_blob_keys[b];
    uint32_t pad = l->m->hdr.blob_pad[b];
    MDB_val v;
    int rc = get_meta(l, key, &v);
    if (rc != 0)
        return rc;
    const uint8_t *p = v.mv_data;
    if (v.mv_size < FORMAT_BLOB_SLACK)
        return fail(l, ERR_FORMAT, "%s is %zu bytes, shorter than its %d bytes of padding", key,
                    v.mv_size, FORMAT_BLOB_SLACK);
    if ((uintptr_t)(p + pad) % FORMAT_BLOB_ALIGN != 0)
        return fail(l, ERR_FORMAT, "%s is not %d-byte aligned", key, FORMAT_BLOB_ALIGN);
    size_t len = v.mv_size - FORMAT_BLOB_SLACK;
    if (!all_zero(p, pad) || !all_zero(p + pad + len, FORMAT_BLOB_SLACK - pad))
        return fail(l, ERR_FORMAT, "%s padding is not zero", key);
    l->payload[b] = p + pad;
    l->payload_len[b] = len;
    return blob_checks[b].check(l);
}

/* -- the items and users databases -- */

static int db_entries(const struct load *l, int db, uint64_t want)
{
    MDB_stat st;
    int rc = mdb_stat(l->txn, l->m->dbi[db], &st);
    if (rc != 0)
        return fail_lmdb(l, rc, "read a database");
    if (st.ms_entries != want)
        return fail(l, ERR_FORMAT, "%s database has %zu entries, the header says %llu",
                    db_names[db], st.ms_entries, (unsigned long long)want);
    return 0;
}

/* Calls @fn on every pair of database @db, after checking the pair lies in
 * the file. */
static int each_pair(struct load *l, int db,
                     int (*fn)(struct load *l, const MDB_val *k, const MDB_val *v, void *ctx),
                     void *ctx)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(l->txn, l->m->dbi[db], &cur);
    if (rc != 0)
        return fail_lmdb(l, rc, "open a cursor");
    MDB_val k, v;
    int bad = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (!in_file(l, k.mv_data, k.mv_size) || !in_file(l, v.mv_data, v.mv_size))
            bad = fail(l, ERR_FORMAT, "a %s entry lies outside the file", db_names[db]);
        else
            bad = fn(l, &k, &v, ctx);
        if (bad != 0)
            break;
    }
    mdb_cursor_close(cur);
    if (bad != 0)
        return bad;
    if (rc != MDB_NOTFOUND)
        return fail_lmdb(l, rc, "read a database");
    return 0;
}

/* Ids are printed at most this long in messages. */
#define SHOW 64

static int check_item_pair(struct load *l, const MDB_val *k, const MDB_val *v, void *ctx)
{
    const struct strtab *t = &l->m->item_ids;
    int klen = k->mv_size < SHOW ? (int)k->mv_size : SHOW;
    uint32_t index;
    if (v->mv_size != FORMAT_ITEM_VALUE_SIZE)
        return fail(l, ERR_FORMAT, "item \"%.*s\" value is %zu bytes, want %d", klen,
                    (const char *)k->mv_data, v->mv_size, FORMAT_ITEM_VALUE_SIZE);
    memcpy(&index, v->mv_data, sizeof(index));
    if (index >= t->count)
        return fail(l, ERR_FORMAT, "item \"%.*s\" maps to index %u, but there are %u items", klen,
                    (const char *)k->mv_data, index, t->count);
    uint64_t lo = t->off[index], len = t->off[index + 1] - lo;
    if (len != k->mv_size || memcmp(t->bytes + lo, k->mv_data, len) != 0)
        return fail(l, ERR_FORMAT, "item \"%.*s\" maps to index %u, whose id is \"%.*s\"", klen,
                    (const char *)k->mv_data, index, (int)(len < SHOW ? len : SHOW), t->bytes + lo);
    return 0;
}

/* Distinct keys each naming the item at their index, as many as there are
 * items: the items database is exactly the inverse of item_ids. */
static int check_items_db(struct load *l)
{
    int rc = db_entries(l, DB_ITEMS, l->m->hdr.item_count);
    if (rc == 0)
        rc = each_pair(l, DB_ITEMS, check_item_pair, NULL);
    return rc;
}

struct users_scan {
    uint8_t *row_used; /* user_count flags */
    uint64_t purchases;
};

static int check_user_pair(struct load *l, const MDB_val *k, const MDB_val *v, void *ctx)
{
    struct users_scan *s = ctx;
    const struct format_header *h = &l->m->hdr;
    const char *id = k->mv_data;
    int klen = k->mv_size < SHOW ? (int)k->mv_size : SHOW;
    struct format_user u;
    if (!format_id_ok(id, k->mv_size, 0))
        return fail(l, ERR_FORMAT, "user id \"%.*s\" is not a valid id", klen, id);
    if (v->mv_size < sizeof(u))
        return fail(l, ERR_FORMAT, "user \"%.*s\" record is %zu bytes, too short", klen, id,
                    v->mv_size);
    memcpy(&u, v->mv_data, sizeof(u));
    if (v->mv_size != sizeof(u) + (uint64_t)u.owned_count * sizeof(uint32_t))
        return fail(l, ERR_FORMAT, "user \"%.*s\" record is %zu bytes, wrong for %u owned items",
                    klen, id, v->mv_size, u.owned_count);
    if (u.row >= h->user_count)
        return fail(l, ERR_FORMAT, "user \"%.*s\" row %u is out of range (%llu users)", klen, id,
                    u.row, (unsigned long long)h->user_count);
    if (s->row_used[u.row])
        return fail(l, ERR_FORMAT, "user \"%.*s\" row %u belongs to another user too", klen, id,
                    u.row);
    s->row_used[u.row] = 1;

    const uint8_t *owned = (const uint8_t *)v->mv_data + sizeof(u);
    uint32_t prev = 0;
    for (uint32_t j = 0; j < u.owned_count; j++) {
        uint32_t item;
        memcpy(&item, owned + (size_t)j * sizeof(item), sizeof(item));
        if (item >= h->item_count)
            return fail(l, ERR_FORMAT, "user \"%.*s\" owns item index %u, but there are %llu items",
                        klen, id, item, (unsigned long long)h->item_count);
        if (j > 0 && item <= prev)
            return fail(l, ERR_FORMAT, "user \"%.*s\" owned items are not ascending at %u", klen,
                        id, j);
        l->owners[item]++;
        prev = item;
    }
    s->purchases += u.owned_count;
    return 0;
}

/* Records well formed, one per row (entry count == rows and no row used
 * twice), owned lists in range; the purchase count and the popularity
 * counts must agree with them. */
static int check_users_db(struct load *l)
{
    const struct format_header *h = &l->m->hdr;
    struct users_scan s = {calloc(h->user_count ? h->user_count : 1, 1), 0};
    l->owners = calloc(h->item_count, sizeof(*l->owners));
    int rc = 0;
    if (s.row_used == NULL || l->owners == NULL)
        rc = fail(l, -ENOMEM, "out of memory for %llu users", (unsigned long long)h->user_count);
    if (rc == 0)
        rc = db_entries(l, DB_USERS, h->user_count);
    if (rc == 0)
        rc = each_pair(l, DB_USERS, check_user_pair, &s);
    if (rc == 0 && s.purchases != h->purchase_count)
        rc = fail(l, ERR_FORMAT, "header purchase count %llu does not match the users' %llu",
                  (unsigned long long)h->purchase_count, (unsigned long long)s.purchases);
    free(s.row_used);
    return rc;
}

static int check_owners(struct load *l)
{
    const struct model *m = l->m;
    for (uint32_t i = 0; i < m->hdr.item_count; i++) {
        const struct model_pop *p = &m->pop[i];
        if (p->count != l->owners[p->item])
            return fail(l, ERR_FORMAT, "popularity gives item %u %u owners, the users %u", p->item,
                        p->count, l->owners[p->item]);
    }
    return 0;
}

/* ==== stage 3: values ================================================ */

/* Checks one row and returns the sum of its squares. @what and @row name
 * it in messages. */
/* @x, a norm computed in double from float data, made an upper bound: the
 * sum of at most FORMAT_DIM_MAX squares and a square root are off by far
 * less than the 2^-40 added. */
static double round_up(double x)
{
    return x * (1 + 0x1p-40);
}

static int check_row(struct load *l, const float *r, const char *what, uint32_t row, double *sumsq)
{
    const struct format_header *h = &l->m->hdr;
    double s = 0;
    for (uint32_t j = 0; j < h->dim; j++) {
        if (!isfinite(r[j]))
            return fail(l, ERR_FORMAT, "%s %u factor %u is not finite", what, row, j);
        s += (double)r[j] * r[j];
    }
    for (uint32_t j = h->dim; j < h->stride; j++) {
        uint32_t bits;
        memcpy(&bits, &r[j], sizeof(bits));
        if (bits != 0)
            return fail(l, ERR_FORMAT, "%s %u padding float %u is not zero", what, row, j);
    }
    *sumsq = s;
    return 0;
}

static int check_item_rows(struct load *l)
{
    struct model *m = l->m;
    m->inv_norms = malloc(m->hdr.item_count * sizeof(float));
    if (m->inv_norms == NULL)
        return fail(l, -ENOMEM, "out of memory for %llu norms",
                    (unsigned long long)m->hdr.item_count);
    double max_sumsq = 0;
    for (uint32_t i = 0; i < m->hdr.item_count; i++) {
        double s;
        int rc = check_row(l, m->item_matrix + (size_t)i * m->hdr.stride, "item", i, &s);
        if (rc != 0)
            return rc;
        m->inv_norms[i] = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
        max_sumsq = s > max_sumsq ? s : max_sumsq;
    }
    m->copies[MODEL_ELEM_F32] = (struct model_item_copy){
        .rows = m->item_matrix,
        .max_norm = round_up(sqrt(max_sumsq)),
    };
    return 0;
}

/* -- reduced copies -- */

static float bf16_value(uint16_t v)
{
    uint32_t bits = (uint32_t)v << 16;
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}

/* Row @i of a reduced copy as the real numbers it stands for (exact in a
 * double), into @w; returns the first element that is not a valid one of
 * its type, or -1. */
typedef int (*copy_row_fn)(const struct model_item_copy *c, uint32_t stride, uint32_t i, double *w);

static int bf16_row(const struct model_item_copy *c, uint32_t stride, uint32_t i, double *w)
{
    const uint16_t *row = (const uint16_t *)c->rows + (size_t)i * stride;
    for (uint32_t j = 0; j < stride; j++) {
        if ((row[j] & 0x7f80) == 0x7f80) /* exponent all ones: infinity or NaN */
            return (int)j;
        w[j] = bf16_value(row[j]);
    }
    return -1;
}

static int int8_row(const struct model_item_copy *c, uint32_t stride, uint32_t i, double *w)
{
    const int8_t *row = (const int8_t *)c->rows + (size_t)i * stride;
    for (uint32_t j = 0; j < stride; j++) {
        if (row[j] < -FORMAT_INT8_MAX)
            return (int)j;
        w[j] = (double)c->scale[i] * row[j];
    }
    return -1;
}

static const copy_row_fn copy_row[MODEL_ELEM_COUNT] = {
    [MODEL_ELEM_BF16] = bf16_row,
    [MODEL_ELEM_INT8] = int8_row,
};

/* Whether int8 row @i's scale is usable: finite and not negative. */
static int row_scale_ok(const struct model_item_copy *c, uint32_t i)
{
    return c->scale == NULL || (isfinite(c->scale[i]) && c->scale[i] >= 0);
}

/* ||@w||^2 and ||@w - @v||^2 over @n (a multiple of 4) elements, in four
 * independent partial sums: one chain of dependent adds would make this
 * pass the longest part of loading a model with copies. */
static void row_sums(const double *w, const float *v, uint32_t n, double *sumsq, double *errsq)
{
    double s[4] = {0}, e[4] = {0};
    for (uint32_t j = 0; j < n; j += 4)
        for (uint32_t k = 0; k < 4; k++) {
            double d = w[j + k] - v[j + k];
            s[k] += w[j + k] * w[j + k];
            e[k] += d * d;
        }
    *sumsq = (s[0] + s[1]) + (s[2] + s[3]);
    *errsq = (e[0] + e[1]) + (e[2] + e[3]);
}

/* One pass over a reduced copy: valid elements, zero padding, and the two
 * bounds the scan's proof rests on (score.h): the largest norm of a row
 * and the largest distance of a row from its float32 original. They are
 * measured, not derived from how the copy was made, so a copy from any
 * quantizer, however poor, still gives exact results, only slower. */
static int check_copy_rows(struct load *l, enum model_elem elem)
{
    struct model *m = l->m;
    struct model_item_copy *c = &m->copies[elem];
    const char *key = format_blob_keys[copy_blob[elem]];
    uint32_t dim = m->hdr.dim, stride = m->hdr.stride;
    double w[FORMAT_DIM_MAX], max_sumsq = 0, max_errsq = 0;
    for (uint32_t i = 0; i < m->hdr.item_count; i++) {
        if (!row_scale_ok(c, i))
            return fail(l, ERR_FORMAT, "%s row %u scale %g is not finite and >= 0", key, i,
                        c->scale[i]);
        int bad = copy_row[elem](c, stride, i, w);
        if (bad >= 0)
            return fail(l, ERR_FORMAT, "%s row %u element %d is not a valid %s", key, i, bad,
                        model_elem_names[elem]);
        for (uint32_t j = dim; j < stride; j++)
            if (w[j] != 0)
                return fail(l, ERR_FORMAT, "%s row %u padding element %u is not zero", key, i, j);
        double sumsq, errsq;
        row_sums(w, m->item_matrix + (size_t)i * stride, stride, &sumsq, &errsq);
        max_sumsq = sumsq > max_sumsq ? sumsq : max_sumsq;
        max_errsq = errsq > max_errsq ? errsq : max_errsq;
    }
    c->max_norm = round_up(sqrt(max_sumsq));
    c->max_error = round_up(sqrt(max_errsq));
    return 0;
}

static int check_copies(struct load *l)
{
    for (int elem = MODEL_ELEM_F32 + 1; elem < MODEL_ELEM_COUNT; elem++) {
        int rc = l->m->copies[elem].rows == NULL ? 0 : check_copy_rows(l, elem);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int check_user_rows(struct load *l)
{
    const struct format_header *h = &l->m->hdr;
    for (uint32_t u = 0; u < h->user_count; u++) {
        const float *r = l->m->user_matrix + (size_t)u * h->stride;
        double s;
        int rc = check_row(l, r, "user row", u, &s);
        if (rc != 0)
            return rc;
        if (h->has_bias && r[h->dim - 1] != 1.0f)
            return fail(l, ERR_FORMAT, "user row %u bias factor is %g, want 1", u, r[h->dim - 1]);
    }
    return 0;
}

static int check_checksum(struct load *l)
{
    struct model *m = l->m;
    uint64_t sum;
    int rc = checksum_content(l->txn, m->dbi, &sum);
    if (rc != 0)
        return fail_lmdb(l, rc, "read the content");
    if (sum != l->stored_checksum)
        return fail(l, ERR_CHECKSUM,
                    "checksum mismatch: the file says %016llx, the content is %016llx",
                    (unsigned long long)l->stored_checksum, (unsigned long long)sum);
    snprintf(m->checksum, sizeof(m->checksum), "%016llx", (unsigned long long)sum);
    return 0;
}

/* ==== open / close =================================================== */

static void fill_info(struct model *m)
{
    const struct format_header *h = &m->hdr;
    struct model_info *in = &m->info;
    in->format_version = h->format_version;
    in->dim = h->dim;
    in->stride = h->stride;
    in->elem_type = h->elem_type;
    in->has_bias = h->has_bias;
    in->category_count = h->category_count;
    in->user_count = h->user_count;
    in->item_count = h->item_count;
    in->purchase_count = h->purchase_count;
    in->created_at = h->created_at;
    in->loaded_at = (int64_t)time(NULL);
    in->version = m->version;
    in->checksum = m->checksum;
    in->path = m->path;
}

static int validate(struct load *l)
{
    int rc;
    if ((rc = locate_map(l)) != 0 || (rc = check_meta_count(l)) != 0 ||
        (rc = check_header(l)) != 0 || (rc = check_version(l)) != 0 ||
        (rc = check_stored_checksum(l)) != 0 || (rc = check_training(l)) != 0)
        return rc;
    for (int b = 0; b < FORMAT_BLOB_COUNT; b++)
        if (l->present[b] && (rc = load_blob(l, b)) != 0)
            return rc;
    if ((rc = check_items_db(l)) != 0 || (rc = check_users_db(l)) != 0 ||
        (rc = check_owners(l)) != 0 || (rc = check_item_rows(l)) != 0 ||
        (rc = check_copies(l)) != 0 || (rc = check_user_rows(l)) != 0)
        return rc;
    return check_checksum(l);
}

int model_open(const char *path, unsigned slots, struct model **out, struct err *e)
{
    *out = NULL;
    if (slots < 1)
        return err_set(e, ERR_INVALID, "%s: at least one lookup slot is needed", path);
    struct model *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return err_set(e, -ENOMEM, "%s: out of memory", path);
    struct load l = {.m = m, .path = path, .e = e};
    int rc = 0;
    m->path = strdup(path);
    if (m->path == NULL)
        rc = fail(&l, -ENOMEM, "out of memory");
    if (rc == 0 && (rc = open_env(&l)) == 0 && (rc = open_txns(&l, slots)) == 0)
        rc = validate(&l);
    free(l.owners);
    if (rc != 0) {
        model_close(m);
        return rc;
    }
    fill_info(m);
    *out = m;
    return 0;
}

void model_close(struct model *m)
{
    if (m == NULL)
        return;
    for (unsigned i = 0; i < m->slots; i++)
        mdb_txn_abort(m->txns[i]);
    if (m->env != NULL)
        mdb_env_close(m->env);
    for (int elem = 0; elem < MODEL_ELEM_COUNT; elem++)
        free((void *)m->copies[elem].blocked);
    free(m->gram);
    free(m->txns);
    free(m->inv_norms);
    free(m->cats_sorted);
    free(m->path);
    free(m);
}

int model_verify(const char *path, struct err *e)
{
    struct model *m;
    int rc = model_open(path, 1, &m, e);
    model_close(m);
    return rc;
}

const struct model_info *model_info(const struct model *m)
{
    return &m->info;
}

/* ==== items ========================================================== */

uint32_t model_item_count(const struct model *m)
{
    return (uint32_t)m->hdr.item_count;
}

uint32_t model_dim(const struct model *m)
{
    return m->hdr.dim;
}

uint32_t model_stride(const struct model *m)
{
    return m->hdr.stride;
}

const float *model_item_matrix(const struct model *m)
{
    return m->item_matrix;
}

const float *model_item_inv_norms(const struct model *m)
{
    return m->inv_norms;
}

const struct model_item_copy *model_item_copy(const struct model *m, enum model_elem elem)
{
    assert(elem < MODEL_ELEM_COUNT);
    return m->copies[elem].rows != NULL ? &m->copies[elem] : NULL;
}

void model_set_scan(struct model *m, const struct model_scan *s)
{
    assert(!m->has_scan && s->elem < MODEL_ELEM_COUNT && m->copies[s->elem].rows != NULL);
    m->scan = *s;
    m->has_scan = 1;
}

void model_set_item_blocked(struct model *m, enum model_elem elem, void *blocked)
{
    assert(elem < MODEL_ELEM_COUNT && m->copies[elem].rows != NULL &&
           m->copies[elem].blocked == NULL);
    m->copies[elem].blocked = blocked;
}

void model_set_gram(struct model *m, void *gram)
{
    assert(m->gram == NULL);
    m->gram = gram;
}

const void *model_gram(const struct model *m)
{
    return m->gram;
}

const struct model_training *model_training(const struct model *m)
{
    return &m->training;
}

const struct model_scan *model_scan(const struct model *m)
{
    return m->has_scan ? &m->scan : NULL;
}

const struct model_item_attr *model_item_attrs(const struct model *m)
{
    return m->attrs;
}

static const char *strtab_get(const struct strtab *t, uint32_t i, uint32_t *len)
{
    assert(i < t->count);
    *len = (uint32_t)(t->off[i + 1] - t->off[i]);
    return t->bytes + t->off[i];
}

const char *model_item_id(const struct model *m, uint32_t item, uint32_t *len)
{
    return strtab_get(&m->item_ids, item, len);
}

/* mdb_get through slot @slot's transaction; ERR_NOT_FOUND for an absent key
 * or one LMDB could not hold. */
static int lookup(const struct model *m, unsigned slot, int db, const char *key, size_t len,
                  MDB_val *v)
{
    assert(slot < m->slots);
    if (len == 0 || len > MODEL_ID_MAX)
        return ERR_NOT_FOUND;
    MDB_val k = {len, (void *)key};
    int rc = mdb_get(m->txns[slot], m->dbi[db], &k, v);
    if (rc == MDB_NOTFOUND)
        return ERR_NOT_FOUND;
    return format_lmdb_rc(rc);
}

int model_find_item(const struct model *m, unsigned slot, const char *id, size_t len,
                    uint32_t *item)
{
    MDB_val v;
    int rc = lookup(m, slot, DB_ITEMS, id, len, &v);
    if (rc == 0)
        memcpy(item, v.mv_data, sizeof(*item));
    return rc;
}

const struct model_pop *model_popularity(const struct model *m)
{
    return m->pop;
}

/* ==== categories ===================================================== */

uint32_t model_category_count(const struct model *m)
{
    return m->hdr.category_count;
}

const char *model_category_name(const struct model *m, uint32_t cat, uint32_t *len)
{
    return strtab_get(&m->categories, cat, len);
}

int model_find_category(const struct model *m, const char *name, size_t len, uint32_t *cat)
{
    if (len == 0 || len > MODEL_ID_MAX)
        return ERR_NOT_FOUND;
    struct cat_entry key = {name, (uint32_t)len, 0};
    const struct cat_entry *hit =
        bsearch(&key, m->cats_sorted, m->hdr.category_count, sizeof(key), cat_cmp);
    if (hit == NULL)
        return ERR_NOT_FOUND;
    *cat = hit->index;
    return 0;
}

/* ==== users ========================================================== */

uint64_t model_user_count(const struct model *m)
{
    return m->hdr.user_count;
}

const float *model_user_matrix(const struct model *m)
{
    return m->user_matrix;
}

int model_find_user(const struct model *m, unsigned slot, const char *id, size_t len,
                    struct model_user *u)
{
    MDB_val v;
    int rc = lookup(m, slot, DB_USERS, id, len, &v);
    if (rc != 0)
        return rc;
    struct format_user head;
    memcpy(&head, v.mv_data, sizeof(head));
    *u = (struct model_user){head.row, head.tier, head.owned_count,
                             (const char *)v.mv_data + sizeof(head)};
    return 0;
}

void model_user_owned(const struct model_user *u, uint32_t *dst)
{
    memcpy(dst, u->owned, (size_t)u->owned_count * sizeof(uint32_t));
}
