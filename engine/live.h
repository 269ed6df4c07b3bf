/*
 * live: a user's recorded events (state/events.h) in a model's terms.
 *
 * The store keeps events by id, for as long as no model holds them; a
 * query needs them as item indices of the model it answers from, applied
 * to what that model says of the user. live_user reads the user's events
 * and replays them, in time order, over the model's snapshot:
 *
 *   purchase  the item is owned; its purchase weight grows by the weight
 *   refund    the item is no longer owned (bought before the snapshot or
 *             after it); its purchase weight drops to 0
 *   view      its view weight grows by the weight
 *
 * The snapshot's purchases start owned, with purchase weight 1 (the
 * trainer's weight for a purchase; the file keeps no other). Events naming
 * an item this model does not know are skipped: the item left the
 * catalog, or the event was recorded against a newer model.
 */
#pragma once

#include <stdint.h>

#include "engine/foldin.h"
#include "engine/query.h"

/* What a user's recorded events come to under q->model. Arrays in q->arena. */
struct live_user {
    uint32_t events;       /* events the store holds for the user; 0: the model alone answers */
    const uint32_t *owned; /* items owned now, ascending and distinct */
    uint32_t owned_count;
    /* Every item with weight (purchase + view) > 0, for the fold-in; in
     * no particular order, each item once. */
    const struct foldin_item *interactions;
    uint32_t interaction_count;
};

/* live_user - read user @user_id's events through q->events (slot
 * q->slot) and replay them over @u (the model's record of the user; NULL
 * for a user the model does not know) into @out.
 * With no store (q->events NULL) or no events, out->events is 0 and the
 * rest empty; so too when the store cannot be read, which is counted in
 * q->stats (state_read_errors): the model alone then answers, as it would
 * without a store. Returns 0, -ENOMEM, or a model lookup's error, text in
 * @e. */
int live_user(const struct query *q, const char *user_id, const struct model_user *u,
              struct live_user *out, struct err *e);
