/*
 * models: the model set and its route.
 *
 * Threads. Each model's reloader has its watcher (reload.c). A models
 * directory has one more, the directory watcher: it alone lists and drops
 * models, reads routes.json and publishes views, so publishing takes no
 * lock. Views are published like snapshots:
 *
 *   build it aside ─▶ store-release ms->current ─▶ reload_synchronize()
 *       ─▶ free the old view ─▶ stop the reloaders it alone listed
 *
 * The directory watcher is a registered reader too: it reads the models'
 * snapshots, to check that the models a route names are loaded.
 *
 * The list of models is also read by the reloaders' watchers, each time
 * one publishes a model (covered(): the earliest data end of all), so it
 * is changed and read under ms->lock; calls never take it.
 *
 * No debounce here: a listing is a readdir of a small directory, and a
 * route change should be in force at once. Each model's reloader debounces
 * the writes to its own file.
 */
#define _GNU_SOURCE /* O_CLOEXEC in openat, fstatat */
#include "engine/models.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"

#define MODEL_SUFFIX ".lmdb"

/* Directory events that may change the listing or the route: a name that
 * appears (created, renamed or linked in, or written and closed: routes.json
 * edited in place) or goes; and the directory itself going. */
#define DIR_EVENTS                                                                                 \
    (IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM | IN_DELETE_SELF |       \
     IN_MOVE_SELF | IN_ONLYDIR)

/* How often a lost directory is looked for again. */
#define DIR_RETRY_MS 1000

/* Names logged as ignored, at most: a directory filling with odd names
 * must not grow the daemon. */
#define IGNORED_LOGGED_MAX 64

/* One model listed. Owned by the set; freed after a grace period once no
 * view lists it. */
struct entry {
    char name[ROUTE_NAME_MAX + 1];
    struct reload *reload;
    struct models *ms;
    int64_t data_end; /* __atomic: its loaded model's data end; -1 before one is loaded */
    struct models_counts *counts; /* one per slot, apart from the fields the calls read */
};

/* A published view and what it owns. */
struct view {
    struct models_view pub;
    struct models_entry entries[MODELS_MAX];
    struct route route;
    int8_t buckets[ROUTE_BUCKETS];
    char route_error[sizeof(((struct err *)0)->msg)];
};

struct models {
    const struct models_view *current; /* published: __atomic store/load only */
    struct view *view;                 /* the same view, the publisher's handle */
    char *dir;                         /* "" for --model */
    unsigned slots;
    struct models_listener listener;

    pthread_mutex_t lock; /* entries and n, against covered() */
    struct entry *entries[MODELS_MAX];
    size_t n;
    int64_t covered_through; /* under lock: the last data end told */

    /* The route in force, and what became of routes.json. The directory
     * watcher's alone. */
    struct route route;
    const char *route_source;
    char route_error[sizeof(((struct err *)0)->msg)];
    int64_t route_since_unix;

    char (*ignored)[NAME_MAX + 1]; /* names logged as ignored */
    size_t n_ignored;
    bool too_many_logged;

    int inotify_fd;
    int dir_wd;     /* -1 while the directory is lost */
    int request_fd; /* models_request: load every model, read the directory */
    int rescan_fd;  /* a model was published: the route may now hold */
    int stopping;   /* __atomic */
    bool threaded;
    pthread_t watcher;
    sem_t started;
};

/* ==== entries ========================================================= */

static void covered(struct models *ms);

/* on_published - a reloader serves a new model: note its data end, tell
 * the listener what all models hold now, and have the route checked again
 * (a routes file may have waited for this model). On its watcher. */
static void on_published(const struct model *m, void *arg)
{
    struct entry *en = arg;
    __atomic_store_n(&en->data_end, model_training(m)->data_end_unix_ms, __ATOMIC_RELAXED);
    covered(en->ms);
    if (en->ms->rescan_fd >= 0) {
        uint64_t one = 1;
        ssize_t w = write(en->ms->rescan_fd, &one, sizeof(one));
        (void)w; /* EAGAIN only: a rescan is pending anyway */
    }
}

static void entry_free(struct entry *en)
{
    if (en != NULL)
        free(en->counts);
    free(en);
}

/* entry_start - a model named @name served from @path. NULL when it
 * cannot be followed: @e says why. */
static struct entry *entry_start(struct models *ms, const char *name, const char *path,
                                 struct err *e)
{
    struct entry *en = calloc(1, sizeof(*en));
    size_t bytes = ms->slots * sizeof(struct models_counts);
    if (en == NULL || (en->counts = aligned_alloc(sizeof(struct models_counts), bytes)) == NULL) {
        entry_free(en);
        err_set(e, -ENOMEM, "out of memory");
        return NULL;
    }
    memset(en->counts, 0, bytes);
    snprintf(en->name, sizeof(en->name), "%s", name);
    en->ms = ms;
    en->data_end = -1;
    const struct reload_listener listener = {on_published, en};
    if (reload_start(path, ms->slots, &listener, &en->reload, e) != 0) {
        entry_free(en);
        return NULL;
    }
    return en;
}

static void entry_stop(struct entry *en)
{
    reload_stop(en->reload);
    entry_free(en);
}

/* covered - tell the listener the earliest data end of the loaded models,
 * when it has moved on. */
static void covered(struct models *ms)
{
    if (ms->listener.covered == NULL)
        return;
    int64_t through = -1;
    pthread_mutex_lock(&ms->lock);
    for (size_t i = 0; i < ms->n; i++) {
        int64_t end = __atomic_load_n(&ms->entries[i]->data_end, __ATOMIC_RELAXED);
        if (end >= 0 && (through < 0 || end < through))
            through = end;
    }
    bool moved = through > ms->covered_through;
    if (moved)
        ms->covered_through = through;
    pthread_mutex_unlock(&ms->lock);
    if (moved)
        ms->listener.covered(through, ms->listener.arg);
}

/* ==== views =========================================================== */

static int find(const struct models_entry *entries, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(entries[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* view_fill - @v, zeroed, becomes a view of the models listed and the
 * route in force. */
static void view_fill(struct models *ms, struct view *v)
{
    for (size_t i = 0; i < ms->n; i++)
        v->entries[i] = (struct models_entry){ms->entries[i]->name, ms->entries[i]->reload,
                                              ms->entries[i]->counts, ms->slots};
    v->route = ms->route;
    snprintf(v->route_error, sizeof(v->route_error), "%s", ms->route_error);
    v->pub = (struct models_view){.n = ms->n,
                                  .entries = v->entries,
                                  .dir = ms->dir,
                                  .route = &v->route,
                                  .route_source = ms->route_source,
                                  .route_error = v->route_error,
                                  .route_since_unix = ms->route_since_unix};
    v->pub.default_entry = find(v->entries, ms->n, v->route.default_name);
    if (v->route.n_arms > 0) {
        for (uint32_t b = 0; b < ROUTE_BUCKETS; b++) {
            int arm = find(v->entries, ms->n, v->route.arms[route_arm_of(&v->route, b)].name);
            v->buckets[b] = (int8_t)(arm >= 0 ? arm : v->pub.default_entry);
        }
        v->pub.buckets = v->buckets;
    }
}

/* publish - make @next (zeroed, allocated by the caller before it changed
 * anything, so that publishing cannot fail) a view of what is listed now,
 * current, and free the old view once no call can see it. */
static void publish(struct models *ms, struct view *next)
{
    view_fill(ms, next);
    struct view *old = ms->view;
    __atomic_store_n(&ms->current, &next->pub, __ATOMIC_RELEASE);
    ms->view = next;
    reload_synchronize();
    free(old);
}

/* ==== the route ======================================================= */

/* loaded - whether the listed model @name is loaded now. */
static bool loaded(const struct models *ms, const char *name)
{
    for (size_t i = 0; i < ms->n; i++) {
        if (strcmp(ms->entries[i]->name, name) != 0)
            continue;
        reload_section_begin();
        bool yes = reload_current(ms->entries[i]->reload)->model != NULL;
        reload_section_end();
        return yes;
    }
    return false;
}

/* route_check - whether every model @r names is listed and loaded. */
static int route_check(const struct models *ms, const struct route *r, struct err *e)
{
    if (!loaded(ms, r->default_name))
        return err_set(e, ERR_INVALID, "default: model '%s' is not loaded", r->default_name);
    for (uint32_t i = 0; i < r->n_arms; i++)
        if (!loaded(ms, r->arms[i].name))
            return err_set(e, ERR_INVALID, "split: model '%s' is not loaded", r->arms[i].name);
    return 0;
}

/* route_read - routes.json read and checked into @r. Returns 0, -ENOENT
 * (no file), or another error with @e saying why it is refused. */
static int route_read(const struct models *ms, struct route *r, struct err *e)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", ms->dir, MODELS_ROUTES);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? -ENOENT : err_set(e, -errno, "%s", strerror(errno));
    /* One byte more than allowed, to tell a file that is too long. */
    char *text = malloc(ROUTE_FILE_MAX + 1);
    size_t len = 0;
    ssize_t got = 0;
    while (
        text != NULL && len <= ROUTE_FILE_MAX &&
        ((got = read(fd, text + len, ROUTE_FILE_MAX + 1 - len)) > 0 || (got < 0 && errno == EINTR)))
        len += got > 0 ? (size_t)got : 0;
    int rc = text == NULL ? err_set(e, -ENOMEM, "out of memory")
             : got < 0    ? err_set(e, -errno, "%s", strerror(errno))
             : len > ROUTE_FILE_MAX
                 ? err_set(e, ERR_INVALID, "longer than %d bytes", ROUTE_FILE_MAX)
                 : route_parse(text, len, r, e);
    close(fd);
    free(text);
    return rc != 0 ? rc : route_check(ms, r, e);
}

/* route_implied - the route without routes.json: the model named
 * "default", else the only model. */
static void route_implied(const struct models *ms, struct route *r, const char **source)
{
    *r = (struct route){0};
    if (ms->n == 1 && strcmp(ms->entries[0]->name, MODELS_DEFAULT) != 0) {
        snprintf(r->default_name, sizeof(r->default_name), "%s", ms->entries[0]->name);
        *source = "the only model";
        return;
    }
    snprintf(r->default_name, sizeof(r->default_name), "%s", MODELS_DEFAULT);
    *source = "the model named default";
}

static void log_route(const struct route *r, const char *source)
{
    char arms[ROUTE_ARMS_MAX * (ROUTE_NAME_MAX + 8)] = "";
    size_t at = 0;
    for (uint32_t i = 0; i < r->n_arms && at < sizeof(arms); i++)
        at += (size_t)snprintf(arms + at, sizeof(arms) - at, "%s%s:%" PRIu32, i > 0 ? "," : "",
                               r->arms[i].name, r->arms[i].weight);
    log_info("route: default=%s split=%s salt=\"%s\" (from %s)", r->default_name,
             r->n_arms > 0 ? arms : "none", r->salt, source);
}

static bool same_route(const struct route *a, const struct route *b)
{
    if (strcmp(a->default_name, b->default_name) != 0 || a->salt_len != b->salt_len ||
        memcmp(a->salt, b->salt, a->salt_len) != 0 || a->n_arms != b->n_arms)
        return false;
    for (uint32_t i = 0; i < a->n_arms; i++)
        if (strcmp(a->arms[i].name, b->arms[i].name) != 0 || a->arms[i].weight != b->arms[i].weight)
            return false;
    return true;
}

/* route_update - the route as routes.json and the listed models have it
 * now. A refused file leaves the route in force, unless that came from no
 * file. Returns whether anything a view shows changed. */
static bool route_update(struct models *ms)
{
    struct route next;
    const char *source = MODELS_ROUTES;
    struct err e = {0};
    char why[sizeof(ms->route_error)] = "";
    int rc = route_read(ms, &next, &e);
    if (rc == -ENOENT) {
        route_implied(ms, &next, &source);
    } else if (rc != 0) {
        snprintf(why, sizeof(why), "%s", e.msg);
        if (strcmp(why, ms->route_error) != 0)
            log_error("%s/%s refused (%s); routing as before, by %s", ms->dir, MODELS_ROUTES, why,
                      ms->route_source);
        if (strcmp(ms->route_source, MODELS_ROUTES) == 0) {
            next = ms->route; /* a file in force stays */
            source = ms->route_source;
        } else {
            route_implied(ms, &next, &source);
        }
    }
    bool changed = strcmp(why, ms->route_error) != 0;
    snprintf(ms->route_error, sizeof(ms->route_error), "%s", why);
    if (same_route(&next, &ms->route) && strcmp(source, ms->route_source) == 0)
        return changed;
    ms->route = next;
    ms->route_source = source;
    ms->route_since_unix = (int64_t)time(NULL);
    log_route(&next, source);
    return true;
}

/* ==== the directory =================================================== */

/* log_ignored - say once that @name is not a model. */
static void log_ignored(struct models *ms, const char *name)
{
    for (size_t i = 0; i < ms->n_ignored; i++)
        if (strcmp(ms->ignored[i], name) == 0)
            return;
    if (ms->n_ignored == IGNORED_LOGGED_MAX)
        return;
    snprintf(ms->ignored[ms->n_ignored++], NAME_MAX + 1, "%s", name);
    log_warn(
        "%s/%s ignored: not NAME%s with NAME a model name ([a-z0-9][a-z0-9_-]{0,63}), nor %s%s",
        ms->dir, name, MODEL_SUFFIX, MODELS_ROUTES,
        ms->n_ignored == IGNORED_LOGGED_MAX ? "; further names are not logged" : "");
}

/* model_name - the model name of directory entry @name, into @out; false
 * for a name that is no model's. */
static bool model_name(const char *name, char out[ROUTE_NAME_MAX + 1])
{
    size_t len = strlen(name), stem = len - (sizeof(MODEL_SUFFIX) - 1);
    if (len < sizeof(MODEL_SUFFIX) || strcmp(name + stem, MODEL_SUFFIX) != 0 ||
        !route_name_valid(name, stem))
        return false;
    memcpy(out, name, stem);
    out[stem] = '\0';
    return true;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* list_dir - the model names in the directory, sorted, into @names.
 * Returns how many, or -1 when the directory cannot be read (logged). */
static int list_dir(struct models *ms, char names[MODELS_MAX][ROUTE_NAME_MAX + 1])
{
    DIR *d = opendir(ms->dir);
    if (d == NULL) {
        log_error("failed to read models directory %s (%s)", ms->dir, strerror(errno));
        return -1;
    }
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        char name[ROUTE_NAME_MAX + 1];
        if (de->d_name[0] == '.' || strcmp(de->d_name, MODELS_ROUTES) == 0)
            continue;
        if (!model_name(de->d_name, name) || fstatat(dirfd(d), de->d_name, &st, 0) != 0 ||
            !S_ISREG(st.st_mode)) {
            log_ignored(ms, de->d_name);
            continue;
        }
        if (n == MODELS_MAX) {
            if (!ms->too_many_logged)
                log_error("models directory %s holds more than %d models; %s and others are "
                          "not served",
                          ms->dir, MODELS_MAX, de->d_name);
            ms->too_many_logged = true;
            continue;
        }
        memcpy(names[n++], name, sizeof(name));
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof(names[0]), by_name);
    return n;
}

/* scan - list the models of the directory, start the new, drop the gone,
 * read the route, and publish what changed. Directory watcher. */
static void scan(struct models *ms)
{
    char names[MODELS_MAX][ROUTE_NAME_MAX + 1];
    struct view *fresh = calloc(1, sizeof(*fresh));
    if (fresh == NULL) {
        log_error("failed to read models directory %s (out of memory)", ms->dir);
        return;
    }
    int found = list_dir(ms, names);
    if (found < 0) {
        free(fresh);
        return;
    }
    struct entry *next[MODELS_MAX], *gone[MODELS_MAX];
    size_t n = 0, n_gone = 0;
    bool changed = false;
    for (size_t i = 0, j = 0; i < (size_t)found || j < ms->n;) {
        int cmp = i == (size_t)found ? 1 : j == ms->n ? -1 : strcmp(names[i], ms->entries[j]->name);
        if (cmp > 0) {
            gone[n_gone++] = ms->entries[j++];
            continue;
        }
        if (cmp == 0) {
            next[n++] = ms->entries[j++];
            i++;
            continue;
        }
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s%s", ms->dir, names[i], MODEL_SUFFIX);
        struct err e = {0};
        struct entry *en = entry_start(ms, names[i], path, &e);
        if (en != NULL) {
            next[n++] = en;
            log_info("model %s added from %s", names[i], path);
        } else {
            log_error("failed to follow model %s at %s (%s)", names[i], path, e.msg);
        }
        i++;
    }
    changed = n != ms->n || n_gone > 0;
    pthread_mutex_lock(&ms->lock);
    memcpy(ms->entries, next, n * sizeof(next[0]));
    ms->n = n;
    pthread_mutex_unlock(&ms->lock);
    changed |= route_update(ms);
    if (changed)
        publish(ms, fresh);
    else
        free(fresh);
    for (size_t k = 0; k < n_gone; k++) {
        log_info("model %s dropped: its file %s/%s%s is gone", gone[k]->name, ms->dir,
                 gone[k]->name, MODEL_SUFFIX);
        entry_stop(gone[k]);
    }
    if (changed)
        covered(ms);
}

static int watch_dir(struct models *ms)
{
    ms->dir_wd = inotify_add_watch(ms->inotify_fd, ms->dir, DIR_EVENTS);
    return ms->dir_wd < 0 ? -errno : 0;
}

/* read_events - take the pending inotify events; returns whether one may
 * have changed the listing or the route. */
static bool read_events(struct models *ms)
{
    char buf[16 * (sizeof(struct inotify_event) + NAME_MAX + 1)]
        __attribute__((aligned(__alignof__(struct inotify_event))));
    bool relevant = false;
    ssize_t n;
    while ((n = read(ms->inotify_fd, buf, sizeof(buf))) > 0) {
        const struct inotify_event *ev;
        for (char *p = buf; p < buf + n; p += sizeof(*ev) + ev->len) {
            ev = (const struct inotify_event *)p;
            if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
                if (ms->dir_wd >= 0)
                    log_error("models directory %s was removed or moved; still serving its "
                              "models, and watching again once it is back",
                              ms->dir);
                inotify_rm_watch(ms->inotify_fd, ms->dir_wd);
                ms->dir_wd = -1;
                continue;
            }
            relevant |= (ev->mask & IN_Q_OVERFLOW) || ev->len == 0 || ev->name[0] != '.';
        }
    }
    return relevant;
}

/* take - drain eventfd @fd; whether it had been written. */
static bool take(int fd)
{
    uint64_t count;
    return read(fd, &count, sizeof(count)) == (ssize_t)sizeof(count);
}

/* on_request - SIGHUP: every model loads its file, and the directory is
 * read again. */
static void on_request(struct models *ms)
{
    if (ms->dir_wd < 0 && watch_dir(ms) == 0)
        log_info("watching models directory %s again", ms->dir);
    for (size_t i = 0; i < ms->n; i++)
        reload_request(ms->entries[i]->reload);
    scan(ms);
}

static void *watch(void *arg)
{
    struct models *ms = arg;
    reload_reader_register();
    scan(ms);
    sem_post(&ms->started);
    while (!__atomic_load_n(&ms->stopping, __ATOMIC_ACQUIRE)) {
        struct pollfd fds[3] = {{.fd = ms->request_fd, .events = POLLIN},
                                {.fd = ms->rescan_fd, .events = POLLIN},
                                {.fd = ms->inotify_fd, .events = POLLIN}};
        if (poll(fds, 3, ms->dir_wd < 0 ? DIR_RETRY_MS : -1) < 0 && errno != EINTR) {
            log_error("failed to wait for models directory events (%s); %s is not followed any "
                      "more",
                      strerror(errno), ms->dir);
            break;
        }
        if (__atomic_load_n(&ms->stopping, __ATOMIC_ACQUIRE))
            break;
        /* Both, always: each drains what it reads. */
        bool woken = take(ms->rescan_fd);
        bool rescan = read_events(ms) || woken;
        if (ms->dir_wd < 0 && watch_dir(ms) == 0) {
            log_info("watching models directory %s again", ms->dir);
            rescan = true;
        }
        if (take(ms->request_fd))
            on_request(ms);
        else if (rescan)
            scan(ms);
    }
    reload_reader_unregister();
    return NULL;
}

/* ==== start and stop ================================================== */

static struct models *create(const char *dir, unsigned slots,
                             const struct models_listener *listener, struct err *e)
{
    struct models *ms = calloc(1, sizeof(*ms));
    if (ms == NULL || (ms->dir = strdup(dir)) == NULL) {
        free(ms);
        err_set(e, -ENOMEM, "out of memory");
        return NULL;
    }
    ms->slots = slots;
    if (listener != NULL)
        ms->listener = *listener;
    ms->covered_through = -1;
    ms->inotify_fd = ms->request_fd = ms->rescan_fd = ms->dir_wd = -1;
    ms->route_source = "";
    pthread_mutex_init(&ms->lock, NULL);
    sem_init(&ms->started, 0, 0);
    return ms;
}

int models_open_file(const char *path, unsigned slots, const struct models_listener *listener,
                     struct models **out, struct err *e)
{
    *out = NULL;
    struct models *ms = create("", slots, listener, e);
    if (ms == NULL)
        return e->code;
    struct entry *en = entry_start(ms, MODELS_DEFAULT, path, e);
    if (en == NULL) {
        models_stop(ms);
        return e->code;
    }
    ms->entries[0] = en;
    ms->n = 1;
    snprintf(ms->route.default_name, sizeof(ms->route.default_name), "%s", MODELS_DEFAULT);
    ms->route_source = "--model";
    ms->route_since_unix = (int64_t)time(NULL);
    struct view *first = calloc(1, sizeof(*first));
    if (first == NULL) {
        models_stop(ms);
        return err_set(e, -ENOMEM, "out of memory");
    }
    publish(ms, first);
    covered(ms);
    *out = ms;
    return 0;
}

/* open_watch - the directory watch and the watcher's wake-ups. */
static int open_watch(struct models *ms, struct err *e)
{
    ms->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (ms->inotify_fd < 0)
        return err_set(e, -errno, "failed to create an inotify instance (%s)", strerror(errno));
    ms->request_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ms->rescan_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (ms->request_fd < 0 || ms->rescan_fd < 0)
        return err_set(e, -errno, "failed to create an eventfd (%s)", strerror(errno));
    int rc = watch_dir(ms);
    if (rc != 0)
        return err_set(e, rc, "failed to watch models directory %s (%s)", ms->dir, strerror(-rc));
    return 0;
}

int models_open_dir(const char *dir, unsigned slots, const struct models_listener *listener,
                    struct models **out, struct err *e)
{
    *out = NULL;
    struct models *ms = create(dir, slots, listener, e);
    if (ms == NULL)
        return e->code;
    ms->ignored = calloc(IGNORED_LOGGED_MAX, sizeof(*ms->ignored));
    struct view *empty = calloc(1, sizeof(*empty));
    int rc = ms->ignored == NULL || empty == NULL ? err_set(e, -ENOMEM, "out of memory")
                                                  : open_watch(ms, e);
    if (rc == 0) {
        /* Calls may come before the first listing: they find no model. */
        publish(ms, empty);
        empty = NULL;
        if ((rc = pthread_create(&ms->watcher, NULL, watch, ms)) != 0)
            rc = err_set(e, -rc, "failed to start the models directory watcher (%s)", strerror(rc));
    }
    if (rc != 0) {
        free(empty);
        models_stop(ms);
        return rc;
    }
    ms->threaded = true;
    while (sem_wait(&ms->started) != 0)
        continue; /* EINTR */
    *out = ms;
    return 0;
}

void models_request(struct models *ms)
{
    if (ms->request_fd < 0) {
        reload_request(ms->entries[0]->reload);
        return;
    }
    uint64_t one = 1;
    ssize_t n = write(ms->request_fd, &one, sizeof(one));
    (void)n; /* EAGAIN only: one request is pending anyway */
}

void models_stop(struct models *ms)
{
    if (ms == NULL)
        return;
    if (ms->threaded) {
        __atomic_store_n(&ms->stopping, 1, __ATOMIC_RELEASE);
        models_request(ms);
        pthread_join(ms->watcher, NULL);
    }
    for (size_t i = 0; i < ms->n; i++)
        entry_stop(ms->entries[i]);
    free(ms->view);
    const int fds[] = {ms->inotify_fd, ms->request_fd, ms->rescan_fd};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        if (fds[i] >= 0)
            close(fds[i]);
    pthread_mutex_destroy(&ms->lock);
    sem_destroy(&ms->started);
    free(ms->ignored);
    free(ms->dir);
    free(ms);
}

/* ==== the read side =================================================== */

const struct models_view *models_read_begin(const struct models *ms)
{
    reload_section_begin();
    return __atomic_load_n(&ms->current, __ATOMIC_ACQUIRE);
}

void models_read_end(const struct models *ms)
{
    reload_section_end();
}

int models_pick(const struct models_view *v, const char *name, const char *user,
                struct models_pick *out, struct err *e)
{
    int at;
    if (name[0] != '\0')
        at = find(v->entries, v->n, name);
    else if (v->buckets != NULL && user[0] != '\0')
        at = v->buckets[route_bucket(v->route, user, strlen(user))];
    else
        at = v->default_entry;
    if (at < 0 && name[0] != '\0')
        return err_set(e, ERR_NOT_FOUND, "model '%.*s' not found", 2 * ROUTE_NAME_MAX, name);
    if (at < 0) {
        *out = (struct models_pick){NULL, v->route->default_name, NULL};
        return 0;
    }
    const struct models_entry *en = &v->entries[at];
    *out = (struct models_pick){en, en->name, reload_current(en->reload)};
    return 0;
}

uint64_t models_counted(const struct models_entry *en, unsigned what)
{
    uint64_t sum = 0;
    for (unsigned s = 0; s < en->slots; s++)
        sum += __atomic_load_n(&en->counts[s].n[what], __ATOMIC_RELAXED);
    return sum;
}

static bool entry_loaded(const struct models_view *v, int at)
{
    return at >= 0 && reload_current(v->entries[at].reload)->model != NULL;
}

bool models_ready(const struct models_view *v)
{
    if (!entry_loaded(v, v->default_entry))
        return false;
    for (uint32_t b = 0; v->buckets != NULL && b < ROUTE_BUCKETS; b++)
        if (!entry_loaded(v, v->buckets[b]))
            return false;
    return true;
}

void models_shares(const struct models_view *v, uint32_t share[MODELS_MAX])
{
    memset(share, 0, MODELS_MAX * sizeof(share[0]));
    for (uint32_t b = 0; b < ROUTE_BUCKETS; b++) {
        int at = v->buckets != NULL ? v->buckets[b] : v->default_entry;
        if (at >= 0)
            share[at]++;
    }
}

uint64_t models_mapped_bytes(const struct models_view *v)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < v->n; i++) {
        const struct model *m = reload_current(v->entries[i].reload)->model;
        if (m != NULL)
            sum += model_info(m)->file_bytes;
    }
    return sum;
}
