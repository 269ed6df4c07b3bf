/*
 * ids: a file of external ids, one per line, naming the rows of a factor
 * matrix (line i names row i - 1).
 *
 * A trailing CR on a line is dropped (files written on Windows); the last
 * line may lack its newline. Each id is 1..MODEL_ID_MAX bytes without NUL,
 * and no id appears twice. Every error names the file and the line.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct ids;

/* ids_read - read and check the id file @path.
 * The caller owns *out (ids_free). Returns 0, ERR_INVALID (empty line,
 * over-long id, NUL byte, duplicate id; "<path>:<line>: <problem>" in @e),
 * ERR_TOO_BIG (more than UINT32_MAX - 1 ids), -errno or -ENOMEM. */
int ids_read(const char *path, struct ids **out, struct err *e);

/* ids_new - an empty list named @name in messages, which ids_add fills
 * (an export's part files, read one line at a time). @expected sizes the
 * index. The caller owns *out (ids_free). Returns 0 or -ENOMEM. */
int ids_new(const char *name, uint32_t expected, struct ids **out, struct err *e);

/* ids_add - append a copy of @id (@len bytes) as the next row.
 * Returns 0; 1 when @id is listed already (*first receives its row and
 * nothing is added); ERR_INVALID when @id is not an id by the rules
 * above (the problem in @e, without a place: the caller knows the line);
 * ERR_TOO_BIG; or -ENOMEM. */
int ids_add(struct ids *l, const char *id, size_t len, uint32_t *first, struct err *e);

/* ids_drop_index - free the lookup index, for a caller done finding ids
 * (ids_find and ids_add may not be called after): at 10^7 ids it is 800 MB,
 * a quarter of the import's peak if kept while the model is written. */
void ids_drop_index(struct ids *l);

void ids_free(struct ids *l);

uint32_t ids_count(const struct ids *l);

/* The ids in line order, NUL-terminated. Borrowed: valid until ids_free. */
const char *const *ids_array(const struct ids *l);

/* The path the ids were read from, for messages. */
const char *ids_path(const struct ids *l);

/* ids_find - the row of @id (@len bytes). 0 and *row, or ERR_NOT_FOUND. */
int ids_find(const struct ids *l, const char *id, size_t len, uint32_t *row);
