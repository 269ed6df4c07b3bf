/*
 * cmd: the exit statuses the offline tools share (recsys-model,
 * recsys-train), so scripts read them alike: 0 done, 1 the input or a file
 * was bad, 2 the command line was.
 */
#pragma once

enum cmd_exit {
    CMD_EXIT_OK = 0,
    CMD_EXIT_FAILED = 1, /* bad input, bad model file, I/O failure */
    CMD_EXIT_USAGE = 2,  /* bad command line: nothing was read or written */
};
