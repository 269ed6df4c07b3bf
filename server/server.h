/*
 * server: the gRPC C core plumbing of recsysd, and nothing else.
 *
 * It binds the listen address, runs config->threads worker threads, each
 * with its own completion queue, and answers unary calls to the methods in
 * a table by calling their handler on the worker that received the call,
 * start to finish (and streams, message by message, on one worker too). It knows nothing about
 * protobuf or the model: a handler gets the request message's bytes and returns a status and the
 * response message's bytes. What the server itself answers:
 *
 *   - a method not in the table:              UNIMPLEMENTED
 *   - a call without a request message:       INVALID_ARGUMENT
 *   - a call whose deadline passed before a worker picked it up:
 *                                             DEADLINE_EXCEEDED, handler not run
 *   - a request larger than max_request_bytes, compressed or not:
 *                                             RESOURCE_EXHAUSTED
 *   - a call beyond config->max_calls in flight (a quarter of them for
 *     streams):                               RESOURCE_EXHAUSTED, handler not run
 *   - a request string field with a NUL byte or invalid UTF-8 (service.c):
 *                                             INVALID_ARGUMENT
 *
 * A call whose client leaves its reply untaken, or a stream its next
 * message, is cancelled after a while (server.c: REPLY_WAIT_MS and
 * STREAM_WAIT_MS), so no client holds the server's capacity for long.
 * Connections are bounded by the config's connection settings (streams,
 * keepalive, idle time, age).
 *
 * Every answered call is counted by method, status and handling time
 * (server_metrics), refused ones included.
 *
 * A unary handler whose answer must wait (a write made durable, say) does
 * not hold its worker for it: it defers the call (server_defer), and any
 * thread gives the reply later (server_complete).
 *
 * Shutdown is graceful: every call already received is taken in, no new
 * connection or call is accepted, the calls in flight run to completion for
 * up to config->grace_ms, then the rest are cancelled.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/err.h"
#include "server/config.h"

struct metrics;
struct server;
struct server_deferred;
struct server_method;

/* One call, as a handler sees it. Everything here is valid only during the
 * handler invocation. */
struct server_call {
    const struct server_method *method; /* the table row that matched */
    unsigned worker;                    /* 0..threads-1: the calling worker thread */
    struct arena *arena;                /* the worker's arena; reset after the reply */
    const uint8_t *data;                /* the request message, in @arena */
    size_t len;
    struct metrics *metrics; /* the server's: the handler may note outcomes (metrics_note) */
    /* The server's, not the handler's: the call server_defer acts on.
     * Never read or write it. */
    struct server_deferred *self;
};

/* What a handler answers. The server starts with status OK and nothing else
 * set. data and details must stay valid until the handler returns to the
 * server: the arena or static storage both do. */
struct server_reply {
    int status;          /* a grpc_status_code */
    const uint8_t *data; /* response message; sent only when status is OK */
    size_t len;
    const char *details; /* status text for the client; NULL for none */
};

/* Runs on a worker thread; must not block for long, as the worker serves
 * nothing else meanwhile. A unary handler whose answer must wait (for a
 * disk, another service) defers it instead (server_defer). */
typedef void (*server_handler_fn)(const struct server_call *call, struct server_reply *reply);

/* server_defer - called by a unary handler, on its worker, during the
 * handler: the call's reply will be given later by server_complete, from
 * any thread, and the worker is free to serve other calls meanwhile.
 * The handler then returns leaving @reply as it is: it is ignored.
 * @call: the handler's own call.
 * The request bytes (call->data, call->arena and everything in it) are not
 * valid once the handler returns: copy what the answer needs. The call
 * stays in flight until completed: it holds one of config->max_calls, its
 * client's deadline and cancel still apply (the completion then merely
 * finds the call gone), and server_stop waits for it.
 * Returns the handle, owned by the completer until it passes it to
 * server_complete; NULL for a stream, whose handler answers normally. At
 * most once per call. */
struct server_deferred *server_defer(const struct server_call *call);

/* server_complete - send @reply as the answer of the deferred call @d.
 * @reply: status, message (sent only when the status is OK) and details;
 *         borrowed, all copied before this returns.
 * Exactly once per handle, from any thread (the handler's own included),
 * also after the client has gone or while the server is stopping: the
 * call's resources are freed only by it. @d is invalid once this returns.
 * Never blocks on the client. The call is counted (server_metrics) on its
 * worker, once the reply is sent or found undeliverable: as CANCELLED if
 * the client had gone. Nothing of the handler's server_call may be used
 * here (metrics_note is the worker's alone). */
void server_complete(struct server_deferred *d, const struct server_reply *reply);

struct server_method {
    const char *path; /* "/package.Service/Method" */
    server_handler_fn handler;
    void *arg; /* for the handler, through call->method->arg */
    /* A bidirectional stream answered message by message (the reflection
     * service): the handler runs once per request message and its reply is
     * sent as one response message; a non-OK reply ends the stream with
     * that status, and the client closing its side ends it with OK. */
    bool stream;
    /* Answered the moment it arrives, ahead of the calls queued: cheap
     * calls whose answer matters most under overload (the health check, so
     * that a busy daemon is not also declared dead by its probes). */
    bool urgent;
};

/* Per-thread set-up the handlers rely on, such as registering each worker
 * as an RCU reader. Each worker thread calls thread_start(arg) before it
 * serves its first call and thread_stop(arg) after its last, both on
 * itself; no other thread calls either. Either function may be NULL. */
struct server_hooks {
    void (*thread_start)(void *arg);
    void (*thread_stop)(void *arg);
    void *arg;
};

/* server_start - create, bind and start the server; return once it accepts calls.
 * @cfg:     listen, threads, max_request_bytes, grace_ms, max_calls and the
 *           connection settings are used.
 * @methods: the unary methods to serve; borrowed, must outlive the server.
 * @hooks:   run on every worker thread; copied. NULL for none.
 * @out:     receives the server; stop and free it with server_stop.
 * @e:       receives the reason on failure; may be NULL.
 * grpc_init() must have been called. Returns 0, ERR_INVALID (the address
 * cannot be bound: malformed, not local, or in use), -ENOMEM, -errno of
 * pthread_create, or ERR_INTERNAL (the core refused a method or a queue, or
 * a method path is not "/package.Service/Method").
 * On failure nothing is left running. */
int server_start(const struct config *cfg, const struct server_method *methods, size_t n_methods,
                 const struct server_hooks *hooks, struct server **out, struct err *e);

/* server_port - the port actually bound (the real one when listening on port 0). */
int server_port(const struct server *s);

/* server_metrics - what the server has answered so far, per method and
 * status (metrics.h); valid until server_stop. Readable from any thread. */
const struct metrics *server_metrics(const struct server *s);

/* server_stop - stop accepting calls, let those in flight finish for up to
 * the grace period, cancel the rest, join the workers and free @s.
 * NULL is a no-op.
 * Deferred calls (server_defer) count as in flight: those completed within
 * the grace get their reply; the rest are cancelled at the core then, but
 * each must still be completed (server_complete) before their worker can
 * exit, and this returns only after. So whatever completes deferred calls
 * must keep running until this returns: stop the server first, then the
 * completer. */
void server_stop(struct server *s);
