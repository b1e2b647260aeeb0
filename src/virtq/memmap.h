/* SPDX-License-Identifier: MIT */
/*
 * memmap.h - guest memory maps: guest-physical ranges and where they are
 * mapped in this process.
 *
 * A map is immutable once built and reference counted (the
 * yc-libvhost-server model): a queue takes the current map when it pops a
 * chain and every in-flight request holds its own reference, so a new
 * memory table (SET_MEM_TABLE, ADD/REM_MEM_REG) installs a new map without
 * pulling memory from under an I/O.  The last memmap_put() runs each
 * region's release hook (munmap for vhost-user regions).
 *
 * Translation refuses anything not wholly inside one region: a buffer that
 * straddles two regions is rejected rather than split, and all bounds
 * arithmetic is overflow-checked because every address comes from the
 * untrusted peer.
 */
#ifndef VHOSTD_VIRTQ_MEMMAP_H
#define VHOSTD_VIRTQ_MEMMAP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* vhost-user's VHOST_USER_GET_MAX_MEM_SLOTS answer and our hard limit. */
#define MEMMAP_MAX_REGIONS 32

struct mem_region {
	uint64_t gpa;	/* guest-physical start */
	uint64_t size;	/* bytes */
	uint64_t uva;	/* the front-end's virtual address of gpa (vring addresses) */
	void *hva;	/* where gpa is mapped in this process */
	/* Called once, by the last memmap_put(), for each region. May be NULL. */
	void (*release)(struct mem_region *r);
	void *mmap_addr;	/* for release: the whole mapping */
	size_t mmap_size;
};

struct memmap {
	atomic_uint refcount;
	unsigned int nr;
	struct mem_region regions[]; /* sorted by gpa, non-overlapping */
};

/*
 * Build a map from @nr regions (copied).  Returns NULL (errno EINVAL) if a
 * region is empty, wraps the 64-bit space, or overlaps another in either
 * guest-physical or front-end-virtual space; ENOMEM on allocation failure.
 * The new map holds one reference.
 */
struct memmap *memmap_new(const struct mem_region *regions, unsigned int nr);

/* Take / drop a reference; the last put releases every region and frees. */
struct memmap *memmap_get(struct memmap *map);
void memmap_put(struct memmap *map);
/* The same for @n references at once: one atomic operation. */
struct memmap *memmap_get_many(struct memmap *map, unsigned int n);
void memmap_put_many(struct memmap *map, unsigned int n);

/* Host pointer for [gpa, gpa+len) if it lies inside one region, else NULL. */
void *memmap_gpa_to_hva(const struct memmap *map, uint64_t gpa, uint64_t len);

/* The same, also storing the index of the region found in *@idx. */
void *memmap_gpa_to_hva_idx(const struct memmap *map, uint64_t gpa, uint64_t len,
			    unsigned int *idx);

/*
 * memmap_gpa_to_hva() for a caller that translates many addresses in a
 * row (a queue walking chains, whose buffers mostly sit in one region):
 * region *@hint is tried first, inline, and *@hint becomes the region
 * found.  Any *@hint is safe: it is checked against this map.
 */
static inline void *memmap_gpa_to_hva_hint(const struct memmap *map, uint64_t gpa, uint64_t len,
					   unsigned int *hint)
{
	if (*hint < map->nr) {
		const struct mem_region *r = &map->regions[*hint];
		uint64_t off = gpa - r->gpa;

		/* The full lookup's test, overflow-free: inside, and len fits after off. */
		if (gpa >= r->gpa && off < r->size && len <= r->size - off)
			return (uint8_t *)r->hva + off;
	}
	return memmap_gpa_to_hva_idx(map, gpa, len, hint);
}

/* Same, for an address in the front-end's virtual address space. */
void *memmap_uva_to_hva(const struct memmap *map, uint64_t uva, uint64_t len);

/*
 * The other way, for the dirty log: the guest-physical address of host
 * range [@hva, @hva + @len) if it lies inside one region (true, *@gpa
 * set), else false.  A scan: only used while a migration runs.
 */
bool memmap_hva_to_gpa(const struct memmap *map, const void *hva, uint64_t len, uint64_t *gpa);

/* The guest-physical address of front-end address range [@uva, +@len), as above. */
bool memmap_uva_to_gpa(const struct memmap *map, uint64_t uva, uint64_t len, uint64_t *gpa);

/* The region holding @gpa, or NULL (for ADD/REM_MEM_REG and diagnostics). */
const struct mem_region *memmap_find_gpa(const struct memmap *map, uint64_t gpa);

#endif /* VHOSTD_VIRTQ_MEMMAP_H */
