/* SPDX-License-Identifier: MIT */
/*
 * stats.h - the block device's /proc/diskstats counters (private to
 * src/devices; the public view is struct blk_stats in blk.h).
 *
 * Each queue thread owns one struct blk_queue_stats and is its only
 * writer: relaxed stores published through a sequence count, so counting
 * a request costs no locked instruction and a reader on another thread
 * still gets a consistent snapshot.  io_ticks is device-wide and moves as
 * the kernel's update_io_ticks() does: at most one compare-and-swap per
 * millisecond, whichever queue gets there first.
 */
#ifndef VHOSTD_DEVICES_STATS_H
#define VHOSTD_DEVICES_STATS_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "blk.h"

struct blk_queue_stats {
	alignas(64) atomic_uint seq; /* odd while the fields below change */
	_Atomic uint64_t ios[BLK_STAT__COUNT];
	_Atomic uint64_t sectors[BLK_STAT__COUNT];
	_Atomic uint64_t ticks_ns[BLK_STAT__COUNT];
	_Atomic uint64_t in_flight;
	_Atomic uint64_t hist[BLK_STAT__COUNT][BLK_LAT_BUCKETS]; /* blk.h */
};

struct blk_dev_stats {
	_Atomic uint64_t stamp_ms; /* update_io_ticks()'s stamp */
	_Atomic uint64_t io_ticks_ms;
	unsigned int nr_queues;
	struct blk_queue_stats *queues; /* one cache-line-aligned block each */
};

/* Zeroed counters for @nr_queues queues.  0 or -ENOMEM. */
int blk_dev_stats_init(struct blk_dev_stats *ds, unsigned int nr_queues);
void blk_dev_stats_destroy(struct blk_dev_stats *ds);

/* CLOCK_MONOTONIC in nanoseconds: the clock every timestamp here uses. */
uint64_t blk_stats_now_ns(void);

/* Queue @q started a request at @now_ns (its thread only). */
void blk_stats_io_start(struct blk_dev_stats *ds, unsigned int q, uint64_t now_ns);

/*
 * Queue @q finished a request of direction @dir started at @start_ns
 * (its thread only); @sectors count only if @ok.
 */
void blk_stats_io_done(struct blk_dev_stats *ds, unsigned int q, enum blk_stat_dir dir,
		       uint64_t sectors, bool ok, uint64_t start_ns, uint64_t now_ns);

/* Sum of every queue's snapshot, io_ticks brought up to date (any thread). */
void blk_dev_stats_read(struct blk_dev_stats *ds, struct blk_stats *st);
/* The latency histogram summed over queues (any thread). */
void blk_dev_stats_read_hist(struct blk_dev_stats *ds, struct blk_lat_hist *h);
/* Queue @q's own counts: no io_ticks or time_in_queue (any thread). */
void blk_dev_stats_read_queue(struct blk_dev_stats *ds, unsigned int q, struct blk_stats *st);

/* The histogram bucket of a request that took @ns (exposed for the tests). */
unsigned int blk_lat_bucket(uint64_t ns);

#endif /* VHOSTD_DEVICES_STATS_H */
