/*
 * metrics: what the server has answered, counted per worker, and written
 * out in the Prometheus text exposition format.
 *
 * Each worker thread counts into its own cache-line-aligned block, which
 * only that thread writes, so recording a call is a few plain stores with
 * no lock, no atomic read-modify-write and no shared cache line. A scrape
 * sums the blocks; it may see a call counted in one metric and not yet in
 * the next, never a torn value.
 *
 * The series are named as go-grpc-prometheus names them, so the dashboards
 * and alerts written for it work unchanged:
 *
 *   grpc_server_handled_total{grpc_type, grpc_service, grpc_method, grpc_code}
 *   grpc_server_handling_seconds{grpc_type, grpc_service, grpc_method}  (histogram)
 *
 * The handling time runs from the worker taking the call to its reply being
 * handed to the core: decoding, the query and encoding. Calls to a method
 * the server does not serve are counted under grpc_method="unknown", so a
 * client cannot grow the label set.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct models_view;

struct metrics;

/* metrics_create - counters for @workers threads and the methods @paths
 * ("/package.Service/Method"; copied), plus one row for unknown methods.
 * @streams: per method, true for a bidirectional stream (grpc_type
 *           "bidi_stream", counted once per stream), false for unary;
 *           NULL: all unary.
 * Returns 0, ERR_INVALID (a path not of that form) or -ENOMEM. */
int metrics_create(unsigned workers, const char *const *paths, const bool *streams, size_t n_paths,
                   struct metrics **out);

/* metrics_destroy - free @m. NULL is a no-op. */
void metrics_destroy(struct metrics *m);

/* metrics_record - count one finished call. Only worker thread @worker may
 * record for @worker.
 * @method: index into the paths given to metrics_create; n_paths (or any
 *          larger index) for a method not served.
 * @status: the grpc_status_code answered.
 * @ns:     handling time in nanoseconds. */
void metrics_record(struct metrics *m, unsigned worker, size_t method, int status, uint64_t ns);

/* The source of a recommendation list: recsys_recommendations_total's
 * source label, counted per model in the model's counts (models.h, the
 * index into models_entry.counts). A rising share of popularity lists
 * with steady traffic means the users asking are not in the model, such
 * as a model trained on another system's user ids. */
enum metrics_source {
    METRICS_PERSONALIZED, /* a list scored for the user */
    METRICS_POPULAR,      /* the popularity ranking: user unknown or without factors */
    METRICS_FOLDED_IN,    /* a list scored with a vector folded in from recorded events */
    METRICS_SOURCES
};

/* What a handler notes about its answers, on top of the calls the server
 * counts. */
enum metrics_note {
    /* Vectors folded in, and the nanoseconds spent folding them in: a
     * count and a sum, whose rates give fold-ins per second and their mean
     * time. */
    METRICS_FOLD_INS,
    METRICS_FOLD_IN_NS,
    /* Users answered without their recorded events: the store could not
     * be read (a disk error). */
    METRICS_STATE_READ_ERRORS,
    METRICS_NOTES
};

/* metrics_note - count @n more @what. Only worker thread @worker may note
 * for @worker. */
void metrics_note(struct metrics *m, unsigned worker, enum metrics_note what, uint64_t n);

/* metrics_noted - the count of @what so far, summed over the workers. */
uint64_t metrics_noted(const struct metrics *m, enum metrics_note what);

/* metrics_handled - calls of @method answered with @status so far, summed
 * over the workers (what the scrape reports). */
uint64_t metrics_handled(const struct metrics *m, size_t method, int status);

/* metrics_write - the server's series and the notes, with their HELP and
 * TYPE lines, to @out. Any thread. Returns 0 or -EIO (a write to @out failed). */
int metrics_write(const struct metrics *m, FILE *out);

/* metrics_write_process - the standard process_* series of Prometheus
 * clients (resident and virtual memory, CPU seconds, start time, open
 * descriptors) from /proc/self, to @out. Returns 0 or -EIO. */
int metrics_write_process(FILE *out);

/* metrics_write_models - every model of view @v, its load history and its
 * recommendation lists by source as recsys_model_* series labelled with
 * the model (and recsys_recommendations_total{model,source}), the route's
 * shares and the bytes mapped, with HELP and TYPE lines, to @out: the
 * facts GetModelInfo gives. The caller holds @v's read-side section.
 * Returns 0 or -EIO. */
int metrics_write_models(const struct models_view *v, FILE *out);

struct events_stats;

/* metrics_write_events - the live events store's counters (@s, from
 * events_stats) as recsys_events_* and recsys_state_* series, to @out.
 * Returns 0 or -EIO. */
int metrics_write_events(const struct events_stats *s, FILE *out);

/* metrics_series - one unlabelled series with its HELP and TYPE lines:
 * @type is "gauge" or "counter". For the other writers of series. */
void metrics_series(FILE *out, const char *name, const char *type, const char *help, double value);

/* metrics_label - @s as a quoted Prometheus label value: backslash, double
 * quote and newline escaped. For the other writers of series. */
void metrics_label(FILE *out, const char *s);
