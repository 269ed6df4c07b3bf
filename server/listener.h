/*
 * listener: listening TCP sockets the daemon accepts on itself.
 *
 * gRPC's core (1.51) stops accepting on a port for good the first time
 * accept4 fails with anything but EAGAIN: after one moment without a free
 * descriptor (EMFILE), the port never accepts again while the process runs
 * on (issue 11, finding 1). So for a plaintext port the server accepts
 * connections itself and hands each to the core (grpc_server_add_channel_
 * from_fd), and the metrics endpoint does the same for its own; this
 * module is what both share:
 *
 *   - a connection whose descriptor number reaches the soft RLIMIT_NOFILE
 *     less LISTENER_FD_RESERVE, or the descriptors open when the listener
 *     was opened plus its connection bound, is closed at once: accept4
 *     returns the lowest free descriptor, so that number counts those open
 *     (the process's other descriptors, a few dozen, make the bound on
 *     connections approximate), and the reserve stays for the model files,
 *     LMDB and the core itself;
 *   - when accept4 fails for lack of descriptors all the same (another
 *     thread took the reserve), one descriptor kept open for the purpose is
 *     closed, the waiting connection accepted and closed with it, and the
 *     spare opened again: the backlog drains instead of the caller
 *     spinning on a socket that stays readable;
 *   - every other failure leaves the socket listening.
 */
#pragma once

#include <poll.h>
#include <stddef.h>

#include "base/err.h"

/* Descriptors kept free for everything but connections; see above. */
#define LISTENER_FD_RESERVE 64
/* Listening sockets one address may resolve to (IPv4 and IPv6 of a name). */
#define LISTENER_MAX_FDS 4

struct listener;

/* listener_open - bind and listen on every address "HOST:PORT" (or
 * "[V6]:PORT") resolves to; port 0 picks a free port, the same for all.
 * @what:  names the socket in messages ("metrics", "gRPC"); static.
 * @max_conns: connections open at once, about (see above).
 * @out:   receives the listener; close it with listener_close.
 * Returns 0, ERR_INVALID (malformed, cannot resolve, cannot bind: text in
 * @e, which may be NULL) or -ENOMEM. */
int listener_open(const char *addr, const char *what, int backlog, unsigned max_conns,
                  struct listener **out, struct err *e);

/* listener_port - the port bound. */
int listener_port(const struct listener *l);

/* listener_poll - fill @p[0..n) with the listening sockets, for POLLIN.
 * Returns n (at most LISTENER_MAX_FDS). */
size_t listener_poll(const struct listener *l, struct pollfd *p);

/* listener_accept - one connection waiting on listening socket @fd (one of
 * listener_poll's), non-blocking, close-on-exec and without Nagle's
 * algorithm (TCP_NODELAY).
 * Returns the connected descriptor, -EAGAIN when none is waiting, or
 * ERR_TOO_BIG when one was refused for want of descriptors (closed, and
 * logged at most a few times a minute). Other failures of accept4 (the
 * peer gave up) also return -EAGAIN after logging at debug level. */
int listener_accept(struct listener *l, int fd);

/* listener_close - close the sockets and free @l. NULL is a no-op. */
void listener_close(struct listener *l);
