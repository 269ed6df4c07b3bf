/*
 * decimal: the fast path and its fallback (see decimal.h for why each step
 * is exact).
 */
#include "tools/lib/decimal.h"

#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* 10^0 .. 10^22: every one an exact double (10^22 = 2^22 * 5^22, and 5^22 <
 * 2^53), the widest range where step 2 of decimal.h is one rounding. */
static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
#define POW10_MAX 22

/* A number of at most this many bytes goes to strtof; longer text is not
 * something a float needs (nine digits and an exponent fit in 16). */
#define FALLBACK_MAX 128

/* Whether double @d lies exactly halfway between two adjacent normal
 * floats: its significand then has 25 significant bits, so of the double's
 * 52 fraction bits the low 28 are zero and the 29th is one. */
static int float_midpoint(double d)
{
    uint64_t bits;
    memcpy(&bits, &d, sizeof(bits));
    return (bits & ((UINT64_C(1) << 29) - 1)) == UINT64_C(1) << 28;
}

static const char *fallback(const char *s, const char *stop, float *out)
{
    char buf[FALLBACK_MAX + 1];
    size_t n = (size_t)(stop - s);
    if (n > FALLBACK_MAX)
        return NULL;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end;
    *out = strtof(buf, &end);
    return end == buf + n ? stop : NULL;
}

const char *decimal_f32(const char *s, const char *end, float *out)
{
    const char *p = s;
    int neg = 0;
    if (p < end && (*p == '-' || *p == '+'))
        neg = *p++ == '-';
    uint64_t m = 0;
    int digits = 0, scale = 0, any = 0; /* significant digits kept, their exponent shift */
    for (; p < end && (unsigned)(*p - '0') < 10; p++, any = 1) {
        if (m == 0 && *p == '0')
            continue;
        if (digits < 19)
            m = m * 10 + (uint64_t)(*p - '0'), digits++;
        else
            scale++, digits++;
    }
    if (p < end && *p == '.') {
        for (p++; p < end && (unsigned)(*p - '0') < 10; p++, any = 1) {
            if (m == 0 && *p == '0') {
                scale--;
                continue;
            }
            if (digits < 19)
                m = m * 10 + (uint64_t)(*p - '0'), digits++, scale--;
            else
                digits++;
        }
    }
    if (!any)
        return NULL;
    int exp = 0;
    if (p < end && (*p == 'e' || *p == 'E')) {
        const char *q = p + 1;
        int eneg = 0;
        if (q < end && (*q == '-' || *q == '+'))
            eneg = *q++ == '-';
        if (q == end || (unsigned)(*q - '0') >= 10)
            return NULL;
        for (; q < end && (unsigned)(*q - '0') < 10; q++)
            if (exp < 100000)
                exp = exp * 10 + (*q - '0');
        exp = eneg ? -exp : exp;
        p = q;
    }
    if (m == 0) {
        *out = neg ? -0.0f : 0.0f;
        return p;
    }
    int e10 = scale + exp;
    if (digits <= 19 && m < (UINT64_C(1) << 53) && e10 >= -POW10_MAX && e10 <= POW10_MAX) {
        double d = (double)m;
        d = e10 < 0 ? d / pow10_exact[-e10] : d * pow10_exact[e10];
        if (d >= (double)FLT_MIN && !float_midpoint(d)) {
            float f = (float)d;
            *out = neg ? -f : f;
            return p;
        }
    }
    return fallback(s, p, out);
}
