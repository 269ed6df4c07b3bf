#include "server/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the settings table ------------------------------------------------ */

struct option;

/* A parser turns @val into the field at @field. @src names where the value
 * came from ("--threads", "RECSYS_THREADS", "default") for the error text. */
typedef int (*parse_fn)(const struct option *o, const char *src, const char *val, void *field,
                        struct err *e);

struct option {
    const char *name;    /* flag without the leading "--" */
    const char *env;     /* environment variable */
    const char *def;     /* default, parsed like any other value; NULL = required */
    const char *unless;  /* with def NULL: required unless this option is given, not both */
    const char *metavar; /* what --help shows as the value */
    const char *help;
    parse_fn parse;
    size_t offset;     /* of the field in struct config */
    size_t size;       /* of the field: the string parser's bound */
    unsigned min, max; /* range of the numeric parsers, in the field's unit */
};

static int parse_string(const struct option *o, const char *src, const char *val, void *field,
                        struct err *e);
static int parse_optional(const struct option *o, const char *src, const char *val, void *field,
                          struct err *e);
static int parse_threads(const struct option *o, const char *src, const char *val, void *field,
                         struct err *e);
static int parse_helpers(const struct option *o, const char *src, const char *val, void *field,
                         struct err *e);
static int parse_bytes(const struct option *o, const char *src, const char *val, void *field,
                       struct err *e);
static int parse_seconds(const struct option *o, const char *src, const char *val, void *field,
                         struct err *e);
static int parse_duration(const struct option *o, const char *src, const char *val, void *field,
                          struct err *e);
static int parse_level(const struct option *o, const char *src, const char *val, void *field,
                       struct err *e);
static int parse_count(const struct option *o, const char *src, const char *val, void *field,
                       struct err *e);
static int parse_streams(const struct option *o, const char *src, const char *val, void *field,
                         struct err *e);

#define FIELD(f) .offset = offsetof(struct config, f), .size = sizeof(((struct config *)0)->f)

static const struct option options[] = {
    {.name = "model",
     .env = "RECSYS_MODEL",
     .unless = "models-dir",
     .metavar = "FILE",
     .help = "model file to serve, as the model named default",
     .parse = parse_string,
     FIELD(model)},
    {.name = "models-dir",
     .env = "RECSYS_MODELS_DIR",
     .unless = "model",
     .metavar = "DIR",
     .help = "serve every DIR/NAME.lmdb as the model NAME, routed by DIR/routes.json",
     .parse = parse_string,
     FIELD(models_dir)},
    {.name = "listen",
     .env = "RECSYS_LISTEN",
     .def = "127.0.0.1:50051",
     .metavar = "HOST:PORT",
     .help = "address to listen on; port 0 picks a free port",
     .parse = parse_string,
     FIELD(listen)},
    {.name = "metrics-listen",
     .env = "RECSYS_METRICS_LISTEN",
     .def = "off",
     .metavar = "HOST:PORT",
     .help = "address of the Prometheus endpoint (GET /metrics over HTTP); port 0 picks a "
             "free port; off = none",
     .parse = parse_optional,
     FIELD(metrics_listen)},
    {.name = "tls-cert",
     .env = "RECSYS_TLS_CERT",
     .def = "off",
     .metavar = "FILE",
     .help = "serve gRPC over TLS with this PEM certificate chain (with --tls-key); off = "
             "plaintext",
     .parse = parse_optional,
     FIELD(tls_cert)},
    {.name = "tls-key",
     .env = "RECSYS_TLS_KEY",
     .def = "off",
     .metavar = "FILE",
     .help = "the PEM private key of --tls-cert",
     .parse = parse_optional,
     FIELD(tls_key)},
    {.name = "tls-client-ca",
     .env = "RECSYS_TLS_CLIENT_CA",
     .def = "off",
     .metavar = "FILE",
     .help = "require client certificates signed by these PEM CA certificates (mutual TLS); "
             "off = any client",
     .parse = parse_optional,
     FIELD(tls_client_ca)},
    {.name = "threads",
     .env = "RECSYS_THREADS",
     .def = "auto",
     .metavar = "N",
     .help = "worker threads; auto = one per online CPU",
     .parse = parse_threads,
     FIELD(threads),
     .min = 1,
     .max = CONFIG_THREADS_MAX},
    /* The ceiling keeps the value an int, which is what gRPC's channel arg takes. */
    {.name = "max-request-bytes",
     .env = "RECSYS_MAX_REQUEST_BYTES",
     .def = "4M",
     .metavar = "BYTES",
     .help = "largest request message accepted (suffix K, M or G)",
     .parse = parse_bytes,
     FIELD(max_request_bytes),
     .min = 1024,
     .max = 1u << 30},
    {.name = "grace-seconds",
     .env = "RECSYS_GRACE_SECONDS",
     .def = "10",
     .metavar = "SECONDS",
     .help = "on SIGTERM/SIGINT, how long calls in flight may run before cancelled",
     .parse = parse_seconds,
     FIELD(grace_ms),
     .min = 0,
     .max = 3600 * 1000},
    /* What the defaults protect is said in server.c. */
    {.name = "max-calls",
     .env = "RECSYS_MAX_CALLS",
     .def = "32768",
     .metavar = "N",
     .help = "calls in flight at once, over all connections (at most connections x streams "
             "can be open); more are answered RESOURCE_EXHAUSTED at once",
     .parse = parse_count,
     FIELD(max_calls),
     .min = 1,
     .max = 1u << 20},
    {.name = "max-connections",
     .env = "RECSYS_MAX_CONNECTIONS",
     .def = "1024",
     .metavar = "N",
     .help = "connections open at once on a plaintext port, about (counted by descriptors); "
             "more are closed on arrival",
     .parse = parse_count,
     FIELD(max_connections),
     .min = 1,
     .max = 1u << 20},
    {.name = "max-concurrent-streams",
     .env = "RECSYS_MAX_CONCURRENT_STREAMS",
     .def = "auto",
     .metavar = "N",
     .help = "HTTP/2 streams (calls) one connection may have open at once; auto = 4 per "
             "worker thread, at least 8",
     .parse = parse_streams,
     FIELD(max_concurrent_streams),
     .min = 1,
     .max = 1u << 20},
    {.name = "keepalive-seconds",
     .env = "RECSYS_KEEPALIVE_SECONDS",
     .def = "60",
     .metavar = "SECONDS",
     .help = "ping a connection after this long without traffic; 0 = never",
     .parse = parse_seconds,
     FIELD(keepalive_ms),
     .min = 0,
     .max = 86400 * 1000},
    {.name = "keepalive-timeout-seconds",
     .env = "RECSYS_KEEPALIVE_TIMEOUT_SECONDS",
     .def = "20",
     .metavar = "SECONDS",
     .help = "close a connection whose keepalive ping is not answered within this",
     .parse = parse_seconds,
     FIELD(keepalive_timeout_ms),
     .min = 1000,
     .max = 3600 * 1000},
    {.name = "max-connection-idle-seconds",
     .env = "RECSYS_MAX_CONNECTION_IDLE_SECONDS",
     .def = "300",
     .metavar = "SECONDS",
     .help = "close (GOAWAY) a connection that had no call for this long; 0 = never",
     .parse = parse_seconds,
     FIELD(max_idle_ms),
     .min = 0,
     .max = 86400 * 1000},
    {.name = "max-connection-age-seconds",
     .env = "RECSYS_MAX_CONNECTION_AGE_SECONDS",
     .def = "300",
     .metavar = "SECONDS",
     .help = "close (GOAWAY) a connection this old, so clients reconnect and spread over "
             "replicas; 0 = never",
     .parse = parse_seconds,
     FIELD(max_age_ms),
     .min = 0,
     .max = 86400 * 1000},
    {.name = "max-connection-age-grace-seconds",
     .env = "RECSYS_MAX_CONNECTION_AGE_GRACE_SECONDS",
     .def = "30",
     .metavar = "SECONDS",
     .help = "calls in flight on a connection closed for its age may run this long",
     .parse = parse_seconds,
     FIELD(max_age_grace_ms),
     .min = 0,
     .max = 3600 * 1000},
    {.name = "log-level",
     .env = "RECSYS_LOG_LEVEL",
     .def = "info",
     .metavar = "LEVEL",
     .help = "debug, info, warn or error",
     .parse = parse_level,
     FIELD(log_level)},
    /* Checked against the build and the CPU by score_select_kernel at start. */
    {.name = "kernel",
     .env = "RECSYS_KERNEL",
     .def = "auto",
     .metavar = "NAME",
     .help = "scoring kernel: auto (best this CPU has), avx512, avx2 or portable",
     .parse = parse_string,
     FIELD(kernel)},
    /* Checked by scan_select at start. */
    {.name = "scan",
     .env = "RECSYS_SCAN",
     .def = "auto",
     .metavar = "COPY",
     .help = "item matrix copy Recommend scans: auto (the copy the model holds that scans "
             "fastest, timed at each load), f32, bf16 or int8; results are exact whichever",
     .parse = parse_string,
     FIELD(scan)},
    /* Checked against the pool's limit by split_start at start. */
    {.name = "scan-threads",
     .env = "RECSYS_SCAN_THREADS",
     .def = "auto",
     .metavar = "N",
     .help = "helper threads a Recommend scan of a large catalog is split over, on top of "
             "the worker; auto = online CPUs - 1, at most 3; 0 = never split",
     .parse = parse_helpers,
     FIELD(scan_threads),
     .min = 0,
     .max = 7},
    {.name = "scan-split-bytes",
     .env = "RECSYS_SCAN_SPLIT_BYTES",
     .def = "64M",
     .metavar = "BYTES",
     .help = "split a scan over the scan threads when it reads at least this many bytes "
             "(suffix K, M or G)",
     .parse = parse_bytes,
     FIELD(scan_split_bytes),
     .min = 1,
     .max = UINT_MAX},
    {.name = "state-dir",
     .env = "RECSYS_STATE_DIR",
     .def = "off",
     .metavar = "DIR",
     .help = "keep live events (RecordEvents) in this directory, created if missing; never "
             "the model's file; off = no live events",
     .parse = parse_optional,
     FIELD(state_dir)},
    /* LMDB reserves the address space, not the disk: the file grows with use. */
    {.name = "state-max-bytes",
     .env = "RECSYS_STATE_MAX_BYTES",
     .def = "1G",
     .metavar = "BYTES",
     .help = "largest the state may grow; RecordEvents answers RESOURCE_EXHAUSTED beyond "
             "(suffix K, M or G)",
     .parse = parse_bytes,
     FIELD(state_max_bytes),
     .min = 1u << 20,
     .max = UINT_MAX},
    {.name = "view-ttl",
     .env = "RECSYS_VIEW_TTL",
     .def = "30d",
     .metavar = "DURATION",
     .help = "delete recorded views this old (suffix s, m, h or d); 0 = keep until a model "
             "holds them",
     .parse = parse_duration,
     FIELD(view_ttl_s),
     .min = 0,
     .max = 3650u * 86400u},
    /* Checked by main: refuse or serve. */
    {.name = "state-on-damage",
     .env = "RECSYS_STATE_ON_DAMAGE",
     .def = "refuse",
     .metavar = "WHAT",
     .help = "a damaged state directory at start: refuse (exit; the default) or serve "
             "(without live events, reported by GetModelInfo and /metrics)",
     .parse = parse_string,
     FIELD(state_on_damage)},
};

#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

/* ---- parsers ------------------------------------------------------------- */

static int parse_string(const struct option *o, const char *src, const char *val, void *field,
                        struct err *e)
{
    size_t len = strlen(val);
    if (len == 0)
        return err_set(e, ERR_INVALID, "%s: must not be empty", src);
    if (len >= o->size)
        return err_set(e, ERR_INVALID, "%s: longer than %zu bytes", src, o->size - 1);
    memcpy(field, val, len + 1);
    return 0;
}

/* A string, or "off", stored as "": for settings that are off by default. */
static int parse_optional(const struct option *o, const char *src, const char *val, void *field,
                          struct err *e)
{
    if (strcmp(val, "off") == 0) {
        *(char *)field = '\0';
        return 0;
    }
    return parse_string(o, src, val, field, e);
}

/* Decimal digits only: strtoul alone would accept " 7", "+7" and "-7". */
static int parse_digits(const char *val, const char **end, unsigned long long *out)
{
    if (!isdigit((unsigned char)val[0]))
        return ERR_INVALID;
    errno = 0;
    char *stop;
    *out = strtoull(val, &stop, 10);
    *end = stop;
    return errno == ERANGE ? ERR_INVALID : 0;
}

static int check_range(const struct option *o, const char *src, const char *val,
                       unsigned long long v, void *field, struct err *e)
{
    if (v < o->min || v > o->max)
        return err_set(e, ERR_INVALID, "%s: '%s' is not in %u..%u", src, val, o->min, o->max);
    *(unsigned *)field = (unsigned)v;
    return 0;
}

static int parse_threads(const struct option *o, const char *src, const char *val, void *field,
                         struct err *e)
{
    unsigned long long v;
    const char *end;
    if (strcmp(val, "auto") == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        v = cpus < (long)o->min ? o->min : cpus > (long)o->max ? o->max : (unsigned long long)cpus;
        *(unsigned *)field = (unsigned)v;
        return 0;
    }
    if (parse_digits(val, &end, &v) != 0 || *end != '\0')
        return err_set(e, ERR_INVALID, "%s: '%s' is not a number or 'auto'", src, val);
    return check_range(o, src, val, v, field, e);
}

/* auto stays small: the parts of a scan share one memory bus, and each
 * helper is one more thread competing with the workers under load. */
#define AUTO_HELPERS_MAX 3

static int parse_helpers(const struct option *o, const char *src, const char *val, void *field,
                         struct err *e)
{
    if (strcmp(val, "auto") != 0)
        return parse_threads(o, src, val, field, e);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    *(unsigned *)field = cpus <= 1                     ? 0
                         : cpus - 1 > AUTO_HELPERS_MAX ? AUTO_HELPERS_MAX
                                                       : (unsigned)(cpus - 1);
    return 0;
}

static int parse_bytes(const struct option *o, const char *src, const char *val, void *field,
                       struct err *e)
{
    static const struct {
        char suffix;
        unsigned shift;
    } units[] = {{'\0', 0}, {'K', 10}, {'M', 20}, {'G', 30}};
    unsigned long long v;
    const char *end;
    if (parse_digits(val, &end, &v) != 0)
        return err_set(e, ERR_INVALID, "%s: '%s' is not a size in bytes", src, val);
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (toupper((unsigned char)end[0]) != units[i].suffix)
            continue;
        if (end[0] != '\0' && end[1] != '\0')
            break;
        if (v > (ULLONG_MAX >> units[i].shift))
            v = ULLONG_MAX;
        else
            v <<= units[i].shift;
        return check_range(o, src, val, v, field, e);
    }
    return err_set(e, ERR_INVALID, "%s: '%s' is not a size in bytes (suffix K, M or G)", src, val);
}

/* Seconds with up to three decimals ("10", "0.25"), kept as milliseconds. */
static int parse_seconds(const struct option *o, const char *src, const char *val, void *field,
                         struct err *e)
{
    unsigned long long whole, ms = 0;
    const char *end;
    if (parse_digits(val, &end, &whole) != 0)
        goto bad;
    if (*end == '.') {
        unsigned long long scale = 100;
        for (end++; isdigit((unsigned char)*end) && scale > 0; end++, scale /= 10)
            ms += (unsigned long long)(*end - '0') * scale;
    }
    if (*end != '\0')
        goto bad;
    unsigned long long v = whole > ULLONG_MAX / 1000 ? ULLONG_MAX : whole * 1000 + ms;
    if (v < o->min || v > o->max)
        return err_set(e, ERR_INVALID, "%s: '%s' is not in %g..%g seconds", src, val,
                       o->min / 1000.0, o->max / 1000.0);
    *(unsigned *)field = (unsigned)v;
    return 0;
bad:
    return err_set(e, ERR_INVALID, "%s: '%s' is not a number of seconds (at most 3 decimals)", src,
                   val);
}

/* parse_count - a plain number in [o->min, o->max], digits only. */
static int parse_count(const struct option *o, const char *src, const char *val, void *field,
                       struct err *e)
{
    unsigned long long v;
    const char *end;
    if (parse_digits(val, &end, &v) != 0 || *end != '\0')
        return err_set(e, ERR_INVALID, "%s: '%s' is not a number", src, val);
    return check_range(o, src, val, v, field, e);
}

/* parse_streams - a count, or auto: 0, for config_streams to resolve once
 * --threads is known, whichever way each was given. */
static int parse_streams(const struct option *o, const char *src, const char *val, void *field,
                         struct err *e)
{
    if (strcmp(val, "auto") != 0)
        return parse_count(o, src, val, field, e);
    *(unsigned *)field = 0;
    return 0;
}

unsigned config_streams(const struct config *c)
{
    unsigned streams = c->threads * CONFIG_STREAMS_PER_THREAD;
    return c->max_concurrent_streams != 0 ? c->max_concurrent_streams
           : streams < CONFIG_STREAMS_MIN ? CONFIG_STREAMS_MIN
                                          : streams;
}

/* A whole number with an optional unit: s (the default), m, h or d; the
 * field holds seconds. */
static int parse_duration(const struct option *o, const char *src, const char *val, void *field,
                          struct err *e)
{
    static const struct {
        char suffix;
        unsigned long long seconds;
    } units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
    unsigned long long v;
    const char *end;
    if (parse_digits(val, &end, &v) != 0)
        goto bad;
    unsigned long long scale = *end == '\0' ? 1 : 0;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]) && scale == 0; i++)
        if (end[0] == units[i].suffix && end[1] == '\0')
            scale = units[i].seconds;
    if (scale == 0)
        goto bad;
    if (v > ULLONG_MAX / scale || v * scale < o->min || v * scale > o->max)
        return err_set(e, ERR_INVALID, "%s: '%s' is not in %u..%u seconds", src, val, o->min,
                       o->max);
    *(unsigned *)field = (unsigned)(v * scale);
    return 0;
bad:
    return err_set(e, ERR_INVALID, "%s: '%s' is not a duration (a number, then s, m, h or d)", src,
                   val);
}

static int parse_level(const struct option *o, const char *src, const char *val, void *field,
                       struct err *e)
{
    if (log_parse_level(val, field) != 0)
        return err_set(e, ERR_INVALID, "%s: '%s' is not one of %s", src, val, o->help);
    return 0;
}

/* ---- command line and environment ------------------------------------- */

static const struct option *find_option(const char *name, size_t len)
{
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (strlen(options[i].name) == len && memcmp(options[i].name, name, len) == 0)
            return &options[i];
    return NULL;
}

/* Collects the value each flag was given into @values (indexed like
 * options[]); stops at --help or --version. */
static int scan_argv(int argc, char *const argv[], const char *values[], enum config_action *action,
                     struct err *e)
{
    static const struct {
        const char *flag;
        enum config_action action;
    } actions[] = {{"--help", CONFIG_HELP}, {"--version", CONFIG_VERSION}};

    *action = CONFIG_RUN;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        for (size_t k = 0; k < sizeof(actions) / sizeof(actions[0]); k++) {
            if (strcmp(arg, actions[k].flag) == 0) {
                *action = actions[k].action;
                return 0;
            }
        }
        if (strncmp(arg, "--", 2) != 0)
            return err_set(e, ERR_INVALID, "unexpected argument '%s'", arg);
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq != NULL ? (size_t)(eq - name) : strlen(name);
        const struct option *o = find_option(name, len);
        if (o == NULL)
            return err_set(e, ERR_INVALID, "unknown option '--%.*s'", (int)len, name);
        if (eq == NULL && i + 1 >= argc)
            return err_set(e, ERR_INVALID, "--%s: missing value", o->name);
        values[o - options] = eq != NULL ? eq + 1 : argv[++i];
    }
    return 0;
}

int config_load(struct config *c, int argc, char *const argv[], enum config_action *action,
                struct err *e)
{
    const char *values[N_OPTIONS] = {0};
    int rc = scan_argv(argc, argv, values, action, e);
    if (rc != 0 || *action != CONFIG_RUN)
        return rc;

    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const struct option *o = &options[i];
        char flag[64];
        snprintf(flag, sizeof(flag), "--%s", o->name);
        const char *env = getenv(o->env);
        const char *src = flag, *val = values[i];
        /* An empty variable counts as unset, as shells and unit files
         * make "set but empty" easy to produce by accident. */
        if (val == NULL && env != NULL && env[0] != '\0')
            src = o->env, val = env;
        if (val == NULL)
            src = "default", val = o->def;
        if (val == NULL && o->unless != NULL)
            continue; /* checked with its pair, below */
        if (val == NULL)
            return err_set(e, ERR_INVALID, "%s (or %s) is required", flag, o->env);
        rc = o->parse(o, src, val, (char *)c + o->offset, e);
        if (rc != 0)
            return rc;
    }
    if (c->model[0] == '\0' && c->models_dir[0] == '\0')
        return err_set(e, ERR_INVALID,
                       "--model (or RECSYS_MODEL) is required, or --models-dir (or "
                       "RECSYS_MODELS_DIR)");
    if (c->model[0] != '\0' && c->models_dir[0] != '\0')
        return err_set(e, ERR_INVALID, "--model and --models-dir exclude each other: give one");
    return 0;
}

void config_usage(FILE *out, const char *prog)
{
    fprintf(out,
            "Usage: %s --model FILE [OPTION]...\n"
            "       %s --models-dir DIR [OPTION]...\n"
            "Serve recommendations from recsysd model files over gRPC.\n\n",
            prog, prog);
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const struct option *o = &options[i];
        char flag[96];
        snprintf(flag, sizeof(flag), "--%s %s", o->name, o->metavar);
        fprintf(out, "  %-28s %s\n", flag, o->help);
        if (o->def != NULL)
            fprintf(out, "  %-28s env %s, default %s\n", "", o->env, o->def);
        else if (o->unless != NULL)
            fprintf(out, "  %-28s env %s, required unless --%s\n", "", o->env, o->unless);
        else
            fprintf(out, "  %-28s env %s, required\n", "", o->env);
    }
    fprintf(out, "  %-28s %s\n", "--help", "print this help and exit");
    fprintf(out, "  %-28s %s\n", "--version", "print the version and exit");
    fprintf(out, "\nA flag wins over its environment variable, which wins over the default.\n"
                 "Signals: SIGTERM or SIGINT stop gracefully.\n");
}
