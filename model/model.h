/*
 * model: read-only, validated view of one recsysd model file.
 *
 * A model file is one LMDB file (MDB_NOSUBDIR) laid out as model/FORMAT.md
 * describes. model_open() maps it read-only, checks every size, count,
 * offset, index and number in it once, verifies the checksum, and resolves
 * the pointers the queries need. After that the model is immutable and every
 * accessor below trusts it: accessors do not re-check bounds (they assert).
 *
 * Thread safety: all functions taking a const struct model * may be called
 * from any number of threads at once, provided each thread uses its own
 * lookup slot (see model_open's @slots) for the functions that take one.
 *
 * Lifetime: every pointer returned here points into the map or into the
 * model's own memory and is valid until model_close(). Never write through
 * one or free it.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct model;

/* Element types of the item matrix's copies. The factor matrices are f32;
 * a file may also hold reduced-precision copies of the item matrix, which
 * the scan reads instead to move fewer bytes (FORMAT.md). */
enum model_elem { MODEL_ELEM_F32, MODEL_ELEM_BF16, MODEL_ELEM_INT8, MODEL_ELEM_COUNT };

/* "f32", "bf16", "int8", indexed by enum model_elem. */
extern const char *const model_elem_names[MODEL_ELEM_COUNT];

/* Rows of both factor matrices are padded to a multiple of this many floats,
 * with zeros, and start at 64-byte aligned addresses in the map. */
#define MODEL_ROW_ALIGN_FLOATS 16

/* Longest user id, item id, category name or version string, in bytes. */
#define MODEL_ID_MAX 256

/* Per-item catalog attributes: one fixed-size record per item, in item
 * index order, stored as one array in the file. */
struct model_item_attr {
    int64_t price_cents; /* >= 0 */
    uint32_t category;   /* < model_category_count() */
    uint8_t on_sale;     /* 0 or 1 */
    uint8_t tier;        /* membership tier that includes it; 0 = none */
    uint8_t pad[2];      /* zero */
};
_Static_assert(sizeof(struct model_item_attr) == 16, "item attr is 16 bytes on disk");

/* One entry of the popularity ranking. */
struct model_pop {
    uint32_t item;  /* item index */
    uint32_t count; /* purchases of the item in the training snapshot */
};
_Static_assert(sizeof(struct model_pop) == 8, "popularity entry is 8 bytes on disk");

/* What model_find_user() resolves. */
struct model_user {
    uint32_t row;         /* row in the user factor matrix */
    uint32_t tier;        /* membership tier; 0 = none */
    uint32_t owned_count; /* items owned in the snapshot */
    const void *owned;    /* owned_count little-endian uint32 item indices, ascending and
                             distinct; not aligned: read with model_user_owned() */
};

/* Header facts, for GetModelInfo and `recsys-model inspect`. */
struct model_info {
    uint32_t format_version;
    uint32_t dim;       /* factors per vector, bias column included */
    uint32_t stride;    /* floats per stored row: dim rounded up to 16 */
    uint32_t elem_type; /* MODEL_ELEM_* */
    uint32_t has_bias;  /* 1: the last dimension is an item bias (user side holds 1.0) */
    uint32_t category_count;
    uint64_t user_count;
    uint64_t item_count;
    uint64_t purchase_count; /* owned (user, item) pairs in the snapshot */
    int64_t created_at;      /* unix seconds, as written */
    int64_t loaded_at;       /* unix seconds, when model_open finished */
    uint64_t file_bytes;
    const char *version;  /* NUL-terminated */
    const char *checksum; /* 16 lowercase hex digits, NUL-terminated */
    const char *path;     /* as passed to model_open */
};

/* model_open - map, validate and resolve a model file.
 * @path:  the file.
 * @slots: number of lookup slots (>= 1): one per thread that will call the
 *         lookup functions concurrently. Slot i must only be used by one
 *         thread at a time.
 * @out:   receives the model; the caller owns it and releases it with model_close.
 * @e:     receives "<path>: <problem>" on failure; may be NULL.
 * Returns 0, ERR_FORMAT (not a model, truncated, inconsistent, non-finite
 * factors, ...), ERR_CHECKSUM, an LMDB code, or -errno (-ENOENT, -EACCES, ...).
 * On failure nothing is left open. */
int model_open(const char *path, unsigned slots, struct model **out, struct err *e);

/* model_close - unmap and free. NULL is a no-op. No call may use @m after. */
void model_close(struct model *m);

/* model_verify - model_open + model_close: the full validation, for tools. */
int model_verify(const char *path, struct err *e);

const struct model_info *model_info(const struct model *m);

/* ---- items ------------------------------------------------------------ */

uint32_t model_item_count(const struct model *m);
uint32_t model_dim(const struct model *m);
/* Floats per row of either factor matrix (multiple of MODEL_ROW_ALIGN_FLOATS). */
uint32_t model_stride(const struct model *m);

/* Item factor matrix: item i's vector is the first model_dim() floats at
 * matrix + i * model_stride(); the rest of the row is zero. 64-byte aligned. */
const float *model_item_matrix(const struct model *m);

/* 1/||v|| per item (0 for an all-zero vector), computed at load. */
const float *model_item_inv_norms(const struct model *m);

/* One copy of the item matrix, with the bounds measured at load that let a
 * scan of a reduced copy prove its candidates contain the exact top-N. */
struct model_item_copy {
    /* item_count x model_stride() elements, 64-byte aligned, zero padded:
     * f32 floats, bf16 bit patterns (uint16_t, the high half of a float),
     * or int8 in -127..127. */
    const void *rows;
    /* int8: row i's element j stands for scale[i] * rows[i][j]. Else NULL. */
    const float *scale;
    /* Upper bounds over all items i, w_i being row i as the real numbers it
     * stands for and v_i the f32 row: max ||w_i|| and max ||w_i - v_i||
     * (0 for the f32 copy itself). */
    double max_norm;
    double max_error;
    /* NULL, or the same rows regrouped by the engine for its kernels and
     * given to the model to keep (model_set_item_blocked). */
    const void *blocked;
};

/* model_item_copy - the copy of element type @elem; NULL when the file has
 * none of that type. The f32 copy always exists. */
const struct model_item_copy *model_item_copy(const struct model *m, enum model_elem elem);

/* ---- the scan's choice ------------------------------------------------ */

/* Which copy of the item matrix the engine scans this model with, and the
 * timings it chose by (engine/scan.h). Not from the file: the engine times
 * the copies on this machine when it loads the model. */
struct model_scan {
    enum model_elem elem; /* the copy scans read; the model holds it */
    /* Seconds per query by copy, a round's best; 0 for a copy not timed. */
    double query_seconds[MODEL_ELEM_COUNT];
    unsigned queries;   /* query rows timed per copy and round */
    unsigned rounds;    /* rounds timed */
    unsigned from_user; /* 1: the queries were user rows; 0: item rows (no users) */
};

/* model_set_scan - record @s (copied) as @m's scan choice. The one change
 * made to a model after model_open, and only by the thread that opened it,
 * before @m is shared: whatever then hands @m to other threads (the
 * reloader's release store) publishes it with the rest of the model, and
 * from then on it is as immutable as the file's contents. Call it at most
 * once. */
void model_set_scan(struct model *m, const struct model_scan *s);

/* model_set_item_blocked - give @m @blocked, the rows of its @elem copy
 * regrouped by the engine (heap memory; model_close frees it), which
 * model_item_copy(@m, @elem)->blocked then returns. Like model_set_scan:
 * at most once per copy, by the thread that opened @m, before @m is
 * shared. The model neither reads nor checks it: the engine made it from
 * rows the model validated. */
void model_set_item_blocked(struct model *m, enum model_elem elem, void *blocked);

/* model_scan - what model_set_scan recorded; NULL if it was never called
 * (a model opened without the reloader, or not timed: scan.h). */
const struct model_scan *model_scan(const struct model *m);

/* ---- how it was trained (FORMAT.md `training`) --------------------------- */

/* Defaults when the file holds no training record (files written before it
 * existed, or imported without the flags): recsys-train's own defaults. */
#define MODEL_DEFAULT_REGULARIZATION 0.05f
#define MODEL_DEFAULT_ALPHA          20.0f
#define MODEL_DEFAULT_VIEW_WEIGHT    0.25f

/* How the trainer applied lambda to one user's (or item's) least-squares
 * problem; the values are the file's (FORMAT.md). The file's word was
 * reserved, always 0, before Spark's rule was taken in, so files written
 * then read as MODEL_SCALING_NONE, and a daemon older than the rule
 * refuses a file that needs it rather than folding in users differently
 * from the trainer. */
enum model_scaling {
    MODEL_SCALING_NONE = 0,            /* lambda as given: recsys-train */
    MODEL_SCALING_PER_INTERACTION = 1, /* lambda times the user's items: Spark MLlib */
};

/* What the live-events fold-in needs to score a user the way the trainer
 * would have (engine/foldin.h), and what compaction needs to know which
 * recorded events the model already holds. */
struct model_training {
    float regularization;            /* lambda >= 0, applied as regularization_scaling says */
    float alpha;                     /* confidence per unit of weight: c = 1 + alpha * w, >= 0 */
    float view_weight;               /* weight of one view event, > 0 */
    uint32_t regularization_scaling; /* enum model_scaling */
    /* Unix milliseconds of the last event the training data holds: events
     * at or before it are in the model. 0: unknown (no event is taken as
     * held). */
    int64_t data_end_unix_ms;
    int from_file; /* 1: the file holds the record; 0: the defaults above */
};

/* model_training - the file's training record, or the defaults. */
const struct model_training *model_training(const struct model *m);

/* model_set_gram - give @m @gram, engine data derived from its item matrix
 * for the fold-in (its layout is engine/foldin.h's; heap memory, which
 * model_close frees). Like model_set_scan: at most once, by the thread that
 * opened @m, before @m is shared. */
void model_set_gram(struct model *m, void *gram);

/* model_gram - what model_set_gram gave; NULL if nothing. */
const void *model_gram(const struct model *m);

/* Catalog attributes, indexed by item. */
const struct model_item_attr *model_item_attrs(const struct model *m);

/* External id of item @item (< model_item_count); *len receives its length.
 * The bytes are not NUL-terminated. */
const char *model_item_id(const struct model *m, uint32_t item, uint32_t *len);

/* model_find_item - item index for an external id, through lookup slot @slot.
 * Returns 0 and sets *item, or ERR_NOT_FOUND. */
int model_find_item(const struct model *m, unsigned slot, const char *id, size_t len,
                    uint32_t *item);

/* Popularity ranking over all items, most purchased first, ties to the
 * lower item index; model_item_count() entries. */
const struct model_pop *model_popularity(const struct model *m);

/* ---- categories ------------------------------------------------------- */

uint32_t model_category_count(const struct model *m);
/* Name of category @cat; *len receives its length (not NUL-terminated). */
const char *model_category_name(const struct model *m, uint32_t cat, uint32_t *len);
/* model_find_category - category index for a name; 0 or ERR_NOT_FOUND. */
int model_find_category(const struct model *m, const char *name, size_t len, uint32_t *cat);

/* ---- users ------------------------------------------------------------ */

uint64_t model_user_count(const struct model *m);

/* User factor matrix, same layout as the item matrix. */
const float *model_user_matrix(const struct model *m);

/* model_find_user - resolve an external user id through lookup slot @slot.
 * Returns 0 and fills *u, or ERR_NOT_FOUND. u->owned is borrowed (map). */
int model_find_user(const struct model *m, unsigned slot, const char *id, size_t len,
                    struct model_user *u);

/* model_user_owned - copy u->owned_count item indices to @dst (ascending). */
void model_user_owned(const struct model_user *u, uint32_t *dst);
