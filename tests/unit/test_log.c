/* Unit tests of src/log: one event is one line, whatever text it carries. */
#define _GNU_SOURCE /* memfd_create */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/log.h"
#include "check.h"

/* capture - run log_msg's writes into a memory file; its content in @out. */
static size_t capture(void (*emit)(void), char *out, size_t size)
{
    int fd = memfd_create("log", 0), saved = dup(STDERR_FILENO);
    if (fd < 0 || saved < 0)
        return 0;
    dup2(fd, STDERR_FILENO);
    emit();
    dup2(saved, STDERR_FILENO);
    close(saved);
    ssize_t n = pread(fd, out, size - 1, 0);
    close(fd);
    out[n > 0 ? n : 0] = '\0';
    return n > 0 ? (size_t)n : 0;
}

static void emit_hostile(void)
{
    /* As a model file's id or a client's name could be. */
    log_info("refused id \"%s\" from %s", "a\nFAKE 2026-01-01 ERROR forged\r\x1b[31m", "x\x7f");
}

static void test_control_characters_are_escaped(void)
{
    char out[2048];
    size_t n = capture(emit_hostile, out, sizeof(out));
    CHECK(n > 0 && out[n - 1] == '\n');
    CHECK(memchr(out, '\n', n - 1) == NULL && memchr(out, '\r', n) == NULL);
    CHECK_STR_HAS(
        out, "INFO  refused id \"a\\x0aFAKE 2026-01-01 ERROR forged\\x0d\\x1b[31m\" from x\\x7f");
}

static void emit_long(void)
{
    char big[3000];
    memset(big, '\n', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    log_warn("%s", big);
}

static void test_a_long_event_is_cut_to_one_line(void)
{
    char out[4096];
    size_t n = capture(emit_long, out, sizeof(out));
    CHECK(n > 900 && n <= 1024);
    CHECK(out[n - 1] == '\n' && memchr(out, '\n', n - 1) == NULL);
}

int main(int argc, char **argv)
{
    static const struct check_case cases[] = {
        CHECK_CASE(test_control_characters_are_escaped),
        CHECK_CASE(test_a_long_event_is_cut_to_one_line),
    };
    return check_main(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
