/*
 * check.h: the unit tests' assertion header.
 *
 * A test file defines functions `static void test_<name>(void)` and lists
 * them in a table passed to check_main(). A failed CHECK prints the
 * expression, file:line and, for CHECK_OK, the decoded error, then counts
 * the failure and returns from the test function (later tests still run).
 */
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"

static int check_failures;

#define CHECK(expr)                                                                                \
    do {                                                                                           \
        if (!(expr)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expr);               \
            check_failures++;                                                                      \
            return;                                                                                \
        }                                                                                          \
    } while (0)

/* CHECK_OK(rc_expr): the expression must return 0; prints the error otherwise. */
#define CHECK_OK(expr)                                                                             \
    do {                                                                                           \
        int check_rc_ = (expr);                                                                    \
        if (check_rc_ != 0) {                                                                      \
            fprintf(stderr, "%s:%d: %s returned %d %s (%s)\n", __FILE__, __LINE__, #expr,          \
                    check_rc_, err_name(check_rc_), err_strerror(check_rc_));                      \
            check_failures++;                                                                      \
            return;                                                                                \
        }                                                                                          \
    } while (0)

/* CHECK_RC(expr, want): the expression must return the error code @want. */
#define CHECK_RC(expr, want)                                                                       \
    do {                                                                                           \
        int check_rc_ = (expr);                                                                    \
        if (check_rc_ != (want)) {                                                                 \
            fprintf(stderr, "%s:%d: %s returned %d %s, want %s\n", __FILE__, __LINE__, #expr,      \
                    check_rc_, err_name(check_rc_), err_name(want));                               \
            check_failures++;                                                                      \
            return;                                                                                \
        }                                                                                          \
    } while (0)

/* CHECK_STR_HAS(haystack, needle): @needle occurs in @haystack. */
#define CHECK_STR_HAS(hay, needle)                                                                 \
    do {                                                                                           \
        const char *check_h_ = (hay);                                                              \
        if (strstr(check_h_, (needle)) == NULL) {                                                  \
            fprintf(stderr, "%s:%d: \"%s\" does not contain \"%s\"\n", __FILE__, __LINE__,         \
                    check_h_, (needle));                                                           \
            check_failures++;                                                                      \
            return;                                                                                \
        }                                                                                          \
    } while (0)

struct check_case {
    const char *name;
    void (*fn)(void);
};

#define CHECK_CASE(fn)                                                                             \
    {                                                                                              \
#fn, fn                                                                                    \
    }

/* Runs every case (or only those named on the command line); exit 1 if any failed. */
static inline int check_main(int argc, char **argv, const struct check_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int selected = argc < 2;
        for (int a = 1; a < argc; a++)
            selected |= strcmp(argv[a], cases[i].name) == 0;
        if (!selected)
            continue;
        int before = check_failures;
        cases[i].fn();
        fprintf(stderr, "%s %s\n", check_failures == before ? "ok  " : "FAIL", cases[i].name);
    }
    return check_failures ? 1 : 0;
}
