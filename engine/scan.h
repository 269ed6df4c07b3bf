/*
 * scan: which copy of the item matrix Recommend scans.
 *
 * A model file may hold reduced-precision copies of its item matrix (bf16,
 * int8) besides the f32 one. The results do not depend on the copy
 * (score_topn_reduced re-ranks exactly); only the speed does, and that
 * depends on the catalog's size, the kernel, the machine and what else it
 * runs: a reduced copy reads fewer bytes but scores in f32 the rows that
 * may reach the top, which on a small catalog costs more than it saves.
 * So under the preference "auto" the copy is chosen by measurement, per
 * model: scan_probe() times each copy the model holds when the reloader
 * loads it, before the model is published, and records the fastest in the
 * model (model_set_scan), where every later scan_elem() reads it. An
 * explicit preference (--scan) skips the timing. The preference is
 * process-wide, set once at start, like the kernel's.
 */
#pragma once

#include "base/err.h"
#include "engine/score.h"
#include "model/model.h"

/* scan_select - make @name the preferred copy: "auto", "f32", "bf16" or
 * "int8". "auto" scans the copy scan_probe() found fastest. A model
 * without the preferred copy is probed and scanned as under "auto".
 * Without a call: "auto". Returns 0, or ERR_INVALID for another name (text
 * in @e, may be NULL). */
int scan_select(const char *name, struct err *e);

/* scan_preference - "auto", "f32", "bf16" or "int8". Static string. */
const char *scan_preference(void);

/* scan_elem - the copy of @m a scan reads: the preferred copy when the
 * preference names one @m holds; else the copy scan_probe() recorded in
 * @m; else, for a model never probed (opened without the reloader, as the
 * unit tests do, or holding no reduced copy), f32. */
enum model_elem scan_elem(const struct model *m);

/* Reduced copies must be faster than f32 by this fraction to be chosen;
 * why 5%: scan.c. */
#define SCAN_PROBE_MARGIN 0.05

/* scan_choose - the copy to scan, given each copy's time per query in
 * @query_seconds (indexed by enum model_elem; <= 0 for a copy not timed,
 * such as one the model lacks): the fastest copy timed, a reduced one only
 * if it takes less than 1 - SCAN_PROBE_MARGIN of f32's time. f32 when f32
 * itself was not timed. A pure function: the rule scan_probe() applies. */
enum model_elem scan_choose(const double query_seconds[MODEL_ELEM_COUNT]);

/* scan_has_factors - whether @row (a user or item row of @m) has a factor
 * other than zero, the bias column aside. A trainer gives all-zero
 * factors to a user it has no interactions for (a member listed only for
 * a tier): its scores would be ties, or the item biases alone, so such a
 * user is not scanned. */
int scan_has_factors(const struct model *m, const float *row);

/* scan_prepare - give @m what its scans need beyond the file: the int8
 * rows regrouped by block (score.h: score_int8_block) when the int8 scan
 * of the current kernel reads them and the preference may scan int8. It
 * takes memory the size of the int8 copy, made in one pass (20-30 ms for
 * 10^6 x 64, more when the pages are first faulted in). Call it on a
 * model no other thread sees yet, before
 * scan_probe(), which then times the scan that will run. Without it (no
 * memory, another kernel) the int8 scan reads the file's rows, with the
 * same results. Returns 1 if it made the copy, else 0. */
int scan_prepare(struct model *m);

/* scan_probe - time Recommend's scan of each copy @m holds and record the
 * fastest in @m (model_set_scan), unless there is nothing to choose: the
 * preference names a copy @m holds, or @m holds no reduced copy; then
 * nothing is timed or recorded and scan_elem() needs no timing.
 *
 * Call it on a model no other thread can see yet (model_set_scan). It
 * scans each copy a few times per round, for at least three rounds, while
 * serving threads may run: 200-270 ms on a 10^6 x 64 catalog; on a larger
 * one, fewer rounds rather than past a second (scan.c). Allocates
 * nothing. Returns 1 if it timed and recorded, else 0. */
int scan_probe(struct model *m);

/* Bytes scanned from which a scan is split over the helpers (split.h).
 * Measured with bench/score (README, Performance), top-100, AVX-512.
 * Below it, handing a part to another thread costs more than it saves,
 * and on a busy machine the helper may not run at once while the worker
 * waits for its part. On an idle machine, split in two: 5 MB took twice as
 * long, 20 MB as long, 51 MB a fifth less; with other processes busy on
 * the second core, 25.6 MB took 40% longer, while 256 MB still took 17%
 * less and 512 MB 23% less. */
#define SCAN_SPLIT_BYTES (64u << 20)

/* scan_split_from - split scans of at least @bytes (--scan-split-bytes);
 * SCAN_SPLIT_BYTES until called. The best value depends on the machine. */
void scan_split_from(unsigned long long bytes);

/* scan_parts - how many parts a scan of @m's @elem copy is cut into: 1
 * below the scan_split_from size, else split_parts(). */
unsigned scan_parts(const struct model *m, enum model_elem elem);

/* How one query row is scanned against a model's items: what Recommend
 * runs, and what BatchRecommend takes its f32 rows, parts and bounds
 * from. Borrowed pointers into the model and the query row; valid
 * while both are. */
struct scan_plan {
    struct score_scan scan;       /* the query against the f32 item matrix */
    enum model_elem elem;         /* the copy the scan reads */
    unsigned parts;               /* scan_parts() of that copy */
    struct score_reduced reduced; /* elem's copy, when elem is not MODEL_ELEM_F32 */
    double exact_max_norm;        /* >= the norm of every f32 item row */
};

/* scan_plan - the plan for @query (a user row of @m: stride floats) read
 * from the @elem copy of @m's items, which @m must hold: scan_elem(m) for
 * the copy the preference picks, MODEL_ELEM_F32 for the exact matrix. */
void scan_plan(const struct model *m, const float *query, enum model_elem elem,
               struct scan_plan *out);

/* scan_topn - the @n best rows for @p's query that @keep accepts (NULL:
 * every row), read from @p's copy in p->parts parts: score_topn_split for
 * f32, score_topn_reduced for a reduced copy, with their result. @keep must
 * be safe to call from several threads at once. @scratch: p->parts * @n
 * entries; @out: @n entries. Returns the number of rows in @out. */
uint32_t scan_topn(const struct scan_plan *p, uint32_t n, score_filter_fn keep,
                   const void *filter_ctx, struct score_hit *scratch, struct score_hit *out);
