/*
 * test_als: implicit ALS on a synthetic log with a planted structure:
 * items belong to topics, each user buys from one or two topics plus a
 * little noise, and popularity is skewed so the popularity baseline is a
 * fair opponent. Two purchases per user are held out; the trained model's
 * recall@10 on them (purchases seen in training excluded, as the daemon
 * excludes owned items) must be at least 3x the popularity ranking's. The
 * loss must never rise, and the factors must be the same to the bit for
 * any number of threads.
 */
#include "tools/recsys-train/als.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rng.h"

enum { USERS = 600, ITEMS = 400, TOPICS = 10, PER_USER = 14, HELD = 2, K = 16 };

/* The log: training pairs as rows both ways, and the held-out items. */
static struct {
    uint64_t uoff[USERS + 1], ioff[ITEMS + 1];
    uint32_t ucol[USERS * PER_USER], icol[USERS * PER_USER];
    float uw[USERS * PER_USER], iw[USERS * PER_USER];
    uint32_t held[USERS][HELD];
    uint32_t train_count[ITEMS];
    struct als_rows users, items;
} lg;

static int has(const uint32_t *list, size_t n, uint32_t v)
{
    for (size_t i = 0; i < n; i++)
        if (list[i] == v)
            return 1;
    return 0;
}

/* Item i's topic is i % TOPICS; within a topic, lower items are more
 * popular (picked with probability falling with their rank). */
static uint32_t pick_in_topic(uint32_t topic)
{
    uint32_t per = ITEMS / TOPICS, rank = (uint32_t)(per * pow((rng_float() + 1) / 2, 2.0));
    return (rank < per ? rank : per - 1) * TOPICS + topic;
}

static void make_log(void)
{
    rng_state = 2024;
    uint32_t pairs[USERS][PER_USER];
    for (uint32_t u = 0; u < USERS; u++) {
        uint32_t t1 = rng_below(TOPICS), t2 = rng_below(TOPICS);
        for (uint32_t n = 0; n < PER_USER;) {
            uint32_t r = rng_below(10);
            uint32_t item = r == 0 ? rng_below(ITEMS) : pick_in_topic(r < 6 ? t1 : t2);
            if (!has(pairs[u], n, item))
                pairs[u][n++] = item;
        }
    }
    /* The last HELD purchases of each user are held out. */
    uint32_t per_item[ITEMS] = {0};
    size_t n = 0;
    for (uint32_t u = 0; u < USERS; u++) {
        lg.uoff[u] = n;
        for (uint32_t k = 0; k < PER_USER - HELD; k++) {
            lg.ucol[n] = pairs[u][k], lg.uw[n] = 1.0f, n++;
            per_item[pairs[u][k]]++;
        }
        memcpy(lg.held[u], &pairs[u][PER_USER - HELD], sizeof(lg.held[u]));
    }
    lg.uoff[USERS] = n;
    memcpy(lg.train_count, per_item, sizeof(per_item));
    lg.ioff[0] = 0;
    for (uint32_t i = 0; i < ITEMS; i++)
        lg.ioff[i + 1] = lg.ioff[i] + per_item[i];
    uint64_t fill[ITEMS];
    memcpy(fill, lg.ioff, sizeof(fill));
    for (uint32_t u = 0; u < USERS; u++)
        for (uint64_t e = lg.uoff[u]; e < lg.uoff[u + 1]; e++) {
            uint64_t at = fill[lg.ucol[e]]++;
            lg.icol[at] = u, lg.iw[at] = lg.uw[e];
        }
    lg.users = (struct als_rows){USERS, ITEMS, lg.uoff, lg.ucol, lg.uw};
    lg.items = (struct als_rows){ITEMS, USERS, lg.ioff, lg.icol, lg.iw};
}

/* recall@10 of the held-out items, with @score(u, i) ranking the items a
 * user did not buy in training. */
static double recall_at_10(double (*score)(const void *ctx, uint32_t u, uint32_t i),
                           const void *ctx)
{
    uint32_t hits = 0;
    for (uint32_t u = 0; u < USERS; u++) {
        uint32_t top[10];
        double best[10];
        uint32_t count = 0;
        for (uint32_t i = 0; i < ITEMS; i++) {
            if (has(&lg.ucol[lg.uoff[u]], lg.uoff[u + 1] - lg.uoff[u], i))
                continue;
            double s = score(ctx, u, i);
            uint32_t at = count < 10 ? count++ : 10;
            while (at > 0 && best[at - 1] < s) {
                if (at < 10)
                    best[at] = best[at - 1], top[at] = top[at - 1];
                at--;
            }
            if (at < 10)
                best[at] = s, top[at] = i;
        }
        for (uint32_t k = 0; k < count; k++)
            hits += has(lg.held[u], HELD, top[k]);
    }
    return (double)hits / (USERS * HELD);
}

static double popularity(const void *ctx, uint32_t u, uint32_t i)
{
    return lg.train_count[i] - i * 1e-6;
}

struct factors {
    const float *X, *Y;
};

static double dot(const void *ctx, uint32_t u, uint32_t i)
{
    const struct factors *f = ctx;
    double s = 0;
    for (uint32_t j = 0; j < K; j++)
        s += (double)f->X[u * K + j] * f->Y[i * K + j];
    return s;
}

struct losses {
    double v[64];
    uint32_t n;
};

static int record(void *ctx, uint32_t iteration, double loss, double seconds)
{
    struct losses *l = ctx;
    l->v[l->n++] = loss;
    return 0;
}

static const struct als_params params = {
    .factors = K, .iterations = 12, .threads = 1, .regularization = 0.1f, .alpha = 20, .seed = 7};

static void test_beats_popularity(void)
{
    make_log();
    static float X[USERS * K], Y[ITEMS * K];
    struct losses l = {0};
    struct err e = {0};
    CHECK_OK(als_train(&lg.users, &lg.items, &params, X, Y, record, &l, &e));
    struct factors f = {X, Y};
    double als = recall_at_10(dot, &f), pop = recall_at_10(popularity, NULL);
    fprintf(stderr, "recall@10: ALS %.3f, popularity %.3f\n", als, pop);
    CHECK(als >= 3 * pop && pop > 0);
    CHECK(l.n == params.iterations);
    for (uint32_t i = 1; i < l.n; i++)
        CHECK(l.v[i] <= l.v[i - 1] * (1 + 1e-6));
    CHECK(l.v[l.n - 1] < 0.5 * l.v[0]);
}

/* The loss reported equals the loss recomputed pair by pair. */
static void test_loss_matches_brute_force(void)
{
    make_log();
    static float X[USERS * K], Y[ITEMS * K];
    struct als_params p = params;
    p.iterations = 2;
    CHECK_OK(als_train(&lg.users, &lg.items, &p, X, Y, NULL, NULL, NULL));
    double want = 0;
    for (uint32_t u = 0; u < USERS; u++) {
        for (uint32_t i = 0; i < ITEMS; i++) {
            double s = 0, c = 1, pref = 0;
            for (uint32_t j = 0; j < K; j++)
                s += (double)X[u * K + j] * Y[i * K + j];
            for (uint64_t e = lg.uoff[u]; e < lg.uoff[u + 1]; e++)
                if (lg.ucol[e] == i)
                    c = 1 + p.alpha * lg.uw[e], pref = 1;
            want += c * (pref - s) * (pref - s);
        }
        for (uint32_t j = 0; j < K; j++)
            want += p.regularization * (double)X[u * K + j] * X[u * K + j];
    }
    for (uint32_t j = 0; j < ITEMS * K; j++)
        want += p.regularization * (double)Y[j] * Y[j];
    double got = als_loss(&lg.users, &p, X, Y, ITEMS);
    CHECK(fabs(got - want) <= 1e-6 * want);
}

static void test_same_for_any_thread_count(void)
{
    make_log();
    static float X1[USERS * K], Y1[ITEMS * K], X3[USERS * K], Y3[ITEMS * K];
    struct als_params p = params;
    p.iterations = 3;
    CHECK_OK(als_train(&lg.users, &lg.items, &p, X1, Y1, NULL, NULL, NULL));
    p.threads = 3;
    CHECK_OK(als_train(&lg.users, &lg.items, &p, X3, Y3, NULL, NULL, NULL));
    CHECK(memcmp(X1, X3, sizeof(X1)) == 0 && memcmp(Y1, Y3, sizeof(Y1)) == 0);
    p.seed = 8; /* and the seed matters */
    CHECK_OK(als_train(&lg.users, &lg.items, &p, X3, Y3, NULL, NULL, NULL));
    CHECK(memcmp(X1, X3, sizeof(X1)) != 0);
}

static void test_bad_parameters(void)
{
    make_log();
    static float X[USERS * K], Y[ITEMS * K];
    struct als_params p = params;
    struct err e = {0};
    p.factors = 0;
    CHECK_RC(als_train(&lg.users, &lg.items, &p, X, Y, NULL, NULL, &e), ERR_INVALID);
    p = params;
    p.alpha = -1;
    CHECK_RC(als_train(&lg.users, &lg.items, &p, X, Y, NULL, NULL, &e), ERR_INVALID);
    p = params;
    struct als_rows wrong = lg.items;
    wrong.cols = USERS + 1;
    CHECK_RC(als_train(&lg.users, &wrong, &p, X, Y, NULL, NULL, &e), ERR_INVALID);
    CHECK_STR_HAS(e.msg, "do not describe the same pairs");
}

int main(int argc, char **argv)
{
    static const struct check_case cases[] = {
        CHECK_CASE(test_beats_popularity),
        CHECK_CASE(test_loss_matches_brute_force),
        CHECK_CASE(test_same_for_any_thread_count),
        CHECK_CASE(test_bad_parameters),
    };
    return check_main(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
