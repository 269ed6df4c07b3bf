/*
 * users: users.csv -> each listed user's tier (users.h).
 *
 * A repeated user is found by the line that listed it first, kept here by
 * user index; the array grows with the highest index the tool's find gives.
 */
#include "tools/lib/users.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tools/lib/csv.h"
#include "tools/lib/opts.h"
#include "tools/lib/quote.h"

/* Membership tiers are one byte in the model's catalog. */
#define TIER_MAX 255

enum { USR_ID, USR_TIER, USR_COLUMNS };
static const char *const columns[USR_COLUMNS] = {[USR_ID] = "user_id", [USR_TIER] = "tier"};

struct reader {
    const struct users_find *f;
    struct csv *r;
    uint32_t cols[USR_COLUMNS];
    uint64_t *line; /* the line that listed each user, 0 = none yet */
    uint32_t line_cap;
};

/* Room in rd->line for @user, the new slots 0. */
static int make_room(struct reader *rd, uint32_t user, struct err *e)
{
    if (user < rd->line_cap)
        return 0;
    uint32_t cap = rd->line_cap ? rd->line_cap : 1024;
    while (cap <= user)
        cap = cap > UINT32_MAX / 2 ? UINT32_MAX : cap * 2;
    uint64_t *p = realloc(rd->line, (size_t)cap * sizeof(*p));
    if (p == NULL)
        return err_set(e, -ENOMEM, "out of memory for %u users", cap);
    memset(p + rd->line_cap, 0, (size_t)(cap - rd->line_cap) * sizeof(*p));
    rd->line = p;
    rd->line_cap = cap;
    return 0;
}

static int row(struct reader *rd, const struct csv_record *rec, struct err *e)
{
    const char *id = rec->fields[rd->cols[USR_ID]], *tier = rec->fields[rd->cols[USR_TIER]];
    uint32_t user, len = rec->lens[rd->cols[USR_ID]];
    uint64_t v;
    char q[QUOTE_BUF];
    int rc = rd->f->find(rd->f->ctx, rd->r, rec->line, id, len, &user, e);
    if (rc == 0)
        rc = make_room(rd, user, e);
    if (rc != 0)
        return rc;
    if (rd->line[user] != 0)
        return csv_fail(rd->r, rec->line, e, "user '%s' is listed twice (first on line %llu)",
                        quote(q, sizeof(q), id, len), (unsigned long long)rd->line[user]);
    if (opts_parse_uint(tier, 0, TIER_MAX, &v) != 0)
        return csv_fail(rd->r, rec->line, e, "tier '%s' is not an integer in 0..%d",
                        quote(q, sizeof(q), tier, rec->lens[rd->cols[USR_TIER]]), TIER_MAX);
    rd->line[user] = rec->line;
    (*rd->f->tier)[user] = (uint32_t)v;
    return 0;
}

int users_read(const char *path, const struct users_find *f, struct err *e)
{
    struct reader rd = {.f = f};
    struct csv_record rec;
    int rc = csv_open(path, &rd.r, e);
    if (rc == 0)
        rc = csv_header(rd.r, columns, USR_COLUMNS, rd.cols, e);
    while (rc == 0 && (rc = csv_next(rd.r, &rec, e)) == 1)
        rc = row(&rd, &rec, e);
    csv_close(rd.r);
    free(rd.line);
    return rc;
}
