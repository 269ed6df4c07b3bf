/*
 * score: the portable kernel, the top-N heap and the choice of kernel.
 *
 * score_dot keeps SCORE_LANES separate partial sums instead of one: the
 * additions into different lanes do not depend on each other, so GCC at -O2
 * turns the inner loop into packed multiplies and adds (four SSE registers on
 * baseline x86-64) without -ffast-math, and the summation order, hence the
 * result, is fixed by the source rather than by the compiler. It is the
 * canonical order of score_kernel.h written out in C, and the portable
 * kernel is score_dot applied row by row. The unroll pragmas keep the
 * sixteen sums in registers (left alone, GCC -O2 stores them back to the
 * stack after every block) and turn the final pairwise reduction into a few
 * packed adds.
 *
 * The heap of the best n has the worst at its root. Rows arrive in ascending
 * index order, so a later row with a score equal to the root's is worse than
 * it (ties go to the lower index): a row enters only if its score is
 * strictly greater than the root's.
 */
#include "engine/score.h"

#include <assert.h>
#include <math.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "engine/score_kernel.h"
#include "engine/split.h"

float score_dot(const float *a, const float *b, uint32_t len)
{
    float acc[SCORE_LANES] = {0};
    size_t blocks = len / SCORE_LANES, tail = len % SCORE_LANES;
    for (size_t k = 0; k < blocks; k++, a += SCORE_LANES, b += SCORE_LANES)
#pragma GCC unroll 16
        for (size_t j = 0; j < SCORE_LANES; j++)
            acc[j] += a[j] * b[j];
    for (size_t j = 0; j < tail; j++)
        acc[j] += a[j] * b[j];
#pragma GCC unroll 4
    for (size_t width = SCORE_LANES / 2; width > 0; width /= 2)
#pragma GCC unroll 8
        for (size_t j = 0; j < width; j++)
            acc[j] += acc[j + width];
    return acc[0];
}

/* Floats the scan multiplies per row: whole lane blocks, which the zero
 * padding makes equal to a dot product over dim (see score_dot). */
static uint32_t padded_len(const struct score_scan *s)
{
    return (s->dim + SCORE_LANES - 1) / SCORE_LANES * SCORE_LANES;
}

static float row_score(const struct score_scan *s, uint32_t len, uint32_t index)
{
    float dot = score_dot(s->query, s->matrix + (size_t)index * s->stride, len);
    if (s->row_scale == NULL)
        return dot;
    return dot * s->query_scale * s->row_scale[index];
}

float score_row(const struct score_scan *s, uint32_t index)
{
    assert(index < s->rows);
    return row_score(s, padded_len(s), index);
}

/* ---- heap of the best n, worst at the root ----------------------------- */

/* Whether @a ranks below @b. Without branches: on random data which of two
 * kept rows is worse is a coin toss, and a mispredicted branch costs more
 * than both compares. */
static int worse(struct score_hit a, struct score_hit b)
{
    return (a.score < b.score) | ((a.score == b.score) & (a.index > b.index));
}

/* Moves @hit from the hole at @i up while it is worse than the parent. */
static void sift_up(struct score_hit *h, uint32_t i, struct score_hit hit)
{
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!worse(hit, h[parent]))
            break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = hit;
}

/* Replaces the root of the @n-entry heap with @hit: the hole left at the
 * root moves down along the worse child until @hit is worse than both
 * children. The choice of child is a compare whose outcome indexes without
 * a branch; the loop's exit is the one unpredictable branch per call.
 * (Measured against a plain sift-down and a bottom-up one: 15-20% faster
 * per update at n = 100 and 1000.) */
static void replace_root(struct score_hit *h, uint32_t n, struct score_hit hit)
{
    uint32_t i = 0;
    for (uint32_t child = 1; child < n; child = 2 * i + 1) {
        child += child + 1 < n && worse(h[child + 1], h[child]);
        if (!worse(h[child], hit))
            break;
        h[i] = h[child];
        i = child;
    }
    h[i] = hit;
}

/* Heap sort: moving the worst to the end each time leaves the best first. */
static void sort_best_first(struct score_hit *h, uint32_t n)
{
    for (uint32_t end = n; end > 1; end--) {
        struct score_hit last = h[end - 1];
        h[end - 1] = h[0];
        replace_root(h, end - 1, last);
    }
}

/* The largest float at most @score - @bound: rounding the difference to
 * nearest could move the threshold above it, and let a row through the
 * kernels' test that the proof says cannot enter. */
static float threshold_below(float score, double bound)
{
    double t = (double)score - bound;
    float f = (float)t;
    return (double)f > t ? nextafterf(f, -INFINITY) : f;
}

/* Row @index, offered by an approximate score, to be scored exactly
 * (score.h: score_topn_reduced). A row the kernel passes over has an
 * approximate score at most the threshold, so an exact one below the
 * root's; the threshold lags while rows wait, which only lets more
 * through. */
static void offer_exact(struct score_best *b, uint32_t index)
{
    b->pending[b->pending_count++] = index;
    if (b->pending_count == SCORE_PENDING)
        score_best_flush(b);
}

/* Keeps @hit, which beats the root or finds room, if the filter accepts
 * it; returns whether the heap is then full, its root the new worst. */
static int keep_hit(struct score_best *b, struct score_hit hit)
{
    if (b->keep != NULL && !b->keep(b->filter_ctx, hit.index))
        return 0;
    if (b->count < b->n) {
        sift_up(b->heap, b->count++, hit);
        return b->count == b->n;
    }
    replace_root(b->heap, b->n, hit);
    return 1;
}

static void keep_exact(struct score_best *b, uint32_t index)
{
    struct score_hit hit = {index, score_row(b->exact, index)};
    if ((b->count < b->n || worse(b->heap[0], hit)) && keep_hit(b, hit))
        b->threshold = threshold_below(b->heap[0].score, b->bound);
}

void score_best_flush(struct score_best *b)
{
    b->rescored += b->pending_count;
    for (uint32_t i = 0; i < b->pending_count; i++)
        keep_exact(b, b->pending[i]);
    b->pending_count = 0;
}

void score_best_offer(struct score_best *b, uint32_t index, float score)
{
    index += b->base;
    if (score <= b->threshold)
        return;
    if (b->exact != NULL) {
        offer_exact(b, index);
        return;
    }
    if (keep_hit(b, (struct score_hit){index, score}))
        b->threshold = b->heap[0].score;
}

void score_best_push(struct score_best *b, struct score_hit hit)
{
    if (b->count < b->n)
        sift_up(b->heap, b->count++, hit);
    else if (worse(b->heap[0], hit))
        replace_root(b->heap, b->n, hit);
}

uint32_t score_best_finish(struct score_best *b)
{
    sort_best_first(b->heap, b->count);
    return b->count;
}

void score_best_offer_block(struct score_best *b, uint32_t first, uint32_t mask,
                            const float *scores)
{
    for (; mask != 0; mask &= mask - 1) {
        uint32_t i = (uint32_t)__builtin_ctz(mask);
        score_best_offer(b, first + i, scores[i]);
    }
}

/* ---- kernels ----------------------------------------------------------- */

static void scan_portable(const struct score_scan *s, struct score_best *b)
{
    uint32_t len = padded_len(s);
    for (uint32_t i = 0; i < s->rows; i++) {
        float score = row_score(s, len, i);
        if (score > b->threshold)
            score_best_offer(b, i, score);
    }
}

/* A kernel's scan of one reduced element type. */
struct reduced_kernel {
    const char *name;
    int (*supported)(void); /* NULL: runs wherever its kernel does */
    score_qscan_fn scan;
    int reads_blocked; /* int8: reads score_qscan.blocked when given one */
};

/* A kernel the process may use. Best first: "auto" takes the first one the
 * CPU supports, and a kernel whose reduced scan the CPU lacks borrows the
 * next one's. */
struct kernel {
    const char *name;
    const char *needs;      /* the CPU feature it needs, for error text */
    int (*supported)(void); /* NULL: runs anywhere */
    score_scan_fn scan;
    struct reduced_kernel reduced[SCORE_ELEM_COUNT]; /* [SCORE_ELEM_F32] unused */
};

#if defined(__x86_64__)
/* __builtin_cpu_supports also checks that the OS saves the vector state
 * (XCR0), so a kernel it approves cannot fault on a register it uses. */
static int has_avx512(void)
{
    return __builtin_cpu_supports("avx512f");
}

static int has_avx2(void)
{
    return __builtin_cpu_supports("avx2");
}

static int has_avx512_bf16(void)
{
    return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw");
}

static int has_avx512_vnni(void)
{
    return __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw");
}
#endif

static const struct kernel kernels[] = {
#if defined(__x86_64__)
    {"avx512",
     "AVX-512F",
     has_avx512,
     score_scan_avx512,
     {[SCORE_ELEM_BF16] = {"avx512-bf16", has_avx512_bf16, score_qscan_bf16_avx512, 0},
      [SCORE_ELEM_INT8] = {"avx512-vnni", has_avx512_vnni, score_qscan_int8_avx512, 1}}},
    {"avx2",
     "AVX2",
     has_avx2,
     score_scan_avx2,
     {[SCORE_ELEM_BF16] = {"avx2", NULL, score_qscan_bf16_avx2, 0},
      [SCORE_ELEM_INT8] = {"avx2", NULL, score_qscan_int8_avx2, 0}}},
#endif
    {"portable",
     NULL,
     NULL,
     scan_portable,
     {[SCORE_ELEM_BF16] = {"portable", NULL, score_qscan_bf16_portable, 0},
      [SCORE_ELEM_INT8] = {"portable", NULL, score_qscan_int8_portable, 0}}},
};

#define KERNEL_COUNT (sizeof(kernels) / sizeof(kernels[0]))

/* NULL until the first selection. Switching while scans run is harmless:
 * each scan loads it once, and every kernel gives the same answer. */
static _Atomic(const struct kernel *) current;

static int runs_here(const struct kernel *k)
{
    return k->supported == NULL || k->supported();
}

static const struct kernel *best_kernel(void)
{
    size_t i = 0;
    while (!runs_here(&kernels[i]))
        i++; /* the last, portable, runs everywhere */
    return &kernels[i];
}

static const struct kernel *kernel(void)
{
    const struct kernel *k = atomic_load_explicit(&current, memory_order_acquire);
    if (k != NULL)
        return k;
    /* First use: install "auto" unless another thread selected first. */
    const struct kernel *expected = NULL, *best = best_kernel();
    if (atomic_compare_exchange_strong_explicit(&current, &expected, best, memory_order_acq_rel,
                                                memory_order_acquire))
        return best;
    return expected;
}

static const struct kernel *find_kernel(const char *name)
{
    if (strcmp(name, "auto") == 0)
        return best_kernel();
    for (size_t i = 0; i < KERNEL_COUNT; i++)
        if (strcmp(name, kernels[i].name) == 0)
            return &kernels[i];
    return NULL;
}

static int unknown_kernel(const char *name, struct err *e)
{
    char names[64] = "auto";
    for (size_t i = 0; i < KERNEL_COUNT; i++) {
        size_t used = strlen(names);
        snprintf(names + used, sizeof(names) - used, ", %s", kernels[i].name);
    }
    return err_set(e, ERR_INVALID, "unknown scoring kernel '%s' (this build has: %s)", name, names);
}

int score_select_kernel(const char *name, struct err *e)
{
    const struct kernel *k = find_kernel(name);
    if (k == NULL)
        return unknown_kernel(name, e);
    if (!runs_here(k))
        return err_set(e, ERR_INVALID, "scoring kernel '%s' needs %s, which this CPU lacks", name,
                       k->needs);
    atomic_store_explicit(&current, k, memory_order_release);
    return 0;
}

const char *score_kernel_name(void)
{
    return kernel()->name;
}

/* The selected kernel's scan of @elem if the CPU runs it, else the next
 * kernel's; portable's runs everywhere. */
static const struct reduced_kernel *reduced_kernel(enum score_elem elem)
{
    assert(elem > SCORE_ELEM_F32 && elem < SCORE_ELEM_COUNT);
    const struct kernel *k = kernel();
    while (k->reduced[elem].supported != NULL && !k->reduced[elem].supported())
        k++;
    return &k->reduced[elem];
}

const char *score_reduced_kernel_name(enum score_elem elem)
{
    return reduced_kernel(elem)->name;
}

int score_int8_blocked_read(void)
{
    return reduced_kernel(SCORE_ELEM_INT8)->reads_blocked;
}

score_qscan_fn score_qscan_kernel(enum score_elem elem)
{
    return reduced_kernel(elem)->scan;
}

/* ---- fused scan + top-N ------------------------------------------------ */

uint32_t score_topn(const struct score_scan *s, uint32_t n, score_filter_fn keep,
                    const void *filter_ctx, struct score_hit *out)
{
    assert(padded_len(s) <= s->stride);
    if (n == 0)
        return 0;
    struct score_best best = {
        .heap = out,
        .n = n,
        .threshold = -INFINITY,
        .keep = keep,
        .filter_ctx = filter_ctx,
    };
    kernel()->scan(s, &best);
    return score_best_finish(&best);
}

/* Where part @part of @parts begins: a multiple of SCORE_BLOCK_ROWS, so
 * that a part of a regrouped int8 copy starts on a block. */
static uint32_t part_start(uint32_t rows, unsigned part, unsigned parts)
{
    if (part == parts)
        return rows;
    return (uint32_t)((uint64_t)rows * part / parts) / SCORE_BLOCK_ROWS * SCORE_BLOCK_ROWS;
}

void score_part_range(uint32_t rows, unsigned part, unsigned parts, uint32_t *first,
                      uint32_t *count)
{
    *first = part_start(rows, part, parts);
    *count = part_start(rows, part + 1, parts) - *first;
}

/* A split f32 scan: each part keeps its own best n. */
struct f32_split {
    const struct score_scan *s;
    score_scan_fn scan; /* read once, so every part uses one kernel */
    unsigned parts;
    struct score_best part[SPLIT_PARTS_MAX];
};

static void scan_part(void *arg, unsigned part)
{
    struct f32_split *job = arg;
    struct score_best *b = &job->part[part];
    struct score_scan sub = *job->s;
    score_part_range(sub.rows, part, job->parts, &b->base, &sub.rows);
    sub.matrix += (size_t)b->base * sub.stride;
    if (sub.row_scale != NULL)
        sub.row_scale += b->base;
    if (sub.rows > 0)
        job->scan(&sub, b);
}

uint32_t score_topn_split(const struct score_scan *s, uint32_t n, score_filter_fn keep,
                          const void *filter_ctx, unsigned parts, struct score_hit *scratch,
                          struct score_hit *out)
{
    if (parts <= 1 || n == 0)
        return score_topn(s, n, keep, filter_ctx, out);
    assert(parts <= SPLIT_PARTS_MAX && padded_len(s) <= s->stride);
    struct f32_split job = {.s = s, .scan = kernel()->scan, .parts = parts};
    for (unsigned p = 0; p < parts; p++)
        job.part[p] = (struct score_best){.heap = scratch + (size_t)p * n,
                                          .n = n,
                                          .threshold = -INFINITY,
                                          .keep = keep,
                                          .filter_ctx = filter_ctx};
    split_run(scan_part, &job, parts);
    return score_select_merge(job.part, parts, n, out);
}

uint32_t score_select_merge(const struct score_best *parts, unsigned count, uint32_t n,
                            struct score_hit *out)
{
    struct score_best best = {.heap = out, .n = n};
    for (unsigned p = 0; p < count; p++)
        for (uint32_t i = 0; i < parts[p].count; i++)
            score_best_push(&best, parts[p].heap[i]);
    return score_best_finish(&best);
}
