/*
 * dataset: the log as training pairs, held-out pairs and owned items.
 *
 * Rows of the log for the same (user, item) become one pair: the weights
 * add up, the pair's time is its latest row's, and it is a purchase if any
 * row is. With a holdout share h, each user with n >= 2 pairs keeps
 * round(h n) of them aside (at most n - 1, so everyone keeps one to learn
 * from): the latest by time when the log has timestamps (ties: the higher
 * item row), else a random choice fixed by the seed. The model is trained
 * on the other pairs; it owns every purchase, held out or not, because the
 * served model must not recommend what a user has bought.
 */
#pragma once

#include <stdint.h>

#include "base/err.h"
#include "tools/recsys-train/als.h"

struct interactions;

/* All arrays owned; dataset_free releases them. */
struct dataset {
    uint32_t users, items;
    /* Training pairs both ways (als.h); rows sorted by column. */
    struct als_rows by_user, by_item;
    /* Held-out items of user u: held[held_off[u] .. held_off[u + 1]). */
    uint64_t *held_off;
    uint32_t *held;
    /* Purchases of user u, all (for the model) and in training only (what
     * evaluation excludes, as the daemon excludes owned items). */
    uint64_t *owned_off, *train_owned_off;
    uint32_t *owned, *train_owned;
    uint64_t pairs; /* distinct (user, item) pairs in the log */
    uint64_t *uoff, *ioff;
    uint32_t *ucol, *icol;
    float *uw, *iw;
};

/* dataset_build - pairs of @l (items are catalog rows < @items), split by
 * @holdout in [0, 1) with @seed. Returns 0 or -ENOMEM. */
int dataset_build(const struct interactions *l, uint32_t items, double holdout, uint64_t seed,
                  struct dataset *d, struct err *e);

/* dataset_free - release the arrays. */
void dataset_free(struct dataset *d);
