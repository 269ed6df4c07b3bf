/*
 * queue: see queue.h for the rules. Here, the structures behind them:
 *
 *   flows   a pool of QUEUE_FLOWS lists of entries, oldest first, one per
 *           connection with calls queued or a turn coming, found by the
 *           connection's key in a hash table (linear probing, deletion by
 *           backward shift, so no tombstones pile up). Keys are 64-bit
 *           hashes of the peer, so two connections share a flow only when
 *           the pool is exhausted: sharing with a flood would put a
 *           client's one call behind the flood's newest ones.
 *   rings   the flows that have a turn coming (light and heavy): a flow is
 *           in at most one ring, and keeps its place there when its entries
 *           leave by expiry (its turn is passed over when it comes empty,
 *           and the flow goes back to the pool).
 *   heap    a binary min-heap on expires: deadlines differ from call to
 *           call, so arrival order does not give them.
 * Every operation is O(1) but the heap's O(log n) and queue_victim's pass
 * over the flows with a turn (at most QUEUE_FLOWS, on overflow only).
 */
#include "server/queue.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>

struct ring {
    uint32_t *flows; /* flow indices: [head, head + n) modulo QUEUE_FLOWS */
    uint32_t head, n;
};

struct flow {
    struct queue_entry *oldest, *newest;
    uint64_t key;
    uint32_t n;
    bool in_turn;
};

/* The hash table's slots: twice the flows, so probes stay short. */
#define TABLE (2 * QUEUE_FLOWS)

struct queue {
    struct flow flows[QUEUE_FLOWS];
    uint32_t table[TABLE];            /* flow index + 1; 0: empty */
    uint32_t free_flows[QUEUE_FLOWS]; /* a stack of the unused flows */
    uint32_t n_free;
    struct ring light, heavy;
    unsigned light_served; /* light turns since the last heavy one */
    struct queue_entry **heap;
    size_t n, capacity, bytes;
    uint64_t nonempty_since; /* when the queue last became non-empty */
};

int queue_create(size_t capacity, struct queue **out)
{
    struct queue *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return -ENOMEM;
    q->capacity = capacity;
    for (uint32_t i = 0; i < QUEUE_FLOWS; i++)
        q->free_flows[i] = QUEUE_FLOWS - 1 - i;
    q->n_free = QUEUE_FLOWS;
    q->heap = calloc(capacity > 0 ? capacity : 1, sizeof(*q->heap));
    q->light.flows = calloc(QUEUE_FLOWS, sizeof(*q->light.flows));
    q->heavy.flows = calloc(QUEUE_FLOWS, sizeof(*q->heavy.flows));
    if (q->heap == NULL || q->light.flows == NULL || q->heavy.flows == NULL) {
        queue_destroy(q);
        return -ENOMEM;
    }
    *out = q;
    return 0;
}

void queue_destroy(struct queue *q)
{
    if (q == NULL)
        return;
    free(q->heap);
    free(q->light.flows);
    free(q->heavy.flows);
    free(q);
}

uint64_t queue_key(const char *peer)
{
    uint64_t h = 14695981039346656037u; /* FNV-1a, 64 bits */
    for (const char *p = peer; p != NULL && *p != '\0'; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211u;
    return h;
}

/* ---- flows by key --------------------------------------------------------- */

static uint32_t home(uint64_t key)
{
    return (uint32_t)(key ^ key >> 32) & (TABLE - 1);
}

/* slot_of - where @key is in the table, or the empty slot that ends its probe. */
static uint32_t slot_of(const struct queue *q, uint64_t key)
{
    uint32_t i = home(key);
    while (q->table[i] != 0 && q->flows[q->table[i] - 1].key != key)
        i = (i + 1) & (TABLE - 1);
    return i;
}

/* flow_for - the flow of @key: its own, a new one from the pool, or, with
 * the pool empty, one it shares. */
static uint32_t flow_for(struct queue *q, uint64_t key)
{
    uint32_t i = slot_of(q, key);
    if (q->table[i] != 0)
        return q->table[i] - 1;
    if (q->n_free == 0)
        return (uint32_t)(key % QUEUE_FLOWS);
    uint32_t flow = q->free_flows[--q->n_free];
    q->flows[flow] = (struct flow){.key = key};
    q->table[i] = flow + 1;
    return flow;
}

/* release - @flow has no entry and no turn: back to the pool. The slots
 * after its own move back over the gap while their probe allows. */
static void release(struct queue *q, uint32_t flow)
{
    uint32_t i = slot_of(q, q->flows[flow].key);
    if (q->table[i] != flow + 1)
        return; /* a flow shared under a key not its own was never inserted */
    for (uint32_t j = (i + 1) & (TABLE - 1); q->table[j] != 0; j = (j + 1) & (TABLE - 1)) {
        uint32_t h = home(q->flows[q->table[j] - 1].key);
        /* The entry at j may fill the gap at i unless its home lies in (i, j]. */
        bool stays = i <= j ? (h > i && h <= j) : (h > i || h <= j);
        if (!stays) {
            q->table[i] = q->table[j];
            i = j;
        }
    }
    q->table[i] = 0;
    q->free_flows[q->n_free++] = flow;
}

/* ---- the expiry heap ------------------------------------------------------ */

static void heap_place(struct queue *q, size_t at, struct queue_entry *e)
{
    q->heap[at] = e;
    e->heap_at = at;
}

static void sift_up(struct queue *q, size_t at)
{
    struct queue_entry *e = q->heap[at];
    while (at > 0 && q->heap[(at - 1) / 2]->expires > e->expires) {
        heap_place(q, at, q->heap[(at - 1) / 2]);
        at = (at - 1) / 2;
    }
    heap_place(q, at, e);
}

static void sift_down(struct queue *q, size_t at, size_t n)
{
    struct queue_entry *e = q->heap[at];
    for (;;) {
        size_t child = 2 * at + 1;
        if (child >= n)
            break;
        if (child + 1 < n && q->heap[child + 1]->expires < q->heap[child]->expires)
            child++;
        if (q->heap[child]->expires >= e->expires)
            break;
        heap_place(q, at, q->heap[child]);
        at = child;
    }
    heap_place(q, at, e);
}

/* heap_remove - take @e out of the heap, which holds q->n entries. */
static void heap_remove(struct queue *q, struct queue_entry *e)
{
    size_t last = q->n - 1, at = e->heap_at;
    if (at == last)
        return;
    struct queue_entry *moved = q->heap[last];
    heap_place(q, at, moved);
    sift_down(q, at, last);
    if (moved->heap_at == at)
        sift_up(q, at);
}

/* ---- turns ---------------------------------------------------------------- */

/* take_turn - @flow joins a ring: the light one with one entry. */
static void take_turn(struct queue *q, uint32_t flow)
{
    struct ring *r = q->flows[flow].n == 1 ? &q->light : &q->heavy;
    r->flows[(r->head + r->n++) % QUEUE_FLOWS] = flow;
    q->flows[flow].in_turn = true;
}

/* next_turn - the flow whose turn it is, off its ring. */
static uint32_t next_turn(struct queue *q)
{
    bool light = q->light.n > 0 && (q->heavy.n == 0 || q->light_served < QUEUE_LIGHT_PER_HEAVY);
    struct ring *r = light ? &q->light : &q->heavy;
    q->light_served = light ? q->light_served + 1 : 0;
    uint32_t flow = r->flows[r->head];
    r->head = (r->head + 1) % QUEUE_FLOWS;
    r->n--;
    q->flows[flow].in_turn = false;
    return flow;
}

/* ---- entries -------------------------------------------------------------- */

void queue_push(struct queue *q, struct queue_entry *e, uint64_t key, size_t bytes, uint64_t now,
                uint64_t expires, bool deadline)
{
    assert(q->n < q->capacity); /* the heap's room: one entry per call object */
    uint32_t flow = flow_for(q, key);
    struct flow *f = &q->flows[flow];
    *e = (struct queue_entry){
        .prev = f->newest, .expires = expires, .deadline = deadline, .bytes = bytes, .flow = flow};
    if (f->newest != NULL)
        f->newest->next = e;
    else
        f->oldest = e;
    f->newest = e;
    f->n++;
    if (!f->in_turn)
        take_turn(q, flow);
    if (q->n == 0)
        q->nonempty_since = now;
    heap_place(q, q->n, e);
    sift_up(q, q->n);
    q->n++;
    q->bytes += bytes;
}

/* take - unlink @e from its flow, the arrival list and the heap. */
static struct queue_entry *take(struct queue *q, struct queue_entry *e)
{
    struct flow *f = &q->flows[e->flow];
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        f->oldest = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        f->newest = e->prev;
    f->n--;
    heap_remove(q, e);
    q->n--;
    q->bytes -= e->bytes;
    if (f->n == 0 && !f->in_turn)
        release(q, e->flow);
    return e;
}

struct queue_entry *queue_next(struct queue *q, uint64_t now)
{
    if (q->n == 0)
        return NULL;
    struct flow *f;
    uint32_t flow;
    for (;;) { /* n > 0: some flow in a ring has an entry */
        flow = next_turn(q);
        f = &q->flows[flow];
        if (f->n > 0)
            break;
        release(q, flow);
    }
    struct queue_entry *e = f->newest->deadline && queue_overloaded(q, now) ? f->newest : f->oldest;
    if (f->n > 1)
        take_turn(q, flow);
    return take(q, e);
}

struct queue_entry *queue_expired(struct queue *q, uint64_t now)
{
    return q->n > 0 && q->heap[0]->expires <= now ? take(q, q->heap[0]) : NULL;
}

struct queue_entry *queue_victim(struct queue *q)
{
    struct flow *hog = NULL;
    const struct ring *rings[] = {&q->heavy, &q->light};
    for (size_t r = 0; r < 2; r++)
        for (uint32_t i = 0; i < rings[r]->n; i++) {
            struct flow *f = &q->flows[rings[r]->flows[(rings[r]->head + i) % QUEUE_FLOWS]];
            if (f->n > 0 && (hog == NULL || f->n > hog->n))
                hog = f;
        }
    return hog != NULL ? take(q, hog->oldest) : NULL;
}

size_t queue_length(const struct queue *q)
{
    return q->n;
}

size_t queue_bytes(const struct queue *q)
{
    return q->bytes;
}

bool queue_overloaded(const struct queue *q, uint64_t now)
{
    return q->n > 0 && now - q->nonempty_since >= QUEUE_OVERLOAD_MS * 1000000u;
}
