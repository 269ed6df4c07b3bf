/* Unit tests of src/config: defaults, precedence, every parser's accepted
 * and refused values, and the generated --help text. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "server/config.h"

static const char *const env_vars[] = {
    "RECSYS_MODEL",     "RECSYS_MODELS_DIR",        "RECSYS_LISTEN",
    "RECSYS_THREADS",   "RECSYS_MAX_REQUEST_BYTES", "RECSYS_GRACE_SECONDS",
    "RECSYS_LOG_LEVEL",
};

static void clear_env(void)
{
    for (size_t i = 0; i < sizeof(env_vars) / sizeof(env_vars[0]); i++)
        unsetenv(env_vars[i]);
}

/* load - config_load on "recsysd" followed by the NULL-terminated args. */
static int load(struct config *c, enum config_action *action, struct err *e, ...)
{
    char *argv[32] = {"recsysd"};
    int argc = 1;
    va_list ap;
    va_start(ap, e);
    for (char *a; (a = va_arg(ap, char *)) != NULL && argc < 31;)
        argv[argc++] = a;
    va_end(ap);
    memset(e, 0, sizeof(*e));
    return config_load(c, argc, argv, action, e);
}

static void test_defaults(void)
{
    struct config c;
    enum config_action action;
    struct err e;
    clear_env();
    CHECK_OK(load(&c, &action, &e, "--model", "/srv/m.lmdb", NULL));
    CHECK(action == CONFIG_RUN);
    CHECK(strcmp(c.model, "/srv/m.lmdb") == 0);
    CHECK(strcmp(c.listen, "127.0.0.1:50051") == 0);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    CHECK(c.threads == (unsigned)(cpus < 1                    ? 1
                                  : cpus > CONFIG_THREADS_MAX ? CONFIG_THREADS_MAX
                                                              : cpus));
    CHECK(c.max_request_bytes == 4u << 20);
    CHECK(c.grace_ms == 10000);
    CHECK(c.log_level == LOG_INFO);
}

static void test_flag_beats_env_beats_default(void)
{
    struct config c;
    enum config_action action;
    struct err e;
    clear_env();
    setenv("RECSYS_MODEL", "/env/model", 1);
    setenv("RECSYS_THREADS", "3", 1);
    setenv("RECSYS_LOG_LEVEL", "debug", 1);
    CHECK_OK(load(&c, &action, &e, "--threads", "5", NULL));
    CHECK(c.threads == 5);
    CHECK(strcmp(c.model, "/env/model") == 0);
    CHECK(c.log_level == LOG_DEBUG);
    CHECK(strcmp(c.listen, "127.0.0.1:50051") == 0);

    CHECK_OK(load(&c, &action, &e, NULL));
    CHECK(c.threads == 3);

    /* A bad variable is irrelevant when the flag overrides it. */
    setenv("RECSYS_THREADS", "many", 1);
    CHECK_OK(load(&c, &action, &e, "--threads=7", NULL));
    CHECK(c.threads == 7);

    /* An empty variable counts as unset. */
    setenv("RECSYS_LISTEN", "", 1);
    CHECK_OK(load(&c, &action, &e, "--threads", "1", NULL));
    CHECK(strcmp(c.listen, "127.0.0.1:50051") == 0);
    clear_env();
}

static void test_last_flag_wins(void)
{
    struct config c;
    enum config_action action;
    struct err e;
    clear_env();
    CHECK_OK(load(&c, &action, &e, "--model", "a", "--listen", "[::1]:0", "--model=b", NULL));
    CHECK(strcmp(c.model, "b") == 0);
    CHECK(strcmp(c.listen, "[::1]:0") == 0);
}

static void test_numeric_values(void)
{
    static const struct {
        const char *flag, *value;
        size_t offset;
        unsigned want;
    } cases[] = {
        {"--threads", "1", offsetof(struct config, threads), 1},
        {"--threads", "1024", offsetof(struct config, threads), 1024},
        {"--max-request-bytes", "1024", offsetof(struct config, max_request_bytes), 1024},
        {"--max-request-bytes", "64K", offsetof(struct config, max_request_bytes), 64u << 10},
        {"--max-request-bytes", "16m", offsetof(struct config, max_request_bytes), 16u << 20},
        {"--max-request-bytes", "1G", offsetof(struct config, max_request_bytes), 1u << 30},
        {"--grace-seconds", "0", offsetof(struct config, grace_ms), 0},
        {"--grace-seconds", "2.5", offsetof(struct config, grace_ms), 2500},
        {"--grace-seconds", "0.125", offsetof(struct config, grace_ms), 125},
        {"--grace-seconds", "3600", offsetof(struct config, grace_ms), 3600000},
    };
    clear_env();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct config c;
        enum config_action action;
        struct err e;
        CHECK_OK(load(&c, &action, &e, "--model", "m", cases[i].flag, cases[i].value, NULL));
        unsigned got;
        memcpy(&got, (char *)&c + cases[i].offset, sizeof(got));
        if (got != cases[i].want)
            fprintf(stderr, "%s %s: got %u, want %u\n", cases[i].flag, cases[i].value, got,
                    cases[i].want);
        CHECK(got == cases[i].want);
    }
}

static void test_log_levels(void)
{
    static const struct {
        const char *name;
        enum log_level level;
    } cases[] = {
        {"debug", LOG_DEBUG}, {"info", LOG_INFO}, {"warn", LOG_WARN}, {"error", LOG_ERROR}};
    clear_env();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct config c;
        enum config_action action;
        struct err e;
        CHECK_OK(load(&c, &action, &e, "--model", "m", "--log-level", cases[i].name, NULL));
        CHECK(c.log_level == cases[i].level);
    }
}

static void test_bad_values(void)
{
    static const struct {
        const char *flag, *value, *want;
    } cases[] = {
        {"--threads", "0", "--threads: '0' is not in 1..1024"},
        {"--threads", "1025", "--threads: '1025' is not in 1..1024"},
        {"--threads", "-1", "--threads: '-1' is not a number or 'auto'"},
        {"--threads", " 4", "is not a number"},
        {"--threads", "4x", "is not a number"},
        {"--threads", "99999999999999999999999", "is not a number"},
        {"--max-request-bytes", "1023", "'1023' is not in 1024..1073741824"},
        {"--max-request-bytes", "2G", "'2G' is not in 1024..1073741824"},
        {"--max-request-bytes", "4MB", "is not a size in bytes"},
        {"--max-request-bytes", "M", "is not a size in bytes"},
        {"--grace-seconds", "3600.001", "'3600.001' is not in 0..3600 seconds"},
        {"--grace-seconds", "1.2345", "at most 3 decimals"},
        {"--grace-seconds", "soon", "--grace-seconds: 'soon' is not a number of seconds"},
        {"--grace-seconds", "-1", "is not a number of seconds"},
        {"--log-level", "loud", "--log-level: 'loud' is not one of debug, info, warn or error"},
        {"--listen", "", "--listen: must not be empty"},
    };
    clear_env();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct config c;
        enum config_action action;
        struct err e;
        CHECK_RC(load(&c, &action, &e, "--model", "m", cases[i].flag, cases[i].value, NULL),
                 ERR_INVALID);
        CHECK_STR_HAS(e.msg, cases[i].want);
    }
}

static void test_bad_env_names_the_variable(void)
{
    struct config c;
    enum config_action action;
    struct err e;
    clear_env();
    setenv("RECSYS_THREADS", "0", 1);
    CHECK_RC(load(&c, &action, &e, "--model", "m", NULL), ERR_INVALID);
    CHECK_STR_HAS(e.msg, "RECSYS_THREADS: '0' is not in 1..1024");
    clear_env();
}

static void test_bad_command_lines(void)
{
    struct config c;
    enum config_action action;
    struct err e;
    clear_env();
    CHECK_RC(load(&c, &action, &e, "--model", "m", "--bogus", "1", NULL), ERR_INVALID);
    CHECK_STR_HAS(e.msg, "unknown option '--bogus'");
    CHECK_RC(load(&c, &action, &e, "--model", "m", "--bogus=1", NULL), ERR_INVALID);
    CHECK_STR_HAS(e.msg, "unknown option '--bogus'");
    CHECK_RC(load(&c, &action, &e, "--model", "m", "extra", NULL), ERR_INVALID);
    CHECK_STR_HAS(e.msg, "unexpected argument 'extra'");
    CHECK_RC(load(&c, &action, &e, "--model", "m", "--threads", NULL), ERR_INVALID);
    CHECK_STR_HAS(e.msg, "--threads: missing value");
    CHECK_RC(load(&c, &action, &e, "--threads", "2", NULL), ERR_INVALID);
    CHECK_STR_HAS(e.msg, "--model (or RECSYS_MODEL) is required");
    CHECK_STR_HAS(e.msg, "--models-dir");
    CHECK_RC(load(&c, &action, &e, "--model", "m", "--models-dir", "d", NULL), ERR_INVALID);
    CHECK_STR_HAS(e.msg, "--model and --models-dir exclude each other");
    setenv("RECSYS_MODELS_DIR", "/env/models", 1);
    CHECK_RC(load(&c, &action, &e, "--model", "m", NULL), ERR_INVALID);
    CHECK_STR_HAS(e.msg, "exclude each other");
    CHECK_OK(load(&c, &action, &e, NULL));
    CHECK(strcmp(c.models_dir, "/env/models") == 0);
    CHECK(c.model[0] == '\0');
    unsetenv("RECSYS_MODELS_DIR");

    char long_path[sizeof(c.model) + 1];
    memset(long_path, 'a', sizeof(long_path) - 1);
    long_path[sizeof(long_path) - 1] = '\0';
    CHECK_RC(load(&c, &action, &e, "--model", long_path, NULL), ERR_INVALID);
    CHECK_STR_HAS(e.msg, "--model: longer than 4095 bytes");
}

static void test_help_and_version(void)
{
    struct config c;
    enum config_action action;
    struct err e;
    clear_env();
    /* They win over anything else, even an incomplete command line. */
    CHECK_OK(load(&c, &action, &e, "--help", NULL));
    CHECK(action == CONFIG_HELP);
    CHECK_OK(load(&c, &action, &e, "--threads", "3", "--version", "--bogus", NULL));
    CHECK(action == CONFIG_VERSION);
}

static void test_usage_lists_every_setting(void)
{
    char text[8192] = {0};
    FILE *f = fmemopen(text, sizeof(text) - 1, "w");
    CHECK(f != NULL);
    config_usage(f, "recsysd");
    fclose(f);
    static const char *const want[] = {
        "Usage: recsysd",
        "--model FILE",
        "--listen HOST:PORT",
        "--threads N",
        "--max-request-bytes BYTES",
        "--grace-seconds SECONDS",
        "--log-level LEVEL",
        "env RECSYS_MODEL, required unless --models-dir",
        "--models-dir DIR",
        "env RECSYS_LISTEN, default 127.0.0.1:50051",
        "--help",
        "--version",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        CHECK_STR_HAS(text, want[i]);
    for (size_t i = 0; i < sizeof(env_vars) / sizeof(env_vars[0]); i++)
        CHECK_STR_HAS(text, env_vars[i]);
}

int main(int argc, char **argv)
{
    static const struct check_case cases[] = {
        CHECK_CASE(test_defaults),
        CHECK_CASE(test_flag_beats_env_beats_default),
        CHECK_CASE(test_last_flag_wins),
        CHECK_CASE(test_numeric_values),
        CHECK_CASE(test_log_levels),
        CHECK_CASE(test_bad_values),
        CHECK_CASE(test_bad_env_names_the_variable),
        CHECK_CASE(test_bad_command_lines),
        CHECK_CASE(test_help_and_version),
        CHECK_CASE(test_usage_lists_every_setting),
    };
    return check_main(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
