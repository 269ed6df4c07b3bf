/*
 * fuzz_csv: the CSV reader on arbitrary bytes, read to the end twice: once
 * record by record, once after matching a header.
 *
 * Promises checked (csv.h): csv_next returns 1, 0 or ERR_INVALID (the
 * input is far below CSV_RECORD_MAX and memory does not run out); errors
 * read "<name>:<line>: <problem>" on one line; a record has at least one
 * field, every field is a C string of its stated length, and records start
 * on increasing lines, none past the input's last line; after csv_header,
 * every record has exactly the header's fields.
 */
#include <stdio.h>
#include <string.h>

#include "fuzz.h"
#include "tools/lib/csv.h"

#define NAME "fuzz.csv"

static const char *const columns[] = {"user_id", "item_id", "rating"};
#define NCOLUMNS (sizeof(columns) / sizeof(columns[0]))

static void check_error(int rc, const struct err *e)
{
    FUZZ_ASSERT(rc == ERR_INVALID);
    FUZZ_ASSERT(strncmp(e->msg, NAME ":", strlen(NAME ":")) == 0);
    fuzz_assert_one_line(e->msg);
}

/* Each column named once: @cols is a permutation. */
static void check_columns(const uint32_t *cols)
{
    uint32_t seen = 0;
    for (uint32_t i = 0; i < NCOLUMNS; i++) {
        FUZZ_ASSERT(cols[i] < NCOLUMNS && !(seen & 1u << cols[i]));
        seen |= 1u << cols[i];
    }
}

static void read_records(struct csv *r, uint32_t want_fields, uint64_t last_line)
{
    struct csv_record rec;
    struct err e = {0};
    uint64_t prev = 0;
    int rc;
    while ((rc = csv_next(r, &rec, &e)) == 1) {
        FUZZ_ASSERT(rec.count >= 1);
        FUZZ_ASSERT(want_fields == 0 || rec.count == want_fields);
        FUZZ_ASSERT(rec.line > prev && rec.line <= last_line);
        for (uint32_t i = 0; i < rec.count; i++)
            FUZZ_ASSERT(strlen(rec.fields[i]) == rec.lens[i]);
        prev = rec.line;
    }
    if (rc != 0)
        check_error(rc, &e);
}

/* Reads @data through a memory stream: with a header first when @header. */
static void read_all(const uint8_t *data, size_t size, uint64_t last_line, int header)
{
    /* Mode "r" never writes to the buffer, so dropping const is safe. */
    FILE *f = fmemopen((void *)data, size, "r");
    FUZZ_ASSERT(f != NULL);
    struct csv *r = NULL;
    struct err e = {0};
    FUZZ_ASSERT(csv_attach(f, NAME, &r, &e) == 0);
    uint32_t cols[NCOLUMNS];
    int rc = 0;
    if (header && (rc = csv_header(r, columns, NCOLUMNS, cols, &e)) == 0)
        check_columns(cols);
    if (rc == 0)
        read_records(r, header ? NCOLUMNS : 0, last_line);
    else
        check_error(rc, &e);
    csv_close(r);
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t last_line = 1;
    for (size_t i = 0; i < size; i++)
        last_line += data[i] == '\n';
    read_all(data, size, last_line, 0);
    read_all(data, size, last_line, 1);
    return 0;
}
