#include "base/arena.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN 16

struct block {
    struct block *next;
    size_t size; /* usable bytes in data[] */
    size_t used;
    _Alignas(ARENA_ALIGN) unsigned char data[];
};

struct arena {
    struct block *head;  /* current block; its ->next chain ends at first */
    struct block *first; /* kept across resets */
    size_t spilled;      /* bytes used in blocks already full */
};

static struct block *block_new(size_t size)
{
    struct block *b = malloc(sizeof(*b) + size);
    if (b == NULL)
        return NULL;
    b->next = NULL;
    b->size = size;
    b->used = 0;
    return b;
}

int arena_create(size_t block_size, struct arena **out)
{
    struct arena *a = malloc(sizeof(*a));
    if (a == NULL)
        return -ENOMEM;
    a->first = block_new(block_size);
    if (a->first == NULL) {
        free(a);
        return -ENOMEM;
    }
    a->head = a->first;
    a->spilled = 0;
    *out = a;
    return 0;
}

void arena_destroy(struct arena *a)
{
    if (a == NULL)
        return;
    arena_reset(a);
    free(a->first);
    free(a);
}

void *arena_alloc(struct arena *a, size_t size)
{
    size_t need = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (need < size)
        return NULL;
    struct block *b = a->head;
    if (b->size - b->used < need) {
        /* Double the last block so a call of any size needs few blocks. */
        size_t grow = b->size * 2;
        if (grow < need)
            grow = need;
        struct block *nb = block_new(grow);
        if (nb == NULL)
            return NULL;
        a->spilled += b->used;
        nb->next = b;
        a->head = b = nb;
    }
    void *p = b->data + b->used;
    b->used += need;
    return p;
}

void *arena_calloc(struct arena *a, size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    void *p = arena_alloc(a, n * size);
    if (p != NULL)
        memset(p, 0, n * size);
    return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t len)
{
    char *p = arena_alloc(a, len + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void arena_reset(struct arena *a)
{
    while (a->head != a->first) {
        struct block *b = a->head;
        a->head = b->next;
        free(b);
    }
    a->first->used = 0;
    a->spilled = 0;
}

size_t arena_used(const struct arena *a)
{
    return a->spilled + a->head->used;
}

static void *pb_alloc(void *data, size_t size)
{
    return arena_alloc(data, size);
}

static void pb_free(void *data, void *ptr)
{
    (void)data;
    (void)ptr;
}

ProtobufCAllocator arena_protobuf(struct arena *a)
{
    return (ProtobufCAllocator){.alloc = pb_alloc, .free = pb_free, .allocator_data = a};
}
