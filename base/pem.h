/*
 * pem: read a PEM file (a certificate chain, a key, CA certificates) for
 * gRPC's TLS credentials, which take them as strings. Shared by the daemon
 * and recsys-cli.
 */
#pragma once

#include "base/err.h"

/* PEM files larger than this are refused: certificate chains are kilobytes. */
#define PEM_MAX (1u << 20)

/* pem_read - the whole of @path as a NUL-terminated string in *out, which
 * the caller frees with pem_free. @what names the file in errors ("TLS
 * certificate").
 * Returns 0, -ENOMEM, or ERR_INVALID when the file cannot be read, is empty,
 * larger than PEM_MAX or holds no "-----BEGIN " line. */
int pem_read(const char *path, const char *what, char **out, struct err *e);

/* pem_free - wipe and free what pem_read returned (a key is a secret, and
 * freed memory is reused). NULL is a no-op. */
void pem_free(char *pem);
