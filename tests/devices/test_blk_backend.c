// SPDX-License-Identifier: MIT
/*
 * test_blk_backend.c - the io_uring block back-end on its own, against a
 * sparse temporary file: vectored reads and writes (also through O_DIRECT
 * with misaligned buffers), flush, discard punching a hole (seen with
 * SEEK_HOLE), write-zeroes with and without UNMAP, writethrough writes,
 * eventfd waits, a read-only image, EOF inside the image, and many
 * operations in flight on one queue.
 */
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "backends/backend.h"
#include "blk_test.h"

#define IMG_SIZE (8u << 20)
#define BLK	 4096u

static const struct blk_backend_ops *ops = &blk_backend_uring_ops;

struct done_log {
	struct blk_io *ios[512];
	unsigned int n;
};

static void on_done(struct blk_io *io, void *arg)
{
	struct done_log *log = arg;

	if (log->n < ARRAY_SIZE(log->ios))
		log->ios[log->n++] = io;
}

/* Prep @io, submit, and wait until it (alone) completes; returns io->res. */
static int64_t run_one(struct blk_backend_queue *bq, struct blk_io *io)
{
	struct done_log log = {.n = 0};

	CHECK_EQ(ops->prep(bq, io), 0);
	while (!log.n) {
		int r = ops->submit(bq, 1000);

		CHECK(r == 0 || r == -EINTR);
		ops->reap(bq, on_done, &log);
	}
	CHECK_EQ(log.n, 1);
	CHECK(log.ios[0] == io);
	return io->res;
}

static struct blk_backend *open_image(const char *path, bool readonly, bool direct)
{
	struct blk_backend_config cfg = {
		.path = path,
		.readonly = readonly,
		.direct = direct,
		.name = "test",
	};
	struct blk_backend *be = NULL;
	char err[256];

	if (ops->open(&cfg, &be, err, sizeof(err)) < 0)
		FAIL("open: %s", err);
	return be;
}

/* Write through three uneven iovecs, read back through two others. */
static void test_rw(struct blk_backend_queue *bq, int fd, bool misaligned)
{
	static unsigned char src[3 * BLK + 64] __attribute__((aligned(4096)));
	static unsigned char dst[3 * BLK + 64] __attribute__((aligned(4096)));
	size_t off = misaligned ? 7 : 0;
	unsigned char *s = src + off, *d = dst + off;
	struct iovec wv[3] = {
		{s, 512},
		{s + 512, BLK - 512},
		{s + BLK, 2 * BLK},
	};
	struct iovec rv[2] = {{d, 1000}, {d + 1000, 3 * BLK - 1000}};
	struct blk_io w = {.op = BLK_IO_WRITE, .iov = wv, .iovcnt = 3, .offset = 5 * BLK};
	struct blk_io r = {.op = BLK_IO_READ, .iov = rv, .iovcnt = 2, .offset = 5 * BLK};

	blk_test_fill(s, 3 * BLK, 1, 5 * BLK);
	CHECK_EQ(run_one(bq, &w), 3 * BLK);
	CHECK(blk_test_matches(fd, 5 * BLK, 3 * BLK, 1));
	memset(d, 0xee, 3 * BLK);
	CHECK_EQ(run_one(bq, &r), 3 * BLK);
	CHECK(!memcmp(d, s, 3 * BLK));
}

static void test_flush_discard_zeroes(struct blk_backend_queue *bq, int fd)
{
	static unsigned char buf[64 * BLK] __attribute__((aligned(4096)));
	struct iovec v = {buf, sizeof(buf)};
	struct blk_io w = {.op = BLK_IO_WRITE, .iov = &v, .iovcnt = 1, .offset = 0x100000};
	struct blk_io f = {.op = BLK_IO_FLUSH};
	struct blk_io dz = {.op = BLK_IO_DISCARD, .offset = 0x100000 + 16 * BLK, .len = 16 * BLK};
	struct blk_io wz = {
		.op = BLK_IO_WRITE_ZEROES, .offset = 0x100000 + 32 * BLK, .len = 8 * BLK};
	struct blk_io wzu = {.op = BLK_IO_WRITE_ZEROES,
			     .flags = BLK_IO_F_UNMAP | BLK_IO_F_FUA,
			     .offset = 0x100000 + 48 * BLK,
			     .len = 8 * BLK};
	struct blk_io wt = {.op = BLK_IO_WRITE,
			    .flags = BLK_IO_F_FUA,
			    .iov = &v,
			    .iovcnt = 1,
			    .offset = 0x300000};
	blkcnt_t blocks;

	blk_test_fill(buf, sizeof(buf), 2, 0x100000);
	CHECK_EQ(run_one(bq, &w), sizeof(buf));
	CHECK_EQ(run_one(bq, &f), 0);
	CHECK(!blk_test_is_hole(fd, 0x100000 + 16 * BLK, 16 * BLK));

	/* Discard punches a hole that reads back as zeroes. */
	CHECK_EQ(run_one(bq, &dz), 0);
	CHECK(blk_test_is_hole(fd, 0x100000 + 16 * BLK, 16 * BLK));
	CHECK(blk_test_all_zero(fd, 0x100000 + 16 * BLK, 16 * BLK));
	/* Neighbours untouched. */
	CHECK(blk_test_matches(fd, 0x100000, 16 * BLK, 2));
	CHECK(blk_test_matches(fd, 0x100000 + 32 * BLK, 32 * BLK, 2));

	/*
	 * Write zeroes without UNMAP: zeroes, and nothing deallocated (ext4
	 * turns the range unwritten, which SEEK_HOLE may report as a hole).
	 */
	blocks = blk_test_file_blocks(fd);
	CHECK_EQ(run_one(bq, &wz), 0);
	CHECK(blk_test_all_zero(fd, 0x100000 + 32 * BLK, 8 * BLK));
	CHECK(blk_test_file_blocks(fd) >= blocks);
	CHECK(blk_test_matches(fd, 0x100000 + 40 * BLK, 8 * BLK, 2));

	/* With UNMAP (and FUA): a hole. */
	blocks = blk_test_file_blocks(fd);
	CHECK_EQ(run_one(bq, &wzu), 0);
	CHECK(blk_test_file_blocks(fd) < blocks);
	CHECK(blk_test_all_zero(fd, 0x100000 + 48 * BLK, 8 * BLK));
	CHECK(blk_test_is_hole(fd, 0x100000 + 48 * BLK, 8 * BLK));
	CHECK(blk_test_matches(fd, 0x100000 + 56 * BLK, 8 * BLK, 2));

	/* A writethrough write (RWF_DSYNC). */
	blk_test_fill(buf, sizeof(buf), 3, 0x300000);
	CHECK_EQ(run_one(bq, &wt), sizeof(buf));
	CHECK(blk_test_matches(fd, 0x300000, sizeof(buf), 3));
}

/* Many writes in flight at once, one submit, completions in any order. */
static void test_many_inflight(struct blk_backend_queue *bq, int fd)
{
	enum { N = 60 };
	static unsigned char bufs[N][BLK] __attribute__((aligned(4096)));
	static struct iovec v[N];
	static struct blk_io io[N];
	struct done_log log = {.n = 0};
	bool seen[N] = {false};

	for (int i = 0; i < N; i++) {
		blk_test_fill(bufs[i], BLK, 4, (size_t)(0x400000 + i * BLK));
		v[i] = (struct iovec){bufs[i], BLK};
		io[i] = (struct blk_io){.op = BLK_IO_WRITE,
					.iov = &v[i],
					.iovcnt = 1,
					.offset = 0x400000 + (uint64_t)i * BLK};
		CHECK_EQ(ops->prep(bq, &io[i]), 0);
	}
	while (log.n < N) {
		CHECK_EQ(ops->submit(bq, 1000), 0);
		ops->reap(bq, on_done, &log);
	}
	for (unsigned int i = 0; i < log.n; i++) {
		int k = (int)(log.ios[i] - io);

		CHECK(k >= 0 && k < N && !seen[k]);
		seen[k] = true;
		CHECK_EQ(io[k].res, BLK);
	}
	CHECK(blk_test_matches(fd, 0x400000, N * BLK, 4));
}

static void test_eventfd(struct blk_backend_queue *bq)
{
	int efd = eventfd(0, EFD_CLOEXEC);
	struct blk_io e = {.op = BLK_IO_EVENTFD, .fd = efd};
	struct done_log log = {.n = 0};
	struct pollfd p = {.fd = efd, .events = POLLIN};

	CHECK(efd >= 0);
	CHECK_EQ(ops->prep(bq, &e), 0);
	CHECK_EQ(ops->submit(bq, 0), 0);
	/* Nothing signalled: a short wait times out empty-handed. */
	CHECK_EQ(ops->submit(bq, 20), 0);
	CHECK_EQ(ops->reap(bq, on_done, &log), 0);
	CHECK(eventfd_write(efd, 3) == 0);
	while (!log.n) {
		CHECK_EQ(ops->submit(bq, 1000), 0);
		ops->reap(bq, on_done, &log);
	}
	CHECK(log.ios[0] == &e);
	CHECK_EQ(e.res, 0);
	/* The count was consumed, so a re-armed wait would not fire at once. */
	CHECK_EQ(poll(&p, 1, 0), 0);
	close(efd);
}

/* Reads past EOF inside a shrunken image report an error, never garbage. */
static void test_eof(struct blk_backend_queue *bq, int fd)
{
	static unsigned char buf[2 * BLK];
	struct iovec v = {buf, sizeof(buf)};
	struct blk_io r = {.op = BLK_IO_READ, .iov = &v, .iovcnt = 1, .offset = IMG_SIZE - BLK};

	CHECK_EQ(run_one(bq, &r), -EIO);
	(void)fd;
}

static void test_readonly(const char *path)
{
	struct blk_backend *be = open_image(path, true, false);
	struct blk_backend_queue *bq;
	struct blk_backend_info info;
	static unsigned char buf[BLK];
	struct iovec v = {buf, sizeof(buf)};
	struct blk_io w = {.op = BLK_IO_WRITE, .iov = &v, .iovcnt = 1};
	struct blk_io r = {.op = BLK_IO_READ, .iov = &v, .iovcnt = 1, .offset = 5 * BLK};

	ops->get_info(be, &info);
	CHECK(info.readonly);
	CHECK_EQ(info.size, IMG_SIZE);
	CHECK_EQ(ops->queue_new(be, 4, &bq), 0);
	CHECK_EQ(run_one(bq, &w), -EBADF);
	CHECK_EQ(run_one(bq, &r), BLK);
	ops->queue_free(bq);
	ops->close(be);
}

static void test_lock(const char *path)
{
	struct blk_backend_config cfg = {.path = path, .name = "second"};
	struct blk_backend *be = NULL;
	char err[256];

	/* A second writer is refused while the first holds the image. */
	CHECK(ops->open(&cfg, &be, err, sizeof(err)) < 0);
	CHECK(strstr(err, "in use"));
}

static void test_bad_paths(void)
{
	struct blk_backend_config cfg = {.path = "/nonexistent/vhostd.img", .name = "x"};
	struct blk_backend *be = NULL;
	char err[256];

	CHECK_EQ(ops->open(&cfg, &be, err, sizeof(err)), -ENOENT);
	CHECK(strstr(err, "/nonexistent/vhostd.img"));
	cfg.path = "/dev/null";
	CHECK(ops->open(&cfg, &be, err, sizeof(err)) < 0);
	CHECK(strstr(err, "not a regular file or block device"));
}

static void run(const char *path, int fd, bool direct)
{
	struct blk_backend *be = open_image(path, false, direct);
	struct blk_backend_queue *bq;
	struct blk_backend_info info;

	ops->get_info(be, &info);
	CHECK_EQ(info.size, IMG_SIZE);
	CHECK(!info.readonly && !info.blockdev);
	CHECK(info.logical_block_size >= 512);
	printf("%s: direct=%d lbs=%u pbs=%u\n", path, info.direct, info.logical_block_size,
	       info.physical_block_size);
	CHECK_EQ(ops->queue_new(be, 64, &bq), 0);

	test_rw(bq, fd, false);
	test_rw(bq, fd, true);
	test_flush_discard_zeroes(bq, fd);
	test_many_inflight(bq, fd);
	test_eventfd(bq);
	test_lock(path);
	ops->queue_free(bq);
	ops->close(be);
}

int main(void)
{
	char path[256];
	int fd = blk_test_image(path, sizeof(path), IMG_SIZE);

	run(path, fd, false);
	run(path, fd, true);
	test_readonly(path);
	test_bad_paths();

	/* Shrink the file under an open back-end: a read crossing EOF fails. */
	{
		struct blk_backend *be = open_image(path, false, false);
		struct blk_backend_queue *bq;

		CHECK_EQ(ops->queue_new(be, 4, &bq), 0);
		CHECK_EQ(ftruncate(fd, IMG_SIZE - BLK / 2), 0);
		test_eof(bq, fd);
		ops->queue_free(bq);
		ops->close(be);
	}
	close(fd);
	unlink(path);
	printf("ok\n");
	return 0;
}
