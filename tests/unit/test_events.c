/*
 * test_events: the live events store, on real LMDB environments in
 * temporary directories: what is recorded reads back, survives a reopen,
 * is grouped into few commits, is bounded, compacted, expired and
 * forgotten, and a damaged store is refused.
 */
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/arena.h"
#include "check.h"
#include "state/events.h"

/* ---- helpers ----------------------------------------------------------- */

static char *temp_dir(void)
{
    static char buf[64];
    snprintf(buf, sizeof(buf), "/tmp/test_events.XXXXXX");
    return mkdtemp(buf);
}

static void remove_dir(const char *dir)
{
    const char *files[] = {"data.mdb", "lock.mdb", "recsysd.lock"};
    char p[256];
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
}

static const struct events_opts OPTS = {
    .max_bytes = 64u << 20, .queue_bytes = 16u << 20, .view_ttl_ms = 0, .slots = 2};

/* Outcomes of submissions, awaited by the test thread. */
struct waiter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned done, failed;
    uint64_t count;
    int last_rc;
    char last_why[200];
};

static void waiter_init(struct waiter *w)
{
    memset(w, 0, sizeof(*w));
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
}

static void on_done(void *arg, const struct events_outcome *o)
{
    struct waiter *w = arg;
    pthread_mutex_lock(&w->lock);
    w->done++;
    w->failed += o->rc != 0;
    w->count += o->count;
    w->last_rc = o->rc;
    snprintf(w->last_why, sizeof(w->last_why), "%s", o->rc != 0 ? o->why : "");
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

/* Wait until @n submissions are done; 0, or -1 after 30 s. */
static int wait_done(struct waiter *w, unsigned n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 30;
    pthread_mutex_lock(&w->lock);
    int rc = 0;
    while (w->done < n && rc == 0)
        rc = pthread_cond_timedwait(&w->cond, &w->lock, &until);
    pthread_mutex_unlock(&w->lock);
    return w->done >= n ? 0 : -1;
}

static struct events_event event(const char *user, const char *item, enum events_type type,
                                 float weight, int64_t time_ms)
{
    return (struct events_event){.user = user,
                                 .user_len = (uint32_t)strlen(user),
                                 .item = item,
                                 .item_len = (uint32_t)strlen(item),
                                 .type = type,
                                 .weight = weight,
                                 .time_ms = time_ms};
}

/* Record @n events and wait for the outcome; returns its rc. */
static int record_sync(struct events *ev, const struct events_event *list, uint32_t n)
{
    struct waiter w;
    waiter_init(&w);
    struct err e = {0};
    int rc = events_record(ev, list, n, on_done, &w, &e);
    if (rc != 0)
        return rc;
    if (wait_done(&w, 1) != 0)
        return -ETIMEDOUT;
    return w.last_rc;
}

static uint32_t read_user(struct events *ev, const char *user, struct arena *a,
                          struct events_event **out)
{
    uint32_t n = 0;
    struct err e = {0};
    arena_reset(a);
    if (events_user(ev, 0, user, strlen(user), a, out, &n, &e) != 0) {
        fprintf(stderr, "events_user: %s\n", e.msg);
        return UINT32_MAX;
    }
    return n;
}

/* Wait (30 s at most) until @pred holds of the store's stats. */
static int await_stats(struct events *ev, int (*pred)(const struct events_stats *, int64_t),
                       int64_t arg)
{
    for (int i = 0; i < 30000; i++) {
        struct events_stats s;
        events_stats(ev, &s);
        if (pred(&s, arg))
            return 0;
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    return -1;
}

/* A store in a fresh directory, with an arena for reads. */
struct fixture {
    char *dir;
    struct events *ev;
    struct arena *a;
    struct err e;
};

static int setup(struct fixture *f, const struct events_opts *o)
{
    memset(f, 0, sizeof(*f));
    f->dir = temp_dir();
    if (f->dir == NULL || arena_create(4096, &f->a) != 0)
        return -1;
    return events_open(f->dir, o, &f->ev, &f->e);
}

/* reopen - close the store and open it again with @o. */
static int reopen(struct fixture *f, const struct events_opts *o)
{
    events_close(f->ev);
    f->ev = NULL;
    return events_open(f->dir, o, &f->ev, &f->e);
}

static void teardown(struct fixture *f)
{
    events_close(f->ev);
    arena_destroy(f->a);
    remove_dir(f->dir);
}

/* ---- tests --------------------------------------------------------------- */

static void test_records_read_back_in_time_order(void)
{
    struct fixture f;
    CHECK_OK(setup(&f, &OPTS));
    struct events *ev = f.ev;
    struct arena *a = f.a;
    /* Out of time order, two users, a UTF-8 id, the same millisecond twice. */
    const struct events_event list[] = {
        event("u1", "course-b", EVENTS_VIEW, 0.25f, 2000),
        event("u1", "книга-1", EVENTS_PURCHASE, 1.0f, 1000),
        event("u2", "course-b", EVENTS_PURCHASE, 2.0f, 1500),
        event("u1", "course-b", EVENTS_PURCHASE, 1.0f, 2000),
        event("u1", "книга-1", EVENTS_REFUND, 1.0f, 3000),
    };
    CHECK_OK(record_sync(ev, list, 5));
    struct events_event *got;
    CHECK(read_user(ev, "u1", a, &got) == 4);
    /* By time; at 2000 the view came first, as recorded. */
    const int order[] = {1, 0, 3, 4};
    for (int i = 0; i < 4; i++) {
        const struct events_event *w = &list[order[i]];
        CHECK(got[i].item_len == w->item_len && memcmp(got[i].item, w->item, w->item_len) == 0);
        CHECK(got[i].type == w->type && got[i].weight == w->weight && got[i].time_ms == w->time_ms);
    }
    CHECK(read_user(ev, "u2", a, &got) == 1 && got[0].weight == 2.0f);
    /* A prefix of another user's id is another user. */
    CHECK(read_user(ev, "u", a, &got) == 0);
    CHECK(read_user(ev, "nobody", a, &got) == 0);
    struct events_stats s;
    events_stats(ev, &s);
    CHECK(s.stored[EVENTS_PURCHASE] == 3 && s.stored[EVENTS_VIEW] == 1 &&
          s.stored[EVENTS_REFUND] == 1);
    CHECK(s.recorded[EVENTS_PURCHASE] == 3 && s.commits >= 1 && s.used_bytes > 0);
    teardown(&f);
}

static void test_survives_reopen(void)
{
    struct fixture f;
    CHECK_OK(setup(&f, &OPTS));
    struct events *ev = f.ev;
    struct arena *a = f.a;
    struct events_event x = event("alice", "item-7", EVENTS_PURCHASE, 1.0f, 42);
    CHECK_OK(record_sync(ev, &x, 1));
    CHECK_OK(reopen(&f, &OPTS));
    ev = f.ev;
    struct events_event *got;
    CHECK(read_user(ev, "alice", a, &got) == 1 && got[0].time_ms == 42);
    struct events_stats s;
    events_stats(ev, &s);
    CHECK(s.stored[EVENTS_PURCHASE] == 1 && s.recorded[EVENTS_PURCHASE] == 0);
    /* New events after a reopen get new sequence numbers: same user,
     * same millisecond, both kept. */
    CHECK_OK(record_sync(ev, &x, 1));
    CHECK(read_user(ev, "alice", a, &got) == 2);
    teardown(&f);
}

static void test_second_daemon_refused(void)
{
    char *dir = temp_dir();
    struct events *ev, *other = NULL;
    struct err e = {0};
    CHECK_OK(events_open(dir, &OPTS, &ev, &e));
    CHECK(events_open(dir, &OPTS, &other, &e) != 0);
    CHECK_STR_HAS(e.msg, "another process");
    events_close(ev);
    remove_dir(dir);
}

/* ---- group commit ---------------------------------------------------------- */

#define WRITERS     8
#define SUBMISSIONS 200
#define PER_CALL    10

struct writer_arg {
    struct events *ev;
    int id;
    struct waiter *w;
};

static void *writer_thread(void *p)
{
    struct writer_arg *arg = p;
    char users[PER_CALL][32], items[PER_CALL][32];
    struct events_event list[PER_CALL];
    for (int s = 0; s < SUBMISSIONS; s++) {
        for (int i = 0; i < PER_CALL; i++) {
            snprintf(users[i], sizeof(users[i]), "w%d-u%d", arg->id, i);
            snprintf(items[i], sizeof(items[i]), "item-%d", s);
            list[i] = event(users[i], items[i], EVENTS_VIEW, 0.5f, 1000 + s);
        }
        struct err e = {0};
        while (events_record(arg->ev, list, PER_CALL, on_done, arg->w, &e) == ERR_TOO_BIG)
            sched_yield(); /* the queue bound: wait for the writer, as a caller would retry */
    }
    return NULL;
}

static void test_concurrent_callers_commit_together(void)
{
    struct fixture f;
    CHECK_OK(setup(&f, &OPTS));
    struct events *ev = f.ev;
    struct arena *a = f.a;
    struct waiter w;
    waiter_init(&w);
    pthread_t t[WRITERS];
    struct writer_arg args[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        args[i] = (struct writer_arg){ev, i, &w};
        pthread_create(&t[i], NULL, writer_thread, &args[i]);
    }
    for (int i = 0; i < WRITERS; i++)
        pthread_join(t[i], NULL);
    CHECK_OK(wait_done(&w, WRITERS * SUBMISSIONS));
    CHECK(w.failed == 0 && w.count == (uint64_t)WRITERS * SUBMISSIONS * PER_CALL);
    struct events_stats s;
    events_stats(ev, &s);
    CHECK(s.stored[EVENTS_VIEW] == (uint64_t)WRITERS * SUBMISSIONS * PER_CALL);
    /* Grouped: with 8 callers submitting while the writer fsyncs, far
     * fewer commits than submissions (1 commit each would be 1600). */
    fprintf(stderr, "  %u submissions in %llu commits\n", WRITERS * SUBMISSIONS,
            (unsigned long long)s.commits);
    CHECK(s.commits < WRITERS * SUBMISSIONS);
    struct events_event *got;
    CHECK(read_user(ev, "w3-u7", a, &got) == SUBMISSIONS);
    for (uint32_t i = 1; i < SUBMISSIONS; i++)
        CHECK(got[i].time_ms == got[i - 1].time_ms + 1);
    /* All of it is on disk. */
    CHECK_OK(reopen(&f, &OPTS));
    events_stats(f.ev, &s);
    CHECK(s.stored[EVENTS_VIEW] == (uint64_t)WRITERS * SUBMISSIONS * PER_CALL);
    teardown(&f);
}

/* ---- bounds ------------------------------------------------------------------ */

static void test_user_bound_refuses_one_submission_only(void)
{
    struct fixture f;
    CHECK_OK(setup(&f, &OPTS));
    struct events *ev = f.ev;
    struct arena *a = f.a;
    struct err e = {0};
    struct events_event *many = calloc(EVENTS_USER_MAX, sizeof(*many));
    for (uint32_t i = 0; i < EVENTS_USER_MAX; i++)
        many[i] = event("heavy", "x", EVENTS_VIEW, 1.0f, i);
    CHECK_OK(record_sync(ev, many, EVENTS_USER_MAX));
    /* Submitted together: the one over the bound fails alone. */
    struct waiter w;
    waiter_init(&w);
    struct events_event over[2] = {event("light", "y", EVENTS_PURCHASE, 1.0f, 5),
                                   event("heavy", "z", EVENTS_PURCHASE, 1.0f, 6)};
    struct events_event fine = event("light", "w", EVENTS_PURCHASE, 1.0f, 7);
    CHECK_OK(events_record(ev, over, 2, on_done, &w, &e));
    CHECK_OK(events_record(ev, &fine, 1, on_done, &w, &e));
    CHECK_OK(wait_done(&w, 2));
    CHECK(w.failed == 1 && w.count == 1);
    struct events_event *got;
    /* Nothing of the refused submission: not even its first event. */
    CHECK(read_user(ev, "light", a, &got) == 1 && got[0].item[0] == 'w');
    CHECK(read_user(ev, "heavy", a, &got) == EVENTS_USER_MAX);
    free(many);
    teardown(&f);
}

static void test_full_state_refuses_and_keeps_what_it_has(void)
{
    char *dir = temp_dir();
    struct events *ev;
    struct err e = {0};
    struct arena *a;
    CHECK_OK(arena_create(4096, &a));
    struct events_opts small = OPTS;
    small.max_bytes = 1u << 20;
    CHECK_OK(events_open(dir, &small, &ev, &e));
    char users[100][16];
    struct events_event list[100];
    int rc = 0, ok = 0;
    for (int round = 0; round < 1000 && rc == 0; round++) {
        for (int i = 0; i < 100; i++) {
            snprintf(users[i], sizeof(users[i]), "r%d-%d", round, i);
            list[i] = event(users[i], "some-course-id-of-moderate-length", EVENTS_VIEW, 1, round);
        }
        rc = record_sync(ev, list, 100);
        ok += rc == 0;
    }
    CHECK(rc == ERR_TOO_BIG && ok > 0);
    struct events_event *got;
    CHECK(read_user(ev, "r0-5", a, &got) == 1);
    /* The failed one stored nothing. */
    char last[16];
    snprintf(last, sizeof(last), "r%d-0", ok);
    CHECK(read_user(ev, last, a, &got) == 0);
    events_close(ev);
    CHECK_OK(events_open(dir, &small, &ev, &e));
    struct events_stats s;
    events_stats(ev, &s);
    CHECK(s.stored[EVENTS_VIEW] == (uint64_t)ok * 100);
    events_close(ev);
    arena_destroy(a);
    remove_dir(dir);
}

/* ---- deleting ------------------------------------------------------------------ */

static void test_forget_deletes_one_user(void)
{
    struct fixture f;
    CHECK_OK(setup(&f, &OPTS));
    struct events *ev = f.ev;
    struct arena *a = f.a;
    struct err e = {0};
    const struct events_event list[] = {
        event("bob", "a", EVENTS_PURCHASE, 1, 10), event("bob", "b", EVENTS_VIEW, 1, 11),
        event("bob2", "a", EVENTS_PURCHASE, 1, 12), event("bo", "c", EVENTS_VIEW, 1, 13)};
    CHECK_OK(record_sync(ev, list, 4));
    struct waiter w;
    waiter_init(&w);
    CHECK_OK(events_forget(ev, "bob", 3, on_done, &w, &e));
    CHECK_OK(wait_done(&w, 1));
    CHECK(w.failed == 0 && w.count == 2);
    struct events_event *got;
    CHECK(read_user(ev, "bob", a, &got) == 0);
    CHECK(read_user(ev, "bob2", a, &got) == 1 && read_user(ev, "bo", a, &got) == 1);
    struct events_stats s;
    events_stats(ev, &s);
    CHECK(s.forgotten == 2 && s.stored[EVENTS_PURCHASE] == 1 && s.stored[EVENTS_VIEW] == 1);
    /* Forgetting nobody deletes nothing, and succeeds. */
    CHECK_OK(events_forget(ev, "bob", 3, on_done, &w, &e));
    CHECK_OK(wait_done(&w, 2));
    CHECK(w.failed == 0 && w.count == 2);
    /* The last user in key order: the delete empties the tree's last page. */
    CHECK_OK(events_forget(ev, "bob2", 4, on_done, &w, &e));
    CHECK_OK(wait_done(&w, 3));
    CHECK(w.failed == 0 && w.count == 3);
    CHECK(read_user(ev, "bob2", a, &got) == 0 && read_user(ev, "bo", a, &got) == 1);
    /* Durably. */
    CHECK_OK(reopen(&f, &OPTS));
    ev = f.ev;
    CHECK(read_user(ev, "bob", a, &got) == 0);
    teardown(&f);
}

static int compacted_to(const struct events_stats *s, int64_t through)
{
    return s->compacted_through_ms == through;
}

static void test_compaction_deletes_what_the_model_holds(void)
{
    struct fixture f;
    CHECK_OK(setup(&f, &OPTS));
    struct events *ev = f.ev;
    struct arena *a = f.a;
    /* 5000 events over times 0..4999, so compaction takes several chunks. */
    struct events_event *list = calloc(5000, sizeof(*list));
    char(*users)[16] = calloc(5000, 16);
    for (int i = 0; i < 5000; i++) {
        snprintf(users[i], 16, "c%d", i % 7);
        list[i] = event(users[i], "it", (enum events_type)(1 + i % 3), 1, i);
    }
    CHECK_OK(record_sync(ev, list, 5000));
    events_compact(ev, 3999);
    CHECK_OK(await_stats(ev, compacted_to, 3999));
    struct events_stats s;
    events_stats(ev, &s);
    CHECK(s.compacted == 4000);
    CHECK(s.stored[1] + s.stored[2] + s.stored[3] == 1000);
    struct events_event *got;
    uint32_t n = read_user(ev, "c3", a, &got);
    CHECK(n > 0 && n < 200);
    for (uint32_t i = 0; i < n; i++)
        CHECK(got[i].time_ms > 3999);
    /* Backwards is ignored; the mark survives a reopen. */
    events_compact(ev, 10);
    CHECK_OK(reopen(&f, &OPTS));
    ev = f.ev;
    events_stats(ev, &s);
    CHECK(s.compacted_through_ms == 3999 && s.stored[1] + s.stored[2] + s.stored[3] == 1000);
    free(list);
    free(users);
    teardown(&f);
}

static int expired_one(const struct events_stats *s, int64_t unused)
{
    return s->expired == 1 && s->stored[EVENTS_VIEW] == 1 && s->stored[EVENTS_PURCHASE] == 1;
}

static void test_old_views_expire_purchases_stay(void)
{
    char *dir = temp_dir();
    struct events *ev;
    struct err e = {0};
    struct arena *a;
    CHECK_OK(arena_create(4096, &a));
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t now_ms = (int64_t)now.tv_sec * 1000;
    /* Written without a TTL, then opened with one of an hour. */
    CHECK_OK(events_open(dir, &OPTS, &ev, &e));
    const struct events_event list[] = {event("old", "a", EVENTS_VIEW, 1, now_ms - 7200000),
                                        event("old", "b", EVENTS_PURCHASE, 1, now_ms - 7200000),
                                        event("old", "c", EVENTS_VIEW, 1, now_ms)};
    CHECK_OK(record_sync(ev, list, 3));
    events_close(ev);
    struct events_opts ttl = OPTS;
    ttl.view_ttl_ms = 3600000;
    CHECK_OK(events_open(dir, &ttl, &ev, &e));
    struct events_event *got;
    CHECK_OK(await_stats(ev, expired_one, 0));
    CHECK(read_user(ev, "old", a, &got) == 2);
    CHECK(got[0].type == EVENTS_PURCHASE && got[1].type == EVENTS_VIEW && got[1].item[0] == 'c');
    events_close(ev);
    arena_destroy(a);
    remove_dir(dir);
}

/* ---- damage ---------------------------------------------------------------------- */

static void test_garbage_file_refused(void)
{
    char *dir = temp_dir();
    char p[256];
    snprintf(p, sizeof(p), "%s/data.mdb", dir);
    FILE *f = fopen(p, "w");
    for (int i = 0; i < 3 * 4096; i++)
        fputc(i * 7 % 251, f);
    fclose(f);
    struct events *ev = NULL;
    struct err e = {0};
    CHECK_RC(events_open(dir, &OPTS, &ev, &e), ERR_FORMAT);
    CHECK_STR_HAS(e.msg, dir);
    CHECK(ev == NULL);
    remove_dir(dir);
}

/* A record LMDB accepts but the store never writes: a zero-length item. */
static void test_damaged_record_refused(void)
{
    char *dir = temp_dir();
    struct events *ev;
    struct err e = {0};
    CHECK_OK(events_open(dir, &OPTS, &ev, &e));
    struct events_event x = event("u", "i", EVENTS_PURCHASE, 1, 5);
    CHECK_OK(record_sync(ev, &x, 1));
    events_close(ev);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    CHECK_OK(mdb_env_create(&env));
    mdb_env_set_maxdbs(env, 8);
    CHECK_OK(mdb_env_open(env, dir, 0, 0640));
    CHECK_OK(mdb_txn_begin(env, NULL, 0, &txn));
    CHECK_OK(mdb_dbi_open(txn, "events", 0, &dbi));
    MDB_cursor *cur;
    MDB_val k, v;
    CHECK_OK(mdb_cursor_open(txn, dbi, &cur));
    CHECK_OK(mdb_cursor_get(cur, &k, &v, MDB_FIRST));
    uint8_t bad[8] = {EVENTS_PURCHASE, 0, 0, 0, 0, 0, 0x80, 0x3f};
    MDB_val nv = {8, bad};
    CHECK_OK(mdb_cursor_put(cur, &k, &nv, MDB_CURRENT));
    mdb_cursor_close(cur);
    CHECK_OK(mdb_txn_commit(txn));
    mdb_env_close(env);
    ev = NULL;
    CHECK_RC(events_open(dir, &OPTS, &ev, &e), ERR_FORMAT);
    CHECK_STR_HAS(e.msg, "damaged");
    remove_dir(dir);
}

int main(int argc, char **argv)
{
    static const struct check_case cases[] = {
        CHECK_CASE(test_records_read_back_in_time_order),
        CHECK_CASE(test_survives_reopen),
        CHECK_CASE(test_second_daemon_refused),
        CHECK_CASE(test_concurrent_callers_commit_together),
        CHECK_CASE(test_user_bound_refuses_one_submission_only),
        CHECK_CASE(test_full_state_refuses_and_keeps_what_it_has),
        CHECK_CASE(test_forget_deletes_one_user),
        CHECK_CASE(test_compaction_deletes_what_the_model_holds),
        CHECK_CASE(test_old_views_expire_purchases_stay),
        CHECK_CASE(test_garbage_file_refused),
        CHECK_CASE(test_damaged_record_refused),
    };
    return check_main(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
