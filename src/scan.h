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

/* scan_select - make @name the preferred copy: "auto" (the smallest the
 * model holds whose scan beats f32 with the current kernel: any, except
 * with the portable kernel), "f32", "bf16" or "int8". A model without the
 * preferred copy is scanned as "auto" picks. Without a call: "auto".
 * Returns 0, or ERR_INVALID for another name (text in @e, may be NULL). */
int scan_select(const char *name, struct err *e);

/* scan_preference - "auto", "f32", "bf16" or "int8". Static string. */
const char *scan_preference(void);

/* scan_elem - the copy of @m a scan reads under the current preference. */
enum model_elem scan_elem(const struct model *m);
