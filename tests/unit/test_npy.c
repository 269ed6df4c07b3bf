/*
 * test_npy: npy_parse against the .npy format (numpy.lib.format, versions
 * 1.0 to 3.0) and npy_map on real files.
 *
 * Each case builds a file image the way numpy lays one out (magic, version,
 * header length, the dict padded with blanks and a newline so the data
 * starts at a multiple of 64), with the header text and data size the case
 * gives, and expects either the matrix or an ERR_FORMAT whose text names the
 * problem.
 */
#include "tools/lib/npy.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

#define IMAGE_MAX 4096

/* A header as numpy >= 1.9 writes it. */
#define HDR(descr, fortran, shape)                                                                 \
    "{'descr': " descr ", 'fortran_order': " fortran ", 'shape': " shape ", }"
#define F4(shape) HDR("'<f4'", "False", shape)

/* ==== building images ================================================= */

/* The header length field: 2 bytes in version 1.0, 4 in 2.0 and 3.0. */
static size_t length_width(unsigned major)
{
    return major == 1 ? 2 : 4;
}

/* Writes magic, version @major.0 and @header into @buf, padded with blanks
 * and a newline so the data starts at a multiple of @align (0: no padding
 * and no newline), then @data_len bytes of floats 0, 0.5, 1, ... (the last
 * one possibly partial). Returns the image's length. */
static size_t build(uint8_t *buf, unsigned major, const char *header, size_t align, size_t data_len)
{
    size_t pre = 8 + length_width(major), hlen = strlen(header);
    size_t total = align ? (pre + hlen + 1 + align - 1) / align * align - pre : hlen;
    if (pre + total + data_len > IMAGE_MAX)
        abort(); /* a case too big for the buffer is a broken test */
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (uint8_t)major;
    buf[7] = 0;
    for (size_t i = 0; i < length_width(major); i++)
        buf[8 + i] = (uint8_t)(total >> (8 * i));
    memcpy(buf + pre, header, hlen);
    if (align) {
        memset(buf + pre + hlen, ' ', total - hlen - 1);
        buf[pre + total - 1] = '\n';
    }
    for (size_t i = 0; i < data_len; i++) {
        float f = (float)(i / sizeof(float)) * 0.5f;
        buf[pre + total + i] = ((const uint8_t *)&f)[i % sizeof(float)];
    }
    return pre + total + data_len;
}

/* ==== header cases ==================================================== */

static const struct npy_case {
    const char *name;
    unsigned major; /* format version major.0 */
    const char *header;
    size_t align;        /* data offset multiple: 64 as numpy writes, 16 before 1.9, 0 none */
    size_t data_len;     /* bytes after the header */
    uint64_t rows, cols; /* when accepted */
    const char *err;     /* fragment of the error text; NULL when accepted */
} cases[] = {
    /* accepted */
    {"numpy 1.0", 1, F4("(3, 2)"), 64, 24, 3, 2, NULL},
    {"numpy 2.0", 2, F4("(3, 2)"), 64, 24, 3, 2, NULL},
    {"numpy 3.0", 3, F4("(3, 2)"), 64, 24, 3, 2, NULL},
    {"numpy before 1.9 aligned to 16", 1, F4("(1, 3)"), 16, 12, 1, 3, NULL},
    {"no rows", 1, F4("(0, 4)"), 64, 0, 0, 4, NULL},
    {"python 2 long ints", 1, F4("(2L, 1L)"), 64, 8, 2, 1, NULL},
    {"keys in any order, double quotes, no trailing comma", 1,
     "{\"shape\": (1, 2), \"fortran_order\": False, \"descr\": \"<f4\"}", 64, 8, 1, 2, NULL},
    {"blanks between all tokens", 1,
     "{ 'descr' :\t'<f4' , 'fortran_order' : False ,\r\n 'shape' : ( 2 , 2 , ) , }", 64, 16, 2, 2,
     NULL},

    /* dtypes */
    {"float64", 1, HDR("'<f8'", "False", "(2, 2)"), 64, 32, 0, 0, "dtype '<f8' is not float32"},
    {"big-endian float32", 1, HDR("'>f4'", "False", "(2, 2)"), 64, 16, 0, 0,
     "dtype '>f4' is not float32 ('<f4')"},
    {"bytes", 1, HDR("'|u1'", "False", "(2, 2)"), 64, 4, 0, 0, "dtype '|u1' is not float32"},
    {"structured dtype", 1, HDR("[('a', '<f4')]", "False", "(2,)"), 64, 8, 0, 0,
     "structured dtypes are not supported"},
    {"non-ASCII dtype", 3, HDR("'<f4\xc3\xa9'", "False", "(1, 1)"), 64, 4, 0, 0,
     "dtype '<f4\xc3\xa9' is not float32"},
    {"control byte in the dtype, escaped", 1, HDR("'<f\x01'", "False", "(1, 1)"), 64, 4, 0, 0,
     "dtype '<f\\x01' is not float32"},
    {"over-long dtype", 1, HDR("'<f4aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'", "False", "(1, 1)"),
     64, 4, 0, 0, "string '<f4aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' is too long"},

    /* order */
    {"fortran order", 1, HDR("'<f4'", "True", "(2, 3)"), 64, 24, 0, 0,
     "fortran_order arrays are not supported"},
    {"fortran_order not a boolean", 1, HDR("'<f4'", "Truest", "(2, 3)"), 64, 24, 0, 0,
     "'fortran_order' must be True or False"},

    /* shapes */
    {"1-D", 1, F4("(6,)"), 64, 24, 0, 0, "shape (6,) is not 2-D"},
    {"0-D", 1, F4("()"), 64, 4, 0, 0, "shape () is not 2-D"},
    {"3-D", 1, F4("(1, 2, 3)"), 64, 24, 0, 0, "shape (1, 2, 3) is not 2-D"},
    {"more dimensions than are listed", 1,
     F4("(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, "
        "1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)"),
     64, 4, 0, 0, ", ...) is not 2-D"},
    {"no columns", 1, F4("(4, 0)"), 64, 0, 0, 0, "shape (4, 0) has no columns"},
    {"size product overflows 64 bits", 1, F4("(4611686018427387904, 4)"), 64, 0, 0, 0,
     "shape (4611686018427387904, 4) is too large"},
    {"both dimensions 2^32", 1, F4("(4294967296, 4294967296)"), 64, 0, 0, 0, "is too large"},
    {"dimension over 64 bits", 1, F4("(18446744073709551616, 1)"), 64, 0, 0, 0,
     "a dimension in 'shape' is too large"},
    {"largest dimension, then too big for the file", 1, F4("(18446744073709551615, 1)"), 64, 0, 0,
     0, "is too large"},
    {"negative dimension", 1, F4("(-1, 2)"), 64, 0, 0, 0,
     "'shape' must be a tuple of non-negative integers"},
    {"shape is a list", 1, F4("[3, 2]"), 64, 24, 0, 0, "'shape' must be a tuple"},
    {"shape without commas", 1, F4("(3 2)"), 64, 24, 0, 0, "malformed 'shape' tuple"},

    /* the dict */
    {"missing key", 1, "{'descr': '<f4', 'fortran_order': False}", 64, 0, 0, 0,
     "'shape' is missing"},
    {"empty dict", 1, "{}", 64, 0, 0, 0, "'descr' is missing"},
    {"repeated key", 1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1, 1)}",
     64, 4, 0, 0, "'descr' appears twice"},
    {"unknown key", 1, "{'descr': '<f4', 'dtype': 1}", 64, 4, 0, 0, "unexpected key 'dtype'"},
    {"non-ASCII key", 3, "{'d\xc3\xa9scr': '<f4'}", 64, 4, 0, 0, "unexpected key 'd\xc3\xa9scr'"},
    {"newline in a key, escaped", 1, "{'a\nb': 1}", 64, 0, 0, 0, "unexpected key 'a\\nb'"},
    {"unquoted key", 1, "{descr: '<f4'}", 64, 0, 0, 0, "expected a quoted string"},
    {"unterminated string", 1, "{'descr", 64, 0, 0, 0, "unterminated or escaped string"},
    {"escape in a string", 1, HDR("'<f\\x34'", "False", "(1, 1)"), 64, 4, 0, 0,
     "unterminated or escaped string"},
    {"missing colon", 1, "{'descr' '<f4'}", 64, 0, 0, 0, "expected ':' after 'descr'"},
    {"missing comma", 1, "{'descr': '<f4' 'shape': (1, 1)}", 64, 0, 0, 0,
     "expected ',' or '}' after an entry"},
    {"not a dict", 1, "['descr', '<f4']", 64, 0, 0, 0, "header is not a dict literal"},
    {"text after the dict", 1, F4("(1, 1)") " x", 64, 4, 0, 0, "unexpected text after the dict"},
    {"unclosed dict", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1),", 64, 4, 0, 0,
     "expected a quoted string"},

    /* the data */
    {"truncated data", 1, F4("(3, 2)"), 64, 20, 0, 0,
     "file is 148 bytes, header says 152 (shape (3, 2))"},
    {"data past the matrix", 1, F4("(3, 2)"), 64, 28, 0, 0, "file is 156 bytes, header says 152"},
    {"data not 4-byte aligned", 1, F4("(1, 1)"), 0, 4, 0, 0,
     "array data starts at offset 69, not a multiple of 4"},
};

static void test_header_cases(void)
{
    _Alignas(64) static uint8_t buf[IMAGE_MAX];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct npy_case *c = &cases[i];
        size_t len = build(buf, c->major, c->header, c->align, c->data_len);
        struct npy_view v = {0};
        struct err e = {0};
        int rc = npy_parse(buf, len, &v, &e);
        fprintf(stderr, "  %s: %s\n", c->name, rc == 0 ? "accepted" : e.msg);
        if (c->err != NULL) {
            CHECK_RC(rc, ERR_FORMAT);
            CHECK_STR_HAS(e.msg, c->err);
            continue;
        }
        CHECK_OK(rc);
        CHECK(v.rows == c->rows && v.cols == c->cols);
        CHECK((const uint8_t *)v.data == buf + len - c->data_len);
        for (uint64_t k = 0; k < v.rows * v.cols; k++)
            CHECK(v.data[k] == (float)k * 0.5f);
    }
}

/* ==== the preamble ==================================================== */

static void test_magic_and_version(void)
{
    static const struct {
        const char *bytes;
        size_t len;
        const char *err;
    } bad[] = {
        {"", 0, "not a .npy file (no \\x93NUMPY magic)"},
        {"\x93NUMPY\x01", 7, "no \\x93NUMPY magic"},
        {"\x93NUMPX\x01\x00\x00\x00", 10, "no \\x93NUMPY magic"},
        {"PK\x03\x04\x14\x00\x00\x00\x08\x00", 10, "no \\x93NUMPY magic"}, /* an .npz */
        {"\x93NUMPY\x00\x00\x00\x00", 10, "version 0.0 is not supported (1.0-3.0)"},
        {"\x93NUMPY\x04\x00\x00\x00\x00\x00", 12, "version 4.0 is not supported"},
        {"\x93NUMPY\x01\x01\x00\x00", 10, "version 1.1 is not supported"},
        {"\x93NUMPY\x01\x00", 8, "file is 8 bytes, too short for a .npy header"},
        {"\x93NUMPY\x01\x00\x00", 9, "file is 9 bytes, too short"},
        {"\x93NUMPY\x02\x00\x00\x00", 10, "file is 10 bytes, too short"},
        {"\x93NUMPY\x01\x00\x00\x00", 10, "header is not a dict literal"},
        {"\x93NUMPY\x01\x00\x40\x00{}", 12, "file is 12 bytes, header says its header alone is 64"},
        {"\x93NUMPY\x02\x00\xff\xff\xff\xff{}", 14, "header alone is 4294967295"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct npy_view v;
        struct err e = {0};
        CHECK_RC(npy_parse(bad[i].bytes, bad[i].len, &v, &e), ERR_FORMAT);
        CHECK_STR_HAS(e.msg, bad[i].err);
    }
}

/* The exact bytes numpy 1.24 writes for numpy.arange(2, dtype='<f4').reshape(1, 2). */
static void test_numpy_bytes(void)
{
    static const char header[] = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }";
    _Alignas(64) uint8_t buf[136];
    memcpy(buf, "\x93NUMPY\x01\x00\x76\x00", 10);
    memset(buf + 10, ' ', 117);
    memcpy(buf + 10, header, sizeof(header) - 1);
    buf[127] = '\n';
    const float data[2] = {0.0f, 1.0f};
    memcpy(buf + 128, data, sizeof(data));
    struct npy_view v;
    CHECK_OK(npy_parse(buf, sizeof(buf), &v, NULL));
    CHECK(v.rows == 1 && v.cols == 2 && v.data[0] == 0.0f && v.data[1] == 1.0f);
}

/* ==== npy_map ========================================================= */

static char tmpdir[64];

/* The files the tests write, removed at the end even when a test failed. */
static const char *const tmp_files[] = {"m.npy", "f8.npy", "empty.npy"};

static const char *tmp_path(const char *name)
{
    static char path[128];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    return path;
}

static int write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return -errno;
    size_t n = fwrite(data, 1, len, f);
    return fclose(f) == 0 && n == len ? 0 : -EIO;
}

static void test_map_file(void)
{
    _Alignas(64) static uint8_t buf[IMAGE_MAX];
    size_t len = build(buf, 1, F4("(2, 3)"), 64, 24);
    const char *path = tmp_path("m.npy");
    CHECK_OK(write_file(path, buf, len));
    struct npy_file f;
    struct err e = {0};
    int rc = npy_map(path, &f, &e);
    struct npy_view v = f.view;
    int values_ok = rc == 0 && v.rows == 2 && v.cols == 3 && v.data[5] == 2.5f;
    npy_unmap(&f);
    CHECK_OK(rc);
    CHECK(values_ok);
    CHECK(f.map == NULL);
}

static void test_map_refusals(void)
{
    _Alignas(64) static uint8_t buf[IMAGE_MAX];
    size_t len = build(buf, 1, HDR("'<f8'", "False", "(1, 1)"), 64, 8);
    CHECK_OK(write_file(tmp_path("f8.npy"), buf, len));
    CHECK_OK(write_file(tmp_path("empty.npy"), "", 0));
    static const struct {
        const char *name;
        int rc;
        const char *err;
    } refusals[] = {
        {"f8.npy", ERR_FORMAT, "f8.npy: dtype '<f8' is not float32"},
        {"empty.npy", ERR_FORMAT, "empty.npy: empty file, not a .npy file"},
        {"", ERR_FORMAT, ": not a regular file"}, /* the directory itself */
        {"missing.npy", -ENOENT, "missing.npy: No such file or directory"},
    };
    for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
        struct npy_file f;
        struct err e = {0};
        int rc = npy_map(tmp_path(refusals[i].name), &f, &e);
        npy_unmap(&f);
        CHECK_RC(rc, refusals[i].rc);
        CHECK_STR_HAS(e.msg, tmpdir);
        CHECK_STR_HAS(e.msg, refusals[i].err);
    }
}

int main(int argc, char **argv)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/recsys-test-XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    static const struct check_case all[] = {
        CHECK_CASE(test_header_cases), CHECK_CASE(test_magic_and_version),
        CHECK_CASE(test_numpy_bytes),  CHECK_CASE(test_map_file),
        CHECK_CASE(test_map_refusals),
    };
    int rc = check_main(argc, argv, all, sizeof(all) / sizeof(all[0]));
    for (size_t i = 0; i < sizeof(tmp_files) / sizeof(tmp_files[0]); i++)
        unlink(tmp_path(tmp_files[i]));
    rmdir(tmpdir);
    return rc;
}
