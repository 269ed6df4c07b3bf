#include "tools/lib/publish.h"

#include <stdio.h>

int publish_model(const char *path, const struct model_src *src, struct err *e)
{
    int rc = model_write(path, src, e);
    if (rc != 0)
        return err_wrap(e, rc, "failed to write %s", path);
    uint64_t purchases = src->owned_offsets != NULL ? src->owned_offsets[src->user_count] : 0;
    printf("wrote %s: version %s, %u users, %u items, dim %u%s, %u categories, %llu purchases\n",
           path, src->version, src->user_count, src->item_count, src->dim,
           src->has_bias ? " (item bias folded in)" : "", src->category_count,
           (unsigned long long)purchases);
    return 0;
}
