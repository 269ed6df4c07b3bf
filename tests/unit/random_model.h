/*
 * random_model.h: a random model for the query tests, and the inputs it was
 * written from (struct model_src), so that a test works out what a query
 * must return from the inputs, never from the model.
 *
 * Every model has what the queries' edge cases need:
 * - user RANDOM_MODEL_ZERO_USER and every RANDOM_MODEL_ZERO_EVERY-th after
 *   it have all-zero factors, as a trainer leaves a user it saw no
 *   interactions of (they get the popularity ranking);
 * - 30 item vectors copied over others: ties that are no coincidence;
 * - users 0, 7, 14 ... own nothing, the others fewer than
 *   RANDOM_MODEL_OWNED_MAX purchases (or the shape's owned_max), repeats
 *   allowed, skewed toward low item indices so that popularity counts
 *   differ and tie;
 * - RANDOM_MODEL_CATS categories, 85% of the items on sale, item tiers
 *   0, 1, 2 about 12:5:3, and both reduced copies of the item matrix
 *   (unless the shape leaves one out).
 * The numbers come from rng.h: the test sets rng_state first, so that a
 * failure reproduces.
 */
#pragma once

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "model/writer.h"
#include "rng.h"
#include "served.h"

enum {
    RANDOM_MODEL_USERS_MAX = 400,
    RANDOM_MODEL_ITEMS_MAX = 5000,
    RANDOM_MODEL_DIM_MAX = 48,
    RANDOM_MODEL_OWNED_MAX = 40,
    RANDOM_MODEL_OWNED_LIMIT = 64, /* the most a shape's owned_max may be */
    RANDOM_MODEL_CATS = 5,
    RANDOM_MODEL_ZERO_USER = 3,
    RANDOM_MODEL_ZERO_EVERY = 11,
    RANDOM_MODEL_ZERO_ITEM = 13,
};

#define RANDOM_MODEL_VERSION "test-v7"

static const char *const random_model_cats[RANDOM_MODEL_CATS] = {"courses", "books", "audio",
                                                                 "consult", "live"};

/* What differs between the tests' models. */
struct random_model_shape {
    uint32_t users, items, dim; /* at most the _MAX above */
    /* Factors uniform in [-1, 1), whose sums depend on their order; else
     * integers in -3..3: every sum exact in any order, and frequent ties. */
    int floats;
    /* > 0: every item from this one on copies one of the first @distinct
     * items' vectors, so each user's scores tie in hundreds of rows; plus
     * noise uniform in [-@spread, @spread) per factor (floats only), so
     * they crowd near each other instead: clusters, as trained factors
     * have them. */
    uint32_t distinct;
    float spread;
    /* Every item's vector scaled by exp(N(0, 1)), and the first factor of
     * each made 2 to 4 (a shared popularity direction), as implicit ALS
     * leaves them: a few rows many times longer than most. */
    int skewed;
    /* Item RANDOM_MODEL_ZERO_ITEM's vector is all zero: cosine 0 with
     * every item. */
    int zero_item;
    /* @twins random items copy one of the first @twin_sources items'
     * vectors, so those few have exact twins at low and high indices. */
    uint32_t twins, twin_sources;
    /* > 0: purchases per owning user are below this (at most
     * RANDOM_MODEL_OWNED_LIMIT) instead of RANDOM_MODEL_OWNED_MAX. */
    uint32_t owned_max;
    /* Reduced copies of the item matrix left out, as model_src's quantize
     * bits (1 << MODEL_ELEM_BF16, 1 << MODEL_ELEM_INT8); 0: both are in. */
    unsigned without;
};

/* The model's inputs, row i of each array for user or item i. */
struct random_model {
    struct served sv;
    uint32_t users, items, dim;
    float uf[RANDOM_MODEL_USERS_MAX * RANDOM_MODEL_DIM_MAX];  /* users x dim */
    float itf[RANDOM_MODEL_ITEMS_MAX * RANDOM_MODEL_DIM_MAX]; /* items x dim */
    char uid[RANDOM_MODEL_USERS_MAX][16];
    char iid[RANDOM_MODEL_ITEMS_MAX][16];
    const char *uids[RANDOM_MODEL_USERS_MAX];
    const char *iids[RANDOM_MODEL_ITEMS_MAX];
    uint32_t tiers[RANDOM_MODEL_USERS_MAX];
    uint64_t off[RANDOM_MODEL_USERS_MAX + 1]; /* user u owns owned[off[u] .. off[u + 1]) */
    uint32_t owned[RANDOM_MODEL_USERS_MAX * RANDOM_MODEL_OWNED_LIMIT];
    struct model_item_attr attrs[RANDOM_MODEL_ITEMS_MAX];
};

static inline float random_model_factor(int floats)
{
    return floats ? rng_float() : (float)rng_below(7) - 3.0f;
}

/* random_model_open - fill @m as @s says and serve it in @m->sv (close
 * with served_close). Returns 0, or nonzero after printing why. */
static inline int random_model_open(struct random_model *m, struct random_model_shape s)
{
    if (s.users > RANDOM_MODEL_USERS_MAX || s.items > RANDOM_MODEL_ITEMS_MAX ||
        s.dim > RANDOM_MODEL_DIM_MAX || s.items == 0 || s.owned_max > RANDOM_MODEL_OWNED_LIMIT ||
        s.twin_sources > s.items || (s.twins > 0 && s.twin_sources == 0) ||
        (s.zero_item && s.items <= RANDOM_MODEL_ZERO_ITEM)) {
        fprintf(stderr, "random_model: %u users, %u items, dim %u is not within the limits\n",
                s.users, s.items, s.dim);
        return -1;
    }
    uint32_t owned_max = s.owned_max ? s.owned_max : RANDOM_MODEL_OWNED_MAX;
    uint32_t dim = m->dim = s.dim;
    m->users = s.users, m->items = s.items;
    for (uint32_t i = 0; i < s.users * dim; i++)
        m->uf[i] = random_model_factor(s.floats);
    for (uint32_t u = RANDOM_MODEL_ZERO_USER; u < s.users; u += RANDOM_MODEL_ZERO_EVERY)
        memset(&m->uf[u * dim], 0, dim * sizeof(float));
    for (uint32_t i = 0; i < s.items * dim; i++)
        m->itf[i] = random_model_factor(s.floats);
    for (uint32_t k = 0; k < 30; k++) {
        uint32_t from = rng_below(s.items), to = rng_below(s.items);
        memmove(&m->itf[to * dim], &m->itf[from * dim], dim * sizeof(float));
    }
    for (uint32_t i = s.distinct; s.distinct > 0 && i < s.items; i++) {
        memcpy(&m->itf[i * dim], &m->itf[rng_below(s.distinct) * dim], dim * sizeof(float));
        for (uint32_t j = 0; j < dim && s.spread > 0; j++)
            m->itf[i * dim + j] += s.spread * rng_float();
    }
    for (uint32_t i = 0; s.skewed && i < s.items; i++) {
        float norm = rng_lognormal();
        m->itf[i * dim] = 2 + (rng_float() + 1);
        for (uint32_t j = 0; j < dim; j++)
            m->itf[i * dim + j] *= norm;
    }
    for (uint32_t k = 0; k < s.twins; k++) {
        uint32_t to = rng_below(s.items), from = rng_below(s.twin_sources);
        memmove(&m->itf[to * dim], &m->itf[from * dim], dim * sizeof(float));
    }
    if (s.zero_item)
        memset(&m->itf[RANDOM_MODEL_ZERO_ITEM * dim], 0, dim * sizeof(float));
    for (uint32_t i = 0; i < s.items; i++) {
        snprintf(m->iid[i], sizeof(m->iid[i]), "item-%05u", i);
        m->iids[i] = m->iid[i];
        uint32_t t = rng_below(20);
        m->attrs[i] = (struct model_item_attr){.tier = t < 12 ? 0 : t < 17 ? 1 : 2};
        m->attrs[i].price_cents = 100 * (int64_t)rng_below(500);
        m->attrs[i].category = rng_below(RANDOM_MODEL_CATS);
        m->attrs[i].on_sale = rng_below(100) < 85;
    }
    uint32_t n = 0;
    for (uint32_t u = 0; u < s.users; u++) {
        snprintf(m->uid[u], sizeof(m->uid[u]), "user-%04u", u);
        m->uids[u] = m->uid[u];
        m->tiers[u] = rng_below(3);
        m->off[u] = n;
        uint32_t owns = u % 7 == 0 ? 0 : rng_below(owned_max);
        for (uint32_t k = 0; k < owns; k++)
            m->owned[n++] = rng_below(1 + rng_below(s.items));
    }
    m->off[s.users] = n;
    const struct model_src src = {
        .dim = dim,
        .user_count = s.users,
        .item_count = s.items,
        .user_factors = m->uf,
        .item_factors = m->itf,
        .user_ids = m->uids,
        .item_ids = m->iids,
        .user_tier = m->tiers,
        .owned_offsets = m->off,
        .owned_items = m->owned,
        .attrs = m->attrs,
        .categories = random_model_cats,
        .category_count = RANDOM_MODEL_CATS,
        .version = RANDOM_MODEL_VERSION,
        .created_at = 1700000000,
        .quantize = (1u << MODEL_ELEM_BF16 | 1u << MODEL_ELEM_INT8) & ~s.without,
    };
    return served_open(&m->sv, &src, 64 << 10);
}
