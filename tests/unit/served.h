/*
 * served.h: a model as the query tests use it — written with model_write to a
 * fresh temporary directory, opened with one lookup slot, with an arena and
 * a struct query on it. served_close removes everything again.
 */
#pragma once

#include <dirent.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/arena.h"
#include "base/err.h"
#include "engine/query.h"
#include "model/model.h"
#include "model/writer.h"

struct served {
    char dir[64];
    char path[128];
    struct model *model;
    struct arena *arena;
    struct query q;
};

/* Remove the files directly in @dir, then @dir. */
static inline void served_rmdir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char p[512];
    while (d != NULL && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        unlink(p);
    }
    if (d != NULL)
        closedir(d);
    rmdir(dir);
}

/* Returns 0, or the failing call's code after printing its message. */
static inline int served_open(struct served *s, const struct model_src *src, size_t arena_bytes)
{
    struct err e = {0};
    strcpy(s->dir, "/tmp/recsys-test-XXXXXX");
    if (mkdtemp(s->dir) == NULL)
        return -1;
    snprintf(s->path, sizeof(s->path), "%s/model.lmdb", s->dir);
    int rc = model_write(s->path, src, &e);
    if (rc == 0)
        rc = model_open(s->path, 1, &s->model, &e);
    if (rc == 0)
        rc = arena_create(arena_bytes, &s->arena);
    if (rc != 0) {
        fprintf(stderr, "fixture: %s (%s)\n", e.msg, err_strerror(rc));
        return rc;
    }
    s->q = (struct query){
        .model = s->model, .model_name = MODELS_DEFAULT, .slot = 0, .arena = s->arena};
    return 0;
}

static inline void served_close(struct served *s)
{
    model_close(s->model);
    arena_destroy(s->arena);
    served_rmdir(s->dir);
}
