// SPDX-License-Identifier: MIT
/*
 * test_lat_hist.c - vhost-bench's latency histogram: every value lands in
 * a bucket that holds it, buckets are within 1/32 of their value, the
 * percentiles of known distributions come out right, and merging two
 * histograms equals filling one.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "lat_hist.h"

static uint64_t rng = 88172645463325252ull;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void test_buckets(void)
{
	uint64_t v, lo, hi;
	unsigned int b;

	for (int i = 0; i < 1000000; i++) {
		v = next() >> (next() % 64);
		b = lat_hist_bucket(v);
		lo = lat_hist_bucket_low(b);
		hi = lat_hist_bucket_high(b);
		CHECK_MSG(b < LAT_HIST_BUCKETS && lo <= v && v <= hi,
			  "v=%llu in bucket %u [%llu,%llu]", (unsigned long long)v, b,
			  (unsigned long long)lo, (unsigned long long)hi);
		CHECK_MSG(lo < LAT_HIST_SUB || (double)(hi - lo) <= (double)lo / LAT_HIST_SUB,
			  "bucket %u too wide", b);
	}
	CHECK_MSG(lat_hist_bucket(UINT64_MAX) == LAT_HIST_BUCKETS - 1, "top bucket");
	/* Buckets tile the number line without gaps. */
	for (b = 0; b + 1 < LAT_HIST_BUCKETS; b++)
		CHECK_MSG(lat_hist_bucket_high(b) + 1 == lat_hist_bucket_low(b + 1), "gap after %u",
			  b);
}

static void near(double got, double want, const char *what)
{
	CHECK_MSG(fabs(got - want) <= want * 0.035 + 1, "%s: got %.0f, want %.0f", what, got, want);
}

static void test_percentiles(void)
{
	static struct lat_hist a, b, all;

	lat_hist_init(&a);
	lat_hist_init(&b);
	lat_hist_init(&all);
	CHECK_MSG(lat_hist_percentile(&a, 50) == 0, "empty histogram");
	/* 1..100000 ns, split over two histograms. */
	for (uint64_t v = 1; v <= 100000; v++) {
		lat_hist_add(v % 2 ? &a : &b, v);
		lat_hist_add(&all, v);
	}
	lat_hist_merge(&a, &b);
	CHECK_MSG(a.count == all.count && a.sum == all.sum && a.min == 1 && a.max == 100000,
		  "merge totals");
	for (unsigned int i = 0; i < LAT_HIST_BUCKETS; i++)
		CHECK_MSG(a.buckets[i] == all.buckets[i], "merge bucket %u", i);
	near((double)lat_hist_percentile(&a, 50), 50000, "p50");
	near((double)lat_hist_percentile(&a, 99), 99000, "p99");
	near((double)lat_hist_percentile(&a, 99.9), 99900, "p99.9");
	CHECK_MSG(lat_hist_percentile(&a, 100) <= 100000, "p100 above max");

	/* One slow outlier in a thousand shows at p99.9, not at p99. */
	lat_hist_init(&a);
	for (int i = 0; i < 999; i++)
		lat_hist_add(&a, 10000);
	lat_hist_add(&a, 5000000);
	near((double)lat_hist_percentile(&a, 99), 10000, "p99 without outlier");
	near((double)lat_hist_percentile(&a, 99.95), 5000000, "p99.95 is the outlier");
}

int main(void)
{
	test_buckets();
	test_percentiles();
	printf("lat_hist: all checks passed\n");
	return 0;
}
