/*
 * ids: read an id file into one buffer and index it (see ids.h).
 *
 * The file is read whole and split in place (each newline becomes the NUL
 * ending its id), so a million ids cost one allocation for the bytes, one
 * for the pointers and the hash index.
 */
#include "tools/lib/ids.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/utf8.h"
#include "model/format.h"
#include "model/model.h"
#include "tools/lib/idmap.h"
#include "tools/lib/quote.h"

/* Storage of ids added one at a time (ids_add): blocks that never move,
 * so the pointers in v and the index's borrowed keys stay valid. */
struct block {
    struct block *next;
    size_t used;
    char data[];
};
#define BLOCK_BYTES (1u << 20)

struct ids {
    char *path;
    char *bytes;          /* the file, newlines replaced by NULs (ids_read) */
    struct block *blocks; /* or the added ids, newest block first (ids_add) */
    char **v;             /* count pointers into bytes or blocks */
    uint32_t count, cap;
    struct idmap *index;
};

/* What is wrong with @len bytes at @p as an id, or NULL. */
static const char *id_problem(const char *p, size_t len, char *buf, size_t size)
{
    if (len == 0)
        return "empty id";
    if (len > MODEL_ID_MAX) {
        snprintf(buf, size, "id is %zu bytes, longer than %d", len, MODEL_ID_MAX);
        return buf;
    }
    if (memchr(p, '\0', len) != NULL)
        return "NUL byte in the id";
    if (memchr(p, '\n', len) != NULL)
        return "newline in the id";
    if (!utf8_valid(p, len))
        return "id is not valid UTF-8";
    return NULL;
}

/* Reads the whole of @path into a new NUL-terminated buffer. */
static int slurp(const char *path, char **out, size_t *len, struct err *e)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set(e, -errno, "%s: %s", path, strerror(errno));
    int rc = 0;
    char *buf = NULL;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = err_set(e, -errno, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = err_set(e, ERR_INVALID, "%s: not a regular file", path);
        goto out;
    }
    size_t size = (size_t)st.st_size, got = 0;
    buf = malloc(size + 1);
    if (buf == NULL) {
        rc = err_set(e, -ENOMEM, "%s: out of memory for %zu bytes", path, size);
        goto out;
    }
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = err_set(e, n < 0 ? -errno : -EIO, "%s: read failed (%s)", path,
                         n < 0 ? strerror(errno) : "file shrank while reading");
            goto out;
        }
        got += (size_t)n;
    }
    buf[size] = '\0';
    *out = buf;
    *len = size;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return rc;
}

/* Splits l->bytes into lines, checking each id. */
static int split(struct ids *l, size_t len, struct err *e)
{
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += l->bytes[i] == '\n';
    if (len > 0 && l->bytes[len - 1] != '\n')
        lines++; /* a last line without its newline */
    if (lines >= UINT32_MAX)
        return err_set(e, ERR_TOO_BIG, "%s: %zu ids, at most %u", l->path, lines, UINT32_MAX - 1);
    l->v = malloc((lines ? lines : 1) * sizeof(*l->v));
    if (l->v == NULL)
        return err_set(e, -ENOMEM, "%s: out of memory for %zu ids", l->path, lines);

    char *p = l->bytes, *end = l->bytes + len;
    for (uint32_t n = 0; n < lines; n++) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *stop = nl != NULL ? nl : end;
        if (stop > p && stop[-1] == '\r')
            stop--;
        size_t idlen = (size_t)(stop - p);
        *stop = '\0';
        char buf[64];
        const char *why =
            idlen == 0 ? "empty line (one id per line)" : id_problem(p, idlen, buf, sizeof(buf));
        if (why != NULL)
            return err_set(e, ERR_INVALID, "%s:%u: %s", l->path, n + 1, why);
        l->v[n] = p;
        p = nl != NULL ? nl + 1 : end;
    }
    l->count = (uint32_t)lines;
    return 0;
}

static int index_ids(struct ids *l, struct err *e)
{
    if (idmap_create(l->count, &l->index) != 0)
        return err_set(e, -ENOMEM, "%s: out of memory", l->path);
    for (uint32_t i = 0; i < l->count; i++) {
        uint32_t first;
        int rc = idmap_put(l->index, l->v[i], strlen(l->v[i]), i, &first);
        if (rc < 0)
            return err_set(e, rc, "%s: out of memory", l->path);
        char q[QUOTE_BUF];
        if (rc == 1)
            return err_set(e, ERR_INVALID, "%s:%u: duplicate id '%s' (first on line %u)", l->path,
                           i + 1, quote(q, sizeof(q), l->v[i], strlen(l->v[i])), first + 1);
    }
    return 0;
}

int ids_read(const char *path, struct ids **out, struct err *e)
{
    *out = NULL;
    struct ids *l = calloc(1, sizeof(*l));
    if (l == NULL || (l->path = strdup(path)) == NULL) {
        free(l);
        return err_set(e, -ENOMEM, "%s: out of memory", path);
    }
    size_t len = 0;
    int rc = slurp(path, &l->bytes, &len, e);
    if (rc == 0)
        rc = split(l, len, e);
    if (rc == 0)
        rc = index_ids(l, e);
    if (rc != 0) {
        ids_free(l);
        return rc;
    }
    *out = l;
    return 0;
}

int ids_new(const char *name, uint32_t expected, struct ids **out, struct err *e)
{
    struct ids *l = calloc(1, sizeof(*l));
    *out = NULL;
    if (l == NULL || (l->path = strdup(name)) == NULL || idmap_create(expected, &l->index) != 0) {
        ids_free(l);
        return err_set(e, -ENOMEM, "%s: out of memory", name);
    }
    *out = l;
    return 0;
}

/* A copy of @len bytes at @p, NUL-terminated, in l's blocks. */
static char *keep(struct ids *l, const char *p, size_t len)
{
    struct block *b = l->blocks;
    if (b == NULL || BLOCK_BYTES - b->used < len + 1) {
        b = malloc(sizeof(*b) + BLOCK_BYTES);
        if (b == NULL)
            return NULL;
        b->next = l->blocks;
        b->used = 0;
        l->blocks = b;
    }
    char *s = b->data + b->used;
    memcpy(s, p, len);
    s[len] = '\0';
    b->used += len + 1;
    return s;
}

int ids_add(struct ids *l, const char *id, size_t len, uint32_t *first, struct err *e)
{
    char buf[64];
    const char *why = id_problem(id, len, buf, sizeof(buf));
    if (why != NULL)
        return err_set(e, ERR_INVALID, "%s", why);
    if (idmap_get(l->index, id, len, first) == 0)
        return 1;
    if (l->count == UINT32_MAX - 1)
        return err_set(e, ERR_TOO_BIG, "more than %u ids", UINT32_MAX - 1);
    if (l->count == l->cap) {
        uint32_t cap = l->cap ? (l->cap > UINT32_MAX / 2 ? UINT32_MAX - 1 : l->cap * 2) : 1024;
        char **v = realloc(l->v, (size_t)cap * sizeof(*v));
        if (v == NULL)
            return err_set(e, -ENOMEM, "out of memory for %u ids", cap);
        l->v = v;
        l->cap = cap;
    }
    char *s = keep(l, id, len);
    uint32_t dup;
    if (s == NULL || idmap_put(l->index, s, len, l->count, &dup) != 0)
        return err_set(e, -ENOMEM, "out of memory for %u ids", l->count + 1);
    l->v[l->count++] = s;
    return 0;
}

void ids_drop_index(struct ids *l)
{
    idmap_destroy(l->index);
    l->index = NULL;
}

void ids_free(struct ids *l)
{
    if (l == NULL)
        return;
    while (l->blocks != NULL) {
        struct block *next = l->blocks->next;
        free(l->blocks);
        l->blocks = next;
    }
    idmap_destroy(l->index);
    free(l->v);
    free(l->bytes);
    free(l->path);
    free(l);
}

uint32_t ids_count(const struct ids *l)
{
    return l->count;
}

const char *const *ids_array(const struct ids *l)
{
    return (const char *const *)l->v;
}

const char *ids_path(const struct ids *l)
{
    return l->path;
}

int ids_find(const struct ids *l, const char *id, size_t len, uint32_t *row)
{
    return idmap_get(l->index, id, len, row);
}
