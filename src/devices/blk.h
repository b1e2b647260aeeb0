/* SPDX-License-Identifier: MIT */
/*
 * blk.h - the virtio-blk device model, exported over vhost-user.
 *
 * One struct blk_dev per --blk option: a vhost-user back-end (backend.h)
 * whose queues run on the engine's I/O threads (engine.h), over a raw image
 * file or block device, or over the null back-end (backends/).
 * Statistics follow the meaning of /proc/diskstats.
 */
#ifndef VHOSTD_DEVICES_BLK_H
#define VHOSTD_DEVICES_BLK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "diskopts.h"
#include "vhost-user/backend.h"

struct blk_options {
	char id[32];
	enum blk_backend_kind backend;
	char path[4096]; /* BLK_BACKEND_FILE; empty for null */
	uint64_t size;	 /* BLK_BACKEND_NULL: capacity in bytes; 0 for file */
	struct blk_rbd_options rbd; /* BLK_BACKEND_RBD */
	char socket[108];
	char serial[21]; /* VIRTIO_BLK_ID_BYTES + NUL */
	bool readonly;
	bool no_locking; /* locking=off: no OFD lock on the image (migration) */
	bool client; /* connect to the socket instead of listening */
	unsigned int num_queues;
	uint16_t queue_size;
	enum blk_cache_mode cache;
	unsigned int poll_us;	      /* spin this long on an empty ring before sleeping */
	int io_thread;		      /* the engine's I/O thread for every queue; -1: spread */
	uint64_t max_guest_memory;    /* bytes the front-end may map; 0: backend.h's default */
	unsigned int stop_timeout_ms; /* a queue's drain, at most; 0: backend.h's default */
	unsigned int delay_ms;	      /* backend=null: each request takes this long (tests) */
};

/*
 * Parse "id=NAME,path=FILE,socket=PATH[,readonly=on][,client=on]
 * [,num-queues=N][,queue-size=N][,cache=none|writeback][,serial=STR]
 * [,poll-us=N][,io-thread=K][,max-guest-memory=BYTES]" into @opts (defaults filled in: 1 queue of
 * 256, cache=writeback, poll-us=50 (0..1000), io-thread=-1 (each queue on
 * the least loaded I/O thread), serial = the id cut to 20 bytes).  "backend=null,size=BYTES"
 * replaces path= with the null back-end (backend=file, the default, needs path= and takes no
 * size=); "backend=rbd,pool=P,image=I[,conf=FILE][,user=NAME]" replaces it with a Ceph RBD
 * image (conf: a ceph.conf, default Ceph's search path; user: the client name without
 * "client.", default admin).  NAME is [A-Za-z0-9_.-]{1,31}; booleans take
 * on/off/yes/no/true/false; num-queues 1..VU_MAX_QUEUES; queue-size a power
 * of two in 4..1024; BYTES a positive multiple of 512 with an optional
 * k/m/g/t suffix (powers of 1024); ",," in a value is a literal comma, as
 * in QEMU.
 * Returns 0, or -EINVAL with a message in @err (which may be NULL).
 */
int blk_options_parse(const char *str, struct blk_options *opts, char *err, size_t err_len);

/*
 * Counters with the meaning of /proc/diskstats (Documentation/admin-guide/
 * iostats.rst): per direction ios completed, merges, sectors, milliseconds
 * spent; requests in flight; io_ticks = ms during which at least one request
 * was in flight; time_in_queue = the sum over requests of their ms in flight
 * (weighted by how many were in flight).
 */
enum blk_stat_dir {
	BLK_STAT_READ,
	BLK_STAT_WRITE,
	BLK_STAT_DISCARD,
	BLK_STAT_FLUSH,
	BLK_STAT__COUNT
};

struct blk_stats {
	uint64_t ios[BLK_STAT__COUNT];
	uint64_t merges[BLK_STAT__COUNT];
	uint64_t sectors[BLK_STAT__COUNT];
	uint64_t ticks_ms[BLK_STAT__COUNT];
	uint64_t in_flight;
	uint64_t io_ticks_ms;
	uint64_t time_in_queue_ms;
};

/*
 * Request latency, as a histogram: bucket i counts the requests that took
 * at most 2^(i + BLK_LAT_SHIFT) ns (1.024 us .. 2^32 ns, about 4.3 s), the
 * last one those that took longer.  Per direction; the sum is blk_stats'
 * ticks.
 */
#define BLK_LAT_BUCKETS 24
#define BLK_LAT_SHIFT	10

struct blk_lat_hist {
	uint64_t b[BLK_STAT__COUNT][BLK_LAT_BUCKETS];
	uint64_t sum_ns[BLK_STAT__COUNT];
};

/* One virtqueue: its requests (io_ticks and time_in_queue are per disk: 0) and notifications. */
struct blk_queue_counts {
	struct blk_stats st;
	uint64_t kicks;		/* the driver's notifications */
	uint64_t notifications; /* interrupts sent */
};

struct blk_dev;
struct vu_dev;

/* Open the image and start the vhost-user back-end.  NULL, message in @err. */
struct blk_dev *blk_dev_new(const struct blk_options *opts, const struct vu_watch_ops *watch,
			    void *loop, char *err, size_t err_len);

/* Stop taking requests, finish the in-flight ones, close everything. */
void blk_dev_free(struct blk_dev *dev);

const char *blk_dev_id(const struct blk_dev *dev);
const struct blk_options *blk_dev_options(const struct blk_dev *dev);
uint64_t blk_dev_capacity_sectors(const struct blk_dev *dev);
bool blk_dev_connected(const struct blk_dev *dev);
/* Is any queue started (the front-end driving the device)?  Loop thread. */
bool blk_dev_active(const struct blk_dev *dev);
/* Its vhost-user device. */
struct vu_dev *blk_dev_vu(struct blk_dev *dev);

/* A consistent snapshot of the counters (summed over queues). */
void blk_dev_get_stats(struct blk_dev *dev, struct blk_stats *st);
/* The latency histogram, summed over queues. */
void blk_dev_get_lat_hist(struct blk_dev *dev, struct blk_lat_hist *h);
/* Queue @q (0 .. num-queues - 1). */
void blk_dev_get_queue_counts(struct blk_dev *dev, unsigned int q, struct blk_queue_counts *c);

/*
 * Format @st as one /proc/diskstats line ("major minor name f1 ... f17",
 * major/minor 0, ending in '\n' as in that file).  Returns the snprintf
 * result.
 */
int blk_stats_format(const struct blk_stats *st, const char *name, char *buf, size_t len);

#endif /* VHOSTD_DEVICES_BLK_H */
