/*
 * bench/overload: what recsysd answers when asked for more than it can do,
 * measured against the targets of issue 11.
 *
 * The program writes the demo model (recsys-model demo), starts the real
 * recsysd on it as a child process (127.0.0.1:0, the port read from its
 * "listening on" log line; a child so that /proc/<pid>/status is the
 * daemon's memory alone) and loads it with Recommend calls for users drawn
 * uniformly from the demo's, in phases, one after the other, on the same
 * daemon:
 *
 *   capacity  closed loop, no overload: the calls in flight are doubled
 *             from 1 (over up to 8 connections) for --sweep-seconds each
 *             until calls/s has twice risen by less than 5%; the best
 *             concurrency then runs for --seconds, and its calls answered
 *             OK per second are "the capacity". Deadlines of 10 s (a call
 *             has one, but it never bites).
 *   open      open loop: calls arrive at --factor (5) x the capacity, paced
 *             evenly, over --open-conns connections, each with a 50 ms
 *             deadline; an arrival finding --max-in-flight calls
 *             outstanding is not sent. The offered rate actually reached
 *             is reported beside the one asked for.
 *   storm     closed loop, 64 connections x 100 calls in flight, 50 ms
 *             deadlines: a retry storm (issue 11, finding 5), every
 *             answer or refusal sending the next call at once.
 *   flood     closed loop, 500 connections x 100 calls in flight, 10 s
 *             deadlines, while a separate client (its own connection and
 *             thread) makes one Recommend at a time with a 1 s deadline:
 *             the probe, a well-behaved client; its p50/p99/max are
 *             reported.
 *
 * A connection carries at most the streams the daemon's SETTINGS allow
 * (--max-concurrent-streams; by default 4 per daemon thread, at least 8):
 * storm and flood keep that many calls in flight on each, not 100, and say
 * so ("64 x 100 (8)"); the calls left out are reported as not sent. So is
 * an open-loop arrival that finds every stream of its connection taken,
 * where a gRPC client would hold the call until a stream frees or its
 * deadline passes: either way it is not goodput, and costs the daemon
 * nothing.
 *
 * Each phase runs --warmup seconds (connections open, queues fill) before
 * its --seconds of measurement. A call counts in the phase's figures when
 * it completes inside the measured window, by its status: OK (and its
 * latency, start to status), DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, other.
 * At the end of a phase the calls still out are cancelled and the
 * connections closed, and the next phase waits until the daemon is idle.
 * Beside what the client saw, the daemon's own count of its answers (its
 * /metrics, grpc_server_handled_total, read at both ends of the window)
 * is printed: it counts an OK sent after the client's deadline as OK,
 * where the client has already given up (a benchmark driving the daemon
 * with h2load, which keeps no deadline, can read only this count). The daemon's VmRSS is sampled
 * every 100 ms, and its VmHWM, reset at the start of each phase where /proc/<pid>/clear_refs
 * permits, is read at the end. The summary gives goodput (OK/s) under overload over the capacity
 * measured in the same run, and checks the three targets: that ratio
 * >= 0.5, the daemon's peak RSS < 512 MB, the probe's p99 < 50 ms.
 *
 * The load generator is an HTTP/2 client of its own on libnghttp2, lean
 * enough that the daemon, not the generator, sets the figures. The gRPC C
 * core client it replaced cost about as much CPU per call as the daemon:
 * on the 2-core machine this was written on it took 64-78% of a core (its
 * threads and gRPC's) and still offered only 10000-12000 of the 16500
 * calls/s the open loop asked for. This one offers all 16500 with 31-35%
 * of one core, two thirds of it the kernel's (loopback TCP, and the
 * RST_STREAM of every call cut off); h2load, sending the same calls and
 * cancelling none, takes 23%. The storm's 40000 calls/s take 11-14%:
 * there a call's RST_STREAM and its successor leave in one write.
 *
 * Each load thread (--load-threads) runs one epoll loop over its share of
 * the connections: non-blocking sockets (TCP_NODELAY), an nghttp2 client
 * session each (SETTINGS: a 1 MiB stream window and the connection's
 * opened to the most, so flow control never holds an answer back), the
 * frames of a turn gathered in the connection's buffer and written with
 * one send(), reads into one large buffer. A call is a slot of a
 * preallocated pool: a POST to /recsys.v1.Recommender/Recommend with
 * te: trailers and grpc-timeout (the phase's deadline), its body one gRPC
 * message; it ends with the grpc-status of the trailers (or of a
 * trailers-only answer), an RST_STREAM or the connection lost ending it
 * with UNAVAILABLE, CANCELLED or INTERNAL as a gRPC client would. The
 * client keeps its deadline itself: a call not ended by then counts as
 * DEADLINE_EXCEEDED and is cancelled with RST_STREAM CANCEL, and an OK
 * arriving later is not goodput. Latency runs from the moment the request
 * is queued for the socket to the moment its status is parsed. The open
 * loop's arrivals are paced by the loop's timeout (epoll_pwait2, to the
 * next arrival or deadline); the closed loop starts a call on a
 * connection the moment one of its calls ends. One load thread is the
 * default: a second wakes as often with half the work each turn, and cost
 * 45% of a core where one cost 35% for the same open loop.
 *
 * Caveat: the generator and the daemon still share the cores (2 on the
 * machine this was written on); the offered rate reached is printed, with
 * the machine, the command and the daemon's flags, and the capacity it is
 * compared with is measured under the same sharing.
 *
 * --csv FILE writes one row per phase and second (calls started, OK,
 * DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED and other answers in that second,
 * the daemon's VmRSS); bench/overload_plot.py draws it.
 *
 * Usage: overload [--recsysd PATH] [--recsys-model PATH] [--seconds S]
 *                 [--warmup S] [--sweep-seconds S] [--threads N]
 *                 [--items N] [--users N] [--phase all|capacity|open|
 *                 storm|flood] [--capacity CALLS_PER_S] [--factor F]
 *                 [--load-threads N] [--open-conns N] [--max-in-flight N]
 *                 [--daemon-flag FLAG]... [--csv FILE] [--keep]
 * recsysd defaults to $RECSYSD, else the recsysd beside this program's
 * directory (build/bench/overload -> build/recsysd); recsys-model likewise.
 */
#define _GNU_SOURCE /* getline, memrchr */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "recsys/v1/recommender.pb-c.h"
#include "timing.h"
#include "tools/lib/opts.h"

extern char **environ;

enum {
    TOP = 10,                    /* items per Recommend */
    STATUSES = ERR_STATUS_COUNT, /* gRPC status codes 0..16 */
    SAMPLE_MS = 100,             /* the daemon's RSS is read this often */
    SWEEP_MAX = 1024,            /* calls in flight at most in the capacity sweep */
    SWEEP_CONNS = 8,             /* connections of the sweep, at most */
    OPEN_BURST = 64, /* open loop: arrivals started a turn, before the events are taken again */
    OPEN_MAX_LAG_US = 50000,  /* open loop: arrivals later than this are dropped, not sent */
    WAIT_MS = 10,             /* longest sleep of a load thread, so that it sees the stop soon */
    STREAM_WINDOW = 1 << 20,  /* HTTP/2 stream window: an answer is ~200 bytes, never held back */
    LOADER_IN = 256 << 10,    /* a load thread's read buffer: a read takes what the socket has */
    CONN_OUT = 32 << 10,      /* a connection's write buffer: 32 streams' frames, and then some */
    SETTLE_TIMEOUT_S = 30,    /* the longest wait for the daemon to go idle */
    TARGET_RSS_MB = 512,      /* issue 11's targets */
    TARGET_PROBE_P99_MS = 50, /* */
};
#define TARGET_RATIO 0.5
#define SWEEP_GAIN   1.05 /* the sweep stops when calls/s rises less than this */

static const char *const RECOMMEND = "/recsys.v1.Recommender/Recommend";

static void sleep_ms(double ms)
{
    struct timespec ts = {(time_t)(ms / 1e3), (long)(ms * 1e6) % 1000000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        continue;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* ==== options =========================================================== */

struct args {
    char *recsysd, *recsys_model, *csv, *phase, *dir;
    double seconds, warmup, sweep_seconds;
    uint32_t threads, items, users, capacity, factor, load_threads, open_conns, max_in_flight;
    uint32_t storm_conns, storm_streams, flood_conns, flood_streams;
    uint32_t deadline_ms, flood_deadline_ms, probe_deadline_ms;
    bool keep;
    struct opts_list daemon_flags; /* extra words for recsysd's command line */
};

#define U32(name, member, lo, hi)                                                                  \
    {                                                                                              \
        name, 0, OPT_UINT32, offsetof(struct args, member), false, lo, hi, "N"                     \
    }
#define SECS(name, member)                                                                         \
    {                                                                                              \
        name, 0, OPT_SECONDS, offsetof(struct args, member), false, 0, 0, "S"                      \
    }
#define STR(name, member, value)                                                                   \
    {                                                                                              \
        name, 0, OPT_STRING, offsetof(struct args, member), false, 0, 0, value                     \
    }

static const struct opt options[] = {
    STR("recsysd", recsysd, "PATH"),
    STR("recsys-model", recsys_model, "PATH"),
    STR("csv", csv, "FILE"),
    STR("phase", phase, "NAME"),
    STR("dir", dir, "DIR"),
    SECS("seconds", seconds),
    SECS("warmup", warmup),
    SECS("sweep-seconds", sweep_seconds),
    U32("threads", threads, 1, 256),
    U32("items", items, 2, UINT32_MAX),
    U32("users", users, 1, 999999),
    U32("capacity", capacity, 0, UINT32_MAX),
    U32("factor", factor, 1, 100),
    U32("load-threads", load_threads, 1, 64),
    U32("open-conns", open_conns, 1, 10000),
    U32("max-in-flight", max_in_flight, 1, 1000000),
    U32("storm-conns", storm_conns, 1, 10000),
    U32("storm-streams", storm_streams, 1, 10000),
    U32("flood-conns", flood_conns, 1, 10000),
    U32("flood-streams", flood_streams, 1, 10000),
    U32("deadline-ms", deadline_ms, 1, 3600000),
    U32("flood-deadline-ms", flood_deadline_ms, 1, 3600000),
    U32("probe-deadline-ms", probe_deadline_ms, 1, 3600000),
    {"keep", 0, OPT_FLAG, offsetof(struct args, keep), false, 0, 0, NULL},
    {"daemon-flag", 0, OPT_LIST, offsetof(struct args, daemon_flags), false, 0, 0, "FLAG"},
    {.name = NULL},
};

static const char USAGE[] =
    "usage: overload [options]\n"
    "  --recsysd PATH          the daemon ($RECSYSD, else beside this program's directory)\n"
    "  --recsys-model PATH     writes the demo model (likewise)\n"
    "  --seconds S             measured seconds per phase (10)\n"
    "  --warmup S              seconds before each phase's measurement (1)\n"
    "  --sweep-seconds S       each step of the capacity sweep (2)\n"
    "  --threads N             the daemon's --threads (2)\n"
    "  --items N, --users N    the demo model's (6000, 30000)\n"
    "  --phase NAME            all, capacity, open, storm or flood (all); open and storm\n"
    "                          measure the capacity first unless --capacity is given\n"
    "  --capacity N            calls/s to take as the capacity instead of measuring it\n"
    "  --factor F              open loop: offered rate = F x capacity (5)\n"
    "  --load-threads N        generator threads, one epoll loop each (1)\n"
    "  --open-conns N          open loop: connections (64)\n"
    "  --max-in-flight N       open loop: calls outstanding at most (20000)\n"
    "  --storm-conns N, --storm-streams N   storm: connections x calls each (64 x 100)\n"
    "  --flood-conns N, --flood-streams N   flood: connections x calls each (500 x 100)\n"
    "  --deadline-ms N         open and storm deadlines (50)\n"
    "  --flood-deadline-ms N   flood deadlines (10000)\n"
    "  --probe-deadline-ms N   the probe's deadline (1000)\n"
    "  --daemon-flag FLAG      one more word for recsysd's command line (repeatable)\n"
    "  --csv FILE              per-second figures, for bench/overload_plot.py\n"
    "  --dir DIR               where the model and the daemon's log go (a new /tmp dir)\n"
    "  --keep                  keep them\n";

/* The program @name beside this program's directory: build/bench/overload
 * -> build/@name. */
static char *beside(const char *name)
{
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
    if (n <= 0)
        return strdup(name);
    buf[n] = '\0';
    for (int i = 0; i < 2; i++) {
        char *slash = strrchr(buf, '/');
        if (slash == NULL)
            return strdup(name);
        *slash = '\0';
    }
    char *out;
    return asprintf(&out, "%s/%s", buf, name) < 0 ? NULL : out;
}

/* ==== the machine ======================================================= */

static void print_setup(int argc, char **argv)
{
    char line[256], cpu[256] = "unknown CPU";
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f != NULL && fgets(line, sizeof(line), f) != NULL &&
           sscanf(line, "model name : %255[^\n]", cpu) != 1)
        continue;
    if (f != NULL)
        fclose(f);
    double load[1] = {0};
    getloadavg(load, 1);
    printf("command: ");
    for (int i = 0; i < argc; i++)
        printf("%s%s", i > 0 ? " " : "", argv[i]);
    printf("\nmachine: %s, %ld cores, load %.2f at the start\n", cpu, sysconf(_SC_NPROCESSORS_ONLN),
           load[0]);
}

/* ==== the daemon ======================================================== */

struct daemon {
    pid_t pid;
    FILE *err;  /* its stderr */
    FILE *copy; /* its log, kept in the run's directory */
    pthread_t reader;
    bool reading;
    char addr[64];
    int metrics_port; /* its /metrics */
    char cmdline[1024];
};

/* run_wait - run @argv with stdout to /dev/null; 0 if it exited 0. */
static int run_wait(char *const *argv)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int rc = -posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    int status;
    if (rc == 0 && waitpid(pid, &status, 0) == pid)
        rc = WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -ECHILD;
    return rc;
}

static void *copy_log(void *arg)
{
    struct daemon *d = arg;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, d->err) > 0)
        fputs(line, d->copy);
    free(line);
    return NULL;
}

/* daemon_start - run recsysd on @model and wait until it listens; its
 * stderr is copied to @log_path from then on. *d must be zeroed;
 * daemon_stop cleans up after a failure too. */
static int daemon_start(struct daemon *d, const struct args *a, const char *model,
                        const char *log_path)
{
    char threads[16];
    snprintf(threads, sizeof(threads), "%u", a->threads);
    char *argv[16 + a->daemon_flags.n];
    size_t n = 0;
    argv[n++] = a->recsysd;
    argv[n++] = "--model";
    argv[n++] = (char *)model;
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--threads";
    argv[n++] = threads;
    argv[n++] = "--metrics-listen";
    argv[n++] = "127.0.0.1:0";
    for (size_t i = 0; i < a->daemon_flags.n; i++)
        argv[n++] = a->daemon_flags.v[i];
    argv[n] = NULL;
    size_t used = 0;
    for (size_t i = 0; i < n && used < sizeof(d->cmdline); i++)
        used += (size_t)snprintf(d->cmdline + used, sizeof(d->cmdline) - used, "%s%s",
                                 i > 0 ? " " : "", argv[i]);

    int fds[2];
    d->copy = fopen(log_path, "w");
    if (d->copy == NULL || pipe2(fds, O_CLOEXEC) != 0)
        return -errno;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDERR_FILENO);
    int rc = -posix_spawn(&d->pid, a->recsysd, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        d->pid = 0;
        close(fds[0]);
        return rc;
    }
    d->err = fdopen(fds[0], "r");
    if (d->err == NULL) {
        close(fds[0]);
        return -ENOMEM;
    }
    /* "... INFO  metrics on http://HOST:PORT/metrics", then "... INFO
     * listening on HOST:PORT threads=...": each port follows the last colon
     * of the word after the key. */
    char *line = NULL;
    size_t cap = 0;
    int port = 0;
    while (port == 0 && getline(&line, &cap, d->err) > 0) {
        fputs(line, d->copy);
        const char *metrics = strstr(line, "INFO  metrics on http://");
        const char *at = strstr(line, "INFO  listening on ");
        if (metrics != NULL) {
            metrics += strlen("INFO  metrics on http://");
            const char *colon = memchr(metrics, ':', strcspn(metrics, "/ \n"));
            d->metrics_port = colon != NULL ? atoi(colon + 1) : 0;
        }
        if (at == NULL)
            continue;
        at += strlen("INFO  listening on ");
        const char *colon = memrchr(at, ':', strcspn(at, " \n"));
        port = colon != NULL ? atoi(colon + 1) : 0;
    }
    free(line);
    fflush(d->copy);
    if (port == 0)
        return -EPIPE;
    snprintf(d->addr, sizeof(d->addr), "127.0.0.1:%d", port);
    rc = -pthread_create(&d->reader, NULL, copy_log, d);
    d->reading = rc == 0;
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
    return d->pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -ECHILD;
}

struct mem {
    long rss, hwm; /* kB */
};

static int read_mem(pid_t pid, struct mem *m)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -errno;
    *m = (struct mem){0};
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0)
            m->rss = atol(line + 6);
        else if (strncmp(line, "VmHWM:", 6) == 0)
            m->hwm = atol(line + 6);
    }
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

/* The CPU time the daemon has used, in clock ticks (utime + stime). */
static long cpu_ticks(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    size_t n = f != NULL ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f != NULL)
        fclose(f);
    buf[n] = '\0';
    /* Fields after the command's closing parenthesis: state is the 3rd of
     * the line, utime and stime the 14th and 15th. */
    const char *p = strrchr(buf, ')');
    long utime = 0, stime = 0;
    if (p != NULL)
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &utime, &stime);
    return utime + stime;
}

/* daemon_settle - wait until the daemon uses under 10% of a core (what a
 * phase left queued has been refused or dropped), at most
 * SETTLE_TIMEOUT_S. Returns the seconds waited. */
static double daemon_settle(pid_t pid)
{
    double start = timing_now_ms();
    long ticks_per_250ms = sysconf(_SC_CLK_TCK) / 4;
    long before = cpu_ticks(pid);
    while (timing_now_ms() - start < SETTLE_TIMEOUT_S * 1e3) {
        sleep_ms(250);
        long now = cpu_ticks(pid);
        if ((now - before) * 10 <= ticks_per_250ms)
            break;
        before = now;
    }
    return (timing_now_ms() - start) / 1e3;
}

/* ==== the load generator ================================================ */

enum mode { CLOSED, OPEN };

/* What one phase asks of the generator. */
struct spec {
    const char *name;
    enum mode mode;
    uint32_t conns;
    uint32_t streams;   /* CLOSED: calls kept in flight on each connection */
    double rate;        /* OPEN: calls per second, over all load threads */
    uint32_t in_flight; /* OPEN: calls outstanding at most, over all load threads */
    uint32_t deadline_ms;
    bool probe; /* a separate client calls one at a time meanwhile */
};

/* The columns of the per-second figures. */
enum col { COL_STARTED, COL_OK, COL_DEADLINE, COL_EXHAUSTED, COL_OTHER, COLS };

static enum col column(int status)
{
    switch (status) {
    case ERR_STATUS_OK:
        return COL_OK;
    case ERR_STATUS_DEADLINE_EXCEEDED:
        return COL_DEADLINE;
    case ERR_STATUS_RESOURCE_EXHAUSTED:
        return COL_EXHAUSTED;
    default:
        return COL_OTHER;
    }
}

/* ---- what the daemon says it answered ----------------------------------- */

/* The grpc_code label of go-grpc-prometheus for each column. */
static const char *const SERVER_CODES[COLS] = {
    [COL_OK] = "OK",
    [COL_DEADLINE] = "DeadlineExceeded",
    [COL_EXHAUSTED] = "ResourceExhausted",
};

/* scrape - the Recommend calls the daemon has answered so far, by column
 * (COL_STARTED stays 0), from its /metrics: its own count, which includes
 * answers sent after the client's deadline. 0, or -errno. */
static int scrape(int port, uint64_t out[COLS])
{
    memset(out, 0, COLS * sizeof(*out));
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct timeval limit = {5, 0}; /* a scrape under load is slow, never this slow */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    static const char get[] = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
                     write(fd, get, sizeof(get) - 1) == (ssize_t)(sizeof(get) - 1)
                 ? 0
                 : -errno;
    FILE *f = rc == 0 ? fdopen(fd, "r") : NULL;
    if (f == NULL) {
        close(fd);
        return rc != 0 ? rc : -ENOMEM;
    }
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        const char *code = strstr(line, "grpc_code=\"");
        if (strncmp(line, "grpc_server_handled_total{", 26) != 0 || code == NULL ||
            strstr(line, "grpc_method=\"Recommend\"") == NULL)
            continue;
        code += strlen("grpc_code=\"");
        enum col c = COL_OTHER;
        for (int k = 0; k < COLS; k++)
            if (SERVER_CODES[k] != NULL &&
                strncmp(code, SERVER_CODES[k], strlen(SERVER_CODES[k])) == 0 &&
                code[strlen(SERVER_CODES[k])] == '"')
                c = (enum col)k;
        const char *value = strstr(code, "} ");
        out[c] += value != NULL ? (uint64_t)strtod(value + 2, NULL) : 0;
    }
    free(line);
    fclose(f);
    return 0;
}

/* The clock of a phase, set before its load threads start and read-only
 * after: started at start_us, measured in [from_us, to_us). */
struct clock {
    double start_us, from_us, to_us;
    uint32_t seconds; /* of per-second rows: warm-up and measurement */
};

/* What a load thread (or the probe) saw; summed over them at the end. */
struct tally {
    uint64_t status[STATUSES]; /* calls completed in the window, by status */
    uint64_t started, missed;  /* calls started in the window; OPEN arrivals not sent, CLOSED
                                * calls the server's stream limit left out */
    uint64_t lost;             /* connections the server closed or broke */
    uint32_t allowed;          /* the server's SETTINGS_MAX_CONCURRENT_STREAMS, least seen */
    float *lat_ms;             /* OK calls completed in the window; the probe's: every call */
    size_t n, cap;
    uint64_t (*per_sec)[COLS]; /* by second since start_us, up to to_us */
};

static int tally_init(struct tally *t, uint32_t seconds)
{
    *t = (struct tally){0};
    t->per_sec = calloc(seconds, sizeof(*t->per_sec));
    return t->per_sec != NULL ? 0 : -ENOMEM;
}

static void tally_free(struct tally *t)
{
    free(t->lat_ms);
    free(t->per_sec);
}

static int note_latency(struct tally *t, float ms)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 4096;
        float *grown = realloc(t->lat_ms, cap * sizeof(*grown));
        if (grown == NULL)
            return -ENOMEM;
        t->lat_ms = grown;
        t->cap = cap;
    }
    t->lat_ms[t->n++] = ms;
    return 0;
}

/* tally_add - a call started at @start_us ended at @end_us with @status;
 * the latency of OK ones is kept, of every one with @all_latencies. */
static int tally_add(struct tally *t, const struct clock *clk, int status, double start_us,
                     double end_us, bool all_latencies)
{
    if (end_us >= clk->to_us)
        return 0;
    uint32_t sec = (uint32_t)((end_us - clk->start_us) / 1e6);
    if (sec < clk->seconds)
        t->per_sec[sec][column(status)]++;
    if (end_us < clk->from_us)
        return 0;
    t->status[status >= 0 && status < STATUSES ? status : ERR_STATUS_UNKNOWN]++;
    if (status == ERR_STATUS_OK || all_latencies)
        return note_latency(t, (float)((end_us - start_us) / 1e3));
    return 0;
}

static void tally_started(struct tally *t, const struct clock *clk, double now_us)
{
    uint32_t sec = (uint32_t)((now_us - clk->start_us) / 1e6);
    if (sec < clk->seconds)
        t->per_sec[sec][COL_STARTED]++;
    if (now_us >= clk->from_us && now_us < clk->to_us)
        t->started++;
}

/* ---- the HTTP/2 client --------------------------------------------------- */

/* One call: a slot of its load thread's pool, reused call after call. A
 * call is out from its start until its status arrives or its deadline
 * passes; its slot is free again once nghttp2 has closed the stream, which
 * for a call cut off by its deadline is when the RST_STREAM has gone. */
struct call {
    struct call *prev, *next; /* out: the thread's calls out, oldest first; free: next free */
    struct conn *conn;
    int32_t stream;   /* 0 while the slot is free */
    bool counted;     /* its deadline passed and it was counted so; the stream still closes */
    int status;       /* its grpc-status, -1 until that arrives */
    double start_us;  /* when it was queued for the socket */
    uint8_t body[64]; /* the one gRPC message: flag, length, RecommendRequest */
    size_t len, sent; /* sent: what of it nghttp2 has taken */
};

/* One connection: a socket, its nghttp2 session and what waits to be
 * written to it. */
struct conn {
    struct loader *l;
    int fd;
    nghttp2_session *h2;
    uint32_t events;  /* what epoll watches it for */
    bool connecting;  /* the non-blocking connect has not finished */
    bool ready;       /* the server's SETTINGS arrived: calls may start */
    bool dead;        /* lost before it was ever ready: not tried again this phase */
    bool flushing;    /* inside flush: a stream closing does not queue it again */
    bool queued;      /* on its thread's list of connections to flush */
    bool limited;     /* CLOSED: the calls the server does not allow are counted */
    uint32_t streams; /* open: calls out and calls cut off whose RST_STREAM is still queued */
    uint32_t limit;   /* streams it keeps open at most: the server's SETTINGS, and CLOSED's */
    struct conn *next_queued;
    uint8_t *out; /* CONN_OUT bytes, its share of the thread's buffer */
    size_t out_len;
};

/* One load thread: one epoll loop over its connections, its pool of call
 * slots, what it saw. */
struct loader {
    pthread_t thread;
    const struct spec *spec;
    const struct clock *clk;
    const atomic_bool *stop;
    const struct sockaddr_in *addr;
    uint32_t users, index, nloaders;
    bool probe; /* counts calls started in the window, any status's latency */
    uint64_t seed;
    int epfd;
    struct conn *conns;
    uint32_t nconns, next_conn; /* OPEN: round robin */
    struct call *calls;
    uint32_t ncalls, outstanding;
    struct call *free_list;
    struct call *oldest, *newest; /* calls out: all have the same deadline, so the oldest's
                                   * passes first */
    struct conn *queued;          /* connections to flush at the end of this turn */
    bool stopping;
    nghttp2_session_callbacks *callbacks;
    nghttp2_nv headers[7];
    char authority[64], timeout[16]; /* the values of :authority and grpc-timeout */
    uint8_t *in;                     /* LOADER_IN bytes: every read of the thread lands here */
    uint8_t *out;                    /* the connections' write buffers, CONN_OUT bytes each */
    struct tally tally;
    int rc;
};

static void conn_queue(struct conn *c)
{
    if (c->queued || c->flushing)
        return;
    c->queued = true;
    c->next_queued = c->l->queued;
    c->l->queued = c;
}

static void unlink_out(struct loader *l, struct call *c)
{
    *(c->prev != NULL ? &c->prev->next : &l->oldest) = c->next;
    *(c->next != NULL ? &c->next->prev : &l->newest) = c->prev;
    l->outstanding--;
}

/* end_call - count @c, out until @now, as ended with @status. The probe
 * counts the calls it started in the window, wherever they end, and the
 * latency of each. */
static void end_call(struct loader *l, struct call *c, int status, double now)
{
    unlink_out(l, c);
    int rc;
    if (!l->probe) {
        rc = tally_add(&l->tally, l->clk, status, c->start_us, now, false);
    } else if (c->start_us >= l->clk->from_us && c->start_us < l->clk->to_us) {
        struct clock whole = *l->clk;
        whole.to_us = INFINITY;
        rc = tally_add(&l->tally, &whole, status, c->start_us, now, true);
    } else {
        rc = 0;
    }
    l->rc = l->rc != 0 ? l->rc : rc;
}

static void free_call(struct loader *l, struct call *c)
{
    c->stream = 0;
    c->next = l->free_list;
    l->free_list = c;
}

/* The request body: one DATA frame, unless the server's flow-control
 * window has less room than its few dozen bytes. */
static ssize_t read_body(nghttp2_session *h2, int32_t stream, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *source, void *user)
{
    struct call *c = source->ptr;
    size_t n = c->len - c->sent < length ? c->len - c->sent : length;
    memcpy(buf, c->body + c->sent, n);
    c->sent += n;
    if (c->sent == c->len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* start_call - a Recommend for a random user on @conn, from a free slot;
 * the caller has checked that there is one and that @conn has room. */
static void start_call(struct loader *l, struct conn *conn)
{
    struct call *c = l->free_list;
    l->free_list = c->next;
    char user[16];
    snprintf(user, sizeof(user), "u%06u", 1 + (uint32_t)(splitmix(&l->seed) % l->users));
    Recsys__V1__RecommendRequest r = RECSYS__V1__RECOMMEND_REQUEST__INIT;
    r.user_id = user;
    r.count = TOP;
    /* The gRPC message prefix: not compressed, then the length big-endian. */
    size_t len = recsys__v1__recommend_request__pack(&r, c->body + 5);
    c->body[0] = 0;
    uint32_t be = htonl((uint32_t)len);
    memcpy(c->body + 1, &be, 4);
    c->len = 5 + len;
    c->sent = 0;
    c->conn = conn;
    c->counted = false;
    c->status = -1;
    nghttp2_data_provider body = {.source.ptr = c, .read_callback = read_body};
    c->stream = nghttp2_submit_request(conn->h2, NULL, l->headers,
                                       sizeof(l->headers) / sizeof(l->headers[0]), &body, c);
    if (c->stream < 0) {
        l->rc = ERR_INTERNAL;
        free_call(l, c);
        return;
    }
    c->start_us = timing_now_us();
    c->prev = l->newest;
    c->next = NULL;
    *(l->newest != NULL ? &l->newest->next : &l->oldest) = c;
    l->newest = c;
    l->outstanding++;
    conn->streams++;
    tally_started(&l->tally, l->clk, c->start_us);
    conn_queue(conn);
}

/* The frames nghttp2 makes are gathered in the connection's buffer, which
 * flush writes with one send() a turn; when it is full, the rest waits. */
static ssize_t on_send(nghttp2_session *h2, const uint8_t *data, size_t length, int flags,
                       void *user)
{
    struct conn *c = user;
    size_t room = CONN_OUT - c->out_len;
    if (room == 0)
        return NGHTTP2_ERR_WOULDBLOCK;
    size_t n = length < room ? length : room;
    memcpy(c->out + c->out_len, data, n);
    c->out_len += n;
    return (ssize_t)n;
}

/* The server's SETTINGS open the connection for calls, as many at once as
 * it allows; a GOAWAY closes it for new ones. */
static int on_frame(nghttp2_session *h2, const nghttp2_frame *frame, void *user)
{
    struct conn *c = user;
    struct loader *l = c->l;
    if (frame->hd.type == NGHTTP2_GOAWAY) {
        c->ready = false;
    } else if (frame->hd.type == NGHTTP2_SETTINGS && !(frame->hd.flags & NGHTTP2_FLAG_ACK)) {
        uint32_t allowed =
            nghttp2_session_get_remote_settings(h2, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
        uint32_t asked = l->spec->mode == CLOSED ? l->spec->streams : UINT32_MAX;
        c->limit = allowed < asked ? allowed : asked;
        c->ready = true;
        if (l->tally.allowed == 0 || allowed < l->tally.allowed)
            l->tally.allowed = allowed;
        if (l->spec->mode == CLOSED && !c->limited)
            l->tally.missed += asked - c->limit;
        c->limited = true;
    }
    return 0;
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user)
{
    static const char GRPC_STATUS[] = "grpc-status";
    if (frame->hd.type != NGHTTP2_HEADERS || namelen != sizeof(GRPC_STATUS) - 1 ||
        memcmp(name, GRPC_STATUS, namelen) != 0)
        return 0;
    struct call *c = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
    if (c == NULL)
        return 0;
    c->status = 0;
    for (size_t i = 0; i < valuelen && value[i] >= '0' && value[i] <= '9' && c->status < 100; i++)
        c->status = c->status * 10 + (value[i] - '0');
    return 0;
}

/* A stream closed: the call ends with its grpc-status (trailers, or the
 * headers of a trailers-only answer). One closed without a status ends as
 * a gRPC client ends it: UNAVAILABLE when the server refused the stream
 * (it did no work), CANCELLED when the server cancelled it, INTERNAL for
 * any other RST_STREAM. A call the client cut off was counted already; one
 * whose answer came in the same turn as its deadline passed (the thread
 * woke late) ends DEADLINE_EXCEEDED all the same: a gRPC client would have
 * given up on it. */
static int on_close(nghttp2_session *h2, int32_t stream, uint32_t error, void *user)
{
    struct conn *conn = user;
    struct loader *l = conn->l;
    struct call *c = nghttp2_session_get_stream_user_data(h2, stream);
    conn->streams--;
    conn_queue(conn);
    if (c == NULL)
        return 0;
    double now = timing_now_us();
    if (!c->counted) {
        int status = c->start_us + l->spec->deadline_ms * 1e3 <= now ? ERR_STATUS_DEADLINE_EXCEEDED
                     : c->status >= 0 && error == NGHTTP2_NO_ERROR   ? c->status
                     : error == NGHTTP2_REFUSED_STREAM               ? ERR_STATUS_UNAVAILABLE
                     : error == NGHTTP2_CANCEL                       ? ERR_STATUS_CANCELLED
                                                                     : ERR_STATUS_INTERNAL;
        end_call(l, c, status, now);
    }
    free_call(l, c);
    return 0;
}

/* The calls a lost connection had out end UNAVAILABLE, as a gRPC client
 * ends them; their slots are free again. */
static void end_calls_of(struct loader *l, struct conn *conn, double now)
{
    for (uint32_t i = 0; i < l->ncalls; i++) {
        struct call *c = &l->calls[i];
        if (c->stream == 0 || c->conn != conn)
            continue;
        if (!c->counted)
            end_call(l, c, ERR_STATUS_UNAVAILABLE, now);
        free_call(l, c);
    }
    conn->streams = 0;
}

static void conn_close(struct conn *c)
{
    if (c->h2 != NULL)
        nghttp2_session_del(c->h2);
    if (c->fd >= 0)
        close(c->fd);
    c->h2 = NULL;
    c->fd = -1;
}

/* conn_open - connect @c (non-blocking: it completes in the loop) and
 * queue the client's preface: SETTINGS with a stream window of
 * STREAM_WINDOW, and the connection's window opened to the most HTTP/2
 * allows, so that flow control never holds an answer back. */
static int conn_open(struct loader *l, struct conn *c)
{
    static const nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
    };
    /* A connection lost and opened again keeps its place in the queue to
     * flush and what it has counted. */
    *c = (struct conn){.l = l,
                       .fd = -1,
                       .out = c->out,
                       .limited = c->limited,
                       .queued = c->queued,
                       .next_queued = c->next_queued};
    int one = 1;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0 || setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
        return -errno;
    if (connect(c->fd, (const struct sockaddr *)l->addr, sizeof(*l->addr)) != 0 &&
        errno != EINPROGRESS)
        return -errno;
    c->connecting = true;
    c->events = EPOLLIN | EPOLLOUT;
    struct epoll_event ev = {.events = c->events, .data.ptr = c};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0)
        return -errno;
    if (nghttp2_session_client_new(&c->h2, l->callbacks, c) != 0 ||
        nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, settings,
                                sizeof(settings) / sizeof(settings[0])) != 0 ||
        nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0,
                                              NGHTTP2_MAX_WINDOW_SIZE) != 0)
        return ERR_INTERNAL;
    conn_queue(c);
    return 0;
}

/* conn_lost - the server closed @c or broke the protocol: its calls end,
 * and it connects again, unless it was lost before it was ever ready (the
 * daemon turned it away: trying again would only spin). */
static void conn_lost(struct loader *l, struct conn *c, double now)
{
    bool was_ready = c->ready;
    end_calls_of(l, c, now);
    conn_close(c);
    l->tally.lost++;
    c->dead = !was_ready || l->stopping;
    if (!c->dead && conn_open(l, c) != 0) {
        conn_close(c);
        c->dead = true;
    }
}

/* Start what CLOSED keeps out on @c: a new call for each that ended. */
static void refill(struct loader *l, struct conn *c)
{
    if (l->spec->mode != CLOSED || l->stopping || !c->ready)
        return;
    while (c->streams < c->limit && l->free_list != NULL && l->rc == 0)
        start_call(l, c);
}

/* flush - let nghttp2 write what it has into @c's buffer (RST_STREAMs
 * close their streams there, so CLOSED refills before a second pass), and
 * send the buffer with one send(). What the socket does not take waits for
 * EPOLLOUT. */
static void flush(struct loader *l, struct conn *c, double now)
{
    c->flushing = true;
    bool ok = nghttp2_session_send(c->h2) == 0;
    refill(l, c);
    ok = ok && nghttp2_session_send(c->h2) == 0;
    c->flushing = false;
    if (ok && !c->connecting && c->out_len > 0) {
        ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
        if (n > 0) {
            memmove(c->out, c->out + n, c->out_len - (size_t)n);
            c->out_len -= (size_t)n;
        } else if (errno != EAGAIN) {
            ok = false;
        }
    }
    if (!ok || (!nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2) &&
                c->out_len == 0)) {
        conn_lost(l, c, now);
        return;
    }
    uint32_t events = EPOLLIN | (c->connecting || c->out_len > 0 ? EPOLLOUT : 0);
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (events != c->events && epoll_ctl(l->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->events = events;
}

/* One epoll event on @c: the connect finished, the socket takes more, or
 * there is something to read (one read a turn: epoll is level-triggered,
 * so what is left wakes the next). */
static void on_event(struct loader *l, struct conn *c, uint32_t events, double now)
{
    if (c->connecting) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            conn_lost(l, c, now);
            return;
        }
        c->connecting = false;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        ssize_t n = read(c->fd, l->in, LOADER_IN);
        if (n == 0 || (n < 0 && errno != EAGAIN) ||
            (n > 0 && nghttp2_session_mem_recv(c->h2, l->in, (size_t)n) != n)) {
            conn_lost(l, c, now);
            return;
        }
    }
    conn_queue(c);
}

/* Calls whose deadline has passed end DEADLINE_EXCEEDED, as the client
 * sees them, and are cancelled with RST_STREAM CANCEL, as a gRPC client
 * cancels them. Returns the next deadline, or INFINITY. */
static double expire(struct loader *l, double now)
{
    double span = l->spec->deadline_ms * 1e3;
    while (l->oldest != NULL && l->oldest->start_us + span <= now) {
        struct call *c = l->oldest;
        end_call(l, c, ERR_STATUS_DEADLINE_EXCEEDED, now);
        c->counted = true;
        nghttp2_submit_rst_stream(c->conn->h2, NGHTTP2_FLAG_NONE, c->stream, NGHTTP2_CANCEL);
        conn_queue(c->conn);
    }
    return l->oldest != NULL ? l->oldest->start_us + span : INFINITY;
}

/* OPEN's next connection with room for a call, round robin; NULL if none
 * has. */
static struct conn *next_conn(struct loader *l)
{
    for (uint32_t k = 0; k < l->nconns; k++) {
        struct conn *c = &l->conns[l->next_conn];
        l->next_conn = (l->next_conn + 1) % l->nconns;
        if (c->ready && c->streams < c->limit)
            return c;
    }
    return NULL;
}

/* Open loop: arrivals evenly spaced at this thread's share of the rate,
 * sent round robin over its connections, whatever the answers; an arrival
 * that finds every slot taken or every connection at the server's stream
 * limit, or comes more than OPEN_MAX_LAG_US late (the generator fell
 * behind), is counted as missed instead. Returns the next arrival. */
static double arrive(struct loader *l, double next, double now)
{
    double interval = 1e6 * l->nloaders / l->spec->rate;
    if (now - next > OPEN_MAX_LAG_US) {
        uint64_t late = (uint64_t)((now - next) / interval);
        if (next >= l->clk->from_us && next < l->clk->to_us)
            l->tally.missed += late;
        next += (double)late * interval;
    }
    for (int k = 0; k < OPEN_BURST && next <= now && l->rc == 0; k++, next += interval) {
        struct conn *c = l->free_list != NULL ? next_conn(l) : NULL;
        if (c != NULL)
            start_call(l, c);
        else
            l->tally.missed += next >= l->clk->from_us && next < l->clk->to_us;
    }
    return next;
}

/* The loop: take the events, end the calls past their deadline, start the
 * arrivals due, flush every connection touched, and sleep until the next
 * event, deadline or arrival (at most WAIT_MS, to see the stop). The probe
 * stops starting calls at the stop and waits for the one it has out. */
static void run(struct loader *l)
{
    struct epoll_event events[256];
    double next =
        l->spec->mode == OPEN ? l->clk->start_us + 1e6 * l->index / l->spec->rate : INFINITY;
    int n = 0;
    while (l->rc == 0) {
        double now = timing_now_us();
        for (int i = 0; i < n; i++)
            on_event(l, events[i].data.ptr, events[i].events, now);
        l->stopping = atomic_load(l->stop);
        if (l->stopping && (!l->probe || l->outstanding == 0))
            break;
        double wake = expire(l, now);
        if (l->spec->mode == OPEN && !l->stopping) {
            next = arrive(l, next, now);
            wake = next < wake ? next : wake;
        }
        while (l->queued != NULL) {
            struct conn *c = l->queued;
            l->queued = c->next_queued;
            c->queued = false;
            if (!c->dead)
                flush(l, c, now);
        }
        double wait = wake - timing_now_us();
        wait = wait < 0 ? 0 : wait > WAIT_MS * 1e3 ? WAIT_MS * 1e3 : wait;
        struct timespec ts = {0, (long)(wait * 1e3)};
        n = epoll_pwait2(l->epfd, events, sizeof(events) / sizeof(events[0]), &ts, NULL);
        n = n < 0 ? 0 : n;
    }
}

/* loader_init - what a load thread needs before its loop: the pool of
 * call slots, the buffers, the nghttp2 callbacks and the request's
 * headers, which every call shares (nghttp2 copies none of them). */
static int loader_init(struct loader *l)
{
    snprintf(l->timeout, sizeof(l->timeout), "%um", l->spec->deadline_ms);
    l->calls = calloc(l->ncalls, sizeof(*l->calls));
    l->conns = calloc(l->nconns, sizeof(*l->conns));
    l->in = malloc(LOADER_IN);
    l->out = malloc((size_t)l->nconns * CONN_OUT);
    if (l->calls == NULL || l->conns == NULL || l->in == NULL || l->out == NULL ||
        nghttp2_session_callbacks_new(&l->callbacks) != 0)
        return -ENOMEM;
    for (uint32_t k = 0; k < l->ncalls; k++)
        free_call(l, &l->calls[k]);
    for (uint32_t k = 0; k < l->nconns; k++)
        l->conns[k] = (struct conn){.l = l, .fd = -1, .out = l->out + (size_t)k * CONN_OUT};
    nghttp2_session_callbacks_set_send_callback(l->callbacks, on_send);
    nghttp2_session_callbacks_set_on_frame_recv_callback(l->callbacks, on_frame);
    nghttp2_session_callbacks_set_on_header_callback(l->callbacks, on_header);
    nghttp2_session_callbacks_set_on_stream_close_callback(l->callbacks, on_close);
#define HEADER(name, value, len)                                                                   \
    {                                                                                              \
        (uint8_t *)(name), (uint8_t *)(value), sizeof(name) - 1, len,                              \
            NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE                           \
    }
    const nghttp2_nv headers[] = {
        HEADER(":method", "POST", 4),
        HEADER(":scheme", "http", 4),
        HEADER(":path", RECOMMEND, strlen(RECOMMEND)),
        HEADER(":authority", l->authority, strlen(l->authority)),
        HEADER("content-type", "application/grpc", 16),
        HEADER("te", "trailers", 8),
        HEADER("grpc-timeout", l->timeout, strlen(l->timeout)),
    };
#undef HEADER
    _Static_assert(sizeof(headers) == sizeof(l->headers), "one nv per header");
    memcpy(l->headers, headers, sizeof(headers));
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0)
        return -errno;
    for (uint32_t k = 0; k < l->nconns; k++) {
        int rc = conn_open(l, &l->conns[k]);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* What a thread leaves: the connections are closed with their calls still
 * out, which the daemon cancels as it would for a client gone away. */
static void loader_free(struct loader *l)
{
    for (uint32_t k = 0; l->conns != NULL && k < l->nconns; k++)
        conn_close(&l->conns[k]);
    if (l->epfd >= 0)
        close(l->epfd);
    nghttp2_session_callbacks_del(l->callbacks);
    free(l->calls);
    free(l->conns);
    free(l->in);
    free(l->out);
}

static void *loader_main(void *arg)
{
    struct loader *l = arg;
    l->rc = loader_init(l);
    if (l->rc == 0)
        run(l);
    loader_free(l);
    return NULL;
}

/* ==== a phase ============================================================ */

struct latency {
    size_t n;
    double p50, p99, max;
};

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static struct latency percentiles(float *v, size_t n)
{
    struct latency s = {.n = n};
    if (n == 0)
        return s;
    qsort(v, n, sizeof(*v), cmp_float);
    s.p50 = v[n / 2];
    s.p99 = v[(size_t)((double)(n - 1) * 0.99)];
    s.max = v[n - 1];
    return s;
}

/* What a phase measured. */
struct result {
    char label[32], load[64];
    double seconds;            /* of measurement */
    double rate_asked;         /* OPEN: calls/s asked for */
    double per_s[COLS];        /* in the window */
    double server_per_s[COLS]; /* the daemon's own count (COL_STARTED: 0) */
    uint64_t status[STATUSES]; /* in the window */
    uint64_t missed;           /* OPEN: arrivals not sent; CLOSED: calls never started */
    uint64_t lost;             /* connections the server closed or broke */
    uint32_t allowed;          /* the server's SETTINGS_MAX_CONCURRENT_STREAMS */
    struct latency ok;         /* OK calls */
    struct latency probe;      /* the probe's calls, any status */
    uint64_t probe_status[STATUSES];
    long rss_end, rss_peak, hwm; /* kB */
    bool hwm_reset;
};

/* Sum the tallies of @n load threads (and the probe) into @r and the
 * per-second rows into @csv. */
static int collect(struct result *r, const struct clock *clk, struct tally *const *t, size_t n,
                   const long *rss_per_sec, FILE *csv)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += t[i]->n;
    float *lat = malloc((total ? total : 1) * sizeof(float));
    if (lat == NULL)
        return -ENOMEM;
    total = 0;
    uint64_t started = 0;
    for (size_t i = 0; i < n; i++) {
        for (int s = 0; s < STATUSES; s++)
            r->status[s] += t[i]->status[s];
        started += t[i]->started;
        r->missed += t[i]->missed;
        memcpy(lat + total, t[i]->lat_ms, t[i]->n * sizeof(float));
        total += t[i]->n;
    }
    r->ok = percentiles(lat, total);
    free(lat);
    r->per_s[COL_STARTED] = (double)started / r->seconds;
    for (int s = 0; s < STATUSES; s++)
        r->per_s[column(s)] += (double)r->status[s] / r->seconds;
    /* Rows for the seconds that began before the window closed. */
    for (uint32_t sec = 0; csv != NULL && clk->start_us + sec * 1e6 < clk->to_us; sec++) {
        uint64_t row[COLS] = {0};
        for (size_t i = 0; i < n; i++)
            for (int c = 0; c < COLS; c++)
                row[c] += t[i]->per_sec[sec][c];
        bool measured = clk->start_us + sec * 1e6 >= clk->from_us;
        fprintf(csv, "%s,%u,%d,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%.1f\n",
                r->label, sec, measured, row[COL_STARTED], row[COL_OK], row[COL_DEADLINE],
                row[COL_EXHAUSTED], row[COL_OTHER], rss_per_sec[sec] / 1e3);
    }
    return 0;
}

struct bench {
    const struct args *a;
    struct daemon *d;
    FILE *csv;
};

/* The probe: one call at a time on a connection of its own. */
static struct spec probe_spec(const struct args *a)
{
    return (struct spec){"probe", CLOSED, 1, 1, 0, 0, a->probe_deadline_ms, false};
}

/* describe - @r's load, as the tables print it; a closed loop asking for
 * more streams than the server allows a connection shows what it got. */
static void describe(struct result *r, const struct spec *spec, uint32_t allowed)
{
    if (spec->mode == OPEN)
        snprintf(r->load, sizeof(r->load), "%.0f/s open over %u, %u ms", spec->rate, spec->conns,
                 spec->deadline_ms);
    else if (allowed > 0 && allowed < spec->streams)
        snprintf(r->load, sizeof(r->load), "%u x %u (%u) closed, %u ms", spec->conns, spec->streams,
                 allowed, spec->deadline_ms);
    else
        snprintf(r->load, sizeof(r->load), "%u x %u closed, %u ms", spec->conns, spec->streams,
                 spec->deadline_ms);
}

/* run_phase - load the daemon as @spec says for the warm-up and @seconds,
 * and put what was measured in @r. Load threads 0..nl-1, then the probe's
 * when @spec has one. */
static int run_phase(struct bench *b, const struct spec *spec, double seconds, struct result *r)
{
    const struct args *a = b->a;
    uint32_t nl = a->load_threads < spec->conns ? a->load_threads : spec->conns;
    uint32_t threads = nl + spec->probe;
    *r = (struct result){.seconds = seconds, .rate_asked = spec->rate};
    snprintf(r->label, sizeof(r->label), "%s", spec->name);
    const struct spec probe = probe_spec(a);
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)atoi(strrchr(b->d->addr, ':') + 1)),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

    struct clock clk;
    clk.seconds = (uint32_t)(a->warmup + seconds) + 1;
    struct loader *l = calloc(threads, sizeof(*l));
    long *rss_per_sec = calloc(clk.seconds, sizeof(long));
    atomic_bool stop;
    atomic_init(&stop, false);
    int rc = l != NULL && rss_per_sec != NULL ? 0 : -ENOMEM;
    uint32_t started = 0;

    struct mem m;
    r->hwm_reset = reset_hwm(b->d->pid);
    clk.start_us = timing_now_us();
    clk.from_us = clk.start_us + a->warmup * 1e6;
    clk.to_us = clk.from_us + seconds * 1e6;
    for (uint32_t i = 0; i < threads && rc == 0; i++, started++) {
        /* Connections dealt out in turn; OPEN slots likewise. */
        bool is_probe = i == nl;
        const struct spec *s = is_probe ? &probe : spec;
        uint32_t conns = is_probe ? 1 : spec->conns / nl + (i < spec->conns % nl);
        l[i] = (struct loader){.spec = s,
                               .clk = &clk,
                               .stop = &stop,
                               .addr = &addr,
                               .users = a->users,
                               .index = is_probe ? 0 : i,
                               .nloaders = is_probe ? 1 : nl,
                               .probe = is_probe,
                               .seed = is_probe ? 99 : 1000 + i,
                               .epfd = -1,
                               .nconns = conns};
        snprintf(l[i].authority, sizeof(l[i].authority), "%s", b->d->addr);
        l[i].ncalls =
            s->mode == CLOSED ? conns * s->streams : s->in_flight / nl + (i < s->in_flight % nl);
        rc = tally_init(&l[i].tally, clk.seconds);
        if (rc == 0)
            rc = -pthread_create(&l[i].thread, NULL, loader_main, &l[i]);
        if (rc != 0)
            break;
    }
    uint64_t before[COLS], after[COLS];
    double scraped_at = 0;
    for (double now = timing_now_us(); rc == 0 && now < clk.to_us; now = timing_now_us()) {
        if (scraped_at == 0 && now >= clk.from_us && scrape(b->d->metrics_port, before) == 0)
            scraped_at = timing_now_us();
        if (read_mem(b->d->pid, &m) == 0) {
            r->rss_peak = m.rss > r->rss_peak ? m.rss : r->rss_peak;
            rss_per_sec[(uint32_t)((now - clk.start_us) / 1e6)] = m.rss;
        }
        sleep_ms(SAMPLE_MS);
    }
    if (read_mem(b->d->pid, &m) == 0) {
        r->rss_end = m.rss;
        r->hwm = m.hwm;
    }
    if (scraped_at > 0 && scrape(b->d->metrics_port, after) == 0)
        for (int c = 0; c < COLS; c++)
            r->server_per_s[c] =
                (double)(after[c] - before[c]) * 1e6 / (timing_now_us() - scraped_at);
    atomic_store(&stop, true);
    for (uint32_t i = 0; i < started; i++) {
        pthread_join(l[i].thread, NULL);
        rc = rc != 0 ? rc : l[i].rc;
    }
    uint32_t allowed = 0;
    for (uint32_t i = 0; rc == 0 && i < nl; i++) {
        r->lost += l[i].tally.lost;
        if (l[i].tally.allowed > 0 && (allowed == 0 || l[i].tally.allowed < allowed))
            allowed = l[i].tally.allowed;
    }
    describe(r, spec, allowed);
    r->allowed = allowed;
    if (rc == 0) {
        struct tally *t[nl];
        for (uint32_t i = 0; i < nl; i++)
            t[i] = &l[i].tally;
        rc = collect(r, &clk, t, nl, rss_per_sec, b->csv);
    }
    if (rc == 0 && spec->probe) {
        r->probe = percentiles(l[nl].tally.lat_ms, l[nl].tally.n);
        memcpy(r->probe_status, l[nl].tally.status, sizeof(r->probe_status));
    }
    for (uint32_t i = 0; l != NULL && i < threads; i++)
        tally_free(&l[i].tally);
    free(l);
    free(rss_per_sec);
    return rc;
}

/* ==== reports ============================================================ */

/* The statuses other than OK, DEADLINE_EXCEEDED and RESOURCE_EXHAUSTED,
 * by name: "CANCELLED 12, UNAVAILABLE 3", or "". */
static void others(const uint64_t *status, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (int s = 0; s < STATUSES && used < size; s++)
        if (status[s] > 0 && column(s) == COL_OTHER)
            used += (size_t)snprintf(out + used, size - used, "%s%s %" PRIu64, used > 0 ? ", " : "",
                                     err_status_name(s), status[s]);
}

static void print_phase(const struct result *r)
{
    char other[256];
    others(r->status, other, sizeof(other));
    printf("%-10s %-32s offered %8.0f/s  OK %8.0f/s  DEADLINE_EXCEEDED %8.0f/s  "
           "RESOURCE_EXHAUSTED %8.0f/s  other %6.0f/s%s%s%s\n",
           r->label, r->load, r->per_s[COL_STARTED], r->per_s[COL_OK], r->per_s[COL_DEADLINE],
           r->per_s[COL_EXHAUSTED], r->per_s[COL_OTHER], other[0] ? " (" : "", other,
           other[0] ? ")" : "");
    printf("%-10s OK latency p50 %.2f ms, p99 %.2f ms, max %.2f ms; daemon VmRSS %.1f MB at the "
           "end, peak %.1f MB sampled, VmHWM %.1f MB%s\n",
           "", r->ok.p50, r->ok.p99, r->ok.max, r->rss_end / 1e3, r->rss_peak / 1e3, r->hwm / 1e3,
           r->hwm_reset ? " (this phase)" : " (since start)");
    printf("%-10s the daemon's count (/metrics): OK %.0f/s, DEADLINE_EXCEEDED %.0f/s, "
           "RESOURCE_EXHAUSTED %.0f/s, other %.0f/s\n",
           "", r->server_per_s[COL_OK], r->server_per_s[COL_DEADLINE],
           r->server_per_s[COL_EXHAUSTED], r->server_per_s[COL_OTHER]);
    if (r->rate_asked > 0)
        printf("%-10s asked %.0f/s, sent %.0f/s (%.0f%%); %" PRIu64 " arrivals not sent\n", "",
               r->rate_asked, r->per_s[COL_STARTED], 100 * r->per_s[COL_STARTED] / r->rate_asked,
               r->missed);
    else if (r->missed > 0)
        printf("%-10s %" PRIu64 " calls of the closed loop not sent: the daemon allows %u streams "
               "a connection\n",
               "", r->missed, r->allowed);
    if (r->lost > 0)
        printf("%-10s %" PRIu64 " connections lost (their calls counted UNAVAILABLE)\n", "",
               r->lost);
    if (r->probe.n > 0) {
        others(r->probe_status, other, sizeof(other));
        printf("%-10s probe: %zu calls, %" PRIu64 " OK, %" PRIu64 " DEADLINE_EXCEEDED%s%s; "
               "p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
               "", r->probe.n, r->probe_status[ERR_STATUS_OK],
               r->probe_status[ERR_STATUS_DEADLINE_EXCEEDED], other[0] ? ", " : "", other,
               r->probe.p50, r->probe.p99, r->probe.max);
    }
    fflush(stdout);
}

static void print_summary(const struct bench *b, const struct result *res, size_t n,
                          double capacity, uint32_t best_c)
{
    printf("\n== summary ==\n");
    printf("daemon: %s\n", b->d->cmdline);
    printf("%-10s %-32s %9s %9s %10s %9s %8s %8s %8s %8s %9s\n", "phase", "load", "offered/s",
           "OK/s", "DEADLINE/s", "EXHAUST/s", "other/s", "p50 ms", "p99 ms", "HWM MB", "srv OK/s");
    long hwm = 0;
    for (size_t i = 0; i < n; i++) {
        const struct result *r = &res[i];
        printf("%-10s %-32s %9.0f %9.0f %10.0f %9.0f %8.0f %8.2f %8.2f %8.1f %9.0f\n", r->label,
               r->load, r->per_s[COL_STARTED], r->per_s[COL_OK], r->per_s[COL_DEADLINE],
               r->per_s[COL_EXHAUSTED], r->per_s[COL_OTHER], r->ok.p50, r->ok.p99,
               (r->hwm > r->rss_peak ? r->hwm : r->rss_peak) / 1e3, r->server_per_s[COL_OK]);
        hwm = r->hwm > hwm ? r->hwm : hwm;
        hwm = r->rss_peak > hwm ? r->rss_peak : hwm;
    }
    if (best_c > 0)
        printf("\ncapacity: %.0f calls/s OK at %u calls in flight (the sweep's best)\n", capacity,
               best_c);
    else if (capacity > 0)
        printf("\ncapacity: %.0f calls/s OK (given with --capacity)\n", capacity);
    printf("OK/s: answers OK that reached the client within its deadline; srv OK/s: the daemon's\n"
           "own count of OK answers (/metrics), late ones included.\n");
    printf("targets (issue 11):\n");
    for (size_t i = 0; i < n; i++) {
        const struct result *r = &res[i];
        if (capacity > 0 && strcmp(r->label, "capacity") != 0 && strcmp(r->label, "flood") != 0) {
            double ratio = r->per_s[COL_OK] / capacity;
            printf(
                "  goodput %-6s / capacity = %6.0f / %.0f = %.2f  (>= %.2f: %s; the daemon's own "
                "OK count: %.2f)\n",
                r->label, r->per_s[COL_OK], capacity, ratio, TARGET_RATIO,
                ratio >= TARGET_RATIO ? "met" : "NOT met", r->server_per_s[COL_OK] / capacity);
        }
        if (r->probe.n > 0)
            printf("  probe p99 during %s = %.2f ms  (< %d ms: %s)\n", r->label, r->probe.p99,
                   TARGET_PROBE_P99_MS, r->probe.p99 < TARGET_PROBE_P99_MS ? "met" : "NOT met");
    }
    printf("  daemon peak RSS over the phases = %.1f MB  (< %d MB: %s)\n", hwm / 1e3, TARGET_RSS_MB,
           hwm / 1e3 < TARGET_RSS_MB ? "met" : "NOT met");
}

/* ==== the phases ========================================================== */

static bool wanted(const struct args *a, const char *phase)
{
    return strcmp(a->phase, "all") == 0 || strcmp(a->phase, phase) == 0;
}

static void settle(const struct bench *b)
{
    double waited = daemon_settle(b->d->pid);
    if (waited >= SETTLE_TIMEOUT_S)
        printf("(the daemon was still busy %d s after the last phase)\n", SETTLE_TIMEOUT_S);
}

/* measure_capacity - the sweep, then the best concurrency for --seconds
 * into @r; *best_c receives that concurrency. */
static int measure_capacity(struct bench *b, struct result *r, uint32_t *best_c)
{
    const struct args *a = b->a;
    double best = 0;
    int rc = 0, flat = 0;
    printf("capacity sweep, %.0f s a step (closed loop, 10 s deadlines):\n", a->sweep_seconds);
    for (uint32_t c = 1; c <= SWEEP_MAX && rc == 0; c *= 2) {
        uint32_t conns = c < SWEEP_CONNS ? c : SWEEP_CONNS;
        struct spec s = {"sweep", CLOSED, conns, c / conns, 0, 0, 10000, false};
        FILE *csv = b->csv;
        b->csv = NULL; /* the sweep's steps are not plotted */
        rc = run_phase(b, &s, a->sweep_seconds, r);
        b->csv = csv;
        settle(b);
        double ok = r->per_s[COL_OK];
        printf("  %3u in flight (%u x %u): %8.0f OK/s, p50 %.2f ms, p99 %.2f ms\n", c, conns,
               c / conns, ok, r->ok.p50, r->ok.p99);
        fflush(stdout);
        /* Two steps in a row, not one, so that one step slowed by the
         * machine's other work does not end the sweep early. */
        flat = ok > best * SWEEP_GAIN ? 0 : flat + 1;
        if (ok > best) {
            best = ok;
            *best_c = c;
        }
        if (flat == 2)
            break;
    }
    if (rc != 0)
        return rc;
    uint32_t conns = *best_c < SWEEP_CONNS ? *best_c : SWEEP_CONNS;
    struct spec s = {"capacity", CLOSED, conns, *best_c / conns, 0, 0, 10000, false};
    rc = run_phase(b, &s, a->seconds, r);
    if (rc == 0)
        print_phase(r);
    settle(b);
    return rc;
}

static int run_all(struct bench *b, struct result *res, size_t *n)
{
    const struct args *a = b->a;
    double capacity = a->capacity;
    uint32_t best_c = 0;
    int rc = 0;
    bool overload = wanted(a, "open") || wanted(a, "storm");
    if (capacity == 0 && (overload || wanted(a, "capacity"))) {
        rc = measure_capacity(b, &res[(*n)++], &best_c);
        capacity = res[0].per_s[COL_OK];
    }
    /* The overload phases, in the order they run. */
    const struct spec specs[] = {
        {"open", OPEN, a->open_conns, 0, capacity * a->factor, a->max_in_flight, a->deadline_ms,
         false},
        {"storm", CLOSED, a->storm_conns, a->storm_streams, 0, 0, a->deadline_ms, false},
        {"flood", CLOSED, a->flood_conns, a->flood_streams, 0, 0, a->flood_deadline_ms, true},
    };
    for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]) && rc == 0; i++) {
        if (!wanted(a, specs[i].name))
            continue;
        rc = run_phase(b, &specs[i], a->seconds, &res[*n]);
        if (rc == 0)
            print_phase(&res[(*n)++]);
        settle(b);
    }
    if (rc == 0)
        print_summary(b, res, *n, capacity, best_c);
    return rc;
}

/* ==== main ================================================================ */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "overload: failed to %s (%s)\n", what, err_strerror(rc));
    return 1;
}

int main(int argc, char **argv)
{
    char *flags[argc > 0 ? argc : 1];
    struct args a = {.recsysd = getenv("RECSYSD"),
                     .phase = "all",
                     .seconds = 10,
                     .warmup = 1,
                     .sweep_seconds = 2,
                     .threads = 2,
                     .items = 6000,
                     .users = 30000,
                     .factor = 5,
                     .load_threads = 1,
                     .open_conns = 64,
                     .max_in_flight = 20000,
                     .storm_conns = 64,
                     .storm_streams = 100,
                     .flood_conns = 500,
                     .flood_streams = 100,
                     .deadline_ms = 50,
                     .flood_deadline_ms = 10000,
                     .probe_deadline_ms = 1000,
                     .daemon_flags = {flags, 0}};
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0) {
            fputs(USAGE, stdout);
            return 0;
        }
    struct err e = {0};
    if (opts_parse(options, argc, argv, &a, NULL, 0, "", &e) != 0) {
        fprintf(stderr, "overload: %s\n%s", e.msg, USAGE);
        return 2;
    }
    static const char *const phases[] = {"all", "capacity", "open", "storm", "flood"};
    bool known = false;
    for (size_t i = 0; i < sizeof(phases) / sizeof(phases[0]); i++)
        known |= strcmp(a.phase, phases[i]) == 0;
    if (!known) {
        fprintf(stderr, "overload: --phase: '%s' is not a phase\n%s", a.phase, USAGE);
        return 2;
    }
    if (a.recsysd == NULL)
        a.recsysd = beside("recsysd");
    if (a.recsys_model == NULL)
        a.recsys_model = beside("recsys-model");
    if (a.recsysd == NULL || a.recsys_model == NULL)
        return fail("find recsysd", -ENOMEM);

    char dir[PATH_MAX], model[PATH_MAX + 16], log_path[PATH_MAX + 16];
    snprintf(dir, sizeof(dir), "%s", a.dir != NULL ? a.dir : "/tmp/recsys-overload-XXXXXX");
    if (a.dir == NULL ? mkdtemp(dir) == NULL : mkdir(dir, 0755) != 0 && errno != EEXIST)
        return fail("create the run's directory", -errno);
    snprintf(model, sizeof(model), "%s/demo.lmdb", dir);
    snprintf(log_path, sizeof(log_path), "%s/recsysd.log", dir);
    char items[16], users[16];
    snprintf(items, sizeof(items), "%u", a.items);
    snprintf(users, sizeof(users), "%u", a.users);
    char *const demo[] = {a.recsys_model, "demo",    "-o",  model, "--items",
                          items,          "--users", users, NULL};
    /* Calls to a daemon that died must fail, not kill the bench. */
    signal(SIGPIPE, SIG_IGN);
    print_setup(argc, argv);

    struct daemon d = {0};
    struct bench b = {.a = &a, .d = &d};
    struct result res[8];
    size_t n = 0;
    int rc = run_wait(demo);
    if (rc != 0) {
        fail("write the demo model", rc);
        goto out;
    }
    if (a.csv != NULL && (b.csv = fopen(a.csv, "w")) == NULL) {
        rc = -errno;
        fail("open the CSV file", rc);
        goto out;
    }
    if (b.csv != NULL)
        fprintf(b.csv, "phase,second,measured,started,ok,deadline_exceeded,resource_exhausted,"
                       "other,rss_mb\n");
    if ((rc = daemon_start(&d, &a, model, log_path)) != 0) {
        fail("start recsysd", rc);
        fprintf(stderr, "overload: its log: %s\n", log_path);
        goto out;
    }
    printf("daemon: %s (pid %d); demo model %u users, %u items; load: %u threads of the "
           "generator\n\n",
           d.cmdline, (int)d.pid, a.users, a.items, a.load_threads);
    fflush(stdout);
    rc = run_all(&b, res, &n);
    if (rc != 0)
        fail("run the phases", rc);
out:
    if (daemon_stop(&d) != 0 && rc == 0) {
        rc = -ECHILD;
        fail("stop recsysd (it did not exit 0)", rc);
    }
    if (b.csv != NULL && fclose(b.csv) != 0 && rc == 0) {
        rc = -errno;
        fail("write the CSV file", rc);
    }
    if (!a.keep)
        nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    else
        printf("kept: %s\n", dir);
    return rc != 0 ? 1 : 0;
}
