/*
 * fuzz_ids: ids_read on arbitrary bytes, handed over as a file.
 *
 * Promises checked (ids.h): a refusal is ERR_INVALID with a one-line
 * message naming the file; an accepted file has at most one id per line of
 * input, each 1..MODEL_ID_MAX bytes without NUL or newline, and ids_find
 * maps every id back to its row.
 */
#include <string.h>

#include "fuzz.h"
#include "model/model.h"
#include "scratch.h"
#include "tools/lib/ids.h"

static void check_ids(const struct ids *l, size_t lines)
{
    const char *const *v = ids_array(l);
    FUZZ_ASSERT(ids_count(l) <= lines);
    for (uint32_t i = 0; i < ids_count(l); i++) {
        size_t len = strlen(v[i]);
        FUZZ_ASSERT(len >= 1 && len <= MODEL_ID_MAX && memchr(v[i], '\n', len) == NULL);
        uint32_t row = UINT32_MAX;
        FUZZ_ASSERT(ids_find(l, v[i], len, &row) == 0 && row == i);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = scratch_file(data, size);
    size_t lines = 1;
    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n';

    struct ids *l = NULL;
    struct err e = {0};
    int rc = ids_read(path, &l, &e);
    if (rc == 0) {
        check_ids(l, lines);
    } else {
        FUZZ_ASSERT(rc == ERR_INVALID && l == NULL);
        FUZZ_ASSERT(strncmp(e.msg, path, strlen(path)) == 0);
        fuzz_assert_one_line(e.msg);
    }
    ids_free(l);
    return 0;
}
