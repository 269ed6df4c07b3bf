/*
 * opts: table-driven parsing of the tools' command lines (see opts.h).
 */
#include "tools/lib/opts.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

int opts_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (*s == '\0')
        return ERR_INVALID;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return ERR_INVALID;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return ERR_INVALID;
        v = v * 10 + d;
    }
    if (v < min || v > max)
        return ERR_INVALID;
    *out = v;
    return 0;
}

/* ---- setters: one per option kind ------------------------------------- */

static int set_string(const struct opt *o, char *value, void *member, struct err *e)
{
    *(char **)member = value;
    return 0;
}

static int number(const struct opt *o, const char *value, uint64_t *v, struct err *e)
{
    if (opts_parse_uint(value, o->min, o->max, v) != 0)
        return err_set(e, ERR_INVALID, "--%s: '%s' is not a number in %llu..%llu", o->name, value,
                       (unsigned long long)o->min, (unsigned long long)o->max);
    return 0;
}

static int set_uint(const struct opt *o, char *value, void *member, struct err *e)
{
    return number(o, value, (uint64_t *)member, e);
}

static int set_uint32(const struct opt *o, char *value, void *member, struct err *e)
{
    uint64_t v = 0;
    int rc = number(o, value, &v, e);
    if (rc == 0)
        *(uint32_t *)member = (uint32_t)v;
    return rc;
}

static int set_seconds(const struct opt *o, char *value, void *member, struct err *e)
{
    char *end;
    double v = strtod(value, &end);
    if (end == value || *end != '\0' || !isfinite(v) || v <= 0 || v > OPTS_MAX_SECONDS)
        return err_set(e, ERR_INVALID,
                       "--%s: '%s' is not a number of seconds above 0 and at most %.0f", o->name,
                       value, OPTS_MAX_SECONDS);
    *(double *)member = v;
    return 0;
}

static int set_flag(const struct opt *o, char *value, void *member, struct err *e)
{
    *(bool *)member = true;
    return 0;
}

static int set_list(const struct opt *o, char *value, void *member, struct err *e)
{
    struct opts_list *l = member;
    l->v[l->n++] = value;
    return 0;
}

/* A comma-separated list of reduced element types, or "none". */
static int set_copies(const struct opt *o, char *value, void *member, struct err *e)
{
    unsigned mask = 0;
    if (strcmp(value, "none") == 0) {
        *(unsigned *)member = 0;
        return 0;
    }
    for (const char *p = value;; p++) {
        size_t len = strcspn(p, ",");
        int elem = MODEL_ELEM_F32 + 1;
        while (elem < MODEL_ELEM_COUNT && (strlen(model_elem_names[elem]) != len ||
                                           memcmp(model_elem_names[elem], p, len) != 0))
            elem++;
        if (elem == MODEL_ELEM_COUNT)
            return err_set(e, ERR_INVALID, "--%s: '%.*s' is not bf16 or int8 (or 'none')", o->name,
                           (int)len, p);
        mask |= 1u << elem;
        p += len;
        if (*p == '\0')
            break;
    }
    *(unsigned *)member = mask;
    return 0;
}

static const struct {
    int (*set)(const struct opt *o, char *value, void *member, struct err *e);
    bool takes_value;
} kinds[] = {
    [OPT_STRING] = {set_string, true}, [OPT_UINT] = {set_uint, true},
    [OPT_UINT32] = {set_uint32, true}, [OPT_SECONDS] = {set_seconds, true},
    [OPT_FLAG] = {set_flag, false},    [OPT_LIST] = {set_list, true},
    [OPT_COPIES] = {set_copies, true},
};

/* ---- parsing ------------------------------------------------------------ */

/* The row @arg names ("--name", "--name=value" or "-x"), or NULL. */
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

/* Apply the option in argv[*i], its value taken from the same word after
 * '=' or from the next word; advances *i past what it used. */
static int apply(const struct opt *const *tables, int argc, char **argv, int *i, void *dst,
                 struct err *e)
{
    char *arg = argv[*i];
    const struct opt *o = lookup(tables, arg);
    char *eq = arg[1] == '-' ? strchr(arg, '=') : NULL;
    if (o == NULL)
        return err_set(e, ERR_INVALID, "unknown option %.*s",
                       eq != NULL ? (int)(eq - arg) : (int)strlen(arg), arg);
    char *value = NULL;
    if (!kinds[o->kind].takes_value) {
        if (eq != NULL)
            return err_set(e, ERR_INVALID, "--%s takes no value", o->name);
    } else if (eq != NULL) {
        value = eq + 1;
    } else if (*i + 1 < argc) {
        value = argv[++*i];
    } else if (o->value != NULL) {
        return err_set(e, ERR_INVALID, "%s needs a value (%s)", arg, o->value);
    } else {
        return err_set(e, ERR_INVALID, "%s needs a value", arg);
    }
    return kinds[o->kind].set(o, value, (char *)dst + o->offset, e);
}

int opts_scan(const struct opt *const *tables, int argc, char **argv, unsigned flags, void *dst,
              struct opts_list *words, int *next, struct err *e)
{
    bool options = true;
    int i = 0;
    for (; i < argc; i++) {
        char *arg = argv[i];
        if (options && strcmp(arg, "--") == 0) {
            options = false;
        } else if (options && arg[0] == '-' && arg[1] != '\0') {
            int rc = apply(tables, argc, argv, &i, dst, e);
            if (rc != 0)
                return rc;
        } else if (flags & OPTS_STOP_AT_WORD) {
            break;
        } else if (words != NULL) {
            words->v[words->n++] = arg;
        } else {
            return err_set(e, ERR_INVALID, "unexpected argument '%s'", arg);
        }
    }
    if (next != NULL)
        *next = i;
    return 0;
}

int opts_check_required(const struct opt *table, const void *dst, struct err *e)
{
    for (const struct opt *o = table; o->name != NULL; o++) {
        if (!o->required || *(char *const *)((const char *)dst + o->offset) != NULL)
            continue;
        if (o->letter != 0)
            return err_set(e, ERR_INVALID, "-%c/--%s %s is required", o->letter, o->name,
                           o->value != NULL ? o->value : "");
        if (o->value != NULL)
            return err_set(e, ERR_INVALID, "--%s %s is required", o->name, o->value);
        return err_set(e, ERR_INVALID, "--%s is required", o->name);
    }
    return 0;
}

int opts_parse(const struct opt *table, int argc, char **argv, void *dst, char **words, int nwords,
               const char *word_name, struct err *e)
{
    const struct opt *const tables[] = {table, NULL};
    /* Words beyond @nwords are kept to be counted, not stored. */
    char *room[argc > 0 ? argc : 1];
    struct opts_list got = {room, 0};
    int rc = opts_scan(tables, argc - 1, argv + 1, 0, dst, &got, NULL, e);
    if (rc == 0)
        rc = opts_check_required(table, dst, e);
    if (rc != 0)
        return rc;
    if (got.n > (size_t)nwords)
        return err_set(e, ERR_INVALID, "unexpected argument '%s'", got.v[nwords]);
    if (got.n < (size_t)nwords)
        return err_set(e, ERR_INVALID, "missing %s", word_name);
    if (got.n > 0)
        memcpy(words, got.v, got.n * sizeof(*words));
    return 0;
}
