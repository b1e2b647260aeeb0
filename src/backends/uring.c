// SPDX-License-Identifier: MIT
/*
 * uring.c - the io_uring block back-end: a raw image file or a host block
 * device, one io_uring per queue thread.
 *
 * Every operation is one SQE at a time per blk_io; a blk_io that needs more
 * (a short transfer, a fallback, a sync after fallocate in writethrough
 * mode) is resubmitted from the reap path and reported once, at the end.
 * So a queue with @depth blk_ios in flight never needs more than @depth
 * SQEs, and a CQ ring of twice that can never overflow.
 *
 * Discard on a block device is the exception.  fallocate(PUNCH_HOLE) on
 * a block device is not a discard: the kernel turns it into a zero-out
 * (blkdev_fallocate -> blkdev_issue_zeroout(NOFALLBACK)), which a
 * thin-provisioned device may carry out by writing zeroes, or refuse.  A
 * discard has to be ioctl(BLKDISCARD), which is synchronous and may take
 * long (a thin pool unmapping gigabytes), and io_uring can only issue it
 * as IORING_OP_URING_CMD on Linux 6.12+.  So, like QEMU's thread pool,
 * each queue of a writable block device has one helper thread that runs
 * its discards one after another and hands them back through an eventfd
 * that the queue's ring polls: the queue thread never blocks on one, and
 * a blk_io at the helper holds no SQE (only the one poll does).
 *
 * Write-zeroes stays on io_uring for block devices too: fallocate
 * ZERO_RANGE on a block device is exactly BLKZEROOUT (a zero-out that
 * keeps the blocks mapped, falling back to writing zero pages), and
 * PUNCH_HOLE, tried first when the guest allows UNMAP, is a zero-out that
 * may deallocate: what write-zeroes with UNMAP means.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include "backend.h"
#include "common/log.h"
#include "common/sigbus.h"
#include "common/util.h"

/* Write-zeroes fallback writes from this many zero bytes at a time. */
#define ZERO_BUF_SIZE (256u * 1024)

struct uring_backend {
	struct blk_backend be;
	int fd;		 /* O_DIRECT when info.direct */
	int buffered_fd; /* the same file through the page cache; == fd if !direct */
	struct blk_backend_info info;
	uint32_t dio_mem_align;	   /* buffer address alignment O_DIRECT needs */
	uint32_t dio_offset_align; /* file offset / length alignment O_DIRECT needs */
	void *zero_buf;
	atomic_bool discard_refused_logged;
	char name[64];
};

/* A queue's discard thread (block devices; see the top of the file). */
struct uring_helper {
	pthread_t thread;
	int efd;		 /* written by the helper for each discard it finishes */
	bool armed;		 /* queue thread: a poll on efd is in the ring */
	struct reactor_event ev; /* that poll's completion */
	struct blk_backend_queue *owner;
	unsigned int busy;    /* queue thread: handed over and not taken back yet */
	pthread_mutex_t lock; /* guards the rest */
	pthread_cond_t cond;
	struct blk_io *todo, **todo_tail; /* in order */
	struct blk_io *finished;	  /* any order */
	bool stop;
};

struct blk_backend_queue {
	struct blk_queue_base base; /* first: bqueue.c casts */
	struct uring_backend *ub;
	struct uring_helper *helper; /* a writable block device's */
	/* ub->fd and ub->buffered_fd in the reactor's file table, or -1 */
	int fixed_fd, fixed_buffered_fd;
};

/* Steps of the multi-stage operations (blk_io.stage). */
enum {
	STAGE_FIRST,
	STAGE_ZERO_RANGE,   /* write zeroes: FALLOC_FL_ZERO_RANGE */
	STAGE_WRITE_ZEROES, /* write zeroes: plain writes from zero_buf */
	STAGE_SYNC,	    /* FUA after fallocate: fdatasync, then done */
};

static struct uring_backend *to_ub(struct blk_backend *be)
{
	return container_of(be, struct uring_backend, be);
}

/* ---- open / close -------------------------------------------------------- */

/*
 * O_DIRECT's alignment rules for this file (statx STATX_DIOALIGN, Linux
 * 6.1+), or the logical block size when the kernel cannot tell us.
 */
static void uring_probe_dio_align(struct uring_backend *ub, uint32_t fallback)
{
	ub->dio_mem_align = fallback;
	ub->dio_offset_align = fallback;
#ifdef STATX_DIOALIGN
	struct statx stx;

	if (statx(ub->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
	    (stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_mem_align && stx.stx_dio_offset_align) {
		ub->dio_mem_align = stx.stx_dio_mem_align;
		ub->dio_offset_align = stx.stx_dio_offset_align;
	}
#endif
}

static int uring_open_fd(const struct blk_backend_config *cfg, bool direct)
{
	int flags = O_CLOEXEC | (cfg->readonly ? O_RDONLY : O_RDWR) | (direct ? O_DIRECT : 0);

	return open(cfg->path, flags);
}

/*
 * Lock the image like QEMU does (an OFD lock: shared for a read-only user,
 * exclusive for a writer), so two daemons cannot corrupt one image.  Plain
 * readers that take no lock are not affected.
 */
static int uring_lock(int fd, bool readonly)
{
	struct flock fl = {
		.l_type = readonly ? F_RDLCK : F_WRLCK,
		.l_whence = SEEK_SET,
	};

	return fcntl(fd, F_OFD_SETLK, &fl) < 0 ? -errno : 0;
}

/* A number from the block device's queue/ in sysfs, or 0. */
static uint64_t uring_sysfs_queue(dev_t rdev, const char *attr)
{
	/* A partition has no queue/ of its own: its disk's is one level up. */
	static const char *const fmt[] = {"/sys/dev/block/%u:%u/queue/%s",
					  "/sys/dev/block/%u:%u/../queue/%s"};
	unsigned long long v;
	char path[128];

	for (size_t i = 0; i < ARRAY_SIZE(fmt); i++) {
		FILE *f;
		int n;

		snprintf(path, sizeof(path), fmt[i], major(rdev), minor(rdev), attr);
		f = fopen(path, "re");
		if (!f)
			continue;
		n = fscanf(f, "%llu", &v);
		fclose(f);
		return n == 1 ? v : 0;
	}
	return 0;
}

/*
 * The block device's discard granularity, for the guest to align its
 * discards to (a thin pool deallocates whole chunks only); 0 if it does
 * not discard at all or gives a value we cannot pass on.
 */
static uint32_t uring_discard_granularity(dev_t rdev, uint32_t lbs)
{
	uint64_t g;

	if (!uring_sysfs_queue(rdev, "discard_max_bytes"))
		return 0;
	g = uring_sysfs_queue(rdev, "discard_granularity");
	if (g < lbs || g % lbs || g > UINT32_MAX)
		return 0;
	return (uint32_t)g;
}

static int uring_probe_size(struct uring_backend *ub, const struct stat *st, char *err,
			    size_t err_len)
{
	if (S_ISREG(st->st_mode)) {
		ub->info.size = (uint64_t)st->st_size;
		ub->info.logical_block_size = 512;
		if (ub->info.direct && ub->dio_offset_align > 512)
			ub->info.logical_block_size = ub->dio_offset_align;
		/* File systems allocate in blocks: a hint that avoids RMW. */
		ub->info.physical_block_size = ub->info.logical_block_size;
		if (st->st_blksize >= 4096 && ub->info.physical_block_size < 4096)
			ub->info.physical_block_size = 4096;
		return 0;
	}
	if (S_ISBLK(st->st_mode)) {
		uint64_t bytes;
		int lbs = 512;
		unsigned int pbs = 512;

		if (ioctl(ub->fd, BLKGETSIZE64, &bytes) < 0) {
			errbuf_printf(err, err_len, "%s: BLKGETSIZE64: %s", ub->name,
				      strerror(errno));
			return -errno;
		}
		if (ioctl(ub->fd, BLKSSZGET, &lbs) < 0 || lbs < 512)
			lbs = 512;
		if (ioctl(ub->fd, BLKPBSZGET, &pbs) < 0 || pbs < (unsigned int)lbs)
			pbs = (unsigned int)lbs;
		ub->info.size = bytes;
		ub->info.blockdev = true;
		ub->info.logical_block_size = (uint32_t)lbs;
		ub->info.physical_block_size = pbs;
		ub->info.discard_granularity =
			uring_discard_granularity(st->st_rdev, (uint32_t)lbs);
		return 0;
	}
	errbuf_printf(err, err_len, "%s: not a regular file or block device", ub->name);
	return -EINVAL;
}

static int uring_open(const struct blk_backend_config *cfg, struct blk_backend **out, char *err,
		      size_t err_len)
{
	struct uring_backend *ub;
	struct stat st;
	int r;

	ub = calloc(1, sizeof(*ub));
	if (!ub) {
		errbuf_printf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	ub->be.ops = &blk_backend_uring_ops;
	ub->fd = ub->buffered_fd = -1;
	snprintf(ub->name, sizeof(ub->name), "%s", cfg->name ? cfg->name : cfg->path);
	ub->info.readonly = cfg->readonly;
	ub->info.direct = cfg->direct;

	ub->fd = uring_open_fd(cfg, cfg->direct);
	if (ub->fd < 0 && errno == EINVAL && cfg->direct) {
		/* The file system refuses O_DIRECT (older tmpfs, some FUSE). */
		log_warn("%s: %s: the file system refuses O_DIRECT; cache=none falls back to "
			 "the page cache (flushes still reach the disk)",
			 ub->name, cfg->path);
		ub->info.direct = false;
		ub->fd = uring_open_fd(cfg, false);
	}
	if (ub->fd < 0) {
		r = -errno;
		errbuf_printf(err, err_len, "%s: open %s: %s", ub->name, cfg->path,
			      strerror(errno));
		goto fail;
	}
	if (fstat(ub->fd, &st) < 0) {
		r = -errno;
		errbuf_printf(err, err_len, "%s: fstat %s: %s", ub->name, cfg->path,
			      strerror(errno));
		goto fail;
	}
	r = cfg->no_lock ? 0 : uring_lock(ub->fd, cfg->readonly);
	if (r < 0) {
		errbuf_printf(err, err_len, "%s: %s is in use by another process (%s)", ub->name,
			      cfg->path, strerror(-r));
		goto fail;
	}
	if (ub->info.direct) {
		ub->buffered_fd = uring_open_fd(cfg, false);
		if (ub->buffered_fd < 0) {
			r = -errno;
			errbuf_printf(err, err_len, "%s: open %s: %s", ub->name, cfg->path,
				      strerror(errno));
			goto fail;
		}
	} else {
		ub->buffered_fd = ub->fd;
	}
	uring_probe_dio_align(ub, 512);
	if (S_ISBLK(st.st_mode)) {
		int lbs = 512;

		/* Without statx's answer, a block device wants its logical block size. */
		if (ioctl(ub->fd, BLKSSZGET, &lbs) == 0 && (uint32_t)lbs > ub->dio_offset_align)
			ub->dio_offset_align = ub->dio_mem_align = (uint32_t)lbs;
	}
	r = uring_probe_size(ub, &st, err, err_len);
	if (r < 0)
		goto fail;

	if (posix_memalign(&ub->zero_buf, 4096, ZERO_BUF_SIZE)) {
		r = -ENOMEM;
		errbuf_printf(err, err_len, "out of memory");
		goto fail;
	}
	memset(ub->zero_buf, 0, ZERO_BUF_SIZE);
	*out = &ub->be;
	return 0;

fail:
	if (ub->buffered_fd >= 0 && ub->buffered_fd != ub->fd)
		close(ub->buffered_fd);
	if (ub->fd >= 0)
		close(ub->fd);
	free(ub);
	return r;
}

static void uring_close(struct blk_backend *be)
{
	struct uring_backend *ub;

	if (!be)
		return;
	ub = to_ub(be);
	if (ub->buffered_fd != ub->fd)
		close(ub->buffered_fd);
	close(ub->fd);
	free(ub->zero_buf);
	free(ub);
}

static void uring_get_info(const struct blk_backend *be, struct blk_backend_info *info)
{
	*info = container_of(be, const struct uring_backend, be)->info;
}

/* ---- block device discard: the helper thread ----------------------------- */

/*
 * BLKDISCARD [@off, @off + @len), shrunk to whole logical blocks (the
 * kernel refuses anything else; a discard is a hint, so the edges can go).
 * A device that cannot discard (EOPNOTSUPP) is not an error.
 */
static int uring_blkdiscard(struct uring_backend *ub, uint64_t off, uint64_t len)
{
	uint64_t mask = ub->info.logical_block_size - 1;
	uint64_t start = (off + mask) & ~mask;
	uint64_t end = (off + len) & ~mask;
	uint64_t range[2];

	if (end <= start)
		return 0;
	range[0] = start;
	range[1] = end - start;
	while (ioctl(ub->fd, BLKDISCARD, range) < 0) {
		if (errno == EINTR)
			continue;
		if (errno != EOPNOTSUPP && errno != ENOTTY && errno != EINVAL)
			return -errno;
		if (!atomic_exchange(&ub->discard_refused_logged, true))
			log_debug("%s: BLKDISCARD: %s; discards are taken as done", ub->name,
				  strerror(errno));
		break;
	}
	return 0;
}

static void *uring_helper_thread(void *arg)
{
	struct blk_backend_queue *bq = arg;
	struct uring_helper *h = bq->helper;

	/*
	 * Signals belong to the daemon's main thread, but for SIGBUS, which
	 * stays deliverable on every thread of ours (common/sigbus.h).
	 */
	sigbus_block_other_signals();

	pthread_mutex_lock(&h->lock);
	for (;;) {
		struct blk_io *io;
		uint64_t one = 1;

		while (!h->todo && !h->stop)
			pthread_cond_wait(&h->cond, &h->lock);
		if (h->stop)
			break;
		io = h->todo;
		h->todo = io->next;
		if (!h->todo)
			h->todo_tail = &h->todo;
		pthread_mutex_unlock(&h->lock);

		io->res = uring_blkdiscard(bq->ub, io->offset, io->len);

		pthread_mutex_lock(&h->lock);
		io->next = h->finished;
		h->finished = io;
		/* Cannot fail: the count is far from overflowing. */
		if (write(h->efd, &one, sizeof(one)) < 0)
			log_error("%s: discard eventfd: %s", bq->ub->name, strerror(errno));
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

static int uring_helper_start(struct blk_backend_queue *bq)
{
	struct uring_helper *h;
	char tname[16];
	int r;

	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (h->efd < 0) {
		r = -errno;
		free(h);
		return r;
	}
	h->todo_tail = &h->todo;
	h->owner = bq;
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->cond, NULL);
	bq->helper = h;
	r = -pthread_create(&h->thread, NULL, uring_helper_thread, bq);
	if (r < 0) {
		pthread_cond_destroy(&h->cond);
		pthread_mutex_destroy(&h->lock);
		close(h->efd);
		free(h);
		bq->helper = NULL;
		return r;
	}
	snprintf(tname, sizeof(tname), "discard-%.7s", bq->ub->name);
	pthread_setname_np(h->thread, tname);
	return 0;
}

/* Waits for the discard under way, if any; the others are dropped. */
static void uring_helper_stop(struct blk_backend_queue *bq)
{
	struct uring_helper *h = bq->helper;

	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	h->stop = true;
	pthread_cond_signal(&h->cond);
	pthread_mutex_unlock(&h->lock);
	pthread_join(h->thread, NULL);
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->lock);
	close(h->efd);
	free(h);
	bq->helper = NULL;
}

/* Queue the poll that wakes the queue thread when discards finish. */
static int uring_helper_arm(struct blk_backend_queue *bq)
{
	struct io_uring_sqe *sqe;

	if (bq->helper->armed)
		return 0;
	sqe = reactor_sqe(bq->base.r, &bq->helper->ev);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_poll_add(sqe, bq->helper->efd, POLLIN);
	bq->helper->armed = true;
	return 0;
}

static int uring_helper_queue(struct blk_backend_queue *bq, struct blk_io *io)
{
	struct uring_helper *h = bq->helper;
	int r;

	r = uring_helper_arm(bq);
	if (r < 0)
		return r;
	io->next = NULL;
	pthread_mutex_lock(&h->lock);
	*h->todo_tail = io;
	h->todo_tail = &io->next;
	pthread_cond_signal(&h->cond);
	pthread_mutex_unlock(&h->lock);
	h->busy++;
	return 0;
}

/* The helper's eventfd fired: take back the discards it finished. */
static struct blk_io *uring_helper_take(struct blk_backend_queue *bq)
{
	struct uring_helper *h = bq->helper;
	struct blk_io *list, *io;
	uint64_t v;

	h->armed = false;
	/* Reset the count first: a discard finished after this fires again. */
	if (read(h->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_error("%s: discard eventfd: %s", bq->ub->name, strerror(errno));
	pthread_mutex_lock(&h->lock);
	list = h->finished;
	h->finished = NULL;
	pthread_mutex_unlock(&h->lock);
	for (io = list; io; io = io->next)
		h->busy--;
	return list;
}

/* ---- queues ---------------------------------------------------------------- */

static void uring_helper_done(struct reactor_event *ev, int res, uint32_t flags);

static void uring_queue_free(struct blk_backend_queue *bq)
{
	if (!bq)
		return;
	uring_helper_stop(bq);
	reactor_file_unregister(bq->base.r, bq->fixed_fd);
	if (bq->fixed_buffered_fd != bq->fixed_fd)
		reactor_file_unregister(bq->base.r, bq->fixed_buffered_fd);
	blk_queue_base_destroy(&bq->base);
	free(bq);
}

static int uring_queue_attach(struct blk_backend *be, unsigned int depth, struct reactor *r,
			      void (*wake)(void *arg), void *arg, struct blk_backend_queue **out)
{
	struct blk_backend_queue *bq;
	int ret;

	bq = calloc(1, sizeof(*bq));
	if (!bq)
		return -ENOMEM;
	bq->ub = to_ub(be);
	bq->fixed_fd = bq->fixed_buffered_fd = -1;
	ret = blk_queue_base_init(&bq->base, depth, r, wake, arg);
	if (ret < 0) {
		free(bq);
		return ret;
	}
	bq->fixed_fd = reactor_file_register(bq->base.r, bq->ub->fd);
	bq->fixed_buffered_fd = bq->ub->buffered_fd == bq->ub->fd
					? bq->fixed_fd
					: reactor_file_register(bq->base.r, bq->ub->buffered_fd);
	if (bq->ub->info.blockdev && !bq->ub->info.readonly) {
		ret = uring_helper_start(bq);
		if (ret < 0) {
			uring_queue_free(bq);
			return ret;
		}
		bq->helper->ev.fn = uring_helper_done;
	}
	*out = bq;
	return 0;
}

static int uring_queue_new(struct blk_backend *be, unsigned int depth,
			   struct blk_backend_queue **out)
{
	return uring_queue_attach(be, depth, NULL, NULL, NULL, out);
}

/*
 * Can O_DIRECT take this transfer?  The kernel wants the file offset and
 * every segment length aligned to the logical block size and every buffer
 * address aligned to the DMA alignment; guest buffers need not be.
 */
static bool uring_dio_ok(const struct uring_backend *ub, uint64_t offset, const struct iovec *iov,
			 unsigned int cnt)
{
	uint64_t mem_mask = ub->dio_mem_align - 1;
	uint64_t len_mask = ub->dio_offset_align - 1;
	unsigned int i;

	if (offset & len_mask)
		return false;
	for (i = 0; i < cnt; i++) {
		if (((uintptr_t)iov[i].iov_base & mem_mask) || (iov[i].iov_len & len_mask))
			return false;
	}
	return true;
}

static int uring_rw_fd(const struct uring_backend *ub, uint64_t offset, const struct iovec *iov,
		       unsigned int cnt)
{
	if (!ub->info.direct || uring_dio_ok(ub, offset, iov, cnt))
		return ub->fd;
	return ub->buffered_fd;
}

static void uring_cqe(struct reactor_event *ev, int res, uint32_t flags);

/* Point @sqe at the registered copy of its file, if there is one. */
static void uring_use_fixed_file(const struct blk_backend_queue *bq, struct io_uring_sqe *sqe)
{
	int idx = -1;

	if (sqe->fd == bq->ub->fd)
		idx = bq->fixed_fd;
	else if (sqe->fd == bq->ub->buffered_fd)
		idx = bq->fixed_buffered_fd;
	if (idx >= 0) {
		sqe->fd = idx;
		sqe->flags |= IOSQE_FIXED_FILE;
	}
}

/* Queue the next SQE for @io according to its op and stage. */
static int uring_issue(struct blk_backend_queue *bq, struct blk_io *io)
{
	struct uring_backend *ub = bq->ub;
	struct io_uring_sqe *sqe;
	uint64_t off = io->offset + io->done;
	uint64_t left = io->len - io->done;
	int mode;

	if (io->op == BLK_IO_DISCARD && io->stage == STAGE_FIRST && bq->helper)
		return uring_helper_queue(bq, io);

	if (io->op == BLK_IO_EVENTFD)
		return blk_queue_base_wait_eventfd(&bq->base, io);
	sqe = reactor_sqe(bq->base.r, &io->ev);
	if (!sqe)
		return -EBUSY;

	switch (io->op) {
	case BLK_IO_READ:
		io_uring_prep_readv(sqe, uring_rw_fd(ub, off, io->iov, io->iovcnt), io->iov,
				    io->iovcnt, off);
		break;
	case BLK_IO_WRITE:
		io_uring_prep_writev(sqe, uring_rw_fd(ub, off, io->iov, io->iovcnt), io->iov,
				     io->iovcnt, off);
		/* Writethrough: per-write O_DSYNC rather than a separate flush. */
		if (io->flags & BLK_IO_F_FUA)
			sqe->rw_flags = RWF_DSYNC;
		break;
	case BLK_IO_FLUSH:
		io_uring_prep_fsync(sqe, ub->fd, IORING_FSYNC_DATASYNC);
		break;
	case BLK_IO_DISCARD:
	case BLK_IO_WRITE_ZEROES:
		if (io->stage == STAGE_SYNC) {
			io_uring_prep_fsync(sqe, ub->fd, IORING_FSYNC_DATASYNC);
			break;
		}
		if (io->stage == STAGE_WRITE_ZEROES) {
			struct iovec zv = {
				.iov_base = ub->zero_buf,
				.iov_len = left < ZERO_BUF_SIZE ? left : ZERO_BUF_SIZE,
			};

			io_uring_prep_write(sqe, uring_rw_fd(ub, off, &zv, 1), zv.iov_base,
					    (unsigned int)zv.iov_len, off);
			if (io->flags & BLK_IO_F_FUA)
				sqe->rw_flags = RWF_DSYNC;
			break;
		}
		/*
		 * Discard and write-zeroes with UNMAP punch a hole (reads then
		 * return zeroes, 5.2.6.2); write-zeroes without it must keep
		 * the blocks allocated: ZERO_RANGE.
		 */
		if (io->op == BLK_IO_DISCARD ||
		    (io->stage == STAGE_FIRST && (io->flags & BLK_IO_F_UNMAP)))
			mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
		else
			mode = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
		io_uring_prep_fallocate(sqe, ub->fd, mode, (off_t)io->offset, (off_t)io->len);
		break;
	default:
		io_uring_prep_nop(sqe);
		break;
	}
	uring_use_fixed_file(bq, sqe);
	io->ev.fn = uring_cqe;
	return 0;
}

static int uring_prep(struct blk_backend_queue *bq, struct blk_io *io)
{
	int r;

	if (io->op > BLK_IO_EVENTFD)
		return -EINVAL;
	r = blk_queue_base_admit(&bq->base, bq, io);
	if (r < 0)
		return r;
	if (io->op == BLK_IO_READ || io->op == BLK_IO_WRITE) {
		unsigned int i;

		io->len = 0;
		for (i = 0; i < io->iovcnt; i++)
			io->len += io->iov[i].iov_len;
	}
	r = uring_issue(bq, io);
	if (r < 0)
		bq->base.inflight--;
	return r;
}

static int uring_submit(struct blk_backend_queue *bq, int timeout_ms)
{
	return blk_queue_base_submit(&bq->base, timeout_ms);
}

/* Skip @n bytes of @io's iovec array (after a short transfer). */
static void uring_iov_advance(struct blk_io *io, uint64_t n)
{
	while (n && io->iovcnt) {
		if (n < io->iov->iov_len) {
			io->iov->iov_base = (char *)io->iov->iov_base + n;
			io->iov->iov_len -= n;
			return;
		}
		n -= io->iov->iov_len;
		io->iov++;
		io->iovcnt--;
	}
}

static bool retryable(int res)
{
	return res == -EINTR || res == -EAGAIN;
}

/*
 * One CQE for @io.  Returns true if @io was reissued (not finished yet),
 * false if io->res holds its final result.
 */
static bool uring_continue(struct blk_backend_queue *bq, struct blk_io *io, int res)
{
	bool fua = io->flags & BLK_IO_F_FUA;

	if (retryable(res))
		goto reissue;

	switch (io->op) {
	case BLK_IO_READ:
	case BLK_IO_WRITE:
		if (res < 0) {
			io->res = res;
			return false;
		}
		if (res == 0 && io->done < io->len) {
			/* EOF inside the image: someone truncated it under us. */
			io->res = -EIO;
			return false;
		}
		io->done += (uint64_t)res;
		if (io->done < io->len) {
			uring_iov_advance(io, (uint64_t)res);
			goto reissue;
		}
		io->res = (int64_t)io->done;
		return false;

	case BLK_IO_DISCARD:
		if (io->stage == STAGE_SYNC) {
			io->res = res < 0 ? res : 0;
			return false;
		}
		/* Discard is a hint (5.2.6.2: "MAY deallocate"). */
		if (res == -EOPNOTSUPP || res == -ENOTSUP)
			res = 0;
		if (res == 0 && fua) {
			io->stage = STAGE_SYNC;
			goto reissue;
		}
		io->res = res;
		return false;

	case BLK_IO_WRITE_ZEROES:
		if (io->stage == STAGE_SYNC) {
			io->res = res < 0 ? res : 0;
			return false;
		}
		if (io->stage == STAGE_WRITE_ZEROES) {
			if (res <= 0) {
				io->res = res < 0 ? res : -EIO;
				return false;
			}
			io->done += (uint64_t)res;
			if (io->done < io->len)
				goto reissue;
			io->res = 0;
			return false;
		}
		if (res == -EOPNOTSUPP || res == -ENOTSUP || res == -EINVAL) {
			/* Punch hole -> zero range -> write zeroes from memory. */
			if (io->stage == STAGE_FIRST && (io->flags & BLK_IO_F_UNMAP))
				io->stage = STAGE_ZERO_RANGE;
			else
				io->stage = STAGE_WRITE_ZEROES;
			goto reissue;
		}
		if (res == 0 && fua) {
			io->stage = STAGE_SYNC;
			goto reissue;
		}
		io->res = res;
		return false;

	default:
		io->res = res;
		return false;
	}

reissue:
	if (uring_issue(bq, io) < 0) {
		io->res = -EIO;
		return false;
	}
	return true;
}

/* Step @io on with @res; report it if that finished it. */
static void uring_step(struct blk_backend_queue *bq, struct blk_io *io, int res)
{
	if (!uring_continue(bq, io, res))
		blk_queue_base_finish(&bq->base, io);
}

static void uring_cqe(struct reactor_event *ev, int res, uint32_t flags)
{
	struct blk_io *io = container_of(ev, struct blk_io, ev);

	uring_step(io->bq, io, res);
}

/* Discards back from the helper, io->res holding their result. */
static void uring_helper_done(struct reactor_event *ev, int res, uint32_t flags)
{
	struct uring_helper *h = container_of(ev, struct uring_helper, ev);
	struct blk_backend_queue *bq = h->owner;
	struct blk_io *io, *next;

	for (io = uring_helper_take(bq); io; io = next) {
		next = io->next;
		uring_step(bq, io, (int)io->res);
	}
	if (h->busy && uring_helper_arm(bq) < 0)
		log_error("%s: cannot wait for discards", bq->ub->name);
}

static unsigned int uring_reap(struct blk_backend_queue *bq, blk_io_done_fn done, void *arg)
{
	return blk_queue_base_reap(&bq->base, done, arg);
}

const struct blk_backend_ops blk_backend_uring_ops = {
	.name = "io_uring",
	.open = uring_open,
	.close = uring_close,
	.get_info = uring_get_info,
	.queue_new = uring_queue_new,
	.queue_attach = uring_queue_attach,
	.queue_free = uring_queue_free,
	.prep = uring_prep,
	.submit = uring_submit,
	.reap = uring_reap,
};
