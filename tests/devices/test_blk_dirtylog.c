// SPDX-License-Identifier: MIT
/*
 * test_blk_dirtylog.c - dirty-page logging for live migration, checked bit
 * by bit: a virtio-blk device driven by our front-end (frontend.h) as QEMU
 * drives a back-end during a migration.  The front-end offers LOG_ALL and
 * LOG_SHMFD, hands the device a log in a memfd (at a non-zero offset),
 * turns logging on (SET_FEATURES with VHOST_F_LOG_ALL, SET_VRING_ADDR with
 * VHOST_VRING_F_LOG) and runs requests whose buffers each sit on pages of
 * their own.  After each request the log must hold exactly the pages the
 * device wrote: a read's data pages, the status byte's page and the page of
 * the ring's used part (split: the used ring; packed: the descriptor ring
 * and device event area), and never the page of the request header, which
 * the device only reads.  With logging off (before, after, and with the
 * VHOSTD_TEST_BREAK_DIRTY_LOG switch) no bit may be set.  Split and packed
 * rings; a second queue logs too.  Last, the front-end truncates its log
 * file: the device breaks, the process lives.
 */
#include <endian.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>

#include "blk_test.h"
#include "common/evloop.h"
#include "common/log.h"
#include "devices/blk.h"
#include "devices/virtio_blk.h"
#include "vhost-user/frontend.h"
#include "vhost-user/protocol.h"
#include "virtq/ring.h"

#define IMG_SECTORS 2048u /* 1 MiB */
#define QSIZE	    64
#define MEM_SIZE    (8u << 20)
#define PAGE	    4096u
#define NPAGES	    ((GPA_BASE + MEM_SIZE) / PAGE)
#define LOG_BYTES   (NPAGES / 8)
#define LOG_OFFSET  4096u /* the log starts one page into its file */
#define DATA_PAGES  3
#define GPA_BASE    (1u << 20) /* guest memory from 1 MiB up, as in a VM */

struct ctx {
	struct evloop *loop;
	pthread_t loop_thread;
	struct blk_dev *dev;
	struct vu_fe *fe;
	char img[256];
	char sock[108];
	int img_fd;
	int log_fd;
	uint8_t *log; /* our view of the bitmap */
	struct virtio_blk_outhdr *hdr;
	uint8_t *status;
	uint8_t *data;
	bool packed;
};

static void *loop_main(void *arg)
{
	evloop_run(arg);
	return NULL;
}

static void dev_start(struct ctx *c, bool packed)
{
	static int serial;
	struct blk_options opts;
	char spec[512], err[256];
	struct vu_fe_config fcfg;
	uint64_t want;

	c->packed = packed;
	snprintf(c->sock, sizeof(c->sock), "/tmp/vhostd-dlog-%d-%d.sock", (int)getpid(), serial);
	unlink(c->sock);
	snprintf(spec, sizeof(spec), "id=dl%d,path=%s,socket=%s,queue-size=%d,num-queues=2",
		 serial++, c->img, c->sock, QSIZE);
	if (blk_options_parse(spec, &opts, err, sizeof(err)))
		FAIL("options: %s", err);
	c->loop = evloop_new();
	CHECK(c->loop);
	c->dev = blk_dev_new(&opts, &vu_evloop_watch_ops, c->loop, err, sizeof(err));
	if (!c->dev)
		FAIL("blk_dev_new: %s", err);
	CHECK_EQ(pthread_create(&c->loop_thread, NULL, loop_main, c->loop), 0);

	want = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_RING_F_EVENT_IDX |
	       1ull << VIRTIO_RING_F_INDIRECT_DESC | 1ull << VHOST_F_LOG_ALL;
	if (packed)
		want |= 1ull << VIRTIO_F_RING_PACKED;
	fcfg = (struct vu_fe_config){
		.socket_path = c->sock,
		.mem_size = MEM_SIZE,
		.num_queues = 2,
		.queue_size = QSIZE,
		.gpa_base = GPA_BASE,
		/* A running guest: LOG_ALL comes later, with the migration. */
		.features = want & ~(1ull << VHOST_F_LOG_ALL),
	};
	c->fe = vu_fe_connect(&fcfg);
	if (!c->fe)
		FAIL("vu_fe_connect: %s", strerror(errno));
	/* Each on pages of its own, so every bit names one of them. */
	c->hdr = vu_fe_alloc(c->fe, PAGE, PAGE);
	c->status = vu_fe_alloc(c->fe, PAGE, PAGE);
	c->data = vu_fe_alloc(c->fe, DATA_PAGES * PAGE, PAGE);
	CHECK(c->hdr && c->status && c->data);
	/* Everything we gave the device lies below MEM_SIZE: the log covers it. */
	CHECK(vu_fe_addr(c->fe, c->data) + DATA_PAGES * PAGE <= GPA_BASE + MEM_SIZE);
}

static void dev_stop(struct ctx *c)
{
	vu_fe_disconnect(c->fe);
	evloop_stop(c->loop);
	pthread_join(c->loop_thread, NULL);
	blk_dev_free(c->dev);
	evloop_free(c->loop);
	unlink(c->sock);
}

static bool needs_reset(struct ctx *c)
{
	uint8_t status;

	CHECK_EQ(vu_fe_get_status(c->fe, &status), 0);
	return status & VIRTIO_STATUS_NEEDS_RESET;
}

/*
 * Run one request: header | data (writable for a read) | status.  Its
 * status byte, or -1 if @may_break and the device broke (NEEDS_RESET)
 * without completing it.
 */
static int blk_req_or_break(struct ctx *c, unsigned int q, uint32_t type, uint64_t sector,
			    uint32_t len, bool may_break)
{
	struct virtq_drv *vq = vu_fe_queue(c->fe, q);
	struct virtq_sg sg[3] = {
		{vu_fe_addr(c->fe, c->hdr), sizeof(*c->hdr)},
		{vu_fe_addr(c->fe, c->data), len},
		{vu_fe_addr(c->fe, c->status), 1},
	};
	bool in = type == VIRTIO_BLK_T_IN;
	static int token;
	uint32_t used;

	c->hdr->type = htole32(type);
	c->hdr->ioprio = 0;
	c->hdr->sector = htole64(sector);
	*c->status = 0xee;
	CHECK_EQ(virtq_drv_add_sgs(vq, sg, in ? 1 : 2, in ? 2 : 1, &token), 0);
	CHECK_EQ(vu_fe_kick(c->fe, q) < 0, 0);
	for (unsigned int waited = 0;;) {
		void *t = virtq_drv_get_buf(vq, &used);

		if (t) {
			CHECK(t == &token);
			break;
		}
		if (!virtq_drv_enable_cb(vq))
			continue;
		if (vu_fe_wait_call(c->fe, q, 100) == 1)
			continue;
		if (may_break && needs_reset(c))
			return -1;
		if ((waited += 100) >= 5000)
			FAIL("no completion within 5 s");
	}
	return *c->status;
}

static uint8_t blk_req(struct ctx *c, unsigned int q, uint32_t type, uint64_t sector, uint32_t len)
{
	return (uint8_t)blk_req_or_break(c, q, type, sector, len, false);
}

static bool log_bit(const struct ctx *c, uint64_t page)
{
	return __atomic_load_n(&c->log[page / 8], __ATOMIC_ACQUIRE) >> (page % 8) & 1;
}

static void log_clear(struct ctx *c)
{
	memset(c->log, 0, LOG_BYTES);
}

static unsigned int log_count(const struct ctx *c)
{
	unsigned int n = 0;

	for (uint64_t p = 0; p < NPAGES; p++)
		n += log_bit(c, p);
	return n;
}

static uint64_t page_of(const struct ctx *c, const void *p)
{
	return vu_fe_addr(c->fe, p) / PAGE;
}

/* Set @want[] for every page of device-visible [addr, addr + len). */
static void want_range(bool *want, uint64_t addr, uint64_t len)
{
	for (uint64_t p = addr / PAGE; p <= (addr + len - 1) / PAGE; p++)
		want[p] = true;
}

/*
 * The pages of queue @q's ring the device writes: split, the used ring
 * (flags, entries, idx, avail_event); packed, the descriptor ring (used
 * elements) and the device event area.
 */
static void want_ring(const struct ctx *c, unsigned int q, bool *want)
{
	struct virtq_drv_addrs a;

	virtq_drv_get_addrs(vu_fe_queue(c->fe, q), &a);
	if (c->packed) {
		want_range(want, a.desc, QSIZE * sizeof(struct vring_packed_desc));
		want_range(want, a.device_area, sizeof(struct vring_packed_desc_event));
	} else {
		want_range(want, a.device_area, vring_used_size(QSIZE));
	}
}

/*
 * The log holds every page in @want and no page the device never writes.
 * While @logging, the pages of every queue's ring may be set too: a queue
 * thread that went idle after an earlier request (or restarted when
 * logging began) moves its event index whenever it gets to run, which may
 * be after our log_clear().  Those are device writes, logged as they must be.
 */
static void check_log(const struct ctx *c, const bool *want, bool logging, const char *what)
{
	bool may[NPAGES] = {0};

	if (logging) {
		want_ring(c, 0, may);
		want_ring(c, 1, may);
	}
	for (uint64_t p = 0; p < NPAGES; p++) {
		if (log_bit(c, p) == want[p] || (!want[p] && may[p]))
			continue;
		FAIL("%s (%s): page %#llx is %s in the log", what, c->packed ? "packed" : "split",
		     (unsigned long long)p, want[p] ? "missing" : "wrongly set");
	}
}

static void map_log(struct ctx *c)
{
	void *p;

	c->log_fd = memfd_create("vhostd-dirty-log", MFD_CLOEXEC);
	CHECK(c->log_fd >= 0);
	CHECK_EQ(ftruncate(c->log_fd, LOG_OFFSET + LOG_BYTES), 0);
	p = mmap(NULL, LOG_OFFSET + LOG_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, c->log_fd, 0);
	CHECK(p != MAP_FAILED);
	c->log = (uint8_t *)p + LOG_OFFSET;
}

static void unmap_log(struct ctx *c)
{
	munmap(c->log - LOG_OFFSET, LOG_OFFSET + LOG_BYTES);
	close(c->log_fd);
}

static void run(bool packed, bool broken_switch)
{
	struct ctx c = {0};
	bool want[NPAGES];
	uint8_t expect[DATA_PAGES * PAGE];

	c.img_fd = blk_test_image(c.img, sizeof(c.img), (off_t)IMG_SECTORS * 512);
	{
		uint8_t *buf = malloc((size_t)IMG_SECTORS * 512);

		CHECK(buf);
		blk_test_fill(buf, (size_t)IMG_SECTORS * 512, 5, 0);
		CHECK_EQ(pwrite(c.img_fd, buf, (size_t)IMG_SECTORS * 512, 0),
			 (ssize_t)IMG_SECTORS * 512);
		free(buf);
	}
	if (broken_switch)
		setenv("VHOSTD_TEST_BREAK_DIRTY_LOG", "1", 1);
	dev_start(&c, packed);
	unsetenv("VHOSTD_TEST_BREAK_DIRTY_LOG");
	map_log(&c);

	/* A log, but LOG_ALL not negotiated yet: nothing is logged. */
	CHECK_EQ(vu_fe_set_log_base(c.fe, c.log_fd, LOG_BYTES, LOG_OFFSET), 0);
	CHECK_EQ(blk_req(&c, 0, VIRTIO_BLK_T_IN, 8, DATA_PAGES * PAGE), VIRTIO_BLK_S_OK);
	CHECK_EQ(log_count(&c), 0u);

	/* The migration starts. */
	CHECK_EQ(vu_fe_set_log_all(c.fe, true), 0);
	/* Restarting the rings under logging may have logged their event words. */
	log_clear(&c);
	memset(c.data, 0, DATA_PAGES * PAGE);
	CHECK_EQ(blk_req(&c, 0, VIRTIO_BLK_T_IN, 16, DATA_PAGES * PAGE), VIRTIO_BLK_S_OK);
	blk_test_fill(expect, sizeof(expect), 5, 16 * 512);
	CHECK(!memcmp(c.data, expect, sizeof(expect)));
	memset(want, 0, sizeof(want));
	if (!broken_switch) {
		for (unsigned int i = 0; i < DATA_PAGES; i++)
			want[page_of(&c, c.data) + i] = true;
		want[page_of(&c, c.status)] = true;
		want_ring(&c, 0, want);
	}
	CHECK(!want[page_of(&c, c.hdr)]);
	check_log(&c, want, !broken_switch, "read on queue 0");

	/* A write: only the status byte and the ring are written by the device. */
	log_clear(&c);
	CHECK_EQ(blk_req(&c, 1, VIRTIO_BLK_T_OUT, 64, 2 * PAGE), VIRTIO_BLK_S_OK);
	memset(want, 0, sizeof(want));
	if (!broken_switch) {
		want[page_of(&c, c.status)] = true;
		want_ring(&c, 1, want);
	}
	check_log(&c, want, !broken_switch, "write on queue 1");

	/* A failed read (beyond the capacity): its status page is logged. */
	log_clear(&c);
	CHECK_EQ(blk_req(&c, 0, VIRTIO_BLK_T_IN, IMG_SECTORS, PAGE), VIRTIO_BLK_S_IOERR);
	CHECK(broken_switch || log_bit(&c, page_of(&c, c.status)));

	/* A new, bigger log replaces the old one (QEMU resizes it). */
	unmap_log(&c);
	map_log(&c);
	CHECK_EQ(vu_fe_set_log_base(c.fe, c.log_fd, LOG_BYTES, LOG_OFFSET), 0);
	CHECK_EQ(blk_req(&c, 1, VIRTIO_BLK_T_IN, 0, PAGE), VIRTIO_BLK_S_OK);
	CHECK_EQ(log_bit(&c, page_of(&c, c.data)), !broken_switch);
	CHECK_EQ(log_bit(&c, page_of(&c, c.data) + 1), false);

	/* The migration is over (or cancelled): no more logging. */
	CHECK_EQ(vu_fe_set_log_all(c.fe, false), 0);
	log_clear(&c);
	CHECK_EQ(blk_req(&c, 0, VIRTIO_BLK_T_IN, 24, DATA_PAGES * PAGE), VIRTIO_BLK_S_OK);
	CHECK_EQ(blk_req(&c, 1, VIRTIO_BLK_T_OUT, 24, PAGE), VIRTIO_BLK_S_OK);
	CHECK_EQ(log_count(&c), 0u);

	/*
	 * A front-end that shrinks its log file under us: the first bit we
	 * set there would raise SIGBUS.  The guard turns the page into a zero
	 * page and the device breaks (NEEDS_RESET); the process lives.  The
	 * first bit may be the request's own (it then completes) or the
	 * event index of a ring that restarted with logging on and ran only
	 * after the truncation (then nothing completes on the broken device).
	 */
	if (!broken_switch) {
		int status;

		CHECK_EQ(vu_fe_set_log_all(c.fe, true), 0);
		CHECK(!needs_reset(&c));
		CHECK_EQ(ftruncate(c.log_fd, 0), 0);
		status = blk_req_or_break(&c, 0, VIRTIO_BLK_T_IN, 0, PAGE, true);
		CHECK(status == -1 || status == VIRTIO_BLK_S_OK);
		CHECK(needs_reset(&c));
	}

	dev_stop(&c);
	unmap_log(&c);
	close(c.img_fd);
	unlink(c.img);
}

int main(void)
{
	log_set_level(LOG_LVL_ERROR);
	run(false, false);
	run(true, false);
	run(false, true);
	printf("ok\n");
	return 0;
}
