/*
 * reload: the model hot swap.
 *
 * Threads. Serving threads only read: reload_read_begin() is an RCU
 * read-side section (liburcu, memb flavour: a reader updates a thread-local
 * counter, and a worker blocked in its completion queue, outside any
 * section, holds no grace period back) plus one load of r->current. One
 * watcher thread does everything else: it waits on inotify and an eventfd,
 * opens and validates new files, publishes snapshots and reclaims old ones.
 * It is the only writer of r->current, so publishing takes no lock, and it
 * reads the snapshots it owns outside RCU, so it is not a registered reader.
 * It also guards the served file (an inode watch and a lease, below) and
 * is the one thread the lease-break signal is directed at.
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
 *   2. A lease needs the file's owner or CAP_LEASE, a local filesystem and
 *      no writer holding the file open. Without one (logged), the inode
 *      watch's IN_MODIFY triggers the same withdrawal, but only after the
 *      write has begun: a call running in that window (inotify latency plus
 *      a grace period) can still read torn data or fault.
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
 * r->grace as its section ends, and the watcher "acquires" it after
 * synchronize_rcu(), before it frees what the readers used.
 */
#define _GNU_SOURCE /* F_SETLEASE, F_SETOWN_EX, gettid */
#include "reload.h"

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

#include "log.h"

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
    char *dir;        /* the directory watched */
    const char *name; /* the last component of path, in path */
    unsigned slots;
    int inotify_fd;
    int dir_wd;  /* the directory's watch; -1 once the directory is gone */
    int file_wd; /* the served inode's watch; -1 for none */
    int wake_fd;
    int signal_fd; /* LEASE_SIGNAL */
    int lease_fd;  /* holds the lease on the served inode; -1 for none */
    int stopping;  /* __atomic: set by reload_stop */
    pthread_t watcher;
    sem_t started; /* posted by the watcher after the first load */
    char grace;    /* only its address is used: TSan's name for the grace period */
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
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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

static void grace_released(const struct reload *r)
{
#ifdef RELOAD_TSAN
    __tsan_release((void *)&r->grace);
#else
    (void)r;
#endif
}

static void grace_acquired(const struct reload *r)
{
#ifdef RELOAD_TSAN
    __tsan_acquire((void *)&r->grace);
#else
    (void)r;
#endif
}

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
    synchronize_rcu();
    grace_acquired(r);
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

/* load - open the file at the path and serve it, or record why not.
 * Returns 1 when it published a new model, 0 otherwise. Watcher thread. */
static int load(struct reload *r)
{
    struct file_id id = {0};
    int known = file_id_read(r->path, &id) == 0;
    if (r->snap->model != NULL && known && same_file(&id, &r->served)) {
        log_info("model file %s unchanged; still serving version %s", r->path,
                 model_info(r->snap->model)->version);
        return 0;
    }
    struct snapshot *next = snapshot_next(r);
    if (next == NULL) {
        log_error("failed to load model %s (out of memory)", r->path);
        return 0;
    }
    int64_t start = now_ms();
    struct model *m;
    struct err e = {0};
    int rc = model_open(r->path, r->slots, &m, &e);
    int64_t load_ms = now_ms() - start;
    next->pub.last_attempt_unix = (int64_t)time(NULL);
    if (rc != 0) {
        const char *problem = problem_of(&e, rc, r->path);
        log_refused(r, problem);
        snprintf(next->error, sizeof(next->error), "%s", problem);
        next->pub.failed_count++;
        publish(r, next);
        return 0;
    }
    next->model = m;
    next->pub.reload_count++;
    next->error[0] = '\0';
    r->served = id;
    publish(r, next);
    log_loaded(m, load_ms);
    return 1;
}

/* ==== guarding the served file ========================================= */

static void lease_signal_set(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, LEASE_SIGNAL);
}

static void lease_drop(struct reload *r)
{
    if (r->lease_fd >= 0)
        close(r->lease_fd); /* releases the lease, and lets a waiting writer go on */
    r->lease_fd = -1;
}

static void unguard(struct reload *r)
{
    lease_drop(r);
    if (r->file_wd >= 0)
        inotify_rm_watch(r->inotify_fd, r->file_wd);
    r->file_wd = -1;
}

/* watch_inode - the inode watch, on the inode @fd has open: by path, the
 * name could already lead to another file. */
static void watch_inode(struct reload *r, int fd)
{
    char self[64];
    snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
    r->file_wd = inotify_add_watch(r->inotify_fd, self, FILE_EVENTS);
    if (r->file_wd < 0)
        log_warn("failed to watch model file %s (%s); an overwrite in place will not be "
                 "noticed without a lease",
                 r->path, strerror(errno));
}

/* guard - watch the served inode and hold a read lease on it (see the top
 * of this file); or nothing, if nothing is served. Watcher thread only:
 * the lease-break signal is directed at the calling thread. */
static void guard(struct reload *r)
{
    unguard(r);
    if (r->snap->model == NULL)
        return;
    struct f_owner_ex owner = {F_OWNER_TID, gettid()};
    struct stat st;
    int fd = open(r->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_dev != r->served.dev || st.st_ino != r->served.ino) {
        /* Replaced since the load: the next load guards the new file. */
        if (fd >= 0)
            close(fd);
        return;
    }
    watch_inode(r, fd);
    if (fcntl(fd, F_SETSIG, LEASE_SIGNAL) != 0 || fcntl(fd, F_SETOWN_EX, &owner) != 0 ||
        fcntl(fd, F_SETLEASE, F_RDLCK) != 0) {
        log_warn("failed to take a lease on model file %s (%s); an overwrite in place will "
                 "be noticed only once it has begun",
                 r->path, strerror(errno));
        close(fd);
        return;
    }
    r->lease_fd = fd;
}

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
    log_error("model file %s %s: withdrawing version %s and answering UNAVAILABLE until the "
              "file is closed and valid; a mapped model must not change, publish models by "
              "writing a new file and renaming it over the path",
              r->path, how, model_info(r->snap->model)->version);
    next->model = NULL;
    snprintf(next->error, sizeof(next->error),
             "the served file was overwritten in place; publish models by rename");
    publish(r, next);
    lease_drop(r);
}

/* The signal only says a lease of ours is being broken; F_GETLEASE says
 * whether it is the one held now (it reports the lease's target, F_UNLCK,
 * while a break is pending) rather than one dropped since. The writer waits
 * until withdraw() releases it. */
static void on_lease_break(struct reload *r)
{
    struct signalfd_siginfo si;
    while (read(r->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        continue;
    if (r->lease_fd >= 0 && fcntl(r->lease_fd, F_GETLEASE) != F_RDLCK)
        withdraw(r, "is being opened for writing or truncated in place");
}

/* ==== the watcher ===================================================== */

static int watch_dir(struct reload *r)
{
    r->dir_wd = inotify_add_watch(r->inotify_fd, r->dir, DIR_EVENTS);
    return r->dir_wd < 0 ? -errno : 0;
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

static void on_dir_gone(struct reload *r, struct debounce *d, int64_t now)
{
    log_error("failed to follow model file %s (its directory was removed or moved); "
              "send SIGHUP to reload it and watch the directory again",
              r->path);
    /* A moved directory is still watched, under a name that no longer
     * leads to the path. IN_IGNORED follows; its wd is then stale. */
    inotify_rm_watch(r->inotify_fd, r->dir_wd);
    r->dir_wd = -1;
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
    if (r->file_wd >= 0 && ev->wd == r->file_wd)
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

static void load_and_guard(struct reload *r)
{
    if (load(r))
        guard(r);
}

static void on_request(struct reload *r, struct debounce *d)
{
    if (r->dir_wd < 0 && watch_dir(r) == 0)
        log_info("watching %s again", r->dir);
    d->pending = 0; /* this load covers the events seen so far */
    load_and_guard(r);
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
    load_and_guard(r);
    sem_post(&r->started);
    for (;;) {
        /* A lease break first: a writer is held up until it is handled. */
        struct pollfd fds[3] = {{.fd = r->signal_fd, .events = POLLIN},
                                {.fd = r->wake_fd, .events = POLLIN},
                                {.fd = r->inotify_fd, .events = POLLIN}};
        if (poll(fds, 3, debounce_timeout(&d, now_ms())) < 0 && errno != EINTR) {
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
        if (d.pending && debounce_timeout(&d, now_ms()) == 0) {
            d.pending = 0;
            load_and_guard(r);
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

int reload_start(const char *path, unsigned slots, struct reload **out, struct err *e)
{
    *out = NULL;
    if (slots < 1)
        return err_set(e, ERR_INVALID, "at least one lookup slot is needed");
    struct reload *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return err_set(e, -ENOMEM, "out of memory");
    r->slots = slots;
    sem_init(&r->started, 0, 0);
    r->inotify_fd = r->wake_fd = r->signal_fd = r->lease_fd = r->dir_wd = r->file_wd = -1;
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

const struct reload_snapshot *reload_read_begin(const struct reload *r)
{
    rcu_read_lock();
    return __atomic_load_n(&r->current, __ATOMIC_ACQUIRE);
}

void reload_read_end(const struct reload *r)
{
    grace_released(r);
    rcu_read_unlock();
}
