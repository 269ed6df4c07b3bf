#include "server/wire.h"

#include <string.h>

#include "base/utf8.h"

/* Deeper than any message of ours nests (BatchRecommendRequest holds
 * RecommendRequests); a hostile message nesting further is not walked
 * on, and unpack judges it. */
#define WIRE_DEPTH_MAX 8

enum { WIRE_VARINT = 0, WIRE_64BIT = 1, WIRE_LEN = 2, WIRE_32BIT = 5 };

/* varint - decode one at *@p (< @end), advancing *@p. Returns 0, or -1 on
 * a truncated or over-long one. */
static int varint(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

/* check_string - the bytes of string field @f of message @d. */
static int check_string(const ProtobufCMessageDescriptor *d, const ProtobufCFieldDescriptor *f,
                        const uint8_t *s, size_t len, struct err *e)
{
    if (memchr(s, '\0', len) != NULL)
        return err_set(e, ERR_INVALID, "%s.%s contains a NUL byte", d->short_name, f->name);
    if (!utf8_valid((const char *)s, len))
        return err_set(e, ERR_INVALID, "%s.%s is not valid UTF-8", d->short_name, f->name);
    return 0;
}

static int walk(const ProtobufCMessageDescriptor *d, const uint8_t *p, const uint8_t *end,
                unsigned depth, struct err *e)
{
    if (depth > WIRE_DEPTH_MAX)
        return 0;
    while (p < end) {
        uint64_t key, n;
        if (varint(&p, end, &key) != 0)
            return 0;
        switch (key & 7) {
        case WIRE_VARINT:
            if (varint(&p, end, &n) != 0)
                return 0;
            continue;
        case WIRE_64BIT:
            n = 8;
            break;
        case WIRE_32BIT:
            n = 4;
            break;
        case WIRE_LEN:
            if (varint(&p, end, &n) != 0)
                return 0;
            break;
        default:
            return 0; /* groups, or not protobuf at all */
        }
        if (n > (uint64_t)(end - p))
            return 0;
        const ProtobufCFieldDescriptor *f =
            (key & 7) == WIRE_LEN && key >> 3 <= UINT32_MAX
                ? protobuf_c_message_descriptor_get_field(d, (unsigned)(key >> 3))
                : NULL;
        int rc = 0;
        if (f != NULL && f->type == PROTOBUF_C_TYPE_STRING)
            rc = check_string(d, f, p, (size_t)n, e);
        else if (f != NULL && f->type == PROTOBUF_C_TYPE_MESSAGE)
            rc = walk(f->descriptor, p, p + n, depth + 1, e);
        if (rc != 0)
            return rc;
        p += n;
    }
    return 0;
}

int wire_check_strings(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t len,
                       struct err *e)
{
    return walk(d, data, data + len, 0, e);
}
