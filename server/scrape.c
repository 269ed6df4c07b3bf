#define _GNU_SOURCE /* accept4 */
#include "server/scrape.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"

#define HEAD_MAX  8192
#define LINGER_MS 1000

struct scrape {
    struct scrape_source src;
    int listen_fd;
    int stop_fd; /* an eventfd: readable once scrape_stop wants the thread out */
    int port;
    pthread_t thread;
    bool running;
};

/* ---- one connection -------------------------------------------------------- */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* await - wait until @fd is ready for @events or the deadline passes.
 * Returns 0, or -ETIMEDOUT. */
static int await(int fd, short events, long long deadline)
{
    for (;;) {
        long long left = deadline - now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, (int)left);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

/* read_head - the request line and headers, up to the blank line.
 * Returns their length, 0 if the peer closed first, or a negative code:
 * ERR_TOO_BIG for a head over HEAD_MAX, -ETIMEDOUT, -errno. */
static ssize_t read_head(int fd, char *buf, long long deadline)
{
    size_t len = 0;
    for (;;) {
        int rc = await(fd, POLLIN, deadline);
        if (rc != 0)
            return rc;
        ssize_t n = recv(fd, buf + len, HEAD_MAX - len, 0);
        if (n == 0)
            return 0;
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            return -errno;
        }
        len += (size_t)n;
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end != NULL)
            return end - buf;
        if (len == HEAD_MAX)
            return ERR_TOO_BIG;
    }
}

static int send_all(int fd, const char *data, size_t len, long long deadline)
{
    while (len > 0) {
        int rc = await(fd, POLLOUT, deadline);
        if (rc != 0)
            return rc;
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            return -errno;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

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

static void respond(int fd, int code, const char *body, size_t len, bool head_only,
                    long long deadline)
{
    const char *reason = "Error";
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (reasons[i].code == code)
            reason = reasons[i].reason;
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                     "Content-Length: %zu\r\n"
                     "%s"
                     "Connection: close\r\n\r\n",
                     code, reason, len, code == 405 ? "Allow: GET, HEAD\r\n" : "");
    if (send_all(fd, head, (size_t)n, deadline) == 0 && !head_only)
        send_all(fd, body, len, deadline);
}

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

static void serve(struct scrape *s, int fd)
{
    long long deadline = now_ms() + SCRAPE_TIMEOUT_MS;
    char buf[HEAD_MAX + 1];
    ssize_t n = read_head(fd, buf, deadline);
    if (n == 0 || n == -ETIMEDOUT || (n < 0 && n != ERR_TOO_BIG))
        return; /* nothing to answer, or nobody to answer to */
    char *body = NULL;
    size_t len = 0;
    bool head_only = false;
    int code = 431;
    if (n > 0) {
        buf[strcspn(buf, "\r\n")] = '\0';
        code = route(s, buf, &body, &len, &head_only);
    }
    if (code == 200)
        respond(fd, code, body, len, head_only, deadline);
    else
        respond(fd, code, "", 0, head_only, deadline);
    free(body);
}

/* linger - close our side, then read what the client still sends until it
 * closes too, for LINGER_MS at most: closing a socket with unread input
 * resets the connection, and the client could lose the answer (a 431 after
 * a head we stopped reading, say). */
static void linger(int fd)
{
    char sink[4096];
    long long deadline = now_ms() + LINGER_MS;
    shutdown(fd, SHUT_WR);
    while (await(fd, POLLIN, deadline) == 0) {
        ssize_t n = recv(fd, sink, sizeof(sink), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            break;
    }
}

static void *scrape_main(void *arg)
{
    struct scrape *s = arg;
    if (s->src.thread_start != NULL)
        s->src.thread_start(s->src.arg);
    struct pollfd p[2] = {{.fd = s->stop_fd, .events = POLLIN},
                          {.fd = s->listen_fd, .events = POLLIN}};
    for (;;) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            log_error("failed to wait for metrics scrapes (%s); the endpoint is closed",
                      strerror(errno));
            break;
        }
        if (p[0].revents != 0)
            break;
        if (p[1].revents == 0)
            continue;
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            continue; /* the peer gave up, or a transient shortage: try again */
        serve(s, fd);
        linger(fd);
        close(fd);
    }
    if (s->src.thread_stop != NULL)
        s->src.thread_stop(s->src.arg);
    return NULL;
}

/* ---- start and stop ------------------------------------------------------- */

/* split_address - "host:port" or "[v6]:port" into host and port, in @buf. */
static int split_address(const char *addr, char *buf, size_t size, char **host, char **port,
                         struct err *e)
{
    if (snprintf(buf, size, "%s", addr) >= (int)size)
        return err_set(e, ERR_INVALID, "metrics address '%s' is too long", addr);
    char *colon = strrchr(buf, ':');
    if (colon == NULL || colon[1] == '\0')
        return err_set(e, ERR_INVALID, "metrics address '%s' is not HOST:PORT", addr);
    *colon = '\0';
    *host = buf;
    *port = colon + 1;
    size_t hl = strlen(buf);
    if (hl >= 2 && buf[0] == '[' && buf[hl - 1] == ']') {
        buf[hl - 1] = '\0';
        *host = buf + 1;
    }
    return 0;
}

static int bind_listen(struct scrape *s, const char *addr, struct err *e)
{
    char buf[256], *host = NULL, *port = NULL;
    int rc = split_address(addr, buf, sizeof(buf), &host, &port, e);
    if (rc != 0)
        return rc;
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(host[0] != '\0' ? host : NULL, port, &hints, &ai);
    if (gai != 0)
        return err_set(e, ERR_INVALID, "cannot listen for metrics on %s (%s)", addr,
                       gai_strerror(gai));
    rc = -EADDRNOTAVAIL;
    for (struct addrinfo *a = ai; a != NULL && s->listen_fd < 0; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        int one = 1;
        if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
            bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 16) == 0) {
            s->listen_fd = fd;
            break;
        }
        rc = -errno;
        if (fd >= 0)
            close(fd);
    }
    freeaddrinfo(ai);
    if (s->listen_fd < 0)
        return err_set(e, ERR_INVALID, "cannot listen for metrics on %s (%s)", addr, strerror(-rc));
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(s->listen_fd, (struct sockaddr *)&ss, &sl);
    s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

int scrape_start(const char *addr, const struct scrape_source *src, struct scrape **out,
                 struct err *e)
{
    struct scrape *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return err_set(e, -ENOMEM, "out of memory");
    s->src = *src;
    s->listen_fd = -1;
    s->stop_fd = eventfd(0, EFD_CLOEXEC);
    int rc = s->stop_fd < 0 ? err_set(e, -errno, "cannot create an eventfd (%s)", strerror(errno))
                            : bind_listen(s, addr, e);
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
    return s->port;
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
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    if (s->stop_fd >= 0)
        close(s->stop_fd);
    free(s);
}
