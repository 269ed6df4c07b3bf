/*
 * batch: the BatchRecommend query.
 *
 * Many users scored together: their vectors form one matrix, multiplied by
 * cache-sized blocks of the item matrix with OpenBLAS sgemm, so each item
 * block is read from memory once for the whole batch instead of once per
 * user. Each user's scores in a block go straight into that user's
 * selection, which scores exactly the rows whose sgemm score could reach
 * its top n and keeps them by exact score (score.h): the answer is bit for
 * bit what Recommend gives for the same request.
 */
#pragma once

#include "engine/query.h"
#include "recsys/v1/recommender.pb-c.h"

/* Requests in one batch, at most (INVALID_ARGUMENT beyond). */
#define BATCH_MAX 256

/* batch_run - a RecommendResponse for each of req->requests, in order,
 * equal to what recommend_run answers for it.
 * @out receives the response, allocated in q->arena, as is all scratch:
 * the arena grows from the heap past its first block for a large batch and
 * hands the growth back at reset. The largest batch (256 requests of 1000
 * results) took about 27 MB when each user kept 4n + 16 candidates per
 * part (measured): 19 MB of responses and hits, and 8.5 MB per part for
 * the candidates. A user now keeps its n best per part, 2 MB per part for
 * the batch, so about 21 MB, and 27 MB when split in four. The sgemm
 * score blocks add 256 KiB per part; a per-worker buffer for them would
 * not spare the growth the responses need anyway.
 * With a model set (q->models), each request is answered by the model it
 * names, else by req->model, else by its user's arm (models_pick), as
 * Recommend would answer it alone; each model's users are scored together.
 * Returns 0, ERR_INVALID (more than BATCH_MAX requests, or a request that
 * recommend_run refuses: the text names it, "requests[3]: ..."),
 * ERR_NOT_FOUND (a model named that is not served), ERR_NO_MODEL (a
 * request's model is not loaded), -ENOMEM. */
int batch_run(const struct query *q, const Recsys__V1__BatchRecommendRequest *req,
              Recsys__V1__BatchRecommendResponse **out, struct err *e);
