/*
 * models: the named models a daemon serves, and the route that picks one
 * for a call that names none.
 *
 * Two ways to start:
 *
 *   models_open_file (--model PATH)  one model, named "default", followed
 *       by its reloader (reload.h) as ever; the route is that model.
 *   models_open_dir (--models-dir DIR)  every DIR/NAME.lmdb whose NAME is
 *       a model name (route.h) is a model, with a reloader of its own: each
 *       is validated, hot-swapped and refused on its own, exactly as the
 *       single model is. DIR/routes.json is the route (route.h); without
 *       it, the route is the model named "default", else the only model.
 *       Other names in DIR are ignored, and logged once; hidden names
 *       (".x", such as model_write's temporaries) silently.
 *
 * A directory watcher thread follows DIR with inotify: a model file that
 * appears gets its reloader (the first load runs before the model is
 * listed: a listed model has been tried), one removed or renamed away is
 * dropped (after a grace period, so no call still reads it), and a new or
 * changed routes.json is read, checked against the models listed (each
 * model it names must be listed and loaded) and put in force, or refused
 * with the reason logged and reported while the route in force stays. The
 * route is checked again whenever the models change, so a routes file
 * that came before its model is taken once the model is loaded. A model of
 * the split that is not listed any more (its file removed) has its share
 * go to the default.
 *
 * What calls see is a view: the models listed and the route, immutable
 * once published, read in the reloaders' RCU domain (reload.h). A call
 * reads the view once, picks its model there, and reads that model's
 * snapshot in the same section: it is served by exactly one file of
 * exactly one model.
 *
 * Memory: each model is mapped once, however many arms name it; a swap
 * in progress maps its old file until its last call ends. So at most the
 * sum of the served files plus one file per swap in progress.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "engine/reload.h"
#include "engine/route.h"

/* Models a directory may hold; names past it are ignored, and logged. Each
 * costs a watcher thread and an inotify instance (128 per user by
 * default: fs.inotify.max_user_instances). */
#define MODELS_MAX 32

/* Counters a model carries for the server's metrics, which decides what
 * each counts (its answers, by source): a cache line of them per lookup
 * slot, written only by the thread that owns the slot, with plain stores
 * (no lock, no read-modify-write on the call path), and summed by whoever
 * reads them. They start at 0 when the model is listed and go with it. */
#define MODELS_COUNTS 8

struct models_counts {
    uint64_t n[MODELS_COUNTS];
} __attribute__((aligned(64)));

/* The name the single model of models_open_file is served under. */
#define MODELS_DEFAULT "default"

/* The name of the route file in a models directory. */
#define MODELS_ROUTES "routes.json"

/* One model listed. Valid as long as the view that lists it. */
struct models_entry {
    const char *name;
    const struct reload *reload;  /* its snapshot: reload_current() in the view's section */
    struct models_counts *counts; /* one per lookup slot: models_count, models_counted */
    unsigned slots;
};

/* models_count - add @n to counter @what of @en, on the thread owning
 * lookup slot @slot. */
static inline void models_count(const struct models_entry *en, unsigned slot, unsigned what,
                                uint64_t n)
{
    uint64_t *c = &en->counts[slot].n[what];
    __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

/* models_counted - counter @what of @en, summed over the slots: a count
 * may miss what a slot adds meanwhile, never tear. */
uint64_t models_counted(const struct models_entry *en, unsigned what);

/* What a call sees. Immutable once published; valid until the
 * models_read_end() of the section it was read in. */
struct models_view {
    size_t n;
    const struct models_entry *entries; /* n, in byte order of name */
    const char *dir;                    /* --models-dir; "" for --model */
    /* The route in force. route.default_name may name no listed model (its
     * file removed, or no model named "default" among several): the
     * default is then -1, and calls that name no model answer
     * UNAVAILABLE. */
    const struct route *route;
    int default_entry; /* index in entries of route->default_name; -1: not listed */
    /* With a split: for each bucket (route_bucket), the index in entries
     * of the model its arm names, or default_entry where that model is not
     * listed. NULL without a split. */
    const int8_t *buckets;
    /* Where the route comes from: "routes.json", "the model named default",
     * "the only model", "--model". */
    const char *route_source;
    /* Why routes.json is not what is in force: its last refusal; "" when
     * the file is in force or absent. */
    const char *route_error;
    int64_t route_since_unix; /* when the route in force was put in force */
};

/* Told when the models change what they all hold of the past: the
 * earliest data end (model_training's data_end_unix_ms) among the loaded
 * models, each time a model is published or one is dropped. A loaded
 * model whose file says no data end makes it 0. On a watcher thread;
 * must not block long. The live events store compacts through it: every
 * model served holds the events before it. */
struct models_listener {
    void (*covered)(int64_t data_end_unix_ms, void *arg);
    void *arg;
};

struct models;

/* models_open_file - serve the one model at @path, named "default".
 * models_open_dir - serve the models of directory @dir (which must exist)
 *         and follow it.
 * @slots:    lookup slots each model is opened with (reload_start).
 * @listener: copied; NULL for none.
 * @out:      receives the set; stop and free it with models_stop.
 * Each model's first load, and the directory's first reading, run before
 * these return; a missing, refused or absent model is no error (calls
 * answer UNAVAILABLE until one is loaded). The calling thread must not be
 * inside a read-side section.
 * Returns 0, ERR_INVALID, -ENOMEM or -errno (-ENOENT: no such directory;
 * the reloader's errors), with @e set. */
int models_open_file(const char *path, unsigned slots, const struct models_listener *listener,
                     struct models **out, struct err *e);
int models_open_dir(const char *dir, unsigned slots, const struct models_listener *listener,
                    struct models **out, struct err *e);

/* models_request - SIGHUP: every model loads its file now (reload_request),
 * and the directory and routes.json are read again. Returns at once.
 * Async-signal-safe. */
void models_request(struct models *ms);

/* models_stop - stop following, close every model, free @ms. No thread may
 * be reading a view any more. NULL is a no-op. */
void models_stop(struct models *ms);

/* models_read_begin - open a read-side section (reload.h) and return the
 * current view, never NULL. Sections nest with the reloaders'. */
const struct models_view *models_read_begin(const struct models *ms);

/* models_read_end - close the section of models_read_begin. */
void models_read_end(const struct models *ms);

/* What a call is served by. */
struct models_pick {
    const struct models_entry *entry; /* NULL: the route's default is not listed */
    const char *name;                 /* the model's name; never NULL */
    /* Its snapshot (model NULL while none is loaded); NULL with entry. */
    const struct reload_snapshot *snap;
};

/* models_pick - the model that serves a call naming @name for @user, in
 * view @v, inside its section: the model named, or for "" the route's
 * (by @user's bucket with a split; the default for a call without a user,
 * @user ""). Returns 0, or ERR_NOT_FOUND (no model of that name: "model
 * 'x' not found"). */
int models_pick(const struct models_view *v, const char *name, const char *user,
                struct models_pick *out, struct err *e);

/* models_ready - whether every model the route sends users to (the
 * default, and each arm with a weight) is listed and loaded: what health
 * answers SERVING on. Inside @v's section. */
bool models_ready(const struct models_view *v);

/* models_shares - in @share[i], the percent of users the route sends to
 * v->entries[i] (the default's includes the buckets of arms whose model is
 * gone). */
void models_shares(const struct models_view *v, uint32_t share[MODELS_MAX]);

/* models_mapped_bytes - the bytes of the model files mapped now: each
 * listed model's served file once. Inside @v's section. */
uint64_t models_mapped_bytes(const struct models_view *v);
