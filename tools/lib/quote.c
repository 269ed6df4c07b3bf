/*
 * quote: escape input text for messages (see quote.h).
 */
#include "tools/lib/quote.h"

#include <stdio.h>
#include <string.h>

/* Escapes with a letter; other control bytes become \xNN. */
static const char *const named[] = {['\n'] = "\\n", ['\r'] = "\\r", ['\t'] = "\\t"};

const char *quote(char *dst, size_t cap, const char *s, size_t len)
{
    static const char more[] = "...";
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[5] = {(char)c, 0};
        if (c < sizeof(named) / sizeof(named[0]) && named[c] != NULL)
            strcpy(esc, named[c]);
        else if (c < 0x20 || c == 0x7f)
            snprintf(esc, sizeof(esc), "\\x%02x", c);
        size_t w = strlen(esc);
        if (n + w + sizeof(more) > cap) {
            memcpy(dst + n, more, sizeof(more));
            return dst;
        }
        memcpy(dst + n, esc, w);
        n += w;
    }
    dst[n] = '\0';
    return dst;
}
