// SPDX-License-Identifier: MIT
/*
 * bqueue.c - what every back-end's queue context shares (backend.h):
 * its reactor (shared with the engine's I/O thread, or its own), the
 * list of finished operations waiting for reap(), and eventfd waits.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "backend.h"
#include "common/log.h"
#include "common/util.h"

int blk_queue_base_init(struct blk_queue_base *b, unsigned int depth, struct reactor *r,
			void (*wake)(void *arg), void *arg)
{
	int ret;

	if (!depth || depth > 32768)
		return -EINVAL;
	memset(b, 0, sizeof(*b));
	b->depth = depth;
	b->done_tail = &b->done_head;
	b->wake = wake;
	b->wake_arg = arg;
	if (r) {
		b->r = r;
		return 0;
	}
	/* Room for every operation at once: its SQ never needs an early submit. */
	ret = reactor_init(&b->own, depth < 4096 ? depth : 4096);
	if (ret < 0)
		return ret;
	b->own_reactor = true;
	b->r = &b->own;
	return 0;
}

void blk_queue_base_destroy(struct blk_queue_base *b)
{
	/* Closing our own ring cancels what is still pending (eventfd polls). */
	if (b->own_reactor)
		reactor_exit(&b->own);
	b->own_reactor = false;
}

int blk_queue_base_admit(struct blk_queue_base *b, struct blk_backend_queue *bq, struct blk_io *io)
{
	if (b->inflight >= b->depth)
		return -EBUSY;
	io->res = 0;
	io->done = 0;
	io->stage = 0;
	io->bq = bq;
	io->next = NULL;
	b->inflight++;
	return 0;
}

void blk_queue_base_finish(struct blk_queue_base *b, struct blk_io *io)
{
	bool was_empty = !b->done_head;

	io->next = NULL;
	*b->done_tail = io;
	b->done_tail = &io->next;
	if (was_empty && b->wake)
		b->wake(b->wake_arg);
}

/* Reset an eventfd's count without ever blocking (the fd may be blocking). */
static void eventfd_drain(int fd)
{
	uint64_t v;
	struct iovec iov = {&v, sizeof(v)};

	if (preadv2(fd, &iov, 1, -1, RWF_NOWAIT) < 0 && errno == EOPNOTSUPP) {
		struct pollfd p = {.fd = fd, .events = POLLIN};

		if (poll(&p, 1, 0) == 1 && read(fd, &v, sizeof(v)) < 0)
			return;
	}
}

static void eventfd_ready(struct reactor_event *ev, int res, uint32_t flags)
{
	struct blk_io *io = container_of(ev, struct blk_io, ev);
	struct blk_queue_base *b = (struct blk_queue_base *)io->bq;

	if (res >= 0)
		eventfd_drain(io->fd);
	io->res = res < 0 ? res : 0;
	blk_queue_base_finish(b, io);
}

int blk_queue_base_wait_eventfd(struct blk_queue_base *b, struct blk_io *io)
{
	struct io_uring_sqe *sqe;

	io->ev.fn = eventfd_ready;
	sqe = reactor_sqe(b->r, &io->ev);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_poll_add(sqe, io->fd, POLLIN);
	return 0;
}

int blk_queue_base_submit(struct blk_queue_base *b, int timeout_ms)
{
	/* Completions are waiting: a caller that would sleep reaps them first. */
	if (b->done_head && timeout_ms)
		return 0;
	return reactor_wait(b->r, timeout_ms < 0 ? -1 : (int64_t)timeout_ms * 1000000);
}

unsigned int blk_queue_base_reap(struct blk_queue_base *b, blk_io_done_fn done, void *arg)
{
	struct blk_io *io, *next;
	unsigned int n = 0;

	if (b->own_reactor)
		reactor_dispatch(b->r);
	/* Only what finished before this call; what done() preps waits for the next. */
	io = b->done_head;
	b->done_head = NULL;
	b->done_tail = &b->done_head;
	for (; io; io = next) {
		next = io->next;
		b->inflight--;
		done(io, arg);
		n++;
	}
	return n;
}
