/*
 * args: what recsys-cli's command line says, in one struct: every option of
 * every command lands in its member of struct cli_args, parsed by
 * tools/lib/opts.h from the tables of main.c (global options) and
 * commands.c (each command's).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tools/lib/opts.h"

/* One event of `record`, in the order the command line gives them. */
struct cli_event {
    int type;   /* a Recsys__V1__EventType */
    char *item; /* borrowed from argv */
};

struct cli_args {
    /* before or after the command */
    char *addr;
    double timeout; /* seconds, > 0 */
    bool tls;       /* TLS with the system's CAs, unless tls_ca names others */
    char *tls_ca, *tls_cert, *tls_key;
    bool json;
    bool help;
    /* the command's own; strings are NULL until given and borrowed from argv */
    char *user;
    char *item;
    char *model; /* a named model; NULL: the route's */
    uint32_t count;
    bool purchasable_only;
    struct opts_list exclude;
    struct opts_list categories;
    struct opts_list owned;
    struct opts_list words; /* the command's positional arguments */
    /* record: the items of each type as the option table collects them,
     * merged in command-line order into events by the command's check */
    struct opts_list purchases, views, refunds;
    char *weight_text;        /* --weight as given; NULL when not */
    float weight;             /* record: weight_text parsed; 0 (the type's own) by default */
    uint64_t time_ms;         /* record: 0 (now) by default */
    struct cli_event *events; /* record: every event, in order; owned (room for argc) */
    size_t n_events;
    char **storage; /* backs the seven lists; owned */
    /* The whole command line, borrowed: where each list's values came from */
    char **argv;
    int argc;
};

/* args_init - empty arguments for the @argc-word command line @argv (which
 * must outlive them), with room for every list. Returns 0 or -ENOMEM;
 * free with args_free. */
int args_init(struct cli_args *a, int argc, char **argv);

void args_free(struct cli_args *a);
