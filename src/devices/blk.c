// SPDX-License-Identifier: MIT
/*
 * blk.c - the virtio-blk device model (virtio 1.2, 5.2) over vhost-user.
 *
 * Datapath.  The engine (engine.h) runs each started queue on one of its
 * I/O threads: it waits for kicks, pops chains into request slots indexed
 * by descriptor head, and publishes completions in batches (one flush and
 * at most one interrupt per 16 chains).  This file turns each chain into one back-end
 * operation (struct blk_io) on the back-end queue that lives on the same
 * thread's io_uring, and completes it when the back-end reports it.  A slot
 * is a struct blk_req: the engine's head, the back-end operation and the
 * copied discard ranges (the engine keeps its iovecs): nothing is
 * allocated per request.
 *
 * Trust.  The driver is untrusted.  The ring code (virtq.h) checks chains;
 * this file checks requests.  The 16-byte header and the discard ranges are
 * copied out of guest memory once, then validated, then only the copies are
 * used (a guest that rewrites the header while we look at it gets nothing).
 * Every access is range-checked against the capacity with overflow-safe
 * arithmetic before it reaches the image, so nothing outside the image is
 * ever read or written.  A chain too malformed to carry a status byte marks
 * the device broken (NEEDS_RESET) with one log line; everything else gets
 * IOERR or UNSUPP as 5.2.6 says.
 *
 * Statistics follow /proc/diskstats (stats.c): each queue thread owns its
 * counters, requests are timed from their pop to their completion, and
 * requests refused before reaching the disk (bad ranges, UNSUPP) and
 * GET_ID are not counted, as the kernel counts only what it issued.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/backend.h"
#include "blk.h"
#include "common/kvopts.h"
#include "common/log.h"
#include "common/util.h"
#include "engine/devopts.h"
#include "engine/engine.h"
#include "stats.h"
#include "virtio_blk.h"

#define BLK_DEFAULT_QUEUE_SIZE 256
#define BLK_MIN_QUEUE_SIZE     4
#define BLK_MAX_QUEUE_SIZE     1024 /* QEMU's VIRTQUEUE_MAX_SIZE */
/*
 * seg_max is queue_size - 2 (header and status: a chain must fit the ring
 * without indirect descriptors), capped so that a slot's iovec array stays
 * at 4 KiB.
 */
#define BLK_MAX_SEG_MAX 254
/* Ranges per DISCARD / WRITE_ZEROES request and sectors per range. */
#define BLK_MAX_DWZ_SEG	    16
#define BLK_MAX_DWZ_SECTORS (1u << 22) /* 2 GiB */
/*
 * Spin on an empty ring this long before sleeping (poll-us=): a little
 * more than it takes to wake an idle CPU and have the driver answer our
 * last interrupt, so a busy guest keeps us awake (QEMU's IOThreads poll
 * 32 us by default).  The engine spins per thread and backs off.
 */
#define BLK_DEFAULT_POLL_US 50
/* delay-ms= at most an hour: as good as a disk that never answers. */
#define BLK_MAX_DELAY_MS 3600000

/* One copied, validated range of a DISCARD / WRITE_ZEROES request. */
struct blk_range {
	uint64_t sector;
	uint32_t num_sectors;
};

/* A request slot (engine.h). */
struct blk_req {
	struct eng_req base;
	struct blk_io io;  /* the back-end operation */
	uint8_t *status;   /* the status byte: last writable byte */
	uint32_t type;	   /* copied from the header */
	uint32_t used_len; /* bytes written to writable buffers on success */
	uint64_t sectors;  /* for the statistics */
	uint64_t start_ns;
	int8_t stat_dir; /* enum blk_stat_dir, or -1: not counted */
	uint8_t nr_ranges;
	uint8_t cur_range;
	struct blk_range ranges[BLK_MAX_DWZ_SEG];
};

struct blk_queue {
	struct blk_dev *dev;
	unsigned int index;
	char name[48]; /* "id:qN" for log lines */
	/* While started; touched only by the queue's I/O thread in between. */
	struct eng_queue *eq;
	struct blk_backend_queue *bbq;
	unsigned int num; /* ring size while started */
	bool io_error_logged;
	struct eng_queue_counters counters; /* kicks, notifications: across restarts */
	/*
	 * Its stop was abandoned (a stalled back-end): the engine's orphan
	 * still uses bbq and this struct until its last request completes,
	 * when its detach clears this.  No restart, no free until then.
	 */
	atomic_bool orphaned;
	/* Started and not stopped or abandoned: the loop's view (eq may be an orphan's). */
	bool running;
};

struct blk_dev {
	struct blk_options opts;
	struct blk_backend *be;
	const struct blk_backend_ops *bops;
	struct blk_backend_info info;
	uint64_t capacity; /* 512-byte sectors */
	uint32_t seg_max;
	struct vu_dev *vu;

	/* Set by the vhost-user thread, read by queue threads. */
	_Atomic uint64_t features; /* negotiated */
	atomic_uchar writeback;	   /* config space "writeback" */

	struct blk_dev_stats stats;
	struct blk_queue *queues; /* opts.num_queues */
};

/* ---- options ------------------------------------------------------------- */

enum {
	OPT_ID = 1 << 0,
	OPT_PATH = 1 << 1,
	OPT_SOCKET = 1 << 2,
	OPT_READONLY = 1 << 3,
	OPT_CLIENT = 1 << 4,
	OPT_NUM_QUEUES = 1 << 5,
	OPT_QUEUE_SIZE = 1 << 6,
	OPT_CACHE = 1 << 7,
	OPT_SERIAL = 1 << 8,
	OPT_BACKEND = 1 << 9,
	OPT_SIZE = 1 << 10,
	OPT_POLL_US = 1 << 11,
	OPT_IO_THREAD = 1 << 12,
	OPT_MAX_GUEST_MEMORY = 1 << 13,
	OPT_POOL = 1 << 14,
	OPT_IMAGE = 1 << 15,
	OPT_CONF = 1 << 16,
	OPT_USER = 1 << 17,
	OPT_DELAY_MS = 1 << 18,
	OPT_STOP_TIMEOUT_MS = 1 << 19,
	OPT_LOCKING = 1 << 20,
};

static const struct kv_key blk_keys[] = {
	{"id", OPT_ID},
	{"path", OPT_PATH},
	{"uri", OPT_PATH}, /* backend=nbd: the server, kept in path */
	{"socket", OPT_SOCKET},
	{"readonly", OPT_READONLY},
	{"client", OPT_CLIENT},
	{"num-queues", OPT_NUM_QUEUES},
	{"queue-size", OPT_QUEUE_SIZE},
	{"cache", OPT_CACHE},
	{"serial", OPT_SERIAL},
	{"backend", OPT_BACKEND},
	{"size", OPT_SIZE},
	{"poll-us", OPT_POLL_US},
	{"io-thread", OPT_IO_THREAD},
	{"max-guest-memory", OPT_MAX_GUEST_MEMORY},
	{"pool", OPT_POOL},
	{"image", OPT_IMAGE},
	{"conf", OPT_CONF},
	{"user", OPT_USER},
	{"delay-ms", OPT_DELAY_MS},
	{"stop-timeout-ms", OPT_STOP_TIMEOUT_MS},
	{"locking", OPT_LOCKING},
};

static int blk_option_set(void *ctx, unsigned int bit, const char *key, const char *v, char *err,
			  size_t err_len)
{
	struct blk_options *o = ctx;
	unsigned long n;
	int r;

	r = eng_dev_option_set(&ENG_DEV_FIELDS(o), key, v, err, err_len);
	if (r == -ENOENT)
		r = blk_disk_option_set(&BLK_DISK_FIELDS(o), key, v, err, err_len);
	if (r != -ENOENT)
		return r;
	switch (bit) {
	case OPT_SERIAL:
		if (kv_str(o->serial, sizeof(o->serial), v) || !kv_printable(o->serial))
			return kv_err(err, err_len, "serial: 1..%d printable ASCII characters",
				      VIRTIO_BLK_ID_BYTES);
		return 0;
	case OPT_NUM_QUEUES:
		r = kv_parse_uint(v, 1, VU_MAX_QUEUES, &n);
		if (r)
			return kv_err(err, err_len, "num-queues: 1..%d expected, not '%s'",
				      VU_MAX_QUEUES, v);
		o->num_queues = (unsigned int)n;
		return 0;
	case OPT_QUEUE_SIZE:
		/* Split rings need a power of two (2.7). */
		r = kv_parse_uint(v, BLK_MIN_QUEUE_SIZE, BLK_MAX_QUEUE_SIZE, &n);
		if (r || (n & (n - 1)))
			return kv_err(err, err_len,
				      "queue-size: a power of two in %d..%d expected, not '%s'",
				      BLK_MIN_QUEUE_SIZE, BLK_MAX_QUEUE_SIZE, v);
		o->queue_size = (uint16_t)n;
		return 0;
	case OPT_DELAY_MS:
		if (kv_parse_uint(v, 0, BLK_MAX_DELAY_MS, &n))
			return kv_err(err, err_len, "delay-ms: 0..%d expected, not '%s'",
				      BLK_MAX_DELAY_MS, v);
		o->delay_ms = (unsigned int)n;
		return 0;
	}
	return -EINVAL;
}

int blk_options_parse(const char *str, struct blk_options *opts, char *err, size_t err_len)
{
	unsigned int seen;
	int r;

	memset(opts, 0, sizeof(*opts));
	opts->num_queues = 1;
	opts->queue_size = BLK_DEFAULT_QUEUE_SIZE;
	opts->cache = BLK_CACHE_WRITEBACK;
	opts->poll_us = BLK_DEFAULT_POLL_US;
	opts->io_thread = -1;
	r = kv_parse(str, blk_keys, ARRAY_SIZE(blk_keys), blk_option_set, opts, &seen, err,
		     err_len);
	if (r)
		return r;

	if (!(seen & OPT_ID))
		return kv_err(err, err_len, "id= is required");
	r = blk_disk_options_check(&BLK_DISK_FIELDS(opts), seen & OPT_PATH, seen & OPT_SIZE, err,
				   err_len);
	if (r)
		return r;
	if ((seen & OPT_DELAY_MS) && opts->backend != BLK_BACKEND_NULL)
		return kv_err(err, err_len, "delay-ms= is only for backend=null");
	if (!(seen & OPT_SOCKET))
		return kv_err(err, err_len, "socket= is required");
	/* GET_ID answers with the id when no serial was given. */
	if (!(seen & OPT_SERIAL))
		snprintf(opts->serial, sizeof(opts->serial), "%.*s", VIRTIO_BLK_ID_BYTES, opts->id);
	return 0;
}

/* ---- statistics (stats.c) ------------------------------------------------ */

static void blk_stats_start(struct blk_queue *bq, struct blk_req *req, enum blk_stat_dir dir,
			    uint64_t sectors)
{
	req->stat_dir = (int8_t)dir;
	req->sectors = sectors;
	req->start_ns = eng_queue_now_ns(bq->eq);
	blk_stats_io_start(&bq->dev->stats, bq->index, req->start_ns);
}

static void blk_stats_done(struct blk_queue *bq, struct blk_req *req, bool ok)
{
	if (req->stat_dir < 0)
		return;
	blk_stats_io_done(&bq->dev->stats, bq->index, (enum blk_stat_dir)req->stat_dir,
			  req->sectors, ok, req->start_ns, eng_queue_now_ns(bq->eq));
	req->stat_dir = -1;
}

void blk_dev_get_stats(struct blk_dev *dev, struct blk_stats *st)
{
	blk_dev_stats_read(&dev->stats, st);
}

void blk_dev_get_lat_hist(struct blk_dev *dev, struct blk_lat_hist *h)
{
	blk_dev_stats_read_hist(&dev->stats, h);
}

void blk_dev_get_queue_counts(struct blk_dev *dev, unsigned int q, struct blk_queue_counts *c)
{
	struct eng_queue_counters *n = &dev->queues[q].counters;

	blk_dev_stats_read_queue(&dev->stats, q, &c->st);
	c->kicks = atomic_load_explicit(&n->kicks, memory_order_relaxed);
	c->notifications = atomic_load_explicit(&n->notifies, memory_order_relaxed);
}

/* ---- requests -------------------------------------------------------------- */

static bool blk_has_feature(const struct blk_dev *dev, unsigned int bit)
{
	return atomic_load_explicit(&dev->features, memory_order_relaxed) & (1ull << bit);
}

/*
 * Take the last byte of the writable buffers as the status byte (5.2.6:
 * "status" is the last field; it may share a buffer with the data) and
 * shorten @iov / @cnt so that only data remains.
 */
static uint8_t *iov_take_last_byte(struct iovec *iov, unsigned int *cnt)
{
	unsigned int i = *cnt;

	while (i && !iov[i - 1].iov_len)
		i--;
	if (!i)
		return NULL;
	i--;
	iov[i].iov_len--;
	*cnt = iov[i].iov_len ? i + 1 : i;
	return (uint8_t *)iov[i].iov_base + iov[i].iov_len;
}

/* Is [sector, sector + n) inside the disk?  No sum that can overflow. */
static bool blk_range_ok(const struct blk_dev *dev, uint64_t sector, uint64_t n)
{
	return sector <= dev->capacity && n <= dev->capacity - sector;
}

static void blk_req_complete(struct blk_queue *bq, struct blk_req *req, uint8_t status)
{
	/* A plain store to guest memory; virtq_flush() orders it before used->idx. */
	*req->status = status;
	eng_req_complete(bq->eq, &req->base, status == VIRTIO_BLK_S_OK ? req->used_len : 1);
}

/* Returned by the request handlers when the back-end has the request. */
#define BLK_REQ_QUEUED (-1)

static int blk_req_submit(struct blk_queue *bq, struct blk_req *req)
{
	int r = bq->dev->bops->prep(bq->bbq, &req->io);

	if (r < 0) {
		/* Only a bug gets here (depth is the ring size plus our two waits). */
		log_error("%s: cannot queue I/O: %s", bq->name, strerror(-r));
		blk_stats_done(bq, req, false);
		return VIRTIO_BLK_S_IOERR;
	}
	return BLK_REQ_QUEUED;
}

static uint8_t blk_writeflags(const struct blk_dev *dev)
{
	/* Writethrough (writeback == 0): every write is durable on completion. */
	return atomic_load_explicit(&dev->writeback, memory_order_relaxed) ? 0 : BLK_IO_F_FUA;
}

/*
 * IN / OUT: @data / @cnt are the data buffers alone (header and status
 * byte removed), @len bytes.  Returns a status, or BLK_REQ_QUEUED.
 */
static int blk_req_rw(struct blk_queue *bq, struct blk_req *req, uint64_t sector,
		      struct iovec *data, unsigned int cnt, size_t len, bool write)
{
	struct blk_dev *dev = bq->dev;

	/* 5.2.6.2: a read-only device fails writes and writes nothing. */
	if (write && dev->opts.readonly)
		return VIRTIO_BLK_S_IOERR;
	/* 5.2.6.1: data is a multiple of 512 bytes; refuse to guess otherwise. */
	if (len % VIRTIO_BLK_SECTOR_SIZE)
		return VIRTIO_BLK_S_IOERR;
	/* Beyond the end: IOERR, and nothing outside the image is touched. */
	if (!blk_range_ok(dev, sector, len >> VIRTIO_BLK_SECTOR_SHIFT))
		return VIRTIO_BLK_S_IOERR;
	if (!write)
		req->used_len = (uint32_t)len + 1;
	if (!len)
		return VIRTIO_BLK_S_OK;

	req->io = (struct blk_io){
		.op = write ? BLK_IO_WRITE : BLK_IO_READ,
		.flags = write ? blk_writeflags(dev) : 0,
		.iov = data,
		.iovcnt = cnt,
		.offset = sector << VIRTIO_BLK_SECTOR_SHIFT,
	};
	blk_stats_start(bq, req, write ? BLK_STAT_WRITE : BLK_STAT_READ,
			len >> VIRTIO_BLK_SECTOR_SHIFT);
	return blk_req_submit(bq, req);
}

static int blk_req_flush(struct blk_queue *bq, struct blk_req *req)
{
	req->io = (struct blk_io){.op = BLK_IO_FLUSH};
	blk_stats_start(bq, req, BLK_STAT_FLUSH, 0);
	return blk_req_submit(bq, req);
}

/* GET_ID: up to 20 bytes of serial, zero padded, no NUL when full (5.2.6). */
static int blk_req_get_id(struct blk_queue *bq, struct blk_req *req, struct iovec *data,
			  unsigned int cnt)
{
	char id[VIRTIO_BLK_ID_BYTES] = {0};
	size_t n;

	memcpy(id, bq->dev->opts.serial, strnlen(bq->dev->opts.serial, sizeof(id)));
	n = iov_from_buf(data, cnt, 0, id, sizeof(id));
	req->used_len = (uint32_t)n + 1;
	return VIRTIO_BLK_S_OK;
}

/* Point req->io at range @i of a DISCARD / WRITE_ZEROES request. */
static void blk_req_dwz_range(struct blk_req *req, unsigned int i, uint8_t flags)
{
	const struct blk_range *r = &req->ranges[i];

	req->io = (struct blk_io){
		.op = req->type == VIRTIO_BLK_T_DISCARD ? BLK_IO_DISCARD : BLK_IO_WRITE_ZEROES,
		.flags = flags,
		.offset = r->sector << VIRTIO_BLK_SECTOR_SHIFT,
		.len = (uint64_t)r->num_sectors << VIRTIO_BLK_SECTOR_SHIFT,
	};
}

/*
 * DISCARD / WRITE_ZEROES (5.2.6): the ranges are the readable bytes after
 * the header (@data / @cnt).  They are copied once and every one is
 * checked before any is carried out, so a request is never half done
 * because of a bad range.  Ranges then run one after another on the
 * request's single blk_io.
 */
static int blk_req_dwz(struct blk_queue *bq, struct blk_req *req, const struct iovec *data,
		       unsigned int cnt, size_t payload)
{
	struct virtio_blk_discard_write_zeroes raw[BLK_MAX_DWZ_SEG];
	struct blk_dev *dev = bq->dev;
	bool discard = req->type == VIRTIO_BLK_T_DISCARD;
	unsigned int n = (unsigned int)(payload / sizeof(raw[0]));
	uint8_t flags = 0;
	uint64_t total = 0;

	if (dev->opts.readonly)
		return VIRTIO_BLK_S_IOERR;
	/* More ranges than max_*_seg, or a torn one: a command we do not know. */
	if (!payload || payload % sizeof(raw[0]) || n > BLK_MAX_DWZ_SEG)
		return VIRTIO_BLK_S_UNSUPP;
	iov_to_buf(data, cnt, 0, raw, payload);

	for (unsigned int i = 0; i < n; i++) {
		uint64_t sector = le64toh(raw[i].sector);
		uint32_t num = le32toh(raw[i].num_sectors);
		uint32_t f = le32toh(raw[i].flags);

		/*
		 * 5.2.6.2: unknown flags are UNSUPP, and so is UNMAP on a
		 * discard.  Mixed UNMAP within one write-zeroes request is
		 * taken as UNMAP for all: allowed, since it only permits.
		 */
		if ((f & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) ||
		    (discard && (f & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)))
			return VIRTIO_BLK_S_UNSUPP;
		if (num > BLK_MAX_DWZ_SECTORS || !blk_range_ok(dev, sector, num))
			return VIRTIO_BLK_S_IOERR;
		if (f & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)
			flags |= BLK_IO_F_UNMAP;
		req->ranges[i].sector = sector;
		req->ranges[i].num_sectors = num;
		total += num;
	}

	/* Empty ranges need no I/O (fallocate would refuse a zero length). */
	req->nr_ranges = 0;
	for (unsigned int i = 0; i < n; i++) {
		if (req->ranges[i].num_sectors)
			req->ranges[req->nr_ranges++] = req->ranges[i];
	}
	if (!req->nr_ranges)
		return VIRTIO_BLK_S_OK;

	req->cur_range = 0;
	blk_req_dwz_range(req, 0, flags | blk_writeflags(dev));
	/* The kernel counts write-zeroes as writes (op_stat_group()). */
	blk_stats_start(bq, req, discard ? BLK_STAT_DISCARD : BLK_STAT_WRITE, total);
	return blk_req_submit(bq, req);
}

/* Header and status byte in place: dispatch on the copied type. */
static int blk_req_dispatch(struct blk_queue *bq, struct blk_req *req, uint64_t sector,
			    struct iovec *out_iov, unsigned int out_cnt, struct iovec *in_iov,
			    unsigned int in_cnt)
{
	const struct virtq_elem *e = &req->base.elem;
	size_t out_data = e->out_len - sizeof(struct virtio_blk_outhdr);
	size_t in_data = e->in_len - 1u;

	switch (req->type) {
	case VIRTIO_BLK_T_IN:
		return blk_req_rw(bq, req, sector, in_iov, in_cnt, in_data, false);
	case VIRTIO_BLK_T_OUT:
		return blk_req_rw(bq, req, sector, out_iov, out_cnt, out_data, true);
	case VIRTIO_BLK_T_FLUSH:
		return blk_req_flush(bq, req);
	case VIRTIO_BLK_T_GET_ID:
		return blk_req_get_id(bq, req, in_iov, in_cnt);
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		return blk_req_dwz(bq, req, out_iov, out_cnt, out_data);
	default:
		/* 5.2.6.2: anything else (GET_LIFETIME, SECURE_ERASE, ...) is UNSUPP. */
		return VIRTIO_BLK_S_UNSUPP;
	}
}

/* A freshly popped chain (engine.h start()): copy the header, check it, dispatch. */
static void blk_req_start(struct eng_queue *eq, struct eng_req *base)
{
	struct blk_queue *bq = eng_queue_priv(eq);
	struct blk_req *req = container_of(base, struct blk_req, base);
	struct virtq_elem *e = &base->elem;
	struct virtio_blk_outhdr hdr;
	struct iovec *in_iov = e->iov + e->out_num;
	unsigned int in_cnt = e->in_num;
	unsigned int out_cnt = e->out_num;
	struct iovec *out_iov;
	int st;

	req->stat_dir = -1;
	req->used_len = 1;

	/*
	 * No room for the header or no status byte: there is nothing to
	 * answer with.  A driver that does this is broken or hostile.
	 */
	if (e->out_len < sizeof(hdr) || e->in_len < 1) {
		char why[96];

		snprintf(why, sizeof(why), "request %u has %u readable / %u writable bytes", e->id,
			 e->out_len, e->in_len);
		eng_queue_halt(eq, why);
		/* Still filled once (virtq.h), so its map reference is dropped. */
		eng_req_complete(eq, base, 0);
		return;
	}

	/* Copy once; from here on only the copy is looked at. */
	iov_to_buf(e->iov, e->out_num, 0, &hdr, sizeof(hdr));
	req->type = le32toh(hdr.type);

	req->status = iov_take_last_byte(in_iov, &in_cnt);
	out_iov = iov_skip(e->iov, &out_cnt, sizeof(hdr));

	st = blk_req_dispatch(bq, req, le64toh(hdr.sector), out_iov, out_cnt, in_iov, in_cnt);
	if (st != BLK_REQ_QUEUED)
		blk_req_complete(bq, req, (uint8_t)st);
}

static void blk_req_io_done(struct blk_queue *bq, struct blk_req *req)
{
	int64_t res = req->io.res;

	if (res >= 0 && req->cur_range + 1 < req->nr_ranges &&
	    (req->type == VIRTIO_BLK_T_DISCARD || req->type == VIRTIO_BLK_T_WRITE_ZEROES)) {
		uint8_t flags = req->io.flags;

		blk_req_dwz_range(req, ++req->cur_range, flags);
		if (blk_req_submit(bq, req) != BLK_REQ_QUEUED)
			blk_req_complete(bq, req, VIRTIO_BLK_S_IOERR);
		return;
	}
	if (res < 0 && !bq->io_error_logged) {
		bq->io_error_logged = true;
		log_warn("%s: request type %u failed: %s (further errors on this queue are not "
			 "logged)",
			 bq->name, req->type, strerror((int)-res));
	}
	blk_stats_done(bq, req, res >= 0);
	blk_req_complete(bq, req, res < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK);
}

/* ---- the queue on its I/O thread (engine.h) ---------------------------------- */

static void blk_io_done(struct blk_io *io, void *arg)
{
	blk_req_io_done(arg, container_of(io, struct blk_req, io));
}

static void blk_queue_reap(struct eng_queue *eq)
{
	struct blk_queue *bq = eng_queue_priv(eq);

	bq->dev->bops->reap(bq->bbq, blk_io_done, bq);
}

static void blk_queue_wake(void *arg)
{
	eng_queue_wake(arg);
}

static int blk_queue_attach(struct eng_queue *eq, struct reactor *r)
{
	struct blk_queue *bq = eng_queue_priv(eq);
	struct blk_dev *dev = bq->dev;

	bq->eq = eq;
	bq->io_error_logged = false;
	/* Every ring entry in flight at once. */
	return dev->bops->queue_attach(dev->be, bq->num, r, blk_queue_wake, eq, &bq->bbq);
}

static void blk_queue_detach(struct eng_queue *eq)
{
	struct blk_queue *bq = eng_queue_priv(eq);

	bq->dev->bops->queue_free(bq->bbq);
	bq->bbq = NULL;
	/* An orphan's last touch of @bq: the loop may reuse or free it now. */
	atomic_store(&bq->orphaned, false);
}

static const struct eng_queue_ops blk_queue_ops = {
	.req_size = sizeof(struct blk_req),
	.attach = blk_queue_attach,
	.detach = blk_queue_detach,
	.start = blk_req_start,
	.reap = blk_queue_reap,
};

/* ---- vhost-user device ops --------------------------------------------------- */

static uint64_t blk_get_features(void *opaque)
{
	struct blk_dev *dev = opaque;
	uint64_t f = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_RING_F_INDIRECT_DESC |
		     1ull << VIRTIO_RING_F_EVENT_IDX | 1ull << VIRTIO_F_RING_PACKED |
		     1ull << VIRTIO_BLK_F_SEG_MAX | 1ull << VIRTIO_BLK_F_BLK_SIZE |
		     1ull << VIRTIO_BLK_F_TOPOLOGY | 1ull << VIRTIO_BLK_F_CONFIG_WCE |
		     1ull << VIRTIO_BLK_F_MQ;

	/* Only what the storage can do (an NBD server may lack any of them). */
	if (!dev->info.no_flush)
		f |= 1ull << VIRTIO_BLK_F_FLUSH;
	if (dev->opts.readonly)
		f |= 1ull << VIRTIO_BLK_F_RO;
	else if (!dev->info.no_discard)
		f |= 1ull << VIRTIO_BLK_F_DISCARD;
	if (!dev->opts.readonly && !dev->info.no_write_zeroes)
		f |= 1ull << VIRTIO_BLK_F_WRITE_ZEROES;
	return f;
}

static int blk_set_features(void *opaque, uint64_t features)
{
	struct blk_dev *dev = opaque;

	atomic_store(&dev->features, features);
	/*
	 * 5.2.5.2: with CONFIG_WCE but without FLUSH, writeback starts at 0;
	 * without either, the driver cannot flush, so writes must be durable
	 * on completion (writethrough): the same rule covers both.  With
	 * FLUSH the guest's last choice stands until a reset (set_status 0):
	 * a front-end that reconnects and renegotiates must not silently turn
	 * a writethrough disk back into a writeback one.
	 */
	if (!(features & (1ull << VIRTIO_BLK_F_FLUSH)))
		atomic_store(&dev->writeback, 0);
	return 0;
}

static uint64_t blk_get_protocol_features(void *opaque)
{
	/*
	 * VHOST_USER_PROTOCOL_F_CONFIG (9): GET_CONFIG / SET_CONFIG;
	 * VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD (12): a request is idempotent
	 * enough to be started again after a crash (a write repeated with the
	 * same data, a flush, a read), so the engine may track our rings.
	 */
	return 1ull << 9 | 1ull << 12;
}

static void blk_fill_config(const struct blk_dev *dev, struct virtio_blk_config *c)
{
	uint32_t lbs = dev->info.logical_block_size;
	uint32_t ratio = dev->info.physical_block_size / lbs;
	uint8_t exp = 0;

	while ((1u << exp) < ratio && exp < 31)
		exp++;
	memset(c, 0, sizeof(*c));
	c->capacity = htole64(dev->capacity);
	c->seg_max = htole32(dev->seg_max);
	c->blk_size = htole32(lbs);
	c->topology.physical_block_exp = exp;
	c->topology.alignment_offset = 0;
	c->topology.min_io_size = htole16((uint16_t)(ratio ? ratio : 1));
	c->topology.opt_io_size = htole32(0);
	c->writeback = atomic_load(&dev->writeback);
	c->num_queues = htole16((uint16_t)dev->opts.num_queues);
	if (!dev->opts.readonly) {
		c->max_discard_sectors = htole32(BLK_MAX_DWZ_SECTORS);
		c->max_discard_seg = htole32(BLK_MAX_DWZ_SEG);
		/*
		 * Hole punching works in physical blocks (partial ones are
		 * zeroed); a block device says what its discards work in.
		 */
		c->discard_sector_alignment =
			htole32((dev->info.discard_granularity ? dev->info.discard_granularity
							       : dev->info.physical_block_size) >>
				VIRTIO_BLK_SECTOR_SHIFT);
		c->max_write_zeroes_sectors = htole32(BLK_MAX_DWZ_SECTORS);
		c->max_write_zeroes_seg = htole32(BLK_MAX_DWZ_SEG);
		/* UNMAP punches a hole, so write zeroes may deallocate (5.2.6.2). */
		c->write_zeroes_may_unmap = 1;
	}
}

static int blk_get_config(void *opaque, uint8_t *buf, uint32_t len)
{
	struct virtio_blk_config c;

	blk_fill_config(opaque, &c);
	/* Fields we do not have (zoned, 1.2) read as zero, like reserved ones. */
	memset(buf, 0, len);
	memcpy(buf, &c, len < sizeof(c) ? len : sizeof(c));
	return (int)len;
}

/* Only "writeback" is writable (5.2.4), and only with CONFIG_WCE. */
static int blk_set_config(void *opaque, const uint8_t *buf, uint32_t offset, uint32_t len)
{
	struct blk_dev *dev = opaque;
	const uint32_t wb = offsetof(struct virtio_blk_config, writeback);

	if (offset > wb || len <= wb - offset)
		return 0; /* read-only fields: ignored, as QEMU's virtio-blk does */
	if (!blk_has_feature(dev, VIRTIO_BLK_F_CONFIG_WCE)) {
		log_warn("%s: writeback changed without CONFIG_WCE; ignored", dev->opts.id);
		return -EINVAL;
	}
	atomic_store(&dev->writeback, buf[wb - offset] ? 1 : 0);
	log_info("%s: guest switched the cache to %s", dev->opts.id,
		 buf[wb - offset] ? "writeback" : "writethrough");
	return 0;
}

static int blk_start_queue(void *opaque, struct vu_queue *q)
{
	struct blk_dev *dev = opaque;
	struct eng_queue_config cfg;
	struct blk_queue *bq;
	int r;

	if (q->index >= dev->opts.num_queues)
		return -EINVAL;
	bq = &dev->queues[q->index];
	if (bq->running)
		return -EBUSY;
	if (atomic_load(&bq->orphaned)) {
		log_error("%s: requests of an abandoned stop are still in the back-end", bq->name);
		return -EBUSY;
	}
	bq->num = q->vq.num;
	cfg = (struct eng_queue_config){
		.name = bq->name,
		.max_iov = dev->seg_max + 2,
		.poll_us = dev->opts.poll_us,
		.io_thread = dev->opts.io_thread,
		.priv = bq,
		.counters = &bq->counters,
	};
	r = eng_queue_start(q, &blk_queue_ops, &cfg, &bq->eq);
	if (r < 0) {
		bq->eq = NULL;
		log_error("%s: cannot start: %s", bq->name, strerror(-r));
		return r;
	}
	q->priv = bq;
	bq->running = true;
	log_debug("%s: started (%u entries, %s ring, I/O thread %d)", bq->name, bq->num,
		  blk_has_feature(dev, VIRTIO_F_RING_PACKED) ? "packed" : "split",
		  eng_queue_thread(bq->eq));
	return 0;
}

/*
 * Synchronous (backend.h): the engine stops popping, waits for everything
 * in flight, publishes it, and lets go of the queue before we return.
 */
static void blk_stop_queue(void *opaque, struct vu_queue *q)
{
	struct blk_dev *dev = opaque;
	struct blk_queue *bq;

	if (q->index >= dev->opts.num_queues)
		return;
	bq = &dev->queues[q->index];
	if (!bq->running)
		return;
	eng_queue_stop(bq->eq);
	bq->running = false;
	bq->eq = NULL;
	q->priv = NULL;
	log_debug("%s: stopped", bq->name);
}

/* On the I/O thread: the engine drained and detached the queue. */
static void blk_queue_stopped(void *arg)
{
	vu_queue_stopped(arg);
}

/* The same without waiting (backend.h): the loop serves others meanwhile. */
static void blk_stop_queue_begin(void *opaque, struct vu_queue *q)
{
	struct blk_dev *dev = opaque;
	struct blk_queue *bq = q->index < dev->opts.num_queues ? &dev->queues[q->index] : NULL;

	if (!bq || !bq->running) {
		vu_queue_stopped(q);
		return;
	}
	eng_queue_stop_async(bq->eq, blk_queue_stopped, q);
}

static void blk_stop_queue_end(void *opaque, struct vu_queue *q)
{
	struct blk_dev *dev = opaque;
	struct blk_queue *bq = q->index < dev->opts.num_queues ? &dev->queues[q->index] : NULL;

	if (!bq || !bq->running)
		return;
	eng_queue_stop_finish(bq->eq);
	bq->running = false;
	bq->eq = NULL;
	q->priv = NULL;
	log_debug("%s: stopped", bq->name);
}

/*
 * The back-end holds requests past the stop timeout: let the engine keep
 * them as an orphan, and this queue's slot with them (orphaned).
 */
static int blk_stop_queue_abandon(void *opaque, struct vu_queue *q)
{
	struct blk_dev *dev = opaque;
	struct blk_queue *bq = q->index < dev->opts.num_queues ? &dev->queues[q->index] : NULL;
	unsigned int left = 0;

	if (!bq || !bq->running)
		return 0;
	bq->running = false;
	q->priv = NULL;
	/* Before the orphan can exist: its detach clears it. */
	atomic_store(&bq->orphaned, true);
	/*
	 * bq->eq stays: the orphan's completions still go through it on its
	 * thread, until its detach; the next start (after that) sets it anew.
	 */
	if (!eng_queue_abandon(bq->eq, &left)) {
		bq->eq = NULL;
		atomic_store(&bq->orphaned, false);
	}
	return (int)left;
}

static int blk_set_call_fd(void *opaque, struct vu_queue *q, int fd)
{
	struct blk_dev *dev = opaque;
	struct blk_queue *bq = q->index < dev->opts.num_queues ? &dev->queues[q->index] : NULL;

	if (!bq || !bq->running)
		return -ENODEV;
	return eng_queue_set_call_fd(bq->eq, fd);
}

static void blk_set_status(void *opaque, uint8_t status)
{
	struct blk_dev *dev = opaque;

	log_debug("%s: status %#x", dev->opts.id, status);
	/* Device reset (2.1): config space back to its initial values. */
	if (!status)
		atomic_store(&dev->writeback, 1);
}

static const struct vu_device_ops blk_ops = {
	.get_features = blk_get_features,
	.set_features = blk_set_features,
	.get_protocol_features = blk_get_protocol_features,
	.get_config = blk_get_config,
	.set_config = blk_set_config,
	.start_queue = blk_start_queue,
	.stop_queue = blk_stop_queue,
	.stop_queue_begin = blk_stop_queue_begin,
	.stop_queue_end = blk_stop_queue_end,
	.stop_queue_abandon = blk_stop_queue_abandon,
	.set_call_fd = blk_set_call_fd,
	.set_status = blk_set_status,
};

/* ---- the device ---------------------------------------------------------- */

struct blk_dev *blk_dev_new(const struct blk_options *opts, const struct vu_watch_ops *watch,
			    void *loop, char *err, size_t err_len)
{
	struct blk_backend_config bcfg = {
		.path = opts->path,
		.size = opts->size,
		.delay_ms = opts->delay_ms,
		.readonly = opts->readonly,
		.direct = opts->cache == BLK_CACHE_NONE,
		.no_lock = opts->no_locking,
		.name = opts->id,
		.rbd_pool = opts->rbd.pool,
		.rbd_image = opts->rbd.image,
		.rbd_conf = opts->rbd.conf,
		.rbd_user = opts->rbd.user,
	};
	bool null = opts->backend == BLK_BACKEND_NULL;
	char where[300];
	const char *how;
	struct blk_dev *dev;

	if (!opts->num_queues || opts->num_queues > VU_MAX_QUEUES ||
	    opts->queue_size < BLK_MIN_QUEUE_SIZE || opts->queue_size > BLK_MAX_QUEUE_SIZE) {
		kv_err(err, err_len, "%s: bad num-queues or queue-size", opts->id);
		return NULL;
	}
	if (opts->io_thread >= 0 && (unsigned int)opts->io_thread >= eng_pool_threads()) {
		if (eng_pool_threads())
			kv_err(err, err_len, "%s: io-thread=%d, but there are only %u I/O threads",
			       opts->id, opts->io_thread, eng_pool_threads());
		else
			kv_err(err, err_len,
			       "%s: io-thread= needs a pool of I/O threads (--io-threads > 0)",
			       opts->id);
		return NULL;
	}
	dev = calloc(1, sizeof(*dev));
	if (!dev) {
		kv_err(err, err_len, "out of memory");
		return NULL;
	}
	dev->opts = *opts;
	dev->bops = blk_disk_backend_ops(opts->backend);
	if (dev->bops->open(&bcfg, &dev->be, err, err_len) < 0) {
		free(dev);
		return NULL;
	}
	dev->bops->get_info(dev->be, &dev->info);
	dev->capacity = dev->info.size >> VIRTIO_BLK_SECTOR_SHIFT;
	blk_disk_describe(opts->backend, opts->path, &opts->rbd, where, sizeof(where));
	if (!dev->capacity)
		log_warn("%s: %s is smaller than one sector", opts->id, where);
	dev->seg_max = opts->queue_size - 2u;
	if (dev->seg_max > BLK_MAX_SEG_MAX)
		dev->seg_max = BLK_MAX_SEG_MAX;
	atomic_init(&dev->features, 0);
	atomic_init(&dev->writeback, 1);
	dev->queues = calloc(opts->num_queues, sizeof(*dev->queues));
	if (!dev->queues || blk_dev_stats_init(&dev->stats, opts->num_queues)) {
		kv_err(err, err_len, "out of memory");
		goto fail;
	}
	for (unsigned int i = 0; i < opts->num_queues; i++) {
		struct blk_queue *bq = &dev->queues[i];

		bq->dev = dev;
		bq->index = i;
		snprintf(bq->name, sizeof(bq->name), "%s:q%u", opts->id, i);
	}

	dev->vu = eng_dev_vu_new(&ENG_DEV_FIELDS(&dev->opts), opts->num_queues, opts->queue_size,
				 &blk_ops, dev, watch, loop, err, err_len);
	if (!dev->vu)
		goto fail;
	if (null)
		how = "no storage";
	else if (opts->backend == BLK_BACKEND_NBD)
		how = "NBD";
	else if (opts->backend == BLK_BACKEND_RBD)
		how = dev->info.direct ? "librbd, no cache" : "librbd";
	else
		how = dev->info.direct ? "O_DIRECT" : "page cache";
	log_info("%s: %s, %" PRIu64 " sectors, %s%s, %u queue(s) of %u", opts->id, where,
		 dev->capacity, how, opts->readonly ? ", read-only" : "", opts->num_queues,
		 opts->queue_size);
	return dev;

fail:
	blk_dev_stats_destroy(&dev->stats);
	free(dev->queues);
	dev->bops->close(dev->be);
	free(dev);
	return NULL;
}

/* Devices freed while an orphan still used them (blk_dev_free: loop thread). */
static struct {
	struct blk_dev *devs[64];
	unsigned int nr;
} blk_graveyard;

static void blk_graveyard_keep(struct blk_dev *dev)
{
	/* Beyond that, LeakSanitizer may name them; the memory stays either way. */
	if (blk_graveyard.nr < ARRAY_SIZE(blk_graveyard.devs))
		blk_graveyard.devs[blk_graveyard.nr++] = dev;
}

void blk_dev_free(struct blk_dev *dev)
{
	if (!dev)
		return;
	/* Stops every queue: each finishes and publishes what is in flight. */
	vu_dev_free(dev->vu);
	for (unsigned int i = 0; i < dev->opts.num_queues; i++) {
		if (atomic_load(&dev->queues[i].orphaned)) {
			/*
			 * A stop was abandoned and its requests are still in
			 * the back-end, which writes into memory we own: keep
			 * all of it, reachable, until the process exits.
			 */
			log_warn("%s: requests of an abandoned stop never completed; "
				 "the device's memory is kept until exit",
				 dev->opts.id);
			blk_graveyard_keep(dev);
			return;
		}
	}
	dev->bops->close(dev->be);
	blk_dev_stats_destroy(&dev->stats);
	free(dev->queues);
	free(dev);
}

const char *blk_dev_id(const struct blk_dev *dev)
{
	return dev->opts.id;
}

const struct blk_options *blk_dev_options(const struct blk_dev *dev)
{
	return &dev->opts;
}

uint64_t blk_dev_capacity_sectors(const struct blk_dev *dev)
{
	return dev->capacity;
}

bool blk_dev_active(const struct blk_dev *dev)
{
	/*
	 * Queues start and stop on this (the loop's) thread: no race.  An
	 * orphan's eq stays set but its queue is no longer running.
	 */
	for (unsigned int i = 0; i < dev->opts.num_queues; i++) {
		if (dev->queues[i].running)
			return true;
	}
	return false;
}

bool blk_dev_connected(const struct blk_dev *dev)
{
	return vu_dev_connected(dev->vu);
}

struct vu_dev *blk_dev_vu(struct blk_dev *dev)
{
	return dev->vu;
}
