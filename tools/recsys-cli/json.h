/*
 * json: any protobuf-c message as one line of JSON, for scripts.
 *
 * The mapping is proto3's JSON mapping with two choices made for the shell
 * (jq, python -c): keys are the .proto field names (user_id, not userId), and
 * every field is written, defaults included, so a script can rely on a key
 * being there. Enums are their names, 64-bit integers are plain numbers (ids
 * and counts here stay far below 2^53), bytes are base64, and NaN/Infinity
 * are the strings "NaN", "Infinity" and "-Infinity".
 */
#pragma once

#include <protobuf-c/protobuf-c.h>
#include <stdio.h>

/* json_write_message - write @msg as a JSON object to @out, without a
 * trailing newline. Write errors are left in @out's error flag. */
void json_write_message(FILE *out, const ProtobufCMessage *msg);

/* json_write_string - write @s as a quoted JSON string: '"', '\\' and every
 * control character are escaped; other bytes, UTF-8 included, pass as they
 * are. */
void json_write_string(FILE *out, const char *s);
