/*
 * fuzz_route: route_parse on arbitrary bytes, as routes.json.
 *
 * Promises checked (route.h): a refusal is ERR_INVALID with a one-line
 * message; an accepted file has a model name as its default, a salt of
 * its stated length, and 0 or 1 to ROUTE_ARMS_MAX arms with model names,
 * in byte order without repeats, whose weights sum to ROUTE_BUCKETS; every
 * bucket falls in an arm that has weight.
 */
#include <string.h>

#include "engine/route.h"
#include "fuzz.h"

static void check_route(const struct route *r)
{
    FUZZ_ASSERT(route_name_valid(r->default_name, strlen(r->default_name)));
    FUZZ_ASSERT(r->salt_len <= ROUTE_SALT_MAX && strlen(r->salt) == r->salt_len);
    FUZZ_ASSERT(r->n_arms <= ROUTE_ARMS_MAX);
    if (r->n_arms == 0)
        return;
    uint32_t sum = 0;
    for (uint32_t i = 0; i < r->n_arms; i++) {
        FUZZ_ASSERT(route_name_valid(r->arms[i].name, strlen(r->arms[i].name)));
        FUZZ_ASSERT(i == 0 || strcmp(r->arms[i - 1].name, r->arms[i].name) < 0);
        sum += r->arms[i].weight;
    }
    FUZZ_ASSERT(sum == ROUTE_BUCKETS);
    for (uint32_t b = 0; b < ROUTE_BUCKETS; b++) {
        uint32_t arm = route_arm_of(r, b);
        FUZZ_ASSERT(arm < r->n_arms && r->arms[arm].weight > 0);
    }
    FUZZ_ASSERT(route_bucket(r, "u1", 2) < ROUTE_BUCKETS);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct route r;
    struct err e = {0};
    int rc = route_parse((const char *)data, size, &r, &e);
    if (rc == 0) {
        check_route(&r);
    } else {
        FUZZ_ASSERT(rc == ERR_INVALID && e.msg[0] != '\0');
        fuzz_assert_one_line(e.msg);
    }
    return 0;
}
