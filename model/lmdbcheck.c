/*
 * lmdbcheck: the LMDB 0.9.24 on-disk structure, checked before LMDB reads it.
 *
 * The layout checked (64-bit build, native little-endian; offsets in bytes):
 *
 *   Page header, 16 bytes (PAGEHDRSZ) at the start of every page:
 *     0 pgno (u64, the page's own number)   8 pad (u16)   10 flags (u16)
 *     12 lower (u16)  14 upper (u16) -- or, on an overflow page, 12 the
 *     number of pages in its run (u32).
 *     Flags: P_BRANCH 0x01, P_LEAF 0x02, P_OVERFLOW 0x04, P_META 0x08;
 *     anything else (P_DIRTY, P_LEAF2, P_SUBP, ...) never reaches a file
 *     recsysd writes. A branch or leaf page has (lower - 16) / 2 nodes,
 *     the u16 node offsets at 16 .. lower; node bodies lie in upper .. psize.
 *
 *   Meta pages 0 and 1 (page 1 at the page size that page 0 gives), after
 *   the header: 0 magic 0xBEEFC0DE (u32), 4 data version 1 (u32),
 *   8 address, 16 map size, 24 the free DB, 72 the main DB (48-byte DB
 *   records), 120 last page in use (u64), 128 txnid (u64). The free DB's
 *   md_pad holds the page size. LMDB uses the meta with the higher txnid,
 *   page 0 on a tie.
 *
 *   DB record, 48 bytes: 0 pad (u32), 4 flags (u16), 6 depth (u16),
 *   8 branch, 16 leaf, 24 overflow page counts, 32 entries, 40 root
 *   (all u64). An empty DB has root P_INVALID (all ones) and depth 0.
 *
 *   Node, 8-byte header (NODESIZE) at an even offset, then the key, then
 *   (leaf only) the value: 0 lo (u16), 2 hi (u16), 4 flags (u16),
 *   6 key size (u16). On a branch node lo | hi << 16 | flags << 32 is the
 *   child page. On a leaf lo | hi << 16 is the value size; flag F_BIGDATA
 *   (0x01) stores the value in an overflow run whose first page number
 *   (u64) is the inline value, F_SUBDATA (0x02) makes the value a DB record
 *   of a named sub-DB, F_DUPDATA (0x04) belongs to DUPSORT, which recsysd
 *   never uses. An overflow run holds 16 header bytes and the value:
 *   (16 + size - 1) / psize + 1 pages at least.
 *
 * LMDB itself asserts that a branch page of a named DB has two keys or more,
 * and its cursor stack holds 32 pages, so no tree is deeper. Keys are at
 * most 511 bytes (MDB_MAXKEYSIZE); a leaf key is never empty.
 *
 * Each tree page is read once with pread into a buffer of its tree level;
 * an overflow run costs one 16-byte read of its header. A bitmap over the
 * pages in use refuses a page reached twice, which also ends any loop.
 */
#include "model/lmdbcheck.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
    PAGEHDRSZ = 16,
    PH_PGNO = 0,
    PH_FLAGS = 10,
    PH_LOWER = 12,
    PH_UPPER = 14,
    PH_PAGES = 12,

    P_BRANCH = 0x01,
    P_LEAF = 0x02,
    P_OVERFLOW = 0x04,
    P_META = 0x08,

    /* the meta record, relative to the end of the page header */
    M_MAGIC = 0,
    M_VERSION = 4,
    M_FREE_DB = 24,
    M_MAIN_DB = 72,
    M_LAST_PG = 120,
    M_TXNID = 128,
    META_END = PAGEHDRSZ + 136,

    DB_PAD = 0,
    DB_FLAGS = 4,
    DB_DEPTH = 6,
    DB_ENTRIES = 32,
    DB_ROOT = 40,
    DB_SIZE = 48,

    NODESIZE = 8,
    N_LO = 0,
    N_HI = 2,
    N_FLAGS = 4,
    N_KSIZE = 6,

    F_BIGDATA = 0x01,
    F_SUBDATA = 0x02,
    F_DUPDATA = 0x04,

    NUM_METAS = 2,
    MIN_PSIZE = 512,
    MAX_PSIZE = 0x8000, /* MAX_PAGESIZE of a non-MDB_DEVEL build */
    MAX_DEPTH = 32,     /* LMDB's CURSOR_STACK */
    MAX_KEY = 511,
    NAME_MAX_SHOWN = 48,
};

#define MDB_MAGIC        0xBEEFC0DEu
#define MDB_DATA_VERSION 1u
#define P_INVALID        UINT64_MAX

struct db {
    uint16_t flags;
    uint16_t depth;
    uint64_t entries;
    uint64_t root;
};

/* A tree being walked. */
struct tree {
    const char *name; /* for messages: "main DB" or sub-DB "items" */
    struct db db;
    int is_main;     /* the main DB holds sub-DB records, a sub-DB values */
    uint8_t *bufs;   /* one page per level, the root's first */
    uint64_t leaves; /* leaf nodes seen, against db.entries */
};

struct walk {
    int fd;
    struct err *e;
    uint64_t file_size;
    uint64_t psize;
    uint64_t last_pg;
    int live;      /* lmdbcheck_live: a written-to environment, not a file written once */
    uint8_t *seen; /* bitmap over pages 0 .. last_pg */
};

static const struct {
    uint16_t flag;
    const char *name;
} node_flag_names[] = {
    {F_BIGDATA, "F_BIGDATA"},
    {F_SUBDATA, "F_SUBDATA (a nested sub-DB)"},
    {F_DUPDATA, "F_DUPDATA (DUPSORT data, which recsysd never writes)"},
};

/* ==== raw access ===================================================== */

static uint16_t get16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static struct db get_db(const uint8_t *p)
{
    return (struct db){.flags = get16(p + DB_FLAGS),
                       .depth = get16(p + DB_DEPTH),
                       .entries = get64(p + DB_ENTRIES),
                       .root = get64(p + DB_ROOT)};
}

/* Reads @len bytes at @off, which the caller has checked lie in the file. */
static int read_at(const struct walk *w, uint64_t off, size_t len, uint8_t *buf)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(w->fd, buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return err_set(w->e, -errno, "failed to read the file (%s)", strerror(errno));
        if (n == 0)
            return err_set(w->e, ERR_FORMAT, "the file shrank while being checked");
        done += (size_t)n;
    }
    return 0;
}

/* Marks pages [pgno, pgno + n) as reached; refuses one reached before. The
 * caller has checked the range against last_pg. */
static int mark(struct walk *w, uint64_t pgno, uint64_t n)
{
    for (uint64_t p = pgno; p < pgno + n; p++) {
        uint8_t bit = (uint8_t)(1u << (p % 8));
        if (w->seen[p / 8] & bit)
            return err_set(w->e, ERR_FORMAT, "page %llu is reached twice", (unsigned long long)p);
        w->seen[p / 8] |= bit;
    }
    return 0;
}

/* ==== meta pages ===================================================== */

/* The checks LMDB makes on each meta page as it reads it; a file that
 * fails them is not LMDB at all. */
static int check_meta_id(const struct walk *w, unsigned i, const uint8_t *page)
{
    const uint8_t *m = page + PAGEHDRSZ;
    if (!(get16(page + PH_FLAGS) & P_META) || get32(m + M_MAGIC) != MDB_MAGIC)
        return err_set(w->e, ERR_FORMAT, "not an LMDB file (meta page %u has no LMDB magic)", i);
    if (get32(m + M_VERSION) != MDB_DATA_VERSION)
        return err_set(w->e, ERR_FORMAT,
                       "not an LMDB file of this version (meta page %u: data version %u, "
                       "expected %u)",
                       i, get32(m + M_VERSION), MDB_DATA_VERSION);
    return 0;
}

static int check_psize(const struct walk *w, unsigned i, uint64_t psize)
{
    if (psize < MIN_PSIZE || psize > MAX_PSIZE || (psize & (psize - 1)) != 0)
        return err_set(w->e, ERR_FORMAT,
                       "meta page %u: page size %llu is not a power of two in [%d, %d]", i,
                       (unsigned long long)psize, MIN_PSIZE, MAX_PSIZE);
    return 0;
}

/* A DB record's root and depth: a page past the metas and in use, or
 * P_INVALID with depth 0 and no entries. */
static int check_db_record(const struct walk *w, const char *name, const struct db *db)
{
    if (db->root == P_INVALID) {
        if (db->depth != 0 || db->entries != 0)
            return err_set(w->e, ERR_FORMAT, "%s: empty, but depth %u and %llu entries", name,
                           db->depth, (unsigned long long)db->entries);
        return 0;
    }
    if (db->root < NUM_METAS || db->root > w->last_pg)
        return err_set(w->e, ERR_FORMAT, "%s: root is page %llu, outside pages %d .. %llu", name,
                       (unsigned long long)db->root, NUM_METAS, (unsigned long long)w->last_pg);
    if (db->depth < 1 || db->depth > MAX_DEPTH)
        return err_set(w->e, ERR_FORMAT, "%s: depth %u outside 1 .. %d", name, db->depth,
                       MAX_DEPTH);
    return 0;
}

/* Reads and checks both meta pages, then sets the page size and last page
 * from the one LMDB will use and returns its main DB record in @main. */
static int check_metas(struct walk *w, struct db *main)
{
    uint8_t page[NUM_METAS][META_END];
    if (w->file_size < META_END)
        return err_set(w->e, ERR_FORMAT, "not an LMDB file (%llu bytes, shorter than a meta page)",
                       (unsigned long long)w->file_size);
    int rc = read_at(w, 0, META_END, page[0]);
    if (rc == 0)
        rc = check_meta_id(w, 0, page[0]);
    if (rc != 0)
        return rc;
    uint64_t psize = get32(page[0] + PAGEHDRSZ + M_FREE_DB + DB_PAD);
    if ((rc = check_psize(w, 0, psize)) != 0)
        return rc;
    if (w->file_size < psize + META_END)
        return err_set(w->e, ERR_FORMAT, "truncated: %llu bytes, shorter than two meta pages",
                       (unsigned long long)w->file_size);
    if ((rc = read_at(w, psize, META_END, page[1])) != 0 ||
        (rc = check_meta_id(w, 1, page[1])) != 0)
        return rc;
    uint64_t psize1 = get32(page[1] + PAGEHDRSZ + M_FREE_DB + DB_PAD);
    if (psize1 != psize)
        return err_set(w->e, ERR_FORMAT, "meta page 1: page size %llu, meta page 0 says %llu",
                       (unsigned long long)psize1, (unsigned long long)psize);

    unsigned cur = get64(page[1] + PAGEHDRSZ + M_TXNID) > get64(page[0] + PAGEHDRSZ + M_TXNID);
    const uint8_t *m = page[cur] + PAGEHDRSZ;
    uint64_t last = get64(m + M_LAST_PG);
    if (last < NUM_METAS - 1)
        return err_set(w->e, ERR_FORMAT, "meta page %u: last page %llu, before the meta pages end",
                       cur, (unsigned long long)last);
    /* The message is the one model_open gave before this check existed;
     * an absurd last page reads as the largest size. */
    uint64_t need;
    if (last == UINT64_MAX || __builtin_mul_overflow(last + 1, psize, &need))
        need = UINT64_MAX;
    /* A live environment's last page may be one a transaction allocated
     * and freed again before its commit, never written: the file ends
     * before it. Then only the pages the file holds may be reached. */
    if (need > w->file_size && w->live && w->file_size / psize > NUM_METAS)
        last = w->file_size / psize - 1;
    else if (need > w->file_size)
        return err_set(w->e, ERR_FORMAT, "truncated: %llu bytes, the database needs %llu",
                       (unsigned long long)w->file_size, (unsigned long long)need);
    w->psize = psize;
    w->last_pg = last;
    struct db free_db = get_db(m + M_FREE_DB);
    *main = get_db(m + M_MAIN_DB);
    char name[32];
    snprintf(name, sizeof(name), "meta page %u: free DB", cur);
    if ((rc = check_db_record(w, name, &free_db)) != 0)
        return rc;
    snprintf(name, sizeof(name), "meta page %u: main DB", cur);
    if ((rc = check_db_record(w, name, main)) != 0)
        return rc;
    if (main->flags != 0)
        return err_set(w->e, ERR_FORMAT, "%s: flags 0x%x, recsysd writes none", name, main->flags);
    return 0;
}

/* ==== tree pages ===================================================== */

static int walk_tree(struct walk *w, struct tree *t);

/* A node, named in messages as "<tree>: page <pgno>: node <i>". */
struct spot {
    const struct tree *t;
    uint64_t pgno;
    unsigned i;
};

static int node_fail(const struct walk *w, const struct spot *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records "<tree>: page <pgno>: node <i>: <problem>" as ERR_FORMAT. The
 * text is built only on failure: nodes are many. */
static int node_fail(const struct walk *w, const struct spot *at, const char *fmt, ...)
{
    char problem[sizeof(w->e->msg)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(problem, sizeof(problem), fmt, ap);
    va_end(ap);
    return err_set(w->e, ERR_FORMAT, "%s: page %llu: node %u: %s", at->t->name,
                   (unsigned long long)at->pgno, at->i, problem);
}

/* Checks overflow run @pgno, which holds a @size-byte value, and marks its
 * pages: only its header is read. */
static int check_overflow(struct walk *w, const struct spot *at, uint64_t pgno, uint64_t size)
{
    uint8_t hdr[PAGEHDRSZ];
    if (pgno < NUM_METAS || pgno > w->last_pg)
        return node_fail(w, at, "overflow page %llu outside pages %d .. %llu",
                         (unsigned long long)pgno, NUM_METAS, (unsigned long long)w->last_pg);
    int rc = read_at(w, pgno * w->psize, sizeof(hdr), hdr);
    if (rc != 0)
        return rc;
    uint64_t pages = get32(hdr + PH_PAGES);
    uint64_t need = (PAGEHDRSZ - 1 + size) / w->psize + 1;
    if (get64(hdr + PH_PGNO) != pgno || get16(hdr + PH_FLAGS) != P_OVERFLOW)
        return node_fail(w, at, "page %llu is not an overflow page (flags 0x%x)",
                         (unsigned long long)pgno, get16(hdr + PH_FLAGS));
    if (pages < need || pages > w->last_pg - pgno + 1)
        return node_fail(w, at,
                         "overflow page %llu: a run of %llu pages, the %llu-byte value needs "
                         "%llu and pages end at %llu",
                         (unsigned long long)pgno, (unsigned long long)pages,
                         (unsigned long long)size, (unsigned long long)need,
                         (unsigned long long)w->last_pg);
    return mark(w, pgno, pages);
}

/* Writes a printable form of sub-DB name @key into @out. */
static void sub_name(char *out, size_t cap, const uint8_t *key, unsigned ksize)
{
    char shown[NAME_MAX_SHOWN + 1];
    unsigned n = ksize < NAME_MAX_SHOWN ? ksize : NAME_MAX_SHOWN;
    for (unsigned i = 0; i < n; i++)
        shown[i] = key[i] >= 0x20 && key[i] < 0x7f ? (char)key[i] : '?';
    shown[n] = '\0';
    snprintf(out, cap, "sub-DB \"%s\"", shown);
}

/* The first flag of @bad that has a name, for the message. */
static const char *flag_name(uint16_t bad)
{
    for (size_t i = 0; i < sizeof(node_flag_names) / sizeof(node_flag_names[0]); i++)
        if (bad & node_flag_names[i].flag)
            return node_flag_names[i].name;
    return "an unknown flag";
}

/* Leaf node @i of page @pgno, at @node with @room bytes to the page end:
 * its key and inline value lie in the page; a sub-DB record in the main DB
 * is walked in turn, an overflow value's run is checked. */
static int check_leaf_node(struct walk *w, struct tree *t, uint64_t pgno, unsigned i,
                           const uint8_t *node, uint64_t room)
{
    const struct spot at = {t, pgno, i};
    uint16_t flags = get16(node + N_FLAGS), ksize = get16(node + N_KSIZE);
    uint64_t size = get16(node + N_LO) | (uint64_t)get16(node + N_HI) << 16;
    /* Sub-DB records (inline) belong in the main DB only. Plain values are
     * let through there too, so that model_open names a foreign LMDB file
     * for what it is. */
    uint16_t allowed = t->is_main && (flags & F_SUBDATA) ? F_SUBDATA : F_BIGDATA;
    if (flags & ~allowed)
        return node_fail(w, &at, "flags 0x%x: %s", flags, flag_name(flags & ~allowed));
    if (ksize < 1 || ksize > MAX_KEY)
        return node_fail(w, &at, "key of %u bytes, outside 1 .. %d", ksize, MAX_KEY);
    uint64_t inline_size = flags & F_BIGDATA ? sizeof(uint64_t) : size;
    if (NODESIZE + ksize + inline_size > room)
        return node_fail(w, &at, "key and value of %llu bytes run past the page",
                         (unsigned long long)(ksize + inline_size));
    const uint8_t *data = node + NODESIZE + ksize;
    t->leaves++;
    if (flags & F_BIGDATA)
        return check_overflow(w, &at, get64(data), size);
    if (!(flags & F_SUBDATA))
        return 0;

    if (size != DB_SIZE)
        return node_fail(w, &at, "sub-DB record of %llu bytes, not %d", (unsigned long long)size,
                         DB_SIZE);
    char name[NAME_MAX_SHOWN + 16];
    sub_name(name, sizeof(name), node + NODESIZE, ksize);
    struct tree sub = {.name = name, .db = get_db(data), .is_main = 0};
    if (sub.db.flags != 0)
        return err_set(w->e, ERR_FORMAT, "%s: flags 0x%x, recsysd writes none", name, sub.db.flags);
    int rc = check_db_record(w, name, &sub.db);
    return rc != 0 ? rc : walk_tree(w, &sub);
}

/* Branch node @i of page @pgno, at @node with @room bytes to the page end:
 * its key lies in the page and its child, set in @child, is a page in use. */
static int check_branch_node(const struct walk *w, const struct tree *t, uint64_t pgno, unsigned i,
                             const uint8_t *node, uint64_t room, uint64_t *child)
{
    const struct spot at = {t, pgno, i};
    uint16_t ksize = get16(node + N_KSIZE);
    *child = get16(node + N_LO) | (uint64_t)get16(node + N_HI) << 16 |
             (uint64_t)get16(node + N_FLAGS) << 32;
    if (ksize > MAX_KEY || NODESIZE + (uint64_t)ksize > room)
        return node_fail(w, &at, "key of %u bytes does not fit", ksize);
    if (*child < NUM_METAS || *child > w->last_pg)
        return node_fail(w, &at, "child page %llu outside %d .. %llu", (unsigned long long)*child,
                         NUM_METAS, (unsigned long long)w->last_pg);
    return 0;
}

/* The header of page @pgno, read into @p at tree level @level (the root is
 * level 1): its number, its kind for its level, the node pointer array
 * between the header and the node area. Sets @nkeys. */
static int check_header(const struct walk *w, const struct tree *t, uint64_t pgno, const uint8_t *p,
                        unsigned level, unsigned *nkeys)
{
    uint16_t flags = get16(p + PH_FLAGS), lower = get16(p + PH_LOWER), upper = get16(p + PH_UPPER);
    const char *name = t->name;
    unsigned long long n = pgno;
    if (get64(p + PH_PGNO) != pgno)
        return err_set(w->e, ERR_FORMAT, "%s: page %llu says it is page %llu", name, n,
                       (unsigned long long)get64(p + PH_PGNO));
    if (flags != P_BRANCH && flags != P_LEAF)
        return err_set(w->e, ERR_FORMAT,
                       "%s: page %llu: flags 0x%x, expected a branch (0x%x) or leaf (0x%x) page",
                       name, n, flags, P_BRANCH, P_LEAF);
    if ((flags == P_LEAF) != (level == t->db.depth))
        return err_set(w->e, ERR_FORMAT, "%s: page %llu: a %s at level %u of a DB of depth %u",
                       name, n, flags == P_LEAF ? "leaf" : "branch", level, t->db.depth);
    if (lower < PAGEHDRSZ || lower > upper || upper > w->psize || (lower - PAGEHDRSZ) % 2 != 0)
        return err_set(w->e, ERR_FORMAT,
                       "%s: page %llu: lower %u, upper %u: not %d <= lower <= upper <= %llu", name,
                       n, lower, upper, PAGEHDRSZ, (unsigned long long)w->psize);
    *nkeys = (lower - PAGEHDRSZ) / 2;
    /* LMDB asserts on a named DB's branch page with fewer than two keys;
     * an empty leaf never outlives the transaction that emptied it. */
    unsigned least = flags == P_BRANCH ? 2 : 1;
    if (*nkeys < least)
        return err_set(w->e, ERR_FORMAT, "%s: page %llu: %u keys on a %s page, at least %u", name,
                       n, *nkeys, flags == P_LEAF ? "leaf" : "branch", least);
    return 0;
}

/* Page @pgno at tree level @level, then what its nodes lead to. The
 * depth is at most MAX_DEPTH, which bounds the recursion. */
static int check_page(struct walk *w, struct tree *t, uint64_t pgno, unsigned level)
{
    uint8_t *p = t->bufs + (size_t)(level - 1) * w->psize;
    unsigned nkeys = 0;
    int rc = mark(w, pgno, 1);
    if (rc == 0)
        rc = read_at(w, pgno * w->psize, w->psize, p);
    if (rc == 0)
        rc = check_header(w, t, pgno, p, level, &nkeys);
    if (rc != 0)
        return rc;
    uint16_t upper = get16(p + PH_UPPER);
    int leaf = get16(p + PH_FLAGS) == P_LEAF;
    for (unsigned i = 0; rc == 0 && i < nkeys; i++) {
        uint64_t off = get16(p + PAGEHDRSZ + 2 * i), child;
        if (off < upper || off % 2 != 0 || off + NODESIZE > w->psize)
            return err_set(w->e, ERR_FORMAT,
                           "%s: page %llu: node %u offset %llu outside the node area %u .. %llu",
                           t->name, (unsigned long long)pgno, i, (unsigned long long)off, upper,
                           (unsigned long long)w->psize);
        if (leaf)
            rc = check_leaf_node(w, t, pgno, i, p + off, w->psize - off);
        else if ((rc = check_branch_node(w, t, pgno, i, p + off, w->psize - off, &child)) == 0)
            rc = check_page(w, t, child, level + 1);
    }
    return rc;
}

/* Every page of tree @t, then its entry count against its DB record. */
static int walk_tree(struct walk *w, struct tree *t)
{
    if (t->db.root == P_INVALID)
        return 0;
    t->bufs = malloc((size_t)t->db.depth * w->psize);
    if (t->bufs == NULL)
        return err_set(w->e, -ENOMEM, "out of memory for %u pages", t->db.depth);
    int rc = check_page(w, t, t->db.root, 1);
    if (rc == 0 && t->leaves != t->db.entries)
        rc = err_set(w->e, ERR_FORMAT, "%s: %llu entries in its pages, its record says %llu",
                     t->name, (unsigned long long)t->leaves, (unsigned long long)t->db.entries);
    free(t->bufs);
    return rc;
}

/* ==== entry points =================================================== */

static int check_fd(int fd, int live, struct err *e)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return err_set(e, -errno, "failed to stat the file (%s)", strerror(errno));
    struct walk w = {.fd = fd, .e = e, .file_size = (uint64_t)st.st_size, .live = live};
    struct tree main = {.name = "main DB", .is_main = 1};
    int rc = check_metas(&w, &main.db);
    if (rc != 0)
        return rc;
    w.seen = calloc(w.last_pg / 8 + 1, 1);
    if (w.seen == NULL)
        return err_set(e, -ENOMEM, "out of memory for a map of %llu pages",
                       (unsigned long long)w.last_pg + 1);
    if ((rc = mark(&w, 0, NUM_METAS)) == 0)
        rc = walk_tree(&w, &main);
    free(w.seen);
    return rc;
}

int lmdbcheck_fd(int fd, struct err *e)
{
    return check_fd(fd, 0, e);
}

static int check_path(const char *path, int live, struct err *e)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set(e, -errno, "%s", strerror(errno));
    int rc = check_fd(fd, live, e);
    close(fd);
    return rc;
}

int lmdbcheck_path(const char *path, struct err *e)
{
    return check_path(path, 0, e);
}

int lmdbcheck_live(const char *path, struct err *e)
{
    return check_path(path, 1, e);
}
