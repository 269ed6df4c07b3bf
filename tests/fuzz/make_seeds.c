/*
 * make_seeds: write the generated seeds of the model and request corpora.
 *
 *     fuzz_make_seeds tests/fuzz/corpus
 *
 * The model seeds are the valid files of tiny_model.h; the request seeds
 * are one encoded request per case below, prefixed with the byte that
 * selects its method in fuzz_request. Both depend on the model format and
 * on the service table, so run this again when either changes; the other
 * corpora are small text files edited by hand.
 */
#include <errno.h>
#include <limits.h>
#include <protobuf-c/protobuf-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/health/v1/health.pb-c.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "recsys/v1/recommender.pb-c.h"
#include "scratch.h"
#include "server/server.h"
#include "server/service.h"
#include "tiny_model.h"

/* Seed files are small: the largest request below is a few dozen bytes. */
#define SEED_MAX 512

static char *recommend_exclude[] = {"i0", "nope"};
static char *recommend_owned[] = {"i4"};
static char *one_category[] = {"c1"};
static char *eligibility_items[] = {"i0", "i1", "i2", "i3", "missing"};
static char *eligibility_owned[] = {"i2"};

static const Recsys__V1__RecommendRequest recommend_known = {
    PROTOBUF_C_MESSAGE_INIT(&recsys__v1__recommend_request__descriptor),
    .user_id = "u0",
    .count = 3,
    .n_exclude_item_ids = 2,
    .exclude_item_ids = recommend_exclude,
    .n_owned_item_ids = 1,
    .owned_item_ids = recommend_owned,
};
static const Recsys__V1__RecommendRequest recommend_new_user = {
    PROTOBUF_C_MESSAGE_INIT(&recsys__v1__recommend_request__descriptor),
    .user_id = "stranger",
    .n_categories = 1,
    .categories = one_category,
    .purchasable_only = 1,
};
static Recsys__V1__RecommendRequest *batch_requests[] = {
    (Recsys__V1__RecommendRequest *)&recommend_known,
    (Recsys__V1__RecommendRequest *)&recommend_new_user,
};
static const Recsys__V1__BatchRecommendRequest batch = {
    PROTOBUF_C_MESSAGE_INIT(&recsys__v1__batch_recommend_request__descriptor),
    .n_requests = 2,
    .requests = batch_requests,
};
static const Recsys__V1__EligibilityRequest eligibility = {
    PROTOBUF_C_MESSAGE_INIT(&recsys__v1__eligibility_request__descriptor),
    .user_id = "u1",
    .n_item_ids = 5,
    .item_ids = eligibility_items,
    .n_owned_item_ids = 1,
    .owned_item_ids = eligibility_owned,
};
static const Recsys__V1__SimilarItemsRequest similar = {
    PROTOBUF_C_MESSAGE_INIT(&recsys__v1__similar_items_request__descriptor),
    .item_id = "i1",
    .count = 2,
    .n_categories = 1,
    .categories = one_category,
    .user_id = "u0",
};
static const Recsys__V1__SimilarItemsRequest similar_unknown = {
    PROTOBUF_C_MESSAGE_INIT(&recsys__v1__similar_items_request__descriptor),
    .item_id = "missing",
    .user_id = "",
};
static const Recsys__V1__ModelInfoRequest info = {
    PROTOBUF_C_MESSAGE_INIT(&recsys__v1__model_info_request__descriptor),
    .model = "",
};
static const Grpc__Health__V1__HealthCheckRequest health = {
    PROTOBUF_C_MESSAGE_INIT(&grpc__health__v1__health_check_request__descriptor),
    .service = "recsys.v1.Recommender",
};

static const Grpc__Reflection__V1__ServerReflectionRequest reflect_list = {
    PROTOBUF_C_MESSAGE_INIT(&grpc__reflection__v1__server_reflection_request__descriptor),
    .host = "",
    .message_request_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES,
    .list_services = "",
};
static const Grpc__Reflection__V1__ServerReflectionRequest reflect_symbol = {
    PROTOBUF_C_MESSAGE_INIT(&grpc__reflection__v1__server_reflection_request__descriptor),
    .host = "",
    .message_request_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL,
    .file_containing_symbol = "recsys.v1.Recommender.Recommend",
};

static Recsys__V1__Event record_event = {
    PROTOBUF_C_MESSAGE_INIT(&recsys__v1__event__descriptor),
    .user_id = "u-new",
    .item_id = "i1",
    .type = RECSYS__V1__EVENT_TYPE__PURCHASE,
};
static Recsys__V1__Event *record_list[] = {&record_event};
static const Recsys__V1__RecordEventsRequest record = {
    PROTOBUF_C_MESSAGE_INIT(&recsys__v1__record_events_request__descriptor),
    .n_events = 1,
    .events = record_list,
};
static const Recsys__V1__ForgetUserRequest forget = {
    PROTOBUF_C_MESSAGE_INIT(&recsys__v1__forget_user_request__descriptor),
    .user_id = "u1",
};

static const struct request_seed {
    const char *file;
    const char *path; /* the method */
    const ProtobufCMessage *msg;
} request_seeds[] = {
    {"recommend-known-user", "/recsys.v1.Recommender/Recommend", &recommend_known.base},
    {"recommend-new-user", "/recsys.v1.Recommender/Recommend", &recommend_new_user.base},
    {"batch-recommend", "/recsys.v1.Recommender/BatchRecommend", &batch.base},
    {"eligibility", "/recsys.v1.Recommender/CheckEligibility", &eligibility.base},
    {"similar", "/recsys.v1.Recommender/SimilarItems", &similar.base},
    {"similar-unknown-item", "/recsys.v1.Recommender/SimilarItems", &similar_unknown.base},
    {"model-info", "/recsys.v1.Recommender/GetModelInfo", &info.base},
    {"health", "/grpc.health.v1.Health/Check", &health.base},
    {"reflection-list", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
     &reflect_list.base},
    {"reflection-symbol", "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
     &reflect_symbol.base},
    {"record-events", "/recsys.v1.Recommender/RecordEvents", &record.base},
    {"forget-user", "/recsys.v1.Recommender/ForgetUser", &forget.base},
};

/* The byte fuzz_request reads as @path: its index in the service table. */
static int method_byte(const struct server_method *methods, size_t n, const char *path)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(methods[i].path, path) == 0)
            return (int)i;
    fprintf(stderr, "no method %s in the service table\n", path);
    return -1;
}

static int write_requests(const char *corpus)
{
    struct service *svc = NULL;
    if (service_create(NULL, NULL, &svc) != 0) {
        fprintf(stderr, "failed to create the service (out of memory)\n");
        return 1;
    }
    size_t n = 0;
    const struct server_method *methods = service_methods(svc, &n);
    int rc = 0;
    for (size_t i = 0; i < sizeof(request_seeds) / sizeof(request_seeds[0]) && rc == 0; i++) {
        const struct request_seed *s = &request_seeds[i];
        uint8_t buf[SEED_MAX];
        int byte = method_byte(methods, n, s->path);
        if (byte < 0 || protobuf_c_message_get_packed_size(s->msg) >= sizeof(buf) - 1) {
            rc = 1;
            break;
        }
        buf[0] = (uint8_t)byte;
        size_t len = 1 + protobuf_c_message_pack(s->msg, buf + 1);
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/request/%s", corpus, s->file);
        if ((rc = scratch_write(path, buf, len)) != 0)
            fprintf(stderr, "failed to write %s (%s)\n", path, strerror(-rc));
    }
    service_destroy(svc);
    return rc != 0;
}

static int write_models(const char *corpus)
{
    for (unsigned v = 0; v < TINY_MODEL_VARIANTS; v++) {
        char path[PATH_MAX];
        struct err e = {0};
        snprintf(path, sizeof(path), "%s/model/tiny-%u.lmdb", corpus, v);
        if (tiny_model_write(path, v, &e) != 0) {
            fprintf(stderr, "failed to write %s (%s)\n", path, e.msg);
            return 1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    return write_models(argv[1]) || write_requests(argv[1]);
}
