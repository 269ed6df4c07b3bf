/*
 * factors: the trainers' shared random numbers and initial factors.
 *
 * Every random choice in training (initial factors, BPR's samples, the
 * holdout's shuffle) is a pure function of the seed and of where it is
 * used (which side, which row, which thread), never of a shared stream, so
 * the result does not depend on the order threads run in.
 */
#pragma once

#include <stdint.h>

/* factors_mix - splitmix64's finalizer: a well-spread 64-bit hash of @x. */
uint64_t factors_mix(uint64_t x);

/* factors_init - @rows x @k floats at @f, uniform in [-0.5, 0.5) / sqrt(k),
 * from (@seed, @side, row) alone. @side tells the users (0) from the items (1). */
void factors_init(float *f, uint32_t rows, uint32_t k, uint64_t seed, uint64_t side);
