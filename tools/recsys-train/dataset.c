/*
 * dataset: pairs, holdout and owned lists (dataset.h).
 *
 * The events are sorted by (user, item), merged into pairs, and each
 * user's pairs are split; every array after that is a counting pass, so
 * the whole build is O(events log events).
 */
#include "tools/recsys-train/dataset.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tools/recsys-train/factors.h"
#include "tools/recsys-train/interactions.h"

struct pair {
    uint32_t user, item;
    float weight;
    uint32_t purchase, held;
    int64_t time;
};

static int by_user_item(const void *a, const void *b)
{
    const struct interaction *x = a, *y = b;
    if (x->user != y->user)
        return x->user < y->user ? -1 : 1;
    return (x->item > y->item) - (x->item < y->item);
}

/* Latest first; the higher item first among equal times. */
static int latest_first(const void *a, const void *b)
{
    const struct pair *x = *(const struct pair *const *)a, *y = *(const struct pair *const *)b;
    if (x->time != y->time)
        return x->time > y->time ? -1 : 1;
    return (x->item < y->item) - (x->item > y->item);
}

/* Marks the held-out pairs of one user's @n pairs at @p. */
static void hold_out(struct pair *p, uint32_t n, double share, int by_time, uint64_t seed,
                     struct pair **order)
{
    uint32_t keep_aside = (uint32_t)floor(share * n + 0.5);
    if (n < 2 || keep_aside == 0)
        return;
    if (keep_aside > n - 1)
        keep_aside = n - 1;
    for (uint32_t i = 0; i < n; i++)
        order[i] = &p[i];
    if (by_time) {
        qsort(order, n, sizeof(*order), latest_first);
    } else {
        /* The first keep_aside steps of a Fisher-Yates shuffle. */
        for (uint32_t i = 0; i < keep_aside; i++) {
            uint32_t j =
                i + (uint32_t)(factors_mix(seed ^ ((uint64_t)p->user << 32) ^ i) % (n - i));
            struct pair *t = order[i];
            order[i] = order[j], order[j] = t;
        }
    }
    for (uint32_t i = 0; i < keep_aside; i++)
        order[i]->held = 1;
}

/* CSR of the pairs that @pick accepts, rows by user. */
static int user_rows(const struct pair *p, uint64_t n, uint32_t users,
                     int (*pick)(const struct pair *), uint64_t **off, uint32_t **col, float **w)
{
    uint64_t count = 0;
    for (uint64_t i = 0; i < n; i++)
        count += pick(&p[i]) != 0;
    *off = calloc((size_t)users + 1, sizeof(**off));
    *col = malloc((count ? count : 1) * sizeof(**col));
    if (w != NULL)
        *w = malloc((count ? count : 1) * sizeof(**w));
    if (*off == NULL || *col == NULL || (w != NULL && *w == NULL))
        return -ENOMEM;
    uint64_t at = 0;
    for (uint64_t i = 0; i < n; i++)
        if (pick(&p[i])) {
            (*off)[p[i].user + 1]++;
            (*col)[at] = p[i].item;
            if (w != NULL)
                (*w)[at] = p[i].weight;
            at++;
        }
    for (uint32_t u = 0; u < users; u++)
        (*off)[u + 1] += (*off)[u];
    return 0;
}

static int training(const struct pair *p)
{
    return !p->held;
}

static int held(const struct pair *p)
{
    return p->held;
}

static int bought(const struct pair *p)
{
    return p->purchase != 0;
}

static int bought_in_training(const struct pair *p)
{
    return p->purchase && !p->held;
}

/* The training pairs again, as rows by item (users ascending in a row). */
static int item_rows(struct dataset *d)
{
    uint64_t n = d->uoff[d->users];
    d->ioff = calloc((size_t)d->items + 1, sizeof(*d->ioff));
    d->icol = malloc((n ? n : 1) * sizeof(*d->icol));
    d->iw = malloc((n ? n : 1) * sizeof(*d->iw));
    uint64_t *fill = malloc(((size_t)d->items + 1) * sizeof(*fill));
    if (d->ioff == NULL || d->icol == NULL || d->iw == NULL || fill == NULL) {
        free(fill);
        return -ENOMEM;
    }
    for (uint64_t i = 0; i < n; i++)
        d->ioff[d->ucol[i] + 1]++;
    for (uint32_t i = 0; i < d->items; i++)
        d->ioff[i + 1] += d->ioff[i];
    memcpy(fill, d->ioff, ((size_t)d->items + 1) * sizeof(*fill));
    for (uint32_t u = 0; u < d->users; u++)
        for (uint64_t k = d->uoff[u]; k < d->uoff[u + 1]; k++) {
            uint64_t at = fill[d->ucol[k]]++;
            d->icol[at] = u, d->iw[at] = d->uw[k];
        }
    free(fill);
    return 0;
}

int dataset_build(const struct interactions *l, uint32_t items, double holdout, uint64_t seed,
                  struct dataset *d, struct err *e)
{
    size_t n = l->event_count;
    struct interaction *ev = malloc((n ? n : 1) * sizeof(*ev));
    struct pair *p = malloc((n ? n : 1) * sizeof(*p));
    struct pair **order = malloc((n ? n : 1) * sizeof(*order));
    int rc = ev == NULL || p == NULL || order == NULL ? -ENOMEM : 0;
    uint64_t np = 0;
    if (rc == 0) {
        memcpy(ev, l->events, n * sizeof(*ev));
        qsort(ev, n, sizeof(*ev), by_user_item);
        for (size_t i = 0; i < n; i++) {
            if (np > 0 && p[np - 1].user == ev[i].user && p[np - 1].item == ev[i].item) {
                struct pair *q = &p[np - 1];
                q->weight += ev[i].weight;
                q->purchase |= ev[i].purchase;
                q->time = ev[i].time > q->time ? ev[i].time : q->time;
            } else {
                p[np++] = (struct pair){ev[i].user,     ev[i].item, ev[i].weight,
                                        ev[i].purchase, 0,          ev[i].time};
            }
        }
        for (uint64_t a = 0, b; a < np; a = b) {
            for (b = a; b < np && p[b].user == p[a].user; b++)
                ;
            hold_out(&p[a], (uint32_t)(b - a), holdout, l->has_time, seed, order);
        }
    }
    d->users = l->user_count, d->items = items, d->pairs = np;
    if (rc == 0 && (user_rows(p, np, d->users, training, &d->uoff, &d->ucol, &d->uw) != 0 ||
                    user_rows(p, np, d->users, held, &d->held_off, &d->held, NULL) != 0 ||
                    user_rows(p, np, d->users, bought, &d->owned_off, &d->owned, NULL) != 0 ||
                    user_rows(p, np, d->users, bought_in_training, &d->train_owned_off,
                              &d->train_owned, NULL) != 0 ||
                    item_rows(d) != 0))
        rc = -ENOMEM;
    free(ev), free(p), free(order);
    if (rc != 0)
        return err_set(e, rc, "out of memory for %zu interactions", n);
    d->by_user = (struct als_rows){d->users, items, d->uoff, d->ucol, d->uw};
    d->by_item = (struct als_rows){items, d->users, d->ioff, d->icol, d->iw};
    return 0;
}

void dataset_free(struct dataset *d)
{
    free(d->held_off), free(d->held);
    free(d->owned_off), free(d->owned);
    free(d->train_owned_off), free(d->train_owned);
    free(d->uoff), free(d->ucol), free(d->uw);
    free(d->ioff), free(d->icol), free(d->iw);
}
