// SPDX-License-Identifier: MIT
/*
 * test_rbd_backend.c CONF POOL IMAGE - the Ceph RBD back-end on its own,
 * against a real cluster (rbd.sh brings it up and makes IMAGE, 64 MiB,
 * empty): vectored reads and writes, flush, FUA writes, write-zeroes with
 * and without UNMAP, discard, an eventfd wait, hundreds of operations in
 * flight on one queue, two queues at once, a queue freed with operations
 * still at librbd (they finish; nothing is lost or leaked), a read-only
 * image refusing a write through the completion, and the open errors.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "backends/backend.h"
#include "check.h"

#define IMG_SIZE (64u << 20)
#define BLK	 4096u
#define MANY	 256u

static const struct blk_backend_ops *ops = &blk_backend_rbd_ops;
static const char *conf, *pool, *image;

struct done_log {
	struct blk_io *ios[MANY * 2];
	unsigned int n;
};

static void on_done(struct blk_io *io, void *arg)
{
	struct done_log *log = arg;

	CHECK(log->n < ARRAY_SIZE(log->ios));
	log->ios[log->n++] = io;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Submit and reap until @want completions are logged (30 s at most). */
static void wait_for(struct blk_backend_queue *bq, struct done_log *log, unsigned int want)
{
	double end = now_s() + 30;

	while (log->n < want) {
		int r = ops->submit(bq, 100);

		CHECK(r == 0 || r == -EINTR);
		ops->reap(bq, on_done, log);
		CHECK_MSG(now_s() < end, "%u of %u completions after 30 s", log->n, want);
	}
}

static int64_t run_one(struct blk_backend_queue *bq, struct blk_io *io)
{
	struct done_log log = {.n = 0};

	CHECK_EQ(ops->prep(bq, io), 0);
	wait_for(bq, &log, 1);
	CHECK_EQ(log.n, 1);
	CHECK(log.ios[0] == io);
	return io->res;
}

static int open_rbd(const char *img, bool readonly, bool nocache, struct blk_backend **be,
		    char *err, size_t len)
{
	struct blk_backend_config cfg = {
		.readonly = readonly,
		.direct = nocache,
		.name = "test",
		.rbd_pool = pool,
		.rbd_image = img,
		.rbd_conf = conf,
	};

	return ops->open(&cfg, be, err, len);
}

/* Byte i of a block at @off in pattern @seed. */
static void fill(unsigned char *p, size_t len, unsigned int seed, uint64_t off)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)((off + i) * 31 + seed * 7 + ((off + i) >> 12));
}

static bool all_zero(const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

static void read_at(struct blk_backend_queue *bq, void *buf, size_t len, uint64_t off)
{
	struct iovec v = {buf, len};
	struct blk_io r = {.op = BLK_IO_READ, .iov = &v, .iovcnt = 1, .offset = off};

	CHECK_EQ(run_one(bq, &r), len);
}

static void test_rw(struct blk_backend_queue *bq)
{
	static unsigned char s[3 * BLK], d[3 * BLK];
	struct iovec wv[3] = {{s, 512}, {s + 512, BLK - 512}, {s + BLK, 2 * BLK}};
	struct iovec rv[2] = {{d, 1000}, {d + 1000, 3 * BLK - 1000}};
	struct blk_io w = {.op = BLK_IO_WRITE, .iov = wv, .iovcnt = 3, .offset = 5 * BLK};
	struct blk_io r = {.op = BLK_IO_READ, .iov = rv, .iovcnt = 2, .offset = 5 * BLK};

	fill(s, sizeof(s), 1, 5 * BLK);
	CHECK_EQ(run_one(bq, &w), 3 * BLK);
	memset(d, 0xee, sizeof(d));
	CHECK_EQ(run_one(bq, &r), 3 * BLK);
	CHECK(!memcmp(d, s, sizeof(s)));
	/* 512-byte granularity, not only whole blocks. */
	struct iovec sv = {s, 512};
	struct blk_io ws = {.op = BLK_IO_WRITE, .iov = &sv, .iovcnt = 1, .offset = 5 * BLK + 1536};

	memcpy(d, s, sizeof(d)); /* what the first block holds now */
	memset(d + 1536, 0x5a, 512);
	memset(s, 0x5a, 512);
	CHECK_EQ(run_one(bq, &ws), 512);
	memcpy(s, d, BLK);
	read_at(bq, d, BLK, 5 * BLK);
	CHECK(!memcmp(d, s, BLK));
}

static void test_flush_fua_zeroes(struct blk_backend_queue *bq)
{
	static unsigned char buf[64 * BLK], rd[64 * BLK];
	const uint64_t base = 0x100000;
	struct iovec v = {buf, sizeof(buf)};
	struct blk_io w = {.op = BLK_IO_WRITE, .iov = &v, .iovcnt = 1, .offset = base};
	struct blk_io f = {.op = BLK_IO_FLUSH};
	struct blk_io wfua = {.op = BLK_IO_WRITE,
			      .flags = BLK_IO_F_FUA,
			      .iov = &v,
			      .iovcnt = 1,
			      .offset = 0x300000};
	struct blk_io wz = {.op = BLK_IO_WRITE_ZEROES, .offset = base + 32 * BLK, .len = 8 * BLK};
	struct blk_io wzu = {.op = BLK_IO_WRITE_ZEROES,
			     .flags = BLK_IO_F_UNMAP | BLK_IO_F_FUA,
			     .offset = base + 48 * BLK,
			     .len = 8 * BLK};
	struct blk_io dz = {.op = BLK_IO_DISCARD, .offset = base + 16 * BLK, .len = 16 * BLK};

	fill(buf, sizeof(buf), 2, base);
	CHECK_EQ(run_one(bq, &w), sizeof(buf));
	CHECK_EQ(run_one(bq, &f), 0);
	CHECK_EQ(run_one(bq, &wfua), sizeof(buf));
	read_at(bq, rd, sizeof(rd), 0x300000);
	CHECK(!memcmp(rd, buf, sizeof(buf)));

	CHECK_EQ(run_one(bq, &wz), 0);
	CHECK_EQ(run_one(bq, &wzu), 0);
	/* A discard is a hint (librbd may keep partial objects): it only has to succeed. */
	CHECK_EQ(run_one(bq, &dz), 0);
	read_at(bq, rd, sizeof(rd), base);
	CHECK(!memcmp(rd, buf, 16 * BLK));
	CHECK(all_zero(rd + 32 * BLK, 8 * BLK));
	CHECK(!memcmp(rd + 40 * BLK, buf + 40 * BLK, 8 * BLK));
	CHECK(all_zero(rd + 48 * BLK, 8 * BLK));
	CHECK(!memcmp(rd + 56 * BLK, buf + 56 * BLK, 8 * BLK));
}

static void test_eventfd(struct blk_backend_queue *bq)
{
	struct blk_io io = {.op = BLK_IO_EVENTFD};
	struct done_log log = {.n = 0};
	int efd = eventfd(0, EFD_CLOEXEC);

	CHECK(efd >= 0);
	io.fd = efd;
	CHECK_EQ(ops->prep(bq, &io), 0);
	CHECK_EQ(ops->submit(bq, 0), 0);
	ops->reap(bq, on_done, &log);
	CHECK_EQ(log.n, 0);
	CHECK_EQ(eventfd_write(efd, 3), 0);
	wait_for(bq, &log, 1);
	CHECK_EQ(io.res, 0);
	close(efd);
}

/* MANY writes in flight at once, then MANY reads, each block its own pattern. */
static void test_many(struct blk_backend_queue *bq, unsigned int seed, uint64_t base)
{
	static unsigned char bufs[2][MANY][BLK];
	static struct iovec iov[2][MANY];
	static struct blk_io ios[2][MANY];
	unsigned char(*b)[MANY][BLK] = &bufs[seed & 1];
	struct done_log log = {.n = 0};

	for (unsigned int i = 0; i < MANY; i++) {
		uint64_t off = base + (uint64_t)((i * 7) % MANY) * BLK;

		fill((*b)[i], BLK, seed, off);
		iov[seed & 1][i] = (struct iovec){(*b)[i], BLK};
		ios[seed & 1][i] = (struct blk_io){
			.op = BLK_IO_WRITE, .iov = &iov[seed & 1][i], .iovcnt = 1, .offset = off};
		CHECK_EQ(ops->prep(bq, &ios[seed & 1][i]), 0);
	}
	wait_for(bq, &log, MANY);
	for (unsigned int i = 0; i < MANY; i++)
		CHECK_EQ(log.ios[i]->res, BLK);
	log.n = 0;
	for (unsigned int i = 0; i < MANY; i++) {
		memset((*b)[i], 0, BLK);
		ios[seed & 1][i].op = BLK_IO_READ;
		CHECK_EQ(ops->prep(bq, &ios[seed & 1][i]), 0);
	}
	wait_for(bq, &log, MANY);
	for (unsigned int i = 0; i < MANY; i++) {
		static unsigned char want[BLK];

		CHECK_EQ(ios[seed & 1][i].res, BLK);
		fill(want, BLK, seed, ios[seed & 1][i].offset);
		CHECK_MSG(!memcmp((*b)[i], want, BLK), "block at %#llx",
			  (unsigned long long)ios[seed & 1][i].offset);
	}
}

/* Free a queue while librbd holds its writes: they finish, and the data is there. */
static void test_free_busy(struct blk_backend *be)
{
	static unsigned char buf[64][BLK], rd[BLK];
	static struct iovec iov[64];
	static struct blk_io ios[64];
	struct blk_backend_queue *bq;

	CHECK_EQ(ops->queue_new(be, 64, &bq), 0);
	for (unsigned int i = 0; i < 64; i++) {
		fill(buf[i], BLK, 9, 0x2000000 + i * BLK);
		iov[i] = (struct iovec){buf[i], BLK};
		ios[i] = (struct blk_io){.op = BLK_IO_WRITE,
					 .iov = &iov[i],
					 .iovcnt = 1,
					 .offset = 0x2000000 + i * BLK};
		CHECK_EQ(ops->prep(bq, &ios[i]), 0);
	}
	/* The 65th is refused: depth is 64. */
	CHECK_EQ(ops->prep(bq, &(struct blk_io){.op = BLK_IO_FLUSH}), -EBUSY);
	ops->queue_free(bq);

	CHECK_EQ(ops->queue_new(be, 4, &bq), 0);
	for (unsigned int i = 0; i < 64; i++) {
		read_at(bq, rd, BLK, 0x2000000 + i * BLK);
		CHECK_MSG(!memcmp(rd, buf[i], BLK), "write %u lost", i);
	}
	ops->queue_free(bq);
}

static void test_readonly(void)
{
	static unsigned char buf[BLK];
	struct blk_backend *be = NULL;
	struct blk_backend_queue *bq;
	struct blk_backend_info info;
	struct iovec v = {buf, BLK};
	struct blk_io w = {.op = BLK_IO_WRITE, .iov = &v, .iovcnt = 1, .offset = 0};
	char err[256];

	CHECK_MSG(open_rbd(image, true, true, &be, err, sizeof(err)) == 0, "%s", err);
	ops->get_info(be, &info);
	CHECK(info.readonly);
	CHECK_EQ(ops->queue_new(be, 2, &bq), 0);
	read_at(bq, buf, BLK, 5 * BLK);
	/* librbd refuses it; the caller hears it from the completion. */
	CHECK_EQ(run_one(bq, &w), -EROFS);
	ops->queue_free(bq);
	ops->close(be);
}

static void test_open_errors(void)
{
	struct blk_backend *be = NULL;
	const char *save = pool;
	char err[256];

	CHECK_EQ(open_rbd("no-such-image", false, false, &be, err, sizeof(err)), -ENOENT);
	CHECK_MSG(strstr(err, "does not exist"), "%s", err);
	pool = "no-such-pool";
	CHECK_EQ(open_rbd(image, false, false, &be, err, sizeof(err)), -ENOENT);
	CHECK_MSG(strstr(err, "pool 'no-such-pool' does not exist"), "%s", err);
	pool = save;
	CHECK(open_rbd("", false, false, &be, err, sizeof(err)) == -EINVAL);
}

int main(int argc, char **argv)
{
	struct blk_backend *be = NULL;
	struct blk_backend_queue *bq, *bq2;
	struct blk_backend_info info;
	char err[256];

	if (argc != 4) {
		fprintf(stderr, "usage: %s CONF POOL IMAGE\n", argv[0]);
		return 2;
	}
	conf = argv[1];
	pool = argv[2];
	image = argv[3];

	CHECK_MSG(open_rbd(image, false, false, &be, err, sizeof(err)) == 0, "%s", err);
	ops->get_info(be, &info);
	CHECK_EQ(info.size, IMG_SIZE);
	CHECK(!info.readonly);
	CHECK_EQ(ops->queue_new(be, MANY, &bq), 0);
	CHECK_EQ(ops->queue_new(be, MANY, &bq2), 0);

	test_rw(bq);
	printf("ok - vectored write and read back, 512-byte writes\n");
	test_flush_fua_zeroes(bq);
	printf("ok - flush, FUA write, write-zeroes with and without UNMAP, discard\n");
	test_eventfd(bq);
	printf("ok - eventfd wait\n");
	test_many(bq, 3, 0x800000);
	test_many(bq2, 4, 0xc00000);
	printf("ok - %u writes then %u reads in flight, on two queues\n", MANY, MANY);
	ops->queue_free(bq2);
	ops->queue_free(bq);
	test_free_busy(be);
	printf("ok - a queue freed with 64 writes at librbd: none lost\n");
	ops->close(be);
	test_readonly();
	printf("ok - read-only image: reads work, a write completes with -EROFS\n");
	test_open_errors();
	printf("ok - missing image, missing pool, no image name: one-line errors\n");
	return 0;
}
