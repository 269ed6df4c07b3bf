/*
 * publish: write a model file for serving and say what was written. The
 * importer, the demo and the trainer all end here, so the three print the
 * same summary line.
 */
#pragma once

#include "base/err.h"
#include "model/writer.h"

/* publish_model - model_write @src to @path (atomically: write aside,
 * fsync, rename) and print the one-line summary of what was written on
 * stdout. Returns 0 or model_write's error, with
 * "failed to write <path>: <reason>" in @e. */
int publish_model(const char *path, const struct model_src *src, struct err *e);
