/*
 * factors: seeds and initial factors (factors.h).
 */
#include "tools/recsys-train/factors.h"

#include <math.h>
#include <stddef.h>

#define GOLDEN 0x9e3779b97f4a7c15ULL

uint64_t factors_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void factors_init(float *f, uint32_t rows, uint32_t k, uint64_t seed, uint64_t side)
{
    float scale = 1.0f / sqrtf((float)k);
    for (uint32_t r = 0; r < rows; r++) {
        uint64_t s = seed ^ (side << 62) ^ ((uint64_t)r * GOLDEN);
        for (uint32_t j = 0; j < k; j++)
            f[(size_t)r * k + j] =
                ((float)(factors_mix(s += GOLDEN) >> 40) / 16777216.0f - 0.5f) * scale;
    }
}
