// SPDX-License-Identifier: MIT
/*
 * null.c - the null block back-end: a disk of a given size with no storage
 * behind it, for measuring the datapath without the storage (QEMU's null-co
 * with read-zeroes=on).
 *
 * Every operation completes as soon as it is prepped and successfully:
 * reads fill the guest's buffers with zeroes (a memset, as read-zeroes=on
 * does, so a read still touches every byte it returns), writes, flushes,
 * discards and write-zeroes are dropped.  Completions wait on a per-queue
 * list until the next reap, so the caller sees the same prep / submit /
 * reap rhythm as with io_uring.
 *
 * Eventfd waits (the guest's kicks, the device's stop) are the only thing
 * that can block: submit poll(2)s their descriptors, and makes no system
 * call at all when completions are already waiting and the caller would
 * otherwise have slept.  Each queue thread owns its lists;
 * nothing is shared between queues.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "backend.h"
#include "common/log.h"
#include "common/util.h"


struct null_backend {
	struct blk_backend be;
	struct blk_backend_info info;
};

struct blk_backend_queue {
	unsigned int depth;
	unsigned int inflight; /* prepped and not yet reported */
	/* Finished operations in prep order: a FIFO of done_size >= depth entries. */
	struct blk_io **done;
	unsigned int done_size;		   /* a power of two */
	unsigned int done_head, done_tail; /* free-running */
	/* Eventfd waits not yet fired, and their pollfds (same index). */
	struct blk_io **waits;
	struct pollfd *pfds;
	unsigned int nr_waits;
};

static int null_open(const struct blk_backend_config *cfg, struct blk_backend **out, char *err,
		     size_t err_len)
{
	struct null_backend *nb;

	if (!cfg->size || cfg->size % 512) {
		errbuf_printf(err, err_len, "%s: null back-end size must be a positive multiple of 512",
			cfg->name ? cfg->name : "null");
		return -EINVAL;
	}
	nb = calloc(1, sizeof(*nb));
	if (!nb) {
		errbuf_printf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	nb->be.ops = &blk_backend_null_ops;
	nb->info = (struct blk_backend_info){
		.size = cfg->size,
		.logical_block_size = 512,
		.physical_block_size = 4096,
		.readonly = cfg->readonly,
	};
	*out = &nb->be;
	return 0;
}

static void null_close(struct blk_backend *be)
{
	if (be)
		free(container_of(be, struct null_backend, be));
}

static void null_get_info(const struct blk_backend *be, struct blk_backend_info *info)
{
	*info = container_of(be, const struct null_backend, be)->info;
}

static void null_queue_free(struct blk_backend_queue *bq)
{
	if (!bq)
		return;
	free(bq->done);
	free(bq->waits);
	free(bq->pfds);
	free(bq);
}

static int null_queue_new(struct blk_backend *be, unsigned int depth,
			  struct blk_backend_queue **out)
{
	struct blk_backend_queue *bq;

	if (!depth || depth > 32768)
		return -EINVAL;
	bq = calloc(1, sizeof(*bq));
	if (!bq)
		return -ENOMEM;
	bq->depth = depth;
	/* A power of two, so the free-running FIFO indices wrap cleanly. */
	bq->done_size = 1;
	while (bq->done_size < depth)
		bq->done_size <<= 1;
	bq->done = calloc(bq->done_size, sizeof(*bq->done));
	bq->waits = calloc(depth, sizeof(*bq->waits));
	bq->pfds = calloc(depth, sizeof(*bq->pfds));
	if (!bq->done || !bq->waits || !bq->pfds) {
		null_queue_free(bq);
		return -ENOMEM;
	}
	*out = bq;
	return 0;
}

/* @io is finished: it is reported by the next reap. */
static void null_finish(struct blk_backend_queue *bq, struct blk_io *io)
{
	/* Never overflows: at most depth are in flight, waits included. */
	bq->done[bq->done_tail++ & (bq->done_size - 1)] = io;
}

/*
 * The bytes @io's buffers hold; for a read (@zero) they are filled with
 * zeroes first (read-zeroes=on: the guest gets what it asked for, and the
 * copy is paid for as with real storage).
 */
static uint64_t null_rw(struct blk_io *io, bool zero)
{
	uint64_t n = 0;

	for (unsigned int i = 0; i < io->iovcnt; i++) {
		if (zero)
			memset(io->iov[i].iov_base, 0, io->iov[i].iov_len);
		n += io->iov[i].iov_len;
	}
	return n;
}

static int null_prep(struct blk_backend_queue *bq, struct blk_io *io)
{
	if (io->op > BLK_IO_EVENTFD)
		return -EINVAL;
	if (bq->inflight >= bq->depth)
		return -EBUSY;
	io->res = 0;
	io->done = 0;
	io->stage = 0;
	bq->inflight++;

	switch (io->op) {
	case BLK_IO_EVENTFD:
		bq->waits[bq->nr_waits] = io;
		bq->pfds[bq->nr_waits] = (struct pollfd){.fd = io->fd, .events = POLLIN};
		bq->nr_waits++;
		return 0;
	case BLK_IO_READ:
	case BLK_IO_WRITE:
		io->len = null_rw(io, io->op == BLK_IO_READ);
		io->res = (int64_t)io->len;
		break;
	default: /* FLUSH, DISCARD, WRITE_ZEROES: nothing is stored, nothing to do */
		break;
	}
	io->done = io->len;
	null_finish(bq, io);
	return 0;
}

/* Move every wait whose eventfd is readable to the done list, resetting its count. */
static void null_fire_waits(struct blk_backend_queue *bq)
{
	unsigned int i = 0;

	while (i < bq->nr_waits) {
		struct blk_io *io = bq->waits[i];
		short rev = bq->pfds[i].revents;

		if (!rev) {
			i++;
			continue;
		}
		if (rev & POLLIN) {
			uint64_t v;

			/* We are its only reader and poll said readable: cannot block. */
			if (read(io->fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				io->res = -errno;
		} else {
			io->res = -EIO; /* POLLERR / POLLNVAL: a dead descriptor */
		}
		/* Unordered: the last one takes the freed place. */
		bq->nr_waits--;
		bq->waits[i] = bq->waits[bq->nr_waits];
		bq->pfds[i] = bq->pfds[bq->nr_waits];
		null_finish(bq, io);
	}
}

static int null_submit(struct blk_backend_queue *bq, int timeout_ms)
{
	int r;

	if (bq->done_head != bq->done_tail) {
		/*
		 * Completions are waiting, so no sleep.  A caller that would
		 * have slept has nothing else to do: it reaps them and comes
		 * back, and that call looks at the eventfds, so skipping the
		 * system call here loses no kick.  A caller with more work
		 * (timeout 0) still gets its look, so a stop is never starved.
		 */
		if (timeout_ms)
			return 0;
	}
	r = poll(bq->pfds, bq->nr_waits, timeout_ms);
	if (r < 0)
		return -errno;
	if (r > 0)
		null_fire_waits(bq);
	return 0;
}

static unsigned int null_reap(struct blk_backend_queue *bq, blk_io_done_fn done, void *arg)
{
	/* Only what finished before this call; what done() preps waits for the next. */
	unsigned int end = bq->done_tail, n = 0;

	while (bq->done_head != end) {
		struct blk_io *io = bq->done[bq->done_head++ & (bq->done_size - 1)];

		bq->inflight--;
		done(io, arg);
		n++;
	}
	return n;
}

const struct blk_backend_ops blk_backend_null_ops = {
	.name = "null",
	.open = null_open,
	.close = null_close,
	.get_info = null_get_info,
	.queue_new = null_queue_new,
	.queue_free = null_queue_free,
	.prep = null_prep,
	.submit = null_submit,
	.reap = null_reap,
};
