/*
 * rng.h: the unit tests' random numbers. splitmix64 from a seed the test
 * sets, so a failure reproduces.
 */
#pragma once

#include <math.h>
#include <stdint.h>

static uint64_t rng_state;

static inline uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static inline float rng_float(void)
{
    return (float)((double)(rng_next() >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static inline uint32_t rng_below(uint32_t n)
{
    return (uint32_t)(rng_next() % n);
}

/* exp(N(0, 1)), by Box-Muller from two uniforms: a log-normal length. */
static inline float rng_lognormal(void)
{
    double u = (rng_float() + 1) / 2 + 1e-12, v = (rng_float() + 1) / 2;
    return (float)exp(sqrt(-2 * log(u)) * cos(2 * M_PI * v));
}
