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

#include "base/err.h"
#include "tools/lib/cmd.h"

#define CMD_NAME "recsys-model"

/* Each returns an enum cmd_exit; text in @e unless CMD_EXIT_OK. */
int import_main(int argc, char **argv, struct err *e);
int inspect_main(int argc, char **argv, struct err *e);
int verify_main(int argc, char **argv, struct err *e);
int demo_main(int argc, char **argv, struct err *e);
