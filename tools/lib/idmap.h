/*
 * idmap: a hash index from strings to uint32 indices, for resolving the ids
 * of the input files (users, items, categories) while importing.
 *
 * Keys are borrowed, not copied: each must stay valid and unchanged for the
 * life of the map. Open addressing with linear probing, kept at most half
 * full, so a miss costs a few probes.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct idmap;

/* idmap_create - empty map sized for @expected keys (it grows as needed).
 * Returns 0 or -ENOMEM. The caller owns *out (idmap_destroy). */
int idmap_create(uint32_t expected, struct idmap **out);

/* idmap_destroy - free the map, not the keys. NULL is a no-op. */
void idmap_destroy(struct idmap *m);

/* idmap_put - map @key (@len bytes, borrowed) to @index unless it is
 * already present. Returns 0 when added, 1 when present (*existing
 * receives the index it maps to), or -ENOMEM. */
int idmap_put(struct idmap *m, const char *key, size_t len, uint32_t index, uint32_t *existing);

/* idmap_get - the index of @key. Returns 0 and sets *index, or ERR_NOT_FOUND. */
int idmap_get(const struct idmap *m, const char *key, size_t len, uint32_t *index);
