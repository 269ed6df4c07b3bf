/*
 * progress: what the trainer shows while it works, on stderr.
 *
 * On a terminal, a bar for the running iteration, redrawn a few times a
 * second from a counter the solvers advance (rows solved, samples taken),
 * with elapsed time, rate and ETA; when the iteration ends the bar gives
 * way to its line. Anywhere else (a pipe, a file, a CI log) only the
 * iteration lines, one each:
 *
 *     iteration 3/15: loss 1.234567e+05, 0.81 s
 */
#pragma once

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include "base/err.h"

struct progress;

/* progress_start - report on @out, as a bar when @bar (the caller checks
 * isatty) for @per_iteration units named @unit ("rows"); if the bar's
 * thread cannot start, plain lines. The caller owns *p (progress_stop).
 * Returns 0 or -ENOMEM. */
int progress_start(FILE *out, int bar, const char *unit, uint64_t per_iteration,
                   uint32_t iterations, struct progress **p, struct err *e);

/* progress_counter - the counter the solvers advance (als_params.done). */
_Atomic uint64_t *progress_counter(struct progress *p);

/* progress_iteration - an als_progress_fn (ctx is the struct progress):
 * prints the iteration's line and restarts the bar. Returns 0. */
int progress_iteration(void *ctx, uint32_t iteration, double loss, double seconds);

/* progress_stop - stop the bar and free @p. NULL is a no-op. */
void progress_stop(struct progress *p);
