/*
 * bench/score: the scan kernels against the memory floor and OpenBLAS.
 *
 * For every catalog size and dimension asked for, one item matrix is built
 * in memory (64-byte aligned rows, as a model file lays them out) and each
 * method below answers top-N queries for random query vectors, one thread:
 *
 *   floor       a plain SIMD read of the same bytes (a sum of every float):
 *               no scan of the matrix can be faster than this
 *   sgemv+heap  the obvious baseline: OpenBLAS cblas_sgemv for all scores,
 *               then a size-N heap over them
 *   <kernel>    score_topn with each kernel this CPU runs (portable, avx2,
 *               avx512): the fused scan the daemon uses
 *
 * The methods take turns, one query each, round after round, so a change
 * in the machine's load (other tenants, frequency) hits them all alike; a
 * method's figure is the median of its rounds. GB/s is the matrix's bytes
 * over that time, "of floor" the floor's time over the method's (the share
 * of the machine's read bandwidth it reaches), "vs sgemv" the baseline's
 * time over the method's.
 *
 * Every kernel must return the same rows and scores (bit for bit) as the
 * portable one, and the baseline nearly the same rows (its summation order
 * differs, so near-ties may swap); the program checks both on its first
 * round and fails if they do not hold.
 *
 * Usage: score [--rows 10000,100000,1000000] [--dims 64,128] [--top 100]
 *              [--runs 31] [--kernels portable,avx2,avx512]
 */
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "score.h"

enum {
    MAX_LIST = 8,               /* values per list flag */
    QUERIES = 64,               /* distinct random query vectors per matrix */
    MIN_BYTES = 1 << 30,        /* rounds read at least this much per method */
    MAX_ROUNDS = 2001,          /* ... up to this many rounds */
    MAX_METHODS = 2 + MAX_LIST, /* floor, baseline, kernels */
    PAGE = 4096,
};

/* ---- options ----------------------------------------------------------- */

struct opts {
    uint32_t rows[MAX_LIST], dims[MAX_LIST];
    size_t nrows, ndims;
    uint32_t top, runs;
    const char *kernels[MAX_LIST];
    size_t nkernels;
    char kernel_list[256];
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

static int usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s [--rows N,...] [--dims D,...] [--top N] [--runs R] [--kernels K,...]\n"
            "  --rows     catalog sizes (default 10000,100000,1000000)\n"
            "  --dims     dimensions (default 64,128)\n"
            "  --top      results per query (default 100)\n"
            "  --runs     fewest rounds per measurement (default 31; more on small\n"
            "             catalogs, so each method reads at least 1 GiB)\n"
            "  --kernels  scoring kernels to run (default portable,avx2,avx512; those\n"
            "             this CPU lacks are skipped)\n",
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
    int rc = parse_kernels("portable,avx2,avx512", o);
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
        else if (strcmp(flag, "--kernels") == 0)
            rc = parse_kernels(value, o);
        else
            rc = -1;
    }
    return rc;
}

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

/* rows x stride floats: dim random floats, then zeros. Page-aligned, on
 * 4 KiB pages like the daemon's map of a model file (huge pages would
 * spare the scan most of its TLB misses, which the daemon does not get). */
static float *make_matrix(uint32_t rows, uint32_t dim, uint32_t stride)
{
    size_t bytes = ((size_t)rows * stride * sizeof(float) + PAGE - 1) / PAGE * PAGE;
    float *m = aligned_alloc(PAGE, bytes);
    if (m == NULL)
        return NULL;
    madvise(m, bytes, MADV_NOHUGEPAGE);
    for (size_t r = 0; r < rows; r++)
        for (uint32_t c = 0; c < stride; c++)
            m[r * stride + c] = c < dim ? rng_float() : 0.0f;
    return m;
}

/* ---- methods ----------------------------------------------------------- */

/* One matrix and what the methods share. */
struct bench {
    const float *matrix;
    uint32_t rows, dim, stride, top;
    const float *queries; /* QUERIES x stride */
    float *scores;        /* rows: sgemv's output */
    struct score_hit *hits;
};

/* The floor's sums land here, so its reads are not optimised away. */
static volatile float sink;

struct method {
    const char *name;
    const char *kernel; /* score_topn with this kernel; NULL: run() */
    uint32_t (*run)(struct bench *b, const float *query);
    double us[MAX_ROUNDS];
    struct score_hit first[1024]; /* the first round's hits, for the cross-check */
    uint32_t first_count;
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
    return score_topn(&scan, b->top, NULL, NULL, b->hits);
}

/* ---- measurement ------------------------------------------------------- */

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a > b) - (a < b);
}

static double median(double *v, uint32_t n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The methods to run: floor, baseline, and each kernel in @o. */
static size_t make_methods(const struct opts *o, struct method *m)
{
    size_t count = 0;
    m[count++] = (struct method){.name = "floor", .run = run_floor};
    m[count++] = (struct method){.name = "sgemv+heap", .run = run_sgemv};
    for (size_t i = 0; i < o->nkernels; i++)
        m[count++] =
            (struct method){.name = o->kernels[i], .kernel = o->kernels[i], .run = run_kernel};
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

static uint32_t run_once(struct bench *b, struct method *m, const float *query, double *us)
{
    if (m->kernel != NULL)
        score_select_kernel(m->kernel, NULL);
    double t0 = now_us();
    uint32_t count = m->run(b, query);
    *us = now_us() - t0;
    return count;
}

/* The kernels must agree with the first kernel bit for bit, and the
 * baseline must share nearly all rows with it. */
static int cross_check(const struct method *m, size_t count)
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
        else if (m[i].first_count != ref->first_count ||
                 memcmp(m[i].first, ref->first, ref->first_count * sizeof(*ref->first)) != 0) {
            fprintf(stderr, "error: kernel %s disagrees with %s\n", m[i].name, ref->name);
            bad = 1;
        }
    }
    if (ref == NULL || blas == NULL)
        return bad;
    uint32_t shared = 0;
    for (uint32_t i = 0; i < ref->first_count; i++)
        for (uint32_t j = 0; j < blas->first_count; j++)
            shared += ref->first[i].index == blas->first[j].index;
    if (shared + ref->first_count / 50 < ref->first_count) {
        fprintf(stderr, "error: sgemv+heap shares %u of %u rows with %s\n", shared,
                ref->first_count, ref->name);
        bad = 1;
    }
    return bad;
}

static void report(const struct bench *b, struct method *m, size_t count, uint32_t rounds)
{
    double bytes = (double)b->rows * b->stride * sizeof(float), floor_us = 0, blas_us = 0;
    double med[MAX_METHODS];
    for (size_t i = 0; i < count; i++) {
        med[i] = median(m[i].us, rounds);
        if (m[i].run == run_floor)
            floor_us = med[i];
        if (m[i].run == run_sgemv)
            blas_us = med[i];
    }
    for (size_t i = 0; i < count; i++)
        printf("%8u %4u %7.1f %-11s %10.1f %7.2f %8.0f%% %8.2fx %6u\n", b->rows, b->dim,
               bytes / 1e6, m[i].name, med[i], bytes / med[i] / 1e3, 100 * floor_us / med[i],
               blas_us / med[i], rounds);
}

/* Benchmarks one matrix: every method, round after round. */
static int bench_one(const struct opts *o, uint32_t rows, uint32_t dim)
{
    uint32_t stride = (dim + 15) / 16 * 16;
    struct bench b = {.rows = rows, .dim = dim, .stride = stride, .top = o->top};
    b.matrix = make_matrix(rows, dim, stride);
    b.queries = make_matrix(QUERIES, dim, stride);
    b.scores = malloc((size_t)rows * sizeof(*b.scores));
    b.hits = malloc((size_t)o->top * sizeof(*b.hits));
    static struct method m[MAX_METHODS];
    size_t count = make_methods(o, m);
    double bytes = (double)rows * stride * sizeof(float);
    uint32_t rounds = (uint32_t)fmin(MAX_ROUNDS, fmax(o->runs, MIN_BYTES / bytes));
    int rc = -1;
    if (b.matrix == NULL || b.queries == NULL || b.scores == NULL || b.hits == NULL) {
        fprintf(stderr, "error: out of memory for %u x %u\n", rows, dim);
        goto out;
    }
    for (uint32_t r = 0; r < rounds; r++)
        for (size_t i = 0; i < count; i++) {
            uint32_t hits =
                run_once(&b, &m[i], b.queries + (size_t)(r % QUERIES) * stride, &m[i].us[r]);
            if (r == 0 && hits <= sizeof(m[i].first) / sizeof(m[i].first[0])) {
                memcpy(m[i].first, b.hits, hits * sizeof(*b.hits));
                m[i].first_count = hits;
            }
        }
    if (cross_check(m, count) == 0) {
        report(&b, m, count, rounds);
        rc = 0;
    }
out:
    free((void *)b.matrix);
    free((void *)b.queries);
    free(b.scores);
    free(b.hits);
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
    printf("kernel:    auto selects %s; the floor reads with %s\n", score_kernel_name(),
           floor_reader()->name);
    printf("memory:    4 KiB pages, as the daemon's map of a model file\n");
    print_load("load:     ");
}

int main(int argc, char **argv)
{
    struct opts o;
    if (parse_opts(argc, argv, &o) != 0 || o.top > 1024)
        return usage(argv[0]);
    openblas_set_num_threads(1);
    print_header(argc, argv);
    drop_missing_kernels(&o);
    printf("\n%8s %4s %7s %-11s %10s %7s %9s %9s %6s\n", "rows", "dim", "MB", "method", "us/query",
           "GB/s", "of floor", "vs sgemv", "rounds");
    int rc = 0;
    for (size_t r = 0; r < o.nrows; r++)
        for (size_t d = 0; d < o.ndims; d++)
            rc |= bench_one(&o, o.rows[r], o.dims[d]);
    print_load("\nload after:");
    return rc ? 1 : 0;
}
