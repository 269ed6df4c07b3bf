/*
 * csv: a small streaming reader of RFC 4180 CSV files, one record at a time.
 *
 * Fields are separated by commas and records by LF or CRLF. A field may be
 * quoted with '"'; inside quotes, commas, line breaks and '""' (one quote)
 * are data. Unquoted fields may not contain quotes, and a closing quote must
 * be followed by a comma or the end of the record: both are errors rather
 * than guesses. Empty lines are skipped, and a UTF-8 byte order mark at the
 * start of the file is ignored (spreadsheets write one). NUL bytes are
 * refused, so every field is also a C string.
 *
 * Every record carries the line it starts on, and every error the reader
 * reports reads "<name>:<line>: <problem>", so the caller's own errors about
 * a field's value look the same (csv_fail).
 */
#pragma once

#include <stdint.h>
#include <stdio.h>

#include "base/err.h"

/* A record is at most this many bytes of field data, so a file that is not
 * CSV (or has a runaway quote) fails fast instead of eating memory. */
#define CSV_RECORD_MAX (1u << 20)

struct csv;

/* One record. Borrowed: valid until the next csv_next or csv_close. */
struct csv_record {
    const char *const *fields; /* count NUL-terminated fields */
    const uint32_t *lens;      /* their lengths in bytes */
    uint32_t count;
    uint64_t line; /* 1-based line the record starts on */
};

/* csv_open - open @path for reading. The caller owns *out (csv_close).
 * Returns 0 or -errno with "<path>: <reason>" in @e. */
int csv_open(const char *path, struct csv **out, struct err *e);

/* csv_attach - read from @f, named @name in messages; @f stays the
 * caller's (csv_close does not close it). Returns 0 or -ENOMEM. */
int csv_attach(FILE *f, const char *name, struct csv **out, struct err *e);

/* csv_close - free the reader (and close the file csv_open opened). NULL is a no-op. */
void csv_close(struct csv *r);

/* csv_next - read the next record into *rec.
 * Returns 1 with a record, 0 at the end of the file, or a negative code:
 * ERR_INVALID (unterminated quote, stray quote, a record whose field count
 * differs from the header's once csv_header was called), ERR_TOO_BIG
 * (record over CSV_RECORD_MAX), -errno (read error), -ENOMEM. */
int csv_next(struct csv *r, struct csv_record *rec, struct err *e);

/* csv_header - read the first record as the header and match it against
 * @names: every column must carry one of the @n names and every name must
 * appear exactly once, in any order. cols[i] receives the column index of
 * names[i]. From then on csv_next refuses records with a field count other
 * than @n. Returns 0, ERR_INVALID (empty file, unknown, duplicate or
 * missing column) or a csv_next error. */
int csv_header(struct csv *r, const char *const *names, uint32_t n, uint32_t *cols, struct err *e);

/* csv_fail - record "<name>:<line>: <problem>" and return ERR_INVALID. */
int csv_fail(const struct csv *r, uint64_t line, struct err *e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* csv_name - the name messages use for this file. */
const char *csv_name(const struct csv *r);
