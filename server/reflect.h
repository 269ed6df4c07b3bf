/*
 * reflect: gRPC server reflection, so grpcurl, ghz and similar tools find
 * the daemon's services and message types by asking it, without .proto
 * files (`grpcurl -plaintext HOST:PORT list`, `describe`, calls by name).
 *
 * Served as /grpc.reflection.v1.ServerReflection/ServerReflectionInfo and
 * its older twin grpc.reflection.v1alpha (the same messages on the wire,
 * which older clients still ask for first). Each request message of the
 * stream gets one response:
 *
 *   list_services                   every service of the daemon
 *   file_by_filename                that file, then the files it imports
 *   file_containing_symbol          the file defining a service, method,
 *                                   message or enum (fully qualified), then
 *                                   the files it imports
 *   all_extension_numbers_of_type   none: the protos define no extensions
 *   anything else, an unknown name  an error_response (NOT_FOUND,
 *                                   INVALID_ARGUMENT); the stream goes on
 *
 * What it describes is compiled in: the FileDescriptorSet protoc writes
 * for the protos of the served services (CMakeLists.txt, SERVED_PROTOS),
 * walked once, at the first request, into an index of files and symbols.
 */
#pragma once

#include "engine/query.h"
#include "grpc/reflection/v1/reflection.pb-c.h"

/* reflect_run - answer one reflection request. Needs no model (q->model
 * may be NULL); the response lives in q->arena. Returns 0, -ENOMEM, or
 * ERR_INTERNAL if the compiled-in descriptors do not parse (a build bug). */
int reflect_run(const struct query *q, const Grpc__Reflection__V1__ServerReflectionRequest *req,
                Grpc__Reflection__V1__ServerReflectionResponse **out, struct err *e);
