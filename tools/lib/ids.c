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

#include "model/format.h"
#include "model/model.h"
#include "tools/lib/idmap.h"
#include "tools/lib/quote.h"

struct ids {
    char *path;
    char *bytes; /* the file, newlines replaced by NULs */
    char **v;    /* count pointers into bytes */
    uint32_t count;
    struct idmap *index;
};

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
        if (idlen == 0)
            return err_set(e, ERR_INVALID, "%s:%u: empty line (one id per line)", l->path, n + 1);
        if (idlen > MODEL_ID_MAX)
            return err_set(e, ERR_INVALID, "%s:%u: id is %zu bytes, longer than %d", l->path, n + 1,
                           idlen, MODEL_ID_MAX);
        if (strlen(p) != idlen)
            return err_set(e, ERR_INVALID, "%s:%u: NUL byte in the id", l->path, n + 1);
        if (!utf8_valid(p, idlen))
            return err_set(e, ERR_INVALID, "%s:%u: id is not valid UTF-8", l->path, n + 1);
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

void ids_free(struct ids *l)
{
    if (l == NULL)
        return;
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
