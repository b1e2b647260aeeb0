// SPDX-License-Identifier: MIT
/*
 * memmap.c - immutable, reference-counted guest memory maps.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "memmap.h"

static int region_cmp_gpa(const void *a, const void *b)
{
	const struct mem_region *ra = a, *rb = b;

	return ra->gpa < rb->gpa ? -1 : ra->gpa > rb->gpa;
}

/* [a, a+alen) and [b, b+blen) intersect; both known not to wrap. */
static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

static bool region_valid(const struct mem_region *r)
{
	return r->size && r->hva && r->gpa + r->size > r->gpa && r->uva + r->size > r->uva;
}

struct memmap *memmap_new(const struct mem_region *regions, unsigned int nr)
{
	struct memmap *map;

	if (nr > MEMMAP_MAX_REGIONS) {
		errno = EINVAL;
		return NULL;
	}
	for (unsigned int i = 0; i < nr; i++) {
		if (!region_valid(&regions[i]))
			goto invalid;
		for (unsigned int j = 0; j < i; j++) {
			if (ranges_overlap(regions[i].gpa, regions[i].size, regions[j].gpa,
					   regions[j].size) ||
			    ranges_overlap(regions[i].uva, regions[i].size, regions[j].uva,
					   regions[j].size))
				goto invalid;
		}
	}

	map = malloc(sizeof(*map) + nr * sizeof(map->regions[0]));
	if (!map)
		return NULL;
	atomic_init(&map->refcount, 1);
	map->nr = nr;
	if (nr) {
		memcpy(map->regions, regions, nr * sizeof(regions[0]));
		qsort(map->regions, nr, sizeof(regions[0]), region_cmp_gpa);
	}
	return map;

invalid:
	errno = EINVAL;
	return NULL;
}

struct memmap *memmap_get_many(struct memmap *map, unsigned int n)
{
	atomic_fetch_add_explicit(&map->refcount, n, memory_order_relaxed);
	return map;
}

struct memmap *memmap_get(struct memmap *map)
{
	return memmap_get_many(map, 1);
}

void memmap_put_many(struct memmap *map, unsigned int n)
{
	if (!map || !n)
		return;
	/* acq_rel: the releasing thread must see every user's last access. */
	if (atomic_fetch_sub_explicit(&map->refcount, n, memory_order_acq_rel) != n)
		return;
	for (unsigned int i = 0; i < map->nr; i++) {
		if (map->regions[i].release)
			map->regions[i].release(&map->regions[i]);
	}
	free(map);
}

void memmap_put(struct memmap *map)
{
	memmap_put_many(map, 1);
}

const struct mem_region *memmap_find_gpa(const struct memmap *map, uint64_t gpa)
{
	unsigned int lo = 0, hi = map->nr;

	/* Regions are sorted and disjoint: binary search on the start. */
	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;
		const struct mem_region *r = &map->regions[mid];

		if (gpa < r->gpa)
			hi = mid;
		else if (gpa - r->gpa >= r->size)
			lo = mid + 1;
		else
			return r;
	}
	return NULL;
}

/* Offset of [addr, addr+len) in a region starting at @start, or -1. */
static bool range_in(uint64_t start, uint64_t size, uint64_t addr, uint64_t len,
		     uint64_t *off)
{
	if (addr < start)
		return false;
	*off = addr - start;
	/* Written so that nothing can overflow: off < size, len <= size - off. */
	return *off < size && len <= size - *off;
}

void *memmap_gpa_to_hva_idx(const struct memmap *map, uint64_t gpa, uint64_t len,
			    unsigned int *idx)
{
	const struct mem_region *r = memmap_find_gpa(map, gpa);
	uint64_t off;

	if (!r || !range_in(r->gpa, r->size, gpa, len, &off))
		return NULL;
	*idx = (unsigned int)(r - map->regions);
	return (uint8_t *)r->hva + off;
}

void *memmap_gpa_to_hva(const struct memmap *map, uint64_t gpa, uint64_t len)
{
	unsigned int idx;

	return memmap_gpa_to_hva_idx(map, gpa, len, &idx);
}

void *memmap_uva_to_hva(const struct memmap *map, uint64_t uva, uint64_t len)
{
	uint64_t off;

	/* Ring addresses are translated once per SET_VRING_ADDR: a scan is fine. */
	for (unsigned int i = 0; i < map->nr; i++) {
		const struct mem_region *r = &map->regions[i];

		if (range_in(r->uva, r->size, uva, len, &off))
			return (uint8_t *)r->hva + off;
	}
	return NULL;
}

bool memmap_hva_to_gpa(const struct memmap *map, const void *hva, uint64_t len, uint64_t *gpa)
{
	uint64_t off;

	for (unsigned int i = 0; i < map->nr; i++) {
		const struct mem_region *r = &map->regions[i];

		if (range_in((uintptr_t)r->hva, r->size, (uintptr_t)hva, len, &off)) {
			*gpa = r->gpa + off;
			return true;
		}
	}
	return false;
}

bool memmap_uva_to_gpa(const struct memmap *map, uint64_t uva, uint64_t len, uint64_t *gpa)
{
	uint64_t off;

	for (unsigned int i = 0; i < map->nr; i++) {
		const struct mem_region *r = &map->regions[i];

		if (range_in(r->uva, r->size, uva, len, &off)) {
			*gpa = r->gpa + off;
			return true;
		}
	}
	return false;
}
