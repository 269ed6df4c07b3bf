#include "tools/recsys-cli/json.h"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>

void json_write_string(FILE *out, const char *s)
{
    /* The two-character escapes JSON defines; other control characters
     * become \u00XX. */
    static const char short_escape[0x20] = {
        ['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r', ['\t'] = 't',
    };
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20 && short_escape[*p] != 0)
            fprintf(out, "\\%c", short_escape[*p]);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(out, "\\u%04x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

static void write_base64(FILE *out, const ProtobufCBinaryData *b)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    fputc('"', out);
    for (size_t i = 0; i < b->len; i += 3) {
        size_t n = b->len - i < 3 ? b->len - i : 3;
        uint32_t v = (uint32_t)b->data[i] << 16;
        if (n > 1)
            v |= (uint32_t)b->data[i + 1] << 8;
        if (n > 2)
            v |= b->data[i + 2];
        for (size_t k = 0; k < 4; k++)
            fputc(k <= n ? digits[(v >> (18 - 6 * k)) & 0x3f] : '=', out);
    }
    fputc('"', out);
}

/* JSON has no NaN or infinities; proto3's mapping spells them as strings.
 * %.9g prints every float exactly enough to read back the same value. */
static void write_double(FILE *out, double v, int digits)
{
    if (isnan(v))
        fputs("\"NaN\"", out);
    else if (isinf(v))
        fputs(v > 0 ? "\"Infinity\"" : "\"-Infinity\"", out);
    else
        fprintf(out, "%.*g", digits, v);
}

static void write_enum(FILE *out, const ProtobufCEnumDescriptor *d, int value)
{
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(d, value);
    if (ev != NULL)
        json_write_string(out, ev->name);
    else
        fprintf(out, "%d", value); /* a value newer than our copy of the .proto */
}

/* Bytes one element of each type takes in a message struct or repeated array. */
static const size_t element_size[] = {
    [PROTOBUF_C_TYPE_INT32] = 4,
    [PROTOBUF_C_TYPE_SINT32] = 4,
    [PROTOBUF_C_TYPE_SFIXED32] = 4,
    [PROTOBUF_C_TYPE_INT64] = 8,
    [PROTOBUF_C_TYPE_SINT64] = 8,
    [PROTOBUF_C_TYPE_SFIXED64] = 8,
    [PROTOBUF_C_TYPE_UINT32] = 4,
    [PROTOBUF_C_TYPE_FIXED32] = 4,
    [PROTOBUF_C_TYPE_UINT64] = 8,
    [PROTOBUF_C_TYPE_FIXED64] = 8,
    [PROTOBUF_C_TYPE_FLOAT] = 4,
    [PROTOBUF_C_TYPE_DOUBLE] = 8,
    [PROTOBUF_C_TYPE_BOOL] = sizeof(protobuf_c_boolean),
    [PROTOBUF_C_TYPE_ENUM] = sizeof(int),
    [PROTOBUF_C_TYPE_STRING] = sizeof(char *),
    [PROTOBUF_C_TYPE_BYTES] = sizeof(ProtobufCBinaryData),
    [PROTOBUF_C_TYPE_MESSAGE] = sizeof(ProtobufCMessage *),
};

static void write_value(FILE *out, const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        fprintf(out, "%" PRId32, *(const int32_t *)p);
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        fprintf(out, "%" PRIu32, *(const uint32_t *)p);
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        fprintf(out, "%" PRId64, *(const int64_t *)p);
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        fprintf(out, "%" PRIu64, *(const uint64_t *)p);
        break;
    case PROTOBUF_C_TYPE_FLOAT:
        write_double(out, *(const float *)p, 9);
        break;
    case PROTOBUF_C_TYPE_DOUBLE:
        write_double(out, *(const double *)p, 17);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        fputs(*(const protobuf_c_boolean *)p ? "true" : "false", out);
        break;
    case PROTOBUF_C_TYPE_ENUM:
        write_enum(out, f->descriptor, *(const int *)p);
        break;
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(const char *const *)p;
        json_write_string(out, s != NULL ? s : "");
        break;
    }
    case PROTOBUF_C_TYPE_BYTES:
        write_base64(out, p);
        break;
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(const ProtobufCMessage *const *)p;
        if (m != NULL)
            json_write_message(out, m);
        else
            fputs("null", out);
        break;
    }
    }
}

/* Whether a singular field is set. Only fields with explicit presence (a
 * oneof member, a proto2 or proto3 `optional`) can be unset; the rest are
 * always written, their zero value included. */
static bool is_present(const ProtobufCFieldDescriptor *f, const char *base)
{
    const char *q = base + f->quantifier_offset;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return *(const uint32_t *)q == f->id;
    if (f->label != PROTOBUF_C_LABEL_OPTIONAL)
        return true;
    if (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE)
        return *(const void *const *)(base + f->offset) != NULL;
    return *(const protobuf_c_boolean *)q;
}

void json_write_message(FILE *out, const ProtobufCMessage *msg)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    const char *base = (const char *)msg;
    const char *sep = "";
    fputc('{', out);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *member = base + f->offset;
        if (f->label != PROTOBUF_C_LABEL_REPEATED && !is_present(f, base))
            continue;
        fputs(sep, out);
        sep = ",";
        json_write_string(out, f->name);
        fputc(':', out);
        if (f->label != PROTOBUF_C_LABEL_REPEATED) {
            write_value(out, f, member);
            continue;
        }
        size_t n = *(const size_t *)(base + f->quantifier_offset);
        const char *elems = *(const char *const *)member;
        fputc('[', out);
        for (size_t k = 0; k < n; k++) {
            if (k > 0)
                fputc(',', out);
            write_value(out, f, elems + k * element_size[f->type]);
        }
        fputc(']', out);
    }
    fputc('}', out);
}
