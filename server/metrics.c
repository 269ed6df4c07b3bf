#include "server/metrics.h"

#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "base/err.h"
#include "engine/models.h"
#include "engine/scan.h"
#include "engine/score.h"
#include "model/model.h"
#include "state/events.h"

/* grpc_status_code values as go-grpc-prometheus spells them in grpc_code
 * (Go's codes.Code names: note "Canceled"). */
static const char *const code_names[] = {
    "OK",       "Canceled",        "Unknown",          "InvalidArgument",   "DeadlineExceeded",
    "NotFound", "AlreadyExists",   "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
    "Aborted",  "OutOfRange",      "Unimplemented",    "Internal",          "Unavailable",
    "DataLoss", "Unauthenticated",
};

#define N_CODES      (sizeof(code_names) / sizeof(code_names[0]))
#define CODE_UNKNOWN 2

/* Upper bounds of the handling-time buckets, in microseconds: from a small
 * catalog's call (tens of µs) to a stalled one, about 2.5x apart. */
static const uint32_t bounds_us[] = {25,    50,    100,   250,    500,    1000,   2500,    5000,
                                     10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000};

#define N_BOUNDS  (sizeof(bounds_us) / sizeof(bounds_us[0]))
#define N_BUCKETS (N_BOUNDS + 1) /* the last is +Inf */

/* One method's counts on one worker. Written by that worker only: a relaxed
 * load and store make each update a plain increment that a concurrent
 * scrape reads whole. */
struct row {
    _Atomic uint64_t handled[N_CODES];
    _Atomic uint64_t buckets[N_BUCKETS]; /* not cumulative; the scrape sums them */
    _Atomic uint64_t sum_ns;
};

struct method_label {
    char *service;    /* "recsys.v1.Recommender" */
    char *method;     /* "Recommend" */
    const char *type; /* "unary" or "bidi_stream" */
};

/* recsys_recommendations_total's source labels. */
static const char *const source_names[METRICS_SOURCES] = {
    [METRICS_PERSONALIZED] = "personalized",
    [METRICS_POPULAR] = "popular",
    [METRICS_FOLDED_IN] = "folded_in",
};

struct metrics {
    unsigned workers;
    size_t n_rows;      /* the methods, then the row for unknown methods */
    size_t block_bytes; /* one worker's rows and notes, rounded up to a cache line */
    unsigned char *blocks;
    struct method_label *labels;
};

#define CACHE_LINE 64

static struct row *row_of(const struct metrics *m, unsigned worker, size_t method)
{
    return (struct row *)(m->blocks + worker * m->block_bytes) + method;
}

/* A worker's notes follow its rows. */
static _Atomic uint64_t *notes_of(const struct metrics *m, unsigned worker)
{
    return (_Atomic uint64_t *)row_of(m, worker, m->n_rows);
}

static void bump(_Atomic uint64_t *c, uint64_t by)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + by,
                          memory_order_relaxed);
}

static uint64_t sum(const struct metrics *m, size_t method, size_t offset)
{
    uint64_t total = 0;
    for (unsigned w = 0; w < m->workers; w++) {
        const unsigned char *row = (const unsigned char *)row_of(m, w, method);
        total += atomic_load_explicit((_Atomic uint64_t *)(row + offset), memory_order_relaxed);
    }
    return total;
}

/* ---- set-up -------------------------------------------------------------- */

/* split_path - "/pkg.Service/Method" into its two labels. */
static int split_path(const char *path, struct method_label *l)
{
    const char *slash = path[0] == '/' ? strchr(path + 1, '/') : NULL;
    if (slash == NULL || slash == path + 1 || slash[1] == '\0' || strchr(slash + 1, '/') != NULL)
        return ERR_INVALID;
    l->service = strndup(path + 1, (size_t)(slash - path - 1));
    l->method = strdup(slash + 1);
    l->type = "unary";
    return l->service != NULL && l->method != NULL ? 0 : -ENOMEM;
}

int metrics_create(unsigned workers, const char *const *paths, const bool *streams, size_t n_paths,
                   struct metrics **out)
{
    struct metrics *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return -ENOMEM;
    m->workers = workers;
    m->n_rows = n_paths + 1;
    size_t used = m->n_rows * sizeof(struct row) + METRICS_NOTES * sizeof(uint64_t);
    m->block_bytes = (used + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
    m->blocks = aligned_alloc(CACHE_LINE, m->block_bytes * (workers > 0 ? workers : 1));
    m->labels = calloc(m->n_rows, sizeof(*m->labels));
    int rc = m->blocks != NULL && m->labels != NULL ? 0 : -ENOMEM;
    if (m->blocks != NULL)
        memset(m->blocks, 0, m->block_bytes * (workers > 0 ? workers : 1));
    for (size_t i = 0; rc == 0 && i < n_paths; i++) {
        rc = split_path(paths[i], &m->labels[i]);
        if (streams != NULL && streams[i])
            m->labels[i].type = "bidi_stream";
    }
    if (rc == 0) {
        m->labels[n_paths].type = "unary";
        m->labels[n_paths].service = strdup("unknown");
        m->labels[n_paths].method = strdup("unknown");
        if (m->labels[n_paths].service == NULL || m->labels[n_paths].method == NULL)
            rc = -ENOMEM;
    }
    if (rc != 0) {
        metrics_destroy(m);
        return rc;
    }
    *out = m;
    return 0;
}

void metrics_destroy(struct metrics *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; m->labels != NULL && i < m->n_rows; i++) {
        free(m->labels[i].service);
        free(m->labels[i].method);
    }
    free(m->labels);
    free(m->blocks);
    free(m);
}

/* ---- the hot side --------------------------------------------------------- */

void metrics_record(struct metrics *m, unsigned worker, size_t method, int status, uint64_t ns)
{
    if (method >= m->n_rows)
        method = m->n_rows - 1;
    struct row *r = row_of(m, worker, method);
    size_t code = status >= 0 && (size_t)status < N_CODES ? (size_t)status : CODE_UNKNOWN;
    uint64_t us = (ns + 999) / 1000; /* rounded up: a bucket holds calls of at most its bound */
    size_t b = 0;
    while (b < N_BOUNDS && us > bounds_us[b])
        b++;
    bump(&r->handled[code], 1);
    bump(&r->buckets[b], 1);
    bump(&r->sum_ns, ns);
}

void metrics_note(struct metrics *m, unsigned worker, enum metrics_note what, uint64_t n)
{
    bump(&notes_of(m, worker)[what], n);
}

uint64_t metrics_noted(const struct metrics *m, enum metrics_note what)
{
    uint64_t total = 0;
    for (unsigned w = 0; w < m->workers; w++)
        total += atomic_load_explicit(&notes_of(m, w)[what], memory_order_relaxed);
    return total;
}

uint64_t metrics_handled(const struct metrics *m, size_t method, int status)
{
    if (method >= m->n_rows || status < 0 || (size_t)status >= N_CODES)
        return 0;
    return sum(m, method, offsetof(struct row, handled) + (size_t)status * sizeof(uint64_t));
}

/* ---- the exposition ------------------------------------------------------- */

void metrics_label(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s != '\0'; s++) {
        if (*s == '\\' || *s == '"')
            fputc('\\', out);
        if (*s == '\n')
            fputs("\\n", out);
        else
            fputc(*s, out);
    }
    fputc('"', out);
}

static void series_labels(FILE *out, const struct method_label *l)
{
    fprintf(out, "{grpc_type=\"%s\",grpc_service=", l->type);
    metrics_label(out, l->service);
    fputs(",grpc_method=", out);
    metrics_label(out, l->method);
}

static uint64_t row_calls(const struct metrics *m, size_t method)
{
    uint64_t calls = 0;
    for (size_t b = 0; b < N_BUCKETS; b++)
        calls += sum(m, method, offsetof(struct row, buckets) + b * sizeof(uint64_t));
    return calls;
}

/* A served method's series are written even before its first call, so a
 * rate over them exists from the start; the unknown row only once used. */
static bool row_shown(const struct metrics *m, size_t method)
{
    return method + 1 < m->n_rows || row_calls(m, method) > 0;
}

static void write_handled(const struct metrics *m, FILE *out)
{
    fputs("# HELP grpc_server_handled_total Total number of RPCs completed on the server, "
          "regardless of success or failure.\n"
          "# TYPE grpc_server_handled_total counter\n",
          out);
    for (size_t i = 0; i < m->n_rows; i++) {
        if (!row_shown(m, i))
            continue;
        for (size_t c = 0; c < N_CODES; c++) {
            uint64_t n = metrics_handled(m, i, (int)c);
            if (n == 0 && c != 0)
                continue;
            fputs("grpc_server_handled_total", out);
            series_labels(out, &m->labels[i]);
            fprintf(out, ",grpc_code=\"%s\"} %llu\n", code_names[c], (unsigned long long)n);
        }
    }
}

static void write_handling(const struct metrics *m, FILE *out)
{
    fputs("# HELP grpc_server_handling_seconds Histogram of response latency (seconds) of gRPC "
          "that had been application-level handled by the server.\n"
          "# TYPE grpc_server_handling_seconds histogram\n",
          out);
    for (size_t i = 0; i < m->n_rows; i++) {
        const struct method_label *l = &m->labels[i];
        uint64_t cumulative = 0;
        if (!row_shown(m, i))
            continue;
        for (size_t b = 0; b < N_BUCKETS; b++) {
            cumulative += sum(m, i, offsetof(struct row, buckets) + b * sizeof(uint64_t));
            fputs("grpc_server_handling_seconds_bucket", out);
            series_labels(out, l);
            if (b < N_BOUNDS)
                fprintf(out, ",le=\"%g\"} %llu\n", bounds_us[b] / 1e6,
                        (unsigned long long)cumulative);
            else
                fprintf(out, ",le=\"+Inf\"} %llu\n", (unsigned long long)cumulative);
        }
        fputs("grpc_server_handling_seconds_sum", out);
        series_labels(out, l);
        fprintf(out, "} %.9f\n", sum(m, i, offsetof(struct row, sum_ns)) / 1e9);
        fputs("grpc_server_handling_seconds_count", out);
        series_labels(out, l);
        fprintf(out, "} %llu\n", (unsigned long long)cumulative);
    }
}

static void write_notes(const struct metrics *m, FILE *out)
{
    metrics_series(out, "recsys_fold_ins_total", "counter",
                   "Users scored with a vector folded in from their recorded events.",
                   (double)metrics_noted(m, METRICS_FOLD_INS));
    metrics_series(out, "recsys_fold_in_seconds_total", "counter",
                   "Time spent folding users in; over recsys_fold_ins_total, the mean.",
                   (double)metrics_noted(m, METRICS_FOLD_IN_NS) / 1e9);
    metrics_series(out, "recsys_state_read_errors_total", "counter",
                   "Users answered from the model alone because the events store could not be "
                   "read.",
                   (double)metrics_noted(m, METRICS_STATE_READ_ERRORS));
}

/* One series of a labelled family (after its HELP and TYPE lines). */
struct labelled {
    const char *label; /* the label's value */
    uint64_t value;
};

static void write_family(FILE *out, const char *name, const char *type, const char *label,
                         const char *help, const struct labelled *rows, size_t n)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    for (size_t i = 0; i < n; i++)
        fprintf(out, "%s{%s=\"%s\"} %llu\n", name, label, rows[i].label,
                (unsigned long long)rows[i].value);
}

int metrics_write_events(const struct events_stats *s, FILE *out)
{
    struct labelled recorded[EVENTS_TYPES - 1], pending[EVENTS_TYPES - 1];
    for (int t = 1; t < EVENTS_TYPES; t++) {
        recorded[t - 1] = (struct labelled){events_type_names[t], s->recorded[t]};
        pending[t - 1] = (struct labelled){events_type_names[t], s->stored[t]};
    }
    const struct labelled deleted[] = {
        {"compacted", s->compacted}, {"expired", s->expired}, {"forgotten", s->forgotten}};
    const struct labelled bytes[] = {
        {"used", s->used_bytes}, {"file", s->file_bytes}, {"max", s->max_bytes}};
    write_family(out, "recsys_events_recorded_total", "counter", "type",
                 "Events stored by RecordEvents since start, by type.", recorded, EVENTS_TYPES - 1);
    write_family(out, "recsys_events_pending", "gauge", "type",
                 "Events held until a served model holds them, by type.", pending,
                 EVENTS_TYPES - 1);
    write_family(out, "recsys_events_deleted_total", "counter", "reason",
                 "Events deleted since start: compacted (a served model holds them), expired "
                 "(views past --view-ttl) or forgotten (ForgetUser).",
                 deleted, 3);
    write_family(out, "recsys_state_bytes", "gauge", "kind",
                 "The state's size: used (pages in use), file (the most it has used) and max "
                 "(--state-max-bytes).",
                 bytes, 3);
    metrics_series(out, "recsys_state_commits_total", "counter",
                   "Write transactions of the state committed (each one fsync).",
                   (double)s->commits);
    metrics_series(out, "recsys_state_compacted_through_seconds", "gauge",
                   "Recorded events up to this time were deleted: a served model holds them.",
                   (double)s->compacted_through_ms / 1e3);
    return ferror(out) ? -EIO : 0;
}

int metrics_write(const struct metrics *m, FILE *out)
{
    write_handled(m, out);
    write_handling(m, out);
    write_notes(m, out);
    return ferror(out) ? -EIO : 0;
}

/* ---- process ------------------------------------------------------------- */

/* The fields of /proc/self/stat this reads, numbered as proc(5) does. */
enum { STAT_UTIME = 14, STAT_STIME = 15, STAT_STARTTIME = 22, STAT_VSIZE = 23, STAT_RSS = 24 };

/* read_stat - fields 14..24 of /proc/self/stat into @f (indexed by number). */
static int read_stat(unsigned long long f[STAT_RSS + 1])
{
    char buf[1024];
    FILE *in = fopen("/proc/self/stat", "r");
    if (in == NULL)
        return -errno;
    size_t n = fread(buf, 1, sizeof(buf) - 1, in);
    fclose(in);
    buf[n] = '\0';
    /* The command name (field 2) may hold spaces and parentheses: the
     * fields that follow start after its last ')'. */
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return ERR_INTERNAL;
    p++;
    for (int field = 3; field <= STAT_RSS; field++) {
        while (*p == ' ')
            p++;
        if (*p == '\0')
            return ERR_INTERNAL;
        char *end;
        f[field] = strtoull(p, &end, 10); /* field 3, the state letter, reads as 0 */
        p = end;
        while (*p != ' ' && *p != '\0')
            p++;
    }
    return 0;
}

/* boot_time - seconds since the epoch at boot, from /proc/stat's btime. */
static long long boot_time(void)
{
    FILE *in = fopen("/proc/stat", "r");
    char line[256];
    long long btime = 0;
    while (in != NULL && fgets(line, sizeof(line), in) != NULL)
        if (sscanf(line, "btime %lld", &btime) == 1)
            break;
    if (in != NULL)
        fclose(in);
    return btime;
}

static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    long n = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        n += de->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the descriptor opendir holds */
}

void metrics_series(FILE *out, const char *name, const char *type, const char *help, double value)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, value);
}

int metrics_write_process(FILE *out)
{
    unsigned long long f[STAT_RSS + 1] = {0};
    if (read_stat(f) != 0)
        return ferror(out) ? -EIO : 0; /* no /proc: nothing to say */
    double ticks = (double)sysconf(_SC_CLK_TCK);
    double page = (double)sysconf(_SC_PAGESIZE);
    metrics_series(out, "process_cpu_seconds_total", "counter",
                   "Total user and system CPU time spent in seconds.",
                   (double)(f[STAT_UTIME] + f[STAT_STIME]) / ticks);
    metrics_series(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
                   (double)f[STAT_RSS] * page);
    metrics_series(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
                   (double)f[STAT_VSIZE]);
    metrics_series(out, "process_start_time_seconds", "gauge",
                   "Start time of the process since unix epoch in seconds.",
                   (double)boot_time() + (double)f[STAT_STARTTIME] / ticks);
    long fds = open_fds();
    if (fds >= 0)
        metrics_series(out, "process_open_fds", "gauge", "Number of open file descriptors.",
                       (double)fds);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        metrics_series(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
                       (double)rl.rlim_cur);
    return ferror(out) ? -EIO : 0;
}

/* ---- the models served and their loads ----------------------------------- */

/* The sample line's start: NAME{model="x" (the caller closes the braces). */
static void model_sample(FILE *out, const char *name, const char *model)
{
    fprintf(out, "%s{model=", name);
    metrics_label(out, model);
}

/* The probe's time per query of each copy timed, when the model was
 * probed (--scan auto, and a reduced copy to choose from: scan.h). */
static void write_scan_probe(const struct models_view *v, FILE *out)
{
    fputs("# HELP recsys_scan_probe_seconds Seconds per Recommend scan of each copy of the item "
          "matrix, timed when the model served was loaded; the fastest is scanned.\n"
          "# TYPE recsys_scan_probe_seconds gauge\n",
          out);
    for (size_t i = 0; i < v->n; i++) {
        const struct model *m = reload_current(v->entries[i].reload)->model;
        const struct model_scan *s = m != NULL ? model_scan(m) : NULL;
        for (int elem = 0; s != NULL && elem < MODEL_ELEM_COUNT; elem++) {
            if (s->query_seconds[elem] <= 0)
                continue;
            model_sample(out, "recsys_scan_probe_seconds", v->entries[i].name);
            fprintf(out, ",copy=\"%s\"} %.17g\n", model_elem_names[elem], s->query_seconds[elem]);
        }
    }
}

static void write_model_info(const struct models_view *v, FILE *out)
{
    fputs("# HELP recsys_model_info The model served; labels describe it, the value is 1.\n"
          "# TYPE recsys_model_info gauge\n",
          out);
    for (size_t i = 0; i < v->n; i++) {
        const struct model *m = reload_current(v->entries[i].reload)->model;
        if (m == NULL)
            continue;
        const struct model_info *mi = model_info(m);
        model_sample(out, "recsys_model_info", v->entries[i].name);
        fputs(",version=", out);
        metrics_label(out, mi->version);
        fputs(",checksum=", out);
        metrics_label(out, mi->checksum);
        fprintf(out, ",element_type=\"%s\",scan=\"%s\",kernel=\"%s\"} 1\n",
                model_elem_names[mi->elem_type], model_elem_names[scan_elem(m)],
                score_kernel_name());
    }
}

/* A per-model series: its value from the model's snapshot, for the models
 * loaded only (model_only) or for all. */
struct model_series {
    const char *name, *type, *help;
    bool model_only;
    double (*value)(const struct reload_snapshot *s);
};

static double loaded(const struct reload_snapshot *s)
{
    return s->model != NULL;
}

static double items(const struct reload_snapshot *s)
{
    return (double)model_info(s->model)->item_count;
}

static double users(const struct reload_snapshot *s)
{
    return (double)model_info(s->model)->user_count;
}

static double dimension(const struct reload_snapshot *s)
{
    return model_info(s->model)->dim;
}

static double created(const struct reload_snapshot *s)
{
    return (double)model_info(s->model)->created_at;
}

static double loaded_at(const struct reload_snapshot *s)
{
    return (double)model_info(s->model)->loaded_at;
}

static double file_bytes(const struct reload_snapshot *s)
{
    return (double)model_info(s->model)->file_bytes;
}

static double loads(const struct reload_snapshot *s)
{
    return (double)s->reload_count;
}

static double failures(const struct reload_snapshot *s)
{
    return (double)s->failed_count;
}

static double attempted(const struct reload_snapshot *s)
{
    return (double)s->last_attempt_unix;
}

static double watched(const struct reload_snapshot *s)
{
    return s->watching;
}

static double last_failed(const struct reload_snapshot *s)
{
    return s->last_error[0] != '\0';
}

static const struct model_series model_series[] = {
    {"recsys_model_loaded", "gauge", "1 while a model is served, 0 while none is.", false, loaded},
    {"recsys_model_items", "gauge", "Items in the model served.", true, items},
    {"recsys_model_users", "gauge", "Users in the model served.", true, users},
    {"recsys_model_dimension", "gauge", "Factor dimension of the model served.", true, dimension},
    {"recsys_model_created_timestamp_seconds", "gauge",
     "When the model served was created, unix seconds.", true, created},
    {"recsys_model_loaded_timestamp_seconds", "gauge",
     "When the model served was loaded, unix seconds.", true, loaded_at},
    {"recsys_model_file_bytes", "gauge", "Bytes of the model file served, mapped once.", true,
     file_bytes},
    {"recsys_model_loads_total", "counter", "Models loaded, the first one included.", false, loads},
    {"recsys_model_load_failures_total", "counter",
     "Load attempts refused: a missing or invalid model file.", false, failures},
    {"recsys_model_last_load_attempt_timestamp_seconds", "gauge",
     "When the model file was last loaded or refused, unix seconds.", false, attempted},
    {"recsys_model_directory_watched", "gauge",
     "1 while the model's directory is followed for new files; 0 from its removal until it is "
     "back.",
     false, watched},
    {"recsys_model_last_load_failed", "gauge",
     "1 when the last load attempt was refused (or the model withdrawn), else 0.", false,
     last_failed},
};

static void write_recommendations(const struct models_view *v, FILE *out)
{
    fputs("# HELP recsys_recommendations_total Recommendation lists answered (Recommend and each "
          "request of BatchRecommend), by the model that answered and source: personalized, "
          "folded_in for a user scored from recorded events, or popular for a user the model "
          "does not know or knows without factors.\n"
          "# TYPE recsys_recommendations_total counter\n",
          out);
    for (size_t i = 0; i < v->n; i++)
        for (int n = 0; n < METRICS_SOURCES; n++) {
            model_sample(out, "recsys_recommendations_total", v->entries[i].name);
            fprintf(out, ",source=\"%s\"} %llu\n", source_names[n],
                    (unsigned long long)models_counted(&v->entries[i], (unsigned)n));
        }
}

/* The route: each model's share, and whether routes.json is refused. */
static void write_route(const struct models_view *v, FILE *out)
{
    uint32_t share[MODELS_MAX];
    models_shares(v, share);
    fputs("# HELP recsys_route_share_percent Percent of users the route sends to the model.\n"
          "# TYPE recsys_route_share_percent gauge\n",
          out);
    for (size_t i = 0; i < v->n; i++) {
        model_sample(out, "recsys_route_share_percent", v->entries[i].name);
        fprintf(out, "} %u\n", share[i]);
    }
    metrics_series(out, "recsys_route_file_refused", "gauge",
                   "1 while the last routes.json read was refused and the route before it "
                   "serves, else 0.",
                   v->route_error[0] != '\0');
    metrics_series(out, "recsys_models_mapped_bytes", "gauge",
                   "Bytes of model files mapped: each model's served file once.",
                   (double)models_mapped_bytes(v));
}

int metrics_write_models(const struct models_view *v, FILE *out)
{
    write_model_info(v, out);
    write_scan_probe(v, out);
    for (size_t k = 0; k < sizeof(model_series) / sizeof(model_series[0]); k++) {
        const struct model_series *ms = &model_series[k];
        fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", ms->name, ms->help, ms->name, ms->type);
        for (size_t i = 0; i < v->n; i++) {
            const struct reload_snapshot *snap = reload_current(v->entries[i].reload);
            if (ms->model_only && snap->model == NULL)
                continue;
            model_sample(out, ms->name, v->entries[i].name);
            fprintf(out, "} %.17g\n", ms->value(snap));
        }
    }
    write_recommendations(v, out);
    write_route(v, out);
    return ferror(out) ? -EIO : 0;
}
