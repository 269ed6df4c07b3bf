/*
 * recsysd: serve recommendations from a model file over gRPC.
 *
 * main() starts the subsystems in order (config, log, signals, gRPC, the
 * models and their reloaders, service, server, metrics endpoint), waits for
 * signals, and stops them in reverse order: the server before the models,
 * so that no call reads a model any more when its reloader closes it.
 *
 * Signals are blocked in every thread, before the first thread exists, and
 * taken synchronously here with sigwait(): no handler runs at an arbitrary
 * point of a worker, and the stop sequence is ordinary code. (A thread
 * older than main() gets a forwarding handler; see forward_to_main.)
 * SIGHUP asks every model's reloader to load its file now, and reads the
 * models directory and its routes.json again; each loads by itself when a
 * file is renamed over its path, so SIGHUP is for what the watches cannot
 * see, such as a symlink retargeted in another directory.
 *
 * Exit status: 0 after a signal-initiated stop, 1 when the daemon cannot
 * start (the port is taken, the model's directory does not exist), 2 for a
 * bad command line or environment.
 */
#include <cblas.h>
#include <errno.h>
#include <grpc/grpc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "base/log.h"
#include "engine/models.h"
#include "engine/scan.h"
#include "engine/score.h"
#include "engine/split.h"
#include "server/config.h"
#include "server/metrics.h"
#include "server/scrape.h"
#include "server/server.h"
#include "server/service.h"
#include "state/events.h"

enum { EXIT_FAILED = 1, EXIT_USAGE = 2 };

enum signal_action { SIGNAL_STOP, SIGNAL_RELOAD };

static const struct {
    int signo;
    const char *name;
    enum signal_action action;
} signals[] = {
    {SIGTERM, "SIGTERM", SIGNAL_STOP},
    {SIGINT, "SIGINT", SIGNAL_STOP},
    {SIGHUP, "SIGHUP", SIGNAL_RELOAD},
};

#define N_SIGNALS (sizeof(signals) / sizeof(signals[0]))

static pthread_t main_thread;

/* forward_to_main - runs only on a thread that does not block our signals:
 * one started before main() by a library constructor (the sanitizers'
 * runtimes, some BLAS builds), which did not inherit the mask. There the
 * default action would end the process at once; instead, hand the signal
 * to the main thread, where it stays pending until sigwait() takes it.
 * pthread_kill is async-signal-safe. */
static void forward_to_main(int signo)
{
    pthread_kill(main_thread, signo);
}

/* block_signals - block every signal of the table in this thread and, as
 * threads inherit the mask, in all threads created after it; route the
 * ones landing elsewhere to this thread. */
static void block_signals(sigset_t *set)
{
    main_thread = pthread_self();
    sigemptyset(set);
    for (size_t i = 0; i < N_SIGNALS; i++)
        sigaddset(set, signals[i].signo);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    struct sigaction sa = {.sa_handler = forward_to_main, .sa_flags = SA_RESTART};
    sigfillset(&sa.sa_mask);
    for (size_t i = 0; i < N_SIGNALS; i++)
        sigaction(signals[i].signo, &sa, NULL);
}

/* wait_for_stop - handle signals until one asks to stop; returns its index. */
static size_t wait_for_stop(const sigset_t *set, struct models *ms, const char *what)
{
    for (;;) {
        int signo;
        if (sigwait(set, &signo) != 0)
            continue;
        for (size_t i = 0; i < N_SIGNALS; i++) {
            if (signals[i].signo != signo)
                continue;
            if (signals[i].action == SIGNAL_STOP)
                return i;
            log_info("%s received; loading %s", signals[i].name, what);
            models_request(ms);
        }
    }
}

/* raise_fd_limit - lift the soft limit on open files to the hard one.
 * Every connection costs a descriptor, and the soft limit is often 1024
 * where the hard one is far higher (systemd: 1024 soft / 524288 hard):
 * the daemon should meet its connection cap, not the soft limit. */
static void raise_fd_limit(void)
{
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur >= lim.rlim_max)
        return;
    rlim_t was = lim.rlim_cur;
    lim.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &lim) != 0)
        log_warn("failed to raise the open files limit from %llu (%s)", (unsigned long long)was,
                 strerror(errno));
    else
        log_debug("open files limit raised from %llu to %llu", (unsigned long long)was,
                  (unsigned long long)lim.rlim_cur);
}

/* What the metrics endpoint shows: the server's calls, the models served
 * and the process. */
struct exposition {
    const struct server *srv;
    const struct models *models;
    struct events *events; /* NULL: no live events */
};

static int write_metrics(void *arg, FILE *out)
{
    const struct exposition *x = arg;
    int rc = metrics_write(server_metrics(x->srv), out);
    const struct models_view *v = models_read_begin(x->models);
    rc = rc != 0 ? rc : metrics_write_models(v, out);
    models_read_end(x->models);
    if (rc == 0 && x->events != NULL) {
        struct events_stats st;
        events_stats(x->events, &st);
        rc = metrics_write_events(&st, out);
    }
    return rc != 0 ? rc : metrics_write_process(out);
}

/* compact_covered - every model served holds the events up to @end: they
 * need not be kept (a models_listener). */
static void compact_covered(int64_t end, void *arg)
{
    if (end > 0)
        events_compact(arg, end);
}

/* open_models - the models of --model or --models-dir. */
static int open_models(const struct config *cfg, struct events *events, struct models **out,
                       struct err *e)
{
    const struct models_listener listener = {events != NULL ? compact_covered : NULL, events};
    if (cfg->models_dir[0] != '\0')
        return models_open_dir(cfg->models_dir, cfg->threads, &listener, out, e);
    return models_open_file(cfg->model, cfg->threads, &listener, out, e);
}

/* Writes waiting for the state's writer, at most: a RecordEvents call is
 * half a MB at the very most, so a hundred of the largest, or thousands of
 * usual ones, before callers are told RESOURCE_EXHAUSTED. */
#define STATE_QUEUE_BYTES (64u << 20)

/* open_state - the live events store of --state-dir, if one is given. A
 * damaged one stops the daemon unless --state-on-damage serve: serving
 * without the events it acknowledged would recommend again what users
 * bought and drop their folded-in taste, without the platform knowing, so
 * that is the operator's call, not a default. With serve, the reason is
 * kept in @why for GetModelInfo and the log. Returns 0 or the error. */
static int open_state(const struct config *cfg, struct events **out, char *why, size_t why_len)
{
    *out = NULL;
    why[0] = '\0';
    if (strcmp(cfg->state_on_damage, "refuse") != 0 && strcmp(cfg->state_on_damage, "serve") != 0) {
        log_error("--state-on-damage: '%s' is not refuse or serve", cfg->state_on_damage);
        return ERR_INVALID;
    }
    if (cfg->state_dir[0] == '\0')
        return 0;
    const struct events_opts opts = {.max_bytes = cfg->state_max_bytes,
                                     .queue_bytes = STATE_QUEUE_BYTES,
                                     .view_ttl_ms = (int64_t)cfg->view_ttl_s * 1000,
                                     .slots = cfg->threads};
    struct err e = {0};
    int rc = events_open(cfg->state_dir, &opts, out, &e);
    if (rc == 0) {
        log_info("live events in %s", cfg->state_dir);
        return 0;
    }
    if (rc == ERR_FORMAT && strcmp(cfg->state_on_damage, "serve") == 0) {
        snprintf(why, why_len, "the state is damaged, serving without live events: %s", e.msg);
        log_error("%s", why);
        return 0;
    }
    log_error("cannot use the state directory (%s)%s", e.msg,
              rc == ERR_FORMAT ? "; move it aside to start afresh, or start with "
                                 "--state-on-damage serve to serve without live events"
                               : "");
    return rc;
}

/* host_len - the length of HOST in "HOST:PORT", to log it with the port
 * actually bound. */
static int host_len(const char *addr)
{
    const char *colon = strrchr(addr, ':');
    return colon != NULL ? (int)(colon - addr) : (int)strlen(addr);
}

static const char *tls_mode(const struct config *cfg)
{
    if (cfg->tls_client_ca[0] != '\0')
        return "mutual";
    return cfg->tls_cert[0] != '\0' ? "on" : "off";
}

/* start_scrape - the metrics endpoint, if one is configured. Its thread
 * reads snapshots as the workers do, so it takes the workers' hooks. */
static int start_scrape(const struct config *cfg, const struct server_hooks *hooks,
                        struct exposition *x, struct scrape **out, struct err *e)
{
    if (cfg->metrics_listen[0] == '\0')
        return 0;
    struct scrape_source src = {write_metrics, hooks->thread_start, hooks->thread_stop, x};
    int rc = scrape_start(cfg->metrics_listen, &src, out, e);
    if (rc == 0)
        log_info("metrics on http://%.*s:%d/metrics", host_len(cfg->metrics_listen),
                 cfg->metrics_listen, scrape_port(*out));
    return rc;
}

static int run(const struct config *cfg, const sigset_t *signals_set)
{
    int status = EXIT_FAILED;
    struct models *models = NULL;
    struct service *svc = NULL;
    struct server *srv = NULL;
    struct scrape *scrape = NULL;
    struct events *events = NULL;
    char state_error[600];
    struct exposition expo;
    struct err e = {0};

    /* BatchRecommend calls sgemm from many workers at once, and splits big
     * scans over its own helpers: OpenBLAS's own thread pool would only
     * oversubscribe the cores. */
    openblas_set_num_threads(1);
    if (score_select_kernel(cfg->kernel, &e) != 0) {
        log_error("failed to select the scoring kernel (%s)", e.msg);
        goto out;
    }
    if (scan_select(cfg->scan, &e) != 0) {
        log_error("failed to select the scan (%s)", e.msg);
        goto out;
    }
    scan_split_from(cfg->scan_split_bytes);
    if (split_start(cfg->scan_threads, &e) != 0) {
        log_error("failed to start the scan helpers (%s)", e.msg);
        goto out;
    }
    /* Before the models, which tell it what all of them hold. */
    if (open_state(cfg, &events, state_error, sizeof(state_error)) != 0)
        goto out;
    /* A missing or invalid model is not fatal: the reloader logs it, and
     * the daemon answers UNAVAILABLE until a valid file appears, so one bad
     * delivery does not take a replica out of its health checks. */
    char what[sizeof(cfg->model) + 32];
    if (cfg->models_dir[0] != '\0')
        snprintf(what, sizeof(what), "the models of directory %s", cfg->models_dir);
    else
        snprintf(what, sizeof(what), "model file %s", cfg->model);
    if (open_models(cfg, events, &models, &e) != 0) {
        log_error("failed to follow %s (%s)", what, e.msg);
        goto out;
    }
    const struct service_state state = {events, cfg->state_dir, state_error};
    if (service_create(models, &state, &svc) != 0) {
        log_error("failed to create the service (out of memory)");
        goto out;
    }
    size_t n_methods;
    const struct server_method *methods = service_methods(svc, &n_methods);
    if (server_start(cfg, methods, n_methods, service_hooks(svc), &srv, &e) != 0) {
        log_error("failed to start the server (%s)", e.msg);
        goto out;
    }
    expo = (struct exposition){srv, models, events};
    if (start_scrape(cfg, service_hooks(svc), &expo, &scrape, &e) != 0) {
        log_error("failed to start the metrics endpoint (%s)", e.msg);
        goto out;
    }
    /* Tests and scripts read the port from this line when listening on :0. */
    log_info("listening on %.*s:%d threads=%u tls=%s kernel=%s scan=%s bf16_kernel=%s "
             "int8_kernel=%s scan_threads=%u",
             host_len(cfg->listen), cfg->listen, server_port(srv), cfg->threads, tls_mode(cfg),
             score_kernel_name(), scan_preference(), score_reduced_kernel_name(SCORE_ELEM_BF16),
             score_reduced_kernel_name(SCORE_ELEM_INT8), cfg->scan_threads);

    size_t sig = wait_for_stop(signals_set, models, what);
    log_info("stopping on %s: finishing calls in flight for up to %u ms", signals[sig].name,
             cfg->grace_ms);
    status = 0;
out:
    scrape_stop(scrape);
    server_stop(srv);
    split_stop();
    service_destroy(svc);
    models_stop(models);
    /* Last: its writer completes the writes the server waits for, and the
     * models tell it what they hold until they stop. */
    events_close(events);
    if (status == 0)
        log_info("stopped");
    return status;
}

int main(int argc, char **argv)
{
    struct config cfg;
    enum config_action action;
    struct err e = {0};
    if (config_load(&cfg, argc, argv, &action, &e) != 0) {
        fprintf(stderr, "recsysd: %s\nTry 'recsysd --help'.\n", e.msg);
        return EXIT_USAGE;
    }
    if (action == CONFIG_HELP) {
        config_usage(stdout, "recsysd");
        return 0;
    }
    if (action == CONFIG_VERSION) {
        printf("recsysd %s\n", RECSYS_VERSION);
        return 0;
    }
    log_set_level(cfg.log_level);
    /* A write to a pipe whose reader is gone (stderr piped into a log
     * shipper that restarted) must fail with EPIPE, not end the daemon. */
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();

    sigset_t set;
    block_signals(&set);
    grpc_init();
    int status = run(&cfg, &set);
    grpc_shutdown();
    return status;
}
