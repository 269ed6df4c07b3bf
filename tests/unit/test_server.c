/* Unit tests of src/server: the gRPC plumbing with trivial handlers and a
 * gRPC C core client, no model involved.
 *
 * Handlers: /test.Echo/Reverse answers the request bytes reversed (so the
 * answer proves the handler ran on these bytes); /test.Echo/Fail answers
 * INVALID_ARGUMENT with a text; /test.Echo/Block waits until the test lets
 * it go, so a test can hold a call in flight for as long as it needs;
 * /test.Echo/Chat is a stream answering each message reversed until "stop";
 * /test.Echo/Defer defers its call to the completer threads below, which
 * answer it reversed, or ABORTED for a request starting with '!'. */
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "check.h"
#include "server/config.h"
#include "server/metrics.h"
#include "server/server.h"

/* ---- handlers ------------------------------------------------------------ */

static atomic_int reverse_runs;

static void reverse(const struct server_call *call, struct server_reply *reply)
{
    atomic_fetch_add(&reverse_runs, 1);
    uint8_t *out = arena_alloc(call->arena, call->len + 1);
    for (size_t i = 0; i < call->len; i++)
        out[i] = call->data[call->len - 1 - i];
    reply->data = out;
    reply->len = call->len;
}

static void fail(const struct server_call *call, struct server_reply *reply)
{
    reply->status = GRPC_STATUS_INVALID_ARGUMENT;
    reply->details = call->method->arg;
}

/* The Block handler's gate. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int entered; /* calls that reached the handler */
    bool open;   /* handlers may return */
} gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, false};

static struct timespec in_seconds(int s)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += s;
    return ts;
}

static void block(const struct server_call *call, struct server_reply *reply)
{
    pthread_mutex_lock(&gate.mu);
    gate.entered++;
    pthread_cond_broadcast(&gate.cond);
    /* Bounded, so a broken test fails instead of hanging. */
    struct timespec limit = in_seconds(30);
    while (!gate.open && pthread_cond_timedwait(&gate.cond, &gate.mu, &limit) == 0)
        ;
    pthread_mutex_unlock(&gate.mu);
    reverse(call, reply);
}

static void gate_reset(void)
{
    pthread_mutex_lock(&gate.mu);
    gate.entered = 0;
    gate.open = false;
    pthread_mutex_unlock(&gate.mu);
}

static bool gate_wait_entered(int n)
{
    struct timespec limit = in_seconds(30);
    pthread_mutex_lock(&gate.mu);
    while (gate.entered < n && pthread_cond_timedwait(&gate.cond, &gate.mu, &limit) == 0)
        ;
    bool ok = gate.entered >= n;
    pthread_mutex_unlock(&gate.mu);
    return ok;
}

static void gate_open(void)
{
    pthread_mutex_lock(&gate.mu);
    gate.open = true;
    pthread_cond_broadcast(&gate.cond);
    pthread_mutex_unlock(&gate.mu);
}

/* The worker hooks: count their runs, and mark the threads they ran on. */
struct hook_runs {
    atomic_int starts, stops;
};
static _Thread_local bool hooked;

static void hook_start(void *arg)
{
    struct hook_runs *runs = arg;
    hooked = true;
    atomic_fetch_add(&runs->starts, 1);
}

static void hook_stop(void *arg)
{
    struct hook_runs *runs = arg;
    hooked = false;
    atomic_fetch_add(&runs->stops, 1);
}

/* Answers OK only on a thread hook_start ran on. */
static void hooked_only(const struct server_call *call, struct server_reply *reply)
{
    if (!hooked)
        reply->status = GRPC_STATUS_FAILED_PRECONDITION;
}

/* A stream's messages, answered one by one: reversed, until "stop". */
static void chat(const struct server_call *call, struct server_reply *reply)
{
    if (call->len == 4 && memcmp(call->data, "stop", 4) == 0) {
        reply->status = GRPC_STATUS_FAILED_PRECONDITION;
        reply->details = "stopped";
        return;
    }
    reverse(call, reply);
}

/* Deferred calls, from the Defer handler to the completer threads: a
 * stack under one lock. The completers take calls only while it is open,
 * so a test decides when replies may go. */
#define DEFER_MAX 1024

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct deferred {
        struct server_deferred *d;
        size_t len;
        uint8_t body[32]; /* the request: the handler's bytes do not outlive it */
    } items[DEFER_MAX];
    size_t n;        /* items waiting */
    int deferred;    /* calls the handler deferred */
    int started;     /* calls the completers began to complete */
    int completed;   /* calls the completers completed */
    bool open;       /* completers may complete */
    bool quit;       /* completers exit once nothing waits */
    unsigned delay;  /* ms a completer waits before each completion: the "fsync" */
    bool stream_nil; /* server_defer returned NULL for a stream (Chat) */
} pend = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void defer(const struct server_call *call, struct server_reply *reply)
{
    struct server_deferred *d = server_defer(call);
    /* Left as it is: the server must ignore it for a deferred call. */
    reply->status = GRPC_STATUS_INTERNAL;
    reply->details = "the handler's reply was sent";
    pthread_mutex_lock(&pend.mu);
    if (d != NULL && pend.n < DEFER_MAX && call->len <= sizeof(pend.items[0].body)) {
        struct deferred *it = &pend.items[pend.n++];
        it->d = d;
        it->len = call->len;
        memcpy(it->body, call->data, call->len);
        pend.deferred++;
        pthread_cond_broadcast(&pend.cond);
    }
    pthread_mutex_unlock(&pend.mu);
}

static void completer_reset(bool open, unsigned delay)
{
    pthread_mutex_lock(&pend.mu);
    pend.n = 0;
    pend.deferred = pend.started = pend.completed = 0;
    pend.open = open;
    pend.quit = false;
    pend.delay = delay;
    pend.stream_nil = false;
    pthread_mutex_unlock(&pend.mu);
}

static void *completer_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&pend.mu);
    for (;;) {
        /* Bounded, so a broken test fails instead of hanging. */
        struct timespec limit = in_seconds(30);
        while (!(pend.n > 0 && pend.open) && !(pend.n == 0 && pend.quit) &&
               pthread_cond_timedwait(&pend.cond, &pend.mu, &limit) == 0)
            ;
        if (pend.n == 0 || !pend.open)
            break; /* quit, or the test broke and timed out */
        struct deferred it = pend.items[--pend.n];
        unsigned delay = pend.delay;
        pend.started++;
        pthread_mutex_unlock(&pend.mu);

        struct timespec wait = {0, (long)delay * 1000000L};
        nanosleep(&wait, NULL);
        uint8_t out[sizeof(it.body)];
        for (size_t i = 0; i < it.len; i++)
            out[i] = it.body[it.len - 1 - i];
        struct server_reply reply = {.status = GRPC_STATUS_OK, .data = out, .len = it.len};
        char text[64];
        if (it.len > 0 && it.body[0] == '!') {
            snprintf(text, sizeof(text), "deferred and failed: %.*s", (int)it.len, it.body);
            reply = (struct server_reply){
                .status = GRPC_STATUS_ABORTED, .data = NULL, .len = 0, .details = text};
        }
        server_complete(it.d, &reply);
        /* The reply was copied: scribbling over it proves nothing is kept. */
        memset(out, 0xee, sizeof(out));
        memset(text, 0, sizeof(text));

        pthread_mutex_lock(&pend.mu);
        pend.completed++;
        pthread_cond_broadcast(&pend.cond);
    }
    pthread_mutex_unlock(&pend.mu);
    return NULL;
}

static void completer_open(void)
{
    pthread_mutex_lock(&pend.mu);
    pend.open = true;
    pthread_cond_broadcast(&pend.cond);
    pthread_mutex_unlock(&pend.mu);
}

/* completer_quit - let the completers finish what waits, and exit. */
static void completer_quit(void)
{
    pthread_mutex_lock(&pend.mu);
    pend.quit = true;
    pthread_cond_broadcast(&pend.cond);
    pthread_mutex_unlock(&pend.mu);
}

/* defer_wait - wait until the handler has deferred @n calls. */
static bool defer_wait(int n)
{
    struct timespec limit = in_seconds(30);
    pthread_mutex_lock(&pend.mu);
    while (pend.deferred < n && pthread_cond_timedwait(&pend.cond, &pend.mu, &limit) == 0)
        ;
    bool ok = pend.deferred >= n;
    pthread_mutex_unlock(&pend.mu);
    return ok;
}

static int defer_started(void)
{
    pthread_mutex_lock(&pend.mu);
    int n = pend.started;
    pthread_mutex_unlock(&pend.mu);
    return n;
}

static int defer_completed(void)
{
    pthread_mutex_lock(&pend.mu);
    int n = pend.completed;
    pthread_mutex_unlock(&pend.mu);
    return n;
}

/* A stream cannot be deferred: its handler answers as Chat does. */
static void defer_stream(const struct server_call *call, struct server_reply *reply)
{
    if (server_defer(call) == NULL) {
        pthread_mutex_lock(&pend.mu);
        pend.stream_nil = true;
        pthread_mutex_unlock(&pend.mu);
    }
    chat(call, reply);
}

#define CHAT  4 /* their rows below */
#define DEFER 5

static const struct server_method methods[] = {
    {"/test.Echo/Reverse", reverse, NULL, false, false},
    {"/test.Echo/Fail", fail, "the request was bad", false, false},
    {"/test.Echo/Block", block, NULL, false, false},
    {"/test.Echo/Hooked", hooked_only, NULL, false, false},
    {"/test.Echo/Chat", chat, NULL, true, false},
    {"/test.Echo/Defer", defer, NULL, false, false},
    {"/test.Echo/DeferChat", defer_stream, NULL, true, false},
};

#define N_METHODS (sizeof(methods) / sizeof(methods[0]))

/* test_config - the daemon's defaults (connection limits and all), with
 * the settings these tests vary. */
static struct config test_config(unsigned threads, unsigned max_request_bytes, unsigned grace_ms)
{
    struct config cfg;
    enum config_action action;
    char *argv[] = {"test_server", "--model", "unused", "--listen", "127.0.0.1:0"};
    struct err e = {0};
    if (config_load(&cfg, 5, argv, &action, &e) != 0) {
        fprintf(stderr, "test_config: %s\n", e.msg);
        exit(1);
    }
    cfg.threads = threads;
    cfg.max_request_bytes = max_request_bytes;
    cfg.grace_ms = grace_ms;
    return cfg;
}

static int start_config(const struct config *cfg, const struct server_hooks *hooks,
                        struct server **srv, char *addr)
{
    struct err e = {0};
    int rc = server_start(cfg, methods, N_METHODS, hooks, srv, &e);
    if (rc != 0) {
        fprintf(stderr, "server_start: %s\n", e.msg);
        return rc;
    }
    snprintf(addr, 64, "127.0.0.1:%d", server_port(*srv));
    return 0;
}

static int start_hooked(unsigned threads, unsigned grace_ms, const struct server_hooks *hooks,
                        struct server **srv, char *addr)
{
    struct config cfg = test_config(threads, 64 << 10, grace_ms);
    return start_config(&cfg, hooks, srv, addr);
}

/* start_streams - start() with @streams calls open per connection: the
 * deferred calls' tests keep more open on one connection than the
 * default allows. */
static int start_streams(unsigned threads, unsigned grace_ms, unsigned streams, struct server **srv,
                         char *addr)
{
    struct config cfg = test_config(threads, 64 << 10, grace_ms);
    cfg.max_concurrent_streams = streams;
    return start_config(&cfg, NULL, srv, addr);
}

static int start(unsigned threads, unsigned grace_ms, struct server **srv, char *addr)
{
    return start_hooked(threads, grace_ms, NULL, srv, addr);
}

/* ---- client ------------------------------------------------------------- */

struct client_call {
    grpc_completion_queue *cq;
    grpc_call *call;
    grpc_byte_buffer *request;
    grpc_metadata_array initial, trailing;
    grpc_byte_buffer *response;
    grpc_status_code status;
    grpc_slice details;
    /* Filled by call_finish: */
    char text[256];
    uint8_t body[100 << 10];
    size_t len;
    bool has_body;
};

static grpc_channel *client_open(const char *addr)
{
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    grpc_channel *ch = grpc_channel_create(addr, creds, NULL);
    grpc_channel_credentials_release(creds);
    return ch;
}

/* call_start - start a unary call; @body NULL sends no message at all. */
static void call_start(struct client_call *c, grpc_channel *ch, const char *path, const void *body,
                       size_t len, int deadline_ms)
{
    memset(c, 0, sizeof(*c));
    c->cq = grpc_completion_queue_create_for_pluck(NULL);
    gpr_timespec deadline =
        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(deadline_ms, GPR_TIMESPAN));
    c->call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, c->cq,
                                       grpc_slice_from_static_string(path), NULL, deadline, NULL);
    grpc_op ops[6];
    memset(ops, 0, sizeof(ops));
    size_t n = 0;
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (body != NULL) {
        grpc_slice s = grpc_slice_from_copied_buffer(body, len);
        c->request = grpc_raw_byte_buffer_create(&s, 1);
        grpc_slice_unref(s);
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = c->request;
    }
    ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[n++].data.recv_initial_metadata.recv_initial_metadata = &c->initial;
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n++].data.recv_message.recv_message = &c->response;
    ops[n].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[n].data.recv_status_on_client.trailing_metadata = &c->trailing;
    ops[n].data.recv_status_on_client.status = &c->status;
    ops[n++].data.recv_status_on_client.status_details = &c->details;
    grpc_call_error rc = grpc_call_start_batch(c->call, ops, n, c, NULL);
    if (rc != GRPC_CALL_OK)
        fprintf(stderr, "grpc_call_start_batch: %d\n", (int)rc);
}

/* call_finish - wait for the call's batch; fills status, text and body. */
static void call_finish(struct client_call *c)
{
    grpc_completion_queue_pluck(c->cq, c, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    snprintf(c->text, sizeof(c->text), "%.*s", (int)GRPC_SLICE_LENGTH(c->details),
             (const char *)GRPC_SLICE_START_PTR(c->details));
    if (c->response != NULL) {
        grpc_byte_buffer_reader r;
        grpc_byte_buffer_reader_init(&r, c->response);
        grpc_slice all = grpc_byte_buffer_reader_readall(&r);
        c->len = GRPC_SLICE_LENGTH(all) < sizeof(c->body) ? GRPC_SLICE_LENGTH(all) : 0;
        memcpy(c->body, GRPC_SLICE_START_PTR(all), c->len);
        c->has_body = true;
        grpc_slice_unref(all);
        grpc_byte_buffer_reader_destroy(&r);
        grpc_byte_buffer_destroy(c->response);
    }
    if (c->request != NULL)
        grpc_byte_buffer_destroy(c->request);
    grpc_slice_unref(c->details);
    grpc_metadata_array_destroy(&c->initial);
    grpc_metadata_array_destroy(&c->trailing);
    grpc_call_unref(c->call);
    grpc_completion_queue_shutdown(c->cq);
    grpc_completion_queue_pluck(c->cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    grpc_completion_queue_destroy(c->cq);
}

static struct client_call *call(grpc_channel *ch, const char *path, const void *body, size_t len)
{
    static struct client_call c;
    call_start(&c, ch, path, body, len, 10000);
    call_finish(&c);
    return &c;
}

/* one_op - run one batch of @n ops on @call and wait for it; its success. */
static bool one_op(grpc_call *call, grpc_completion_queue *cq, grpc_op *ops, size_t n, void *tag)
{
    if (grpc_call_start_batch(call, ops, n, tag, NULL) != GRPC_CALL_OK)
        return false;
    return grpc_completion_queue_pluck(cq, tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).success;
}

/* chat_call - one stream on @path (Chat's handler): send each of @msgs, reading
 * the answer after each, until the server ends the stream; then close our
 * side (or, with @cancel, cancel the call instead) and read the status.
 * The answers go to @answers joined by '|'; returns the status, its text
 * in @text. */
static grpc_status_code chat_call(grpc_channel *ch, const char *path, const char *const *msgs,
                                  size_t n, bool cancel, char *answers, size_t size, char *text)
{
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    gpr_timespec deadline =
        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(10000, GPR_TIMESPAN));
    grpc_call *call =
        grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                 grpc_slice_from_static_string(path), NULL, deadline, NULL);
    grpc_metadata_array initial, trailing;
    grpc_metadata_array_init(&initial);
    grpc_metadata_array_init(&trailing);
    grpc_op ops[2];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[1].data.recv_initial_metadata.recv_initial_metadata = &initial;
    one_op(call, cq, ops, 2, (void *)1);
    answers[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        grpc_slice body = grpc_slice_from_copied_string(msgs[i]);
        grpc_byte_buffer *req = grpc_raw_byte_buffer_create(&body, 1), *resp = NULL;
        grpc_slice_unref(body);
        memset(ops, 0, sizeof(ops));
        ops[0].op = GRPC_OP_SEND_MESSAGE;
        ops[0].data.send_message.send_message = req;
        ops[1].op = GRPC_OP_RECV_MESSAGE;
        ops[1].data.recv_message.recv_message = &resp;
        one_op(call, cq, ops, 2, (void *)2);
        grpc_byte_buffer_destroy(req);
        if (resp == NULL)
            break; /* the server ended the stream */
        grpc_byte_buffer_reader r;
        grpc_byte_buffer_reader_init(&r, resp);
        grpc_slice all = grpc_byte_buffer_reader_readall(&r);
        snprintf(answers + strlen(answers), size - strlen(answers), "%s%.*s", i > 0 ? "|" : "",
                 (int)GRPC_SLICE_LENGTH(all), (const char *)GRPC_SLICE_START_PTR(all));
        grpc_slice_unref(all);
        grpc_byte_buffer_reader_destroy(&r);
        grpc_byte_buffer_destroy(resp);
    }
    if (cancel) {
        grpc_call_cancel(call, NULL);
    } else {
        memset(ops, 0, sizeof(ops));
        ops[0].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
        one_op(call, cq, ops, 1, (void *)3);
    }
    grpc_status_code status;
    grpc_slice details;
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[0].data.recv_status_on_client.trailing_metadata = &trailing;
    ops[0].data.recv_status_on_client.status = &status;
    ops[0].data.recv_status_on_client.status_details = &details;
    one_op(call, cq, ops, 1, (void *)4);
    snprintf(text, 64, "%.*s", (int)GRPC_SLICE_LENGTH(details),
             (const char *)GRPC_SLICE_START_PTR(details));
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&initial);
    grpc_metadata_array_destroy(&trailing);
    grpc_call_unref(call);
    grpc_completion_queue_shutdown(cq);
    grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    grpc_completion_queue_destroy(cq);
    return status;
}

/* ---- tests --------------------------------------------------------------- */

static void test_reverse_round_trip(void)
{
    struct server *srv;
    char addr[64];
    CHECK_OK(start(2, 1000, &srv, addr));
    grpc_channel *ch = client_open(addr);
    static uint8_t big[60 << 10], want[sizeof(big)];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 7 + i / 251);
    for (size_t i = 0; i < sizeof(big); i++)
        want[i] = big[sizeof(big) - 1 - i];
    const size_t sizes[] = {0, 1, 5, sizeof(big)};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        size_t n = sizes[k];
        struct client_call *c = call(ch, "/test.Echo/Reverse", big + sizeof(big) - n, n);
        CHECK(c->status == GRPC_STATUS_OK);
        CHECK(c->has_body && c->len == n);
        CHECK(memcmp(c->body, want, n) == 0);
    }
    grpc_channel_destroy(ch);
    server_stop(srv);
}

static uint64_t chat_streams_counted(const struct metrics *m)
{
    return metrics_handled(m, CHAT, GRPC_STATUS_OK) +
           metrics_handled(m, CHAT, GRPC_STATUS_FAILED_PRECONDITION) +
           metrics_handled(m, CHAT, GRPC_STATUS_CANCELLED);
}

/* A stream gets one answer per message, in order, and ends with the
 * client's close (OK) or the first failed answer (its status); a client's
 * cancel frees the call. Each stream is counted once, with its status. */
static void test_stream_answers_each_message(void)
{
    struct server *srv;
    char addr[64], answers[256], text[64];
    CHECK_OK(start(2, 1000, &srv, addr));
    grpc_channel *ch = client_open(addr);
    const char *const talk[] = {"abc", "hello", "", "xy"};
    CHECK(chat_call(ch, "/test.Echo/Chat", talk, 4, false, answers, sizeof(answers), text) ==
          GRPC_STATUS_OK);
    CHECK(strcmp(answers, "cba|olleh||yx") == 0);
    const char *const stopped[] = {"abc", "stop", "never"};
    CHECK(chat_call(ch, "/test.Echo/Chat", stopped, 3, false, answers, sizeof(answers), text) ==
          GRPC_STATUS_FAILED_PRECONDITION);
    CHECK(strcmp(answers, "cba") == 0 && strcmp(text, "stopped") == 0);
    CHECK(chat_call(ch, "/test.Echo/Chat", talk, 2, true, answers, sizeof(answers), text) ==
          GRPC_STATUS_CANCELLED);
    CHECK(strcmp(answers, "cba|olleh") == 0);
    CHECK(chat_call(ch, "/test.Echo/Chat", talk, 0, false, answers, sizeof(answers), text) ==
          GRPC_STATUS_OK);
    /* Unary calls still work alongside. */
    CHECK(call(ch, "/test.Echo/Reverse", "ab", 2)->status == GRPC_STATUS_OK);
    grpc_channel_destroy(ch);
    const struct metrics *m = server_metrics(srv);
    /* A call is counted when the server releases it, after the client has
     * its status: wait for all four streams (the counts die with the
     * server, so they are read before stopping it). */
    struct timespec tick = {0, 10 * 1000 * 1000};
    for (int i = 0; i < 1000 && chat_streams_counted(m) < 4; i++)
        nanosleep(&tick, NULL);
    CHECK(metrics_handled(m, CHAT, GRPC_STATUS_OK) == 2);
    CHECK(metrics_handled(m, CHAT, GRPC_STATUS_FAILED_PRECONDITION) == 1);
    CHECK(metrics_handled(m, CHAT, GRPC_STATUS_CANCELLED) == 1);
    server_stop(srv);
}

static void test_handler_status_and_text(void)
{
    struct server *srv;
    char addr[64];
    CHECK_OK(start(1, 1000, &srv, addr));
    grpc_channel *ch = client_open(addr);
    struct client_call *c = call(ch, "/test.Echo/Fail", "x", 1);
    CHECK(c->status == GRPC_STATUS_INVALID_ARGUMENT);
    CHECK(strcmp(c->text, "the request was bad") == 0);
    CHECK(!c->has_body);
    grpc_channel_destroy(ch);
    server_stop(srv);
}

static void test_server_answers_itself(void)
{
    static const struct {
        const char *path;
        bool with_message;
        size_t len;
        grpc_status_code want;
    } cases[] = {
        {"/test.Echo/Nope", true, 3, GRPC_STATUS_UNIMPLEMENTED},
        {"/other.Service/Reverse", false, 0, GRPC_STATUS_UNIMPLEMENTED},
        {"/test.Echo/Reverse", false, 0, GRPC_STATUS_INVALID_ARGUMENT},
        /* Over max_request_bytes: refused by the core before any handler. */
        {"/test.Echo/Reverse", true, (64 << 10) + 1, GRPC_STATUS_RESOURCE_EXHAUSTED},
    };
    static uint8_t body[(64 << 10) + 1];
    struct server *srv;
    char addr[64];
    CHECK_OK(start(2, 1000, &srv, addr));
    grpc_channel *ch = client_open(addr);
    atomic_store(&reverse_runs, 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct client_call *c =
            call(ch, cases[i].path, cases[i].with_message ? body : NULL, cases[i].len);
        if (c->status != cases[i].want)
            fprintf(stderr, "case %zu: status %d (%s)\n", i, (int)c->status, c->text);
        CHECK(c->status == cases[i].want);
        CHECK(!c->has_body);
    }
    CHECK(atomic_load(&reverse_runs) == 0);
    /* And the server still serves. */
    struct client_call *c = call(ch, "/test.Echo/Reverse", "ab", 2);
    CHECK(c->status == GRPC_STATUS_OK && c->len == 2 && memcmp(c->body, "ba", 2) == 0);
    grpc_channel_destroy(ch);
    server_stop(srv);
}

/* A call whose deadline passed while it waited for the one busy worker is
 * answered DEADLINE_EXCEEDED without running its handler. */
static void test_expired_call_is_not_run(void)
{
    struct server *srv;
    char addr[64];
    gate_reset();
    CHECK_OK(start(1, 1000, &srv, addr));
    grpc_channel *ch = client_open(addr);
    static struct client_call blocker, late;
    call_start(&blocker, ch, "/test.Echo/Block", "b", 1, 30000);
    CHECK(gate_wait_entered(1));
    atomic_store(&reverse_runs, 0);
    struct timespec past_deadline;
    clock_gettime(CLOCK_MONOTONIC, &past_deadline);
    call_start(&late, ch, "/test.Echo/Reverse", "r", 1, 200);
    call_finish(&late); /* the client gives up at its deadline */
    CHECK(late.status == GRPC_STATUS_DEADLINE_EXCEEDED);
    /* The server's copy of the deadline is the client's timeout counted from
     * when the call arrived, so it passes a little later; the test waits for
     * that moment, with a wide margin, before it frees the worker. */
    past_deadline.tv_nsec += 700 * 1000000L;
    past_deadline.tv_sec += past_deadline.tv_nsec / 1000000000L;
    past_deadline.tv_nsec %= 1000000000L;
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &past_deadline, NULL) != 0)
        ;
    gate_open();
    call_finish(&blocker);
    CHECK(blocker.status == GRPC_STATUS_OK);
    /* The worker has now dequeued the late call; one more call on the same
     * single worker proves it has been answered, and by whom. */
    struct client_call *c = call(ch, "/test.Echo/Reverse", "xy", 2);
    CHECK(c->status == GRPC_STATUS_OK);
    CHECK(atomic_load(&reverse_runs) == 2); /* the blocker and the last call, not the late one */
    grpc_channel_destroy(ch);
    server_stop(srv);
}

static void test_many_calls_in_flight(void)
{
    enum { N = 64 };
    static struct client_call calls[N];
    struct server *srv;
    char addr[64];
    CHECK_OK(start(2, 1000, &srv, addr));
    grpc_channel *ch = client_open(addr);
    char bodies[N][8];
    for (int i = 0; i < N; i++) {
        snprintf(bodies[i], sizeof(bodies[i]), "%03d", i);
        call_start(&calls[i], ch, "/test.Echo/Reverse", bodies[i], 3, 30000);
    }
    int ok = 0;
    for (int i = 0; i < N; i++) {
        call_finish(&calls[i]);
        char want[4] = {bodies[i][2], bodies[i][1], bodies[i][0], 0};
        ok += calls[i].status == GRPC_STATUS_OK && calls[i].len == 3 &&
              memcmp(calls[i].body, want, 3) == 0;
    }
    CHECK(ok == N);
    grpc_channel_destroy(ch);
    server_stop(srv);
}

struct stopper {
    pthread_t thread;
    struct server *srv;
    atomic_bool done;
};

static void *stop_main(void *arg)
{
    struct stopper *s = arg;
    server_stop(s->srv);
    atomic_store(&s->done, true);
    return NULL;
}

/* probe_until_refused - call Reverse with short deadlines until the server
 * refuses new calls: then its shutdown has begun. The server keeps taking
 * calls until each worker has caught up, which calls back to back can put
 * off for up to half the grace (20 s in these tests): give it that. */
static bool probe_until_refused(grpc_channel *ch)
{
    struct timespec now, until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += 12;
    do {
        static struct client_call probe;
        call_start(&probe, ch, "/test.Echo/Reverse", "p", 1, 300);
        call_finish(&probe);
        if (probe.status == GRPC_STATUS_UNAVAILABLE)
            return true;
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (now.tv_sec < until.tv_sec ||
             (now.tv_sec == until.tv_sec && now.tv_nsec < until.tv_nsec));
    return false;
}

static void test_stop_lets_calls_in_flight_finish(void)
{
    struct server *srv;
    char addr[64];
    gate_reset();
    CHECK_OK(start(2, 20000, &srv, addr));
    grpc_channel *ch = client_open(addr);
    static struct client_call held;
    call_start(&held, ch, "/test.Echo/Block", "abc", 3, 30000);
    CHECK(gate_wait_entered(1));

    struct stopper st = {.srv = srv};
    atomic_init(&st.done, false);
    CHECK(pthread_create(&st.thread, NULL, stop_main, &st) == 0);
    CHECK(probe_until_refused(ch));
    CHECK(!atomic_load(&st.done)); /* waiting for the held call */
    gate_open();
    call_finish(&held);
    CHECK(held.status == GRPC_STATUS_OK);
    CHECK(held.len == 3 && memcmp(held.body, "cba", 3) == 0);
    pthread_join(st.thread, NULL);
    grpc_channel_destroy(ch);
}

static void test_stop_cancels_calls_after_grace(void)
{
    struct server *srv;
    char addr[64];
    gate_reset();
    CHECK_OK(start(1, 100, &srv, addr));
    grpc_channel *ch = client_open(addr);
    static struct client_call held;
    call_start(&held, ch, "/test.Echo/Block", "abc", 3, 30000);
    CHECK(gate_wait_entered(1));

    struct stopper st = {.srv = srv};
    atomic_init(&st.done, false);
    CHECK(pthread_create(&st.thread, NULL, stop_main, &st) == 0);
    /* The client learns of the cancellation while the handler still holds
     * the call; the stop completes once the handler lets go. */
    call_finish(&held);
    CHECK(held.status != GRPC_STATUS_OK);
    CHECK(!held.has_body);
    gate_open();
    pthread_join(st.thread, NULL);
    grpc_channel_destroy(ch);
}

/* ---- deferred calls ------------------------------------------------------- */

/* counted - the calls of @method counted so far, whatever their status. */
static uint64_t counted(const struct metrics *m, size_t method)
{
    uint64_t n = 0;
    for (int status = GRPC_STATUS_OK; status <= GRPC_STATUS_UNAUTHENTICATED; status++)
        n += metrics_handled(m, method, status);
    return n;
}

/* await_counted - whether @n calls of @method get counted: a call is
 * counted when the server releases it, after its client has the status. */
static bool await_counted(const struct metrics *m, size_t method, uint64_t n)
{
    struct timespec tick = {0, 10 * 1000 * 1000};
    for (int i = 0; i < 3000 && counted(m, method) < n; i++)
        nanosleep(&tick, NULL);
    return counted(m, method) == n;
}

/* defer_wait_completed - wait until the completers have completed @n calls. */
static bool defer_wait_completed(int n)
{
    struct timespec limit = in_seconds(30);
    pthread_mutex_lock(&pend.mu);
    while (pend.completed < n && pthread_cond_timedwait(&pend.cond, &pend.mu, &limit) == 0)
        ;
    bool ok = pend.completed >= n;
    pthread_mutex_unlock(&pend.mu);
    return ok;
}

/* With one worker, deferred calls waiting for their completer leave the
 * worker free: 50 calls of another method are answered while 8 wait, the
 * completer held closed until then. Then the deferred calls get their
 * replies, ~20 ms each: the message, or a status with its text, never what
 * the handler left in its reply. */
static void test_deferred_calls_free_their_worker(void)
{
    enum { DEFERRED = 8, OTHERS = 50 };
    static struct client_call held[DEFERRED], other;
    struct server *srv;
    char addr[64], bodies[DEFERRED][8];
    pthread_t completer;
    completer_reset(false, 20);
    CHECK_OK(start_streams(1, 1000, 64, &srv, addr));
    CHECK(pthread_create(&completer, NULL, completer_main, NULL) == 0);
    grpc_channel *ch = client_open(addr);
    for (int i = 0; i < DEFERRED; i++) {
        /* Every fourth fails (the completer answers '!' with ABORTED). */
        snprintf(bodies[i], sizeof(bodies[i]), "%s%03d", i % 4 == 3 ? "!" : "", i);
        call_start(&held[i], ch, "/test.Echo/Defer", bodies[i], strlen(bodies[i]), 30000);
    }
    CHECK(defer_wait(DEFERRED));
    int ok = 0;
    for (int i = 0; i < OTHERS; i++) {
        /* A deadline well short of the test's: a held worker fails it soon. */
        call_start(&other, ch, "/test.Echo/Reverse", "ab", 2, 5000);
        call_finish(&other);
        if (other.status != GRPC_STATUS_OK || other.len != 2 || memcmp(other.body, "ba", 2) != 0)
            break;
        ok++;
    }
    CHECK(ok == OTHERS);
    CHECK(defer_started() == 0); /* the completer was held all along */
    completer_open();
    int replied = 0, failed = 0;
    for (int i = 0; i < DEFERRED; i++) {
        call_finish(&held[i]);
        size_t n = strlen(bodies[i]);
        char want[8];
        for (size_t k = 0; k < n; k++)
            want[k] = bodies[i][n - 1 - k];
        char text[64];
        snprintf(text, sizeof(text), "deferred and failed: %s", bodies[i]);
        if (bodies[i][0] == '!')
            failed += held[i].status == GRPC_STATUS_ABORTED && strcmp(held[i].text, text) == 0 &&
                      !held[i].has_body;
        else
            replied += held[i].status == GRPC_STATUS_OK && held[i].has_body && held[i].len == n &&
                       memcmp(held[i].body, want, n) == 0;
    }
    CHECK(replied == 6 && failed == 2);
    const struct metrics *m = server_metrics(srv);
    CHECK(await_counted(m, DEFER, DEFERRED));
    CHECK(metrics_handled(m, DEFER, GRPC_STATUS_OK) == 6);
    CHECK(metrics_handled(m, DEFER, GRPC_STATUS_ABORTED) == 2);
    grpc_channel_destroy(ch);
    server_stop(srv);
    completer_quit();
    pthread_join(completer, NULL);
}

/* A stream's handler cannot defer: server_defer says so and the handler
 * answers as usual. */
static void test_stream_is_not_deferred(void)
{
    struct server *srv;
    char addr[64], answers[64], text[64];
    completer_reset(true, 0);
    CHECK_OK(start(1, 1000, &srv, addr));
    grpc_channel *ch = client_open(addr);
    const char *const talk[] = {"abc"};
    CHECK(chat_call(ch, "/test.Echo/DeferChat", talk, 1, false, answers, sizeof(answers), text) ==
          GRPC_STATUS_OK);
    CHECK(strcmp(answers, "cba") == 0);
    pthread_mutex_lock(&pend.mu);
    bool nil = pend.stream_nil;
    pthread_mutex_unlock(&pend.mu);
    CHECK(nil);
    grpc_channel_destroy(ch);
    server_stop(srv);
}

/* A client whose deadline passes while its call is deferred gets
 * DEADLINE_EXCEEDED; the completion that comes later finds the call gone,
 * does no harm, and the call is counted as cancelled (ASan: nothing
 * leaks). */
static void test_deferred_call_outlived_by_its_deadline(void)
{
    static struct client_call late;
    struct server *srv;
    char addr[64];
    pthread_t completer;
    completer_reset(false, 0);
    CHECK_OK(start_streams(1, 1000, 64, &srv, addr));
    CHECK(pthread_create(&completer, NULL, completer_main, NULL) == 0);
    grpc_channel *ch = client_open(addr);
    /* Connected first, so the short deadline is spent deferred, not on
     * the connection (slow under TSan). */
    CHECK(call(ch, "/test.Echo/Reverse", "ab", 2)->status == GRPC_STATUS_OK);
    struct timespec past_deadline;
    clock_gettime(CLOCK_MONOTONIC, &past_deadline);
    call_start(&late, ch, "/test.Echo/Defer", "late", 4, 300);
    CHECK(defer_wait(1));
    call_finish(&late);
    CHECK(late.status == GRPC_STATUS_DEADLINE_EXCEEDED);
    /* The server's copy of the deadline passes a little after the
     * client's (test_expired_call_is_not_run): complete only once it has. */
    past_deadline.tv_nsec += 700 * 1000000L;
    past_deadline.tv_sec += past_deadline.tv_nsec / 1000000000L;
    past_deadline.tv_nsec %= 1000000000L;
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &past_deadline, NULL) != 0)
        ;
    completer_open();
    CHECK(defer_wait_completed(1));
    const struct metrics *m = server_metrics(srv);
    CHECK(await_counted(m, DEFER, 1));
    CHECK(metrics_handled(m, DEFER, GRPC_STATUS_CANCELLED) == 1);
    struct client_call *c = call(ch, "/test.Echo/Reverse", "xy", 2);
    CHECK(c->status == GRPC_STATUS_OK && c->len == 2 && memcmp(c->body, "yx", 2) == 0);
    grpc_channel_destroy(ch);
    server_stop(srv);
    completer_quit();
    pthread_join(completer, NULL);
}

/* server_stop waits for the deferred calls in flight, which get their
 * replies once completed. */
static void test_stop_waits_for_deferred_calls(void)
{
    enum { DEFERRED = 4 };
    static struct client_call held[DEFERRED];
    struct server *srv;
    char addr[64], bodies[DEFERRED][8];
    pthread_t completer;
    completer_reset(false, 20);
    CHECK_OK(start_streams(2, 20000, 64, &srv, addr));
    CHECK(pthread_create(&completer, NULL, completer_main, NULL) == 0);
    grpc_channel *ch = client_open(addr);
    for (int i = 0; i < DEFERRED; i++) {
        snprintf(bodies[i], sizeof(bodies[i]), "d%d", i);
        call_start(&held[i], ch, "/test.Echo/Defer", bodies[i], 2, 30000);
    }
    CHECK(defer_wait(DEFERRED));

    struct stopper st = {.srv = srv};
    atomic_init(&st.done, false);
    CHECK(pthread_create(&st.thread, NULL, stop_main, &st) == 0);
    CHECK(probe_until_refused(ch));
    CHECK(!atomic_load(&st.done)); /* waiting for the deferred calls */
    completer_open();
    int ok = 0;
    for (int i = 0; i < DEFERRED; i++) {
        call_finish(&held[i]);
        char want[2] = {bodies[i][1], bodies[i][0]};
        ok += held[i].status == GRPC_STATUS_OK && held[i].len == 2 &&
              memcmp(held[i].body, want, 2) == 0;
    }
    CHECK(ok == DEFERRED);
    pthread_join(st.thread, NULL);
    completer_quit();
    pthread_join(completer, NULL);
    grpc_channel_destroy(ch);
}

/* Past the grace, server_stop cancels the deferred calls at the core, and
 * returns once their completer has completed them all the same. */
static void test_stop_cancels_deferred_calls_after_grace(void)
{
    enum { DEFERRED = 2 };
    static struct client_call held[DEFERRED];
    struct server *srv;
    char addr[64];
    pthread_t completer;
    completer_reset(false, 0);
    CHECK_OK(start_streams(1, 100, 64, &srv, addr));
    CHECK(pthread_create(&completer, NULL, completer_main, NULL) == 0);
    grpc_channel *ch = client_open(addr);
    for (int i = 0; i < DEFERRED; i++)
        call_start(&held[i], ch, "/test.Echo/Defer", "abc", 3, 30000);
    CHECK(defer_wait(DEFERRED));

    struct stopper st = {.srv = srv};
    atomic_init(&st.done, false);
    CHECK(pthread_create(&st.thread, NULL, stop_main, &st) == 0);
    for (int i = 0; i < DEFERRED; i++) {
        call_finish(&held[i]);
        CHECK(held[i].status != GRPC_STATUS_OK && !held[i].has_body);
    }
    CHECK(!atomic_load(&st.done)); /* the calls are not completed yet */
    completer_open();
    pthread_join(st.thread, NULL);
    /* Completed, not merely cancelled: the stop waited for server_complete
     * (whose return the completer counts only after the stop may have). */
    CHECK(defer_started() == DEFERRED);
    CHECK(defer_wait_completed(DEFERRED));
    completer_quit();
    pthread_join(completer, NULL);
    grpc_channel_destroy(ch);
}

/* Many deferred calls on two workers, completed from two threads at once:
 * each gets its own reply, and each is counted once. */
static void test_many_deferred_calls_from_two_threads(void)
{
    enum { WAVES = 4, WAVE = 125, COMPLETERS = 2 };
    static struct client_call calls[WAVE];
    struct server *srv;
    char addr[64], bodies[WAVE][8];
    pthread_t completers[COMPLETERS];
    completer_reset(true, 0);
    CHECK_OK(start_streams(2, 1000, 2 * WAVE, &srv, addr));
    for (int t = 0; t < COMPLETERS; t++)
        CHECK(pthread_create(&completers[t], NULL, completer_main, NULL) == 0);
    grpc_channel *ch = client_open(addr);
    int ok = 0;
    for (int w = 0; w < WAVES; w++) {
        for (int i = 0; i < WAVE; i++) {
            snprintf(bodies[i], sizeof(bodies[i]), "%04d", w * WAVE + i);
            call_start(&calls[i], ch, "/test.Echo/Defer", bodies[i], 4, 30000);
        }
        for (int i = 0; i < WAVE; i++) {
            call_finish(&calls[i]);
            char want[4] = {bodies[i][3], bodies[i][2], bodies[i][1], bodies[i][0]};
            ok += calls[i].status == GRPC_STATUS_OK && calls[i].len == 4 &&
                  memcmp(calls[i].body, want, 4) == 0;
        }
    }
    CHECK(ok == WAVES * WAVE);
    const struct metrics *m = server_metrics(srv);
    CHECK(await_counted(m, DEFER, WAVES * WAVE));
    CHECK(metrics_handled(m, DEFER, GRPC_STATUS_OK) == WAVES * WAVE);
    grpc_channel_destroy(ch);
    server_stop(srv);
    completer_quit();
    for (int t = 0; t < COMPLETERS; t++)
        pthread_join(completers[t], NULL);
    CHECK(defer_completed() == WAVES * WAVE);
}

/* Every worker runs thread_start before its first call and thread_stop
 * after its last; calls are served only on hooked threads. */
static void test_hooks_run_on_every_worker(void)
{
    enum { THREADS = 3, CALLS = 30 };
    static struct hook_runs runs;
    struct server_hooks hooks = {hook_start, hook_stop, &runs};
    struct server *srv;
    char addr[64];
    CHECK_OK(start_hooked(THREADS, 1000, &hooks, &srv, addr));
    grpc_channel *ch = client_open(addr);
    static struct client_call calls[CALLS];
    for (int i = 0; i < CALLS; i++)
        call_start(&calls[i], ch, "/test.Echo/Hooked", "x", 1, 10000);
    int ok = 0;
    for (int i = 0; i < CALLS; i++) {
        call_finish(&calls[i]);
        ok += calls[i].status == GRPC_STATUS_OK;
    }
    grpc_channel_destroy(ch);
    server_stop(srv);
    CHECK(ok == CALLS);
    CHECK(atomic_load(&runs.starts) == THREADS);
    CHECK(atomic_load(&runs.stops) == THREADS);
}

static void test_bind_failure_is_reported(void)
{
    struct server *a, *b;
    char addr[64];
    CHECK_OK(start(1, 1000, &a, addr));
    CHECK(server_port(a) > 0);
    struct config cfg = test_config(1, 1 << 20, 0);
    snprintf(cfg.listen, sizeof(cfg.listen), "%s", addr);
    struct err e = {0};
    int rc = server_start(&cfg, methods, N_METHODS, NULL, &b, &e);
    server_stop(a);
    CHECK_RC(rc, ERR_INVALID);
    CHECK_STR_HAS(e.msg, addr);

    snprintf(cfg.listen, sizeof(cfg.listen), "not an address");
    CHECK_RC(server_start(&cfg, methods, N_METHODS, NULL, &b, &e), ERR_INVALID);
}

static void test_duplicate_method_is_refused(void)
{
    const struct server_method twice[] = {methods[0], methods[0]};
    struct config cfg = test_config(1, 1 << 20, 0);
    struct server *srv;
    struct err e = {0};
    CHECK_RC(server_start(&cfg, twice, 2, NULL, &srv, &e), ERR_INTERNAL);
    CHECK_STR_HAS(e.msg, "/test.Echo/Reverse");
}

int main(int argc, char **argv)
{
    static const struct check_case cases[] = {
        CHECK_CASE(test_reverse_round_trip),
        CHECK_CASE(test_handler_status_and_text),
        CHECK_CASE(test_stream_answers_each_message),
        CHECK_CASE(test_server_answers_itself),
        CHECK_CASE(test_expired_call_is_not_run),
        CHECK_CASE(test_many_calls_in_flight),
        CHECK_CASE(test_stop_lets_calls_in_flight_finish),
        CHECK_CASE(test_stop_cancels_calls_after_grace),
        CHECK_CASE(test_deferred_calls_free_their_worker),
        CHECK_CASE(test_stream_is_not_deferred),
        CHECK_CASE(test_deferred_call_outlived_by_its_deadline),
        CHECK_CASE(test_stop_waits_for_deferred_calls),
        CHECK_CASE(test_stop_cancels_deferred_calls_after_grace),
        CHECK_CASE(test_many_deferred_calls_from_two_threads),
        CHECK_CASE(test_hooks_run_on_every_worker),
        CHECK_CASE(test_bind_failure_is_reported),
        CHECK_CASE(test_duplicate_method_is_refused),
    };
    grpc_init();
    int rc = check_main(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
    grpc_shutdown();
    return rc;
}
