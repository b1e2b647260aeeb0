/* SPDX-License-Identifier: MIT */
/*
 * evloop.h - a small epoll event loop for the daemon's control thread.
 *
 * The vhost-user core does not depend on it: it only asks for fds to be
 * watched through struct vu_watch_ops (backend.h), which the daemon binds to
 * this loop (libvhost-user's model).  Queue threads run their own io_uring
 * loops and never touch this one.
 */
#ifndef VHOSTD_COMMON_EVLOOP_H
#define VHOSTD_COMMON_EVLOOP_H

#include <stdbool.h>
#include <stdint.h>

struct evloop;

/* Called with the epoll events (EPOLLIN, EPOLLHUP, ...) that fired. */
typedef void (*evloop_cb)(void *arg, uint32_t events);

struct evloop *evloop_new(void);
void evloop_free(struct evloop *loop);

/* Watch @fd for @events; one watch per fd.  Returns 0 or -errno. */
int evloop_add(struct evloop *loop, int fd, uint32_t events, evloop_cb cb, void *arg);
int evloop_mod(struct evloop *loop, int fd, uint32_t events);
/* Stop watching @fd; safe to call from inside a callback, even for @fd itself. */
void evloop_del(struct evloop *loop, int fd);

/* Run callbacks until evloop_stop(); returns 0 or -errno. */
int evloop_run(struct evloop *loop);
/* Make evloop_run() return after the current round (signal-safe: no). */
void evloop_stop(struct evloop *loop);

#endif /* VHOSTD_COMMON_EVLOOP_H */
