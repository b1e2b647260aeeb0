/* SPDX-License-Identifier: MIT */
/*
 * lat_hist.h - a log-linear latency histogram (as HdrHistogram or fio's
 * clat buckets): each power of two is cut into 2^LAT_HIST_SUB_BITS equal
 * buckets, so any value is kept to within 1/32 (3%) over the whole 64-bit
 * range in a fixed 15 KiB, with an O(1) add that never allocates.  One per
 * thread, merged at the end.
 */
#ifndef VHOSTD_TOOLS_LAT_HIST_H
#define VHOSTD_TOOLS_LAT_HIST_H

#include <stdint.h>

#define LAT_HIST_SUB_BITS 5
#define LAT_HIST_SUB	  (1u << LAT_HIST_SUB_BITS)
/* Values below LAT_HIST_SUB are exact; then one group per power of two. */
#define LAT_HIST_BUCKETS ((64 - LAT_HIST_SUB_BITS + 1) * LAT_HIST_SUB)

struct lat_hist {
	uint64_t count;
	uint64_t sum;
	uint64_t min;
	uint64_t max;
	uint64_t buckets[LAT_HIST_BUCKETS];
};

static inline unsigned int lat_hist_bucket(uint64_t v)
{
	unsigned int msb;

	if (v < LAT_HIST_SUB)
		return (unsigned int)v;
	msb = 63u - (unsigned int)__builtin_clzll(v);
	return (msb - LAT_HIST_SUB_BITS + 1) * LAT_HIST_SUB +
	       (unsigned int)((v >> (msb - LAT_HIST_SUB_BITS)) & (LAT_HIST_SUB - 1));
}

static inline void lat_hist_add(struct lat_hist *h, uint64_t v)
{
	h->buckets[lat_hist_bucket(v)]++;
	h->count++;
	h->sum += v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

void lat_hist_init(struct lat_hist *h);

/* Add @src's samples to @dst. */
void lat_hist_merge(struct lat_hist *dst, const struct lat_hist *src);

/* Smallest and largest value bucket @idx holds. */
uint64_t lat_hist_bucket_low(unsigned int idx);
uint64_t lat_hist_bucket_high(unsigned int idx);

/*
 * The value at percentile @pct (0 < pct <= 100): the middle of the bucket
 * holding that rank, clamped to [min, max].  0 for an empty histogram.
 */
uint64_t lat_hist_percentile(const struct lat_hist *h, double pct);

#endif /* VHOSTD_TOOLS_LAT_HIST_H */
