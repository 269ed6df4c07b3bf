/*
 * bench/events: RecordEvents load from an HTTP/2 client of its own, for
 * bench/events.py, which starts the daemon and prints the figures.
 *
 * --callers connections, each a caller with one call in flight: a caller
 * sends its next call the moment the last one is answered (closed loop),
 * or, with --rps, at its next slot of an even pace (calls/s over all
 * callers; a call answered late sends the next at once, never two). Every
 * call carries --events events (10), each of a user and an item of its
 * own: the users are "<tag>-<call>-<k>", fresh in every call, so no user
 * nears its 10,000 pending events and no two events of a run share a key;
 * the items cycle through --items-file (ids the model knows: an unknown
 * item is counted, not stored, which would flatter the rate). The events
 * are views dated now (timestamp 0).
 *
 * It runs --seconds (or until stdin closes, with --seconds 0: the
 * background load of bench/events.py's third measurement), then prints one
 * line of key=value figures: calls, ok (grpc-status 0), events/s of calls
 * answered OK, p50/p90/p99/max of a call in microseconds (queued for the
 * socket to status parsed), and the CPU this process took over the run as
 * a share of one core (getrusage), so that the report can say the
 * generator is not the limit.
 *
 * The connection machinery is bench/overload's, cut down: one thread, one
 * epoll loop, non-blocking sockets with TCP_NODELAY, an nghttp2 client
 * session each, frames gathered and written with one send().
 *
 * Usage: events --port P --items-file F [--callers 16] [--events 10]
 *                [--seconds 5] [--rps CALLS_PER_S] [--tag T]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "recsys/v1/recommender.pb-c.h"
#include "timing.h"

enum {
    EVENTS_MAX = 1000,       /* the daemon's limit per call */
    ID_BYTES = 64,           /* a user or item id, with its NUL */
    BODY_MAX = 256 << 10,    /* one call's gRPC message: 1,000 events of ~100 bytes */
    CONN_OUT = 512 << 10,    /* a connection's write buffer: one call and its SETTINGS */
    READ_BUF = 64 << 10,     /* one read takes what the socket has */
    STREAM_WINDOW = 1 << 20, /* an answer is a few bytes: never held back */
    LAT_MAX = 4 << 20,       /* latencies kept: 4M calls, far more than a run makes */
};

struct conn {
    int fd;
    nghttp2_session *h2;
    uint8_t *out;
    size_t out_len;
    uint8_t *body;
    size_t len, sent;
    bool connecting, ready, busy;
    int status;
    double start_us, next_us;
};

struct gen {
    const char *tag;
    char **items;
    size_t nitems;
    uint32_t events;
    double pace_us; /* 0: closed loop */
    uint64_t seq, calls, ok;
    float *lat;
    size_t nlat;
    nghttp2_session_callbacks *cb;
    nghttp2_nv headers[6];
};

static struct gen G;

static ssize_t read_body(nghttp2_session *h2, int32_t stream, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *source, void *user)
{
    struct conn *c = source->ptr;
    size_t n = c->len - c->sent < length ? c->len - c->sent : length;
    memcpy(buf, c->body + c->sent, n);
    c->sent += n;
    if (c->sent == c->len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* start_call - a RecordEvents of G.events events, each of a fresh user
 * and the next item of the list, on @c. */
static int start_call(struct conn *c)
{
    Recsys__V1__Event ev[EVENTS_MAX];
    Recsys__V1__Event *evp[EVENTS_MAX];
    char users[EVENTS_MAX][ID_BYTES];
    uint64_t call = G.seq++;
    for (uint32_t k = 0; k < G.events; k++) {
        recsys__v1__event__init(&ev[k]);
        snprintf(users[k], ID_BYTES, "%s-%llu-%u", G.tag, (unsigned long long)call, k);
        ev[k].user_id = users[k];
        ev[k].item_id = G.items[(call * G.events + k) % G.nitems];
        ev[k].type = RECSYS__V1__EVENT_TYPE__VIEW;
        evp[k] = &ev[k];
    }
    Recsys__V1__RecordEventsRequest r = RECSYS__V1__RECORD_EVENTS_REQUEST__INIT;
    r.n_events = G.events;
    r.events = evp;
    size_t len = recsys__v1__record_events_request__pack(&r, c->body + 5);
    c->body[0] = 0; /* not compressed, then the length big-endian */
    uint32_t be = htonl((uint32_t)len);
    memcpy(c->body + 1, &be, 4);
    c->len = 5 + len;
    c->sent = 0;
    c->status = -1;
    nghttp2_data_provider body = {.source.ptr = c, .read_callback = read_body};
    if (nghttp2_submit_request(c->h2, NULL, G.headers, 6, &body, c) < 0)
        return -1;
    c->busy = true;
    c->start_us = timing_now_us();
    return 0;
}

static ssize_t on_send(nghttp2_session *h2, const uint8_t *data, size_t length, int flags,
                       void *user)
{
    struct conn *c = user;
    size_t room = CONN_OUT - c->out_len;
    if (room == 0)
        return NGHTTP2_ERR_WOULDBLOCK;
    size_t n = length < room ? length : room;
    memcpy(c->out + c->out_len, data, n);
    c->out_len += n;
    return (ssize_t)n;
}

static int on_frame(nghttp2_session *h2, const nghttp2_frame *frame, void *user)
{
    struct conn *c = user;
    if (frame->hd.type == NGHTTP2_SETTINGS && !(frame->hd.flags & NGHTTP2_FLAG_ACK))
        c->ready = true;
    return 0;
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user)
{
    struct conn *c = user;
    if (frame->hd.type == NGHTTP2_HEADERS && namelen == 11 && memcmp(name, "grpc-status", 11) == 0)
        c->status = valuelen == 1 && value[0] == '0' ? 0 : 2;
    return 0;
}

static int on_close(nghttp2_session *h2, int32_t stream, uint32_t error, void *user)
{
    struct conn *c = user;
    double now = timing_now_us();
    G.calls++;
    if (c->status == 0 && error == NGHTTP2_NO_ERROR) {
        G.ok++;
        if (G.nlat < LAT_MAX)
            G.lat[G.nlat++] = (float)(now - c->start_us);
    }
    c->busy = false;
    c->next_us = G.pace_us > 0 ? fmax(c->next_us + G.pace_us, now - G.pace_us) : now;
    return 0;
}

static int conn_open(struct conn *c, const struct sockaddr_in *addr, int epfd)
{
    static const nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
    };
    int one = 1;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0 || setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
        return -1;
    if (connect(c->fd, (const struct sockaddr *)addr, sizeof(*addr)) != 0 && errno != EINPROGRESS)
        return -1;
    c->connecting = true;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0)
        return -1;
    if (nghttp2_session_client_new(&c->h2, G.cb, c) != 0 ||
        nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, settings, 2) != 0)
        return -1;
    return 0;
}

/* flush - start @c's next call when it is due, let nghttp2 write into the
 * buffer, send it with one send(); 0, or -1 when the connection is lost. */
static int flush(struct conn *c, int epfd, double now, bool stopping)
{
    if (c->ready && !c->busy && !stopping && c->next_us <= now && start_call(c) != 0)
        return -1;
    if (nghttp2_session_send(c->h2) != 0)
        return -1;
    if (!c->connecting && c->out_len > 0) {
        ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
        if (n > 0) {
            memmove(c->out, c->out + n, c->out_len - (size_t)n);
            c->out_len -= (size_t)n;
        } else if (errno != EAGAIN) {
            return -1;
        }
    }
    struct epoll_event ev = {.events = EPOLLIN | (c->connecting || c->out_len > 0 ? EPOLLOUT : 0),
                             .data.ptr = c};
    return epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0 ? 0 : -1;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static double pct(double p)
{
    if (G.nlat == 0)
        return 0;
    size_t i = (size_t)ceil(p * (double)G.nlat) - 1;
    return G.lat[i < G.nlat ? i : G.nlat - 1];
}

static char **read_items(const char *path, size_t *n)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    char **v = NULL, line[ID_BYTES];
    size_t cap = 0;
    *n = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\r\n")] = 0;
        if (line[0] == 0)
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 1024;
            v = realloc(v, cap * sizeof(*v));
        }
        v[(*n)++] = strdup(line);
    }
    fclose(f);
    return v;
}

int main(int argc, char **argv)
{
    int port = 0;
    uint32_t callers = 16;
    double seconds = 5, rps = 0;
    const char *items_file = NULL;
    G.events = 10;
    G.tag = "ev";
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--port") == 0)
            port = atoi(v);
        else if (strcmp(k, "--callers") == 0)
            callers = (uint32_t)atoi(v);
        else if (strcmp(k, "--events") == 0)
            G.events = (uint32_t)atoi(v);
        else if (strcmp(k, "--seconds") == 0)
            seconds = atof(v);
        else if (strcmp(k, "--rps") == 0)
            rps = atof(v);
        else if (strcmp(k, "--tag") == 0)
            G.tag = v;
        else if (strcmp(k, "--items-file") == 0)
            items_file = v;
        else
            argc = 0;
    }
    if (argc == 0 || port <= 0 || items_file == NULL || callers == 0 || G.events == 0 ||
        G.events > EVENTS_MAX) {
        fprintf(stderr, "usage: events --port P --items-file F [--callers 16] [--events 10] "
                        "[--seconds 5 (0: until stdin closes)] [--rps CALLS_PER_S] [--tag T]\n");
        return 2;
    }
    G.items = read_items(items_file, &G.nitems);
    if (G.items == NULL || G.nitems == 0) {
        fprintf(stderr, "events: failed to read item ids from %s\n", items_file);
        return 1;
    }
    G.pace_us = rps > 0 ? 1e6 * callers / rps : 0;
    G.lat = malloc(LAT_MAX * sizeof(*G.lat));
    static nghttp2_nv headers[] = {
#define NV(n, v) {(uint8_t *)n, (uint8_t *)v, sizeof(n) - 1, sizeof(v) - 1, NGHTTP2_NV_FLAG_NONE}
        NV(":method", "POST"),
        NV(":scheme", "http"),
        NV(":path", "/recsys.v1.Recommender/RecordEvents"),
        NV("content-type", "application/grpc"),
        NV("te", "trailers"),
#undef NV
    };
    char authority[32];
    snprintf(authority, sizeof(authority), "127.0.0.1:%d", port);
    memcpy(G.headers, headers, sizeof(headers));
    G.headers[5] = (nghttp2_nv){(uint8_t *)":authority", (uint8_t *)authority, 10,
                                strlen(authority), NGHTTP2_NV_FLAG_NONE};
    nghttp2_session_callbacks_new(&G.cb);
    nghttp2_session_callbacks_set_send_callback(G.cb, on_send);
    nghttp2_session_callbacks_set_on_frame_recv_callback(G.cb, on_frame);
    nghttp2_session_callbacks_set_on_header_callback(G.cb, on_header);
    nghttp2_session_callbacks_set_on_stream_close_callback(G.cb, on_close);

    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    struct conn *conns = calloc(callers, sizeof(*conns));
    uint8_t *in = malloc(READ_BUF);
    double t0 = timing_now_us();
    for (uint32_t i = 0; i < callers; i++) {
        conns[i].out = malloc(CONN_OUT);
        conns[i].body = malloc(BODY_MAX);
        /* Paced callers start spread over one pace, not all at once. */
        conns[i].next_us = t0 + G.pace_us * i / callers;
        if (conn_open(&conns[i], &addr, epfd) != 0 || flush(&conns[i], epfd, t0, false) != 0) {
            fprintf(stderr, "events: failed to connect to %s (%s)\n", authority, strerror(errno));
            return 1;
        }
    }
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    double start = timing_now_us(), end = start + seconds * 1e6;
    bool stopping = false;
    struct epoll_event evs[64];
    for (;;) {
        double now = timing_now_us();
        if (!stopping) {
            if (seconds > 0)
                stopping = now >= end;
            else {
                struct pollfd p = {.fd = 0, .events = POLLIN};
                char b[64];
                stopping = poll(&p, 1, 0) == 1 && read(0, b, sizeof(b)) <= 0;
            }
        }
        bool busy = false;
        double next = now + 10e3;
        for (uint32_t i = 0; i < callers; i++) {
            busy |= conns[i].busy;
            if (!conns[i].busy && conns[i].next_us < next)
                next = conns[i].next_us;
        }
        if (stopping && !busy)
            break;
        /* Rounded up: a timeout of 0 before a due call would spin. */
        int timeout = next > now ? (int)ceil((next - now) / 1e3) : 0;
        int n = epoll_wait(epfd, evs, 64, timeout);
        now = timing_now_us();
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c->connecting) {
                int err = 0;
                socklen_t len = sizeof(err);
                if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)
                    goto lost;
                c->connecting = false;
            }
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                ssize_t r = read(c->fd, in, READ_BUF);
                if (r == 0 || (r < 0 && errno != EAGAIN) ||
                    (r > 0 && nghttp2_session_mem_recv(c->h2, in, (size_t)r) != r))
                    goto lost;
            }
        }
        for (uint32_t i = 0; i < callers; i++)
            if (flush(&conns[i], epfd, now, stopping) != 0)
                goto lost;
    }
    getrusage(RUSAGE_SELF, &ru1);
    double wall = (timing_now_us() - start) / 1e6;
    double cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec + ru1.ru_stime.tv_sec -
                          ru0.ru_stime.tv_sec) +
                 (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec + ru1.ru_stime.tv_usec -
                          ru0.ru_stime.tv_usec) /
                     1e6;
    qsort(G.lat, G.nlat, sizeof(*G.lat), cmp_float);
    printf("calls=%llu ok=%llu seconds=%.3f events_per_s=%.0f p50_us=%.0f p90_us=%.0f "
           "p99_us=%.0f max_us=%.0f cpu_share=%.3f\n",
           (unsigned long long)G.calls, (unsigned long long)G.ok, wall,
           (double)G.ok * G.events / wall, pct(0.50), pct(0.90), pct(0.99), pct(1.0), cpu / wall);
    return G.ok == G.calls ? 0 : 1;
lost:
    fprintf(stderr, "events: lost the connection to %s\n", authority);
    return 1;
}
