/*
 * wire: what a request's encoded bytes must satisfy that protobuf-c's
 * unpack does not check.
 *
 * protobuf-c hands a string field over as a NUL-terminated C string and does
 * not validate it: an id "u000042\0junk" would be served as "u000042", and
 * an id that is not UTF-8 would be looked up, echoed, and break every client
 * in a language whose protobuf runtime checks strings (proto3 requires
 * UTF-8). So before unpacking, the server walks the message's wire format
 * once, with its descriptor, and refuses both.
 */
#pragma once

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* wire_check_strings - whether every string field of the message of type @d
 * encoded in @data[0..@len), nested messages included, is UTF-8 without a
 * NUL byte. Framing that is not valid protobuf is left to the unpack that
 * follows: it is not reported here.
 * Returns 0, or ERR_INVALID with "<message>.<field>: ..." in @e (may be NULL). */
int wire_check_strings(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t len,
                       struct err *e);
