/*
 * commands: what each recsys-cli command sends and how it shows the answer.
 *
 * A command is one row: its options, how it builds the request from them,
 * which unary method it calls, the response type, and how it prints that
 * response for people. main() does the rest the same way for every command:
 * parse, call, decode, print (or write JSON), pick the exit status.
 */
#pragma once

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/err.h"
#include "tools/recsys-cli/args.h"

struct command {
    const char *name;
    const char *usage;   /* arguments after the name; '\n' continues on a new line */
    const char *summary; /* what it does, one line */
    const struct opt *opts;
    size_t min_words, max_words; /* positional arguments allowed */
    const char *method;          /* "/package.Service/Method" */
    const ProtobufCMessageDescriptor *response;
    /* Check @a for what the option table cannot say (a value that is not
     * a number of its kind, options that only make sense together) and
     * derive the members the request is built from; NULL: nothing to do.
     * Returns 0, or ERR_INVALID with a message for the user in @e: a usage
     * error, so nothing is sent. */
    int (*check)(struct cli_args *a, struct err *e);
    /* Build and pack the request from @a (already checked against opts and
     * the word counts). *buf is malloc'd, the caller frees it.
     * Returns 0 or -ENOMEM. */
    int (*pack)(const struct cli_args *a, uint8_t **buf, size_t *len);
    /* Print @resp (of type @response) for people. Returns 0 or -ENOMEM. */
    int (*print)(FILE *out, const ProtobufCMessage *resp, const struct cli_args *a);
    /* Whether the answer means success (the exit status); NULL: every answer does. */
    bool (*succeeded)(const ProtobufCMessage *resp);
};

/* Every command, in the order the usage text lists them; ends with a row
 * whose name is NULL. */
extern const struct command commands[];

/* command_find - the command called @name, or NULL. */
const struct command *command_find(const char *name);
