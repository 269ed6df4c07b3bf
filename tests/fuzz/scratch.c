/*
 * scratch: files for the fuzz targets (see scratch.h).
 */
#define _GNU_SOURCE /* memfd_create */
#include "scratch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* "/dev/shm/recsys-fuzz-XXXXXX" */
static char dir[64];

static void die(const char *action)
{
    fprintf(stderr, "failed to %s (%s)\n", action, strerror(errno));
    exit(1);
}

/* Writes all of @data at offset 0 of @fd; returns 0 or -errno. */
static int write_all(int fd, const void *data, size_t len)
{
    for (size_t done = 0; done < len;) {
        ssize_t n = pwrite(fd, (const char *)data + done, len - done, (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        done += (size_t)n;
    }
    return 0;
}

const char *scratch_file(const void *data, size_t len)
{
    static int fd = -1;
    static char path[32];
    if (fd < 0) {
        if ((fd = memfd_create("fuzz-input", MFD_CLOEXEC)) < 0)
            die("create a memory file");
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    }
    int rc = ftruncate(fd, 0) != 0 ? -errno : write_all(fd, data, len);
    if (rc != 0) {
        errno = -rc;
        die("fill the memory file");
    }
    return path;
}

/* Removes the directory and the files in it; nothing makes subdirectories. */
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

const char *scratch_path(const char *name)
{
    static char path[PATH_MAX];
    if (dir[0] == '\0') {
        struct stat st;
        int shm = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode);
        snprintf(dir, sizeof(dir), "%s/recsys-fuzz-XXXXXX", shm ? "/dev/shm" : "/tmp");
        if (mkdtemp(dir) == NULL)
            die("create a scratch directory");
        atexit(remove_dir);
    }
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return path;
}

int scratch_write(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int rc = write_all(fd, data, len);
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    return rc;
}
