// SPDX-License-Identifier: MIT
/*
 * test_memmap.c - guest memory maps: translation at the edges of regions,
 * refusal of straddling ranges and of overlapping or wrapping regions, and
 * the reference count that runs each region's release hook exactly once.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "virtq/memmap.h"

static uint8_t host[4][4096];

static struct mem_region region(uint64_t gpa, uint64_t size, uint64_t uva, void *hva)
{
	return (struct mem_region){.gpa = gpa, .size = size, .uva = uva, .hva = hva};
}

/* Two regions adjacent in gpa, apart in uva and host memory. */
static struct memmap *two_regions(void)
{
	struct mem_region r[2] = {
		region(0x2000, 4096, 0x7000000, host[2]),
		region(0x1000, 4096, 0x9000000, host[0]),
	};
	struct memmap *map = memmap_new(r, 2);

	CHECK(map);
	return map;
}

static void translate_edges(void)
{
	struct memmap *map = two_regions();

	CHECK_EQ(map->nr, 2);
	/* Sorted by gpa whatever order they came in. */
	CHECK_EQ(map->regions[0].gpa, 0x1000);
	CHECK_EQ(map->regions[1].gpa, 0x2000);

	CHECK(memmap_gpa_to_hva(map, 0x1000, 1) == host[0]);
	CHECK(memmap_gpa_to_hva(map, 0x1000, 4096) == host[0]);
	CHECK(memmap_gpa_to_hva(map, 0x1fff, 1) == host[0] + 4095);
	CHECK(memmap_gpa_to_hva(map, 0x1800, 0x800) == host[0] + 0x800);
	CHECK(memmap_gpa_to_hva(map, 0x2000, 1) == host[2]);
	CHECK(memmap_gpa_to_hva(map, 0x2fff, 1) == host[2] + 4095);
	/* Zero length inside a region is that address; past the end it is nothing. */
	CHECK(memmap_gpa_to_hva(map, 0x1fff, 0) == host[0] + 4095);
	CHECK(memmap_gpa_to_hva(map, 0x3000, 0) == NULL);

	/* One byte too many, before the first, after the last. */
	CHECK(memmap_gpa_to_hva(map, 0x2000, 4097) == NULL);
	CHECK(memmap_gpa_to_hva(map, 0xfff, 1) == NULL);
	CHECK(memmap_gpa_to_hva(map, 0xfff, 2) == NULL);
	CHECK(memmap_gpa_to_hva(map, 0x3000, 1) == NULL);
	CHECK(memmap_gpa_to_hva(map, 0x2fff, 2) == NULL);
	CHECK(memmap_gpa_to_hva(map, 0, 1) == NULL);

	/* Lengths and addresses that would wrap a naive end computation. */
	CHECK(memmap_gpa_to_hva(map, 0x1000, UINT64_MAX) == NULL);
	CHECK(memmap_gpa_to_hva(map, 0x1001, UINT64_MAX) == NULL);
	CHECK(memmap_gpa_to_hva(map, 0x1fff, UINT64_MAX - 0xffe) == NULL);
	CHECK(memmap_gpa_to_hva(map, UINT64_MAX, 1) == NULL);
	CHECK(memmap_gpa_to_hva(map, UINT64_MAX, 0x1002) == NULL);

	CHECK(memmap_find_gpa(map, 0x1000) == &map->regions[0]);
	CHECK(memmap_find_gpa(map, 0x2fff) == &map->regions[1]);
	CHECK(memmap_find_gpa(map, 0x3000) == NULL);
	CHECK(memmap_find_gpa(map, 0xfff) == NULL);
	memmap_put(map);
}

/* Adjacent in gpa but not in host memory: one buffer across both is refused. */
static void straddle_refused(void)
{
	struct memmap *map = two_regions();

	CHECK(memmap_gpa_to_hva(map, 0x1fff, 2) == NULL);
	CHECK(memmap_gpa_to_hva(map, 0x1000, 8192) == NULL);
	CHECK(memmap_gpa_to_hva(map, 0x1800, 0x1000) == NULL);
	CHECK(memmap_uva_to_hva(map, 0x7000fff, 2) == NULL);
	memmap_put(map);
}

static void translate_uva(void)
{
	struct memmap *map = two_regions();

	CHECK(memmap_uva_to_hva(map, 0x7000000, 4096) == host[2]);
	CHECK(memmap_uva_to_hva(map, 0x9000fff, 1) == host[0] + 4095);
	CHECK(memmap_uva_to_hva(map, 0x9001000, 1) == NULL);
	CHECK(memmap_uva_to_hva(map, 0x6ffffff, 1) == NULL);
	CHECK(memmap_uva_to_hva(map, 0x6ffffff, 2) == NULL);
	CHECK(memmap_uva_to_hva(map, 0x7000001, UINT64_MAX) == NULL);
	/* A gpa is not a uva. */
	CHECK(memmap_uva_to_hva(map, 0x1000, 1) == NULL);
	memmap_put(map);
}

/* Many regions with holes: every boundary of the binary search. */
static void many_regions(void)
{
	struct mem_region r[MEMMAP_MAX_REGIONS];
	static uint8_t mem[MEMMAP_MAX_REGIONS][64];
	struct memmap *map;

	/* Given in a scrambled order; region i at gpa 0x1000 * i + 0x100. */
	for (unsigned int k = 0; k < MEMMAP_MAX_REGIONS; k++) {
		unsigned int i = (k * 7) % MEMMAP_MAX_REGIONS;

		r[k] = region(0x1000ull * i + 0x100, 64, 0x100000ull * i, mem[i]);
	}
	map = memmap_new(r, MEMMAP_MAX_REGIONS);
	CHECK(map);
	for (unsigned int i = 0; i < MEMMAP_MAX_REGIONS; i++) {
		uint64_t gpa = 0x1000ull * i + 0x100;

		CHECK(memmap_gpa_to_hva(map, gpa, 64) == mem[i]);
		CHECK(memmap_gpa_to_hva(map, gpa + 63, 1) == mem[i] + 63);
		CHECK(memmap_gpa_to_hva(map, gpa - 1, 1) == NULL);
		CHECK(memmap_gpa_to_hva(map, gpa + 64, 1) == NULL);
		CHECK(memmap_gpa_to_hva(map, gpa + 1, 64) == NULL);
		CHECK(memmap_find_gpa(map, gpa)->hva == mem[i]);
	}
	memmap_put(map);

	/* One more than the limit is refused. */
	{
		struct mem_region big[MEMMAP_MAX_REGIONS + 1];

		memcpy(big, r, sizeof(r));
		big[MEMMAP_MAX_REGIONS] = region(0x100000000ull, 64, 0x900000000ull, host[0]);
		errno = 0;
		CHECK(memmap_new(big, MEMMAP_MAX_REGIONS + 1) == NULL);
		CHECK_EQ(errno, EINVAL);
	}
}

static void expect_invalid(const struct mem_region *r, unsigned int nr, const char *why)
{
	struct memmap *map;

	errno = 0;
	map = memmap_new(r, nr);
	if (map) {
		memmap_put(map);
		FAIL("memmap_new accepted %s", why);
	}
	CHECK_EQ(errno, EINVAL);
}

static void invalid_regions(void)
{
	struct mem_region r[2];
	struct memmap *map;

	r[0] = region(0x1000, 0, 0x1000, host[0]);
	expect_invalid(r, 1, "an empty region");
	r[0] = region(0x1000, 4096, 0x1000, NULL);
	expect_invalid(r, 1, "a region with no host address");
	r[0] = region(UINT64_MAX - 4094, 4096, 0x1000, host[0]);
	expect_invalid(r, 1, "a region wrapping the gpa space");
	/* Ending exactly at 2^64 counts as wrapping too (its end is not representable). */
	r[0] = region(UINT64_MAX - 4095, 4096, 0x1000, host[0]);
	expect_invalid(r, 1, "a region ending at 2^64");
	r[0] = region(0x1000, 4096, UINT64_MAX - 100, host[0]);
	expect_invalid(r, 1, "a region wrapping the uva space");

	r[0] = region(0x1000, 4096, 0x10000, host[0]);
	r[1] = region(0x1fff, 4096, 0x20000, host[1]);
	expect_invalid(r, 2, "regions overlapping by one byte in gpa");
	r[1] = region(0x0, 0x10000, 0x20000, host[1]);
	expect_invalid(r, 2, "a region containing another in gpa");
	r[1] = region(0x8000, 4096, 0x10fff, host[1]);
	expect_invalid(r, 2, "regions overlapping in uva");
	r[1] = region(0x1000, 4096, 0x40000, host[1]);
	expect_invalid(r, 2, "two regions at the same gpa");

	/* Touching, not overlapping: fine, in both spaces. */
	r[1] = region(0x2000, 4096, 0x11000, host[1]);
	map = memmap_new(r, 2);
	CHECK(map);
	memmap_put(map);

	/* No regions at all is a valid, empty map. */
	map = memmap_new(NULL, 0);
	CHECK(map);
	CHECK(memmap_gpa_to_hva(map, 0, 1) == NULL);
	CHECK(memmap_find_gpa(map, 0) == NULL);
	memmap_put(map);
}

static unsigned int released[4];
static void *released_addr[4];

static void on_release(struct mem_region *r)
{
	unsigned int i = (unsigned int)((uint8_t(*)[4096])r->hva - host);

	released[i]++;
	released_addr[i] = r->mmap_addr;
}

static void refcount_release(void)
{
	struct mem_region r[2] = {
		region(0x1000, 4096, 0x1000, host[0]),
		region(0x8000, 4096, 0x8000, host[3]),
	};
	struct memmap *map, *ref;

	r[0].release = on_release;
	r[0].mmap_addr = (void *)0x1234;
	r[1].release = on_release;
	r[1].mmap_addr = (void *)0x5678;
	map = memmap_new(r, 2);
	CHECK(map);
	/* The map holds copies: changing the caller's array changes nothing. */
	r[0].hva = host[1];
	CHECK(memmap_gpa_to_hva(map, 0x1000, 1) == host[0]);

	CHECK_EQ(atomic_load(&map->refcount), 1);
	ref = memmap_get(map);
	CHECK(ref == map);
	CHECK_EQ(atomic_load(&map->refcount), 2);
	memmap_get(map);
	memmap_put(map);
	memmap_put(map);
	CHECK_EQ(released[0] + released[3], 0);
	/* Still usable by the last holder. */
	CHECK(memmap_gpa_to_hva(map, 0x8000, 4096) == host[3]);
	memmap_put(map);
	CHECK_EQ(released[0], 1);
	CHECK_EQ(released[3], 1);
	CHECK(released_addr[0] == (void *)0x1234);
	CHECK(released_addr[3] == (void *)0x5678);

	/* NULL release hooks and a NULL map are fine. */
	map = memmap_new(r, 1);
	CHECK(map);
	map->regions[0].release = NULL;
	memmap_put(map);
	memmap_put(NULL);
}

/* Takers on several threads: the hook still runs once, after the last put. */
static void *get_put_many(void *arg)
{
	struct memmap *map = arg;

	for (int i = 0; i < 100000; i++) {
		memmap_get(map);
		CHECK(memmap_gpa_to_hva(map, 0x1000, 1) == host[0]);
		memmap_put(map);
	}
	memmap_put(map);
	return NULL;
}

static void refcount_threads(void)
{
	struct mem_region r = region(0x1000, 4096, 0x1000, host[0]);
	pthread_t t[4];
	struct memmap *map;

	r.release = on_release;
	released[0] = 0;
	map = memmap_new(&r, 1);
	CHECK(map);
	for (int i = 0; i < 4; i++) {
		memmap_get(map);
		CHECK_EQ(pthread_create(&t[i], NULL, get_put_many, map), 0);
	}
	memmap_put(map);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	CHECK_EQ(released[0], 1);
}

/*
 * The hinted lookup answers exactly as the plain one, whatever the hint
 * (right region, wrong region, out of range), and leaves the hint on the
 * region it found.
 */
static void translate_hint(void)
{
	static const uint64_t probes[][2] = {
		{0x1000, 1}, {0x1fff, 1}, {0x1fff, 2}, {0x2000, 4096}, {0x2000, 4097},
		{0x1fff, 0}, {0x3000, 0}, {0xfff, 2}, {0x1001, UINT64_MAX}, {UINT64_MAX, 1},
	};
	struct memmap *map = two_regions();

	for (unsigned int p = 0; p < ARRAY_SIZE(probes); p++) {
		void *want = memmap_gpa_to_hva(map, probes[p][0], probes[p][1]);

		for (unsigned int h = 0; h < 4; h++) {
			unsigned int hint = h == 3 ? UINT32_MAX : h;
			void *got = memmap_gpa_to_hva_hint(map, probes[p][0], probes[p][1], &hint);

			CHECK(got == want);
			if (want)
				CHECK(&map->regions[hint] == memmap_find_gpa(map, probes[p][0]));
		}
	}
	memmap_put(map);
}

/* clang-format off */
static const struct test_case cases[] = {
	{ "translate_edges", translate_edges },
	{ "translate_hint", translate_hint },
	{ "straddle_refused", straddle_refused },
	{ "translate_uva", translate_uva },
	{ "many_regions", many_regions },
	{ "invalid_regions", invalid_regions },
	{ "refcount_release", refcount_release },
	{ "refcount_threads", refcount_threads },
};
/* clang-format on */

int main(int argc, char **argv)
{
	return test_main(argc, argv, cases, ARRAY_SIZE(cases));
}
