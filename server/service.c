#include "server/service.h"

#include <errno.h>
#include <grpc/status.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "engine/batch.h"
#include "engine/eligibility.h"
#include "engine/filter.h"
#include "engine/info.h"
#include "engine/query.h"
#include "engine/recommend.h"
#include "engine/record.h"
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

/* A Event embedded in RecordEventsRequest: two ids, type, weight and time
 * with their tags, and the embedding's tag and 3-byte length. */
#define RECORD_REQUEST ((size_t)RECORD_EVENTS_MAX * (4 + ID_FIELDS(2) + SCALARS))

/* Notes on an answer, for the metrics: its recommendation lists, counted
 * for the model that answered each (its models_entry counts). */
typedef void (*note_fn)(const struct models_view *v, unsigned worker, const ProtobufCMessage *resp);

static void note_recommend(const struct models_view *v, unsigned worker,
                           const ProtobufCMessage *resp);
static void note_batch(const struct models_view *v, unsigned worker, const ProtobufCMessage *resp);

/* What a request names of its model: its `model` field, and the user whose
 * arm answers when that is "" (models_pick). */
struct route_key {
    const char *model;
    const char *user;
};

typedef struct route_key (*key_fn)(const ProtobufCMessage *req);

static struct route_key key_recommend(const ProtobufCMessage *req)
{
    const Recsys__V1__RecommendRequest *r = (const Recsys__V1__RecommendRequest *)req;
    return (struct route_key){r->model, r->user_id};
}

static struct route_key key_eligibility(const ProtobufCMessage *req)
{
    const Recsys__V1__EligibilityRequest *r = (const Recsys__V1__EligibilityRequest *)req;
    return (struct route_key){r->model, r->user_id};
}

static struct route_key key_similar(const ProtobufCMessage *req)
{
    const Recsys__V1__SimilarItemsRequest *r = (const Recsys__V1__SimilarItemsRequest *)req;
    return (struct route_key){r->model, r->user_id};
}

static struct route_key key_info(const ProtobufCMessage *req)
{
    return (struct route_key){((const Recsys__V1__ModelInfoRequest *)req)->model, ""};
}

/* A batch's own model, else the route's default; its requests each pick
 * theirs (batch_run). */
static struct route_key key_batch(const ProtobufCMessage *req)
{
    return (struct route_key){((const Recsys__V1__BatchRecommendRequest *)req)->model, ""};
}

/* Health, reflection and the writes: the route's default. The writes tell
 * unknown items apart with it. */
static struct route_key key_default(const ProtobufCMessage *req)
{
    return (struct route_key){"", ""};
}

struct service;

/* A method that writes (RecordEvents, ForgetUser): it checks the request
 * with its query, hands the write to the events store and answers once
 * the store reports it durable, through server_defer/server_complete, so
 * the worker serves other calls meanwhile. It may also answer at once,
 * filling @reply (nothing to write, or a refusal). */
typedef int (*write_fn)(const struct service *svc, const struct query *q,
                        const ProtobufCMessage *req, const struct server_call *call,
                        struct server_reply *reply, struct err *e);

static int write_record(const struct service *svc, const struct query *q,
                        const ProtobufCMessage *req, const struct server_call *call,
                        struct server_reply *reply, struct err *e);
static int write_forget(const struct service *svc, const struct query *q,
                        const ProtobufCMessage *req, const struct server_call *call,
                        struct server_reply *reply, struct err *e);

struct method {
    const char *path;
    const ProtobufCMessageDescriptor *request;
    run_fn run;     /* a query; NULL for a write */
    write_fn write; /* a write; NULL for a query */
    key_fn key;     /* which model answers */
    note_fn note;   /* NULL: nothing to note */
    size_t max_request_bytes;
    bool needs_model; /* false for the methods that report its absence */
    bool stream;      /* a stream answered message by message (server.h) */
};

static const struct method methods[] = {
    {"/recsys.v1.Recommender/Recommend", &recsys__v1__recommend_request__descriptor, run_recommend,
     NULL, key_recommend, note_recommend, RECOMMEND_REQUEST, true, false},
    {"/recsys.v1.Recommender/BatchRecommend", &recsys__v1__batch_recommend_request__descriptor,
     run_batch, NULL, key_batch, note_batch, BATCH_REQUEST, true, false},
    {"/recsys.v1.Recommender/CheckEligibility", &recsys__v1__eligibility_request__descriptor,
     run_eligibility, NULL, key_eligibility, NULL, ID_FIELDS(1 + 2 * QUERY_IDS_MAX) + SCALARS, true,
     false},
    {"/recsys.v1.Recommender/SimilarItems", &recsys__v1__similar_items_request__descriptor,
     run_similar, NULL, key_similar, NULL,
     ID_FIELDS(2 + QUERY_IDS_MAX + QUERY_CATEGORIES_MAX) + SCALARS, true, false},
    {"/recsys.v1.Recommender/GetModelInfo", &recsys__v1__model_info_request__descriptor, run_info,
     NULL, key_info, NULL, SCALARS, false, false},
    {"/grpc.health.v1.Health/Check", &grpc__health__v1__health_check_request__descriptor,
     run_health, NULL, key_default, NULL, ID_FIELD, false, false},
    /* v1alpha's messages are v1's on the wire. */
    {"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
     &grpc__reflection__v1__server_reflection_request__descriptor, run_reflect, NULL, key_default,
     NULL, REFLECT_REQUEST, false, true},
    {"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
     &grpc__reflection__v1__server_reflection_request__descriptor, run_reflect, NULL, key_default,
     NULL, REFLECT_REQUEST, false, true},
    /* Last, so the methods before keep their places (the fuzz corpus
     * selects a method by its index). Unknown items are told apart with
     * the model, so the writes need one. */
    {"/recsys.v1.Recommender/RecordEvents", &recsys__v1__record_events_request__descriptor, NULL,
     write_record, key_default, NULL, RECORD_REQUEST, true, false},
    {"/recsys.v1.Recommender/ForgetUser", &recsys__v1__forget_user_request__descriptor, NULL,
     write_forget, key_default, NULL, ID_FIELD + SCALARS, true, false},
};

#define N_METHODS (sizeof(methods) / sizeof(methods[0]))

/* What the server passes back to the handler with each call. */
struct binding {
    const struct service *svc;
    const struct method *method;
};

struct service {
    /* Its view is read once per call, and the one model picked there
     * serves the whole call (each request of a batch: its own), so a
     * response never mixes two models. */
    const struct models *models;
    struct events *events; /* NULL: no live events */
    const char *state_dir; /* "" without one */
    const char *state_error;
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
    resp->status = models_ready(q->models)
                       ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                       : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
    *out = resp;
    return 0;
}

/* ---- notes ----------------------------------------------------------------- */

_Static_assert(METRICS_SOURCES <= MODELS_COUNTS, "a model counts its lists by source");

/* note_list - one list of @r's source, for the model that answered it,
 * by worker @worker (its lookup slot). */
static void note_list(const struct models_view *v, unsigned worker,
                      const Recsys__V1__RecommendResponse *r)
{
    struct models_pick pick;
    if (models_pick(v, r->model_name, "", &pick, NULL) != 0)
        return; /* cannot be: the model answered from this view */
    enum metrics_source source = r->source == RECSYS__V1__SOURCE__POPULAR ? METRICS_POPULAR
                                 : r->source == RECSYS__V1__SOURCE__FOLDED_IN
                                     ? METRICS_FOLDED_IN
                                     : METRICS_PERSONALIZED;
    models_count(pick.entry, worker, source, 1);
}

static void note_recommend(const struct models_view *v, unsigned worker,
                           const ProtobufCMessage *resp)
{
    note_list(v, worker, (const Recsys__V1__RecommendResponse *)resp);
}

static void note_batch(const struct models_view *v, unsigned worker, const ProtobufCMessage *resp)
{
    const Recsys__V1__BatchRecommendResponse *b = (const Recsys__V1__BatchRecommendResponse *)resp;
    for (size_t i = 0; i < b->n_responses; i++)
        note_list(v, worker, b->responses[i]);
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

/* no_model - why the model picked cannot answer. */
static int no_model(const struct models_view *v, const struct models_pick *pick, struct err *e)
{
    if (v->dir[0] == '\0')
        return err_set(e, ERR_NO_MODEL, "no model loaded");
    if (pick->snap == NULL)
        return err_set(e, ERR_NO_MODEL,
                       "model '%s', the route's default, is not served: %s/%s.lmdb is missing",
                       pick->name, v->dir, pick->name);
    return err_set(e, ERR_NO_MODEL, "model '%s' is not loaded%s%s%s", pick->name,
                   pick->snap->last_error[0] != '\0' ? " (" : "", pick->snap->last_error,
                   pick->snap->last_error[0] != '\0' ? ")" : "");
}

/* answer - run the query (or the write) on the model picked in view @v
 * and encode its response. */
static int answer(const struct service *svc, const struct method *m, const struct models_view *v,
                  const struct models_pick *pick, const ProtobufCMessage *req,
                  const struct server_call *call, struct server_reply *reply, struct err *e)
{
    const struct reload_snapshot *snap = pick->snap;
    const struct model *model = snap != NULL ? snap->model : NULL;
    if (model == NULL && m->needs_model)
        return no_model(v, pick, e);
    struct model_status status = {.last_error = ""};
    if (snap != NULL)
        status = (struct model_status){.loads = snap->reload_count,
                                       .failed_loads = snap->failed_count,
                                       .last_attempt_unix = snap->last_attempt_unix,
                                       .last_error = snap->last_error,
                                       .watching = snap->watching};
    /* The sum over the workers only for the call that reports it. */
    struct live_status live = {.dir = svc->state_dir,
                               .error = svc->state_error,
                               .fold_ins = m->run == run_info && call->metrics != NULL
                                               ? metrics_noted(call->metrics, METRICS_FOLD_INS)
                                               : 0};
    struct query_stats stats = {0};
    struct query q = {.model = model,
                      .model_name = pick->name,
                      .slot = call->worker,
                      .arena = call->arena,
                      .status = &status,
                      .events = svc->events,
                      .live = svc->state_dir[0] != '\0' ? &live : NULL,
                      .stats = &stats,
                      .models = v};
    if (m->write != NULL)
        return m->write(svc, &q, req, call, reply, e);
    ProtobufCMessage *resp = NULL;
    int rc = m->run(&q, req, &resp, e);
    if (rc != 0)
        return rc;
    if (call->metrics != NULL) {
        if (m->note != NULL)
            m->note(v, call->worker, resp);
        if (stats.fold_ins > 0) {
            metrics_note(call->metrics, call->worker, METRICS_FOLD_INS, stats.fold_ins);
            metrics_note(call->metrics, call->worker, METRICS_FOLD_IN_NS, stats.fold_in_ns);
        }
        if (stats.state_read_errors > 0)
            metrics_note(call->metrics, call->worker, METRICS_STATE_READ_ERRORS,
                         stats.state_read_errors);
    }
    return encode(call->arena, resp, reply);
}

/* ---- the writes ------------------------------------------------------------ */

/* A write waiting for the store: what its reply needs once it is durable. */
struct pending {
    struct server_deferred *call;
    uint32_t unknown; /* RecordEvents: events not stored, their item unknown */
    bool forget;
};

/* complete - the store's outcome for a pending write, as its reply. On the
 * store's writer thread. */
static void complete(void *arg, const struct events_outcome *o)
{
    struct pending *p = arg;
    struct server_reply reply = {.status = ERR_STATUS_OK};
    uint8_t buf[32];
    if (o->rc != 0) {
        reply.status = err_status(o->rc);
        reply.details = o->why;
    } else if (p->forget) {
        Recsys__V1__ForgetUserResponse r = RECSYS__V1__FORGET_USER_RESPONSE__INIT;
        r.deleted = o->count;
        reply.len = protobuf_c_message_pack(&r.base, buf);
    } else {
        Recsys__V1__RecordEventsResponse r = RECSYS__V1__RECORD_EVENTS_RESPONSE__INIT;
        r.recorded = o->count;
        r.unknown_items = p->unknown;
        reply.len = protobuf_c_message_pack(&r.base, buf);
    }
    reply.data = buf;
    server_complete(p->call, &reply);
    free(p);
}

/* wait_for - answer @p's call now if the store refused its write
 * (@submitted, the store's error, with @se's text); else the store's
 * callback (complete) will. */
static int wait_for(struct pending *p, int submitted, const struct err *se)
{
    if (submitted != 0) {
        struct server_reply reply = {.status = err_status(submitted), .details = se->msg};
        server_complete(p->call, &reply);
        free(p);
    }
    return 0;
}

/* pend - a pending write for @call, deferred; NULL (with @e set) if none
 * can be made. */
static struct pending *pend(const struct server_call *call, uint32_t unknown, bool forget,
                            struct err *e)
{
    struct pending *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        err_set(e, -ENOMEM, "out of memory for a write");
        return NULL;
    }
    p->unknown = unknown;
    p->forget = forget;
    p->call = server_defer(call);
    if (p->call == NULL) {
        free(p);
        err_set(e, ERR_INTERNAL, "a write cannot wait on a stream");
        return NULL;
    }
    return p;
}

static int write_record(const struct service *svc, const struct query *q,
                        const ProtobufCMessage *req, const struct server_call *call,
                        struct server_reply *reply, struct err *e)
{
    struct events_event *list;
    uint32_t n, unknown;
    int rc = record_events(q, (const Recsys__V1__RecordEventsRequest *)req, clock_unix_ms(), &list,
                           &n, &unknown, e);
    if (rc != 0)
        return rc;
    if (n == 0) {
        /* Nothing the model knows: nothing to make durable. */
        Recsys__V1__RecordEventsResponse r = RECSYS__V1__RECORD_EVENTS_RESPONSE__INIT;
        r.unknown_items = unknown;
        return encode(call->arena, &r.base, reply);
    }
    struct pending *p = pend(call, unknown, false, e);
    if (p == NULL)
        return e->code;
    struct err se = {0};
    return wait_for(p, events_record(svc->events, list, n, complete, p, &se), &se);
}

static int write_forget(const struct service *svc, const struct query *q,
                        const ProtobufCMessage *req, const struct server_call *call,
                        struct server_reply *reply, struct err *e)
{
    const Recsys__V1__ForgetUserRequest *r = (const Recsys__V1__ForgetUserRequest *)req;
    int rc = record_forget(q, r, e);
    if (rc != 0)
        return rc;
    struct pending *p = pend(call, 0, true, e);
    if (p == NULL)
        return e->code;
    struct err se = {0};
    return wait_for(p, events_forget(svc->events, r->user_id, strlen(r->user_id), complete, p, &se),
                    &se);
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
    /* The section spans the pick, the query and the encoding: until it
     * ends, no reloader unmaps anything this call may still read. */
    struct route_key key = m->key(req);
    if ((rc = filter_check_id("model", key.model, 0, e)) != 0)
        return rc;
    const struct models_view *v = models_read_begin(svc->models);
    struct models_pick pick;
    rc = models_pick(v, key.model, key.user, &pick, e);
    if (rc == 0)
        rc = answer(svc, m, v, &pick, req, call, reply, e);
    models_read_end(svc->models);
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

int service_create(const struct models *ms, const struct service_state *state, struct service **out)
{
    struct service *svc = calloc(1, sizeof(*svc));
    if (svc == NULL)
        return -ENOMEM;
    svc->models = ms;
    svc->events = state != NULL ? state->events : NULL;
    svc->state_dir = state != NULL ? state->dir : "";
    svc->state_error = state != NULL ? state->error : "";
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
