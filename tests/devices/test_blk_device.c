// SPDX-License-Identifier: MIT
/*
 * test_blk_device.c - the virtio-blk device end to end in one process: a
 * blk_dev served by a small event-loop thread, driven over its vhost-user
 * socket by our front-end (frontend.h) as a guest driver would, on split
 * and packed rings.
 *
 * Every request type is exercised, good and bad: reads and writes with
 * every framing the spec allows (header and data sharing a buffer, a split
 * header, the status byte sharing the last data buffer), GET_ID, FLUSH,
 * DISCARD and WRITE_ZEROES (UNMAP or not, several ranges, bad flags, too
 * many ranges, torn ranges), I/O beyond the capacity and with overflowing
 * sectors, unknown types, a read-only device, the writeback toggle, a burst
 * of requests on a second queue, chains that cannot carry a status byte
 * (the device goes broken, the process lives), and tearing the device down
 * with requests in flight.  The test keeps a model of what the image must
 * hold and compares the file with it byte for byte at the end, so a request
 * that failed provably wrote nothing.  The null back-end goes through the
 * same requests, with a model that stays all zeroes.
 */
#include <endian.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "blk_test.h"
#include "common/evloop.h"
#include "common/log.h"
#include "devices/blk.h"
#include "devices/virtio_blk.h"
#include "vhost-user/frontend.h"
#include "vhost-user/protocol.h"
#include "virtq/ring.h"

#define IMG_SECTORS 8192u /* 4 MiB */
#define IMG_BYTES   ((size_t)IMG_SECTORS * 512)
#define QSIZE	    64
#define DATA_BYTES  (256u * 1024)

struct ctx {
	struct evloop *loop;
	pthread_t loop_thread;
	bool loop_running;
	struct blk_dev *dev;
	struct vu_fe *fe;
	char img[256];
	char sock[108];
	int img_fd;
	uint8_t *model; /* what the image must contain */
	bool null;	/* backend=null: writes are dropped, reads give zeroes */
	bool packed;
	struct timespec started;

	/* shared memory the "guest" builds requests in */
	struct virtio_blk_outhdr *hdr;
	uint8_t *status;
	uint8_t *data;
	uint8_t *scratch;

	/* what the statistics must say */
	uint64_t ios[BLK_STAT__COUNT];
	uint64_t sectors[BLK_STAT__COUNT];
};

/* ---- plumbing -------------------------------------------------------------- */

static void *loop_main(void *arg)
{
	evloop_run(arg);
	return NULL;
}

static void loop_stop(struct ctx *c)
{
	if (!c->loop_running)
		return;
	evloop_stop(c->loop);
	pthread_join(c->loop_thread, NULL);
	c->loop_running = false;
}

static void dev_start(struct ctx *c, const char *extra_opts, bool packed, int nq)
{
	struct blk_options opts;
	char spec[1024], err[256];
	static int serial;
	struct vu_fe_config fcfg;
	uint64_t want;

	c->packed = packed;
	clock_gettime(CLOCK_MONOTONIC, &c->started);
	/* sun_path is short: the socket lives in /tmp whatever $TMPDIR is. */
	snprintf(c->sock, sizeof(c->sock), "/tmp/vhostd-blk-%d-%d.sock", (int)getpid(), serial);
	unlink(c->sock);
	snprintf(spec, sizeof(spec), "id=vdt%d,%s%s,socket=%s,queue-size=%d,serial=SERIAL-1234%s",
		 serial++, c->null ? "backend=null,size=4M" : "path=", c->null ? "" : c->img,
		 c->sock, QSIZE, extra_opts);
	if (blk_options_parse(spec, &opts, err, sizeof(err)))
		FAIL("options: %s", err);
	c->loop = evloop_new();
	CHECK(c->loop);
	c->dev = blk_dev_new(&opts, &vu_evloop_watch_ops, c->loop, err, sizeof(err));
	if (!c->dev)
		FAIL("blk_dev_new: %s", err);
	CHECK_EQ(blk_dev_capacity_sectors(c->dev), IMG_SECTORS);
	CHECK(!blk_dev_connected(c->dev));
	CHECK_EQ(pthread_create(&c->loop_thread, NULL, loop_main, c->loop), 0);
	c->loop_running = true;

	want = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_RING_F_EVENT_IDX |
	       1ull << VIRTIO_RING_F_INDIRECT_DESC | 0x7fffull /* every blk bit we know */;
	if (packed)
		want |= 1ull << VIRTIO_F_RING_PACKED;
	fcfg = (struct vu_fe_config){
		.socket_path = c->sock,
		.mem_size = 8u << 20,
		.num_queues = (unsigned int)nq,
		.queue_size = QSIZE,
		.features = want,
		.indirect_max = 8,
	};
	c->fe = vu_fe_connect(&fcfg);
	if (!c->fe)
		FAIL("vu_fe_connect: %s", strerror(errno));
	c->hdr = vu_fe_alloc(c->fe, 64 * sizeof(*c->hdr), 16);
	c->status = vu_fe_alloc(c->fe, 64, 1);
	c->data = vu_fe_alloc(c->fe, DATA_BYTES, 4096);
	c->scratch = vu_fe_alloc(c->fe, 4096, 4096);
	CHECK(c->hdr && c->status && c->data && c->scratch);
}

static void dev_stop(struct ctx *c)
{
	vu_fe_disconnect(c->fe);
	c->fe = NULL;
	loop_stop(c);
	blk_dev_free(c->dev);
	c->dev = NULL;
	evloop_free(c->loop);
	c->loop = NULL;
	unlink(c->sock);
}

static uint64_t sg_addr(struct ctx *c, const void *p)
{
	return vu_fe_addr(c->fe, p);
}

/* Wait for the completion carrying @token; checks that an interrupt came. */
static uint32_t wait_token(struct ctx *c, unsigned int q, void *token)
{
	struct virtq_drv *vq = vu_fe_queue(c->fe, q);
	uint32_t len;

	for (;;) {
		void *t = virtq_drv_get_buf(vq, &len);

		if (t) {
			CHECK(t == token);
			return len;
		}
		if (!virtq_drv_enable_cb(vq))
			continue;
		if (vu_fe_wait_call(c->fe, q, 5000) != 1)
			FAIL("no completion and no interrupt within 5 s");
	}
}

/* Expose one chain, kick, wait; returns the used length. */
static uint32_t run_chain(struct ctx *c, unsigned int q, const struct virtq_sg *sg,
			  unsigned int nout, unsigned int nin)
{
	static int token;

	CHECK_EQ(virtq_drv_add_sgs(vu_fe_queue(c->fe, q), sg, nout, nin, &token), 0);
	CHECK_EQ(vu_fe_kick(c->fe, q) < 0, 0);
	return wait_token(c, q, &token);
}

static void set_hdr(struct ctx *c, uint32_t type, uint64_t sector)
{
	c->hdr->type = htole32(type);
	c->hdr->ioprio = 0;
	c->hdr->sector = htole64(sector);
}

/*
 * The usual layout: header | data (readable for OUT-like, writable for IN)
 * | status.  Returns the status, used length in *@used.
 */
static uint8_t blk_req(struct ctx *c, unsigned int q, uint32_t type, uint64_t sector, void *data,
		       uint32_t len, bool data_writable, uint32_t *used)
{
	struct virtq_sg sg[3];
	unsigned int n = 0, nout;
	uint32_t u;

	set_hdr(c, type, sector);
	*c->status = 0xee;
	sg[n++] = (struct virtq_sg){sg_addr(c, c->hdr), 16};
	if (len && !data_writable)
		sg[n++] = (struct virtq_sg){sg_addr(c, data), len};
	nout = n;
	if (len && data_writable)
		sg[n++] = (struct virtq_sg){sg_addr(c, data), len};
	sg[n++] = (struct virtq_sg){sg_addr(c, c->status), 1};
	u = run_chain(c, q, sg, nout, n - nout);
	if (used)
		*used = u;
	return *c->status;
}

/* A write the device acknowledged: what reads must now return. */
static void model_write(struct ctx *c, size_t off, const void *src, size_t len)
{
	/* The null back-end stores nothing: the model stays all zeroes. */
	if (!c->null)
		memcpy(c->model + off, src, len);
}

static void count(struct ctx *c, enum blk_stat_dir d, uint64_t sectors)
{
	c->ios[d]++;
	c->sectors[d] += sectors;
}

static uint8_t do_write(struct ctx *c, unsigned int q, uint64_t sector, uint32_t len,
			unsigned int seed)
{
	uint32_t used;
	uint8_t st;

	blk_test_fill(c->data, len, seed, sector * 512);
	st = blk_req(c, q, VIRTIO_BLK_T_OUT, sector, c->data, len, false, &used);
	CHECK_EQ(used, 1);
	if (st == VIRTIO_BLK_S_OK) {
		model_write(c, sector * 512, c->data, len);
		count(c, BLK_STAT_WRITE, len / 512);
	}
	return st;
}

static void check_read(struct ctx *c, unsigned int q, uint64_t sector, uint32_t len)
{
	uint32_t used;

	memset(c->data, 0xa5, len);
	CHECK_EQ(blk_req(c, q, VIRTIO_BLK_T_IN, sector, c->data, len, true, &used),
		 VIRTIO_BLK_S_OK);
	CHECK_EQ(used, len + 1);
	CHECK(!memcmp(c->data, c->model + sector * 512, len));
	count(c, BLK_STAT_READ, len / 512);
}

/* A DISCARD / WRITE_ZEROES request with @n ranges (or @raw_len bytes). */
static uint8_t dwz_req(struct ctx *c, uint32_t type,
		       const struct virtio_blk_discard_write_zeroes *r, unsigned int n,
		       size_t raw_len)
{
	struct virtio_blk_discard_write_zeroes *segs = (void *)c->scratch;
	struct virtq_sg sg[3];
	unsigned int k = 0;
	uint32_t used;

	for (unsigned int i = 0; i < n; i++) {
		segs[i].sector = htole64(r[i].sector);
		segs[i].num_sectors = htole32(r[i].num_sectors);
		segs[i].flags = htole32(r[i].flags);
	}
	set_hdr(c, type, 0);
	*c->status = 0xee;
	sg[k++] = (struct virtq_sg){sg_addr(c, c->hdr), 16};
	if (raw_len)
		sg[k++] = (struct virtq_sg){sg_addr(c, segs), (uint32_t)raw_len};
	sg[k++] = (struct virtq_sg){sg_addr(c, c->status), 1};
	used = run_chain(c, 0, sg, k - 1, 1);
	CHECK_EQ(used, 1);
	return *c->status;
}

static bool file_is_hole(struct ctx *c, off_t off, off_t len)
{
	off_t d = lseek(c->img_fd, off, SEEK_DATA);

	return lseek(c->img_fd, off, SEEK_HOLE) == off && (d < 0 || d >= off + len);
}

static blkcnt_t file_blocks(struct ctx *c)
{
	struct stat st;

	CHECK_EQ(fstat(c->img_fd, &st), 0);
	return st.st_blocks;
}

static void check_image(struct ctx *c)
{
	uint8_t *buf = malloc(IMG_BYTES);
	struct stat st;

	CHECK(buf);
	CHECK_EQ(fstat(c->img_fd, &st), 0);
	CHECK_EQ(st.st_size, IMG_BYTES); /* nothing written past the end */
	CHECK_EQ(pread(c->img_fd, buf, IMG_BYTES, 0), (ssize_t)IMG_BYTES);
	for (size_t i = 0; i < IMG_BYTES; i++) {
		if (buf[i] != c->model[i])
			FAIL("image byte %zu (sector %zu) is %#x, expected %#x", i, i / 512, buf[i],
			     c->model[i]);
	}
	free(buf);
}

static void check_stats(struct ctx *c)
{
	struct blk_stats st;
	char line[512], prefix[64];
	struct timespec now;
	uint64_t total;

	blk_dev_get_stats(c->dev, &st);
	for (int d = 0; d < BLK_STAT__COUNT; d++) {
		if (st.ios[d] != c->ios[d] || st.sectors[d] != c->sectors[d])
			FAIL("stats dir %d: ios %llu sectors %llu, expected %llu / %llu", d,
			     (unsigned long long)st.ios[d], (unsigned long long)st.sectors[d],
			     (unsigned long long)c->ios[d], (unsigned long long)c->sectors[d]);
		CHECK_EQ(st.merges[d], 0);
	}
	CHECK_EQ(st.in_flight, 0);
	/* Busy time is wall time at most; time_in_queue sums the directions. */
	clock_gettime(CLOCK_MONOTONIC, &now);
	CHECK(st.io_ticks_ms <= (uint64_t)((now.tv_sec - c->started.tv_sec) * 1000 +
					   (now.tv_nsec - c->started.tv_nsec) / 1000000 + 1));
	total = 0;
	for (int d = 0; d < BLK_STAT__COUNT; d++)
		total += st.ticks_ms[d];
	CHECK(st.time_in_queue_ms >= total && st.time_in_queue_ms <= total + BLK_STAT__COUNT);
	blk_stats_format(&st, blk_dev_id(c->dev), line, sizeof(line));
	snprintf(prefix, sizeof(prefix), "   0       0 %s %llu ", blk_dev_id(c->dev),
		 (unsigned long long)c->ios[BLK_STAT_READ]);
	CHECK(!strncmp(line, prefix, strlen(prefix)));
}

/* ---- the cases ------------------------------------------------------------------ */

static void test_features_config(struct ctx *c, bool readonly)
{
	uint64_t f = vu_fe_features(c->fe);
	struct virtio_blk_config cfg;

	CHECK(f & (1ull << VIRTIO_F_VERSION_1));
	CHECK(f & (1ull << VIRTIO_BLK_F_SEG_MAX));
	CHECK(f & (1ull << VIRTIO_BLK_F_BLK_SIZE));
	CHECK(f & (1ull << VIRTIO_BLK_F_TOPOLOGY));
	CHECK(f & (1ull << VIRTIO_BLK_F_FLUSH));
	CHECK(f & (1ull << VIRTIO_BLK_F_CONFIG_WCE));
	CHECK(f & (1ull << VIRTIO_BLK_F_MQ));
	CHECK(f & (1ull << VIRTIO_RING_F_EVENT_IDX));
	CHECK(f & (1ull << VIRTIO_RING_F_INDIRECT_DESC));
	CHECK(!!(f & (1ull << VIRTIO_F_RING_PACKED)) == c->packed);
	CHECK(!!(f & (1ull << VIRTIO_BLK_F_RO)) == readonly);
	CHECK(!!(f & (1ull << VIRTIO_BLK_F_DISCARD)) == !readonly);
	CHECK(!!(f & (1ull << VIRTIO_BLK_F_WRITE_ZEROES)) == !readonly);
	CHECK(!(f & (1ull << VIRTIO_BLK_F_GEOMETRY)));

	memset(&cfg, 0xff, sizeof(cfg));
	CHECK_EQ(vu_fe_get_config(c->fe, &cfg, sizeof(cfg)), 0);
	CHECK_EQ(le64toh(cfg.capacity), IMG_SECTORS);
	CHECK_EQ(le32toh(cfg.seg_max), QSIZE - 2);
	CHECK_EQ(le32toh(cfg.blk_size), 512);
	CHECK_EQ(le16toh(cfg.num_queues), vu_fe_num_queues(c->fe));
	CHECK_EQ(cfg.writeback, 1);
	CHECK_EQ(cfg.unused0, 0);
	CHECK(le16toh(cfg.topology.min_io_size) >= 1);
	if (readonly) {
		CHECK_EQ(cfg.max_discard_seg, 0);
	} else {
		CHECK_EQ(le32toh(cfg.max_discard_seg), 16);
		CHECK_EQ(le32toh(cfg.max_write_zeroes_seg), 16);
		CHECK(le32toh(cfg.max_discard_sectors) >= 2048);
		CHECK(le32toh(cfg.max_write_zeroes_sectors) >= 2048);
		CHECK_EQ(cfg.write_zeroes_may_unmap, 1);
	}
}

static void test_get_id(struct ctx *c)
{
	uint32_t used;

	memset(c->data, 0x55, 32);
	CHECK_EQ(blk_req(c, 0, VIRTIO_BLK_T_GET_ID, 0, c->data, 20, true, &used), VIRTIO_BLK_S_OK);
	CHECK_EQ(used, 21);
	CHECK(!memcmp(c->data, "SERIAL-1234\0\0\0\0\0\0\0\0\0", 20));
	CHECK_EQ(c->data[20], 0x55);

	/* A short buffer gets what fits. */
	memset(c->data, 0x55, 32);
	CHECK_EQ(blk_req(c, 0, VIRTIO_BLK_T_GET_ID, 0, c->data, 6, true, &used), VIRTIO_BLK_S_OK);
	CHECK_EQ(used, 7);
	CHECK(!memcmp(c->data, "SERIAL\x55", 7));
}

/*
 * Chains of 40 data segments, more than a request slot keeps inline (the
 * engine lends them a full iovec array): written, read back, twice each so
 * that borrowed arrays are reused.
 */
static void test_long_chains(struct ctx *c)
{
	enum { NSEG = 40, SEG = 512 };
	struct virtq_sg sg[NSEG + 2];
	uint32_t used;

	for (unsigned int round = 0; round < 2; round++) {
		uint64_t sector = 400 + round * NSEG;

		set_hdr(c, VIRTIO_BLK_T_OUT, sector);
		blk_test_fill(c->data, NSEG * SEG, 11 + round, sector * 512);
		sg[0] = (struct virtq_sg){sg_addr(c, c->hdr), 16};
		for (unsigned int i = 0; i < NSEG; i++)
			sg[1 + i] = (struct virtq_sg){sg_addr(c, c->data + i * SEG), SEG};
		sg[1 + NSEG] = (struct virtq_sg){sg_addr(c, c->status), 1};
		*c->status = 0xee;
		CHECK_EQ(run_chain(c, 0, sg, 1 + NSEG, 1), 1);
		CHECK_EQ(*c->status, VIRTIO_BLK_S_OK);
		model_write(c, sector * 512, c->data, NSEG * SEG);
		count(c, BLK_STAT_WRITE, NSEG);

		set_hdr(c, VIRTIO_BLK_T_IN, sector);
		memset(c->data, 0xa5, NSEG * SEG);
		sg[0] = (struct virtq_sg){sg_addr(c, c->hdr), 16};
		for (unsigned int i = 0; i < NSEG; i++)
			sg[1 + i] = (struct virtq_sg){sg_addr(c, c->data + i * SEG), SEG};
		*c->status = 0xee;
		used = run_chain(c, 1, sg, 1, NSEG + 1);
		CHECK_EQ(used, NSEG * SEG + 1);
		CHECK_EQ(*c->status, VIRTIO_BLK_S_OK);
		CHECK(!memcmp(c->data, c->model + sector * 512, NSEG * SEG));
		count(c, BLK_STAT_READ, NSEG);
	}
}

static void test_read_write(struct ctx *c)
{
	struct virtq_sg sg[6];
	uint32_t used;

	/* Plain: 8 KiB written, then read back, on both queues. */
	CHECK_EQ(do_write(c, 0, 10, 8192, 2), VIRTIO_BLK_S_OK);
	check_read(c, 0, 10, 8192);
	check_read(c, 1, 8, 8192);
	CHECK_EQ(do_write(c, 1, 100, 512, 3), VIRTIO_BLK_S_OK);
	check_read(c, 0, 96, 4096);

	/* The first and the last sector of the disk. */
	CHECK_EQ(do_write(c, 0, 0, 512, 4), VIRTIO_BLK_S_OK);
	CHECK_EQ(do_write(c, 0, IMG_SECTORS - 1, 512, 5), VIRTIO_BLK_S_OK);
	check_read(c, 0, IMG_SECTORS - 2, 1024);

	/* Header and data in one readable buffer; data spread unevenly. */
	blk_test_fill(c->data + 16, 3072, 6, 200 * 512);
	memcpy(c->data, &(struct virtio_blk_outhdr){htole32(VIRTIO_BLK_T_OUT), 0, htole64(200)},
	       16);
	sg[0] = (struct virtq_sg){sg_addr(c, c->data), 16 + 1000};
	sg[1] = (struct virtq_sg){sg_addr(c, c->data + 1016), 2072};
	sg[2] = (struct virtq_sg){sg_addr(c, c->status), 1};
	*c->status = 0xee;
	CHECK_EQ(run_chain(c, 0, sg, 2, 1), 1);
	CHECK_EQ(*c->status, VIRTIO_BLK_S_OK);
	model_write(c, 200 * 512, c->data + 16, 3072);
	count(c, BLK_STAT_WRITE, 6);

	/* Header split 5 + 11; the status byte shares the last data buffer. */
	set_hdr(c, VIRTIO_BLK_T_IN, 200);
	memset(c->data, 0xa5, 4096);
	sg[0] = (struct virtq_sg){sg_addr(c, c->hdr), 5};
	sg[1] = (struct virtq_sg){sg_addr(c, (uint8_t *)c->hdr + 5), 11};
	sg[2] = (struct virtq_sg){sg_addr(c, c->data), 1536};
	sg[3] = (struct virtq_sg){sg_addr(c, c->data + 1536), 1536 + 1};
	used = run_chain(c, 0, sg, 2, 2);
	CHECK_EQ(used, 3073);
	CHECK_EQ(c->data[3072], VIRTIO_BLK_S_OK);
	CHECK(!memcmp(c->data, c->model + 200 * 512, 3072));
	count(c, BLK_STAT_READ, 6);

	/* Data and status in a single writable buffer. */
	memset(c->data, 0xa5, 4096);
	sg[0] = (struct virtq_sg){sg_addr(c, c->hdr), 16};
	sg[1] = (struct virtq_sg){sg_addr(c, c->data), 1024 + 1};
	used = run_chain(c, 0, sg, 1, 1);
	CHECK_EQ(used, 1025);
	CHECK_EQ(c->data[1024], VIRTIO_BLK_S_OK);
	CHECK(!memcmp(c->data, c->model + 200 * 512, 1024));
	count(c, BLK_STAT_READ, 2);

	/* Extra writable bytes after the data: the status is the very last one. */
	set_hdr(c, VIRTIO_BLK_T_OUT, 300);
	blk_test_fill(c->data, 512, 7, 300 * 512);
	c->data[600] = 0xee;
	sg[0] = (struct virtq_sg){sg_addr(c, c->hdr), 16};
	sg[1] = (struct virtq_sg){sg_addr(c, c->data), 512};
	sg[2] = (struct virtq_sg){sg_addr(c, c->data + 590), 11};
	CHECK_EQ(run_chain(c, 0, sg, 2, 1), 1);
	CHECK_EQ(c->data[600], VIRTIO_BLK_S_OK);
	model_write(c, 300 * 512, c->data, 512);
	count(c, BLK_STAT_WRITE, 1);

	/* A zero-length read is fine and touches nothing. */
	CHECK_EQ(blk_req(c, 0, VIRTIO_BLK_T_IN, 5, NULL, 0, true, &used), VIRTIO_BLK_S_OK);
	CHECK_EQ(used, 1);

	test_long_chains(c);
}

static void test_bad_rw(struct ctx *c)
{
	uint32_t used;

	/* Past the end, straddling the end, sector arithmetic overflowing. */
	CHECK_EQ(blk_req(c, 0, VIRTIO_BLK_T_IN, IMG_SECTORS, c->data, 512, true, &used),
		 VIRTIO_BLK_S_IOERR);
	CHECK_EQ(used, 1);
	CHECK_EQ(blk_req(c, 0, VIRTIO_BLK_T_IN, IMG_SECTORS - 1, c->data, 1024, true, &used),
		 VIRTIO_BLK_S_IOERR);
	CHECK_EQ(do_write(c, 0, IMG_SECTORS - 1, 1024, 8), VIRTIO_BLK_S_IOERR);
	CHECK_EQ(do_write(c, 0, IMG_SECTORS, 512, 8), VIRTIO_BLK_S_IOERR);
	CHECK_EQ(do_write(c, 0, UINT64_MAX, 512, 8), VIRTIO_BLK_S_IOERR);
	CHECK_EQ(do_write(c, 0, UINT64_MAX >> 9, 512, 8), VIRTIO_BLK_S_IOERR);
	CHECK_EQ(do_write(c, 0, (1ull << 55) + 1, 512, 8), VIRTIO_BLK_S_IOERR);
	CHECK_EQ(blk_req(c, 0, VIRTIO_BLK_T_IN, UINT64_MAX - 1, c->data, 4096, true, &used),
		 VIRTIO_BLK_S_IOERR);

	/* Data that is not a whole number of sectors. */
	CHECK_EQ(do_write(c, 0, 20, 100, 9), VIRTIO_BLK_S_IOERR);
	CHECK_EQ(blk_req(c, 0, VIRTIO_BLK_T_IN, 20, c->data, 513, true, &used), VIRTIO_BLK_S_IOERR);

	/* Unknown and unoffered types. */
	CHECK_EQ(blk_req(c, 0, 0x77, 0, NULL, 0, true, &used), VIRTIO_BLK_S_UNSUPP);
	CHECK_EQ(used, 1);
	CHECK_EQ(blk_req(c, 0, VIRTIO_BLK_T_GET_LIFETIME, 0, c->data, 8, true, &used),
		 VIRTIO_BLK_S_UNSUPP);
	CHECK_EQ(blk_req(c, 0, VIRTIO_BLK_T_SECURE_ERASE, 0, c->data, 16, false, &used),
		 VIRTIO_BLK_S_UNSUPP);
	CHECK_EQ(blk_req(c, 0, 0x80000001u, 10, c->data, 512, false, &used), VIRTIO_BLK_S_UNSUPP);
}

static void test_flush(struct ctx *c)
{
	uint32_t used;

	CHECK_EQ(blk_req(c, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, true, &used), VIRTIO_BLK_S_OK);
	CHECK_EQ(used, 1);
	count(c, BLK_STAT_FLUSH, 0);
	CHECK_EQ(blk_req(c, 1, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, true, &used), VIRTIO_BLK_S_OK);
	count(c, BLK_STAT_FLUSH, 0);
}

static void zero_model(struct ctx *c, uint64_t sector, uint32_t n)
{
	memset(c->model + sector * 512, 0, (size_t)n * 512);
}

static void test_discard_write_zeroes(struct ctx *c)
{
	struct virtio_blk_discard_write_zeroes r[17];
	const uint32_t D = VIRTIO_BLK_T_DISCARD, WZ = VIRTIO_BLK_T_WRITE_ZEROES;
	blkcnt_t blocks;

	/* Fill 1024..3072 with data first. */
	for (unsigned int s = 1024; s < 3072; s += 256)
		CHECK_EQ(do_write(c, 0, s, 256 * 512, 10 + s), VIRTIO_BLK_S_OK);

	/* One discard: a hole, reading back as zeroes. */
	r[0] = (struct virtio_blk_discard_write_zeroes){1024, 256, 0};
	CHECK_EQ(dwz_req(c, D, r, 1, 16), VIRTIO_BLK_S_OK);
	zero_model(c, 1024, 256);
	count(c, BLK_STAT_DISCARD, 256);
	CHECK(file_is_hole(c, 1024 * 512, 256 * 512));
	check_read(c, 0, 1020, 8192);

	/* Two ranges in one request. */
	r[0] = (struct virtio_blk_discard_write_zeroes){1536, 64, 0};
	r[1] = (struct virtio_blk_discard_write_zeroes){1792, 128, 0};
	CHECK_EQ(dwz_req(c, D, r, 2, 32), VIRTIO_BLK_S_OK);
	zero_model(c, 1536, 64);
	zero_model(c, 1792, 128);
	count(c, BLK_STAT_DISCARD, 192);
	CHECK(file_is_hole(c, 1792 * 512, 128 * 512));

	/* Bad: UNMAP on a discard, reserved flags, beyond the end, too long. */
	r[0] = (struct virtio_blk_discard_write_zeroes){2048, 8,
							VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP};
	CHECK_EQ(dwz_req(c, D, r, 1, 16), VIRTIO_BLK_S_UNSUPP);
	r[0] = (struct virtio_blk_discard_write_zeroes){2048, 8, 2};
	CHECK_EQ(dwz_req(c, D, r, 1, 16), VIRTIO_BLK_S_UNSUPP);
	CHECK_EQ(dwz_req(c, WZ, r, 1, 16), VIRTIO_BLK_S_UNSUPP);
	r[0] = (struct virtio_blk_discard_write_zeroes){IMG_SECTORS - 8, 16, 0};
	CHECK_EQ(dwz_req(c, D, r, 1, 16), VIRTIO_BLK_S_IOERR);
	CHECK_EQ(dwz_req(c, WZ, r, 1, 16), VIRTIO_BLK_S_IOERR);
	r[0] = (struct virtio_blk_discard_write_zeroes){UINT64_MAX - 4, 8, 0};
	CHECK_EQ(dwz_req(c, D, r, 1, 16), VIRTIO_BLK_S_IOERR);
	r[0] = (struct virtio_blk_discard_write_zeroes){0, UINT32_MAX, 0};
	CHECK_EQ(dwz_req(c, WZ, r, 1, 16), VIRTIO_BLK_S_IOERR);
	/* A bad range anywhere fails the whole request before anything is done. */
	r[0] = (struct virtio_blk_discard_write_zeroes){2048, 8, 0};
	r[1] = (struct virtio_blk_discard_write_zeroes){IMG_SECTORS, 1, 0};
	CHECK_EQ(dwz_req(c, D, r, 2, 32), VIRTIO_BLK_S_IOERR);
	CHECK_EQ(dwz_req(c, WZ, r, 2, 32), VIRTIO_BLK_S_IOERR);
	/* Framing: no range, a torn range, more ranges than max_discard_seg. */
	CHECK_EQ(dwz_req(c, D, r, 0, 0), VIRTIO_BLK_S_UNSUPP);
	CHECK_EQ(dwz_req(c, D, r, 1, 20), VIRTIO_BLK_S_UNSUPP);
	for (int i = 0; i < 17; i++)
		r[i] = (struct virtio_blk_discard_write_zeroes){2048 + 8 * i, 8, 0};
	CHECK_EQ(dwz_req(c, D, r, 17, 17 * 16), VIRTIO_BLK_S_UNSUPP);
	CHECK_EQ(dwz_req(c, WZ, r, 17, 17 * 16), VIRTIO_BLK_S_UNSUPP);
	/* Sixteen is fine. */
	CHECK_EQ(dwz_req(c, D, r, 16, 16 * 16), VIRTIO_BLK_S_OK);
	zero_model(c, 2048, 128);
	count(c, BLK_STAT_DISCARD, 128);

	/*
	 * Write zeroes without UNMAP: zeroes, and nothing deallocated (ext4
	 * makes the range unwritten, which SEEK_HOLE may call a hole, so
	 * count blocks instead).
	 */
	blocks = file_blocks(c);
	r[0] = (struct virtio_blk_discard_write_zeroes){2304, 64, 0};
	CHECK_EQ(dwz_req(c, WZ, r, 1, 16), VIRTIO_BLK_S_OK);
	zero_model(c, 2304, 64);
	count(c, BLK_STAT_WRITE, 64);
	CHECK(file_blocks(c) >= blocks);
	/* With UNMAP: a hole. */
	r[0] = (struct virtio_blk_discard_write_zeroes){2560, 256,
							VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP};
	CHECK_EQ(dwz_req(c, WZ, r, 1, 16), VIRTIO_BLK_S_OK);
	zero_model(c, 2560, 256);
	count(c, BLK_STAT_WRITE, 256);
	CHECK(file_is_hole(c, 2560 * 512, 256 * 512));
	/* Unaligned, zero-length and several ranges. */
	r[0] = (struct virtio_blk_discard_write_zeroes){2901, 3, 0};
	r[1] = (struct virtio_blk_discard_write_zeroes){2950, 0, 0};
	r[2] = (struct virtio_blk_discard_write_zeroes){3000, 70,
							VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP};
	CHECK_EQ(dwz_req(c, WZ, r, 3, 48), VIRTIO_BLK_S_OK);
	zero_model(c, 2901, 3);
	zero_model(c, 3000, 70);
	count(c, BLK_STAT_WRITE, 73);
	check_read(c, 0, 2896, 128 * 512);
}

static void test_writeback_toggle(struct ctx *c)
{
	uint8_t wire[12 + 12 + 1];
	struct vhost_user_hdr h = {
		.request = VHOST_USER_SET_CONFIG,
		.flags = VHOST_USER_VERSION,
		.size = 12 + 1,
	};
	uint32_t cfghdr[3] = {offsetof(struct virtio_blk_config, writeback), 1, 0};
	struct virtio_blk_config cfg;

	for (int wb = 0; wb <= 1; wb++) {
		memcpy(wire, &h, 12);
		memcpy(wire + 12, cfghdr, 12);
		wire[24] = (uint8_t)wb;
		CHECK_EQ(vu_fe_send_raw(c->fe, wire, sizeof(wire), NULL, 0, NULL, 0), 0);
		CHECK_EQ(vu_fe_get_config(c->fe, &cfg, sizeof(cfg)), 0);
		CHECK_EQ(cfg.writeback, wb);
		/* Writethrough writes (RWF_DSYNC) work too. */
		CHECK_EQ(do_write(c, 0, 4000, 4096, 20 + wb), VIRTIO_BLK_S_OK);
		check_read(c, 0, 4000, 4096);
	}
}

/* Many requests in flight on queue 1: one kick, completions in any order. */
static void test_burst(struct ctx *c)
{
	enum { N = 48 };
	struct virtio_blk_outhdr *hdrs = vu_fe_alloc(c->fe, N * sizeof(*hdrs), 16);
	uint8_t *sts = vu_fe_alloc(c->fe, N, 1);
	uint8_t *bufs = vu_fe_alloc(c->fe, (size_t)N * 4096, 4096);
	struct virtq_drv *vq = vu_fe_queue(c->fe, 1);
	bool seen[N] = {false};
	int got = 0;

	CHECK(hdrs && sts && bufs);
	for (int i = 0; i < N; i++) {
		uint64_t sector = 5000 + (uint64_t)i * 8;
		struct virtq_sg sg[3] = {
			{sg_addr(c, &hdrs[i]), 16},
			{sg_addr(c, bufs + i * 4096), 4096},
			{sg_addr(c, &sts[i]), 1},
		};

		hdrs[i] = (struct virtio_blk_outhdr){htole32(VIRTIO_BLK_T_OUT), 0, htole64(sector)};
		blk_test_fill(bufs + i * 4096, 4096, 30, sector * 512);
		sts[i] = 0xee;
		CHECK_EQ(virtq_drv_add_sgs(vq, sg, 2, 1, &seen[i]), 0);
		model_write(c, sector * 512, bufs + i * 4096, 4096);
		count(c, BLK_STAT_WRITE, 8);
	}
	CHECK_EQ(vu_fe_kick(c->fe, 1) < 0, 0);
	while (got < N) {
		uint32_t len;
		bool *t = virtq_drv_get_buf(vq, &len);

		if (!t) {
			if (virtq_drv_enable_cb(vq) && vu_fe_wait_call(c->fe, 1, 5000) != 1)
				FAIL("burst: %d of %d completed, then silence", got, N);
			continue;
		}
		CHECK(t >= seen && t < seen + N && !*t);
		*t = true;
		CHECK_EQ(len, 1);
		CHECK_EQ(sts[t - seen], VIRTIO_BLK_S_OK);
		got++;
	}
	check_read(c, 1, 5000, N * 4096 > DATA_BYTES ? DATA_BYTES : N * 4096);
}

/* ---- runs ------------------------------------------------------------------- */

static void new_image(struct ctx *c, unsigned int seed)
{
	snprintf(c->img, sizeof(c->img), "%s/vhostd-blkdev-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/var/tmp");
	c->img_fd = mkstemp(c->img);
	CHECK(c->img_fd >= 0);
	CHECK_EQ(ftruncate(c->img_fd, IMG_BYTES), 0);
	c->model = calloc(1, IMG_BYTES);
	CHECK(c->model);
	/* Some data everywhere except the first megabyte (sparse). */
	blk_test_fill(c->model + (1u << 20), IMG_BYTES - (1u << 20), seed, 1u << 20);
	CHECK_EQ(pwrite(c->img_fd, c->model + (1u << 20), IMG_BYTES - (1u << 20), 1u << 20),
		 (ssize_t)(IMG_BYTES - (1u << 20)));
	memset(c->ios, 0, sizeof(c->ios));
	memset(c->sectors, 0, sizeof(c->sectors));
}

static void drop_image(struct ctx *c)
{
	close(c->img_fd);
	unlink(c->img);
	free(c->model);
}

static void run_main(bool packed, const char *cache)
{
	struct ctx c = {0};
	char extra[64];

	printf("main: %s ring, cache=%s\n", packed ? "packed" : "split", cache);
	new_image(&c, 1);
	/* cache=none also runs without spinning: the sleep path right away. */
	snprintf(extra, sizeof(extra), ",num-queues=2,cache=%s%s", cache,
		 strcmp(cache, "none") ? "" : ",poll-us=0");
	dev_start(&c, extra, packed, 0);
	CHECK(blk_dev_connected(c.dev));
	CHECK_EQ(vu_fe_num_queues(c.fe), 2);
	test_features_config(&c, false);
	test_get_id(&c);
	test_read_write(&c);
	test_bad_rw(&c);
	test_flush(&c);
	test_discard_write_zeroes(&c);
	test_writeback_toggle(&c);
	test_burst(&c);
	check_stats(&c);
	dev_stop(&c);
	check_image(&c);
	drop_image(&c);
}

/*
 * backend=null: the same requests as on an image, but reads must return
 * zeroes whatever was written (check_read fills the buffer with 0xa5
 * first, so a read that skipped the memset is caught) and every request
 * succeeds and is counted.
 */
static void run_null(bool packed)
{
	struct virtio_blk_discard_write_zeroes r[2] = {{64, 8, 0}, {1024, 16, 0}};
	struct ctx c = {.null = true};

	printf("null back-end: %s ring\n", packed ? "packed" : "split");
	c.model = calloc(1, IMG_BYTES);
	CHECK(c.model);
	dev_start(&c, ",num-queues=2", packed, 0);
	test_features_config(&c, false);
	test_get_id(&c);
	test_read_write(&c);
	test_bad_rw(&c);
	test_flush(&c);
	CHECK_EQ(dwz_req(&c, VIRTIO_BLK_T_DISCARD, r, 2, sizeof(r)), VIRTIO_BLK_S_OK);
	count(&c, BLK_STAT_DISCARD, 24);
	r[1].flags = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
	CHECK_EQ(dwz_req(&c, VIRTIO_BLK_T_WRITE_ZEROES, r, 2, sizeof(r)), VIRTIO_BLK_S_OK);
	count(&c, BLK_STAT_WRITE, 24);
	check_read(&c, 0, 1024, 8192);
	test_burst(&c);
	check_stats(&c);
	dev_stop(&c);
	free(c.model);
}

static void run_readonly(bool packed)
{
	struct ctx c = {0};
	struct virtio_blk_discard_write_zeroes r = {1024, 8, 0};
	uint32_t used;

	printf("read-only: %s ring\n", packed ? "packed" : "split");
	new_image(&c, 2);
	dev_start(&c, ",readonly=on", packed, 0);
	test_features_config(&c, true);
	check_read(&c, 0, 2040, 8192);
	CHECK_EQ(do_write(&c, 0, 2048, 4096, 40), VIRTIO_BLK_S_IOERR);
	CHECK_EQ(do_write(&c, 0, 10, 512, 40), VIRTIO_BLK_S_IOERR);
	CHECK_EQ(dwz_req(&c, VIRTIO_BLK_T_DISCARD, &r, 1, 16), VIRTIO_BLK_S_IOERR);
	CHECK_EQ(dwz_req(&c, VIRTIO_BLK_T_WRITE_ZEROES, &r, 1, 16), VIRTIO_BLK_S_IOERR);
	CHECK_EQ(blk_req(&c, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, true, &used), VIRTIO_BLK_S_OK);
	count(&c, BLK_STAT_FLUSH, 0);
	test_get_id(&c);
	check_stats(&c);
	dev_stop(&c);
	check_image(&c);
	drop_image(&c);
}

/*
 * Chains no status byte can answer: the device goes broken (NEEDS_RESET,
 * one log line) and stops serving; nothing is written and nothing crashes.
 */
static void run_hostile(int variant)
{
	struct ctx c = {0};
	struct virtq_sg sg[2];
	struct virtq_drv *vq;
	uint32_t len;

	printf("hostile chain %d\n", variant);
	new_image(&c, 3);
	dev_start(&c, "", false, 1);
	vq = vu_fe_queue(c.fe, 0);
	set_hdr(&c, VIRTIO_BLK_T_OUT, 0);
	blk_test_fill(c.data, 512, 50, 0);
	switch (variant) {
	case 0: /* no writable byte at all: nowhere to put a status */
		sg[0] = (struct virtq_sg){sg_addr(&c, c.hdr), 16};
		sg[1] = (struct virtq_sg){sg_addr(&c, c.data), 512};
		CHECK_EQ(virtq_drv_add_sgs(vq, sg, 2, 0, &c), 0);
		break;
	case 1: /* a header shorter than 16 bytes */
		sg[0] = (struct virtq_sg){sg_addr(&c, c.hdr), 8};
		sg[1] = (struct virtq_sg){sg_addr(&c, c.status), 1};
		CHECK_EQ(virtq_drv_add_sgs(vq, sg, 1, 1, &c), 0);
		break;
	default: /* nothing readable: no header at all */
		sg[0] = (struct virtq_sg){sg_addr(&c, c.data), 513};
		CHECK_EQ(virtq_drv_add_sgs(vq, sg, 0, 1, &c), 0);
		break;
	}
	CHECK_EQ(vu_fe_kick(c.fe, 0) < 0, 0);
	/* The device may or may not return the chain (len 0); it must live on. */
	vu_fe_wait_call(c.fe, 0, 300);
	if (virtq_drv_get_buf(vq, &len))
		CHECK_EQ(len, 0);
	dev_stop(&c);
	check_image(&c);
	drop_image(&c);
}

/*
 * Tear the device down (the daemon's SIGTERM path) with requests in
 * flight: whatever was popped completes and is published; what completed
 * is on disk.
 */
static void run_teardown(void)
{
	enum { N = 32 };
	struct ctx c = {0};
	struct virtio_blk_outhdr *hdrs;
	uint8_t *sts, *bufs;
	struct virtq_drv *vq;
	bool seen[N] = {false};
	uint32_t len;
	bool *t;
	int got = 0;

	printf("teardown with requests in flight\n");
	new_image(&c, 4);
	dev_start(&c, "", false, 1);
	vq = vu_fe_queue(c.fe, 0);
	hdrs = vu_fe_alloc(c.fe, N * sizeof(*hdrs), 16);
	sts = vu_fe_alloc(c.fe, N, 1);
	bufs = vu_fe_alloc(c.fe, (size_t)N * 65536, 4096);
	CHECK(hdrs && sts && bufs);
	for (int i = 0; i < N; i++) {
		uint64_t sector = (uint64_t)i * 128;
		struct virtq_sg sg[3] = {
			{sg_addr(&c, &hdrs[i]), 16},
			{sg_addr(&c, bufs + (size_t)i * 65536), 65536},
			{sg_addr(&c, &sts[i]), 1},
		};

		hdrs[i] = (struct virtio_blk_outhdr){htole32(VIRTIO_BLK_T_OUT), 0, htole64(sector)};
		blk_test_fill(bufs + (size_t)i * 65536, 65536, 60, sector * 512);
		sts[i] = 0xee;
		CHECK_EQ(virtq_drv_add_sgs(vq, sg, 2, 1, &seen[i]), 0);
	}
	CHECK_EQ(vu_fe_kick(c.fe, 0) < 0, 0);
	loop_stop(&c);
	blk_dev_free(c.dev);
	c.dev = NULL;
	while ((t = virtq_drv_get_buf(vq, &len))) {
		int i = (int)(t - seen);

		CHECK(i >= 0 && i < N && !*t);
		*t = true;
		CHECK_EQ(sts[i], VIRTIO_BLK_S_OK);
		memcpy(c.model + (size_t)i * 65536, bufs + (size_t)i * 65536, 65536);
		got++;
	}
	for (int i = 0; i < N; i++)
		CHECK(seen[i] || sts[i] == 0xee);
	printf("  %d of %d completed before the device went away\n", got, N);
	vu_fe_disconnect(c.fe);
	evloop_free(c.loop);
	unlink(c.sock);
	check_image(&c);
	drop_image(&c);
}

int main(void)
{
	log_set_level(LOG_LVL_WARN);
	run_main(false, "writeback");
	run_main(true, "writeback");
	run_main(false, "none");
	run_null(false);
	run_null(true);
	run_readonly(false);
	run_readonly(true);
	for (int v = 0; v < 3; v++)
		run_hostile(v);
	run_teardown();
	printf("ok\n");
	return 0;
}
