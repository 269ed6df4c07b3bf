/*
 * test_recommend: recommend_run against a brute-force reference computed
 * from the writer's inputs (struct model_src), never from the model.
 *
 * The factors are small integers, so every dot product is an exact integer
 * in float whatever the summation order: the reference's naive loop and the
 * kernel's lane sums agree exactly, scores tie often, and the tie rule
 * (lower item index first) is checked on every call.
 */
#include "engine/recommend.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "random_model.h"

enum { DIM = 7, ITEMS = 600, USERS = 150, CATS = RANDOM_MODEL_CATS };

/* The model, integer factors, and what it was built from. */
static struct random_model fx;

/* ==== the reference ====================================================== */

/* A request as the reference sees it: item indices, not ids. */
struct ref_request {
    int user; /* -1: unknown */
    uint32_t count;
    unsigned char excluded[ITEMS]; /* exclude_item_ids and owned_item_ids */
    int any_category;
    unsigned char category_ok[CATS];
    int purchasable_only;
};

struct ref_hit {
    uint32_t item;
    float score;
};

static int cmp_ref(const void *pa, const void *pb)
{
    const struct ref_hit *a = pa, *b = pb;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return (a->item > b->item) - (a->item < b->item);
}

static int user_owns(int u, uint32_t item)
{
    for (uint64_t k = fx.off[u]; k < fx.off[u + 1]; k++)
        if (fx.owned[k] == item)
            return 1;
    return 0;
}

static int ref_keep(const struct ref_request *r, uint32_t i)
{
    const struct model_item_attr *a = &fx.attrs[i];
    uint32_t tier = r->user >= 0 ? fx.tiers[r->user] : 0;
    if (!a->on_sale || r->excluded[i] || (r->user >= 0 && user_owns(r->user, i)))
        return 0;
    if (!r->any_category && !r->category_ok[a->category])
        return 0;
    return !(r->purchasable_only && a->tier > 0 && tier >= a->tier);
}

/* Purchases per item, each user counted once however often listed. */
static float ref_popularity(uint32_t item)
{
    uint32_t n = 0;
    for (int u = 0; u < USERS; u++)
        n += user_owns(u, item);
    return (float)n;
}

/* Scored by its vector, or (unknown or all-zero) by popularity. */
static int ref_personalized(int u)
{
    for (int d = 0; u >= 0 && d < DIM; d++)
        if (fx.uf[u * DIM + d] != 0)
            return 1;
    return 0;
}

static float ref_dot(int u, uint32_t i)
{
    double s = 0;
    for (int d = 0; d < DIM; d++)
        s += (double)fx.uf[u * DIM + d] * fx.itf[i * DIM + d];
    return (float)s;
}

/* Fills @out best first; returns how many. */
static uint32_t reference(const struct ref_request *r, struct ref_hit *out)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < ITEMS; i++)
        if (ref_keep(r, i))
            out[n++] = (struct ref_hit){i, ref_personalized(r->user) ? ref_dot(r->user, i)
                                                                     : ref_popularity(i)};
    qsort(out, n, sizeof(*out), cmp_ref);
    return n < r->count ? n : r->count;
}

/* ==== requests =========================================================== */

/* Storage for one request's repeated fields. */
struct req_lists {
    char *exclude[40];
    char *owned[40];
    char *cats[CATS + 1];
    char unknown_item[16];
    char unknown_cat[16];
};

/* Build a random request with the filters in @mask (bit 0 exclude, 1
 * categories, 2 purchasable_only, 3 owned_item_ids), for user @u (-1:
 * unknown), and its reference twin. */
static void make_request(int u, unsigned mask, uint32_t count, struct req_lists *l,
                         Recsys__V1__RecommendRequest *req, struct ref_request *r)
{
    static char unknown_user[] = "nobody-at-all";
    recsys__v1__recommend_request__init(req);
    memset(r, 0, sizeof(*r));
    req->user_id = u >= 0 ? fx.uid[u] : unknown_user;
    r->user = u;
    req->count = count;
    r->count = count == 0 ? 10 : count;
    strcpy(l->unknown_item, "no-such-item");
    strcpy(l->unknown_cat, "no-such-cat");
    if (mask & 1) {
        size_t n = 1 + rng_below(30);
        for (size_t k = 0; k < n; k++) {
            uint32_t i = rng_below(ITEMS);
            l->exclude[k] = fx.iid[i];
            r->excluded[i] = 1;
        }
        l->exclude[n] = l->unknown_item; /* unknown ids are ignored */
        req->exclude_item_ids = l->exclude;
        req->n_exclude_item_ids = n + 1;
    }
    r->any_category = 1;
    if (mask & 2) {
        size_t n = 0;
        for (uint32_t c = 0; c < CATS; c++)
            if (rng_below(2)) {
                l->cats[n++] = (char *)random_model_cats[c];
                r->category_ok[c] = 1;
            }
        if (n == 0 || rng_below(2))
            l->cats[n++] = l->unknown_cat; /* matches nothing */
        req->categories = l->cats;
        req->n_categories = n;
        r->any_category = 0;
    }
    req->purchasable_only = r->purchasable_only = (mask & 4) != 0;
    if (mask & 8) {
        size_t n = 1 + rng_below(30);
        for (size_t k = 0; k < n; k++) {
            uint32_t i = rng_below(ITEMS);
            l->owned[k] = fx.iid[i];
            r->excluded[i] = 1;
        }
        l->owned[n] = l->unknown_item;
        req->owned_item_ids = l->owned;
        req->n_owned_item_ids = n + 1;
    }
}

/* Runs @req and compares with the reference; 0 when they agree. */
static int compare(const Recsys__V1__RecommendRequest *req, const struct ref_request *r)
{
    static struct ref_hit want[ITEMS];
    struct err e = {0};
    Recsys__V1__RecommendResponse *resp = NULL;
    int bad = 0;
    int rc = recommend_run(&fx.sv.q, req, &resp, &e);
    uint32_t n = reference(r, want);
    if (rc != 0) {
        fprintf(stderr, "  recommend_run: %s (%s)\n", e.msg, err_strerror(rc));
        bad = 1;
    } else if (resp->n_items != n) {
        fprintf(stderr, "  user %d: %zu items, want %u\n", r->user, resp->n_items, n);
        bad = 1;
    } else if (resp->source != (ref_personalized(r->user) ? RECSYS__V1__SOURCE__PERSONALIZED
                                                          : RECSYS__V1__SOURCE__POPULAR)) {
        fprintf(stderr, "  user %d: source %d\n", r->user, resp->source);
        bad = 1;
    } else if (strcmp(resp->model_version, RANDOM_MODEL_VERSION) != 0) {
        fprintf(stderr, "  model_version '%s'\n", resp->model_version);
        bad = 1;
    }
    for (uint32_t k = 0; !bad && k < n; k++) {
        const Recsys__V1__ScoredItem *it = resp->items[k];
        if (strcmp(it->item_id, fx.iids[want[k].item]) != 0 || it->score != want[k].score) {
            fprintf(stderr, "  user %d: item %u is %s (%g), want %s (%g)\n", r->user, k,
                    it->item_id, it->score, fx.iids[want[k].item], want[k].score);
            bad = 1;
        }
    }
    arena_reset(fx.sv.arena);
    return bad;
}

/* ==== tests ============================================================== */

static void test_every_filter_combination(void)
{
    static const uint32_t counts[] = {1, 0, 10, 37, QUERY_COUNT_MAX};
    /* Users 0, 7, 14 ... own nothing; -1 is a user the model does not know. */
    for (int u = -1; u < USERS; u += 3)
        for (unsigned mask = 0; mask < 16; mask++)
            for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
                struct req_lists l;
                Recsys__V1__RecommendRequest req;
                struct ref_request r;
                make_request(u, mask, counts[c], &l, &req, &r);
                if (compare(&req, &r) != 0) {
                    fprintf(stderr, "  (user %d, filters 0x%x, count %u)\n", u, mask, counts[c]);
                    CHECK(0);
                }
            }
}

/* More asked for than pass the filters: all that pass, no padding. */
static void test_fewer_than_count(void)
{
    char *cats[] = {(char *)random_model_cats[3]};
    Recsys__V1__RecommendRequest req;
    recsys__v1__recommend_request__init(&req);
    req.user_id = fx.uid[5];
    req.count = QUERY_COUNT_MAX;
    req.categories = cats;
    req.n_categories = 1;
    req.purchasable_only = 1;
    struct ref_request r = {.user = 5, .count = QUERY_COUNT_MAX, .purchasable_only = 1};
    r.category_ok[3] = 1;
    struct ref_hit want[ITEMS];
    uint32_t n = reference(&r, want);
    CHECK(n > 0 && n < QUERY_COUNT_MAX);
    CHECK(compare(&req, &r) == 0);
}

/* Owned per the model: never returned, whatever the scores. */
static void test_owned_never_returned(void)
{
    for (int u = 1; u < USERS; u += 7) {
        Recsys__V1__RecommendRequest req;
        recsys__v1__recommend_request__init(&req);
        req.user_id = fx.uid[u];
        req.count = QUERY_COUNT_MAX;
        Recsys__V1__RecommendResponse *resp;
        CHECK_OK(recommend_run(&fx.sv.q, &req, &resp, NULL));
        for (size_t k = 0; k < resp->n_items; k++) {
            uint32_t i = (uint32_t)atoi(resp->items[k]->item_id + strlen("item-"));
            CHECK(!user_owns(u, i));
            CHECK(fx.attrs[i].on_sale);
        }
        arena_reset(fx.sv.arena);
    }
}

struct bad_case {
    const char *what;
    uint32_t count;
    size_t n_exclude, n_owned, n_categories;
    size_t user_len;    /* 0: a known user; else an id of this many bytes */
    size_t exclude_len; /* 0: short ids; else the first exclude id has this many bytes */
    int want;           /* 0 or ERR_INVALID */
    const char *msg;    /* expected in the error text */
};

static const struct bad_case bad_cases[] = {
    {"count over", QUERY_COUNT_MAX + 1, 0, 0, 0, 0, 0, ERR_INVALID, "count 1001 exceeds 1000"},
    {"count huge", 5000, 0, 0, 0, 0, 0, ERR_INVALID, "count 5000 exceeds 1000"},
    {"count max", QUERY_COUNT_MAX, 0, 0, 0, 0, 0, 0, NULL},
    {"excludes over", 10, QUERY_IDS_MAX + 1, 0, 0, 0, 0, ERR_INVALID, "exclude_item_ids"},
    {"excludes max", 10, QUERY_IDS_MAX, 0, 0, 0, 0, 0, NULL},
    {"owned over", 10, 0, QUERY_IDS_MAX + 1, 0, 0, 0, ERR_INVALID, "owned_item_ids"},
    {"owned max", 10, 0, QUERY_IDS_MAX, 0, 0, 0, 0, NULL},
    {"categories over", 10, 0, 0, QUERY_CATEGORIES_MAX + 1, 0, 0, ERR_INVALID, "categories"},
    {"categories max", 10, 0, 0, QUERY_CATEGORIES_MAX, 0, 0, 0, NULL},
    {"user id empty", 10, 0, 0, 0, (size_t)-1, 0, ERR_INVALID, "user_id is empty"},
    {"user id long", 10, 0, 0, 0, MODEL_ID_MAX + 1, 0, ERR_INVALID, "user_id"},
    {"user id max", 10, 0, 0, 0, MODEL_ID_MAX, 0, 0, NULL},
    {"exclude id long", 10, 3, 0, 0, 0, MODEL_ID_MAX + 1, ERR_INVALID, "exclude_item_ids[0]"},
    {"exclude id max", 10, 3, 0, 0, 0, MODEL_ID_MAX, 0, NULL},
};

static int run_bad_case(const struct bad_case *bc)
{
    static char *ids[QUERY_IDS_MAX + 1];
    static char long_id[MODEL_ID_MAX + 2];
    static char user[MODEL_ID_MAX + 2];
    for (size_t k = 0; k < QUERY_IDS_MAX + 1; k++)
        ids[k] = fx.iid[k % ITEMS];
    memset(long_id, 'x', bc->exclude_len);
    long_id[bc->exclude_len] = '\0';
    if (bc->exclude_len > 0)
        ids[0] = long_id;
    Recsys__V1__RecommendRequest req;
    recsys__v1__recommend_request__init(&req);
    req.user_id = fx.uid[1];
    if (bc->user_len > 0) {
        size_t len = bc->user_len == (size_t)-1 ? 0 : bc->user_len;
        memset(user, 'u', len);
        user[len] = '\0';
        req.user_id = user;
    }
    req.count = bc->count;
    req.exclude_item_ids = req.owned_item_ids = ids;
    req.n_exclude_item_ids = bc->n_exclude;
    req.n_owned_item_ids = bc->n_owned;
    req.categories = ids; /* item ids as category names: unknown, but counted */
    req.n_categories = bc->n_categories;
    struct err e = {0};
    Recsys__V1__RecommendResponse *resp = NULL;
    int rc = recommend_run(&fx.sv.q, &req, &resp, &e);
    arena_reset(fx.sv.arena);
    if (rc != bc->want) {
        fprintf(stderr, "  %s: %s, want %s (%s)\n", bc->what, err_name(rc), err_name(bc->want),
                e.msg);
        return 1;
    }
    if (bc->msg != NULL && strstr(e.msg, bc->msg) == NULL) {
        fprintf(stderr, "  %s: message \"%s\" lacks \"%s\"\n", bc->what, e.msg, bc->msg);
        return 1;
    }
    return 0;
}

static void test_request_limits(void)
{
    int bad = 0;
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++)
        bad |= run_bad_case(&bad_cases[i]);
    CHECK(!bad);
}

/* Cold start through a category that exists plus exclusions: the popularity
 * ranking restricted, and the reply says POPULAR. */
static void test_cold_start_filters(void)
{
    for (unsigned mask = 0; mask < 16; mask++) {
        struct req_lists l;
        Recsys__V1__RecommendRequest req;
        struct ref_request r;
        make_request(-1, mask, 25, &l, &req, &r);
        CHECK(compare(&req, &r) == 0);
    }
}

int main(int argc, char **argv)
{
    static const struct check_case cases[] = {
        CHECK_CASE(test_every_filter_combination), CHECK_CASE(test_fewer_than_count),
        CHECK_CASE(test_owned_never_returned),     CHECK_CASE(test_cold_start_filters),
        CHECK_CASE(test_request_limits),
    };
    rng_state = 42;
    if (random_model_open(
            &fx, (struct random_model_shape){.users = USERS, .items = ITEMS, .dim = DIM}) != 0)
        return 1;
    int rc = check_main(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
    served_close(&fx.sv);
    return rc;
}
