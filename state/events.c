/*
 * events: the store's records, its writer thread and its readers.
 *
 * Records (all integers big-endian where they are part of a key, so LMDB's
 * byte order is their numeric order):
 *
 *   events   key   u16 user length | user | u64 time ms | u64 seq
 *            value u8 type | u8 0 | u16 item length (LE) | f32 weight (LE) | item
 *   bytime   key   u8 type | u64 time ms | u64 seq
 *            value the events key
 *   users    key   user
 *            value u32 events held (LE)
 *   meta     "format" u32 1; "seq" u64 the next sequence number;
 *            "compacted" i64 the last compaction's time (LE)
 *
 * A user's events are one key range of `events`, in time order, so a read
 * is one B-tree descent and a walk. `bytime` orders them by type and time:
 * compaction and the view TTL walk it from its start and stop at the first
 * event too recent. `users` counts each user's events, which bounds them.
 * The sequence number makes every key unique and keeps events of the same
 * millisecond in the order recorded.
 */
#define _GNU_SOURCE
#include "state/events.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "model/lmdbcheck.h"

const char *const events_type_names[EVENTS_TYPES] = {NULL, "purchase", "view", "refund"};

#define FORMAT_VERSION 1u
/* Readers beyond the serving slots: events_stats, and room for tools. */
#define EXTRA_READERS 16u
/* Deletions per write transaction when compacting or expiring: a chunk
 * holds the writer, and so the submissions waiting, for a few ms at most. */
#define DELETE_CHUNK 2048u
/* How often the writer looks for views past their TTL. */
#define EXPIRE_EVERY_MS 60000u

enum db { DB_EVENTS, DB_BYTIME, DB_USERS, DB_META, DB_COUNT };
static const char *const db_names[DB_COUNT] = {"events", "bytime", "users", "meta"};

#define EV_KEY_MAX   (2 + EVENTS_ID_MAX + 16)
#define EV_VALUE_HDR 8
#define BT_KEY       17

enum job_kind { JOB_RECORD, JOB_FORGET };

/* One submission, with its events and ids in one allocation. */
struct job {
    struct job *next;
    enum job_kind kind;
    events_done_fn done;
    void *arg;
    size_t bytes; /* its share of the queue bound */
    uint32_t n;
    struct events_event *list; /* JOB_RECORD: n events; JOB_FORGET: the user in list[0] */
    struct events_outcome outcome;
    uint64_t stored[EVENTS_TYPES]; /* what it changed, applied to the counters on commit */
    char why[160];
};

struct events {
    MDB_env *env;
    MDB_dbi dbi[DB_COUNT];
    MDB_txn **readers; /* one per slot, reset between reads */
    unsigned slots;
    struct events_opts opts;
    char *dir;
    size_t psize;
    int lock_fd; /* DIR/recsysd.lock, flocked: one daemon per state */

    pthread_t writer;
    bool running;
    pthread_mutex_t lock; /* guards the queue and the fields below it */
    pthread_cond_t wake;
    struct job *head, *tail;
    size_t queued_bytes;
    bool stopping;
    int64_t compact_want; /* events_compact's latest */

    /* Writer-owned, read by events_stats. */
    _Atomic uint64_t stored[EVENTS_TYPES], recorded[EVENTS_TYPES];
    _Atomic uint64_t forgotten, compacted, expired, commits, used_bytes, file_bytes;
    _Atomic int64_t compacted_through;
    uint64_t next_seq; /* writer only, after open */
};

/* ---- encoding ------------------------------------------------------------ */

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

/* user_prefix - the events key's user part into @k; returns its length. */
static size_t user_prefix(uint8_t *k, const char *user, size_t len)
{
    k[0] = (uint8_t)(len >> 8);
    k[1] = (uint8_t)len;
    memcpy(k + 2, user, len);
    return 2 + len;
}

static size_t event_key(uint8_t *k, const struct events_event *ev, uint64_t seq)
{
    size_t at = user_prefix(k, ev->user, ev->user_len);
    put_be64(k + at, (uint64_t)ev->time_ms);
    put_be64(k + at + 8, seq);
    return at + 16;
}

static void bytime_key(uint8_t *k, enum events_type type, int64_t time_ms, uint64_t seq)
{
    k[0] = (uint8_t)type;
    put_be64(k + 1, (uint64_t)time_ms);
    put_be64(k + 9, seq);
}

/* A decoded events record; its pointers are into LMDB's map. */
struct record {
    const uint8_t *user;
    uint32_t user_len;
    int64_t time_ms;
    uint64_t seq;
    enum events_type type;
    float weight;
    const uint8_t *item;
    uint32_t item_len;
};

/* decode - check and read one events record; 0 or ERR_FORMAT. Every
 * record is checked when the store opens, and the writer writes only
 * valid ones, so readers after that use it only to take the fields. */
static int decode(const MDB_val *k, const MDB_val *v, struct record *r)
{
    const uint8_t *kp = k->mv_data, *vp = v->mv_data;
    if (k->mv_size < 2 + 1 + 16)
        return ERR_FORMAT;
    r->user_len = (uint32_t)kp[0] << 8 | kp[1];
    if (r->user_len == 0 || r->user_len > EVENTS_ID_MAX || k->mv_size != 2 + r->user_len + 16)
        return ERR_FORMAT;
    r->user = kp + 2;
    r->time_ms = (int64_t)get_be64(kp + 2 + r->user_len);
    r->seq = get_be64(kp + 2 + r->user_len + 8);
    if (v->mv_size < EV_VALUE_HDR + 1)
        return ERR_FORMAT;
    r->type = vp[0];
    r->item_len = (uint32_t)vp[2] | (uint32_t)vp[3] << 8;
    uint32_t wbits = get_le32(vp + 4);
    memcpy(&r->weight, &wbits, sizeof(r->weight));
    r->item = vp + EV_VALUE_HDR;
    if (r->type < EVENTS_PURCHASE || r->type >= EVENTS_TYPES || vp[1] != 0 || r->time_ms < 0 ||
        r->item_len == 0 || r->item_len > EVENTS_ID_MAX ||
        v->mv_size != EV_VALUE_HDR + r->item_len || !isfinite(r->weight) || !(r->weight > 0))
        return ERR_FORMAT;
    return 0;
}

/* ---- reads --------------------------------------------------------------- */

int events_user(struct events *ev, unsigned slot, const char *user, size_t len, struct arena *a,
                struct events_event **out, uint32_t *n, struct err *e)
{
    *out = NULL;
    *n = 0;
    if (len == 0 || len > EVENTS_ID_MAX)
        return 0;
    MDB_txn *txn = ev->readers[slot];
    int rc = mdb_txn_renew(txn);
    if (rc != 0)
        return err_set(e, rc, "state: cannot begin a read (%s)", mdb_strerror(rc));
    MDB_cursor *cur;
    rc = mdb_cursor_open(txn, ev->dbi[DB_EVENTS], &cur);
    if (rc != 0) {
        mdb_txn_reset(txn);
        return err_set(e, rc, "state: cannot read (%s)", mdb_strerror(rc));
    }
    uint8_t prefix[2 + EVENTS_ID_MAX];
    size_t plen = user_prefix(prefix, user, len);
    MDB_val k = {plen, prefix}, v;
    /* A user's events are few (EVENTS_USER_MAX at most); the array grows
     * by doubling in the arena, which a call resets anyway. */
    uint32_t cap = 0, count = 0;
    struct events_event *list = NULL;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0 || count == EVENTS_USER_MAX)
            break;
        struct record r;
        if (decode(&k, &v, &r) != 0 || r.user_len != len) {
            rc = ERR_FORMAT;
            break;
        }
        if (count == cap) {
            uint32_t ncap = cap ? cap * 2 : 16;
            struct events_event *grown = arena_alloc(a, (size_t)ncap * sizeof(*grown));
            if (grown == NULL) {
                rc = -ENOMEM;
                break;
            }
            if (count > 0)
                memcpy(grown, list, (size_t)count * sizeof(*list));
            list = grown;
            cap = ncap;
        }
        struct events_event *x = &list[count];
        x->user = user;
        x->user_len = (uint32_t)len;
        x->item = arena_strndup(a, (const char *)r.item, r.item_len);
        if (x->item == NULL) {
            rc = -ENOMEM;
            break;
        }
        x->item_len = r.item_len;
        x->type = r.type;
        x->weight = r.weight;
        x->time_ms = r.time_ms;
        count++;
    }
    mdb_cursor_close(cur);
    mdb_txn_reset(txn);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return rc == -ENOMEM ? err_set(e, rc, "state: out of memory for a user's events")
               : rc == ERR_FORMAT
                   ? err_set(e, rc, "state: a damaged event record of user '%.*s'", (int)len, user)
                   : err_set(e, rc, "state: cannot read (%s)", mdb_strerror(rc));
    *out = list;
    *n = count;
    return 0;
}

/* ---- the writer: applying a submission ----------------------------------- */

static int fail_job(struct job *j, int rc, const char *fmt, const char *detail)
{
    snprintf(j->why, sizeof(j->why), fmt, detail);
    return rc;
}

/* A failed put or delete: the state full, or something worse. */
static int write_failed(struct job *j, int rc)
{
    if (rc == MDB_MAP_FULL)
        return fail_job(j, ERR_TOO_BIG, "%s", "the state is full (--state-max-bytes)");
    return fail_job(j, rc, "state: a write failed (%s)", mdb_strerror(rc));
}

static int user_count(MDB_txn *txn, MDB_dbi dbi, const void *user, size_t len, uint32_t *count)
{
    MDB_val k = {len, (void *)user}, v;
    int rc = mdb_get(txn, dbi, &k, &v);
    if (rc == MDB_NOTFOUND) {
        *count = 0;
        return 0;
    }
    if (rc == 0)
        *count = v.mv_size == 4 ? get_le32(v.mv_data) : 0;
    return rc;
}

static int set_user_count(MDB_txn *txn, MDB_dbi dbi, const void *user, size_t len, uint32_t count)
{
    MDB_val k = {len, (void *)user};
    if (count == 0)
        return mdb_del(txn, dbi, &k, NULL);
    uint8_t b[4];
    put_le32(b, count);
    MDB_val v = {4, b};
    return mdb_put(txn, dbi, &k, &v, 0);
}

/* The users of a submission are few and its events grouped by nobody in
 * particular: the count of each is read, raised and checked once per
 * event, which stays within the submission's nested transaction. */
static int record_apply(struct events *ev, MDB_txn *txn, struct job *j, uint64_t *seq)
{
    for (uint32_t i = 0; i < j->n; i++) {
        const struct events_event *x = &j->list[i];
        uint32_t held;
        int rc = user_count(txn, ev->dbi[DB_USERS], x->user, x->user_len, &held);
        if (rc != 0)
            return write_failed(j, rc);
        if (held >= EVENTS_USER_MAX) {
            snprintf(j->why, sizeof(j->why),
                     "user '%.*s' holds %u recorded events, the most kept until a model holds them",
                     (int)(x->user_len > 64 ? 64 : x->user_len), x->user, EVENTS_USER_MAX);
            return ERR_TOO_BIG;
        }
        uint8_t key[EV_KEY_MAX], value[EV_VALUE_HDR + EVENTS_ID_MAX], bt[BT_KEY];
        uint64_t s = (*seq)++;
        size_t klen = event_key(key, x, s);
        value[0] = (uint8_t)x->type;
        value[1] = 0;
        value[2] = (uint8_t)x->item_len;
        value[3] = (uint8_t)(x->item_len >> 8);
        uint32_t wbits;
        memcpy(&wbits, &x->weight, sizeof(wbits));
        put_le32(value + 4, wbits);
        memcpy(value + EV_VALUE_HDR, x->item, x->item_len);
        bytime_key(bt, x->type, x->time_ms, s);
        MDB_val k = {klen, key}, v = {EV_VALUE_HDR + x->item_len, value};
        MDB_val bk = {BT_KEY, bt}, bv = {klen, key};
        if ((rc = mdb_put(txn, ev->dbi[DB_EVENTS], &k, &v, MDB_NOOVERWRITE)) != 0 ||
            (rc = mdb_put(txn, ev->dbi[DB_BYTIME], &bk, &bv, MDB_NOOVERWRITE)) != 0 ||
            (rc = set_user_count(txn, ev->dbi[DB_USERS], x->user, x->user_len, held + 1)) != 0)
            return write_failed(j, rc);
        j->stored[x->type]++;
    }
    j->outcome.count = j->n;
    return 0;
}

/* delete_event - what goes with the events record at @k when it is
 * deleted: its bytime twin and its share of its user's count; @stored
 * counts it by type. The caller deletes the record itself. */
static int delete_event(struct events *ev, MDB_txn *txn, const MDB_val *k, const MDB_val *v,
                        uint64_t *stored)
{
    struct record r;
    if (decode(k, v, &r) != 0)
        return ERR_FORMAT;
    uint8_t bt[BT_KEY];
    bytime_key(bt, r.type, r.time_ms, r.seq);
    MDB_val bk = {BT_KEY, bt};
    uint32_t held;
    int rc = mdb_del(txn, ev->dbi[DB_BYTIME], &bk, NULL);
    if (rc == 0)
        rc = user_count(txn, ev->dbi[DB_USERS], r.user, r.user_len, &held);
    if (rc == 0)
        rc = set_user_count(txn, ev->dbi[DB_USERS], r.user, r.user_len, held > 0 ? held - 1 : 0);
    if (rc == 0)
        stored[r.type]++;
    return rc;
}

static int forget_apply(struct events *ev, MDB_txn *txn, struct job *j)
{
    const struct events_event *u = &j->list[0];
    uint8_t prefix[2 + EVENTS_ID_MAX];
    size_t plen = user_prefix(prefix, u->user, u->user_len);
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, ev->dbi[DB_EVENTS], &cur);
    if (rc != 0)
        return write_failed(j, rc);
    MDB_val k, v;
    uint32_t deleted = 0;
    /* Each step seeks again: after a delete that empties the last page,
     * LMDB's cursor has no current record to step from. */
    for (;;) {
        k = (MDB_val){plen, prefix};
        if ((rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE)) != 0)
            break;
        if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
            break;
        if ((rc = delete_event(ev, txn, &k, &v, j->stored)) != 0 ||
            (rc = mdb_cursor_del(cur, 0)) != 0)
            break;
        deleted++;
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return write_failed(j, rc);
    j->outcome.count = deleted;
    return 0;
}

/* ---- the writer: compaction and expiry ----------------------------------- */

/* sweep_type - delete up to *budget events of @type at or before
 * @through_ms, oldest first (delete_event, then the record itself);
 * *budget is lowered by those deleted, and @deleted counts them by type. */
static int sweep_type(struct events *ev, MDB_txn *txn, enum events_type type, int64_t through_ms,
                      unsigned *budget, uint64_t *deleted)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, ev->dbi[DB_BYTIME], &cur);
    if (rc != 0)
        return rc;
    uint8_t start[BT_KEY];
    bytime_key(start, type, 0, 0);
    MDB_val k, v;
    /* Seeking again each step, as forget_apply does. */
    while (*budget > 0) {
        k = (MDB_val){BT_KEY, start};
        if ((rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE)) != 0)
            break;
        const uint8_t *kp = k.mv_data;
        if (k.mv_size != BT_KEY || kp[0] != type || (int64_t)get_be64(kp + 1) > through_ms)
            break;
        /* The events key is copied out of the index's page, which the
         * deletion of its entry changes. */
        uint8_t key[EV_KEY_MAX];
        if (v.mv_size > sizeof(key)) {
            rc = ERR_FORMAT;
            break;
        }
        memcpy(key, v.mv_data, v.mv_size);
        MDB_val ek = {v.mv_size, key}, evv;
        if ((rc = mdb_get(txn, ev->dbi[DB_EVENTS], &ek, &evv)) != 0 ||
            (rc = delete_event(ev, txn, &ek, &evv, deleted)) != 0 ||
            (rc = mdb_del(txn, ev->dbi[DB_EVENTS], &ek, NULL)) != 0)
            break;
        (*budget)--;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* ---- the writer thread ----------------------------------------------------- */

static uint64_t pages_of(MDB_txn *txn, MDB_dbi dbi, size_t psize)
{
    MDB_stat st;
    if (mdb_stat(txn, dbi, &st) != 0)
        return 0;
    return (st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages) * psize;
}

/* note_size - the sizes events_stats reports, as of @txn (about to commit). */
static void note_size(struct events *ev, MDB_txn *txn)
{
    uint64_t used = pages_of(txn, 0, ev->psize);
    for (int d = 0; d < DB_COUNT; d++)
        used += pages_of(txn, ev->dbi[d], ev->psize);
    MDB_envinfo info;
    mdb_env_info(ev->env, &info);
    atomic_store(&ev->used_bytes, used);
    atomic_store(&ev->file_bytes, (uint64_t)(info.me_last_pgno + 1) * ev->psize);
}

static int put_meta_u64(struct events *ev, MDB_txn *txn, const char *name, uint64_t value)
{
    uint8_t b[8];
    put_be64(b, value);
    MDB_val k = {strlen(name), (void *)name}, v = {8, b};
    return mdb_put(txn, ev->dbi[DB_META], &k, &v, 0);
}

/* commit_jobs - apply @jobs in one write transaction, each in its own
 * nested one, commit, and tell each its outcome. */
static void commit_jobs(struct events *ev, struct job *jobs)
{
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(ev->env, NULL, 0, &txn);
    uint64_t seq = ev->next_seq;
    for (struct job *j = jobs; j != NULL && rc == 0; j = j->next) {
        MDB_txn *sub;
        uint64_t seq_before = seq;
        int jrc = mdb_txn_begin(ev->env, txn, 0, &sub);
        if (jrc != 0)
            jrc = write_failed(j, jrc);
        else {
            jrc = j->kind == JOB_RECORD ? record_apply(ev, sub, j, &seq) : forget_apply(ev, sub, j);
            if (jrc == 0 && (jrc = mdb_txn_commit(sub)) != 0)
                jrc = write_failed(j, jrc);
            else if (jrc != 0)
                mdb_txn_abort(sub);
        }
        if (jrc != 0) {
            seq = seq_before;
            memset(j->stored, 0, sizeof(j->stored));
            j->outcome.count = 0;
        }
        j->outcome.rc = jrc;
    }
    if (rc == 0 && seq != ev->next_seq)
        rc = put_meta_u64(ev, txn, "seq", seq);
    if (rc == 0) {
        note_size(ev, txn);
        rc = mdb_txn_commit(txn);
    } else if (txn != NULL)
        mdb_txn_abort(txn);
    if (rc == 0) {
        ev->next_seq = seq;
        atomic_fetch_add(&ev->commits, 1);
    }
    for (struct job *j = jobs, *next; j != NULL; j = next) {
        next = j->next;
        if (rc != 0 && j->outcome.rc == 0) {
            j->outcome.rc = rc == MDB_MAP_FULL ? write_failed(j, rc) : rc;
            if (rc != MDB_MAP_FULL)
                snprintf(j->why, sizeof(j->why), "state: the commit failed (%s)", mdb_strerror(rc));
            j->outcome.count = 0;
        }
        if (j->outcome.rc == 0)
            for (int t = 1; t < EVENTS_TYPES; t++) {
                if (j->kind == JOB_RECORD) {
                    atomic_fetch_add(&ev->stored[t], j->stored[t]);
                    atomic_fetch_add(&ev->recorded[t], j->stored[t]);
                } else {
                    atomic_fetch_sub(&ev->stored[t], j->stored[t]);
                    atomic_fetch_add(&ev->forgotten, j->stored[t]);
                }
            }
        j->outcome.why = j->why;
        j->done(j->arg, &j->outcome);
        free(j);
    }
}

/* delete_chunk - one transaction deleting up to DELETE_CHUNK events: those
 * a served model holds (every type, up to @through_ms) or, with
 * @views_only, views past their TTL. Returns the number deleted when the
 * chunk was full (more may be left), 0 when none was left after it, or -1
 * when it failed (logged). */
static long delete_chunk(struct events *ev, int64_t through_ms, bool views_only)
{
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(ev->env, NULL, 0, &txn);
    uint64_t deleted[EVENTS_TYPES] = {0};
    unsigned budget = DELETE_CHUNK;
    for (int t = 1; t < EVENTS_TYPES && rc == 0; t++)
        if (!views_only || t == EVENTS_VIEW)
            rc = sweep_type(ev, txn, (enum events_type)t, through_ms, &budget, deleted);
    bool done = budget > 0;
    if (rc == 0 && done && !views_only)
        rc = put_meta_u64(ev, txn, "compacted", (uint64_t)through_ms);
    if (rc == 0) {
        note_size(ev, txn);
        rc = mdb_txn_commit(txn);
    } else if (txn != NULL)
        mdb_txn_abort(txn);
    if (rc != 0) {
        log_error("state: %s failed (%s); retried later",
                  views_only ? "deleting old views" : "compaction", err_strerror(rc));
        return -1;
    }
    uint64_t total = 0;
    for (int t = 1; t < EVENTS_TYPES; t++) {
        atomic_fetch_sub(&ev->stored[t], deleted[t]);
        total += deleted[t];
    }
    atomic_fetch_add(views_only ? &ev->expired : &ev->compacted, total);
    atomic_fetch_add(&ev->commits, 1);
    if (done && !views_only)
        atomic_store(&ev->compacted_through, through_ms);
    return done ? 0 : (long)total;
}

/* More deleting to do: compaction not caught up, or views to expire. */
static bool behind(struct events *ev, int64_t want)
{
    return want > atomic_load(&ev->compacted_through);
}

static void *writer_main(void *arg)
{
    struct events *ev = arg;
    int64_t next_expiry = clock_ns();
    bool expiring = false; /* a TTL sweep is under way, chunk by chunk */
    pthread_mutex_lock(&ev->lock);
    for (;;) {
        int64_t want = ev->compact_want;
        /* Closing, only the submissions are finished: their callers wait. */
        bool work = ev->head != NULL ||
                    (!ev->stopping && (behind(ev, want) || expiring ||
                                       (ev->opts.view_ttl_ms > 0 && clock_ns() >= next_expiry)));
        if (!work) {
            if (ev->stopping)
                break;
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_sec += 1;
            pthread_cond_timedwait(&ev->wake, &ev->lock, &until);
            continue;
        }
        struct job *jobs = ev->head;
        ev->head = ev->tail = NULL;
        ev->queued_bytes = 0;
        pthread_mutex_unlock(&ev->lock);
        if (jobs != NULL)
            commit_jobs(ev, jobs);
        else if (behind(ev, want))
            delete_chunk(ev, want, false);
        else if (ev->opts.view_ttl_ms > 0) {
            /* Chunk by chunk until a chunk finds no more. */
            long n = delete_chunk(ev, clock_unix_ms() - ev->opts.view_ttl_ms, true);
            expiring = n > 0;
            if (!expiring)
                next_expiry = clock_ns() + (int64_t)EXPIRE_EVERY_MS * 1000000;
        }
        pthread_mutex_lock(&ev->lock);
    }
    pthread_mutex_unlock(&ev->lock);
    return NULL;
}

/* ---- submitting ------------------------------------------------------------ */

static int submit(struct events *ev, struct job *j, struct err *e)
{
    pthread_mutex_lock(&ev->lock);
    int rc = 0;
    if (ev->stopping)
        rc = err_set(e, -ESHUTDOWN, "the state is closing");
    else if (ev->queued_bytes + j->bytes > ev->opts.queue_bytes)
        rc = err_set(e, ERR_TOO_BIG, "the state's write queue is full (%zu bytes waiting)",
                     ev->queued_bytes);
    else {
        if (ev->tail != NULL)
            ev->tail->next = j;
        else
            ev->head = j;
        ev->tail = j;
        ev->queued_bytes += j->bytes;
        pthread_cond_signal(&ev->wake);
    }
    pthread_mutex_unlock(&ev->lock);
    if (rc != 0)
        free(j);
    return rc;
}

/* new_job - a job with room for @n events and @ids bytes of ids. */
static struct job *new_job(enum job_kind kind, uint32_t n, size_t ids, events_done_fn done,
                           void *arg)
{
    size_t bytes = sizeof(struct job) + (size_t)n * sizeof(struct events_event) + ids;
    struct job *j = calloc(1, bytes);
    if (j == NULL)
        return NULL;
    j->kind = kind;
    j->done = done;
    j->arg = arg;
    j->bytes = bytes;
    j->n = n;
    j->list = (struct events_event *)(j + 1);
    return j;
}

static const char *copy_id(char **at, const char *id, size_t len)
{
    char *s = *at;
    memcpy(s, id, len);
    *at += len;
    return s;
}

int events_record(struct events *ev, const struct events_event *list, uint32_t n,
                  events_done_fn done, void *arg, struct err *e)
{
    size_t ids = 0;
    for (uint32_t i = 0; i < n; i++)
        ids += list[i].user_len + list[i].item_len;
    struct job *j = new_job(JOB_RECORD, n, ids, done, arg);
    if (j == NULL)
        return err_set(e, -ENOMEM, "out of memory for %u events", n);
    char *at = (char *)(j->list + n);
    for (uint32_t i = 0; i < n; i++) {
        j->list[i] = list[i];
        j->list[i].user = copy_id(&at, list[i].user, list[i].user_len);
        j->list[i].item = copy_id(&at, list[i].item, list[i].item_len);
    }
    return submit(ev, j, e);
}

int events_forget(struct events *ev, const char *user, size_t len, events_done_fn done, void *arg,
                  struct err *e)
{
    struct job *j = new_job(JOB_FORGET, 1, len, done, arg);
    if (j == NULL)
        return err_set(e, -ENOMEM, "out of memory");
    char *at = (char *)(j->list + 1);
    j->list[0] = (struct events_event){.user = copy_id(&at, user, len), .user_len = (uint32_t)len};
    return submit(ev, j, e);
}

void events_compact(struct events *ev, int64_t through_ms)
{
    pthread_mutex_lock(&ev->lock);
    if (through_ms > ev->compact_want) {
        ev->compact_want = through_ms;
        pthread_cond_signal(&ev->wake);
    }
    pthread_mutex_unlock(&ev->lock);
}

void events_stats(struct events *ev, struct events_stats *s)
{
    for (int t = 0; t < EVENTS_TYPES; t++) {
        s->stored[t] = atomic_load(&ev->stored[t]);
        s->recorded[t] = atomic_load(&ev->recorded[t]);
    }
    s->forgotten = atomic_load(&ev->forgotten);
    s->compacted = atomic_load(&ev->compacted);
    s->expired = atomic_load(&ev->expired);
    s->commits = atomic_load(&ev->commits);
    s->used_bytes = atomic_load(&ev->used_bytes);
    s->file_bytes = atomic_load(&ev->file_bytes);
    s->max_bytes = ev->opts.max_bytes;
    s->compacted_through_ms = atomic_load(&ev->compacted_through);
}

/* ---- opening ----------------------------------------------------------------- */

/* check_all - every record of a store just opened, checked, with the
 * counters events_stats starts from. */
static int check_all(struct events *ev, MDB_txn *txn, struct err *e)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, ev->dbi[DB_EVENTS], &cur);
    if (rc != 0)
        return err_set(e, rc, "%s: %s", ev->dir, mdb_strerror(rc));
    MDB_val k, v;
    uint64_t count = 0, max_seq = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        struct record r;
        if (decode(&k, &v, &r) != 0) {
            mdb_cursor_close(cur);
            return err_set(e, ERR_FORMAT, "%s: event record %llu is damaged", ev->dir,
                           (unsigned long long)count);
        }
        uint8_t bt[BT_KEY];
        bytime_key(bt, r.type, r.time_ms, r.seq);
        MDB_val bk = {BT_KEY, bt}, bv;
        if (mdb_get(txn, ev->dbi[DB_BYTIME], &bk, &bv) != 0 || bv.mv_size != k.mv_size ||
            memcmp(bv.mv_data, k.mv_data, k.mv_size) != 0) {
            mdb_cursor_close(cur);
            return err_set(e, ERR_FORMAT, "%s: event record %llu is missing from its index",
                           ev->dir, (unsigned long long)count);
        }
        ev->stored[r.type]++;
        if (r.seq >= max_seq)
            max_seq = r.seq + 1;
        count++;
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND)
        return err_set(e, rc, "%s: %s", ev->dir, mdb_strerror(rc));
    MDB_stat st;
    if ((rc = mdb_stat(txn, ev->dbi[DB_BYTIME], &st)) != 0)
        return err_set(e, rc, "%s: %s", ev->dir, mdb_strerror(rc));
    if (st.ms_entries != count)
        return err_set(e, ERR_FORMAT, "%s: %llu events but %llu in the time index", ev->dir,
                       (unsigned long long)count, (unsigned long long)st.ms_entries);
    if (ev->next_seq < max_seq)
        return err_set(e, ERR_FORMAT, "%s: next sequence number %llu is below a stored one",
                       ev->dir, (unsigned long long)ev->next_seq);
    return 0;
}

/* read_meta - check the format record (writing it into a new store) and
 * read the sequence and compaction marks. */
static int read_meta(struct events *ev, MDB_txn *txn, struct err *e)
{
    MDB_val k = {6, "format"}, v;
    int rc = mdb_get(txn, ev->dbi[DB_META], &k, &v);
    if (rc == MDB_NOTFOUND) {
        uint8_t b[4];
        put_le32(b, FORMAT_VERSION);
        v = (MDB_val){4, b};
        rc = mdb_put(txn, ev->dbi[DB_META], &k, &v, 0);
        if (rc == 0)
            rc = put_meta_u64(ev, txn, "seq", 0);
        if (rc != 0)
            return err_set(e, rc, "%s: %s", ev->dir, mdb_strerror(rc));
        return 0;
    }
    if (rc != 0)
        return err_set(e, rc, "%s: %s", ev->dir, mdb_strerror(rc));
    if (v.mv_size != 4 || get_le32(v.mv_data) != FORMAT_VERSION)
        return err_set(e, ERR_FORMAT, "%s: not a state of format %u", ev->dir, FORMAT_VERSION);
    k = (MDB_val){3, "seq"};
    if (mdb_get(txn, ev->dbi[DB_META], &k, &v) != 0 || v.mv_size != 8)
        return err_set(e, ERR_FORMAT, "%s: the sequence record is missing or damaged", ev->dir);
    ev->next_seq = get_be64(v.mv_data);
    k = (MDB_val){9, "compacted"};
    rc = mdb_get(txn, ev->dbi[DB_META], &k, &v);
    if (rc == 0 && v.mv_size == 8) {
        ev->compact_want = (int64_t)get_be64(v.mv_data);
        atomic_store(&ev->compacted_through, ev->compact_want);
    } else if (rc != MDB_NOTFOUND)
        return err_set(e, ERR_FORMAT, "%s: the compaction record is damaged", ev->dir);
    return 0;
}

static int open_env(struct events *ev, struct err *e)
{
    if (mkdir(ev->dir, 0750) != 0 && errno != EEXIST)
        return err_set(e, -errno, "%s: cannot create the state directory (%s)", ev->dir,
                       strerror(errno));
    char data[4200];
    if ((size_t)snprintf(data, sizeof(data), "%s/recsysd.lock", ev->dir) >= sizeof(data))
        return err_set(e, ERR_INVALID, "%s: path too long", ev->dir);
    /* LMDB would let two daemons write the store at once, each with its
     * own idea of the next sequence number: one owns it. */
    ev->lock_fd = open(data, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (ev->lock_fd < 0)
        return err_set(e, -errno, "%s: %s", data, strerror(errno));
    if (flock(ev->lock_fd, LOCK_EX | LOCK_NB) != 0)
        return err_set(e, errno == EWOULDBLOCK ? ERR_INVALID : -errno,
                       "%s: another process uses this state directory", ev->dir);
    snprintf(data, sizeof(data), "%s/data.mdb", ev->dir);
    struct stat st;
    if (stat(data, &st) == 0) {
        int rc = lmdbcheck_live(data, e);
        if (rc != 0)
            return err_wrap(e, rc == ERR_FORMAT ? ERR_FORMAT : rc, "%s", ev->dir);
    }
    int rc = mdb_env_create(&ev->env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(ev->env, DB_COUNT);
    if (rc == 0)
        rc = mdb_env_set_maxreaders(ev->env, ev->slots + EXTRA_READERS);
    if (rc == 0)
        rc = mdb_env_set_mapsize(ev->env, ev->opts.max_bytes);
    /* NOTLS: a slot's read transaction belongs to the slot, not to a
     * thread, and the writer's nested transactions need none. */
    if (rc == 0)
        rc = mdb_env_open(ev->env, ev->dir, MDB_NOTLS, 0640);
    if (rc != 0)
        return err_set(e, rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH ? ERR_FORMAT : rc,
                       "%s: cannot open the state (%s)", ev->dir, mdb_strerror(rc));
    MDB_stat est;
    mdb_env_stat(ev->env, &est);
    ev->psize = est.ms_psize;
    return 0;
}

static int open_dbs(struct events *ev, struct err *e)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(ev->env, NULL, 0, &txn);
    if (rc != 0)
        return err_set(e, rc, "%s: %s", ev->dir, mdb_strerror(rc));
    for (int d = 0; d < DB_COUNT && rc == 0; d++)
        rc = mdb_dbi_open(txn, db_names[d], MDB_CREATE, &ev->dbi[d]);
    if (rc != 0)
        rc = err_set(e, rc == MDB_INCOMPATIBLE ? ERR_FORMAT : rc, "%s: %s", ev->dir,
                     mdb_strerror(rc));
    if (rc == 0)
        rc = read_meta(ev, txn, e);
    if (rc == 0)
        rc = check_all(ev, txn, e);
    if (rc == 0) {
        note_size(ev, txn);
        rc = mdb_txn_commit(txn);
        if (rc != 0)
            return err_set(e, rc, "%s: %s", ev->dir, mdb_strerror(rc));
        return 0;
    }
    mdb_txn_abort(txn);
    return rc;
}

static int open_readers(struct events *ev, struct err *e)
{
    ev->readers = calloc(ev->slots, sizeof(*ev->readers));
    if (ev->readers == NULL)
        return err_set(e, -ENOMEM, "out of memory");
    for (unsigned i = 0; i < ev->slots; i++) {
        int rc = mdb_txn_begin(ev->env, NULL, MDB_RDONLY, &ev->readers[i]);
        if (rc != 0)
            return err_set(e, rc, "%s: %s", ev->dir, mdb_strerror(rc));
        mdb_txn_reset(ev->readers[i]);
    }
    return 0;
}

int events_open(const char *dir, const struct events_opts *o, struct events **out, struct err *e)
{
    if (o->max_bytes == 0 || o->slots == 0 || o->queue_bytes == 0 || o->view_ttl_ms < 0)
        return err_set(e, ERR_INVALID, "bad state options");
    struct events *ev = calloc(1, sizeof(*ev));
    if (ev == NULL)
        return err_set(e, -ENOMEM, "out of memory");
    ev->opts = *o;
    ev->slots = o->slots;
    ev->dir = strdup(dir);
    ev->lock_fd = -1;
    pthread_mutex_init(&ev->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ev->wake, &ca);
    pthread_condattr_destroy(&ca);
    int rc = ev->dir == NULL ? err_set(e, -ENOMEM, "out of memory") : 0;
    if (rc == 0)
        rc = open_env(ev, e);
    if (rc == 0)
        rc = open_dbs(ev, e);
    if (rc == 0)
        rc = open_readers(ev, e);
    if (rc == 0) {
        rc = -pthread_create(&ev->writer, NULL, writer_main, ev);
        if (rc != 0)
            err_set(e, rc, "cannot start the state's writer (%s)", strerror(-rc));
        ev->running = rc == 0;
    }
    if (rc != 0) {
        events_close(ev);
        return rc;
    }
    *out = ev;
    return 0;
}

void events_close(struct events *ev)
{
    if (ev == NULL)
        return;
    if (ev->running) {
        pthread_mutex_lock(&ev->lock);
        ev->stopping = true;
        pthread_cond_signal(&ev->wake);
        pthread_mutex_unlock(&ev->lock);
        pthread_join(ev->writer, NULL);
    }
    if (ev->readers != NULL)
        for (unsigned i = 0; i < ev->slots; i++)
            if (ev->readers[i] != NULL)
                mdb_txn_abort(ev->readers[i]);
    free(ev->readers);
    if (ev->env != NULL)
        mdb_env_close(ev->env);
    pthread_cond_destroy(&ev->wake);
    pthread_mutex_destroy(&ev->lock);
    if (ev->lock_fd >= 0)
        close(ev->lock_fd);
    free(ev->dir);
    free(ev);
}
