// SPDX-License-Identifier: MIT
/*
 * ring_fixture.c - hand-written rings in guarded guest memory.
 */
#include <stdlib.h>
#include <string.h>

#include "ring_fixture.h"
#include "test_util.h"

#define FIX_UVA_A 0x7f0000000000ull

void fixture_create(struct ring_fixture *f, size_t a_size, size_t b_size, unsigned int flags)
{
	size_t page = test_page_size();
	struct mem_region r[3] = {0};
	unsigned int nr = 2;

	memset(f, 0, sizeof(*f));
	f->a_size = (a_size + page - 1) / page * page;
	f->b_size = (b_size + page - 1) / page * page;
	f->canary_size = page;
	guarded_alloc(&f->arena, f->a_size + f->canary_size + f->b_size + f->canary_size);
	f->a = f->arena.mem;
	f->canary[0] = f->a + f->a_size;
	f->b = f->canary[0] + f->canary_size;
	f->canary[1] = f->b + f->b_size;
	for (int i = 0; i < 2; i++) {
		f->canary_ref[i] = malloc(f->canary_size);
		if (!f->canary_ref[i])
			FAIL("out of memory");
		canary_fill(f->canary_ref[i], f->canary_size, (uint8_t)(i + 1));
	}

	r[0] = (struct mem_region){
		.gpa = FIX_GPA_A, .size = f->a_size, .uva = FIX_UVA_A, .hva = f->a};
	r[1] = (struct mem_region){.gpa = FIX_GPA_A + f->a_size,
				   .size = f->b_size,
				   .uva = FIX_UVA_A + f->a_size,
				   .hva = f->b};
	if (flags & FIX_BIG) {
		f->big = reserve_untouchable(FIX_BIG_SIZE);
		r[2] = (struct mem_region){.gpa = FIX_GPA_BIG,
					   .size = FIX_BIG_SIZE,
					   .uva = FIX_UVA_A + FIX_GPA_BIG,
					   .hva = f->big};
		nr = 3;
	}
	f->mem = memmap_new(r, nr);
	f->mem_a = memmap_new(r, 1);
	if (!f->mem || !f->mem_a)
		FAIL("memmap_new: %m");
	fixture_reset(f);
}

void fixture_destroy(struct ring_fixture *f)
{
	fixture_ring_fini(f);
	memmap_put(f->mem);
	memmap_put(f->mem_a);
	if (f->big)
		release_untouchable(f->big, FIX_BIG_SIZE);
	guarded_free(&f->arena);
	free(f->canary_ref[0]);
	free(f->canary_ref[1]);
}

void fixture_reset(struct ring_fixture *f)
{
	fixture_ring_fini(f);
	memset(f->a, 0, f->a_size);
	memset(f->b, 0, f->b_size);
	memcpy(f->canary[0], f->canary_ref[0], f->canary_size);
	memcpy(f->canary[1], f->canary_ref[1], f->canary_size);
}

static size_t split_used_off(uint16_t num)
{
	return vring_align(vring_desc_size(num) + vring_avail_size(num), VRING_USED_ALIGN);
}

size_t fixture_ring_bytes(bool packed, uint16_t num)
{
	return packed ? vring_packed_size(num) : vring_split_size(num, VRING_USED_ALIGN);
}

int fixture_ring_init(struct ring_fixture *f, bool packed, uint16_t num, uint64_t features,
		      uint16_t base, struct memmap *mem)
{
	struct virtq_config cfg = {
		.num = num,
		.features = features,
		.base = base,
		.mem = mem ? mem : f->mem,
		.name = "test:q0",
	};
	int ret;

	fixture_ring_fini(f);
	f->packed = packed;
	f->num = num;
	f->features = features;
	f->data_off = vring_align(fixture_ring_bytes(packed, num), 64);
	if (f->data_off >= f->a_size)
		FAIL("ring of %u does not fit region A", num);
	if (packed) {
		size_t events = vring_align(sizeof(struct vring_packed_desc) * num,
					    VRING_PACKED_EVENT_ALIGN);

		f->pdesc = (struct vring_packed_desc *)f->a;
		f->driver_event = (struct vring_packed_desc_event *)(f->a + events);
		f->device_event = f->driver_event + 1;
		cfg.desc = f->pdesc;
		cfg.driver_area = f->driver_event;
		cfg.device_area = f->device_event;
	} else {
		f->desc = (struct vring_desc *)f->a;
		f->avail = (struct vring_avail *)(f->a + vring_desc_size(num));
		f->used = (struct vring_used *)(f->a + split_used_off(num));
		cfg.desc = f->desc;
		cfg.driver_area = f->avail;
		cfg.device_area = f->used;
	}
	ret = virtq_init(&f->vq, &cfg);
	f->vq_live = ret == 0;
	return ret;
}

void fixture_ring_fini(struct ring_fixture *f)
{
	if (f->vq_live)
		virtq_destroy(&f->vq);
	f->vq_live = false;
}

uint64_t fixture_gpa(const struct ring_fixture *f, const void *p)
{
	const uint8_t *b = p;

	if (b >= f->a && b <= f->a + f->a_size)
		return FIX_GPA_A + (uint64_t)(b - f->a);
	if (b >= f->b && b <= f->b + f->b_size)
		return FIX_GPA_A + f->a_size + (uint64_t)(b - f->b);
	FAIL("fixture_gpa: %p is not guest memory", p);
}

void *fixture_data(const struct ring_fixture *f, size_t off)
{
	if (f->data_off + off > f->a_size)
		FAIL("fixture_data: offset %zu past region A", off);
	return f->a + f->data_off + off;
}

uint64_t fixture_data_gpa(const struct ring_fixture *f, size_t off)
{
	return fixture_gpa(f, fixture_data(f, off));
}

void fixture_check_canaries(const struct ring_fixture *f)
{
	for (int i = 0; i < 2; i++) {
		long bad;

		if (!memcmp(f->canary[i], f->canary_ref[i], f->canary_size))
			continue;
		bad = canary_check(f->canary[i], f->canary_size, (uint8_t)(i + 1));
		if (bad >= 0)
			FAIL("memory outside the map was written: canary %d, byte %ld", i, bad);
	}
}

void fix_split_desc(struct vring_desc *table, uint16_t i, uint64_t addr, uint32_t len,
		    uint16_t flags, uint16_t next)
{
	vq_write64(&table[i].addr, addr);
	vq_write32(&table[i].len, len);
	vq_write16(&table[i].flags, flags);
	vq_write16(&table[i].next, next);
}

void fix_split_avail(struct ring_fixture *f, uint16_t head)
{
	uint16_t idx = vq_read16(&f->avail->idx);

	vq_write16(&f->avail->ring[idx % f->num], head);
	vq_store_release16(&f->avail->idx, (uint16_t)(idx + 1));
}

void fix_packed_desc(struct ring_fixture *f, uint16_t slot, uint64_t addr, uint32_t len,
		     uint16_t id, uint16_t flags)
{
	struct vring_packed_desc *d = &f->pdesc[slot];

	vq_write64(&d->addr, addr);
	vq_write32(&d->len, len);
	vq_write16(&d->id, id);
	vq_store_release16(&d->flags, (uint16_t)(flags | VRING_PACKED_DESC_F_AVAIL));
}

void fix_packed_table_desc(struct vring_packed_desc *table, uint16_t i, uint64_t addr, uint32_t len,
			   uint16_t flags)
{
	vq_write64(&table[i].addr, addr);
	vq_write32(&table[i].len, len);
	vq_write16(&table[i].id, 0);
	vq_write16(&table[i].flags, flags);
}

uint64_t fix_features(bool packed, uint64_t extra)
{
	return FEAT(VIRTIO_F_VERSION_1) | (packed ? FEAT(VIRTIO_F_RING_PACKED) : 0) | extra;
}

uint16_t fix_fresh_base(bool packed)
{
	/* 2.8.1: both wrap counters start at 1. */
	return packed ? (uint16_t)(1u << VIRTQ_PACKED_WRAP_BIT) : 0;
}
