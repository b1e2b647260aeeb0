// SPDX-License-Identifier: MIT
/*
 * null.c - the null block back-end: a disk of a given size with no storage
 * behind it, for measuring the datapath without the storage (QEMU's null-co
 * with read-zeroes=on).
 *
 * Every operation completes as soon as it is prepped and successfully:
 * reads fill the guest's buffers with zeroes (a memset, as read-zeroes=on
 * does, so a read still touches every byte it returns), writes, flushes,
 * discards and write-zeroes are dropped.  Completions wait on the queue's
 * done list until the next reap (the wake hook tells the engine at once),
 * so the caller sees the same prep / reap rhythm as with io_uring, and no
 * system call is made per request.
 *
 * With delay_ms (tests: a slow disk, or with a long delay a stalled one)
 * each operation's result is computed at once but reported only when an
 * io_uring timeout on the queue's reactor expires, so a queue thread is
 * never held up by it.
 */
#include <errno.h>
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
	unsigned int delay_ms;
};

struct blk_backend_queue {
	struct blk_queue_base base; /* first: bqueue.c casts */
	/* The kernel copies it when a timeout SQE is submitted: one for all. */
	struct __kernel_timespec delay;
	bool delayed;
};

static int null_open(const struct blk_backend_config *cfg, struct blk_backend **out, char *err,
		     size_t err_len)
{
	struct null_backend *nb;

	if (!cfg->size || cfg->size % 512) {
		errbuf_printf(err, err_len,
			      "%s: null back-end size must be a positive multiple of 512",
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
	nb->delay_ms = cfg->delay_ms;
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
	blk_queue_base_destroy(&bq->base);
	free(bq);
}

static void nb_delay(const struct null_backend *nb, struct blk_backend_queue *bq)
{
	bq->delayed = nb->delay_ms > 0;
	bq->delay.tv_sec = nb->delay_ms / 1000;
	bq->delay.tv_nsec = (long long)(nb->delay_ms % 1000) * 1000000;
}

/* The delay is over (-ETIME), or the ring went away (-ECANCELED): report it. */
static void null_delay_done(struct reactor_event *ev, int res, uint32_t flags)
{
	struct blk_io *io = container_of(ev, struct blk_io, ev);

	blk_queue_base_finish(&io->bq->base, io);
}

static int null_queue_attach(struct blk_backend *be, unsigned int depth, struct reactor *r,
			     void (*wake)(void *arg), void *arg, struct blk_backend_queue **out)
{
	struct blk_backend_queue *bq = calloc(1, sizeof(*bq));
	int ret;

	if (!bq)
		return -ENOMEM;
	ret = blk_queue_base_init(&bq->base, depth, r, wake, arg);
	if (ret < 0) {
		free(bq);
		return ret;
	}
	nb_delay(container_of(be, struct null_backend, be), bq);
	*out = bq;
	return 0;
}

static int null_queue_new(struct blk_backend *be, unsigned int depth,
			  struct blk_backend_queue **out)
{
	return null_queue_attach(be, depth, NULL, NULL, NULL, out);
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
	int r;

	if (io->op > BLK_IO_EVENTFD)
		return -EINVAL;
	r = blk_queue_base_admit(&bq->base, bq, io);
	if (r < 0)
		return r;

	switch (io->op) {
	case BLK_IO_EVENTFD:
		r = blk_queue_base_wait_eventfd(&bq->base, io);
		if (r < 0)
			bq->base.inflight--;
		return r;
	case BLK_IO_READ:
	case BLK_IO_WRITE:
		io->len = null_rw(io, io->op == BLK_IO_READ);
		io->res = (int64_t)io->len;
		break;
	default: /* FLUSH, DISCARD, WRITE_ZEROES: nothing is stored, nothing to do */
		break;
	}
	io->done = io->len;
	if (bq->delayed) {
		struct io_uring_sqe *sqe;

		io->ev.fn = null_delay_done;
		sqe = reactor_sqe(bq->base.r, &io->ev);
		if (!sqe) {
			bq->base.inflight--;
			return -EBUSY;
		}
		io_uring_prep_timeout(sqe, &bq->delay, 0, 0);
		return 0;
	}
	blk_queue_base_finish(&bq->base, io);
	return 0;
}

static int null_submit(struct blk_backend_queue *bq, int timeout_ms)
{
	return blk_queue_base_submit(&bq->base, timeout_ms);
}

static unsigned int null_reap(struct blk_backend_queue *bq, blk_io_done_fn done, void *arg)
{
	return blk_queue_base_reap(&bq->base, done, arg);
}

const struct blk_backend_ops blk_backend_null_ops = {
	.name = "null",
	.open = null_open,
	.close = null_close,
	.get_info = null_get_info,
	.queue_new = null_queue_new,
	.queue_attach = null_queue_attach,
	.queue_free = null_queue_free,
	.prep = null_prep,
	.submit = null_submit,
	.reap = null_reap,
};
