#include "tools/lib/rpc.h"

#include <errno.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/pem.h"

struct rpc_client {
    grpc_channel *channel;
    /* A pluck queue: the one batch of a call is waited for by its tag, so
     * nothing else that might land on the queue can be mistaken for it. */
    grpc_completion_queue *cq;
};

/* tls_credentials - the channel credentials of @tls. */
static int tls_credentials(const struct rpc_tls *tls, grpc_channel_credentials **out, struct err *e)
{
    if ((tls->cert != NULL) != (tls->key != NULL))
        return err_set(e, ERR_INVALID, "--tls-cert and --tls-key go together");
    char *ca = NULL, *cert = NULL, *key = NULL;
    int rc = tls->ca != NULL ? pem_read(tls->ca, "TLS CA", &ca, e) : 0;
    if (rc == 0 && tls->cert != NULL)
        rc = pem_read(tls->cert, "TLS certificate", &cert, e);
    if (rc == 0 && tls->key != NULL)
        rc = pem_read(tls->key, "TLS key", &key, e);
    if (rc == 0) {
        grpc_ssl_pem_key_cert_pair pair = {key, cert};
        *out = grpc_ssl_credentials_create_ex(ca, cert != NULL ? &pair : NULL, NULL, NULL);
        rc = *out != NULL ? 0 : err_set(e, ERR_INTERNAL, "gRPC refused the TLS settings");
    }
    pem_free(ca);
    pem_free(cert);
    pem_free(key);
    return rc;
}

int rpc_client_open(const char *addr, const struct rpc_tls *tls, struct rpc_client **out,
                    struct err *e)
{
    struct rpc_client *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    grpc_init();
    grpc_channel_credentials *creds = NULL;
    int rc = tls != NULL ? tls_credentials(tls, &creds, e) : 0;
    if (rc != 0)
        goto out;
    rc = ERR_INTERNAL;
    if (creds == NULL)
        creds = grpc_insecure_credentials_create();
    if (creds == NULL)
        goto out;
    /* With no channel args the defaults fit a CLI: calls are not
     * wait-for-ready, so an unreachable server fails the call at once. */
    c->channel = grpc_channel_create(addr, creds, NULL);
    grpc_channel_credentials_release(creds);
    c->cq = grpc_completion_queue_create_for_pluck(NULL);
    if (c->channel == NULL || c->cq == NULL)
        goto out;
    *out = c;
    c = NULL;
    rc = 0;
out:
    rpc_client_close(c);
    return rc;
}

void rpc_client_close(struct rpc_client *c)
{
    if (c == NULL)
        return;
    if (c->cq != NULL) {
        /* Every batch has completed by now, so the queue reports shutdown at
         * once; the pluck only consumes that event, as destroy requires. */
        grpc_completion_queue_shutdown(c->cq);
        grpc_event ev;
        do
            ev = grpc_completion_queue_pluck(c->cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        while (ev.type != GRPC_QUEUE_SHUTDOWN);
        grpc_completion_queue_destroy(c->cq);
    }
    if (c->channel != NULL)
        grpc_channel_destroy(c->channel);
    free(c);
    grpc_shutdown();
}

static gpr_timespec deadline_after(double seconds)
{
    int64_t us = (int64_t)(seconds * 1e6);
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_micros(us, GPR_TIMESPAN));
}

static char *slice_strdup(grpc_slice s)
{
    return strndup((const char *)GRPC_SLICE_START_PTR(s), GRPC_SLICE_LENGTH(s));
}

/* Copy the received message out of gRPC's buffer into plain heap memory. */
static int take_message(grpc_byte_buffer *bb, struct rpc_reply *out)
{
    grpc_byte_buffer_reader reader;
    if (!grpc_byte_buffer_reader_init(&reader, bb))
        return ERR_INTERNAL;
    grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    int rc = 0;
    out->len = GRPC_SLICE_LENGTH(all);
    /* +1: malloc(0) may return NULL, and an empty message is a valid one. */
    out->data = malloc(out->len + 1);
    if (out->data == NULL)
        rc = -ENOMEM;
    else
        memcpy(out->data, GRPC_SLICE_START_PTR(all), out->len);
    grpc_slice_unref(all);
    return rc;
}

/*
 * The whole unary call is one batch, as in the gRPC core's own unary client
 * tests: send metadata, the request and half-close, and receive metadata,
 * the response and the status. It completes once the status has arrived,
 * which the deadline guarantees happens.
 */
int rpc_call(struct rpc_client *c, const char *method, const uint8_t *req, size_t len,
             double timeout_s, struct rpc_reply *out)
{
    memset(out, 0, sizeof(*out));
    grpc_metadata_array initial_md, trailing_md;
    grpc_metadata_array_init(&initial_md);
    grpc_metadata_array_init(&trailing_md);
    grpc_byte_buffer *response = NULL;
    grpc_status_code status = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();
    int rc = ERR_INTERNAL;

    grpc_slice payload = grpc_slice_from_copied_buffer((const char *)req, len);
    grpc_byte_buffer *request = grpc_raw_byte_buffer_create(&payload, 1);
    grpc_slice_unref(payload);
    grpc_call *call = grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, c->cq,
                                               grpc_slice_from_static_string(method), NULL,
                                               deadline_after(timeout_s), NULL);
    if (call == NULL)
        goto out;

    grpc_op ops[6];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = request;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &response;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trailing_md;
    ops[5].data.recv_status_on_client.status = &status;
    ops[5].data.recv_status_on_client.status_details = &details;
    void *tag = ops;
    if (grpc_call_start_batch(call, ops, sizeof(ops) / sizeof(ops[0]), tag, NULL) != GRPC_CALL_OK)
        goto out;
    grpc_event ev =
        grpc_completion_queue_pluck(c->cq, tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type != GRPC_OP_COMPLETE)
        goto out;

    out->status = (int)status;
    out->details = slice_strdup(details);
    rc = out->details == NULL ? -ENOMEM : 0;
    if (rc == 0 && response != NULL)
        rc = take_message(response, out);
out:
    if (rc != 0)
        rpc_reply_free(out);
    if (call != NULL)
        grpc_call_unref(call);
    grpc_byte_buffer_destroy(request);
    grpc_byte_buffer_destroy(response);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&initial_md);
    grpc_metadata_array_destroy(&trailing_md);
    return rc;
}

void rpc_reply_free(struct rpc_reply *r)
{
    free(r->details);
    free(r->data);
    memset(r, 0, sizeof(*r));
}
