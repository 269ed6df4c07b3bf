/*
 * recsys-train: from an interaction log to a model file recsysd serves.
 *
 * Reads the catalog, the optional users and the log (in that order, each
 * checked completely; the first bad line stops everything with
 * "<file>:<line>: <problem>" before anything is written), trains the
 * factors, optionally evaluates them on a holdout against the popularity
 * ranking, and publishes the model through the shared writer (temporary
 * file, fsync, rename), so a recsysd watching the path hot-swaps to it.
 * The file records how it was trained (FORMAT.md, "Training record"): the
 * regularization, alpha and view weight used, and the latest timestamp of
 * the log as unix milliseconds.
 * Exit status: 0 success, 1 failure (bad input, training, I/O), 2 usage.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "model/writer.h"
#include "tools/lib/catalog.h"
#include "tools/lib/cmd.h"
#include "tools/lib/opts.h"
#include "tools/lib/publish.h"
#include "tools/recsys-train/als.h"
#include "tools/recsys-train/bpr.h"
#include "tools/recsys-train/dataset.h"
#include "tools/recsys-train/eval.h"
#include "tools/recsys-train/interactions.h"
#include "tools/recsys-train/progress.h"

#define NAME "recsys-train"

static const char usage_text[] =
    "usage: " NAME " --interactions FILE.csv --catalog catalog.csv [--users users.csv]\n"
    "        [--algorithm als|bpr] [--factors 64] [--iterations 15] [--regularization 0.05]\n"
    "        [--alpha 20] [--cg-steps 0] [--learning-rate 0.05] [--view-weight 0.25]\n"
    "        [--threads N] [--holdout SHARE] [--seed 1] [--unknown-items skip|error]\n"
    "        [--timestamp-unit s|ms]\n"
    "        --model-version V [--created-at UNIX] [--quantize bf16,int8] -o model.lmdb\n";

static const char help_text[] =
    "\n"
    "Trains a matrix-factorization model on an interaction log and writes a model\n"
    "file recsysd serves (published atomically: temporary file, fsync, rename).\n"
    "Defaults are shown above; --threads defaults to the number of cores, and\n"
    "without --holdout nothing is held out or evaluated.\n"
    "\n"
    "Inputs (CSV with a header, columns in any order):\n"
    "  --catalog        item_id,category,price_cents,on_sale,member_tier: the items\n"
    "                   (the same file recsys-model import reads)\n"
    "  --users          user_id,tier: membership tiers (optional)\n"
    "  --interactions   user_id,item_id[,weight][,timestamp][,event]\n"
    "                   event: purchase (default) or view; purchases make an item\n"
    "                   owned, views do not. weight (> 0) defaults to 1 for a\n"
    "                   purchase and --view-weight for a view. Repeated pairs add up.\n"
    "                   timestamp: an integer, unix seconds (--timestamp-unit s,\n"
    "                   the default) or milliseconds (--timestamp-unit ms).\n"
    "  --unknown-items  skip (default; counted and reported) or error: rows naming\n"
    "                   items not in the catalog\n"
    "\n"
    "Algorithms:\n"
    "  als  implicit alternating least squares (Hu, Koren, Volinsky 2008),\n"
    "       confidence 1 + alpha * weight. Deterministic: the same seed and\n"
    "       thread count give the same bytes (any thread count, in fact).\n"
    "       Each row is solved exactly (Cholesky), or with --cg-steps N by N\n"
    "       conjugate-gradient steps from its last value (Takacs et al. 2011):\n"
    "       faster, approximate, the loss still never rises.\n"
    "  bpr  Bayesian personalized ranking by SGD (Rendle et al. 2009), uses\n"
    "       --learning-rate. Threads update the factors without locks (Hogwild):\n"
    "       reproducible with --threads 1 only.\n"
    "\n"
    "Training record: the file records --regularization, --alpha and --view-weight\n"
    "as used (for bpr too: recsysd's live-events fold-in follows the implicit-ALS\n"
    "rule whatever trained the model), and as its data end the log's latest\n"
    "timestamp in unix milliseconds: recsysd takes events at or before it as held\n"
    "by the model (held-out rows included) and deletes its recorded copies of\n"
    "them. A log without a timestamp column records data end 0: unknown, no event\n"
    "is taken as held.\n"
    "\n"
    "Evaluation (--holdout H): each user with n >= 2 pairs keeps round(H n) pairs\n"
    "aside (at most n - 1), the latest by timestamp when the log has one, else a\n"
    "random choice by --seed. The model (trained without them) and the popularity\n"
    "ranking are scored on them, excluding items the user bought in training and\n"
    "items not on sale, as recsysd does. Per user, with hits among the top 10:\n"
    "  precision@10 = hits / 10, recall@10 = hits / held-out items,\n"
    "  NDCG@10 = sum over hits of 1/log2(rank + 1) over its best possible value;\n"
    "averaged over users. Coverage: share of the catalog in some user's top 10.\n"
    "The written model is the one evaluated; it owns every purchase.\n"
    "\n"
    "Progress goes to stderr: a bar per iteration on a terminal, else one line\n"
    "per iteration. Exit status: 0 success, 1 failure, 2 usage error.\n";

struct train_args {
    const char *interactions, *catalog, *users, *algorithm, *unknown, *timestamp_unit;
    const char *regularization, *alpha, *learning_rate, *view_weight, *holdout;
    const char *version, *out;
    uint64_t factors, iterations, threads, seed, created_at, cg_steps;
    unsigned quantize;
};

#define ARG(member) offsetof(struct train_args, member)
static const struct opt train_opts[] = {
    {"interactions", 0, OPT_STRING, ARG(interactions), true, 0, 0, "FILE"},
    {"catalog", 0, OPT_STRING, ARG(catalog), true, 0, 0, "FILE"},
    {"users", 0, OPT_STRING, ARG(users), false, 0, 0, "FILE"},
    {"algorithm", 0, OPT_STRING, ARG(algorithm), false, 0, 0, "als|bpr"},
    {"unknown-items", 0, OPT_STRING, ARG(unknown), false, 0, 0, "skip|error"},
    {"timestamp-unit", 0, OPT_STRING, ARG(timestamp_unit), false, 0, 0, "s|ms"},
    {"factors", 0, OPT_UINT, ARG(factors), false, 1, 1024, "K"},
    {"iterations", 0, OPT_UINT, ARG(iterations), false, 1, 100000, "N"},
    {"threads", 0, OPT_UINT, ARG(threads), false, 1, 256, "N"},
    {"seed", 0, OPT_UINT, ARG(seed), false, 0, UINT64_MAX, "S"},
    {"cg-steps", 0, OPT_UINT, ARG(cg_steps), false, 0, 64, "N"},
    {"regularization", 0, OPT_STRING, ARG(regularization), false, 0, 0, "LAMBDA"},
    {"alpha", 0, OPT_STRING, ARG(alpha), false, 0, 0, "A"},
    {"learning-rate", 0, OPT_STRING, ARG(learning_rate), false, 0, 0, "R"},
    {"view-weight", 0, OPT_STRING, ARG(view_weight), false, 0, 0, "W"},
    {"holdout", 0, OPT_STRING, ARG(holdout), false, 0, 0, "SHARE"},
    {"model-version", 0, OPT_STRING, ARG(version), true, 0, 0, "V"},
    {"created-at", 0, OPT_UINT, ARG(created_at), false, 0, INT64_MAX, "UNIX"},
    {"quantize", 0, OPT_COPIES, ARG(quantize), false, 0, 0, "bf16,int8"},
    {"output", 'o', OPT_STRING, ARG(out), true, 0, 0, "FILE"},
    {.name = NULL},
};

/* The real-valued options: given as text, checked here against their range. */
struct real_values {
    double regularization, alpha, learning_rate, view_weight, holdout;
};
#define REAL(member) offsetof(struct real_values, member)
static const struct {
    const char *name;
    size_t text, value;
    double min, max;
    int open_min; /* min itself is not allowed */
} reals[] = {
    {"regularization", ARG(regularization), REAL(regularization), 0, 1e6, 0},
    {"alpha", ARG(alpha), REAL(alpha), 0, 1e6, 0},
    {"learning-rate", ARG(learning_rate), REAL(learning_rate), 0, 10, 1},
    {"view-weight", ARG(view_weight), REAL(view_weight), 0, 1e6, 1},
    {"holdout", ARG(holdout), REAL(holdout), 0, 0.9, 0},
};

static int parse_reals(const struct train_args *a, struct real_values *v, struct err *e)
{
    for (size_t i = 0; i < sizeof(reals) / sizeof(reals[0]); i++) {
        const char *s = *(const char *const *)((const char *)a + reals[i].text);
        char *end;
        double x = strtod(s, &end);
        if (end == s || *end != '\0' || !isfinite(x) || x < reals[i].min || x > reals[i].max ||
            (reals[i].open_min && x == reals[i].min))
            return err_set(e, ERR_INVALID, "--%s '%s' must be a number in %s%g, %g]", reals[i].name,
                           s, reals[i].open_min ? "(" : "[", reals[i].min, reals[i].max);
        *(double *)((char *)v + reals[i].value) = x;
    }
    return 0;
}

/* A word option's value among @words; its index in *out. */
static int pick(const char *flag, const char *value, const char *const *words, int n, int *out,
                struct err *e)
{
    for (*out = 0; *out < n; (*out)++)
        if (strcmp(value, words[*out]) == 0)
            return 0;
    return err_set(e, ERR_INVALID, "--%s '%s' must be %s or %s", flag, value, words[0], words[1]);
}

enum { ALGO_ALS, ALGO_BPR };
static const char *const algorithms[] = {"als", "bpr"};
static const char *const unknown_words[] = {"skip", "error"};
enum { UNIT_S, UNIT_MS };
static const char *const timestamp_units[] = {"s", "ms"};

/* The latest unix second a timestamp may name with --timestamp-unit s:
 * 9999-12-31T23:59:59Z. A log in milliseconds read as seconds lands far
 * beyond it, and its data end would have recsysd take every event it
 * records as held by the model and delete it. */
#define TIMESTAMP_S_MAX 253402300799LL

struct run {
    const struct train_args *a;
    struct real_values v;
    int algorithm, unknown_error, timestamp_unit;
    struct catalog cat;
    struct interactions log;
    struct dataset d;
    struct model_training training; /* the file's record, known once the log is read */
    float *X, *Y;
};

/* The training record: what was trained with, and the log's latest
 * timestamp in unix milliseconds (0 without a timestamp column). */
static int training_record(const struct run *r, struct model_training *t, struct err *e)
{
    int64_t latest = 0;
    for (size_t i = 0; i < r->log.event_count; i++)
        latest = r->log.events[i].time > latest ? r->log.events[i].time : latest;
    if (r->timestamp_unit == UNIT_S && latest > TIMESTAMP_S_MAX)
        return err_set(e, ERR_INVALID,
                       "%s: the latest timestamp, %lld, is after the year 9999 as unix seconds; "
                       "if the log is in milliseconds, say --timestamp-unit ms",
                       r->a->interactions, (long long)latest);
    *t = (struct model_training){
        .regularization = (float)r->v.regularization,
        .alpha = (float)r->v.alpha,
        .view_weight = (float)r->v.view_weight,
        .data_end_unix_ms = r->timestamp_unit == UNIT_S ? latest * 1000 : latest,
    };
    return 0;
}

static void print_training(const struct run *r, const struct model_training *t)
{
    printf("training record: regularization %g, alpha %g, view weight %g, data end %lld%s\n",
           (double)t->regularization, (double)t->alpha, (double)t->view_weight,
           (long long)t->data_end_unix_ms,
           r->log.has_time ? " ms (the log's latest timestamp)"
                           : " (the log has no timestamp column: no event is taken as held)");
}

static int read_inputs(struct run *r, struct err *e)
{
    const struct train_args *a = r->a;
    struct interactions_opts lo = {.view_weight = (float)r->v.view_weight,
                                   .unknown_error = r->unknown_error};
    int rc;
    if ((rc = catalog_read(a->catalog, NULL, 0, &r->cat, e)) != 0 ||
        (a->users != NULL && (rc = interactions_read_users(a->users, &r->log, e)) != 0) ||
        (rc = interactions_read(a->interactions, &r->cat, &lo, &r->log, e)) != 0 ||
        (rc = dataset_build(&r->log, r->cat.count, r->v.holdout, a->seed, &r->d, e)) != 0 ||
        (rc = training_record(r, &r->training, e)) != 0)
        return rc;
    if (r->log.unknown_rows > 0)
        fprintf(stderr, NAME ": %s: skipped %llu rows naming %llu items not in %s\n",
                a->interactions, (unsigned long long)r->log.unknown_rows,
                (unsigned long long)r->log.unknown_items, a->catalog);
    printf("read %zu interactions: %u users, %u items, %llu pairs, %llu held out%s\n",
           r->log.event_count, r->d.users, r->d.items, (unsigned long long)r->d.pairs,
           (unsigned long long)r->d.held_off[r->d.users],
           r->v.holdout == 0 ? ""
           : r->log.has_time ? " (latest by timestamp)"
                             : " (at random)");
    fflush(stdout);
    return 0;
}

static int train(struct run *r, struct err *e)
{
    const struct train_args *a = r->a;
    uint32_t k = (uint32_t)a->factors;
    r->X = malloc(((size_t)r->d.users + 1) * k * sizeof(float));
    r->Y = malloc((size_t)r->d.items * k * sizeof(float));
    if (r->X == NULL || r->Y == NULL)
        return err_set(e, -ENOMEM, "out of memory for the factors");
    struct progress *p = NULL;
    int bpr = r->algorithm == ALGO_BPR;
    int rc = progress_start(stderr, isatty(STDERR_FILENO), bpr ? "samples" : "rows",
                            bpr ? r->d.uoff[r->d.users] : (uint64_t)r->d.users + r->d.items,
                            (uint32_t)a->iterations, &p, e);
    if (rc != 0)
        return rc;
    if (bpr) {
        struct bpr_params bp = {.factors = k,
                                .iterations = (uint32_t)a->iterations,
                                .threads = (uint32_t)a->threads,
                                .learning_rate = (float)r->v.learning_rate,
                                .regularization = (float)r->v.regularization,
                                .seed = a->seed,
                                .done = progress_counter(p)};
        rc = bpr_train(&r->d.by_user, &bp, r->X, r->Y, progress_iteration, p, e);
    } else {
        struct als_params ap = {.factors = k,
                                .iterations = (uint32_t)a->iterations,
                                .threads = (uint32_t)a->threads,
                                .regularization = (float)r->v.regularization,
                                .alpha = (float)r->v.alpha,
                                .seed = a->seed,
                                .cg_steps = (uint32_t)a->cg_steps,
                                .done = progress_counter(p)};
        rc = als_train(&r->d.by_user, &r->d.by_item, &ap, r->X, r->Y, progress_iteration, p, e);
    }
    progress_stop(p);
    return rc;
}

static void print_row(const char *name, const struct eval_result *x)
{
    printf("  %-12s %12.4f %10.4f %8.4f %9.4f\n", name, x->precision, x->recall, x->ndcg,
           x->coverage);
}

static int evaluate(struct run *r, struct err *e)
{
    struct eval_result model, pop;
    int rc;
    if ((rc = eval_factors(&r->d, r->cat.attrs, r->X, r->Y, (uint32_t)r->a->factors,
                           (uint32_t)r->a->threads, &model, e)) != 0 ||
        (rc = eval_popularity(&r->d, r->cat.attrs, &pop, e)) != 0)
        return rc;
    printf("holdout: %u users\n  %-12s %12s %10s %8s %9s\n", model.users, "ranking", "precision@10",
           "recall@10", "NDCG@10", "coverage");
    print_row(algorithms[r->algorithm], &model);
    print_row("popularity", &pop);
    return 0;
}

static int write_model(struct run *r, struct err *e)
{
    struct model_src src = {
        .dim = (uint32_t)r->a->factors,
        .user_count = r->d.users,
        .item_count = r->d.items,
        .user_factors = r->X,
        .item_factors = r->Y,
        .user_ids = (const char *const *)r->log.user_ids,
        .item_ids = (const char *const *)r->cat.ids,
        .user_tier = r->log.tier,
        .owned_offsets = r->d.owned_off,
        .owned_items = r->d.owned,
        .attrs = r->cat.attrs,
        .categories = (const char *const *)r->cat.categories,
        .category_count = r->cat.category_count,
        .version = r->a->version,
        .created_at = (int64_t)r->a->created_at,
        .quantize = r->a->quantize,
        .training = &r->training,
    };
    int rc = publish_model(r->a->out, &src, e);
    if (rc == 0)
        print_training(r, &r->training);
    return rc;
}

static int usage_error(const struct err *e)
{
    fprintf(stderr, NAME ": %s\n%s", e->msg, usage_text);
    return CMD_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("%s%s", usage_text, help_text);
            return CMD_EXIT_OK;
        }
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    struct train_args a = {.algorithm = "als",
                           .unknown = "skip",
                           .timestamp_unit = "s",
                           .regularization = "0.05",
                           .alpha = "20",
                           .learning_rate = "0.05",
                           .view_weight = "0.25",
                           .holdout = "0",
                           .factors = 64,
                           .iterations = 15,
                           .threads = cpus >= 1 && cpus <= 256 ? (uint64_t)cpus : 1,
                           .seed = 1,
                           .created_at = (uint64_t)time(NULL)};
    struct run r = {.a = &a};
    struct err e = {0};
    size_t vlen;
    if (opts_parse(train_opts, argc, argv, &a, NULL, 0, NULL, &e) != 0 ||
        parse_reals(&a, &r.v, &e) != 0 ||
        pick("algorithm", a.algorithm, algorithms, 2, &r.algorithm, &e) != 0 ||
        pick("unknown-items", a.unknown, unknown_words, 2, &r.unknown_error, &e) != 0 ||
        pick("timestamp-unit", a.timestamp_unit, timestamp_units, 2, &r.timestamp_unit, &e) != 0)
        return usage_error(&e);
    if ((vlen = strlen(a.version)) == 0 || vlen > MODEL_ID_MAX) {
        err_set(&e, ERR_INVALID, "--model-version must be 1..%d bytes", MODEL_ID_MAX);
        return usage_error(&e);
    }
    int rc;
    if ((rc = read_inputs(&r, &e)) == 0 && (rc = train(&r, &e)) == 0 &&
        (r.v.holdout == 0 || (rc = evaluate(&r, &e)) == 0))
        rc = write_model(&r, &e);
    if (rc != 0)
        fprintf(stderr, NAME ": %s\n", e.msg);
    catalog_free(&r.cat);
    interactions_free(&r.log);
    dataset_free(&r.d);
    free(r.X);
    free(r.Y);
    if (fflush(stdout) != 0 && rc == 0) {
        perror(NAME ": write");
        rc = -1;
    }
    return rc == 0 ? CMD_EXIT_OK : CMD_EXIT_FAILED;
}
