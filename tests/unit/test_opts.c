/* Unit tests of tools/lib/opts: the one argv parser of the three tools. */
#include <stddef.h>
#include <string.h>

#include "check.h"
#include "model/model.h"
#include "tools/lib/opts.h"

struct args {
    char *out;
    char *name;
    uint64_t n;
    uint32_t count;
    double timeout;
    bool verbose;
    unsigned copies;
    struct opts_list tags;
};

#define ARG(m) offsetof(struct args, m)

static const struct opt table[] = {
    {"output", 'o', OPT_STRING, ARG(out), true, 0, 0, "FILE"},
    {"name", 0, OPT_STRING, ARG(name), false, 0, 0, NULL},
    {"n", 0, OPT_UINT, ARG(n), false, 1, 100, "N"},
    {"count", 0, OPT_UINT32, ARG(count), false, 0, UINT32_MAX, "N"},
    {"timeout", 0, OPT_SECONDS, ARG(timeout), false, 0, 0, "S"},
    {"verbose", 'v', OPT_FLAG, ARG(verbose), false, 0, 0, NULL},
    {"quantize", 0, OPT_COPIES, ARG(copies), false, 0, 0, "bf16,int8"},
    {"tag", 0, OPT_LIST, ARG(tags), false, 0, 0, "T"},
    {.name = NULL},
};

/* parse - @argv[0..argc) (argv[0] is the command) into @a, one word into
 * @word; the return code, the error text in @e. */
static int parse(struct args *a, char *word[1], struct err *e, char **argv, int argc)
{
    static char *room[16];
    memset(a, 0, sizeof(*a));
    a->n = 7; /* a default the parser must keep when --n is absent */
    a->tags.v = room;
    memset(e, 0, sizeof(*e));
    return opts_parse(table, argc, argv, a, word, 1, "WORD", e);
}

#define ARGV(...)                                                                                  \
    (char *[]){"cmd", __VA_ARGS__}, (int)(sizeof((char *[]){"cmd", __VA_ARGS__}) / sizeof(char *))

static void test_every_kind_and_spelling(void)
{
    struct args a;
    char *word[1];
    struct err e;
    CHECK_OK(parse(&a, word, &e,
                   ARGV("-o", "f", "--name=x", "--n", "42", "--count=4000000000", "--timeout",
                        "1.5", "-v", "--quantize", "int8", "--tag", "a", "--tag=b", "w")));
    CHECK(strcmp(a.out, "f") == 0 && strcmp(a.name, "x") == 0);
    CHECK(a.n == 42 && a.count == 4000000000u && a.timeout == 1.5 && a.verbose);
    CHECK(a.copies == 1u << MODEL_ELEM_INT8);
    CHECK(a.tags.n == 2 && strcmp(a.tags.v[0], "a") == 0 && strcmp(a.tags.v[1], "b") == 0);
    CHECK(strcmp(word[0], "w") == 0);
}

static void test_defaults_stay_and_dashes_end_the_options(void)
{
    struct args a;
    char *word[1];
    struct err e;
    CHECK_OK(parse(&a, word, &e, ARGV("-o", "f", "--", "--n")));
    CHECK(a.n == 7);
    CHECK(strcmp(word[0], "--n") == 0);
}

static void test_each_mistake_is_named(void)
{
    static const struct {
        char *argv[6];
        int argc;
        const char *says;
    } cases[] = {
        {{"cmd", "-o", "f", "--colour", "red", "w"}, 6, "unknown option --colour"},
        {{"cmd", "-o", "f", "--colour=red", "w"}, 5, "unknown option --colour"},
        {{"cmd", "w", "-o"}, 3, "-o needs a value (FILE)"},
        {{"cmd", "w", "-o", "f", "--name"}, 5, "--name needs a value"},
        {{"cmd", "w"}, 2, "-o/--output FILE is required"},
        {{"cmd", "-o", "f", "--n", "0", "w"}, 6, "--n: '0' is not a number in 1..100"},
        {{"cmd", "-o", "f", "--n", "+5", "w"}, 6, "--n: '+5' is not a number in 1..100"},
        {{"cmd", "-o", "f", "--count", "4294967296", "w"}, 6, "is not a number in 0..4294967295"},
        {{"cmd", "-o", "f", "--timeout", "0", "w"}, 6, "--timeout: '0' is not a number of sec"},
        {{"cmd", "-o", "f", "--verbose=yes", "w"}, 5, "--verbose takes no value"},
        {{"cmd", "-o", "f", "--quantize", "f16", "w"}, 6, "'f16' is not bf16 or int8"},
        {{"cmd", "-o", "f", "w", "x"}, 5, "unexpected argument 'x'"},
        {{"cmd", "-o", "f"}, 3, "missing WORD"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct args a;
        char *word[1];
        struct err e;
        CHECK_RC(parse(&a, word, &e, (char **)cases[i].argv, cases[i].argc), ERR_INVALID);
        CHECK_STR_HAS(e.msg, cases[i].says);
    }
}

static void test_a_scan_stops_at_the_command_and_merges_tables(void)
{
    static const struct opt global[] = {
        {"verbose", 'v', OPT_FLAG, ARG(verbose), false, 0, 0, NULL},
        {.name = NULL},
    };
    static const struct opt own[] = {
        {"name", 0, OPT_STRING, ARG(name), true, 0, 0, NULL},
        {.name = NULL},
    };
    char *argv[] = {"-v", "run", "--name", "x", "w1", "-v", "w2"};
    struct args a;
    memset(&a, 0, sizeof(a));
    char *room[8];
    struct opts_list words = {room, 0};
    struct err e = {0};
    const struct opt *const first[] = {global, NULL};
    int next;
    CHECK_OK(opts_scan(first, 7, argv, OPTS_STOP_AT_WORD, &a, NULL, &next, &e));
    CHECK(next == 1 && a.verbose);
    const struct opt *const both[] = {own, global, NULL};
    a.verbose = false;
    CHECK_OK(opts_scan(both, 7 - next - 1, argv + next + 1, 0, &a, &words, NULL, &e));
    CHECK(a.verbose && strcmp(a.name, "x") == 0);
    CHECK(words.n == 2 && strcmp(words.v[0], "w1") == 0 && strcmp(words.v[1], "w2") == 0);
    CHECK_OK(opts_check_required(own, &a, &e));
    a.name = NULL;
    CHECK_RC(opts_check_required(own, &a, &e), ERR_INVALID);
    CHECK_STR_HAS(e.msg, "--name is required");
}

int main(int argc, char **argv)
{
    static const struct check_case cases[] = {
        CHECK_CASE(test_every_kind_and_spelling),
        CHECK_CASE(test_defaults_stay_and_dashes_end_the_options),
        CHECK_CASE(test_each_mistake_is_named),
        CHECK_CASE(test_a_scan_stops_at_the_command_and_merges_tables),
    };
    return check_main(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
