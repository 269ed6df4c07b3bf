/*
 * split: the helper pool (split.h).
 *
 * One mutex guards the queue of jobs and every job's counters. It is taken
 * a few times per job (claiming a part, finishing one), never per row, so
 * it costs nothing next to the scans it hands out. A job lives on its
 * caller's stack: a helper touches it only under the mutex, and the caller
 * returns only once, under the same mutex, it has seen every part finish
 * and taken the job off the queue.
 */
#include "engine/split.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

struct job {
    void (*fn)(void *arg, unsigned part);
    void *arg;
    unsigned parts;
    unsigned claimed; /* parts handed out so far */
    unsigned done;    /* parts finished */
    struct job *next; /* in the queue, while it has unclaimed parts */
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t work; /* a job was queued, or stop */
    pthread_cond_t done; /* a part finished */
    struct job *head, *tail;
    int stop;
    unsigned helpers;
    pthread_t threads[SPLIT_PARTS_MAX];
} pool = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .work = PTHREAD_COND_INITIALIZER,
    .done = PTHREAD_COND_INITIALIZER,
};

/* Under the lock: take @j off the queue once its last part is claimed.
 * The queue holds at most one job per calling thread, so the walk is short. */
static void dequeue_if_claimed(struct job *j)
{
    if (j->claimed < j->parts)
        return;
    struct job *prev = NULL;
    for (struct job *q = pool.head; q != NULL; prev = q, q = q->next) {
        if (q != j)
            continue;
        if (prev != NULL)
            prev->next = j->next;
        else
            pool.head = j->next;
        if (pool.tail == j)
            pool.tail = prev;
        return;
    }
}

/* Under the lock: claim the next part of @j; returns it, or -1. */
static int claim(struct job *j)
{
    if (j->claimed == j->parts)
        return -1;
    int part = (int)j->claimed++;
    dequeue_if_claimed(j);
    return part;
}

/* Runs part @part of @j with the lock released, then counts it done. */
static void run_part(struct job *j, int part)
{
    pthread_mutex_unlock(&pool.lock);
    j->fn(j->arg, (unsigned)part);
    pthread_mutex_lock(&pool.lock);
    if (++j->done == j->parts)
        pthread_cond_broadcast(&pool.done);
}

static void *helper(void *unused)
{
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (pool.head == NULL && !pool.stop)
            pthread_cond_wait(&pool.work, &pool.lock);
        if (pool.stop)
            break;
        struct job *j = pool.head;
        run_part(j, claim(j)); /* a queued job has an unclaimed part */
    }
    pthread_mutex_unlock(&pool.lock);
    return NULL;
}

int split_start(unsigned helpers, struct err *e)
{
    if (helpers >= SPLIT_PARTS_MAX)
        return err_set(e, ERR_INVALID, "%u scan helpers; at most %d", helpers, SPLIT_PARTS_MAX - 1);
    pthread_mutex_lock(&pool.lock);
    pool.stop = 0;
    pthread_mutex_unlock(&pool.lock);
    for (unsigned i = 0; i < helpers; i++) {
        int rc = pthread_create(&pool.threads[i], NULL, helper, NULL);
        if (rc != 0) {
            split_stop();
            return err_set(e, -rc, "failed to start a scan helper thread (%s)", strerror(rc));
        }
        pthread_mutex_lock(&pool.lock);
        pool.helpers = i + 1;
        pthread_mutex_unlock(&pool.lock);
    }
    return 0;
}

void split_stop(void)
{
    pthread_mutex_lock(&pool.lock);
    pool.stop = 1;
    unsigned helpers = pool.helpers;
    pthread_cond_broadcast(&pool.work);
    pthread_mutex_unlock(&pool.lock);
    for (unsigned i = 0; i < helpers; i++)
        pthread_join(pool.threads[i], NULL);
    pthread_mutex_lock(&pool.lock);
    pool.helpers = 0;
    pthread_mutex_unlock(&pool.lock);
}

unsigned split_parts(void)
{
    pthread_mutex_lock(&pool.lock);
    unsigned parts = pool.helpers + 1;
    pthread_mutex_unlock(&pool.lock);
    return parts;
}

void split_run(void (*fn)(void *arg, unsigned part), void *arg, unsigned parts)
{
    struct job j = {.fn = fn, .arg = arg, .parts = parts};
    pthread_mutex_lock(&pool.lock);
    if (parts > 1 && pool.helpers > 0) {
        if (pool.tail != NULL)
            pool.tail->next = &j;
        else
            pool.head = &j;
        pool.tail = &j;
        pthread_cond_broadcast(&pool.work);
    }
    /* The caller works too, on whatever no helper has taken. */
    for (int part; (part = claim(&j)) >= 0;)
        run_part(&j, part);
    while (j.done < j.parts)
        pthread_cond_wait(&pool.done, &pool.lock);
    pthread_mutex_unlock(&pool.lock);
}
