/*
 * clock: the monotonic clock every layer times and schedules by (call
 * deadlines, reload debounce, the scan probe, scrape timeouts, training
 * progress), read one way; and the wall clock events are dated by.
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

/* clock_unix_ms - milliseconds since the Unix epoch on CLOCK_REALTIME: the
 * time of day, as events and data ends are stamped (it may step back). */
static inline int64_t clock_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
