/*
 * fuzz_model: model_open on arbitrary bytes, handed over as a file.
 *
 * The seeds are the valid files of tiny_model.h, so mutations are damaged
 * models: LMDB pages, meta values, blobs, string tables and user records
 * that are almost right. model.h promises that model_open refuses every
 * invalid file with an error and that, once a file is accepted, every
 * accessor can trust it. So besides not crashing, an accepted model is
 * walked through the whole API and each answer checked against the rules
 * of FORMAT.md; a sanitizer build also reports any read outside the map.
 */
#include <math.h>
#include <string.h>

#include "fuzz.h"
#include "model/model.h"
#include "scratch.h"

static void check_items(const struct model *m)
{
    const struct model_info *info = model_info(m);
    const struct model_item_attr *attrs = model_item_attrs(m);
    const float *matrix = model_item_matrix(m), *inv_norms = model_item_inv_norms(m);
    uint32_t stride = model_stride(m);
    for (uint32_t i = 0; i < model_item_count(m); i++) {
        uint32_t len = 0, found = UINT32_MAX;
        const char *id = model_item_id(m, i, &len);
        FUZZ_ASSERT(len >= 1 && len <= MODEL_ID_MAX);
        FUZZ_ASSERT(model_find_item(m, 0, id, len, &found) == 0 && found == i);
        FUZZ_ASSERT(attrs[i].category < info->category_count && attrs[i].price_cents >= 0);
        FUZZ_ASSERT(attrs[i].on_sale <= 1);
        FUZZ_ASSERT(isfinite(inv_norms[i]) && inv_norms[i] >= 0.0f);
        for (uint32_t j = 0; j < stride; j++)
            FUZZ_ASSERT(j < info->dim ? isfinite(matrix[(size_t)i * stride + j])
                                      : matrix[(size_t)i * stride + j] == 0.0f);
    }
}

static void check_popularity(const struct model *m)
{
    const struct model_pop *pop = model_popularity(m);
    for (uint32_t i = 0; i < model_item_count(m); i++) {
        FUZZ_ASSERT(pop[i].item < model_item_count(m));
        FUZZ_ASSERT(i == 0 || pop[i].count <= pop[i - 1].count);
    }
}

static void check_categories(const struct model *m)
{
    for (uint32_t c = 0; c < model_category_count(m); c++) {
        uint32_t len = 0, found = UINT32_MAX;
        const char *name = model_category_name(m, c, &len);
        FUZZ_ASSERT(len >= 1 && len <= MODEL_ID_MAX);
        FUZZ_ASSERT(model_find_category(m, name, len, &found) == 0 && found == c);
    }
}

/* Users cannot be listed, only looked up: try the seeds' user ids. */
static void check_users(const struct model *m)
{
    static const char *const names[] = {"u0", "u1", "u2"};
    const float *matrix = model_user_matrix(m);
    uint32_t stride = model_stride(m);
    for (size_t n = 0; n < sizeof(names) / sizeof(names[0]); n++) {
        struct model_user u;
        if (model_find_user(m, 0, names[n], strlen(names[n]), &u) != 0)
            continue;
        FUZZ_ASSERT(u.row < model_user_count(m) && u.owned_count <= model_item_count(m));
        for (uint32_t j = 0; j < model_dim(m); j++)
            FUZZ_ASSERT(isfinite(matrix[(size_t)u.row * stride + j]));
        uint32_t *owned = malloc((u.owned_count + 1) * sizeof(*owned));
        FUZZ_ASSERT(owned != NULL);
        model_user_owned(&u, owned);
        for (uint32_t k = 0; k < u.owned_count; k++)
            FUZZ_ASSERT(owned[k] < model_item_count(m) && (k == 0 || owned[k - 1] < owned[k]));
        free(owned);
    }
}

static void check_model(const struct model *m)
{
    const struct model_info *info = model_info(m);
    FUZZ_ASSERT(info->dim >= 1 && info->stride >= info->dim);
    FUZZ_ASSERT(info->stride % MODEL_ROW_ALIGN_FLOATS == 0 && info->stride == model_stride(m));
    FUZZ_ASSERT(info->item_count >= 1 && info->item_count == model_item_count(m));
    FUZZ_ASSERT(info->category_count >= 1 && info->category_count == model_category_count(m));
    FUZZ_ASSERT(strlen(info->version) >= 1 && strlen(info->checksum) == 16);
    check_items(m);
    check_popularity(m);
    check_categories(m);
    check_users(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = scratch_file(data, size);
    struct model *m = NULL;
    struct err e = {0};
    int rc = model_open(path, 1, &m, &e);
    if (rc == 0) {
        check_model(m);
        model_close(m);
    } else {
        FUZZ_ASSERT(rc < 0 && m == NULL);
        FUZZ_ASSERT(strncmp(e.msg, path, strlen(path)) == 0);
    }
    return 0;
}
