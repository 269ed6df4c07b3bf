/*
 * log: users.csv and interactions.csv (log.h). users.csv is read by
 * recsys-model's reader (users.h), which asks user_index for each row's
 * user, so that the file and the log number users alike.
 *
 * csv_header wants a fixed set of columns, but the log's weight, timestamp
 * and event columns are optional, so the header is matched here against a
 * table of known columns and each record's width checked against it.
 */
#include "tools/recsys-train/interactions.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "tools/lib/catalog.h"
#include "tools/lib/csv.h"
#include "tools/lib/idmap.h"
#include "tools/lib/opts.h"
#include "tools/lib/quote.h"
#include "tools/lib/users.h"

/* ==== users ========================================================= */

/* User @id's index, added at the end when new (a users_find). */
static int user_index(void *ctx, const struct csv *r, uint64_t line, const char *id, uint32_t len,
                      uint32_t *index, struct err *e)
{
    struct interactions *l = ctx;
    char q[QUOTE_BUF];
    if (l->user_index == NULL && idmap_create(1024, &l->user_index) != 0)
        return err_set(e, -ENOMEM, "out of memory for user ids");
    if (idmap_get(l->user_index, id, len, index) == 0)
        return 0;
    if (len == 0 || len > MODEL_ID_MAX || memchr(id, '\n', len) != NULL)
        return csv_fail(r, line, e, "user_id '%s' must be 1..%d bytes without a newline",
                        quote(q, sizeof(q), id, len), MODEL_ID_MAX);
    if (l->user_count == l->user_cap) {
        uint32_t cap = l->user_cap ? l->user_cap * 2 : 1024;
        char **ids = realloc(l->user_ids, cap * sizeof(*ids));
        if (ids != NULL)
            l->user_ids = ids;
        uint32_t *tier = realloc(l->tier, cap * sizeof(*tier));
        if (tier != NULL)
            l->tier = tier;
        if (ids == NULL || tier == NULL)
            return err_set(e, -ENOMEM, "out of memory for %u users", cap);
        l->user_cap = cap;
    }
    uint32_t unused;
    char *copy = strdup(id);
    if (copy == NULL || idmap_put(l->user_index, copy, len, l->user_count, &unused) < 0) {
        free(copy);
        return err_set(e, -ENOMEM, "out of memory for user ids");
    }
    l->user_ids[l->user_count] = copy;
    l->tier[l->user_count] = 0;
    *index = l->user_count++;
    return 0;
}

int interactions_read_users(const char *path, struct interactions *l, struct err *e)
{
    const struct users_find f = {user_index, l, &l->tier};
    return users_read(path, &f, e);
}

/* ==== interactions ================================================== */

enum { LOG_USER, LOG_ITEM, LOG_WEIGHT, LOG_TIME, LOG_EVENT, LOG_COLUMNS };
static const struct {
    const char *name;
    int required;
} log_columns[LOG_COLUMNS] = {
    [LOG_USER] = {"user_id", 1},   [LOG_ITEM] = {"item_id", 1}, [LOG_WEIGHT] = {"weight", 0},
    [LOG_TIME] = {"timestamp", 0}, [LOG_EVENT] = {"event", 0},
};

/* The event types; a view's weight is the caller's (log_opts). */
static const struct {
    const char *name;
    uint32_t purchase;
} events[] = {{"purchase", 1}, {"view", 0}};
#define EVENTS (sizeof(events) / sizeof(events[0]))

#define ABSENT UINT32_MAX

struct reader {
    const struct catalog *c;
    const struct interactions_opts *o;
    struct interactions *l;
    struct csv *r;
    uint32_t col[LOG_COLUMNS]; /* field index of each column, or ABSENT */
    uint32_t width;            /* fields per record */
    struct idmap *unknown;     /* distinct unknown item ids, keys in unknown_ids */
    char **unknown_ids;
};

static int header(struct reader *rd, struct err *e)
{
    struct csv_record rec;
    char q[QUOTE_BUF];
    int rc = csv_next(rd->r, &rec, e);
    if (rc <= 0)
        return rc < 0
                   ? rc
                   : err_set(e, ERR_INVALID, "%s: empty file (expected a header)", csv_name(rd->r));
    for (int k = 0; k < LOG_COLUMNS; k++)
        rd->col[k] = ABSENT;
    for (uint32_t f = 0; f < rec.count; f++) {
        int k = 0;
        while (k < LOG_COLUMNS && strcmp(rec.fields[f], log_columns[k].name) != 0)
            k++;
        if (k == LOG_COLUMNS)
            return csv_fail(rd->r, rec.line, e,
                            "unknown column '%s' (expected user_id, item_id and optionally "
                            "weight, timestamp, event)",
                            quote(q, sizeof(q), rec.fields[f], rec.lens[f]));
        if (rd->col[k] != ABSENT)
            return csv_fail(rd->r, rec.line, e, "column '%s' appears twice", log_columns[k].name);
        rd->col[k] = f;
    }
    for (int k = 0; k < LOG_COLUMNS; k++)
        if (log_columns[k].required && rd->col[k] == ABSENT)
            return csv_fail(rd->r, rec.line, e, "missing column '%s'", log_columns[k].name);
    rd->width = rec.count;
    rd->l->has_time = rd->col[LOG_TIME] != ABSENT;
    return 0;
}

/* A weight: a decimal number > 0 that is finite and not 0 as a float,
 * nothing else in the field (strtod would skip leading blanks). */
static int parse_weight(const char *s, float *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno != 0 || s[0] == ' ' || s[0] == '\t' || !(v > 0) ||
        !isfinite((float)v) || (float)v == 0)
        return ERR_INVALID;
    *out = (float)v;
    return 0;
}

/* Counts a row whose item the catalog lacks, and each distinct id once. */
static int unknown_item(struct reader *rd, const char *id, uint32_t len, struct err *e)
{
    uint32_t at, n = (uint32_t)rd->l->unknown_items;
    rd->l->unknown_rows++;
    if (idmap_get(rd->unknown, id, len, &at) == 0)
        return 0;
    char **p = realloc(rd->unknown_ids, (n + 1) * sizeof(*p));
    if (p == NULL)
        return err_set(e, -ENOMEM, "out of memory for unknown item ids");
    rd->unknown_ids = p;
    if ((p[n] = strdup(id)) == NULL)
        return err_set(e, -ENOMEM, "out of memory for unknown item ids");
    rd->l->unknown_items++;
    return idmap_put(rd->unknown, p[n], len, n, &at) < 0
               ? err_set(e, -ENOMEM, "out of memory for unknown item ids")
               : 0;
}

static int row(struct reader *rd, const struct csv_record *rec, struct err *e)
{
    struct interactions *l = rd->l;
    struct interaction ev = {.weight = 1, .purchase = 1};
    const char *const *f = rec->fields;
    const uint32_t *col = rd->col;
    char q[QUOTE_BUF];
    if (rec->count != rd->width)
        return csv_fail(rd->r, rec->line, e, "%u fields, but the header has %u", rec->count,
                        rd->width);
    const char *iid = f[col[LOG_ITEM]];
    uint32_t ilen = rec->lens[col[LOG_ITEM]];
    if (idmap_get(rd->c->index, iid, ilen, &ev.item) != 0) {
        if (rd->o->unknown_error)
            return csv_fail(rd->r, rec->line, e,
                            "item '%s' is not in the catalog (--unknown-items skip skips such "
                            "rows)",
                            quote(q, sizeof(q), iid, ilen));
        return unknown_item(rd, iid, ilen, e);
    }
    if (col[LOG_EVENT] != ABSENT) {
        size_t k = 0;
        while (k < EVENTS && strcmp(f[col[LOG_EVENT]], events[k].name) != 0)
            k++;
        if (k == EVENTS)
            return csv_fail(rd->r, rec->line, e, "event '%s' is not purchase or view",
                            quote(q, sizeof(q), f[col[LOG_EVENT]], rec->lens[col[LOG_EVENT]]));
        ev.purchase = events[k].purchase;
        ev.weight = ev.purchase ? 1 : rd->o->view_weight;
    }
    if (col[LOG_WEIGHT] != ABSENT && parse_weight(f[col[LOG_WEIGHT]], &ev.weight) != 0)
        return csv_fail(rd->r, rec->line, e, "weight '%s' is not a number > 0",
                        quote(q, sizeof(q), f[col[LOG_WEIGHT]], rec->lens[col[LOG_WEIGHT]]));
    uint64_t t = 0;
    if (col[LOG_TIME] != ABSENT && opts_parse_uint(f[col[LOG_TIME]], 0, INT64_MAX, &t) != 0)
        return csv_fail(rd->r, rec->line, e, "timestamp '%s' is not an integer >= 0",
                        quote(q, sizeof(q), f[col[LOG_TIME]], rec->lens[col[LOG_TIME]]));
    ev.time = (int64_t)t;
    int rc =
        user_index(l, rd->r, rec->line, f[col[LOG_USER]], rec->lens[col[LOG_USER]], &ev.user, e);
    if (rc != 0)
        return rc;
    if (l->event_count == l->event_cap) {
        size_t cap = l->event_cap ? l->event_cap * 2 : 4096;
        struct interaction *p = realloc(l->events, cap * sizeof(*p));
        if (p == NULL)
            return err_set(e, -ENOMEM, "out of memory for %zu interactions", cap);
        l->events = p;
        l->event_cap = cap;
    }
    l->events[l->event_count++] = ev;
    return 0;
}

int interactions_read(const char *path, const struct catalog *c, const struct interactions_opts *o,
                      struct interactions *l, struct err *e)
{
    struct reader rd = {.c = c, .o = o, .l = l};
    struct csv_record rec;
    int rc = idmap_create(16, &rd.unknown) != 0 ? err_set(e, -ENOMEM, "out of memory")
                                                : csv_open(path, &rd.r, e);
    if (rc == 0)
        rc = header(&rd, e);
    while (rc == 0 && (rc = csv_next(rd.r, &rec, e)) == 1)
        rc = row(&rd, &rec, e);
    if (rc == 0 && l->event_count == 0)
        rc = err_set(e, ERR_INVALID, "%s: no interactions with items in the catalog", path);
    csv_close(rd.r);
    for (uint64_t i = 0; i < l->unknown_items; i++)
        free(rd.unknown_ids[i]);
    free(rd.unknown_ids);
    idmap_destroy(rd.unknown);
    return rc;
}

void interactions_free(struct interactions *l)
{
    for (uint32_t u = 0; u < l->user_count; u++)
        free(l->user_ids[u]);
    free(l->user_ids);
    free(l->tier);
    idmap_destroy(l->user_index);
    free(l->events);
}
