/*
 * fuzz.h: what the fuzz targets share.
 *
 * Each fuzz_<parser>.c defines LLVMFuzzerTestOneInput (and, when it needs
 * set-up, LLVMFuzzerInitialize). Built with -fsanitize=fuzzer it is a
 * libFuzzer binary; linked with run_corpus.c it replays a corpus as an
 * ordinary test. Besides not crashing, a target checks the promises the
 * parser's header makes about what it returns, with FUZZ_ASSERT: a broken
 * promise aborts, which both drivers report as a failure.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: broken promise: %s\n", __FILE__, __LINE__, #cond);             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* fuzz_assert_one_line - @msg is a non-empty one-line message: the parsers
 * escape the input bytes they echo (quote.h), so no control byte from the
 * input may reach it. */
static inline void fuzz_assert_one_line(const char *msg)
{
    FUZZ_ASSERT(msg[0] != '\0');
    for (const unsigned char *p = (const unsigned char *)msg; *p != '\0'; p++)
        FUZZ_ASSERT(*p >= 0x20 && *p != 0x7f);
}
