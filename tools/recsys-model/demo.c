/*
 * demo: a deterministic synthetic model of a paid-knowledge catalog, so the
 * daemon has something real to serve out of the box.
 *
 *     recsys-model demo -o FILE [--users N] [--items M] [--dim D] [--seed S]
 *
 * What it plants, so that recommendations visibly make sense:
 *   - K latent topics ("subjects"), each a random centroid in factor space.
 *   - Items: a category with a realistic price range, a main and a side
 *     topic, and an appeal; the factor vector is the appeal-scaled topic mix
 *     plus a little noise. Some items are off sale, some are included in a
 *     membership tier.
 *   - Users: a membership tier (most none), 1-3 liked topics; the vector is
 *     the weighted mix of those centroids plus noise.
 *   - Purchases: each user buys a few to a few dozen items, the best by
 *     (true score + noise) among candidates drawn mostly from the liked
 *     topics with a bias toward high-appeal items, which gives popularity a
 *     long tail. A user never buys what their membership already includes.
 *
 * The topics, item vectors and user vectors come from tools/lib/demo_factors,
 * which bench/score shares so it can scan factors of this shape; the
 * catalog, tiers and purchases are drawn here, from the same streams.
 *
 * Determinism: the same arguments give the same bytes (apart from LMDB's
 * page layout, which is also deterministic for the same input). All
 * randomness comes from demo_factors' generator (xoshiro256** seeded
 * through splitmix64, one stream per phase, normal deviates without libm).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/writer.h"
#include "tools/lib/demo_factors.h"
#include "tools/lib/opts.h"
#include "tools/lib/publish.h"
#include "tools/recsys-model/cmd.h"

struct demo_args {
    const char *out;
    uint64_t users, items, dim, seed;
    unsigned quantize;
};

#define ARG(member) offsetof(struct demo_args, member)
static const struct opt demo_opts[] = {
    {"output", 'o', OPT_STRING, ARG(out), true, 0, 0, "FILE"},
    {"users", 0, OPT_UINT, ARG(users), false, 0, 5000000, "N"},
    {"items", 0, OPT_UINT, ARG(items), false, 1, 5000000, "M"},
    {"dim", 0, OPT_UINT, ARG(dim), false, 1, 1024, "D"},
    {"seed", 0, OPT_UINT, ARG(seed), false, 0, UINT64_MAX, "S"},
    {"quantize", 0, OPT_COPIES, ARG(quantize), false, 0, 0, "bf16,int8"},
    {.name = NULL},
};

/* The catalog: share of items (per mille), prices in cents from min to max
 * in steps, so e-books cost 4.99, 5.99, ... and consultations come in 25.00
 * increments. */
static const struct category {
    const char *name;
    uint32_t share;
    uint32_t price_min, price_max, price_step;
} categories[] = {
    {"course", 300, 2900, 29900, 1000},      {"ebook", 250, 499, 2999, 100},
    {"audiobook", 200, 999, 3999, 100},      {"workshop", 100, 4900, 19900, 1000},
    {"consultation", 80, 5000, 50000, 2500}, {"bundle", 70, 9900, 49900, 5000},
};
#define NCATEGORIES (sizeof(categories) / sizeof(categories[0]))

/* Membership tiers: per mille of users in tier 1 and 2, and of items
 * included in tier 1 and 2 memberships. */
static const uint32_t user_tier_share[3] = {850, 120, 30};
static const uint32_t item_tier_share[3] = {830, 120, 50};
#define OFF_SALE_PER_MILLE 80

#define PURCHASE_MAX 40 /* per user */
/* created_at: a fixed instant in 2024 plus a seed-derived offset. */
#define DEMO_EPOCH 1704067200
#define ID_BYTES   32 /* "consultation-" + a number + NUL */

/* Independent random streams, so that e.g. more users leave the items unchanged. */
enum { STREAM_TOPICS = 1, STREAM_ITEMS, STREAM_USERS, STREAM_PURCHASES };

/* ==== randomness ===================================================== */

/* An index drawn with the per-mille weights @share[0..n). */
static uint32_t rng_pick(struct demo_factors_rng *r, const uint32_t *share, uint32_t n)
{
    uint32_t total = 0, x;
    for (uint32_t i = 0; i < n; i++)
        total += share[i];
    x = demo_factors_below(r, total);
    for (uint32_t i = 0; i < n; i++) {
        if (x < share[i])
            return i;
        x -= share[i];
    }
    return n - 1;
}

/* ==== the model ====================================================== */

struct demo {
    const struct demo_args *a;
    uint32_t users, items, dim, topics;
    struct demo_factors *factors;
    uint32_t *topic_items; /* items grouped by main topic, best appeal first */
    uint32_t topic_start[DEMO_FACTORS_TOPICS_MAX + 1];
    float *V, *U;
    char (*item_id)[ID_BYTES];
    char (*user_id)[ID_BYTES];
    const char **item_ptr, **user_ptr;
    struct model_item_attr *attrs;
    uint32_t *user_tier;
    uint32_t *user_topic; /* users x DEMO_FACTORS_LIKED_MAX liked topics */
    uint32_t *user_ntopics;
    uint64_t *owned_offsets;
    uint32_t *owned_items;
};

/* An item's place in the candidate lists. */
struct ranked {
    uint32_t topic, item;
    double appeal;
};

/* By main topic, then higher appeal first, ties to the lower index. */
static int by_topic_appeal(const void *pa, const void *pb)
{
    const struct ranked *a = pa, *b = pb;
    if (a->topic != b->topic)
        return a->topic < b->topic ? -1 : 1;
    if (a->appeal != b->appeal)
        return a->appeal > b->appeal ? -1 : 1;
    return (a->item > b->item) - (a->item < b->item);
}

/* Item @i: its catalog entry and factor vector; *rank receives its place
 * in the candidate lists. */
static void make_item(struct demo *d, struct demo_factors_rng *r, uint32_t i, struct ranked *rank,
                      uint32_t *per_category)
{
    uint32_t shares[NCATEGORIES];
    for (size_t c = 0; c < NCATEGORIES; c++)
        shares[c] = categories[c].share;
    uint32_t c = rng_pick(r, shares, NCATEGORIES);
    const struct category *cat = &categories[c];
    snprintf(d->item_id[i], ID_BYTES, "%s-%05u", cat->name, ++per_category[c]);
    d->item_ptr[i] = d->item_id[i];
    uint32_t steps = (cat->price_max - cat->price_min) / cat->price_step + 1;
    d->attrs[i] = (struct model_item_attr){
        .price_cents = cat->price_min + (int64_t)cat->price_step * demo_factors_below(r, steps),
        .category = c,
        .on_sale = demo_factors_below(r, 1000) >= OFF_SALE_PER_MILLE,
        .tier = (uint8_t)rng_pick(r, item_tier_share, 3),
    };
    rank->item = i;
    demo_factors_item(d->factors, r, d->V + (size_t)i * d->dim, &rank->topic, &rank->appeal);
}

static int make_items(struct demo *d, struct demo_factors_rng *r, struct err *e)
{
    uint32_t per_category[NCATEGORIES] = {0};
    struct ranked *rank = malloc(d->items * sizeof(*rank));
    if (rank == NULL)
        return err_set(e, -ENOMEM, "out of memory for %u items", d->items);
    for (uint32_t i = 0; i < d->items; i++)
        make_item(d, r, i, &rank[i], per_category);
    qsort(rank, d->items, sizeof(*rank), by_topic_appeal);
    for (uint32_t k = 0; k < d->items; k++) {
        d->topic_items[k] = rank[k].item;
        d->topic_start[rank[k].topic + 1] = k + 1;
    }
    /* Topics no item has as its main one are empty ranges. */
    for (uint32_t t = 0; t < d->topics; t++)
        if (d->topic_start[t + 1] < d->topic_start[t])
            d->topic_start[t + 1] = d->topic_start[t];
    free(rank);
    return 0;
}

static void make_users(struct demo *d, struct demo_factors_rng *r)
{
    for (uint32_t u = 0; u < d->users; u++) {
        snprintf(d->user_id[u], ID_BYTES, "u%06u", u + 1);
        d->user_ptr[u] = d->user_id[u];
        d->user_tier[u] = rng_pick(r, user_tier_share, 3);
        d->user_ntopics[u] = demo_factors_user(d->factors, r, d->U + (size_t)u * d->dim,
                                               d->user_topic + (size_t)u * DEMO_FACTORS_LIKED_MAX);
    }
}

/* ==== purchases ====================================================== */

struct candidate {
    uint32_t item;
    double score;
};

static int by_score(const void *pa, const void *pb)
{
    const struct candidate *a = pa, *b = pb;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return (a->item > b->item) - (a->item < b->item);
}

/* A candidate item for user @u: mostly from a liked topic, high appeal
 * first (position ~ len * x^3 puts most draws near the front), sometimes
 * anything at all. */
static uint32_t draw_item(const struct demo *d, struct demo_factors_rng *r, uint32_t u)
{
    if (demo_factors_below(r, 100) < 15)
        return demo_factors_below(r, d->items);
    uint32_t t =
        d->user_topic[u * DEMO_FACTORS_LIKED_MAX + demo_factors_below(r, d->user_ntopics[u])];
    uint32_t len = d->topic_start[t + 1] - d->topic_start[t];
    if (len == 0)
        return demo_factors_below(r, d->items);
    double x = demo_factors_unit(r);
    return d->topic_items[d->topic_start[t] + (uint32_t)(x * x * x * len)];
}

static double dot(const float *a, const float *b, uint32_t n)
{
    double s = 0;
    for (uint32_t j = 0; j < n; j++)
        s += (double)a[j] * b[j];
    return s;
}

/* Picks user @u's purchases into owned_items from @next; returns how many. */
static uint32_t buy(struct demo *d, struct demo_factors_rng *r, uint32_t u, struct candidate *cand,
                    uint64_t next)
{
    double x = demo_factors_unit(r);
    uint32_t want = 1 + (uint32_t)(x * x * x * PURCHASE_MAX), ncand = 4 * want + 8, got = 0;
    const float *uv = d->U + (size_t)u * d->dim;
    for (uint32_t k = 0; k < ncand; k++) {
        uint32_t i = draw_item(d, r, u);
        cand[k] = (struct candidate){i, dot(uv, d->V + (size_t)i * d->dim, d->dim) +
                                            demo_factors_normal(r)};
    }
    qsort(cand, ncand, sizeof(*cand), by_score);
    for (uint32_t k = 0; k < ncand && got < want; k++) {
        uint32_t i = cand[k].item, tier = d->attrs[i].tier, dup = 0;
        if (tier > 0 && d->user_tier[u] >= tier)
            continue; /* included in the membership: nobody pays for it */
        for (uint32_t j = 0; j < got && !dup; j++)
            dup = d->owned_items[next + j] == i;
        if (!dup)
            d->owned_items[next + got++] = i;
    }
    return got;
}

static int make_purchases(struct demo *d, struct demo_factors_rng *r, struct err *e)
{
    struct candidate *cand = malloc((4 * PURCHASE_MAX + 12) * sizeof(*cand));
    if (cand == NULL)
        return err_set(e, -ENOMEM, "out of memory");
    d->owned_offsets[0] = 0;
    for (uint32_t u = 0; u < d->users; u++)
        d->owned_offsets[u + 1] = d->owned_offsets[u] + buy(d, r, u, cand, d->owned_offsets[u]);
    free(cand);
    return 0;
}

/* ==== the command ==================================================== */

static int demo_alloc(struct demo *d, struct err *e)
{
    size_t U = d->users ? d->users : 1, I = d->items;
    d->topic_items = calloc(I, sizeof(*d->topic_items));
    d->V = calloc(I * d->dim, sizeof(*d->V));
    d->U = calloc(U * d->dim, sizeof(*d->U));
    d->item_id = calloc(I, sizeof(*d->item_id));
    d->user_id = calloc(U, sizeof(*d->user_id));
    d->item_ptr = calloc(I, sizeof(*d->item_ptr));
    d->user_ptr = calloc(U, sizeof(*d->user_ptr));
    d->attrs = calloc(I, sizeof(*d->attrs));
    d->user_tier = calloc(U, sizeof(*d->user_tier));
    d->user_topic = calloc(U * DEMO_FACTORS_LIKED_MAX, sizeof(*d->user_topic));
    d->user_ntopics = calloc(U, sizeof(*d->user_ntopics));
    d->owned_offsets = calloc(U + 1, sizeof(*d->owned_offsets));
    d->owned_items = calloc(U * PURCHASE_MAX, sizeof(*d->owned_items));
    if (!d->topic_items || !d->V || !d->U || !d->item_id || !d->user_id || !d->item_ptr ||
        !d->user_ptr || !d->attrs || !d->user_tier || !d->user_topic || !d->user_ntopics ||
        !d->owned_offsets || !d->owned_items)
        return err_set(e, -ENOMEM, "out of memory for %u users and %u items", d->users, d->items);
    return 0;
}

static void demo_free(struct demo *d)
{
    demo_factors_destroy(d->factors);
    free(d->topic_items);
    free(d->V);
    free(d->U);
    free(d->item_id);
    free(d->user_id);
    free(d->item_ptr);
    free(d->user_ptr);
    free(d->attrs);
    free(d->user_tier);
    free(d->user_topic);
    free(d->user_ntopics);
    free(d->owned_offsets);
    free(d->owned_items);
}

static int write_demo(const struct demo *d, struct err *e)
{
    const char *names[NCATEGORIES];
    for (size_t c = 0; c < NCATEGORIES; c++)
        names[c] = categories[c].name;
    char version[64];
    snprintf(version, sizeof(version), "demo-%llu-%ud", (unsigned long long)d->a->seed, d->dim);
    uint64_t x = d->a->seed;
    /* The defaults, recorded: the demo's factors were planted, not trained
     * on events, so none is held (data end 0). */
    const struct model_training training = {.regularization = MODEL_DEFAULT_REGULARIZATION,
                                            .alpha = MODEL_DEFAULT_ALPHA,
                                            .view_weight = MODEL_DEFAULT_VIEW_WEIGHT};
    struct model_src src = {
        .dim = d->dim,
        .user_count = d->users,
        .item_count = d->items,
        .user_factors = d->U,
        .item_factors = d->V,
        .user_ids = d->user_ptr,
        .item_ids = d->item_ptr,
        .user_tier = d->user_tier,
        .owned_offsets = d->owned_offsets,
        .owned_items = d->owned_items,
        .attrs = d->attrs,
        .categories = names,
        .category_count = NCATEGORIES,
        .version = version,
        .created_at = DEMO_EPOCH + (int64_t)(demo_factors_splitmix64(&x) % (365 * 86400)),
        .quantize = d->a->quantize,
        .training = &training,
    };
    return publish_model(d->a->out, &src, e);
}

int demo_main(int argc, char **argv, struct err *e)
{
    /* Both reduced copies by default: the demo shows the scan as a large
     * catalog would run it. */
    struct demo_args a = {.users = 30000,
                          .items = 6000,
                          .dim = 32,
                          .seed = 1,
                          .quantize = 1u << MODEL_ELEM_BF16 | 1u << MODEL_ELEM_INT8};
    if (opts_parse(demo_opts, argc, argv, &a, NULL, 0, NULL, e) != 0)
        return CMD_EXIT_USAGE;
    struct demo d = {
        .a = &a, .users = (uint32_t)a.users, .items = (uint32_t)a.items, .dim = (uint32_t)a.dim};
    struct demo_factors_rng r;
    int rc = demo_alloc(&d, e);
    if (rc == 0) {
        demo_factors_seed(&r, a.seed, STREAM_TOPICS);
        rc = demo_factors_create(d.dim, &r, &d.factors);
        if (rc != 0)
            err_set(e, rc, "out of memory for the topics");
    }
    if (rc == 0) {
        d.topics = demo_factors_topics(d.factors);
        demo_factors_seed(&r, a.seed, STREAM_ITEMS);
        rc = make_items(&d, &r, e);
    }
    if (rc == 0) {
        demo_factors_seed(&r, a.seed, STREAM_USERS);
        make_users(&d, &r);
        demo_factors_seed(&r, a.seed, STREAM_PURCHASES);
        rc = make_purchases(&d, &r, e);
    }
    if (rc == 0)
        rc = write_demo(&d, e);
    demo_free(&d);
    return rc == 0 ? CMD_EXIT_OK : CMD_EXIT_FAILED;
}
