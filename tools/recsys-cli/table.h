/*
 * table: text laid out in aligned columns, for people to read.
 *
 *     rank  item_id     score
 *        1  item-00042  3.1416
 *
 * Cells are added in reading order; the table is printed once it is full,
 * when every column's width is known. Widths count UTF-8 characters, not
 * bytes, and control characters in cell text (which come from the server and
 * could move the cursor or end a line) print as '?'.
 *
 * A failed allocation is remembered and reported by table_print, so callers
 * add cells without checking each one, the way stdio's error flag works.
 */
#pragma once

#include <stddef.h>
#include <stdio.h>

enum table_align { TABLE_LEFT, TABLE_RIGHT };

struct table_column {
    const char *title; /* NULL in every column: the table has no header row */
    enum table_align align;
};

struct table;

/* table_create - an empty table with @ncols columns described by @cols,
 * which is borrowed and must outlive the table. Returns 0 or -ENOMEM; the
 * caller owns *out and frees it with table_destroy. */
int table_create(const struct table_column *cols, size_t ncols, struct table **out);

/* table_destroy - free the table and its cells. NULL is a no-op. */
void table_destroy(struct table *t);

/* table_cell - append one cell, the next in reading order, formatted like
 * printf. A row is complete after every column has a cell. */
void table_cell(struct table *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* table_print - write the header row (if any) and every row to @out, columns
 * two spaces apart, without trailing blanks. Returns 0, or -ENOMEM when a
 * cell could not be stored (then nothing is written). */
int table_print(const struct table *t, FILE *out);
