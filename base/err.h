/*
 * err: the one error idiom of recsysd.
 *
 * A function that can fail returns int: 0 on success, otherwise a negative
 * code. System errors keep their value as -errno (always > -4096); LMDB's
 * own codes (MDB_KEYEXIST .. MDB_LAST_ERRCODE, around -30800) pass through
 * unchanged; recsysd's codes live in [-1099, -1000], so the three ranges never
 * collide. One table gives every code of ours its name, its text and the
 * gRPC status a call failing with it ends in, so no caller has a switch on
 * error codes.
 *
 * Where the caller needs detail (a bad request, a bad model file, a bad CSV
 * line) it passes a struct err, which receives one line of text. NULL is
 * allowed everywhere a struct err * is taken.
 */
#pragma once

#include <stdarg.h>

enum {
    ERR_INVALID = -1000,   /* malformed or out-of-range input: a request, a flag, a CSV line */
    ERR_NOT_FOUND = -1001, /* a named thing (item, key) does not exist */
    ERR_NO_MODEL = -1002,  /* no model is loaded: the service is not ready */
    ERR_FORMAT = -1003,    /* a model file is not a valid recsysd model */
    ERR_CHECKSUM = -1004,  /* a model file's content does not match its checksum */
    ERR_TOO_BIG = -1005,   /* a size limit was exceeded */
    ERR_INTERNAL = -1006,  /* a broken invariant or a library failure with no better code */
    ERR_DISABLED = -1007,  /* the daemon was started without what the request needs (a flag) */
};

/* The status codes a failed call can end in: the canonical codes every
 * gRPC implementation numbers alike (grpc/status.h has the same values;
 * server/service.c asserts it), kept here as plain integers so that the
 * offline tools and the engine do not depend on gRPC. */
enum err_status {
    ERR_STATUS_OK = 0,
    ERR_STATUS_CANCELLED = 1,
    ERR_STATUS_UNKNOWN = 2,
    ERR_STATUS_INVALID_ARGUMENT = 3,
    ERR_STATUS_DEADLINE_EXCEEDED = 4,
    ERR_STATUS_NOT_FOUND = 5,
    ERR_STATUS_ALREADY_EXISTS = 6,
    ERR_STATUS_PERMISSION_DENIED = 7,
    ERR_STATUS_RESOURCE_EXHAUSTED = 8,
    ERR_STATUS_FAILED_PRECONDITION = 9,
    ERR_STATUS_ABORTED = 10,
    ERR_STATUS_OUT_OF_RANGE = 11,
    ERR_STATUS_UNIMPLEMENTED = 12,
    ERR_STATUS_INTERNAL = 13,
    ERR_STATUS_UNAVAILABLE = 14,
    ERR_STATUS_DATA_LOSS = 15,
    ERR_STATUS_UNAUTHENTICATED = 16,
    ERR_STATUS_COUNT
};

/* Text of the last failure, for the caller to log or return to a client. */
struct err {
    int code;
    char msg[512];
};

/* err_set - record a failure.
 * @e:    receives code and the formatted text; may be NULL.
 * @code: the negative code to record and return.
 * Returns @code, so a failure is recorded and returned in one statement:
 *     return err_set(e, ERR_INVALID, "count %u exceeds %u", n, max);
 */
int err_set(struct err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* err_wrap - prefix the text already in @e with more context, keeping its code:
 *     "line 7: bad price" -> "catalog.csv: line 7: bad price".
 * Returns e->code (or @code when @e is NULL). */
int err_wrap(struct err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* err_strerror - text for any code: ours, LMDB's or -errno. Never NULL. */
const char *err_strerror(int code);

/* err_name - symbolic name for our codes ("ERR_INVALID"); "ERRNO" or "LMDB"
 * for the other ranges; "OK" for 0. Never NULL. */
const char *err_name(int code);

/* err_status - the enum err_status a call that fails with @code ends
 * in. 0 maps to OK; codes without an entry map to INTERNAL. */
int err_status(int code);

/* err_status_name - "INVALID_ARGUMENT" for status 3, and so on, as
 * every gRPC implementation spells them; "UNKNOWN_STATUS" for a code gRPC
 * does not define. Never NULL. */
const char *err_status_name(int status);
