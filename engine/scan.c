/*
 * scan: the choice of item-matrix copy (scan.h): the process-wide
 * preference, and the per-model probe that decides under "auto".
 */
#include "engine/scan.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "base/clock.h"
#include "engine/query.h"
#include "engine/score.h"
#include "engine/split.h"

/* MODEL_ELEM_COUNT stands for "auto". Set once at start; atomic so that a
 * test may change it between calls from any thread. */
static _Atomic int preferred = MODEL_ELEM_COUNT;

int scan_select(const char *name, struct err *e)
{
    if (strcmp(name, "auto") == 0) {
        atomic_store(&preferred, MODEL_ELEM_COUNT);
        return 0;
    }
    for (int elem = 0; elem < MODEL_ELEM_COUNT; elem++)
        if (strcmp(name, model_elem_names[elem]) == 0) {
            atomic_store(&preferred, elem);
            return 0;
        }
    return err_set(e, ERR_INVALID, "unknown scan '%s' (want auto, f32, bf16 or int8)", name);
}

const char *scan_preference(void)
{
    int p = atomic_load(&preferred);
    return p == MODEL_ELEM_COUNT ? "auto" : model_elem_names[p];
}

static uint64_t matrix_bytes(const struct model *m, enum model_elem elem)
{
    return (uint64_t)model_item_count(m) * model_stride(m) *
           score_elem_bytes((enum score_elem)elem);
}

/* Set once at start, like the preference. */
static _Atomic unsigned long long split_bytes = SCAN_SPLIT_BYTES;

void scan_split_from(unsigned long long bytes)
{
    atomic_store(&split_bytes, bytes);
}

unsigned scan_parts(const struct model *m, enum model_elem elem)
{
    return matrix_bytes(m, elem) < atomic_load(&split_bytes) ? 1 : split_parts();
}

/* Whether the preference names a copy @m holds: then it is obeyed. */
static int obeyed(const struct model *m, int p)
{
    return p != MODEL_ELEM_COUNT && model_item_copy(m, p) != NULL;
}

enum model_elem scan_elem(const struct model *m)
{
    int p = atomic_load(&preferred);
    if (obeyed(m, p))
        return p;
    const struct model_scan *s = model_scan(m);
    return s != NULL ? s->elem : MODEL_ELEM_F32;
}

_Static_assert((int)SCORE_ELEM_BF16 == (int)MODEL_ELEM_BF16 &&
                   (int)SCORE_ELEM_INT8 == (int)MODEL_ELEM_INT8,
               "score and model number element types alike");

void scan_plan(const struct model *m, const float *query, enum model_elem elem,
               struct scan_plan *out)
{
    uint32_t stride = model_stride(m);
    *out = (struct scan_plan){
        .scan = {.query = query,
                 .matrix = model_item_matrix(m),
                 .rows = model_item_count(m),
                 .stride = stride,
                 .dim = model_dim(m)},
        .elem = elem,
        .parts = scan_parts(m, elem),
        .exact_max_norm = model_item_copy(m, MODEL_ELEM_F32)->max_norm,
    };
    if (elem == MODEL_ELEM_F32)
        return;
    const struct model_item_copy *c = model_item_copy(m, elem);
    out->reduced = (struct score_reduced){
        .elem = (enum score_elem)elem,
        .matrix = c->rows,
        .row_scale = c->scale,
        .blocked = c->blocked,
        .max_norm = c->max_norm,
        .max_error = c->max_error,
        .exact_max_norm = out->exact_max_norm,
    };
}

uint32_t scan_topn(const struct scan_plan *p, uint32_t n, score_filter_fn keep,
                   const void *filter_ctx, struct score_hit *scratch, struct score_hit *out)
{
    if (p->elem == MODEL_ELEM_F32)
        return score_topn_split(&p->scan, n, keep, filter_ctx, p->parts, scratch, out);
    return score_topn_reduced(&p->scan, &p->reduced, n, keep, filter_ctx, p->parts, scratch, out,
                              NULL);
}

/* ==== the probe ======================================================= */

/* What the probe times, and for how long. The load it delays already
 * reads the whole file (model_open validates every byte: 130-250 ms for a
 * 10^6 x 64 model on the 2-core test VM), and one round here scans each
 * copy PROBE_QUERIES times, so the probe costs a few of those passes:
 *
 * - PROBE_QUERIES user rows, spread evenly over the user matrix: users
 *   differ in how many rows a reduced scan must score in f32, and four
 *   average that out while a round of a 10^6 x 64 model (about 9 ms per
 *   f32 query, 5 bf16, 3 int8, AVX-512) stays at 70 ms.
 * - Rounds: at least PROBE_ROUNDS_MIN, each copy in turn, the order
 *   rotated every round, and each copy's best round kept: the serving
 *   threads may be busy with the previous model meanwhile, and a copy's
 *   fastest round is the one they disturbed least. More rounds, up to
 *   PROBE_ROUNDS_MAX, while the probe has run less than PROBE_MORE_NS: a
 *   small catalog's round takes a few milliseconds, and its timings are
 *   the noisiest. So 10^6 x 64 takes 3 rounds, 200-270 ms; 10^5 x 32
 *   (about 3 ms a round) takes 9, 30 ms.
 * - PROBE_CAP_NS: no round is begun that the last one says would end past
 *   it, so a catalog several times larger than 10^6 x 64 is timed in fewer
 *   rounds (one, at the least) rather than for seconds. (The portable
 *   kernel, whose reduced scans are 2-4 times slower than its f32 one,
 *   took 3 rounds, 900 ms, at 10^6 x 64.)
 * - QUERY_COUNT_DEFAULT results and no filter: the Recommend call most
 *   clients make. */
#define PROBE_QUERIES    4
#define PROBE_ROUNDS_MIN 3
#define PROBE_ROUNDS_MAX 9
#define PROBE_MORE_NS    (100 * 1000000LL)
#define PROBE_CAP_NS     (1000 * 1000000LL)

/* Why SCAN_PROBE_MARGIN is 5%. The copies give the same results, so a
 * wrong choice only costs speed, and the margin trades the gains it passes
 * up against the noise it keeps out. f32 timed against itself, as two
 * copies interleaved as here (30 probes, 2-core VM, AVX-512): on an idle
 * machine the two best rounds differed by at most 1.4% (6,000 x 32 and
 * 10^5 x 32, 9 rounds), by up to 8% at 10^6 x 64 (3 rounds), and by up to
 * 13% at 10^5 x 32 with a scan of another catalog running on the other
 * core. Where the copies really are close, the catalogs are small and the
 * machine idle at load: 5% is over three times that noise, and still
 * takes int8 where it gains 9% (6,000 x 32: f32 0.0135 ms, int8 0.0124).
 * Under load, where it cannot cover the noise, the copies are far apart:
 * int8 took 35-65% of f32's time from 10^5 x 32 on. */

/* The copies and query rows of one probe. Borrowed from the model. */
struct probe {
    const struct model *m;
    enum model_elem copies[MODEL_ELEM_COUNT];
    unsigned count;
    const float *query[PROBE_QUERIES];
    unsigned queries;
    unsigned from_user;
};

int scan_has_factors(const struct model *m, const float *row)
{
    uint32_t factors = model_dim(m) - model_info(m)->has_bias;
    for (uint32_t j = 0; j < factors; j++)
        if (row[j] != 0)
            return 1;
    return 0;
}

/* pick_queries - PROBE_QUERIES rows of the user matrix, one per equal
 * slice of it: the slice's middle row, or the first after it (wrapping
 * within the slice) that has factors (scan_has_factors: a user without
 * any gets the popularity ranking, never a scan, and would time a
 * degenerate one in which every score ties). Of the item matrix when the
 * model has no users; every row of a matrix that has fewer. */
static void pick_queries(struct probe *p)
{
    const struct model *m = p->m;
    uint64_t rows = model_user_count(m), stride = model_stride(m);
    const float *matrix = model_user_matrix(m);
    p->from_user = rows > 0;
    if (rows == 0) {
        rows = model_item_count(m); /* >= 1: model_open refuses an empty catalog */
        matrix = model_item_matrix(m);
    }
    p->queries = rows < PROBE_QUERIES ? (unsigned)rows : PROBE_QUERIES;
    for (unsigned q = 0; q < p->queries; q++) {
        uint64_t lo = q * rows / p->queries, hi = (q + 1) * rows / p->queries;
        uint64_t row = lo + (hi - lo) / 2;
        /* Once round the slice at most, back to its middle if in vain. */
        for (uint64_t k = 0; k < hi - lo && !scan_has_factors(m, matrix + row * stride); k++)
            row = row + 1 < hi ? row + 1 : lo;
        p->query[q] = matrix + row * stride;
    }
}

/* time_copy - nanoseconds (>= 1) to scan every query of @p on @elem. */
static int64_t time_copy(const struct probe *p, enum model_elem elem)
{
    struct score_hit scratch[SPLIT_PARTS_MAX * QUERY_COUNT_DEFAULT], out[QUERY_COUNT_DEFAULT];
    struct scan_plan plan;
    int64_t start = clock_ns();
    for (unsigned q = 0; q < p->queries; q++) {
        scan_plan(p->m, p->query[q], elem, &plan);
        scan_topn(&plan, QUERY_COUNT_DEFAULT, NULL, NULL, scratch, out);
    }
    int64_t ns = clock_ns() - start;
    return ns > 0 ? ns : 1;
}

enum model_elem scan_choose(const double query_seconds[MODEL_ELEM_COUNT])
{
    enum model_elem best = MODEL_ELEM_F32;
    if (!(query_seconds[MODEL_ELEM_F32] > 0))
        return best;
    double to_beat = query_seconds[MODEL_ELEM_F32] * (1 - SCAN_PROBE_MARGIN);
    for (int elem = MODEL_ELEM_F32 + 1; elem < MODEL_ELEM_COUNT; elem++)
        if (query_seconds[elem] > 0 && query_seconds[elem] < to_beat) {
            best = elem;
            to_beat = query_seconds[elem];
        }
    return best;
}

int scan_prepare(struct model *m)
{
    const struct model_item_copy *c = model_item_copy(m, MODEL_ELEM_INT8);
    int p = atomic_load(&preferred);
    if (c == NULL || !score_int8_blocked_read() || (obeyed(m, p) && p != MODEL_ELEM_INT8))
        return 0;
    size_t bytes = score_int8_blocked_bytes(model_item_count(m), model_stride(m));
    /* In huge pages where the kernel has them: a scan reads it all, and
     * with 4 KiB pages the regrouped copy of 10^6 x 64 scanned cold in
     * 3.4-3.8 ms, slower than the file's own rows, against 2.6-2.9 ms
     * in 2 MiB pages. It costs at most 2 MiB of rounding. */
    size_t huge = (size_t)2 << 20, size = (bytes + huge - 1) / huge * huge;
    uint8_t *blocked = aligned_alloc(huge, size);
    if (blocked == NULL)
        return 0;
    madvise(blocked, size, MADV_HUGEPAGE);
    score_int8_block(c->rows, model_item_count(m), model_stride(m), blocked);
    model_set_item_blocked(m, MODEL_ELEM_INT8, blocked);
    return 1;
}

int scan_probe(struct model *m)
{
    struct probe p = {.m = m};
    if (obeyed(m, atomic_load(&preferred)))
        return 0;
    for (int elem = 0; elem < MODEL_ELEM_COUNT; elem++)
        if (model_item_copy(m, elem) != NULL)
            p.copies[p.count++] = elem;
    if (p.count == 1)
        return 0; /* f32 alone: nothing to choose */
    pick_queries(&p);
    int64_t best[MODEL_ELEM_COUNT] = {0}, start = clock_ns(), round_ns = 0;
    unsigned rounds = 0;
    while (rounds < PROBE_ROUNDS_MAX) {
        int64_t begun = clock_ns();
        if ((rounds >= PROBE_ROUNDS_MIN && begun - start >= PROBE_MORE_NS) ||
            (rounds > 0 && begun - start + round_ns > PROBE_CAP_NS))
            break;
        for (unsigned k = 0; k < p.count; k++) {
            enum model_elem elem = p.copies[(k + rounds) % p.count];
            int64_t ns = time_copy(&p, elem);
            if (best[elem] == 0 || ns < best[elem])
                best[elem] = ns;
        }
        round_ns = clock_ns() - begun;
        rounds++;
    }
    struct model_scan s = {.queries = p.queries, .rounds = rounds, .from_user = p.from_user};
    for (unsigned k = 0; k < p.count; k++)
        s.query_seconds[p.copies[k]] = (double)best[p.copies[k]] * 1e-9 / p.queries;
    s.elem = scan_choose(s.query_seconds);
    model_set_scan(m, &s);
    return 1;
}
