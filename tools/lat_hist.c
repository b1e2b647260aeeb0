// SPDX-License-Identifier: MIT
/*
 * lat_hist.c - log-linear latency histogram.
 */
#include <math.h>
#include <string.h>

#include "lat_hist.h"

void lat_hist_init(struct lat_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

void lat_hist_merge(struct lat_hist *dst, const struct lat_hist *src)
{
	for (unsigned int i = 0; i < LAT_HIST_BUCKETS; i++)
		dst->buckets[i] += src->buckets[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t lat_hist_bucket_low(unsigned int idx)
{
	unsigned int group = idx / LAT_HIST_SUB, sub = idx % LAT_HIST_SUB;
	unsigned int shift;

	if (group == 0)
		return idx;
	/* Group g holds [2^(g+SUB_BITS-1), 2^(g+SUB_BITS)), in SUB steps. */
	shift = group - 1;
	return ((uint64_t)LAT_HIST_SUB + sub) << shift;
}

uint64_t lat_hist_bucket_high(unsigned int idx)
{
	if (idx + 1 == LAT_HIST_BUCKETS)
		return UINT64_MAX;
	return lat_hist_bucket_low(idx + 1) - 1;
}

uint64_t lat_hist_percentile(const struct lat_hist *h, double pct)
{
	uint64_t rank, seen = 0, low, high, mid;
	unsigned int i;

	if (!h->count)
		return 0;
	/* The nearest-rank definition: the smallest value with >= pct% at or below. */
	rank = (uint64_t)ceil(pct / 100.0 * (double)h->count);
	if (rank < 1)
		rank = 1;
	if (rank > h->count)
		rank = h->count;
	for (i = 0; i < LAT_HIST_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen >= rank)
			break;
	}
	if (i == LAT_HIST_BUCKETS)
		return h->max;
	low = lat_hist_bucket_low(i);
	high = lat_hist_bucket_high(i);
	mid = low + (high - low) / 2;
	if (mid < h->min)
		mid = h->min;
	if (mid > h->max)
		mid = h->max;
	return mid;
}
