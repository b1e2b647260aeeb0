// SPDX-License-Identifier: MIT
/*
 * test_blk_stats.c - the diskstats counters (src/devices/stats.c): the
 * kernel's io_ticks rule (busy time counted once however many queues are
 * busy, idle time never), per-direction ticks and time_in_queue, and
 * snapshots that stay consistent while a queue thread keeps counting.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "blk_test.h"
#include "devices/stats.h"

#define MS 1000000ull

static void test_io_ticks(void)
{
	struct blk_dev_stats ds;
	struct blk_stats st;
	/*
	 * Fake times an hour ahead of the real clock, which the reader uses
	 * to bring io_ticks up to date while requests are in flight.
	 */
	uint64_t base = blk_stats_now_ns() + 3600 * 1000 * MS;
#define T(ms) (base + (ms)*MS)

	CHECK_EQ(blk_dev_stats_init(&ds, 2), 0);

	/* One read, 10 ms. */
	blk_stats_io_start(&ds, 0, T(1000));
	blk_stats_io_done(&ds, 0, BLK_STAT_READ, 8, true, T(1000), T(1010));
	blk_dev_stats_read(&ds, &st);
	CHECK_EQ(st.ios[BLK_STAT_READ], 1);
	CHECK_EQ(st.sectors[BLK_STAT_READ], 8);
	CHECK_EQ(st.ticks_ms[BLK_STAT_READ], 10);
	CHECK_EQ(st.io_ticks_ms, 10);
	CHECK_EQ(st.in_flight, 0);

	/*
	 * Two queues overlapping: a write 2000..2010 on q0, a flush 2005..2020
	 * on q1.  The disk was busy 20 ms, the requests took 25 ms together.
	 */
	blk_stats_io_start(&ds, 0, T(2000));
	blk_stats_io_start(&ds, 1, T(2005));
	blk_dev_stats_read(&ds, &st);
	CHECK_EQ(st.in_flight, 2);
	blk_stats_io_done(&ds, 0, BLK_STAT_WRITE, 16, true, T(2000), T(2010));
	blk_stats_io_done(&ds, 1, BLK_STAT_FLUSH, 0, true, T(2005), T(2020));
	blk_dev_stats_read(&ds, &st);
	CHECK_EQ(st.io_ticks_ms, 10 + 20);
	CHECK_EQ(st.ticks_ms[BLK_STAT_WRITE], 10);
	CHECK_EQ(st.ticks_ms[BLK_STAT_FLUSH], 15);
	CHECK_EQ(st.time_in_queue_ms, 10 + 10 + 15);
	CHECK_EQ(st.ios[BLK_STAT_FLUSH], 1);

	/* Idle from 2020 to 3000 is not busy time; a failed discard counts, its sectors not. */
	blk_stats_io_start(&ds, 1, T(3000));
	blk_stats_io_done(&ds, 1, BLK_STAT_DISCARD, 64, false, T(3000), T(3004));
	blk_dev_stats_read(&ds, &st);
	CHECK_EQ(st.io_ticks_ms, 30 + 4);
	CHECK_EQ(st.ios[BLK_STAT_DISCARD], 1);
	CHECK_EQ(st.sectors[BLK_STAT_DISCARD], 0);
	CHECK_EQ(st.ticks_ms[BLK_STAT_DISCARD], 4);
	CHECK_EQ(st.time_in_queue_ms, 39);
	for (int d = 0; d < BLK_STAT__COUNT; d++)
		CHECK_EQ(st.merges[d], 0);

	blk_dev_stats_destroy(&ds);
#undef T
}

struct race {
	struct blk_dev_stats ds;
	atomic_bool stop;
};

/* A queue thread: every request is 8 sectors and 3 ms long. */
static void *writer(void *arg)
{
	struct race *r = arg;
	uint64_t t = 10000 * MS;

	while (!atomic_load(&r->stop)) {
		blk_stats_io_start(&r->ds, 1, t);
		blk_stats_io_done(&r->ds, 1, BLK_STAT_WRITE, 8, true, t, t + 3 * MS);
		t += 3 * MS;
	}
	return NULL;
}

static void test_consistent_snapshots(void)
{
	struct race r;
	pthread_t th;
	uint64_t last = 0;

	CHECK_EQ(blk_dev_stats_init(&r.ds, 2), 0);
	atomic_init(&r.stop, false);
	CHECK_EQ(pthread_create(&th, NULL, writer, &r), 0);
	for (int i = 0; i < 200000 || last < 1000; i++) {
		struct blk_stats st;

		blk_dev_stats_read(&r.ds, &st);
		/* Fields of one snapshot belong together: a torn read would not. */
		if (st.sectors[BLK_STAT_WRITE] != 8 * st.ios[BLK_STAT_WRITE] ||
		    st.ticks_ms[BLK_STAT_WRITE] != 3 * st.ios[BLK_STAT_WRITE] || st.in_flight > 1)
			FAIL("torn snapshot: ios %llu sectors %llu ticks %llu in flight %llu",
			     (unsigned long long)st.ios[BLK_STAT_WRITE],
			     (unsigned long long)st.sectors[BLK_STAT_WRITE],
			     (unsigned long long)st.ticks_ms[BLK_STAT_WRITE],
			     (unsigned long long)st.in_flight);
		CHECK(st.ios[BLK_STAT_WRITE] >= last);
		last = st.ios[BLK_STAT_WRITE];
	}
	atomic_store(&r.stop, true);
	pthread_join(th, NULL);
	blk_dev_stats_destroy(&r.ds);
}

/* Bucket i holds up to 2^i us; the last everything longer; per queue and summed. */
static void test_lat_hist(void)
{
	struct blk_dev_stats ds;
	struct blk_lat_hist h;
	struct blk_stats st;
	uint64_t base = blk_stats_now_ns(), total = 0;

	CHECK_EQ(blk_lat_bucket(0), 0);
	CHECK_EQ(blk_lat_bucket(1024), 0);
	CHECK_EQ(blk_lat_bucket(1025), 1);
	CHECK_EQ(blk_lat_bucket(2048), 1);
	CHECK_EQ(blk_lat_bucket(2049), 2);
	CHECK_EQ(blk_lat_bucket(100 * 1000), 7); /* 100 us <= 131.072 us */
	CHECK_EQ(blk_lat_bucket(131072), 7);
	CHECK_EQ(blk_lat_bucket(131073), 8);
	CHECK_EQ(blk_lat_bucket(1ull << 32), BLK_LAT_BUCKETS - 2);
	CHECK_EQ(blk_lat_bucket((1ull << 32) + 1), BLK_LAT_BUCKETS - 1);
	CHECK_EQ(blk_lat_bucket(UINT64_MAX / 2), BLK_LAT_BUCKETS - 1);

	CHECK_EQ(blk_dev_stats_init(&ds, 2), 0);
	blk_stats_io_start(&ds, 0, base);
	blk_stats_io_done(&ds, 0, BLK_STAT_READ, 8, true, base, base + 100 * 1000);
	blk_stats_io_start(&ds, 1, base);
	blk_stats_io_done(&ds, 1, BLK_STAT_READ, 8, true, base, base + 90 * 1000);
	blk_stats_io_start(&ds, 1, base);
	blk_stats_io_done(&ds, 1, BLK_STAT_WRITE, 8, true, base, base + 10ull * 1000 * MS);
	blk_dev_stats_read_hist(&ds, &h);
	CHECK_EQ(h.b[BLK_STAT_READ][7], 2);
	CHECK_EQ(h.sum_ns[BLK_STAT_READ], 190 * 1000);
	CHECK_EQ(h.b[BLK_STAT_WRITE][BLK_LAT_BUCKETS - 1], 1);
	for (int d = 0; d < BLK_STAT__COUNT; d++)
		for (int i = 0; i < BLK_LAT_BUCKETS; i++)
			total += h.b[d][i];
	CHECK_EQ(total, 3);
	blk_dev_stats_read_queue(&ds, 1, &st);
	CHECK_EQ(st.ios[BLK_STAT_READ], 1);
	CHECK_EQ(st.ios[BLK_STAT_WRITE], 1);
	CHECK_EQ(st.ticks_ms[BLK_STAT_WRITE], 10000);
	blk_dev_stats_destroy(&ds);
}

int main(void)
{
	test_io_ticks();
	test_lat_hist();
	test_consistent_snapshots();
	printf("ok\n");
	return 0;
}
