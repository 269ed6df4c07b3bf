/*
 * test_similar: similar_run against a brute-force cosine computed in double
 * precision from the writer's inputs (struct model_src).
 *
 * The daemon's cosine is float arithmetic, so scores are compared within a
 * tolerance and the ranking is checked as a property: nothing left out
 * scores clearly better than anything returned. Items with identical
 * vectors score exactly alike on both sides, so for them the tie rule
 * (lower index first) is checked exactly.
 */
#include "engine/similar.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "random_model.h"

enum { DIM = 20, ITEMS = 800, USERS = 60, CATS = RANDOM_MODEL_CATS, TWIN_SOURCES = 40 };

#define EPS 1e-5

static struct random_model fx;

/* Float factors, whose cosines are not exact; twins among the first
 * TWIN_SOURCES items; users owning up to 59 items, so that owned items
 * often fall among an item's neighbours. */
static int fixture_open(void)
{
    rng_state = 7;
    return random_model_open(&fx, (struct random_model_shape){.users = USERS,
                                                              .items = ITEMS,
                                                              .dim = DIM,
                                                              .floats = 1,
                                                              .zero_item = 1,
                                                              .twins = 60,
                                                              .twin_sources = TWIN_SOURCES,
                                                              .owned_max = 60});
}

static void fixture_close(void)
{
    served_close(&fx.sv);
}

/* ==== the reference ====================================================== */

struct ref_request {
    uint32_t item;
    int user; /* -1: none or unknown */
    uint32_t count;
    unsigned char excluded[ITEMS];
    int any_category;
    unsigned char category_ok[CATS];
};

static double ref_cosine(uint32_t a, uint32_t b)
{
    double dot = 0, na = 0, nb = 0;
    for (int d = 0; d < DIM; d++) {
        double x = fx.itf[a * DIM + d], y = fx.itf[b * DIM + d];
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    return na == 0 || nb == 0 ? 0 : dot / sqrt(na * nb);
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
    if (i == r->item || !fx.attrs[i].on_sale || r->excluded[i])
        return 0;
    if (r->user >= 0 && user_owns(r->user, i))
        return 0;
    return r->any_category || r->category_ok[fx.attrs[i].category];
}

static int same_vector(uint32_t a, uint32_t b)
{
    return memcmp(&fx.itf[a * DIM], &fx.itf[b * DIM], DIM * sizeof(float)) == 0;
}

static uint32_t item_of(const char *id)
{
    return (uint32_t)atoi(id + strlen("item-"));
}

/* Checks @resp against @r; 0 when it is right. */
static int verify(const Recsys__V1__RecommendResponse *resp, const struct ref_request *r,
                  Recsys__V1__Source want_source)
{
    static unsigned char returned[ITEMS];
    static double cosine[ITEMS];
    uint32_t passing = 0;
    for (uint32_t i = 0; i < ITEMS; i++) {
        passing += ref_keep(r, i);
        cosine[i] = ref_cosine(r->item, i);
    }
    uint32_t want = passing < r->count ? passing : r->count;
    if (resp->n_items != want || resp->source != want_source ||
        strcmp(resp->model_version, RANDOM_MODEL_VERSION) != 0) {
        fprintf(stderr, "  item %u: %zu items (want %u), source %d (want %d)\n", r->item,
                resp->n_items, want, resp->source, want_source);
        return 1;
    }
    memset(returned, 0, sizeof(returned));
    double worst = INFINITY; /* lowest cosine returned */
    for (size_t k = 0; k < resp->n_items; k++) {
        uint32_t y = item_of(resp->items[k]->item_id);
        float s = resp->items[k]->score;
        if (returned[y] || !ref_keep(r, y) || fabs(s - cosine[y]) > EPS) {
            fprintf(stderr, "  item %u: returned %u (%g), cosine %g, allowed %d\n", r->item, y, s,
                    cosine[y], ref_keep(r, y));
            return 1;
        }
        returned[y] = 1;
        worst = fmin(worst, cosine[y]);
        if (k > 0) {
            float prev = resp->items[k - 1]->score;
            uint32_t py = item_of(resp->items[k - 1]->item_id);
            if (s > prev || (s == prev && y < py)) {
                fprintf(stderr, "  item %u: %u (%g) after %u (%g)\n", r->item, y, s, py, prev);
                return 1;
            }
        }
    }
    /* Nothing left out beats anything returned: clearly by score, or by
     * index between identical vectors. */
    for (uint32_t x = 0; x < ITEMS; x++) {
        if (returned[x] || !ref_keep(r, x))
            continue;
        if (cosine[x] > worst + EPS) {
            fprintf(stderr, "  item %u: left out %u (%g), returned one at %g\n", r->item, x,
                    cosine[x], worst);
            return 1;
        }
        for (size_t k = 0; k < resp->n_items; k++) {
            uint32_t y = item_of(resp->items[k]->item_id);
            if (y > x && same_vector(x, y)) {
                fprintf(stderr, "  item %u: left out %u but returned its twin %u\n", r->item, x, y);
                return 1;
            }
        }
    }
    return 0;
}

/* ==== tests ============================================================== */

struct lists {
    char *exclude[20];
    char *cats[CATS + 1];
    char unknown[16];
};

/* A random request for @item with the filters in @mask (bit 0 exclude,
 * bit 1 categories, bits 2-3 user: none, known, unknown). */
static void make_request(uint32_t item, unsigned mask, uint32_t count, struct lists *l,
                         Recsys__V1__SimilarItemsRequest *req, struct ref_request *r)
{
    static char unknown_user[] = "nobody";
    recsys__v1__similar_items_request__init(req);
    memset(r, 0, sizeof(*r));
    req->item_id = fx.iid[item];
    r->item = item;
    req->count = count;
    r->count = count == 0 ? 10 : count;
    r->user = -1;
    strcpy(l->unknown, "no-such-thing");
    if (mask & 1) {
        size_t n = 1 + rng_below(15);
        for (size_t k = 0; k < n; k++) {
            uint32_t i = rng_below(ITEMS);
            l->exclude[k] = fx.iid[i];
            r->excluded[i] = 1;
        }
        l->exclude[n] = l->unknown;
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
        if (n == 0)
            l->cats[n++] = l->unknown;
        req->categories = l->cats;
        req->n_categories = n;
        r->any_category = 0;
    }
    if ((mask >> 2) == 1) {
        r->user = (int)rng_below(USERS);
        req->user_id = fx.uid[r->user];
    } else if ((mask >> 2) == 2) {
        req->user_id = unknown_user;
    }
}

static void test_against_cosine(void)
{
    static const uint32_t counts[] = {1, 0, 25, QUERY_COUNT_MAX};
    for (uint32_t t = 0; t < 60; t++) {
        /* Items among the first TWIN_SOURCES have exact duplicates elsewhere. */
        uint32_t item = t < 20    ? rng_below(TWIN_SOURCES)
                        : t == 20 ? RANDOM_MODEL_ZERO_ITEM
                                  : rng_below(ITEMS);
        for (unsigned mask = 0; mask < 12; mask++)
            for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
                struct lists l;
                Recsys__V1__SimilarItemsRequest req;
                struct ref_request r;
                make_request(item, mask, counts[c], &l, &req, &r);
                Recsys__V1__RecommendResponse *resp;
                struct err e = {0};
                CHECK_OK(similar_run(&fx.sv.q, &req, &resp, &e));
                Recsys__V1__Source src = r.user >= 0 ? RECSYS__V1__SOURCE__PERSONALIZED
                                                     : RECSYS__V1__SOURCE__SOURCE_UNSPECIFIED;
                if (verify(resp, &r, src) != 0) {
                    fprintf(stderr, "  (filters 0x%x, count %u)\n", mask, counts[c]);
                    CHECK(0);
                }
                arena_reset(fx.sv.arena);
            }
    }
}

/* The zero vector is similar to nothing: every score 0, lowest indices first. */
static void test_zero_vector(void)
{
    Recsys__V1__SimilarItemsRequest req;
    recsys__v1__similar_items_request__init(&req);
    req.item_id = fx.iid[RANDOM_MODEL_ZERO_ITEM];
    req.count = 5;
    Recsys__V1__RecommendResponse *resp;
    CHECK_OK(similar_run(&fx.sv.q, &req, &resp, NULL));
    CHECK(resp->n_items == 5);
    uint32_t expect = 0;
    for (size_t k = 0; k < 5; k++, expect++) {
        while (expect == RANDOM_MODEL_ZERO_ITEM || !fx.attrs[expect].on_sale)
            expect++;
        CHECK(item_of(resp->items[k]->item_id) == expect);
        CHECK(resp->items[k]->score == 0.0f);
    }
    arena_reset(fx.sv.arena);
}

static void test_errors(void)
{
    static char *many[QUERY_IDS_MAX + 1];
    static char long_id[MODEL_ID_MAX + 2];
    for (size_t k = 0; k < QUERY_IDS_MAX + 1; k++)
        many[k] = fx.iid[k % ITEMS];
    memset(long_id, 'x', MODEL_ID_MAX + 1);
    Recsys__V1__SimilarItemsRequest req;
    Recsys__V1__RecommendResponse *resp;
    struct err e = {0};

    recsys__v1__similar_items_request__init(&req);
    CHECK_RC(similar_run(&fx.sv.q, &req, &resp, &e), ERR_INVALID);
    CHECK_STR_HAS(e.msg, "item_id is empty");
    req.item_id = "item-9999";
    CHECK_RC(similar_run(&fx.sv.q, &req, &resp, &e), ERR_NOT_FOUND);
    CHECK_STR_HAS(e.msg, "item 'item-9999' not found");
    req.item_id = long_id;
    CHECK_RC(similar_run(&fx.sv.q, &req, &resp, &e), ERR_INVALID);
    CHECK_STR_HAS(e.msg, "item_id");

    req.item_id = fx.iid[1];
    req.count = QUERY_COUNT_MAX + 1;
    CHECK_RC(similar_run(&fx.sv.q, &req, &resp, &e), ERR_INVALID);
    CHECK_STR_HAS(e.msg, "count 1001 exceeds 1000");
    req.count = 0;
    req.user_id = long_id;
    CHECK_RC(similar_run(&fx.sv.q, &req, &resp, &e), ERR_INVALID);
    CHECK_STR_HAS(e.msg, "user_id");
    req.user_id = "";
    req.exclude_item_ids = many;
    req.n_exclude_item_ids = QUERY_IDS_MAX + 1;
    CHECK_RC(similar_run(&fx.sv.q, &req, &resp, &e), ERR_INVALID);
    CHECK_STR_HAS(e.msg, "exclude_item_ids");
    req.n_exclude_item_ids = 0;
    req.categories = many;
    req.n_categories = QUERY_CATEGORIES_MAX + 1;
    CHECK_RC(similar_run(&fx.sv.q, &req, &resp, &e), ERR_INVALID);
    CHECK_STR_HAS(e.msg, "categories");
    arena_reset(fx.sv.arena);

    /* At every limit at once: accepted (the categories match nothing). */
    long_id[MODEL_ID_MAX] = '\0';
    req.user_id = long_id;
    req.count = QUERY_COUNT_MAX;
    req.exclude_item_ids = many;
    req.n_exclude_item_ids = QUERY_IDS_MAX;
    req.n_categories = QUERY_CATEGORIES_MAX;
    CHECK_OK(similar_run(&fx.sv.q, &req, &resp, &e));
    CHECK(resp->n_items == 0);
    arena_reset(fx.sv.arena);
}

int main(int argc, char **argv)
{
    static const struct check_case cases[] = {
        CHECK_CASE(test_against_cosine),
        CHECK_CASE(test_zero_vector),
        CHECK_CASE(test_errors),
    };
    if (fixture_open() != 0)
        return 1;
    int rc = check_main(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
    fixture_close();
    return rc;
}
