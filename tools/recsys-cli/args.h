/*
 * args: the command line, parsed from tables of options.
 *
 * Every option of every command lands in one struct cli_args; an option is a
 * table row naming its kind and the offset of its member, so a new option
 * needs a row, not code. Options are GNU-style long options, "--name value"
 * or "--name=value", optionally with a one-letter alias ("-h"); "--" ends the
 * options. Words that are not options are the command and its arguments.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* Values of a repeatable option, in command-line order. Borrowed from argv. */
struct strlist {
    char **v;
    size_t n;
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
    uint32_t count;
    bool purchasable_only;
    struct strlist exclude;
    struct strlist categories;
    struct strlist owned;
    struct strlist words; /* the command's positional arguments */
    char **storage;       /* backs the four lists; owned */
};

enum opt_kind {
    OPT_STRING,  /* char *: the value */
    OPT_UINT32,  /* uint32_t: a decimal number */
    OPT_SECONDS, /* double: a positive number of seconds, at most a day */
    OPT_FLAG,    /* bool: set to true; takes no value */
    OPT_LIST,    /* struct strlist: the value is appended; the option may repeat */
};

struct opt {
    const char *name; /* without the leading "--"; NULL ends a table */
    char letter;      /* short alias ("-h"), or 0 */
    enum opt_kind kind;
    size_t offset; /* of the member in struct cli_args that receives the value */
    bool required; /* OPT_STRING only: must be given (an empty value is allowed) */
};

/* Stop at the first word that is not an option (the command). */
#define ARGS_STOP_AT_WORD 1u

/* args_init - empty arguments with room for every list of an @argc-word
 * command line. Returns 0 or -ENOMEM; free with args_free. */
int args_init(struct cli_args *a, int argc);

void args_free(struct cli_args *a);

/* args_parse - parse @argv[0..argc) into @a, looking each option up in the
 * NULL-terminated list of option tables @tables (first match wins).
 * Words go to a->words, or with ARGS_STOP_AT_WORD parsing stops at the first
 * one. *next (may be NULL) receives the index of the word that stopped it,
 * or @argc.
 * Returns 0, or ERR_INVALID with a message for the user in @e: an unknown
 * option, a missing or malformed value. */
int args_parse(const struct opt *const *tables, int argc, char **argv, unsigned flags,
               struct cli_args *a, int *next, struct err *e);

/* args_check_required - ERR_INVALID, with a message in @e, when an option of
 * @table marked required was not given; 0 otherwise. */
int args_check_required(const struct opt *table, const struct cli_args *a, struct err *e);
