/*
 * arena: per-worker scratch memory for one call.
 *
 * Everything a call needs (the unpacked request, id lookups, filter sets,
 * the response message) is bump-allocated here and released at once by
 * arena_reset() when the call is done, so the request path never calls
 * malloc or free. Blocks grow geometrically when a call needs more; the
 * first block is kept across resets, later ones are returned to the heap so
 * one huge call does not pin its memory forever.
 *
 * Not thread-safe: an arena belongs to one worker.
 */
#pragma once

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

struct arena;

/* arena_create - new arena whose first block holds @block_size bytes.
 * Returns 0 or -ENOMEM. The caller owns *out and frees it with arena_destroy. */
int arena_create(size_t block_size, struct arena **out);

/* arena_destroy - free the arena and all it handed out. NULL is a no-op. */
void arena_destroy(struct arena *a);

/* arena_alloc - @size bytes aligned to 16; NULL only when the heap is out of
 * memory. Valid until the next arena_reset/arena_destroy. */
void *arena_alloc(struct arena *a, size_t size);

/* arena_calloc - @n * @size zeroed bytes; NULL on overflow or no memory. */
void *arena_calloc(struct arena *a, size_t n, size_t size);

/* arena_strndup - copy of @len bytes of @s plus a terminating NUL. */
char *arena_strndup(struct arena *a, const char *s, size_t len);

/* arena_reset - release everything allocated since creation or the last reset. */
void arena_reset(struct arena *a);

/* arena_used - bytes handed out since the last reset (for tests and metrics). */
size_t arena_used(const struct arena *a);

/* arena_protobuf - a protobuf-c allocator that allocates from @a; its free is
 * a no-op, since the arena releases everything at reset. The returned struct
 * refers to @a and is valid as long as @a is. */
ProtobufCAllocator arena_protobuf(struct arena *a);
