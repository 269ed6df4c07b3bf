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

#include "err.h"
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
 * Below it, handing parts to another thread costs more than it saves: a
 * 5 MB scan took twice as long split in two, a 20 MB one as long, a 51 MB
 * one a fifth less. */
#define SCAN_REDUCED_BYTES (16u << 20)
#define SCAN_SPLIT_BYTES   (16u << 20)

/* scan_parts - how many parts a scan of @m's @elem copy is cut into: 1
 * below SCAN_SPLIT_BYTES, else split_parts(). */
unsigned scan_parts(const struct model *m, enum model_elem elem);
