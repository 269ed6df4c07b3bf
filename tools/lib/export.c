/*
 * export: the manifest, the part files and their lines (export.h,
 * model/EXPORT.md).
 *
 * Parts are read through a buffer of READ_BYTES plus room for the longest
 * line a table may have, refilled with read(2): a part's text never sits
 * in memory whole, and none of it stays mapped, so the import's peak is
 * the matrices it builds, not the text it reads.
 */
#include "tools/lib/export.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/utf8.h"
#include "model/format.h"
#include "tools/lib/decimal.h"
#include "tools/lib/ids.h"
#include "tools/lib/quote.h"

#define MANIFEST         "recsys-export.json"
#define FORMAT_NAME      "recsys-als-export"
#define FORMAT_VERSION_1 1

/* Bytes read at a time. 1 MiB: the cost of a read(2) call is lost in it,
 * and one per thread is nothing beside the matrices. */
#define READ_BYTES (1u << 20)

/* The longest text of one factor: a sign, nine digits, a point, and an
 * exponent, with room to spare; a longer line is not an export's. */
#define FACTOR_TEXT_MAX 32

/* Threads parsing user parts; past the cores of most import machines. */
#define FILL_THREADS_MAX 8

static const char *const table_names[EXPORT_TABLES] = {
    [EXPORT_USERS] = "users", [EXPORT_ITEMS] = "items", [EXPORT_PURCHASES] = "purchases"};

/* Suffixes of the codecs Spark's text writer may compress with. */
static const char *const compressed_suffixes[] = {".gz",  ".bz2", ".deflate", ".snappy",
                                                  ".lz4", ".zst", ".br"};

struct part {
    char *path;         /* DIR/table/file */
    uint64_t bytes;     /* the manifest's size, checked against the file's */
    uint64_t first_row; /* the row its first line is (users, after export_read_user_ids) */
    uint64_t rows;
};

struct table {
    struct part *parts;
    uint32_t count;
};

struct export
{
    char *dir;
    struct export_manifest m;
    char *version; /* m.model_version's storage */
    struct table tables[EXPORT_TABLES];
};

/* ==== the manifest ==================================================== */

static int get_u64(json_t *v, const char *key, uint64_t max, uint64_t *out, struct err *e)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max)
        return err_set(e, ERR_INVALID, "%s: \"%s\" must be an integer in 0..%llu", MANIFEST, key,
                       (unsigned long long)max);
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int get_real(json_t *v, const char *key, float *out, struct err *e)
{
    if (!json_is_number(v))
        return err_set(e, ERR_INVALID, "%s: \"training\".\"%s\" must be a number", MANIFEST, key);
    *out = (float)json_number_value(v);
    return 0;
}

/* A part name is a file name the job wrote: part-*, no path. */
static int part_name_ok(const char *s)
{
    return strncmp(s, "part-", 5) == 0 && strchr(s, '/') == NULL && strlen(s) < 256;
}

static int read_parts(struct export *x, enum export_table t, json_t *v, struct err *e)
{
    const char *name = table_names[t];
    json_t *rows = json_object_get(v, "rows"), *parts = json_object_get(v, "parts");
    if (!json_is_object(v) || json_object_size(v) != 2 || rows == NULL || !json_is_array(parts))
        return err_set(e, ERR_INVALID,
                       "%s: \"tables\".\"%s\" must be {\"rows\": N, \"parts\": [...]}", MANIFEST,
                       name);
    int rc = get_u64(rows, "rows", UINT32_MAX - 1, &x->m.rows[t], e);
    if (rc != 0)
        return rc;
    size_t n = json_array_size(parts);
    struct table *tb = &x->tables[t];
    tb->parts = calloc(n ? n : 1, sizeof(*tb->parts));
    if (tb->parts == NULL)
        return err_set(e, -ENOMEM, "out of memory for %zu parts", n);
    for (size_t i = 0; i < n; i++) {
        json_t *p = json_array_get(parts, i), *file = json_object_get(p, "file"),
               *bytes = json_object_get(p, "bytes");
        if (!json_is_object(p) || json_object_size(p) != 2 || !json_is_string(file) ||
            !part_name_ok(json_string_value(file)) || bytes == NULL)
            return err_set(e, ERR_INVALID,
                           "%s: \"%s\" part %zu must be {\"file\": \"part-...\", \"bytes\": N}",
                           MANIFEST, name, i);
        struct part *pt = &tb->parts[tb->count];
        if ((rc = get_u64(bytes, "bytes", INT64_MAX, &pt->bytes, e)) != 0)
            return rc;
        size_t len = strlen(x->dir) + strlen(name) + json_string_length(file) + 3;
        if ((pt->path = malloc(len)) == NULL)
            return err_set(e, -ENOMEM, "out of memory");
        snprintf(pt->path, len, "%s/%s/%s", x->dir, name, json_string_value(file));
        tb->count++;
    }
    return 0;
}

static int read_training(struct export *x, json_t *v, struct err *e)
{
    struct model_training *t = &x->m.training;
    if (!json_is_object(v))
        return err_set(e, ERR_INVALID, "%s: \"training\" must be an object", MANIFEST);
    static const struct {
        const char *key;
        size_t member;
    } reals[] = {
        {"regularization", offsetof(struct model_training, regularization)},
        {"alpha", offsetof(struct model_training, alpha)},
        {"view_weight", offsetof(struct model_training, view_weight)},
    };
    for (size_t i = 0; i < sizeof(reals) / sizeof(reals[0]); i++) {
        json_t *r = json_object_get(v, reals[i].key);
        if (r == NULL)
            return err_set(e, ERR_INVALID, "%s: \"training\" has no \"%s\"", MANIFEST,
                           reals[i].key);
        int rc = get_real(r, reals[i].key, (float *)((char *)t + reals[i].member), e);
        if (rc != 0)
            return rc;
    }
    const char *scaling = json_string_value(json_object_get(v, "regularization_scaling"));
    if (scaling != NULL && strcmp(scaling, "per-interaction") == 0)
        t->regularization_scaling = MODEL_SCALING_PER_INTERACTION;
    else if (scaling != NULL && strcmp(scaling, "none") == 0)
        t->regularization_scaling = MODEL_SCALING_NONE;
    else
        return err_set(e, ERR_INVALID,
                       "%s: \"training\".\"regularization_scaling\" must be \"per-interaction\" "
                       "or \"none\"",
                       MANIFEST);
    struct format_training ft = {.regularization = t->regularization,
                                 .alpha = t->alpha,
                                 .view_weight = t->view_weight,
                                 .regularization_scaling = t->regularization_scaling};
    char why[128];
    if (format_training_problem(&ft, why, sizeof(why)) != NULL)
        return err_set(e, ERR_INVALID, "%s: %s", MANIFEST, why);
    t->from_file = 1;
    return 0;
}

static int read_tables(struct export *x, json_t *v, struct err *e)
{
    if (!json_is_object(v) || json_object_size(v) != EXPORT_TABLES)
        return err_set(e, ERR_INVALID, "%s: \"tables\" must hold exactly users, items, purchases",
                       MANIFEST);
    for (int t = 0; t < EXPORT_TABLES; t++) {
        json_t *tv = json_object_get(v, table_names[t]);
        if (tv == NULL)
            return err_set(e, ERR_INVALID, "%s: \"tables\" has no \"%s\"", MANIFEST,
                           table_names[t]);
        int rc = read_parts(x, (enum export_table)t, tv, e);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* The top-level keys, each read once; a key not here is refused. */
enum { K_FORMAT, K_VERSION, K_FACTORS, K_MODEL, K_CREATED, K_END, K_TRAINING, K_TABLES, K_COUNT };
static const char *const top_keys[K_COUNT] = {
    [K_FORMAT] = "format",       [K_VERSION] = "format_version", [K_FACTORS] = "factors",
    [K_MODEL] = "model_version", [K_CREATED] = "created_at",     [K_END] = "data_end_unix_ms",
    [K_TRAINING] = "training",   [K_TABLES] = "tables"};

static int read_manifest(struct export *x, json_t *root, struct err *e)
{
    json_t *k[K_COUNT] = {0};
    if (!json_is_object(root))
        return err_set(e, ERR_INVALID, "%s: not a JSON object", MANIFEST);
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value)
    {
        int i = 0;
        while (i < K_COUNT && strcmp(key, top_keys[i]) != 0)
            i++;
        if (i == K_COUNT)
            return err_set(e, ERR_INVALID, "%s: unknown key \"%s\"", MANIFEST, key);
        k[i] = value;
    }
    for (int i = 0; i < K_COUNT; i++)
        if (k[i] == NULL)
            return err_set(e, ERR_INVALID, "%s: no \"%s\"", MANIFEST, top_keys[i]);
    if (!json_is_string(k[K_FORMAT]) || strcmp(json_string_value(k[K_FORMAT]), FORMAT_NAME) != 0)
        return err_set(e, ERR_INVALID, "%s: \"format\" is not \"%s\"", MANIFEST, FORMAT_NAME);
    if (!json_is_integer(k[K_VERSION]) || json_integer_value(k[K_VERSION]) != FORMAT_VERSION_1)
        return err_set(e, ERR_INVALID,
                       "%s: \"format_version\" is not %d, the only version this import reads",
                       MANIFEST, FORMAT_VERSION_1);
    uint64_t u;
    int rc;
    if ((rc = get_u64(k[K_FACTORS], "factors", FORMAT_DIM_MAX, &u, e)) != 0)
        return rc;
    if (u == 0)
        return err_set(e, ERR_INVALID, "%s: \"factors\" is 0", MANIFEST);
    x->m.factors = (uint32_t)u;
    const char *ver = json_string_value(k[K_MODEL]);
    if (ver == NULL || !format_id_ok(ver, json_string_length(k[K_MODEL]), 0))
        return err_set(e, ERR_INVALID,
                       "%s: \"model_version\" must be 1..%d bytes of UTF-8 without NUL or newline",
                       MANIFEST, MODEL_ID_MAX);
    if ((x->version = strdup(ver)) == NULL)
        return err_set(e, -ENOMEM, "out of memory");
    x->m.model_version = x->version;
    if ((rc = get_u64(k[K_CREATED], "created_at", INT64_MAX, &u, e)) != 0)
        return rc;
    x->m.created_at = (int64_t)u;
    if ((rc = read_training(x, k[K_TRAINING], e)) != 0 ||
        (rc = get_u64(k[K_END], "data_end_unix_ms", INT64_MAX, &u, e)) != 0)
        return rc;
    x->m.training.data_end_unix_ms = (int64_t)u;
    return read_tables(x, k[K_TABLES], e);
}

/* ==== the directory =================================================== */

static int listed(const struct table *tb, const char *path)
{
    for (uint32_t i = 0; i < tb->count; i++)
        if (strcmp(tb->parts[i].path, path) == 0)
            return 1;
    return 0;
}

static int compressed(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof(compressed_suffixes) / sizeof(compressed_suffixes[0]); i++) {
        size_t s = strlen(compressed_suffixes[i]);
        if (n > s && strcmp(name + n - s, compressed_suffixes[i]) == 0)
            return 1;
    }
    return 0;
}

/* Every listed part is there with its size; no part is there unlisted. */
static int check_table_dir(const struct export *x, enum export_table t, struct err *e)
{
    const struct table *tb = &x->tables[t];
    for (uint32_t i = 0; i < tb->count; i++) {
        struct stat st;
        const struct part *p = &tb->parts[i];
        if (stat(p->path, &st) != 0)
            return err_set(e, errno == ENOENT ? ERR_INVALID : -errno,
                           "%s: %s (the manifest lists it)", p->path,
                           errno == ENOENT ? "missing part" : strerror(errno));
        if (!S_ISREG(st.st_mode))
            return err_set(e, ERR_INVALID, "%s: not a regular file", p->path);
        if ((uint64_t)st.st_size != p->bytes)
            return err_set(e, ERR_INVALID,
                           "%s: %lld bytes, the manifest says %llu (a truncated or rewritten part)",
                           p->path, (long long)st.st_size, (unsigned long long)p->bytes);
    }
    size_t len = strlen(x->dir) + strlen(table_names[t]) + 2;
    char *dirpath = malloc(len);
    if (dirpath == NULL)
        return err_set(e, -ENOMEM, "out of memory");
    snprintf(dirpath, len, "%s/%s", x->dir, table_names[t]);
    DIR *d = opendir(dirpath);
    int rc = 0;
    if (d == NULL) {
        rc = err_set(e, errno == ENOENT ? ERR_INVALID : -errno, "%s: %s", dirpath,
                     errno == ENOENT ? "missing table directory" : strerror(errno));
        goto out;
    }
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, "part-", 5) != 0)
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dirpath, de->d_name);
        if (compressed(de->d_name))
            rc = err_set(e, ERR_INVALID,
                         "%s: a compressed part; the export must be written uncompressed "
                         "(recsys_als.py writes it so)",
                         path);
        else if (!listed(tb, path))
            rc = err_set(e, ERR_INVALID,
                         "%s: a part the manifest does not list (left from another export?)", path);
    }
    closedir(d);
out:
    free(dirpath);
    return rc;
}

int export_open(const char *dir, struct export **out, struct err *e)
{
    *out = NULL;
    struct export *x = calloc(1, sizeof(*x));
    if (x == NULL || (x->dir = strdup(dir)) == NULL) {
        free(x);
        return err_set(e, -ENOMEM, "out of memory");
    }
    size_t len = strlen(dir) + sizeof("/" MANIFEST);
    char *path = malloc(len);
    json_t *root = NULL;
    int rc;
    if (path == NULL) {
        rc = err_set(e, -ENOMEM, "out of memory");
        goto out;
    }
    snprintf(path, len, "%s/%s", dir, MANIFEST);
    json_error_t je;
    root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        rc = access(path, F_OK) != 0
                 ? err_set(e, ERR_INVALID,
                           "%s: no manifest: not an export, or one still being written", path)
                 : err_set(e, ERR_INVALID, "%s:%d: %s", path, je.line, je.text);
        goto out;
    }
    if ((rc = read_manifest(x, root, e)) != 0) {
        err_wrap(e, rc, "%s: ", dir);
        goto out;
    }
    for (int t = 0; t < EXPORT_TABLES && rc == 0; t++)
        rc = check_table_dir(x, (enum export_table)t, e);
out:
    json_decref(root);
    free(path);
    if (rc != 0) {
        export_close(x);
        return rc;
    }
    *out = x;
    return 0;
}

void export_close(struct export *x)
{
    if (x == NULL)
        return;
    for (int t = 0; t < EXPORT_TABLES; t++) {
        for (uint32_t i = 0; i < x->tables[t].count; i++)
            free(x->tables[t].parts[i].path);
        free(x->tables[t].parts);
    }
    free(x->version);
    free(x->dir);
    free(x);
}

const struct export_manifest *export_manifest(const struct export *x)
{
    return &x->m;
}

/* ==== lines =========================================================== */

/* One part being read. */
struct lines {
    const char *path;
    int fd;
    char *buf;
    size_t cap, start, end; /* unread bytes: buf[start, end) */
    size_t max;             /* the longest line allowed, LF excluded */
    uint64_t line;          /* of the line last returned */
    int eof;
};

static int lines_open(struct lines *r, const char *path, size_t max, struct err *e)
{
    *r = (struct lines){.path = path, .fd = -1, .max = max, .cap = READ_BYTES + max + 1};
    if ((r->buf = malloc(r->cap)) == NULL)
        return err_set(e, -ENOMEM, "%s: out of memory for a read buffer", path);
    if ((r->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return err_set(e, -errno, "%s: %s", path, strerror(errno));
    return 0;
}

static void lines_close(struct lines *r)
{
    if (r->fd >= 0)
        close(r->fd);
    free(r->buf);
}

/* Moves what is unread to the front and reads more after it. */
static int refill(struct lines *r, struct err *e)
{
    memmove(r->buf, r->buf + r->start, r->end - r->start);
    r->end -= r->start;
    r->start = 0;
    while (r->end < r->cap) {
        ssize_t n = read(r->fd, r->buf + r->end, r->cap - r->end);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return err_set(e, -errno, "%s: read failed (%s)", r->path, strerror(errno));
        if (n == 0) {
            r->eof = 1;
            break;
        }
        r->end += (size_t)n;
        if (r->end - r->start > r->max)
            break;
    }
    return 0;
}

/* The next line, [*p, *p + *len) without its LF: 1, or 0 at the end of
 * the part, or an error (a line too long or without its LF, a read
 * failure). */
static int lines_next(struct lines *r, const char **p, size_t *len, struct err *e)
{
    for (;;) {
        char *s = r->buf + r->start, *nl = memchr(s, '\n', r->end - r->start);
        if (nl != NULL) {
            *p = s;
            *len = (size_t)(nl - s);
            r->start += *len + 1;
            r->line++;
            if (*len > r->max)
                return err_set(e, ERR_INVALID, "%s:%llu: line longer than %zu bytes", r->path,
                               (unsigned long long)r->line, r->max);
            return 1;
        }
        if (r->end - r->start > r->max)
            return err_set(e, ERR_INVALID, "%s:%llu: line longer than %zu bytes", r->path,
                           (unsigned long long)r->line + 1, r->max);
        if (r->eof) {
            if (r->end == r->start)
                return 0;
            return err_set(e, ERR_INVALID, "%s:%llu: the last line has no newline (a cut part?)",
                           r->path, (unsigned long long)r->line + 1);
        }
        int rc = refill(r, e);
        if (rc != 0)
            return rc;
    }
}

static int line_fail(const struct lines *r, struct err *e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int line_fail(const struct lines *r, struct err *e, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return err_set(e, ERR_INVALID, "%s:%llu: %s", r->path, (unsigned long long)r->line, msg);
}

/* The longest factor line: an id, then factors each with its tab. */
static size_t factor_line_max(const struct export *x)
{
    return MODEL_ID_MAX + (size_t)x->m.factors * (FACTOR_TEXT_MAX + 1);
}

/* The id before the first tab of a factor line. */
static int split_id(const struct lines *r, const char *p, size_t len, size_t *id_len, struct err *e)
{
    const char *tab = memchr(p, '\t', len);
    if (tab == NULL)
        return line_fail(r, e, "no tab after the id: want id, then the factors, tab-separated");
    *id_len = (size_t)(tab - p);
    /* Allowed in a model's ids, but in an export a CR means a writer
     * that ended lines with CRLF, and the id would not be the platform's. */
    if (memchr(p, '\r', *id_len) != NULL)
        return line_fail(r, e, "CR in the id (EXPORT.md: lines end in LF alone)");
    return 0;
}

/* A factor followed by something else than a tab: the byte, escaped. */
static int not_a_tab(const struct lines *r, uint32_t j, const char *q, struct err *e)
{
    char qt[QUOTE_BUF];
    return line_fail(r, e, "factor %u is followed by '%s', not a tab", j,
                     quote(qt, sizeof(qt), q, 1));
}

/* Parses the factors after the id's tab into @out: exactly @f of them. */
static int parse_factors(const struct lines *r, const char *p, const char *end, uint32_t f,
                         float *out, struct err *e)
{
    for (uint32_t j = 0; j < f; j++) {
        const char *q = decimal_f32(p, end, &out[j]);
        if (q == NULL || !isfinite(out[j])) {
            size_t n = 0;
            while (p + n < end && p[n] != '\t')
                n++;
            char qt[QUOTE_BUF];
            return line_fail(r, e, "factor %u is %s '%s'", j + 1,
                             q == NULL ? "not a finite number:" : "out of float's range:",
                             quote(qt, sizeof(qt), p, n));
        }
        if (j + 1 < f) {
            if (q == end)
                return line_fail(r, e, "%u factors, the manifest says %u", j + 1, f);
            if (*q != '\t')
                return not_a_tab(r, j + 1, q, e);
            p = q + 1;
        } else if (q != end) {
            if (*q != '\t')
                return not_a_tab(r, j + 1, q, e);
            uint32_t more = 0;
            for (; q < end; q++)
                more += *q == '\t';
            return line_fail(r, e, "%u factors, the manifest says %u", f + more, f);
        }
    }
    return 0;
}

/* Adds a line's id to @ids, naming the line that listed it first when it
 * is listed twice. @parts and @n are the table's parts read so far, to
 * turn that first row into its file and line. */
static int add_id(struct ids *ids, const struct lines *r, const struct part *parts, uint32_t n,
                  const char *id, size_t len, struct err *e)
{
    uint32_t first;
    char q[QUOTE_BUF];
    struct err why = {0};
    int rc = ids_add(ids, id, len, &first, &why);
    if (rc == 1) {
        uint32_t i = 0;
        while (i + 1 < n && parts[i + 1].first_row <= first)
            i++;
        return line_fail(r, e, "duplicate id '%s' (first at %s:%llu)", quote(q, sizeof(q), id, len),
                         parts[i].path, (unsigned long long)(first - parts[i].first_row + 1));
    }
    if (rc == ERR_INVALID)
        return line_fail(r, e, "%s", why.msg);
    return rc == 0 ? 0 : err_set(e, rc, "%s: %s", r->path, why.msg);
}

/* The row count against the manifest, after a table was read. */
static int check_rows(const struct export *x, enum export_table t, uint64_t rows, struct err *e)
{
    if (rows != x->m.rows[t])
        return err_set(e, ERR_INVALID, "%s/%s: %llu lines in its parts, the manifest says %llu",
                       x->dir, table_names[t], (unsigned long long)rows,
                       (unsigned long long)x->m.rows[t]);
    return 0;
}

/* ==== tables ========================================================== */

/* The ids of table @t, named DIR/table in messages (the catalog's say
 * "item 'x' is not in DIR/items"). */
static int new_ids(const struct export *x, enum export_table t, struct ids **out, struct err *e)
{
    char name[4096];
    snprintf(name, sizeof(name), "%s/%s", x->dir, table_names[t]);
    return ids_new(name, (uint32_t)x->m.rows[t], out, e);
}

/* Reads table @t's ids into *ids and, unless @matrix is NULL, its factors
 * into @matrix (rows x factors), noting each part's rows. */
static int read_factor_table(struct export *x, enum export_table t, struct ids **ids, float *matrix,
                             struct err *e)
{
    struct table *tb = &x->tables[t];
    uint32_t f = x->m.factors;
    uint64_t want = x->m.rows[t], rows = 0;
    int rc = new_ids(x, t, ids, e);
    for (uint32_t i = 0; i < tb->count && rc == 0; i++) {
        struct lines r;
        const char *p;
        size_t len = 0, id_len = 0;
        tb->parts[i].first_row = rows;
        rc = lines_open(&r, tb->parts[i].path, factor_line_max(x), e);
        while (rc == 0 && (rc = lines_next(&r, &p, &len, e)) == 1) {
            if (rows == want) {
                rc = line_fail(&r, e, "more %s than the manifest's %llu", table_names[t],
                               (unsigned long long)want);
                break;
            }
            if ((rc = split_id(&r, p, len, &id_len, e)) != 0 ||
                (rc = add_id(*ids, &r, tb->parts, i + 1, p, id_len, e)) != 0 ||
                (matrix != NULL &&
                 (rc = parse_factors(&r, p + id_len + 1, p + len, f, matrix + rows * f, e)) != 0))
                break;
            rows++;
        }
        tb->parts[i].rows = rows - tb->parts[i].first_row;
        lines_close(&r);
    }
    return rc != 0 ? rc : check_rows(x, t, rows, e);
}

int export_read_items(struct export *x, struct ids **ids, float **matrix, struct err *e)
{
    uint64_t want = x->m.rows[EXPORT_ITEMS];
    *ids = NULL;
    *matrix = NULL;
    if (want == 0)
        return err_set(e, ERR_INVALID, "%s: no items (a model needs at least one)", x->dir);
    if ((*matrix = malloc(want * x->m.factors * sizeof(float))) == NULL)
        return err_set(e, -ENOMEM, "out of memory for %llu x %u item factors",
                       (unsigned long long)want, x->m.factors);
    return read_factor_table(x, EXPORT_ITEMS, ids, *matrix, e);
}

int export_read_user_ids(struct export *x, struct ids **ids, struct err *e)
{
    return read_factor_table(x, EXPORT_USERS, ids, NULL, e);
}

/* The index of the id [p, p + len) in @ids, or a failure naming @what. */
static int resolve(const struct lines *r, const struct ids *ids, const char *what, const char *p,
                   size_t len, uint32_t *out, struct err *e)
{
    char q[QUOTE_BUF];
    if (ids_find(ids, p, len, out) != 0)
        return line_fail(r, e, "%s '%s' is not in the export's %ss", what,
                         quote(q, sizeof(q), p, len), what);
    return 0;
}

int export_read_purchases(struct export *x, const struct ids *users, const struct ids *items,
                          uint64_t **pairs, size_t *n, size_t *cap, struct err *e)
{
    struct table *tb = &x->tables[EXPORT_PURCHASES];
    uint64_t rows = 0, want = x->m.rows[EXPORT_PURCHASES];
    int rc = 0;
    /* The manifest's count, reserved at once: growing by doubling would
     * hold the old and the new array together, up to three times the
     * pairs, at the import's peak. A count too low still grows below. */
    if (*cap - *n < want) {
        uint64_t *grown = realloc(*pairs, (*n + want) * sizeof(*grown));
        if (grown == NULL)
            return err_set(e, -ENOMEM, "out of memory for %llu purchases",
                           (unsigned long long)want);
        *pairs = grown;
        *cap = *n + want;
    }
    for (uint32_t i = 0; i < tb->count && rc == 0; i++) {
        struct lines r;
        const char *p;
        size_t len;
        rc = lines_open(&r, tb->parts[i].path, 2 * MODEL_ID_MAX + 1, e);
        while (rc == 0 && (rc = lines_next(&r, &p, &len, e)) == 1) {
            const char *tab = memchr(p, '\t', len);
            uint32_t user, item;
            if (tab == NULL || memchr(tab + 1, '\t', (size_t)(p + len - tab - 1)) != NULL) {
                rc = line_fail(&r, e, "want user_id TAB item_id");
                break;
            }
            if ((rc = resolve(&r, users, "user", p, (size_t)(tab - p), &user, e)) != 0 ||
                (rc = resolve(&r, items, "item", tab + 1, (size_t)(p + len - tab - 1), &item, e)) !=
                    0)
                break;
            if (*n == *cap) {
                size_t c = *cap ? *cap * 2 : 1024;
                uint64_t *grown = realloc(*pairs, c * sizeof(*grown));
                if (grown == NULL) {
                    rc = err_set(e, -ENOMEM, "out of memory for %zu purchases", c);
                    break;
                }
                *pairs = grown;
                *cap = c;
            }
            (*pairs)[(*n)++] = (uint64_t)user << 32 | item;
            rows++;
        }
        lines_close(&r);
    }
    return rc != 0 ? rc : check_rows(x, EXPORT_PURCHASES, rows, e);
}

/* ==== the user factors, in parallel =================================== */

struct fill {
    const struct export *x;
    const struct ids *users;
    float *dst;
    uint32_t stride;
    atomic_uint next;   /* the next part to take */
    atomic_uint failed; /* the lowest failed part + 1, or 0 */
    struct err *errs;   /* one per part that failed */
    int *codes;
};

/* Parses part @i into its rows. */
static int fill_part(struct fill *fl, uint32_t i, struct err *e)
{
    const struct part *pt = &fl->x->tables[EXPORT_USERS].parts[i];
    const char *const *ids = ids_array(fl->users);
    uint32_t f = fl->x->m.factors;
    struct lines r;
    const char *p;
    size_t len = 0, id_len = 0;
    uint64_t row = pt->first_row, end = pt->first_row + pt->rows;
    int rc = lines_open(&r, pt->path, factor_line_max(fl->x), e);
    while (rc == 0 && (rc = lines_next(&r, &p, &len, e)) == 1) {
        if ((rc = split_id(&r, p, len, &id_len, e)) != 0)
            break;
        if (row == end || strlen(ids[row]) != id_len || memcmp(ids[row], p, id_len) != 0) {
            rc = line_fail(&r, e, "the part changed while it was read");
            break;
        }
        rc = parse_factors(&r, p + id_len + 1, p + len, f, fl->dst + row * fl->stride, e);
        row++;
    }
    lines_close(&r);
    if (rc == 0 && row != end)
        rc = err_set(e, ERR_INVALID, "%s: the part changed while it was read", pt->path);
    return rc;
}

static void *fill_thread(void *arg)
{
    struct fill *fl = arg;
    uint32_t count = fl->x->tables[EXPORT_USERS].count;
    for (;;) {
        /* Parts are taken in order, so when part i fails, every part
         * before it was taken already and will be finished: the lowest
         * failure is always found. */
        uint32_t i = atomic_fetch_add(&fl->next, 1);
        unsigned failed = atomic_load(&fl->failed);
        if (i >= count || (failed != 0 && i >= failed - 1))
            break;
        int rc = fill_part(fl, i, &fl->errs[i]);
        if (rc != 0) {
            fl->codes[i] = rc;
            unsigned cur = atomic_load(&fl->failed);
            while ((cur == 0 || i + 1 < cur) &&
                   !atomic_compare_exchange_weak(&fl->failed, &cur, i + 1))
                ;
        }
    }
    return NULL;
}

int export_fill_users(struct export *x, const struct ids *users, float *dst, uint32_t stride,
                      struct err *e)
{
    uint32_t count = x->tables[EXPORT_USERS].count;
    if (count == 0)
        return 0;
    struct fill fl = {.x = x, .users = users, .dst = dst, .stride = stride};
    fl.errs = calloc(count, sizeof(*fl.errs));
    fl.codes = calloc(count, sizeof(*fl.codes));
    if (fl.errs == NULL || fl.codes == NULL) {
        free(fl.errs);
        free(fl.codes);
        return err_set(e, -ENOMEM, "out of memory for %u parts", count);
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    uint32_t n = cores < 1 ? 1 : cores > FILL_THREADS_MAX ? FILL_THREADS_MAX : (uint32_t)cores;
    n = n > count ? count : n;
    pthread_t th[FILL_THREADS_MAX];
    uint32_t started = 0;
    /* This thread is one of the n: a failed pthread_create only means fewer. */
    while (started + 1 < n && pthread_create(&th[started], NULL, fill_thread, &fl) == 0)
        started++;
    fill_thread(&fl);
    for (uint32_t i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    unsigned failed = atomic_load(&fl.failed);
    int rc = 0;
    if (failed != 0)
        rc = err_set(e, fl.codes[failed - 1], "%s", fl.errs[failed - 1].msg);
    free(fl.errs);
    free(fl.codes);
    return rc;
}
