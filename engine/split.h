/*
 * split: runs the parts of one large scan on a few helper threads.
 *
 * A scan of a large catalog is bound by one core's memory bandwidth, and a
 * second core reading the other half of the matrix nearly doubles what is
 * read per second (bench/score). split_run hands the parts of a job to
 * helper threads started once, and the calling thread works on the job
 * too: it takes parts that no helper has started, so a job never waits
 * for a helper that is busy with another call's job; at worst the caller
 * runs every part itself, as if nothing were split.
 *
 * One process-wide pool; split_run may be called from any number of
 * threads at once.
 */
#pragma once

#include "base/err.h"

/* Most parts a job may have: the helpers plus the caller. */
#define SPLIT_PARTS_MAX 8

/* split_start - start @helpers helper threads (0..SPLIT_PARTS_MAX-1).
 * With 0, or without a call, split_run runs every part on the caller.
 * Returns 0, or -errno from pthread_create (text in @e). */
int split_start(unsigned helpers, struct err *e);

/* split_stop - stop and join the helpers. Calls to split_run must have
 * returned. */
void split_stop(void);

/* split_parts - how many parts a job can usefully have: helpers + 1. */
unsigned split_parts(void);

/* split_run - run @fn(@arg, part) for every part in 0 .. @parts-1 (at most
 * SPLIT_PARTS_MAX), each exactly once, on the caller and on idle helpers;
 * returns once all have returned. @fn must not call split_run. */
void split_run(void (*fn)(void *arg, unsigned part), void *arg, unsigned parts);
