/*
 * test_route: routes.json read and checked, users assigned to arms, and the
 * SHA-256 under it.
 *
 * The expected digests are FIPS 180-4's examples (and the one-million-'a'
 * vector of its test suite); the expected buckets were computed with
 * Python's hashlib by the formula of route.h:
 *
 *   int.from_bytes(hashlib.sha256(salt + b"\0" + user).digest()[:8], "big") % 100
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/sha256.h"
#include "check.h"
#include "engine/route.h"

static void hex(const uint8_t d[SHA256_BYTES], char out[2 * SHA256_BYTES + 1])
{
    for (int i = 0; i < SHA256_BYTES; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static int digest_is(const void *data, size_t len, const char *want)
{
    uint8_t d[SHA256_BYTES];
    char got[2 * SHA256_BYTES + 1];
    sha256(data, len, d);
    hex(d, got);
    return strcmp(got, want) == 0;
}

static void test_sha256_vectors(void)
{
    CHECK(digest_is("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    CHECK(digest_is("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    CHECK(digest_is(two, strlen(two),
                    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
    /* A million 'a's, fed in uneven pieces: the partial block's handling. */
    char piece[997];
    memset(piece, 'a', sizeof(piece));
    struct sha256 s;
    sha256_init(&s);
    size_t left = 1000000;
    for (size_t n = 1; left > 0; n = n % (sizeof(piece) - 7) + 7) {
        size_t take = n < left ? n : left;
        sha256_update(&s, piece, take);
        left -= take;
    }
    uint8_t d[SHA256_BYTES];
    char got[2 * SHA256_BYTES + 1];
    sha256_final(&s, d);
    hex(d, got);
    CHECK_STR_HAS(got, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static int parse(const char *text, struct route *r, struct err *e)
{
    memset(e, 0, sizeof(*e));
    return route_parse(text, strlen(text), r, e);
}

static void test_buckets_are_the_formula(void)
{
    static const struct {
        const char *salt, *user;
        uint32_t bucket;
    } cases[] = {
        {"exp-1", "u00001", 97},
        {"", "u00001", 92},
        {"exp-1", "u-\xc3\xa9,2", 76},
        /* Two SHA-256 blocks with the salt. */
        {"exp-1", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 23},
        {"salt with spaces", "42", 53},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct route r;
        struct err e;
        char text[200];
        snprintf(text, sizeof(text), "{\"default\": \"a\", \"salt\": \"%s\"}", cases[i].salt);
        CHECK_OK(parse(text, &r, &e));
        CHECK(route_bucket(&r, cases[i].user, strlen(cases[i].user)) == cases[i].bucket);
    }
}

static void test_the_issues_example(void)
{
    struct route r;
    struct err e;
    CHECK_OK(parse("{\"default\": \"stable\", \"split\": {\"stable\": 90, \"candidate\": 10}, "
                   "\"salt\": \"exp-1\"}",
                   &r, &e));
    CHECK(strcmp(r.default_name, "stable") == 0);
    CHECK(r.salt_len == 5 && strcmp(r.salt, "exp-1") == 0);
    CHECK(r.n_arms == 2);
    CHECK(strcmp(r.arms[0].name, "candidate") == 0 && r.arms[0].weight == 10);
    CHECK(strcmp(r.arms[1].name, "stable") == 0 && r.arms[1].weight == 90);
    for (uint32_t b = 0; b < ROUTE_BUCKETS; b++)
        CHECK(route_arm_of(&r, b) == (b < 10 ? 0u : 1u));
    /* Over 100,000 users the candidate's share is 10% within 1%. */
    unsigned candidate = 0;
    for (int u = 0; u < 100000; u++) {
        char user[16];
        int n = snprintf(user, sizeof(user), "u%d", u);
        candidate += route_arm_of(&r, route_bucket(&r, user, (size_t)n)) == 0;
    }
    CHECK(candidate >= 9000 && candidate <= 11000);
}

static void test_zero_weights_and_no_split(void)
{
    struct route r;
    struct err e;
    CHECK_OK(parse("{\"default\": \"b\", \"split\": {\"a\": 0, \"b\": 100, \"c\": 0}}", &r, &e));
    CHECK(r.n_arms == 3 && r.salt_len == 0);
    for (uint32_t b = 0; b < ROUTE_BUCKETS; b++)
        CHECK(route_arm_of(&r, b) == 1);
    CHECK_OK(parse("{\"default\": \"b\", \"split\": {\"a\": 30, \"b\": 0, \"c\": 70}}", &r, &e));
    CHECK(route_arm_of(&r, 29) == 0 && route_arm_of(&r, 30) == 2 && route_arm_of(&r, 99) == 2);
    CHECK_OK(parse("  {\"default\": \"only-1_x\"}\n", &r, &e));
    CHECK(r.n_arms == 0 && strcmp(r.default_name, "only-1_x") == 0);
}

static void test_refusals_name_the_problem(void)
{
    static const struct {
        const char *text, *says;
    } cases[] = {
        {"", "line 1"},
        {"{\"default\": \"a\"", "line 1"},
        {"{\"default\": \"a\"} x", "line 1"},
        {"[\"a\"]", "not a JSON object"},
        {"{}", "default is missing"},
        {"{\"split\": {\"a\": 100}}", "default is missing"},
        {"{\"default\": 7}", "default is not a string"},
        {"{\"default\": \"A\"}", "default 'A' is not a model name"},
        {"{\"default\": \"-a\"}", "is not a model name"},
        {"{\"default\": \"a\", \"spilt\": {}}", "unknown key 'spilt'"},
        {"{\"default\": \"a\", \"default\": \"b\"}", "duplicate"},
        {"{\"default\": \"a\", \"split\": []}", "split is not an object"},
        {"{\"default\": \"a\", \"split\": {}}", "split has 0 models"},
        {"{\"default\": \"a\", \"split\": {\"a\": 90, \"b\": 20}}",
         "split: the weights sum to 110, not 100"},
        {"{\"default\": \"a\", \"split\": {\"a\": 90}}", "the weights sum to 90, not 100"},
        {"{\"default\": \"a\", \"split\": {\"a\": 90, \"b\": 11}}",
         "the weights sum to 101, not 100"},
        {"{\"default\": \"a\", \"split\": {\"a\": 50, \"a\": 50}}", "duplicate"},
        {"{\"default\": \"a\", \"split\": {\"a\": 90.0, \"b\": 10}}",
         "the weight of 'a' is not an integer from 0 to 100"},
        {"{\"default\": \"a\", \"split\": {\"a\": \"90\", \"b\": 10}}", "weight of 'a'"},
        {"{\"default\": \"a\", \"split\": {\"a\": -10, \"b\": 110}}", "weight of 'a'"},
        {"{\"default\": \"a\", \"split\": {\"a\": 101}}", "weight of 'a'"},
        {"{\"default\": \"a\", \"split\": {\"B\": 100}}", "split: model 'B' is not a model name"},
        {"{\"default\": \"a\", \"salt\": 1}", "salt is not a string"},
        {"{\"default\": \"a\", \"salt\": \"\xff\"}", "line 1"},              /* not UTF-8 */
        {"{\"default\": \"a\", \"salt\": \"x\\u0000y\"}", "line 1, column"}, /* NUL */
        {"\"a\"", "line 1"}, /* jansson reads an object or an array only */
        /* The text goes to a one-line log: control characters become '?'. */
        {"{\"default\": \"a\", \"sp\\nlit\": 1}", "unknown key 'sp?lit'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct route r;
        struct err e;
        CHECK_RC(parse(cases[i].text, &r, &e), ERR_INVALID);
        CHECK_STR_HAS(e.msg, cases[i].says);
    }
}

static void test_limits(void)
{
    struct route r;
    struct err e;
    char text[ROUTE_FILE_MAX + 64];
    /* 17 arms: one too many. */
    size_t at = (size_t)snprintf(text, sizeof(text), "{\"default\": \"a0\", \"split\": {");
    for (int i = 0; i < ROUTE_ARMS_MAX + 1; i++)
        at += (size_t)snprintf(text + at, sizeof(text) - at, "%s\"a%d\": %d", i ? ", " : "", i,
                               i == 0 ? 100 : 0);
    snprintf(text + at, sizeof(text) - at, "}}");
    CHECK_RC(parse(text, &r, &e), ERR_INVALID);
    CHECK_STR_HAS(e.msg, "split has 17 models, not 1 to 16");
    /* The salt's bound. */
    at = (size_t)snprintf(text, sizeof(text), "{\"default\": \"a\", \"salt\": \"");
    memset(text + at, 's', ROUTE_SALT_MAX + 1);
    snprintf(text + at + ROUTE_SALT_MAX + 1, 8, "\"}");
    CHECK_RC(parse(text, &r, &e), ERR_INVALID);
    CHECK_STR_HAS(e.msg, "salt is 257 bytes, longer than 256");
    text[at + ROUTE_SALT_MAX] = '"';
    text[at + ROUTE_SALT_MAX + 1] = '}';
    text[at + ROUTE_SALT_MAX + 2] = '\0';
    CHECK_OK(parse(text, &r, &e));
    CHECK(r.salt_len == ROUTE_SALT_MAX);
    /* The file's. */
    memset(text, ' ', ROUTE_FILE_MAX + 1);
    CHECK_RC(route_parse(text, ROUTE_FILE_MAX + 1, &r, &e), ERR_INVALID);
    CHECK_STR_HAS(e.msg, "longer than 65536");
}

static void test_model_names(void)
{
    char name[ROUTE_NAME_MAX + 2];
    memset(name, 'a', sizeof(name));
    CHECK(route_name_valid(name, ROUTE_NAME_MAX));
    CHECK(!route_name_valid(name, ROUTE_NAME_MAX + 1));
    CHECK(route_name_valid("0", 1) && route_name_valid("a-b_c9", 6));
    static const char *const bad[] = {"", "-a", "_a", "Ab", "a.b", "a b", "a/b", "\xc3\xa9"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK(!route_name_valid(bad[i], strlen(bad[i])));
}

int main(int argc, char **argv)
{
    static const struct check_case cases[] = {
        CHECK_CASE(test_sha256_vectors),
        CHECK_CASE(test_buckets_are_the_formula),
        CHECK_CASE(test_the_issues_example),
        CHECK_CASE(test_zero_weights_and_no_split),
        CHECK_CASE(test_refusals_name_the_problem),
        CHECK_CASE(test_limits),
        CHECK_CASE(test_model_names),
    };
    return check_main(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
