/*
 * fuzz_request: the daemon's request path, from request bytes to status.
 *
 * The input's first byte picks a method of the service table (modulo its
 * length) and the rest is the request message. The method's handler is
 * the one the server calls: it checks the size, unpacks the bytes through
 * the arena allocator, runs the query against a tiny model written at start
 * (served through the reloader, as in the daemon) and encodes the response. No network is involved,
 * so the path is fuzzed at the speed of the parser.
 *
 * Promises checked (service.h, server.h): a call that fails has a gRPC
 * status and a text; one that succeeds returns bytes that decode as the
 * method's response message.
 */
#include <grpc/status.h>
#include <protobuf-c/protobuf-c.h>
#include <string.h>

#include "base/arena.h"
#include "engine/models.h"
#include "fuzz.h"
#include "grpc/health/v1/health.pb-c.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "recsys/v1/recommender.pb-c.h"
#include "scratch.h"
#include "server/server.h"
#include "server/service.h"
#include "tiny_model.h"

/* The response message of each method, to decode what the handler returns. */
static const struct {
    const char *path;
    const ProtobufCMessageDescriptor *response;
} responses[] = {
    {"/recsys.v1.Recommender/Recommend", &recsys__v1__recommend_response__descriptor},
    {"/recsys.v1.Recommender/BatchRecommend", &recsys__v1__batch_recommend_response__descriptor},
    {"/recsys.v1.Recommender/CheckEligibility", &recsys__v1__eligibility_response__descriptor},
    {"/recsys.v1.Recommender/SimilarItems", &recsys__v1__recommend_response__descriptor},
    {"/recsys.v1.Recommender/GetModelInfo", &recsys__v1__model_info__descriptor},
    {"/grpc.health.v1.Health/Check", &grpc__health__v1__health_check_response__descriptor},
    {"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
     &grpc__reflection__v1__server_reflection_response__descriptor},
    {"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
     &grpc__reflection__v1__server_reflection_response__descriptor},
    {"/recsys.v1.Recommender/RecordEvents", &recsys__v1__record_events_response__descriptor},
    {"/recsys.v1.Recommender/ForgetUser", &recsys__v1__forget_user_response__descriptor},
};

static struct {
    struct models *models;
    struct service *svc;
    const struct server_method *methods;
    size_t n_methods;
    struct arena *arena;
} fx;

static const ProtobufCMessageDescriptor *response_of(const char *path)
{
    for (size_t i = 0; i < sizeof(responses) / sizeof(responses[0]); i++)
        if (strcmp(responses[i].path, path) == 0)
            return responses[i].response;
    fprintf(stderr, "fuzz_request: no response type for %s; add it to responses[]\n", path);
    abort();
}

/* Exits unless the reloader serves the model (its first load can fail). */
static void require_model(void)
{
    const struct models_view *v = models_read_begin(fx.models);
    const struct reload_snapshot *snap = reload_current(v->entries[0].reload);
    if (snap->model == NULL) {
        fprintf(stderr, "fuzz_request: the model did not load (%s)\n", snap->last_error);
        exit(1);
    }
    models_read_end(fx.models);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *path = scratch_path("request-model.lmdb");
    struct err e = {0};
    int rc = tiny_model_write(path, 0, &e);
    if (rc == 0)
        rc = models_open_file(path, 1, NULL, &fx.models, &e);
    if (rc == 0 && (rc = service_create(fx.models, NULL, &fx.svc)) == 0)
        rc = arena_create(64 << 10, &fx.arena);
    if (rc != 0) {
        fprintf(stderr, "fuzz_request: failed to set up (%s)\n",
                e.msg[0] != '\0' ? e.msg : err_strerror(rc));
        exit(1);
    }
    const struct server_hooks *hooks = service_hooks(fx.svc);
    hooks->thread_start(hooks->arg);
    require_model();
    fx.methods = service_methods(fx.svc, &fx.n_methods);
    return 0;
}

static void check_reply(const struct server_method *m, const struct server_reply *reply)
{
    if (reply->status != GRPC_STATUS_OK) {
        FUZZ_ASSERT(reply->status > GRPC_STATUS_OK && reply->status <= GRPC_STATUS_UNAUTHENTICATED);
        FUZZ_ASSERT(reply->details != NULL && reply->details[0] != '\0');
        return;
    }
    FUZZ_ASSERT(reply->data != NULL || reply->len == 0);
    ProtobufCMessage *resp =
        protobuf_c_message_unpack(response_of(m->path), NULL, reply->len, reply->data);
    FUZZ_ASSERT(resp != NULL);
    protobuf_c_message_free_unpacked(resp, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const struct server_method *m = &fx.methods[data[0] % fx.n_methods];
    struct server_call call = {
        .method = m, .worker = 0, .arena = fx.arena, .data = data + 1, .len = size - 1};
    struct server_reply reply = {.status = GRPC_STATUS_OK};
    m->handler(&call, &reply);
    check_reply(m, &reply);
    arena_reset(fx.arena);
    return 0;
}
