/*
 * test_ids: id files (one id per line, ids.h): line endings, the limits on
 * an id, duplicates, the lookup index, and the file and line every error
 * names.
 */
#include "tools/lib/ids.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "model/model.h"

/* A string literal and its length, NULs included. */
#define S(lit) lit, sizeof(lit) - 1

static char tmpdir[64];
static char path[128]; /* the one id file the tests write */

static int write_ids(const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return -errno;
    size_t n = fwrite(data, 1, len, f);
    return fclose(f) == 0 && n == len ? 0 : -EIO;
}

/* "id|id|..." in line order, for comparing against a case. */
static void join(const struct ids *l, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (uint32_t i = 0; i < ids_count(l) && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%s", i ? "|" : "", ids_array(l)[i]);
}

static const struct ids_case {
    const char *name;
    const char *data;
    size_t len;
    const char *ids; /* when accepted, joined with '|' */
    const char *err; /* fragment of the error after "<path>" */
} cases[] = {
    {"one id per line", S("u1\nu2\nu3\n"), "u1|u2|u3", NULL},
    {"last line without its newline", S("a\nb"), "a|b", NULL},
    {"CRLF", S("a\r\nb\r\n"), "a|b", NULL},
    {"CR on a last line without newline", S("a\r\nb\r"), "a|b", NULL},
    {"only one CR is dropped", S("a\r\r\n"), "a\r", NULL},
    {"blanks and UTF-8 belong to the id", S(" a \n\xc3\xa9\n"), " a |\xc3\xa9", NULL},
    {"ids differ by case", S("A\na\n"), "A|a", NULL},
    {"empty file: no ids (a matrix may have no rows)", S(""), "", NULL},

    {"empty line", S("a\n\nb\n"), NULL, ":2: empty line (one id per line)"},
    {"empty first line", S("\na\n"), NULL, ":1: empty line"},
    {"only a newline", S("\n"), NULL, ":1: empty line"},
    {"a line of only CR", S("a\n\r\n"), NULL, ":2: empty line"},
    {"NUL byte", S("a\n\0b\n"), NULL, ":2: NUL byte in the id"},
    {"duplicate", S("a\nb\na\n"), NULL, ":3: duplicate id 'a' (first on line 1)"},
    {"duplicate once CR is dropped", S("a\r\na\n"), NULL, ":2: duplicate id 'a' (first on line 1)"},
    {"duplicate with a control byte, escaped", S("a\tb\na\tb\n"), NULL,
     ":2: duplicate id 'a\\tb' (first on line 1)"},
};

static void test_cases(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct ids_case *c = &cases[i];
        fprintf(stderr, "  %s\n", c->name);
        CHECK_OK(write_ids(c->data, c->len));
        struct ids *l = NULL;
        struct err e = {0};
        int rc = ids_read(path, &l, &e);
        char got[256] = "";
        if (rc == 0)
            join(l, got, sizeof(got));
        ids_free(l);
        if (c->err != NULL) {
            char want[256];
            snprintf(want, sizeof(want), "%s%s", path, c->err);
            CHECK_RC(rc, ERR_INVALID);
            CHECK(l == NULL);
            CHECK_STR_HAS(e.msg, want);
            continue;
        }
        CHECK_OK(rc);
        CHECK(strcmp(got, c->ids) == 0);
    }
}

/* MODEL_ID_MAX bytes are an id; one more is refused, on its own line. */
static void test_id_length(void)
{
    char data[2 * MODEL_ID_MAX + 4];
    memset(data, 'x', MODEL_ID_MAX);
    data[MODEL_ID_MAX] = '\n';
    memset(data + MODEL_ID_MAX + 1, 'y', MODEL_ID_MAX + 1);
    data[2 * MODEL_ID_MAX + 2] = '\n';

    struct ids *l = NULL;
    struct err e = {0};
    CHECK_OK(write_ids(data, MODEL_ID_MAX + 1));
    CHECK_OK(ids_read(path, &l, &e));
    int longest_ok = ids_count(l) == 1 && strlen(ids_array(l)[0]) == MODEL_ID_MAX;
    ids_free(l);
    CHECK(longest_ok);

    CHECK_OK(write_ids(data, sizeof(data) - 1));
    CHECK_RC(ids_read(path, &l, &e), ERR_INVALID);
    CHECK_STR_HAS(e.msg, ":2: id is 257 bytes, longer than 256");
}

static void test_find(void)
{
    CHECK_OK(write_ids(S("u1\nu2\nu10\n\xc3\xa9\n")));
    struct ids *l = NULL;
    CHECK_OK(ids_read(path, &l, NULL));
    static const struct {
        const char *id;
        int rc;
        uint32_t row;
    } lookups[] = {
        {"u1", 0, 0},
        {"u2", 0, 1},
        {"u10", 0, 2},
        {"\xc3\xa9", 0, 3},
        {"u", ERR_NOT_FOUND, 0},    /* a prefix */
        {"u100", ERR_NOT_FOUND, 0}, /* an extension */
        {"U1", ERR_NOT_FOUND, 0},
        {"", ERR_NOT_FOUND, 0},
    };
    int all_ok = ids_count(l) == 4 && strcmp(ids_path(l), path) == 0;
    for (size_t i = 0; i < sizeof(lookups) / sizeof(lookups[0]); i++) {
        uint32_t row = UINT32_MAX;
        int rc = ids_find(l, lookups[i].id, strlen(lookups[i].id), &row);
        if (rc != lookups[i].rc || (rc == 0 && row != lookups[i].row)) {
            fprintf(stderr, "  ids_find(\"%s\") = %d, row %u\n", lookups[i].id, rc, row);
            all_ok = 0;
        }
    }
    ids_free(l);
    CHECK(all_ok);
}

static void test_not_a_file(void)
{
    struct ids *l = NULL;
    struct err e = {0};
    CHECK_RC(ids_read(tmpdir, &l, &e), ERR_INVALID);
    CHECK_STR_HAS(e.msg, ": not a regular file");
    char missing[160];
    snprintf(missing, sizeof(missing), "%s/missing.txt", tmpdir);
    CHECK_RC(ids_read(missing, &l, &e), -ENOENT);
    CHECK_STR_HAS(e.msg, "missing.txt: No such file or directory");
    CHECK(l == NULL);
}

int main(int argc, char **argv)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/recsys-test-XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof(path), "%s/ids.txt", tmpdir);
    static const struct check_case all[] = {
        CHECK_CASE(test_cases),
        CHECK_CASE(test_id_length),
        CHECK_CASE(test_find),
        CHECK_CASE(test_not_a_file),
    };
    int rc = check_main(argc, argv, all, sizeof(all) / sizeof(all[0]));
    unlink(path);
    rmdir(tmpdir);
    return rc;
}
