/*
 * scratch: the fuzz targets' private directory (see scratch.h).
 */
#include "scratch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* "/dev/shm/recsys-fuzz-XXXXXX" */
static char dir[64];

/* Removes the directory and the files in it; the targets make no subdirectories. */
static void remove_dir(void)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            unlinkat(dirfd(d), de->d_name, 0);
    closedir(d);
    rmdir(dir);
}

static void make_dir(void)
{
    struct stat st;
    const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof(dir), "%s/recsys-fuzz-XXXXXX", base);
    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, "failed to create a scratch directory in %s (%s)\n", base, strerror(errno));
        exit(1);
    }
    atexit(remove_dir);
}

const char *scratch_path(const char *name)
{
    static char path[PATH_MAX];
    if (dir[0] == '\0')
        make_dir();
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return path;
}

int scratch_write(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int rc = 0;
    for (const char *p = data, *end = p + len; p < end;) {
        ssize_t n = write(fd, p, (size_t)(end - p));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            break;
        }
        p += n;
    }
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    return rc;
}
