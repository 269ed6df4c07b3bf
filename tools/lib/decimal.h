/*
 * decimal: decimal text to float32, correctly rounded, fast enough to read
 * a Spark export of 10^7 x 64 factors in seconds.
 *
 * Spark writes each factor with Java's Float.toString: at most nine
 * significant digits, plain ("-0.16936848") or in scientific notation
 * ("1.0E-5"). strtof reads those exactly but costs about 100 ns a number
 * (it handles locales, hex, and any length); decimal_f32 costs about 15 by
 * taking the common case through one double operation:
 *
 *  1. Up to 19 significant digits go into a uint64 m and the exponent into
 *     e, so the value is exactly m * 10^e.
 *  2. With m < 2^53 and |e| <= 22, m and 10^|e| are exact doubles, so one
 *     multiplication or division gives d, the double nearest m * 10^e
 *     (Clinger's fast path).
 *  3. Rounding d to float gives the float nearest m * 10^e unless d sits
 *     exactly halfway between two floats: every such midpoint is itself a
 *     double, so none can lie strictly between the value and its nearest
 *     double, and both round alike. When d is a midpoint, or the value is
 *     outside the fast path (more digits, a larger exponent, a subnormal
 *     float), strtof decides.
 *
 * The grammar is [-+]?digits[.digits]?([eE][-+]?digits)? or
 * [-+]?.digits(...): no spaces, no hex, no "inf" or "nan" (Spark writes
 * NaN and Infinity for non-finite factors, which the caller names).
 */
#pragma once

/* decimal_f32 - parse the number at [@s, @end).
 * Returns the first byte after it and sets *out, or NULL when the bytes do
 * not start with a number in the grammar above. The number need not run
 * to @end: the caller checks what follows (a separator). A value beyond
 * float's range becomes +-inf, one below its smallest subnormal +-0, as
 * strtof rounds them. */
const char *decimal_f32(const char *s, const char *end, float *out);
