#include "base/err.h"

#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <string.h>

static const struct {
    int code;
    const char *name;
    const char *text;
    int status;
} codes[] = {
    {ERR_INVALID, "ERR_INVALID", "invalid argument", ERR_STATUS_INVALID_ARGUMENT},
    {ERR_NOT_FOUND, "ERR_NOT_FOUND", "not found", ERR_STATUS_NOT_FOUND},
    {ERR_NO_MODEL, "ERR_NO_MODEL", "no model loaded", ERR_STATUS_UNAVAILABLE},
    {ERR_FORMAT, "ERR_FORMAT", "not a valid model file", ERR_STATUS_INTERNAL},
    {ERR_CHECKSUM, "ERR_CHECKSUM", "model checksum mismatch", ERR_STATUS_INTERNAL},
    {ERR_TOO_BIG, "ERR_TOO_BIG", "size limit exceeded", ERR_STATUS_RESOURCE_EXHAUSTED},
    {ERR_INTERNAL, "ERR_INTERNAL", "internal error", ERR_STATUS_INTERNAL},
    {ERR_DISABLED, "ERR_DISABLED", "not enabled", ERR_STATUS_FAILED_PRECONDITION},
};

static int find(int code)
{
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (codes[i].code == code)
            return (int)i;
    return -1;
}

static int is_lmdb(int code)
{
    return code <= MDB_KEYEXIST && code >= MDB_LAST_ERRCODE;
}

static int vformat(struct err *e, int code, const char *fmt, va_list ap)
{
    if (e == NULL)
        return code;
    e->code = code;
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    return code;
}

int err_set(struct err *e, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vformat(e, code, fmt, ap);
    va_end(ap);
    return code;
}

int err_wrap(struct err *e, int code, const char *fmt, ...)
{
    if (e == NULL)
        return code;
    char old[sizeof(e->msg)];
    memcpy(old, e->msg, sizeof(old));
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n + 2 >= sizeof(e->msg))
        return e->code;
    /* When both do not fit, the end of the old text is cut: the context
     * that leads the line matters more to whoever reads it. */
    size_t at = (size_t)n;
    e->msg[at++] = ':';
    e->msg[at++] = ' ';
    size_t keep = strnlen(old, sizeof(old) - 1);
    if (keep > sizeof(e->msg) - 1 - at)
        keep = sizeof(e->msg) - 1 - at;
    memcpy(e->msg + at, old, keep);
    e->msg[at + keep] = '\0';
    return e->code;
}

const char *err_strerror(int code)
{
    if (code == 0)
        return "success";
    int i = find(code);
    if (i >= 0)
        return codes[i].text;
    if (is_lmdb(code))
        return mdb_strerror(code);
    if (code < 0 && code > -4096)
        return strerror(-code);
    return "unknown error";
}

const char *err_name(int code)
{
    if (code == 0)
        return "OK";
    int i = find(code);
    if (i >= 0)
        return codes[i].name;
    if (is_lmdb(code))
        return "LMDB";
    return "ERRNO";
}

int err_status(int code)
{
    if (code == 0)
        return ERR_STATUS_OK;
    int i = find(code);
    if (i >= 0)
        return codes[i].status;
    if (code == -ENOMEM)
        return ERR_STATUS_RESOURCE_EXHAUSTED;
    return ERR_STATUS_INTERNAL;
}

/* Indexed by enum err_status. */
static const char *const status_names[ERR_STATUS_COUNT] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

const char *err_status_name(int status)
{
    if (status < 0 || status >= ERR_STATUS_COUNT)
        return "UNKNOWN_STATUS";
    return status_names[status];
}
