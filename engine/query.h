/*
 * query: what every query (recommend, eligibility, similar, info) receives,
 * and the limits on requests that all of them enforce.
 *
 * Queries are pure functions of (model, request): they never see gRPC, so
 * each is tested without a network. The response and everything in it is
 * allocated from q->arena and lives until the caller resets the arena.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/err.h"
#include "engine/models.h"
#include "model/model.h"
#include "state/events.h"

/* Request limits; INVALID_ARGUMENT beyond them (see recommender.proto). */
#define QUERY_COUNT_DEFAULT  10
#define QUERY_COUNT_MAX      1000
#define QUERY_IDS_MAX        1000 /* entries in any repeated id field */
#define QUERY_CATEGORIES_MAX 64

/* How the loads of the model have gone, for GetModelInfo: a plain copy of
 * what the reloader publishes, made by the server for the call, so that
 * no query sees the reload lifecycle. */
struct model_status {
    uint64_t loads;            /* models loaded, the first one included */
    uint64_t failed_loads;     /* attempts that produced no model */
    int64_t last_attempt_unix; /* 0 if none */
    const char *last_error;    /* "" when the last attempt succeeded; borrowed for the call */
    bool watching;             /* the model's directory is followed for new files */
};

struct query {
    /* Never NULL for the queries that need a model: the service answers
     * UNAVAILABLE itself. NULL for info_run while no model is served. */
    const struct model *model;
    /* The name @model is served under; never NULL. */
    const char *model_name;
    unsigned slot;       /* model lookup slot owned by the calling thread */
    struct arena *arena; /* per-call scratch, reset by the caller after the reply */
    /* For GetModelInfo; borrowed for the call. NULL where no reloader
     * serves the model (the query tests): the status is reported empty. */
    const struct model_status *status;
    /* The live events store; NULL when the daemon keeps none. Read through
     * read slot @slot, which the calling thread owns like the model's. */
    struct events *events;
    /* For GetModelInfo; NULL without a state directory. */
    const struct live_status *live;
    /* What the query reports back for the metrics; NULL: nothing. */
    struct query_stats *stats;
    /* The model set @model was picked from, read in the call's section:
     * GetModelInfo lists it, and BatchRecommend picks each request's model
     * there. NULL where there is none (the query tests): @model alone. */
    const struct models_view *models;
};

/* The live events' side of GetModelInfo, copied by the server for the
 * call like model_status. */
struct live_status {
    const char *dir;   /* --state-dir */
    const char *error; /* why there is no store though a directory was given; "" if none */
    uint64_t fold_ins; /* users folded in since start */
};

/* Counted by the queries that fold a user in (recommend, batch). */
struct query_stats {
    uint32_t fold_ins;          /* users scored with a folded-in vector */
    uint64_t fold_in_ns;        /* time spent folding them in */
    uint32_t state_read_errors; /* users answered without their events: the store failed */
};
