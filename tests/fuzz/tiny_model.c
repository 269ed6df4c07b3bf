/*
 * tiny_model: the small models of the fuzz targets (see tiny_model.h).
 */
#include "tiny_model.h"

#include <stdint.h>

#include "model/writer.h"

#define ITEMS   5
#define USERS   3
#define DIM_MAX 17

static const struct variant {
    uint32_t dim;
    uint32_t has_bias;
    uint32_t users;
    int owned;   /* whether the users own items */
    int trained; /* whether the file holds a training record */
} variants[TINY_MODEL_VARIANTS] = {
    {4, 1, USERS, 1, 1},   /* bias column, purchases, tiers, a training record */
    {DIM_MAX, 0, 0, 0, 0}, /* no users; rows padded from 17 floats to 32 */
    {1, 0, USERS, 0, 0},   /* one factor, users who own nothing */
};

/* A factor in [-1.25, 1.25], varying with the row and the column. */
static float factor(uint32_t row, uint32_t col)
{
    return (float)((int)((row * 7 + col * 3) % 11) - 5) / 4.0f;
}

int tiny_model_write(const char *path, unsigned variant, struct err *e)
{
    static const char *const item_ids[ITEMS] = {"i0", "i1", "i2", "i3", "i4"};
    static const char *const user_ids[USERS] = {"u0", "u1", "u2"};
    static const char *const categories[] = {"c0", "c1"};
    static const uint32_t tiers[USERS] = {0, 1, 2};
    /* u0 owns {0, 1}, written unsorted and with a repeat; u1 owns {2}. */
    static const uint64_t owned_offsets[USERS + 1] = {0, 3, 4, 4};
    static const uint32_t owned_items[] = {1, 0, 1, 2};
    static const struct model_training training = {.regularization = 0.1f,
                                                   .alpha = 10.0f,
                                                   .view_weight = 0.5f,
                                                   .data_end_unix_ms = 1718000000000};
    const struct variant *v = &variants[variant % TINY_MODEL_VARIANTS];

    float uf[USERS * DIM_MAX], itf[ITEMS * DIM_MAX];
    for (uint32_t u = 0; u < v->users; u++)
        for (uint32_t j = 0; j < v->dim; j++)
            uf[u * v->dim + j] = v->has_bias && j == v->dim - 1 ? 1.0f : factor(u, j);
    for (uint32_t i = 0; i < ITEMS; i++)
        for (uint32_t j = 0; j < v->dim; j++)
            itf[i * v->dim + j] = factor(i + USERS, j);
    struct model_item_attr attrs[ITEMS];
    for (uint32_t i = 0; i < ITEMS; i++)
        attrs[i] = (struct model_item_attr){.price_cents = 100 * i + 99,
                                            .category = i % 2,
                                            .on_sale = i != 3,
                                            .tier = (uint8_t)(i % 3)};
    struct model_src src = {
        .dim = v->dim,
        .has_bias = v->has_bias,
        .user_count = v->users,
        .item_count = ITEMS,
        .user_factors = uf,
        .item_factors = itf,
        .user_ids = user_ids,
        .item_ids = item_ids,
        .user_tier = tiers,
        .owned_offsets = v->owned ? owned_offsets : NULL,
        .owned_items = owned_items,
        .attrs = attrs,
        .categories = categories,
        .category_count = 2,
        .version = "tiny",
        .created_at = 1718000000,
        .training = v->trained ? &training : NULL,
    };
    return model_write(path, &src, e);
}
