/*
 * fuzz_export: an ALS export directory (model/EXPORT.md) whose users part
 * is the input, read as `recsys-model import --from-spark` reads it.
 *
 * The manifest and the items part are fixed and valid; the manifest says
 * the users part holds the input's size, and as many rows as it has lines,
 * so the reading goes past the directory checks into the lines, the ids
 * and the factors.
 *
 * Promises checked (export.h): a refusal is ERR_INVALID with a one-line
 * message; accepted, there is one id per line, each found again at its
 * row, and every factor is finite and equal to strtof's reading of its
 * text (decimal.h: correctly rounded).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"
#include "scratch.h"
#include "tools/lib/export.h"
#include "tools/lib/ids.h"

#define FACTORS 3

static const char items[] = "i1\t0.5\t-1.0E-5\t2\n";

static void write_export(const char *dir, const uint8_t *data, size_t size)
{
    char path[4096], manifest[1024];
    size_t lines = 0;
    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n';
    snprintf(path, sizeof(path), "%s/users", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/items", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/purchases", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/users/part-0", dir);
    FUZZ_ASSERT(scratch_write(path, data, size) == 0);
    snprintf(path, sizeof(path), "%s/items/part-0", dir);
    FUZZ_ASSERT(scratch_write(path, items, sizeof(items) - 1) == 0);
    snprintf(path, sizeof(path), "%s/purchases/part-0", dir);
    FUZZ_ASSERT(scratch_write(path, "", 0) == 0);
    int n = snprintf(
        manifest, sizeof(manifest),
        "{\"format\": \"recsys-als-export\", \"format_version\": 1, \"factors\": %d,"
        " \"model_version\": \"f\", \"created_at\": 0, \"data_end_unix_ms\": 0,"
        " \"training\": {\"regularization\": 0.1, \"regularization_scaling\": \"per-interaction\","
        " \"alpha\": 1, \"view_weight\": 1},"
        " \"tables\": {\"users\": {\"rows\": %zu, \"parts\": [{\"file\": \"part-0\", \"bytes\": "
        "%zu}]},"
        " \"items\": {\"rows\": 1, \"parts\": [{\"file\": \"part-0\", \"bytes\": %zu}]},"
        " \"purchases\": {\"rows\": 0, \"parts\": [{\"file\": \"part-0\", \"bytes\": 0}]}}}",
        FACTORS, lines, size, sizeof(items) - 1);
    snprintf(path, sizeof(path), "%s/recsys-export.json", dir);
    FUZZ_ASSERT(scratch_write(path, manifest, (size_t)n) == 0);
}

/* The factors of each line, read again with strtof. */
static void check_users(const struct ids *users, const float *m, const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    for (uint32_t r = 0; r < ids_count(users); r++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p)),
                   *tab = memchr(p, '\t', (size_t)(nl - p));
        FUZZ_ASSERT(nl != NULL && tab != NULL);
        FUZZ_ASSERT((size_t)(tab - p) == strlen(ids_array(users)[r]));
        uint32_t row = UINT32_MAX;
        FUZZ_ASSERT(ids_find(users, p, (size_t)(tab - p), &row) == 0 && row == r);
        const char *q = tab + 1;
        for (int j = 0; j < FACTORS; j++) {
            char buf[128];
            size_t n = 0;
            while (q + n < nl && q[n] != '\t' && n + 1 < sizeof(buf))
                n++;
            memcpy(buf, q, n);
            buf[n] = '\0';
            float want = strtof(buf, NULL), got = m[r * FACTORS + j];
            FUZZ_ASSERT(isfinite(got) && memcmp(&want, &got, sizeof(got)) == 0);
            q += n + 1;
        }
        p = nl + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *dir = scratch_path("export");
    mkdir(dir, 0755);
    write_export(dir, data, size);
    struct export *x = NULL;
    struct ids *users = NULL, *items_ids = NULL;
    float *item_m = NULL, *user_m = NULL;
    struct err e = {0};
    int rc = export_open(dir, &x, &e);
    FUZZ_ASSERT(rc == 0);
    rc = export_read_items(x, &items_ids, &item_m, &e);
    FUZZ_ASSERT(rc == 0);
    rc = export_read_user_ids(x, &users, &e);
    if (rc == 0) {
        user_m = calloc(ids_count(users) + 1, FACTORS * sizeof(float));
        FUZZ_ASSERT(user_m != NULL);
        rc = export_fill_users(x, users, user_m, FACTORS, &e);
    }
    if (rc == 0) {
        check_users(users, user_m, data, size);
    } else {
        FUZZ_ASSERT(rc == ERR_INVALID);
        fuzz_assert_one_line(e.msg);
    }
    free(user_m);
    free(item_m);
    ids_free(users);
    ids_free(items_ids);
    export_close(x);
    return 0;
}
