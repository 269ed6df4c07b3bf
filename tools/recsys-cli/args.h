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
    uint32_t count;
    bool purchasable_only;
    struct opts_list exclude;
    struct opts_list categories;
    struct opts_list owned;
    struct opts_list words; /* the command's positional arguments */
    char **storage;         /* backs the four lists; owned */
};

/* args_init - empty arguments with room for every list of an @argc-word
 * command line. Returns 0 or -ENOMEM; free with args_free. */
int args_init(struct cli_args *a, int argc);

void args_free(struct cli_args *a);
