/*
 * bench/reload: the model hot swap of the real daemon, under load.
 *
 * The program writes two models of the same shape with model_write (random
 * factors, versions "bench-A" and "bench-B"), starts the real recsysd as a
 * child process on 127.0.0.1:0 (port read from its "listening on" log line)
 * serving one of them, and swaps them by rename while client threads call
 * Recommend. A child process, not an in-process server: its memory figures
 * (/proc/<pid>/status) are then the daemon's alone, not the generator's or
 * the clients', and it runs exactly as deployed (its allocator, its signal
 * handling, its log).
 *
 * A swap is published as operations publish: a new name for the model file
 * is made in the served file's directory and renamed over the path. The
 * new name is a hard link to one of the two files written at the start, so
 * 1,000 swaps cost no copying; the file is in the page cache either way, as
 * a freshly written one would be.
 *
 * Part 1, latency (the large model): client threads call Recommend for
 * random known users back to back, each on its own gRPC client, during
 *
 *   steady (S s) -> swaps (--swaps swaps, --swap-gap-ms apart) -> steady (S s)
 *
 * Each swap is timed from just before rename() to the first GetModelInfo
 * response carrying the new version (polled back to back by the main
 * thread, through the same busy workers), and its "load window" lasts from
 * the rename until the daemon has logged the load, which it does once the
 * old model is unmapped. Reported: p50/p99/max latency of the calls started
 * in the steady phases, in the swap phase, and of those overlapping a load
 * window; rename-to-new-version (median, max); the daemon's own load time
 * (validation and pre-faulting, from its log).
 *
 * Part 1, memory: VmRSS before the swaps, and the peak during them: the
 * kernel's VmHWM, reset before the swaps (/proc/<pid>/clear_refs, 5) where
 * permitted, and a 2 ms sampler of VmRSS. While a call may still use the
 * old model both are mapped, so the peak should be the steady RSS plus one
 * model, never more.
 *
 * Part 2, soak (a smaller model, --soak-items, so 1,000 swaps take about
 * two minutes): one client calls throughout, and every 100 swaps,
 * once the old model is unmapped, the daemon's RSS (anonymous and file),
 * its mappings of model files and its open descriptors on them are printed.
 * Flat is the goal.
 *
 * Usage: reload [--recsysd PATH] [--dir DIR] [--items N] [--users N]
 *               [--dim D] [--threads T] [--clients C] [--steady-seconds S]
 *               [--swaps N] [--swap-gap-ms MS] [--soak-swaps N]
 *               [--soak-items N] [--quantize] [--keep] [--help]
 * recsysd defaults to $RECSYSD, else the recsysd next to this program's
 * directory (build/bench/reload -> build/recsysd).
 */
#define _GNU_SOURCE /* pipe2, getline */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "model/writer.h"
#include "recsys/v1/recommender.pb-c.h"
#include "timing.h"
#include "tools/lib/rpc.h"

enum {
    CATEGORIES = 8,
    OWNED_PER_USER = 5,      /* purchases per user in the generated models */
    TOP = 10,                /* items per Recommend */
    CALL_TIMEOUT_S = 60,     /* per call; a 10^6-item scan takes tens of ms */
    START_TIMEOUT_S = 300,   /* for the daemon's first load */
    SAMPLE_US = 2000,        /* the RSS sampler's period during swaps */
    SOAK_REPORT_EVERY = 100, /* swaps between soak samples */
};

static const char *const RECOMMEND = "/recsys.v1.Recommender/Recommend";
static const char *const INFO = "/recsys.v1.Recommender/GetModelInfo";
static const char *const VERSIONS[2] = {"bench-A", "bench-B"};

static void sleep_ms(double ms)
{
    struct timespec ts = {(time_t)(ms / 1e3), (long)(ms * 1e6) % 1000000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        continue;
}

/* path_join - "@dir/@name" into @buf; -ENAMETOOLONG if it does not fit. */
static int path_join(char *buf, size_t size, const char *dir, const char *name)
{
    int n = snprintf(buf, size, "%s/%s", dir, name);
    return n >= 0 && (size_t)n < size ? 0 : -ENAMETOOLONG;
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "reload: failed to %s (%s)\n", what, err_strerror(rc));
    return 1;
}

/* ==== options =========================================================== */

struct opts {
    const char *recsysd;
    const char *dir;
    uint32_t items, users, dim, threads, clients, steady_s, swaps, gap_ms;
    uint32_t soak_swaps, soak_items;
    uint32_t keep, quantize;
};

enum opt_type { OPT_STR, OPT_U32, OPT_FLAG };

static const struct opt {
    const char *name;
    enum opt_type type;
    size_t offset;
    const char *help;
} opt_table[] = {
    {"recsysd", OPT_STR, offsetof(struct opts, recsysd), "the daemon binary"},
    {"dir", OPT_STR, offsetof(struct opts, dir),
     "where the models go (default: a new /tmp/recsys-bench-*)"},
    {"items", OPT_U32, offsetof(struct opts, items), "items of the large model (1000000)"},
    {"users", OPT_U32, offsetof(struct opts, users), "users of every model (100000)"},
    {"dim", OPT_U32, offsetof(struct opts, dim), "factors per vector (64)"},
    {"threads", OPT_U32, offsetof(struct opts, threads), "the daemon's worker threads (2)"},
    {"clients", OPT_U32, offsetof(struct opts, clients), "client threads in part 1 (4)"},
    {"steady-seconds", OPT_U32, offsetof(struct opts, steady_s),
     "each steady phase of part 1 (15)"},
    {"swaps", OPT_U32, offsetof(struct opts, swaps), "swaps in part 1 (20)"},
    {"swap-gap-ms", OPT_U32, offsetof(struct opts, gap_ms),
     "pause after each swap of part 1 (500)"},
    {"soak-swaps", OPT_U32, offsetof(struct opts, soak_swaps),
     "swaps in part 2; 0 skips it (1000)"},
    {"soak-items", OPT_U32, offsetof(struct opts, soak_items), "items of part 2's model (100000)"},
    {"keep", OPT_FLAG, offsetof(struct opts, keep), "keep the model files and the daemon's logs"},
    {"quantize", OPT_FLAG, offsetof(struct opts, quantize),
     "add the bf16 and int8 copies to the models (the daemon then scans int8 where that is "
     "faster)"},
};

#define N_OPTS (sizeof(opt_table) / sizeof(opt_table[0]))

/* model_src.quantize for --quantize. */
#define QUANTIZE(o) ((o)->quantize ? 1u << MODEL_ELEM_BF16 | 1u << MODEL_ELEM_INT8 : 0u)

static void usage(FILE *out, const char *prog)
{
    fprintf(out, "usage: %s [options]\n", prog);
    for (size_t i = 0; i < N_OPTS; i++)
        fprintf(out, "  --%-15s %s%s\n", opt_table[i].name,
                opt_table[i].type == OPT_FLAG ? "" : "VALUE  ", opt_table[i].help);
}

static int set_opt(struct opts *o, const struct opt *row, const char *value)
{
    char *field = (char *)o + row->offset;
    if (row->type == OPT_STR) {
        *(const char **)field = value;
        return 0;
    }
    char *end;
    errno = 0;
    unsigned long v = strtoul(value, &end, 10);
    if (errno != 0 || end == value || *end != '\0' || v > UINT32_MAX)
        return -1;
    *(uint32_t *)field = (uint32_t)v;
    return 0;
}

/* parse_opts - 0, 1 for --help, -1 for a bad command line. */
static int parse_opts(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){.recsysd = getenv("RECSYSD"),
                       .items = 1000000,
                       .users = 100000,
                       .dim = 64,
                       .threads = 2,
                       .clients = 4,
                       .steady_s = 15,
                       .swaps = 20,
                       .gap_ms = 500,
                       .soak_swaps = 1000,
                       .soak_items = 100000};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0)
            return 1;
        const struct opt *row = NULL;
        for (size_t k = 0; k < N_OPTS; k++)
            if (strncmp(argv[i], "--", 2) == 0 && strcmp(argv[i] + 2, opt_table[k].name) == 0)
                row = &opt_table[k];
        if (row == NULL)
            return -1;
        if (row->type == OPT_FLAG) {
            *(uint32_t *)((char *)o + row->offset) = 1;
            continue;
        }
        if (i + 1 >= argc || set_opt(o, row, argv[++i]) != 0)
            return -1;
    }
    if (o->items < 2 || o->soak_items < 2 || o->users < 1 || o->dim < 1 || o->threads < 1 ||
        o->clients < 1 || o->swaps < 1)
        return -1;
    return 0;
}

/* The daemon next to this program's directory: build/bench/reload ->
 * build/recsysd. */
static const char *default_recsysd(char *buf, size_t size)
{
    ssize_t n = readlink("/proc/self/exe", buf, size - 1);
    if (n <= 0)
        return "recsysd";
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (slash == NULL)
        return "recsysd";
    *slash = '\0';
    slash = strrchr(buf, '/');
    if (slash == NULL)
        return "recsysd";
    snprintf(slash, size - (size_t)(slash - buf), "/recsysd");
    return buf;
}

/* ==== the machine ======================================================= */

static void print_machine(int argc, char **argv)
{
    char cpu[256] = "unknown CPU";
    FILE *f = fopen("/proc/cpuinfo", "r");
    char *line = NULL;
    size_t cap = 0;
    while (f != NULL && getline(&line, &cap, f) > 0) {
        if (strncmp(line, "model name", 10) == 0 && strchr(line, ':') != NULL) {
            snprintf(cpu, sizeof(cpu), "%s", strchr(line, ':') + 2);
            cpu[strcspn(cpu, "\n")] = '\0';
            break;
        }
    }
    free(line);
    if (f != NULL)
        fclose(f);
    struct utsname u;
    uname(&u);
    double ram_gib = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE) / (1 << 30);
    printf("command: ");
    for (int i = 0; i < argc; i++)
        printf("%s%s", i > 0 ? " " : "", argv[i]);
    printf("\nmachine: %s, %ld cores, %.1f GiB RAM, Linux %s\n", cpu, sysconf(_SC_NPROCESSORS_ONLN),
           ram_gib, u.release);
}

/* ==== model files ======================================================= */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A uniform float in [-1, 1). */
static float random_factor(uint64_t *s)
{
    return (float)(splitmix(s) >> 40) / (float)(1 << 23) - 1.0f;
}

/* What two models of one shape share: ids, catalog, purchases. */
struct shape {
    uint32_t items, users, dim;
    char *id_bytes; /* "i%09u" / "u%09u", ID_BYTES each with the NUL */
    const char **item_ids, **user_ids;
    struct model_item_attr *attrs;
    uint64_t *owned_offsets;
    uint32_t *owned_items;
    float *item_factors, *user_factors; /* refilled per model */
    unsigned quantize;                  /* model_src.quantize */
};

#define ID_BYTES 12

static void shape_free(struct shape *s)
{
    free(s->id_bytes);
    free(s->item_ids);
    free(s->user_ids);
    free(s->attrs);
    free(s->owned_offsets);
    free(s->owned_items);
    free(s->item_factors);
    free(s->user_factors);
}

static int shape_init(struct shape *s, uint32_t items, uint32_t users, uint32_t dim,
                      unsigned quantize)
{
    *s = (struct shape){.items = items, .users = users, .dim = dim, .quantize = quantize};
    size_t ids = (size_t)items + users;
    s->id_bytes = malloc(ids * ID_BYTES);
    s->item_ids = malloc(items * sizeof(char *));
    s->user_ids = malloc(users * sizeof(char *));
    s->attrs = calloc(items, sizeof(*s->attrs));
    s->owned_offsets = malloc(((size_t)users + 1) * sizeof(uint64_t));
    s->owned_items = malloc((size_t)users * OWNED_PER_USER * sizeof(uint32_t));
    s->item_factors = malloc((size_t)items * dim * sizeof(float));
    s->user_factors = malloc((size_t)users * dim * sizeof(float));
    if (s->id_bytes == NULL || s->item_ids == NULL || s->user_ids == NULL || s->attrs == NULL ||
        s->owned_offsets == NULL || s->owned_items == NULL || s->item_factors == NULL ||
        s->user_factors == NULL)
        return -ENOMEM;
    uint64_t seed = 42;
    for (uint32_t i = 0; i < items; i++) {
        char *id = s->id_bytes + (size_t)i * ID_BYTES;
        snprintf(id, ID_BYTES, "i%09u", i);
        s->item_ids[i] = id;
        s->attrs[i] = (struct model_item_attr){.price_cents = (int64_t)(splitmix(&seed) % 10000),
                                               .category = i % CATEGORIES,
                                               .on_sale = 1};
    }
    for (uint32_t u = 0; u < users; u++) {
        char *id = s->id_bytes + ((size_t)items + u) * ID_BYTES;
        snprintf(id, ID_BYTES, "u%09u", u);
        s->user_ids[u] = id;
        s->owned_offsets[u] = (uint64_t)u * OWNED_PER_USER;
        for (uint32_t k = 0; k < OWNED_PER_USER; k++)
            s->owned_items[(size_t)u * OWNED_PER_USER + k] = (uint32_t)(splitmix(&seed) % items);
    }
    s->owned_offsets[users] = (uint64_t)users * OWNED_PER_USER;
    return 0;
}

/* write_model - the shape with fresh random factors from @seed, as @version. */
static int write_model(struct shape *s, const char *path, const char *version, uint64_t seed)
{
    static const char *const categories[CATEGORIES] = {"c0", "c1", "c2", "c3",
                                                       "c4", "c5", "c6", "c7"};
    for (size_t i = 0; i < (size_t)s->items * s->dim; i++)
        s->item_factors[i] = random_factor(&seed);
    for (size_t i = 0; i < (size_t)s->users * s->dim; i++)
        s->user_factors[i] = random_factor(&seed);
    struct model_src src = {
        .dim = s->dim,
        .user_count = s->users,
        .item_count = s->items,
        .user_factors = s->user_factors,
        .item_factors = s->item_factors,
        .user_ids = s->user_ids,
        .item_ids = s->item_ids,
        .owned_offsets = s->owned_offsets,
        .owned_items = s->owned_items,
        .attrs = s->attrs,
        .categories = categories,
        .category_count = CATEGORIES,
        .version = version,
        .created_at = (int64_t)time(NULL),
        .quantize = s->quantize,
    };
    struct err e = {0};
    double start = timing_now_ms();
    int rc = model_write(path, &src, &e);
    if (rc != 0) {
        fprintf(stderr, "reload: failed to write %s (%s)\n", path, e.msg);
        return rc;
    }
    struct stat st;
    stat(path, &st);
    printf("wrote %s: %u items, %u users, dim %u, %.1f MB, in %.1f s\n", path, s->items, s->users,
           s->dim, (double)st.st_size / 1e6, (timing_now_ms() - start) / 1e3);
    return 0;
}

/* The two files of one part, and the served path they take turns at. */
struct files {
    char model[2][PATH_MAX]; /* the files model_write wrote */
    char served[PATH_MAX];
    char staging[PATH_MAX]; /* the new name, in the served file's directory */
    char serve_dir[PATH_MAX];
    off_t size;
};

static int files_write(struct files *f, const char *dir, const char *part, uint32_t items,
                       uint32_t users, uint32_t dim, unsigned quantize)
{
    char name[64];
    snprintf(name, sizeof(name), "%s-serve", part);
    int rc = path_join(f->serve_dir, sizeof(f->serve_dir), dir, name);
    if (rc == 0)
        rc = path_join(f->served, sizeof(f->served), f->serve_dir, "model.lmdb");
    if (rc == 0)
        rc = path_join(f->staging, sizeof(f->staging), f->serve_dir, ".model.lmdb.publish");
    if (rc == 0 && mkdir(f->serve_dir, 0755) != 0)
        rc = -errno;
    if (rc != 0)
        return rc;
    struct shape s;
    rc = shape_init(&s, items, users, dim, quantize);
    for (int k = 0; k < 2 && rc == 0; k++) {
        snprintf(name, sizeof(name), "%s-%s.lmdb", part, VERSIONS[k]);
        rc = path_join(f->model[k], sizeof(f->model[k]), dir, name);
        if (rc == 0)
            rc = write_model(&s, f->model[k], VERSIONS[k], 1000 + (uint64_t)k);
    }
    shape_free(&s);
    struct stat st;
    if (rc == 0 && stat(f->model[0], &st) == 0)
        f->size = st.st_size;
    return rc;
}

/* publish - make model @k the file at the served path: a new name in the
 * same directory, renamed over the path. */
static int publish(const struct files *f, int k)
{
    unlink(f->staging);
    if (link(f->model[k], f->staging) != 0 || rename(f->staging, f->served) != 0)
        return -errno;
    return 0;
}

/* ==== the daemon ======================================================== */

struct daemon {
    pid_t pid;
    int port;
    FILE *err;  /* its stderr */
    FILE *copy; /* its log, kept next to the models */
    pthread_t reader;
    bool reading;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    unsigned loads;  /* "model loaded" lines so far */
    double *load_ms; /* the load_ms of the first load_cap of them */
    unsigned load_cap;
    bool eof;
    char addr[64];
};

/* Counts every load; keeps the load_ms of the first load_cap. */
static void note_load(struct daemon *d, const char *line)
{
    static const char key[] = " load_ms=";
    const char *ms = strstr(line, key);
    if (d->loads < d->load_cap)
        d->load_ms[d->loads] = ms != NULL ? strtod(ms + strlen(key), NULL) : -1;
    d->loads++;
}

static void *read_log(void *arg)
{
    struct daemon *d = arg;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, d->err) > 0) {
        fputs(line, d->copy);
        /* "... listening on HOST:PORT threads=...": the port follows the
         * last colon of the address, the word after "listening on". */
        const char *at = strstr(line, "INFO  listening on ");
        pthread_mutex_lock(&d->mu);
        if (at != NULL) {
            const char *addr = at + strlen("INFO  listening on ");
            const char *colon = memrchr(addr, ':', strcspn(addr, " \n"));
            d->port = colon != NULL ? atoi(colon + 1) : 0;
        }
        if (strstr(line, "INFO  model loaded ") != NULL)
            note_load(d, line);
        pthread_cond_broadcast(&d->cond);
        pthread_mutex_unlock(&d->mu);
    }
    free(line);
    pthread_mutex_lock(&d->mu);
    d->eof = true;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

/* daemon_wait - until the port is known and @loads loads were logged.
 * Returns 0, or -ETIMEDOUT / -EPIPE (the daemon exited). */
static int daemon_wait(struct daemon *d, unsigned loads, int timeout_s)
{
    struct timespec limit;
    clock_gettime(CLOCK_REALTIME, &limit);
    limit.tv_sec += timeout_s;
    int rc = 0;
    pthread_mutex_lock(&d->mu);
    while ((d->port == 0 || d->loads < loads) && !d->eof && rc == 0)
        rc = -pthread_cond_timedwait(&d->cond, &d->mu, &limit);
    if (rc == 0 && (d->port == 0 || d->loads < loads))
        rc = -EPIPE;
    pthread_mutex_unlock(&d->mu);
    return rc;
}

static unsigned daemon_loads(struct daemon *d)
{
    pthread_mutex_lock(&d->mu);
    unsigned n = d->loads;
    pthread_mutex_unlock(&d->mu);
    return n;
}

/* daemon_start - run @recsysd on @model, its log copied to @log_path, and
 * wait until it listens; keep the load times of its first @keep_loads
 * loads. *d must be zeroed; daemon_stop cleans up after a failure too. */
static int daemon_start(struct daemon *d, const char *recsysd, const char *model,
                        const char *log_path, uint32_t threads, unsigned keep_loads)
{
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cond, NULL);
    d->load_ms = calloc(keep_loads + 1, sizeof(double));
    if (d->load_ms == NULL)
        return -ENOMEM;
    d->load_cap = keep_loads;
    char threads_arg[16];
    snprintf(threads_arg, sizeof(threads_arg), "%u", threads);
    char *const argv[] = {(char *)recsysd, "--model",   (char *)model, "--listen",
                          "127.0.0.1:0",   "--threads", threads_arg,   NULL};
    d->copy = fopen(log_path, "w");
    int fds[2];
    if (d->copy == NULL || pipe2(fds, O_CLOEXEC) != 0)
        return -errno;
    d->pid = fork();
    if (d->pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        execv(recsysd, argv);
        fprintf(stderr, "reload: cannot run %s (%s)\n", recsysd, strerror(errno));
        _exit(127);
    }
    int rc = d->pid < 0 ? -errno : 0;
    close(fds[1]);
    d->err = fdopen(fds[0], "r");
    if (d->err == NULL) {
        close(fds[0]);
        rc = rc != 0 ? rc : -ENOMEM;
    }
    if (rc == 0)
        rc = -pthread_create(&d->reader, NULL, read_log, d);
    d->reading = rc == 0;
    if (rc == 0)
        rc = daemon_wait(d, 1, START_TIMEOUT_S);
    snprintf(d->addr, sizeof(d->addr), "127.0.0.1:%d", d->port);
    return rc;
}

/* daemon_stop - SIGTERM, wait, free; 0 if it exited 0. */
static int daemon_stop(struct daemon *d)
{
    int status = 0;
    if (d->pid > 0) {
        kill(d->pid, SIGTERM);
        waitpid(d->pid, &status, 0);
    }
    if (d->reading)
        pthread_join(d->reader, NULL);
    if (d->err != NULL)
        fclose(d->err);
    if (d->copy != NULL)
        fclose(d->copy);
    free(d->load_ms);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cond);
    return d->pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -ECHILD;
}

/* ---- its memory, from /proc ---------------------------------------------- */

struct mem {
    long rss, hwm, anon, file; /* kB */
};

static int read_mem(pid_t pid, struct mem *m)
{
    static const struct {
        const char *key;
        size_t offset;
    } fields[] = {
        {"VmRSS:", offsetof(struct mem, rss)},
        {"VmHWM:", offsetof(struct mem, hwm)},
        {"RssAnon:", offsetof(struct mem, anon)},
        {"RssFile:", offsetof(struct mem, file)},
    };
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -errno;
    *m = (struct mem){0};
    while (fgets(line, sizeof(line), f) != NULL)
        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
            if (strncmp(line, fields[i].key, strlen(fields[i].key)) == 0)
                *(long *)((char *)m + fields[i].offset) = atol(line + strlen(fields[i].key));
    fclose(f);
    return 0;
}

/* Reset VmHWM to the current RSS (Linux >= 4.0; needs ptrace rights). */
static bool reset_hwm(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/clear_refs", (int)pid);
    int fd = open(path, O_WRONLY);
    bool ok = fd >= 0 && write(fd, "5", 1) == 1;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* Mappings of files under @dir in /proc/<pid>/maps. */
static int count_maps(pid_t pid, const char *dir)
{
    char path[64], line[PATH_MAX + 128];
    snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
    FILE *f = fopen(path, "r");
    int n = 0;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        n += strstr(line, dir) != NULL;
    if (f != NULL)
        fclose(f);
    return n;
}

/* Open descriptors of the process on files under @dir. */
static int count_fds(pid_t pid, const char *dir)
{
    char path[64], target[PATH_MAX];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    DIR *fds = opendir(path);
    int n = 0;
    for (struct dirent *e; fds != NULL && (e = readdir(fds)) != NULL;) {
        ssize_t len = readlinkat(dirfd(fds), e->d_name, target, sizeof(target) - 1);
        if (len <= 0)
            continue;
        target[len] = '\0';
        n += strncmp(target, dir, strlen(dir)) == 0;
    }
    if (fds != NULL)
        closedir(fds);
    return n;
}

/* ==== clients =========================================================== */

struct sample {
    double start_ms;
    float lat_ms;
};

struct client {
    pthread_t thread;
    const char *addr;
    uint32_t users;
    uint64_t seed;
    atomic_bool *stop;
    struct sample *samples;
    size_t n, cap;
    uint64_t failed;
    char first_failure[160];
    int rc;
};

static int recommend_once(struct rpc_client *rpc, struct client *c, const uint8_t *req, size_t len)
{
    struct rpc_reply reply;
    double start = timing_now_ms();
    int rc = rpc_call(rpc, RECOMMEND, req, len, CALL_TIMEOUT_S, &reply);
    double end = timing_now_ms();
    if (rc != 0)
        return rc;
    if (reply.status != 0 && c->failed++ == 0)
        snprintf(c->first_failure, sizeof(c->first_failure), "%s: %s",
                 err_status_name(reply.status), reply.details);
    rpc_reply_free(&reply);
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 4096;
        struct sample *grown = realloc(c->samples, cap * sizeof(*grown));
        if (grown == NULL)
            return -ENOMEM;
        c->samples = grown;
        c->cap = cap;
    }
    c->samples[c->n++] = (struct sample){start, (float)(end - start)};
    return 0;
}

static void *client_main(void *arg)
{
    struct client *c = arg;
    struct rpc_client *rpc;
    c->rc = rpc_client_open(c->addr, NULL, &rpc, NULL);
    char user[ID_BYTES];
    uint8_t req[64];
    while (c->rc == 0 && !atomic_load(c->stop)) {
        snprintf(user, sizeof(user), "u%09u", (uint32_t)(splitmix(&c->seed) % c->users));
        Recsys__V1__RecommendRequest r = RECSYS__V1__RECOMMEND_REQUEST__INIT;
        r.user_id = user;
        r.count = TOP;
        size_t len = recsys__v1__recommend_request__pack(&r, req);
        c->rc = recommend_once(rpc, c, req, len);
    }
    if (c->rc == 0)
        rpc_client_close(rpc);
    return NULL;
}

struct load {
    struct client *clients;
    uint32_t n;
    atomic_bool stop;
};

static int load_start(struct load *l, uint32_t n, const char *addr, uint32_t users)
{
    l->n = 0;
    atomic_init(&l->stop, false);
    l->clients = calloc(n, sizeof(*l->clients));
    if (l->clients == NULL)
        return -ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        struct client *c = &l->clients[i];
        *c = (struct client){.addr = addr, .users = users, .seed = 7 + i, .stop = &l->stop};
        if (pthread_create(&c->thread, NULL, client_main, c) != 0)
            return -EAGAIN;
        l->n++;
    }
    return 0;
}

/* load_stop - stop and join the clients; their failures are reported. */
static int load_stop(struct load *l, uint64_t *calls, uint64_t *failed)
{
    atomic_store(&l->stop, true);
    int rc = 0;
    *calls = *failed = 0;
    for (uint32_t i = 0; i < l->n; i++) {
        struct client *c = &l->clients[i];
        pthread_join(c->thread, NULL);
        *calls += c->n;
        *failed += c->failed;
        if (c->failed > 0)
            fprintf(stderr, "client %u: %" PRIu64 " failed calls, the first: %s\n", i, c->failed,
                    c->first_failure);
        if (c->rc != 0)
            rc = c->rc;
    }
    return rc;
}

static void load_free(struct load *l)
{
    for (uint32_t i = 0; l->clients != NULL && i < l->n; i++)
        free(l->clients[i].samples);
    free(l->clients);
}

/* ==== latency figures =================================================== */

struct window {
    double from, to;
};

struct stats {
    size_t n;
    double p50, p99, max;
};

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static bool in_any(double t, const struct window *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (t >= w[i].from && t < w[i].to)
            return true;
    return false;
}

/* A call overlaps a window when it started before the window ended and
 * ended after it began. */
static bool overlaps_any(const struct sample *s, const struct window *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s->start_ms < w[i].to && s->start_ms + s->lat_ms > w[i].from)
            return true;
    return false;
}

enum select { SELECT_STARTED_IN, SELECT_OVERLAPPING };

static struct stats latency(const struct load *l, const struct window *w, size_t nw,
                            enum select how)
{
    struct stats st = {0};
    size_t total = 0;
    for (uint32_t i = 0; i < l->n; i++)
        total += l->clients[i].n;
    float *lat = malloc((total ? total : 1) * sizeof(float));
    if (lat == NULL)
        return st;
    for (uint32_t i = 0; i < l->n; i++) {
        for (size_t k = 0; k < l->clients[i].n; k++) {
            const struct sample *s = &l->clients[i].samples[k];
            bool take =
                how == SELECT_STARTED_IN ? in_any(s->start_ms, w, nw) : overlaps_any(s, w, nw);
            if (take)
                lat[st.n++] = s->lat_ms;
        }
    }
    if (st.n > 0) {
        qsort(lat, st.n, sizeof(float), cmp_float);
        st.p50 = lat[st.n / 2];
        st.p99 = lat[(size_t)((double)(st.n - 1) * 0.99)];
        st.max = lat[st.n - 1];
    }
    free(lat);
    return st;
}

static void print_stats(const char *label, struct stats st, const struct stats *base)
{
    printf("  %-34s %7zu calls  p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms", label, st.n, st.p50,
           st.p99, st.max);
    if (base != NULL && base->p99 > 0)
        printf("  (p99 %.2fx steady)", st.p99 / base->p99);
    printf("\n");
}

/* ==== part 1: latency and memory ========================================= */

/* The peak of VmRSS, sampled every SAMPLE_US while running. */
struct sampler {
    pthread_t thread;
    pid_t pid;
    atomic_bool stop;
    long peak_rss;
};

static void *sample_main(void *arg)
{
    struct sampler *s = arg;
    while (!atomic_load(&s->stop)) {
        struct mem m;
        if (read_mem(s->pid, &m) == 0 && m.rss > s->peak_rss)
            s->peak_rss = m.rss;
        usleep(SAMPLE_US);
    }
    return NULL;
}

/* version_of - the model_version GetModelInfo answers; "" on failure. */
static void version_of(struct rpc_client *rpc, char *out, size_t size)
{
    Recsys__V1__ModelInfoRequest req = RECSYS__V1__MODEL_INFO_REQUEST__INIT;
    uint8_t buf[8];
    size_t len = recsys__v1__model_info_request__pack(&req, buf);
    struct rpc_reply reply;
    out[0] = '\0';
    if (rpc_call(rpc, INFO, buf, len, CALL_TIMEOUT_S, &reply) != 0)
        return;
    Recsys__V1__ModelInfo *info =
        reply.status == 0 ? recsys__v1__model_info__unpack(NULL, reply.len, reply.data) : NULL;
    if (info != NULL)
        snprintf(out, size, "%s", info->model_version);
    recsys__v1__model_info__free_unpacked(info, NULL);
    rpc_reply_free(&reply);
}

struct swap_result {
    double to_version_ms; /* rename -> first response with the new version */
    struct window window; /* rename -> the load logged (old model unmapped) */
};

/* swap - publish model @k (the @nth load) and time it. */
static int swap(struct daemon *d, const struct files *f, struct rpc_client *probe, int k,
                unsigned nth, struct swap_result *out)
{
    char version[64];
    double renamed = timing_now_ms();
    int rc = publish(f, k);
    if (rc != 0)
        return rc;
    double deadline = renamed + 60e3;
    do
        version_of(probe, version, sizeof(version));
    while (strcmp(version, VERSIONS[k]) != 0 && timing_now_ms() < deadline);
    out->to_version_ms = timing_now_ms() - renamed;
    if (strcmp(version, VERSIONS[k]) != 0)
        return -ETIMEDOUT;
    rc = daemon_wait(d, nth, 60);
    out->window = (struct window){renamed, timing_now_ms()};
    return rc;
}

struct part1 {
    struct window steady[2], swaps;
    struct window *loads;
    double *to_version;
    struct mem before, after;
    long sampled_peak;
    bool hwm_reset;
};

static int run_swaps(const struct opts *o, struct daemon *d, const struct files *f, struct part1 *p)
{
    struct rpc_client *probe;
    int rc = rpc_client_open(d->addr, NULL, &probe, NULL);
    if (rc != 0)
        return rc;
    struct sampler smp = {.pid = d->pid};
    atomic_init(&smp.stop, false);
    read_mem(d->pid, &p->before);
    p->hwm_reset = reset_hwm(d->pid);
    smp.peak_rss = p->before.rss;
    if (pthread_create(&smp.thread, NULL, sample_main, &smp) != 0) {
        rpc_client_close(probe);
        return -EAGAIN;
    }
    p->swaps.from = timing_now_ms();
    unsigned loads = daemon_loads(d);
    for (uint32_t i = 0; i < o->swaps && rc == 0; i++) {
        struct swap_result r = {0};
        rc = swap(d, f, probe, (int)((i + 1) % 2), ++loads, &r);
        p->loads[i] = r.window;
        p->to_version[i] = r.to_version_ms;
        sleep_ms(o->gap_ms);
    }
    p->swaps.to = timing_now_ms();
    atomic_store(&smp.stop, true);
    pthread_join(smp.thread, NULL);
    p->sampled_peak = smp.peak_rss;
    read_mem(d->pid, &p->after);
    rpc_client_close(probe);
    return rc;
}

static void report_part1(const struct opts *o, struct daemon *d, const struct files *f,
                         const struct load *l, struct part1 *p)
{
    struct stats steady = latency(l, p->steady, 2, SELECT_STARTED_IN);
    struct stats swaps = latency(l, &p->swaps, 1, SELECT_STARTED_IN);
    struct stats during = latency(l, p->loads, o->swaps, SELECT_OVERLAPPING);
    printf("\nRecommend latency, %u client threads, daemon with %u workers:\n", o->clients,
           o->threads);
    print_stats("steady (both steady phases)", steady, NULL);
    print_stats("swap phase (all calls)", swaps, &steady);
    print_stats("calls overlapping a load window", during, &steady);

    double max_to = 0;
    for (uint32_t i = 0; i < o->swaps; i++)
        max_to = p->to_version[i] > max_to ? p->to_version[i] : max_to;
    double med_to = timing_median(p->to_version, o->swaps);
    /* The daemon's load_ms of the swaps: the loads after the first. */
    double med_load = timing_median(d->load_ms + 1, o->swaps);
    printf("\nrename -> first response with the new version, %u swaps: median %.1f ms, max %.1f "
           "ms\n",
           o->swaps, med_to, max_to);
    printf("  of which the daemon's load (open, validate, pre-fault): median %.1f ms\n", med_load);

    double model_mb = (double)f->size / 1e6;
    printf("\nmemory (model file %.1f MB):\n", model_mb);
    printf("  before the swaps   VmRSS %7.1f MB (anon %.1f MB, file %.1f MB)\n",
           p->before.rss / 1e3, p->before.anon / 1e3, p->before.file / 1e3);
    printf("  peak during swaps  VmHWM %7.1f MB%s, sampled VmRSS peak %.1f MB\n",
           p->after.hwm / 1e3,
           p->hwm_reset ? " (reset before the swaps)" : " (since start: could not reset)",
           p->sampled_peak / 1e3);
    printf("  after the swaps    VmRSS %7.1f MB (anon %.1f MB, file %.1f MB)\n", p->after.rss / 1e3,
           p->after.anon / 1e3, p->after.file / 1e3);
    printf("  peak - before = %.1f MB = %.2f models (goal: about one, the new model, never "
           "more)\n",
           (p->after.hwm - p->before.rss) / 1e3, (p->after.hwm - p->before.rss) / 1e3 / model_mb);
}

static int part1(const struct opts *o, const char *dir)
{
    struct files f;
    printf("\n== part 1: latency and memory, %u items ==\n", o->items);
    int rc = files_write(&f, dir, "large", o->items, o->users, o->dim, QUANTIZE(o));
    if (rc != 0)
        return fail("write the large models", rc);
    if ((rc = publish(&f, 0)) != 0)
        return fail("publish the first model", rc);
    char log_path[PATH_MAX];
    struct daemon d = {0};
    struct load l = {0};
    struct part1 p = {0};
    p.loads = calloc(o->swaps, sizeof(*p.loads));
    p.to_version = calloc(o->swaps, sizeof(*p.to_version));
    if (p.loads == NULL || p.to_version == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    if ((rc = path_join(log_path, sizeof(log_path), dir, "recsysd-large.log")) != 0)
        goto out;
    if ((rc = daemon_start(&d, o->recsysd, f.served, log_path, o->threads, o->swaps + 1)) != 0) {
        fprintf(stderr, "reload: the daemon did not start; its log: %s\n", log_path);
        goto out;
    }
    if ((rc = load_start(&l, o->clients, d.addr, o->users)) != 0)
        goto out;
    p.steady[0] = (struct window){timing_now_ms(), 0};
    sleep_ms(o->steady_s * 1e3);
    p.steady[0].to = timing_now_ms();
    rc = run_swaps(o, &d, &f, &p);
    p.steady[1] = (struct window){timing_now_ms(), 0};
    sleep_ms(o->steady_s * 1e3);
    p.steady[1].to = timing_now_ms();
    uint64_t calls, failed;
    int stopped = load_stop(&l, &calls, &failed);
    rc = rc != 0 ? rc : stopped;
    printf("\n%" PRIu64 " calls, %" PRIu64 " failed\n", calls, failed);
    if (rc == 0 && failed > 0)
        rc = -EPROTO;
    if (rc == 0)
        report_part1(o, &d, &f, &l, &p);
out:
    load_free(&l);
    if (daemon_stop(&d) != 0 && rc == 0)
        rc = -ECHILD;
    free(p.loads);
    free(p.to_version);
    return rc != 0 ? fail("run part 1", rc) : 0;
}

/* ==== part 2: the soak ==================================================== */

static int soak(const struct opts *o, struct daemon *d, const struct files *f)
{
    printf("\n%8s %10s %10s %10s %6s %6s\n", "swaps", "VmRSS MB", "anon MB", "file MB", "maps",
           "fds");
    unsigned loads = daemon_loads(d);
    double start = timing_now_ms();
    int rc = 0;
    for (uint32_t i = 1; i <= o->soak_swaps && rc == 0; i++) {
        rc = publish(f, (int)(i % 2));
        if (rc == 0)
            rc = daemon_wait(d, ++loads, 60);
        struct mem m;
        if (rc == 0 && (i % SOAK_REPORT_EVERY == 0 || i == 1) && read_mem(d->pid, &m) == 0)
            printf("%8u %10.1f %10.1f %10.1f %6d %6d\n", i, m.rss / 1e3, m.anon / 1e3, m.file / 1e3,
                   count_maps(d->pid, f->serve_dir), count_fds(d->pid, f->serve_dir));
    }
    printf("%u swaps in %.1f s\n", o->soak_swaps, (timing_now_ms() - start) / 1e3);
    return rc;
}

static int part2(const struct opts *o, const char *dir)
{
    struct files f;
    printf("\n== part 2: %u swaps of a %u-item model, one client calling ==\n", o->soak_swaps,
           o->soak_items);
    int rc = files_write(&f, dir, "soak", o->soak_items, o->users, o->dim, QUANTIZE(o));
    if (rc != 0)
        return fail("write the soak models", rc);
    if ((rc = publish(&f, 0)) != 0)
        return fail("publish the first model", rc);
    char log_path[PATH_MAX];
    struct daemon d = {0};
    struct load l = {0};
    rc = path_join(log_path, sizeof(log_path), dir, "recsysd-soak.log");
    if (rc == 0 && (rc = daemon_start(&d, o->recsysd, f.served, log_path, o->threads, 0)) != 0)
        fprintf(stderr, "reload: the daemon did not start; its log: %s\n", log_path);
    if (rc == 0)
        rc = load_start(&l, 1, d.addr, o->users);
    if (rc == 0)
        rc = soak(o, &d, &f);
    uint64_t calls = 0, failed = 0;
    int stopped = l.clients != NULL ? load_stop(&l, &calls, &failed) : 0;
    rc = rc != 0 ? rc : stopped;
    printf("%" PRIu64 " calls during the soak, %" PRIu64 " failed\n", calls, failed);
    if (rc == 0 && failed > 0)
        rc = -EPROTO;
    load_free(&l);
    if (daemon_stop(&d) != 0 && rc == 0)
        rc = -ECHILD;
    return rc != 0 ? fail("run part 2", rc) : 0;
}

/* ==== main ================================================================ */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

int main(int argc, char **argv)
{
    struct opts o;
    char exe[PATH_MAX];
    int parsed = parse_opts(argc, argv, &o);
    if (parsed != 0) {
        usage(parsed > 0 ? stdout : stderr, argv[0]);
        return parsed > 0 ? 0 : 2;
    }
    if (o.recsysd == NULL)
        o.recsysd = default_recsysd(exe, sizeof(exe));
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", o.dir != NULL ? o.dir : "/tmp/recsys-bench-XXXXXX");
    if (o.dir == NULL ? mkdtemp(dir) == NULL : mkdir(dir, 0755) != 0 && errno != EEXIST)
        return fail("create the model directory", -errno);
    print_machine(argc, argv);
    printf("daemon: %s; models in %s\n", o.recsysd, dir);
    fflush(stdout);
    /* A client's daemon dying must not take the bench with it. */
    signal(SIGPIPE, SIG_IGN);
    int status = part1(&o, dir);
    if (status == 0 && o.soak_swaps > 0)
        status = part2(&o, dir);
    if (!o.keep)
        nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return status;
}
