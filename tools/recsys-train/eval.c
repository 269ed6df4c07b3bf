/*
 * eval: precision, recall, NDCG and coverage at 10 (eval.h).
 *
 * The factor model's scores are computed for a block of users at a time
 * with one sgemm (users x items), so evaluating 100k users costs about as
 * much as a training half iteration rather than 100k matrix-vector scans;
 * the users are split over threads in fixed ranges.
 */
#include "tools/recsys-train/eval.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tools/recsys-train/dataset.h"

/* Users scored per sgemm: BLOCK x items floats of scores. */
#define BLOCK 64

struct tally {
    const struct dataset *d;
    const struct model_item_attr *attrs;
    uint32_t *stamp; /* stamp[i] == u + 1: item i is owned by user u */
    uint8_t *shown;  /* items in some top 10 */
    double precision, recall, ndcg;
    uint32_t users;
};

/* Marks user @u's training purchases in t->stamp. */
static void mark_owned(struct tally *t, uint32_t u)
{
    const struct dataset *d = t->d;
    for (uint64_t k = d->train_owned_off[u]; k < d->train_owned_off[u + 1]; k++)
        t->stamp[d->train_owned[k]] = u + 1;
}

static int excluded(const struct tally *t, uint32_t u, uint32_t i)
{
    return t->stamp[i] == u + 1 || !t->attrs[i].on_sale;
}

/* Adds user @u's metrics for the @n items @top, best first. */
static void tally_user(struct tally *t, uint32_t u, const uint32_t *top, uint32_t n)
{
    const struct dataset *d = t->d;
    uint64_t h0 = d->held_off[u], nh = d->held_off[u + 1] - h0;
    double dcg = 0, ideal = 0;
    uint32_t hits = 0;
    for (uint32_t r = 0; r < n; r++) {
        t->shown[top[r]] = 1;
        for (uint64_t k = 0; k < nh; k++)
            if (d->held[h0 + k] == top[r]) {
                hits++;
                dcg += 1 / log2(r + 2.0);
            }
    }
    for (uint32_t r = 0; r < nh && r < EVAL_TOP; r++)
        ideal += 1 / log2(r + 2.0);
    t->precision += (double)hits / EVAL_TOP;
    t->recall += (double)hits / (double)nh;
    t->ndcg += dcg / ideal;
    t->users++;
}

/* The top 10 of one user's scores @s (one float per item). */
static void rank_user(struct tally *t, uint32_t u, const float *s)
{
    uint32_t top[EVAL_TOP], n = 0;
    mark_owned(t, u);
    for (uint32_t i = 0; i < t->d->items; i++) {
        /* The threshold first: most items stop at one compare. */
        if ((n == EVAL_TOP && !(s[i] > s[top[n - 1]])) || excluded(t, u, i))
            continue;
        /* Strictly greater moves up: equal scores keep the lower row first. */
        uint32_t at = n < EVAL_TOP ? n++ : n - 1;
        while (at > 0 && s[i] > s[top[at - 1]]) {
            top[at] = top[at - 1];
            at--;
        }
        top[at] = i;
    }
    tally_user(t, u, top, n);
}

static int start(struct tally *t, const struct dataset *d, const struct model_item_attr *attrs,
                 struct err *e)
{
    *t = (struct tally){.d = d, .attrs = attrs};
    t->stamp = calloc(d->items, sizeof(*t->stamp));
    t->shown = calloc(d->items, 1);
    if (t->stamp == NULL || t->shown == NULL)
        return err_set(e, -ENOMEM, "out of memory for evaluating %u items", d->items);
    return 0;
}

static int finish(struct tally *t, int rc, struct eval_result *out)
{
    uint64_t shown = 0;
    for (uint32_t i = 0; i < t->d->items && t->shown != NULL; i++)
        shown += t->shown[i];
    double n = t->users ? t->users : 1;
    *out = (struct eval_result){t->precision / n, t->recall / n, t->ndcg / n,
                                (double)shown / t->d->items, t->users};
    free(t->stamp);
    free(t->shown);
    return rc;
}

static int has_held(const struct dataset *d, uint32_t u)
{
    return d->held_off[u + 1] > d->held_off[u];
}

/* One thread's share of eval_factors: users [first, end). */
struct part {
    struct tally t;
    const float *X, *Y;
    uint32_t k, first, end;
    float *scores, *rows; /* BLOCK x items, BLOCK x k */
};

static void *score_part(void *arg)
{
    struct part *p = arg;
    const struct dataset *d = p->t.d;
    uint32_t k = p->k, who[BLOCK];
    for (uint32_t u = p->first; u < p->end;) {
        /* Gather the next BLOCK users who have something held out. */
        uint32_t n = 0;
        for (; u < p->end && n < BLOCK; u++)
            if (has_held(d, u)) {
                memcpy(p->rows + (size_t)n * k, p->X + (size_t)u * k, k * sizeof(float));
                who[n++] = u;
            }
        if (n == 0)
            break;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)d->items, (int)k, 1.0f,
                    p->rows, (int)k, p->Y, (int)k, 0.0f, p->scores, (int)d->items);
        for (uint32_t j = 0; j < n; j++)
            rank_user(&p->t, who[j], p->scores + (size_t)j * d->items);
    }
    return NULL;
}

int eval_factors(const struct dataset *d, const struct model_item_attr *attrs, const float *X,
                 const float *Y, uint32_t k, uint32_t threads, struct eval_result *out,
                 struct err *e)
{
    struct part *parts = calloc(threads, sizeof(*parts));
    pthread_t *t = calloc(threads, sizeof(*t));
    uint32_t started = 0;
    int rc = parts == NULL || t == NULL
                 ? err_set(e, -ENOMEM, "out of memory for %u threads", threads)
                 : 0;
    /* Fixed ranges of users, OpenBLAS single-threaded under each (als.c):
     * the sums are the same for a given thread count. */
    openblas_set_num_threads(1);
    for (uint32_t i = 0; rc == 0 && i < threads; i++) {
        struct part *p = &parts[i];
        rc = start(&p->t, d, attrs, e);
        p->X = X, p->Y = Y, p->k = k;
        p->first = (uint32_t)((uint64_t)d->users * i / threads);
        p->end = (uint32_t)((uint64_t)d->users * (i + 1) / threads);
        p->scores = malloc((size_t)BLOCK * d->items * sizeof(float));
        p->rows = malloc((size_t)BLOCK * k * sizeof(float));
        if (rc == 0 && (p->scores == NULL || p->rows == NULL))
            rc = err_set(e, -ENOMEM, "out of memory for scoring %d users", BLOCK);
    }
    for (uint32_t i = 1; rc == 0 && i < threads; i++, started++) {
        int err = pthread_create(&t[i], NULL, score_part, &parts[i]);
        if (err != 0)
            rc = err_set(e, -err, "failed to start an evaluation thread (%s)", strerror(err));
    }
    if (rc == 0)
        score_part(&parts[0]);
    for (uint32_t i = 1; i <= started; i++)
        pthread_join(t[i], NULL);
    struct tally all = {.d = d, .attrs = attrs};
    for (uint32_t i = 0; parts != NULL && i < threads; i++) {
        struct part *p = &parts[i];
        if (i == 0) {
            all.shown = p->t.shown, p->t.shown = NULL;
            all.stamp = p->t.stamp, p->t.stamp = NULL;
        }
        for (uint32_t j = 0; all.shown != NULL && p->t.shown != NULL && j < d->items; j++)
            all.shown[j] |= p->t.shown[j];
        all.precision += p->t.precision, all.recall += p->t.recall, all.ndcg += p->t.ndcg;
        all.users += p->t.users;
        free(p->t.stamp), free(p->t.shown), free(p->scores), free(p->rows);
    }
    free(parts);
    free(t);
    return finish(&all, rc, out);
}

static int descending(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x < y) - (x > y);
}

/* One ranking for everyone: each user's top 10 is the first 10 items of it
 * the user may be shown. */
int eval_popularity(const struct dataset *d, const struct model_item_attr *attrs,
                    struct eval_result *out, struct err *e)
{
    struct tally t;
    int rc = start(&t, d, attrs, e);
    /* count << 32 | ~row sorts by count descending, then row ascending. */
    uint64_t *key = malloc((d->items ? d->items : 1) * sizeof(*key));
    uint32_t *order = malloc((d->items ? d->items : 1) * sizeof(*order));
    if (rc == 0 && (key == NULL || order == NULL))
        rc = err_set(e, -ENOMEM, "out of memory for %u items", d->items);
    for (uint32_t i = 0; rc == 0 && i < d->items; i++)
        key[i] = (d->ioff[i + 1] - d->ioff[i]) << 32 | (UINT32_MAX - i);
    if (rc == 0)
        qsort(key, d->items, sizeof(*key), descending);
    for (uint32_t i = 0; rc == 0 && i < d->items; i++)
        order[i] = UINT32_MAX - (uint32_t)key[i];
    for (uint32_t u = 0; rc == 0 && u < d->users; u++) {
        if (!has_held(d, u))
            continue;
        uint32_t top[EVAL_TOP], n = 0;
        mark_owned(&t, u);
        for (uint32_t k = 0; k < d->items && n < EVAL_TOP; k++)
            if (!excluded(&t, u, order[k]))
                top[n++] = order[k];
        tally_user(&t, u, top, n);
    }
    free(key);
    free(order);
    return finish(&t, rc, out);
}
