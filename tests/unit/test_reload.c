/*
 * test_reload: the model hot swap, against real files in a temporary
 * directory: the first load, loads on rename and on request, refusals,
 * coalescing, pre-faulting, 200 swaps under concurrent readers with
 * nothing left mapped or open afterwards, overwrites of the served file
 * in place, with and without a lease, and writers of a file being loaded.
 *
 * Two planted models tell a consistent snapshot from a mixed one: "A" has
 * 40 items and "B" 70, and item i's first factor is 1000 + i in A and
 * 2000 + i in B, so a reader that saw the version of one model and the
 * rows or ids of the other notices.
 */
#define _GNU_SOURCE /* RUSAGE_THREAD, nftw */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/capability.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "engine/reload.h"
#include "engine/scan.h"
#include "model/model.h"
#include "model/writer.h"

/* ==== planted models ==================================================== */

struct plant {
    const char *version;
    uint32_t items;
    float base; /* item i's first factor is base + i */
};

static const struct plant MODEL_A = {"A", 40, 1000.0f};
static const struct plant MODEL_B = {"B", 70, 2000.0f};

enum { DIM = 8, USERS = 2, READERS = 4 };

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* write_model - publish a model at @path with model_write (temp file,
 * fsync, rename). @dim floats per vector, item i = "item-<i>", with the
 * reduced copies @quantize asks for (model_src). */
static int write_model(const char *path, const char *version, uint32_t items, uint32_t dim,
                       float base, unsigned quantize)
{
    static const char *const uids[USERS] = {"u0", "u1"};
    static const char *const cats[1] = {"c"};
    float *itf = calloc((size_t)items * dim, sizeof(float));
    float *uf = calloc((size_t)USERS * dim, sizeof(float));
    char **iids = calloc(items, sizeof(char *));
    struct model_item_attr *attrs = calloc(items, sizeof(*attrs));
    int rc = -ENOMEM;
    if (itf == NULL || uf == NULL || iids == NULL || attrs == NULL)
        goto out;
    for (uint32_t i = 0; i < items; i++) {
        itf[(size_t)i * dim] = base + (float)i;
        itf[(size_t)i * dim + 1] = 1.0f;
        attrs[i] = (struct model_item_attr){.price_cents = 100, .on_sale = 1};
        if ((iids[i] = malloc(16)) == NULL)
            goto out;
        snprintf(iids[i], 16, "item-%u", i);
    }
    struct model_src src = {
        .dim = dim,
        .user_count = USERS,
        .item_count = items,
        .user_factors = uf,
        .item_factors = itf,
        .user_ids = uids,
        .item_ids = (const char *const *)iids,
        .attrs = attrs,
        .categories = cats,
        .category_count = 1,
        .version = version,
        .created_at = 1718000000,
        .quantize = quantize,
    };
    struct err e = {0};
    rc = model_write(path, &src, &e);
    if (rc != 0)
        fprintf(stderr, "model_write %s: %s\n", path, e.msg);
out:
    for (uint32_t i = 0; iids != NULL && i < items; i++)
        free(iids[i]);
    free(iids);
    free(itf);
    free(uf);
    free(attrs);
    return rc;
}

static int write_plant(const char *path, const struct plant *p)
{
    return write_model(path, p->version, p->items, DIM, p->base, 0);
}

/* check_plant - 0 if @m is exactly A or B, probing item @probe (any
 * number) and the last item: count, factors, id table and id lookup must
 * all agree with the version. */
static int check_plant(const struct model *m, unsigned slot, uint32_t probe)
{
    const struct model_info *mi = model_info(m);
    const struct plant *p = strcmp(mi->version, "A") == 0   ? &MODEL_A
                            : strcmp(mi->version, "B") == 0 ? &MODEL_B
                                                            : NULL;
    if (p == NULL || mi->item_count != p->items || model_item_count(m) != p->items)
        return -1;
    const uint32_t probes[2] = {probe % p->items, p->items - 1};
    for (int k = 0; k < 2; k++) {
        uint32_t item = probes[k], found, len;
        const float *row = model_item_matrix(m) + (size_t)item * model_stride(m);
        if (row[0] != p->base + (float)item || row[1] != 1.0f)
            return -1;
        char id[16];
        int n = snprintf(id, sizeof(id), "item-%u", item);
        const char *stored = model_item_id(m, item, &len);
        if (len != (uint32_t)n || memcmp(stored, id, len) != 0)
            return -1;
        if (model_find_item(m, slot, id, (size_t)n, &found) != 0 || found != item)
            return -1;
    }
    return 0;
}

/* ==== fixture ========================================================= */

struct fx {
    char dir[64];
    char path[128]; /* dir/model.lmdb, the path served */
    struct reload *r;
};

static const char *fx_file(const struct fx *f, const char *name)
{
    static char buf[8][192];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, sizeof(buf[0]), "%s/%s", f->dir, name);
    return p;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    return remove(path);
}

static void remove_tree(const char *dir)
{
    if (nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "failed to remove %s\n", dir);
}

static int fx_setup(struct fx *f)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/recsys-test-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        perror("mkdtemp");
        return -1;
    }
    snprintf(f->path, sizeof(f->path), "%s/model.lmdb", f->dir);
    return 0;
}

static void fx_teardown(struct fx *f)
{
    reload_stop(f->r);
    remove_tree(f->dir);
}

static int fx_start(struct fx *f)
{
    struct err e = {0};
    int rc = reload_start(f->path, READERS + 1, NULL, &f->r, &e);
    if (rc != 0)
        fprintf(stderr, "reload_start: %s\n", e.msg);
    return rc;
}

/* A test body runs between fx_setup and fx_teardown, so a failed CHECK
 * (which returns from the body) still stops the reloader and cleans up. */
#define FX_TEST(name)                                                                              \
    static void name##_body(struct fx *f);                                                         \
    static void name(void)                                                                         \
    {                                                                                              \
        struct fx f;                                                                               \
        if (fx_setup(&f) != 0) {                                                                   \
            check_failures++;                                                                      \
            return;                                                                                \
        }                                                                                          \
        name##_body(&f);                                                                           \
        fx_teardown(&f);                                                                           \
    }                                                                                              \
    static void name##_body(struct fx *f)

/* publish_bytes - put @data at @path the safe way: a temporary file in the
 * same directory, renamed over it. */
static int publish_bytes(const char *path, const void *data, size_t len)
{
    char tmp[256];
    snprintf(tmp, sizeof(tmp), "%s.incoming", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return -errno;
    ssize_t w = write(fd, data, len);
    int rc = w == (ssize_t)len && close(fd) == 0 ? 0 : -EIO;
    if (w != (ssize_t)len)
        close(fd);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    return rc;
}

static char *slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    char *buf = NULL;
    if (fd >= 0 && fstat(fd, &st) == 0 && (buf = malloc((size_t)st.st_size)) != NULL &&
        read(fd, buf, (size_t)st.st_size) != st.st_size) {
        free(buf);
        buf = NULL;
    }
    if (fd >= 0)
        close(fd);
    *len = buf != NULL ? (size_t)st.st_size : 0;
    return buf;
}

/* ==== observing the reloader ============================================ */

/* What the test thread saw in one read-side section. */
struct seen {
    int has_model;
    char version[64];
    uint64_t reload_count, failed_count;
    int64_t last_attempt;
    char last_error[512];
};

/* look - the snapshot's fields. It reads nothing in the model's map, so it
 * is safe while the file is overwritten in place. */
static struct seen look(const struct reload *r)
{
    struct seen s = {0};
    const struct reload_snapshot *snap = reload_read_begin(r);
    s.has_model = snap->model != NULL;
    if (s.has_model)
        snprintf(s.version, sizeof(s.version), "%s", model_info(snap->model)->version);
    s.reload_count = snap->reload_count;
    s.failed_count = snap->failed_count;
    s.last_attempt = snap->last_attempt_unix;
    snprintf(s.last_error, sizeof(s.last_error), "%s", snap->last_error);
    reload_read_end(r);
    return s;
}

/* serves_plant - the model served is the planted model @p, throughout. */
static int serves_plant(const struct reload *r, const struct plant *p)
{
    const struct reload_snapshot *snap = reload_read_begin(r);
    int ok = snap->model != NULL && strcmp(model_info(snap->model)->version, p->version) == 0 &&
             check_plant(snap->model, READERS, 0) == 0;
    reload_read_end(r);
    return ok;
}

static int serves(const struct seen *s, const void *version)
{
    return s->has_model && strcmp(s->version, version) == 0;
}

static int serves_nothing(const struct seen *s, const void *unused)
{
    return !s->has_model;
}

static int failed_at_least(const struct seen *s, const void *n)
{
    return s->failed_count >= *(const uint64_t *)n;
}

/* await - poll the snapshot until @pred holds; 0, or -ETIMEDOUT after 5 s. */
static int await(const struct reload *r, int (*pred)(const struct seen *, const void *),
                 const void *arg)
{
    int64_t deadline = now_ms() + 5000;
    for (;;) {
        struct seen s = look(r);
        if (pred(&s, arg))
            return 0;
        if (now_ms() > deadline)
            return -ETIMEDOUT;
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
}

/* ==== tests ============================================================ */

FX_TEST(test_initial_load)
{
    CHECK_OK(write_plant(f->path, &MODEL_A));
    int64_t before = (int64_t)time(NULL);
    CHECK_OK(fx_start(f));
    struct seen s = look(f->r); /* loaded before reload_start returned */
    CHECK(serves_plant(f->r, &MODEL_A));
    CHECK(s.reload_count == 1 && s.failed_count == 0);
    CHECK(s.last_error[0] == '\0');
    CHECK(s.last_attempt >= before && s.last_attempt <= (int64_t)time(NULL));
}

FX_TEST(test_start_without_model)
{
    CHECK_OK(fx_start(f));
    struct seen s = look(f->r);
    CHECK(!s.has_model);
    CHECK(s.reload_count == 0 && s.failed_count == 1 && s.last_attempt > 0);
    CHECK_STR_HAS(s.last_error, "No such file");

    CHECK_OK(write_plant(f->path, &MODEL_A));
    CHECK_OK(await(f->r, serves, "A"));
    s = look(f->r);
    CHECK(serves_plant(f->r, &MODEL_A));
    CHECK(s.reload_count == 1 && s.failed_count == 1);
    CHECK(s.last_error[0] == '\0');
}

FX_TEST(test_reload_on_rename)
{
    CHECK_OK(write_plant(f->path, &MODEL_A));
    CHECK_OK(fx_start(f));
    /* From before the write, so the time includes it: an upper bound on
     * rename-to-new-model. */
    int64_t start = now_ms();
    CHECK_OK(write_plant(f->path, &MODEL_B));
    CHECK_OK(await(f->r, serves, "B"));
    int64_t took = now_ms() - start;
    fprintf(stderr, "  write + rename to new model: %lld ms\n", (long long)took);
    CHECK(took < 1000);
    struct seen s = look(f->r);
    CHECK(serves_plant(f->r, &MODEL_B));
    CHECK(s.reload_count == 2 && s.failed_count == 0);
}

/* The path is a symlink into another directory; replacing the target there
 * raises no event in the watched directory, so only a request loads it. */
/* What a listener was told: the versions of the models published, in order. */
struct told {
    char versions[4][32];
    int n;
};

static void note_published(const struct model *m, void *arg)
{
    struct told *t = arg;
    if (t->n < 4)
        snprintf(t->versions[t->n], sizeof(t->versions[0]), "%s", model_info(m)->version);
    t->n++;
}

FX_TEST(test_listener_told_of_each_model)
{
    struct told t = {.n = 0};
    const struct reload_listener listener = {note_published, &t};
    struct err e = {0};
    CHECK_OK(write_plant(f->path, &MODEL_A));
    CHECK_OK(reload_start(f->path, READERS + 1, &listener, &f->r, &e));
    /* The first model is told before reload_start returns. */
    CHECK(t.n == 1 && strcmp(t.versions[0], MODEL_A.version) == 0);
    CHECK_OK(write_plant(f->path, &MODEL_B));
    CHECK_OK(await(f->r, serves, "B"));
    reload_stop(f->r); /* joins the watcher: t is no longer written */
    f->r = NULL;
    CHECK(t.n == 2 && strcmp(t.versions[1], MODEL_B.version) == 0);
}

FX_TEST(test_reload_on_request)
{
    const char *store = fx_file(f, "store");
    char target[192];
    snprintf(target, sizeof(target), "%s/model.lmdb", store);
    CHECK(mkdir(store, 0755) == 0);
    CHECK_OK(write_plant(target, &MODEL_A));
    CHECK(symlink("store/model.lmdb", f->path) == 0);
    CHECK_OK(fx_start(f));
    struct seen s = look(f->r);
    CHECK(serves(&s, "A"));

    CHECK_OK(write_plant(target, &MODEL_B));
    reload_request(f->r);
    CHECK_OK(await(f->r, serves, "B"));
    CHECK(look(f->r).reload_count == 2);

    /* The same file again is not reloaded; a refused one is retried on
     * each request. */
    reload_request(f->r);
    static const char junk[] = "not a model";
    CHECK_OK(publish_bytes(target, junk, sizeof(junk)));
    reload_request(f->r);
    uint64_t one = 1, two = 2;
    CHECK_OK(await(f->r, failed_at_least, &one));
    reload_request(f->r);
    CHECK_OK(await(f->r, failed_at_least, &two));
    s = look(f->r);
    CHECK(serves(&s, "B") && s.reload_count == 2);
}

FX_TEST(test_bad_file_refused)
{
    CHECK_OK(write_plant(f->path, &MODEL_A));
    CHECK_OK(fx_start(f));

    static const char junk[] = "this is not a model file, just some bytes";
    int64_t before = (int64_t)time(NULL);
    CHECK_OK(publish_bytes(f->path, junk, sizeof(junk)));
    uint64_t one = 1, two = 2;
    CHECK_OK(await(f->r, failed_at_least, &one));
    struct seen s = look(f->r);
    CHECK(serves_plant(f->r, &MODEL_A) && s.reload_count == 1);
    CHECK_STR_HAS(s.last_error, "not an LMDB file");
    CHECK(s.last_attempt >= before);

    /* A real model cut short. */
    const char *b = fx_file(f, "b.lmdb");
    size_t len;
    CHECK_OK(write_plant(b, &MODEL_B));
    char *bytes = slurp(b, &len);
    CHECK(bytes != NULL);
    int rc = publish_bytes(f->path, bytes, len / 2);
    free(bytes);
    CHECK_OK(rc);
    CHECK_OK(await(f->r, failed_at_least, &two));
    s = look(f->r);
    CHECK(serves_plant(f->r, &MODEL_A));
    CHECK_STR_HAS(s.last_error, "truncated");

    CHECK_OK(write_plant(f->path, &MODEL_B));
    CHECK_OK(await(f->r, serves, "B"));
    s = look(f->r);
    CHECK(serves_plant(f->r, &MODEL_B));
    CHECK(s.reload_count == 2 && s.failed_count == 2);
    CHECK(s.last_error[0] == '\0');
}

/* Renames 2 ms apart, each quicker than the quiet period, load once. */
FX_TEST(test_burst_coalesced)
{
    enum { BURST = 20 };
    CHECK_OK(write_plant(f->path, &MODEL_A));
    for (int i = 0; i < BURST; i++) {
        char name[32], version[32];
        snprintf(name, sizeof(name), "next-%02d.lmdb", i);
        snprintf(version, sizeof(version), "burst-%02d", i);
        CHECK_OK(write_model(fx_file(f, name), version, 8, DIM, 0.0f, 0));
    }
    CHECK_OK(fx_start(f));
    for (int i = 0; i < BURST; i++) {
        char name[32];
        snprintf(name, sizeof(name), "next-%02d.lmdb", i);
        CHECK(rename(fx_file(f, name), f->path) == 0);
        nanosleep(&(struct timespec){0, 2000000}, NULL);
    }
    CHECK_OK(await(f->r, serves, "burst-19"));
    struct seen s = look(f->r);
    fprintf(stderr, "  %d renames, %llu loads\n", BURST, (unsigned long long)s.reload_count - 1);
    /* One load is the design; a second or third is allowed only because a
     * busy machine can stall this thread past the quiet period between two
     * renames. Without coalescing it would be close to one per rename. */
    CHECK(s.reload_count - 1 <= 3);
}

static long faults_of_thread(void)
{
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    return ru.ru_minflt + ru.ru_majflt;
}

static long faults_reading(const float *p, size_t n)
{
    volatile float sink = 0;
    long before = faults_of_thread();
    float sum = 0;
    for (size_t i = 0; i < n; i += 16)
        sum += p[i];
    sink = sum;
    (void)sink;
    return faults_of_thread() - before;
}

/* The first call on a new model takes no page fault: validation has
 * touched every page through the map the calls use. The same scan of a
 * fresh map of the same (cached) file faults, which shows the measure
 * works. */
FX_TEST(test_prefaulted)
{
    enum { ITEMS = 16384, BIG_DIM = 16 }; /* a 1 MiB item matrix */
    CHECK_OK(write_model(f->path, "big", ITEMS, BIG_DIM, 0.0f, 0));
    CHECK_OK(fx_start(f));

    const struct reload_snapshot *snap = reload_read_begin(f->r);
    long served = -1;
    size_t floats = 0;
    if (snap->model != NULL) {
        floats = (size_t)ITEMS * model_stride(snap->model);
        served = faults_reading(model_item_matrix(snap->model), floats);
    }
    reload_read_end(f->r);
    CHECK(served >= 0);

    int fd = open(f->path, O_RDONLY);
    struct stat st;
    CHECK(fd >= 0 && fstat(fd, &st) == 0);
    const float *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    CHECK(map != MAP_FAILED);
    size_t file_floats = (size_t)st.st_size / sizeof(float);
    long fresh = faults_reading(map, floats < file_floats ? floats : file_floats);
    munmap((void *)map, (size_t)st.st_size);
    fprintf(stderr, "  faults scanning the item matrix: served %ld, fresh map %ld\n", served,
            fresh);
    CHECK(served == 0);
    CHECK(fresh >= 4);
}

/* ---- concurrent readers ---------------------------------------------------- */

/* A reader thread, as a server worker: one snapshot per "call", checked
 * against the planted models twice, so a model changing under the call
 * would show. */
struct reader {
    pthread_t thread;
    const struct reload *r;
    const int *stop; /* __atomic */
    unsigned slot;
    uint64_t reads; /* __atomic: the test thread watches it */
    uint64_t bad, seen_a, seen_b;
};

struct readers {
    struct reader rd[READERS];
    int started;
    int stop;                            /* __atomic */
    uint64_t reads, bad, seen_a, seen_b; /* totals, after readers_stop */
};

static void *reader_main(void *arg)
{
    struct reader *rd = arg;
    reload_reader_register();
    for (uint32_t i = 0; !__atomic_load_n(rd->stop, __ATOMIC_ACQUIRE); i++) {
        const struct reload_snapshot *snap = reload_read_begin(rd->r);
        const struct model *m = snap->model;
        if (m != NULL) {
            int bad = check_plant(m, rd->slot, i) != 0 || check_plant(m, rd->slot, i * 7 + 3) != 0;
            int is_a = !bad && strcmp(model_info(m)->version, "A") == 0;
            rd->bad += bad;
            rd->seen_a += is_a;
            rd->seen_b += !bad && !is_a;
        }
        reload_read_end(rd->r);
        __atomic_fetch_add(&rd->reads, 1, __ATOMIC_RELAXED);
    }
    reload_reader_unregister();
    return NULL;
}

/* readers_start - start READERS readers of @r; returns whether all started
 * (those that did must be stopped either way). */
static int readers_start(struct readers *rs, const struct reload *r)
{
    memset(rs, 0, sizeof(*rs));
    for (; rs->started < READERS; rs->started++) {
        struct reader *rd = &rs->rd[rs->started];
        *rd = (struct reader){.r = r, .stop = &rs->stop, .slot = (unsigned)rs->started};
        if (pthread_create(&rd->thread, NULL, reader_main, rd) != 0)
            return 0;
    }
    return 1;
}

/* readers_advance - wait until every reader has finished @n more reads.
 * With n = 2, each has begun a read after the call: it sees what was
 * published before. */
static int readers_advance(struct readers *rs, uint64_t n)
{
    int64_t deadline = now_ms() + 5000;
    uint64_t want[READERS];
    for (int i = 0; i < rs->started; i++)
        want[i] = __atomic_load_n(&rs->rd[i].reads, __ATOMIC_RELAXED) + n;
    for (int i = 0; i < rs->started; i++)
        while (__atomic_load_n(&rs->rd[i].reads, __ATOMIC_RELAXED) < want[i])
            if (now_ms() > deadline || nanosleep(&(struct timespec){0, 1000000}, NULL) != 0)
                return 0;
    return rs->started == READERS;
}

static void readers_stop(struct readers *rs)
{
    __atomic_store_n(&rs->stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < rs->started; i++) {
        struct reader *rd = &rs->rd[i];
        pthread_join(rd->thread, NULL);
        rs->reads += rd->reads;
        rs->bad += rd->bad;
        rs->seen_a += rd->seen_a;
        rs->seen_b += rd->seen_b;
    }
    fprintf(stderr, "  %llu reads (A %llu, B %llu), %llu inconsistent\n",
            (unsigned long long)rs->reads, (unsigned long long)rs->seen_a,
            (unsigned long long)rs->seen_b, (unsigned long long)rs->bad);
}

/* ---- swaps under readers -------------------------------------------------- */

/* Mappings of files in @dir, from /proc/self/maps. */
static int mappings_in(const char *dir)
{
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[1024];
    int n = 0;
    while (maps != NULL && fgets(line, sizeof(line), maps) != NULL)
        n += strstr(line, dir) != NULL;
    if (maps != NULL)
        fclose(maps);
    return n;
}

/* mappings_become - wait until @dir's files are mapped @n times: a
 * replaced model is unmapped after its grace period, just after the new
 * one became visible. 0, or -ETIMEDOUT after 5 s. */
static int mappings_become(const char *dir, int n)
{
    int64_t deadline = now_ms() + 5000;
    while (mappings_in(dir) != n)
        if (now_ms() > deadline || nanosleep(&(struct timespec){0, 1000000}, NULL) != 0)
            return -ETIMEDOUT;
    return 0;
}

static int open_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 4096; fd++)
        n += fcntl(fd, F_GETFD) >= 0;
    return n;
}

FX_TEST(test_swaps_under_readers)
{
    enum { SWAPS = 200 };
    int fds_before = open_fds();
    CHECK_OK(write_plant(f->path, &MODEL_A));
    CHECK_OK(fx_start(f));

    /* No CHECK while readers run: it would return and free what they read. */
    struct readers rs;
    int running = readers_start(&rs, f->r) && readers_advance(&rs, 1);
    int swapped = 0, failed = 0;
    for (; running && swapped < SWAPS && !failed; swapped++) {
        const struct plant *p = swapped % 2 == 0 ? &MODEL_B : &MODEL_A;
        failed = write_plant(f->path, p) != 0 || await(f->r, serves, p->version) != 0;
    }
    readers_stop(&rs);
    CHECK(running);
    CHECK(!failed && swapped == SWAPS);
    CHECK(rs.bad == 0);
    CHECK(rs.seen_a > 0 && rs.seen_b > 0);

    struct seen s = look(f->r);
    CHECK(serves(&s, "A") && s.reload_count == SWAPS + 1 && s.failed_count == 0);
    CHECK_OK(mappings_become(f->dir, 1));
    reload_stop(f->r);
    f->r = NULL;
    CHECK(mappings_in(f->dir) == 0);
    CHECK(open_fds() == fds_before);
}

/* ---- overwriting the served file in place ---------------------------------- */

/* With the lease: the writer's open(O_TRUNC) is held up until the model is
 * withdrawn and unmapped, so readers scanning the map throughout neither
 * fault nor see a byte of the new file under the old model; the rewritten
 * file is served once closed. */
FX_TEST(test_overwrite_in_place)
{
    CHECK_OK(write_plant(f->path, &MODEL_A));
    const char *b = fx_file(f, "b.lmdb");
    size_t len;
    CHECK_OK(write_plant(b, &MODEL_B));
    char *bytes = slurp(b, &len);
    CHECK(bytes != NULL);
    int started = fx_start(f);

    struct readers rs;
    int running = started == 0 && readers_start(&rs, f->r) && readers_advance(&rs, 1);
    int fd = running ? open(f->path, O_WRONLY | O_TRUNC) : -1;
    struct seen at_open = look(f->r);
    ssize_t w = fd >= 0 ? write(fd, bytes, len) : -1;
    int closed = fd >= 0 ? close(fd) : -1;
    int served = closed == 0 ? await(f->r, serves, "B") : -1;
    int read_b = served == 0 && readers_advance(&rs, 2);
    if (started == 0)
        readers_stop(&rs);
    free(bytes);
    CHECK_OK(started);
    CHECK(running);
    CHECK(fd >= 0 && w == (ssize_t)len && closed == 0);
    CHECK(!at_open.has_model); /* withdrawn before open returned */
    CHECK_STR_HAS(at_open.last_error, "overwritten in place");
    CHECK_OK(served);
    CHECK(read_b);
    CHECK(rs.bad == 0 && rs.seen_a > 0 && rs.seen_b > 0);
    CHECK(serves_plant(f->r, &MODEL_B));
    struct seen s = look(f->r);
    CHECK(s.reload_count == 2 && s.failed_count == 0);
}

/* cap_lease_set - give the calling thread CAP_LEASE, or take it away. A
 * thread it starts inherits its capabilities. 0 or -errno. */
static int cap_lease_set(int on)
{
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
    uint32_t bit = 1u << (CAP_LEASE % 32);
    if (syscall(SYS_capget, &h, d) != 0)
        return -errno;
    if (on)
        d[CAP_LEASE / 32].effective |= bit;
    else
        d[CAP_LEASE / 32].effective &= ~bit;
    return syscall(SYS_capset, &h, d) != 0 ? -errno : 0;
}

/* Without a lease (the file belongs to another user and the watcher lacks
 * CAP_LEASE, so the kernel refuses one): the first write is noticed and
 * the model withdrawn after it, and the file is served once closed. No
 * readers: a call racing that first write may fault, which is why models
 * are published by rename. Needs root, to give the file away. */
FX_TEST(test_overwrite_in_place_unleased)
{
    CHECK_OK(write_plant(f->path, &MODEL_A));
    if (chown(f->path, 65534, 65534) != 0 && errno == EPERM) {
        fprintf(stderr, "  skipped: giving the model file away needs root\n");
        return;
    }
    const char *b = fx_file(f, "b.lmdb");
    size_t len;
    CHECK_OK(write_plant(b, &MODEL_B));
    char *bytes = slurp(b, &len);
    CHECK(bytes != NULL);
    int dropped = cap_lease_set(0);
    int started = dropped == 0 ? fx_start(f) : -1;
    int restored = dropped == 0 ? cap_lease_set(1) : -1;
    int fd = started == 0 ? open(f->path, O_WRONLY) : -1;
    int truncated = fd >= 0 ? ftruncate(fd, 0) : -1;
    int withdrawn = truncated == 0 ? await(f->r, serves_nothing, NULL) : -1;
    struct seen s = look(f->r);
    ssize_t w = fd >= 0 ? pwrite(fd, bytes, len, 0) : -1;
    int closed = fd >= 0 ? close(fd) : -1;
    free(bytes);
    CHECK_OK(dropped);
    CHECK_OK(started);
    CHECK_OK(restored);
    CHECK(fd >= 0 && truncated == 0 && w == (ssize_t)len && closed == 0);
    CHECK_OK(withdrawn);
    CHECK_STR_HAS(s.last_error, "overwritten in place");
    CHECK_OK(await(f->r, serves, "B"));
    CHECK(serves_plant(f->r, &MODEL_B));
    s = look(f->r);
    CHECK(s.reload_count == 2 && s.failed_count == 0);
}

/* A writer has the file open when it is due to be loaded: no lease can be
 * had and its bytes may still change, so it is not read (nothing loaded,
 * nothing refused) until the writer closes it; then it is served. */
FX_TEST(test_load_waits_for_writer)
{
    CHECK_OK(write_plant(f->path, &MODEL_A));
    const char *b = fx_file(f, "b.lmdb");
    size_t len;
    CHECK_OK(write_plant(b, &MODEL_B));
    char *bytes = slurp(b, &len);
    CHECK(bytes != NULL);
    int fd = open(f->path, O_WRONLY | O_TRUNC);
    int started = fd >= 0 ? fx_start(f) : -1;
    struct seen at_start = look(f->r);
    ssize_t w = fd >= 0 ? write(fd, bytes, len) : -1;
    int closed = fd >= 0 ? close(fd) : -1;
    free(bytes);
    CHECK(fd >= 0 && w == (ssize_t)len && closed == 0);
    CHECK_OK(started);
    CHECK(!at_start.has_model && at_start.failed_count == 0 && at_start.last_attempt == 0);
    CHECK_OK(await(f->r, serves, "B"));
    CHECK(serves_plant(f->r, &MODEL_B));
    struct seen s = look(f->r);
    CHECK(s.reload_count == 1 && s.failed_count == 0);
}

/* lease_held - whether /proc/locks lists a lease on inode @ino. Its lines
 * read "1: LEASE  ACTIVE    READ <pid> <maj>:<min>:<inode> 0 EOF". */
static int lease_held(ino_t ino)
{
    FILE *locks = fopen("/proc/locks", "r");
    if (locks == NULL)
        return 0;
    char line[256], want[32];
    snprintf(want, sizeof(want), ":%llu ", (unsigned long long)ino);
    int found = 0;
    while (!found && fgets(line, sizeof(line), locks) != NULL)
        found = strstr(line, "LEASE") != NULL && strstr(line, want) != NULL;
    fclose(locks);
    return found;
}

/* await_lease - wait until a lease on inode @ino is held; 0, or
 * -ETIMEDOUT after 5 s. */
static int await_lease(ino_t ino)
{
    int64_t deadline = now_ms() + 5000;
    while (!lease_held(ino)) {
        if (now_ms() > deadline)
            return -ETIMEDOUT;
        nanosleep(&(struct timespec){0, 100000}, NULL);
    }
    return 0;
}

/* A writer opens a new file with O_TRUNC while the daemon validates it.
 * The daemon takes the lease before model_open() reads the file; from the
 * moment /proc/locks shows it, the writer's open() must be held up until
 * the daemon has let go: the load abandoned (or, had validation just ended,
 * the model withdrawn), so the truncated file is never served, and
 * validation never faults on it. The model is large enough that validating
 * it usually outlasts the writer's wake-up; either outcome is checked.
 * (Waiting for the daemon's opens with inotify instead is unreliable:
 * identical unread events are merged into one.) */
FX_TEST(test_writer_during_load)
{
    enum { BIG_ITEMS = 200000 };
    CHECK_OK(write_plant(f->path, &MODEL_A));
    const char *big = fx_file(f, "big.lmdb");
    CHECK_OK(write_model(big, "big", BIG_ITEMS, DIM, 0.0f, 0));
    CHECK_OK(fx_start(f));
    struct stat st;
    int statted = stat(big, &st) == 0;
    int renamed = statted && rename(big, f->path) == 0;
    int leased = renamed ? await_lease(st.st_ino) : -1;
    int fd = leased == 0 ? open(f->path, O_WRONLY | O_TRUNC) : -1;
    struct seen at_open = look(f->r);
    int closed = fd >= 0 ? close(fd) : -1;
    CHECK(statted && renamed);
    CHECK_OK(leased);
    CHECK(fd >= 0 && closed == 0);
    CHECK(!serves(&at_open, "big"));
    /* The emptied file, closed, is loaded and refused. */
    const uint64_t one = 1;
    CHECK_OK(await(f->r, failed_at_least, &one));
    struct seen s = look(f->r);
    CHECK(!serves(&s, "big"));
    CHECK(s.reload_count == 1);
}

/* The path is a symlink into another directory and the target is
 * overwritten in place: no event names the path, the guard on the inode
 * still withdraws the model before the open returns and serves the file
 * once it is closed. */
FX_TEST(test_overwrite_symlink_target)
{
    const char *store = fx_file(f, "store");
    char target[192];
    snprintf(target, sizeof(target), "%s/model.lmdb", store);
    CHECK(mkdir(store, 0755) == 0);
    CHECK_OK(write_plant(target, &MODEL_A));
    CHECK(symlink("store/model.lmdb", f->path) == 0);
    const char *b = fx_file(f, "b.lmdb");
    size_t len;
    CHECK_OK(write_plant(b, &MODEL_B));
    char *bytes = slurp(b, &len);
    CHECK(bytes != NULL);
    int started = fx_start(f);
    int fd = started == 0 ? open(target, O_WRONLY | O_TRUNC) : -1;
    struct seen at_open = look(f->r);
    ssize_t w = fd >= 0 ? write(fd, bytes, len) : -1;
    int closed = fd >= 0 ? close(fd) : -1;
    free(bytes);
    CHECK_OK(started);
    CHECK(fd >= 0 && w == (ssize_t)len && closed == 0);
    CHECK(!at_open.has_model);
    CHECK_OK(await(f->r, serves, "B"));
    CHECK(serves_plant(f->r, &MODEL_B));
}

/* probed_copies - the copies the probe timed in the model served, as bits
 * 1 << elem; 0 if it was not probed. -1 if what it recorded is not what
 * scans read, or not a copy it timed. */
static int probed_copies(const struct reload *r)
{
    const struct reload_snapshot *snap = reload_read_begin(r);
    const struct model_scan *s = model_scan(snap->model);
    int bits = 0;
    for (int elem = 0; s != NULL && elem < MODEL_ELEM_COUNT; elem++)
        if (s->query_seconds[elem] > 0)
            bits |= 1 << elem;
    if (s != NULL ? scan_elem(snap->model) != s->elem || !(bits & 1 << s->elem)
                  : scan_elem(snap->model) != MODEL_ELEM_F32)
        bits = -1;
    reload_read_end(r);
    return bits;
}

/* Under --scan auto every model is probed on the watcher thread before it
 * is published, each swap on its own copies: a call never sees a model
 * whose copy is still to be chosen. A model without reduced copies is
 * served from f32, untimed. */
FX_TEST(test_each_model_probed_before_it_is_published)
{
    const int bf16 = 1 << MODEL_ELEM_BF16, int8 = 1 << MODEL_ELEM_INT8;
    CHECK_OK(write_model(f->path, "A", 3000, DIM, 1.0f, bf16 | int8));
    CHECK_OK(fx_start(f));
    CHECK(probed_copies(f->r) == (1 | bf16 | int8));
    CHECK_OK(write_model(f->path, "B", 3000, DIM, 1.0f, int8));
    CHECK_OK(await(f->r, serves, "B"));
    CHECK(probed_copies(f->r) == (1 | int8));
    CHECK_OK(write_model(f->path, "C", 3000, DIM, 1.0f, 0));
    CHECK_OK(await(f->r, serves, "C"));
    CHECK(probed_copies(f->r) == 0);
}

static void test_start_errors(void)
{
    struct reload *r = NULL;
    struct err e = {0};
    CHECK_RC(reload_start("/nonexistent-recsys-dir/model.lmdb", 1, NULL, &r, &e), -ENOENT);
    CHECK(r == NULL);
    CHECK_STR_HAS(e.msg, "/nonexistent-recsys-dir");
    CHECK_RC(reload_start("", 1, NULL, &r, &e), ERR_INVALID);
    CHECK_RC(reload_start("/tmp/", 1, NULL, &r, &e), ERR_INVALID);
    CHECK_RC(reload_start("/tmp/model.lmdb", 0, NULL, &r, &e), ERR_INVALID);
    /* A "directory" that is a file. */
    CHECK_RC(reload_start("/proc/self/status/model.lmdb", 1, NULL, &r, &e), -ENOTDIR);
    CHECK(r == NULL);
}

int main(int argc, char **argv)
{
    static const struct check_case cases[] = {
        CHECK_CASE(test_start_errors),
        CHECK_CASE(test_initial_load),
        CHECK_CASE(test_start_without_model),
        CHECK_CASE(test_reload_on_rename),
        CHECK_CASE(test_listener_told_of_each_model),
        CHECK_CASE(test_reload_on_request),
        CHECK_CASE(test_bad_file_refused),
        CHECK_CASE(test_overwrite_in_place),
        CHECK_CASE(test_burst_coalesced),
        CHECK_CASE(test_prefaulted),
        CHECK_CASE(test_swaps_under_readers),
        CHECK_CASE(test_overwrite_in_place_unleased),
        CHECK_CASE(test_load_waits_for_writer),
        CHECK_CASE(test_writer_during_load),
        CHECK_CASE(test_overwrite_symlink_target),
        CHECK_CASE(test_each_model_probed_before_it_is_published),
    };
    reload_reader_register(); /* this thread reads snapshots too */
    int rc = check_main(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
    reload_reader_unregister();
    return rc;
}
