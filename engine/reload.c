/*
 * reload: the model hot swap.
 *
 * Threads. Serving threads only read: reload_read_begin() is an RCU
 * read-side section (liburcu, memb flavour: a reader updates a thread-local
 * counter, and a worker blocked in its completion queue, outside any
 * section, holds no grace period back) plus one load of r->current. One
 * watcher thread does everything else: it waits on inotify and an eventfd,
 * opens and validates new files, times their scans (scan_probe: the model
 * records the copy to scan before any call can see it), publishes
 * snapshots and reclaims old ones. It is the only writer of r->current, so
 * publishing takes no lock, and it reads the snapshots it owns outside
 * RCU, so it is not a registered reader. It also guards the served file
 * (an inode watch and a lease, below) and is the one thread the
 * lease-break signal is directed at.
 *
 * Publishing a snapshot:
 *
 *   build it aside ─▶ store-release r->current ─▶ synchronize_rcu()
 *       ─▶ model_close(old model) ─▶ free(old snapshot)
 *
 * A call that began before the store finishes on the old snapshot; the
 * grace period waits for it; a call that begins after sees the new one. So
 * at most two models are mapped at once, the old one only until its last
 * call ends, and nothing outlives its last reader.
 *
 * Two inotify watches. The first is on the model file's DIRECTORY, for new
 * files at the path (the file may not exist yet, and a rename brings a new
 * inode, which a watch on the old one would not see):
 *
 *   IN_MOVED_TO     a file renamed over the path: the way to publish.
 *   IN_CLOSE_WRITE  a file written at the path and closed (cp, a redirection).
 *   IN_CREATE       a hard link made at the path (ln), which is all ln emits.
 *   IN_MODIFY       a file at the path still being written: postpones the load.
 *   IN_DELETE_SELF, IN_MOVE_SELF
 *                   the directory is gone: say so; SIGHUP re-arms the watch.
 *
 * Not watched: IN_DELETE and IN_MOVED_FROM. Removing or renaming away the
 * served file changes nothing for the served model (its map holds the
 * inode) and offers nothing to load. IN_EXCL_UNLINK drops events for files
 * already unlinked (a writer's deleted temporary file). Events for other
 * names, such as model_write's `.<name>.tmp.XXXXXX`, are ignored.
 *
 * The second watch is on the served INODE, whatever its names (a hard link
 * elsewhere, the target of a symlink in another directory): IN_MODIFY says
 * the mapped file itself is being written (below), and IN_CLOSE_WRITE that
 * such a writer is done, so the file is loaded again.
 *
 * Coalescing. The first event that may mean a new file arms a timer; the
 * load runs once the path has been quiet for QUIET_MS, but no later than
 * MAX_DELAY_MS after that first event, so a path that never goes quiet is
 * still followed.
 *
 * Overwriting the served file in place (cp over it, `>` in a shell, a
 * trainer that opens the path with O_TRUNC) is not safe for a mapped model
 * and cannot be made safe from the reading side. The map is a view of the
 * inode, so running calls see the new bytes as they land: a factor from one
 * file and an offset from the other (torn reads), and after a truncation
 * every access past the new end raises SIGBUS, which kills the daemon. The
 * model's pointers and LMDB's B-tree walks trust the file they validated
 * once, so changed bytes can also send a lookup out of bounds. MAP_PRIVATE
 * does not help (pages the process has not written still follow the file,
 * and truncation still faults), and copying every model out of its file
 * would double its memory and load time. So the daemon gets out of the way
 * before the first byte changes:
 *
 *   1. The watcher holds a read lease (fcntl F_SETLEASE) on the served
 *      inode. The kernel then holds up any open of it for writing, and any
 *      truncate, and signals the watcher, which withdraws the model (a
 *      snapshot without one, a grace period, unmap) and only then releases
 *      the lease: the writer goes on against a file nobody maps. Calls
 *      answer UNAVAILABLE meanwhile; when the writer closes the file the
 *      inode watch sees it, and it is validated like any new file and served
 *      if valid. The writer waits one grace period, or the kernel's
 *      lease-break-time (45 s by default) should the daemon not answer.
 *   2. A new file is guarded from its first open, before model_open()
 *      reads it: validation must not fault on a truncation either, nor a
 *      model be published from bytes that changed after they were checked.
 *      A writer that opens it during validation is held up, the load
 *      abandoned (the old model stays) and the lease released; the writer's
 *      close brings the file back. The old file's guard goes only once the
 *      new model is published and the old one unmapped. A file that a
 *      writer already holds open gets no lease and is not read at all until
 *      that writer closes it.
 *   3. A lease also needs the file's owner or CAP_LEASE and a local
 *      filesystem. Without one (logged), the inode watch's IN_MODIFY
 *      triggers the same withdrawal, but only after the write has begun: a
 *      call running in that window (inotify latency plus a grace period)
 *      can still read torn data or fault.
 *
 * Either way the error log says models must be published by rename, which
 * is the only way that never interrupts service.
 *
 * Pre-faulting. model_open() reads every page a call can touch on the
 * watcher thread, through the same shared read-only map the calls use: the
 * value pass reads both factor matrices whole, and the checksum pass walks
 * every key and value of the three databases (branch, leaf and overflow
 * pages). Page-table entries belong to the process, so the first call on a
 * new model takes no page fault, and madvise(MADV_WILLNEED), which only
 * starts read-ahead into the page cache, would add nothing; the unit test
 * test_prefaulted measures it.
 *
 * ThreadSanitizer cannot see through liburcu (an uninstrumented library,
 * whose rcu_assign_pointer in 0.13 is a fence and a volatile store). So the
 * pointer is published with the compiler's release/acquire atomics, which
 * are what rcu_assign_pointer and rcu_dereference compile to on x86, and
 * under TSan the grace period is described to it: each reader "releases"
 * one address as its section ends, and the watcher "acquires" it after
 * synchronize_rcu(), before it frees what the readers used.
 */
#define _GNU_SOURCE /* F_SETLEASE, F_SETOWN_EX, gettid */
#include "engine/reload.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <urcu.h>

#include "base/clock.h"
#include "base/log.h"
#include "engine/foldin.h"
#include "engine/scan.h"

#if defined(__SANITIZE_THREAD__)
#define RELOAD_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RELOAD_TSAN 1
#endif
#endif
#ifdef RELOAD_TSAN
#include <sanitizer/tsan_interface.h>
#endif

/* The quiet period. One publication by rename is a single IN_MOVED_TO; the
 * bursts worth merging are a tool publishing several files in a row and a
 * file written in place, whose events come microseconds apart, or a few
 * milliseconds on a loaded machine. 50 ms covers that with margin and is
 * small next to the 1 s budget from rename to the first call on the new
 * model, most of which validation may take (a 10^6 x 64 model, 320 MB:
 * 130-250 ms with the file in the page cache, on the 2-core test VM). */
#define QUIET_MS 50
/* The load runs at the latest this long after the first event of a burst. */
#define MAX_DELAY_MS 1000
/* While the model's directory is gone, how often the watcher looks whether
 * it is back: a redeploy that recreates it is followed within a second,
 * and a stat a second costs nothing. */
#define DIR_RETRY_MS 1000

/* The lease-break notification, instead of the default SIGIO (whose
 * default action ends the process): a real-time signal, directed at the
 * watcher thread alone, which keeps it blocked and reads it from a
 * signalfd. No other part of recsysd uses it. */
#define LEASE_SIGNAL SIGRTMIN

#define DIR_EVENTS                                                                                 \
    (IN_MOVED_TO | IN_CLOSE_WRITE | IN_CREATE | IN_MODIFY | IN_DELETE_SELF | IN_MOVE_SELF |        \
     IN_ONLYDIR | IN_EXCL_UNLINK)
#define FILE_EVENTS (IN_MODIFY | IN_CLOSE_WRITE)

/* What tells two files at the path apart: a rename or a link brings another
 * inode; a write in place changes the size or the modification time. */
struct file_id {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
};

/* What keeps a writer off one file: a read lease, and an inode watch that
 * sees writes where no lease could be had. inotify gives one watch per
 * inode, so two guards on the same inode share their wd. */
struct guard {
    int lease_fd; /* holds the lease on the inode; -1 for none */
    int wd;       /* the inode's watch; -1 for none */
};

static const struct guard NO_GUARD = {-1, -1};

/* A published snapshot and what it owns. */
struct snapshot {
    struct reload_snapshot pub; /* what readers see; pub.model == model */
    struct model *model;        /* shared with the next snapshot until one replaces the model */
    char error[sizeof(((struct err *)0)->msg)]; /* pub.last_error */
};

struct reload {
    const struct reload_snapshot *current; /* published: __atomic store/load only */
    struct snapshot *snap;                 /* the same snapshot, the watcher's handle */
    struct file_id served;                 /* the file snap->model was opened from */
    char *path;
    char *dir;     /* the directory watched */
    dev_t dir_dev; /* and its inode when the watch was added (dir_lost) */
    ino_t dir_ino;
    const char *name; /* the last component of path, in path */
    unsigned slots;
    struct reload_listener listener; /* published: fn NULL for none */
    int inotify_fd;
    int dir_wd; /* the directory's watch; -1 once the directory is gone */
    int wake_fd;
    int signal_fd;      /* LEASE_SIGNAL */
    struct guard guard; /* on the served file; NO_GUARD for none */
    int stopping;       /* __atomic: set by reload_stop */
    pthread_t watcher;
    sem_t started; /* posted by the watcher after the first load */
};

/* Arms the load timer and defers it while the path is busy. */
struct debounce {
    int pending;
    int64_t first_ms; /* first event of the burst */
    int64_t last_ms;  /* latest event on the path */
};

/* ==== helpers ========================================================= */

static int64_t now_ms(void)
{
    return clock_ns() / 1000000;
}

static int file_id_read(const char *path, struct file_id *id)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return -errno;
    *id = (struct file_id){st.st_dev, st.st_ino, st.st_size, st.st_mtim};
    return 0;
}

static int same_inode(const struct file_id *a, const struct file_id *b)
{
    return a->dev == b->dev && a->ino == b->ino;
}

static int same_file(const struct file_id *a, const struct file_id *b)
{
    return same_inode(a, b) && a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
           a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* model_open's text is "<path>: <problem>"; the path is logged and reported
 * on its own, so keep the problem. */
static const char *problem_of(const struct err *e, int rc, const char *path)
{
    size_t n = strlen(path);
    if (e->msg[0] == '\0')
        return err_strerror(rc);
    if (strncmp(e->msg, path, n) == 0 && strncmp(e->msg + n, ": ", 2) == 0)
        return e->msg + n + 2;
    return e->msg;
}

/* TSan's name for the grace period: only its address is used. One for the
 * process, as the RCU domain is: a section ended after reading one
 * reloader's snapshot, or a view of the model set (models.h), is awaited
 * by every synchronize_rcu(). */
#ifdef RELOAD_TSAN
static char grace;

static void grace_released(void)
{
    __tsan_release(&grace);
}

static void grace_acquired(void)
{
    __tsan_acquire(&grace);
}
#else
static void grace_released(void)
{
}

static void grace_acquired(void)
{
}
#endif

/* ==== snapshots ======================================================== */

/* snapshot_next - a copy of the current snapshot, for the caller to change
 * and publish. NULL when out of memory. */
static struct snapshot *snapshot_next(const struct reload *r)
{
    struct snapshot *next = malloc(sizeof(*next));
    if (next == NULL)
        return NULL;
    *next = *r->snap;
    next->pub.last_error = next->error;
    return next;
}

/* publish - make @next current, wait until no call can see the old
 * snapshot, then release what only the old one held. */
static void publish(struct reload *r, struct snapshot *next)
{
    struct snapshot *old = r->snap;
    next->pub.model = next->model;
    next->pub.last_error = next->error;
    __atomic_store_n(&r->current, &next->pub, __ATOMIC_RELEASE);
    r->snap = next;
    reload_synchronize();
    if (old->model != next->model)
        model_close(old->model);
    free(old);
}

static void log_loaded(const struct model *m, int64_t load_ms)
{
    const struct model_info *mi = model_info(m);
    log_info("model loaded path=%s version=%s users=%" PRIu64 " items=%" PRIu64
             " dim=%u checksum=%s load_ms=%" PRId64,
             mi->path, mi->version, mi->user_count, mi->item_count, mi->dim, mi->checksum, load_ms);
}

/* log_probed - what scan_probe() measured of @m, in @probe_ms: one figure
 * per copy timed, then the copy chosen. */
static void log_probed(const struct model *m, int64_t probe_ms)
{
    const struct model_scan *s = model_scan(m);
    char times[3 * 32] = "";
    size_t used = 0;
    for (int elem = 0; elem < MODEL_ELEM_COUNT; elem++)
        if (s->query_seconds[elem] > 0)
            used += (size_t)snprintf(times + used, sizeof(times) - used, "%s%s %.3g ms",
                                     used > 0 ? ", " : "", model_elem_names[elem],
                                     s->query_seconds[elem] * 1e3);
    log_info("scan probe: %s per query (%u %s, %u rounds, %" PRId64 " ms): %s", times, s->queries,
             s->from_user ? "users" : "items", s->rounds, probe_ms, model_elem_names[s->elem]);
}

static void log_refused(const struct reload *r, const char *problem)
{
    if (r->snap->model != NULL)
        log_error("failed to reload model %s (%s); still serving version %s", r->path, problem,
                  model_info(r->snap->model)->version);
    else
        log_error("failed to load model %s (%s); answering UNAVAILABLE until a valid model "
                  "is published there",
                  r->path, problem);
}

/* ==== guarding a file =================================================== */

static void lease_signal_set(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, LEASE_SIGNAL);
}

/* lease_drop - release the served file's lease, which lets a writer held
 * up in open() go on. The inode watch stays, to see that writer close. */
static void lease_drop(struct reload *r)
{
    if (r->guard.lease_fd >= 0)
        close(r->guard.lease_fd);
    r->guard.lease_fd = -1;
}

/* guard_drop - let go of @g: its lease, so a writer it holds up goes on,
 * and its watch, unless @kept is on the same inode and so shares it. */
static void guard_drop(struct reload *r, struct guard *g, const struct guard *kept)
{
    if (g->lease_fd >= 0)
        close(g->lease_fd);
    if (g->wd >= 0 && g->wd != kept->wd)
        inotify_rm_watch(r->inotify_fd, g->wd);
    *g = NO_GUARD;
}

/* lease_broken - whether a writer waits for @g's lease. The lease-break
 * signal cannot say which lease it is about; F_GETLEASE reports a lease's
 * target, F_UNLCK, while its break is pending. */
static int lease_broken(const struct guard *g)
{
    return g->lease_fd >= 0 && fcntl(g->lease_fd, F_GETLEASE) != F_RDLCK;
}

/* watch_inode - the inode watch, on the inode @fd has open: by path, the
 * name could already lead to another file. Returns its wd, or -1. */
static int watch_inode(struct reload *r, int fd)
{
    char self[64];
    snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
    int wd = inotify_add_watch(r->inotify_fd, self, FILE_EVENTS);
    if (wd < 0)
        log_warn("failed to watch model file %s (%s); an overwrite in place will not be "
                 "noticed without a lease",
                 r->path, strerror(errno));
    return wd;
}

/* lease_take - a read lease on the file @fd has open, its break signalled
 * to the calling thread, which must be the watcher. Returns 0 or -errno:
 * -EAGAIN when a writer has the file open. */
static int lease_take(int fd)
{
    struct f_owner_ex owner = {F_OWNER_TID, gettid()};
    if (fcntl(fd, F_SETSIG, LEASE_SIGNAL) != 0 || fcntl(fd, F_SETOWN_EX, &owner) != 0 ||
        fcntl(fd, F_SETLEASE, F_RDLCK) != 0)
        return -errno;
    return 0;
}

/* guard_take - guard the file @fd has open into @g, taking @fd. Returns 0,
 * with the lease or, where none can be had (logged), with the watch alone;
 * or -EAGAIN, guarding nothing: a writer has the file open, and the file
 * must not be read before that writer closes it. */
static int guard_take(struct reload *r, int fd, struct guard *g)
{
    g->wd = watch_inode(r, fd);
    int rc = lease_take(fd);
    if (rc == 0) {
        g->lease_fd = fd;
        return 0;
    }
    close(fd);
    if (rc == -EAGAIN) {
        guard_drop(r, g, &r->guard);
        return rc;
    }
    log_warn("failed to take a lease on model file %s (%s); an overwrite in place will "
             "be noticed only once it has begun",
             r->path, strerror(-rc));
    return 0;
}

/* ==== loading ========================================================== */

/* file_open - open the file at the path and read what it is from the
 * descriptor: the file served is the one opened here, whatever the path
 * names by the time it is read. Returns the descriptor or -errno. */
static int file_open(const char *path, struct file_id *id)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) != 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    *id = (struct file_id){st.st_dev, st.st_ino, st.st_size, st.st_mtim};
    return fd;
}

/* spoiled - why the model just validated from the file @id, guarded by
 * @pending, must not be served; NULL if it may. model_open() reads the
 * path, not the descriptor guarded, so the path must still lead there. */
static const char *spoiled(const struct reload *r, const struct guard *pending,
                           const struct file_id *id)
{
    struct file_id now = {0};
    if (lease_broken(pending))
        return "was opened for writing while it was validated; it is loaded once the writer "
               "closes it";
    if (file_id_read(r->path, &now) != 0 || !same_inode(&now, id))
        return "was replaced or removed while it was validated";
    return NULL;
}

/* refuse - publish @next with the reason the file could not be loaded. */
static void refuse(struct reload *r, struct snapshot *next, const struct err *e, int rc)
{
    const char *problem = problem_of(e, rc, r->path);
    snprintf(next->error, sizeof(next->error), "%s", problem);
    next->pub.failed_count++;
    /* Published before it is logged: whoever reads the log line and then
     * asks GetModelInfo must see the refusal counted. */
    publish(r, next);
    log_refused(r, r->snap->error);
}

/* serve - publish @next with @m, opened from the file @id, and move the
 * served file's guard to @pending's. The old file's guard goes only once
 * publish() has unmapped the old model: until then a writer of the old
 * file must still be held up. */
static void serve(struct reload *r, struct snapshot *next, struct model *m, struct guard *pending,
                  const struct file_id *id)
{
    next->model = m;
    next->pub.reload_count++;
    next->error[0] = '\0';
    r->served = *id;
    publish(r, next);
    if (r->listener.published != NULL)
        r->listener.published(m, r->listener.arg);
    guard_drop(r, &r->guard, pending);
    r->guard = *pending;
    *pending = NO_GUARD;
}

/* load - open the file at the path and serve it, or record why not. The
 * file is guarded before model_open() reads a byte of it, so a writer that
 * opens it meanwhile is held up and the load abandoned, rather than a
 * truncation faulting validation or a model served from changing bytes.
 * Watcher thread. */
static void load(struct reload *r)
{
    struct file_id id = {0};
    struct guard pending = NO_GUARD;
    struct snapshot *next = NULL;
    struct model *m;
    struct err e = {0};
    int64_t start, load_ms, probe_ms;
    const char *why;
    int probed, rc, fd = file_open(r->path, &id);
    if (fd >= 0 && r->snap->model != NULL && same_file(&id, &r->served)) {
        close(fd);
        /* An attempt all the same: whoever sent SIGHUP sees it counted. */
        next = snapshot_next(r);
        if (next != NULL) {
            next->pub.last_attempt_unix = (int64_t)time(NULL);
            publish(r, next);
        }
        log_info("model file %s unchanged; still serving version %s", r->path,
                 model_info(r->snap->model)->version);
        return;
    }
    /* A missing file (fd < 0) goes on: model_open() says why it is refused. */
    if (fd >= 0 && guard_take(r, fd, &pending) == -EAGAIN) {
        log_warn("model file %s is open for writing; loading it once the writer closes it",
                 r->path);
        return;
    }
    next = snapshot_next(r);
    if (next == NULL) {
        log_error("failed to load model %s (out of memory)", r->path);
        goto out;
    }
    start = now_ms();
    rc = model_open(r->path, r->slots, &m, &e);
    load_ms = now_ms() - start;
    next->pub.last_attempt_unix = (int64_t)time(NULL);
    if (rc != 0) {
        refuse(r, next, &e, rc);
        next = NULL;
        goto out;
    }
    /* Before publishing: a serving thread never probes, nor sees a model
     * whose copy is still to be chosen. And before spoiled(), which then
     * covers the file during the probe too. */
    scan_prepare(m);
    /* The fold-in is an extra: a model it cannot be prepared for is still
     * served, and its users with live events are scored by their rows. */
    start = now_ms();
    rc = foldin_prepare(m, &e);
    if (rc != 0)
        log_warn("failed to prepare the fold-in for model %s (%s); serving it without", r->path,
                 e.msg);
    else if (foldin_ready(m))
        log_debug("fold-in Gram of model %s computed in %" PRId64 " ms", r->path, now_ms() - start);
    start = now_ms();
    probed = scan_probe(m);
    probe_ms = now_ms() - start;
    why = spoiled(r, &pending, &id);
    if (why != NULL) {
        log_warn("not serving model file %s: it %s", r->path, why);
        model_close(m);
        goto out;
    }
    serve(r, next, m, &pending, &id);
    next = NULL;
    log_loaded(m, load_ms);
    if (probed)
        log_probed(m, probe_ms);
out:
    free(next);
    guard_drop(r, &pending, &r->guard);
}

/* ==== guarding the served file ========================================= */

/* withdraw - stop serving the model and let go of its file: it is being
 * overwritten in place; @how says at which point that was noticed. The
 * inode watch stays, to see the writer close the file. */
static void withdraw(struct reload *r, const char *how)
{
    struct snapshot *next = snapshot_next(r);
    if (next == NULL) {
        log_error("failed to withdraw model %s (out of memory)", r->path);
        return;
    }
    char version[sizeof(next->error)];
    snprintf(version, sizeof(version), "%s", model_info(r->snap->model)->version);
    next->model = NULL;
    snprintf(next->error, sizeof(next->error),
             "the served file was overwritten in place; publish models by rename");
    publish(r, next); /* before the log line, as in refuse() */
    lease_drop(r);
    log_error("model file %s %s: withdrew version %s and answering UNAVAILABLE until the "
              "file is closed and valid; a mapped model must not change, publish models by "
              "writing a new file and renaming it over the path",
              r->path, how, version);
}

/* A lease of ours is being broken: the served file's, or one let go of
 * since (a file abandoned during validation, a file replaced), which needs
 * nothing more. The served file's writer waits until withdraw() releases
 * it. */
static void on_lease_break(struct reload *r)
{
    struct signalfd_siginfo si;
    while (read(r->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        continue;
    if (lease_broken(&r->guard))
        withdraw(r, "is being opened for writing or truncated in place");
}

/* ==== the watcher ===================================================== */

static int watch_dir(struct reload *r)
{
    struct stat st;
    r->dir_wd = inotify_add_watch(r->inotify_fd, r->dir, DIR_EVENTS);
    if (r->dir_wd < 0)
        return -errno;
    if (stat(r->dir, &st) == 0) {
        r->dir_dev = st.st_dev;
        r->dir_ino = st.st_ino;
    }
    return 0;
}

/* dir_lost - whether the directory watched is no longer at its path. The
 * kernel says IN_DELETE_SELF only once the directory is freed, and the
 * model mapped from it keeps it alive: removing the directory of the
 * served model says nothing until another model replaces it. So the
 * watcher also looks every DIR_RETRY_MS. */
static bool dir_lost(const struct reload *r)
{
    struct stat st;
    return stat(r->dir, &st) != 0 || st.st_dev != r->dir_dev || st.st_ino != r->dir_ino;
}

static void debounce_note(struct debounce *d, int64_t now, int may_be_new_file)
{
    if (may_be_new_file && !d->pending) {
        d->pending = 1;
        d->first_ms = now;
    }
    if (d->pending)
        d->last_ms = now;
}

/* poll's timeout: until the load is due, or -1 with nothing pending. */
static int debounce_timeout(const struct debounce *d, int64_t now)
{
    if (!d->pending)
        return -1;
    int64_t due = d->last_ms + QUIET_MS;
    if (due > d->first_ms + MAX_DELAY_MS)
        due = d->first_ms + MAX_DELAY_MS;
    return due > now ? (int)(due - now) : 0;
}

static void on_replaced(struct reload *r, struct debounce *d, int64_t now)
{
    debounce_note(d, now, 1);
}

static void on_busy(struct reload *r, struct debounce *d, int64_t now)
{
    debounce_note(d, now, 0);
}

static void on_served_modified(struct reload *r, struct debounce *d, int64_t now)
{
    if (r->snap->model != NULL)
        withdraw(r, "is being overwritten in place");
}

static void on_overflow(struct reload *r, struct debounce *d, int64_t now)
{
    log_warn("inotify queue overflowed, events on %s were lost; checking the model file", r->dir);
    debounce_note(d, now, 1);
}

/* set_watching - publish whether the model's directory is followed; when
 * it is not, say so where operators look (GetModelInfo, /metrics). */
static void set_watching(struct reload *r, bool watching)
{
    struct snapshot *next = snapshot_next(r);
    if (next == NULL) {
        log_error("failed to record the watch on %s (out of memory)", r->dir);
        return;
    }
    next->pub.watching = watching;
    if (!watching)
        snprintf(next->error, sizeof(next->error),
                 "the model's directory %s was removed or moved: new files are not followed "
                 "until it is back",
                 r->dir);
    else if (!r->snap->pub.watching)
        next->error[0] = '\0'; /* that reason is gone; load() says if another holds */
    publish(r, next);
}

static void on_dir_gone(struct reload *r, struct debounce *d, int64_t now)
{
    /* A moved directory is still watched, under a name that no longer
     * leads to the path. IN_IGNORED follows; its wd is then stale. */
    inotify_rm_watch(r->inotify_fd, r->dir_wd);
    r->dir_wd = -1;
    d->pending = 0;
    if (r->snap->pub.watching)
        set_watching(r, false);
    log_error("failed to follow model file %s (its directory was removed or moved); "
              "still serving what was loaded, and watching again once %s is back",
              r->path, r->dir);
}

/* rewatch - the directory is back (or SIGHUP asked): watch it and load
 * what is at the path now. Returns whether it is watched. */
static bool rewatch(struct reload *r)
{
    if (watch_dir(r) != 0)
        return false;
    log_info("watching %s again", r->dir);
    set_watching(r, true);
    return true;
}

/* Where an event comes from. */
enum source {
    FROM_PATH,      /* the directory watch, naming the model file */
    FROM_DIR,       /* the directory watch, about the directory itself */
    FROM_INODE,     /* the served inode's watch */
    FROM_QUEUE,     /* inotify itself */
    FROM_ELSEWHERE, /* another name in the directory, or a watch removed since */
};

static enum source source_of(const struct reload *r, const struct inotify_event *ev)
{
    if (ev->mask & IN_Q_OVERFLOW)
        return FROM_QUEUE;
    if (r->guard.wd >= 0 && ev->wd == r->guard.wd)
        return FROM_INODE;
    if (r->dir_wd < 0 || ev->wd != r->dir_wd)
        return FROM_ELSEWHERE;
    if (ev->len == 0)
        return FROM_DIR;
    return strcmp(ev->name, r->name) == 0 ? FROM_PATH : FROM_ELSEWHERE;
}

static const struct event_rule {
    enum source source;
    uint32_t mask;
    void (*fn)(struct reload *r, struct debounce *d, int64_t now);
} event_rules[] = {
    {FROM_PATH, IN_MOVED_TO | IN_CLOSE_WRITE | IN_CREATE, on_replaced},
    {FROM_PATH, IN_MODIFY, on_busy},
    {FROM_INODE, IN_MODIFY, on_served_modified},
    {FROM_INODE, IN_CLOSE_WRITE, on_replaced},
    {FROM_DIR, IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED, on_dir_gone},
    {FROM_QUEUE, IN_Q_OVERFLOW, on_overflow},
};

#define N_EVENT_RULES (sizeof(event_rules) / sizeof(event_rules[0]))

static void dispatch(struct reload *r, struct debounce *d, const struct inotify_event *ev,
                     int64_t now)
{
    enum source from = source_of(r, ev);
    for (size_t i = 0; i < N_EVENT_RULES; i++) {
        if (event_rules[i].source == from && (ev->mask & event_rules[i].mask)) {
            event_rules[i].fn(r, d, now);
            return;
        }
    }
}

static void read_events(struct reload *r, struct debounce *d)
{
    char buf[16 * (sizeof(struct inotify_event) + NAME_MAX + 1)]
        __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read(r->inotify_fd, buf, sizeof(buf));
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            log_error("failed to read inotify events on %s (%s)", r->dir, strerror(errno));
        if (n <= 0)
            return;
        int64_t now = now_ms();
        const struct inotify_event *ev;
        for (char *p = buf; p < buf + n; p += sizeof(*ev) + ev->len) {
            ev = (const struct inotify_event *)p;
            dispatch(r, d, ev, now);
        }
    }
}

/* Takes the pending wake-ups; returns whether the watcher must stop. */
static int take_wake(struct reload *r)
{
    uint64_t count;
    ssize_t n = read(r->wake_fd, &count, sizeof(count));
    (void)n; /* EAGAIN only: another wake-up was taken first */
    return __atomic_load_n(&r->stopping, __ATOMIC_ACQUIRE);
}

static void on_request(struct reload *r, struct debounce *d)
{
    if (r->dir_wd < 0)
        rewatch(r);
    d->pending = 0; /* this load covers the events seen so far */
    load(r);
}

static void *watch(void *arg)
{
    struct reload *r = arg;
    struct debounce d = {0};
    sigset_t lease_signal;
    lease_signal_set(&lease_signal);
    pthread_sigmask(SIG_BLOCK, &lease_signal, NULL);
    /* The first load, here too: reload_start returns once the file it
     * found is served and guarded. */
    load(r);
    sem_post(&r->started);
    for (;;) {
        /* A lease break first: a writer is held up until it is handled. */
        struct pollfd fds[3] = {{.fd = r->signal_fd, .events = POLLIN},
                                {.fd = r->wake_fd, .events = POLLIN},
                                {.fd = r->inotify_fd, .events = POLLIN}};
        int timeout = debounce_timeout(&d, now_ms());
        if (timeout < 0 || timeout > DIR_RETRY_MS)
            timeout = DIR_RETRY_MS;
        if (poll(fds, 3, timeout) < 0 && errno != EINTR) {
            log_error("failed to wait for model file events (%s); the model will not be "
                      "reloaded any more",
                      strerror(errno));
            return NULL;
        }
        if (fds[0].revents & POLLIN)
            on_lease_break(r);
        if (fds[1].revents & POLLIN) {
            if (take_wake(r))
                return NULL;
            on_request(r, &d);
        }
        if (fds[2].revents & POLLIN)
            read_events(r, &d);
        if (r->dir_wd >= 0 && dir_lost(r))
            on_dir_gone(r, &d, now_ms());
        if (r->dir_wd < 0 && rewatch(r))
            load(r);
        if (d.pending && debounce_timeout(&d, now_ms()) == 0) {
            d.pending = 0;
            load(r);
        }
    }
}

/* ==== start and stop ================================================== */

/* split_path - r->path, r->dir and r->name from @path. */
static int split_path(struct reload *r, const char *path, struct err *e)
{
    size_t len = strlen(path);
    if (len == 0 || path[len - 1] == '/')
        return err_set(e, ERR_INVALID, "model path \"%s\" does not name a file", path);
    r->path = strdup(path);
    if (r->path == NULL)
        return err_set(e, -ENOMEM, "out of memory");
    const char *slash = strrchr(r->path, '/');
    r->name = slash != NULL ? slash + 1 : r->path;
    if (slash == NULL)
        r->dir = strdup(".");
    else if (slash == r->path)
        r->dir = strdup("/");
    else
        r->dir = strndup(r->path, (size_t)(slash - r->path));
    if (r->dir == NULL)
        return err_set(e, -ENOMEM, "out of memory");
    return 0;
}

static int open_watch(struct reload *r, struct err *e)
{
    r->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (r->inotify_fd < 0)
        return err_set(e, -errno, "failed to create an inotify instance (%s)", strerror(errno));
    r->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (r->wake_fd < 0)
        return err_set(e, -errno, "failed to create an eventfd (%s)", strerror(errno));
    sigset_t lease_signal;
    lease_signal_set(&lease_signal);
    r->signal_fd = signalfd(-1, &lease_signal, SFD_NONBLOCK | SFD_CLOEXEC);
    if (r->signal_fd < 0)
        return err_set(e, -errno, "failed to create a signalfd (%s)", strerror(errno));
    int rc = watch_dir(r);
    if (rc != 0)
        return err_set(e, rc, "failed to watch directory %s (%s)", r->dir, strerror(-rc));
    return 0;
}

static int first_snapshot(struct reload *r, struct err *e)
{
    r->snap = calloc(1, sizeof(*r->snap));
    if (r->snap == NULL)
        return err_set(e, -ENOMEM, "out of memory");
    r->snap->pub.last_error = r->snap->error;
    r->snap->pub.watching = true; /* open_watch() has armed the directory watch */
    __atomic_store_n(&r->current, &r->snap->pub, __ATOMIC_RELEASE);
    return 0;
}

static void destroy(struct reload *r)
{
    if (r->snap != NULL)
        model_close(r->snap->model);
    free(r->snap);
    if (r->inotify_fd >= 0)
        close(r->inotify_fd);
    if (r->wake_fd >= 0)
        close(r->wake_fd);
    if (r->signal_fd >= 0)
        close(r->signal_fd);
    lease_drop(r);
    sem_destroy(&r->started);
    free(r->path);
    free(r->dir);
    free(r);
}

int reload_start(const char *path, unsigned slots, const struct reload_listener *listener,
                 struct reload **out, struct err *e)
{
    *out = NULL;
    if (slots < 1)
        return err_set(e, ERR_INVALID, "at least one lookup slot is needed");
    struct reload *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return err_set(e, -ENOMEM, "out of memory");
    r->slots = slots;
    if (listener != NULL)
        r->listener = *listener;
    sem_init(&r->started, 0, 0);
    r->inotify_fd = r->wake_fd = r->signal_fd = r->dir_wd = -1;
    r->guard = NO_GUARD;
    int rc;
    if ((rc = split_path(r, path, e)) != 0 || (rc = open_watch(r, e)) != 0 ||
        (rc = first_snapshot(r, e)) != 0)
        goto out;
    /* The watcher loads the file after the watch exists, so a file
     * published meanwhile is not missed. */
    if ((rc = pthread_create(&r->watcher, NULL, watch, r)) != 0) {
        rc = err_set(e, -rc, "failed to start the model watcher thread (%s)", strerror(rc));
        goto out;
    }
    while (sem_wait(&r->started) != 0)
        continue; /* EINTR */
    *out = r;
    return 0;
out:
    destroy(r);
    return rc;
}

void reload_request(struct reload *r)
{
    uint64_t one = 1;
    ssize_t n = write(r->wake_fd, &one, sizeof(one));
    (void)n; /* EAGAIN only, with 2^64-2 wake-ups pending: one is enough */
}

void reload_stop(struct reload *r)
{
    if (r == NULL)
        return;
    __atomic_store_n(&r->stopping, 1, __ATOMIC_RELEASE);
    reload_request(r);
    pthread_join(r->watcher, NULL);
    destroy(r);
}

/* ==== the read side =================================================== */

void reload_reader_register(void)
{
    rcu_register_thread();
}

void reload_reader_unregister(void)
{
    rcu_unregister_thread();
}

void reload_section_begin(void)
{
    rcu_read_lock();
}

void reload_section_end(void)
{
    grace_released();
    rcu_read_unlock();
}

const struct reload_snapshot *reload_current(const struct reload *r)
{
    return __atomic_load_n(&r->current, __ATOMIC_ACQUIRE);
}

void reload_synchronize(void)
{
    synchronize_rcu();
    grace_acquired();
}

const struct reload_snapshot *reload_read_begin(const struct reload *r)
{
    reload_section_begin();
    return reload_current(r);
}

void reload_read_end(const struct reload *r)
{
    reload_section_end();
}
