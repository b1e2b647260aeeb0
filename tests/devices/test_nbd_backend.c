// SPDX-License-Identifier: MIT
/*
 * test_nbd_backend.c - the NBD back-end on its own (queue_new: its own
 * reactor, waited on with submit), against nbdkit's file plugin on a
 * temporary image that the test then reads directly:
 *   - bad URIs and a missing server are refused with a message;
 *   - vectored writes and reads, data checked in the image;
 *   - flush, discard (a hole in the image), write-zeroes;
 *   - a server without write-zeroes, trim and FUA (nbdkit's eval plugin
 *     over the same image, nozero filter): write-zeroes are written from
 *     the zero page, a FUA write is followed by a flush (nbdkit's log
 *     filter shows it), and the info says what is missing;
 *   - many operations in flight on one queue, more NBD commands than
 *     blk_ios (one command per buffer);
 *   - an eventfd wait.
 * nbdkit is started here and dies with the test (--exit-with-parent).
 */
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#include "backends/backend.h"
#include "blk_test.h"

#define IMG_SIZE (8u << 20)
#define BLK	 4096u

extern char **environ;

static const struct blk_backend_ops *ops = &blk_backend_nbd_ops;

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

/* Submit and reap until @want blk_ios came back (10 s at most). */
static void wait_for(struct blk_backend_queue *bq, struct done_log *log, unsigned int want)
{
	time_t end = time(NULL) + 10;

	while (log->n < want) {
		int r = ops->submit(bq, 200);

		CHECK(r == 0 || r == -EINTR);
		ops->reap(bq, on_done, log);
		if (time(NULL) > end)
			FAIL("%u of %u operations back after 10 s", log->n, want);
	}
	CHECK_EQ(log->n, want);
}

static int64_t run_one(struct blk_backend_queue *bq, struct blk_io *io)
{
	struct done_log log = {.n = 0};

	CHECK_EQ(ops->prep(bq, io), 0);
	wait_for(bq, &log, 1);
	CHECK(log.ios[0] == io);
	return io->res;
}

/* nbdkit on @sock in the foreground, as our child; its pid. */
static pid_t start_nbdkit(const char *sock, char *const extra[], size_t nextra)
{
	char *argv[24] = {"nbdkit", "-f", "--exit-with-parent", "--unix", (char *)sock};
	size_t n = 5;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	pid_t pid;

	for (size_t i = 0; i < nextra && n < ARRAY_SIZE(argv) - 1; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	unlink(sock);
	if (posix_spawnp(&pid, "nbdkit", NULL, NULL, argv, environ))
		FAIL("cannot start nbdkit (scripts/deps.sh installs it): %s", strerror(errno));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	for (int i = 0; i < 100; i++) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));

		close(fd);
		if (!r)
			return pid;
		usleep(50000);
	}
	FAIL("nbdkit did not listen on %s", sock);
	return -1;
}

static void stop_nbdkit(pid_t pid)
{
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

static struct blk_backend *open_uri(const char *uri)
{
	struct blk_backend_config cfg = {.path = uri, .name = "nbdtest"};
	struct blk_backend *be = NULL;
	char err[256];

	if (ops->open(&cfg, &be, err, sizeof(err)) < 0)
		FAIL("open %s: %s", uri, err);
	return be;
}

static void test_bad_uris(const char *dir)
{
	struct blk_backend_config cfg = {.name = "bad"};
	struct blk_backend *be = NULL;
	char err[256], uri[300];

	cfg.path = "/tmp/not-a-uri";
	CHECK_EQ(ops->open(&cfg, &be, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "uri="));
	snprintf(uri, sizeof(uri), "nbd+unix:///?socket=%s/none.sock", dir);
	cfg.path = uri;
	CHECK(ops->open(&cfg, &be, err, sizeof(err)) < 0);
	CHECK(strstr(err, "cannot connect"));
}

/* Three uneven buffers out, two back in; the image holds the pattern. */
static void test_rw(struct blk_backend_queue *bq, int img)
{
	static unsigned char src[3 * BLK], dst[3 * BLK];
	struct iovec wv[3] = {{src, 512}, {src + 512, BLK - 512}, {src + BLK, 2 * BLK}};
	struct iovec rv[2] = {{dst, 5 * 512}, {dst + 5 * 512, 3 * BLK - 5 * 512}};
	struct blk_io w = {.op = BLK_IO_WRITE, .iov = wv, .iovcnt = 3, .offset = 16 * BLK};
	struct blk_io r = {.op = BLK_IO_READ, .iov = rv, .iovcnt = 2, .offset = 16 * BLK};

	blk_test_fill(src, sizeof(src), 1, 16 * BLK);
	CHECK_EQ(run_one(bq, &w), 3 * BLK);
	CHECK(blk_test_matches(img, 16 * BLK, 3 * BLK, 1));
	CHECK_EQ(run_one(bq, &r), 3 * BLK);
	CHECK(!memcmp(src, dst, sizeof(src)));
}

static void test_flush_discard_zero(struct blk_backend_queue *bq, int img, bool fallback)
{
	static unsigned char src[4 * BLK];
	struct iovec v = {src, sizeof(src)};
	struct blk_io w = {.op = BLK_IO_WRITE, .iov = &v, .iovcnt = 1, .offset = 64 * BLK};
	struct blk_io f = {.op = BLK_IO_FLUSH};
	struct blk_io z = {.op = BLK_IO_WRITE_ZEROES, .offset = 65 * BLK, .len = 2 * BLK};
	struct blk_io d = {.op = BLK_IO_DISCARD, .offset = 128 * BLK, .len = 16 * BLK};

	blk_test_fill(src, sizeof(src), 2, 64 * BLK);
	CHECK_EQ(run_one(bq, &w), sizeof(src));
	CHECK_EQ(run_one(bq, &f), 0);
	CHECK_EQ(run_one(bq, &z), 0);
	CHECK(blk_test_matches(img, 64 * BLK, BLK, 2));
	CHECK(blk_test_all_zero(img, 65 * BLK, 2 * BLK));
	CHECK(blk_test_matches(img, 67 * BLK, BLK, 2));
	if (!fallback) {
		/* The file plugin punches a hole for a trim. */
		blk_test_fill(src, sizeof(src), 3, 0);
		w.offset = 128 * BLK;
		CHECK_EQ(run_one(bq, &w), sizeof(src));
		CHECK_EQ(run_one(bq, &d), 0);
		CHECK(blk_test_all_zero(img, 128 * BLK, 4 * BLK));
	}
}

/* 64 blk_ios of 8 one-block buffers each, all in flight, then read back. */
static void test_many(struct blk_backend_queue *bq, int img)
{
	enum { N = 64, SEG = 8 };
	static unsigned char buf[N][SEG * BLK];
	static struct iovec iov[N][SEG];
	static struct blk_io io[N];
	struct done_log log = {.n = 0};

	for (unsigned int i = 0; i < N; i++) {
		blk_test_fill(buf[i], sizeof(buf[i]), 4, (size_t)(256 + i * SEG) * BLK);
		for (unsigned int s = 0; s < SEG; s++)
			iov[i][s] = (struct iovec){buf[i] + s * BLK, BLK};
		io[i] = (struct blk_io){.op = BLK_IO_WRITE, .iov = iov[i], .iovcnt = SEG,
					.offset = (uint64_t)(256 + i * SEG) * BLK};
		CHECK_EQ(ops->prep(bq, &io[i]), 0);
	}
	wait_for(bq, &log, N);
	for (unsigned int i = 0; i < N; i++)
		CHECK_EQ(io[i].res, SEG * BLK);
	CHECK(blk_test_matches(img, 256 * BLK, N * SEG * BLK, 4));
	memset(buf, 0, sizeof(buf));
	log.n = 0;
	for (unsigned int i = 0; i < N; i++) {
		io[i].op = BLK_IO_READ;
		CHECK_EQ(ops->prep(bq, &io[i]), 0);
	}
	wait_for(bq, &log, N);
	for (unsigned int i = 0; i < N; i++) {
		CHECK_EQ(io[i].res, SEG * BLK);
		for (unsigned int b = 0; b < SEG * BLK; b++)
			if (buf[i][b] != blk_test_byte(4, (size_t)(256 + i * SEG) * BLK + b))
				FAIL("blk_io %u byte %u read back wrong", i, b);
	}
}

static void test_eventfd(struct blk_backend_queue *bq)
{
	struct blk_io e = {.op = BLK_IO_EVENTFD};
	int efd = eventfd(0, EFD_CLOEXEC);

	CHECK(efd >= 0);
	e.fd = efd;
	CHECK_EQ(eventfd_write(efd, 1), 0);
	CHECK_EQ(run_one(bq, &e), 0);
	close(efd);
}

/* A FUA write on a server without FUA: the log shows a flush after it. */
static void test_fua_fallback(struct blk_backend_queue *bq, const char *logpath)
{
	static unsigned char src[BLK];
	struct iovec v = {src, sizeof(src)};
	struct blk_io w = {.op = BLK_IO_WRITE, .flags = BLK_IO_F_FUA, .iov = &v, .iovcnt = 1,
			   .offset = 8 * BLK};
	char line[512];
	bool write_seen = false, flush_after = false;
	FILE *f;

	CHECK_EQ(run_one(bq, &w), BLK);
	f = fopen(logpath, "r");
	CHECK(f);
	while (fgets(line, sizeof(line), f)) {
		if (strstr(line, "Write") && strstr(line, "offset=0x8000"))
			write_seen = true;
		else if (write_seen && strstr(line, "Flush"))
			flush_after = true;
	}
	fclose(f);
	CHECK_MSG(write_seen && flush_after, "no flush after the FUA write in %s", logpath);
}

int main(void)
{
	char dir[] = "/tmp/vhostd-test-nbdbe.XXXXXX", img_path[300], sock[300], uri[400],
	     logpath[300], logarg[320], pread[400], pwrite[400], size[64];
	struct blk_backend_info info;
	struct blk_backend_queue *bq;
	struct blk_backend *be;
	int img;
	pid_t pid;

	CHECK(mkdtemp(dir));
	snprintf(img_path, sizeof(img_path), "%s/img", dir);
	snprintf(sock, sizeof(sock), "%s/nbd.sock", dir);
	snprintf(uri, sizeof(uri), "nbd+unix:///?socket=%s", sock);
	snprintf(logpath, sizeof(logpath), "%s/nbdkit.log", dir);
	snprintf(logarg, sizeof(logarg), "logfile=%s", logpath);
	img = open(img_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	CHECK(img >= 0);
	CHECK_EQ(ftruncate(img, IMG_SIZE), 0);

	test_bad_uris(dir);

	/* A server that can do everything. */
	pid = start_nbdkit(sock, (char *[]){"file", img_path}, 2);
	be = open_uri(uri);
	ops->get_info(be, &info);
	CHECK_EQ(info.size, IMG_SIZE);
	CHECK(!info.no_flush && !info.no_discard && !info.no_write_zeroes);
	CHECK_EQ(ops->queue_new(be, 128, &bq), 0);
	test_rw(bq, img);
	test_flush_discard_zero(bq, img, false);
	test_many(bq, img);
	test_eventfd(bq);
	ops->queue_free(bq);
	ops->close(be);
	stop_nbdkit(pid);

	/*
	 * No write-zeroes, no FUA, no trim (nbdkit's eval plugin over the same
	 * image, with the nozero filter): zeroes come from the zero page, a
	 * FUA write is followed by a flush.
	 */
	snprintf(pread, sizeof(pread),
		 "pread=dd if=%s skip=$4 count=$3 iflag=skip_bytes,count_bytes status=none",
		 img_path);
	snprintf(pwrite, sizeof(pwrite),
		 "pwrite=dd of=%s seek=$4 conv=notrunc oflag=seek_bytes status=none", img_path);
	snprintf(size, sizeof(size), "get_size=echo %u", IMG_SIZE);
	pid = start_nbdkit(sock,
			   (char *[]){"--filter=log", "--filter=nozero", "eval", size, pread, pwrite,
				      "can_write=exit 0", "can_flush=exit 0", "flush=exit 0",
				      "can_fua=echo none", "zeromode=none", logarg},
			   12);
	be = open_uri(uri);
	ops->get_info(be, &info);
	CHECK(!info.no_flush && info.no_write_zeroes && info.no_discard);
	CHECK_EQ(ops->queue_new(be, 16, &bq), 0);
	test_flush_discard_zero(bq, img, true);
	test_fua_fallback(bq, logpath);
	ops->queue_free(bq);
	ops->close(be);
	stop_nbdkit(pid);

	close(img);
	unlink(img_path);
	unlink(logpath);
	unlink(sock);
	rmdir(dir);
	printf("ok\n");
	return 0;
}
