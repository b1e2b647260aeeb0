// SPDX-License-Identifier: MIT
/*
 * evloop_watch.c - the back-end's socket watches (struct vu_watch_ops)
 * bound to our epoll loop (common/evloop.h); the loop argument of every
 * call is a struct evloop.
 */
#include <sys/epoll.h>

#include "backend.h"
#include "common/evloop.h"

static int evloop_watch_add(void *loop, int fd, void (*cb)(void *arg, uint32_t events), void *arg)
{
	return evloop_add(loop, fd, EPOLLIN, cb, arg);
}

static void evloop_watch_del(void *loop, int fd)
{
	evloop_del(loop, fd);
}

const struct vu_watch_ops vu_evloop_watch_ops = {
	.add = evloop_watch_add,
	.del = evloop_watch_del,
};
