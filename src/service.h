/*
 * service: the RPC methods recsysd serves, as one table.
 *
 * Each method is a path, the protobuf-c descriptor of its request, the query
 * that answers it and the largest request it accepts. One generic handler
 * does the rest for every method, in this order:
 *
 *   1. a request longer than the method's limit       -> INVALID_ARGUMENT
 *   2. bytes that do not decode as the request message -> INVALID_ARGUMENT
 *   3. no model loaded (all but the health check)      -> UNAVAILABLE
 *   4. the query; its error code maps to a status through err_grpc_status()
 *      and its struct err text becomes the status details
 *   5. the response is encoded into the worker's arena
 *
 * Methods: /recsys.v1.Recommender/{Recommend,CheckEligibility,SimilarItems,
 * GetModelInfo} and the standard /grpc.health.v1.Health/Check, which answers
 * SERVING for "" and "recsys.v1.Recommender" when a model is loaded,
 * NOT_SERVING when none is, and NOT_FOUND for any other service name.
 */
#pragma once

#include <stddef.h>

#include "model/model.h"
#include "server.h"

struct service;

/* service_create - a service answering from @model.
 * @model: borrowed; may be NULL (every query then answers UNAVAILABLE). It
 *         must have been opened with one lookup slot per server worker, and
 *         must outlive the service and the server using its methods.
 * @out:   receives the service; free it with service_destroy.
 * Returns 0 or -ENOMEM. */
int service_create(const struct model *model, struct service **out);

/* service_destroy - free @svc. NULL is a no-op. */
void service_destroy(struct service *svc);

/* service_methods - the table to hand to server_start. Borrowed from @svc:
 * valid until service_destroy. *n receives its length. */
const struct server_method *service_methods(const struct service *svc, size_t *n);
