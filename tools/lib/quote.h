/*
 * quote: text from input files made safe for a one-line error message.
 *
 * Ids, fields and header keys are echoed in messages so the user can find
 * them, but they come from files that may hold anything: a CR or newline
 * would split the message, other control bytes would garble the terminal.
 * Those are shown escaped (\r, \n, \t, \xNN); other bytes, UTF-8 included,
 * pass through, and a long value is cut short with "...".
 */
#pragma once

#include <stddef.h>

/* Room for the longest id (MODEL_ID_MAX) shown with a few escapes. */
#define QUOTE_BUF 320

/* quote - @len bytes of @s, escaped as above, into @dst (@cap bytes, at
 * least 8). Returns @dst, so a call can be a printf argument. */
const char *quote(char *dst, size_t cap, const char *s, size_t len);
