/*
 * test_scan: which copy of the item matrix a scan reads. The rule that
 * chooses from the probe's timings, as a pure function; and the probe on
 * real model files: what it times and records, when it times nothing, and
 * what scan_elem() returns for each. Which copy is fastest depends on the
 * machine, so no test asserts it: only that the choice is a copy the model
 * holds and that scans read it.
 */
#include "engine/scan.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "random_model.h"

enum { ITEMS = 2000, USERS = 50, DIM = 16 };

static const unsigned BF16 = 1u << MODEL_ELEM_BF16, INT8 = 1u << MODEL_ELEM_INT8;

/* ==== the rule ========================================================== */

static enum model_elem choose(double f32, double bf16, double int8)
{
    const double t[MODEL_ELEM_COUNT] = {
        [MODEL_ELEM_F32] = f32, [MODEL_ELEM_BF16] = bf16, [MODEL_ELEM_INT8] = int8};
    return scan_choose(t);
}

static void test_choose_takes_the_fastest(void)
{
    CHECK(choose(9e-3, 5e-3, 3e-3) == MODEL_ELEM_INT8);
    CHECK(choose(9e-3, 3e-3, 5e-3) == MODEL_ELEM_BF16);
    CHECK(choose(1e-3, 5e-3, 3e-3) == MODEL_ELEM_F32);
    CHECK(choose(9e-3, 3e-3, 3e-3) == MODEL_ELEM_BF16); /* a tie: the first, no gain */
}

/* A reduced copy must take less than 1 - SCAN_PROBE_MARGIN of f32's time;
 * between reduced copies the faster wins, by any margin. */
static void test_choose_keeps_the_margin(void)
{
    double f32 = 10e-3, edge = f32 * (1 - SCAN_PROBE_MARGIN);
    CHECK(SCAN_PROBE_MARGIN > 0 && SCAN_PROBE_MARGIN < 0.5);
    CHECK(choose(f32, 0, f32 * 0.99) == MODEL_ELEM_F32);
    CHECK(choose(f32, 0, edge) == MODEL_ELEM_F32);
    CHECK(choose(f32, 0, nextafter(edge, 0)) == MODEL_ELEM_INT8);
    CHECK(choose(f32, f32 * 0.97, f32 * 0.98) == MODEL_ELEM_F32);
    CHECK(choose(f32, edge * 0.9, edge * 0.899) == MODEL_ELEM_INT8);
}

/* A copy not timed (0, negative or NaN: absent from the model) never wins;
 * without f32's time there is nothing to beat, so f32. */
static void test_choose_ignores_copies_not_timed(void)
{
    CHECK(choose(9e-3, 0, 0) == MODEL_ELEM_F32);
    CHECK(choose(9e-3, 0, 3e-3) == MODEL_ELEM_INT8);
    CHECK(choose(9e-3, 3e-3, -1) == MODEL_ELEM_BF16);
    CHECK(choose(9e-3, NAN, 3e-3) == MODEL_ELEM_INT8);
    CHECK(choose(0, 5e-3, 3e-3) == MODEL_ELEM_F32);
}

/* ==== the probe ========================================================= */

/* Its inputs are large: static. */
static struct random_model fx;

/* open_model - a random model with @users users and the reduced copies
 * @quantize (model_src's bits), served in fx.sv (served_close). */
static int open_model(uint32_t users, unsigned quantize)
{
    rng_state = 42;
    return random_model_open(&fx,
                             (struct random_model_shape){.users = users,
                                                         .items = ITEMS,
                                                         .dim = DIM,
                                                         .floats = 1,
                                                         .without = (BF16 | INT8) & ~quantize});
}

/* probe - open a model as open_model does, probe it, and check what the
 * probe recorded against the copies @quantize gave it: each timed, no
 * other, and the choice one of them, which scan_elem() returns. */
static void probe(uint32_t users, unsigned quantize, unsigned from_user)
{
    struct served *sv = &fx.sv;
    struct model_scan s = {0};
    CHECK_OK(open_model(users, quantize));
    int before = model_scan(sv->model) == NULL && scan_elem(sv->model) == MODEL_ELEM_F32;
    int probed = scan_probe(sv->model);
    if (model_scan(sv->model) != NULL)
        s = *model_scan(sv->model);
    enum model_elem chosen = scan_elem(sv->model);
    served_close(sv);
    unsigned timed = 0;
    for (int elem = 0; elem < MODEL_ELEM_COUNT; elem++)
        if (s.query_seconds[elem] > 0)
            timed |= 1u << elem;
    CHECK(before && probed);
    CHECK(timed == (1u | quantize));
    CHECK(chosen == s.elem && (timed & 1u << chosen));
    CHECK(s.rounds >= 3 && s.queries == 4 && s.from_user == from_user);
}

static void test_probe_times_every_copy_held(void)
{
    probe(USERS, BF16 | INT8, 1);
    probe(USERS, INT8, 1);
    probe(USERS, BF16, 1);
}

/* A model without users is probed with item rows as queries. */
static void test_probe_without_users(void)
{
    probe(0, BF16 | INT8, 0);
}

/* Nothing to choose from: nothing timed, f32 scanned. */
static void test_model_without_copies_scans_f32(void)
{
    struct served *sv = &fx.sv;
    CHECK_OK(open_model(USERS, 0));
    int probed = scan_probe(sv->model);
    int recorded = model_scan(sv->model) != NULL;
    enum model_elem chosen = scan_elem(sv->model);
    served_close(sv);
    CHECK(!probed && !recorded && chosen == MODEL_ELEM_F32);
}

/* A preference for a copy the model holds wins without a probe; for one it
 * lacks, the model is probed as under "auto". */
static void test_explicit_preference(void)
{
    struct served *sv = &fx.sv;
    CHECK_OK(scan_select("bf16", NULL));
    int rc = open_model(USERS, BF16 | INT8);
    int probed = rc == 0 && scan_probe(sv->model);
    int recorded = rc == 0 && model_scan(sv->model) != NULL;
    enum model_elem chosen = rc == 0 ? scan_elem(sv->model) : MODEL_ELEM_COUNT;
    if (rc == 0)
        served_close(sv);
    CHECK_OK(scan_select("auto", NULL));
    CHECK_OK(rc);
    CHECK(!probed && !recorded && chosen == MODEL_ELEM_BF16);

    CHECK_OK(scan_select("bf16", NULL));
    probe(USERS, INT8, 1);
    CHECK_OK(scan_select("auto", NULL));
}

/* A model never probed (opened without the reloader) scans f32 under
 * "auto", and the copy named by an explicit preference it holds. */
static void test_never_probed(void)
{
    struct served *sv = &fx.sv;
    CHECK_OK(open_model(USERS, BF16 | INT8));
    enum model_elem under_auto = scan_elem(sv->model);
    CHECK_OK(scan_select("int8", NULL));
    enum model_elem under_int8 = scan_elem(sv->model);
    CHECK_OK(scan_select("auto", NULL));
    served_close(sv);
    CHECK(under_auto == MODEL_ELEM_F32 && under_int8 == MODEL_ELEM_INT8);
}

/* Each int8 row's element j, read back from the regrouped copy as
 * score.h lays it out, here independently of score_int8_block. */
static int regrouped_as_documented(const struct model *m)
{
    const struct model_item_copy *c = model_item_copy(m, MODEL_ELEM_INT8);
    const int8_t *rows = c->rows;
    const uint8_t *blocked = c->blocked;
    uint32_t stride = model_stride(m);
    for (uint32_t i = 0; i < model_item_count(m); i++)
        for (uint32_t j = 0; j < stride; j++) {
            size_t at = (size_t)(i / 16) * 16 * stride + 64 * (j / 4) + 4 * (i % 16) + j % 4;
            if (blocked[at] != (uint8_t)(rows[(size_t)i * stride + j] + 128))
                return 0;
        }
    return 1;
}

/* The int8 scan of every user, of the copy scan_prepare regrouped (where
 * the kernel reads it), gives the f32 scan's answer. */
static int scans_agree(const struct model *m)
{
    struct score_hit want[10], got[10], scratch[8 * 10];
    const float *users = model_user_matrix(m);
    for (uint32_t u = 0; u < model_user_count(m); u++) {
        struct scan_plan f32, int8;
        scan_plan(m, users + (size_t)u * model_stride(m), MODEL_ELEM_F32, &f32);
        scan_plan(m, users + (size_t)u * model_stride(m), MODEL_ELEM_INT8, &int8);
        uint32_t cw = scan_topn(&f32, 10, NULL, NULL, scratch, want);
        uint32_t cg = scan_topn(&int8, 10, NULL, NULL, scratch, got);
        if (cw != cg || memcmp(want, got, cw * sizeof(*got)) != 0)
            return 0;
    }
    return 1;
}

/* scan_prepare regroups the int8 rows for the kernels that read them, as
 * score.h lays them out, and scans then agree with f32; for other kernels,
 * a model without int8, or a preference that cannot scan int8, it makes
 * nothing. */
static void test_prepare_regroups_int8(void)
{
    static const char *const kernels[] = {"portable", "avx2", "avx512"};
    struct served *sv = &fx.sv;
    for (size_t k = 0; k < sizeof(kernels) / sizeof(kernels[0]); k++) {
        if (score_select_kernel(kernels[k], NULL) != 0)
            continue;
        CHECK_OK(open_model(USERS, BF16 | INT8));
        int made = scan_prepare(sv->model);
        const void *blocked = model_item_copy(sv->model, MODEL_ELEM_INT8)->blocked;
        CHECK(made == score_int8_blocked_read() && (blocked != NULL) == made);
        CHECK(!made || regrouped_as_documented(sv->model));
        CHECK(scans_agree(sv->model));
        served_close(sv);
    }
    CHECK_OK(score_select_kernel("auto", NULL));
    CHECK_OK(open_model(USERS, BF16));
    CHECK(!scan_prepare(sv->model));
    served_close(sv);
    CHECK_OK(scan_select("f32", NULL));
    CHECK_OK(open_model(USERS, BF16 | INT8));
    CHECK(!scan_prepare(sv->model));
    served_close(sv);
    CHECK_OK(scan_select("auto", NULL));
}

int main(int argc, char **argv)
{
    static const struct check_case cases[] = {
        CHECK_CASE(test_choose_takes_the_fastest),
        CHECK_CASE(test_choose_keeps_the_margin),
        CHECK_CASE(test_choose_ignores_copies_not_timed),
        CHECK_CASE(test_probe_times_every_copy_held),
        CHECK_CASE(test_probe_without_users),
        CHECK_CASE(test_model_without_copies_scans_f32),
        CHECK_CASE(test_explicit_preference),
        CHECK_CASE(test_never_probed),
        CHECK_CASE(test_prepare_regroups_int8),
    };
    return check_main(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
