/*
 * demo_factors: the factor vectors of `recsys-model demo`, shared with
 * bench/score. The design and its determinism are in the header; the
 * numbers below are the demo's own, chosen so that recommendations
 * visibly make sense.
 */
#include "tools/lib/demo_factors.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

struct demo_factors {
    uint32_t dim, topics;
    double *centroid; /* topics x dim */
};

/* ==== randomness ===================================================== */

uint64_t demo_factors_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void demo_factors_seed(struct demo_factors_rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xd1b54a32d192ed03ull);
    for (int i = 0; i < 4; i++)
        r->s[i] = demo_factors_splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256** */
uint64_t demo_factors_next(struct demo_factors_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double demo_factors_unit(struct demo_factors_rng *r)
{
    return (double)(demo_factors_next(r) >> 11) * 0x1.0p-53;
}

uint32_t demo_factors_below(struct demo_factors_rng *r, uint32_t n)
{
    return (uint32_t)(((demo_factors_next(r) >> 32) * n) >> 32);
}

double demo_factors_normal(struct demo_factors_rng *r)
{
    double sum = 0;
    for (int i = 0; i < 12; i++)
        sum += demo_factors_unit(r);
    return sum - 6.0;
}

/* ==== the factors ==================================================== */

int demo_factors_create(uint32_t dim, struct demo_factors_rng *r, struct demo_factors **out)
{
    struct demo_factors *f = malloc(sizeof(*f));
    *out = NULL;
    if (f == NULL)
        return -ENOMEM;
    /* About one topic per two dimensions: the structure must fit the rank. */
    f->dim = dim;
    f->topics = dim / 2 < 1                         ? 1
                : dim / 2 > DEMO_FACTORS_TOPICS_MAX ? DEMO_FACTORS_TOPICS_MAX
                                                    : dim / 2;
    f->centroid = malloc((size_t)f->topics * dim * sizeof(*f->centroid));
    if (f->centroid == NULL) {
        free(f);
        return -ENOMEM;
    }
    /* Entries N(0, 4/dim): centroids have norm about 2, so the scores of a
     * user and an item of the same topic are around 4, others near 0. */
    double scale = 2.0 / sqrt((double)dim);
    for (uint32_t i = 0; i < f->topics * dim; i++)
        f->centroid[i] = demo_factors_normal(r) * scale;
    *out = f;
    return 0;
}

void demo_factors_destroy(struct demo_factors *f)
{
    if (f != NULL)
        free(f->centroid);
    free(f);
}

uint32_t demo_factors_topics(const struct demo_factors *f)
{
    return f->topics;
}

void demo_factors_item(const struct demo_factors *f, struct demo_factors_rng *r, float *v,
                       uint32_t *topic, double *appeal)
{
    const double *c = f->centroid;
    uint32_t t1 = demo_factors_below(r, f->topics), t2 = demo_factors_below(r, f->topics);
    double w = 0.6 + 0.4 * demo_factors_unit(r);
    *appeal = 0.5 + demo_factors_unit(r);
    double noise = 0.15 / sqrt((double)f->dim);
    for (uint32_t j = 0; j < f->dim; j++) {
        double mix = w * c[t1 * f->dim + j] + (1 - w) * c[t2 * f->dim + j];
        v[j] = (float)(*appeal * mix + noise * demo_factors_normal(r));
    }
    *topic = t1;
}

uint32_t demo_factors_user(const struct demo_factors *f, struct demo_factors_rng *r, float *u,
                           uint32_t liked[DEMO_FACTORS_LIKED_MAX])
{
    double noise = 0.3 / sqrt((double)f->dim), weight[DEMO_FACTORS_LIKED_MAX], total = 0;
    uint32_t n = 1 + demo_factors_below(r, DEMO_FACTORS_LIKED_MAX);
    for (uint32_t k = 0; k < n; k++) {
        liked[k] = demo_factors_below(r, f->topics);
        weight[k] = 0.2 + demo_factors_unit(r);
        total += weight[k];
    }
    for (uint32_t j = 0; j < f->dim; j++) {
        double v = 0;
        for (uint32_t k = 0; k < n; k++)
            v += weight[k] / total * f->centroid[liked[k] * f->dim + j];
        u[j] = (float)(v + noise * demo_factors_normal(r));
    }
    return n;
}
