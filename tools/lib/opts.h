/*
 * opts: a subcommand's command line, parsed from a table of options.
 *
 * Each option is a row naming its kind, the offset of the member of the
 * command's argument struct that receives it, and for numbers the range it
 * must lie in, so limits are enforced here, once, and a new option needs a
 * row rather than code. Options are "--name value", "--name=value" or, with a
 * one-letter alias, "-o value"; "--" ends the options. The remaining words
 * are the command's positional arguments.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

enum opt_kind {
    OPT_STRING, /* char *: borrowed from argv */
    OPT_UINT,   /* uint64_t: a decimal number in [min, max] */
    OPT_COPIES, /* unsigned: reduced copies of the item matrix, "bf16,int8" or "none",
                   as bits 1 << MODEL_ELEM_* */
};

struct opt {
    const char *name; /* without the leading "--"; NULL ends a table */
    char letter;      /* one-letter alias ("-o"), or 0 */
    enum opt_kind kind;
    size_t offset;     /* of the member that receives the value */
    int required;      /* must be given */
    uint64_t min, max; /* OPT_UINT only */
    const char *value; /* name of the value in messages: "FILE", "N" */
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

/* opts_parse_uint - @s as a decimal number in [@min, @max]: digits only, no
 * sign, no blanks. Returns 0 and sets *out, or ERR_INVALID. The importer
 * reads the numbers in CSV fields with it too, so flags and files accept
 * the same spellings. */
int opts_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);
