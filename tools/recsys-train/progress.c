/*
 * progress: bar and iteration lines (progress.h).
 *
 * The bar has its own thread that wakes every REDRAW_MS, reads the counter
 * and redraws; the training threads only add to an atomic counter. A mutex
 * keeps the bar and the iteration line from interleaving on the terminal.
 */
#include "tools/recsys-train/progress.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REDRAW_MS 200
#define BAR_WIDTH 30

struct progress {
    FILE *out;
    int bar;
    const char *unit;
    uint64_t per_iteration;
    uint32_t iterations, current;
    _Atomic uint64_t done;
    struct timespec began; /* of the current iteration */
    pthread_mutex_t lock;  /* the fields above, and the terminal */
    pthread_cond_t wake;
    int stopping;
    pthread_t thread;
};

static double since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->tv_sec) + (now.tv_nsec - t->tv_nsec) / 1e9;
}

/* Called with the lock held. */
static void draw(struct progress *p)
{
    uint64_t done = atomic_load_explicit(&p->done, memory_order_relaxed);
    double share = p->per_iteration ? (double)done / (double)p->per_iteration : 1;
    double elapsed = since(&p->began), rate = elapsed > 0 ? done / elapsed : 0;
    uint64_t left = done < p->per_iteration ? p->per_iteration - done : 0;
    double eta = rate > 0 ? (double)left / rate : 0;
    char bar[BAR_WIDTH + 1];
    int full = (int)(share * BAR_WIDTH);
    for (int i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < full ? '#' : '.';
    bar[BAR_WIDTH] = '\0';
    fprintf(p->out, "\riteration %u/%u [%s] %3.0f%% %.1f s, %.3g %s/s, ETA %.1f s\033[K",
            p->current, p->iterations, bar, share > 1 ? 100 : share * 100, elapsed, rate, p->unit,
            eta);
    fflush(p->out);
}

static void *redraw(void *arg)
{
    struct progress *p = arg;
    pthread_mutex_lock(&p->lock);
    while (!p->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += REDRAW_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&p->wake, &p->lock, &until);
        if (!p->stopping)
            draw(p);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int progress_start(FILE *out, int bar, const char *unit, uint64_t per_iteration,
                   uint32_t iterations, struct progress **pp, struct err *e)
{
    struct progress *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return err_set(e, -ENOMEM, "out of memory for the progress bar");
    *p = (struct progress){.out = out,
                           .bar = bar,
                           .unit = unit,
                           .per_iteration = per_iteration,
                           .iterations = iterations,
                           .current = 1};
    clock_gettime(CLOCK_MONOTONIC, &p->began);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    /* Without its thread the bar cannot move; the plain lines still work. */
    if (bar && pthread_create(&p->thread, NULL, redraw, p) != 0)
        p->bar = 0;
    *pp = p;
    return 0;
}

_Atomic uint64_t *progress_counter(struct progress *p)
{
    return &p->done;
}

int progress_iteration(void *ctx, uint32_t iteration, double loss, double seconds)
{
    struct progress *p = ctx;
    pthread_mutex_lock(&p->lock);
    fprintf(p->out, "%siteration %u/%u: loss %.6e, %.2f s\n", p->bar ? "\r\033[K" : "", iteration,
            p->iterations, loss, seconds);
    fflush(p->out);
    p->current = iteration + 1;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    clock_gettime(CLOCK_MONOTONIC, &p->began);
    pthread_mutex_unlock(&p->lock);
    return 0;
}

void progress_stop(struct progress *p)
{
    if (p == NULL)
        return;
    if (p->bar) {
        pthread_mutex_lock(&p->lock);
        p->stopping = 1;
        pthread_cond_signal(&p->wake);
        pthread_mutex_unlock(&p->lock);
        pthread_join(p->thread, NULL);
    }
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
