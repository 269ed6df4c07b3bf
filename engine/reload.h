/*
 * reload: serve the model at a path and replace it, without stopping, when
 * the file is replaced.
 *
 * reload_start() starts a watcher thread, which loads the file, then
 * follows its directory with inotify (and reload_request(), for SIGHUP).
 * When a new file appears at the path the watcher opens it, validates it
 * completely (model_open: the checks of `recsys-model verify`), prepares
 * its scans (scan_prepare) and times the scan of each copy of its item
 * matrix to choose the one to serve from (scan_probe, under --scan auto),
 * and publishes it with one pointer store. Serving threads never wait:
 * they read the current snapshot inside an RCU read-side section, and the
 * old model is unmapped only after an RCU grace period, once no call can
 * still see it.
 *
 * A snapshot is immutable: one call reads it once and uses its model
 * throughout, so one response never mixes two models.
 *
 * A file that fails validation is refused: the model already served stays,
 * and the refusal is counted and visible in the snapshot.
 *
 * Publishing a model safely: write a new file in the same directory, fsync
 * it, rename it over the path (model_write() does exactly this). Writing
 * the served file in place would change the bytes under running calls (a
 * truncation makes them fault), so the watcher holds a read lease on the
 * served file: the kernel holds such a writer up until the model has been
 * withdrawn and unmapped, calls answer UNAVAILABLE meanwhile, and the file
 * is validated and served again once the writer closes it. Where no lease
 * can be taken, the first write is noticed and the model withdrawn right
 * after it (see reload.c).
 *
 * Signals: the watcher thread uses SIGRTMIN for lease breaks, directed at
 * itself and blocked there; nothing else in the process may use it.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "model/model.h"

struct reload;

/* What a call sees. Immutable once published; valid until the
 * reload_read_end() that closes the section it was read in. */
struct reload_snapshot {
    const struct model *model; /* NULL while no valid model is loaded: answer UNAVAILABLE */
    uint64_t reload_count;     /* models loaded, the initial one included */
    uint64_t failed_count;     /* attempts that produced no model: missing or invalid file */
    int64_t last_attempt_unix; /* unix seconds of the last load attempt; 0 if none */
    /* Why the model served is not the file's current content: the reason the
     * last attempt failed, or why the model was withdrawn; "" when the last
     * attempt succeeded. NUL-terminated, owned by the snapshot. */
    const char *last_error;
    /* The model's directory is followed. False from its removal (or move)
     * until it is back, which the watcher looks for every second; new
     * files are not seen meanwhile, and last_error says so. */
    bool watching;
};

/* Told of each model the reloader publishes, the first one included: on
 * the watcher thread, right after the store that publishes it. @m is valid
 * during the call (and until the next model's grace period). It must not
 * block long: the watcher waits for it. The live events store listens, to
 * delete the events the new model holds (events_compact). */
struct reload_listener {
    void (*published)(const struct model *m, void *arg);
    void *arg;
};

/* reload_start - load the model at @path and start following it.
 * @path:  the model file; its directory must exist, the file need not. The
 *         string is copied.
 * @slots: lookup slots each model is opened with (model_open): one per
 *         thread that reads the model concurrently, i.e. per server worker.
 * @listener: copied; NULL for none.
 * @out:   receives the reloader; stop and free it with reload_stop.
 * @e:     receives the reason on failure; may be NULL.
 *
 * The first load runs, on the watcher thread, before this returns. Its
 * failure is not an error: it is logged and recorded in the snapshot (model
 * NULL), and the file is loaded as soon as a valid one appears at the path.
 *
 * The calling thread must not be inside a read-side section (the load
 * waits for a grace period).
 * Returns 0, ERR_INVALID (@path names no file: empty, or ends in '/'),
 * -ENOMEM, or -errno from inotify (-ENOENT: the directory does not exist),
 * eventfd or pthread_create. On failure nothing is left running. */
int reload_start(const char *path, unsigned slots, const struct reload_listener *listener,
                 struct reload **out, struct err *e);

/* reload_request - ask the watcher to load the file at the path now (SIGHUP).
 * Returns at once; the load runs on the watcher thread. Async-signal-safe:
 * one write to an eventfd. It loads even what the watches cannot see (a
 * symlink's target replaced by a rename in another directory) and re-arms
 * the directory watch at once if the directory had been removed (the
 * watcher also looks for it every second). A file identical
 * to the one served (same inode, size and mtime) is not loaded again, but
 * the attempt is recorded (last_attempt_unix) and logged; a refused one is
 * retried. A file some process holds open for writing is
 * not read at all: its writer's close starts the load. */
void reload_request(struct reload *r);

/* reload_stop - stop the watcher, close the model, free @r.
 * No thread may be reading a snapshot of @r any more (stop the server
 * first). NULL is a no-op. */
void reload_stop(struct reload *r);

/* ---- the read side -------------------------------------------------------- */

/* reload_reader_register - make the calling thread a reader. Every thread
 * that calls reload_read_begin() must register first, once, and unregister
 * before it exits. */
void reload_reader_register(void);
void reload_reader_unregister(void);

/* reload_read_begin - open a read-side section and return the current
 * snapshot (never NULL). No lock and no wait: a thread-local counter update
 * at each end of the section, one load, and at the end a futex wake-up only
 * while a grace period is waiting for this thread. The snapshot, its model and everything reached
 * through it stay valid until reload_read_end(); read it once per call.
 * Sections may nest; a thread inside one must not call reload_start or
 * reload_stop (they wait for every section to end). */
const struct reload_snapshot *reload_read_begin(const struct reload *r);

/* reload_read_end - close the section opened by reload_read_begin(). */
void reload_read_end(const struct reload *r);

/* The read side is one RCU domain for the process: a section protects the
 * snapshots of every reloader, and what others publish the same way (the
 * model set's views, models.h), so one section can read several.
 *
 * reload_section_begin/end - open and close a read-side section without
 * reading a snapshot yet; the same rules as reload_read_begin/end. */
void reload_section_begin(void);
void reload_section_end(void);

/* reload_current - @r's current snapshot. Only inside a section; valid
 * until it ends. */
const struct reload_snapshot *reload_current(const struct reload *r);

/* reload_synchronize - wait for a grace period: every section begun before
 * the call has ended. For a publisher of its own pointers in this domain,
 * before it frees what they replaced. Not inside a section. */
void reload_synchronize(void);
