/*
 * opts: table-driven parsing of a subcommand's command line (see opts.h).
 */
#include "tools/lib/opts.h"

#include <string.h>

#include "model/model.h"

/* Rows in one table; more than any command has. */
#define OPTS_MAX 32

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

static size_t opts_count(const struct opt *table)
{
    size_t n = 0;
    while (table[n].name != NULL)
        n++;
    return n;
}

/* The row for "--name" (@name is what follows the dashes, @len its length
 * up to any '='), or for "-x" when @letter is set. */
static const struct opt *find(const struct opt *table, const char *name, size_t len, char letter)
{
    for (const struct opt *o = table; o->name != NULL; o++) {
        if (letter != 0 ? o->letter == letter
                        : strlen(o->name) == len && memcmp(o->name, name, len) == 0)
            return o;
    }
    return NULL;
}

/* A comma-separated list of reduced element types, or "none". */
static int parse_copies(const struct opt *o, const char *value, unsigned *out, struct err *e)
{
    unsigned mask = 0;
    if (strcmp(value, "none") == 0) {
        *out = 0;
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
    *out = mask;
    return 0;
}

static int store(const struct opt *o, const char *value, void *dst, struct err *e)
{
    char *member = (char *)dst + o->offset;
    if (o->kind == OPT_STRING) {
        *(const char **)member = value;
        return 0;
    }
    if (o->kind == OPT_COPIES)
        return parse_copies(o, value, (unsigned *)member, e);
    uint64_t v;
    if (opts_parse_uint(value, o->min, o->max, &v) != 0)
        return err_set(e, ERR_INVALID, "--%s: '%s' is not a number in %llu..%llu", o->name, value,
                       (unsigned long long)o->min, (unsigned long long)o->max);
    *(uint64_t *)member = v;
    return 0;
}

/* Parses the option at argv[*i] (and its value, which may be the next word),
 * advancing *i past what it used. @given marks the rows seen. */
static int parse_option(const struct opt *table, int argc, char **argv, int *i, void *dst,
                        unsigned char *given, struct err *e)
{
    const char *arg = argv[*i];
    const char *eq = NULL;
    const struct opt *o;
    if (arg[1] == '-') {
        const char *name = arg + 2;
        eq = strchr(name, '=');
        o = find(table, name, eq != NULL ? (size_t)(eq - name) : strlen(name), 0);
    } else {
        o = arg[2] == '\0' ? find(table, NULL, 0, arg[1]) : NULL;
    }
    if (o == NULL)
        return err_set(e, ERR_INVALID, "unknown option %.*s",
                       eq ? (int)(eq - arg) : (int)strlen(arg), arg);
    const char *value = eq != NULL ? eq + 1 : NULL;
    if (value == NULL) {
        if (*i + 1 >= argc)
            return err_set(e, ERR_INVALID, "%s needs a value (%s)", arg, o->value);
        value = argv[++*i];
    }
    given[o - table] = 1;
    return store(o, value, dst, e);
}

int opts_parse(const struct opt *table, int argc, char **argv, void *dst, char **words, int nwords,
               const char *word_name, struct err *e)
{
    unsigned char given[OPTS_MAX] = {0};
    if (opts_count(table) > OPTS_MAX)
        return err_set(e, ERR_INTERNAL, "an option table has more than %d rows", OPTS_MAX);
    int nw = 0, only_words = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!only_words && strcmp(arg, "--") == 0) {
            only_words = 1;
        } else if (!only_words && arg[0] == '-' && arg[1] != '\0') {
            int rc = parse_option(table, argc, argv, &i, dst, given, e);
            if (rc != 0)
                return rc;
        } else if (nw < nwords) {
            words[nw++] = argv[i];
        } else {
            return err_set(e, ERR_INVALID, "unexpected argument '%s'", arg);
        }
    }
    for (const struct opt *o = table; o->name != NULL; o++) {
        if (!o->required || given[o - table])
            continue;
        if (o->letter != 0)
            return err_set(e, ERR_INVALID, "-%c/--%s %s is required", o->letter, o->name, o->value);
        return err_set(e, ERR_INVALID, "--%s %s is required", o->name, o->value);
    }
    if (nw < nwords)
        return err_set(e, ERR_INVALID, "missing %s", word_name);
    return 0;
}
