/*
 * scan: which copy of the item matrix Recommend scans.
 *
 * A model file may hold reduced-precision copies of its item matrix (bf16,
 * int8) besides the f32 one. Reading fewer bytes makes the scan faster,
 * and the results do not depend on the copy (score_topn_reduced re-ranks
 * exactly), so by default the smallest copy present is scanned. The choice
 * is process-wide, made once at start (--scan), like the kernel's.
 */
#pragma once

#include "base/err.h"
#include "engine/score.h"
#include "model/model.h"

/* scan_select - make @name the preferred copy: "auto", "f32", "bf16" or
 * "int8". "auto" takes the smallest copy the model holds whose scan beats
 * f32: with a kernel that scans it with SIMD (not the portable one), and
 * on a catalog of at least SCAN_REDUCED_BYTES of f32 rows. A model without
 * the preferred copy is scanned as "auto" picks. Without a call: "auto".
 * Returns 0, or ERR_INVALID for another name (text in @e, may be NULL). */
int scan_select(const char *name, struct err *e);

/* scan_preference - "auto", "f32", "bf16" or "int8". Static string. */
const char *scan_preference(void);

/* scan_elem - the copy of @m a scan reads under the current preference. */
enum model_elem scan_elem(const struct model *m);

/* Measured with bench/score (README, Performance), top-100, AVX-512:
 *
 * Bytes of f32 item matrix from which "auto" scans a reduced copy. Below
 * it the fixed cost of the exact re-rank (a 4N+16 candidate heap, then
 * that many exact dot products) outweighs the bytes saved: int8 broke even
 * with f32 at 10 MB and was 1.4x faster at 20 MB.
 *
 * Bytes scanned from which a scan is split over the helpers (split.h).
 * Below it, handing a part to another thread costs more than it saves,
 * and on a busy machine the helper may not run at once while the worker
 * waits for its part. On an idle machine, split in two: 5 MB took twice as
 * long, 20 MB as long, 51 MB a fifth less; with other processes busy on
 * the second core, 25.6 MB took 40% longer, while 256 MB still took 17%
 * less and 512 MB 23% less. */
#define SCAN_REDUCED_BYTES (16u << 20)
#define SCAN_SPLIT_BYTES   (64u << 20)

/* scan_split_from - split scans of at least @bytes (--scan-split-bytes);
 * SCAN_SPLIT_BYTES until called. The best value depends on the machine. */
void scan_split_from(unsigned long long bytes);

/* scan_parts - how many parts a scan of @m's @elem copy is cut into: 1
 * below the scan_split_from size, else split_parts(). */
unsigned scan_parts(const struct model *m, enum model_elem elem);

/* How one query row is scanned against a model's items: what Recommend
 * runs, and what BatchRecommend falls back to and bounds its sgemm
 * scores with. Borrowed pointers into the model and the query row; valid
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
