/*
 * opts: the tools' command lines, parsed from tables of options; the one
 * parser of recsys-model, recsys-train and recsys-cli.
 *
 * Each option is a row naming its kind, the offset of the member of the
 * command's argument struct that receives it, and for numbers the range it
 * must lie in, so limits are enforced here, once, and a new option needs a
 * row rather than code. Options are "--name value", "--name=value" or, with
 * a one-letter alias, "-o value"; "--" ends the options; a flag takes no
 * value. The other words are the command's positional arguments.
 *
 * (The daemon's settings are server/config.c's table: each also comes from
 * an environment variable and has a default and help text, which no tool
 * option needs, so the two tables stay apart.)
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

enum opt_kind {
    OPT_STRING,  /* char *: borrowed from argv */
    OPT_UINT,    /* uint64_t: a decimal number in [min, max] */
    OPT_UINT32,  /* uint32_t: a decimal number in [min, max], max at most UINT32_MAX */
    OPT_SECONDS, /* double: seconds, above 0 and at most OPTS_MAX_SECONDS */
    OPT_FLAG,    /* bool: set to true; takes no value */
    OPT_LIST,    /* struct opts_list: the value is appended; the option may repeat */
    OPT_COPIES,  /* unsigned: reduced copies of the item matrix, "bf16,int8" or "none",
                    as bits 1 << MODEL_ELEM_* */
};

/* The longest OPT_SECONDS value: a day is beyond any answer a tool waits
 * for; more is a typo, not a wish. */
#define OPTS_MAX_SECONDS 86400.0

struct opt {
    const char *name; /* without the leading "--"; NULL ends a table */
    char letter;      /* one-letter alias ("-o"), or 0 */
    enum opt_kind kind;
    size_t offset;     /* of the member that receives the value */
    bool required;     /* OPT_STRING only: must be given; its member starts NULL */
    uint64_t min, max; /* OPT_UINT and OPT_UINT32 only */
    const char *value; /* name of the value in messages ("FILE"), or NULL */
};

/* Values of a repeatable option, or positional words, in command-line
 * order. Borrowed from argv; v has room the caller gave it. */
struct opts_list {
    char **v;
    size_t n;
};

/* opts_parse - parse @argv[1..argc) into the struct at @dst.
 * @table: the options, ended by a row with name NULL. Members of options
 *         not given keep the value the caller put there (the default).
 * @words: receives the positional arguments; exactly @nwords must be given.
 * @word_name: names them in messages ("FILE").
 * Returns 0, or ERR_INVALID with a message for the user in @e: an unknown
 * option, a missing or malformed value, a number out of range, a missing
 * required option, too few or too many words. */
int opts_parse(const struct opt *table, int argc, char **argv, void *dst, char **words, int nwords,
               const char *word_name, struct err *e);

/* Stop opts_scan at the first word that is not an option (a command). */
#define OPTS_STOP_AT_WORD 1u

/* opts_scan - the general form, for a command line parsed in steps (global
 * options, a command, then its own and the global ones): parse
 * @argv[0..argc), looking each option up in the NULL-terminated list
 * @tables (first match wins). Words are appended to @words (with room for
 * @argc), or with OPTS_STOP_AT_WORD parsing stops at the first one; *next
 * (may be NULL) receives the index of the word that stopped it, or @argc.
 * Required options are not checked: see opts_check_required.
 * Returns 0, or ERR_INVALID with a message in @e. */
int opts_scan(const struct opt *const *tables, int argc, char **argv, unsigned flags, void *dst,
              struct opts_list *words, int *next, struct err *e);

/* opts_check_required - ERR_INVALID, with a message in @e, when a required
 * option of @table has no value in @dst; 0 otherwise. */
int opts_check_required(const struct opt *table, const void *dst, struct err *e);

/* opts_parse_uint - @s as a decimal number in [@min, @max]: digits only, no
 * sign, no blanks. Returns 0 and sets *out, or ERR_INVALID. The importer
 * reads the numbers in CSV fields with it too, so flags and files accept
 * the same spellings. */
int opts_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);
