#include "base/pem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pem_read(const char *path, const char *what, char **out, struct err *e)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return err_set(e, ERR_INVALID, "cannot read the %s %s (%s)", what, path, strerror(errno));
    char *buf = malloc(PEM_MAX + 1);
    size_t n = buf != NULL ? fread(buf, 1, PEM_MAX + 1, f) : 0;
    int failed = ferror(f);
    fclose(f);
    if (buf == NULL)
        return err_set(e, -ENOMEM, "out of memory");
    buf[n <= PEM_MAX ? n : PEM_MAX] = '\0'; /* pem_free wipes up to here */
    if (!failed && n > 0 && n <= PEM_MAX && strstr(buf, "-----BEGIN ") != NULL) {
        *out = buf;
        return 0;
    }
    pem_free(buf);
    return err_set(e, ERR_INVALID, "the %s %s is %s", what, path,
                   failed        ? "unreadable"
                   : n > PEM_MAX ? "too large"
                                 : "not a PEM file");
}

void pem_free(char *pem)
{
    if (pem == NULL)
        return;
    explicit_bzero(pem, strlen(pem));
    free(pem);
}
