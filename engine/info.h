/*
 * info: what model is served and how its loads went: the GetModelInfo
 * query. The same facts as Prometheus series are server/metrics.c's.
 */
#pragma once

#include "engine/query.h"
#include "recsys/v1/recommender.pb-c.h"

/* info_run - describe the model being served and the state of its reloads.
 * q->model may be NULL (no model served): the model's fields are then left
 * empty and q->status says why. With q->models, every model of the set,
 * the route and the bytes mapped too. Returns 0, ERR_NOT_FOUND (req->model names
 * another model than q->model_name), ERR_INVALID (a name too long) or
 * -ENOMEM. */
int info_run(const struct query *q, const Recsys__V1__ModelInfoRequest *req,
             Recsys__V1__ModelInfo **out, struct err *e);
