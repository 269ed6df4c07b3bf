/*
 * test_csv: the streaming CSV reader against RFC 4180 and the rules csv.h
 * adds (empty lines skipped, a leading BOM ignored, NUL and stray quotes
 * refused, records capped at CSV_RECORD_MAX), with the line numbers every
 * record and error carries.
 *
 * Inputs are read from memory (fmemopen) under the name "t.csv". A case
 * lists the records it expects as "<line>[field][field]...", space
 * separated, then the error that ends the file, if any.
 */
#include "tools/lib/csv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

#define NAME "t.csv"

/* A string literal and its length, NULs included. */
#define S(lit) lit, sizeof(lit) - 1

/* ==== reading ========================================================= */

/* Appends "<line>[f1][f2]..." for @rec to @out (@cap bytes), space separated. */
static void describe(const struct csv_record *rec, char *out, size_t cap)
{
    size_t n = strlen(out);
    n += (size_t)snprintf(out + n, cap - n, "%s%llu", n ? " " : "", (unsigned long long)rec->line);
    for (uint32_t i = 0; i < rec->count && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "[%s]", rec->fields[i]);
}

/* Reads @len bytes of @input to the end or the first error, after matching
 * a header of @ncols @cols when @ncols > 0. @out receives the records as
 * describe() writes them. Returns 0 at the end, or the error (text in @e). */
static int read_all(const char *input, size_t len, const char *const *cols, uint32_t ncols,
                    char *out, size_t cap, struct err *e)
{
    out[0] = '\0';
    FILE *f = fmemopen((void *)input, len, "r");
    if (f == NULL)
        return -errno;
    struct csv *r = NULL;
    int rc = csv_attach(f, NAME, &r, e);
    uint32_t idx[8];
    if (rc == 0 && ncols > 0)
        rc = csv_header(r, cols, ncols, idx, e);
    struct csv_record rec;
    while (rc == 0 && (rc = csv_next(r, &rec, e)) == 1) {
        for (uint32_t i = 0; i < rec.count; i++)
            if (strlen(rec.fields[i]) != rec.lens[i])
                rc = ERR_INTERNAL; /* a field's length disagrees with its string */
        if (rc == 1) {
            describe(&rec, out, cap);
            rc = 0;
        }
    }
    csv_close(r);
    fclose(f);
    return rc;
}

/* ==== RFC 4180 cases ================================================== */

static const struct csv_case {
    const char *name;
    const char *input;
    size_t len;
    const char *records; /* read before the end or the error */
    int rc;              /* 0, or the error that ends the file */
    const char *err;     /* fragment of its text */
} cases[] = {
    /* records and fields */
    {"records", S("a,b\nc,d\n"), "1[a][b] 2[c][d]", 0, NULL},
    {"last record without a newline", S("a,b\nc,d"), "1[a][b] 2[c][d]", 0, NULL},
    {"CRLF", S("a,b\r\nc,d\r\n"), "1[a][b] 2[c][d]", 0, NULL},
    {"LF and CRLF mixed", S("a\r\nb\nc\r\n"), "1[a] 2[b] 3[c]", 0, NULL},
    {"a lone CR is data", S("a\rb,c\n"), "1[a\rb][c]", 0, NULL},
    {"blanks are data", S(" a , b \n"), "1[ a ][ b ]", 0, NULL},
    {"UTF-8 is data", S("\xc3\xa9,\xe2\x82\xac\n"), "1[\xc3\xa9][\xe2\x82\xac]", 0, NULL},
    {"empty fields", S(",,\n,\n"), "1[][][] 2[][]", 0, NULL},
    {"trailing comma", S("a,\n"), "1[a][]", 0, NULL},
    {"empty file", S(""), "", 0, NULL},
    {"only empty lines", S("\n\r\n\n"), "", 0, NULL},
    {"empty lines are skipped but counted", S("\n\na\n\r\n\nb\n"), "3[a] 6[b]", 0, NULL},

    /* quotes */
    {"quoted comma", S("\"a,b\",c\n"), "1[a,b][c]", 0, NULL},
    {"escaped quotes", S("\"say \"\"hi\"\"\",\"\"\"\"\n"), "1[say \"hi\"][\"]", 0, NULL},
    {"empty quoted field", S("\"\",x\n"), "1[][x]", 0, NULL},
    {"quoted last field without a newline", S("a,\"b\""), "1[a][b]", 0, NULL},
    {"newline in a quoted field", S("\"a\nb\",c\nd\n"), "1[a\nb][c] 3[d]", 0, NULL},
    {"CRLF in a quoted field reads as LF", S("\"a\r\nb\"\r\nc\r\n"), "1[a\nb] 3[c]", 0, NULL},
    {"newlines in quotes move the next line number", S("x,\"1\n2\n\n3\n\"\ny\n"),
     "1[x][1\n2\n\n3\n] 6[y]", 0, NULL},

    /* byte order mark */
    {"BOM skipped",
     S("\xef\xbb\xbf"
       "a,b\n"),
     "1[a][b]", 0, NULL},
    {"BOM before a quote", S("\xef\xbb\xbf\"a\"\n"), "1[a]", 0, NULL},
    {"a BOM later is data", S("a\n\xef\xbb\xbf\n"), "1[a] 2[\xef\xbb\xbf]", 0, NULL},
    {"only a BOM", S("\xef\xbb\xbf"), "", 0, NULL},

    /* refusals */
    {"unterminated quote at EOF", S("a\n\"abc\ndef"), "1[a]", ERR_INVALID,
     NAME ":2: unterminated quoted field (the quote opens here)"},
    {"unterminated right after the quote", S("a,\""), "", ERR_INVALID,
     NAME ":1: unterminated quoted field"},
    {"escaped quote then EOF", S("\"a\"\""), "", ERR_INVALID, NAME ":1: unterminated quoted field"},
    {"quote inside an unquoted field", S("ok\nab\"c\n"), "1[ok]", ERR_INVALID,
     NAME ":2: quote inside an unquoted field (quote the whole field, and double the quotes in "
          "it)"},
    {"text after a closing quote", S("\"a\"b\n"), "", ERR_INVALID,
     NAME ":1: unexpected character after a closing quote"},
    {"blank after a closing quote", S("\"a\" ,b\n"), "", ERR_INVALID,
     NAME ":1: unexpected character after a closing quote"},
    {"error line counts the newlines in quotes", S("\"a\n\nb\",c\"\n"), "", ERR_INVALID,
     NAME ":3: quote inside an unquoted field"},
    {"NUL in an unquoted field", S("a\0b\n"), "", ERR_INVALID, NAME ":1: NUL byte in a field"},
    {"NUL in a quoted field", S("x\n\"a\0\"\n"), "1[x]", ERR_INVALID,
     NAME ":2: NUL byte in a field"},
};

static void test_rfc4180_cases(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct csv_case *c = &cases[i];
        char got[256];
        struct err e = {0};
        fprintf(stderr, "  %s\n", c->name);
        int rc = read_all(c->input, c->len, NULL, 0, got, sizeof(got), &e);
        CHECK_RC(rc, c->rc);
        if (strcmp(got, c->records) != 0) {
            fprintf(stderr, "  records: got \"%s\", want \"%s\"\n", got, c->records);
            CHECK(strcmp(got, c->records) == 0);
        }
        if (c->err != NULL)
            CHECK_STR_HAS(e.msg, c->err);
    }
}

/* ==== headers ========================================================= */

static const char *const cols[] = {"user_id", "item_id"};

static const struct header_case {
    const char *name;
    const char *input;
    const char *records;
    int rc;
    const char *err;
} header_cases[] = {
    {"columns in order", "user_id,item_id\nu,i\n", "2[u][i]", 0, NULL},
    {"after a BOM and empty lines", "\xef\xbb\xbf\n\r\nuser_id,item_id\nu,i\n", "4[u][i]", 0, NULL},
    {"quoted column names", "\"user_id\",\"item_id\"\n", "", 0, NULL},
    {"too many fields", "user_id,item_id\nu,i\nu,i,x\n", "2[u][i]", ERR_INVALID,
     NAME ":3: 3 fields, the header has 2"},
    {"too few fields", "user_id,item_id\n\"u\n\"\n", "", ERR_INVALID,
     NAME ":2: 1 fields, the header has 2"},
    {"unknown column", "user_id,item\n", "", ERR_INVALID,
     NAME ":1: unexpected column 'item' (the header must be 'user_id,item_id')"},
    {"control byte in a column, escaped", "user_id,it\tem\n", "", ERR_INVALID,
     "unexpected column 'it\\tem'"},
    {"column twice", "user_id,user_id\n", "", ERR_INVALID,
     NAME ":1: column 'user_id' appears twice"},
    {"column missing", "user_id\n", "", ERR_INVALID,
     NAME ":1: column 'item_id' is missing (the header must be 'user_id,item_id')"},
    {"empty file", "", "", ERR_INVALID, NAME ": empty file, expected the header 'user_id,item_id'"},
    {"broken header", "\"user_id", "", ERR_INVALID, NAME ":1: unterminated quoted field"},
};

static void test_header_cases(void)
{
    for (size_t i = 0; i < sizeof(header_cases) / sizeof(header_cases[0]); i++) {
        const struct header_case *c = &header_cases[i];
        char got[256];
        struct err e = {0};
        fprintf(stderr, "  %s\n", c->name);
        int rc = read_all(c->input, strlen(c->input), cols, 2, got, sizeof(got), &e);
        CHECK_RC(rc, c->rc);
        CHECK(strcmp(got, c->records) == 0);
        if (c->err != NULL)
            CHECK_STR_HAS(e.msg, c->err);
    }
}

/* The header's columns in any order: cols[i] is where names[i] is. */
static void test_header_maps_columns(void)
{
    static const char input[] = "rating,item_id,user_id\n5,i1,u1\n";
    static const char *const names[] = {"user_id", "item_id", "rating"};
    FILE *f = fmemopen((void *)input, sizeof(input) - 1, "r");
    CHECK(f != NULL);
    struct csv *r = NULL;
    uint32_t idx[3];
    struct csv_record rec;
    int rc = csv_attach(f, NAME, &r, NULL);
    if (rc == 0)
        rc = csv_header(r, names, 3, idx, NULL);
    int next = rc == 0 ? csv_next(r, &rec, NULL) : rc;
    int fields_ok = next == 1 && strcmp(rec.fields[idx[0]], "u1") == 0 &&
                    strcmp(rec.fields[idx[1]], "i1") == 0 && strcmp(rec.fields[idx[2]], "5") == 0;
    csv_close(r);
    fclose(f);
    CHECK_OK(rc);
    CHECK(idx[0] == 2 && idx[1] == 1 && idx[2] == 0);
    CHECK(next == 1 && fields_ok);
}

/* ==== long records and the input buffer =============================== */

/* A record of one field of @n 'x' bytes, optionally quoted, then "\nb\n". */
static char *long_field(size_t n, int quoted, size_t *len)
{
    char *s = malloc(n + 8);
    if (s == NULL)
        return NULL;
    size_t k = 0;
    if (quoted)
        s[k++] = '"';
    memset(s + k, 'x', n);
    k += n;
    if (quoted)
        s[k++] = '"';
    memcpy(s + k, "\nb\n", 3);
    *len = k + 3;
    return s;
}

/* A record holds CSV_RECORD_MAX bytes of field data, each field's NUL
 * included: a field of CSV_RECORD_MAX - 1 bytes fits, one more does not. */
static void test_longest_field(void)
{
    for (int quoted = 0; quoted <= 1; quoted++) {
        size_t len;
        char *s = long_field(CSV_RECORD_MAX - 1, quoted, &len);
        CHECK(s != NULL);
        FILE *f = fmemopen(s, len, "r");
        struct csv *r = NULL;
        struct csv_record rec;
        struct err e = {0};
        int rc = f != NULL ? csv_attach(f, NAME, &r, &e) : -errno;
        int first = rc == 0 ? csv_next(r, &rec, &e) : rc;
        int field_ok = first == 1 && rec.count == 1 && rec.lens[0] == CSV_RECORD_MAX - 1 &&
                       rec.fields[0][0] == 'x' && rec.fields[0][CSV_RECORD_MAX - 2] == 'x';
        int second = first == 1 ? csv_next(r, &rec, &e) : first;
        int next_ok = second == 1 && rec.line == 2 && strcmp(rec.fields[0], "b") == 0;
        csv_close(r);
        if (f != NULL)
            fclose(f);
        free(s);
        CHECK(first == 1 && field_ok);
        CHECK(second == 1 && next_ok);
    }
}

static void test_field_too_long(void)
{
    for (int quoted = 0; quoted <= 1; quoted++) {
        for (size_t n = CSV_RECORD_MAX; n <= CSV_RECORD_MAX + 1; n++) {
            size_t len;
            char *s = long_field(n, quoted, &len);
            CHECK(s != NULL);
            char got[64];
            struct err e = {0};
            int rc = read_all(s, len, NULL, 0, got, sizeof(got), &e);
            free(s);
            CHECK_RC(rc, ERR_TOO_BIG);
            CHECK_STR_HAS(e.msg, NAME ":");
            CHECK_STR_HAS(e.msg, ": record is longer than 1048576 bytes");
            /* The record's first line, even when the newline after it was read. */
            CHECK_STR_HAS(e.msg, NAME ":1: ");
        }
    }
}

/* Many short fields count their NULs too: n fields "a" take 2n bytes. */
static void test_many_fields(void)
{
    for (size_t n = CSV_RECORD_MAX / 2; n <= CSV_RECORD_MAX / 2 + 1; n++) {
        char *s = malloc(2 * n);
        CHECK(s != NULL);
        for (size_t i = 0; i < n; i++) {
            s[2 * i] = 'a';
            s[2 * i + 1] = i + 1 < n ? ',' : '\n';
        }
        FILE *f = fmemopen(s, 2 * n, "r");
        struct csv *r = NULL;
        struct csv_record rec;
        struct err e = {0};
        int rc = f != NULL ? csv_attach(f, NAME, &r, &e) : -errno;
        if (rc == 0)
            rc = csv_next(r, &rec, &e);
        int count_ok = rc == 1 && rec.count == n && strcmp(rec.fields[n - 1], "a") == 0;
        csv_close(r);
        if (f != NULL)
            fclose(f);
        free(s);
        if (n == CSV_RECORD_MAX / 2) {
            CHECK(rc == 1 && count_ok);
        } else {
            CHECK_RC(rc, ERR_TOO_BIG);
        }
    }
}

/* Reads the one-field records of @len bytes of @s: 0 when they are
 * exactly @want (@n of them, all lines consecutive from 1). */
static int read_fields(const char *s, size_t len, const char *const *want, uint32_t n)
{
    FILE *f = fmemopen((void *)s, len, "r");
    if (f == NULL)
        return -errno;
    struct csv *r = NULL;
    int rc = csv_attach(f, NAME, &r, NULL);
    for (uint32_t i = 0; rc == 0 && i <= n; i++) {
        struct csv_record rec;
        int got = csv_next(r, &rec, NULL);
        if (i == n)
            rc = got == 0 ? 0 : ERR_INTERNAL;
        else if (got != 1 || rec.line != i + 1 || rec.count != 1 || strcmp(rec.fields[0], want[i]))
            rc = got < 0 ? got : ERR_INTERNAL;
    }
    csv_close(r);
    fclose(f);
    return rc;
}

/* The reader refills its buffer as it goes: a CR LF or a doubled quote
 * split by a refill must read as if it were not. Splitting at every power
 * of two from 4 KiB to 128 KiB covers any buffer size in that range. */
static void test_split_across_refills(void)
{
    for (size_t at = 4096; at <= 128 * 1024; at *= 2) {
        /* x...x CR | LF "y...y" | "z" CR LF, where | is a multiple of @at */
        size_t len = 2 * at + 8;
        char *s = malloc(len), *x = malloc(at), *yz = malloc(at);
        CHECK(s != NULL && x != NULL && yz != NULL);
        size_t k = 0;
        memset(s, 'x', at - 1);
        k = at - 1;
        memcpy(s + k, "\r\n\"", 3);
        k += 3;
        memset(s + k, 'y', 2 * at - 1 - k);
        k = 2 * at - 1;
        memcpy(s + k, "\"\"z\"\r\n", 6);
        k += 6;

        memset(x, 'x', at - 1);
        x[at - 1] = '\0';
        memset(yz, 'y', at - 3);
        memcpy(yz + at - 3, "\"z", 3);
        const char *const want[] = {x, yz};
        int rc = read_fields(s, k, want, 2);
        free(s);
        free(x);
        free(yz);
        CHECK_OK(rc);
    }
}

/* ==== the reader's other entry points ================================= */

static void test_read_error(void)
{
    /* A stream open for writing fails every read, with EBADF. */
    FILE *f = fopen("/dev/null", "w");
    CHECK(f != NULL);
    struct csv *r = NULL;
    struct csv_record rec;
    struct err e = {0};
    int rc = csv_attach(f, NAME, &r, &e);
    if (rc == 0)
        rc = csv_next(r, &rec, &e);
    csv_close(r);
    fclose(f);
    CHECK_RC(rc, -EBADF);
    CHECK_STR_HAS(e.msg, NAME ": read failed (Bad file descriptor)");
}

static void test_open_file(void)
{
    char dir[] = "/tmp/recsys-test-XXXXXX", path[64];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/in.csv", dir);
    FILE *w = fopen(path, "w");
    int written = w != NULL && fputs("a,b\n\"c\n", w) >= 0;
    if (w != NULL)
        fclose(w);

    struct csv *r = NULL;
    struct csv_record rec;
    struct err e = {0};
    int rc = written ? csv_open(path, &r, &e) : -EIO;
    int first = rc == 0 ? csv_next(r, &rec, &e) : rc;
    int second = first == 1 ? csv_next(r, &rec, &e) : first;
    int name_ok = r != NULL && strcmp(csv_name(r), path) == 0;
    csv_close(r);
    unlink(path);

    struct err missing = {0};
    int rc_missing = csv_open(path, &r, &missing);
    rmdir(dir);
    CHECK_OK(rc);
    CHECK(first == 1 && name_ok);
    CHECK_RC(second, ERR_INVALID);
    CHECK_STR_HAS(e.msg, path);
    CHECK_STR_HAS(e.msg, "/in.csv:2: unterminated quoted field");
    CHECK_RC(rc_missing, -ENOENT);
    CHECK_STR_HAS(missing.msg, "/in.csv: No such file or directory");
}

/* csv_fail formats a caller's own complaint about a field like the reader's. */
static void test_fail_format(void)
{
    FILE *f = fmemopen((void *)"", 0, "r");
    CHECK(f != NULL);
    struct csv *r = NULL;
    struct err e = {0};
    int rc = csv_attach(f, NAME, &r, &e);
    int failed = rc == 0 ? csv_fail(r, 7, &e, "price '%s' is negative", "-1") : rc;
    csv_close(r);
    fclose(f);
    CHECK_RC(failed, ERR_INVALID);
    CHECK(strcmp(e.msg, NAME ":7: price '-1' is negative") == 0);
}

int main(int argc, char **argv)
{
    static const struct check_case all[] = {
        CHECK_CASE(test_rfc4180_cases),
        CHECK_CASE(test_header_cases),
        CHECK_CASE(test_header_maps_columns),
        CHECK_CASE(test_longest_field),
        CHECK_CASE(test_field_too_long),
        CHECK_CASE(test_many_fields),
        CHECK_CASE(test_split_across_refills),
        CHECK_CASE(test_read_error),
        CHECK_CASE(test_open_file),
        CHECK_CASE(test_fail_format),
    };
    return check_main(argc, argv, all, sizeof(all) / sizeof(all[0]));
}
