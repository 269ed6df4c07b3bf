/*
 * format: the on-disk layout of a recsysd model file, shared by the reader
 * (model.c) and the writer (writer.c). Private to the model library; the
 * prose specification is model/FORMAT.md, and the two must agree.
 *
 * All multi-byte fields are little-endian. The reader uses the factor
 * matrices and arrays in place, as native floats and integers, so the
 * library only builds on little-endian hosts.
 */
#pragma once

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/utf8.h"
#include "model/model.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "the model file is little-endian and is used in place");
_Static_assert(sizeof(float) == 4, "factors are IEEE-754 binary32");

#define FORMAT_MAGIC   "RECSYSM" /* 8 bytes with its NUL */
#define FORMAT_VERSION 1

/* Named databases. */
#define FORMAT_DB_META  "meta"
#define FORMAT_DB_ITEMS "items"
#define FORMAT_DB_USERS "users"
#define FORMAT_MAX_DBS  3

/* Fixed keys of the meta database that are not blobs. */
#define FORMAT_KEY_HEADER   "header"
#define FORMAT_KEY_VERSION  "version"
#define FORMAT_KEY_CHECKSUM "checksum"
/* Optional: how the model was trained (struct format_training). */
#define FORMAT_KEY_TRAINING "training"

/* Largest dimension a model may have. */
#define FORMAT_DIM_MAX 4096

/*
 * Blobs: the meta values holding arrays. Every blob value is
 *     pad zero bytes | payload | (FORMAT_BLOB_SLACK - pad) zero bytes
 * where pad (< FORMAT_BLOB_SLACK, recorded in header.blob_pad) makes the
 * payload start at a FORMAT_BLOB_ALIGN-aligned address in the map. The
 * matrices need it for SIMD loads; the other arrays get it for free, so they
 * too can be used in place as typed arrays (an LMDB value otherwise sits at
 * any even address).
 */
enum format_blob {
    FORMAT_BLOB_ITEM_MATRIX, /* item_count x stride f32 */
    FORMAT_BLOB_USER_MATRIX, /* user_count x stride f32 */
    FORMAT_BLOB_ITEM_ATTRS,  /* item_count x struct model_item_attr */
    FORMAT_BLOB_ITEM_IDS,    /* string table, item_count entries */
    FORMAT_BLOB_CATEGORIES,  /* string table, category_count entries */
    FORMAT_BLOB_POPULARITY,  /* item_count x struct model_pop */
    /* Optional: reduced-precision copies of the item matrix, for the scan. */
    FORMAT_BLOB_ITEM_BF16, /* item_count x stride bf16 (uint16 bit patterns) */
    FORMAT_BLOB_ITEM_INT8, /* item_count x stride int8, then item_count f32 row scales */
    FORMAT_BLOB_COUNT
};

/* Blobs before this one are in every file; the rest are optional. */
#define FORMAT_BLOB_REQUIRED FORMAT_BLOB_ITEM_BF16

#define FORMAT_BLOB_ALIGN 64
#define FORMAT_BLOB_SLACK 64

/* Meta key of each blob, indexed by enum format_blob. */
extern const char *const format_blob_keys[FORMAT_BLOB_COUNT];

/* The meta/header value. */
struct format_header {
    char magic[8];                        /* FORMAT_MAGIC */
    uint32_t format_version;              /* FORMAT_VERSION */
    uint32_t dim;                         /* 1..FORMAT_DIM_MAX */
    uint32_t stride;                      /* dim rounded up to MODEL_ROW_ALIGN_FLOATS */
    uint32_t elem_type;                   /* MODEL_ELEM_F32 */
    uint32_t has_bias;                    /* 0 or 1 */
    uint32_t category_count;              /* >= 1 */
    uint64_t user_count;                  /* <= UINT32_MAX */
    uint64_t item_count;                  /* 1..UINT32_MAX */
    uint64_t purchase_count;              /* sum of the users' owned counts */
    int64_t created_at;                   /* unix seconds */
    uint32_t blob_pad[FORMAT_BLOB_COUNT]; /* < FORMAT_BLOB_SLACK, by enum format_blob;
                                             0 for an optional blob the file lacks */
};
_Static_assert(sizeof(struct format_header) == 96, "header is 96 bytes on disk");
_Static_assert(offsetof(struct format_header, format_version) == 8, "header layout");
_Static_assert(offsetof(struct format_header, dim) == 12, "header layout");
_Static_assert(offsetof(struct format_header, stride) == 16, "header layout");
_Static_assert(offsetof(struct format_header, elem_type) == 20, "header layout");
_Static_assert(offsetof(struct format_header, has_bias) == 24, "header layout");
_Static_assert(offsetof(struct format_header, category_count) == 28, "header layout");
_Static_assert(offsetof(struct format_header, user_count) == 32, "header layout");
_Static_assert(offsetof(struct format_header, item_count) == 40, "header layout");
_Static_assert(offsetof(struct format_header, purchase_count) == 48, "header layout");
_Static_assert(offsetof(struct format_header, created_at) == 56, "header layout");
_Static_assert(offsetof(struct format_header, blob_pad) == 64, "header layout");

/* On-disk records declared in model.h, pinned here too. */
_Static_assert(offsetof(struct model_item_attr, price_cents) == 0, "item attr layout");
_Static_assert(offsetof(struct model_item_attr, category) == 8, "item attr layout");
_Static_assert(offsetof(struct model_item_attr, on_sale) == 12, "item attr layout");
_Static_assert(offsetof(struct model_item_attr, tier) == 13, "item attr layout");
_Static_assert(offsetof(struct model_item_attr, pad) == 14, "item attr layout");
_Static_assert(offsetof(struct model_pop, item) == 0, "popularity layout");
_Static_assert(offsetof(struct model_pop, count) == 4, "popularity layout");

/*
 * A users value: this fixed part, then owned_count uint32 item indices. It
 * sits at an unaligned address: read it with memcpy, never through a cast.
 */
struct format_user {
    uint32_t row;
    uint32_t tier;
    uint32_t owned_count;
};
_Static_assert(sizeof(struct format_user) == 12, "user record head is 12 bytes on disk");

/*
 * The optional meta/training value: the training record (FORMAT.md,
 * "Training record"). Absent, a reader takes the MODEL_DEFAULT_* values and
 * data end 0. A small fixed struct rather than a blob: it is read once, with
 * memcpy, at load.
 */
struct format_training {
    float regularization;            /* lambda, finite, >= 0 */
    float alpha;                     /* confidence per unit of weight, finite, >= 0 */
    float view_weight;               /* weight of one view, finite, > 0 */
    uint32_t regularization_scaling; /* enum model_scaling: how lambda meets a user */
    int64_t data_end_unix_ms;        /* >= 0; 0 = unknown */
};
_Static_assert(sizeof(struct format_training) == 24, "training record is 24 bytes on disk");
_Static_assert(offsetof(struct format_training, regularization) == 0, "training layout");
_Static_assert(offsetof(struct format_training, alpha) == 4, "training layout");
_Static_assert(offsetof(struct format_training, view_weight) == 8, "training layout");
_Static_assert(offsetof(struct format_training, regularization_scaling) == 12, "training layout");
_Static_assert(offsetof(struct format_training, data_end_unix_ms) == 16, "training layout");

/* format_training_problem - the one rule for a training record, applied
 * by the reader to the file's and by the writer to its input. Returns NULL
 * when @t is valid, else what is wrong with it, written into @buf
 * (@len bytes). */
static inline const char *format_training_problem(const struct format_training *t, char *buf,
                                                  size_t len)
{
    const struct {
        const char *name;
        float v;
        int zero_ok; /* 0 itself is allowed */
    } reals[] = {
        {"regularization", t->regularization, 1},
        {"alpha", t->alpha, 1},
        {"view_weight", t->view_weight, 0},
    };
    for (size_t i = 0; i < sizeof(reals) / sizeof(reals[0]); i++) {
        float v = reals[i].v;
        const char *why = !isfinite(v)                    ? "is not finite"
                          : reals[i].zero_ok && v < 0     ? "is negative"
                          : !reals[i].zero_ok && !(v > 0) ? "is not above 0"
                                                          : NULL;
        if (why != NULL) {
            snprintf(buf, len, "training %s %g %s", reals[i].name, (double)v, why);
            return buf;
        }
    }
    if (t->regularization_scaling > MODEL_SCALING_PER_INTERACTION) {
        snprintf(buf, len, "training regularization_scaling is %u, want 0 or 1",
                 t->regularization_scaling);
        return buf;
    }
    if (t->data_end_unix_ms < 0) {
        snprintf(buf, len, "training data_end_unix_ms %lld is negative",
                 (long long)t->data_end_unix_ms);
        return buf;
    }
    return NULL;
}

/* int8 copy: values are symmetric, -FORMAT_INT8_MAX..FORMAT_INT8_MAX, so
 * that negating a row or the query never overflows. */
#define FORMAT_INT8_MAX 127

/* An items value: the item index, uint32. */
#define FORMAT_ITEM_VALUE_SIZE 4

/* format_stride - floats per stored row for @dim. */
static inline uint32_t format_stride(uint32_t dim)
{
    return (dim + MODEL_ROW_ALIGN_FLOATS - 1) / MODEL_ROW_ALIGN_FLOATS * MODEL_ROW_ALIGN_FLOATS;
}

/* format_id_ok - whether @len bytes at @s are a valid id, category name or
 * version: 1..MODEL_ID_MAX bytes of UTF-8 (the API carries them in
 * protobuf strings, which clients refuse to decode otherwise), no NUL; ids
 * and names also no newline (@allow_newline 0), since the tools print and
 * read them one per line. */
static inline int format_id_ok(const char *s, size_t len, int allow_newline)
{
    if (len == 0 || len > MODEL_ID_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '\0' || (s[i] == '\n' && !allow_newline))
            return 0;
    return utf8_valid(s, len);
}

/* format_key_cmp - LMDB's default key order (memcmp, then the shorter key
 * first), so the writer can append keys in the order the B-tree keeps. */
static inline int format_key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen;
}

/* format_lmdb_rc - LMDB returns system errors as positive errno values and
 * its own as negative codes; recsysd's idiom wants -errno for the former. */
static inline int format_lmdb_rc(int rc)
{
    return rc > 0 ? -rc : rc;
}
