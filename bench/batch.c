/*
 * bench/batch: the per-user cost of BatchRecommend against Recommend.
 *
 * One model file (--items x --dim, random factors, both reduced copies,
 * --users users) is written with the model writer and opened with the
 * model reader, as the daemon opens it. Then, in the daemon's own query
 * functions, one thread, rounds taking turns:
 *
 *   single f32    recommend_run for each of --batch users, scanning f32
 *   single int8   the same, scanning the int8 copy (the daemon's default
 *                 on a catalog this size)
 *   batch         batch_run with the same --batch requests: sgemm over
 *                 item blocks, then the exact selection
 *   batch xP      the same with the item matrix split over P parts
 *                 (--helpers helper threads), as the daemon splits it
 *
 * Reported, after the command, the machine and its load: the median over
 * rounds of the time per user, and the ratio of each to the single int8
 * and single f32 calls. Every batch response is checked against the
 * single calls (same items, same scores to the bit); the program fails if
 * one differs. Requests are top-100, no filters
 * beyond the users' own purchases.
 *
 * --items-npy V.npy --users-npy U.npy take the factors from files instead
 * (float32 .npy, the same dimension; --items, --dim and --users follow
 * them): bench/score_faiss.py passes the matrices bench/score saved, so
 * the batch figures stand beside FAISS's on the same vectors. --top sets
 * the requests' count (default 100).
 *
 * Usage: batch [--items N] [--dim D] [--users N] [--batch B] [--rounds R]
 *              [--helpers H] [--top N] [--items-npy V.npy --users-npy U.npy]
 */
#include <cblas.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/arena.h"
#include "engine/batch.h"
#include "engine/recommend.h"
#include "engine/scan.h"
#include "engine/split.h"
#include "model/writer.h"
#include "timing.h"
#include "tools/lib/npy.h"

struct opts {
    unsigned items, dim, users, batch, rounds, helpers, top;
    const char *items_npy, *users_npy;
    struct npy_file V, U; /* mapped when given */
};

static int parse(int argc, char **argv, struct opts *o)
{
    static const struct {
        const char *flag;
        size_t offset;
    } flags[] = {
        {"--items", offsetof(struct opts, items)},   {"--dim", offsetof(struct opts, dim)},
        {"--users", offsetof(struct opts, users)},   {"--batch", offsetof(struct opts, batch)},
        {"--rounds", offsetof(struct opts, rounds)}, {"--helpers", offsetof(struct opts, helpers)},
        {"--top", offsetof(struct opts, top)},
    };
    for (int i = 1; i < argc; i += 2) {
        size_t k = 0;
        if (i + 1 < argc && strcmp(argv[i], "--items-npy") == 0) {
            o->items_npy = argv[i + 1];
            continue;
        }
        if (i + 1 < argc && strcmp(argv[i], "--users-npy") == 0) {
            o->users_npy = argv[i + 1];
            continue;
        }
        while (k < sizeof(flags) / sizeof(flags[0]) && strcmp(argv[i], flags[k].flag) != 0)
            k++;
        if (k == sizeof(flags) / sizeof(flags[0]) || i + 1 >= argc)
            return -1;
        *(unsigned *)((char *)o + flags[k].offset) = (unsigned)strtoul(argv[i + 1], NULL, 10);
    }
    if ((o->items_npy == NULL) != (o->users_npy == NULL))
        return -1;
    if (o->items_npy != NULL) {
        struct err e = {0};
        if (npy_map(o->items_npy, &o->V, &e) != 0 || npy_map(o->users_npy, &o->U, &e) != 0 ||
            o->V.view.cols != o->U.view.cols) {
            fprintf(stderr, "batch: %s\n", e.msg[0] ? e.msg : "the two matrices' widths differ");
            return -1;
        }
        o->items = (unsigned)o->V.view.rows;
        o->users = (unsigned)o->U.view.rows;
        o->dim = (unsigned)o->V.view.cols;
    }
    return o->items > 0 && o->dim > 0 && o->batch > 0 && o->batch <= BATCH_MAX && o->top > 0 &&
                   o->users >= o->batch && o->rounds > 0 && o->helpers < SPLIT_PARTS_MAX
               ? 0
               : -1;
}

/* The CPU, the cores, and the load the figures were taken under. */
static void print_machine(void)
{
    char line[256], cpu[256] = "unknown CPU";
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f != NULL && fgets(line, sizeof(line), f) != NULL &&
           sscanf(line, "model name : %255[^\n]", cpu) != 1)
        ;
    if (f != NULL)
        fclose(f);
    double load[1] = {0};
    getloadavg(load, 1);
    printf("machine:   %s, %ld cores, load %.2f at the start\n", cpu, sysconf(_SC_NPROCESSORS_ONLN),
           load[0]);
}

static float uniform(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(*s >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* Random factors (or the files'), ids "i<n>" and "u<n>", one category, no
 * purchases. */
static int write_model(const char *path, const struct opts *o)
{
    enum { ID = 12 };
    float *V = malloc((size_t)o->items * o->dim * sizeof(float));
    float *U = malloc((size_t)o->users * o->dim * sizeof(float));
    char *ids = malloc(((size_t)o->items + o->users) * ID);
    const char **iid = malloc(o->items * sizeof(*iid)), **uid = malloc(o->users * sizeof(*uid));
    struct model_item_attr *attrs = calloc(o->items, sizeof(*attrs));
    static const char *const category[] = {"all"};
    int rc = -ENOMEM;
    if (V && U && ids && iid && uid && attrs) {
        uint64_t s = 7;
        for (size_t k = 0; k < (size_t)o->items * o->dim; k++)
            V[k] = o->items_npy ? o->V.view.data[k] : uniform(&s);
        for (size_t k = 0; k < (size_t)o->users * o->dim; k++)
            U[k] = o->users_npy ? o->U.view.data[k] : uniform(&s);
        for (unsigned i = 0; i < o->items + o->users; i++) {
            snprintf(ids + (size_t)i * ID, ID, i < o->items ? "i%u" : "u%u",
                     i < o->items ? i : i - o->items);
            if (i < o->items) {
                iid[i] = ids + (size_t)i * ID;
                attrs[i].on_sale = 1;
            } else {
                uid[i - o->items] = ids + (size_t)i * ID;
            }
        }
        struct model_src src = {.dim = o->dim,
                                .user_count = o->users,
                                .item_count = o->items,
                                .user_factors = U,
                                .item_factors = V,
                                .user_ids = uid,
                                .item_ids = iid,
                                .attrs = attrs,
                                .categories = category,
                                .category_count = 1,
                                .version = "bench-batch",
                                .quantize = 1u << MODEL_ELEM_BF16 | 1u << MODEL_ELEM_INT8};
        struct err e = {0};
        if ((rc = model_write(path, &src, &e)) != 0)
            fprintf(stderr, "batch: %s\n", e.msg);
    }
    free(V), free(U), free(ids), free(iid), free(uid), free(attrs);
    return rc;
}

static int same_response(const Recsys__V1__RecommendResponse *a,
                         const Recsys__V1__RecommendResponse *b)
{
    int ok = a->n_items == b->n_items;
    for (size_t k = 0; ok && k < a->n_items; k++)
        ok = strcmp(a->items[k]->item_id, b->items[k]->item_id) == 0 &&
             memcmp(&a->items[k]->score, &b->items[k]->score, sizeof(float)) == 0;
    return ok;
}

enum { SINGLE_F32, SINGLE_INT8, BATCH, BATCH_SPLIT, METHODS };
static const char *const names[METHODS] = {"single f32", "single int8", "batch", "batch split"};

/* One method once over all the requests; its time per user in *us. */
static int run(int method, const struct query *q, const Recsys__V1__BatchRecommendRequest *req,
               Recsys__V1__RecommendResponse **singles, double *us)
{
    static const char *const scans[METHODS] = {"f32", "int8", "f32", "f32"};
    scan_select(scans[method], NULL);
    scan_split_from(method == BATCH_SPLIT ? 1 : ~0ull);
    struct err e = {0};
    double t0 = timing_now_us();
    int ok = 1;
    if (method <= SINGLE_INT8) {
        for (size_t i = 0; i < req->n_requests && ok; i++) {
            Recsys__V1__RecommendResponse *r;
            ok = recommend_run(q, req->requests[i], &r, &e) == 0;
            if (ok && method == SINGLE_F32)
                singles[i] = r; /* kept: the arena is reset only after the round */
            else if (ok)
                ok = same_response(r, singles[i]);
        }
    } else {
        Recsys__V1__BatchRecommendResponse *r;
        ok = batch_run(q, req, &r, &e) == 0;
        for (size_t i = 0; ok && i < req->n_requests; i++)
            ok = same_response(r->responses[i], singles[i]);
    }
    *us = (timing_now_us() - t0) / (double)req->n_requests;
    if (!ok)
        fprintf(stderr, "batch: %s disagrees with single f32 (%s)\n", names[method], e.msg);
    return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    struct opts o = {
        .items = 1000000, .dim = 128, .users = 1000, .batch = 64, .rounds = 9, .top = 100};
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    o.helpers = cpus > 1 ? (cpus - 1 > 3 ? 3 : (unsigned)cpus - 1) : 0;
    if (parse(argc, argv, &o) != 0) {
        fprintf(stderr,
                "usage: %s [--items N] [--dim D] [--users N] [--batch B<=256] "
                "[--rounds R] [--helpers H] [--top N]\n"
                "          [--items-npy V.npy --users-npy U.npy]\n",
                argv[0]);
        return 2;
    }
    openblas_set_num_threads(1);
    struct err e = {0};
    char dir[] = "/tmp/recsys-bench-batch-XXXXXX", path[64];
    if (mkdtemp(dir) == NULL || split_start(o.helpers, &e) != 0)
        return 1;
    snprintf(path, sizeof(path), "%s/model.lmdb", dir);
    struct model *m = NULL;
    struct arena *a = NULL;
    int rc = write_model(path, &o);
    if (rc == 0)
        rc = model_open(path, 1, &m, &e);
    if (rc == 0)
        rc = arena_create(1 << 20, &a);
    if (rc != 0) {
        fprintf(stderr, "batch: %s\n", e.msg);
        return 1;
    }
    printf("command:  ");
    for (int i = 0; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\n");
    print_machine();
    printf("openblas:  core %s, 1 thread per caller; split parts: %u\n", openblas_get_corename(),
           o.helpers + 1);
    printf("model:     %u items x %u dims (f32 %.0f MB, %s), batches of %u top-%u requests, %u "
           "rounds, medians\n",
           o.items, o.dim, (double)o.items * ((o.dim + 15) / 16 * 16) * 4 / 1e6,
           o.items_npy ? o.items_npy : "random", o.batch, o.top, o.rounds);

    struct query q = {.model = m, .model_name = MODELS_DEFAULT, .arena = a};
    Recsys__V1__RecommendRequest *reqs = calloc(o.batch, sizeof(*reqs));
    Recsys__V1__RecommendRequest **ptrs = calloc(o.batch, sizeof(*ptrs));
    char(*uids)[16] = calloc(o.batch, sizeof(*uids));
    Recsys__V1__RecommendResponse **singles = calloc(o.batch, sizeof(*singles));
    double *us[METHODS];
    for (int k = 0; k < METHODS; k++)
        us[k] = calloc(o.rounds, sizeof(double));
    Recsys__V1__BatchRecommendRequest req = RECSYS__V1__BATCH_RECOMMEND_REQUEST__INIT;
    req.requests = ptrs, req.n_requests = o.batch;
    for (unsigned r = 0; r < o.rounds && rc == 0; r++) {
        for (unsigned i = 0; i < o.batch; i++) {
            recsys__v1__recommend_request__init(&reqs[i]);
            snprintf(uids[i], sizeof(uids[i]), "u%u", (r * o.batch + i) % o.users);
            reqs[i].user_id = uids[i];
            reqs[i].count = o.top;
            ptrs[i] = &reqs[i];
        }
        for (int k = 0; k < METHODS && rc == 0; k++)
            rc = run(k, &q, &req, singles, &us[k][r]);
        arena_reset(a);
    }
    if (rc == 0) {
        double med[METHODS];
        printf("\n%-12s %14s %10s %10s\n", "method", "us per user", "vs int8", "vs f32");
        for (int k = 0; k < METHODS; k++)
            med[k] = timing_median(us[k], o.rounds);
        for (int k = 0; k < METHODS; k++)
            printf("%-12s %14.1f %9.2fx %9.2fx\n", names[k], med[k], med[SINGLE_INT8] / med[k],
                   med[SINGLE_F32] / med[k]);
    }
    split_stop();
    arena_destroy(a);
    model_close(m);
    npy_unmap(&o.V);
    npy_unmap(&o.U);
    unlink(path);
    rmdir(dir);
    return rc == 0 ? 0 : 1;
}
