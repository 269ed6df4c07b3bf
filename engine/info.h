/*
 * info: what model is served and how its loads went: the GetModelInfo
 * query, and the same facts as Prometheus series for the metrics endpoint.
 */
#pragma once

#include <stdio.h>

#include "engine/query.h"
#include "recsys/v1/recommender.pb-c.h"

/* info_run - describe the model being served and the state of its reloads.
 * q->model may be NULL (no model served): the model's fields are then left
 * empty and the reload status from q->reload says why. Returns 0 or -ENOMEM. */
int info_run(const struct query *q, const Recsys__V1__ModelInfoRequest *req,
             Recsys__V1__ModelInfo **out, struct err *e);

/* info_write_metrics - the model served and its load history from @snap
 * as recsys_model_* series (with HELP and TYPE lines) to @out. The caller
 * holds @snap's read-side section. Returns 0 or -EIO. */
int info_write_metrics(const struct reload_snapshot *snap, FILE *out);
