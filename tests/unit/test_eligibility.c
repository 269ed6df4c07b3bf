/*
 * test_eligibility: every reason and the order of the rules, on a small
 * hand-built catalog whose expected answers are written out below from the
 * rules themselves.
 */
#include "engine/eligibility.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "model/writer.h"
#include "served.h"

enum { DIM = 3, ITEMS = 7, USERS = 3 };

/* Items: what makes each interesting. */
static const char *const item_ids[ITEMS] = {
    "free-course",          /* tier 0, on sale; alice owns it */
    "member-book",          /* tier 1, on sale */
    "premium-course",       /* tier 2, on sale */
    "retired",              /* tier 0, off sale */
    "retired-member",       /* tier 1, off sale */
    "owned-member-retired", /* tier 1, off sale; alice owns it */
    "plain",                /* tier 0, on sale; carol owns it */
};
static const struct model_item_attr attrs[ITEMS] = {
    {1000, 0, 1, 0, {0}}, {2000, 1, 1, 1, {0}}, {5000, 0, 1, 2, {0}}, {700, 1, 0, 0, {0}},
    {800, 0, 0, 1, {0}},  {900, 1, 0, 1, {0}},  {1500, 0, 1, 0, {0}},
};
static const char *const user_ids[USERS] = {"alice", "bob", "carol"};
static const uint32_t tiers[USERS] = {1, 2, 0};
static const uint64_t owned_off[USERS + 1] = {0, 2, 2, 3};
static const uint32_t owned[] = {5, 0, 6};
static const char *const categories[] = {"courses", "books"};

static struct {
    struct served sv;
} fx;

static int fixture_open(void)
{
    static float uf[USERS * DIM], itf[ITEMS * DIM];
    for (int i = 0; i < USERS * DIM; i++)
        uf[i] = (float)(i % 5) - 2.0f;
    for (int i = 0; i < ITEMS * DIM; i++)
        itf[i] = (float)(i % 3) - 1.0f;
    const struct model_src src = {
        .dim = DIM,
        .user_count = USERS,
        .item_count = ITEMS,
        .user_factors = uf,
        .item_factors = itf,
        .user_ids = user_ids,
        .item_ids = item_ids,
        .user_tier = tiers,
        .owned_offsets = owned_off,
        .owned_items = owned,
        .attrs = attrs,
        .categories = categories,
        .category_count = 2,
        .version = "elig-1",
        .created_at = 1700000000,
    };
    return served_open(&fx.sv, &src, 16 << 10);
}

static void fixture_close(void)
{
    served_close(&fx.sv);
}

/* ==== expected answers =================================================== */

#define PURCHASABLE RECSYS__V1__REASON__PURCHASABLE
#define OWNED       RECSYS__V1__REASON__ALREADY_OWNED
#define MEMBERSHIP  RECSYS__V1__REASON__INCLUDED_IN_MEMBERSHIP
#define OFF_SALE    RECSYS__V1__REASON__NOT_FOR_SALE
#define UNKNOWN     RECSYS__V1__REASON__UNKNOWN_ITEM

struct expect {
    const char *user;
    const char *owned; /* one owned_item_ids entry, or NULL */
    const char *item;
    Recsys__V1__Reason reason;
    int64_t price;
};

static const struct expect expects[] = {
    /* alice: tier 1, owns free-course and owned-member-retired */
    {"alice", NULL, "free-course", OWNED, 1000},
    {"alice", NULL, "member-book", MEMBERSHIP, 2000},
    {"alice", NULL, "premium-course", PURCHASABLE, 5000}, /* tier 2 > her tier 1 */
    {"alice", NULL, "retired", OFF_SALE, 700},
    {"alice", NULL, "retired-member", MEMBERSHIP, 800},  /* membership before off sale */
    {"alice", NULL, "owned-member-retired", OWNED, 900}, /* owned before everything */
    {"alice", NULL, "plain", PURCHASABLE, 1500},
    {"alice", NULL, "no-such-item", UNKNOWN, 0},
    /* bob: tier 2, owns nothing */
    {"bob", NULL, "free-course", PURCHASABLE, 1000}, /* tier 0 is in no membership */
    {"bob", NULL, "member-book", MEMBERSHIP, 2000},
    {"bob", NULL, "premium-course", MEMBERSHIP, 5000},
    {"bob", NULL, "retired", OFF_SALE, 700},
    /* carol: tier 0, owns plain */
    {"carol", NULL, "plain", OWNED, 1500},
    {"carol", NULL, "member-book", PURCHASABLE, 2000},
    {"carol", NULL, "retired-member", OFF_SALE, 800},
    {"carol", "premium-course", "premium-course", OWNED, 5000}, /* bought after the snapshot */
    {"carol", "ghost-item", "member-book", PURCHASABLE, 2000},  /* unknown owned id ignored */
    /* a user the model does not know: owns nothing, tier 0 */
    {"stranger", NULL, "free-course", PURCHASABLE, 1000},
    {"stranger", NULL, "member-book", PURCHASABLE, 2000},
    {"stranger", NULL, "owned-member-retired", OFF_SALE, 900},
    {"stranger", "plain", "plain", OWNED, 1500},
    {"stranger", NULL, "nope", UNKNOWN, 0},
};

static int run(const char *user, char **owned_ids, size_t n_owned, char **items, size_t n_items,
               Recsys__V1__EligibilityResponse **resp, struct err *e)
{
    Recsys__V1__EligibilityRequest req;
    recsys__v1__eligibility_request__init(&req);
    req.user_id = (char *)user;
    req.owned_item_ids = owned_ids;
    req.n_owned_item_ids = n_owned;
    req.item_ids = items;
    req.n_item_ids = n_items;
    return eligibility_run(&fx.sv.q, &req, resp, e);
}

static int result_ok(const Recsys__V1__EligibilityResult *r, const struct expect *x)
{
    int ok = strcmp(r->item_id, x->item) == 0 && r->reason == x->reason &&
             r->price_cents == x->price && r->eligible == (x->reason == PURCHASABLE);
    if (!ok)
        fprintf(stderr, "  %s/%s: reason %d eligible %d price %lld, want reason %d price %lld\n",
                x->user, x->item, r->reason, r->eligible, (long long)r->price_cents, x->reason,
                (long long)x->price);
    return ok;
}

/* ==== tests ============================================================== */

static void test_each_rule(void)
{
    for (size_t i = 0; i < sizeof(expects) / sizeof(expects[0]); i++) {
        const struct expect *x = &expects[i];
        char *items[] = {(char *)x->item};
        char *owned_ids[] = {(char *)x->owned};
        Recsys__V1__EligibilityResponse *resp;
        CHECK_OK(run(x->user, owned_ids, x->owned != NULL, items, 1, &resp, NULL));
        CHECK(resp->n_results == 1);
        CHECK(result_ok(resp->results[0], x));
        CHECK(strcmp(resp->model_version, "elig-1") == 0);
        arena_reset(fx.sv.arena);
    }
}

/* All of one user's items in one request, in order, duplicates included. */
static void test_batch_order_and_duplicates(void)
{
    static const size_t pick[] = {7, 0, 6, 6, 2, 5, 7, 1, 3, 4, 6};
    enum { N = sizeof(pick) / sizeof(pick[0]) };
    char *items[N];
    for (size_t k = 0; k < N; k++)
        items[k] = (char *)expects[pick[k]].item;
    Recsys__V1__EligibilityResponse *resp;
    CHECK_OK(run("alice", NULL, 0, items, N, &resp, NULL));
    CHECK(resp->n_results == N);
    for (size_t k = 0; k < N; k++)
        CHECK(result_ok(resp->results[k], &expects[pick[k]]));
    arena_reset(fx.sv.arena);
}

/* Request-owned ids act like the model's: several at once, with repeats. */
static void test_request_owned_list(void)
{
    char *owned_ids[] = {"plain", "member-book", "plain", "ghost", "premium-course"};
    char *items[] = {"plain", "member-book", "premium-course", "free-course"};
    static const Recsys__V1__Reason want[] = {OWNED, OWNED, OWNED, PURCHASABLE};
    Recsys__V1__EligibilityResponse *resp;
    CHECK_OK(run("stranger", owned_ids, 5, items, 4, &resp, NULL));
    CHECK(resp->n_results == 4);
    for (size_t k = 0; k < 4; k++)
        CHECK(resp->results[k]->reason == want[k]);
    arena_reset(fx.sv.arena);
}

static void test_limits(void)
{
    static char *many[QUERY_IDS_MAX + 1];
    static char long_id[MODEL_ID_MAX + 2];
    for (size_t k = 0; k < QUERY_IDS_MAX + 1; k++)
        many[k] = (char *)item_ids[k % ITEMS];
    struct err e = {0};
    Recsys__V1__EligibilityResponse *resp;

    CHECK_RC(run("", NULL, 0, many, 1, &resp, &e), ERR_INVALID);
    CHECK_STR_HAS(e.msg, "user_id is empty");
    CHECK_RC(run("alice", NULL, 0, many, 0, &resp, &e), ERR_INVALID);
    CHECK_STR_HAS(e.msg, "item_ids");
    CHECK_RC(run("alice", NULL, 0, many, QUERY_IDS_MAX + 1, &resp, &e), ERR_INVALID);
    CHECK_STR_HAS(e.msg, "item_ids has 1001 entries");
    CHECK_RC(run("alice", many, QUERY_IDS_MAX + 1, many, 1, &resp, &e), ERR_INVALID);
    CHECK_STR_HAS(e.msg, "owned_item_ids");

    memset(long_id, 'x', MODEL_ID_MAX + 1);
    CHECK_RC(run(long_id, NULL, 0, many, 1, &resp, &e), ERR_INVALID);
    CHECK_STR_HAS(e.msg, "user_id");
    char *long_item[] = {"plain", long_id};
    CHECK_RC(run("alice", NULL, 0, long_item, 2, &resp, &e), ERR_INVALID);
    CHECK_STR_HAS(e.msg, "item_ids[1]");
    arena_reset(fx.sv.arena);

    /* At the limits: accepted. */
    long_id[MODEL_ID_MAX] = '\0';
    CHECK_OK(run(long_id, many, QUERY_IDS_MAX, long_item, 2, &resp, &e));
    CHECK(resp->results[1]->reason == UNKNOWN);
    arena_reset(fx.sv.arena);
    CHECK_OK(run("alice", NULL, 0, many, QUERY_IDS_MAX, &resp, &e));
    CHECK(resp->n_results == QUERY_IDS_MAX);
    for (size_t k = 0; k < QUERY_IDS_MAX; k++)
        CHECK(strcmp(resp->results[k]->item_id, item_ids[k % ITEMS]) == 0);
    arena_reset(fx.sv.arena);
}

int main(int argc, char **argv)
{
    static const struct check_case cases[] = {
        CHECK_CASE(test_each_rule),
        CHECK_CASE(test_batch_order_and_duplicates),
        CHECK_CASE(test_request_owned_list),
        CHECK_CASE(test_limits),
    };
    if (fixture_open() != 0)
        return 1;
    int rc = check_main(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
    fixture_close();
    return rc;
}
