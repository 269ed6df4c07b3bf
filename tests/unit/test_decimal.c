/*
 * test_decimal: decimal_f32 against strtof, the C library's correctly
 * rounded reader, on every spelling Spark writes and on random decimals
 * that reach the fast path, its fallback and the boundaries between them.
 */
#include "tools/lib/decimal.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rng.h"

static int same_bits(float a, float b)
{
    return memcmp(&a, &b, sizeof(a)) == 0;
}

/* decimal_f32 reads all of @s and gives strtof's float, bit for bit. */
static int agrees(const char *s)
{
    float got = 0, want = strtof(s, NULL);
    const char *end = s + strlen(s), *stop = decimal_f32(s, end, &got);
    if (stop != end || !same_bits(got, want)) {
        fprintf(stderr, "'%s': got %a (stopped at %td), strtof %a\n", s, (double)got,
                stop ? stop - s : -1, (double)want);
        return 0;
    }
    return 1;
}

static void test_spellings(void)
{
    static const char *const cases[] = {
        /* Java's Float.toString, as Spark writes factors */
        "-0.16936848",
        "0.59802663",
        "1.0E-5",
        "9.999999E-4",
        "1.0E10",
        "-3.4028235E38",
        "1.4E-45",
        "1.17549435E-38",
        "0.0",
        "-0.0",
        "1.0",
        /* other writers: shortest, C's %g, fixed digits, integers */
        "0.1",
        "1e-05",
        "-2.5e+07",
        "1.00000001",
        "123456.7",
        "7",
        "+7",
        ".5",
        "5.",
        "0000.000125",
        /* more digits than 19, and exponents past the fast path */
        "3.14159265358979323846264338327950288",
        "1e-30",
        "1e30",
        "1.5e-39",
        "4e38",
        "1e-50",
        "0.00000000000000000000000000000000000000000000140129846432481707",
        /* ties and near-ties of float rounding */
        "16777217",
        "16777219",
        "16777217.000000001",
        "16777216.999999999",
        "33554434",
        "1.00000005960464477539062",
        "1.00000005960464477539063",
        "1.00000005960464477539061",
        "0.500000029802322387695312",
        "3.4028235677973366e38",
        "3.4028236e38",
        /* Sixteen digits within half a double's ulp of a float midpoint,
         * not on it: the nearest double is the midpoint, and rounding that
         * to float would tie the wrong way (found by searching midpoints of
         * random floats for such decimals). */
        "2.519488614052534e-02",
        "7.397829055786133e+01",
        "3.933047676086426e+01",
        "1.731609972921433e-05",
        "3.179977059364319e+00",
        "5.591449553321581e-05",
        "7.394295930862427e+00",
        "4.128262214362621e-02",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        CHECK(agrees(cases[i]));
}

static void test_refused(void)
{
    static const char *const cases[] = {"",          "-",   "+",   ".",   "-.",  "e5",
                                        ".e5",       "1e",  "1e+", "1E-", "NaN", "Infinity",
                                        "-Infinity", "inf", "nan", "\t1", " 1",  "x1"};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        float f;
        const char *s = cases[i];
        if (decimal_f32(s, s + strlen(s), &f) != NULL) {
            fprintf(stderr, "'%s' was read as %g\n", s, (double)f);
            CHECK(0);
        }
    }
}

/* The number ends where the grammar does; the caller judges what follows. */
static void test_stops(void)
{
    float f;
    const char *s = "0.25\t-1.5E2\n";
    const char *p = decimal_f32(s, s + strlen(s), &f);
    CHECK(p == s + 4 && f == 0.25f);
    p = decimal_f32(p + 1, s + strlen(s), &f);
    CHECK(p == s + 11 && f == -150.0f);
    /* @end bounds it: digits past @end are not read. */
    p = decimal_f32(s, s + 3, &f);
    CHECK(p == s + 3 && f == 0.2f);
    /* "1e" followed by a tab is not a number */
    s = "1e\t";
    CHECK(decimal_f32(s, s + 3, &f) == NULL);
}

/* Every finite float, printed as Java would (nine digits) and with the
 * shortest digits that round-trip, comes back bit for bit. */
static void test_round_trip(void)
{
    rng_state = 7;
    char buf[64];
    for (int i = 0; i < 500000; i++) {
        uint32_t bits = (uint32_t)rng_next();
        float f;
        memcpy(&f, &bits, sizeof(f));
        if (!isfinite(f))
            continue;
        snprintf(buf, sizeof(buf), "%.9g", (double)f);
        CHECK(agrees(buf));
        float back;
        decimal_f32(buf, buf + strlen(buf), &back);
        CHECK(same_bits(back, f));
        for (int d = 1; d <= 9; d++) {
            snprintf(buf, sizeof(buf), "%.*e", d - 1, (double)f);
            if (strtof(buf, NULL) == f) {
                CHECK(agrees(buf));
                break;
            }
        }
    }
}

/* Random decimals of 1 to 22 digits and exponents around the fast path's
 * limits: every one as strtof reads it. */
static void test_random_decimals(void)
{
    rng_state = 11;
    char buf[96];
    for (int i = 0; i < 1000000; i++) {
        int n = 0, digits = 1 + (int)rng_below(22), point = (int)rng_below((uint32_t)digits + 1);
        if (rng_below(2))
            buf[n++] = '-';
        for (int d = 0; d < digits; d++) {
            if (d == point && d > 0)
                buf[n++] = '.';
            buf[n++] = (char)('0' + rng_below(10));
        }
        int style = (int)rng_below(3);
        if (style > 0)
            n += snprintf(buf + n, sizeof(buf) - (size_t)n, "%c%d", style == 1 ? 'e' : 'E',
                          (int)rng_below(91) - 50);
        buf[n] = '\0';
        CHECK(agrees(buf));
    }
}

int main(int argc, char **argv)
{
    static const struct check_case all[] = {
        CHECK_CASE(test_spellings),  CHECK_CASE(test_refused),         CHECK_CASE(test_stops),
        CHECK_CASE(test_round_trip), CHECK_CASE(test_random_decimals),
    };
    return check_main(argc, argv, all, sizeof(all) / sizeof(all[0]));
}
