/*
 * fuzz_npy: npy_parse on arbitrary bytes.
 *
 * Promises checked (npy.h): a refusal is ERR_FORMAT with a one-line
 * message; an accepted file's matrix lies inside the buffer, ends exactly
 * at its end, has columns, and is 4-byte aligned when the buffer is.
 */
#include <stdint.h>

#include "fuzz.h"
#include "tools/lib/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct npy_view v;
    struct err e = {0};
    int rc = npy_parse(data, size, &v, &e);
    if (rc != 0) {
        FUZZ_ASSERT(rc == ERR_FORMAT);
        fuzz_assert_one_line(e.msg);
        return 0;
    }
    const uint8_t *begin = (const uint8_t *)v.data;
    FUZZ_ASSERT(v.cols > 0);
    FUZZ_ASSERT(begin >= data && begin <= data + size);
    FUZZ_ASSERT((size_t)(data + size - begin) / sizeof(float) / v.cols == v.rows);
    FUZZ_ASSERT((size_t)(data + size - begin) == v.rows * v.cols * sizeof(float));
    FUZZ_ASSERT((uintptr_t)data % sizeof(float) != 0 || (uintptr_t)begin % sizeof(float) == 0);
    /* Touch every element: a sanitizer build reports a view past the input. */
    volatile float sink = 0.0f;
    for (uint64_t i = 0; i < v.rows * v.cols; i++)
        sink += v.data[i];
    (void)sink;
    return 0;
}
