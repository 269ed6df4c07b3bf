/*
 * test_model: the model file library: writer -> file -> reader round trips,
 * the writer's input checks, the reader's refusals of damaged files, and
 * the checksum against values computed by an independent implementation of
 * FORMAT.md.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "model/checksum.h"
#include "model/format.h"
#include "model/model.h"
#include "model/writer.h"

/* ==== fixtures ======================================================= */

static char tmpdir[64];

static const char *tmp_path(const char *name)
{
    static char buf[16][256];
    static int next;
    char *p = buf[next++ % 16];
    snprintf(p, sizeof(buf[0]), "%s/%s", tmpdir, name);
    return p;
}

enum { FX_DIM = 5, FX_ITEMS = 6, FX_USERS = 4, FX_CATS = 3, FX_OWNED = 8 };

/* A small model with a bias column, duplicate and unsorted owned items, an
 * all-zero item vector, popularity ties and a training record. */
struct fixture {
    float uf[FX_USERS * FX_DIM];
    float itf[FX_ITEMS * FX_DIM];
    const char *uids[FX_USERS];
    const char *iids[FX_ITEMS];
    uint32_t tiers[FX_USERS];
    uint64_t off[FX_USERS + 1];
    uint32_t owned[FX_OWNED];
    struct model_item_attr attrs[FX_ITEMS];
    const char *cats[FX_CATS];
    struct model_training training;
    struct model_src src;
};

/* The fixture's training record: none of them the defaults, each exact in
 * binary, and a data end that needs more than 32 bits. */
#define FX_REGULARIZATION 0.125f
#define FX_ALPHA          7.5f
#define FX_VIEW_WEIGHT    0.5f
#define FX_DATA_END       1718000000123

static void fixture_init(struct fixture *f)
{
    static const char *const uids[FX_USERS] = {"alice", "bob", "carol", "dave"};
    static const char *const iids[FX_ITEMS] = {"course-a",  "book-b", "audio-c",
                                               "consult-d", "book-e", "x"};
    static const char *const cats[FX_CATS] = {"books", "courses", "audio"};
    /* alice {3,1,3,0}, bob {}, carol {1,1}, dave {4,0} */
    static const uint64_t off[FX_USERS + 1] = {0, 4, 4, 6, 8};
    static const uint32_t owned[FX_OWNED] = {3, 1, 3, 0, 1, 1, 4, 0};
    static const uint32_t tiers[FX_USERS] = {0, 2, 1, 0};

    memset(f, 0, sizeof(*f));
    for (int u = 0; u < FX_USERS; u++) {
        for (int j = 0; j < FX_DIM - 1; j++)
            f->uf[u * FX_DIM + j] = 0.25f * (float)(u + 1) - 0.5f * (float)j;
        f->uf[u * FX_DIM + FX_DIM - 1] = 1.0f; /* bias column */
    }
    for (int i = 0; i < FX_ITEMS - 1; i++) /* the last item stays all zero */
        for (int j = 0; j < FX_DIM; j++)
            f->itf[i * FX_DIM + j] = (float)(i + 1) * 0.1f - (float)j * 0.3f;
    memcpy(f->uids, uids, sizeof(uids));
    memcpy(f->iids, iids, sizeof(iids));
    memcpy(f->cats, cats, sizeof(cats));
    memcpy(f->off, off, sizeof(off));
    memcpy(f->owned, owned, sizeof(owned));
    memcpy(f->tiers, tiers, sizeof(tiers));
    for (uint32_t i = 0; i < FX_ITEMS; i++)
        f->attrs[i] = (struct model_item_attr){.price_cents = 1000 * i + 99,
                                               .category = i % FX_CATS,
                                               .on_sale = i != 2,
                                               .tier = (uint8_t)(i % 3)};
    f->training = (struct model_training){.regularization = FX_REGULARIZATION,
                                          .alpha = FX_ALPHA,
                                          .view_weight = FX_VIEW_WEIGHT,
                                          .data_end_unix_ms = FX_DATA_END};
    f->src = (struct model_src){
        .dim = FX_DIM,
        .has_bias = 1,
        .user_count = FX_USERS,
        .item_count = FX_ITEMS,
        .user_factors = f->uf,
        .item_factors = f->itf,
        .user_ids = f->uids,
        .item_ids = f->iids,
        .user_tier = f->tiers,
        .owned_offsets = f->off,
        .owned_items = f->owned,
        .attrs = f->attrs,
        .categories = f->cats,
        .category_count = FX_CATS,
        .version = "v2024.06-test",
        .created_at = 1718000000,
        .quantize = 1u << MODEL_ELEM_BF16 | 1u << MODEL_ELEM_INT8,
        .training = &f->training,
    };
}

/* A model big enough that both matrices and some user records live in
 * LMDB overflow pages. Deterministic. */
struct big {
    uint32_t dim, users, items;
    float *uf, *itf;
    char **uids, **iids;
    uint64_t *off;
    uint32_t *owned;
    struct model_item_attr *attrs;
    const char *cats[4];
    struct model_src src;
};

static uint32_t lcg(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

static void big_init(struct big *b, uint32_t dim, uint32_t users, uint32_t items)
{
    static const char *const cats[4] = {"a", "b", "c", "d"};
    uint32_t seed = dim * 7919u + users * 31u + items;
    *b = (struct big){.dim = dim, .users = users, .items = items};
    b->uf = calloc((size_t)users * dim + 1, sizeof(float));
    b->itf = calloc((size_t)items * dim, sizeof(float));
    b->uids = calloc(users + 1, sizeof(char *));
    b->iids = calloc(items, sizeof(char *));
    b->off = calloc(users + 1, sizeof(uint64_t));
    b->owned = calloc((size_t)users * 700 + 1, sizeof(uint32_t));
    b->attrs = calloc(items, sizeof(*b->attrs));
    for (uint64_t k = 0; k < (uint64_t)users * dim; k++)
        b->uf[k] = (float)(lcg(&seed) % 2001) / 1000.0f - 1.0f;
    for (uint64_t k = 0; k < (uint64_t)items * dim; k++)
        b->itf[k] = (float)(lcg(&seed) % 2001) / 1000.0f - 1.0f;
    for (uint32_t u = 0; u < users; u++) {
        b->uids[u] = malloc(24);
        snprintf(b->uids[u], 24, "user-%u", lcg(&seed) % 1000 * 100000 + u);
        /* Every 50th user owns a lot: a record too big for a leaf page. */
        uint32_t n = u % 50 == 0 ? 700 : lcg(&seed) % 6;
        b->off[u + 1] = b->off[u] + n;
        for (uint32_t j = 0; j < n; j++)
            b->owned[b->off[u] + j] = lcg(&seed) % items;
    }
    for (uint32_t i = 0; i < items; i++) {
        b->iids[i] = malloc(24);
        snprintf(b->iids[i], 24, "item-%u", i * 7 % 1000 * 10000 + i);
        b->attrs[i] = (struct model_item_attr){
            .price_cents = lcg(&seed) % 100000, .category = i % 4, .on_sale = (i % 9) != 0};
    }
    memcpy(b->cats, cats, sizeof(cats));
    b->src = (struct model_src){
        .dim = dim,
        .user_count = users,
        .item_count = items,
        .user_factors = b->uf,
        .item_factors = b->itf,
        .user_ids = (const char *const *)b->uids,
        .item_ids = (const char *const *)b->iids,
        .owned_offsets = b->off,
        .owned_items = b->owned,
        .attrs = b->attrs,
        .categories = b->cats,
        .category_count = 4,
        .version = "big",
        .created_at = 42,
    };
}

static void big_free(struct big *b)
{
    for (uint32_t u = 0; u < b->users; u++)
        free(b->uids[u]);
    for (uint32_t i = 0; i < b->items; i++)
        free(b->iids[i]);
    free(b->uf);
    free(b->itf);
    free(b->uids);
    free(b->iids);
    free(b->off);
    free(b->owned);
    free(b->attrs);
}

/* ==== file helpers =================================================== */

/* Entries in directory @dir, "." and ".." aside. */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *de; d && (de = readdir(d)) != NULL;)
        n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    if (d)
        closedir(d);
    return n;
}

/* Removes @dir and everything in it. */
static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    for (struct dirent *de; d && (de = readdir(d)) != NULL;) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char p[512];
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            remove_tree(p);
        else
            unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

/* Reads a whole file; *len receives its size. NULL on failure. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static int spit(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return -1;
    size_t w = fwrite(data, 1, len, f);
    return fclose(f) == 0 && w == len ? 0 : -1;
}

/* Opens @path read-write (creating it if absent) and begins a write
 * transaction. */
static int rw_begin(const char *path, MDB_env **env, MDB_txn **txn)
{
    int rc = mdb_env_create(env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(*env, 4);
    if (rc == 0)
        rc = mdb_env_open(*env, path, MDB_NOSUBDIR | MDB_NOLOCK, 0644);
    if (rc == 0)
        rc = mdb_txn_begin(*env, NULL, 0, txn);
    if (rc != 0)
        mdb_env_close(*env);
    return rc;
}

static int rw_end(MDB_env *env, MDB_txn *txn, int rc)
{
    if (rc == 0)
        rc = mdb_txn_commit(txn);
    else
        mdb_txn_abort(txn);
    mdb_env_close(env);
    return rc;
}

/* Puts one pair into database @db (NULL: the main database) of @path. */
static int raw_put(const char *path, const char *db, const char *key, const void *val, size_t len)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    int rc = rw_begin(path, &env, &txn);
    if (rc != 0)
        return rc;
    rc = mdb_dbi_open(txn, db, db ? MDB_CREATE : 0, &dbi);
    MDB_val k = {strlen(key), (void *)key}, v = {len, (void *)val};
    if (rc == 0)
        rc = mdb_put(txn, dbi, &k, &v, 0);
    return rw_end(env, txn, rc);
}

/* Copies meta value @key of @path into @buf (@cap bytes); *len receives its
 * size. Returns 0, MDB_NOTFOUND or another LMDB code. */
static int raw_get_meta(const char *path, const char *key, void *buf, size_t cap, size_t *len)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    int rc = rw_begin(path, &env, &txn);
    if (rc != 0)
        return rc;
    MDB_val k = {strlen(key), (void *)key}, v;
    rc = mdb_dbi_open(txn, FORMAT_DB_META, 0, &dbi);
    if (rc == 0)
        rc = mdb_get(txn, dbi, &k, &v);
    if (rc == 0) {
        *len = v.mv_size;
        memcpy(buf, v.mv_data, v.mv_size < cap ? v.mv_size : cap);
    }
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return rc;
}

static int has_meta_key(const char *path, const char *key)
{
    uint8_t buf[1];
    size_t len;
    return raw_get_meta(path, key, buf, sizeof(buf), &len) == 0;
}

/* An edit of one value: changes @val in place, returns its new length
 * (<= @len). @h is the file's header, for the blobs' pads. */
typedef size_t edit_fn(uint8_t *val, size_t len, const struct format_header *h);

/* Rewrites one value of a model file through a read-write LMDB environment.
 * The value may move in the file; none of the refusals tested depends on
 * where it lands (LMDB copies a page whole, and an overflow value starts 16
 * bytes into a page wherever it goes, so blob pads stay valid). */
static int tamper(const char *path, const char *db, const char *key, edit_fn *edit,
                  const struct format_header *h)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    int rc = rw_begin(path, &env, &txn);
    if (rc != 0)
        return rc;
    MDB_val k = {strlen(key), (void *)key}, v;
    rc = mdb_dbi_open(txn, db, 0, &dbi);
    if (rc == 0)
        rc = mdb_get(txn, dbi, &k, &v);
    if (rc == 0) {
        /* The copy sits at the original's address mod 64, so the pads in
         * the header align its blob payload as they do in the map. */
        uint8_t *buf = aligned_alloc(64, (v.mv_size + 127) / 64 * 64);
        uint8_t *copy = buf + (uintptr_t)v.mv_data % 64;
        memcpy(copy, v.mv_data, v.mv_size);
        MDB_val nv = {edit(copy, v.mv_size, h), copy};
        rc = mdb_put(txn, dbi, &k, &nv, 0);
        free(buf);
    }
    return rw_end(env, txn, rc);
}

static size_t copy_header(uint8_t *val, size_t len, const struct format_header *h)
{
    memcpy((void *)h, val, sizeof(*h));
    return len;
}

/* The header as stored, read through the tampering path. */
static int read_header(const char *path, struct format_header *h)
{
    return tamper(path, FORMAT_DB_META, FORMAT_KEY_HEADER, copy_header, h);
}

/* Writes the fixture to @name and returns its path. */
static const char *write_fixture(const char *name, struct fixture *f)
{
    struct err e = {0};
    fixture_init(f);
    const char *path = tmp_path(name);
    if (model_write(path, &f->src, &e) != 0) {
        fprintf(stderr, "model_write: %s\n", e.msg);
        return NULL;
    }
    return path;
}

/* ==== round trip ===================================================== */

/* The copies hold what the writer's documented rounding gives (FORMAT.md),
 * recomputed here, and the measured bounds hold for every row. */
static void test_round_trip_copies(void)
{
    struct fixture f;
    const char *path = write_fixture("copies.lmdb", &f);
    CHECK(path != NULL);
    struct model *m;
    CHECK_OK(model_open(path, 1, &m, NULL));
    const struct model_item_copy *f32 = model_item_copy(m, MODEL_ELEM_F32);
    const struct model_item_copy *b16 = model_item_copy(m, MODEL_ELEM_BF16);
    const struct model_item_copy *i8 = model_item_copy(m, MODEL_ELEM_INT8);
    CHECK(f32 != NULL && b16 != NULL && i8 != NULL);
    CHECK(f32->rows == model_item_matrix(m) && f32->max_error == 0);
    CHECK((uintptr_t)b16->rows % 64 == 0 && (uintptr_t)i8->rows % 64 == 0);
    const uint16_t *b = b16->rows;
    const int8_t *q = i8->rows;
    int ok = 1;
    for (uint32_t i = 0; i < FX_ITEMS; i++) {
        const float *v = &f.itf[i * FX_DIM];
        float max = 0;
        for (uint32_t j = 0; j < FX_DIM; j++)
            max = fmaxf(max, fabsf(v[j]));
        ok &= i8->scale[i] == max / 127;
        double eb = 0, eq = 0, nb = 0, nq = 0, nv = 0;
        for (uint32_t j = 0; j < 16; j++) {
            float x = j < FX_DIM ? v[j] : 0;
            /* bf16: the float's top half, rounded to nearest even. */
            uint32_t bits;
            memcpy(&bits, &x, sizeof(bits));
            uint32_t lower = bits & 0xffff, upper = bits >> 16;
            uint32_t want = upper + (lower > 0x8000 || (lower == 0x8000 && (upper & 1)));
            ok &= b[i * 16 + j] == want;
            int wq = max > 0 ? (int)lrintf(x / (max / 127)) : 0;
            ok &= q[i * 16 + j] == wq;
            uint32_t wb = (uint32_t)b[i * 16 + j] << 16;
            float fb;
            memcpy(&fb, &wb, sizeof(fb));
            double dq = (double)i8->scale[i] * q[i * 16 + j];
            eb += (fb - (double)x) * (fb - (double)x);
            eq += (dq - x) * (dq - x);
            nb += (double)fb * fb;
            nq += dq * dq;
            nv += (double)x * x;
        }
        ok &= sqrt(eb) <= b16->max_error && sqrt(eq) <= i8->max_error;
        ok &= sqrt(nb) <= b16->max_norm && sqrt(nq) <= i8->max_norm && sqrt(nv) <= f32->max_norm;
    }
    CHECK(ok);
    /* Tight, not merely upper: some row's error is within 1e-9 of it. */
    CHECK(b16->max_error > 0 && i8->max_error > 0);
    model_close(m);

    /* Without --quantize there are none. */
    fixture_init(&f);
    f.src.quantize = 0;
    CHECK_OK(model_write(path, &f.src, NULL));
    CHECK_OK(model_open(path, 1, &m, NULL));
    CHECK(model_item_copy(m, MODEL_ELEM_BF16) == NULL &&
          model_item_copy(m, MODEL_ELEM_INT8) == NULL);
    CHECK(model_item_copy(m, MODEL_ELEM_F32) != NULL);
    model_close(m);
}

static int id_is(const char *got, uint32_t len, const char *want)
{
    return len == strlen(want) && memcmp(got, want, len) == 0;
}

static void test_round_trip_header(void)
{
    struct fixture f;
    const char *path = write_fixture("rt.lmdb", &f);
    CHECK(path != NULL);
    struct model *m;
    struct err e = {0};
    CHECK_OK(model_open(path, 1, &m, &e));
    const struct model_info *in = model_info(m);
    CHECK(in->format_version == 1);
    CHECK(in->dim == FX_DIM && model_dim(m) == FX_DIM);
    CHECK(in->stride == 16 && model_stride(m) == 16);
    CHECK(in->elem_type == MODEL_ELEM_F32);
    CHECK(in->has_bias == 1);
    CHECK(in->category_count == FX_CATS);
    CHECK(in->user_count == FX_USERS && model_user_count(m) == FX_USERS);
    CHECK(in->item_count == FX_ITEMS && model_item_count(m) == FX_ITEMS);
    CHECK(in->purchase_count == 6); /* {0,1,3} + {} + {1} + {0,4} */
    CHECK(in->created_at == 1718000000);
    CHECK(strcmp(in->version, "v2024.06-test") == 0);
    CHECK(strcmp(in->path, path) == 0);
    CHECK(strlen(in->checksum) == 16 && strspn(in->checksum, "0123456789abcdef") == 16);
    struct stat st;
    CHECK(stat(path, &st) == 0 && in->file_bytes == (uint64_t)st.st_size);
    CHECK(in->loaded_at >= (int64_t)st.st_mtime - 1 && in->loaded_at <= time(NULL));
    model_close(m);
    CHECK_OK(model_verify(path, &e));
}

static void test_round_trip_items(void)
{
    struct fixture f;
    const char *path = write_fixture("rt.lmdb", &f);
    CHECK(path != NULL);
    struct model *m;
    CHECK_OK(model_open(path, 1, &m, NULL));
    const float *im = model_item_matrix(m);
    const float *inv = model_item_inv_norms(m);
    const struct model_item_attr *at = model_item_attrs(m);
    int ok = (uintptr_t)im % 64 == 0;
    for (uint32_t i = 0; i < FX_ITEMS && ok; i++) {
        double ss = 0;
        for (uint32_t j = 0; j < 16; j++) {
            float want = j < FX_DIM ? f.itf[i * FX_DIM + j] : 0.0f;
            ok &= memcmp(&im[i * 16 + j], &want, sizeof(float)) == 0;
            ss += j < FX_DIM ? (double)want * want : 0;
        }
        float want_inv = ss > 0 ? (float)(1 / sqrt(ss)) : 0.0f;
        ok &= fabsf(inv[i] - want_inv) <= 1e-6f * want_inv;
        ok &= at[i].price_cents == f.attrs[i].price_cents &&
              at[i].category == f.attrs[i].category && at[i].on_sale == f.attrs[i].on_sale &&
              at[i].tier == f.attrs[i].tier && at[i].pad[0] == 0 && at[i].pad[1] == 0;
        uint32_t len, idx = 99;
        const char *id = model_item_id(m, i, &len);
        ok &= id_is(id, len, f.iids[i]);
        ok &= model_find_item(m, 0, f.iids[i], strlen(f.iids[i]), &idx) == 0 && idx == i;
    }
    CHECK(ok);
    CHECK(inv[FX_ITEMS - 1] == 0.0f); /* the all-zero vector */

    /* Popularity: owners 2,2,0,1,1,0 -> count descending, ties by index. */
    static const struct model_pop want[FX_ITEMS] = {{0, 2}, {1, 2}, {3, 1}, {4, 1}, {2, 0}, {5, 0}};
    CHECK(memcmp(model_popularity(m), want, sizeof(want)) == 0);

    uint32_t idx;
    CHECK_RC(model_find_item(m, 0, "nope", 4, &idx), ERR_NOT_FOUND);
    CHECK_RC(model_find_item(m, 0, "course-", 7, &idx), ERR_NOT_FOUND);
    CHECK_RC(model_find_item(m, 0, "", 0, &idx), ERR_NOT_FOUND);
    char longid[600];
    memset(longid, 'a', sizeof(longid));
    CHECK_RC(model_find_item(m, 0, longid, sizeof(longid), &idx), ERR_NOT_FOUND);
    model_close(m);
}

static void test_round_trip_categories(void)
{
    struct fixture f;
    const char *path = write_fixture("rt.lmdb", &f);
    CHECK(path != NULL);
    struct model *m;
    CHECK_OK(model_open(path, 1, &m, NULL));
    CHECK(model_category_count(m) == FX_CATS);
    for (uint32_t c = 0; c < FX_CATS; c++) {
        uint32_t len, got = 99;
        const char *name = model_category_name(m, c, &len);
        CHECK(id_is(name, len, f.cats[c]));
        CHECK_OK(model_find_category(m, f.cats[c], strlen(f.cats[c]), &got));
        CHECK(got == c);
    }
    uint32_t got;
    CHECK_RC(model_find_category(m, "book", 4, &got), ERR_NOT_FOUND);
    CHECK_RC(model_find_category(m, "booksx", 6, &got), ERR_NOT_FOUND);
    CHECK_RC(model_find_category(m, "", 0, &got), ERR_NOT_FOUND);
    model_close(m);
}

static void test_round_trip_users(void)
{
    struct fixture f;
    const char *path = write_fixture("rt.lmdb", &f);
    CHECK(path != NULL);
    struct model *m;
    CHECK_OK(model_open(path, 1, &m, NULL));
    static const uint32_t want_owned[FX_USERS][3] = {{0, 1, 3}, {0}, {1}, {0, 4}};
    static const uint32_t want_count[FX_USERS] = {3, 0, 1, 2};
    const float *um = model_user_matrix(m);
    CHECK((uintptr_t)um % 64 == 0);
    for (uint32_t u = 0; u < FX_USERS; u++) {
        struct model_user mu;
        CHECK_OK(model_find_user(m, 0, f.uids[u], strlen(f.uids[u]), &mu));
        CHECK(mu.row == u); /* rows follow the source order */
        CHECK(mu.tier == f.tiers[u]);
        CHECK(mu.owned_count == want_count[u]);
        uint32_t owned[3] = {0};
        model_user_owned(&mu, owned);
        CHECK(memcmp(owned, want_owned[u], mu.owned_count * sizeof(uint32_t)) == 0);
        for (uint32_t j = 0; j < 16; j++) {
            float want = j < FX_DIM ? f.uf[u * FX_DIM + j] : 0.0f;
            CHECK(memcmp(&um[mu.row * 16 + j], &want, sizeof(float)) == 0);
        }
    }
    struct model_user mu;
    CHECK_RC(model_find_user(m, 0, "mallory", 7, &mu), ERR_NOT_FOUND);
    CHECK_RC(model_find_user(m, 0, "alic", 4, &mu), ERR_NOT_FOUND);
    CHECK_RC(model_find_user(m, 0, "", 0, &mu), ERR_NOT_FOUND);
    model_close(m);
}

/* No user tiers, no purchases and no training record at all: all zero,
 * every count zero, the training defaults. */
static void test_round_trip_defaults(void)
{
    struct fixture f;
    fixture_init(&f);
    f.src.user_tier = NULL;
    f.src.owned_offsets = NULL;
    f.src.owned_items = NULL;
    f.src.has_bias = 0;
    f.src.training = NULL;
    const char *path = tmp_path("defaults.lmdb");
    struct err e = {0};
    CHECK_OK(model_write(path, &f.src, &e));
    struct model *m;
    CHECK_OK(model_open(path, 1, &m, &e));
    CHECK(model_info(m)->purchase_count == 0 && model_info(m)->has_bias == 0);
    struct model_user mu;
    CHECK_OK(model_find_user(m, 0, "bob", 3, &mu));
    CHECK(mu.tier == 0 && mu.owned_count == 0);
    const struct model_pop *pop = model_popularity(m);
    for (uint32_t i = 0; i < FX_ITEMS; i++)
        CHECK(pop[i].item == i && pop[i].count == 0);
    /* FORMAT.md's defaults, spelled out rather than taken from model.h. */
    const struct model_training *t = model_training(m);
    CHECK(t->from_file == 0);
    CHECK(t->regularization == 0.05f && t->alpha == 20.0f && t->view_weight == 0.25f);
    CHECK(t->data_end_unix_ms == 0);
    model_close(m);
    CHECK(!has_meta_key(path, FORMAT_KEY_TRAINING));
}

/* The record comes back as written, and the file holds it as FORMAT.md
 * lays it out: these bytes are written out by hand, not by the struct. */
static void test_round_trip_training(void)
{
    static const uint8_t want[24] = {
        0x00, 0x00, 0x00, 0x3e,                         /* 0.125f */
        0x00, 0x00, 0xf0, 0x40,                         /* 7.5f */
        0x00, 0x00, 0x00, 0x3f,                         /* 0.5f */
        0x00, 0x00, 0x00, 0x00,                         /* reserved */
        0x7b, 0x9c, 0xc7, 0x00, 0x90, 0x01, 0x00, 0x00, /* 1718000000123 = 0x190'00c7'9c7b */
    };
    struct fixture f;
    const char *path = write_fixture("training.lmdb", &f);
    CHECK(path != NULL);
    uint8_t got[64];
    size_t len = 0;
    CHECK_OK(raw_get_meta(path, FORMAT_KEY_TRAINING, got, sizeof(got), &len));
    CHECK(len == sizeof(want) && memcmp(got, want, sizeof(want)) == 0);

    struct model *m;
    struct err e = {0};
    CHECK_OK(model_open(path, 1, &m, &e));
    const struct model_training *t = model_training(m);
    int same = t->from_file == 1 && t->regularization == FX_REGULARIZATION &&
               t->alpha == FX_ALPHA && t->view_weight == FX_VIEW_WEIGHT &&
               t->data_end_unix_ms == FX_DATA_END;
    model_close(m);
    CHECK(same);

    /* The edges the rule allows: zero regularization, alpha and data end. */
    fixture_init(&f);
    f.training = (struct model_training){.view_weight = 1e-30f};
    path = tmp_path("training-zero.lmdb");
    CHECK_OK(model_write(path, &f.src, &e));
    CHECK_OK(model_open(path, 1, &m, &e));
    t = model_training(m);
    same = t->from_file == 1 && t->regularization == 0 && t->alpha == 0 &&
           t->view_weight == 1e-30f && t->data_end_unix_ms == 0;
    model_close(m);
    CHECK(same);
}

/* Matrices of many shapes, including ones small enough to sit inside a
 * leaf page next to other values (where later puts move them), must all
 * come back 64-byte aligned and intact. */
static void test_alignment_many_shapes(void)
{
    static const uint32_t dims[] = {1, 7, 16, 33};
    static const uint32_t items[] = {1, 2, 5, 40, 300};
    static const uint32_t users[] = {0, 1, 3};
    for (size_t d = 0; d < sizeof(dims) / sizeof(dims[0]); d++)
        for (size_t i = 0; i < sizeof(items) / sizeof(items[0]); i++)
            for (size_t u = 0; u < sizeof(users) / sizeof(users[0]); u++) {
                struct big b;
                big_init(&b, dims[d], users[u], items[i]);
                const char *path = tmp_path("shape.lmdb");
                struct err e = {0};
                struct model *m = NULL;
                int rc = model_write(path, &b.src, &e);
                if (rc == 0)
                    rc = model_open(path, 1, &m, &e);
                int ok = rc == 0;
                uint32_t stride = (dims[d] + 15) / 16 * 16;
                if (ok) {
                    const float *im = model_item_matrix(m), *um = model_user_matrix(m);
                    ok = (uintptr_t)im % 64 == 0 && (uintptr_t)um % 64 == 0 &&
                         (uintptr_t)model_item_attrs(m) % 64 == 0 &&
                         (uintptr_t)model_popularity(m) % 64 == 0 && model_stride(m) == stride;
                    for (uint32_t r = 0; r < items[i] && ok; r++)
                        ok = memcmp(im + (size_t)r * stride, b.itf + (size_t)r * dims[d],
                                    dims[d] * sizeof(float)) == 0;
                    for (uint32_t r = 0; r < users[u] && ok; r++)
                        ok = memcmp(um + (size_t)r * stride, b.uf + (size_t)r * dims[d],
                                    dims[d] * sizeof(float)) == 0;
                }
                if (!ok)
                    fprintf(stderr, "dim %u items %u users %u: rc %d %s\n", dims[d], items[i],
                            users[u], rc, e.msg);
                model_close(m);
                big_free(&b);
                CHECK(ok);
            }
}

/* The big model: owned lists round trip (some in overflow pages), the
 * popularity ranking equals a brute-force count. */
static void test_round_trip_big(void)
{
    struct big b;
    big_init(&b, 33, 400, 2000);
    const char *path = tmp_path("big.lmdb");
    struct err e = {0};
    struct model *m = NULL;
    uint32_t *owners = calloc(b.items, sizeof(uint32_t));
    uint8_t *has = calloc(b.items, 1);
    uint32_t *got = calloc(700, sizeof(uint32_t));
    int rc = model_write(path, &b.src, &e);
    if (rc == 0)
        rc = model_open(path, 2, &m, &e);
    int ok = rc == 0;
    uint64_t purchases = 0;
    for (uint32_t u = 0; u < b.users && ok; u++) {
        memset(has, 0, b.items);
        uint32_t distinct = 0;
        for (uint64_t k = b.off[u]; k < b.off[u + 1]; k++)
            if (!has[b.owned[k]]++) {
                distinct++;
                owners[b.owned[k]]++;
            }
        purchases += distinct;
        struct model_user mu;
        ok = model_find_user(m, u % 2, b.uids[u], strlen(b.uids[u]), &mu) == 0 && mu.row == u &&
             mu.owned_count == distinct;
        if (ok)
            model_user_owned(&mu, got);
        for (uint32_t j = 0; j < distinct && ok; j++)
            ok = has[got[j]] && (j == 0 || got[j] > got[j - 1]);
    }
    for (uint32_t i = 0; i < b.items && ok; i++) {
        const struct model_pop *p = &model_popularity(m)[i];
        ok = p->count == owners[p->item] && (i == 0 || p[-1].count > p->count ||
                                             (p[-1].count == p->count && p[-1].item < p->item));
    }
    ok = ok && model_info(m)->purchase_count == purchases;
    if (!ok)
        fprintf(stderr, "big round trip: rc %d %s\n", rc, e.msg);
    model_close(m);
    free(owners);
    free(has);
    free(got);
    big_free(&b);
    CHECK(ok);
}

/* ==== lookup slots =================================================== */

struct lookup_job {
    const struct model *m;
    unsigned slot;
    const struct fixture *f;
    int ok;
};

static void *lookup_thread(void *arg)
{
    struct lookup_job *j = arg;
    j->ok = 1;
    for (int round = 0; round < 2000 && j->ok; round++) {
        uint32_t i = (uint32_t)(round + j->slot) % FX_ITEMS, idx;
        uint32_t u = (uint32_t)(round * 3 + j->slot) % FX_USERS;
        struct model_user mu;
        j->ok = model_find_item(j->m, j->slot, j->f->iids[i], strlen(j->f->iids[i]), &idx) == 0 &&
                idx == i &&
                model_find_user(j->m, j->slot, j->f->uids[u], strlen(j->f->uids[u]), &mu) == 0 &&
                mu.row == u && model_find_user(j->m, j->slot, "ghost", 5, &mu) == ERR_NOT_FOUND;
    }
    return NULL;
}

static void test_slots_concurrent(void)
{
    enum { SLOTS = 4 };
    struct fixture f;
    const char *path = write_fixture("slots.lmdb", &f);
    CHECK(path != NULL);
    struct model *m;
    struct err e = {0};
    CHECK_RC(model_open(path, 0, &m, &e), ERR_INVALID);
    CHECK(m == NULL);
    CHECK_OK(model_open(path, SLOTS, &m, &e));
    pthread_t th[SLOTS];
    struct lookup_job jobs[SLOTS];
    for (unsigned s = 0; s < SLOTS; s++) {
        jobs[s] = (struct lookup_job){m, s, &f, 0};
        pthread_create(&th[s], NULL, lookup_thread, &jobs[s]);
    }
    int ok = 1;
    for (unsigned s = 0; s < SLOTS; s++) {
        pthread_join(th[s], NULL);
        ok &= jobs[s].ok;
    }
    model_close(m);
    CHECK(ok);
}

/* ==== writer: input checks =========================================== */

struct bad_src {
    const char *name;
    void (*mutate)(struct fixture *f);
    const char *msg;
};

static void dup_user(struct fixture *f)
{
    f->uids[2] = "alice";
}
static void dup_item(struct fixture *f)
{
    f->iids[4] = "course-a";
}
static void dup_category(struct fixture *f)
{
    f->cats[2] = "books";
}
static void nan_item(struct fixture *f)
{
    f->itf[2 * FX_DIM + 3] = NAN;
}
static void inf_user(struct fixture *f)
{
    f->uf[1 * FX_DIM + 0] = INFINITY;
}
static void owned_range(struct fixture *f)
{
    f->owned[5] = FX_ITEMS;
}
static void category_range(struct fixture *f)
{
    f->attrs[1].category = FX_CATS;
}
static void empty_version(struct fixture *f)
{
    f->src.version = "";
}
static void bad_on_sale(struct fixture *f)
{
    f->attrs[3].on_sale = 2;
}
static void negative_price(struct fixture *f)
{
    f->attrs[0].price_cents = -1;
}
static void zero_dim(struct fixture *f)
{
    f->src.dim = 0;
}
static void huge_dim(struct fixture *f)
{
    f->src.dim = 4097;
}
static void no_items(struct fixture *f)
{
    f->src.item_count = 0;
}
static void newline_id(struct fixture *f)
{
    f->iids[1] = "book\nb";
}
static void latin1_id(struct fixture *f)
{
    f->iids[2] = "caf\xe9"; /* "café" in Latin-1 */
}
static void latin1_version(struct fixture *f)
{
    f->src.version = "v\xe9";
}
static void empty_user_id(struct fixture *f)
{
    f->uids[3] = "";
}
static void long_id(struct fixture *f)
{
    static char id[258];
    memset(id, 'i', 257);
    f->iids[0] = id;
}
static void bad_bias(struct fixture *f)
{
    f->uf[2 * FX_DIM + FX_DIM - 1] = 0.5f;
}
static void backwards_offsets(struct fixture *f)
{
    f->off[2] = 3; /* bob: 4..3 */
}

static void training_nan(struct fixture *f)
{
    f->training.regularization = NAN;
}
static void training_negative_alpha(struct fixture *f)
{
    f->training.alpha = -0.5f;
}
static void training_zero_view(struct fixture *f)
{
    f->training.view_weight = 0;
}
static void training_inf_view(struct fixture *f)
{
    f->training.view_weight = INFINITY;
}
static void training_negative_end(struct fixture *f)
{
    f->training.data_end_unix_ms = -1;
}

static const struct bad_src bad_srcs[] = {
    {"duplicate user", dup_user, "user id \"alice\" appears twice (users 0 and 2)"},
    {"duplicate item", dup_item, "item id \"course-a\" appears twice (items 0 and 4)"},
    {"duplicate category", dup_category, "category id \"books\" appears twice"},
    {"NaN item factor", nan_item, "item 2 factor 3 is not finite"},
    {"inf user factor", inf_user, "user 1 factor 0 is not finite"},
    {"owned out of range", owned_range, "user 2 owns item index 6, but there are 6 items"},
    {"category out of range", category_range, "item 1 category 3 is out of range (3 categories)"},
    {"empty version", empty_version, "model version is empty"},
    {"on_sale 2", bad_on_sale, "item 3 on_sale is 2"},
    {"negative price", negative_price, "item 0 price -1 is negative"},
    {"dim 0", zero_dim, "dim 0 is out of range"},
    {"dim 4097", huge_dim, "dim 4097 is out of range"},
    {"no items", no_items, "at least one item"},
    {"newline in id", newline_id, "item 1: id contains a newline"},
    {"Latin-1 id", latin1_id, "item 2: id is not valid UTF-8"},
    {"Latin-1 version", latin1_version, "model version is not valid UTF-8"},
    {"empty user id", empty_user_id, "user 3: id is empty"},
    {"long item id", long_id, "item 0: id is longer than 256 bytes"},
    {"bias column", bad_bias, "user 2 bias factor is 0.5, want 1"},
    {"backwards offsets", backwards_offsets, "user 1 owned offsets go backwards"},
    {"NaN regularization", training_nan, "training regularization nan is not finite"},
    {"negative alpha", training_negative_alpha, "training alpha -0.5 is negative"},
    {"zero view weight", training_zero_view, "training view_weight 0 is not above 0"},
    {"inf view weight", training_inf_view, "training view_weight inf is not finite"},
    {"negative data end", training_negative_end, "training data_end_unix_ms -1 is negative"},
};

/* Well-formed UTF-8 by the Unicode standard's table 3-7, and the ill-formed
 * sequences it names: stray continuation bytes, overlong forms, surrogates,
 * code points above U+10FFFF, truncated sequences. */
static void test_utf8_validation(void)
{
    static const struct {
        const char *s;
        int ok;
    } cases[] = {
        {"", 1},
        {"course-42", 1},
        {"caf\xc3\xa9", 1},              /* é */
        {"\xe2\x82\xac", 1},             /* € */
        {"\xe4\xb8\xad\xe6\x96\x87", 1}, /* 中文 */
        {"\xf0\x9f\x98\x80", 1},         /* U+1F600 */
        {"\xf4\x8f\xbf\xbf", 1},         /* U+10FFFF, the last */
        {"\xed\x9f\xbf", 1},             /* U+D7FF, below the surrogates */
        {"caf\xe9", 0},                  /* Latin-1 */
        {"\x80", 0},                     /* stray continuation */
        {"\xc0\xaf", 0},                 /* overlong '/' */
        {"\xc1\xbf", 0},                 /* overlong */
        {"\xe0\x80\xaf", 0},             /* overlong */
        {"\xf0\x8f\xbf\xbf", 0},         /* overlong */
        {"\xed\xa0\x80", 0},             /* U+D800, a surrogate */
        {"\xf4\x90\x80\x80", 0},         /* U+110000 */
        {"\xf5\x80\x80\x80", 0},         /* lead byte past F4 */
        {"\xc3", 0},                     /* truncated */
        {"\xe2\x82", 0},                 /* truncated */
        {"a\xc3\x28", 0},                /* bad continuation */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (utf8_valid(cases[i].s, strlen(cases[i].s)) != cases[i].ok)
            fprintf(stderr, "case %zu: want %d\n", i, cases[i].ok);
        CHECK(utf8_valid(cases[i].s, strlen(cases[i].s)) == cases[i].ok);
    }
}

static void test_writer_rejects(void)
{
    struct fixture good;
    CHECK(mkdir(tmp_path("rejects"), 0755) == 0);
    const char *written = write_fixture("rejects/dest.lmdb", &good);
    CHECK(written != NULL);
    char path[256];
    snprintf(path, sizeof(path), "%s", written);
    size_t before_len;
    char *before = slurp(path, &before_len);
    CHECK(before != NULL);
    for (size_t i = 0; i < sizeof(bad_srcs) / sizeof(bad_srcs[0]); i++) {
        struct fixture f;
        fixture_init(&f);
        bad_srcs[i].mutate(&f);
        struct err e = {0};
        int rc = model_write(path, &f.src, &e);
        size_t after_len;
        char *after = slurp(path, &after_len);
        int same =
            after != NULL && after_len == before_len && memcmp(before, after, after_len) == 0;
        free(after);
        if (rc != ERR_INVALID || strstr(e.msg, bad_srcs[i].msg) == NULL || !same ||
            count_entries(tmp_path("rejects")) != 1) {
            fprintf(stderr, "%s: rc %d, msg \"%s\", want \"%s\"; destination %s, %d files\n",
                    bad_srcs[i].name, rc, e.msg, bad_srcs[i].msg, same ? "same" : "CHANGED",
                    count_entries(tmp_path("rejects")));
            check_failures++;
        }
    }
    free(before);
}

/* A failure after the temporary file exists (the rename onto a directory)
 * removes it. */
static void test_writer_cleans_up(void)
{
    struct fixture f;
    fixture_init(&f);
    CHECK(mkdir(tmp_path("cleanup"), 0755) == 0);
    const char *dest = tmp_path("cleanup/occupied");
    CHECK(mkdir(dest, 0755) == 0);
    CHECK(mkdir(tmp_path("cleanup/occupied/keep"), 0755) == 0);
    struct err e = {0};
    int rc = model_write(dest, &f.src, &e);
    CHECK(rc < 0 && rc > -4096);
    CHECK_STR_HAS(e.msg, "failed to rename");
    CHECK(count_entries(tmp_path("cleanup")) == 1); /* only the directory */

    rc = model_write(tmp_path("no/such/dir/m.lmdb"), &f.src, &e);
    CHECK(rc == -ENOENT);
    CHECK_STR_HAS(e.msg, "failed to create");
}

/* A bare file name is written in (and renamed within) the current directory. */
static void test_writer_relative_path(void)
{
    struct fixture f;
    fixture_init(&f);
    int here = open(".", O_RDONLY | O_DIRECTORY);
    CHECK(here >= 0);
    CHECK(mkdir(tmp_path("rel"), 0755) == 0);
    CHECK(chdir(tmp_path("rel")) == 0);
    struct err e = {0};
    int wrc = model_write("bare.lmdb", &f.src, &e);
    int vrc = model_verify("bare.lmdb", &e);
    int entries = count_entries(".");
    int back = fchdir(here);
    close(here);
    CHECK(back == 0);
    CHECK_OK(wrc);
    CHECK_OK(vrc);
    CHECK(entries == 1);
}

/* ==== reader: refusals =============================================== */

static void expect_refusal(const char *path, int want_rc, const char *want_msg)
{
    struct err e = {0};
    struct model *m = (struct model *)&e; /* must be reset to NULL */
    CHECK_RC(model_open(path, 1, &m, &e), want_rc);
    CHECK(m == NULL);
    CHECK(e.code == want_rc);
    CHECK(strncmp(e.msg, path, strlen(path)) == 0);
    CHECK_STR_HAS(e.msg, want_msg);
    CHECK_RC(model_verify(path, NULL), want_rc);
}

static void test_refuse_missing(void)
{
    expect_refusal(tmp_path("absent.lmdb"), -ENOENT, "No such file");
}

static void test_refuse_empty(void)
{
    const char *path = tmp_path("empty.lmdb");
    CHECK(spit(path, "", 0) == 0);
    expect_refusal(path, ERR_FORMAT, "empty file");
}

static void test_refuse_text(void)
{
    const char *path = tmp_path("text.lmdb");
    char text[9000];
    for (size_t i = 0; i < sizeof(text); i++)
        text[i] = "user_id,item_id\nu1,i1\n"[i % 22];
    CHECK(spit(path, text, 30) == 0);
    expect_refusal(path, ERR_FORMAT, "not an LMDB file");
    CHECK(spit(path, text, sizeof(text)) == 0);
    expect_refusal(path, ERR_FORMAT, "not an LMDB file");
}

static void test_refuse_truncated(void)
{
    struct big b;
    big_init(&b, 33, 400, 2000);
    const char *path = tmp_path("whole.lmdb"), *cut = tmp_path("cut.lmdb");
    struct err e = {0};
    int rc = model_write(path, &b.src, &e);
    big_free(&b);
    CHECK_OK(rc);
    size_t len;
    char *data = slurp(path, &len);
    CHECK(data != NULL);
    int w = spit(cut, data, len / 2);
    free(data);
    CHECK(w == 0);
    expect_refusal(cut, ERR_FORMAT, "truncated");
}

/* -- tampered files: one edit of one value each -- */

static void put_header(uint8_t *val, const struct format_header *h)
{
    memcpy(val, h, sizeof(*h));
}

static size_t hdr_dim20_stride32(uint8_t *val, size_t len, const struct format_header *h)
{
    struct format_header n = *h;
    n.dim = 20;
    n.stride = 32; /* consistent with each other, not with the matrices */
    put_header(val, &n);
    return len;
}

static size_t hdr_dim20_stride16(uint8_t *val, size_t len, const struct format_header *h)
{
    struct format_header n = *h;
    n.dim = 20;
    put_header(val, &n);
    return len;
}

static size_t hdr_magic(uint8_t *val, size_t len, const struct format_header *h)
{
    val[0] = 'X';
    return len;
}

static size_t hdr_version2(uint8_t *val, size_t len, const struct format_header *h)
{
    struct format_header n = *h;
    n.format_version = 2;
    put_header(val, &n);
    return len;
}

static size_t hdr_elem_type(uint8_t *val, size_t len, const struct format_header *h)
{
    struct format_header n = *h;
    n.elem_type = 1;
    put_header(val, &n);
    return len;
}

static size_t hdr_item_pad(uint8_t *val, size_t len, const struct format_header *h)
{
    struct format_header n = *h;
    n.blob_pad[FORMAT_BLOB_ITEM_MATRIX] = (n.blob_pad[FORMAT_BLOB_ITEM_MATRIX] + 4) % 64;
    put_header(val, &n);
    return len;
}

static size_t hdr_purchases(uint8_t *val, size_t len, const struct format_header *h)
{
    struct format_header n = *h;
    n.purchase_count++;
    put_header(val, &n);
    return len;
}

static size_t hdr_categories(uint8_t *val, size_t len, const struct format_header *h)
{
    struct format_header n = *h;
    n.category_count = 2;
    put_header(val, &n);
    return len;
}

static size_t hdr_users(uint8_t *val, size_t len, const struct format_header *h)
{
    struct format_header n = *h;
    n.user_count = 5;
    put_header(val, &n);
    return len;
}

static size_t hdr_copy_pad(uint8_t *val, size_t len, const struct format_header *h)
{
    struct format_header n = *h;
    n.blob_pad[FORMAT_BLOB_ITEM_INT8] = (n.blob_pad[FORMAT_BLOB_ITEM_INT8] + 16) % 64;
    put_header(val, &n);
    return len;
}

static size_t shorten_by_1(uint8_t *val, size_t len, const struct format_header *h)
{
    return len - 1;
}

static size_t shorten_by_4(uint8_t *val, size_t len, const struct format_header *h)
{
    return len - 4;
}

static size_t to_empty(uint8_t *val, size_t len, const struct format_header *h)
{
    return 0;
}

static void put_float(uint8_t *val, const struct format_header *h, enum format_blob b, uint32_t row,
                      uint32_t col, float f)
{
    memcpy(val + h->blob_pad[b] + ((size_t)row * h->stride + col) * sizeof(f), &f, sizeof(f));
}

static void put_bf16(uint8_t *val, const struct format_header *h, uint32_t row, uint32_t col,
                     uint16_t v)
{
    memcpy(val + h->blob_pad[FORMAT_BLOB_ITEM_BF16] + ((size_t)row * h->stride + col) * sizeof(v),
           &v, sizeof(v));
}

static size_t bf16_nan(uint8_t *val, size_t len, const struct format_header *h)
{
    put_bf16(val, h, 2, 1, 0x7fc0);
    return len;
}

static size_t bf16_padding(uint8_t *val, size_t len, const struct format_header *h)
{
    put_bf16(val, h, 0, 15, 0x3f80);
    return len;
}

static size_t int8_min(uint8_t *val, size_t len, const struct format_header *h)
{
    val[h->blob_pad[FORMAT_BLOB_ITEM_INT8] + 3 * h->stride] = 0x80; /* -128 */
    return len;
}

static size_t int8_scale(uint8_t *val, size_t len, const struct format_header *h)
{
    float neg = -1.0f;
    memcpy(val + h->blob_pad[FORMAT_BLOB_ITEM_INT8] + FX_ITEMS * h->stride + sizeof(float), &neg,
           sizeof(neg));
    return len;
}

static size_t item_nan(uint8_t *val, size_t len, const struct format_header *h)
{
    put_float(val, h, FORMAT_BLOB_ITEM_MATRIX, 1, 2, NAN);
    return len;
}

static size_t item_inf(uint8_t *val, size_t len, const struct format_header *h)
{
    put_float(val, h, FORMAT_BLOB_ITEM_MATRIX, 4, 0, -INFINITY);
    return len;
}

/* A finite factor changed: every structural and value check passes. */
static size_t item_changed(uint8_t *val, size_t len, const struct format_header *h)
{
    put_float(val, h, FORMAT_BLOB_ITEM_MATRIX, 0, 0, 123.0f);
    return len;
}

static size_t blob_slack(uint8_t *val, size_t len, const struct format_header *h)
{
    val[len - 1] = 1;
    return len;
}

static size_t user_padding(uint8_t *val, size_t len, const struct format_header *h)
{
    put_float(val, h, FORMAT_BLOB_USER_MATRIX, 3, 9, 1.0f);
    return len;
}

static size_t user_bias(uint8_t *val, size_t len, const struct format_header *h)
{
    put_float(val, h, FORMAT_BLOB_USER_MATRIX, 1, h->dim - 1, 2.0f);
    return len;
}

static struct model_item_attr *attr_at(uint8_t *val, const struct format_header *h, uint32_t i)
{
    return (struct model_item_attr *)(val + h->blob_pad[FORMAT_BLOB_ITEM_ATTRS]) + i;
}

static size_t attr_on_sale(uint8_t *val, size_t len, const struct format_header *h)
{
    attr_at(val, h, 3)->on_sale = 2;
    return len;
}

static size_t attr_price(uint8_t *val, size_t len, const struct format_header *h)
{
    attr_at(val, h, 0)->price_cents = -5;
    return len;
}

static size_t attr_pad(uint8_t *val, size_t len, const struct format_header *h)
{
    attr_at(val, h, 4)->pad[1] = 1;
    return len;
}

static uint64_t *strtab_off(uint8_t *val, const struct format_header *h, enum format_blob b)
{
    return (uint64_t *)(val + h->blob_pad[b]);
}

static char *strtab_str(uint8_t *val, const struct format_header *h, enum format_blob b, uint32_t n,
                        uint32_t i)
{
    uint64_t *off = strtab_off(val, h, b);
    return (char *)(off + n + 1) + off[i];
}

static size_t ids_empty_entry(uint8_t *val, size_t len, const struct format_header *h)
{
    uint64_t *off = strtab_off(val, h, FORMAT_BLOB_ITEM_IDS);
    off[2] = off[1];
    return len;
}

static size_t ids_newline(uint8_t *val, size_t len, const struct format_header *h)
{
    strtab_str(val, h, FORMAT_BLOB_ITEM_IDS, FX_ITEMS, 0)[3] = '\n';
    return len;
}

static size_t ids_not_utf8(uint8_t *val, size_t len, const struct format_header *h)
{
    strtab_str(val, h, FORMAT_BLOB_ITEM_IDS, FX_ITEMS, 2)[0] = (char)0xc0; /* a lone lead byte */
    return len;
}

static size_t ids_renamed(uint8_t *val, size_t len, const struct format_header *h)
{
    strtab_str(val, h, FORMAT_BLOB_ITEM_IDS, FX_ITEMS, 5)[0] = 'y'; /* "x" -> "y" */
    return len;
}

static size_t cats_duplicate(uint8_t *val, size_t len, const struct format_header *h)
{
    memcpy(strtab_str(val, h, FORMAT_BLOB_CATEGORIES, FX_CATS, 2), "books", 5); /* was "audio" */
    return len;
}

static struct model_pop *pop_at(uint8_t *val, const struct format_header *h)
{
    return (struct model_pop *)(val + h->blob_pad[FORMAT_BLOB_POPULARITY]);
}

static size_t pop_duplicate(uint8_t *val, size_t len, const struct format_header *h)
{
    struct model_pop *p = pop_at(val, h);
    p[1].item = p[0].item;
    return len;
}

/* Entries 0 and 1 are (0,2) and (1,2): swapped, the tie order is wrong. */
static size_t pop_swap(uint8_t *val, size_t len, const struct format_header *h)
{
    struct model_pop *p = pop_at(val, h), t = p[0];
    p[0] = p[1];
    p[1] = t;
    return len;
}

/* Still sorted, but item 0 has 2 owners, not 3. */
static size_t pop_count(uint8_t *val, size_t len, const struct format_header *h)
{
    pop_at(val, h)[0].count = 3;
    return len;
}

static size_t put_u32_at(uint8_t *val, size_t len, size_t at, uint32_t x)
{
    memcpy(val + at, &x, sizeof(x));
    return len;
}

static size_t index_9(uint8_t *val, size_t len, const struct format_header *h)
{
    return put_u32_at(val, len, 0, 9);
}

static size_t index_0(uint8_t *val, size_t len, const struct format_header *h)
{
    return put_u32_at(val, len, 0, 0);
}

static size_t owned_99(uint8_t *val, size_t len, const struct format_header *h)
{
    return put_u32_at(val, len, len - 4, 99);
}

static size_t owned_repeat(uint8_t *val, size_t len, const struct format_header *h)
{
    return put_u32_at(val, len, len - 4, 1); /* {0, 1, 3} -> {0, 1, 1} */
}

static size_t row_3(uint8_t *val, size_t len, const struct format_header *h)
{
    return put_u32_at(val, len, 0, 3); /* dave's row */
}

static size_t row_4(uint8_t *val, size_t len, const struct format_header *h)
{
    return put_u32_at(val, len, 0, 4);
}

/* Edits of meta/training, at FORMAT.md's offsets. */
static size_t put_f32_at(uint8_t *val, size_t len, size_t at, float x)
{
    memcpy(val + at, &x, sizeof(x));
    return len;
}

static size_t training_reg_nan(uint8_t *val, size_t len, const struct format_header *h)
{
    return put_f32_at(val, len, 0, NAN);
}

static size_t training_reg_negative(uint8_t *val, size_t len, const struct format_header *h)
{
    return put_f32_at(val, len, 0, -0.25f);
}

static size_t training_alpha_inf(uint8_t *val, size_t len, const struct format_header *h)
{
    return put_f32_at(val, len, 4, -INFINITY);
}

static size_t training_alpha_negative(uint8_t *val, size_t len, const struct format_header *h)
{
    return put_f32_at(val, len, 4, -1.0f);
}

static size_t training_view_zero(uint8_t *val, size_t len, const struct format_header *h)
{
    return put_f32_at(val, len, 8, 0.0f);
}

static size_t training_view_negative(uint8_t *val, size_t len, const struct format_header *h)
{
    return put_f32_at(val, len, 8, -2.0f);
}

static size_t training_scaling(uint8_t *val, size_t len, const struct format_header *h)
{
    return put_u32_at(val, len, 12, 2);
}

static size_t training_end_negative(uint8_t *val, size_t len, const struct format_header *h)
{
    int64_t end = -1000;
    memcpy(val + 16, &end, sizeof(end));
    return len;
}

/* Still a valid record (data end one ms later), so only the checksum can
 * tell. */
static size_t training_flip(uint8_t *val, size_t len, const struct format_header *h)
{
    val[16] ^= 1;
    return len;
}

struct tamper_case {
    const char *name;
    const char *db, *key;
    edit_fn *edit;
    int rc;
    const char *msg;
};

#define META  FORMAT_DB_META
#define ITEMS FORMAT_DB_ITEMS
#define USERS FORMAT_DB_USERS

static const struct tamper_case tamper_cases[] = {
    {"wrong dim", META, "header", hdr_dim20_stride32, ERR_FORMAT,
     "header dim 20 does not match item_matrix size"},
    {"wrong stride", META, "header", hdr_dim20_stride16, ERR_FORMAT,
     "header stride 16 is wrong for dim 20 (want 32)"},
    {"magic", META, "header", hdr_magic, ERR_FORMAT, "bad magic, not a recsysd model"},
    {"format version", META, "header", hdr_version2, ERR_FORMAT,
     "format version 2 is not supported"},
    {"element type", META, "header", hdr_elem_type, ERR_FORMAT, "element type 1 is not supported"},
    {"unaligned matrix", META, "header", hdr_item_pad, ERR_FORMAT,
     "item_matrix is not 64-byte aligned"},
    {"purchase count", META, "header", hdr_purchases, ERR_FORMAT,
     "header purchase count 7 does not match the users' 6"},
    {"category count", META, "header", hdr_categories, ERR_FORMAT,
     "item 2 category 2 is out of range (2 categories)"},
    {"user count", META, "header", hdr_users, ERR_FORMAT, "does not match user_matrix size"},
    {"copy pad", META, "header", hdr_copy_pad, ERR_FORMAT, "item_int8 is not 64-byte aligned"},
    {"short header", META, "header", shorten_by_1, ERR_FORMAT, "header is 95 bytes, want 96"},
    {"empty version", META, "version", to_empty, ERR_FORMAT, "model version is empty"},
    {"short checksum", META, "checksum", shorten_by_4, ERR_FORMAT, "checksum is 4 bytes, want 8"},
    {"NaN item factor", META, "item_matrix", item_nan, ERR_FORMAT, "item 1 factor 2 is not finite"},
    {"inf item factor", META, "item_matrix", item_inf, ERR_FORMAT, "item 4 factor 0 is not finite"},
    {"blob slack", META, "item_matrix", blob_slack, ERR_FORMAT, "item_matrix padding is not zero"},
    {"bf16 NaN", META, "item_bf16", bf16_nan, ERR_FORMAT,
     "item_bf16 row 2 element 1 is not a valid bf16"},
    {"bf16 padding", META, "item_bf16", bf16_padding, ERR_FORMAT,
     "item_bf16 row 0 padding element 15 is not zero"},
    {"int8 -128", META, "item_int8", int8_min, ERR_FORMAT,
     "item_int8 row 3 element 0 is not a valid int8"},
    {"int8 scale", META, "item_int8", int8_scale, ERR_FORMAT,
     "item_int8 row 1 scale -1 is not finite and >= 0"},

    {"row padding", META, "user_matrix", user_padding, ERR_FORMAT,
     "user row 3 padding float 9 is not zero"},
    {"bias column", META, "user_matrix", user_bias, ERR_FORMAT,
     "user row 1 bias factor is 2, want 1"},
    {"on_sale", META, "item_attrs", attr_on_sale, ERR_FORMAT, "item 3 on_sale is 2, want 0 or 1"},
    {"price", META, "item_attrs", attr_price, ERR_FORMAT, "item 0 price -5 is negative"},
    {"attr padding", META, "item_attrs", attr_pad, ERR_FORMAT,
     "item 4 attribute padding is not zero"},
    {"empty item id", META, "item_ids", ids_empty_entry, ERR_FORMAT, "item id 1 has a bad offset"},
    {"newline in item id", META, "item_ids", ids_newline, ERR_FORMAT,
     "item id 0 contains a NUL or newline"},
    {"item id not UTF-8", META, "item_ids", ids_not_utf8, ERR_FORMAT,
     "item id 2 contains a NUL or newline, or is not UTF-8"},
    {"item ids vs items", META, "item_ids", ids_renamed, ERR_FORMAT,
     "item \"x\" maps to index 5, whose id is \"y\""},
    {"duplicate category", META, "categories", cats_duplicate, ERR_FORMAT,
     "category \"books\" appears twice"},
    {"popularity duplicate", META, "popularity", pop_duplicate, ERR_FORMAT,
     "popularity is not a permutation of the items (entry 1: item 0)"},
    {"popularity order", META, "popularity", pop_swap, ERR_FORMAT,
     "popularity is not sorted at entry 1"},
    {"popularity count", META, "popularity", pop_count, ERR_FORMAT,
     "popularity gives item 0 3 owners, the users 2"},
    {"item index range", ITEMS, "book-b", index_9, ERR_FORMAT,
     "item \"book-b\" maps to index 9, but there are 6 items"},
    {"item index wrong", ITEMS, "book-b", index_0, ERR_FORMAT,
     "item \"book-b\" maps to index 0, whose id is \"course-a\""},
    {"item value size", ITEMS, "book-b", shorten_by_1, ERR_FORMAT,
     "item \"book-b\" value is 3 bytes, want 4"},
    {"owned range", USERS, "alice", owned_99, ERR_FORMAT,
     "user \"alice\" owns item index 99, but there are 6 items"},
    {"owned order", USERS, "alice", owned_repeat, ERR_FORMAT,
     "user \"alice\" owned items are not ascending at 2"},
    {"user record size", USERS, "alice", shorten_by_4, ERR_FORMAT,
     "user \"alice\" record is 20 bytes, wrong for 3 owned items"},
    {"shared row", USERS, "alice", row_3, ERR_FORMAT, "row 3 belongs to another user too"},
    {"row range", USERS, "alice", row_4, ERR_FORMAT,
     "user \"alice\" row 4 is out of range (4 users)"},
    {"checksum", META, "item_matrix", item_changed, ERR_CHECKSUM, "checksum mismatch"},
    {"training NaN", META, "training", training_reg_nan, ERR_FORMAT,
     "training regularization nan is not finite"},
    {"training regularization", META, "training", training_reg_negative, ERR_FORMAT,
     "training regularization -0.25 is negative"},
    {"training alpha inf", META, "training", training_alpha_inf, ERR_FORMAT,
     "training alpha -inf is not finite"},
    {"training alpha", META, "training", training_alpha_negative, ERR_FORMAT,
     "training alpha -1 is negative"},
    {"training view weight 0", META, "training", training_view_zero, ERR_FORMAT,
     "training view_weight 0 is not above 0"},
    {"training view weight", META, "training", training_view_negative, ERR_FORMAT,
     "training view_weight -2 is not above 0"},
    {"training scaling", META, "training", training_scaling, ERR_FORMAT,
     "training regularization_scaling is 2, want 0 or 1"},
    {"training data end", META, "training", training_end_negative, ERR_FORMAT,
     "training data_end_unix_ms -1000 is negative"},
    {"training size", META, "training", shorten_by_1, ERR_FORMAT, "training is 23 bytes, want 24"},
    {"training checksum", META, "training", training_flip, ERR_CHECKSUM, "checksum mismatch"},
};

/* Each case: a good file, one value rewritten, refused with its message. */
static void test_refuse_tampered(void)
{
    for (size_t i = 0; i < sizeof(tamper_cases) / sizeof(tamper_cases[0]); i++) {
        const struct tamper_case *tc = &tamper_cases[i];
        struct fixture f;
        struct format_header h;
        struct err e = {0};
        struct model *m = NULL;
        const char *path = write_fixture("tampered.lmdb", &f);
        int rc = path ? read_header(path, &h) : -1;
        if (rc == 0)
            rc = tamper(path, tc->db, tc->key, tc->edit, &h);
        if (rc == 0)
            rc = model_open(path, 1, &m, &e);
        if (rc != tc->rc || m != NULL || strstr(e.msg, tc->msg) == NULL ||
            strncmp(e.msg, path, strlen(path)) != 0) {
            fprintf(stderr, "%s: rc %d, \"%s\"; want %s \"%s\"\n", tc->name, rc, e.msg,
                    err_name(tc->rc), tc->msg);
            check_failures++;
        }
        model_close(m);
    }
}

static size_t hdr_absent_pad(uint8_t *val, size_t len, const struct format_header *h)
{
    struct format_header n = *h;
    n.blob_pad[FORMAT_BLOB_ITEM_BF16] = 8;
    put_header(val, &n);
    return len;
}

/* A file without copies must say so in the header too. */
static void test_refuse_pad_of_absent_copy(void)
{
    struct fixture f;
    struct format_header h = {0};
    struct err e = {0};
    struct model *m = NULL;
    const char *path = tmp_path("nocopies.lmdb");
    fixture_init(&f);
    f.src.quantize = 0;
    CHECK_OK(model_write(path, &f.src, NULL));
    CHECK_OK(read_header(path, &h));
    CHECK_OK(tamper(path, META, "header", hdr_absent_pad, &h));
    CHECK(model_open(path, 1, &m, &e) == ERR_FORMAT && m == NULL);
    CHECK(strstr(e.msg, "header pad of item_bf16 is 8, want 0: the file has no item_bf16") != NULL);
}

/* A database with a key the format does not have. */
static void test_refuse_extra_key(void)
{
    struct fixture f;
    const char *path = write_fixture("extra.lmdb", &f);
    CHECK(path != NULL);
    CHECK_OK(raw_put(path, FORMAT_DB_META, "comment", "hi", 2));
    expect_refusal(path, ERR_FORMAT, "meta has 13 keys, want 12");
}

/* A record longer than the struct: tamper() can only shorten a value. */
static void test_refuse_long_training(void)
{
    struct fixture f;
    const char *path = write_fixture("long-training.lmdb", &f);
    CHECK(path != NULL);
    uint8_t val[32] = {0};
    memcpy(val, &f.training.regularization, 4);
    memcpy(val + 4, &f.training.alpha, 4);
    memcpy(val + 8, &f.training.view_weight, 4);
    CHECK_OK(raw_put(path, FORMAT_DB_META, FORMAT_KEY_TRAINING, val, sizeof(val)));
    expect_refusal(path, ERR_FORMAT, "training is 32 bytes, want 24");
}

/* The checksum covers the record like any other pair: the same model with
 * and without one hashes differently, and the record's checksum put on the
 * file without it is refused (the value is replaced in place, same size).
 * A changed byte of the record: tamper_cases. */
static uint64_t other_checksum;

static size_t put_other_checksum(uint8_t *val, size_t len, const struct format_header *h)
{
    memcpy(val, &other_checksum, sizeof(other_checksum));
    return len;
}

static void test_training_in_checksum(void)
{
    struct fixture f;
    const char *with = write_fixture("sum-with.lmdb", &f);
    CHECK(with != NULL);
    fixture_init(&f);
    f.src.training = NULL;
    const char *without = tmp_path("sum-without.lmdb");
    CHECK_OK(model_write(without, &f.src, NULL));
    uint64_t sum_without = 0;
    size_t len;
    CHECK_OK(
        raw_get_meta(with, FORMAT_KEY_CHECKSUM, &other_checksum, sizeof(other_checksum), &len));
    CHECK_OK(raw_get_meta(without, FORMAT_KEY_CHECKSUM, &sum_without, sizeof(sum_without), &len));
    CHECK(other_checksum != sum_without);
    CHECK_OK(tamper(without, FORMAT_DB_META, FORMAT_KEY_CHECKSUM, put_other_checksum, NULL));
    expect_refusal(without, ERR_CHECKSUM, "checksum mismatch");
}

/* A valid LMDB file that is not a model. */
static void test_refuse_foreign_lmdb(void)
{
    const char *path = tmp_path("foreign.lmdb");
    CHECK_OK(raw_put(path, NULL, "hello", "world", 5));
    expect_refusal(path, ERR_FORMAT, "no \"meta\" database, not a recsysd model");
}

static void test_failed_write_keeps_old_file(void)
{
    struct fixture f;
    CHECK(mkdir(tmp_path("keep"), 0755) == 0);
    const char *path = write_fixture("keep/model.lmdb", &f);
    CHECK(path != NULL);
    struct model *m;
    CHECK_OK(model_open(path, 1, &m, NULL));
    char sum[17];
    memcpy(sum, model_info(m)->checksum, sizeof(sum));
    model_close(m);

    fixture_init(&f);
    f.src.version = "v-next";
    f.itf[7] = NAN;
    struct err e = {0};
    CHECK_RC(model_write(path, &f.src, &e), ERR_INVALID);
    CHECK(count_entries(tmp_path("keep")) == 1);
    CHECK_OK(model_open(path, 1, &m, &e));
    int same = strcmp(model_info(m)->checksum, sum) == 0 &&
               strcmp(model_info(m)->version, "v2024.06-test") == 0;
    model_close(m);
    CHECK(same);
}

/* ==== checksum ======================================================= */

/* Known answers from an independent implementation of FORMAT.md's
 * "Checksum" section (Python), over the bytes i * 7 + 3 mod 256. */
static void test_checksum_known_answers(void)
{
    static const struct {
        size_t len;
        uint64_t hash;
    } kat[] = {
        {0, 0xff0a990a65bfdcc1ull},  {1, 0xc1df6ad3568647f5ull},  {7, 0x7b3c00a3a196cdedull},
        {8, 0xe6bcf3576aae9208ull},  {9, 0xb873961a759f8f2cull},  {31, 0xc45e41f7c2866d49ull},
        {32, 0xd9bd33cb0867eba5ull}, {33, 0x9e0d150165d4ba05ull}, {63, 0xd86ddf933e930633ull},
        {64, 0x80d63b89829a2da8ull}, {65, 0xc593ded631f19b86ull}, {100, 0x96a1878b640ab3d4ull},
        {200, 0x6c604e6d2a9da9e6ull}};
    uint8_t data[200];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 7 + 3);
    for (size_t k = 0; k < sizeof(kat) / sizeof(kat[0]); k++) {
        struct checksum c;
        checksum_init(&c);
        checksum_update(&c, data, kat[k].len);
        if (checksum_final(&c) != kat[k].hash) {
            fprintf(stderr, "len %zu: %016llx, want %016llx\n", kat[k].len,
                    (unsigned long long)checksum_final(&c), (unsigned long long)kat[k].hash);
            check_failures++;
        }
    }
}

/* Feeding the same bytes in any split gives the same hash. */
static void test_checksum_streaming(void)
{
    uint8_t data[1000];
    uint32_t seed = 1;
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)lcg(&seed);
    struct checksum whole;
    checksum_init(&whole);
    checksum_update(&whole, data, sizeof(data));
    uint64_t want = checksum_final(&whole);
    for (int trial = 0; trial < 50; trial++) {
        struct checksum c;
        checksum_init(&c);
        for (size_t at = 0; at < sizeof(data);) {
            size_t n = lcg(&seed) % 70;
            if (n > sizeof(data) - at)
                n = sizeof(data) - at;
            checksum_update(&c, data + at, n);
            at += n;
        }
        CHECK(checksum_final(&c) == want);
    }
    struct checksum c;
    checksum_init(&c);
    checksum_update(&c, data, sizeof(data) - 1);
    CHECK(checksum_final(&c) != want);
}

/* ==== main =========================================================== */

static const struct check_case cases[] = {
    CHECK_CASE(test_round_trip_header),
    CHECK_CASE(test_round_trip_items),
    CHECK_CASE(test_round_trip_copies),
    CHECK_CASE(test_round_trip_categories),
    CHECK_CASE(test_round_trip_users),
    CHECK_CASE(test_round_trip_defaults),
    CHECK_CASE(test_round_trip_training),
    CHECK_CASE(test_alignment_many_shapes),
    CHECK_CASE(test_round_trip_big),
    CHECK_CASE(test_slots_concurrent),
    CHECK_CASE(test_writer_rejects),
    CHECK_CASE(test_writer_cleans_up),
    CHECK_CASE(test_writer_relative_path),
    CHECK_CASE(test_refuse_missing),
    CHECK_CASE(test_refuse_empty),
    CHECK_CASE(test_refuse_text),
    CHECK_CASE(test_refuse_truncated),
    CHECK_CASE(test_refuse_tampered),
    CHECK_CASE(test_refuse_pad_of_absent_copy),
    CHECK_CASE(test_refuse_extra_key),
    CHECK_CASE(test_refuse_long_training),
    CHECK_CASE(test_training_in_checksum),
    CHECK_CASE(test_refuse_foreign_lmdb),
    CHECK_CASE(test_failed_write_keeps_old_file),
    CHECK_CASE(test_utf8_validation),
    CHECK_CASE(test_checksum_known_answers),
    CHECK_CASE(test_checksum_streaming),
};

int main(int argc, char **argv)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/recsys-test-XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    int rc = check_main(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
    remove_tree(tmpdir);
    return rc;
}
