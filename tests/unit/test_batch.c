/*
 * test_batch: batch_run against recommend_run on the same requests, which
 * must agree exactly (items, order, score bits), on models whose float
 * factors make sgemm's sums differ from the scan's in the last bits, on
 * integer factors full of ties, and on factors so coarse that more rows tie
 * with the N-th than a selection keeps (the batch then scans that user
 * alone); batches of 1, 64 and 256 mixing known and unknown users and every
 * combination of filters; split over helpers and not; and the batch's own
 * limits.
 */
#include "engine/batch.h"

#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "engine/recommend.h"
#include "engine/scan.h"
#include "engine/split.h"
#include "random_model.h"

/* The model of the current test, and what it was built from. */
static struct random_model fx;

/* ---- requests -------------------------------------------------------------- */

/* The id lists one request points into. */
struct lists {
    char *exclude[8], *cats[3], *owned[8];
};

static char unknown_user[] = "not-a-user";

/* A random request: a known user or not, a count among the interesting
 * ones, and the filters the four bits of @filters name, so that any 16
 * consecutive requests of a batch try every combination. */
static void make_request(Recsys__V1__RecommendRequest *r, struct lists *l, size_t filters)
{
    static const uint32_t counts[] = {0, 1, 10, 100, 1000};
    recsys__v1__recommend_request__init(r);
    r->user_id = rng_below(8) == 0 ? unknown_user : fx.uid[rng_below(fx.users)];
    r->count = counts[rng_below(5)];
    if (filters & 1) {
        for (size_t k = 0; k < 8; k++)
            l->exclude[k] = fx.iid[rng_below(fx.items)];
        r->exclude_item_ids = l->exclude, r->n_exclude_item_ids = 8;
    }
    if (filters & 2) {
        for (size_t k = 0; k < 3; k++)
            l->cats[k] = (char *)random_model_cats[rng_below(RANDOM_MODEL_CATS)];
        r->categories = l->cats, r->n_categories = 1 + rng_below(3);
    }
    r->purchasable_only = (filters & 4) != 0;
    if (filters & 8) {
        for (size_t k = 0; k < 8; k++)
            l->owned[k] = fx.iid[rng_below(fx.items)];
        r->owned_item_ids = l->owned, r->n_owned_item_ids = 8;
    }
}

/* @got answers @req exactly as recommend_run does. */
static int same_as_alone(const Recsys__V1__RecommendRequest *req,
                         const Recsys__V1__RecommendResponse *got, size_t i)
{
    struct arena *a;
    if (arena_create(64 << 10, &a) != 0)
        return 0;
    struct query q = fx.sv.q;
    q.arena = a;
    Recsys__V1__RecommendResponse *want = NULL;
    struct err e = {0};
    int ok = recommend_run(&q, req, &want, &e) == 0 && want->n_items == got->n_items &&
             want->source == got->source && strcmp(want->model_version, got->model_version) == 0;
    for (size_t k = 0; ok && k < want->n_items; k++)
        ok = strcmp(want->items[k]->item_id, got->items[k]->item_id) == 0 &&
             memcmp(&want->items[k]->score, &got->items[k]->score, sizeof(float)) == 0;
    if (!ok)
        fprintf(stderr, "request %zu (user %s, count %u) differs from Recommend alone\n", i,
                req->user_id, req->count);
    arena_destroy(a);
    return ok;
}

/* A batch of @n random requests: each response equals Recommend's. */
static int batch_matches(size_t n)
{
    Recsys__V1__RecommendRequest *reqs = calloc(n, sizeof(*reqs));
    Recsys__V1__RecommendRequest **ptrs = calloc(n, sizeof(*ptrs));
    struct lists *lists = calloc(n, sizeof(*lists));
    for (size_t i = 0; i < n; i++) {
        make_request(&reqs[i], &lists[i], i);
        ptrs[i] = &reqs[i];
    }
    Recsys__V1__BatchRecommendRequest req = RECSYS__V1__BATCH_RECOMMEND_REQUEST__INIT;
    req.requests = ptrs, req.n_requests = n;
    Recsys__V1__BatchRecommendResponse *resp = NULL;
    struct err e = {0};
    int ok = batch_run(&fx.sv.q, &req, &resp, &e) == 0 && resp->n_responses == n;
    if (!ok)
        fprintf(stderr, "batch of %zu: %s\n", n, e.msg);
    for (size_t i = 0; ok && i < n; i++)
        ok = same_as_alone(&reqs[i], resp->responses[i], i);
    arena_reset(fx.sv.arena);
    free(reqs), free(ptrs), free(lists);
    return ok;
}

/* ---- tests ----------------------------------------------------------------- */

static void test_float_factors(void)
{
    rng_state = 11;
    CHECK_OK(random_model_open(
        &fx, (struct random_model_shape){.users = 300, .items = 3000, .dim = 37, .floats = 1}));
    int ok = batch_matches(1) && batch_matches(64) && batch_matches(256);
    served_close(&fx.sv);
    CHECK(ok);
}

static void test_integer_factors_with_ties(void)
{
    rng_state = 12;
    CHECK_OK(
        random_model_open(&fx, (struct random_model_shape){.users = 200, .items = 1500, .dim = 8}));
    int ok = batch_matches(64) && batch_matches(200);
    served_close(&fx.sv);
    CHECK(ok);
}

/* Three item vectors: each user's N-th best score is shared by some 600
 * rows, whose sgemm scores may differ in their last bits, so sgemm need not
 * rank the lowest indices first: the exact scores and the index order must
 * decide, as in Recommend. */
static void test_ties_beyond_candidates(void)
{
    rng_state = 15;
    CHECK_OK(random_model_open(
        &fx, (struct random_model_shape){
                 .users = 100, .items = 2000, .dim = 24, .floats = 1, .distinct = 3}));
    int ok = batch_matches(64);
    served_close(&fx.sv);
    CHECK(ok);
}

/* Factors shaped like trained ones: clusters of near-identical items,
 * where sgemm's scores put many rows within its rounding of the n-th; and
 * skewed norms with a popularity direction. */
static void test_clustered_and_skewed_factors(void)
{
    rng_state = 16;
    CHECK_OK(random_model_open(
        &fx,
        (struct random_model_shape){
            .users = 200, .items = 3000, .dim = 32, .floats = 1, .distinct = 24, .spread = 0.02f}));
    int ok = batch_matches(64) && batch_matches(200);
    served_close(&fx.sv);
    CHECK(ok);
    rng_state = 17;
    CHECK_OK(random_model_open(
        &fx, (struct random_model_shape){
                 .users = 200, .items = 3000, .dim = 32, .floats = 1, .skewed = 1}));
    ok = batch_matches(64) && batch_matches(200);
    served_close(&fx.sv);
    CHECK(ok);
}

/* The item matrix cut in parts over helper threads, as for a large model. */
static void test_split_over_helpers(void)
{
    rng_state = 13;
    CHECK_OK(split_start(2, NULL));
    scan_split_from(1);
    CHECK_OK(random_model_open(&fx, (struct random_model_shape){.users = RANDOM_MODEL_USERS_MAX,
                                                                .items = RANDOM_MODEL_ITEMS_MAX,
                                                                .dim = RANDOM_MODEL_DIM_MAX,
                                                                .floats = 1}));
    int ok = batch_matches(128) && batch_matches(7);
    served_close(&fx.sv);
    scan_split_from(SCAN_SPLIT_BYTES);
    split_stop();
    CHECK(ok);
}

static void test_limits(void)
{
    rng_state = 14;
    CHECK_OK(random_model_open(
        &fx, (struct random_model_shape){.users = 20, .items = 100, .dim = 16, .floats = 1}));
    static Recsys__V1__RecommendRequest reqs[BATCH_MAX + 1];
    static Recsys__V1__RecommendRequest *ptrs[BATCH_MAX + 1];
    for (size_t i = 0; i <= BATCH_MAX; i++) {
        recsys__v1__recommend_request__init(&reqs[i]);
        reqs[i].user_id = fx.uid[i % 20];
        ptrs[i] = &reqs[i];
    }
    Recsys__V1__BatchRecommendRequest req = RECSYS__V1__BATCH_RECOMMEND_REQUEST__INIT;
    Recsys__V1__BatchRecommendResponse *resp = NULL;
    struct err e = {0};

    req.requests = ptrs, req.n_requests = BATCH_MAX + 1;
    CHECK_RC(batch_run(&fx.sv.q, &req, &resp, &e), ERR_INVALID);
    CHECK_STR_HAS(e.msg, "requests has 257 entries, more than 256");

    req.n_requests = BATCH_MAX;
    CHECK_OK(batch_run(&fx.sv.q, &req, &resp, &e));
    CHECK(resp->n_responses == BATCH_MAX && resp->responses[255]->n_items == 10);
    arena_reset(fx.sv.arena);

    req.n_requests = 0;
    CHECK_OK(batch_run(&fx.sv.q, &req, &resp, &e));
    CHECK(resp->n_responses == 0);

    reqs[3].count = 5000;
    req.n_requests = 10;
    CHECK_RC(batch_run(&fx.sv.q, &req, &resp, &e), ERR_INVALID);
    CHECK_STR_HAS(e.msg, "requests[3]: count 5000 exceeds 1000");
    reqs[3].count = 0;
    reqs[7].user_id = "";
    CHECK_RC(batch_run(&fx.sv.q, &req, &resp, &e), ERR_INVALID);
    CHECK_STR_HAS(e.msg, "requests[7]: user_id");
    arena_reset(fx.sv.arena);
    served_close(&fx.sv);
}

int main(int argc, char **argv)
{
    /* As the daemon runs it: one OpenBLAS thread per calling thread. */
    openblas_set_num_threads(1);
    static const struct check_case cases[] = {
        CHECK_CASE(test_float_factors),          CHECK_CASE(test_integer_factors_with_ties),
        CHECK_CASE(test_ties_beyond_candidates), CHECK_CASE(test_clustered_and_skewed_factors),
        CHECK_CASE(test_split_over_helpers),     CHECK_CASE(test_limits),
    };
    return check_main(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
