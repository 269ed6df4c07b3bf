/*
 * test_lmdbcheck: the LMDB structure check that runs before LMDB reads a
 * model file. A model written by model_write passes; each class of damage
 * that crashed liblmdb 0.9.24 (and its neighbours) is made by patching bytes
 * of that file, located from the LMDB layout written out here independently
 * of lmdbcheck.c, and must be refused by lmdbcheck_path with a message
 * naming the problem and by model_open with ERR_FORMAT, without a crash.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "model/lmdbcheck.h"
#include "model/model.h"
#include "model/writer.h"
#include "served.h" /* served_rmdir */

/* ==== a model with multi-level trees and overflow values ============= */

/* Enough items and users that their DBs need branch pages, and matrices
 * large enough for overflow runs. */
enum { N_ITEMS = 1500, N_USERS = 1200, DIM = 4 };

struct source {
    float uf[N_USERS * DIM];
    float itf[N_ITEMS * DIM];
    char ids[N_USERS + N_ITEMS][16];
    const char *uids[N_USERS];
    const char *iids[N_ITEMS];
    struct model_item_attr attrs[N_ITEMS];
    struct model_src src;
};

static void source_init(struct source *s)
{
    static const char *const cats[] = {"books"};
    for (uint32_t u = 0; u < N_USERS; u++) {
        snprintf(s->ids[u], sizeof(s->ids[u]), "user-%05u", u);
        s->uids[u] = s->ids[u];
        for (uint32_t j = 0; j < DIM; j++)
            s->uf[u * DIM + j] = 0.01f * (float)(u % 97) - 0.1f * (float)j;
    }
    for (uint32_t i = 0; i < N_ITEMS; i++) {
        snprintf(s->ids[N_USERS + i], sizeof(s->ids[0]), "item-%05u", i);
        s->iids[i] = s->ids[N_USERS + i];
        for (uint32_t j = 0; j < DIM; j++)
            s->itf[i * DIM + j] = 0.02f * (float)(i % 89) + 0.1f * (float)j;
        s->attrs[i] = (struct model_item_attr){.price_cents = 100 + i, .on_sale = 1};
    }
    s->src = (struct model_src){
        .dim = DIM,
        .user_count = N_USERS,
        .item_count = N_ITEMS,
        .user_factors = s->uf,
        .item_factors = s->itf,
        .user_ids = s->uids,
        .item_ids = s->iids,
        .attrs = s->attrs,
        .categories = cats,
        .category_count = 1,
        .version = "lmdbcheck-test",
        .created_at = 1718000000,
    };
}

/* ==== the LMDB 0.9.24 layout, for locating what to damage ============ */

/* A page starts with a 16-byte header: pgno (u64), pad, flags, lower,
 * upper (u16 each); node offsets (u16) follow. A meta record follows the
 * header of pages 0 and 1: the free DB record at +24 (its first u32 is the
 * page size), the main DB record at +72, last page at +120, txnid at +128.
 * A DB record has flags at +4, depth at +6, entries at +32, root at +40. A
 * node has size lo/hi, flags, key size (u16 each), then key, then value. */
enum { HDR = 16, META_PSIZE = HDR + 24, META_MAIN = HDR + 72, META_TXNID = HDR + 128 };
enum { DB_FLAGS = 4, DB_ENTRIES = 32, DB_ROOT = 40 };
enum { P_BRANCH = 1, P_LEAF = 2 };

struct file {
    uint8_t *b;
    size_t len;
    uint64_t psize;
};

static uint16_t rd16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static uint64_t rd64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static void wr16(uint8_t *p, uint16_t v)
{
    memcpy(p, &v, sizeof(v));
}

static void wr32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, sizeof(v));
}

static void wr64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, sizeof(v));
}

static uint8_t *page(const struct file *f, uint64_t n)
{
    return f->b + n * f->psize;
}

static uint8_t *node(uint8_t *pg, unsigned i)
{
    return pg + rd16(pg + HDR + 2 * i);
}

static unsigned nkeys(const uint8_t *pg)
{
    return (rd16(pg + 12) - HDR) / 2u;
}

/* The meta page LMDB uses: the higher txnid, page 0 on a tie. */
static uint8_t *current_meta(const struct file *f)
{
    return rd64(page(f, 1) + META_TXNID) > rd64(page(f, 0) + META_TXNID) ? page(f, 1) : page(f, 0);
}

static uint8_t *older_meta(const struct file *f)
{
    return current_meta(f) == page(f, 0) ? page(f, 1) : page(f, 0);
}

/* The value of leaf node @key on leaf page @pg, or NULL. */
static uint8_t *leaf_value(uint8_t *pg, const char *key)
{
    for (unsigned i = 0; i < nkeys(pg); i++) {
        uint8_t *n = node(pg, i);
        if (rd16(n + 6) == strlen(key) && memcmp(n + 8, key, strlen(key)) == 0)
            return n + 8 + rd16(n + 6);
    }
    return NULL;
}

/* The DB record of sub-DB @name, in the main DB's root leaf. */
static uint8_t *sub_db(const struct file *f, const char *name)
{
    return leaf_value(page(f, rd64(current_meta(f) + META_MAIN + DB_ROOT)), name);
}

static uint8_t *sub_root(const struct file *f, const char *name)
{
    return page(f, rd64(sub_db(f, name) + DB_ROOT));
}

/* The child page of branch node @i. */
static uint8_t *child(const struct file *f, uint8_t *pg, unsigned i)
{
    uint8_t *n = node(pg, i);
    return page(f, rd16(n) | (uint64_t)rd16(n + 2) << 16 | (uint64_t)rd16(n + 4) << 32);
}

static uint8_t *first_leaf(const struct file *f, const char *name)
{
    uint8_t *pg = sub_root(f, name);
    while (rd16(pg + 10) == P_BRANCH)
        pg = child(f, pg, 0);
    return pg;
}

/* ==== the damage ===================================================== */

/* The five crashers the fuzzer found, then neighbours of each. */

static void psize_zero(struct file *f)
{
    wr32(page(f, 0) + META_PSIZE, 0);
    wr32(page(f, 1) + META_PSIZE, 0);
}

static void root_is_meta(struct file *f)
{
    wr64(current_meta(f) + META_MAIN + DB_ROOT, 1);
}

static void node_offset_past_page(struct file *f)
{
    uint8_t *pg = sub_root(f, "meta");
    for (unsigned i = 0; i < nkeys(pg); i++)
        wr16(pg + HDR + 2 * i, 0xfff0);
}

static void dupdata_flag(struct file *f)
{
    wr16(node(first_leaf(f, "users"), 1) + 4, 0x04);
}

static void root_header_damaged(struct file *f)
{
    uint8_t *pg = page(f, rd64(current_meta(f) + META_MAIN + DB_ROOT));
    wr16(pg + 10, 0x1be);
    wr16(pg + 12, 0);
    wr16(pg + 14, 0);
}

static void psize_odd(struct file *f)
{
    wr32(page(f, 0) + META_PSIZE, 4000);
}

static void psize_differs(struct file *f)
{
    wr32(page(f, 1) + META_PSIZE, 8192);
}

static void bad_magic(struct file *f)
{
    page(f, 1)[HDR] ^= 0xff;
}

static void past_last_page(struct file *f)
{
    wr64(current_meta(f) + HDR + 120, f->len / f->psize);
}

static void branch_loops(struct file *f)
{
    uint8_t *root = sub_root(f, "items");
    uint8_t *n = node(root, 1);
    uint64_t self = (uint64_t)(root - f->b) / f->psize;
    wr16(n, (uint16_t)self);
    wr16(n + 2, (uint16_t)(self >> 16));
    wr16(n + 4, 0);
}

static void branch_one_key(struct file *f)
{
    wr16(sub_root(f, "users") + 12, HDR + 2);
}

static void lower_past_upper(struct file *f)
{
    uint8_t *pg = first_leaf(f, "items");
    wr16(pg + 12, (uint16_t)(rd16(pg + 14) + 2));
}

static void leaf2_page(struct file *f)
{
    wr16(first_leaf(f, "items") + 10, 0x22);
}

static void key_too_long(struct file *f)
{
    wr16(node(first_leaf(f, "users"), 0) + 6, 600);
}

static void value_past_page(struct file *f)
{
    uint8_t *n = node(first_leaf(f, "items"), 0);
    wr16(n + 2, 1);
}

static void overflow_run_short(struct file *f)
{
    uint8_t *v = leaf_value(sub_root(f, "meta"), "item_matrix");
    wr32(page(f, rd64(v)) + 12, 1);
}

static void overflow_not_overflow(struct file *f)
{
    uint8_t *v = leaf_value(sub_root(f, "meta"), "user_matrix");
    wr64(v, (uint64_t)(sub_root(f, "items") - f->b) / f->psize);
}

static void subdb_dupsort(struct file *f)
{
    wr16(sub_db(f, "items") + DB_FLAGS, 0x04);
}

static void entries_off(struct file *f)
{
    uint8_t *db = sub_db(f, "users");
    wr64(db + DB_ENTRIES, rd64(db + DB_ENTRIES) + 1);
}

static void page_number_wrong(struct file *f)
{
    uint8_t *pg = first_leaf(f, "users");
    wr64(pg, rd64(pg) + 1);
}

struct damage {
    const char *name;
    void (*patch)(struct file *f);
    const char *want; /* in the message */
};

static const struct damage damages[] = {
    {"psize-zero", psize_zero, "meta page 0: page size 0 is not a power of two"},
    {"root-is-meta", root_is_meta, "main DB: root is page 1"},
    {"node-offset-past-page", node_offset_past_page, "node 0 offset 65520 outside the node area"},
    {"dupdata-flag", dupdata_flag, "flags 0x4: F_DUPDATA"},
    {"root-header-damaged", root_header_damaged, "main DB: page 2: flags 0x1be"},
    {"page size not a power of two", psize_odd, "page size 4000"},
    {"page sizes differ", psize_differs, "meta page 1: page size 8192"},
    {"bad magic", bad_magic, "not an LMDB file (meta page 1"},
    {"last page past the file", past_last_page, "truncated"},
    {"branch child is itself", branch_loops, "is reached twice"},
    {"branch page with one key", branch_one_key, "1 keys on a branch page"},
    {"lower past upper", lower_past_upper, "not 16 <= lower <= upper"},
    {"P_LEAF2 page", leaf2_page, "flags 0x22"},
    {"key of 600 bytes", key_too_long, "key of 600 bytes"},
    {"inline value past the page", value_past_page, "run past the page"},
    {"overflow run too short", overflow_run_short, "a run of 1 pages"},
    {"overflow value on a leaf page", overflow_not_overflow, "is not an overflow page"},
    {"DUPSORT sub-DB", subdb_dupsort, "sub-DB \"items\": flags 0x4"},
    {"entry count", entries_off, "entries in its pages"},
    {"page number", page_number_wrong, "says it is page"},
};

/* ==== fixture ======================================================== */

/* The temporary directory and the valid model in it. */
static struct {
    char dir[64];
    char path[128];
} dir;
static struct file good;

static int spit(const char *path, const void *b, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return -1;
    size_t n = fwrite(b, 1, len, f);
    return fclose(f) == 0 && n == len ? 0 : -1;
}

/* Writes the model and reads its bytes into @good. */
static int setup(void)
{
    static struct source src;
    struct err e = {0};
    strcpy(dir.dir, "/tmp/recsys-test-XXXXXX");
    if (mkdtemp(dir.dir) == NULL)
        return -1;
    snprintf(dir.path, sizeof(dir.path), "%s/good.lmdb", dir.dir);
    source_init(&src);
    if (model_write(dir.path, &src.src, &e) != 0) {
        fprintf(stderr, "model_write: %s\n", e.msg);
        return -1;
    }
    FILE *f = fopen(dir.path, "rb");
    struct stat st;
    if (f == NULL || fstat(fileno(f), &st) != 0)
        return -1;
    good.len = (size_t)st.st_size;
    good.b = malloc(good.len);
    int ok = good.b != NULL && fread(good.b, 1, good.len, f) == good.len;
    fclose(f);
    good.psize = ok ? rd64(page(&good, 0) + META_PSIZE) & 0xffffffffu : 0;
    return ok ? 0 : -1;
}

/* ==== tests ========================================================== */

static void test_valid_model_passes(void)
{
    struct err e = {0};
    struct model *m;
    CHECK_OK(lmdbcheck_path(dir.path, &e));
    CHECK_OK(model_open(dir.path, 1, &m, &e));
    model_close(m);
}

/* The layout the damage relies on: two-level trees, overflow matrices. */
static void test_fixture_shape(void)
{
    CHECK(good.psize == 4096);
    CHECK(rd16(sub_root(&good, "items") + 10) == P_BRANCH);
    CHECK(rd16(sub_root(&good, "users") + 10) == P_BRANCH);
    CHECK(rd16(sub_root(&good, "meta") + 10) == P_LEAF);
    uint8_t *n = sub_root(&good, "meta");
    for (unsigned i = 0; i < nkeys(n); i++)
        if (memcmp(node(n, i) + 8, "item_matrix", 11) == 0)
            CHECK(rd16(node(n, i) + 4) == 0x01); /* F_BIGDATA */
}

static void test_damage_refused(void)
{
    char path[sizeof(dir.path)];
    snprintf(path, sizeof(path), "%s/damaged.lmdb", dir.dir);
    uint8_t *b = malloc(good.len);
    CHECK(b != NULL);
    for (size_t i = 0; i < sizeof(damages) / sizeof(damages[0]); i++) {
        struct file f = {b, good.len, good.psize};
        memcpy(b, good.b, good.len);
        damages[i].patch(&f);
        int w = spit(path, b, good.len);
        struct err e = {0};
        struct model *m = (struct model *)&e;
        int rc = w == 0 ? lmdbcheck_path(path, &e) : -1;
        if (rc != ERR_FORMAT || strstr(e.msg, damages[i].want) == NULL)
            fprintf(stderr, "damage \"%s\": rc %d, \"%s\"\n", damages[i].name, rc, e.msg);
        CHECK_RC(rc, ERR_FORMAT);
        CHECK_STR_HAS(e.msg, damages[i].want);

        CHECK_RC(model_open(path, 1, &m, &e), ERR_FORMAT);
        CHECK(m == NULL);
        CHECK(strncmp(e.msg, path, strlen(path)) == 0);
        CHECK_STR_HAS(e.msg, damages[i].want);
    }
    free(b);
}

/* LMDB ignores the meta page with the lower txnid, and so does the check. */
static void test_older_meta_ignored(void)
{
    char path[sizeof(dir.path)];
    snprintf(path, sizeof(path), "%s/old-meta.lmdb", dir.dir);
    uint8_t *b = malloc(good.len);
    CHECK(b != NULL);
    memcpy(b, good.b, good.len);
    struct file f = {b, good.len, good.psize};
    wr64(older_meta(&f) + META_MAIN + DB_ROOT, 1);
    int w = spit(path, b, good.len);
    free(b);
    CHECK(w == 0);
    struct err e = {0};
    struct model *m;
    CHECK_OK(lmdbcheck_path(path, &e));
    CHECK_OK(model_open(path, 1, &m, &e));
    model_close(m);
}

static void test_short_file(void)
{
    char path[sizeof(dir.path)];
    snprintf(path, sizeof(path), "%s/short.lmdb", dir.dir);
    CHECK(spit(path, good.b, 100) == 0);
    struct err e = {0};
    CHECK_RC(lmdbcheck_path(path, &e), ERR_FORMAT);
    CHECK_STR_HAS(e.msg, "shorter than a meta page");
    CHECK(spit(path, good.b, good.psize + 64) == 0);
    CHECK_RC(lmdbcheck_path(path, &e), ERR_FORMAT);
    CHECK_STR_HAS(e.msg, "shorter than two meta pages");
}

static void test_missing_file(void)
{
    struct err e = {0};
    char path[sizeof(dir.path)];
    snprintf(path, sizeof(path), "%s/absent.lmdb", dir.dir);
    CHECK_RC(lmdbcheck_path(path, &e), -ENOENT);
}

int main(int argc, char **argv)
{
    static const struct check_case cases[] = {
        CHECK_CASE(test_valid_model_passes), CHECK_CASE(test_fixture_shape),
        CHECK_CASE(test_damage_refused),     CHECK_CASE(test_older_meta_ignored),
        CHECK_CASE(test_short_file),         CHECK_CASE(test_missing_file),
    };
    if (setup() != 0) {
        fprintf(stderr, "failed to write the test model\n");
        served_rmdir(dir.dir);
        return 1;
    }
    int rc = check_main(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
    free(good.b);
    served_rmdir(dir.dir);
    return rc;
}
