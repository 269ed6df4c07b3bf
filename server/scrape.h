/*
 * scrape: the metrics endpoint, GET /metrics over HTTP/1.1 for Prometheus.
 *
 * One thread serves up to 16 connections on --metrics-listen side by side,
 * with poll(): a client that sends its request slowly, or never, waits
 * beside a scrape, not in front of it, and is cut off after 2 s (a
 * response not taken, after SCRAPE_TIMEOUT_MS); with all 16 taken, the
 * oldest still sending makes room. It accepts through listener.h, so it
 * neither spins nor stops when descriptors run out. Every response closes
 * its connection. What it answers:
 *
 *   GET or HEAD /metrics   200, the source's text exposition
 *   any other path         404
 *   any other method       405
 *   a malformed request    400; a request head over 8 KiB: 431
 *
 * The endpoint is off the serving path entirely: it reads only what the
 * source writes, and the source reads counters and snapshots the workers
 * publish without waiting on them.
 */
#pragma once

#include <stdio.h>

#include "base/err.h"

#define SCRAPE_TIMEOUT_MS 5000

/* What /metrics shows. write() runs on the endpoint's thread, once per
 * scrape, between thread_start() and thread_stop(), which run once each on
 * that thread (to register it as an RCU reader, for example); either may
 * be NULL. write() returns 0, or a negative code to answer 500. */
struct scrape_source {
    int (*write)(void *arg, FILE *out);
    void (*thread_start)(void *arg);
    void (*thread_stop)(void *arg);
    void *arg;
};

struct scrape;

/* scrape_start - listen on @addr ("HOST:PORT", "[IPv6]:PORT"; port 0
 * picks a free one) and serve @src (copied) until scrape_stop.
 * Returns 0, ERR_INVALID (malformed address, or it cannot be bound: the
 * text says why), -ENOMEM or -errno. On failure nothing is left running. */
int scrape_start(const char *addr, const struct scrape_source *src, struct scrape **out,
                 struct err *e);

/* scrape_port - the port actually bound. */
int scrape_port(const struct scrape *s);

/* scrape_stop - stop answering (a scrape in progress is finished first),
 * close the socket, join the thread, free @s. NULL is a no-op. */
void scrape_stop(struct scrape *s);
