/*
 * bench/score: the scan kernels against the memory floor and OpenBLAS.
 *
 * For every factor shape, catalog size and dimension asked for, a model
 * file of items of that shape is written with the model writer, with its
 * bf16 and int8 copies, and mapped with the model reader, as the daemon
 * maps it; each method below answers top-N queries for query vectors of the
 * same shape, one thread:
 *
 *   floor       a plain SIMD read of the f32 matrix (a sum of every float):
 *               no scan of that matrix can be faster than this
 *   sgemv+heap  the obvious baseline: OpenBLAS cblas_sgemv for all scores,
 *               then a size-N heap over them
 *   <kernel>    score_topn with each kernel this CPU runs (portable, avx2,
 *               avx512): the fused scan the daemon uses
 *   <kernel> bf16, <kernel> int8
 *               score_topn_reduced over the copy, with that kernel (or the
 *               reduced kernel it borrows, named in the header): the scan of
 *               fewer bytes, scoring in f32 the rows that could reach the
 *               top N
 *   ... xP      the same scan split into P parts over the daemon's helper
 *               pool (--helpers, default one per other CPU, at most 3), for
 *               the last kernel listed: what --scan-threads buys
 *
 * The methods take turns, one query each, round after round, so a change
 * in the machine's load (other tenants, frequency) hits them all alike; a
 * method's figure is the median of its rounds. GB/s is the matrix's bytes
 * over that time, "of floor" the floor's time over the method's (the share
 * of the machine's read bandwidth it reaches), "vs sgemv" the baseline's
 * time over the method's.
 *
 * "vs f32" is the same kernel's f32 time over the method's. Every kernel,
 * f32 or reduced, must return the same rows and scores (bit for bit) as the
 * first one in every round, so the reduced scans' recall is 1; the
 * baseline must return nearly the same rows (its summation order differs,
 * so near-ties may swap) on the first round. The program fails if either
 * does not hold. "f32 rows" is the median number of rows a reduced scan
 * scored exactly in f32: the rows whose reduced score came within the
 * copy's error bound of the N-th exact score so far. It was the
 * "fallback" column: the scans that kept 4N+16 candidates, could not prove
 * them complete and scanned every f32 row after the reduced copy.
 *
 * The shapes (--factors), one table each. Random factors are the easy case
 * for the reduced scans: scores spread evenly, so few rows come within the
 * bound of the N-th. Trained factors are not like that: many rows score
 * within the bound of the N-th, and each of them is scored in f32:
 *
 *   random      every entry uniform in [-1, 1), items and queries
 *   clustered   items and queries within 5% (of its norm) of one of 48
 *               random centres: a cluster's rows nearly tie
 *   skewed      as implicit ALS gives: a shared popularity direction times
 *               |N(0, 1)| plus a random part, scaled to a log-normal norm
 *               (sigma 1), so a few rows are far longer than the rest (and
 *               make the bound, which takes the worst row, wide); queries
 *               lean 0.5 to 1.5 toward popularity
 *   demo        recsys-model demo's planted topics, items and users, drawn
 *               by tools/lib/demo_factors as the demo draws them (not the
 *               same vectors: the demo draws its catalog from the stream
 *               too)
 *
 * --save DIR keeps, for each matrix, its items and queries as .npy files
 * (DIR/<shape>-<rows>-<dim>-items.npy, -queries.npy) and every method's
 * median time per query in DIR/score.csv, so that bench/score_faiss.py
 * can time FAISS on the very same vectors beside these figures.
 *
 * Usage: score [--rows 10000,100000,1000000] [--dims 64,128] [--top 100]
 *              [--runs 31] [--kernels portable,avx2,avx512] [--helpers H]
 *              [--factors random,clustered,skewed,demo] [--save DIR]
 */
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "engine/scan.h"
#include "engine/score.h"
#include "engine/split.h"
#include "model/model.h"
#include "model/writer.h"
#include "timing.h"
#include "tools/lib/demo_factors.h"
#include "tools/lib/npy.h"

enum {
    MAX_LIST = 8,                       /* values per list flag */
    QUERIES = 64,                       /* distinct random query vectors per matrix */
    MIN_BYTES = 1 << 30,                /* rounds read at least this much per method */
    MAX_ROUNDS = 2001,                  /* ... up to this many rounds */
    MAX_METHODS = 2 + 3 * MAX_LIST + 3, /* floor, baseline, kernels x types, split scans */
    PAGE = 4096,
    CENTRES = 48,  /* clustered: a few dozen tastes, as a catalog's genres */
    DEMO_SEED = 1, /* demo: recsys-model demo's default --seed */
};

/* clustered: each item is its centre plus isotropic noise of this share of
 * the centre's norm, close enough that a cluster's scores nearly tie. */
#define CLUSTER_NOISE 0.05
/* skewed: the sigma of log(row norm). At 1, one row in a thousand is about
 * 20 times the median's length (e^3.1), as the most popular items are in
 * implicit ALS factors. */
#define SKEW_SIGMA 1.0

/* ---- the machine ------------------------------------------------------- */

/* Copies into @out the value of the first /proc/cpuinfo line that starts
 * with @key and a tab ("?" if none). */
static void cpuinfo(const char *key, char *out, size_t size)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[256];
    snprintf(out, size, "?");
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        size_t len = strlen(key);
        char *colon = strchr(line, ':');
        if (strncmp(line, key, len) != 0 || line[len] != '\t' || colon == NULL)
            continue;
        snprintf(out, size, "%.*s", (int)strcspn(colon + 2, "\n"), colon + 2);
        break;
    }
    if (f != NULL)
        fclose(f);
}

/* The CPU by name, family and model: a VM may mask the name, and family
 * and model still tell the generation. */
static void print_cpu(void)
{
    char name[128], family[16], model[16], mhz[32];
    cpuinfo("model name", name, sizeof(name));
    cpuinfo("cpu family", family, sizeof(family));
    cpuinfo("model", model, sizeof(model));
    cpuinfo("cpu MHz", mhz, sizeof(mhz));
    printf("cpu:       %s (family %s, model %s), %s MHz, %ld cores online\n", name, family, model,
           mhz, sysconf(_SC_NPROCESSORS_ONLN));
}

/* The machine's load average: the figures are only as quiet as the machine. */
static void print_load(const char *label)
{
    char line[128] = "?\n";
    FILE *f = fopen("/proc/loadavg", "r");
    if (f != NULL) {
        if (fgets(line, sizeof(line), f) == NULL)
            snprintf(line, sizeof(line), "?\n");
        fclose(f);
    }
    printf("%s %s", label, line);
}

/* ---- data -------------------------------------------------------------- */

static uint64_t rng_state = 0x853c49e6748fea9bULL;

static uint64_t rng_next(void)
{
    /* xorshift64*: fast enough to fill a gigabyte, and reproducible. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dULL;
}

static float rng_float(void) /* uniform in [-1, 1) */
{
    return (float)(rng_next() >> 40) / (float)(1 << 23) - 1.0f;
}

/* Approximately standard normal (Box-Muller); libm's last bits may vary
 * between machines, which moves the figures by nothing measurable. */
static double rng_normal(void)
{
    double u1 = (double)(rng_next() >> 11) * 0x1.0p-53, u2 = (double)(rng_next() >> 11) * 0x1.0p-53;
    return sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * M_PI * u2);
}

/* ---- factor shapes ----------------------------------------------------- */

/* What one matrix's items and queries are drawn around: each shape fills
 * in its own part when the matrix is made. */
struct shape_state {
    uint32_t dim;
    float *centre;                       /* clustered: CENTRES x dim */
    float *popular;                      /* skewed: the unit popularity direction */
    struct demo_factors *demo;           /* demo: the planted topics */
    struct demo_factors_rng demo_rng[2]; /* demo: the items' stream, the users' */
};

struct shape {
    const char *name, *what;
    int (*init)(struct shape_state *s);            /* NULL: draws nothing up front */
    void (*item)(struct shape_state *s, float *v); /* one row: dim floats */
    void (*query)(struct shape_state *s, float *v);
};

static void random_row(struct shape_state *s, float *v)
{
    for (uint32_t c = 0; c < s->dim; c++)
        v[c] = rng_float();
}

static double norm(const float *v, uint32_t dim)
{
    double sum = 0;
    for (uint32_t c = 0; c < dim; c++)
        sum += (double)v[c] * v[c];
    return sqrt(sum);
}

static int clustered_init(struct shape_state *s)
{
    s->centre = malloc((size_t)CENTRES * s->dim * sizeof(*s->centre));
    if (s->centre == NULL)
        return -ENOMEM;
    for (size_t k = 0; k < (size_t)CENTRES * s->dim; k++)
        s->centre[k] = (float)rng_normal();
    return 0;
}

/* Items and queries alike: a random centre plus noise. */
static void clustered_row(struct shape_state *s, float *v)
{
    const float *centre = s->centre + (size_t)(rng_next() % CENTRES) * s->dim;
    double sd = CLUSTER_NOISE * norm(centre, s->dim) / sqrt(s->dim);
    for (uint32_t c = 0; c < s->dim; c++)
        v[c] = (float)(centre[c] + sd * rng_normal());
}

static int skewed_init(struct shape_state *s)
{
    s->popular = malloc(s->dim * sizeof(*s->popular));
    if (s->popular == NULL)
        return -ENOMEM;
    for (uint32_t c = 0; c < s->dim; c++)
        s->popular[c] = (float)rng_normal();
    double n = norm(s->popular, s->dim);
    for (uint32_t c = 0; c < s->dim; c++)
        s->popular[c] = (float)(s->popular[c] / n);
    return 0;
}

/* The popularity direction times @weight plus a random part of norm about
 * 1, into @v. */
static void popular_plus_random(const struct shape_state *s, double weight, float *v)
{
    for (uint32_t c = 0; c < s->dim; c++)
        v[c] = (float)(weight * s->popular[c] + rng_normal() / sqrt(s->dim));
}

/* An item: as much popularity as taste on average (|N(0, 1)| of it), and a
 * log-normal length. */
static void skewed_item(struct shape_state *s, float *v)
{
    popular_plus_random(s, fabs(rng_normal()), v);
    double scale = exp(SKEW_SIGMA * rng_normal()) / norm(v, s->dim);
    for (uint32_t c = 0; c < s->dim; c++)
        v[c] = (float)(v[c] * scale);
}

/* A query: every user leans toward what is popular, some more than others. */
static void skewed_query(struct shape_state *s, float *v)
{
    popular_plus_random(s, 1.0 + rng_float() / 2, v);
}

/* recsys-model demo's streams: topics 1, items 2, users 3. */
static int demo_init(struct shape_state *s)
{
    struct demo_factors_rng topics;
    demo_factors_seed(&topics, DEMO_SEED, 1);
    demo_factors_seed(&s->demo_rng[0], DEMO_SEED, 2);
    demo_factors_seed(&s->demo_rng[1], DEMO_SEED, 3);
    return demo_factors_create(s->dim, &topics, &s->demo);
}

static void demo_item(struct shape_state *s, float *v)
{
    uint32_t topic;
    double appeal;
    demo_factors_item(s->demo, &s->demo_rng[0], v, &topic, &appeal);
}

static void demo_query(struct shape_state *s, float *v)
{
    uint32_t liked[DEMO_FACTORS_LIKED_MAX];
    demo_factors_user(s->demo, &s->demo_rng[1], v, liked);
}

static const struct shape shapes[] = {
    {"random", "items and queries uniform in [-1, 1) per entry", NULL, random_row, random_row},
    {"clustered", "items and queries within 5% of 48 random centres", clustered_init, clustered_row,
     clustered_row},
    {"skewed", "a popularity direction plus a random part, log-normal norms (sigma 1)", skewed_init,
     skewed_item, skewed_query},
    {"demo", "recsys-model demo's planted topics, items and users", demo_init, demo_item,
     demo_query},
};

static void shape_free(struct shape_state *s)
{
    free(s->centre);
    free(s->popular);
    demo_factors_destroy(s->demo);
}

/* QUERIES x stride floats: a query of @shape in each row's first dim
 * floats, then zeros. Page-aligned, on 4 KiB pages like the daemon's map
 * of a model file (huge pages would spare the scan most of its TLB misses,
 * which the daemon does not get). */
static float *make_queries(const struct shape *shape, struct shape_state *s, uint32_t stride)
{
    size_t bytes = ((size_t)QUERIES * stride * sizeof(float) + PAGE - 1) / PAGE * PAGE;
    float *m = aligned_alloc(PAGE, bytes);
    if (m == NULL)
        return NULL;
    madvise(m, bytes, MADV_NOHUGEPAGE);
    memset(m, 0, bytes);
    for (size_t r = 0; r < QUERIES; r++)
        shape->query(s, m + r * stride);
    return m;
}

/* ---- options ----------------------------------------------------------- */

struct opts {
    uint32_t rows[MAX_LIST], dims[MAX_LIST];
    size_t nrows, ndims;
    const struct shape *shapes[MAX_LIST];
    size_t nshapes;
    char shape_list[256];
    uint32_t top, runs, helpers;
    const char *kernels[MAX_LIST];
    size_t nkernels;
    char kernel_list[256];
    const char *save; /* --save DIR, or NULL */
};

static int parse_u32_list(const char *arg, uint32_t *out, size_t *count)
{
    *count = 0;
    for (const char *p = arg; *p != '\0' && *count < MAX_LIST;) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(p, &end, 10);
        if (errno != 0 || end == p || v == 0 || v > UINT32_MAX || (*end != ',' && *end != '\0'))
            return -1;
        out[(*count)++] = (uint32_t)v;
        p = *end == ',' ? end + 1 : end;
    }
    return *count > 0 ? 0 : -1;
}

static int parse_kernels(const char *arg, struct opts *o)
{
    snprintf(o->kernel_list, sizeof(o->kernel_list), "%s", arg);
    o->nkernels = 0;
    for (char *save, *k = strtok_r(o->kernel_list, ",", &save); k != NULL && o->nkernels < MAX_LIST;
         k = strtok_r(NULL, ",", &save))
        o->kernels[o->nkernels++] = k;
    return o->nkernels > 0 ? 0 : -1;
}

static int parse_shapes(const char *arg, struct opts *o)
{
    snprintf(o->shape_list, sizeof(o->shape_list), "%s", arg);
    o->nshapes = 0;
    for (char *save, *name = strtok_r(o->shape_list, ",", &save);
         name != NULL && o->nshapes < MAX_LIST; name = strtok_r(NULL, ",", &save)) {
        size_t i = 0;
        while (i < sizeof(shapes) / sizeof(shapes[0]) && strcmp(shapes[i].name, name) != 0)
            i++;
        if (i == sizeof(shapes) / sizeof(shapes[0]))
            return -1;
        o->shapes[o->nshapes++] = &shapes[i];
    }
    return o->nshapes > 0 ? 0 : -1;
}

static int usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s [--rows N,...] [--dims D,...] [--top N] [--runs R] [--kernels K,...]\n"
            "          [--helpers H] [--factors F,...] [--save DIR]\n"
            "  --rows     catalog sizes (default 10000,100000,1000000)\n"
            "  --dims     dimensions (default 64,128)\n"
            "  --top      results per query (default 100)\n"
            "  --runs     fewest rounds per measurement (default 31; more on small\n"
            "             catalogs, so each method reads at least 1 GiB)\n"
            "  --kernels  scoring kernels to run (default portable,avx2,avx512; those\n"
            "             this CPU lacks are skipped)\n"
            "  --helpers  split-scan helper threads (default: CPUs - 1, at most 3)\n"
            "  --factors  shapes of the items and queries (default\n"
            "             random,clustered,skewed,demo)\n"
            "  --save     keep each matrix, its queries (.npy) and the medians\n"
            "             (score.csv) in DIR, for bench/score_faiss.py\n",
            prog);
    return 2;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){.rows = {10000, 100000, 1000000},
                       .nrows = 3,
                       .dims = {64, 128},
                       .ndims = 2,
                       .top = 100,
                       .runs = 31};
    size_t one;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    o->helpers = cpus <= 1 ? 0 : cpus - 1 > 3 ? 3 : (uint32_t)(cpus - 1);
    int rc = parse_kernels("portable,avx2,avx512", o);
    if (rc == 0)
        rc = parse_shapes("random,clustered,skewed,demo", o);
    for (int i = 1; i < argc && rc == 0; i += 2) {
        const char *flag = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (value == NULL)
            rc = -1;
        else if (strcmp(flag, "--rows") == 0)
            rc = parse_u32_list(value, o->rows, &o->nrows);
        else if (strcmp(flag, "--dims") == 0)
            rc = parse_u32_list(value, o->dims, &o->ndims);
        else if (strcmp(flag, "--top") == 0)
            rc = parse_u32_list(value, &o->top, &one);
        else if (strcmp(flag, "--runs") == 0)
            rc = parse_u32_list(value, &o->runs, &one);
        else if (strcmp(flag, "--factors") == 0)
            rc = parse_shapes(value, o);
        else if (strcmp(flag, "--kernels") == 0)
            rc = parse_kernels(value, o);
        else if (strcmp(flag, "--helpers") == 0)
            rc = strcmp(value, "0") == 0 ? (o->helpers = 0, 0)
                                         : parse_u32_list(value, &o->helpers, &one);
        else if (strcmp(flag, "--save") == 0)
            o->save = value;
        else
            rc = -1;
    }
    return rc;
}

/* ---- the catalog: a model file ----------------------------------------- */

/* A model of @rows items of @shape (no users) at @path, with both copies. */
static int write_catalog(const char *path, const struct shape *shape, struct shape_state *s,
                         uint32_t rows)
{
    uint32_t dim = s->dim;
    enum { ID_BYTES = 12 };
    float *factors = malloc((size_t)rows * dim * sizeof(float));
    char *id_bytes = malloc((size_t)rows * ID_BYTES);
    const char **ids = malloc(rows * sizeof(*ids));
    struct model_item_attr *attrs = calloc(rows, sizeof(*attrs));
    static const char *const category[] = {"all"};
    int rc = -ENOMEM;
    if (factors != NULL && id_bytes != NULL && ids != NULL && attrs != NULL) {
        for (uint32_t i = 0; i < rows; i++) {
            shape->item(s, factors + (size_t)i * dim);
            ids[i] = id_bytes + (size_t)i * ID_BYTES;
            snprintf(id_bytes + (size_t)i * ID_BYTES, ID_BYTES, "i%u", i);
            attrs[i].on_sale = 1;
        }
        struct model_src src = {
            .dim = dim,
            .item_count = rows,
            .item_factors = factors,
            .item_ids = ids,
            .attrs = attrs,
            .categories = category,
            .category_count = 1,
            .version = "bench",
            .quantize = 1u << MODEL_ELEM_BF16 | 1u << MODEL_ELEM_INT8,
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

/* ---- methods ----------------------------------------------------------- */

/* One matrix and what the methods share. */
struct bench {
    const float *matrix;
    uint32_t rows, dim, stride, top;
    const float *queries; /* QUERIES x stride */
    float *scores;        /* rows: sgemv's output */
    struct score_hit *hits;
    struct score_reduced copy[SCORE_ELEM_COUNT];
    struct score_hit *scratch; /* top per part */
    enum score_elem elem;      /* what run_kernel scans */
    unsigned parts;            /* and in how many parts */
    uint32_t rescored;         /* rows run_kernel's last reduced scan scored in f32 */
};

/* The floor's sums land here, so its reads are not optimised away. */
static volatile float sink;

struct method {
    char name[32];
    const char *kernel;   /* score_topn with this kernel; NULL: run() */
    enum score_elem elem; /* and this copy */
    unsigned parts;       /* in this many parts */
    uint32_t (*run)(struct bench *b, const float *query);
    double us[MAX_ROUNDS];
    struct score_hit last[1024]; /* this round's hits, for the cross-check */
    uint32_t last_count;
    double rescored[MAX_ROUNDS]; /* rows scored in f32 in each round */
};

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static float sum_avx512(const float *p, size_t n)
{
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < n; i += 64) {
        a0 = _mm512_add_ps(a0, _mm512_load_ps(p + i));
        a1 = _mm512_add_ps(a1, _mm512_load_ps(p + i + 16));
        a2 = _mm512_add_ps(a2, _mm512_load_ps(p + i + 32));
        a3 = _mm512_add_ps(a3, _mm512_load_ps(p + i + 48));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

__attribute__((target("avx2"))) static float sum_avx2(const float *p, size_t n)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < n; i += 32) {
        a0 = _mm256_add_ps(a0, _mm256_load_ps(p + i));
        a1 = _mm256_add_ps(a1, _mm256_load_ps(p + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_load_ps(p + i + 16));
        a3 = _mm256_add_ps(a3, _mm256_load_ps(p + i + 24));
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
    float lanes[8], sum = 0;
    _mm256_storeu_ps(lanes, s);
    for (int i = 0; i < 8; i++)
        sum += lanes[i];
    return sum;
}
#endif

static float sum_portable(const float *p, size_t n)
{
    float acc[16] = {0};
    for (size_t i = 0; i < n; i += 16)
        for (size_t j = 0; j < 16; j++)
            acc[j] += p[i + j];
    float sum = 0;
    for (size_t j = 0; j < 16; j++)
        sum += acc[j];
    return sum;
}

/* A plain read of @n floats (a multiple of 64): their sum. */
struct reader {
    const char *name;
    int (*supported)(void); /* NULL: runs anywhere */
    float (*sum)(const float *p, size_t n);
};

#if defined(__x86_64__)
static int has_avx512(void)
{
    return __builtin_cpu_supports("avx512f");
}

static int has_avx2(void)
{
    return __builtin_cpu_supports("avx2");
}
#endif

/* Widest first: the floor reads with the widest vectors the CPU has, which
 * keep the most bytes in flight (on the machines measured, AVX-512 reads
 * reach a fifth more bandwidth from DRAM than AVX2 reads). */
static const struct reader readers[] = {
#if defined(__x86_64__)
    {"avx512", has_avx512, sum_avx512},
    {"avx2", has_avx2, sum_avx2},
#endif
    {"portable", NULL, sum_portable},
};

static const struct reader *floor_reader(void)
{
    size_t i = 0;
    while (readers[i].supported != NULL && !readers[i].supported())
        i++;
    return &readers[i];
}

/* Rows are a multiple of 16 floats, so the matrix is a multiple of 64
 * floats whenever rows is a multiple of 4; the floor reads the whole
 * multiple of 64 below the end. */
static uint32_t run_floor(struct bench *b, const float *query)
{
    sink += floor_reader()->sum(b->matrix, (size_t)b->rows * b->stride / 64 * 64);
    return 0;
}

/* ---- baseline: sgemv, then a heap of the best top (worst at the root) ---- */

static int worse(struct score_hit a, struct score_hit b)
{
    return a.score < b.score || (a.score == b.score && a.index > b.index);
}

static void sift_down(struct score_hit *h, uint32_t n, uint32_t i)
{
    for (;;) {
        uint32_t w = i, l = 2 * i + 1, r = l + 1;
        if (l < n && worse(h[l], h[w]))
            w = l;
        if (r < n && worse(h[r], h[w]))
            w = r;
        if (w == i)
            return;
        struct score_hit t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

static int cmp_best_first(const void *pa, const void *pb)
{
    const struct score_hit *a = pa, *b = pb;
    return worse(*b, *a) - worse(*a, *b);
}

static uint32_t run_sgemv(struct bench *b, const float *query)
{
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)b->rows, (int)b->dim, 1.0f, b->matrix,
                (int)b->stride, query, 1, 0.0f, b->scores, 1);
    uint32_t n = b->top < b->rows ? b->top : b->rows;
    for (uint32_t i = 0; i < n; i++)
        b->hits[i] = (struct score_hit){i, b->scores[i]};
    for (uint32_t i = n / 2; i-- > 0;)
        sift_down(b->hits, n, i);
    for (uint32_t i = n; i < b->rows; i++)
        if (b->scores[i] > b->hits[0].score) {
            b->hits[0] = (struct score_hit){i, b->scores[i]};
            sift_down(b->hits, n, 0);
        }
    qsort(b->hits, n, sizeof(*b->hits), cmp_best_first);
    return n;
}

static uint32_t run_kernel(struct bench *b, const float *query)
{
    const struct score_scan scan = {
        .query = query,
        .matrix = b->matrix,
        .rows = b->rows,
        .stride = b->stride,
        .dim = b->dim,
    };
    if (b->elem == SCORE_ELEM_F32)
        return score_topn_split(&scan, b->top, NULL, NULL, b->parts, b->scratch, b->hits);
    return score_topn_reduced(&scan, &b->copy[b->elem], b->top, NULL, NULL, b->parts, b->scratch,
                              b->hits, &b->rescored);
}

/* ---- measurement ------------------------------------------------------- */

/* The methods to run: floor, baseline, and each kernel in @o on each copy. */
static size_t make_methods(const struct opts *o, struct method *m)
{
    static const char *const suffix[SCORE_ELEM_COUNT] = {"", " bf16", " int8"};
    size_t count = 0;
    m[count++] = (struct method){.name = "floor", .run = run_floor};
    m[count++] = (struct method){.name = "sgemv+heap", .run = run_sgemv};
    for (int elem = 0; elem < SCORE_ELEM_COUNT; elem++)
        for (size_t i = 0; i < o->nkernels; i++) {
            m[count] = (struct method){
                .kernel = o->kernels[i], .elem = elem, .parts = 1, .run = run_kernel};
            snprintf(m[count].name, sizeof(m[count].name), "%s%s", o->kernels[i], suffix[elem]);
            count++;
        }
    for (int elem = 0; elem < SCORE_ELEM_COUNT && o->helpers > 0 && o->nkernels > 0; elem++) {
        const char *k = o->kernels[o->nkernels - 1];
        m[count] =
            (struct method){.kernel = k, .elem = elem, .parts = o->helpers + 1, .run = run_kernel};
        snprintf(m[count].name, sizeof(m[count].name), "%s%s x%u", k, suffix[elem], o->helpers + 1);
        count++;
    }
    return count;
}

/* Drops from @o the kernels this CPU or build lacks, saying so once. */
static void drop_missing_kernels(struct opts *o)
{
    size_t kept = 0;
    for (size_t i = 0; i < o->nkernels; i++) {
        struct err e;
        if (score_select_kernel(o->kernels[i], &e) == 0)
            o->kernels[kept++] = o->kernels[i];
        else
            printf("skipping:  %s\n", e.msg);
    }
    o->nkernels = kept;
}

static void run_once(struct bench *b, struct method *m, const float *query, double *us,
                     double *rescored)
{
    if (m->kernel != NULL)
        score_select_kernel(m->kernel, NULL);
    b->elem = m->elem;
    b->parts = m->parts;
    b->rescored = 0;
    double t0 = timing_now_us();
    uint32_t count = m->run(b, query);
    *us = timing_now_us() - t0;
    *rescored = b->rescored;
    if (count <= sizeof(m->last) / sizeof(m->last[0])) {
        memcpy(m->last, b->hits, count * sizeof(*b->hits));
        m->last_count = count;
    }
}

/* In every round the kernels must agree with the first kernel bit for bit;
 * in the first, the baseline must share nearly all rows with it. */
static int cross_check(const struct method *m, size_t count, uint32_t round)
{
    const struct method *ref = NULL, *blas = NULL;
    int bad = 0;
    for (size_t i = 0; i < count; i++) {
        if (m[i].kernel == NULL) {
            blas = m[i].run == run_sgemv ? &m[i] : blas;
            continue;
        }
        if (ref == NULL)
            ref = &m[i];
        else if (m[i].last_count != ref->last_count ||
                 memcmp(m[i].last, ref->last, ref->last_count * sizeof(*ref->last)) != 0) {
            fprintf(stderr, "error: kernel %s disagrees with %s in round %u\n", m[i].name,
                    ref->name, round);
            bad = 1;
        }
    }
    if (ref == NULL || blas == NULL || round > 0)
        return bad;
    uint32_t shared = 0;
    for (uint32_t i = 0; i < ref->last_count; i++)
        for (uint32_t j = 0; j < blas->last_count; j++)
            shared += ref->last[i].index == blas->last[j].index;
    if (shared + ref->last_count / 50 < ref->last_count) {
        fprintf(stderr, "error: sgemv+heap shares %u of %u rows with %s\n", shared, ref->last_count,
                ref->name);
        bad = 1;
    }
    return bad;
}

/* Bytes a method reads per query: the copy it scans. */
static double method_bytes(const struct bench *b, const struct method *m)
{
    return (double)b->rows * b->stride *
           score_elem_bytes(m->kernel != NULL ? m->elem : SCORE_ELEM_F32);
}

/* The index of the f32 method of @m's kernel. */
static size_t f32_of(const struct method *all, size_t count, const struct method *m)
{
    size_t i = 0;
    while (i < count &&
           !(all[i].kernel == m->kernel && all[i].elem == SCORE_ELEM_F32 && all[i].parts == 1))
        i++;
    return i;
}

/* "of floor" compares bandwidths: a method reading fewer bytes than the
 * floor can be faster than it and still below 100%. */
static void report(const struct bench *b, struct method *m, size_t count, uint32_t rounds)
{
    double floor_bw = 0, blas_us = 0;
    double med[MAX_METHODS];
    for (size_t i = 0; i < count; i++) {
        med[i] = timing_median(m[i].us, rounds);
        if (m[i].run == run_floor)
            floor_bw = method_bytes(b, &m[i]) / med[i];
        if (m[i].run == run_sgemv)
            blas_us = med[i];
    }
    for (size_t i = 0; i < count; i++) {
        double bw = method_bytes(b, &m[i]) / med[i];
        printf("%8u %4u %7.1f %-16s %10.1f %7.2f %8.0f%% %8.2fx", b->rows, b->dim,
               method_bytes(b, &m[i]) / 1e6, m[i].name, med[i], bw / 1e3, 100 * bw / floor_bw,
               blas_us / med[i]);
        if (m[i].kernel != NULL)
            printf(" %7.2fx %8.0f", med[f32_of(m, count, &m[i])] / med[i],
                   timing_median(m[i].rescored, rounds));
        else
            printf(" %8s %8s", "", "");
        printf(" %6u\n", rounds);
    }
}

/* The copies of @m as the daemon's recommend passes them to the scan. */
static void take_copies(struct bench *b, const struct model *m)
{
    double exact = model_item_copy(m, MODEL_ELEM_F32)->max_norm;
    for (int elem = SCORE_ELEM_BF16; elem < SCORE_ELEM_COUNT; elem++) {
        const struct model_item_copy *c = model_item_copy(m, elem);
        b->copy[elem] = (struct score_reduced){.elem = elem,
                                               .matrix = c->rows,
                                               .row_scale = c->scale,
                                               .blocked = c->blocked,
                                               .max_norm = c->max_norm,
                                               .max_error = c->max_error,
                                               .exact_max_norm = exact};
    }
}

/* ---- --save ------------------------------------------------------------ */

/* @n rows of @dim floats, @stride apart, as DIR/<name>.npy. */
static int save_npy(const char *dir, const char *name, const float *rows, uint64_t n, uint32_t dim,
                    uint32_t stride)
{
    char path[4096], header[NPY_HEADER_BYTES];
    snprintf(path, sizeof(path), "%s/%s.npy", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return -errno;
    npy_header(header, n, dim);
    fwrite(header, 1, sizeof(header), f);
    for (uint64_t r = 0; r < n; r++)
        fwrite(rows + r * stride, sizeof(float), dim, f);
    return fclose(f) == 0 ? 0 : -EIO;
}

/* The matrix, the queries and each method's median for bench/score_faiss.py. */
static int save_case(const struct opts *o, const struct bench *b, const char *shape,
                     struct method *m, size_t count, uint32_t rounds)
{
    char name[256], path[4096];
    snprintf(name, sizeof(name), "%s-%u-%u-items", shape, b->rows, b->dim);
    int rc = save_npy(o->save, name, b->matrix, b->rows, b->dim, b->stride);
    snprintf(name, sizeof(name), "%s-%u-%u-queries", shape, b->rows, b->dim);
    if (rc == 0)
        rc = save_npy(o->save, name, b->queries, QUERIES, b->dim, b->stride);
    snprintf(path, sizeof(path), "%s/score.csv", o->save);
    FILE *f = rc == 0 ? fopen(path, "a") : NULL;
    if (f == NULL)
        return rc != 0 ? rc : -errno;
    for (size_t i = 0; i < count; i++)
        fprintf(f, "%s,%u,%u,%u,%s,%.3f\n", shape, b->rows, b->dim, b->top, m[i].name,
                timing_median(m[i].us, rounds));
    return fclose(f) == 0 ? 0 : -EIO;
}

/* Benchmarks one matrix: every method, round after round. */
static int bench_one(const struct opts *o, const char *dir, const struct shape *shape,
                     uint32_t rows, uint32_t dim)
{
    uint32_t stride = (dim + 15) / 16 * 16;
    struct bench b = {.rows = rows, .dim = dim, .stride = stride, .top = o->top};
    struct shape_state state = {.dim = dim};
    char path[4096];
    snprintf(path, sizeof(path), "%s/catalog-%s-%u-%u.lmdb", dir, shape->name, rows, dim);
    struct model *model = NULL;
    struct err e = {0};
    if ((shape->init != NULL && shape->init(&state) != 0) ||
        write_catalog(path, shape, &state, rows) != 0 || model_open(path, 1, &model, &e) != 0) {
        fprintf(stderr, "error: no %s catalog %u x %u %s\n", shape->name, rows, dim, e.msg);
        unlink(path);
        shape_free(&state);
        return -1;
    }
    /* What the daemon adds at load for the best kernel: the int8 rows
     * regrouped, which its int8 scan reads (the other kernels ignore it). */
    score_select_kernel("auto", NULL);
    scan_prepare(model);
    b.matrix = model_item_matrix(model);
    take_copies(&b, model);
    b.queries = make_queries(shape, &state, stride);
    b.scores = malloc((size_t)rows * sizeof(*b.scores));
    b.hits = malloc((size_t)o->top * sizeof(*b.hits));
    b.scratch = malloc((size_t)o->top * (o->helpers + 1) * sizeof(*b.scratch));
    static struct method m[MAX_METHODS];
    size_t count = make_methods(o, m);
    double bytes = (double)rows * stride * sizeof(float);
    uint32_t rounds = (uint32_t)fmin(MAX_ROUNDS, fmax(o->runs, MIN_BYTES / bytes));
    int rc = -1;
    if (b.queries == NULL || b.scores == NULL || b.hits == NULL || b.scratch == NULL) {
        fprintf(stderr, "error: out of memory for %u x %u\n", rows, dim);
        goto out;
    }
    int bad = 0;
    for (uint32_t r = 0; r < rounds && !bad; r++) {
        for (size_t i = 0; i < count; i++)
            run_once(&b, &m[i], b.queries + (size_t)(r % QUERIES) * stride, &m[i].us[r],
                     &m[i].rescored[r]);
        bad = cross_check(m, count, r);
    }
    if (!bad) {
        report(&b, m, count, rounds);
        rc = o->save != NULL ? save_case(o, &b, shape->name, m, count, rounds) : 0;
        if (rc != 0)
            fprintf(stderr, "error: --save %s: %s\n", o->save, strerror(-rc));
    }
out:
    model_close(model);
    unlink(path);
    shape_free(&state);
    free((void *)b.queries);
    free(b.scores);
    free(b.hits);
    free(b.scratch);
    return rc;
}

static void print_header(int argc, char **argv)
{
    printf("command:  ");
    for (int i = 0; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\n");
    print_cpu();
    const char *coretype = getenv("OPENBLAS_CORETYPE");
    printf("openblas:  core %s, config %s, OPENBLAS_CORETYPE=%s, 1 thread\n",
           openblas_get_corename(), openblas_get_config(), coretype ? coretype : "(unset)");
    score_select_kernel("auto", NULL);
    printf("kernel:    auto selects %s (bf16: %s, int8: %s); the floor reads with %s\n",
           score_kernel_name(), score_reduced_kernel_name(SCORE_ELEM_BF16),
           score_reduced_kernel_name(SCORE_ELEM_INT8), floor_reader()->name);
    printf("memory:    a model file mapped by the model reader, as the daemon maps it\n");
    print_load("load:     ");
}

int main(int argc, char **argv)
{
    struct opts o;
    if (parse_opts(argc, argv, &o) != 0 || o.top > 1024)
        return usage(argv[0]);
    openblas_set_num_threads(1);
    struct err e = {0};
    if (split_start(o.helpers, &e) != 0) {
        fprintf(stderr, "error: %s\n", e.msg);
        return 1;
    }
    print_header(argc, argv);
    drop_missing_kernels(&o);
    char dir[] = "/tmp/recsys-bench-score-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    int rc = 0;
    for (size_t f = 0; f < o.nshapes; f++) {
        printf("\nfactors:   %s: %s\n", o.shapes[f]->name, o.shapes[f]->what);
        printf("%8s %4s %7s %-16s %10s %7s %9s %9s %8s %8s %6s\n", "rows", "dim", "MB", "method",
               "us/query", "GB/s", "of floor", "vs sgemv", "vs f32", "f32 rows", "rounds");
        for (size_t r = 0; r < o.nrows; r++)
            for (size_t d = 0; d < o.ndims; d++)
                rc |= bench_one(&o, dir, o.shapes[f], o.rows[r], o.dims[d]);
    }
    rmdir(dir);
    split_stop();
    print_load("\nload after:");
    return rc ? 1 : 0;
}
