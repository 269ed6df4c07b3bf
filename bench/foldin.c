/*
 * bench/foldin: what the implicit-ALS fold-in costs (engine/foldin.h).
 *
 *   foldin_user     median microseconds of one call, for users of 1, 20 and
 *                   100 interactions (random distinct items, weights 1 to
 *                   4) at each --dims factor count, on a catalog of
 *                   --user-items items; the arena is reset after every
 *                   call, as a worker resets it after every request
 *   foldin_prepare  median seconds to compute the Gram of --prepare-items
 *                   items x --prepare-dim factors, each run on a freshly
 *                   opened model (the Gram is set once per model); the
 *                   model file was just written, so its pages are cached,
 *                   as the reloader's validation leaves them
 *
 * Items are uniform in [-1, 1), no bias column. OpenBLAS runs on one thread,
 * as the daemon runs it (server/main.c), unless --blas-threads says more.
 *
 * Usage: foldin [--dims 32,64,128] [--user-items 100000] [--calls 2001]
 *               [--prepare-items 100000,1000000] [--prepare-dim 64]
 *               [--prepare-runs 5] [--blas-threads 1]
 */
#include <cblas.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/arena.h"
#include "engine/foldin.h"
#include "model/model.h"
#include "model/writer.h"
#include "timing.h"

#define LIST_MAX 8

struct opts {
    uint32_t dims[LIST_MAX];
    size_t ndims;
    uint32_t prepare_items[LIST_MAX];
    size_t nprepare;
    uint32_t user_items, calls, prepare_dim, prepare_runs, blas_threads;
};

/* Interactions per user timed. */
static const uint32_t user_sizes[] = {1, 20, 100};

static uint64_t rng_state = 0x9c1f2a6d5e3b4c71ULL;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static float rng_float(void) /* uniform in [-1, 1) */
{
    return (float)((double)(rng_next() >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static int parse_list(const char *arg, uint32_t *out, size_t *count)
{
    char *end;
    *count = 0;
    do {
        unsigned long v = strtoul(arg, &end, 10);
        if (end == arg || v == 0 || v > UINT32_MAX || *count == LIST_MAX)
            return -1;
        out[(*count)++] = (uint32_t)v;
        arg = end + 1;
    } while (*end == ',');
    return *end == '\0' ? 0 : -1;
}

static int parse_u32(const char *arg, uint32_t *out)
{
    size_t n;
    return parse_list(arg, out, &n) != 0 || n != 1 ? -1 : 0;
}

static int usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s [--dims 32,64,128] [--user-items N] [--calls N]\n"
            "       [--prepare-items 100000,1000000] [--prepare-dim D] [--prepare-runs N]\n"
            "       [--blas-threads N]\n",
            prog);
    return 2;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){.dims = {32, 64, 128},
                       .ndims = 3,
                       .prepare_items = {100000, 1000000},
                       .nprepare = 2,
                       .user_items = 100000,
                       .calls = 2001,
                       .prepare_dim = 64,
                       .prepare_runs = 5,
                       .blas_threads = 1};
    /* Each option takes a value: a list (count != NULL) or one number. */
    const struct {
        const char *name;
        uint32_t *values;
        size_t *count;
    } table[] = {
        {"--dims", o->dims, &o->ndims},
        {"--prepare-items", o->prepare_items, &o->nprepare},
        {"--user-items", &o->user_items, NULL},
        {"--calls", &o->calls, NULL},
        {"--prepare-dim", &o->prepare_dim, NULL},
        {"--prepare-runs", &o->prepare_runs, NULL},
        {"--blas-threads", &o->blas_threads, NULL},
    };
    for (int i = 1; i < argc; i += 2) {
        size_t t = 0;
        while (t < sizeof(table) / sizeof(table[0]) && strcmp(argv[i], table[t].name) != 0)
            t++;
        if (t == sizeof(table) / sizeof(table[0]) || i + 1 == argc)
            return -1;
        int rc = table[t].count != NULL ? parse_list(argv[i + 1], table[t].values, table[t].count)
                                        : parse_u32(argv[i + 1], table[t].values);
        if (rc != 0)
            return -1;
    }
    for (size_t d = 0; d < o->ndims; d++)
        if (o->dims[d] > FOLDIN_FACTORS_MAX)
            return -1;
    return o->user_items < 100 ? -1 : 0;
}

/* A model of @items random items of @dim factors (no users) at @path. */
static int write_catalog(const char *path, uint32_t items, uint32_t dim)
{
    enum { ID_BYTES = 12 };
    float *factors = malloc((size_t)items * dim * sizeof(float));
    char *id_bytes = malloc((size_t)items * ID_BYTES);
    const char **ids = malloc(items * sizeof(*ids));
    struct model_item_attr *attrs = calloc(items, sizeof(*attrs));
    static const char *const category[] = {"all"};
    int rc = -ENOMEM;
    if (factors != NULL && id_bytes != NULL && ids != NULL && attrs != NULL) {
        for (size_t i = 0; i < (size_t)items * dim; i++)
            factors[i] = rng_float();
        for (uint32_t i = 0; i < items; i++) {
            ids[i] = id_bytes + (size_t)i * ID_BYTES;
            snprintf(id_bytes + (size_t)i * ID_BYTES, ID_BYTES, "i%u", i);
        }
        struct model_src src = {
            .dim = dim,
            .item_count = items,
            .item_factors = factors,
            .item_ids = ids,
            .attrs = attrs,
            .categories = category,
            .category_count = 1,
            .version = "bench",
        };
        struct err e = {0};
        rc = model_write(path, &src, &e);
        if (rc != 0)
            fprintf(stderr, "error: %s\n", e.msg);
    }
    free(factors);
    free(id_bytes);
    free(ids);
    free(attrs);
    return rc;
}

static int open_model(const char *path, struct model **m)
{
    struct err e = {0};
    int rc = model_open(path, 1, m, &e);
    if (rc != 0)
        fprintf(stderr, "error: %s\n", e.msg);
    return rc;
}

/* Median microseconds of foldin_user at @dim factors, one line per user
 * size. */
static int bench_user(const struct opts *o, const char *path, uint32_t dim)
{
    struct model *m = NULL;
    struct arena *a = NULL;
    struct err e = {0};
    uint32_t max = user_sizes[sizeof(user_sizes) / sizeof(user_sizes[0]) - 1];
    struct foldin_item *items = malloc(max * sizeof(*items));
    double *us = malloc(o->calls * sizeof(*us));
    float *x = NULL;
    int rc = items == NULL || us == NULL ? -ENOMEM : 0;
    if (rc == 0)
        rc = write_catalog(path, o->user_items, dim);
    if (rc == 0)
        rc = open_model(path, &m);
    if (rc == 0)
        rc = foldin_prepare(m, &e);
    if (rc == 0)
        rc = arena_create(256 << 10, &a);
    if (rc == 0 && (x = malloc(model_stride(m) * sizeof(float))) == NULL)
        rc = -ENOMEM;
    for (size_t s = 0; rc == 0 && s < sizeof(user_sizes) / sizeof(user_sizes[0]); s++) {
        uint32_t n = user_sizes[s];
        for (uint32_t c = 0; rc == 0 && c < o->calls; c++) {
            /* n items spaced user_items / 100 apart from a random
             * start: distinct, and as far apart in memory as a user's
             * items would be. */
            uint32_t start = (uint32_t)(rng_next() % o->user_items);
            for (uint32_t k = 0; k < n; k++)
                items[k] = (struct foldin_item){
                    .item =
                        (uint32_t)((start + (uint64_t)k * (o->user_items / max)) % o->user_items),
                    .weight = 1.0f + (float)(rng_next() % 4)};
            double t0 = timing_now_us();
            rc = foldin_user(m, items, n, a, x, &e);
            us[c] = timing_now_us() - t0;
            arena_reset(a);
        }
        if (rc == 0)
            printf("foldin_user     f=%-4u n=%-4u %9.2f us  (median of %u calls)\n", dim, n,
                   timing_median(us, o->calls), o->calls);
    }
    if (rc != 0)
        fprintf(stderr, "error: f=%u: %s (%s)\n", dim, e.msg, err_strerror(rc));
    free(x);
    arena_destroy(a);
    model_close(m);
    unlink(path);
    free(items);
    free(us);
    return rc;
}

/* Median seconds of foldin_prepare over @items x o->prepare_dim. */
static int bench_prepare(const struct opts *o, const char *path, uint32_t items)
{
    double *s = malloc(o->prepare_runs * sizeof(*s));
    struct err e = {0};
    int rc = s == NULL ? -ENOMEM : write_catalog(path, items, o->prepare_dim);
    for (uint32_t r = 0; rc == 0 && r < o->prepare_runs; r++) {
        struct model *m = NULL;
        rc = open_model(path, &m);
        if (rc != 0)
            break;
        double t0 = timing_now_us();
        rc = foldin_prepare(m, &e);
        s[r] = (timing_now_us() - t0) / 1e6;
        if (rc == 0 && !foldin_ready(m))
            rc = ERR_INTERNAL;
        model_close(m);
    }
    if (rc == 0)
        printf("foldin_prepare  %u x %u %9.4f s  (median of %u runs)\n", items, o->prepare_dim,
               timing_median(s, o->prepare_runs), o->prepare_runs);
    else
        fprintf(stderr, "error: prepare %u items: %s (%s)\n", items, e.msg, err_strerror(rc));
    unlink(path);
    free(s);
    return rc;
}

int main(int argc, char **argv)
{
    struct opts o;
    if (parse_opts(argc, argv, &o) != 0)
        return usage(argv[0]);
    openblas_set_num_threads((int)o.blas_threads);
    char dir[] = "/tmp/recsys-bench-foldin-XXXXXX", path[64];
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof(path), "%s/model.lmdb", dir);
    printf("items %u, OpenBLAS threads %u\n", o.user_items, o.blas_threads);
    int rc = 0;
    for (size_t d = 0; d < o.ndims && rc == 0; d++)
        rc = bench_user(&o, path, o.dims[d]);
    for (size_t p = 0; p < o.nprepare && rc == 0; p++)
        rc = bench_prepare(&o, path, o.prepare_items[p]);
    rmdir(dir);
    return rc ? 1 : 0;
}
