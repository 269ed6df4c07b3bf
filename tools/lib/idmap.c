/*
 * idmap: open-addressing hash index of borrowed strings (see idmap.h).
 */
#include "tools/lib/idmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"

struct slot {
    const char *key; /* NULL: empty */
    uint32_t len;
    uint32_t index;
    uint64_t hash;
};

struct idmap {
    struct slot *slots;
    size_t mask; /* capacity - 1; capacity is a power of two */
    size_t count;
};

/* FNV-1a: ids are short, and a cheap byte-wise hash mixes them well enough
 * for a table kept half empty. */
static uint64_t hash(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* The slot holding @key, or the empty slot where it would go. */
static struct slot *probe(const struct idmap *m, const char *key, size_t len, uint64_t h)
{
    for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
        struct slot *s = &m->slots[i];
        if (s->key == NULL || (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0))
            return s;
    }
}

static int resize(struct idmap *m, size_t capacity)
{
    struct slot *old = m->slots;
    size_t old_cap = old != NULL ? m->mask + 1 : 0;
    m->slots = calloc(capacity, sizeof(*m->slots));
    if (m->slots == NULL) {
        m->slots = old;
        return -ENOMEM;
    }
    m->mask = capacity - 1;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].key != NULL)
            *probe(m, old[i].key, old[i].len, old[i].hash) = old[i];
    free(old);
    return 0;
}

int idmap_create(uint32_t expected, struct idmap **out)
{
    struct idmap *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return -ENOMEM;
    size_t capacity = 16;
    while (capacity < 2 * (size_t)expected)
        capacity *= 2;
    if (resize(m, capacity) != 0) {
        free(m);
        return -ENOMEM;
    }
    *out = m;
    return 0;
}

void idmap_destroy(struct idmap *m)
{
    if (m == NULL)
        return;
    free(m->slots);
    free(m);
}

int idmap_put(struct idmap *m, const char *key, size_t len, uint32_t index, uint32_t *existing)
{
    if (2 * (m->count + 1) > m->mask + 1 && resize(m, 2 * (m->mask + 1)) != 0)
        return -ENOMEM;
    uint64_t h = hash(key, len);
    struct slot *s = probe(m, key, len, h);
    if (s->key != NULL) {
        *existing = s->index;
        return 1;
    }
    *s = (struct slot){key, (uint32_t)len, index, h};
    m->count++;
    return 0;
}

int idmap_get(const struct idmap *m, const char *key, size_t len, uint32_t *index)
{
    const struct slot *s = probe(m, key, len, hash(key, len));
    if (s->key == NULL)
        return ERR_NOT_FOUND;
    *index = s->index;
    return 0;
}
