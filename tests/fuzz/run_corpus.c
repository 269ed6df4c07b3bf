/*
 * run_corpus: replay a fuzz target's corpus without libFuzzer.
 *
 *     corpus_<target> DIR|FILE...
 *
 * Feeds each file (every file of each directory, in name order) to the
 * target's LLVMFuzzerTestOneInput once, so the corpus runs as an ordinary
 * test with any compiler. Each input is copied into a buffer of exactly its
 * size, as libFuzzer does, so a sanitizer build catches a read past its end.
 * A target that crashes or aborts fails the test; so does a corpus with no
 * files, which would otherwise pass by testing nothing.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

/* libFuzzer calls LLVMFuzzerInitialize only when a target defines it. */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Reads @path whole into a new buffer of exactly its size. */
static int slurp(const char *path, uint8_t **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -errno;
    int rc = 0;
    uint8_t *buf = NULL;
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        rc = -errno;
        goto out;
    }
    /* malloc(0) may return NULL; a one-byte buffer still has size 0 to the target. */
    buf = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
    if (buf == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    if (fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        rc = -EIO;
        goto out;
    }
    *out = buf;
    *len = (size_t)st.st_size;
    buf = NULL;
out:
    free(buf);
    fclose(f);
    return rc;
}

static int run_file(const char *path)
{
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = slurp(path, &data, &len);
    if (rc != 0) {
        fprintf(stderr, "failed to read %s (%s)\n", path, strerror(-rc));
        return rc;
    }
    /* Shown with the output of a failed test: the input that crashed is the last one named. */
    fprintf(stderr, "running %s\n", path);
    LLVMFuzzerTestOneInput(data, len);
    free(data);
    return 0;
}

/* Runs every regular file of @dir; *count receives how many. */
static int run_dir(const char *dir, unsigned *count)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    if (n < 0) {
        int rc = -errno;
        fprintf(stderr, "failed to list %s (%s)\n", dir, strerror(-rc));
        return rc;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char path[PATH_MAX];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
        if (rc == 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            rc = run_file(path);
            ++*count;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR|FILE...\n", argv[0]);
        return 2;
    }
    if (LLVMFuzzerInitialize != NULL)
        LLVMFuzzerInitialize(&argc, &argv);
    unsigned count = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        int rc;
        if (S_ISDIR(st.st_mode)) {
            rc = run_dir(argv[i], &count);
        } else {
            rc = run_file(argv[i]);
            count++;
        }
        if (rc != 0)
            return 1;
    }
    if (count == 0) {
        fprintf(stderr, "no inputs: an empty corpus tests nothing\n");
        return 1;
    }
    printf("%u inputs ran\n", count);
    return 0;
}
