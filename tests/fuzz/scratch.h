/*
 * scratch: a private directory for the files the fuzz targets write.
 *
 * Some parsers only read files (ids_read, model_open), so their targets
 * write each input to a file first. The directory is on tmpfs when the
 * machine has one, since a model is written and opened per input, and it is
 * removed with its files when the process exits normally.
 */
#pragma once

#include <stddef.h>

/* scratch_path - "<dir>/<name>", creating the directory on first use.
 * Returns a static buffer overwritten by the next call; exits the process
 * when the directory cannot be created (a fuzz target cannot run without it). */
const char *scratch_path(const char *name);

/* scratch_write - replace the file @path with @len bytes of @data.
 * Returns 0 or -errno. */
int scratch_write(const char *path, const void *data, size_t len);
