/* Unit tests of server/queue: the order a worker serves and refuses its
 * queued calls in, each rule of queue.h against a case worked by hand, and
 * the expiry heap against a plain scan of the same entries. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "rng.h"
#include "server/queue.h"

#define MS 1000000u

static struct queue *make(size_t capacity)
{
    struct queue *q = NULL;
    if (queue_create(capacity, &q) != 0)
        abort(); /* out of memory: nothing left to test */
    return q;
}

/* push - a call with a deadline, none of which is ever near. */
static void push(struct queue *q, struct queue_entry *e, uint64_t key, uint64_t now)
{
    queue_push(q, e, key, 100, now, UINT64_MAX, true);
}

/* Rule 1: a connection flooding the queue gets the turns of one, and one
 * call at a time from another is served next, not after the flood. */
static void test_a_flood_gets_the_turns_of_one_connection(void)
{
    struct queue *q = make(64);
    struct queue_entry flood[10], one;
    for (int i = 0; i < 10; i++)
        push(q, &flood[i], 1, 0);
    push(q, &one, 2, 0);
    CHECK(queue_length(q) == 11 && queue_bytes(q) == 1100);
    CHECK(queue_next(q, 0) == &flood[0]);
    CHECK(queue_next(q, 0) == &one);
    for (int i = 1; i < 10; i++)
        CHECK(queue_next(q, 0) == &flood[i]);
    CHECK(queue_next(q, 0) == NULL);
    CHECK(queue_length(q) == 0 && queue_bytes(q) == 0);
    queue_destroy(q);
}

/* Rule 1: light flows go first, yet a heavy one still gets one turn in
 * every QUEUE_LIGHT_PER_HEAVY + 1 while light ones keep coming. */
static void test_light_flows_cannot_starve_a_heavy_one(void)
{
    enum { HEAVY = 40, LIGHT = 200 };
    struct queue *q = make(HEAVY + LIGHT);
    static struct queue_entry heavy[HEAVY], light[LIGHT];
    for (int i = 0; i < HEAVY; i++)
        push(q, &heavy[i], 0, 0);
    CHECK(queue_next(q, 0) == &heavy[0]); /* now the flow has a heavy turn */
    for (int i = 0; i < LIGHT; i++)
        push(q, &light[i], 1 + (uint32_t)i, 0);
    unsigned since_heavy = 0, served_heavy = 1;
    for (int i = 0; i < 100; i++) {
        struct queue_entry *e = queue_next(q, 0);
        bool is_heavy = e >= heavy && e < heavy + HEAVY;
        if (is_heavy) {
            CHECK(e == &heavy[served_heavy]); /* first in, first out: no overload */
            served_heavy++;
            since_heavy = 0;
        } else {
            since_heavy++;
        }
        CHECK(since_heavy <= QUEUE_LIGHT_PER_HEAVY);
    }
    CHECK(served_heavy >= 1 + 100 / (QUEUE_LIGHT_PER_HEAVY + 1));
    queue_destroy(q);
}

/* Rule 2: a burst is served oldest first; a queue that has not been empty
 * for QUEUE_OVERLOAD_MS serves each flow's newest first. */
static void test_newest_first_only_under_a_standing_queue(void)
{
    struct queue *q = make(8);
    struct queue_entry e[4];
    for (int i = 0; i < 4; i++)
        push(q, &e[i], 3, (uint64_t)i * MS);
    CHECK(!queue_overloaded(q, (QUEUE_OVERLOAD_MS - 1) * (uint64_t)MS));
    CHECK(queue_next(q, 5 * MS) == &e[0]);
    uint64_t later = QUEUE_OVERLOAD_MS * (uint64_t)MS;
    CHECK(queue_overloaded(q, later));
    CHECK(queue_next(q, later) == &e[3]);
    CHECK(queue_next(q, later) == &e[2]);
    CHECK(queue_next(q, later) == &e[1]);
    /* Empty once: the next call starts a new period. */
    CHECK(!queue_overloaded(q, later));
    push(q, &e[0], 3, later);
    push(q, &e[1], 3, later);
    CHECK(queue_next(q, later + 10 * MS) == &e[0]);
    queue_destroy(q);
}

/* Rule 2, calls without a deadline: first in, first out even under a
 * standing queue, so a client keeping a fixed number of calls in flight
 * (each answer bringing a newer call) does not starve its oldest. */
static void test_calls_without_deadline_stay_in_order_under_overload(void)
{
    struct queue *q = make(8);
    struct queue_entry e[4];
    for (int i = 0; i < 4; i++)
        queue_push(q, &e[i], 3, 100, (uint64_t)i * MS, UINT64_MAX, false);
    uint64_t later = QUEUE_OVERLOAD_MS * (uint64_t)MS;
    CHECK(queue_overloaded(q, later));
    for (int i = 0; i < 3; i++) {
        CHECK(queue_next(q, later) == &e[i]);
        queue_push(q, &e[i], 3, 100, later, UINT64_MAX, false); /* the answer's next call */
    }
    CHECK(queue_next(q, later) == &e[3]);
    queue_destroy(q);
}

/* Rule 3: entries expire in the order of their expiry, whatever the order
 * they arrived and left in: checked against a scan of what is queued. */
static void test_expiry_follows_deadlines_as_a_scan_finds_them(void)
{
    enum { N = 500, STEPS = 20000 };
    struct queue *q = make(N);
    static struct queue_entry e[N];
    static bool queued[N];
    rng_state = 11;
    uint64_t now = 1000 * MS;
    for (int step = 0; step < STEPS; step++) {
        uint32_t i = rng_below(N), op = rng_below(4);
        if (op < 2 && !queued[i]) {
            uint64_t expires = now + rng_below(50) * MS;
            queue_push(q, &e[i], rng_below(16), 10, now, expires, rng_below(2));
            queued[i] = true;
        } else if (op == 2) {
            struct queue_entry *next = queue_next(q, now);
            if (next != NULL) {
                CHECK(queued[next - e]);
                queued[next - e] = false;
            }
        } else {
            now += rng_below(3) * MS;
            /* The scan: the least expiry among the queued entries. */
            uint64_t least = UINT64_MAX;
            size_t n = 0;
            for (int k = 0; k < N; k++)
                if (queued[k]) {
                    n++;
                    least = e[k].expires < least ? e[k].expires : least;
                }
            CHECK(queue_length(q) == n);
            struct queue_entry *x = queue_expired(q, now);
            if (least <= now) {
                CHECK(x != NULL && x->expires == least && queued[x - e]);
                if (x != NULL)
                    queued[x - e] = false;
            } else {
                CHECK(x == NULL);
            }
        }
    }
    queue_destroy(q);
}

/* Making room takes the oldest call of the connection with the most. */
static void test_the_victim_is_the_biggest_flows_oldest(void)
{
    struct queue *q = make(16);
    struct queue_entry e[10];
    static const uint32_t flows[10] = {1, 1, 1, 2, 2, 2, 2, 2, 3, 3};
    for (int i = 0; i < 10; i++)
        push(q, &e[i], flows[i], (uint64_t)i);
    CHECK(queue_victim(q) == &e[3]);
    CHECK(queue_victim(q) == &e[4]);
    CHECK(queue_length(q) == 8 && queue_bytes(q) == 800);
    queue_destroy(q);
    q = make(1);
    CHECK(queue_victim(q) == NULL);
    queue_destroy(q);
}

/* Each connection has a flow of its own while the pool lasts: a client
 * making one call at a time is served within a few turns of a flood under
 * overload, whichever of a thousand connections it is; and flows go back
 * to the pool as they empty, so the thousand can come and go for ever. */
static void test_connections_never_share_a_flow_while_flows_last(void)
{
    enum { FLOOD = 2000, CLIENTS = QUEUE_FLOWS - 1 };
    struct queue *q = make(FLOOD + CLIENTS);
    static struct queue_entry flood[FLOOD], client[CLIENTS];
    char peer[64];
    uint64_t flooder = queue_key("ipv4:10.1.1.1:50000");
    CHECK(flooder == queue_key("ipv4:10.1.1.1:50000"));
    CHECK(flooder != queue_key("ipv4:10.1.1.1:50001"));
    for (unsigned round = 0; round < 3; round++) {
        uint64_t t = (uint64_t)round * 10000 * MS;
        for (unsigned i = 0; i < CLIENTS; i++) {
            snprintf(peer, sizeof(peer), "ipv4:10.0.%u.%u:%u", i / 250, i % 250, 40000 + round);
            push(q, &client[i], queue_key(peer), t);
        }
        for (int i = 0; i < FLOOD; i++)
            push(q, &flood[i], flooder, t);
        /* Under overload: each client's single call comes within the light
         * turns; one sharing the flood's flow would be its oldest call, and
         * wait behind the flood's newest. */
        uint64_t later = t + QUEUE_OVERLOAD_MS * (uint64_t)MS;
        unsigned clients = 0;
        for (unsigned k = 0; k < CLIENTS + CLIENTS / QUEUE_LIGHT_PER_HEAVY + 1; k++) {
            struct queue_entry *e = queue_next(q, later);
            clients += e >= client && e < client + CLIENTS;
        }
        CHECK(clients == CLIENTS);
        while (queue_next(q, later) != NULL)
            ;
    }
    queue_destroy(q);
}

int main(int argc, char **argv)
{
    static const struct check_case cases[] = {
        CHECK_CASE(test_a_flood_gets_the_turns_of_one_connection),
        CHECK_CASE(test_light_flows_cannot_starve_a_heavy_one),
        CHECK_CASE(test_newest_first_only_under_a_standing_queue),
        CHECK_CASE(test_calls_without_deadline_stay_in_order_under_overload),
        CHECK_CASE(test_expiry_follows_deadlines_as_a_scan_finds_them),
        CHECK_CASE(test_the_victim_is_the_biggest_flows_oldest),
        CHECK_CASE(test_connections_never_share_a_flow_while_flows_last),
    };
    return check_main(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
