#define _GNU_SOURCE /* accept4 */
#include "server/listener.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"

/* At most one line per this many seconds about refused connections, with
 * the count refused since: a flood of connections must not flood the log. */
#define REFUSED_LOG_S 10
/* How long a full table of descriptors, without even the spare, pauses
 * accepting. */
#define NO_SPARE_WAIT_MS 10

struct listener {
    int fds[LISTENER_MAX_FDS];
    size_t n_fds;
    int port;
    int spare;             /* /dev/null, given up to drain the backlog at EMFILE */
    int cap;               /* descriptors at or above this are refused */
    const char *what;      /* static */
    time_t refused_logged; /* when the last line about refusals went out */
    unsigned refused;      /* refusals not logged yet */
};

/* split_address - "host:port" or "[v6]:port" into host and port, in @buf. */
static int split_address(const char *addr, const char *what, char *buf, size_t size, char **host,
                         char **port, struct err *e)
{
    if (snprintf(buf, size, "%s", addr) >= (int)size)
        return err_set(e, ERR_INVALID, "%s address '%s' is too long", what, addr);
    char *colon = strrchr(buf, ':');
    if (colon == NULL || colon[1] == '\0')
        return err_set(e, ERR_INVALID, "%s address '%s' is not HOST:PORT", what, addr);
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

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
        return -1;
    return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                          : ((struct sockaddr_in *)&ss)->sin_port);
}

static void set_port(struct sockaddr *sa, int port)
{
    if (sa->sa_family == AF_INET6)
        ((struct sockaddr_in6 *)sa)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)sa)->sin_port = htons((uint16_t)port);
}

/* listen_on - one listening socket for @a (on @port unless 0). @v6only:
 * the name also resolved to IPv4, which gets a socket of its own on the
 * same port; otherwise an IPv6 socket takes IPv4 too ("[::]:50051"). */
static int listen_on(struct addrinfo *a, int port, int backlog, int v6only)
{
    if (port > 0)
        set_port(a->ai_addr, port);
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    if (a->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, backlog) != 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

int listener_open(const char *addr, const char *what, int backlog, unsigned max_conns,
                  struct listener **out, struct err *e)
{
    char buf[256], *host = NULL, *port = NULL;
    int rc = split_address(addr, what, buf, sizeof(buf), &host, &port, e);
    if (rc != 0)
        return rc;
    struct listener *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return err_set(e, -ENOMEM, "out of memory");
    l->what = what;
    l->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
    /* Read once: main() has raised the soft limit before any listener. */
    struct rlimit lim;
    rlim_t soft = getrlimit(RLIMIT_NOFILE, &lim) == 0 ? lim.rlim_cur : 1024;
    if (soft > INT_MAX)
        soft = INT_MAX;
    l->cap = soft > 2 * LISTENER_FD_RESERVE ? (int)(soft - LISTENER_FD_RESERVE) : (int)soft / 2;
    /* The spare is the lowest descriptor free now: connections come above. */
    if (l->spare >= 0 && (long long)l->spare + max_conns < l->cap)
        l->cap = l->spare + (int)max_conns;

    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(host[0] != '\0' ? host : NULL, port, &hints, &ai);
    if (gai != 0) {
        listener_close(l);
        return err_set(e, ERR_INVALID, "cannot listen on %s (%s)", addr, gai_strerror(gai));
    }
    int v4 = 0, v6 = 0;
    for (struct addrinfo *a = ai; a != NULL; a = a->ai_next) {
        v4 |= a->ai_family == AF_INET;
        v6 |= a->ai_family == AF_INET6;
    }
    rc = -EADDRNOTAVAIL;
    for (struct addrinfo *a = ai; a != NULL && l->n_fds < LISTENER_MAX_FDS; a = a->ai_next) {
        int fd = listen_on(a, l->port, backlog, v4 && v6);
        if (fd < 0) {
            rc = fd;
            continue;
        }
        l->fds[l->n_fds++] = fd;
        if (l->port == 0)
            l->port = bound_port(fd);
    }
    freeaddrinfo(ai);
    if (l->n_fds == 0) {
        listener_close(l);
        return err_set(e, ERR_INVALID, "cannot listen on %s (%s)", addr, strerror(-rc));
    }
    *out = l;
    return 0;
}

int listener_port(const struct listener *l)
{
    return l->port;
}

size_t listener_poll(const struct listener *l, struct pollfd *p)
{
    for (size_t i = 0; i < l->n_fds; i++)
        p[i] = (struct pollfd){.fd = l->fds[i], .events = POLLIN};
    return l->n_fds;
}

/* refused - note one connection refused for want of descriptors. */
static int refused(struct listener *l, int open_fds)
{
    l->refused++;
    time_t now = time(NULL);
    if (now - l->refused_logged >= REFUSED_LOG_S) {
        log_warn("refused %u %s connection%s: descriptors in use reached %d, the bound for "
                 "connections (their limit, or the open files limit less a reserve); more "
                 "refusals are logged at most every %d s",
                 l->refused, l->what, l->refused == 1 ? "" : "s", open_fds, REFUSED_LOG_S);
        l->refused_logged = now;
        l->refused = 0;
    }
    return ERR_TOO_BIG;
}

/* no_delay - turn Nagle's algorithm off on connection @c. The gRPC core
 * does so on the connections it accepts itself, not on those handed to it
 * (grpc_server_add_channel_from_fd). With it on, a reply written in two
 * pieces waits for the peer's ACK of the first, which a peer may hold for
 * its delayed-ACK time (40 ms on Linux): ghz (grpc-go) measured 1,200
 * calls/s and a p50 of 45 ms on the health check here, h2load 29,000. */
static void no_delay(int c)
{
    int one = 1;
    if (setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
        log_debug("failed to set TCP_NODELAY on a connection (%s)", strerror(errno));
}

int listener_accept(struct listener *l, int fd)
{
    int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c >= l->cap) {
        close(c);
        return refused(l, c);
    }
    if (c >= 0) {
        no_delay(c);
        return c;
    }
    if (errno == EMFILE || errno == ENFILE) {
        if (l->spare < 0) {
            /* No spare to give up (it could not be opened again): wait a
             * little rather than spin on a socket that stays readable. */
            nanosleep(&(struct timespec){0, NO_SPARE_WAIT_MS * 1000000L}, NULL);
            l->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
            return refused(l, l->cap);
        }
        close(l->spare);
        c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (c >= 0)
            close(c);
        l->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
        return c >= 0 ? refused(l, l->cap) : -EAGAIN;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK)
        log_debug("failed to accept a %s connection (%s)", l->what, strerror(errno));
    return -EAGAIN;
}

void listener_close(struct listener *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->n_fds; i++)
        close(l->fds[i]);
    if (l->spare >= 0)
        close(l->spare);
    free(l);
}
