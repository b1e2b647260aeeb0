// SPDX-License-Identifier: MIT
/*
 * test_blk_loop.c - the io_uring back-end on a real block device: a loop
 * device over a sparse 64 MiB file.  A loop device carries a discard out
 * as a hole punched in its backing file, so the file shows whether a
 * discard reached the device as one (BLKDISCARD) rather than as a
 * zero-out.  Checked: the back-end sees a block device and its discard
 * granularity; discard leaves a hole in the backing file and zeroes on
 * the device; write-zeroes keeps the blocks without UNMAP and deallocates
 * them with it; many discards in flight mixed with writes (they run on the
 * queue's helper thread); a discard on a device with 4 KiB blocks trimmed
 * to whole blocks; a queue freed with discards pending.
 *
 * Needs root and losetup(8): exits 77 (skipped) without them.  The loop
 * device is set to detach itself on its last close (LO_FLAGS_AUTOCLEAR)
 * and the backing file is unlinked at once, so nothing is left behind even
 * when a check fails (_exit) or the test is killed.
 */
#include <linux/loop.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>

#include "backends/backend.h"
#include "blk_test.h"

#define IMG_SIZE (64u << 20)
#define BLK	 4096u
#define SKIP	 77

static const struct blk_backend_ops *ops = &blk_backend_uring_ops;

static char loop_path[64]; /* /dev/loopN */
static int loop_fd = -1;   /* ours: keeps the device bound until we close it */

struct done_log {
	struct blk_io *ios[256];
	unsigned int n;
};

static void on_done(struct blk_io *io, void *arg)
{
	struct done_log *log = arg;

	if (log->n < ARRAY_SIZE(log->ios))
		log->ios[log->n++] = io;
}

/* Submit and reap until @n completions are in @log. */
static void wait_for(struct blk_backend_queue *bq, struct done_log *log, unsigned int n)
{
	while (log->n < n) {
		int r = ops->submit(bq, 1000);

		CHECK(r == 0 || r == -EINTR);
		ops->reap(bq, on_done, log);
	}
	CHECK_EQ(log->n, n);
}

static int64_t run_one(struct blk_backend_queue *bq, struct blk_io *io)
{
	struct done_log log = {.n = 0};

	CHECK_EQ(ops->prep(bq, io), 0);
	wait_for(bq, &log, 1);
	CHECK(log.ios[0] == io);
	return io->res;
}

static struct blk_backend *open_dev(bool direct)
{
	struct blk_backend_config cfg = {.path = loop_path, .direct = direct, .name = "loop"};
	struct blk_backend *be = NULL;
	char err[256];

	if (ops->open(&cfg, &be, err, sizeof(err)) < 0)
		FAIL("open: %s", err);
	return be;
}

/* ---- the loop device --------------------------------------------------------- */

/* Detach, through our own descriptor (a name may be someone else's by now). */
static void loop_detach(void)
{
	if (loop_fd < 0)
		return;
	ioctl(loop_fd, LOOP_CLR_FD, 0);
	close(loop_fd);
	loop_fd = -1;
}

/*
 * Bind a loop device to @img with losetup; false (skip) if that is not
 * possible here.  Then make sure it is bound to our file and have it
 * detach itself on its last close.
 */
static bool loop_attach(const char *img, int img_fd)
{
	struct loop_info64 li;
	struct stat st;
	char cmd[512], out[256];
	FILE *p;
	size_t n;
	int status;

	snprintf(cmd, sizeof(cmd), "losetup -f --show '%s' 2>&1", img);
	p = popen(cmd, "r");
	if (!p)
		return false;
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	status = pclose(p);
	out[strcspn(out, "\n")] = '\0';
	if (status != 0 || strncmp(out, "/dev/loop", 9) != 0 || strlen(out) >= sizeof(loop_path)) {
		printf("SKIP: losetup: %s (status %d)\n", out, status);
		return false;
	}
	strcpy(loop_path, out);
	loop_fd = open(loop_path, O_RDWR | O_CLOEXEC);
	if (loop_fd < 0)
		FAIL("open %s: %s", loop_path, strerror(errno));
	CHECK_EQ(fstat(img_fd, &st), 0);
	CHECK_EQ(ioctl(loop_fd, LOOP_GET_STATUS64, &li), 0);
	CHECK(li.lo_inode == st.st_ino && li.lo_device == st.st_dev);
	li.lo_flags |= LO_FLAGS_AUTOCLEAR;
	if (ioctl(loop_fd, LOOP_SET_STATUS64, &li) < 0)
		printf("note: %s: cannot set autoclear: %s\n", loop_path, strerror(errno));
	atexit(loop_detach);
	printf("%s on %s\n", loop_path, img);
	return true;
}

/* queue/@attr of the loop device in sysfs, or 0. */
static uint64_t loop_sysfs(const char *attr)
{
	struct stat st;
	unsigned long long v = 0;
	char path[128];
	FILE *f;

	CHECK_EQ(fstat(loop_fd, &st), 0);
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/queue/%s", major(st.st_rdev),
		 minor(st.st_rdev), attr);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fscanf(f, "%llu", &v) != 1)
		v = 0;
	fclose(f);
	return v;
}

/*
 * Sectors the loop device has discarded and written so far (the discard
 * and write columns of its stat file, Documentation/block/stat.rst).  A
 * zero-out counts as a write, so this tells a discard from a zero-out even
 * where both end as a hole in the backing file.
 */
struct dev_sectors {
	unsigned long long discarded, written;
};

static struct dev_sectors loop_stat(void)
{
	unsigned long long v[15] = {0};
	struct dev_sectors s;
	struct stat st;
	char path[128];
	FILE *f;
	int n = 0;

	CHECK_EQ(fstat(loop_fd, &st), 0);
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/stat", major(st.st_rdev),
		 minor(st.st_rdev));
	f = fopen(path, "re");
	CHECK(f);
	while (n < 15 && fscanf(f, "%llu", &v[n]) == 1)
		n++;
	fclose(f);
	CHECK_EQ(n, 15);
	s.written = v[6];
	s.discarded = v[13];
	return s;
}

/* ---- the backing file -------------------------------------------------------- */

static bool has_data(int fd, off_t off)
{
	return lseek(fd, off, SEEK_DATA) == off;
}

/* ---- through the back-end ---------------------------------------------------- */

static unsigned char big[1u << 20] __attribute__((aligned(4096)));

/* Write @len bytes of pattern @seed at @off and flush them to the backing file. */
static void fill(struct blk_backend_queue *bq, uint64_t off, size_t len, unsigned int seed)
{
	struct iovec v = {big, len};
	struct blk_io w = {.op = BLK_IO_WRITE, .iov = &v, .iovcnt = 1, .offset = off};
	struct blk_io f = {.op = BLK_IO_FLUSH};

	CHECK(len <= sizeof(big));
	blk_test_fill(big, len, seed, off);
	CHECK_EQ(run_one(bq, &w), (int64_t)len);
	CHECK_EQ(run_one(bq, &f), 0);
}

/* Read [@off, @off + @len) through the back-end: all zero? */
static bool dev_zero(struct blk_backend_queue *bq, uint64_t off, size_t len)
{
	struct iovec v = {big, len};
	struct blk_io r = {.op = BLK_IO_READ, .iov = &v, .iovcnt = 1, .offset = off};

	CHECK(len <= sizeof(big));
	memset(big, 0xee, len);
	CHECK_EQ(run_one(bq, &r), (int64_t)len);
	for (size_t i = 0; i < len; i++) {
		if (big[i])
			return false;
	}
	return true;
}

static void test_discard(struct blk_backend_queue *bq, int img, uint64_t base)
{
	struct blk_io d = {.op = BLK_IO_DISCARD, .offset = base + 64 * BLK, .len = 64 * BLK};
	struct blk_io df = {.op = BLK_IO_DISCARD,
			    .flags = BLK_IO_F_FUA,
			    .offset = base + 160 * BLK,
			    .len = 32 * BLK};

	struct dev_sectors before, after;

	fill(bq, base, 256 * BLK, 1);
	CHECK(has_data(img, (off_t)(base + 64 * BLK)));
	CHECK(blk_test_matches(img, (off_t)base, 256 * BLK, 1));

	/* A discard reaches the device as one (BLKDISCARD), not as a zero-out. */
	before = loop_stat();
	CHECK_EQ(run_one(bq, &d), 0);
	after = loop_stat();
	CHECK_EQ(after.discarded - before.discarded, 64 * BLK / 512);
	CHECK_EQ(after.written - before.written, 0);
	CHECK(blk_test_is_hole(img, (off_t)(base + 64 * BLK), 64 * BLK));
	CHECK(blk_test_all_zero(img, (off_t)(base + 64 * BLK), 64 * BLK));
	CHECK(dev_zero(bq, base + 64 * BLK, 64 * BLK));
	/* Neighbours untouched. */
	CHECK(blk_test_matches(img, (off_t)base, 64 * BLK, 1));
	CHECK(blk_test_matches(img, (off_t)(base + 128 * BLK), 32 * BLK, 1));

	/* Writethrough (FUA): BLKDISCARD, then a flush. */
	CHECK_EQ(run_one(bq, &df), 0);
	CHECK(blk_test_is_hole(img, (off_t)(base + 160 * BLK), 32 * BLK));
	CHECK(dev_zero(bq, base + 160 * BLK, 32 * BLK));
	CHECK(blk_test_matches(img, (off_t)(base + 192 * BLK), 64 * BLK, 1));
}

static void test_write_zeroes(struct blk_backend_queue *bq, int img, uint64_t base)
{
	struct blk_io wz = {.op = BLK_IO_WRITE_ZEROES, .offset = base, .len = 32 * BLK};
	struct blk_io wzu = {.op = BLK_IO_WRITE_ZEROES,
			     .flags = BLK_IO_F_UNMAP,
			     .offset = base + 64 * BLK,
			     .len = 32 * BLK};
	struct dev_sectors before, after;
	blkcnt_t blocks;

	fill(bq, base, 128 * BLK, 2);

	/* No UNMAP: zeroes, nothing deallocated (ZERO_RANGE on the file). */
	blocks = blk_test_file_blocks(img);
	before = loop_stat();
	CHECK_EQ(run_one(bq, &wz), 0);
	/* A zero-out (a write to the block layer), never a discard. */
	after = loop_stat();
	CHECK_EQ(after.discarded, before.discarded);
	CHECK(after.written > before.written);
	CHECK(dev_zero(bq, base, 32 * BLK));
	CHECK(blk_test_all_zero(img, (off_t)base, 32 * BLK));
	CHECK(blk_test_file_blocks(img) >= blocks);
	CHECK(blk_test_matches(img, (off_t)(base + 32 * BLK), 32 * BLK, 2));

	/* UNMAP: a zero-out that may deallocate, which a loop device does. */
	blocks = blk_test_file_blocks(img);
	before = loop_stat();
	CHECK_EQ(run_one(bq, &wzu), 0);
	after = loop_stat();
	CHECK_EQ(after.discarded, before.discarded);
	CHECK(dev_zero(bq, base + 64 * BLK, 32 * BLK));
	CHECK(blk_test_is_hole(img, (off_t)(base + 64 * BLK), 32 * BLK));
	CHECK(blk_test_file_blocks(img) < blocks);
	CHECK(blk_test_matches(img, (off_t)(base + 96 * BLK), 32 * BLK, 2));
}

/* Discards and writes in flight together; discards wait on the helper. */
static void test_mixed_inflight(struct blk_backend_queue *bq, int img, uint64_t base)
{
	enum { N = 24 };
	static unsigned char bufs[N][BLK] __attribute__((aligned(4096)));
	static struct iovec v[N];
	static struct blk_io io[2 * N];
	struct blk_io flush = {.op = BLK_IO_FLUSH};
	struct done_log log = {.n = 0};
	bool seen[2 * N] = {false};

	fill(bq, base, 2 * N * 2 * BLK, 3);
	for (int i = 0; i < N; i++) {
		uint64_t off = base + (uint64_t)i * 4 * BLK;

		/* Discard block pairs 0, 2, 4 ..; rewrite the first block of 1, 3, 5 .. */
		io[2 * i] = (struct blk_io){.op = BLK_IO_DISCARD, .offset = off, .len = 2 * BLK};
		blk_test_fill(bufs[i], BLK, 4, (size_t)(off + 2 * BLK));
		v[i] = (struct iovec){bufs[i], BLK};
		io[2 * i + 1] = (struct blk_io){
			.op = BLK_IO_WRITE, .iov = &v[i], .iovcnt = 1, .offset = off + 2 * BLK};
		CHECK_EQ(ops->prep(bq, &io[2 * i]), 0);
		CHECK_EQ(ops->prep(bq, &io[2 * i + 1]), 0);
	}
	wait_for(bq, &log, 2 * N);
	for (unsigned int i = 0; i < log.n; i++) {
		int k = (int)(log.ios[i] - io);

		CHECK(k >= 0 && k < 2 * N && !seen[k]);
		seen[k] = true;
		CHECK_EQ(io[k].res, k % 2 ? (int64_t)BLK : 0);
	}
	/* The writes may sit in the device's page cache. */
	CHECK_EQ(run_one(bq, &flush), 0);
	for (int i = 0; i < N; i++) {
		off_t off = (off_t)(base + (uint64_t)i * 4 * BLK);

		CHECK(blk_test_is_hole(img, off, 2 * BLK));
		CHECK(blk_test_matches(img, off + 2 * BLK, BLK, 4));
		CHECK(blk_test_matches(img, off + 3 * BLK, BLK, 3));
	}
}

/* Freed with discards queued at the helper: nothing reported, nothing leaked. */
static void test_free_pending(struct blk_backend *be, uint64_t base)
{
	static struct blk_io io[8];
	struct blk_backend_queue *bq;

	CHECK_EQ(ops->queue_new(be, 8, &bq), 0);
	for (int i = 0; i < 8; i++) {
		io[i] = (struct blk_io){.op = BLK_IO_DISCARD,
					.offset = base + (uint64_t)i * 64 * BLK,
					.len = 64 * BLK};
		CHECK_EQ(ops->prep(bq, &io[i]), 0);
	}
	CHECK_EQ(ops->submit(bq, 0), 0);
	ops->queue_free(bq);
}

static void run(int img, bool direct)
{
	struct blk_backend *be = open_dev(direct);
	struct blk_backend_queue *bq;
	struct blk_backend_info info;
	uint64_t gran = loop_sysfs("discard_granularity");

	ops->get_info(be, &info);
	printf("direct=%d lbs=%u pbs=%u discard_granularity=%u (sysfs %llu)\n", info.direct,
	       info.logical_block_size, info.physical_block_size, info.discard_granularity,
	       (unsigned long long)gran);
	CHECK(info.blockdev && !info.readonly);
	CHECK_EQ(info.size, IMG_SIZE);
	if (loop_sysfs("discard_max_bytes") && gran >= info.logical_block_size)
		CHECK_EQ(info.discard_granularity, gran);

	CHECK_EQ(ops->queue_new(be, 64, &bq), 0);
	test_discard(bq, img, direct ? 32u << 20 : 1u << 20);
	test_write_zeroes(bq, img, direct ? 36u << 20 : 4u << 20);
	test_mixed_inflight(bq, img, direct ? 40u << 20 : 8u << 20);
	ops->queue_free(bq);
	test_free_pending(be, direct ? 48u << 20 : 16u << 20);
	ops->close(be);
}

/*
 * 4 KiB logical blocks: BLKDISCARD takes whole blocks only, so a discard
 * with ragged edges is trimmed to the blocks inside it, not refused.
 */
static void test_4k_trim(int img)
{
	struct blk_backend *be;
	struct blk_backend_queue *bq;
	struct blk_backend_info info;
	uint64_t base = 56u << 20;
	struct blk_io d = {.op = BLK_IO_DISCARD, .offset = base + 512, .len = 4 * BLK};
	struct blk_io tiny = {.op = BLK_IO_DISCARD, .offset = base + 8 * BLK + 512, .len = 1024};

	if (ioctl(loop_fd, LOOP_SET_BLOCK_SIZE, (unsigned long)BLK) < 0) {
		printf("note: LOOP_SET_BLOCK_SIZE: %s; 4 KiB case skipped\n", strerror(errno));
		return;
	}
	be = open_dev(false);
	ops->get_info(be, &info);
	CHECK_EQ(info.logical_block_size, BLK);
	CHECK_EQ(ops->queue_new(be, 4, &bq), 0);
	fill(bq, base, 16 * BLK, 5);

	/* [base + 512, base + 4 blocks + 512): blocks 1..3 go, 0 and 4 stay. */
	CHECK_EQ(run_one(bq, &d), 0);
	CHECK(blk_test_is_hole(img, (off_t)(base + BLK), 3 * BLK));
	CHECK(blk_test_matches(img, (off_t)base, BLK, 5));
	CHECK(blk_test_matches(img, (off_t)(base + 4 * BLK), 12 * BLK, 5));
	/* Less than a block: nothing to do, and no error. */
	CHECK_EQ(run_one(bq, &tiny), 0);
	CHECK(blk_test_matches(img, (off_t)(base + 8 * BLK), BLK, 5));
	printf("4 KiB blocks: ragged discard trimmed to whole blocks\n");
	ops->queue_free(bq);
	ops->close(be);
}

int main(void)
{
	char img_path[256];
	int img = blk_test_image(img_path, sizeof(img_path), IMG_SIZE);
	bool ok = loop_attach(img_path, img);

	/* The loop device holds the file open: nothing to remove later. */
	unlink(img_path);
	if (!ok) {
		close(img);
		return SKIP;
	}
	run(img, false);
	run(img, true);
	test_4k_trim(img);
	close(img);
	printf("ok\n");
	return 0;
}
