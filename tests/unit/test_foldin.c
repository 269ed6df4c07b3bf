/*
 * test_foldin: the implicit-ALS fold-in (engine/foldin.h) against the
 * problem it solves, written out the long way.
 *
 * The reference builds the normal equations of
 *     sum over ALL items i of c_i (p_i - beta_i - x . y_i)^2 + lambda ||x||^2
 * literally, item by item, with each item's own c_i and p_i, in long
 * double, and solves them by Gaussian elimination with partial pivoting: no
 * Gram matrix, no rank-1 shortcut, no Cholesky, so it shares nothing with
 * foldin.c but the problem. Each model is written with the lambda and
 * alpha of its case in its training record, and the reference reads them
 * back with model_training().
 */
#include "engine/foldin.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/arena.h"
#include "check.h"
#include "model/model.h"
#include "model/writer.h"
#include "rng.h"
#include "served.h"

enum { REF_FACTORS_MAX = 64, ITEMS_MAX = 1000 };

/* A model of @items items of @dim columns, the last one an item bias when
 * @has_bias, with @factors (items x dim) as its item matrix; no users. */
static int open_items(struct served *sv, const float *factors, uint32_t items, uint32_t dim,
                      int has_bias, float lambda, float alpha, uint32_t scaling)
{
    const struct model_training training = {.regularization = lambda,
                                            .alpha = alpha,
                                            .regularization_scaling = scaling,
                                            .view_weight = MODEL_DEFAULT_VIEW_WEIGHT,
                                            .data_end_unix_ms = 0,
                                            .from_file = 1};
    static char id[ITEMS_MAX][16];
    static const char *ids[ITEMS_MAX];
    static struct model_item_attr attrs[ITEMS_MAX];
    static const char *const cats[] = {"all"};
    if (items > ITEMS_MAX)
        return -1;
    for (uint32_t i = 0; i < items; i++) {
        snprintf(id[i], sizeof(id[i]), "item-%04u", i);
        ids[i] = id[i];
        attrs[i] = (struct model_item_attr){.category = 0};
    }
    const struct model_src src = {
        .dim = dim,
        .has_bias = has_bias ? 1 : 0,
        .item_count = items,
        .item_factors = factors,
        .item_ids = ids,
        .attrs = attrs,
        .categories = cats,
        .category_count = 1,
        .version = "foldin-test",
        .created_at = 1700000000,
        .training = &training,
    };
    return served_open(sv, &src, 64 << 10);
}

/* ---- the reference ------------------------------------------------------ */

/* reference - x for @items of the model whose item matrix is @factors
 * (items x dim, as written), into @x (f values). Returns 0, or -1 when the
 * system is singular to long double precision. */
static int reference(const struct model *m, const float *factors, uint32_t items, uint32_t dim,
                     int has_bias, const struct foldin_item *user, uint32_t n, long double *x)
{
    static long double M[REF_FACTORS_MAX][REF_FACTORS_MAX + 1];
    uint32_t f = dim - (has_bias ? 1 : 0);
    const struct model_training *tr = model_training(m);
    long double lambda = tr->regularization, alpha = tr->alpha;
    if (tr->regularization_scaling == MODEL_SCALING_PER_INTERACTION)
        lambda *= n; /* Spark's ALS-WR: lambda times the user's items */
    memset(M, 0, sizeof(M));
    for (uint32_t i = 0; i < items; i++) {
        const float *y = factors + (size_t)i * dim;
        long double c = 1, p = 0, beta = has_bias ? y[f] : 0;
        for (uint32_t k = 0; k < n; k++)
            if (user[k].item == i)
                c = 1 + alpha * user[k].weight, p = 1;
        for (uint32_t r = 0; r < f; r++) {
            for (uint32_t col = 0; col < f; col++)
                M[r][col] += c * y[r] * y[col];
            M[r][f] += c * (p - beta) * y[r];
        }
    }
    for (uint32_t r = 0; r < f; r++)
        M[r][r] += lambda;
    for (uint32_t col = 0; col < f; col++) {
        uint32_t piv = col;
        for (uint32_t r = col + 1; r < f; r++)
            if (fabsl(M[r][col]) > fabsl(M[piv][col]))
                piv = r;
        if (M[piv][col] == 0)
            return -1;
        for (uint32_t k = 0; k <= f; k++) {
            long double t = M[col][k];
            M[col][k] = M[piv][k];
            M[piv][k] = t;
        }
        for (uint32_t r = col + 1; r < f; r++) {
            long double q = M[r][col] / M[col][col];
            for (uint32_t k = col; k <= f; k++)
                M[r][k] -= q * M[col][k];
        }
    }
    for (uint32_t r = f; r-- > 0;) {
        long double s = M[r][f];
        for (uint32_t k = r + 1; k < f; k++)
            s -= M[r][k] * x[k];
        x[r] = s / M[r][r];
    }
    return 0;
}

/* @n distinct random items of @items, weights from a view's 0.25 to 5. */
static void pick_items(struct foldin_item *user, uint32_t n, uint32_t items)
{
    for (uint32_t k = 0; k < n; k++) {
        uint32_t item;
        int seen;
        do {
            item = rng_below(items);
            seen = 0;
            for (uint32_t q = 0; q < k; q++)
                seen |= user[q].item == item;
        } while (seen);
        user[k] = (struct foldin_item){.item = item, .weight = 0.25f + 2.375f * (rng_float() + 1)};
    }
}

/* The fold-in of @user agrees with the reference to 1e-5 of the vector's
 * largest factor, and the rest of the row is as a user row: 1.0 in the
 * bias column, zeros after. */
static int agrees(struct served *sv, const float *factors, uint32_t items, uint32_t dim,
                  int has_bias, const struct foldin_item *user, uint32_t n)
{
    long double ref[REF_FACTORS_MAX];
    float x[REF_FACTORS_MAX + 16];
    struct err e = {0};
    uint32_t f = dim - (has_bias ? 1 : 0), stride = model_stride(sv->model);
    memset(x, 0xff, sizeof(x)); /* NaN: every float must be written */
    int rc = foldin_user(sv->model, user, n, sv->arena, x, &e);
    arena_reset(sv->arena);
    if (rc != 0) {
        fprintf(stderr, "foldin_user: %s (%s)\n", e.msg, err_strerror(rc));
        return 0;
    }
    if (reference(sv->model, factors, items, dim, has_bias, user, n, ref) != 0) {
        fprintf(stderr, "reference: singular\n");
        return 0;
    }
    long double scale = 0, worst = 0;
    for (uint32_t j = 0; j < f; j++)
        scale = fmaxl(scale, fabsl(ref[j]));
    for (uint32_t j = 0; j < f; j++)
        worst = fmaxl(worst, fabsl(x[j] - ref[j]));
    if (!(worst <= 1e-5L * scale)) {
        fprintf(stderr, "f=%u bias=%d n=%u: off by %Lg of %Lg\n", f, has_bias, n, worst, scale);
        return 0;
    }
    for (uint32_t j = f; j < stride; j++)
        if (x[j] != (has_bias && j == f ? 1.0f : 0.0f)) {
            fprintf(stderr, "f=%u bias=%d: x[%u] = %g\n", f, has_bias, j, (double)x[j]);
            return 0;
        }
    return 1;
}

/* ---- tests ------------------------------------------------------------ */

/* Random models, with and without bias, at 8, 33 and 64 factors, several
 * trainings (lambda unscaled, and Spark's lambda per interaction) and
 * users of 0, 1, 7, 20 and 200 items (7: interactions left over from
 * foldin.c's groups of 4). */
static void test_matches_reference(void)
{
    static const uint32_t factor_counts[] = {8, 33, 64};
    static const uint32_t user_sizes[] = {0, 1, 7, 20, 200};
    static const float trainings[][3] = {{MODEL_DEFAULT_REGULARIZATION, MODEL_DEFAULT_ALPHA, 0},
                                         {1.5f, 3.0f, 0},
                                         {0.001f, 40.0f, 0},
                                         {0.1f, 20.0f, MODEL_SCALING_PER_INTERACTION},
                                         {2.0f, 1.0f, MODEL_SCALING_PER_INTERACTION}};
    static float factors[ITEMS_MAX * (REF_FACTORS_MAX + 1)];
    static struct foldin_item user[200];
    const uint32_t items = 800;
    rng_state = 0xf01d1;
    for (size_t fi = 0; fi < sizeof(factor_counts) / sizeof(factor_counts[0]); fi++)
        for (int has_bias = 0; has_bias < 2; has_bias++) {
            uint32_t f = factor_counts[fi], dim = f + (uint32_t)has_bias;
            for (uint32_t i = 0; i < items * dim; i++)
                factors[i] = 0.5f * rng_float();
            for (size_t t = 0; t < sizeof(trainings) / sizeof(trainings[0]); t++) {
                struct served sv;
                CHECK_OK(open_items(&sv, factors, items, dim, has_bias, trainings[t][0],
                                    trainings[t][1], (uint32_t)trainings[t][2]));
                struct err e = {0};
                int rc = foldin_prepare(sv.model, &e);
                int ok = rc == 0 && foldin_ready(sv.model);
                for (size_t u = 0; ok && u < sizeof(user_sizes) / sizeof(user_sizes[0]); u++) {
                    pick_items(user, user_sizes[u], items);
                    ok = agrees(&sv, factors, items, dim, has_bias, user, user_sizes[u]);
                }
                served_close(&sv);
                CHECK_OK(rc);
                CHECK(ok);
            }
        }
}

/* Two clusters of items, each along one factor with noise of a twentieth
 * of that in the others; a user who bought 30 items of the first gets a
 * vector that scores every item of the first above every item of the
 * second. (With ten items and twice the noise, the fit to the ten items'
 * noise outweighed the cluster for a few items.) */
static void test_planted_clusters(void)
{
    enum { F = 8, ITEMS = 400, USER = 30 };
    static float factors[ITEMS * F];
    rng_state = 0xc105;
    for (uint32_t i = 0; i < ITEMS; i++) {
        float *y = factors + i * F;
        for (uint32_t j = 0; j < F; j++)
            y[j] = 0.1f * rng_float();
        y[i < ITEMS / 2 ? 0 : 1] += 2.0f; /* cluster A along factor 0, B along 1 */
    }
    struct served sv;
    CHECK_OK(open_items(&sv, factors, ITEMS, F, 0, MODEL_DEFAULT_REGULARIZATION,
                        MODEL_DEFAULT_ALPHA, 0));
    struct foldin_item user[USER];
    for (uint32_t k = 0; k < USER; k++)
        user[k] = (struct foldin_item){.item = 5 * k + 3, .weight = 1.0f + (float)(k % 3)};
    float x[16];
    struct err e = {0};
    int rc = foldin_prepare(sv.model, &e);
    if (rc == 0)
        rc = foldin_user(sv.model, user, USER, sv.arena, x, &e);
    float worst_a = INFINITY, best_b = -INFINITY;
    for (uint32_t i = 0; rc == 0 && i < ITEMS; i++) {
        float s = 0;
        for (uint32_t j = 0; j < F; j++)
            s += x[j] * factors[i * F + j];
        if (i < ITEMS / 2)
            worst_a = fminf(worst_a, s);
        else
            best_b = fmaxf(best_b, s);
    }
    served_close(&sv);
    CHECK_OK(rc);
    CHECK(worst_a > best_b);
}

/* Item factors spanning fewer than f dimensions (f = 8, 33, 64), lambda =
 * 0: A is singular, and foldin_user says so rather than return NaN or noise;
 * with the default lambda the same items fold in. Two ways to lose rank:
 * columns that are zero for every item, and a column that is the sum of
 * two others (integer factors, so the sum is exact in float and the Gram
 * exactly singular, which rounding in the factorization hides from a test
 * for zero). */
static void test_singular_without_regularization(void)
{
    enum { F_MAX = 64, ITEMS = 300 };
    static const uint32_t factor_counts[] = {8, 33, 64};
    static float factors[ITEMS * F_MAX];
    rng_state = 0x5109;
    for (int run = 0; run < 6; run++) {
        int how = run % 2;
        uint32_t f = factor_counts[run / 2];
        for (uint32_t i = 0; i < ITEMS; i++) {
            float *y = factors + i * f;
            for (uint32_t j = 0; j < f; j++)
                y[j] = how == 0 ? (j < 5 ? rng_float() : 0.0f) : (float)rng_below(7) - 3.0f;
            if (how == 1)
                y[2] = y[0] + y[1];
        }
        struct foldin_item user[3] = {{1, 1.0f}, {50, 2.0f}, {99, 0.25f}};
        float x[F_MAX] = {0};
        struct err e = {0};
        int rc = 0, results[2] = {0, 0}, finite = 1;
        /* The same items without, then with, regularization. */
        const float lambdas[2] = {0.0f, MODEL_DEFAULT_REGULARIZATION};
        for (int k = 0; k < 2 && rc == 0; k++) {
            struct served sv;
            CHECK_OK(open_items(&sv, factors, ITEMS, f, 0, lambdas[k], MODEL_DEFAULT_ALPHA, 0));
            rc = foldin_prepare(sv.model, &e);
            if (rc == 0)
                results[k] = foldin_user(sv.model, user, 3, sv.arena, x, &e);
            served_close(&sv);
        }
        int singular = results[0], regularized = results[1];
        for (uint32_t j = 0; j < f && rc == 0; j++)
            finite &= isfinite(x[j]) != 0;
        if (singular != ERR_INVALID)
            fprintf(stderr, "f=%u, %s: not refused\n", f, how == 0 ? "zero columns" : "a sum");
        CHECK_OK(rc);
        CHECK_RC(singular, ERR_INVALID);
        CHECK_OK(regularized);
        CHECK(finite);
    }
}

/* lambda = 0 on items that span every factor: not refused, and right. */
static void test_unregularized_full_rank(void)
{
    enum { F = 33, ITEMS = 500 };
    static float factors[ITEMS * F];
    rng_state = 0xf011;
    for (uint32_t i = 0; i < ITEMS * F; i++)
        factors[i] = rng_float();
    struct served sv;
    CHECK_OK(open_items(&sv, factors, ITEMS, F, 0, 0.0f, MODEL_DEFAULT_ALPHA, 0));
    struct foldin_item user[20];
    pick_items(user, 20, ITEMS);
    struct err e = {0};
    int rc = foldin_prepare(sv.model, &e), ok = 0;
    if (rc == 0)
        ok = agrees(&sv, factors, ITEMS, F, 0, user, 20);
    served_close(&sv);
    CHECK_OK(rc);
    CHECK(ok);
}

/* More than FOLDIN_FACTORS_MAX factor columns: no Gram, not ready. Exactly
 * FOLDIN_FACTORS_MAX (one more column, the bias): ready, and it folds in. */
static void test_too_wide(void)
{
    enum { DIM = FOLDIN_FACTORS_MAX + 1, ITEMS = 600 };
    float *factors = malloc(sizeof(float) * ITEMS * DIM);
    CHECK(factors != NULL);
    rng_state = 0x1de;
    for (uint32_t i = 0; i < ITEMS * DIM; i++)
        factors[i] = 0.1f * rng_float();
    int ready[2] = {-1, -1}, rc = 0, folded = -1;
    for (int has_bias = 0; has_bias < 2 && rc == 0; has_bias++) {
        struct served sv;
        rc = open_items(&sv, factors, ITEMS, DIM, has_bias, MODEL_DEFAULT_REGULARIZATION,
                        MODEL_DEFAULT_ALPHA, 0);
        if (rc != 0)
            break;
        struct err e = {0};
        rc = foldin_prepare(sv.model, &e);
        ready[has_bias] = foldin_ready(sv.model);
        if (rc == 0 && ready[has_bias] && has_bias) {
            float *x = malloc(sizeof(float) * model_stride(sv.model));
            struct foldin_item user[2] = {{3, 1.0f}, {400, 4.0f}};
            folded = x == NULL ? -ENOMEM : foldin_user(sv.model, user, 2, sv.arena, x, &e);
            for (uint32_t j = 0; folded == 0 && j < FOLDIN_FACTORS_MAX; j++)
                folded = isfinite(x[j]) ? 0 : -1;
            if (folded == 0 && x[FOLDIN_FACTORS_MAX] != 1.0f)
                folded = -1;
            free(x);
        }
        served_close(&sv);
    }
    free(factors);
    CHECK_OK(rc);
    CHECK(ready[0] == 0);
    CHECK(ready[1] == 1);
    CHECK_OK(folded);
}

static const struct check_case cases[] = {
    CHECK_CASE(test_matches_reference),
    CHECK_CASE(test_planted_clusters),
    CHECK_CASE(test_singular_without_regularization),
    CHECK_CASE(test_unregularized_full_rank),
    CHECK_CASE(test_too_wide),
};

int main(int argc, char **argv)
{
    return check_main(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
