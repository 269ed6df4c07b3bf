/*
 * scratch: files for the fuzz targets.
 *
 * Some parsers only read files (ids_read, model_open), so their targets
 * hand each input over as a file. scratch_file() keeps it in memory (a
 * memfd, named by its /proc/self/fd path), so fuzzing writes nothing to
 * disk and a crashing run leaves nothing behind. The request target needs a
 * real directory for the reloader to watch: scratch_path() makes one, on
 * tmpfs when the machine has one, removed at a normal exit.
 */
#pragma once

#include <stddef.h>

/* scratch_file - the path of a file holding exactly @len bytes of @data.
 * The same file is reused by the next call, so whatever read it must be
 * done with it. Exits the process if the file cannot be made (a fuzz
 * target cannot run without it). */
const char *scratch_file(const void *data, size_t len);

/* scratch_path - "<dir>/<name>" in the private directory, created on first
 * use. Returns a static buffer overwritten by the next call; exits the
 * process when the directory cannot be created. */
const char *scratch_path(const char *name);

/* scratch_write - replace the file @path with @len bytes of @data.
 * Returns 0 or -errno. */
int scratch_write(const char *path, const void *data, size_t len);
