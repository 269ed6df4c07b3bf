/*
 * users: users.csv, the users' membership tiers, for `recsys-model import`
 * and `recsys-train`, so that both accept the same file and say the same
 * thing about a bad row.
 *
 *     user_id,tier   (columns in any order)
 *
 * tier an integer in 0..255; a user no row lists keeps tier 0.
 *
 * The tools differ in what defines the users, so each passes the function
 * that finds the user a row names (struct users_find):
 * - import: the id file that names the user factor rows; another id is
 *   refused.
 * - recsys-train: the file itself, then the interaction log; a new id
 *   becomes the next user.
 * A user listed twice is refused in both, naming the line that listed it
 * first. The first problem stops the read with "<file>:<line>: <problem>".
 */
#pragma once

#include <stdint.h>

#include "base/err.h"

struct csv;

/* How a tool finds the users a file names, and where their tiers go. */
struct users_find {
    /* find - the user that id @id (@len bytes, NUL-terminated) on @line of
     * @r names: 0 and *user, or an error in @e (a refused id through
     * csv_fail, or -ENOMEM). */
    int (*find)(void *ctx, const struct csv *r, uint64_t line, const char *id, uint32_t len,
                uint32_t *user, struct err *e);
    void *ctx;
    /* The tool's tier array: user u's tier is (*tier)[u]. Read again after
     * each find, which may move the array as it adds a user. */
    uint32_t **tier;
};

/* users_read - read the users at @path, giving each listed user its tier.
 * Returns 0, ERR_INVALID (a bad file, with "<file>:<line>: <problem>" in
 * @e), what @f->find returned, -errno or -ENOMEM. */
int users_read(const char *path, const struct users_find *f, struct err *e);
