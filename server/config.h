/*
 * config: the daemon's settings.
 *
 * Every setting is one row of a table in config.c: its flag name, its
 * environment variable, its default, its help text, a generic parser and
 * the offset of the field it fills. Adding a setting adds a row and a field,
 * no code. Each setting is taken from, in order of precedence:
 *
 *   1. the command line, as `--name VALUE` or `--name=VALUE` (the last one wins);
 *   2. the environment variable (RECSYS_...);
 *   3. the default.
 *
 * A bad value is an error naming where it came from and what is allowed:
 *   "--threads: '0' is not in 1..1024"
 *   "RECSYS_GRACE_SECONDS: 'soon' is not a number of seconds"
 */
#pragma once

#include <stdio.h>

#include "base/err.h"
#include "base/log.h"

/* RECSYS_VERSION: project(VERSION) in CMakeLists.txt, defined for every target. */

#define CONFIG_THREADS_MAX 1024
/* --max-concurrent-streams auto: see config_streams. */
#define CONFIG_STREAMS_PER_THREAD 4
#define CONFIG_STREAMS_MIN        8

struct config {
    char model[4096];           /* model file path; "" with models_dir */
    char models_dir[4096];      /* directory of NAME.lmdb files; "" with model */
    char listen[256];           /* HOST:PORT; port 0 = any free port */
    char metrics_listen[256];   /* HOST:PORT of the metrics endpoint; "" = none */
    char tls_cert[4096];        /* PEM certificate chain; "" = plaintext */
    char tls_key[4096];         /* its PEM private key */
    char tls_client_ca[4096];   /* PEM CAs client certificates must chain to; "" = no mTLS */
    unsigned threads;           /* worker threads, 1..CONFIG_THREADS_MAX */
    unsigned max_request_bytes; /* largest request message the server receives */
    unsigned grace_ms;          /* how long shutdown waits for in-flight calls */
    /* Connections (server.c says why each default is what it is). */
    unsigned max_calls;              /* calls in flight in all; RESOURCE_EXHAUSTED beyond */
    unsigned max_connections;        /* plaintext TCP connections open at once, about */
    unsigned max_concurrent_streams; /* HTTP/2 streams a connection may have open; 0:
                                        auto (config_streams) */
    unsigned keepalive_ms;           /* ping a connection quiet this long; 0 = never */
    unsigned keepalive_timeout_ms;   /* close it when the ping is not answered in time */
    unsigned max_idle_ms;            /* close a connection with no call this long; 0 = never */
    unsigned max_age_ms;             /* close a connection this old; 0 = never */
    unsigned max_age_grace_ms;       /* calls on a closing connection finish within this */
    enum log_level log_level;
    char kernel[16];           /* scoring kernel: auto, avx512, avx2 or portable (score.h) */
    char scan[16];             /* item matrix copy to scan: auto, f32, bf16 or int8 (scan.h) */
    unsigned scan_threads;     /* split helpers (split.h); 0 = never split */
    unsigned scan_split_bytes; /* split scans reading at least this much (scan.h) */
    /* Live events (state/events.h). */
    char state_dir[4096];     /* "" = none: RecordEvents answers FAILED_PRECONDITION */
    unsigned state_max_bytes; /* the state may not grow past this */
    unsigned view_ttl_s;      /* recorded views are deleted this old; 0 = kept */
    char state_on_damage[16]; /* refuse (do not start) or serve (without events) */
};

/* What the command line asked for. */
enum config_action {
    CONFIG_RUN,     /* serve with the settings in struct config */
    CONFIG_HELP,    /* --help: print config_usage() and exit 0 */
    CONFIG_VERSION, /* --version: print RECSYS_VERSION and exit 0 */
};

/* config_load - fill @c from @argv (argv[0] is the program name), the
 * environment and the defaults.
 * @action: receives what the command line asked for. With --help or
 *          --version, @c is left unfilled.
 * @e:      receives the problem on failure; may be NULL.
 * Returns 0, or ERR_INVALID (unknown flag, missing value, a value out of
 * range, a required setting absent). */
int config_load(struct config *c, int argc, char *const argv[], enum config_action *action,
                struct err *e);

/* config_streams - the HTTP/2 streams one connection of @c may have open:
 * --max-concurrent-streams, or with auto CONFIG_STREAMS_PER_THREAD per
 * worker thread, at least CONFIG_STREAMS_MIN (server.c says why). */
unsigned config_streams(const struct config *c);

/* config_usage - print the --help text, generated from the settings table. */
void config_usage(FILE *out, const char *prog);
