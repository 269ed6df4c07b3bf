/*
 * demo_factors: the factor vectors of `recsys-model demo`'s planted topics,
 * for the demo command and for the benchmarks that must scan the same
 * shape.
 *
 * The demo plants K latent topics, each a random centroid; an item's vector
 * is its appeal times a mix of a main and a side topic, plus a little
 * noise; a user's is the weighted mix of one to three liked topics, plus
 * noise. Scores within a topic cluster tightly, which is what makes such
 * factors hard for a reduced scan's proof, so bench/score draws its "demo"
 * shape here rather than from a copy of this code.
 *
 * Determinism: the same seed gives the same vectors on every machine. The
 * generator is xoshiro256** seeded through splitmix64, one stream per
 * phase, and normal deviates are sums of uniforms rather than libm calls,
 * whose last bits may differ between libm versions. The callers draw their
 * own values (a catalog entry, a membership tier) from the same stream, in
 * between, so the stream is theirs and this module only borrows it.
 */
#pragma once

#include <stdint.h>

/* Most topics a model gets, whatever its dimension. */
#define DEMO_FACTORS_TOPICS_MAX 12
/* Most topics a user likes. */
#define DEMO_FACTORS_LIKED_MAX 3

/* A random stream: xoshiro256**'s state. */
struct demo_factors_rng {
    uint64_t s[4];
};

/* demo_factors_splitmix64 - the next value of the splitmix64 sequence at
 * *@x (which it advances). */
uint64_t demo_factors_splitmix64(uint64_t *x);

/* demo_factors_seed - starts @r as stream @stream of @seed: streams of one
 * seed are independent, so e.g. more users leave the items unchanged. */
void demo_factors_seed(struct demo_factors_rng *r, uint64_t seed, uint64_t stream);

/* demo_factors_next - 64 random bits. */
uint64_t demo_factors_next(struct demo_factors_rng *r);

/* demo_factors_unit - uniform in [0, 1), from the top 53 bits. */
double demo_factors_unit(struct demo_factors_rng *r);

/* demo_factors_below - uniform in [0, @n): the multiply-shift map; its
 * bias, below n / 2^32, does not matter here. */
uint32_t demo_factors_below(struct demo_factors_rng *r, uint32_t n);

/* demo_factors_normal - approximately standard normal: the sum of 12
 * uniforms minus 6 has mean 0 and variance 1, and needs no libm. */
double demo_factors_normal(struct demo_factors_rng *r);

/* The topics of one model; opaque, made by demo_factors_create. */
struct demo_factors;

/* demo_factors_create - draws the topic centroids for factors of @dim
 * dimensions (at least 1) from @r into *@out, which the caller frees with
 * demo_factors_destroy. Returns 0 or -ENOMEM (*@out is then NULL). */
int demo_factors_create(uint32_t dim, struct demo_factors_rng *r, struct demo_factors **out);

/* demo_factors_destroy - frees @f; NULL is fine. */
void demo_factors_destroy(struct demo_factors *f);

/* demo_factors_topics - how many topics @f has: about one per two
 * dimensions, 1 to DEMO_FACTORS_TOPICS_MAX. */
uint32_t demo_factors_topics(const struct demo_factors *f);

/* demo_factors_item - draws one item's vector from @r into @v (dim
 * floats); *@topic receives its main topic and *@appeal its appeal (0.5 to
 * 1.5, the length its vector is scaled by). */
void demo_factors_item(const struct demo_factors *f, struct demo_factors_rng *r, float *v,
                       uint32_t *topic, double *appeal);

/* demo_factors_user - draws one user's liked topics from @r into
 * @liked[0..n) (n, 1 to DEMO_FACTORS_LIKED_MAX, is returned) and their
 * vector into @u (dim floats). */
uint32_t demo_factors_user(const struct demo_factors *f, struct demo_factors_rng *r, float *u,
                           uint32_t liked[DEMO_FACTORS_LIKED_MAX]);
