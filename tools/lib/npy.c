/*
 * npy: parse the .npy header and hand out the matrix in place (see npy.h).
 *
 * The header is a Python literal, written by numpy's repr() of a dict, e.g.
 *     {'descr': '<f4', 'fortran_order': False, 'shape': (300, 16), }
 * It is parsed as the small grammar numpy can emit, not searched for
 * substrings, so a header that merely contains the right words in the wrong
 * places is refused:
 *     dict  = '{' [ key ':' value { ',' key ':' value } [ ','] ] '}'
 *     key   = string                       one of the three names, once each
 *     value = string | 'True' | 'False' | tuple
 *     tuple = '(' [ int { ',' int } [ ',' ] ] ')'    ints may end in L (Python 2)
 * with blanks allowed between tokens.
 */
#include "tools/lib/npy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tools/lib/quote.h"

#define NPY_MAGIC     "\x93NUMPY"
#define NPY_MAGIC_LEN 6
#define NPY_DTYPE     "<f4"
/* Longest 'descr' string or dict key worth reading; longer ones are wrong anyway. */
#define NPY_TOKEN_MAX 32
/* More dimensions than this are reported as "not 2-D" without listing them. */
#define NPY_NDIM_MAX 32

/* What the header says. */
struct header {
    char descr[NPY_TOKEN_MAX + 1];
    int fortran_order;
    uint64_t shape[NPY_NDIM_MAX];
    unsigned ndim;
    unsigned seen; /* bit per key, to refuse repeats and notice missing keys */
};

/* A cursor over the header text. */
struct lex {
    const char *p, *end;
};

/* ==== tokens ========================================================== */

static void skip_blanks(struct lex *x)
{
    while (x->p < x->end && (*x->p == ' ' || *x->p == '\t' || *x->p == '\n' || *x->p == '\r'))
        x->p++;
}

/* Consumes @c (after blanks) if it is next; returns whether it was. */
static int accept(struct lex *x, char c)
{
    skip_blanks(x);
    if (x->p < x->end && *x->p == c) {
        x->p++;
        return 1;
    }
    return 0;
}

/* Consumes the word @w if it is next and not followed by more letters. */
static int accept_word(struct lex *x, const char *w)
{
    skip_blanks(x);
    size_t n = strlen(w);
    if ((size_t)(x->end - x->p) < n || memcmp(x->p, w, n) != 0)
        return 0;
    if (x->p + n < x->end &&
        ((x->p[n] >= 'a' && x->p[n] <= 'z') || (x->p[n] >= 'A' && x->p[n] <= 'Z')))
        return 0;
    x->p += n;
    return 1;
}

/* A quoted string without escapes (numpy never writes any in these fields). */
static int string(struct lex *x, char *out, size_t cap, struct err *e)
{
    char shown[QUOTE_BUF];
    skip_blanks(x);
    if (x->p >= x->end || (*x->p != '\'' && *x->p != '"'))
        return err_set(e, ERR_FORMAT, "header: expected a quoted string");
    char q = *x->p++;
    const char *start = x->p;
    while (x->p < x->end && *x->p != q && *x->p != '\\')
        x->p++;
    if (x->p >= x->end || *x->p != q)
        return err_set(e, ERR_FORMAT, "header: unterminated or escaped string");
    size_t n = (size_t)(x->p - start);
    x->p++;
    if (n >= cap)
        return err_set(e, ERR_FORMAT, "header: string '%s' is too long",
                       quote(shown, sizeof(shown), start, n));
    memcpy(out, start, n);
    out[n] = '\0';
    return 0;
}

static int integer(struct lex *x, uint64_t *out, struct err *e)
{
    skip_blanks(x);
    uint64_t v = 0;
    const char *start = x->p;
    for (; x->p < x->end && *x->p >= '0' && *x->p <= '9'; x->p++) {
        unsigned d = (unsigned)(*x->p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return err_set(e, ERR_FORMAT, "header: a dimension in 'shape' is too large");
        v = v * 10 + d;
    }
    if (x->p == start)
        return err_set(e, ERR_FORMAT, "header: 'shape' must be a tuple of non-negative integers");
    if (x->p < x->end && *x->p == 'L')
        x->p++;
    *out = v;
    return 0;
}

/* ==== the dict ======================================================== */

static int shape_value(struct lex *x, struct header *h, struct err *e)
{
    if (!accept(x, '('))
        return err_set(e, ERR_FORMAT, "header: 'shape' must be a tuple");
    for (h->ndim = 0;; h->ndim++) {
        if (accept(x, ')'))
            return 0;
        uint64_t d = 0;
        int rc = integer(x, &d, e);
        if (rc != 0)
            return rc;
        if (h->ndim < NPY_NDIM_MAX)
            h->shape[h->ndim] = d;
        if (!accept(x, ',')) {
            h->ndim++;
            if (accept(x, ')'))
                return 0;
            return err_set(e, ERR_FORMAT, "header: malformed 'shape' tuple");
        }
    }
}

static int descr_value(struct lex *x, struct header *h, struct err *e)
{
    skip_blanks(x);
    if (x->p < x->end && *x->p == '[')
        return err_set(e, ERR_FORMAT, "structured dtypes are not supported (want '%s')", NPY_DTYPE);
    return string(x, h->descr, sizeof(h->descr), e);
}

static int fortran_value(struct lex *x, struct header *h, struct err *e)
{
    if (accept_word(x, "True"))
        h->fortran_order = 1;
    else if (accept_word(x, "False"))
        h->fortran_order = 0;
    else
        return err_set(e, ERR_FORMAT, "header: 'fortran_order' must be True or False");
    return 0;
}

static const struct key {
    const char *name;
    int (*value)(struct lex *x, struct header *h, struct err *e);
} keys[] = {
    {"descr", descr_value},
    {"fortran_order", fortran_value},
    {"shape", shape_value},
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static int entry(struct lex *x, struct header *h, struct err *e)
{
    char name[NPY_TOKEN_MAX + 1], q[QUOTE_BUF];
    int rc = string(x, name, sizeof(name), e);
    if (rc != 0)
        return rc;
    if (!accept(x, ':'))
        return err_set(e, ERR_FORMAT, "header: expected ':' after '%s'",
                       quote(q, sizeof(q), name, strlen(name)));
    for (unsigned k = 0; k < NKEYS; k++) {
        if (strcmp(name, keys[k].name) != 0)
            continue;
        if (h->seen & (1u << k))
            return err_set(e, ERR_FORMAT, "header: '%s' appears twice", keys[k].name);
        h->seen |= 1u << k;
        return keys[k].value(x, h, e);
    }
    return err_set(e, ERR_FORMAT, "header: unexpected key '%s'",
                   quote(q, sizeof(q), name, strlen(name)));
}

static int parse_dict(struct lex *x, struct header *h, struct err *e)
{
    if (!accept(x, '{'))
        return err_set(e, ERR_FORMAT, "header is not a dict literal");
    while (!accept(x, '}')) {
        int rc = entry(x, h, e);
        if (rc != 0)
            return rc;
        if (accept(x, ','))
            continue;
        if (accept(x, '}'))
            break;
        return err_set(e, ERR_FORMAT, "header: expected ',' or '}' after an entry");
    }
    skip_blanks(x);
    if (x->p != x->end)
        return err_set(e, ERR_FORMAT, "header: unexpected text after the dict");
    for (unsigned k = 0; k < NKEYS; k++)
        if (!(h->seen & (1u << k)))
            return err_set(e, ERR_FORMAT, "header: '%s' is missing", keys[k].name);
    return 0;
}

/* ==== the file ======================================================== */

/* "(10, 3, 2)", as numpy prints a shape. */
static void format_shape(const struct header *h, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "(");
    for (unsigned i = 0; i < h->ndim && i < NPY_NDIM_MAX && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%llu", i ? ", " : "",
                              (unsigned long long)h->shape[i]);
    if (n < cap)
        snprintf(out + n, cap - n, "%s%s)", h->ndim == 1 ? "," : "",
                 h->ndim > NPY_NDIM_MAX ? ", ..." : "");
}

/* Magic, version and header length: the header text is @b[*hdr_off, *hdr_off + *hdr_len). */
static int preamble(const uint8_t *b, size_t len, size_t *hdr_off, size_t *hdr_len, struct err *e)
{
    if (len < NPY_MAGIC_LEN + 2 || memcmp(b, NPY_MAGIC, NPY_MAGIC_LEN) != 0)
        return err_set(e, ERR_FORMAT, "not a .npy file (no \\x93NUMPY magic)");
    unsigned major = b[6], minor = b[7];
    if (major < 1 || major > 3 || minor != 0)
        return err_set(e, ERR_FORMAT, ".npy format version %u.%u is not supported (1.0-3.0)", major,
                       minor);
    size_t width = major == 1 ? 2 : 4;
    if (len < 8 + width)
        return err_set(e, ERR_FORMAT, "file is %zu bytes, too short for a .npy header", len);
    uint64_t n = (uint64_t)b[8] | (uint64_t)b[9] << 8;
    if (width == 4)
        n |= (uint64_t)b[10] << 16 | (uint64_t)b[11] << 24;
    *hdr_off = 8 + width;
    if (n > len - *hdr_off)
        return err_set(e, ERR_FORMAT, "file is %zu bytes, header says its header alone is %llu",
                       len, (unsigned long long)n);
    *hdr_len = (size_t)n;
    return 0;
}

/* The dtype, order and shape, against what a factor matrix must be. */
static int check_header(const struct header *h, struct err *e)
{
    char q[QUOTE_BUF];
    if (strcmp(h->descr, NPY_DTYPE) != 0)
        return err_set(e, ERR_FORMAT, "dtype '%s' is not float32 ('%s')",
                       quote(q, sizeof(q), h->descr, strlen(h->descr)), NPY_DTYPE);
    if (h->fortran_order)
        return err_set(e, ERR_FORMAT,
                       "fortran_order arrays are not supported (save a C-order "
                       "array: numpy.ascontiguousarray)");
    if (h->ndim != 2) {
        char shape[128];
        format_shape(h, shape, sizeof(shape));
        return err_set(e, ERR_FORMAT, "shape %s is not 2-D", shape);
    }
    if (h->shape[1] == 0)
        return err_set(e, ERR_FORMAT, "shape (%llu, 0) has no columns",
                       (unsigned long long)h->shape[0]);
    return 0;
}

int npy_parse(const void *buf, size_t len, struct npy_view *out, struct err *e)
{
    const uint8_t *b = buf;
    size_t hdr_off = 0, hdr_len = 0;
    int rc = preamble(b, len, &hdr_off, &hdr_len, e);
    if (rc != 0)
        return rc;
    struct header h = {0};
    struct lex x = {(const char *)b + hdr_off, (const char *)b + hdr_off + hdr_len};
    if ((rc = parse_dict(&x, &h, e)) != 0 || (rc = check_header(&h, e)) != 0)
        return rc;

    size_t data_off = hdr_off + hdr_len;
    /* numpy pads the header so the data starts 64-byte aligned (16 before
     * numpy 1.9); anything not a multiple of 4 would need a copy to read. */
    if (data_off % sizeof(float) != 0)
        return err_set(e, ERR_FORMAT, "array data starts at offset %zu, not a multiple of 4",
                       data_off);
    uint64_t rows = h.shape[0], cols = h.shape[1];
    if (rows > (UINT64_MAX - data_off) / cols / sizeof(float))
        return err_set(e, ERR_FORMAT, "shape (%llu, %llu) is too large", (unsigned long long)rows,
                       (unsigned long long)cols);
    uint64_t want = data_off + rows * cols * sizeof(float);
    if (want != len)
        return err_set(e, ERR_FORMAT, "file is %zu bytes, header says %llu (shape (%llu, %llu))",
                       len, (unsigned long long)want, (unsigned long long)rows,
                       (unsigned long long)cols);
    *out = (struct npy_view){(const float *)(b + data_off), rows, cols};
    return 0;
}

int npy_map(const char *path, struct npy_file *f, struct err *e)
{
    *f = (struct npy_file){0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set(e, -errno, "%s: %s", path, strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0) {
        rc = err_set(e, -errno, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = err_set(e, ERR_FORMAT, "%s: not a regular file", path);
        goto out;
    }
    if (st.st_size == 0) {
        rc = err_set(e, ERR_FORMAT, "%s: empty file, not a .npy file", path);
        goto out;
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        rc = err_set(e, -errno, "%s: failed to map (%s)", path, strerror(errno));
        goto out;
    }
    f->map = map;
    f->len = (size_t)st.st_size;
    if ((rc = npy_parse(f->map, f->len, &f->view, e)) != 0)
        err_wrap(e, rc, "%s", path);
out:
    close(fd);
    return rc;
}

void npy_unmap(struct npy_file *f)
{
    if (f->map != NULL)
        munmap(f->map, f->len);
    *f = (struct npy_file){0};
}

void npy_header(char out[NPY_HEADER_BYTES], uint64_t rows, uint32_t cols)
{
    /* magic, version 1.0, a uint16 LE header length, the dict, blanks, LF */
    enum { PREAMBLE = 10 };
    uint16_t len = NPY_HEADER_BYTES - PREAMBLE;
    memset(out, ' ', NPY_HEADER_BYTES);
    memcpy(out, "\x93NUMPY\x01\x00", 8);
    out[8] = (char)(len & 0xff);
    out[9] = (char)(len >> 8);
    char dict[NPY_HEADER_BYTES];
    int n = snprintf(dict, sizeof(dict),
                     "{'descr': '<f4', 'fortran_order': False, 'shape': (%llu, %u), }",
                     (unsigned long long)rows, cols);
    memcpy(out + PREAMBLE, dict, (size_t)n);
    out[NPY_HEADER_BYTES - 1] = '\n';
}
