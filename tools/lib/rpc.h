/*
 * rpc: one unary gRPC call over the gRPC C core client API, as bytes in and
 * bytes + status out. The rest of recsys-cli never sees a gRPC type: it packs
 * a request with protobuf-c, calls rpc_call, and unpacks what comes back.
 *
 * A client owns one channel (plaintext, or TLS) and one pluck completion
 * queue. Calls are made one at a time from one thread (the CLI makes
 * exactly one).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct rpc_client;

/* What a completed call ended with. Every field is owned by the reply and
 * freed by rpc_reply_free. */
struct rpc_reply {
    int status;    /* a grpc_status_code; 0 (OK) means @data holds the answer */
    char *details; /* the status message, NUL-terminated; "" when none */
    uint8_t *data; /* the response message; NULL when the server sent none */
    size_t len;
};

/* TLS for a channel: PEM file paths. ca: the CAs the server's certificate
 * must chain to (NULL: the system's); cert and key: the client's own, for
 * a server that requires one (both or neither). */
struct rpc_tls {
    const char *ca, *cert, *key;
};

/* rpc_client_open - initialise gRPC and create a channel to @addr
 * ("host:port", or any target grpc_channel_create accepts), over TLS when
 * @tls is not NULL. No connection is made yet: the first call connects.
 * Returns 0, -ENOMEM, ERR_INVALID (a TLS file cannot be read, or cert
 * without key: the text is in @e) or ERR_INTERNAL; on success the caller
 * owns *out and closes it with rpc_client_close. */
int rpc_client_open(const char *addr, const struct rpc_tls *tls, struct rpc_client **out,
                    struct err *e);

/* rpc_client_close - destroy the channel and shut gRPC down. NULL is a no-op. */
void rpc_client_close(struct rpc_client *c);

/* rpc_call - call unary @method ("/package.Service/Method") with the packed
 * request @req[0..len), waiting at most @timeout_s seconds (the call's
 * deadline, which covers connecting too). The call fails fast, with
 * UNAVAILABLE, when the server cannot be reached.
 *
 * Returns 0 when the call completed, whatever its status: the outcome is in
 * *out, which the caller frees with rpc_reply_free. Returns -ENOMEM or
 * ERR_INTERNAL when the call could not be made at all; *out is then empty. */
int rpc_call(struct rpc_client *c, const char *method, const uint8_t *req, size_t len,
             double timeout_s, struct rpc_reply *out);

/* rpc_reply_free - release what rpc_call put in @r and empty it. */
void rpc_reply_free(struct rpc_reply *r);
