/*
 * live: the replay of a user's recorded events over the model's snapshot.
 *
 * Items are gathered in a small open-addressing table keyed by item index,
 * sized at twice the items the user can touch (the snapshot's purchases
 * plus one per event), so a probe ends within a few slots and the table
 * never fills. A user has at most EVENTS_USER_MAX events, so the table is
 * bounded too; it lives in the call's arena.
 */
#include "engine/live.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct slot {
    uint32_t item; /* UINT32_MAX: empty */
    uint8_t owned;
    double purchase; /* weight of the purchases not refunded since */
    double view;
};

struct table {
    struct slot *slots;
    uint32_t mask;
    uint32_t used;
};

static struct slot *find(struct table *t, uint32_t item)
{
    /* Fibonacci hashing spreads neighbouring indices over the table. */
    uint32_t i = (uint32_t)((item * 0x9E3779B97F4A7C15ull) >> 32) & t->mask;
    while (t->slots[i].item != UINT32_MAX && t->slots[i].item != item)
        i = (i + 1) & t->mask;
    if (t->slots[i].item == UINT32_MAX) {
        t->slots[i] = (struct slot){.item = item};
        t->used++;
    }
    return &t->slots[i];
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* apply - one event on its item's slot. */
static void apply(struct slot *s, const struct events_event *ev)
{
    switch (ev->type) {
    case EVENTS_PURCHASE:
        s->owned = 1;
        s->purchase += ev->weight;
        break;
    case EVENTS_REFUND:
        s->owned = 0;
        s->purchase = 0;
        break;
    case EVENTS_VIEW:
        s->view += ev->weight;
        break;
    default:
        break;
    }
}

/* collect - the table's owned items (ascending) and interactions into @out. */
static int collect(const struct query *q, const struct table *t, struct live_user *out,
                   struct err *e)
{
    uint32_t *owned = arena_alloc(q->arena, (size_t)t->used * sizeof(*owned) + 1);
    struct foldin_item *inter = arena_alloc(q->arena, (size_t)t->used * sizeof(*inter) + 1);
    if (owned == NULL || inter == NULL)
        return err_set(e, -ENOMEM, "out of memory for %u items of a user", t->used);
    uint32_t no = 0, ni = 0;
    for (uint32_t i = 0; i <= t->mask; i++) {
        const struct slot *s = &t->slots[i];
        if (s->item == UINT32_MAX)
            continue;
        if (s->owned)
            owned[no++] = s->item;
        double w = s->purchase + s->view;
        if (w > 0)
            inter[ni++] = (struct foldin_item){s->item, (float)w};
    }
    qsort(owned, no, sizeof(*owned), cmp_u32);
    out->owned = owned;
    out->owned_count = no;
    out->interactions = inter;
    out->interaction_count = ni;
    return 0;
}

int live_user(const struct query *q, const char *user_id, const struct model_user *u,
              struct live_user *out, struct err *e)
{
    memset(out, 0, sizeof(*out));
    if (q->events == NULL)
        return 0;
    struct events_event *list;
    uint32_t n;
    struct err read_err = {0};
    int rc =
        events_user(q->events, q->slot, user_id, strlen(user_id), q->arena, &list, &n, &read_err);
    if (rc == -ENOMEM)
        return err_set(e, rc, "%s", read_err.msg);
    if (rc != 0) {
        /* The store cannot be read (a disk error left LMDB unusable): the
         * call is answered from the model alone, and counted, rather than
         * failed. */
        if (q->stats != NULL)
            q->stats->state_read_errors++;
        return 0;
    }
    if (n == 0)
        return 0;
    uint32_t snapshot = u != NULL ? u->owned_count : 0;
    uint32_t cap = 16;
    while (cap < 2 * (snapshot + n))
        cap *= 2;
    struct table t = {.slots = arena_alloc(q->arena, (size_t)cap * sizeof(struct slot)),
                      .mask = cap - 1};
    uint32_t *bought = arena_alloc(q->arena, (size_t)snapshot * sizeof(*bought) + 1);
    if (t.slots == NULL || bought == NULL)
        return err_set(e, -ENOMEM, "out of memory for the events of a user");
    memset(t.slots, 0xff, (size_t)cap * sizeof(struct slot));
    if (u != NULL)
        model_user_owned(u, bought);
    for (uint32_t i = 0; i < snapshot; i++) {
        struct slot *s = find(&t, bought[i]);
        s->owned = 1;
        s->purchase = 1;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t item;
        rc = model_find_item(q->model, q->slot, list[i].item, list[i].item_len, &item);
        if (rc == ERR_NOT_FOUND)
            continue;
        if (rc != 0)
            return err_set(e, rc, "failed to look up item '%.*s' (%s)", (int)list[i].item_len,
                           list[i].item, err_strerror(rc));
        apply(find(&t, item), &list[i]);
    }
    out->events = n;
    return collect(q, &t, out, e);
}
