#include "tools/recsys-cli/args.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int args_init(struct cli_args *a, int argc, char **argv)
{
    memset(a, 0, sizeof(*a));
    a->argv = argv;
    a->argc = argc;
    /* Each word of the command line adds at most one value to one list, so
     * argc slots per list (and for the events) always suffice. */
    size_t cap = argc > 0 ? (size_t)argc : 1;
    struct opts_list *lists[] = {&a->exclude,   &a->categories, &a->owned,  &a->words,
                                 &a->purchases, &a->views,      &a->refunds};
    size_t n = sizeof(lists) / sizeof(lists[0]);
    a->storage = calloc(n * cap, sizeof(char *));
    a->events = calloc(cap, sizeof(*a->events));
    if (a->storage == NULL || a->events == NULL) {
        args_free(a);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        lists[i]->v = a->storage + i * cap;
    return 0;
}

void args_free(struct cli_args *a)
{
    free(a->storage);
    free(a->events);
    memset(a, 0, sizeof(*a));
}
