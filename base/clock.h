/*
 * clock: the monotonic clock every layer times and schedules by (call
 * deadlines, reload debounce, the scan probe, scrape timeouts, training
 * progress), read one way.
 */
#pragma once

#include <stdint.h>
#include <time.h>

/* clock_ns - nanoseconds on CLOCK_MONOTONIC: steady across changes of the
 * wall clock, comparable between the threads of the process. */
static inline int64_t clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
