/*
 * tiny_model: small valid model files, written with model_write.
 *
 * They seed the model reader's corpus and give the request target a model
 * to query. Every variant has the items "i0".."i4" in categories "c0" and
 * "c1"; the users, the dimension, the bias column and whether the file
 * holds a training record differ.
 */
#pragma once

#include "base/err.h"

/* The variants: 0 has users "u0".."u2" who own items (the request
 * target's model), the others vary the shape of the file. */
#define TINY_MODEL_VARIANTS 3

/* tiny_model_write - write variant @variant to @path.
 * Returns 0 or a model_write error, with the text in @e. */
int tiny_model_write(const char *path, unsigned variant, struct err *e);
