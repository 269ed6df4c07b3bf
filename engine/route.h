/*
 * route: which model answers a call that names none. The routes file of a
 * models directory, read and checked, and the assignment of each user to
 * one arm of its split.
 *
 * The file, routes.json (at most ROUTE_FILE_MAX bytes, UTF-8 JSON):
 *
 *   {"default": "stable", "split": {"stable": 90, "candidate": 10}, "salt": "exp-1"}
 *
 *   default  required; a model name (route_name_valid).
 *   split    optional; an object of 1 to ROUTE_ARMS_MAX model names, each
 *            with an integer weight from 0 to 100, the weights summing to
 *            100. An arm may weigh 0: listed, and sent no one.
 *   salt     optional; a string of at most ROUTE_SALT_MAX bytes, "" if
 *            absent. A new salt draws every user afresh: a new experiment.
 *
 * Anything else is refused, with the reason: another key, a key twice, a
 * weight that is not an integer (90.0, "90") or out of range, a name that
 * is not a model name, trailing bytes. Which models exist is not this
 * module's concern: the caller checks the names against what it serves.
 *
 * Assignment, the same on every call, after restarts and on every replica,
 * and reproducible by an analyst in any language:
 *
 *   bucket = int.from_bytes(sha256(salt + b"\0" + user_id).digest()[:8], "big") % 100
 *
 * The arms, in byte order of their names, own consecutive ranges of the
 * 100 buckets, each as many as its weight: with {"stable": 90,
 * "candidate": 10}, candidate owns buckets 0-9 and stable 10-99. Without
 * a split every user goes to the default.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define ROUTE_BUCKETS  100
#define ROUTE_NAME_MAX 64 /* bytes in a model name */
#define ROUTE_ARMS_MAX 16
#define ROUTE_SALT_MAX 256
#define ROUTE_FILE_MAX 65536

struct route_arm {
    char name[ROUTE_NAME_MAX + 1]; /* NUL-terminated */
    uint32_t weight;               /* 0..100 */
};

/* A routes file, read and checked. Plain data: copy it freely. */
struct route {
    char default_name[ROUTE_NAME_MAX + 1];
    char salt[ROUTE_SALT_MAX + 1]; /* NUL-terminated; salt_len bytes, no NUL inside */
    size_t salt_len;
    uint32_t n_arms;                       /* 0: no split */
    struct route_arm arms[ROUTE_ARMS_MAX]; /* in byte order of name */
};

/* route_name_valid - whether @name (@len bytes) is a model name:
 * [a-z0-9][a-z0-9_-]{0,63}. Model files are NAME.lmdb. */
bool route_name_valid(const char *name, size_t len);

/* route_parse - read @text (@len bytes, not NUL-terminated) as a routes
 * file into @out.
 * Returns 0, or ERR_INVALID with @e saying what is wrong, such as
 * "split: the weights sum to 90, not 100" or "line 3: ..." for bad JSON;
 * @out is then unspecified. */
int route_parse(const char *text, size_t len, struct route *out, struct err *e);

/* route_bucket - the bucket, 0 to ROUTE_BUCKETS - 1, of user @user
 * (@user_len bytes) under the salt of @r. One SHA-256 block while salt,
 * NUL and id fit in 55 bytes: 0.37 us on the 2-core EPYC the benches run
 * on (2 * 10^6 ids "u0000001"..., salt "exp-1"), against about 290 us
 * for a Recommend on the demo's 10^5 items. */
uint32_t route_bucket(const struct route *r, const char *user, size_t user_len);

/* route_arm_of - the index in r->arms of the arm that owns @bucket.
 * Only for a route with a split (n_arms > 0). */
uint32_t route_arm_of(const struct route *r, uint32_t bucket);
