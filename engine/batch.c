/*
 * batch: BatchRecommend (batch.h).
 *
 * Every request is prepared as Recommend prepares it; the unknown users get
 * the popularity ranking at once. The known users' vectors are gathered
 * into one users x stride matrix Q, and the item matrix is walked in blocks
 * of rows: S = Q V_block^T by sgemm, then each user's row of S is offered
 * to that user's selection (score_select_block), which looks at one score
 * per item unless it beats the user's running threshold. A block is sized
 * so that S stays in the core's cache between sgemm writing it and the
 * selections reading it.
 *
 * A selection scores exactly every row whose sgemm score comes within
 * sgemm's rounding of its n-th exact score so far, and keeps rows by exact
 * score (score.h), so its answer is Recommend's to the bit. A large item
 * matrix is cut into parts scanned at once (split.h), each with its own
 * selections; score_select_merge merges a user's parts.
 */
#include "engine/batch.h"

#include <cblas.h>
#include <errno.h>
#include <string.h>

#include "engine/filter.h"
#include "engine/recommend.h"
#include "engine/scan.h"
#include "engine/score.h"
#include "engine/split.h"

/* Bytes of scores one sgemm block writes: small enough to be read back
 * from the core's cache by the selections. (256 KiB, 1 MiB and 4 MiB ran
 * alike, 4.3-4.5 ms per user for 64 users on 10^6 x 128: sgemm's rate, not
 * the block, sets the pace; bench/batch.) */
#define BLOCK_SCORE_BYTES (256u << 10)

/* The known users of a batch and what their parts of the scan share. */
struct scoring {
    const struct model *m;
    const float *users; /* count x stride: Q */
    uint32_t count, stride, dim, block;
    unsigned parts;
    struct score_best *sel;   /* count x parts: user k's part p at [k * parts + p] */
    struct score_scan *exact; /* count: user k's row against the f32 items */
    float **scores;           /* per part: count x block scratch for S */
};

/* One part of the item matrix, every user at once. */
static void score_part(void *arg, unsigned part)
{
    struct scoring *sc = arg;
    uint32_t items = model_item_count(sc->m),
             first = (uint32_t)((uint64_t)items * part / sc->parts),
             end = (uint32_t)((uint64_t)items * (part + 1) / sc->parts);
    const float *matrix = model_item_matrix(sc->m);
    float *s = sc->scores[part];
    for (uint32_t i = first; i < end; i += sc->block) {
        uint32_t rows = end - i < sc->block ? end - i : sc->block;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)sc->count, (int)rows,
                    (int)sc->dim, 1.0f, sc->users, (int)sc->stride, matrix + (size_t)i * sc->stride,
                    (int)sc->stride, 0.0f, s, (int)rows);
        for (uint32_t k = 0; k < sc->count; k++)
            score_select_block(&sc->sel[(size_t)k * sc->parts + part], i, s + (size_t)k * rows,
                               rows);
    }
}

static int no_memory(struct err *e)
{
    return err_set(e, -ENOMEM, "out of memory for a batch");
}

/* The known users of @plans (their indices in @known) scored together;
 * hits[j] receives plan known[j]'s results, counts[j] their number. */
static int score_known(const struct query *q, const struct recommend_plan *plans,
                       const uint32_t *known, uint32_t count, struct score_hit **hits,
                       uint32_t *counts, struct err *e)
{
    const struct model *m = q->model;
    /* The users' rows are copied out for sgemm; the plan's parts are the
     * same for all of them. */
    struct scan_plan plan;
    scan_plan(m, NULL, MODEL_ELEM_F32, &plan);
    struct scoring sc = {
        .m = m,
        .count = count,
        .stride = plan.scan.stride,
        .dim = plan.scan.dim,
        .parts = plan.parts,
    };
    uint32_t block = BLOCK_SCORE_BYTES / (count * sizeof(float));
    sc.block = block < 16 ? 16 : block;
    float *users = arena_alloc(q->arena, (size_t)count * sc.stride * sizeof(float));
    sc.sel = arena_alloc(q->arena, (size_t)count * sc.parts * sizeof(*sc.sel));
    sc.exact = arena_alloc(q->arena, count * sizeof(*sc.exact));
    sc.scores = arena_alloc(q->arena, sc.parts * sizeof(*sc.scores));
    if (users == NULL || sc.sel == NULL || sc.exact == NULL || sc.scores == NULL)
        return no_memory(e);
    for (unsigned p = 0; p < sc.parts; p++)
        if ((sc.scores[p] = arena_alloc(q->arena, (size_t)count * sc.block * sizeof(float))) ==
            NULL)
            return no_memory(e);
    for (uint32_t k = 0; k < count; k++) {
        const struct recommend_plan *p = &plans[known[k]];
        float *user = users + (size_t)k * sc.stride;
        memcpy(user, p->vector, sc.stride * sizeof(float));
        sc.exact[k] = plan.scan;
        sc.exact[k].query = user;
        double bound = score_float_bound(&sc.exact[k], plan.exact_max_norm);
        for (unsigned part = 0; part < sc.parts; part++) {
            struct score_hit *scratch = arena_alloc(q->arena, p->n * sizeof(*scratch));
            if (scratch == NULL)
                return no_memory(e);
            score_select_init(&sc.sel[(size_t)k * sc.parts + part], p->n, filter_keep, &p->filter,
                              scratch, &sc.exact[k], bound);
        }
    }
    sc.users = users;
    split_run(score_part, &sc, sc.parts);
    for (uint32_t k = 0; k < count; k++)
        counts[k] =
            score_select_merge(&sc.sel[(size_t)k * sc.parts], sc.parts, plans[known[k]].n, hits[k]);
    return 0;
}

/* arm_queries - in @qs, the query that answers each request of @req: @q
 * without a model set; with one, the model the request names, else the
 * batch's, else its user's arm (models_pick). A model serves all its
 * requests through one query. */
static int arm_queries(const struct query *q, const Recsys__V1__BatchRecommendRequest *req,
                       const struct query **qs, struct err *e)
{
    struct query *arms[MODELS_MAX];
    const struct models_entry *of[MODELS_MAX];
    size_t n_arms = 0;
    for (size_t i = 0; i < req->n_requests; i++) {
        const Recsys__V1__RecommendRequest *r = req->requests[i];
        qs[i] = q;
        if (q->models == NULL)
            continue;
        const char *name = r->model[0] != '\0' ? r->model : req->model;
        struct models_pick pick;
        int rc = filter_check_id("model", r->model, 0, e);
        if (rc == 0)
            rc = models_pick(q->models, name, r->user_id, &pick, e);
        if (rc != 0)
            return err_wrap(e, rc, "requests[%zu]", i);
        if (pick.snap == NULL || pick.snap->model == NULL)
            return err_set(e, ERR_NO_MODEL, "requests[%zu]: model '%s' is not loaded", i,
                           pick.name);
        size_t k = 0;
        while (k < n_arms && of[k] != pick.entry)
            k++;
        if (k == n_arms) {
            if ((arms[k] = arena_alloc(q->arena, sizeof(*arms[k]))) == NULL)
                return no_memory(e);
            *arms[k] = *q;
            arms[k]->model = pick.snap->model;
            arms[k]->model_name = pick.name;
            of[n_arms++] = pick.entry;
        }
        qs[i] = arms[k];
    }
    return 0;
}

/* score_arms - the known users (@known, @nknown of them) scored together,
 * those of each model apart: hits[i] and counts[i] for request i. */
static int score_arms(const struct query *const *qs, const struct recommend_plan *plans,
                      const uint32_t *known, uint32_t nknown, struct score_hit **hits,
                      uint32_t *counts, struct err *e)
{
    struct arena *a = qs[known[0]]->arena;
    /* score_known fills its users' entries by position in its list. */
    struct score_hit **khits = arena_alloc(a, nknown * sizeof(*khits));
    uint32_t *kcounts = arena_alloc(a, nknown * sizeof(*kcounts));
    uint32_t *mine = arena_alloc(a, nknown * sizeof(*mine));
    uint8_t *done = arena_alloc(a, nknown);
    if (khits == NULL || kcounts == NULL || mine == NULL || done == NULL)
        return no_memory(e);
    memset(done, 0, nknown);
    for (uint32_t k = 0; k < nknown; k++) {
        if (done[k])
            continue;
        const struct query *arm = qs[known[k]];
        uint32_t n = 0;
        for (uint32_t j = k; j < nknown; j++) {
            if (qs[known[j]] != arm)
                continue;
            done[j] = 1;
            mine[n] = known[j];
            khits[n++] = hits[known[j]];
        }
        int rc = score_known(arm, plans, mine, n, khits, kcounts, e);
        if (rc != 0)
            return rc;
        for (uint32_t j = 0; j < n; j++)
            counts[mine[j]] = kcounts[j];
    }
    return 0;
}

int batch_run(const struct query *q, const Recsys__V1__BatchRecommendRequest *req,
              Recsys__V1__BatchRecommendResponse **out, struct err *e)
{
    size_t n = req->n_requests;
    if (n > BATCH_MAX)
        return err_set(e, ERR_INVALID, "requests has %zu entries, more than %d", n, BATCH_MAX);
    int mrc = filter_check_model(q, req->model, e);
    if (mrc != 0)
        return mrc;
    Recsys__V1__BatchRecommendResponse *r = arena_alloc(q->arena, sizeof(*r));
    Recsys__V1__RecommendResponse **responses = arena_alloc(q->arena, n * sizeof(*responses));
    const struct query **qs = arena_alloc(q->arena, n * sizeof(*qs));
    struct recommend_plan *plans = arena_alloc(q->arena, n * sizeof(*plans));
    struct score_hit **hits = arena_alloc(q->arena, n * sizeof(*hits));
    uint32_t *counts = arena_alloc(q->arena, n * sizeof(*counts));
    uint32_t *known = arena_alloc(q->arena, n * sizeof(*known)), nknown = 0;
    if (r == NULL || (n > 0 && (responses == NULL || qs == NULL || plans == NULL || hits == NULL ||
                                counts == NULL || known == NULL)))
        return no_memory(e);
    int rc = arm_queries(q, req, qs, e);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        rc = recommend_prepare(qs[i], req->requests[i], &plans[i], e);
        if (rc != 0)
            return err_wrap(e, rc, "requests[%zu]", i);
        hits[i] = arena_alloc(q->arena, plans[i].n * sizeof(*hits[i]));
        if (hits[i] == NULL)
            return no_memory(e);
        if (plans[i].personalized)
            known[nknown++] = (uint32_t)i;
        else
            counts[i] = recommend_popular(qs[i]->model, &plans[i].filter, plans[i].n, hits[i]);
    }
    if (nknown > 0 && (rc = score_arms(qs, plans, known, nknown, hits, counts, e)) != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        rc = recommend_respond(qs[i], hits[i], counts[i], recommend_source(&plans[i]),
                               &responses[i], e);
        if (rc != 0)
            return rc;
    }
    recsys__v1__batch_recommend_response__init(r);
    r->n_responses = n;
    r->responses = responses;
    *out = r;
    return 0;
}
