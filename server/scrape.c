#include "server/scrape.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "server/listener.h"

#define HEAD_MAX  8192
#define LINGER_MS 1000
/* Connections served at once. A scrape is one request every few seconds;
 * the rest of the room is for clients that are slow or never send, which
 * wait side by side instead of in front of the scrape. With all of them
 * taken, the oldest one still sending its request makes room. */
#define SCRAPE_CONNS 16
/* How long a client has to send its request: Prometheus sends it at once. */
#define HEAD_TIMEOUT_MS 2000

enum phase { FREE, READ_HEAD, WRITE, LINGER };

struct conn {
    enum phase phase;
    int fd;
    long long since;    /* accepted, CLOCK_MONOTONIC ms: the oldest makes room */
    long long deadline; /* of the current phase */
    size_t len;         /* READ_HEAD: bytes of the head read so far */
    char head[HEAD_MAX + 1];
    char *out; /* WRITE: the response, malloc'ed; out_off of out_len sent */
    size_t out_len, out_off;
};

struct scrape {
    struct scrape_source src;
    struct listener *listener;
    int stop_fd; /* an eventfd: readable once scrape_stop wants the thread out */
    struct conn conns[SCRAPE_CONNS];
    pthread_t thread;
    bool running;
};

static long long now_ms(void)
{
    return clock_ns() / 1000000;
}

/* ---- one response ---------------------------------------------------------- */

static const struct {
    int code;
    const char *reason;
} reasons[] = {
    {200, "OK"},
    {400, "Bad Request"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
};

/* route - the status and body for one request line. *body is malloc'ed
 * (the exposition) or static. */
static int route(struct scrape *s, char *line, char **body, size_t *len, bool *head_only)
{
    char *method = line, *target = strchr(line, ' ');
    char *version = target != NULL ? strchr(target + 1, ' ') : NULL;
    if (version == NULL || strncmp(version + 1, "HTTP/1.", 7) != 0)
        return 400;
    *target++ = '\0';
    *version = '\0';
    target[strcspn(target, "?")] = '\0';
    *head_only = strcmp(method, "HEAD") == 0;
    if (strcmp(method, "GET") != 0 && !*head_only)
        return 405;
    if (strcmp(target, "/metrics") != 0)
        return 404;
    FILE *out = open_memstream(body, len);
    if (out == NULL)
        return 500;
    int rc = s->src.write(s->src.arg, out);
    if (fclose(out) != 0 || rc != 0) {
        log_warn("failed to write the metrics (%s)", err_strerror(rc != 0 ? rc : -errno));
        return 500;
    }
    return 200;
}

/* respond - the whole response to the head in c->head[0..n) (n < 0: the
 * head was too large), as c->out. */
static void respond(struct scrape *s, struct conn *c, ssize_t n)
{
    char *body = NULL;
    size_t len = 0;
    bool head_only = false;
    int code = 431;
    if (n >= 0) {
        c->head[strcspn(c->head, "\r\n")] = '\0';
        code = route(s, c->head, &body, &len, &head_only);
    }
    if (code != 200)
        len = 0;
    const char *reason = "Error";
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (reasons[i].code == code)
            reason = reasons[i].reason;
    char head[256];
    int hn = snprintf(head, sizeof(head),
                      "HTTP/1.1 %d %s\r\n"
                      "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                      "Content-Length: %zu\r\n"
                      "%s"
                      "Connection: close\r\n\r\n",
                      code, reason, len, code == 405 ? "Allow: GET, HEAD\r\n" : "");
    size_t send_len = (size_t)hn + (head_only ? 0 : len);
    c->out = malloc(send_len);
    if (c->out != NULL) {
        memcpy(c->out, head, (size_t)hn);
        if (!head_only && len > 0)
            memcpy(c->out + hn, body, len);
        c->out_len = send_len;
    }
    free(body);
    c->out_off = 0;
    c->phase = WRITE;
    c->deadline = now_ms() + SCRAPE_TIMEOUT_MS;
}

/* ---- connections ----------------------------------------------------------- */

static void drop(struct conn *c)
{
    close(c->fd);
    free(c->out);
    c->out = NULL;
    c->phase = FREE;
}

/* read_head - take what the client sent; answer once the head is whole. */
static void read_head(struct scrape *s, struct conn *c)
{
    ssize_t n = recv(c->fd, c->head + c->len, HEAD_MAX - c->len, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        drop(c); /* nothing to answer, or nobody to answer to */
        return;
    }
    if (n < 0)
        return;
    c->len += (size_t)n;
    c->head[c->len] = '\0';
    char *end = strstr(c->head, "\r\n\r\n");
    if (end != NULL)
        respond(s, c, end - c->head);
    else if (c->len == HEAD_MAX)
        respond(s, c, -1);
}

/* write_out - send what the socket takes; when all is sent, close our side
 * and linger: read what the client still sends until it closes too, for
 * LINGER_MS at most, since closing a socket with unread input resets the
 * connection, and the client could lose the answer (a 431 after a head we
 * stopped reading, say). */
static void write_out(struct conn *c)
{
    if (c->out == NULL) {
        drop(c);
        return;
    }
    ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
        drop(c);
        return;
    }
    if (n > 0)
        c->out_off += (size_t)n;
    if (c->out_off < c->out_len)
        return;
    free(c->out);
    c->out = NULL;
    shutdown(c->fd, SHUT_WR);
    c->phase = LINGER;
    c->deadline = now_ms() + LINGER_MS;
}

static void linger(struct conn *c)
{
    char sink[4096];
    ssize_t n = recv(c->fd, sink, sizeof(sink), 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
        drop(c);
}

/* room - a free connection, making room if need be: the oldest connection
 * still sending its head is dropped; one writing or lingering is not (it
 * has been answered). NULL when every connection is answered and busy. */
static struct conn *room(struct scrape *s)
{
    struct conn *oldest = NULL;
    for (size_t i = 0; i < SCRAPE_CONNS; i++) {
        struct conn *c = &s->conns[i];
        if (c->phase == FREE)
            return c;
        if (c->phase == READ_HEAD && (oldest == NULL || c->since < oldest->since))
            oldest = c;
    }
    if (oldest != NULL)
        drop(oldest);
    return oldest;
}

static void take_in(struct scrape *s, int lfd)
{
    for (;;) {
        int fd = listener_accept(s->listener, lfd);
        if (fd == -EAGAIN)
            return;
        if (fd < 0)
            continue;
        struct conn *c = room(s);
        if (c == NULL) {
            close(fd);
            continue;
        }
        long long now = now_ms();
        *c = (struct conn){
            .phase = READ_HEAD, .fd = fd, .since = now, .deadline = now + HEAD_TIMEOUT_MS};
    }
}

static void *scrape_main(void *arg)
{
    struct scrape *s = arg;
    if (s->src.thread_start != NULL)
        s->src.thread_start(s->src.arg);
    struct pollfd p[1 + LISTENER_MAX_FDS + SCRAPE_CONNS];
    struct conn *of[SCRAPE_CONNS];
    for (;;) {
        p[0] = (struct pollfd){.fd = s->stop_fd, .events = POLLIN};
        size_t nl = listener_poll(s->listener, p + 1), n = 1 + nl;
        long long now = now_ms(), wake = -1;
        for (size_t i = 0; i < SCRAPE_CONNS; i++) {
            struct conn *c = &s->conns[i];
            if (c->phase == FREE)
                continue;
            if (wake < 0 || c->deadline < wake)
                wake = c->deadline;
            of[n - 1 - nl] = c;
            p[n++] = (struct pollfd){.fd = c->fd, .events = c->phase == WRITE ? POLLOUT : POLLIN};
        }
        /* A deadline passed while this thread did not run (a loaded
         * machine) is judged after the poll: a client whose request has
         * arrived is served, not dropped for our lateness. */
        int timeout = wake < 0 ? -1 : wake > now ? (int)(wake - now) : 0;
        if (poll(p, n, timeout) < 0) {
            if (errno == EINTR)
                continue;
            log_error("failed to wait for metrics scrapes (%s); the endpoint is closed",
                      strerror(errno));
            break;
        }
        if (p[0].revents != 0)
            break;
        now = now_ms();
        for (size_t i = 1 + nl; i < n; i++) {
            struct conn *c = of[i - 1 - nl];
            if (c->phase == FREE)
                continue;
            if (p[i].revents == 0) {
                if (now >= c->deadline)
                    drop(c);
                continue;
            }
            if (c->phase == READ_HEAD)
                read_head(s, c);
            else if (c->phase == WRITE)
                write_out(c);
            else
                linger(c);
        }
        for (size_t i = 1; i <= nl; i++)
            if (p[i].revents != 0)
                take_in(s, p[i].fd);
    }
    for (size_t i = 0; i < SCRAPE_CONNS; i++)
        if (s->conns[i].phase != FREE)
            drop(&s->conns[i]);
    if (s->src.thread_stop != NULL)
        s->src.thread_stop(s->src.arg);
    return NULL;
}

/* ---- start and stop ------------------------------------------------------- */

int scrape_start(const char *addr, const struct scrape_source *src, struct scrape **out,
                 struct err *e)
{
    struct scrape *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return err_set(e, -ENOMEM, "out of memory");
    s->src = *src;
    s->stop_fd = eventfd(0, EFD_CLOEXEC);
    int rc = s->stop_fd < 0 ? err_set(e, -errno, "cannot create an eventfd (%s)", strerror(errno))
                            /* Its own bound is SCRAPE_CONNS, below: no descriptor
                             * count, which would be the gRPC connections'. */
                            : listener_open(addr, "metrics", 16, UINT_MAX, &s->listener, e);
    if (rc == 0) {
        rc = -pthread_create(&s->thread, NULL, scrape_main, s);
        if (rc != 0)
            err_set(e, rc, "cannot start the metrics thread (%s)", strerror(-rc));
    }
    if (rc != 0) {
        scrape_stop(s);
        return rc;
    }
    s->running = true;
    *out = s;
    return 0;
}

int scrape_port(const struct scrape *s)
{
    return listener_port(s->listener);
}

void scrape_stop(struct scrape *s)
{
    if (s == NULL)
        return;
    if (s->running) {
        uint64_t one = 1;
        if (write(s->stop_fd, &one, sizeof(one)) != sizeof(one))
            log_error("failed to stop the metrics thread (%s)", strerror(errno));
        else
            pthread_join(s->thread, NULL);
    }
    listener_close(s->listener);
    if (s->stop_fd >= 0)
        close(s->stop_fd);
    free(s);
}
