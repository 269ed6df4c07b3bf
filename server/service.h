/*
 * service: the RPC methods recsysd serves, as one table.
 *
 * Each method is a path, the protobuf-c descriptor of its request, the query
 * that answers it and the largest request it accepts. One generic handler
 * does the rest for every method, in this order:
 *
 *   1. a request longer than the method's limit       -> INVALID_ARGUMENT
 *   2. bytes that do not decode as the request message -> INVALID_ARGUMENT
 *   3. the model set's view is read, once, and the call's model picked
 *      there (models_pick): the one its `model` field names, else its
 *      user's arm of the route     a name no model has -> NOT_FOUND
 *   4. that model not loaded (all but health, GetModelInfo and reflection)
 *                                                      -> UNAVAILABLE
 *   5. the query; its error code maps to a status through err_status()
 *      and its struct err text becomes the status details
 *   6. the response is encoded into the worker's arena, and only then is
 *      the view let go: nothing of the call can point into a model a
 *      reloader has unmapped.
 *
 * Methods: /recsys.v1.Recommender/{Recommend,BatchRecommend,CheckEligibility,
 * SimilarItems,GetModelInfo}; the writes RecordEvents and ForgetUser, which
 * hand their work to the live events store and reply once it is durable
 * (server_defer: the worker serves other calls meanwhile); the standard
 * /grpc.health.v1.Health/Check, which answers SERVING for "" and "recsys.v1.Recommender" while
 * every model the route sends users to is loaded (models_ready), NOT_SERVING otherwise, and
 * NOT_FOUND for any other service name; and server
 * reflection (reflect.h), a stream, in its v1 and v1alpha names. GetModelInfo, health and
 * reflection answer without a model too: GetModelInfo reports why there is none.
 */
#pragma once

#include <stddef.h>

#include "engine/models.h"
#include "server/server.h"

struct service;
struct events;

/* The live events the service reads and writes (state/events.h). */
struct service_state {
    struct events *events; /* NULL: none kept (RecordEvents: FAILED_PRECONDITION) */
    const char *dir;       /* --state-dir, for GetModelInfo; "" for none */
    const char *error;     /* why there is no store though dir is set; "" */
};

/* service_create - a service answering from the models @ms serves.
 * @ms:    borrowed; must outlive the service and the server using its
 *         methods. Its models must have one lookup slot per server worker.
 * @state: copied; what it points to is borrowed: the store must have one
 *         read slot per worker and stay open until the server has stopped
 *         (its writer completes the deferred writes). NULL: no live events.
 * @out:   receives the service; free it with service_destroy.
 * Returns 0 or -ENOMEM. */
int service_create(const struct models *ms, const struct service_state *state,
                   struct service **out);

/* service_destroy - free @svc. NULL is a no-op. */
void service_destroy(struct service *svc);

/* service_methods - the table to hand to server_start. Borrowed from @svc:
 * valid until service_destroy. *n receives its length. */
const struct server_method *service_methods(const struct service *svc, size_t *n);

/* service_hooks - the worker hooks to hand to server_start with the
 * methods: they make each worker a reader of the models' views.
 * Static storage. */
const struct server_hooks *service_hooks(const struct service *svc);
