#include "tools/recsys-cli/args.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int args_init(struct cli_args *a, int argc)
{
    memset(a, 0, sizeof(*a));
    /* Each word of the command line adds at most one value to one list, so
     * argc slots per list always suffice. */
    size_t cap = argc > 0 ? (size_t)argc : 1;
    a->storage = calloc(4 * cap, sizeof(char *));
    if (a->storage == NULL)
        return -ENOMEM;
    a->exclude.v = a->storage;
    a->categories.v = a->storage + cap;
    a->owned.v = a->storage + 2 * cap;
    a->words.v = a->storage + 3 * cap;
    return 0;
}

void args_free(struct cli_args *a)
{
    free(a->storage);
    memset(a, 0, sizeof(*a));
}
