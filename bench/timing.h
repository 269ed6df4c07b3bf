/*
 * timing: the benchmarks' clock and the figure they report for a series
 * of runs, the median (a few runs slowed by the machine's other work do
 * not move it).
 */
#pragma once

#include <stddef.h>

/* timing_now_us - CLOCK_MONOTONIC in microseconds. */
double timing_now_us(void);

/* timing_now_ms - the same clock in milliseconds. */
double timing_now_ms(void);

/* timing_median - the median of the @n values at @v, which it sorts: the
 * middle one, the mean of the two middle ones when @n is even, 0 when @n
 * is 0. */
double timing_median(double *v, size_t n);
