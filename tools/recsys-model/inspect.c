/*
 * inspect and verify: look at a model file through the same reader the
 * daemon uses.
 *
 * Both open the file with model_open(), which is the full validation
 * (model_verify() is model_open() + model_close()); opening it directly
 * lets verify report what it accepted. inspect prints the header facts as
 * aligned "key: value" lines, then the categories and the most popular
 * items as indented lines under their own keys:
 *
 *     version:         demo-1-32d
 *     ...
 *     training:        regularization 0.05, alpha 20, view weight 0.25, data end 0 (unknown)
 *                      ("regularization 0.1 per interaction" for Spark's rule)
 *     categories:      2
 *       course         1204 items
 *       ebook          998 items
 *     popular:         5
 *       1. course-00042  312 purchases
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/model.h"
#include "tools/lib/opts.h"
#include "tools/recsys-model/cmd.h"

/* Items listed under "popular:". */
#define INSPECT_TOP 5
/* Width of the "key:" column. */
#define KEY_WIDTH 16

static const struct opt no_opts[] = {{.name = NULL}};

enum field_kind { F_U32, F_U64, F_STR, F_TIME, F_ELEM };

/* The header facts, in the order they are printed. */
static const struct field {
    const char *key;
    enum field_kind kind;
    size_t offset; /* in struct model_info */
} fields[] = {
    {"path", F_STR, offsetof(struct model_info, path)},
    {"format_version", F_U32, offsetof(struct model_info, format_version)},
    {"version", F_STR, offsetof(struct model_info, version)},
    {"created_at", F_TIME, offsetof(struct model_info, created_at)},
    {"dim", F_U32, offsetof(struct model_info, dim)},
    {"stride", F_U32, offsetof(struct model_info, stride)},
    {"has_bias", F_U32, offsetof(struct model_info, has_bias)},
    {"element_type", F_ELEM, offsetof(struct model_info, elem_type)},
    {"users", F_U64, offsetof(struct model_info, user_count)},
    {"items", F_U64, offsetof(struct model_info, item_count)},
    {"purchases", F_U64, offsetof(struct model_info, purchase_count)},
    {"file_bytes", F_U64, offsetof(struct model_info, file_bytes)},
    {"checksum", F_STR, offsetof(struct model_info, checksum)},
};

static void key(const char *name)
{
    printf("%s:%*s", name, (int)(KEY_WIDTH - strlen(name)), "");
}

/* "1700000000 (2023-11-14T22:13:20Z)" */
static void print_time(int64_t t)
{
    char iso[32];
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(iso, sizeof(iso), "out of range");
    printf("%lld (%s)\n", (long long)t, iso);
}

static void print_field(const struct model_info *in, const struct field *f)
{
    const void *p = (const char *)in + f->offset;
    key(f->key);
    switch (f->kind) {
    case F_U32:
        printf("%u\n", *(const uint32_t *)p);
        break;
    case F_U64:
        printf("%llu\n", (unsigned long long)*(const uint64_t *)p);
        break;
    case F_STR:
        printf("%s\n", *(const char *const *)p);
        break;
    case F_TIME:
        print_time(*(const int64_t *)p);
        break;
    case F_ELEM: {
        uint32_t t = *(const uint32_t *)p;
        printf("%s\n", t < MODEL_ELEM_COUNT ? model_elem_names[t] : "?");
        break;
    }
    }
}

/* Each category with the number of items in it, names aligned. */
static int print_categories(const struct model *m, struct err *e)
{
    uint32_t n = model_category_count(m), items = model_item_count(m), width = 0, len;
    uint64_t *count = calloc(n, sizeof(*count));
    if (count == NULL)
        return err_set(e, -ENOMEM, "out of memory for %u categories", n);
    const struct model_item_attr *attrs = model_item_attrs(m);
    for (uint32_t i = 0; i < items; i++)
        count[attrs[i].category]++;
    for (uint32_t c = 0; c < n; c++) {
        model_category_name(m, c, &len);
        width = len > width ? len : width;
    }
    key("categories");
    printf("%u\n", n);
    for (uint32_t c = 0; c < n; c++) {
        const char *name = model_category_name(m, c, &len);
        printf("  %.*s%*s  %llu items\n", (int)len, name, (int)(width - len), "",
               (unsigned long long)count[c]);
    }
    free(count);
    return 0;
}

static void print_popular(const struct model *m)
{
    uint32_t n = model_item_count(m) < INSPECT_TOP ? model_item_count(m) : INSPECT_TOP;
    const struct model_pop *pop = model_popularity(m);
    uint32_t width = 0, len;
    for (uint32_t i = 0; i < n; i++) {
        model_item_id(m, pop[i].item, &len);
        width = len > width ? len : width;
    }
    key("popular");
    printf("%u\n", n);
    for (uint32_t i = 0; i < n; i++) {
        const char *id = model_item_id(m, pop[i].item, &len);
        printf("  %u. %.*s%*s  %u purchases\n", i + 1, (int)len, id, (int)(width - len), "",
               pop[i].count);
    }
}

/* open_arg - the one FILE argument, opened (which validates it fully).
 * Returns CMD_EXIT_OK with *path and *m set, or the exit status. */
static int open_arg(int argc, char **argv, char **path, struct model **m, struct err *e)
{
    if (opts_parse(no_opts, argc, argv, NULL, path, 1, "FILE", e) != 0)
        return CMD_EXIT_USAGE;
    if (model_open(*path, 1, m, e) != 0)
        return CMD_EXIT_FAILED;
    return CMD_EXIT_OK;
}

/* The reduced copies, each with its largest distance from a float32 row
 * relative to the largest row norm: how much the scan can misjudge a score
 * before the exact re-rank corrects it. */
static void print_copies(const struct model *m)
{
    const struct model_item_copy *f32 = model_item_copy(m, MODEL_ELEM_F32);
    int any = 0;
    key("quantized");
    for (int elem = MODEL_ELEM_F32 + 1; elem < MODEL_ELEM_COUNT; elem++) {
        const struct model_item_copy *c = model_item_copy(m, elem);
        if (c == NULL)
            continue;
        printf("%s%s (max error %.2g of the largest norm)", any ? ", " : "", model_elem_names[elem],
               f32->max_norm > 0 ? c->max_error / f32->max_norm : 0);
        any = 1;
    }
    printf("%s\n", any ? "" : "none");
}

/* @v with the fewest digits, from 6, that read back as the same float: 9
 * always do, but show 0.05f as 0.0500000007. */
static const char *shortest(char *buf, size_t len, float v)
{
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(buf, len, "%.*g", digits, (double)v);
        if (strtof(buf, NULL) == v)
            break;
    }
    return buf;
}

/* "1718000000123 (2024-06-10T06:13:20.123Z)", or "0 (unknown)". */
static void print_data_end(int64_t ms)
{
    char iso[32];
    time_t tt = (time_t)(ms / 1000);
    struct tm tm;
    if (ms == 0)
        snprintf(iso, sizeof(iso), "unknown");
    else if (gmtime_r(&tt, &tm) == NULL ||
             strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
        snprintf(iso, sizeof(iso), "out of range");
    else
        snprintf(iso + strlen(iso), sizeof(iso) - strlen(iso), ".%03dZ", (int)(ms % 1000));
    printf("%lld (%s)", (long long)ms, iso);
}

/* The training record (FORMAT.md), or the defaults a reader takes without one. */
static void print_training(const struct model *m)
{
    const struct model_training *t = model_training(m);
    char r[32], a[32], w[32];
    key("training");
    printf("%sregularization %s%s, alpha %s, view weight %s, data end ",
           t->from_file ? "" : "none (defaults: ", shortest(r, sizeof(r), t->regularization),
           t->regularization_scaling == MODEL_SCALING_PER_INTERACTION ? " per interaction" : "",
           shortest(a, sizeof(a), t->alpha), shortest(w, sizeof(w), t->view_weight));
    print_data_end(t->data_end_unix_ms);
    printf("%s\n", t->from_file ? "" : ")");
}

int inspect_main(int argc, char **argv, struct err *e)
{
    char *path;
    struct model *m;
    int status = open_arg(argc, argv, &path, &m, e);
    if (status != CMD_EXIT_OK)
        return status;
    const struct model_info *in = model_info(m);
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        print_field(in, &fields[i]);
    print_copies(m);
    print_training(m);
    int rc = print_categories(m, e);
    if (rc == 0)
        print_popular(m);
    model_close(m);
    return rc == 0 ? CMD_EXIT_OK : CMD_EXIT_FAILED;
}

int verify_main(int argc, char **argv, struct err *e)
{
    char *path;
    struct model *m;
    int status = open_arg(argc, argv, &path, &m, e);
    if (status != CMD_EXIT_OK)
        return status;
    const struct model_info *in = model_info(m);
    printf("OK %s: version %s, %llu users, %llu items\n", path, in->version,
           (unsigned long long)in->user_count, (unsigned long long)in->item_count);
    model_close(m);
    return CMD_EXIT_OK;
}
