#include "tools/recsys-cli/table.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>

struct table {
    const struct table_column *cols;
    size_t ncols;
    char **cells; /* row-major; cells[r * ncols + c] */
    size_t ncells;
    size_t cap;
    int error; /* the first failure of table_cell, reported by table_print */
};

int table_create(const struct table_column *cols, size_t ncols, struct table **out)
{
    struct table *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    t->cols = cols;
    t->ncols = ncols;
    *out = t;
    return 0;
}

void table_destroy(struct table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->ncells; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}

static int grow(struct table *t)
{
    size_t cap = t->cap != 0 ? 2 * t->cap : 4 * t->ncols;
    char **cells = realloc(t->cells, cap * sizeof(*cells));
    if (cells == NULL)
        return -ENOMEM;
    t->cells = cells;
    t->cap = cap;
    return 0;
}

void table_cell(struct table *t, const char *fmt, ...)
{
    if (t->error != 0)
        return;
    if (t->ncells == t->cap && (t->error = grow(t)) != 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *text = n < 0 ? NULL : malloc((size_t)n + 1);
    if (text == NULL) {
        t->error = n < 0 ? -EINVAL : -ENOMEM;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(text, (size_t)n + 1, fmt, ap);
    va_end(ap);
    t->cells[t->ncells++] = text;
}

/* Characters on screen: UTF-8 continuation bytes (10xxxxxx) add none. */
static size_t text_width(const char *s)
{
    size_t w = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
        w += (*p & 0xc0) != 0x80;
    return w;
}

static void put_text(const char *s, FILE *out)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
        fputc(*p < 0x20 || *p == 0x7f ? '?' : *p, out);
}

static void put_spaces(size_t n, FILE *out)
{
    while (n-- > 0)
        fputc(' ', out);
}

static void print_row(const struct table *t, const char *const *row, const size_t *widths,
                      FILE *out)
{
    for (size_t c = 0; c < t->ncols; c++) {
        size_t pad = widths[c] - text_width(row[c]);
        bool last = c + 1 == t->ncols;
        if (c > 0)
            fputs("  ", out);
        if (t->cols[c].align == TABLE_RIGHT)
            put_spaces(pad, out);
        put_text(row[c], out);
        if (t->cols[c].align == TABLE_LEFT && !last)
            put_spaces(pad, out);
    }
    fputc('\n', out);
}

int table_print(const struct table *t, FILE *out)
{
    if (t->error != 0)
        return t->error;
    size_t *widths = calloc(t->ncols, sizeof(*widths));
    const char **titles = calloc(t->ncols, sizeof(*titles));
    int rc = -ENOMEM;
    if (widths == NULL || titles == NULL)
        goto out;
    bool header = t->cols[0].title != NULL;
    for (size_t c = 0; c < t->ncols; c++) {
        titles[c] = header ? t->cols[c].title : "";
        widths[c] = text_width(titles[c]);
    }
    for (size_t i = 0; i < t->ncells; i++) {
        size_t w = text_width(t->cells[i]);
        if (w > widths[i % t->ncols])
            widths[i % t->ncols] = w;
    }
    if (header)
        print_row(t, titles, widths, out);
    for (size_t r = 0; r + t->ncols <= t->ncells; r += t->ncols)
        print_row(t, (const char *const *)&t->cells[r], widths, out);
    rc = 0;
out:
    free(widths);
    free(titles);
    return rc;
}
