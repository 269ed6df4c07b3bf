/*
 * queue: the unary calls one worker has taken in and not yet served, and
 * the order it serves or refuses them in.
 *
 * Three rules decide, each against one of issue 11's findings:
 *
 * 1. Fair by connection. Calls are kept by flow, one per connection (up
 *    to QUEUE_FLOWS connections with calls queued; beyond, they share),
 *    and the flows take turns, one call each: a
 *    connection with 32 calls queued gets the turns of one, so a client
 *    making one call at a time is not queued behind a flood from others.
 *    A flow that takes its turn with one call queued is light and served
 *    ahead of the heavy ones, which still get one turn in every
 *    QUEUE_LIGHT_PER_HEAVY + 1.
 *
 * 2. Last in, first out under overload. The queue is overloaded once it
 *    has not been empty for QUEUE_OVERLOAD_MS (CoDel's test: a standing
 *    queue, not a burst). Then each flow serves its newest call with a
 *    deadline first: it is the one that can still be answered within its
 *    client's deadline, where serving the oldest first answers every call
 *    late (finding 5, goodput collapse). A call without a deadline cannot
 *    be late, and newest first would starve the oldest of a client that
 *    keeps a fixed number of calls in flight (each answer brings a newer
 *    call): such calls stay first in, first out, as does a burst the
 *    worker catches up on.
 *
 * 3. Refused in time. Each call has an expiry, set by the caller: for a
 *    call with a deadline, its deadline less what serving it takes, since a
 *    reply after the deadline is waste; for one without, a bound on its
 *    wait, so that a client without deadlines (gRPC's default) hears
 *    back while an overload lasts. The caller refuses what expires:
 *    before the deadline's own timer in the core cancels it, which costs
 *    several times a refusal (an error status formatted, a timer fired),
 *    and so that the client learns at once, and may retry elsewhere.
 *
 * Entries are embedded in the caller's call objects (container_of): the
 * queue links them and owns none; its arrays are sized once, for the most
 * entries it can ever hold. One worker's: not thread-safe.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QUEUE_FLOWS           1024u
#define QUEUE_LIGHT_PER_HEAVY 4u
#define QUEUE_OVERLOAD_MS     100u

/* One queued call, embedded in the caller's object; set by queue_push,
 * private to the queue until it is returned by queue_next, queue_expired
 * or queue_victim. Times are CLOCK_MONOTONIC nanoseconds. */
struct queue_entry {
    struct queue_entry *prev, *next; /* in its flow, oldest first */
    uint64_t expires;
    bool deadline;  /* the call has one: newest first under overload */
    size_t bytes;   /* what the call's request holds, for queue_bytes */
    size_t heap_at; /* its place in the expiry heap */
    uint32_t flow;  /* its flow in the queue's pool */
};

struct queue;

/* queue_create - an empty queue for at most @capacity entries.
 * Returns 0 and the queue in *@out (free with queue_destroy), or -ENOMEM. */
int queue_create(size_t capacity, struct queue **out);
void queue_destroy(struct queue *q);

/* queue_key - the key of a connection named @peer (any string that tells
 * connections apart: grpc_call_get_peer's address and port). */
uint64_t queue_key(const char *peer);

/* queue_push - queue @e, arrived at @now, for the connection of @key.
 * @expires:  when it must have been served or refused (rule 3).
 * @deadline: whether the call has a deadline (rule 2).
 * @bytes:    its request's size, counted in queue_bytes.
 * The queue must hold fewer than its capacity. */
void queue_push(struct queue *q, struct queue_entry *e, uint64_t key, size_t bytes, uint64_t now,
                uint64_t expires, bool deadline);

/* queue_next - take the entry to serve now (rules 1 and 2), or NULL when
 * the queue is empty. The caller checks queue_expired first: an entry
 * returned here may have expired. */
struct queue_entry *queue_next(struct queue *q, uint64_t now);

/* queue_expired - take one entry whose expiry is at or before @now
 * (rule 3), soonest first, or NULL. */
struct queue_entry *queue_expired(struct queue *q, uint64_t now);

/* queue_victim - take the oldest entry of the flow with the most entries,
 * to make room: under overload the connection flooding pays, and its
 * oldest call is the least likely to be answered in time. NULL if empty. */
struct queue_entry *queue_victim(struct queue *q);

size_t queue_length(const struct queue *q);
size_t queue_bytes(const struct queue *q);

/* queue_overloaded - whether the queue has not been empty for
 * QUEUE_OVERLOAD_MS up to @now (rule 2). */
bool queue_overloaded(const struct queue *q, uint64_t now);
