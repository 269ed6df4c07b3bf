/* Unit tests of metrics: the counts, the histogram's bucket edges, the sums
 * over workers (also recorded concurrently), and the exposition's text. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "server/metrics.h"

static const char *const paths[] = {"/recsys.v1.Recommender/Recommend",
                                    "/grpc.health.v1.Health/Check"};

#define N_PATHS (sizeof(paths) / sizeof(paths[0]))

/* render - the exposition as a malloc'ed string. */
static char *render(const struct metrics *m)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    if (out == NULL || metrics_write(m, out) != 0) {
        if (out != NULL)
            fclose(out);
        free(text);
        return NULL;
    }
    fclose(out);
    return text;
}

/* value_of - the value of the exposition line that starts with @series
 * followed by a space; -1 if there is none. */
static double value_of(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *line = text; line != NULL && *line != '\0';) {
        if (strncmp(line, series, n) == 0 && line[n] == ' ')
            return strtod(line + n + 1, NULL);
        line = strchr(line, '\n');
        line = line != NULL ? line + 1 : NULL;
    }
    return -1;
}

#define RECOMMEND                                                                                  \
    "grpc_type=\"unary\",grpc_service=\"recsys.v1.Recommender\",grpc_method=\"Recommend\""

static void test_counts_by_method_and_code(void)
{
    struct metrics *m = NULL;
    CHECK_OK(metrics_create(3, paths, NULL, N_PATHS, &m));
    metrics_record(m, 0, 0, 0, 1000);
    metrics_record(m, 1, 0, 0, 1000);
    metrics_record(m, 2, 0, 3, 1000);
    metrics_record(m, 2, 1, 0, 1000);
    metrics_record(m, 0, 7, 12, 1000); /* a method not served */
    metrics_record(m, 0, 0, 99, 1000); /* a status gRPC does not define: Unknown */
    metrics_record(m, 0, 0, -1, 1000);
    CHECK(metrics_handled(m, 0, 0) == 2);
    CHECK(metrics_handled(m, 0, 3) == 1);
    CHECK(metrics_handled(m, 0, 2) == 2);
    CHECK(metrics_handled(m, 1, 0) == 1);
    CHECK(metrics_handled(m, N_PATHS, 12) == 1);
    CHECK(metrics_handled(m, 0, 17) == 0);
    char *text = render(m);
    CHECK(text != NULL);
    double ok = value_of(text, "grpc_server_handled_total{" RECOMMEND ",grpc_code=\"OK\"}");
    double invalid =
        value_of(text, "grpc_server_handled_total{" RECOMMEND ",grpc_code=\"InvalidArgument\"}");
    double unknown =
        value_of(text, "grpc_server_handled_total{grpc_type=\"unary\",grpc_service=\"unknown\","
                       "grpc_method=\"unknown\",grpc_code=\"Unimplemented\"}");
    double count = value_of(text, "grpc_server_handling_seconds_count{" RECOMMEND "}");
    /* Codes never answered are left out, except OK. */
    int has_aborted = strstr(text, "grpc_code=\"Aborted\"") != NULL;
    free(text);
    metrics_destroy(m);
    CHECK(ok == 2 && invalid == 1 && unknown == 1 && count == 5);
    CHECK(!has_aborted);
}

static void test_bucket_edges_are_inclusive(void)
{
    struct metrics *m = NULL;
    CHECK_OK(metrics_create(1, paths, NULL, N_PATHS, &m));
    metrics_record(m, 0, 0, 0, 100000); /* exactly 100 µs: in le=0.0001 */
    metrics_record(m, 0, 0, 0, 100001); /* a nanosecond more: in the next */
    metrics_record(m, 0, 0, 0, 0);
    metrics_record(m, 0, 0, 0, 60ull * 1000000000); /* a minute: only +Inf */
    char *text = render(m);
    CHECK(text != NULL);
    double b25 =
        value_of(text, "grpc_server_handling_seconds_bucket{" RECOMMEND ",le=\"2.5e-05\"}");
    double b100 =
        value_of(text, "grpc_server_handling_seconds_bucket{" RECOMMEND ",le=\"0.0001\"}");
    double b250 =
        value_of(text, "grpc_server_handling_seconds_bucket{" RECOMMEND ",le=\"0.00025\"}");
    double b2500 = value_of(text, "grpc_server_handling_seconds_bucket{" RECOMMEND ",le=\"2.5\"}");
    double inf = value_of(text, "grpc_server_handling_seconds_bucket{" RECOMMEND ",le=\"+Inf\"}");
    double sum = value_of(text, "grpc_server_handling_seconds_sum{" RECOMMEND "}");
    free(text);
    metrics_destroy(m);
    CHECK(b25 == 1 && b100 == 2 && b250 == 3 && b2500 == 3 && inf == 4);
    CHECK(sum > 60.000200 && sum < 60.000202);
}

struct recorder {
    struct metrics *m;
    unsigned worker;
};

#define CALLS_PER_WORKER 200000

static void *record_many(void *arg)
{
    struct recorder *r = arg;
    for (unsigned i = 0; i < CALLS_PER_WORKER; i++)
        metrics_record(r->m, r->worker, i % 2, 0, 1000);
    return NULL;
}

/* Workers record while another thread reads: the totals come out exact
 * (and under TSan, without a race). */
static void test_concurrent_workers_sum_exactly(void)
{
    struct metrics *m = NULL;
    CHECK_OK(metrics_create(4, paths, NULL, N_PATHS, &m));
    pthread_t threads[4];
    struct recorder rec[4];
    for (unsigned w = 0; w < 4; w++) {
        rec[w] = (struct recorder){m, w};
        CHECK(pthread_create(&threads[w], NULL, record_many, &rec[w]) == 0);
    }
    uint64_t last = 0, monotonic = 1;
    for (int i = 0; i < 100; i++) {
        uint64_t now = metrics_handled(m, 0, 0);
        monotonic &= now >= last;
        last = now;
    }
    for (unsigned w = 0; w < 4; w++)
        pthread_join(threads[w], NULL);
    uint64_t a = metrics_handled(m, 0, 0), b = metrics_handled(m, 1, 0);
    metrics_destroy(m);
    CHECK(monotonic);
    CHECK(a == 4 * CALLS_PER_WORKER / 2 && b == 4 * CALLS_PER_WORKER / 2);
}

static void test_notes_sum_over_workers(void)
{
    struct metrics *m = NULL;
    CHECK_OK(metrics_create(2, paths, NULL, N_PATHS, &m));
    metrics_note(m, 0, METRICS_FOLD_INS, 3);
    metrics_note(m, 1, METRICS_FOLD_INS, 1);
    metrics_note(m, 1, METRICS_STATE_READ_ERRORS, 2);
    /* Notes live next to the rows: counting calls must not disturb them. */
    metrics_record(m, 1, N_PATHS, 12, 1000);
    char *text = render(m);
    CHECK(text != NULL);
    double fold_ins = value_of(text, "recsys_fold_ins_total");
    double errors = value_of(text, "recsys_state_read_errors_total");
    free(text);
    uint64_t p = metrics_noted(m, METRICS_FOLD_INS),
             q = metrics_noted(m, METRICS_STATE_READ_ERRORS);
    metrics_destroy(m);
    CHECK(p == 4 && q == 2);
    CHECK(fold_ins == 4 && errors == 2);
}

static void test_labels_are_escaped(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    CHECK(out != NULL);
    metrics_label(out, "a\"b\\c\nd");
    fclose(out);
    int same = strcmp(text, "\"a\\\"b\\\\c\\nd\"") == 0;
    free(text);
    CHECK(same);
}

static void test_bad_paths_are_refused(void)
{
    static const char *const bad[] = {"Recommend", "/Recommend", "//Recommend", "/a.B/", "/a/b/c"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct metrics *m = NULL;
        CHECK_RC(metrics_create(1, &bad[i], NULL, 1, &m), ERR_INVALID);
        CHECK(m == NULL);
    }
}

int main(int argc, char **argv)
{
    static const struct check_case cases[] = {
        CHECK_CASE(test_counts_by_method_and_code),
        CHECK_CASE(test_bucket_edges_are_inclusive),
        CHECK_CASE(test_concurrent_workers_sum_exactly),
        CHECK_CASE(test_notes_sum_over_workers),
        CHECK_CASE(test_labels_are_escaped),
        CHECK_CASE(test_bad_paths_are_refused),
    };
    return check_main(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
