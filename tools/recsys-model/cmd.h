/*
 * cmd: what main.c needs from each subcommand of recsys-model.
 *
 * A subcommand is a function of its own argv (argv[0] is the command's name)
 * that returns an exit status and, when that status is not CMD_EXIT_OK,
 * leaves one line of text in @e. main.c prints that line in one place, as
 * "recsys-model: <text>", and after a usage error also the command's usage,
 * so no subcommand prints its own errors.
 */
#pragma once

#include "err.h"

#define CMD_NAME "recsys-model"

enum cmd_exit {
    CMD_EXIT_OK = 0,
    CMD_EXIT_FAILED = 1, /* bad input, bad model file, I/O failure */
    CMD_EXIT_USAGE = 2,  /* bad command line: nothing was read or written */
};

/* Each returns an enum cmd_exit; text in @e unless CMD_EXIT_OK. */
int import_main(int argc, char **argv, struct err *e);
int inspect_main(int argc, char **argv, struct err *e);
int verify_main(int argc, char **argv, struct err *e);
int demo_main(int argc, char **argv, struct err *e);

struct model_src;

/* import_write - model_write @src to @path (atomically) and print the
 * one-line summary of what was written; import and demo both publish
 * through it. Returns 0 or model_write's error, with
 * "failed to write <path>: <reason>" in @e. */
int import_write(const char *path, const struct model_src *src, struct err *e);
