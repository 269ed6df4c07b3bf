/*
 * route: routes.json (route.h).
 *
 * JSON by jansson, strictly: duplicate keys refused, trailing bytes too
 * (json_loadb reads one value and fails on anything after it), numbers
 * with a fraction or exponent are reals, which no weight is.
 */
#include "engine/route.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/sha256.h"

bool route_name_valid(const char *name, size_t len)
{
    if (len == 0 || len > ROUTE_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '_' && c != '-')))
            return false;
    }
    return true;
}

/* One key of the file and what reads it. */
struct key_rule {
    const char *key;
    int (*read)(json_t *value, struct route *out, struct err *e);
};

/* check_name - @s (@len bytes), the model name of @what, into @out. */
static int check_name(const char *what, const char *s, size_t len, char out[ROUTE_NAME_MAX + 1],
                      struct err *e)
{
    if (!route_name_valid(s, len))
        return err_set(e, ERR_INVALID, "%s '%.*s' is not a model name ([a-z0-9][a-z0-9_-]{0,63})",
                       what, (int)(len < 80 ? len : 80), s);
    memcpy(out, s, len);
    out[len] = '\0';
    return 0;
}

static int read_default(json_t *value, struct route *out, struct err *e)
{
    if (!json_is_string(value))
        return err_set(e, ERR_INVALID, "default is not a string");
    return check_name("default", json_string_value(value), json_string_length(value),
                      out->default_name, e);
}

static int read_salt(json_t *value, struct route *out, struct err *e)
{
    if (!json_is_string(value))
        return err_set(e, ERR_INVALID, "salt is not a string");
    size_t len = json_string_length(value);
    const char *s = json_string_value(value);
    if (len > ROUTE_SALT_MAX)
        return err_set(e, ERR_INVALID, "salt is %zu bytes, longer than %d", len, ROUTE_SALT_MAX);
    /* No NUL inside: json_loadb without JSON_ALLOW_NUL refuses "\u0000". */
    memcpy(out->salt, s, len);
    out->salt[len] = '\0';
    out->salt_len = len;
    return 0;
}

static int by_arm_name(const void *a, const void *b)
{
    return strcmp(((const struct route_arm *)a)->name, ((const struct route_arm *)b)->name);
}

static int read_split(json_t *value, struct route *out, struct err *e)
{
    if (!json_is_object(value))
        return err_set(e, ERR_INVALID, "split is not an object of model names and weights");
    size_t n = json_object_size(value);
    if (n == 0 || n > ROUTE_ARMS_MAX)
        return err_set(e, ERR_INVALID, "split has %zu models, not 1 to %d", n, ROUTE_ARMS_MAX);
    const char *name;
    json_t *w;
    uint32_t sum = 0;
    out->n_arms = 0;
    json_object_foreach(value, name, w)
    {
        /* jansson refuses a key holding NUL: strlen is its length. */
        struct route_arm *arm = &out->arms[out->n_arms++];
        int rc = check_name("split: model", name, strlen(name), arm->name, e);
        if (rc != 0)
            return rc;
        if (!json_is_integer(w) || json_integer_value(w) < 0 || json_integer_value(w) > 100)
            return err_set(e, ERR_INVALID,
                           "split: the weight of '%s' is not an integer from 0 to 100", arm->name);
        arm->weight = (uint32_t)json_integer_value(w);
        sum += arm->weight;
    }
    if (sum != ROUTE_BUCKETS)
        return err_set(e, ERR_INVALID, "split: the weights sum to %u, not %d", sum, ROUTE_BUCKETS);
    qsort(out->arms, out->n_arms, sizeof(out->arms[0]), by_arm_name);
    return 0;
}

static const struct key_rule keys[] = {
    {"default", read_default},
    {"split", read_split},
    {"salt", read_salt},
};

#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

static int read_object(json_t *root, struct route *out, struct err *e)
{
    if (!json_is_object(root))
        return err_set(e, ERR_INVALID, "not a JSON object");
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value)
    {
        size_t k = 0;
        while (k < N_KEYS && strcmp(keys[k].key, key) != 0)
            k++;
        if (k == N_KEYS)
            return err_set(e, ERR_INVALID, "unknown key '%.80s' (known: default, split, salt)",
                           key);
        int rc = keys[k].read(value, out, e);
        if (rc != 0)
            return rc;
    }
    if (out->default_name[0] == '\0')
        return err_set(e, ERR_INVALID, "default is missing");
    return 0;
}

/* one_line - control characters of @msg as '?': the text quotes the
 * file (a key, a name, jansson's token), and goes to a one-line log. */
static int one_line(struct err *e, int rc)
{
    for (char *p = e != NULL ? e->msg : ""; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return rc;
}

int route_parse(const char *text, size_t len, struct route *out, struct err *e)
{
    memset(out, 0, sizeof(*out));
    if (len > ROUTE_FILE_MAX)
        return err_set(e, ERR_INVALID, "%zu bytes, longer than %d", len, ROUTE_FILE_MAX);
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL)
        return one_line(
            e, err_set(e, ERR_INVALID, "line %d, column %d: %s", je.line, je.column, je.text));
    int rc = read_object(root, out, e);
    json_decref(root);
    return rc != 0 ? one_line(e, rc) : 0;
}

uint32_t route_bucket(const struct route *r, const char *user, size_t user_len)
{
    struct sha256 s;
    uint8_t digest[SHA256_BYTES];
    sha256_init(&s);
    sha256_update(&s, r->salt, r->salt_len);
    sha256_update(&s, "", 1); /* the NUL between salt and user */
    sha256_update(&s, user, user_len);
    sha256_final(&s, digest);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | digest[i];
    return (uint32_t)(v % ROUTE_BUCKETS);
}

uint32_t route_arm_of(const struct route *r, uint32_t bucket)
{
    uint32_t end = 0, i = 0;
    for (; i + 1 < r->n_arms; i++) {
        end += r->arms[i].weight;
        if (bucket < end)
            return i;
    }
    return i;
}
