#include "tools/recsys-cli/args.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The longest deadline --timeout accepts. A day is far beyond any answer the
 * daemon gives; a larger value is a typo, not a wish. */
#define ARGS_MAX_SECONDS 86400.0

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

/* ---- setters: one per option kind ------------------------------------- */

static int set_string(void *dst, char *value, struct err *e)
{
    *(char **)dst = value;
    return 0;
}

static int set_uint32(void *dst, char *value, struct err *e)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(value, &end, 10);
    /* strtoull accepts a sign and leading blanks; a count has neither. */
    if (value[0] < '0' || value[0] > '9' || *end != '\0' || errno != 0 || v > UINT32_MAX)
        return err_set(e, ERR_INVALID, "'%s' is not a whole number from 0 to %u", value,
                       UINT32_MAX);
    *(uint32_t *)dst = (uint32_t)v;
    return 0;
}

static int set_seconds(void *dst, char *value, struct err *e)
{
    char *end;
    double v = strtod(value, &end);
    if (end == value || *end != '\0' || !isfinite(v) || v <= 0 || v > ARGS_MAX_SECONDS)
        return err_set(e, ERR_INVALID, "'%s' is not a number of seconds above 0 and at most %.0f",
                       value, ARGS_MAX_SECONDS);
    *(double *)dst = v;
    return 0;
}

static int set_flag(void *dst, char *value, struct err *e)
{
    *(bool *)dst = true;
    return 0;
}

static int set_list(void *dst, char *value, struct err *e)
{
    struct strlist *l = dst;
    l->v[l->n++] = value;
    return 0;
}

static const struct {
    int (*set)(void *dst, char *value, struct err *e);
    bool takes_value;
} kinds[] = {
    [OPT_STRING] = {set_string, true},   [OPT_UINT32] = {set_uint32, true},
    [OPT_SECONDS] = {set_seconds, true}, [OPT_FLAG] = {set_flag, false},
    [OPT_LIST] = {set_list, true},
};

/* ---- parsing ------------------------------------------------------------ */

/* The option @arg names ("--name", "--name=value" or "-x"), or NULL. */
static const struct opt *lookup(const struct opt *const *tables, const char *arg)
{
    bool is_long = arg[1] == '-';
    const char *name = arg + (is_long ? 2 : 1);
    size_t len = strcspn(name, "=");
    for (; *tables != NULL; tables++) {
        for (const struct opt *o = *tables; o->name != NULL; o++) {
            if (is_long ? strlen(o->name) == len && strncmp(o->name, name, len) == 0
                        : o->letter != 0 && o->letter == name[0] && name[1] == '\0')
                return o;
        }
    }
    return NULL;
}

/* Apply the option in argv[*i], taking its value from the same word after
 * '=' or from the next word; advances *i past what it used. */
static int apply(const struct opt *const *tables, int argc, char **argv, int *i, struct cli_args *a,
                 struct err *e)
{
    char *arg = argv[*i];
    const struct opt *o = lookup(tables, arg);
    if (o == NULL)
        return err_set(e, ERR_INVALID, "unknown option %s", arg);
    char *eq = arg[1] == '-' ? strchr(arg, '=') : NULL;
    char *value = NULL;
    if (!kinds[o->kind].takes_value) {
        if (eq != NULL)
            return err_set(e, ERR_INVALID, "--%s takes no value", o->name);
    } else if (eq != NULL) {
        value = eq + 1;
    } else if (*i + 1 < argc) {
        value = argv[++*i];
    } else {
        return err_set(e, ERR_INVALID, "--%s needs a value", o->name);
    }
    int rc = kinds[o->kind].set((char *)a + o->offset, value, e);
    if (rc != 0)
        return err_wrap(e, rc, "--%s", o->name);
    return 0;
}

int args_parse(const struct opt *const *tables, int argc, char **argv, unsigned flags,
               struct cli_args *a, int *next, struct err *e)
{
    bool options = true;
    int i = 0;
    for (; i < argc; i++) {
        char *arg = argv[i];
        if (options && strcmp(arg, "--") == 0) {
            options = false;
        } else if (options && arg[0] == '-' && arg[1] != '\0') {
            int rc = apply(tables, argc, argv, &i, a, e);
            if (rc != 0)
                return rc;
        } else if (flags & ARGS_STOP_AT_WORD) {
            break;
        } else {
            a->words.v[a->words.n++] = arg;
        }
    }
    if (next != NULL)
        *next = i;
    return 0;
}

int args_check_required(const struct opt *table, const struct cli_args *a, struct err *e)
{
    for (const struct opt *o = table; o->name != NULL; o++) {
        if (o->required && *(char *const *)((const char *)a + o->offset) == NULL)
            return err_set(e, ERR_INVALID, "--%s is required", o->name);
    }
    return 0;
}
