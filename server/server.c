/*
 * server: unary gRPC calls on the C core API, one completion queue per worker.
 *
 * Each worker thread owns a completion queue, a set of slots and a bounded
 * pool of call objects. A slot is one outstanding "give me the next call"
 * request to the core; a call object is one call in flight. The address of
 * either is the tag of every event about it, and its state says what the
 * event means:
 *
 *   slot:  IDLE ──arm──▶ ARMED ──call arrives──▶ (call moves out) ──re-arm──▶ ARMED
 *   call:  FREE ──unary──▶ QUEUED ──its turn: handler, one reply batch──▶ REPLYING
 *               ──stream: read the next message──▶ STREAMING ──▶ ... ──▶ REPLYING
 *          QUEUED ──its turn: the handler defers──▶ DEFERRED
 *          REPLYING or DEFERRED ──batch done──▶ FREE
 *
 * A call leaves its slot the moment it arrives and the slot asks for the
 * next one at once: no call, however slow its client, holds a slot. What a
 * call holds while it waits (its turn, or its client: a reply not read, a
 * stream not continued) is a call object, of which each worker has a
 * bounded pool (--max-calls over the workers, a quarter at most for
 * streams), and for a bounded time (sweep). A call whose deadline has
 * passed or leaves less than serving takes, or to an unknown method, is
 * refused at once, before any work, with a status sent on the core's own
 * (grpc_call_cancel_with_status); so is one that finds no room, after the
 * busiest connection's oldest queued call has been refused to make some
 * (admit).
 *
 * A worker takes calls in between serving them, into its queue (queue.h),
 * which decides the order: by connection in turn, newest first under
 * overload for calls with a deadline, and what to refuse before its
 * deadline. Taking calls in gets at most as much of the worker's time as
 * serving (intake_budget), so a flood of arrivals can neither starve
 * serving nor leave calls unseen in the core until their deadlines pass.
 * Health checks and GetModelInfo are answered on arrival (urgent).
 *
 * Every unary method is registered with GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER,
 * so the request message arrives with the call and one batch (initial
 * metadata, message, status, receive-close) answers it: a call costs two
 * trips through the queue. One extra slot per worker catches methods that
 * are not registered and answers UNIMPLEMENTED, as grpc++ does.
 *
 * Shutdown, first step: grpc_server_shutdown_and_notify cancels the calls
 * the core has received but not yet matched to an armed slot (a burst
 * larger than the slots waits there). So the server first takes every such
 * call in (shutdown_core): it arms spare slots and waits until each worker
 * has caught up; those calls then finish like any other call in flight.
 *
 * Second step: the core's shutdown notification means every connection is
 * closed, not that every call object is released: a worker may still be in
 * a handler, about to start a reply batch on its queue. So no other thread
 * shuts a worker's queue down. Once stopping, a worker stops re-arming, and
 * when its last slot and call are done it shuts its own queue down and exits.
 *
 * A worker runs each call start to finish on its own thread and arena, so
 * nothing on the request path is shared or locked. Two copies allocate: the
 * response goes into a slice the core owns (it may hold it past the batch),
 * and so does the status text, on error paths only.
 *
 * A deferred call (server_defer) is the one exception: its handler returns
 * without an answer, and another thread, the completer, starts its reply
 * batch later (server_complete) with the call as the tag. That batch
 * completes on the worker's queue, and the worker frees the call as any
 * other (on_replied); the worker serves other calls meanwhile. The core
 * allows a batch from another thread here since no other batch of the call
 * is in progress. While deferred, the call's state and the arena stay the
 * worker's, and the reply (response, status, elapsed) is the completer's;
 * the completer hands it over with a release (completed) that the worker
 * acquires on the completion: the core's own synchronisation is invisible
 * to TSan (Debian's library is not instrumented).
 *
 * One more thread, the control thread, waits on the control queue for the
 * shutdown notification. Waiting, it is also one of the core's pollers: the
 * core reads sockets only on threads blocked in a queue, so without it a
 * burst arriving while every worker is in a handler would sit unread in the
 * kernel, and a shutdown then would cancel those calls instead of serving
 * them.
 */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include "server/server.h"

#include <assert.h>
#include <errno.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/pem.h"
#include "server/inflate.h"
#include "server/listener.h"
#include "server/metrics.h"
#include "server/queue.h"

/* Two slots per method, so a new call can match while the last one is being
 * handled. Not more: the core matches a connection's calls to its home
 * worker's slots first, so few slots per worker spread one connection's
 * concurrent calls over all workers. */
#define SLOTS_PER_METHOD 2
/* Spare slots per method and worker, armed only at shutdown (see above). */
#define DRAIN_SLOTS 32
/* The first arena block: a typical call (request, id lookups, a response of
 * a few hundred items) fits, so the steady state never grows it. */
#define ARENA_BLOCK (256u << 10)
/* At most this share of a worker's call objects serve streams (the
 * reflection service): idle streams cannot starve the unary methods. */
#define STREAM_SHARE_DIV 4
/* How long a client may leave a reply untaken before the call is cancelled:
 * our replies are at most a few hundred KB, which a reading client takes
 * in milliseconds. Once half the call objects are taken, a second. A
 * stream may wait this long for its client's next message: reflection
 * clients (grpcurl, ghz) send theirs back to back. */
#define REPLY_WAIT_MS         10000u
#define REPLY_WAIT_PRESSED_MS 1000u
#define STREAM_WAIT_MS        30000u
/* Taking calls in between two served calls lasts at most as long as the
 * last served call took, and no less than INTAKE_MIN_NS: under a flood of
 * arrivals the worker serves at least half its time, while at a few
 * microseconds a call it still takes in its backlog in a handful of
 * events. */
#define INTAKE_MIN_NS 50000u
/* Calls refused from the queue (queue_expired) per turn of the loop, so
 * that a mass expiry does not hold the worker from its queue for long. */
#define EXPIRE_MAX 64u
/* The least time a call's deadline must leave for it to be served: the
 * core keeps deadlines to the millisecond, so a call with less than one
 * left may have none. */
#define DEADLINE_SLACK_NS 1000000u
/* The longest a call without a deadline waits in the queue: a client
 * without a deadline is still better told, while an overload lasts, and
 * ten seconds is past any wait a service calling another expects. */
#define QUEUED_MAX_NS   10000000000u
#define QUEUED_MAX_TEXT "10 s"
/* Request bytes queued in all, over the workers: with the call bound, what
 * keeps a flood of large requests (4 MiB each is allowed) within memory. */
#define QUEUED_BYTES_MAX (64u << 20)
/* How often a worker looks for calls to cancel; the longest it blocks on
 * its queue, which is how soon it sees the server draining; and while
 * draining, how often it looks whether it has caught up. */
#define SWEEP_MS      1000u
#define IDLE_WAIT_MS  100u
#define DRAIN_POLL_MS 1u
/* A worker in one event this long is held by its handler (shutdown_core). */
#define STUCK_MS 50u

/* Tags are slots and calls: both start with their state, which says which
 * one a tag is and what its event means. */
enum state {
    SLOT_IDLE,
    SLOT_ARMED,
    CALL_FREE,
    CALL_QUEUED,
    CALL_STREAMING,
    CALL_REPLYING,
    CALL_DEFERRED
};

struct worker;

/* A slot: one outstanding request to the core for the next call of a method. */
struct slot {
    enum state state; /* SLOT_IDLE or SLOT_ARMED */
    struct worker *worker;
    const struct server_method *method; /* NULL for the catch-all slot */
    void *registered;                   /* the core's handle for method */
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array metadata;
    grpc_call_details details; /* catch-all slot only: which method was called */
    grpc_byte_buffer *request;
};

/* A call in flight, from its arrival until its reply batch is done; one of
 * a bounded pool per worker. */
struct call {
    enum state state; /* CALL_*; the worker's alone, also while deferred */
    struct worker *worker;
    const struct server_method *method;
    grpc_call *call;
    gpr_timespec deadline;
    grpc_byte_buffer *request; /* the unary message, or a stream's next one */
    grpc_byte_buffer *response;
    int cancelled;
    bool sent_metadata;       /* a stream has sent its initial metadata */
    bool swept;               /* cancelled for taking no part (sweep) */
    uint64_t start;           /* when the call arrived, CLOCK_MONOTONIC ns */
    uint64_t due;             /* its deadline, on the same clock; UINT64_MAX: none */
    uint64_t waiting_since;   /* when its current batch started */
    int status;               /* what the call ended with, and after how long (ns): */
    uint64_t elapsed;         /* for the metrics, once it is released */
    struct queue_entry entry; /* queued: its place in the worker's queue */
    struct call *next_free;
    /* Deferred: set by the completer (server_complete) before it starts the
     * reply batch, with release; the worker acquires it once the batch is
     * done, and only then reads the reply fields the completer wrote. */
    atomic_bool completed;
    /* Deferred: when the completer started the reply, 0 before; what the
     * client's wait for it is measured from (sweep). */
    atomic_uint_fast64_t replied_at;
    struct call *next_orphan; /* a completer's failed reply, for the worker (orphans) */
};

struct worker {
    struct server *server;
    unsigned index;
    grpc_completion_queue *cq;
    struct arena *arena;
    struct slot *slots;
    size_t n_live; /* slots[0..n_live) are armed from the start, the rest at shutdown */
    size_t n_slots;
    /* Armed slots per method (index n_methods: the catch-all), read by the
     * stopping thread to tell whether calls may still wait in the core. */
    atomic_uint *armed;
    struct call *calls; /* the pool, and its free list */
    struct call *free_calls;
    size_t n_calls, n_in_use;
    struct queue *queue; /* unary calls taken in and not served yet */
    size_t max_queued_bytes;
    /* What serving one call of each method took, smoothed (1/8 of each new
     * call): what a queued call's deadline must leave room for. */
    uint64_t *serve_ns;
    uint64_t intake_since; /* when the worker last served, or began to wait */
    uint64_t intake_budget;
    size_t n_streams, max_streams;
    uint64_t next_sweep;
    atomic_size_t busy;    /* armed slots and calls in flight; at 0 (only once stopping) it exits */
    atomic_bool caught_up; /* draining: idle, with a slot armed for every method */
    atomic_uint_fast64_t event_since; /* when its current event began; 0 between events */
    /* Deferred calls whose reply batch the core refused (server_complete):
     * pushed by completers, taken by the worker, which frees them. */
    _Atomic(struct call *) orphans;
    pthread_t thread;
    bool running;
};

struct server {
    grpc_server *core;
    grpc_completion_queue *control; /* receives the shutdown notification */
    pthread_t control_thread;
    bool control_running;
    const struct server_method *methods;
    size_t n_methods;
    struct server_hooks hooks;
    void **registered; /* the core's handle per method */
    struct worker *workers;
    unsigned n_workers;
    struct metrics *metrics;
    unsigned grace_ms;
    size_t max_request_bytes; /* inflated, too (inflate.h) */
    unsigned max_calls;       /* in flight, over all workers */
    size_t max_queued_bytes;  /* request bytes queued, over all workers */
    int port;
    /* A plaintext TCP port is accepted on by the server itself (listener.h):
     * the acceptor thread hands each connection to the core. NULL when the
     * core listens (TLS, unix sockets). */
    struct listener *listener;
    grpc_server_credentials *insecure; /* what the handed connections speak */
    int stop_fd;                       /* an eventfd: readable once the acceptor must stop */
    pthread_t acceptor;
    bool acceptor_running;
    bool started;
    atomic_bool draining; /* stopping soon: workers report when caught up */
    atomic_bool stopping; /* workers stop re-arming slots */
};

/* method_index - @m's row in the table; n_methods for the catch-all. */
static size_t method_index(const struct server *srv, const struct server_method *m)
{
    return m != NULL ? (size_t)(m - srv->methods) : srv->n_methods;
}

/* ---- gRPC's own log, through ours -------------------------------------- */

/* The core logs some errors once per event any client can cause at will: a
 * failed TLS handshake logs one line per connection, so a port scan or a
 * plaintext client retrying against a TLS port would flood the log. Each
 * call site of the core (file and line) logs at most LOG_SITE_BURST lines
 * per LOG_SITE_WINDOW_S seconds; the lines it drops are counted, and the
 * count goes with the site's next line. Sites are few (a dozen seen), so
 * a small table with one lock does; a site that finds the table full is
 * not limited. */
#define LOG_SITE_BURST    5
#define LOG_SITE_WINDOW_S 10
#define LOG_SITES         64

static struct log_site {
    const char *file; /* the core's __FILE__: a static string */
    int line;
    time_t window; /* start of the current window */
    unsigned logged, dropped;
} log_sites[LOG_SITES];
static pthread_mutex_t log_sites_lock = PTHREAD_MUTEX_INITIALIZER;

/* log_site_pass - whether a line from @file:@line may be logged now; if
 * so, *@dropped receives how many from there were not since the last. */
static bool log_site_pass(const char *file, int line, unsigned *dropped)
{
    time_t now = time(NULL);
    bool pass = true;
    *dropped = 0;
    pthread_mutex_lock(&log_sites_lock);
    for (size_t i = 0; i < LOG_SITES; i++) {
        struct log_site *s = &log_sites[i];
        if (s->file == NULL)
            *s = (struct log_site){.file = file, .line = line, .window = now};
        else if (s->file != file || s->line != line)
            continue;
        if (now - s->window >= LOG_SITE_WINDOW_S) {
            s->window = now;
            s->logged = 0;
        }
        pass = s->logged < LOG_SITE_BURST;
        if (pass) {
            s->logged++;
            *dropped = s->dropped;
            s->dropped = 0;
        } else {
            s->dropped++;
        }
        break;
    }
    pthread_mutex_unlock(&log_sites_lock);
    return pass;
}

static void grpc_log(gpr_log_func_args *args)
{
    /* The core's INFO lines are its internals, not events of this daemon. */
    static const enum log_level levels[] = {
        [GPR_LOG_SEVERITY_DEBUG] = LOG_DEBUG,
        [GPR_LOG_SEVERITY_INFO] = LOG_DEBUG,
        [GPR_LOG_SEVERITY_ERROR] = LOG_ERROR,
    };
    enum log_level level = (size_t)args->severity < sizeof(levels) / sizeof(levels[0])
                               ? levels[args->severity]
                               : LOG_ERROR;
    unsigned dropped;
    if (!log_enabled(level) || !log_site_pass(args->file, args->line, &dropped))
        return;
    if (dropped > 0)
        log_msg(level, "grpc: %s (%s:%d; %u more like it dropped)", args->message, args->file,
                args->line, dropped);
    else
        log_msg(level, "grpc: %s (%s:%d)", args->message, args->file, args->line);
}

/* ---- slots: waiting for calls -------------------------------------------- */

/* arm - ask the core for the slot's next call. */
static void arm(struct slot *s)
{
    struct worker *w = s->worker;
    grpc_server *core = w->server->core;
    grpc_call_error rc;

    s->call = NULL;
    s->request = NULL;
    grpc_metadata_array_init(&s->metadata);
    if (s->method == NULL) {
        grpc_call_details_init(&s->details);
        rc = grpc_server_request_call(core, &s->call, &s->details, &s->metadata, w->cq, w->cq, s);
    } else {
        /* A stream's messages are read one by one; a unary call's only
         * message comes with the call. */
        rc = grpc_server_request_registered_call(
            core, s->registered, &s->call, &s->deadline, &s->metadata,
            s->method->stream ? NULL : &s->request, w->cq, w->cq, s);
    }
    if (rc == GRPC_CALL_OK) {
        s->state = SLOT_ARMED;
        atomic_fetch_add(&w->busy, 1);
        atomic_fetch_add(&w->armed[method_index(w->server, s->method)], 1);
        return;
    }
    grpc_metadata_array_destroy(&s->metadata);
    if (s->method == NULL)
        grpc_call_details_destroy(&s->details);
    /* The core refuses a request only for a bug of ours: the slot stays
     * idle, and a worker left with none exits rather than wait forever. */
    log_error("failed to request a call on worker %u (grpc_call_error %d)", w->index, (int)rc);
}

/* disarm - the slot's request completed: it holds nothing of the core's. */
static void disarm(struct slot *s)
{
    struct worker *w = s->worker;
    grpc_metadata_array_destroy(&s->metadata);
    if (s->method == NULL)
        grpc_call_details_destroy(&s->details);
    s->state = SLOT_IDLE;
    atomic_fetch_sub(&w->armed[method_index(w->server, s->method)], 1);
    atomic_fetch_sub(&w->busy, 1);
}

/* ---- calls: admission ----------------------------------------------------- */

static uint64_t now_ns(void)
{
    return (uint64_t)clock_ns();
}

/* deadline_at - @deadline on our clock (now_ns, which is @now): the core's
 * monotonic clock counts from its own start. UINT64_MAX for none; a
 * deadline already passed gives a time before @now. */
static uint64_t deadline_at(gpr_timespec deadline, uint64_t now)
{
    if (gpr_time_cmp(deadline, gpr_inf_future(deadline.clock_type)) == 0)
        return UINT64_MAX;
    gpr_timespec left = gpr_time_sub(gpr_convert_clock_type(deadline, GPR_CLOCK_MONOTONIC),
                                     gpr_now(GPR_CLOCK_MONOTONIC));
    int64_t ns = left.tv_sec * 1000000000 + left.tv_nsec;
    if (ns >= 0)
        return (uint64_t)ns < UINT64_MAX - now ? now + (uint64_t)ns : UINT64_MAX - 1;
    return (uint64_t)-ns < now ? now - (uint64_t)-ns : 0;
}

/* take_call - a free call object of @w for a call of @method, or NULL when
 * the worker has MAX of them in flight (streams: their share). */
static struct call *take_call(struct worker *w, const struct server_method *method)
{
    struct call *c = w->free_calls;
    if (c == NULL || (method->stream && w->n_streams >= w->max_streams))
        return NULL;
    w->free_calls = c->next_free;
    w->n_in_use++;
    w->n_streams += method->stream;
    atomic_fetch_add(&w->busy, 1);
    return c;
}

static void put_call(struct call *c)
{
    struct worker *w = c->worker;
    w->n_in_use--;
    w->n_streams -= c->method->stream;
    c->state = CALL_FREE;
    c->next_free = w->free_calls;
    w->free_calls = c;
    atomic_fetch_sub(&w->busy, 1);
}

/* refuse - end a call that just arrived, without a call object: the
 * status goes out as trailers on the core's own (grpc_call_cancel_with_status
 * takes no batch and no tag), so refusing costs no slot, no memory held
 * after this returns, and a small fraction of serving. */
static void refuse(struct worker *w, grpc_call *call, const grpc_slice *path, size_t method,
                   grpc_status_code status, const char *why, uint64_t start)
{
    log_debug("call refused method=%.*s status=%s (%s)", (int)GRPC_SLICE_LENGTH(*path),
              (const char *)GRPC_SLICE_START_PTR(*path), err_status_name(status), why);
    grpc_call_cancel_with_status(call, status, why, NULL);
    grpc_call_unref(call);
    metrics_record(w->server->metrics, w->index, method, status, now_ns() - start);
}

static void serve(struct call *c);
static void stream_next(struct call *c, const struct server_reply *reply);

/* ---- calls: the queue ------------------------------------------------------ */

/* refuse_queued - end queued call @c without serving it (see refuse). */
static void refuse_queued(struct call *c, grpc_status_code status, const char *why)
{
    struct worker *w = c->worker;
    grpc_slice path = grpc_slice_from_static_string(c->method->path);
    refuse(w, c->call, &path, method_index(w->server, c->method), status, why, c->start);
    if (c->request != NULL)
        grpc_byte_buffer_destroy(c->request);
    put_call(c);
}

static struct call *call_of(struct queue_entry *e)
{
    return (struct call *)((char *)e - offsetof(struct call, entry));
}

/* evict - make room: refuse the victim the queue picks (queue_victim).
 * Returns whether there was one. */
static bool evict(struct worker *w)
{
    struct queue_entry *e = queue_victim(w->queue);
    if (e == NULL)
        return false;
    refuse_queued(call_of(e), GRPC_STATUS_RESOURCE_EXHAUSTED, "overloaded: too many calls queued");
    return true;
}

/* expire - refuse the queued calls whose time is up (queue.h, rule 3), at
 * most EXPIRE_MAX. */
static void expire(struct worker *w, uint64_t now)
{
    struct queue_entry *e;
    for (unsigned i = 0; i < EXPIRE_MAX && (e = queue_expired(w->queue, now)) != NULL; i++) {
        struct call *c = call_of(e);
        if (c->due != UINT64_MAX)
            refuse_queued(c, GRPC_STATUS_DEADLINE_EXCEEDED,
                          "deadline cannot be met: too many calls queued");
        else
            refuse_queued(c, GRPC_STATUS_RESOURCE_EXHAUSTED,
                          "overloaded: queued for " QUEUED_MAX_TEXT);
    }
}

/* serve_next - serve the call the queue puts next, once the expired ones
 * are refused; then measure it, for the deadlines of the calls after it
 * and for the worker's next intake. */
static void serve_next(struct worker *w, uint64_t now)
{
    expire(w, now);
    struct queue_entry *e = queue_next(w->queue, now);
    if (e != NULL) {
        struct call *c = call_of(e);
        size_t m = method_index(w->server, c->method);
        uint64_t begin = now_ns();
        serve(c);
        now = now_ns();
        uint64_t took = now - begin;
        w->serve_ns[m] = w->serve_ns[m] - w->serve_ns[m] / 8 + took / 8;
        w->intake_budget = took > INTAKE_MIN_NS ? took : INTAKE_MIN_NS;
    }
    w->intake_since = now;
}

/* The arrival of a call, as admit judges it. */
struct arrival {
    const struct server_method *method; /* NULL: not a method of ours */
    size_t index;                       /* its row in the metrics */
    uint64_t start, due;                /* now_ns; its deadline (deadline_at) */
    uint64_t margin;                    /* what its deadline must leave, at least */
    size_t bytes;                       /* its request message */
    bool queued;                        /* a unary call that waits its turn */
};

/* admit - a call object for arrival @a, or NULL with the status and the
 * reason to refuse it with in *@status and *@why. Refused, before any
 * work: an unknown method, a call whose deadline has passed or leaves less
 * than serving its method takes, one for which neither the worker's pool
 * nor its queue's bytes have room even once queued calls are evicted. */
static struct call *admit(struct worker *w, const struct arrival *a, grpc_status_code *status,
                          const char **why)
{
    *status = GRPC_STATUS_RESOURCE_EXHAUSTED;
    if (a->method == NULL) {
        *status = GRPC_STATUS_UNIMPLEMENTED;
        *why = "unknown method";
        return NULL;
    }
    if (a->due <= a->start || a->due - a->start < a->margin) {
        *status = GRPC_STATUS_DEADLINE_EXCEEDED;
        *why = a->due <= a->start ? "deadline passed before the call was served"
                                  : "deadline too close to serve the call";
        return NULL;
    }
    /* Room for a queued call: evict queued ones while the pool or the
     * queue's bytes would overflow. */
    while (a->queued &&
           (w->free_calls == NULL || queue_bytes(w->queue) + a->bytes > w->max_queued_bytes) &&
           evict(w))
        ;
    if (a->queued && queue_bytes(w->queue) + a->bytes > w->max_queued_bytes) {
        *why = "overloaded: too many request bytes queued";
        return NULL;
    }
    struct call *c = take_call(w, a->method);
    if (c == NULL)
        *why = a->method->stream ? "too many streams in flight" : "too many calls in flight";
    return c;
}

/* on_arrival - a call arrived on slot @s (or, with !success, the server is
 * shutting down and the slot is returned unused). The call moves to a call
 * object and the slot asks for the next one at once, so no call, however
 * slow its client, keeps the slot from taking new ones; or it is refused
 * at once (admit). */
static void on_arrival(struct slot *s, bool success)
{
    struct worker *w = s->worker;
    grpc_call *call = s->call;
    grpc_byte_buffer *request = s->request;
    gpr_timespec deadline = s->deadline;
    struct arrival a = {.method = s->method,
                        .index = method_index(w->server, s->method),
                        .start = now_ns(),
                        .bytes = request != NULL ? grpc_byte_buffer_length(request) : 0};
    grpc_slice path = a.method != NULL ? grpc_slice_from_static_string(a.method->path)
                                       : grpc_slice_ref(s->details.method);
    disarm(s);
    if (!success) {
        grpc_slice_unref(path);
        return;
    }
    if (!atomic_load(&w->server->stopping))
        arm(s);

    if (a.method != NULL) {
        a.queued = !a.method->stream && !a.method->urgent;
        a.due = deadline_at(deadline, a.start);
        a.margin =
            w->serve_ns[a.index] > DEADLINE_SLACK_NS ? w->serve_ns[a.index] : DEADLINE_SLACK_NS;
    }
    grpc_status_code status;
    const char *why;
    struct call *c = admit(w, &a, &status, &why);
    if (c == NULL)
        refuse(w, call, &path, a.index, status, why, a.start);
    grpc_slice_unref(path);
    if (c == NULL) {
        if (request != NULL)
            grpc_byte_buffer_destroy(request);
        return;
    }
    *c = (struct call){.state = CALL_FREE,
                       .worker = w,
                       .method = a.method,
                       .call = call,
                       .request = request,
                       .start = a.start,
                       .deadline = deadline};
    if (a.method->stream) {
        stream_next(c, NULL);
    } else if (a.queued) {
        /* The one allocation on the way in: the core hands the peer out
         * only as a fresh copy, and the connection has no other name in
         * its API (a few dozen bytes, against the core's kilobytes a call). */
        char *peer = grpc_call_get_peer(call);
        c->state = CALL_QUEUED;
        c->due = a.due;
        queue_push(w->queue, &c->entry, queue_key(peer), a.bytes, a.start,
                   a.due != UINT64_MAX ? a.due - a.margin : a.start + QUEUED_MAX_NS,
                   a.due != UINT64_MAX);
        gpr_free(peer);
    } else {
        serve(c);
    }
}

/* ---- calls: answering ----------------------------------------------------- */

/* read_request - the request message, copied into the arena as one block;
 * a compressed one inflated there, up to @max bytes (inflate.h). */
static int read_request(grpc_byte_buffer *bb, size_t max, struct arena *a, const uint8_t **data,
                        size_t *len)
{
    if (bb->type == GRPC_BB_RAW && bb->data.raw.compression != GRPC_COMPRESS_NONE)
        return inflate_message(bb->data.raw.compression, bb->data.raw.slice_buffer.slices,
                               bb->data.raw.slice_buffer.count, max, a, data, len);
    grpc_byte_buffer_reader r;
    if (!grpc_byte_buffer_reader_init(&r, bb))
        return ERR_INVALID;
    size_t n = grpc_byte_buffer_length(r.buffer_out);
    uint8_t *buf = arena_alloc(a, n > 0 ? n : 1);
    if (buf == NULL) {
        grpc_byte_buffer_reader_destroy(&r);
        return -ENOMEM;
    }
    size_t off = 0;
    grpc_slice *slice;
    while (grpc_byte_buffer_reader_peek(&r, &slice)) {
        memcpy(buf + off, GRPC_SLICE_START_PTR(*slice), GRPC_SLICE_LENGTH(*slice));
        off += GRPC_SLICE_LENGTH(*slice);
    }
    grpc_byte_buffer_reader_destroy(&r);
    *data = buf;
    *len = off;
    return 0;
}

/* answer - decide the reply to call @c's request message. */
static void answer(struct call *c, struct server_reply *reply)
{
    struct worker *w = c->worker;
    if (c->request == NULL) {
        reply->status = GRPC_STATUS_INVALID_ARGUMENT;
        reply->details = "request message missing";
        return;
    }
    struct server_call call = {.method = c->method,
                               .worker = w->index,
                               .arena = w->arena,
                               .metrics = w->server->metrics,
                               .self = (struct server_deferred *)c};
    int rc =
        read_request(c->request, w->server->max_request_bytes, w->arena, &call.data, &call.len);
    /* Copied into the arena (or found bad): the core's buffer can go now,
     * not when the reply is done, which a slow client may put off. */
    grpc_byte_buffer_destroy(c->request);
    c->request = NULL;
    if (rc != 0) {
        reply->status = err_status(rc);
        reply->details = rc == ERR_INVALID   ? "request message cannot be decompressed"
                         : rc == ERR_TOO_BIG ? "decompressed request exceeds the size limit"
                                             : err_strerror(rc);
        return;
    }
    c->method->handler(&call, reply);
}

static void log_failure(const struct call *c, const struct server_reply *reply)
{
    log_debug("call failed method=%s status=%s (%s)", c->method->path,
              err_status_name(reply->status), reply->details != NULL ? reply->details : "");
}

/* settle - call @c ends with @status, handled in the time from its
 * arrival until now; counted once it is released (on_replied). */
static void settle(struct call *c, int status)
{
    c->status = status;
    c->elapsed = now_ns() - c->start;
}

/* send_message - @op sends @reply's message, copied into a buffer the call
 * holds until the batch is done (the core may keep it past the call). */
static void send_message(struct call *c, const struct server_reply *reply, grpc_op *op)
{
    grpc_slice body = grpc_slice_from_copied_buffer((const char *)reply->data, reply->len);
    c->response = grpc_raw_byte_buffer_create(&body, 1);
    grpc_slice_unref(body);
    op->op = GRPC_OP_SEND_MESSAGE;
    op->data.send_message.send_message = c->response;
}

static void on_replied(struct call *c, bool success);

/* start_batch - start @ops on call @c, now waiting on its client in @state. */
static void start_batch(struct call *c, const grpc_op *ops, size_t n, enum state state)
{
    c->state = state;
    c->waiting_since = now_ns();
    grpc_call_error rc = grpc_call_start_batch(c->call, ops, n, c, NULL);
    /* Everything the call used from the arena has been copied by now. */
    arena_reset(c->worker->arena);
    if (rc != GRPC_CALL_OK) {
        /* The batch will never complete: clean up as if it had failed. */
        log_error("failed to start a batch (grpc_call_error %d)", (int)rc);
        grpc_call_cancel(c->call, NULL);
        settle(c, GRPC_STATUS_CANCELLED);
        on_replied(c, false);
    }
}

/* reply_ops - the batch that ends call @c, in @ops (room for REPLY_OPS),
 * their number returned: the initial metadata unless a stream sent it
 * already, @reply's message if @message and the status is OK, the status,
 * and the wait for the client's close. The status text goes to *@details,
 * for the caller to release once the batch is started. It writes only the
 * reply's fields of @c (response, status, elapsed) and nothing of the
 * worker's, so a deferred call's completer runs it too. */
#define REPLY_OPS 4
static size_t reply_ops(struct call *c, const struct server_reply *reply, bool message,
                        grpc_op *ops, grpc_slice *details)
{
    memset(ops, 0, REPLY_OPS * sizeof(*ops));
    size_t n = 0;
    if (!c->sent_metadata)
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (reply->status == GRPC_STATUS_OK && message)
        send_message(c, reply, &ops[n++]);
    else if (reply->status != GRPC_STATUS_OK)
        log_failure(c, reply);
    *details =
        reply->details != NULL ? grpc_slice_from_copied_string(reply->details) : grpc_empty_slice();
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = (grpc_status_code)reply->status;
    ops[n++].data.send_status_from_server.status_details = reply->details != NULL ? details : NULL;
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
    settle(c, reply->status);
    return n;
}

/* finish - end call @c with one batch (reply_ops), on its worker. */
static void finish(struct call *c, const struct server_reply *reply, bool message)
{
    grpc_op ops[REPLY_OPS];
    grpc_slice details;
    size_t n = reply_ops(c, reply, message, ops, &details);
    start_batch(c, ops, n, CALL_REPLYING);
    grpc_slice_unref(details);
}

/* serve - a unary call: its handler, then its one reply batch, unless
 * the handler deferred it (server_defer). */
static void serve(struct call *c)
{
    struct server_reply reply = {.status = GRPC_STATUS_OK};
    answer(c, &reply);
    if (c->state == CALL_DEFERRED) {
        /* The reply is server_complete's, which copies everything it
         * sends: nothing of the handler's in the arena is needed any more
         * (start_batch resets it for the other calls). */
        arena_reset(c->worker->arena);
        return;
    }
    finish(c, &reply, true);
}

struct server_deferred *server_defer(const struct server_call *call)
{
    struct call *c = (struct call *)call->self;
    if (c->method->stream)
        return NULL;
    assert(c->state != CALL_DEFERRED && "server_defer twice for one call");
    /* Read by serve once the handler returns, and by sweep, both on this
     * thread; the completer never writes the state (see the top). */
    c->state = CALL_DEFERRED;
    return call->self;
}

/* orphan - deferred call @c will get no completion: the core refused its
 * reply batch. The worker frees it (on_replied) when it next goes round
 * its loop, at most IDLE_WAIT_MS away: the call object and the metrics are
 * the worker's, and the push's release pairs with the worker's acquire. */
static void orphan(struct call *c)
{
    struct worker *w = c->worker;
    struct call *head = atomic_load_explicit(&w->orphans, memory_order_relaxed);
    do
        c->next_orphan = head;
    while (!atomic_compare_exchange_weak_explicit(&w->orphans, &head, c, memory_order_release,
                                                  memory_order_relaxed));
}

/* adopt_orphans - free the deferred calls whose reply never started. */
static void adopt_orphans(struct worker *w)
{
    struct call *c = atomic_exchange_explicit(&w->orphans, NULL, memory_order_acquire);
    while (c != NULL) {
        struct call *next = c->next_orphan;
        on_replied(c, false);
        c = next;
    }
}

void server_complete(struct server_deferred *d, const struct server_reply *reply)
{
    struct call *c = (struct call *)d;
    grpc_call *call = c->call;
    grpc_op ops[REPLY_OPS];
    grpc_slice details;
    size_t n = reply_ops(c, reply, true, ops, &details);
    atomic_store_explicit(&c->replied_at, now_ns(), memory_order_relaxed);
    atomic_store_explicit(&c->completed, true, memory_order_release);
    /* Once the batch is started the worker may free @c at any moment:
     * nothing of it is touched after, unless the core refused the batch,
     * which then never completes and leaves @c to us. */
    grpc_call_error rc = grpc_call_start_batch(call, ops, n, c, NULL);
    if (rc != GRPC_CALL_OK) {
        log_error("failed to start a deferred reply (grpc_call_error %d)", (int)rc);
        grpc_call_cancel(call, NULL);
        settle(c, GRPC_STATUS_CANCELLED);
        orphan(c);
    }
    grpc_slice_unref(details);
}

/* stream_next - send @reply's message, if any (after the initial metadata,
 * the first time), and ask for the client's next message, in one batch. */
static void stream_next(struct call *c, const struct server_reply *reply)
{
    grpc_op ops[3];
    memset(ops, 0, sizeof(ops));
    size_t n = 0;
    if (!c->sent_metadata)
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    c->sent_metadata = true;
    if (reply != NULL)
        send_message(c, reply, &ops[n++]);
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n++].data.recv_message.recv_message = &c->request;
    start_batch(c, ops, n, CALL_STREAMING);
}

/* on_streamed - a stream's batch is done: the client sent its next message
 * (answer it, then read on), or closed its side (end with OK), or the call
 * broke (cancelled, deadline, connection lost: clean up). */
static void on_streamed(struct call *c, bool success)
{
    if (c->response != NULL) {
        grpc_byte_buffer_destroy(c->response);
        c->response = NULL;
    }
    if (!success) {
        settle(c, GRPC_STATUS_CANCELLED);
        on_replied(c, false);
        return;
    }
    struct server_reply reply = {.status = GRPC_STATUS_OK};
    if (c->request == NULL) {
        finish(c, &reply, false);
        return;
    }
    answer(c, &reply);
    if (reply.status != GRPC_STATUS_OK)
        finish(c, &reply, false);
    else
        stream_next(c, &reply);
}

/* on_replied - the reply batch of call @c is done (sent, or the call was
 * cancelled): count the call and free it. A call the client cancelled
 * counts as CANCELLED whatever was answered: the client did not take the
 * answer (a stream it gave up on can even look like a normal end to the
 * server). */
static void on_replied(struct call *c, bool success)
{
    (void)success; /* a failed batch means a cancelled call: the same cleanup */
    struct worker *w = c->worker;
    /* A deferred call's reply fields were written by its completer: this
     * acquire pairs with server_complete's release. */
    if (c->state == CALL_DEFERRED && !atomic_load_explicit(&c->completed, memory_order_acquire))
        assert(!"a deferred call done before server_complete");
    metrics_record(w->server->metrics, w->index, method_index(w->server, c->method),
                   c->cancelled ? GRPC_STATUS_CANCELLED : c->status, c->elapsed);
    if (c->request != NULL)
        grpc_byte_buffer_destroy(c->request);
    if (c->response != NULL)
        grpc_byte_buffer_destroy(c->response);
    grpc_call_unref(c->call);
    put_call(c);
}

/* Every tag is a slot or a call, both starting with their state. */
static void on_event(void *tag, bool success)
{
    switch (*(const enum state *)tag) {
    case SLOT_ARMED:
        on_arrival(tag, success);
        return;
    case CALL_STREAMING:
        on_streamed(tag, success);
        return;
    case CALL_REPLYING:
    case CALL_DEFERRED:
        on_replied(tag, success);
        return;
    default:
        assert(!"an event for an idle slot or a free call");
    }
}

/* ---- calls: clients that stop taking part --------------------------------- */

/* sweep - cancel the calls of @w whose client stopped taking part: a reply
 * not taken (the client grants no flow-control window, or does not read
 * its socket) or a stream without a next message. Cancelling completes
 * their batch with failure, which frees the call object (on_replied): a
 * client that never reads costs a call object for a bounded time, never
 * a slot. The wait allowed for a reply shrinks once half the worker's call
 * objects are taken, so that such clients cannot hold the bound reached.
 * It reads the clock itself: a call served since the caller read it has
 * begun its wait after that time, and against it would seem to have
 * waited for ever (an unsigned difference), and be cancelled.
 * A deferred call waits for its completer, not its client, until the
 * completer starts its reply (replied_at): never cancelled before. */
static void sweep(struct worker *w)
{
    uint64_t now = now_ns();
    uint64_t reply_wait = (w->n_in_use * 2 > w->n_calls ? REPLY_WAIT_PRESSED_MS : REPLY_WAIT_MS);
    for (size_t i = 0; i < w->n_calls; i++) {
        struct call *c = &w->calls[i];
        uint64_t wait_ms = c->state == CALL_REPLYING || c->state == CALL_DEFERRED ? reply_wait
                           : c->state == CALL_STREAMING                           ? STREAM_WAIT_MS
                                                                                  : 0;
        /* A completer's clock reading may be later than ours. */
        uint64_t since = c->state == CALL_DEFERRED
                             ? atomic_load_explicit(&c->replied_at, memory_order_relaxed)
                             : c->waiting_since;
        if (wait_ms == 0 || since == 0 || since > now || c->swept ||
            now - since < wait_ms * 1000000u)
            continue;
        c->swept = true;
        log_debug("cancelling a call of %s: its client took no part for %llu ms", c->method->path,
                  (unsigned long long)wait_ms);
        grpc_call_cancel(c->call, NULL);
    }
    w->next_sweep = now + SWEEP_MS * 1000000u;
}

/* ---- workers ------------------------------------------------------------- */

/* armed_everywhere - whether @w has a slot armed for every method. */
static bool armed_everywhere(const struct worker *w)
{
    for (size_t m = 0; m <= w->server->n_methods; m++)
        if (atomic_load(&w->armed[m]) == 0)
            return false;
    return true;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    const struct server_hooks *hooks = &w->server->hooks;
    if (hooks->thread_start != NULL)
        hooks->thread_start(hooks->arg);
    for (size_t i = 0; i < w->n_live; i++)
        arm(&w->slots[i]);
    w->next_sweep = now_ns() + SWEEP_MS * 1000000u;
    for (;;) {
        adopt_orphans(w);
        if (atomic_load(&w->busy) == 0)
            grpc_completion_queue_shutdown(w->cq);
        /* With calls queued, only look for events (gpr_inf_past: do not
         * wait) and serve once none is waiting or the intake's time is
         * up; otherwise wait for one. */
        bool backlog = queue_length(w->queue) > 0;
        /* Draining, a worker reports when it has caught up: its queue ran
         * empty while it had a slot armed for every method and no call
         * queued, so no call of any method can be waiting in the core
         * unmatched (the core matches a call at once while any queue has a
         * slot for it). Checked before the wait: an event arriving after
         * the check ends the wait. */
        bool draining = atomic_load(&w->server->draining);
        bool ready = draining && !backlog && armed_everywhere(w);
        gpr_timespec until =
            backlog ? gpr_inf_past(GPR_CLOCK_MONOTONIC)
                    : gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                   gpr_time_from_millis(draining ? DRAIN_POLL_MS : IDLE_WAIT_MS,
                                                        GPR_TIMESPAN));
        grpc_event ev = grpc_completion_queue_next(w->cq, until, NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        atomic_store(&w->caught_up, ev.type == GRPC_QUEUE_TIMEOUT && ready);
        if (ev.type == GRPC_OP_COMPLETE) {
            atomic_store_explicit(&w->event_since, now_ns(), memory_order_relaxed);
            on_event(ev.tag, ev.success != 0);
            atomic_store_explicit(&w->event_since, 0, memory_order_relaxed);
        }
        uint64_t now = now_ns();
        if (!backlog)
            w->intake_since = now;
        if (queue_length(w->queue) > 0 &&
            (ev.type == GRPC_QUEUE_TIMEOUT || now - w->intake_since >= w->intake_budget))
            serve_next(w, now);
        if (now >= w->next_sweep)
            sweep(w);
    }
    if (hooks->thread_stop != NULL)
        hooks->thread_stop(hooks->arg);
    return NULL;
}

/* worker_init - queue, arena, slots and calls of worker @index:
 * SLOTS_PER_METHOD per method, the catch-all slot, then DRAIN_SLOTS spares
 * per method; its share of the server's calls in flight. */
static int worker_init(struct server *srv, unsigned index)
{
    struct worker *w = &srv->workers[index];
    size_t live = srv->n_methods * SLOTS_PER_METHOD;
    w->server = srv;
    w->index = index;
    w->n_live = live + 1;
    w->n_slots = w->n_live + srv->n_methods * DRAIN_SLOTS;
    w->n_calls = (srv->max_calls + srv->n_workers - 1) / srv->n_workers;
    w->max_streams = w->n_calls / STREAM_SHARE_DIV > 0 ? w->n_calls / STREAM_SHARE_DIV : 1;
    atomic_init(&w->busy, 0);
    atomic_init(&w->caught_up, false);
    atomic_init(&w->event_since, 0);
    atomic_init(&w->orphans, NULL);
    w->slots = calloc(w->n_slots, sizeof(*w->slots));
    w->calls = calloc(w->n_calls, sizeof(*w->calls));
    w->armed = calloc(srv->n_methods + 1, sizeof(*w->armed));
    w->serve_ns = calloc(srv->n_methods + 1, sizeof(*w->serve_ns));
    w->intake_budget = INTAKE_MIN_NS;
    w->cq = grpc_completion_queue_create_for_next(NULL);
    int rc = arena_create(ARENA_BLOCK, &w->arena);
    if (rc == 0)
        rc = queue_create(w->n_calls, &w->queue);
    if (w->slots == NULL || w->calls == NULL || w->armed == NULL || w->serve_ns == NULL ||
        w->cq == NULL || rc != 0)
        return -ENOMEM;
    for (size_t m = 0; m <= srv->n_methods; m++)
        atomic_init(&w->armed[m], 0);
    for (size_t i = 0; i < w->n_slots; i++) {
        struct slot *s = &w->slots[i];
        s->worker = w;
        if (i == live)
            continue; /* the catch-all slot has no method */
        size_t m = i < live ? i / SLOTS_PER_METHOD : (i - w->n_live) / DRAIN_SLOTS;
        s->method = &srv->methods[m];
        s->registered = srv->registered[m];
    }
    w->max_queued_bytes = srv->max_queued_bytes / srv->n_workers;
    for (size_t i = w->n_calls; i-- > 0;) {
        w->calls[i].worker = w;
        w->calls[i].next_free = w->free_calls;
        w->free_calls = &w->calls[i];
    }
    grpc_server_register_completion_queue(srv->core, w->cq, NULL);
    return 0;
}

/* control_main - wait for the shutdown notification (see the top of the file). */
static void *control_main(void *arg)
{
    struct server *srv = arg;
    grpc_completion_queue_next(srv->control, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    return NULL;
}

/* drain_queue - shut a queue down and consume what is left on it. */
static void drain_queue(grpc_completion_queue *cq)
{
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
}

/* ---- start and stop ------------------------------------------------------ */

/* credentials - TLS with the configured certificate (and, with a client
 * CA, mutual TLS), or plaintext. Whether key and certificate match is
 * checked by the core when the port is added (bind_port). */
static int credentials(const struct config *cfg, grpc_server_credentials **out, struct err *e)
{
    bool cert = cfg->tls_cert[0] != '\0', key = cfg->tls_key[0] != '\0';
    bool client_ca = cfg->tls_client_ca[0] != '\0';
    if (!cert && !key && !client_ca) {
        *out = grpc_insecure_server_credentials_create();
        return 0;
    }
    if (!cert || !key)
        return err_set(e, ERR_INVALID, "--tls-cert and --tls-key go together%s",
                       client_ca ? ", and --tls-client-ca needs both" : "");
    char *chain = NULL, *private_key = NULL, *roots = NULL;
    int rc = pem_read(cfg->tls_cert, "TLS certificate", &chain, e);
    if (rc == 0)
        rc = pem_read(cfg->tls_key, "TLS key", &private_key, e);
    if (rc == 0 && client_ca)
        rc = pem_read(cfg->tls_client_ca, "TLS client CA", &roots, e);
    if (rc == 0) {
        grpc_ssl_pem_key_cert_pair pair = {private_key, chain};
        *out = grpc_ssl_server_credentials_create_ex(
            roots, &pair, 1,
            client_ca ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                      : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
            NULL);
        if (*out == NULL)
            rc = err_set(e, ERR_INVALID, "gRPC refused the TLS certificate or key");
    }
    pem_free(chain);
    pem_free(private_key);
    pem_free(roots);
    return rc;
}

/* The listen backlog of a port the server accepts on itself: what the
 * kernel queues while the acceptor hands connections over. */
#define LISTEN_BACKLOG 1024
/* Connections accepted from one socket before looking at the others. */
#define ACCEPT_BATCH 64

static void *acceptor_main(void *arg)
{
    struct server *srv = arg;
    struct pollfd p[1 + LISTENER_MAX_FDS];
    p[0] = (struct pollfd){.fd = srv->stop_fd, .events = POLLIN};
    size_t n = 1 + listener_poll(srv->listener, p + 1);
    for (;;) {
        if (poll(p, n, -1) < 0) {
            if (errno == EINTR)
                continue;
            log_error("failed to wait for connections (%s); the port is closed", strerror(errno));
            break;
        }
        if (p[0].revents != 0)
            break;
        for (size_t i = 1; i < n; i++) {
            for (unsigned k = 0; p[i].revents != 0 && k < ACCEPT_BATCH; k++) {
                int fd = listener_accept(srv->listener, p[i].fd);
                if (fd == -EAGAIN)
                    break;
                if (fd >= 0)
                    grpc_server_add_channel_from_fd(srv->core, fd, srv->insecure);
            }
        }
    }
    return NULL;
}

/* own_port - whether the server accepts on @cfg's port itself: a TCP
 * port without TLS (the core takes connections from a descriptor only
 * for plaintext). */
static bool own_port(const struct config *cfg)
{
    return cfg->tls_cert[0] == '\0' && cfg->tls_key[0] == '\0' && cfg->tls_client_ca[0] == '\0' &&
           strncmp(cfg->listen, "unix:", 5) != 0 && strncmp(cfg->listen, "unix-abstract:", 14) != 0;
}

static int start_acceptor(struct server *srv, struct err *e)
{
    srv->stop_fd = eventfd(0, EFD_CLOEXEC);
    if (srv->stop_fd < 0)
        return err_set(e, -errno, "cannot create an eventfd (%s)", strerror(errno));
    int rc = -pthread_create(&srv->acceptor, NULL, acceptor_main, srv);
    if (rc != 0)
        return err_set(e, rc, "cannot start the acceptor thread (%s)", strerror(-rc));
    srv->acceptor_running = true;
    return 0;
}

/* stop_accepting - no new connection from now on. */
static void stop_accepting(struct server *srv)
{
    if (srv->acceptor_running) {
        uint64_t one = 1;
        if (write(srv->stop_fd, &one, sizeof(one)) == sizeof(one))
            pthread_join(srv->acceptor, NULL);
        else
            log_error("failed to stop the acceptor thread (%s)", strerror(errno));
        srv->acceptor_running = false;
    }
    listener_close(srv->listener);
    srv->listener = NULL;
}

static int bind_port(struct server *srv, const struct config *cfg, struct err *e)
{
    if (own_port(cfg)) {
        srv->insecure = grpc_insecure_server_credentials_create();
        int rc = listener_open(cfg->listen, "gRPC", LISTEN_BACKLOG, cfg->max_connections,
                               &srv->listener, e);
        if (rc == 0)
            srv->port = listener_port(srv->listener);
        return rc;
    }
    grpc_server_credentials *creds = NULL;
    int rc = credentials(cfg, &creds, e);
    if (rc != 0)
        return rc;
    srv->port = grpc_server_add_http2_port(srv->core, cfg->listen, creds);
    grpc_server_credentials_release(creds);
    if (srv->port == 0)
        return err_set(e, ERR_INVALID,
                       "cannot listen on %s: the address is malformed, not local, "
                       "or in use%s",
                       cfg->listen,
                       cfg->tls_cert[0] != '\0' ? ", or the TLS key does not match the "
                                                  "certificate (gRPC's error above says which)"
                                                : "");
    return 0;
}

/* Connection settings, with the reasons for the defaults of config.c:
 * - at most --max-concurrent-streams streams per connection: 4 per worker
 *   thread, at least 8 (config_streams). This is the cheapest shedding
 *   there is: a client with more calls in flight queues the rest itself
 *   (every gRPC client does), where its own deadlines govern them at no
 *   cost to the daemon, while each call the daemon takes in and refuses
 *   costs about 25 us of its CPU (grpc_call_cancel_with_status, a write
 *   each). Measured by bench/overload (2 cores, 10^5 items, 64
 *   connections asked 5x the capacity with 50 ms deadlines): 32 streams,
 *   0.24 of the capacity answered OK in time; 8 streams, 0.44-0.59; 4
 *   streams, 0.53. Four per worker still let one connection keep every
 *   worker busy: two in flight per worker already hide the round trip.
 * - about --max-connections (1024) connections: every open stream costs
 *   the core about 14 KB (measured: 500 connections x 100 streams held
 *   700 MB), and gRPC 1.51 has no bound on streams in all, so streams per
 *   connection and connections are the bound: 8 x 1024 streams at the
 *   defaults on 2 threads, about 115 MB.
 * - keepalive pings after --keepalive-seconds (60) of silence, dropped
 *   after --keepalive-timeout-seconds (20, gRPC's own default) without an
 *   answer: a client host that vanished without closing leaves no
 *   connection, and no calls, held for the ~15 minutes TCP would take.
 * - --max-connection-idle-seconds (300): a connection without calls that
 *   long is closed with GOAWAY; leaked connections do not pile up, and a
 *   client that wants one reconnects on its next call.
 * - --max-connection-age-seconds (300) with --max-connection-age-grace-
 *   seconds (30): behind a Kubernetes Service (L4), a client's connection
 *   stays with one replica for its whole life, so new replicas would get
 *   nothing from long-lived clients; every connection is closed at that
 *   age (gRPC adds +-10% jitter), its calls given the grace to finish.
 * - clients may ping every 10 s, also between calls: the core's default
 *   (5 minutes, not without calls) would answer GOAWAY "too_many_pings"
 *   to the 10-60 s keepalive that clients behind load balancers set. */
#define CLIENT_PING_MIN_MS 10000
#define MAX_METADATA_BYTES (64 << 10)

static int create_core(struct server *srv, const struct config *cfg, struct err *e)
{
    /* gRPC takes 0 as "ping at once", and INT_MAX as never. */
    int never = 0x7fffffff;
#define MS_OR_NEVER(ms)  ((ms) > 0 ? (int)(ms) : never)
#define INT_ARG(name, v) {.type = GRPC_ARG_INTEGER, .key = (char *)(name), .value.integer = (v)}
    grpc_arg args_array[] = {
        INT_ARG(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, (int)cfg->max_request_bytes),
        /* gRPC sets SO_REUSEPORT by default: a second daemon on the same
         * port would then start and silently take half the traffic. */
        INT_ARG(GRPC_ARG_ALLOW_REUSEPORT, 0),
        /* Compressed requests arrive as they were sent and are inflated by
         * read_request within the size limit (inflate.h). */
        INT_ARG(GRPC_ARG_ENABLE_PER_MESSAGE_DECOMPRESSION, 0),
        /* Request headers up to 64 KiB, as Envoy allows (the core's 8 KiB
         * refuses real tokens and tracing baggage). Beyond the limit gRPC
         * 1.51 drops the header block without updating its HPACK table, so
         * the connection's next blocks no longer decode and every call on it
         * fails: a limit that clients do not reach is the only guard. */
        INT_ARG(GRPC_ARG_MAX_METADATA_SIZE, MAX_METADATA_BYTES),
        INT_ARG(GRPC_ARG_MAX_CONCURRENT_STREAMS, (int)config_streams(cfg)),
        INT_ARG(GRPC_ARG_KEEPALIVE_TIME_MS, MS_OR_NEVER(cfg->keepalive_ms)),
        INT_ARG(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, (int)cfg->keepalive_timeout_ms),
        INT_ARG(GRPC_ARG_MAX_CONNECTION_IDLE_MS, MS_OR_NEVER(cfg->max_idle_ms)),
        INT_ARG(GRPC_ARG_MAX_CONNECTION_AGE_MS, MS_OR_NEVER(cfg->max_age_ms)),
        INT_ARG(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, (int)cfg->max_age_grace_ms),
        INT_ARG(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, CLIENT_PING_MIN_MS),
        INT_ARG(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1),
    };
#undef MS_OR_NEVER
#undef INT_ARG
    grpc_channel_args args = {.num_args = sizeof(args_array) / sizeof(args_array[0]),
                              .args = args_array};
    srv->core = grpc_server_create(&args, NULL);
    srv->control = grpc_completion_queue_create_for_next(NULL);
    if (srv->core == NULL || srv->control == NULL)
        return err_set(e, -ENOMEM, "cannot create the gRPC server");
    grpc_server_register_completion_queue(srv->core, srv->control, NULL);
    size_t n = srv->n_methods > 0 ? srv->n_methods : 1;
    const char **paths = calloc(n, sizeof(*paths));
    bool *streams = calloc(n, sizeof(*streams));
    for (size_t i = 0; paths != NULL && streams != NULL && i < srv->n_methods; i++) {
        paths[i] = srv->methods[i].path;
        streams[i] = srv->methods[i].stream;
    }
    int rc = paths != NULL && streams != NULL
                 ? metrics_create(srv->n_workers, paths, streams, srv->n_methods, &srv->metrics)
                 : -ENOMEM;
    free(paths);
    free(streams);
    if (rc != 0)
        return err_set(e, rc == -ENOMEM ? rc : ERR_INTERNAL, "cannot set up the metrics (%s)",
                       rc == -ENOMEM ? "out of memory" : "a method path is not /Service/Method");
    for (size_t i = 0; i < srv->n_methods; i++) {
        srv->registered[i] = grpc_server_register_method(
            srv->core, srv->methods[i].path, NULL,
            srv->methods[i].stream ? GRPC_SRM_PAYLOAD_NONE
                                   : GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER,
            0);
        if (srv->registered[i] == NULL)
            return err_set(e, ERR_INTERNAL, "cannot register method %s (duplicate?)",
                           srv->methods[i].path);
    }
    for (unsigned i = 0; i < srv->n_workers; i++)
        if (worker_init(srv, i) != 0)
            return err_set(e, -ENOMEM, "cannot set up worker %u", i);
    return 0;
}

int server_start(const struct config *cfg, const struct server_method *methods, size_t n_methods,
                 const struct server_hooks *hooks, struct server **out, struct err *e)
{
    gpr_set_log_function(grpc_log);
    struct server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL)
        return err_set(e, -ENOMEM, "out of memory");
    srv->methods = methods;
    srv->n_methods = n_methods;
    if (hooks != NULL)
        srv->hooks = *hooks;
    srv->n_workers = cfg->threads;
    srv->grace_ms = cfg->grace_ms;
    srv->max_request_bytes = cfg->max_request_bytes;
    srv->max_calls = cfg->max_calls;
    srv->max_queued_bytes = QUEUED_BYTES_MAX;
    srv->stop_fd = -1;
    atomic_init(&srv->stopping, false);
    srv->registered = calloc(n_methods > 0 ? n_methods : 1, sizeof(*srv->registered));
    srv->workers = calloc(cfg->threads, sizeof(*srv->workers));
    int rc = srv->registered == NULL || srv->workers == NULL ? err_set(e, -ENOMEM, "out of memory")
                                                             : create_core(srv, cfg, e);
    if (rc != 0)
        goto out;
    rc = -pthread_create(&srv->control_thread, NULL, control_main, srv);
    if (rc != 0) {
        err_set(e, rc, "cannot start the control thread (%s)", strerror(-rc));
        goto out;
    }
    srv->control_running = true;
    /* Binding last, then starting at once: a core with a bound port must be
     * started and shut down before it may be destroyed. */
    rc = bind_port(srv, cfg, e);
    if (rc != 0)
        goto out;
    grpc_server_start(srv->core);
    srv->started = true;
    if (srv->listener != NULL && (rc = start_acceptor(srv, e)) != 0)
        goto out;
    for (unsigned i = 0; i < srv->n_workers; i++) {
        rc = -pthread_create(&srv->workers[i].thread, NULL, worker_main, &srv->workers[i]);
        if (rc != 0) {
            err_set(e, rc, "cannot start worker thread %u (%s)", i, strerror(-rc));
            goto out;
        }
        srv->workers[i].running = true;
    }
    *out = srv;
    srv = NULL;
out:
    server_stop(srv);
    return rc;
}

int server_port(const struct server *s)
{
    return s->port;
}

const struct metrics *server_metrics(const struct server *s)
{
    return s->metrics;
}

/* arm_spares - more slots to take in the calls queued in the core. Runs
 * on the stopping thread: a spare slot is idle and untouched by its worker
 * until its first event, which the queue orders after arm(). */
static void arm_spares(struct server *srv)
{
    for (unsigned i = 0; i < srv->n_workers; i++) {
        struct worker *w = &srv->workers[i];
        for (size_t k = w->n_live; w->running && k < w->n_slots; k++)
            arm(&w->slots[k]);
    }
}

/* caught_up - whether every worker has caught up, or is held in one event
 * for longer than STUCK_MS (a long handler): the calls matched to a held
 * worker's queue are its, and finish within the grace, so it need not hold
 * the shutdown back, while its fellows' being idle says that no call waits
 * in the core unmatched. */
static bool caught_up(const struct server *srv)
{
    uint64_t now = now_ns();
    for (unsigned i = 0; i < srv->n_workers; i++) {
        const struct worker *w = &srv->workers[i];
        uint64_t since = atomic_load(&w->event_since);
        if (w->running && !atomic_load(&w->caught_up) &&
            (since == 0 || now - since < STUCK_MS * 1000000u))
            return false;
    }
    return true;
}

static struct timespec after_ms(unsigned ms)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    t.tv_sec += t.tv_nsec / 1000000000L;
    t.tv_nsec %= 1000000000L;
    return t;
}

/* shutdown_core - stop accepting, wait up to the grace period for calls in
 * flight, then cancel what is left and wait for it to unwind. Returns once
 * the control thread has received the shutdown notification.
 *
 * grpc_server_shutdown_and_notify cancels the calls the core has received
 * but not matched to a slot yet: a burst larger than the armed slots waits
 * there. So first every call already received is taken in: spare slots
 * are armed, and the core is shut down only once every worker has caught
 * up (its queue ran empty while a slot was armed for every method) or is
 * held by a long handler, or after half the grace period under a load that
 * never lets it. */
static void shutdown_core(struct server *srv)
{
    struct timespec limit = after_ms(srv->grace_ms);
    stop_accepting(srv);
    atomic_store(&srv->draining, true);
    arm_spares(srv);
    uint64_t start = now_ns(), waited;
    bool done;
    do {
        nanosleep(&(struct timespec){0, (long)DRAIN_POLL_MS * 1000000L}, NULL);
        done = caught_up(srv);
        waited = (now_ns() - start) / 1000000u;
    } while (!done && waited < srv->grace_ms / 2);
    if (done)
        log_info("every call received is taken in (%llu ms); closing connections",
                 (unsigned long long)waited);
    else
        log_warn("calls kept arriving for %llu ms; closing connections, cancelling the calls "
                 "not taken in yet",
                 (unsigned long long)waited);
    atomic_store(&srv->stopping, true);
    grpc_server_shutdown_and_notify(srv->core, srv->control, srv);
    if (pthread_timedjoin_np(srv->control_thread, NULL, &limit) != 0) {
        log_warn("grace period of %u ms is over; cancelling the calls still in flight",
                 srv->grace_ms);
        grpc_server_cancel_all_calls(srv->core);
        pthread_join(srv->control_thread, NULL);
    }
}

void server_stop(struct server *srv)
{
    if (srv == NULL)
        return;
    if (srv->started) {
        shutdown_core(srv);
    } else if (srv->control_running) {
        grpc_completion_queue_shutdown(srv->control);
        pthread_join(srv->control_thread, NULL);
    }
    for (unsigned i = 0; srv->workers != NULL && i < srv->n_workers; i++) {
        struct worker *w = &srv->workers[i];
        if (w->running)
            pthread_join(w->thread, NULL); /* it shuts its queue down itself */
        else if (w->cq != NULL)
            drain_queue(w->cq); /* never started: nothing was armed on it */
    }
    if (srv->control != NULL)
        drain_queue(srv->control);
    if (srv->core != NULL)
        grpc_server_destroy(srv->core);
    for (unsigned i = 0; srv->workers != NULL && i < srv->n_workers; i++) {
        struct worker *w = &srv->workers[i];
        if (w->cq != NULL)
            grpc_completion_queue_destroy(w->cq);
        arena_destroy(w->arena);
        free(w->slots);
        free(w->calls);
        free(w->armed);
        queue_destroy(w->queue);
        free(w->serve_ns);
    }
    if (srv->control != NULL)
        grpc_completion_queue_destroy(srv->control);
    stop_accepting(srv);
    if (srv->stop_fd >= 0)
        close(srv->stop_fd);
    if (srv->insecure != NULL)
        grpc_server_credentials_release(srv->insecure);
    metrics_destroy(srv->metrics);
    free(srv->workers);
    free(srv->registered);
    free(srv);
}
