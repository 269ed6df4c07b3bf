#include "server/service.h"

#include <errno.h>
#include <grpc/status.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "engine/batch.h"
#include "engine/eligibility.h"
#include "engine/info.h"
#include "engine/query.h"
#include "engine/recommend.h"
#include "engine/similar.h"
#include "grpc/health/v1/health.pb-c.h"
#include "recsys/v1/recommender.pb-c.h"
#include "server/metrics.h"
#include "server/reflect.h"
#include "server/wire.h"

/* err.h numbers the statuses as gRPC does, so the server hands them to the
 * core as they are. */
_Static_assert(ERR_STATUS_OK == (int)GRPC_STATUS_OK &&
                   ERR_STATUS_CANCELLED == (int)GRPC_STATUS_CANCELLED &&
                   ERR_STATUS_UNKNOWN == (int)GRPC_STATUS_UNKNOWN &&
                   ERR_STATUS_INVALID_ARGUMENT == (int)GRPC_STATUS_INVALID_ARGUMENT &&
                   ERR_STATUS_DEADLINE_EXCEEDED == (int)GRPC_STATUS_DEADLINE_EXCEEDED &&
                   ERR_STATUS_NOT_FOUND == (int)GRPC_STATUS_NOT_FOUND &&
                   ERR_STATUS_ALREADY_EXISTS == (int)GRPC_STATUS_ALREADY_EXISTS &&
                   ERR_STATUS_PERMISSION_DENIED == (int)GRPC_STATUS_PERMISSION_DENIED &&
                   ERR_STATUS_RESOURCE_EXHAUSTED == (int)GRPC_STATUS_RESOURCE_EXHAUSTED &&
                   ERR_STATUS_FAILED_PRECONDITION == (int)GRPC_STATUS_FAILED_PRECONDITION &&
                   ERR_STATUS_ABORTED == (int)GRPC_STATUS_ABORTED &&
                   ERR_STATUS_OUT_OF_RANGE == (int)GRPC_STATUS_OUT_OF_RANGE &&
                   ERR_STATUS_UNIMPLEMENTED == (int)GRPC_STATUS_UNIMPLEMENTED &&
                   ERR_STATUS_INTERNAL == (int)GRPC_STATUS_INTERNAL &&
                   ERR_STATUS_UNAVAILABLE == (int)GRPC_STATUS_UNAVAILABLE &&
                   ERR_STATUS_DATA_LOSS == (int)GRPC_STATUS_DATA_LOSS &&
                   ERR_STATUS_UNAUTHENTICATED == (int)GRPC_STATUS_UNAUTHENTICATED,
               "err.h's status codes are gRPC's");

/* ---- the method table ---------------------------------------------------- */

/* Every query, seen through its generic protobuf-c type. */
typedef int (*run_fn)(const struct query *q, const ProtobufCMessage *req, ProtobufCMessage **out,
                      struct err *e);

/* ADAPT(name, fn, Req, Resp) defines `name`, a run_fn calling the typed
 * query @fn, so the table needs no function pointer casts. */
#define ADAPT(name, fn, Req, Resp)                                                                 \
    static int name(const struct query *q, const ProtobufCMessage *req, ProtobufCMessage **out,    \
                    struct err *e)                                                                 \
    {                                                                                              \
        Resp *resp = NULL;                                                                         \
        int rc = fn(q, (const Req *)req, &resp, e);                                                \
        *out = resp != NULL ? &resp->base : NULL;                                                  \
        return rc;                                                                                 \
    }

static int health_check(const struct query *q, const Grpc__Health__V1__HealthCheckRequest *req,
                        Grpc__Health__V1__HealthCheckResponse **out, struct err *e);

ADAPT(run_recommend, recommend_run, Recsys__V1__RecommendRequest, Recsys__V1__RecommendResponse)
ADAPT(run_eligibility, eligibility_run, Recsys__V1__EligibilityRequest,
      Recsys__V1__EligibilityResponse)
ADAPT(run_similar, similar_run, Recsys__V1__SimilarItemsRequest, Recsys__V1__RecommendResponse)
ADAPT(run_info, info_run, Recsys__V1__ModelInfoRequest, Recsys__V1__ModelInfo)
ADAPT(run_batch, batch_run, Recsys__V1__BatchRecommendRequest, Recsys__V1__BatchRecommendResponse)
ADAPT(run_reflect, reflect_run, Grpc__Reflection__V1__ServerReflectionRequest,
      Grpc__Reflection__V1__ServerReflectionResponse)
ADAPT(run_health, health_check, Grpc__Health__V1__HealthCheckRequest,
      Grpc__Health__V1__HealthCheckResponse)

/* Request limits follow from the query limits, so a request the query
 * would accept is never refused for its size. The largest encoding of one
 * string field: a 1-byte tag, a 2-byte length, MODEL_ID_MAX bytes. */
#define ID_FIELD          (1 + 2 + MODEL_ID_MAX)
#define SCALARS           32 /* count, purchasable_only and their tags, with room to spare */
#define ID_FIELDS(n)      ((size_t)(n)*ID_FIELD)
#define RECOMMEND_REQUEST (ID_FIELDS(1 + 2 * QUERY_IDS_MAX + QUERY_CATEGORIES_MAX) + SCALARS)
/* A host and a symbol or file name. */
#define REFLECT_REQUEST (ID_FIELDS(2) + SCALARS)
/* A batch's requests, each embedded with a tag and a 3-byte length. */
#define BATCH_REQUEST (BATCH_MAX * (4 + RECOMMEND_REQUEST))

/* Notes on an answer, for the metrics (metrics_note). */
typedef void (*note_fn)(const struct server_call *call, const ProtobufCMessage *resp);

static void note_recommend(const struct server_call *call, const ProtobufCMessage *resp);
static void note_batch(const struct server_call *call, const ProtobufCMessage *resp);

struct method {
    const char *path;
    const ProtobufCMessageDescriptor *request;
    run_fn run;
    note_fn note; /* NULL: nothing to note */
    size_t max_request_bytes;
    bool needs_model; /* false for the methods that report its absence */
    bool stream;      /* a stream answered message by message (server.h) */
};

static const struct method methods[] = {
    {"/recsys.v1.Recommender/Recommend", &recsys__v1__recommend_request__descriptor, run_recommend,
     note_recommend, RECOMMEND_REQUEST, true, false},
    {"/recsys.v1.Recommender/BatchRecommend", &recsys__v1__batch_recommend_request__descriptor,
     run_batch, note_batch, BATCH_REQUEST, true, false},
    {"/recsys.v1.Recommender/CheckEligibility", &recsys__v1__eligibility_request__descriptor,
     run_eligibility, NULL, ID_FIELDS(1 + 2 * QUERY_IDS_MAX) + SCALARS, true, false},
    {"/recsys.v1.Recommender/SimilarItems", &recsys__v1__similar_items_request__descriptor,
     run_similar, NULL, ID_FIELDS(2 + QUERY_IDS_MAX + QUERY_CATEGORIES_MAX) + SCALARS, true, false},
    {"/recsys.v1.Recommender/GetModelInfo", &recsys__v1__model_info_request__descriptor, run_info,
     NULL, SCALARS, false, false},
    {"/grpc.health.v1.Health/Check", &grpc__health__v1__health_check_request__descriptor,
     run_health, NULL, ID_FIELD, false, false},
    /* v1alpha's messages are v1's on the wire. */
    {"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
     &grpc__reflection__v1__server_reflection_request__descriptor, run_reflect, NULL,
     REFLECT_REQUEST, false, true},
    {"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
     &grpc__reflection__v1__server_reflection_request__descriptor, run_reflect, NULL,
     REFLECT_REQUEST, false, true},
};

#define N_METHODS (sizeof(methods) / sizeof(methods[0]))

/* What the server passes back to the handler with each call. */
struct binding {
    const struct service *svc;
    const struct method *method;
};

struct service {
    /* Its snapshot is read once per call, and that one model serves the
     * whole call, so a response never mixes two models. */
    const struct reload *reload;
    struct binding bindings[N_METHODS];
    struct server_method table[N_METHODS];
};

/* ---- the health check ---------------------------------------------------- */

static int health_check(const struct query *q, const Grpc__Health__V1__HealthCheckRequest *req,
                        Grpc__Health__V1__HealthCheckResponse **out, struct err *e)
{
    /* "" is the server as a whole, by the health protocol's convention. */
    const char *const served[] = {"", recsys__v1__recommender__descriptor.name};
    bool known = false;
    for (size_t i = 0; i < sizeof(served) / sizeof(served[0]); i++)
        known |= strcmp(req->service, served[i]) == 0;
    if (!known)
        return err_set(e, ERR_NOT_FOUND, "unknown service '%.*s'", MODEL_ID_MAX, req->service);
    Grpc__Health__V1__HealthCheckResponse *resp = arena_alloc(q->arena, sizeof(*resp));
    if (resp == NULL)
        return -ENOMEM;
    grpc__health__v1__health_check_response__init(resp);
    resp->status = q->model != NULL
                       ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                       : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
    *out = resp;
    return 0;
}

/* ---- notes ----------------------------------------------------------------- */

static void note_source(const struct server_call *call, Recsys__V1__Source source)
{
    metrics_note(call->metrics, call->worker,
                 source == RECSYS__V1__SOURCE__POPULAR ? METRICS_POPULAR : METRICS_PERSONALIZED, 1);
}

static void note_recommend(const struct server_call *call, const ProtobufCMessage *resp)
{
    note_source(call, ((const Recsys__V1__RecommendResponse *)resp)->source);
}

static void note_batch(const struct server_call *call, const ProtobufCMessage *resp)
{
    const Recsys__V1__BatchRecommendResponse *b = (const Recsys__V1__BatchRecommendResponse *)resp;
    for (size_t i = 0; i < b->n_responses; i++)
        note_source(call, b->responses[i]->source);
}

/* ---- the generic handler ------------------------------------------------- */

static int encode(struct arena *a, const ProtobufCMessage *msg, struct server_reply *reply)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = arena_alloc(a, len > 0 ? len : 1);
    if (buf == NULL)
        return -ENOMEM;
    reply->data = buf;
    reply->len = protobuf_c_message_pack(msg, buf);
    return 0;
}

/* answer - run the query on one snapshot and encode its response. */
static int answer(const struct method *m, const struct reload_snapshot *snap,
                  const ProtobufCMessage *req, const struct server_call *call,
                  struct server_reply *reply, struct err *e)
{
    if (snap->model == NULL && m->needs_model)
        return err_set(e, ERR_NO_MODEL, "no model loaded");
    struct model_status status = {.loads = snap->reload_count,
                                  .failed_loads = snap->failed_count,
                                  .last_attempt_unix = snap->last_attempt_unix,
                                  .last_error = snap->last_error,
                                  .watching = snap->watching};
    struct query q = {
        .model = snap->model, .slot = call->worker, .arena = call->arena, .status = &status};
    ProtobufCMessage *resp = NULL;
    int rc = m->run(&q, req, &resp, e);
    if (rc != 0)
        return rc;
    if (m->note != NULL && call->metrics != NULL)
        m->note(call, resp);
    return encode(call->arena, resp, reply);
}

static int serve(const struct service *svc, const struct method *m, const struct server_call *call,
                 struct server_reply *reply, struct err *e)
{
    if (call->len > m->max_request_bytes)
        return err_set(e, ERR_INVALID, "request of %zu bytes exceeds the %zu-byte limit of %s",
                       call->len, m->max_request_bytes, m->request->name);
    int rc = wire_check_strings(m->request, call->data, call->len, e);
    if (rc != 0)
        return rc;
    ProtobufCAllocator alloc = arena_protobuf(call->arena);
    ProtobufCMessage *req = protobuf_c_message_unpack(m->request, &alloc, call->len, call->data);
    if (req == NULL)
        return err_set(e, ERR_INVALID, "request is not a valid %s", m->request->name);
    /* The section spans the query and the encoding: until it ends, the
     * reloader unmaps nothing this call may still read. */
    const struct reload_snapshot *snap = reload_read_begin(svc->reload);
    rc = answer(m, snap, req, call, reply, e);
    reload_read_end(svc->reload);
    return rc;
}

static void handle(const struct server_call *call, struct server_reply *reply)
{
    const struct binding *b = call->method->arg;
    struct err e = {0};
    int rc = serve(b->svc, b->method, call, reply, &e);
    if (rc == 0)
        return;
    reply->status = err_status(rc);
    /* The text must outlive this frame: the server sends it after we return. */
    const char *text = e.msg[0] != '\0' ? e.msg : err_strerror(rc);
    const char *copy = arena_strndup(call->arena, text, strlen(text));
    reply->details = copy != NULL ? copy : err_strerror(rc);
}

/* ---- lifetime ------------------------------------------------------------ */

static void reader_register(void *arg)
{
    reload_reader_register();
}

static void reader_unregister(void *arg)
{
    reload_reader_unregister();
}

static const struct server_hooks reader_hooks = {reader_register, reader_unregister, NULL};

int service_create(const struct reload *r, struct service **out)
{
    struct service *svc = calloc(1, sizeof(*svc));
    if (svc == NULL)
        return -ENOMEM;
    svc->reload = r;
    for (size_t i = 0; i < N_METHODS; i++) {
        svc->bindings[i] = (struct binding){.svc = svc, .method = &methods[i]};
        svc->table[i] =
            (struct server_method){.path = methods[i].path,
                                   .handler = handle,
                                   .arg = &svc->bindings[i],
                                   .stream = methods[i].stream,
                                   /* Health and GetModelInfo: they
                                    * read no model, and probes call
                                    * them. */
                                   .urgent = !methods[i].needs_model && !methods[i].stream};
    }
    *out = svc;
    return 0;
}

void service_destroy(struct service *svc)
{
    free(svc);
}

const struct server_method *service_methods(const struct service *svc, size_t *n)
{
    *n = N_METHODS;
    return svc->table;
}

const struct server_hooks *service_hooks(const struct service *svc)
{
    return &reader_hooks;
}
