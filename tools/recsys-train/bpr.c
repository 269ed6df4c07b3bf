/*
 * bpr: BPR by Hogwild SGD (bpr.h).
 *
 * A thread's samples come from its own splitmix stream seeded by (seed,
 * iteration, thread). A negative item is drawn uniformly and redrawn while
 * the user has it (binary search in the user's sorted row); users who have
 * every item are skipped.
 */
#include "tools/recsys-train/bpr.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "tools/recsys-train/factors.h"

#define FACTORS_MAX 1024
#define THREADS_MAX 256
/* Redraws of a negative item before the sample is given up: only a user
 * owning nearly the whole catalog gets near this. */
#define REDRAWS 32

struct worker {
    const struct als_rows *rows;
    const struct bpr_params *p;
    float *X, *Y;
    uint64_t samples, state;
    double loss;
    float *step; /* k floats: the user's gradient direction */
};

static uint32_t next_below(uint64_t *state, uint64_t n)
{
    return (uint32_t)(factors_mix(*state += 0x9e3779b97f4a7c15ULL) % n);
}

static int has(const struct als_rows *r, uint32_t u, uint32_t item)
{
    uint64_t lo = r->off[u], hi = r->off[u + 1];
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (r->col[mid] < item)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < r->off[u + 1] && r->col[lo] == item;
}

static float load(float *f)
{
    float v;
    __atomic_load(f, &v, __ATOMIC_RELAXED);
    return v;
}

static void store(float *f, float v)
{
    __atomic_store(f, &v, __ATOMIC_RELAXED);
}

/* The pair at @at of the training rows: its user by binary search. */
static uint32_t user_of(const struct als_rows *r, uint64_t at)
{
    uint32_t lo = 0, hi = r->rows;
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (r->off[mid] <= at)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

static void step(struct worker *w)
{
    const struct als_rows *r = w->rows;
    uint32_t k = w->p->factors;
    uint64_t at = next_below(&w->state, r->off[r->rows]);
    uint32_t u = user_of(r, at), i = r->col[at], j = 0, tries = 0;
    do
        j = next_below(&w->state, r->cols);
    while (has(r, u, j) && ++tries < REDRAWS);
    if (tries == REDRAWS)
        return;
    float *x = w->X + (size_t)u * k, *yi = w->Y + (size_t)i * k, *yj = w->Y + (size_t)j * k;
    float lr = w->p->learning_rate, lambda = w->p->regularization, diff = 0;
    for (uint32_t f = 0; f < k; f++)
        diff += load(&x[f]) * (load(&yi[f]) - load(&yj[f]));
    /* d/d diff of ln sigmoid(diff) is sigmoid(-diff). */
    float g = 1.0f / (1.0f + expf(diff));
    w->loss += log1p(exp(-(double)diff));
    for (uint32_t f = 0; f < k; f++) {
        float xf = load(&x[f]), a = load(&yi[f]), b = load(&yj[f]);
        w->step[f] = g * (a - b) - lambda * xf;
        store(&yi[f], a + lr * (g * xf - lambda * a));
        store(&yj[f], b + lr * (-g * xf - lambda * b));
    }
    for (uint32_t f = 0; f < k; f++)
        store(&x[f], load(&x[f]) + lr * w->step[f]);
}

static void *work(void *arg)
{
    struct worker *w = arg;
    for (uint64_t s = 0; s < w->samples; s++) {
        step(w);
        if (w->p->done != NULL && (s % 4096 == 4095 || s + 1 == w->samples))
            atomic_fetch_add_explicit(w->p->done, s % 4096 + 1, memory_order_relaxed);
    }
    return NULL;
}

static double seconds(void)
{
    return (double)clock_ns() / 1e9;
}

int bpr_train(const struct als_rows *users, const struct bpr_params *p, float *X, float *Y,
              als_progress_fn progress, void *ctx, struct err *e)
{
    uint32_t k = p->factors, threads = p->threads;
    uint64_t pairs = users->off[users->rows];
    if (k < 1 || k > FACTORS_MAX || threads < 1 || threads > THREADS_MAX ||
        !(p->learning_rate > 0) || !(p->regularization >= 0))
        return err_set(e, ERR_INVALID,
                       "factors 1..%d, threads 1..%d, learning rate > 0, "
                       "regularization >= 0",
                       FACTORS_MAX, THREADS_MAX);
    factors_init(X, users->rows, k, p->seed, 0);
    factors_init(Y, users->cols, k, p->seed, 1);
    if (pairs == 0 || users->cols < 2)
        return 0;
    struct worker w[THREADS_MAX];
    pthread_t t[THREADS_MAX];
    float *steps = malloc((size_t)threads * k * sizeof(float));
    if (steps == NULL)
        return err_set(e, -ENOMEM, "out of memory for %u threads' steps", threads);
    int rc = 0;
    for (uint32_t it = 1; it <= p->iterations && rc == 0; it++) {
        double begin = seconds(), loss = 0;
        uint32_t started = 0;
        for (uint32_t i = 0; i < threads && rc == 0; i++) {
            w[i] = (struct worker){
                .rows = users,
                .p = p,
                .X = X,
                .Y = Y,
                .samples = pairs * (i + 1) / threads - pairs * i / threads,
                .state = factors_mix(p->seed ^ ((uint64_t)it << 40) ^ ((uint64_t)i << 20)),
                .step = steps + (size_t)i * k,
            };
            if (i > 0 && (rc = pthread_create(&t[i], NULL, work, &w[i])) != 0)
                rc = err_set(e, -rc, "failed to start a training thread (%s)", strerror(rc));
            else
                started = i + 1;
        }
        if (rc == 0)
            work(&w[0]);
        for (uint32_t i = 1; i < started; i++)
            pthread_join(t[i], NULL);
        for (uint32_t i = 0; i < started; i++)
            loss += w[i].loss;
        if (rc == 0 && progress != NULL &&
            progress(ctx, it, loss / (double)pairs, seconds() - begin) != 0)
            break;
    }
    free(steps);
    return rc;
}
