/*
 * csv: the streaming RFC 4180 reader (see csv.h).
 *
 * The reader keeps its own input buffer, so looking one byte ahead (CRLF, a
 * doubled quote) is an index comparison, and one growing byte array for the
 * record being read: each field's bytes followed by a NUL. The field
 * pointers are set only once the record is complete, because the array may
 * move while it grows.
 */
#include "tools/lib/csv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "tools/lib/quote.h"

#define CSV_BUF_SIZE (64u << 10)
#define CSV_BOM      "\xEF\xBB\xBF"
#define CSV_EOF      (-1)

struct csv {
    FILE *f;
    int owns_f; /* opened by csv_open, closed by csv_close */
    char *name;
    uint64_t line;   /* line of the next byte */
    uint32_t expect; /* fields per record, from the header; 0 = any */
    /* input */
    unsigned char buf[CSV_BUF_SIZE];
    size_t pos, len;
    int read_error; /* errno of a failed read, 0 if none */
    /* the record being read */
    uint64_t record_line; /* the line it starts on, which errors about it name */
    char *data;
    size_t data_len, data_cap;
    uint32_t *off, *lens;
    const char **fields;
    uint32_t nfields, fields_cap;
};

/* ==== input =========================================================== */

/* Refills the buffer; returns 0 at the end of input or after a read error. */
static size_t refill(struct csv *r)
{
    r->pos = 0;
    r->len = fread(r->buf, 1, sizeof(r->buf), r->f);
    if (r->len == 0 && ferror(r->f))
        r->read_error = errno ? errno : EIO;
    return r->len;
}

static int peek(struct csv *r)
{
    if (r->pos == r->len && refill(r) == 0)
        return CSV_EOF;
    return r->buf[r->pos];
}

/* The next byte, with CRLF read as one LF; counts lines. */
static int next(struct csv *r)
{
    int c = peek(r);
    if (c == CSV_EOF)
        return c;
    r->pos++;
    if (c == '\r' && peek(r) == '\n') {
        r->pos++;
        c = '\n';
    }
    if (c == '\n')
        r->line++;
    return c;
}

/* ==== the record ====================================================== */

static int append(struct csv *r, char c, struct err *e)
{
    if (r->data_len == r->data_cap) {
        if (r->data_cap >= CSV_RECORD_MAX)
            return err_set(e, ERR_TOO_BIG, "%s:%llu: record is longer than %u bytes", r->name,
                           (unsigned long long)r->record_line, CSV_RECORD_MAX);
        size_t cap = r->data_cap ? r->data_cap * 2 : 256;
        char *p = realloc(r->data, cap);
        if (p == NULL)
            return err_set(e, -ENOMEM, "%s: out of memory", r->name);
        r->data = p;
        r->data_cap = cap;
    }
    r->data[r->data_len++] = c;
    return 0;
}

/* Ends the field that started at data offset @start. */
static int end_field(struct csv *r, size_t start, struct err *e)
{
    int rc = append(r, '\0', e);
    if (rc != 0)
        return rc;
    if (r->nfields == r->fields_cap) {
        uint32_t cap = r->fields_cap ? r->fields_cap * 2 : 16;
        uint32_t *off = realloc(r->off, cap * sizeof(*off));
        if (off != NULL)
            r->off = off;
        uint32_t *lens = realloc(r->lens, cap * sizeof(*lens));
        if (lens != NULL)
            r->lens = lens;
        const char **fields = realloc(r->fields, cap * sizeof(*fields));
        if (fields != NULL)
            r->fields = fields;
        if (off == NULL || lens == NULL || fields == NULL)
            return err_set(e, -ENOMEM, "%s: out of memory", r->name);
        r->fields_cap = cap;
    }
    r->off[r->nfields] = (uint32_t)start;
    r->lens[r->nfields] = (uint32_t)(r->data_len - 1 - start);
    r->nfields++;
    /* Every value ends up in a protobuf string or is parsed as ASCII. */
    if (!utf8_valid(r->data + start, r->lens[r->nfields - 1]))
        return csv_fail(r, r->line, e, "field %u is not valid UTF-8", r->nfields);
    return 0;
}

/* A quoted field, after its opening quote; *c receives the byte after the
 * closing quote. */
static int quoted(struct csv *r, int *c, struct err *e)
{
    uint64_t opened = r->line;
    for (;;) {
        int b = next(r);
        if (b == CSV_EOF)
            return csv_fail(r, opened, e, "unterminated quoted field (the quote opens here)");
        if (b == '"') {
            if (peek(r) != '"') {
                *c = next(r);
                return 0;
            }
            r->pos++;
        } else if (b == '\0') {
            return csv_fail(r, r->line, e, "NUL byte in a field");
        }
        int rc = append(r, (char)b, e);
        if (rc != 0)
            return rc;
    }
}

/* An unquoted field starting with @b; *c receives the byte that ended it. */
static int unquoted(struct csv *r, int b, int *c, struct err *e)
{
    for (; b != ',' && b != '\n' && b != CSV_EOF; b = next(r)) {
        if (b == '"')
            return csv_fail(r, r->line, e,
                            "quote inside an unquoted field (quote the whole field, and "
                            "double the quotes in it)");
        if (b == '\0')
            return csv_fail(r, r->line, e, "NUL byte in a field");
        int rc = append(r, (char)b, e);
        if (rc != 0)
            return rc;
    }
    *c = b;
    return 0;
}

/* Reads one record whose first byte is @c into the record arrays. */
static int read_record(struct csv *r, int c, struct err *e)
{
    r->data_len = 0;
    r->nfields = 0;
    for (;;) {
        size_t start = r->data_len;
        int rc;
        if (c == '"') {
            rc = quoted(r, &c, e);
            if (rc == 0 && c != ',' && c != '\n' && c != CSV_EOF)
                rc = csv_fail(r, r->line, e, "unexpected character after a closing quote");
        } else {
            rc = unquoted(r, c, &c, e);
        }
        if (rc == 0)
            rc = end_field(r, start, e);
        if (rc != 0)
            return rc;
        if (c != ',')
            return 0;
        c = next(r);
    }
}

int csv_next(struct csv *r, struct csv_record *rec, struct err *e)
{
    int c;
    while ((c = next(r)) == '\n')
        ;
    if (c == CSV_EOF) {
        if (r->read_error != 0)
            return err_set(e, -r->read_error, "%s: read failed (%s)", r->name,
                           strerror(r->read_error));
        return 0;
    }
    uint64_t line = r->record_line = r->line;
    int rc = read_record(r, c, e);
    if (rc == 0 && r->read_error != 0)
        rc = err_set(e, -r->read_error, "%s: read failed (%s)", r->name, strerror(r->read_error));
    if (rc != 0)
        return rc;
    if (r->expect != 0 && r->nfields != r->expect)
        return csv_fail(r, line, e, "%u fields, the header has %u", r->nfields, r->expect);
    for (uint32_t i = 0; i < r->nfields; i++)
        r->fields[i] = r->data + r->off[i];
    *rec = (struct csv_record){r->fields, r->lens, r->nfields, line};
    return 1;
}

/* ==== header ========================================================== */

/* "a,b,c", for messages. */
static void join(const char *const *names, uint32_t n, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (uint32_t i = 0; i < n && len < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? "," : "", names[i]);
}

int csv_header(struct csv *r, const char *const *names, uint32_t n, uint32_t *cols, struct err *e)
{
    char want[256];
    join(names, n, want, sizeof(want));
    struct csv_record h;
    int rc = csv_next(r, &h, e);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return err_set(e, ERR_INVALID, "%s: empty file, expected the header '%s'", r->name, want);
    for (uint32_t i = 0; i < n; i++)
        cols[i] = UINT32_MAX;
    for (uint32_t c = 0; c < h.count; c++) {
        uint32_t i = 0;
        while (i < n && strcmp(h.fields[c], names[i]) != 0)
            i++;
        char q[QUOTE_BUF];
        if (i == n)
            return csv_fail(r, h.line, e, "unexpected column '%s' (the header must be '%s')",
                            quote(q, sizeof(q), h.fields[c], h.lens[c]), want);
        if (cols[i] != UINT32_MAX)
            return csv_fail(r, h.line, e, "column '%s' appears twice", names[i]);
        cols[i] = c;
    }
    for (uint32_t i = 0; i < n; i++)
        if (cols[i] == UINT32_MAX)
            return csv_fail(r, h.line, e, "column '%s' is missing (the header must be '%s')",
                            names[i], want);
    r->expect = n;
    return 0;
}

/* ==== the reader ====================================================== */

int csv_fail(const struct csv *r, uint64_t line, struct err *e, const char *fmt, ...)
{
    char problem[sizeof(e->msg)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(problem, sizeof(problem), fmt, ap);
    va_end(ap);
    return err_set(e, ERR_INVALID, "%s:%llu: %s", r->name, (unsigned long long)line, problem);
}

const char *csv_name(const struct csv *r)
{
    return r->name;
}

int csv_attach(FILE *f, const char *name, struct csv **out, struct err *e)
{
    struct csv *r = calloc(1, sizeof(*r));
    char *copy = strdup(name);
    if (r == NULL || copy == NULL) {
        free(r);
        free(copy);
        return err_set(e, -ENOMEM, "%s: out of memory", name);
    }
    r->f = f;
    r->name = copy;
    r->line = 1;
    if (refill(r) >= 3 && memcmp(r->buf, CSV_BOM, 3) == 0)
        r->pos = 3;
    *out = r;
    return 0;
}

int csv_open(const char *path, struct csv **out, struct err *e)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return err_set(e, -errno, "%s: %s", path, strerror(errno));
    int rc = csv_attach(f, path, out, e);
    if (rc != 0) {
        fclose(f);
        return rc;
    }
    (*out)->owns_f = 1;
    return 0;
}

void csv_close(struct csv *r)
{
    if (r == NULL)
        return;
    if (r->owns_f)
        fclose(r->f);
    free(r->name);
    free(r->data);
    free(r->off);
    free(r->lens);
    free(r->fields);
    free(r);
}
