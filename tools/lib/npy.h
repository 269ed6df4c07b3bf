/*
 * npy: NumPy .npy files holding a 2-D float32 matrix, read in place.
 *
 * The format (numpy.lib.format): the magic "\x93NUMPY", a major and minor
 * version byte, the header length (uint16 LE in version 1.0, uint32 LE in
 * 2.0 and 3.0), then the header: a Python dict literal with exactly the keys
 * 'descr', 'fortran_order' and 'shape', padded with blanks and a newline,
 * then the raw array data. Only what trainers export for factor matrices is
 * accepted: dtype '<f4', C order, two dimensions. Anything else is refused
 * with a message naming the problem, never converted, so a matrix reaches
 * the model bit for bit as the trainer wrote it.
 *
 * npy_parse() is pure (bytes in, view out) so it can be tested without
 * files; npy_map() maps a file read-only and parses it, so a large matrix is
 * never copied.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* A matrix in someone else's memory. */
struct npy_view {
    const float *data; /* rows x cols, row-major; borrowed from the parsed buffer */
    uint64_t rows;
    uint64_t cols;
};

/* npy_parse - validate the .npy file image @buf of @len bytes.
 * @out: receives the view; out->data points into @buf (4-byte aligned when
 *       @buf is).
 * Returns 0, or ERR_FORMAT with the problem in @e (without a file name):
 * bad magic or version, a malformed header, a dtype other than '<f4',
 * fortran_order True, a shape that is not 2-D, a size that does not match
 * the header, a data offset that leaves the floats unaligned. */
int npy_parse(const void *buf, size_t len, struct npy_view *out, struct err *e);

/* Bytes of the header npy_header writes: a multiple of 64, so the data
 * that follows it is aligned for any vector load. */
#define NPY_HEADER_BYTES 128

/* npy_header - the version 1.0 header of a @rows x @cols '<f4' C-order
 * matrix, padded to NPY_HEADER_BYTES, into @out (NPY_HEADER_BYTES bytes):
 * written before the rows, it makes a file npy_parse (and NumPy) reads.
 * For the benches, which hand matrices to Python peers. */
void npy_header(char out[NPY_HEADER_BYTES], uint64_t rows, uint32_t cols);

/* A mapped .npy file. */
struct npy_file {
    void *map;  /* the whole file, read-only; NULL when empty or not mapped */
    size_t len; /* bytes mapped */
    struct npy_view view;
};

/* npy_map - map @path read-only and parse it.
 * @f: receives the mapping; release it with npy_unmap (also after a failure).
 * Returns 0, ERR_FORMAT or -errno, with "<path>: <problem>" in @e. */
int npy_map(const char *path, struct npy_file *f, struct err *e);

/* npy_unmap - release the mapping; every view of it becomes invalid. */
void npy_unmap(struct npy_file *f);
