/*
 * lmdbcheck: the LMDB structure of a model file, checked from its raw bytes
 * before LMDB reads it.
 *
 * LMDB trusts its own pages: a damaged meta page, page header or node makes
 * liblmdb divide by zero, assert, fault or loop forever inside
 * mdb_env_open, mdb_dbi_open or a lookup. A daemon that reloads models must
 * refuse such a file instead, so model_open runs this check first. It
 * accepts exactly the shape recsysd writes (LMDB 0.9.24, 64-bit, named
 * sub-DBs without DUPSORT or INTEGERKEY in the main DB); the layout it
 * checks is described at the top of lmdbcheck.c.
 */
#pragma once

#include "base/err.h"

/* lmdbcheck_fd - check the LMDB structure of the file open for reading at
 * @fd: both meta pages, then every page reachable from the main DB and from
 * each sub-DB it names, each at most once. Reads page and node headers with
 * pread, never past the size fstat reports; overflow page contents are not
 * read. @fd is left open and its offset unchanged.
 * Returns 0; ERR_FORMAT when the file is not an LMDB file of that shape or
 * is damaged, with the problem (and where) in @e; -errno when fstat, pread
 * or an allocation fails. */
int lmdbcheck_fd(int fd, struct err *e);

/* lmdbcheck_path - lmdbcheck_fd on @path, opened read-only for the call.
 * Returns as lmdbcheck_fd, or -errno when @path cannot be opened. */
int lmdbcheck_path(const char *path, struct err *e);

/* lmdbcheck_live - lmdbcheck_path on the data file of an environment that
 * is written to over time (the daemon's state): its last page in use may
 * lie past the end of the file (allocated and freed within one
 * transaction, never written), so only the pages the file holds may be
 * reached from the trees. */
int lmdbcheck_live(const char *path, struct err *e);
