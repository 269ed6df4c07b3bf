/*
 * events: the live events store. Purchases, views and refunds recorded
 * since the model snapshot, kept durably until a model that holds them is
 * served.
 *
 * The store is a writable LMDB environment of its own in a state directory
 * (data.mdb and lock.mdb there), never the model file, which stays
 * read-only. Ids are stored as the strings the platform sent, so the store
 * outlives any model and its item indices.
 *
 * Writes: one writer thread owns every write transaction. Callers submit
 * work (events_record, events_forget) and are told the outcome through a
 * callback once it is durable: the writer takes everything submitted
 * while it was busy, applies each submission in its own nested
 * transaction (a submission that fails is undone alone) and commits them
 * all with one fsync (group commit), so throughput is not one fsync per
 * call. Deleting what a served model holds (events_compact) and views
 * older than the TTL happens on the same thread, in chunks between
 * submissions.
 *
 * Reads: serving threads read through LMDB read transactions, one slot
 * per thread, and never wait for the writer (LMDB's MVCC: a reader sees
 * the last commit before its transaction began).
 *
 * Durability: a submission is reported done only after LMDB's commit has
 * returned, which fsyncs the data and then the meta page. A crash at any
 * moment leaves the last commit or the one before: never a partial one.
 *
 * Bounds: the state never grows past opts->max_bytes (ERR_TOO_BIG beyond,
 * nothing stored); a user holds at most EVENTS_USER_MAX events; submissions
 * waiting for the writer hold at most opts->queue_bytes.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/err.h"

/* Event types, numbered as recsys.v1.EventType. */
enum events_type {
    EVENTS_PURCHASE = 1,
    EVENTS_VIEW = 2,
    EVENTS_REFUND = 3, /* undoes the user's purchases of the item before it */
    EVENTS_TYPES = 4,  /* bound for arrays indexed by type; 0 is no type */
};

/* "purchase", "view", "refund", indexed by type; [0] is NULL. */
extern const char *const events_type_names[EVENTS_TYPES];

/* Events one user may hold in the store. A user past it (a client recording
 * far more than any person buys or views before the next model) is refused
 * rather than let each of their calls read an unbounded list. */
#define EVENTS_USER_MAX 10000u

/* One event. As submitted, the ids are the caller's (copied by
 * events_record); as read (events_user), they point into the arena. */
struct events_event {
    const char *user;
    const char *item;
    uint32_t user_len; /* 1..EVENTS_ID_MAX bytes */
    uint32_t item_len;
    enum events_type type;
    float weight;    /* > 0 and finite */
    int64_t time_ms; /* unix milliseconds, >= 0 */
};

/* Longest id, in bytes: the model's (MODEL_ID_MAX). */
#define EVENTS_ID_MAX 256u

struct events_opts {
    size_t max_bytes;    /* largest the state may grow (LMDB's map size), > 0 */
    size_t queue_bytes;  /* submissions waiting for the writer, at most */
    int64_t view_ttl_ms; /* views older than this are deleted; 0: never */
    unsigned slots;      /* read slots: one per thread that calls events_user */
};

struct events;

/* events_open - open (creating it if need be) the store in directory @dir
 * and start its writer thread.
 * The directory is created if missing (its parent must exist). Before LMDB
 * reads the file, its structure is checked (lmdbcheck) and then every
 * record is: a damaged store is refused with ERR_FORMAT and the problem in
 * @e, and nothing is changed.
 * Returns 0, ERR_FORMAT, ERR_INVALID (bad @o), an LMDB code or -errno. On
 * failure nothing is left open or running. */
int events_open(const char *dir, const struct events_opts *o, struct events **out, struct err *e);

/* events_close - finish every submission already made (their callbacks
 * run), stop the writer, close the store. NULL is a no-op. No thread may
 * use @ev after. */
void events_close(struct events *ev);

/* ---- reads ------------------------------------------------------------- */

/* events_user - the events of user @user (@len bytes) into *@out, in time
 * order (ties in the order recorded), allocated in @a with their ids;
 * *@n receives how many (at most EVENTS_USER_MAX; 0 for a user with none).
 * Through read slot @slot, which only one thread may use at a time.
 * Returns 0, -ENOMEM, or an LMDB code with text in @e. */
int events_user(struct events *ev, unsigned slot, const char *user, size_t len, struct arena *a,
                struct events_event **out, uint32_t *n, struct err *e);

/* ---- writes ------------------------------------------------------------ */

/* What a submission came to, given to its callback. */
struct events_outcome {
    int rc;          /* 0: durable; else nothing of the submission is stored */
    uint32_t count;  /* events stored (record) or deleted (forget) */
    const char *why; /* rc != 0: what went wrong, for the status details */
};

/* Called once per submission on the writer thread, after the commit (or
 * its failure). @o is valid during the call only. It must not block long:
 * every later submission waits for it. */
typedef void (*events_done_fn)(void *arg, const struct events_outcome *o);

/* events_record - store @n events (1..) durably, then call @done(@arg).
 * The events are copied before this returns. They must be valid (ids
 * 1..EVENTS_ID_MAX bytes, a type, weight > 0, time >= 0): the caller
 * checks requests. A submission that would put a user past
 * EVENTS_USER_MAX, or the state past opts->max_bytes, stores nothing and
 * ends with ERR_TOO_BIG.
 * Returns 0 (@done will be called), ERR_TOO_BIG (the queue is full),
 * -ESHUTDOWN (closing), -ENOMEM; @done is then never called. */
int events_record(struct events *ev, const struct events_event *list, uint32_t n,
                  events_done_fn done, void *arg, struct err *e);

/* events_forget - delete every event of user @user durably, then call
 * @done(@arg) with the number deleted. Returns as events_record. */
int events_forget(struct events *ev, const char *user, size_t len, events_done_fn done, void *arg,
                  struct err *e);

/* events_compact - delete, soon and in the background, every event at or
 * before @through_ms (a model holding them is now served). Only ever
 * moves forward: a smaller value than an earlier call's is ignored.
 * Async-safe with respect to serving threads; returns at once. */
void events_compact(struct events *ev, int64_t through_ms);

/* ---- what it holds ------------------------------------------------------ */

struct events_stats {
    uint64_t stored[EVENTS_TYPES];   /* events held, by type: pending compaction */
    uint64_t recorded[EVENTS_TYPES]; /* events stored since the store was opened, by type */
    uint64_t forgotten;              /* events deleted by events_forget since open */
    uint64_t compacted;              /* deleted since open because a model holds them */
    uint64_t expired;                /* views deleted since open for their age */
    uint64_t commits;                /* write transactions committed since open */
    uint64_t used_bytes;             /* pages in use in the store */
    uint64_t file_bytes;             /* size of data.mdb: pages ever used */
    uint64_t max_bytes;              /* opts->max_bytes */
    int64_t compacted_through_ms;    /* the last events_compact applied; 0: none */
};

/* events_stats - a consistent snapshot of the counters, from any thread. */
void events_stats(struct events *ev, struct events_stats *s);
