/*
 * utf8: well-formed UTF-8, the one check every layer applies to the strings
 * it takes in (model ids and versions, CSV fields, request fields), since
 * protobuf strings must be UTF-8 and clients in other languages refuse to
 * decode a message that is not.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* utf8_valid - whether @len bytes at @s are well-formed UTF-8: no
 * stray continuation byte, no overlong form, no surrogate, nothing above
 * U+10FFFF. */
static inline int utf8_valid(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        unsigned char c = u[i];
        size_t n;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            n = 1, cp = c & 0x1f, min = 0x80;
        else if ((c & 0xf0) == 0xe0)
            n = 2, cp = c & 0x0f, min = 0x800;
        else if (c >= 0xf0 && c <= 0xf4)
            n = 3, cp = c & 0x07, min = 0x10000;
        else
            return 0;
        if (len - i - 1 < n)
            return 0;
        for (size_t k = 1; k <= n; k++) {
            if ((u[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (u[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += n + 1;
    }
    return 1;
}
