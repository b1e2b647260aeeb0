// SPDX-License-Identifier: MIT
/*
 * stats.c - /proc/diskstats counters for the block device
 * (Documentation/admin-guide/iostats.rst), see stats.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "stats.h"

int blk_dev_stats_init(struct blk_dev_stats *ds, unsigned int nr_queues)
{
	void *mem;

	atomic_init(&ds->stamp_ms, 0);
	atomic_init(&ds->io_ticks_ms, 0);
	ds->nr_queues = nr_queues;
	/* A cache line per queue: the threads write their own all the time. */
	if (posix_memalign(&mem, 64, nr_queues * sizeof(*ds->queues)))
		return -ENOMEM;
	memset(mem, 0, nr_queues * sizeof(*ds->queues));
	ds->queues = mem;
	return 0;
}

void blk_dev_stats_destroy(struct blk_dev_stats *ds)
{
	free(ds->queues);
	ds->queues = NULL;
}

/* The engine's clock: request times come from its passes (eng_queue_now_ns). */
uint64_t blk_stats_now_ns(void)
{
	return eng_now_ns();
}

/* Single writer: a relaxed load and store, no read-modify-write atomic. */
static void stat_add(_Atomic uint64_t *v, uint64_t n)
{
	atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static void write_begin(struct blk_queue_stats *qs)
{
	unsigned int s = atomic_load_explicit(&qs->seq, memory_order_relaxed);

	atomic_store_explicit(&qs->seq, s + 1, memory_order_relaxed);
	/* Pairs with the reader's acquire fence: the odd count is seen first. */
	atomic_thread_fence(memory_order_release);
}

static void write_end(struct blk_queue_stats *qs)
{
	unsigned int s = atomic_load_explicit(&qs->seq, memory_order_relaxed);

	/* Release: the new values are visible before the even count. */
	atomic_store_explicit(&qs->seq, s + 1, memory_order_release);
}

static uint64_t in_flight(struct blk_dev_stats *ds)
{
	uint64_t n = 0;

	for (unsigned int i = 0; i < ds->nr_queues; i++)
		n += atomic_load_explicit(&ds->queues[i].in_flight, memory_order_relaxed);
	return n;
}

/*
 * The kernel's update_io_ticks() (block/blk-core.c), in milliseconds: the
 * first caller in a new millisecond moves the stamp and, if the disk was
 * busy since the old stamp (a request ends now, or some are in flight),
 * adds the gap to io_ticks.  Called before in_flight changes, at every
 * start and end, and by readers while requests are out.
 */
static void update_io_ticks(struct blk_dev_stats *ds, uint64_t now_ms, bool end)
{
	uint64_t stamp = atomic_load_explicit(&ds->stamp_ms, memory_order_relaxed);

	if (now_ms > stamp && atomic_compare_exchange_strong(&ds->stamp_ms, &stamp, now_ms) &&
	    (end || in_flight(ds)))
		atomic_fetch_add_explicit(&ds->io_ticks_ms, now_ms - stamp, memory_order_relaxed);
}

void blk_stats_io_start(struct blk_dev_stats *ds, unsigned int q, uint64_t now_ns)
{
	struct blk_queue_stats *qs = &ds->queues[q];

	update_io_ticks(ds, now_ns / 1000000, false);
	write_begin(qs);
	stat_add(&qs->in_flight, 1);
	write_end(qs);
}

unsigned int blk_lat_bucket(uint64_t ns)
{
	unsigned int i;

	/* No division on the completion path: bounds are powers of two in ns. */
	if (ns <= (1u << BLK_LAT_SHIFT))
		return 0;
	/* The smallest i with ns <= 2^(i + BLK_LAT_SHIFT). */
	i = 64 - (unsigned int)__builtin_clzll(ns - 1) - BLK_LAT_SHIFT;
	return i < BLK_LAT_BUCKETS - 1 ? i : BLK_LAT_BUCKETS - 1;
}

void blk_stats_io_done(struct blk_dev_stats *ds, unsigned int q, enum blk_stat_dir dir,
		       uint64_t sectors, bool ok, uint64_t start_ns, uint64_t now_ns)
{
	struct blk_queue_stats *qs = &ds->queues[q];
	uint64_t ns = now_ns > start_ns ? now_ns - start_ns : 0;

	update_io_ticks(ds, now_ns / 1000000, true);
	write_begin(qs);
	stat_add(&qs->ios[dir], 1);
	if (ok)
		stat_add(&qs->sectors[dir], sectors);
	stat_add(&qs->ticks_ns[dir], ns);
	stat_add(&qs->hist[dir][blk_lat_bucket(ns)], 1);
	atomic_store_explicit(&qs->in_flight,
			      atomic_load_explicit(&qs->in_flight, memory_order_relaxed) - 1,
			      memory_order_relaxed);
	write_end(qs);
}

/* One queue's counters, consistent with each other (seqcount read side). */
static void read_queue(struct blk_queue_stats *qs, uint64_t ios[], uint64_t sectors[],
		       uint64_t ticks_ns[], uint64_t *inflight)
{
	unsigned int s1, s2;

	do {
		s1 = atomic_load_explicit(&qs->seq, memory_order_acquire);
		for (int d = 0; d < BLK_STAT__COUNT; d++) {
			ios[d] = atomic_load_explicit(&qs->ios[d], memory_order_relaxed);
			sectors[d] = atomic_load_explicit(&qs->sectors[d], memory_order_relaxed);
			ticks_ns[d] = atomic_load_explicit(&qs->ticks_ns[d], memory_order_relaxed);
		}
		*inflight = atomic_load_explicit(&qs->in_flight, memory_order_relaxed);
		atomic_thread_fence(memory_order_acquire);
		s2 = atomic_load_explicit(&qs->seq, memory_order_relaxed);
	} while (s1 != s2 || (s1 & 1));
}

void blk_dev_stats_read(struct blk_dev_stats *ds, struct blk_stats *st)
{
	uint64_t ticks_ns[BLK_STAT__COUNT] = {0}, total_ns = 0;

	memset(st, 0, sizeof(*st));
	for (unsigned int i = 0; i < ds->nr_queues; i++) {
		uint64_t ios[BLK_STAT__COUNT], sec[BLK_STAT__COUNT], tns[BLK_STAT__COUNT], inf;

		read_queue(&ds->queues[i], ios, sec, tns, &inf);
		for (int d = 0; d < BLK_STAT__COUNT; d++) {
			st->ios[d] += ios[d];
			st->sectors[d] += sec[d];
			ticks_ns[d] += tns[d];
		}
		st->in_flight += inf;
	}
	for (int d = 0; d < BLK_STAT__COUNT; d++) {
		st->ticks_ms[d] = ticks_ns[d] / 1000000;
		total_ns += ticks_ns[d];
	}
	/* As diskstats_show(): bring io_ticks up to date while requests are out. */
	if (st->in_flight)
		update_io_ticks(ds, blk_stats_now_ns() / 1000000, true);
	st->io_ticks_ms = atomic_load_explicit(&ds->io_ticks_ms, memory_order_relaxed);
	/*
	 * Field 11: since Linux 5.0 diskstats_show() prints the sum of the
	 * per-direction times, i.e. the sum over requests of their time in
	 * flight - the same number the old in-flight-weighted counter meant.
	 */
	st->time_in_queue_ms = total_ns / 1000000;
}

void blk_dev_stats_read_queue(struct blk_dev_stats *ds, unsigned int q, struct blk_stats *st)
{
	uint64_t tns[BLK_STAT__COUNT];

	memset(st, 0, sizeof(*st));
	read_queue(&ds->queues[q], st->ios, st->sectors, tns, &st->in_flight);
	for (int d = 0; d < BLK_STAT__COUNT; d++)
		st->ticks_ms[d] = tns[d] / 1000000;
}

void blk_dev_stats_read_hist(struct blk_dev_stats *ds, struct blk_lat_hist *h)
{
	memset(h, 0, sizeof(*h));
	for (unsigned int i = 0; i < ds->nr_queues; i++) {
		struct blk_queue_stats *qs = &ds->queues[i];
		uint64_t b[BLK_STAT__COUNT][BLK_LAT_BUCKETS], sum[BLK_STAT__COUNT];
		unsigned int s1, s2;

		/* Buckets and sum of one queue from one moment (seqcount). */
		do {
			s1 = atomic_load_explicit(&qs->seq, memory_order_acquire);
			for (int d = 0; d < BLK_STAT__COUNT; d++) {
				sum[d] = atomic_load_explicit(&qs->ticks_ns[d],
							      memory_order_relaxed);
				for (int k = 0; k < BLK_LAT_BUCKETS; k++)
					b[d][k] = atomic_load_explicit(&qs->hist[d][k],
								       memory_order_relaxed);
			}
			atomic_thread_fence(memory_order_acquire);
			s2 = atomic_load_explicit(&qs->seq, memory_order_relaxed);
		} while (s1 != s2 || (s1 & 1));
		for (int d = 0; d < BLK_STAT__COUNT; d++) {
			h->sum_ns[d] += sum[d];
			for (int k = 0; k < BLK_LAT_BUCKETS; k++)
				h->b[d][k] += b[d][k];
		}
	}
}

/* The line format of block/genhd.c's diskstats_show(). */
int blk_stats_format(const struct blk_stats *st, const char *name, char *buf, size_t len)
{
	return snprintf(
		buf, len,
		"%4u %7u %s %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
		" %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
		" %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n",
		0u, 0u, name, st->ios[BLK_STAT_READ], st->merges[BLK_STAT_READ],
		st->sectors[BLK_STAT_READ], st->ticks_ms[BLK_STAT_READ], st->ios[BLK_STAT_WRITE],
		st->merges[BLK_STAT_WRITE], st->sectors[BLK_STAT_WRITE],
		st->ticks_ms[BLK_STAT_WRITE], st->in_flight, st->io_ticks_ms, st->time_in_queue_ms,
		st->ios[BLK_STAT_DISCARD], st->merges[BLK_STAT_DISCARD],
		st->sectors[BLK_STAT_DISCARD], st->ticks_ms[BLK_STAT_DISCARD],
		st->ios[BLK_STAT_FLUSH], st->ticks_ms[BLK_STAT_FLUSH]);
}
