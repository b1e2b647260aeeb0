// SPDX-License-Identifier: MIT
/*
 * blk.c - the virtio-blk device model (virtio 1.2, 5.2) over vhost-user.
 *
 * Datapath.  Each started queue has one thread and one back-end queue (an
 * io_uring).  The thread sleeps in one place, the io_uring, which watches
 * the guest's kick eventfd, a private stop eventfd and every I/O in flight.
 * Woken by a kick, it pops a burst of chains with kicks disabled, turns each
 * into one back-end operation, submits them all with one system call, and
 * reaps completions; every completion is filled into the used ring at once
 * but published with one flush and at most one interrupt per round.  Before
 * sleeping it spins a while (poll-us) on the empty ring with kicks still
 * off, so a busy driver keeps it awake without kicking, then asks for kicks
 * again and polls once more if buffers slipped in meanwhile, so no kick is
 * ever lost.
 *
 * Requests live in slots allocated when the queue starts, one per ring
 * entry plus a spare, indexed by descriptor head (kvmtool's blk.c): a chain
 * is popped into the spare, which then trades places with the idle slot of
 * its head.  A slot embeds the popped element and its iovec array (seg_max
 * + 2 entries), the back-end operation and the copied discard ranges:
 * nothing is allocated per request.
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
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "backends/backend.h"
#include "blk.h"
#include "common/log.h"
#include "common/util.h"
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
/* Chains popped before completions get a look (fairness with the reap). */
#define BLK_BURST 64
/* No kick eventfd (the front-end wants us to poll): look this often. */
#define BLK_POLL_MS 1
/*
 * Spin on an empty ring this long before sleeping (poll-us=): a little
 * more than it takes to wake an idle CPU and have the driver answer our
 * last interrupt, so a busy guest keeps us awake (QEMU's IOThreads poll
 * 32 us by default).  A spin that finds nothing backs off: the next
 * 1, 2, 4 .. BLK_SPIN_BACKOFF_MAX sleeps come without one.
 */
#define BLK_DEFAULT_POLL_US  50
#define BLK_MAX_POLL_US	     1000
#define BLK_SPIN_BACKOFF_MAX 64

/* One copied, validated range of a DISCARD / WRITE_ZEROES request. */
struct blk_range {
	uint64_t sector;
	uint32_t num_sectors;
};

struct blk_queue;

/* A request slot.  iov[] follows it (max_iov entries). */
struct blk_req {
	struct virtq_elem elem; /* the popped chain; elem.iov = iov */
	struct blk_io io;	/* the back-end operation */
	uint8_t *status;	/* the status byte: last writable byte */
	uint32_t type;		/* copied from the header */
	uint32_t used_len;	/* bytes written to writable buffers on success */
	uint64_t sectors;	/* for the statistics */
	uint64_t start_ns;
	int8_t stat_dir; /* enum blk_stat_dir, or -1: not counted */
	bool busy;
	uint8_t nr_ranges;
	uint8_t cur_range;
	struct blk_range ranges[BLK_MAX_DWZ_SEG];
	struct iovec iov[];
};

struct blk_queue {
	struct blk_dev *dev;
	unsigned int index;
	char name[48]; /* "id:qN" for log lines */

	/* Valid while started; touched only by the queue thread in between. */
	struct vu_queue *q;
	struct virtq *vq;
	struct blk_backend_queue *bbq;
	pthread_t thread;
	bool running;
	int stop_fd;
	struct blk_io kick_io; /* waits on q->kick_fd */
	struct blk_io stop_io; /* waits on stop_fd */
	void *slot_mem;
	size_t slot_stride;
	struct blk_req **by_head; /* num entries: the slot of each head */
	struct blk_req *spare;	  /* the next chain is popped into this */
	unsigned int num;
	unsigned int max_iov;
	unsigned int inflight;	   /* requests handed to the back-end */
	unsigned int nr_filled;	   /* filled since the last flush */
	bool kick_pending;	   /* the ring may hold work */
	bool notify_off;	   /* kicks disabled (we are polling) */
	bool ring_idle;		   /* found empty; kicks still off until we sleep */
	uint64_t spin_ns;	   /* poll-us, in ns; 0: never spin */
	unsigned int spin_skip;	   /* sleeps left before the next spin */
	unsigned int spin_backoff; /* skip after the next failed spin */
	bool stopping;
	bool halted; /* hostile input: pop no more */
	bool io_error_logged;
	uint64_t now_ns; /* clock at the start of this round */
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

static int opt_err(char *err, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int opt_err(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	errbuf_vprintf(err, len, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int parse_bool(const char *v, bool *out)
{
	if (!strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "true")) {
		*out = true;
		return 0;
	}
	if (!strcmp(v, "off") || !strcmp(v, "no") || !strcmp(v, "false")) {
		*out = false;
		return 0;
	}
	return -EINVAL;
}

/* Decimal only, no sign, no junk, within [min, max]. */
static int parse_uint(const char *v, unsigned long min, unsigned long max, unsigned long *out)
{
	unsigned long n = 0;

	if (!*v)
		return -EINVAL;
	for (; *v; v++) {
		if (*v < '0' || *v > '9')
			return -EINVAL;
		if (n > (max - (unsigned long)(*v - '0')) / 10)
			return -ERANGE;
		n = n * 10 + (unsigned long)(*v - '0');
	}
	if (n < min)
		return -ERANGE;
	*out = n;
	return 0;
}

/* "1073741824", "1G", "512k": bytes with an optional binary suffix. */
static int parse_bytes(const char *v, uint64_t *out)
{
	static const char suffixes[] = "kmgt";
	char num[24];
	unsigned int shift = 0;
	unsigned long n;
	size_t len = strlen(v);
	const char *sfx;

	if (!len || len >= sizeof(num))
		return -EINVAL;
	memcpy(num, v, len + 1);
	sfx = strchr(suffixes, num[len - 1] | 0x20);
	if (sfx) {
		shift = 10 * (unsigned int)(sfx - suffixes + 1);
		num[len - 1] = '\0';
	}
	if (parse_uint(num, 1, ULONG_MAX >> shift, &n))
		return -EINVAL;
	*out = (uint64_t)n << shift;
	return 0;
}

/* The id names the disk in diskstats lines, logs and thread names. */
static bool valid_id(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++) {
		if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') &&
		    !(*s >= '0' && *s <= '9') && *s != '_' && *s != '-' && *s != '.')
			return false;
	}
	return true;
}

static bool printable(const char *s)
{
	for (; *s; s++) {
		if (*s < 0x20 || *s > 0x7e)
			return false;
	}
	return true;
}

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
};

static const struct {
	const char *key;
	unsigned int bit;
} blk_keys[] = {
	{"id", OPT_ID},
	{"path", OPT_PATH},
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
};

/* Copy @v (at most @size - 1 bytes) into @dst; -EINVAL if empty or too long. */
static int opt_str(char *dst, size_t size, const char *v)
{
	size_t n = strlen(v);

	if (!n || n >= size)
		return -EINVAL;
	memcpy(dst, v, n + 1);
	return 0;
}

static int blk_option_set(struct blk_options *o, unsigned int bit, const char *key, const char *v,
			  char *err, size_t err_len)
{
	unsigned long n;
	int r;

	switch (bit) {
	case OPT_ID:
		if (opt_str(o->id, sizeof(o->id), v) || !valid_id(o->id))
			return opt_err(err, err_len,
				       "id: 1..%zu characters of [A-Za-z0-9_.-] expected",
				       sizeof(o->id) - 1);
		return 0;
	case OPT_PATH:
		if (opt_str(o->path, sizeof(o->path), v))
			return opt_err(err, err_len, "path: empty or longer than %zu bytes",
				       sizeof(o->path) - 1);
		return 0;
	case OPT_SOCKET:
		if (opt_str(o->socket, sizeof(o->socket), v))
			return opt_err(err, err_len,
				       "socket: empty or longer than %zu bytes (sun_path)",
				       sizeof(o->socket) - 1);
		return 0;
	case OPT_SERIAL:
		if (opt_str(o->serial, sizeof(o->serial), v) || !printable(o->serial))
			return opt_err(err, err_len, "serial: 1..%d printable ASCII characters",
				       VIRTIO_BLK_ID_BYTES);
		return 0;
	case OPT_READONLY:
	case OPT_CLIENT:
		if (parse_bool(v, bit == OPT_READONLY ? &o->readonly : &o->client))
			return opt_err(err, err_len, "%s: on or off expected, not '%s'", key, v);
		return 0;
	case OPT_NUM_QUEUES:
		r = parse_uint(v, 1, VU_MAX_QUEUES, &n);
		if (r)
			return opt_err(err, err_len, "num-queues: 1..%d expected, not '%s'",
				       VU_MAX_QUEUES, v);
		o->num_queues = (unsigned int)n;
		return 0;
	case OPT_QUEUE_SIZE:
		/* Split rings need a power of two (2.7). */
		r = parse_uint(v, BLK_MIN_QUEUE_SIZE, BLK_MAX_QUEUE_SIZE, &n);
		if (r || (n & (n - 1)))
			return opt_err(err, err_len,
				       "queue-size: a power of two in %d..%d expected, not '%s'",
				       BLK_MIN_QUEUE_SIZE, BLK_MAX_QUEUE_SIZE, v);
		o->queue_size = (uint16_t)n;
		return 0;
	case OPT_BACKEND:
		if (!strcmp(v, "file"))
			o->backend = BLK_BACKEND_FILE;
		else if (!strcmp(v, "null"))
			o->backend = BLK_BACKEND_NULL;
		else
			return opt_err(err, err_len, "backend: file or null expected, not '%s'", v);
		return 0;
	case OPT_SIZE:
		if (parse_bytes(v, &o->size) || o->size % VIRTIO_BLK_SECTOR_SIZE)
			return opt_err(err, err_len,
				       "size: a multiple of 512 bytes (k/m/g/t suffix) expected, "
				       "not '%s'",
				       v);
		return 0;
	case OPT_POLL_US:
		r = parse_uint(v, 0, BLK_MAX_POLL_US, &n);
		if (r)
			return opt_err(err, err_len, "poll-us: 0..%d expected, not '%s'",
				       BLK_MAX_POLL_US, v);
		o->poll_us = (unsigned int)n;
		return 0;
	case OPT_CACHE:
		if (!strcmp(v, "none"))
			o->cache = BLK_CACHE_NONE;
		else if (!strcmp(v, "writeback"))
			o->cache = BLK_CACHE_WRITEBACK;
		else
			return opt_err(err, err_len, "cache: none or writeback expected, not '%s'",
				       v);
		return 0;
	}
	return -EINVAL;
}

/*
 * Split "key=value,key=value".  As in QEMU, ",," inside a value stands for
 * a literal comma (paths may contain commas).
 */
int blk_options_parse(const char *str, struct blk_options *opts, char *err, size_t err_len)
{
	char key[32], val[4096];
	unsigned int seen = 0;
	const char *p = str;
	size_t i;
	int r;

	memset(opts, 0, sizeof(*opts));
	opts->num_queues = 1;
	opts->queue_size = BLK_DEFAULT_QUEUE_SIZE;
	opts->cache = BLK_CACHE_WRITEBACK;
	opts->poll_us = BLK_DEFAULT_POLL_US;
	if (err && err_len)
		err[0] = '\0';
	if (!str || !*str)
		return opt_err(err, err_len, "empty option string");

	while (*p) {
		unsigned int bit = 0;
		size_t klen = 0, vlen = 0;

		while (*p && *p != '=' && *p != ',') {
			if (klen + 1 >= sizeof(key))
				return opt_err(err, err_len, "option name too long");
			key[klen++] = *p++;
		}
		key[klen] = '\0';
		if (*p != '=')
			return opt_err(err, err_len, "'%s': key=value expected", key);
		p++;
		for (;;) {
			if (*p == ',' && p[1] == ',') {
				p++;
			} else if (*p == ',' || !*p) {
				break;
			}
			if (vlen + 1 >= sizeof(val))
				return opt_err(err, err_len, "%s: value too long", key);
			val[vlen++] = *p++;
		}
		val[vlen] = '\0';
		if (*p == ',' && !*++p)
			return opt_err(err, err_len, "trailing comma");

		for (i = 0; i < ARRAY_SIZE(blk_keys); i++) {
			if (!strcmp(key, blk_keys[i].key))
				bit = blk_keys[i].bit;
		}
		if (!bit)
			return opt_err(err, err_len, "unknown option '%s'", key);
		if (seen & bit)
			return opt_err(err, err_len, "option '%s' given twice", key);
		seen |= bit;
		if (!vlen)
			return opt_err(err, err_len, "%s: empty value", key);
		r = blk_option_set(opts, bit, key, val, err, err_len);
		if (r)
			return r;
	}

	if (!(seen & OPT_ID))
		return opt_err(err, err_len, "id= is required");
	if (opts->backend == BLK_BACKEND_NULL) {
		if (seen & OPT_PATH)
			return opt_err(err, err_len, "path= is not for backend=null (no image)");
		if (!(seen & OPT_SIZE))
			return opt_err(err, err_len, "backend=null needs size=");
	} else {
		if (!(seen & OPT_PATH))
			return opt_err(err, err_len, "path= is required");
		if (seen & OPT_SIZE)
			return opt_err(err, err_len,
				       "size= is only for backend=null (an image has its own)");
	}
	if (!(seen & OPT_SOCKET))
		return opt_err(err, err_len, "socket= is required");
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
	req->start_ns = bq->now_ns;
	blk_stats_io_start(&bq->dev->stats, bq->index, bq->now_ns);
}

static void blk_stats_done(struct blk_queue *bq, struct blk_req *req, bool ok)
{
	if (req->stat_dir < 0)
		return;
	blk_stats_io_done(&bq->dev->stats, bq->index, (enum blk_stat_dir)req->stat_dir,
			  req->sectors, ok, req->start_ns, bq->now_ns);
	req->stat_dir = -1;
}

void blk_dev_get_stats(struct blk_dev *dev, struct blk_stats *st)
{
	blk_dev_stats_read(&dev->stats, st);
}

/* ---- requests -------------------------------------------------------------- */

static bool blk_has_feature(const struct blk_dev *dev, unsigned int bit)
{
	return atomic_load_explicit(&dev->features, memory_order_relaxed) & (1ull << bit);
}

/*
 * Stop serving this queue: the driver broke the rules in a way no status
 * byte can answer.  One log line; the back-end sets NEEDS_RESET, stops the
 * queue from its own thread and tells the front-end.
 */
static void blk_queue_halt(struct blk_queue *bq, const char *why)
{
	char msg[160];

	if (bq->halted)
		return;
	bq->halted = true;
	snprintf(msg, sizeof(msg), "%s: %s", bq->name, why);
	vu_dev_set_broken(bq->dev->vu, msg);
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

/* Drop the first @n bytes of @iov (the header); returns the new start. */
static struct iovec *iov_skip(struct iovec *iov, unsigned int *cnt, size_t n)
{
	while (*cnt && n >= iov->iov_len) {
		n -= iov->iov_len;
		iov++;
		(*cnt)--;
	}
	if (*cnt && n) {
		iov->iov_base = (char *)iov->iov_base + n;
		iov->iov_len -= n;
	}
	return iov;
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
	virtq_fill(bq->vq, &req->elem, status == VIRTIO_BLK_S_OK ? req->used_len : 1);
	req->busy = false;
	bq->nr_filled++;
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
	bq->inflight++;
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
	const struct virtq_elem *e = &req->elem;
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

/* A freshly popped chain: copy the header, check it, dispatch. */
static void blk_req_start(struct blk_queue *bq, struct blk_req *req)
{
	struct virtq_elem *e = &req->elem;
	struct virtio_blk_outhdr hdr;
	struct iovec *in_iov = e->iov + e->out_num;
	unsigned int in_cnt = e->in_num;
	unsigned int out_cnt = e->out_num;
	struct iovec *out_iov;
	int st;

	req->stat_dir = -1;
	req->used_len = 1;
	req->busy = true;

	/*
	 * No room for the header or no status byte: there is nothing to
	 * answer with.  A driver that does this is broken or hostile.
	 */
	if (e->out_len < sizeof(hdr) || e->in_len < 1) {
		char why[96];

		snprintf(why, sizeof(why), "request %u has %u readable / %u writable bytes", e->id,
			 e->out_len, e->in_len);
		blk_queue_halt(bq, why);
		/* Still filled once (virtq.h), so its map reference is dropped. */
		virtq_fill(bq->vq, &req->elem, 0);
		req->busy = false;
		bq->nr_filled++;
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
		bq->inflight--;
		if (blk_req_submit(bq, req) != BLK_REQ_QUEUED)
			blk_req_complete(bq, req, VIRTIO_BLK_S_IOERR);
		return;
	}
	bq->inflight--;
	if (res < 0 && !bq->io_error_logged) {
		bq->io_error_logged = true;
		log_warn("%s: request type %u failed: %s (further errors on this queue are not "
			 "logged)",
			 bq->name, req->type, strerror((int)-res));
	}
	blk_stats_done(bq, req, res >= 0);
	blk_req_complete(bq, req, res < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK);
}

/* ---- the queue thread ---------------------------------------------------- */

static struct blk_req *blk_slot(struct blk_queue *bq, unsigned int i)
{
	return (struct blk_req *)((char *)bq->slot_mem + (size_t)i * bq->slot_stride);
}

static void blk_queue_arm(struct blk_queue *bq, struct blk_io *io)
{
	int r = bq->dev->bops->prep(bq->bbq, io);

	if (r < 0)
		log_error("%s: cannot wait on fd %d: %s", bq->name, io->fd, strerror(-r));
}

/* Pop one chain and start it.  1 popped, 0 ring empty, -EIO queue halted. */
static int blk_queue_pop_one(struct blk_queue *bq)
{
	struct blk_req *req = bq->spare, *idle;
	int r;

	virtq_elem_init(&req->elem, req->iov, bq->max_iov);
	r = virtq_pop(bq->vq, &req->elem);
	if (r <= 0) {
		if (r < 0)
			blk_queue_halt(bq, virtq_strerror(bq->vq->error));
		return r;
	}
	/* The ring code refuses both; checked again since a slot is at stake. */
	idle = req->elem.id < bq->num ? bq->by_head[req->elem.id] : NULL;
	if (!idle || idle->busy) {
		blk_queue_halt(bq, "descriptor head out of range or already in flight");
		virtq_fill(bq->vq, &req->elem, 0);
		bq->nr_filled++;
		return -EIO;
	}
	bq->by_head[req->elem.id] = req;
	bq->spare = idle;
	blk_req_start(bq, req);
	return 1;
}

/*
 * Pop up to BLK_BURST chains with kicks off.  When the ring runs dry, ask
 * for kicks again; if buffers arrived meanwhile, keep going (no lost kick).
 */
static void blk_queue_pop_burst(struct blk_queue *bq)
{
	unsigned int n = 0;

	if (!bq->notify_off) {
		virtq_disable_notify(bq->vq);
		bq->notify_off = true;
	}
	bq->now_ns = blk_stats_now_ns();
	while (n < BLK_BURST) {
		int r = blk_queue_pop_one(bq);

		if (r < 0)
			return;
		if (r > 0) {
			n++;
			continue;
		}
		if (bq->spin_ns) {
			/* The sleep path spins, then asks for kicks (blk_queue_idle). */
			bq->ring_idle = true;
			bq->kick_pending = false;
			return;
		}
		bq->notify_off = false;
		if (!virtq_enable_notify(bq->vq)) {
			bq->kick_pending = false;
			return;
		}
		virtq_disable_notify(bq->vq);
		bq->notify_off = true;
	}
	/* Budget spent: kick_pending stays set, we come back after the reap. */
}

/* One flush and at most one interrupt for everything completed this round. */
static void blk_queue_publish(struct blk_queue *bq)
{
	if (!bq->nr_filled)
		return;
	virtq_flush(bq->vq);
	vu_queue_notify(bq->q);
	bq->nr_filled = 0;
}

/*
 * Spin until the driver adds a buffer or spin_ns pass.  True if it did,
 * or if its avail index broke the queue meanwhile: the next pop then
 * fails and marks the device broken, rather than sleeping on a dead queue.
 */
static bool blk_queue_spin(struct blk_queue *bq)
{
	uint64_t start = blk_stats_now_ns();

	do {
		for (unsigned int i = 0; i < 16; i++) {
			if (!virtq_avail_empty(bq->vq) || bq->vq->broken)
				return true;
			cpu_relax();
		}
	} while (blk_stats_now_ns() - start < bq->spin_ns);
	return false;
}

/*
 * About to sleep with the ring found empty and kicks still off: spin a
 * while first if it has paid off lately, then ask for kicks again and
 * look once more (no lost kick).  True if there is work after all.
 * While we spin the driver does not kick: it does not need to, we see
 * its buffers anyway.
 */
static bool blk_queue_idle(struct blk_queue *bq)
{
	bq->ring_idle = false;
	if (!bq->inflight && !bq->stopping && !bq->halted) {
		if (bq->spin_skip) {
			bq->spin_skip--;
		} else if (blk_queue_spin(bq)) {
			bq->spin_backoff = 0;
			return true;
		} else {
			bq->spin_backoff = bq->spin_backoff ? bq->spin_backoff * 2 : 1;
			if (bq->spin_backoff > BLK_SPIN_BACKOFF_MAX)
				bq->spin_backoff = BLK_SPIN_BACKOFF_MAX;
			bq->spin_skip = bq->spin_backoff;
		}
	}
	bq->notify_off = false;
	if (!virtq_enable_notify(bq->vq))
		return false;
	virtq_disable_notify(bq->vq);
	bq->notify_off = true;
	return true;
}

static void blk_io_done(struct blk_io *io, void *arg)
{
	struct blk_queue *bq = arg;

	if (io == &bq->kick_io) {
		if (io->res < 0) {
			log_error("%s: waiting for kicks failed: %s", bq->name,
				  strerror((int)-io->res));
			return;
		}
		bq->kick_pending = true;
		if (!bq->stopping)
			blk_queue_arm(bq, &bq->kick_io);
		return;
	}
	if (io == &bq->stop_io) {
		bq->stopping = true;
		return;
	}
	blk_req_io_done(bq, container_of(io, struct blk_req, io));
}

static void *blk_queue_thread(void *arg)
{
	struct blk_queue *bq = arg;
	const struct blk_backend_ops *bops = bq->dev->bops;
	bool polling = bq->q->kick_fd < 0;
	bool submit_err_logged = false;
	sigset_t all;

	/* Signals belong to the daemon's main thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);

	blk_queue_arm(bq, &bq->stop_io);
	if (!polling)
		blk_queue_arm(bq, &bq->kick_io);
	/* Serve whatever the driver queued before we started. */
	bq->kick_pending = true;

	for (;;) {
		bool more;
		int timeout, r;

		if (bq->kick_pending && !bq->stopping && !bq->halted)
			blk_queue_pop_burst(bq);
		if (bq->stopping && !bq->inflight)
			break;

		more = bq->nr_filled || (bq->kick_pending && !bq->stopping && !bq->halted);
		timeout = more ? 0 : (polling && !bq->stopping && !bq->halted ? BLK_POLL_MS : -1);
		if (timeout < 0 && bq->ring_idle) {
			/* What is done already (no system call) goes out before we idle. */
			if (bq->inflight) {
				bq->now_ns = blk_stats_now_ns();
				bops->reap(bq->bbq, blk_io_done, bq);
				blk_queue_publish(bq);
			}
			if (blk_queue_idle(bq)) {
				bq->kick_pending = true;
				timeout = 0;
			}
		}
		r = bops->submit(bq->bbq, timeout);
		if (r < 0 && r != -EINTR && !submit_err_logged) {
			submit_err_logged = true;
			log_error("%s: io_uring submit: %s", bq->name, strerror(-r));
		}
		bq->now_ns = blk_stats_now_ns();
		bops->reap(bq->bbq, blk_io_done, bq);
		if (polling)
			bq->kick_pending = true;
		blk_queue_publish(bq);
	}
	blk_queue_publish(bq);
	/* Leave the ring asking for kicks, as a fresh queue does. */
	if (bq->notify_off && !bq->halted)
		virtq_enable_notify(bq->vq);
	return NULL;
}

static void blk_queue_release(struct blk_queue *bq)
{
	if (bq->bbq)
		bq->dev->bops->queue_free(bq->bbq);
	bq->bbq = NULL;
	if (bq->stop_fd >= 0)
		close(bq->stop_fd);
	bq->stop_fd = -1;
	free(bq->by_head);
	bq->by_head = NULL;
	free(bq->slot_mem);
	bq->slot_mem = NULL;
}

static int blk_queue_setup(struct blk_queue *bq, struct vu_queue *q)
{
	struct blk_dev *dev = bq->dev;
	unsigned int num = q->vq.num;
	int r;

	bq->q = q;
	bq->vq = &q->vq;
	bq->num = num;
	bq->max_iov = dev->seg_max + 2;
	bq->slot_stride = sizeof(struct blk_req) + bq->max_iov * sizeof(struct iovec);
	bq->slot_stride = (bq->slot_stride + 63) & ~(size_t)63;
	bq->stop_fd = -1;
	bq->slot_mem = calloc(num + 1, bq->slot_stride);
	bq->by_head = calloc(num, sizeof(*bq->by_head));
	if (!bq->slot_mem || !bq->by_head)
		return -ENOMEM;
	for (unsigned int i = 0; i < num; i++)
		bq->by_head[i] = blk_slot(bq, i);
	bq->spare = blk_slot(bq, num);

	/* Every ring entry in flight at once, plus the kick and stop waits. */
	r = dev->bops->queue_new(dev->be, num + 2, &bq->bbq);
	if (r < 0)
		return r;
	bq->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (bq->stop_fd < 0)
		return -errno;
	bq->kick_io = (struct blk_io){.op = BLK_IO_EVENTFD, .fd = q->kick_fd};
	bq->stop_io = (struct blk_io){.op = BLK_IO_EVENTFD, .fd = bq->stop_fd};
	bq->inflight = bq->nr_filled = 0;
	bq->kick_pending = bq->notify_off = bq->stopping = bq->halted = false;
	bq->ring_idle = false;
	/* Polled queues (no kick eventfd) never sleep long anyway. */
	bq->spin_ns = q->kick_fd < 0 ? 0 : (uint64_t)dev->opts.poll_us * 1000;
	bq->spin_skip = bq->spin_backoff = 0;
	bq->io_error_logged = false;
	return 0;
}

/* ---- vhost-user device ops --------------------------------------------------- */

static uint64_t blk_get_features(void *opaque)
{
	struct blk_dev *dev = opaque;
	uint64_t f = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_RING_F_INDIRECT_DESC |
		     1ull << VIRTIO_RING_F_EVENT_IDX | 1ull << VIRTIO_F_RING_PACKED |
		     1ull << VIRTIO_BLK_F_SEG_MAX | 1ull << VIRTIO_BLK_F_BLK_SIZE |
		     1ull << VIRTIO_BLK_F_TOPOLOGY | 1ull << VIRTIO_BLK_F_FLUSH |
		     1ull << VIRTIO_BLK_F_CONFIG_WCE | 1ull << VIRTIO_BLK_F_MQ;

	if (dev->opts.readonly)
		f |= 1ull << VIRTIO_BLK_F_RO;
	else
		f |= 1ull << VIRTIO_BLK_F_DISCARD | 1ull << VIRTIO_BLK_F_WRITE_ZEROES;
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
	/* VHOST_USER_PROTOCOL_F_CONFIG (9): GET_CONFIG / SET_CONFIG. */
	return 1ull << 9;
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
	struct blk_queue *bq;
	char tname[16];
	int r;

	if (q->index >= dev->opts.num_queues)
		return -EINVAL;
	bq = &dev->queues[q->index];
	if (bq->running)
		return -EBUSY;
	r = blk_queue_setup(bq, q);
	if (r < 0)
		goto fail;
	q->priv = bq;
	r = -pthread_create(&bq->thread, NULL, blk_queue_thread, bq);
	if (r < 0)
		goto fail;
	snprintf(tname, sizeof(tname), "blk-%.7s-q%u", dev->opts.id, q->index);
	pthread_setname_np(bq->thread, tname);
	bq->running = true;
	log_debug("%s: started (%u entries, %s ring)", bq->name, bq->num,
		  blk_has_feature(dev, VIRTIO_F_RING_PACKED) ? "packed" : "split");
	return 0;

fail:
	log_error("%s: cannot start: %s", bq->name, strerror(-r));
	q->priv = NULL;
	blk_queue_release(bq);
	return r;
}

/*
 * Synchronous (backend.h): the thread stops popping, waits for everything
 * in flight, publishes it, and exits before we return.
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
	if (eventfd_write(bq->stop_fd, 1) < 0)
		log_error("%s: cannot signal stop: %s", bq->name, strerror(errno));
	pthread_join(bq->thread, NULL);
	bq->running = false;
	q->priv = NULL;
	blk_queue_release(bq);
	log_debug("%s: stopped", bq->name);
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
	.set_status = blk_set_status,
};

/* ---- the device ---------------------------------------------------------- */

struct blk_dev *blk_dev_new(const struct blk_options *opts, const struct vu_watch_ops *watch,
			    void *loop, char *err, size_t err_len)
{
	struct blk_backend_config bcfg = {
		.path = opts->path,
		.size = opts->size,
		.readonly = opts->readonly,
		.direct = opts->cache == BLK_CACHE_NONE,
		.name = opts->id,
	};
	bool null = opts->backend == BLK_BACKEND_NULL;
	struct vu_dev_config vcfg;
	const char *how;
	struct blk_dev *dev;

	if (!opts->num_queues || opts->num_queues > VU_MAX_QUEUES ||
	    opts->queue_size < BLK_MIN_QUEUE_SIZE || opts->queue_size > BLK_MAX_QUEUE_SIZE) {
		opt_err(err, err_len, "%s: bad num-queues or queue-size", opts->id);
		return NULL;
	}
	dev = calloc(1, sizeof(*dev));
	if (!dev) {
		opt_err(err, err_len, "out of memory");
		return NULL;
	}
	dev->opts = *opts;
	dev->bops = null ? &blk_backend_null_ops : &blk_backend_uring_ops;
	if (dev->bops->open(&bcfg, &dev->be, err, err_len) < 0) {
		free(dev);
		return NULL;
	}
	dev->bops->get_info(dev->be, &dev->info);
	dev->capacity = dev->info.size >> VIRTIO_BLK_SECTOR_SHIFT;
	if (!dev->capacity)
		log_warn("%s: %s is smaller than one sector", opts->id,
			 null ? "the null back-end" : opts->path);
	dev->seg_max = opts->queue_size - 2u;
	if (dev->seg_max > BLK_MAX_SEG_MAX)
		dev->seg_max = BLK_MAX_SEG_MAX;
	atomic_init(&dev->features, 0);
	atomic_init(&dev->writeback, 1);
	dev->queues = calloc(opts->num_queues, sizeof(*dev->queues));
	if (!dev->queues || blk_dev_stats_init(&dev->stats, opts->num_queues)) {
		opt_err(err, err_len, "out of memory");
		goto fail;
	}
	for (unsigned int i = 0; i < opts->num_queues; i++) {
		struct blk_queue *bq = &dev->queues[i];

		bq->dev = dev;
		bq->index = i;
		bq->stop_fd = -1;
		snprintf(bq->name, sizeof(bq->name), "%s:q%u", opts->id, i);
	}

	vcfg = (struct vu_dev_config){
		.name = dev->opts.id,
		.socket_path = dev->opts.socket,
		.client = opts->client,
		.num_queues = opts->num_queues,
		.max_queue_size = opts->queue_size,
		.ops = &blk_ops,
		.opaque = dev,
		.watch = watch,
		.loop = loop,
	};
	dev->vu = vu_dev_new(&vcfg);
	if (!dev->vu) {
		opt_err(err, err_len, "%s: vhost-user socket %s: %s", opts->id, opts->socket,
			strerror(errno));
		goto fail;
	}
	if (null)
		how = "no storage";
	else
		how = dev->info.direct ? "O_DIRECT" : "page cache";
	log_info("%s: %s, %" PRIu64 " sectors, %s%s, %u queue(s) of %u", opts->id,
		 null ? "null back-end" : opts->path, dev->capacity, how,
		 opts->readonly ? ", read-only" : "", opts->num_queues, opts->queue_size);
	return dev;

fail:
	blk_dev_stats_destroy(&dev->stats);
	free(dev->queues);
	dev->bops->close(dev->be);
	free(dev);
	return NULL;
}

void blk_dev_free(struct blk_dev *dev)
{
	if (!dev)
		return;
	/* Stops every queue: each finishes and publishes what is in flight. */
	vu_dev_free(dev->vu);
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

bool blk_dev_connected(const struct blk_dev *dev)
{
	return vu_dev_connected(dev->vu);
}
