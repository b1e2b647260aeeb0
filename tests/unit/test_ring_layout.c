// SPDX-License-Identifier: MIT
/*
 * test_ring_layout.c - ring.h: structure layouts against the spec, ring
 * sizes for every alignment, vring_need_event() across the 16-bit wrap and
 * the little-endian accessors.
 */
#include <stddef.h>
#include <string.h>

#include "test_util.h"
#include "virtq/ring.h"

/* 2.7.5, 2.7.6, 2.7.8, 2.8.13: the bytes both sides agree on. */
static void struct_layouts(void)
{
	CHECK_EQ(sizeof(struct vring_desc), 16);
	CHECK_EQ(offsetof(struct vring_desc, len), 8);
	CHECK_EQ(offsetof(struct vring_desc, flags), 12);
	CHECK_EQ(offsetof(struct vring_desc, next), 14);
	CHECK_EQ(sizeof(struct vring_avail), 4);
	CHECK_EQ(offsetof(struct vring_avail, ring), 4);
	CHECK_EQ(sizeof(struct vring_used_elem), 8);
	CHECK_EQ(offsetof(struct vring_used, ring), 4);
	CHECK_EQ(sizeof(struct vring_packed_desc), 16);
	CHECK_EQ(offsetof(struct vring_packed_desc, len), 8);
	CHECK_EQ(offsetof(struct vring_packed_desc, id), 12);
	CHECK_EQ(offsetof(struct vring_packed_desc, flags), 14);
	CHECK_EQ(sizeof(struct vring_packed_desc_event), 4);
	CHECK_EQ(VRING_PACKED_DESC_F_AVAIL, 0x80);
	CHECK_EQ(VRING_PACKED_DESC_F_USED, 0x8000);
}

/* The spec's formula, written out independently of ring.h's helpers. */
static size_t spec_split_size(unsigned int num, unsigned long align)
{
	size_t desc = 16ul * num, avail = 2ul * (3 + num), used = 2ul * 3 + 8ul * num;

	return (desc + avail + align - 1) / align * align + used;
}

static void split_sizes(void)
{
	static const unsigned long aligns[] = {VRING_USED_ALIGN, 64, VRING_LEGACY_ALIGN};

	/* Linux's vring_size(256, 4096) and a 1.x ring of 256: known answers. */
	CHECK_EQ(vring_split_size(256, 4096), 10246);
	CHECK_EQ(vring_split_size(256, VRING_USED_ALIGN), 4096 + 518 + 2 + 2054);
	CHECK_EQ(vring_split_size(1, 4096), 4096 + 14);
	CHECK_EQ(vring_desc_size(32768), 16u * 32768);
	CHECK_EQ(vring_avail_size(8), 4 + 16 + 2);
	CHECK_EQ(vring_used_size(8), 4 + 64 + 2);

	for (unsigned int num = 1; num <= VIRTQ_MAX_SIZE; num <<= 1) {
		for (size_t a = 0; a < ARRAY_SIZE(aligns); a++) {
			size_t size = vring_split_size(num, aligns[a]);
			size_t used_off = size - vring_used_size(num);

			if (size != spec_split_size(num, aligns[a]))
				FAIL("vring_split_size(%u, %lu) = %zu, spec says %zu", num,
				     aligns[a], size, spec_split_size(num, aligns[a]));
			/* The used ring is aligned and clear of the avail ring. */
			CHECK_EQ(used_off % aligns[a], 0);
			CHECK(used_off >= vring_desc_size(num) + vring_avail_size(num));
			CHECK(used_off < vring_desc_size(num) + vring_avail_size(num) + aligns[a]);
		}
	}
}

static void packed_sizes(void)
{
	CHECK_EQ(vring_packed_size(1), 16 + 8);
	CHECK_EQ(vring_packed_size(256), 4096 + 8);
	CHECK_EQ(vring_packed_size(32768), 16u * 32768 + 8);
	CHECK_EQ(vring_align(0, 16), 0);
	CHECK_EQ(vring_align(1, 16), 16);
	CHECK_EQ(vring_align(16, 16), 16);
	CHECK_EQ(vring_align(4097, 4096), 8192);
}

static void event_words(void)
{
	static uint8_t mem[8192] __attribute__((aligned(16)));
	struct vring_avail *avail = (struct vring_avail *)mem;
	struct vring_used *used = (struct vring_used *)mem;

	/* used_event just after avail->ring[num], avail_event after used->ring[num]. */
	CHECK_EQ((uint8_t *)vring_used_event(avail, 256) - mem, 4 + 2 * 256);
	CHECK_EQ((uint8_t *)vring_avail_event(used, 256) - mem, 4 + 8 * 256);
	CHECK_EQ((uint8_t *)vring_used_event(avail, 8) - mem + 2, (long)vring_avail_size(8));
	CHECK_EQ((uint8_t *)vring_avail_event(used, 8) - mem + 2, (long)vring_used_size(8));
}

/* Reference: notify iff event_idx is among the entries old .. new_idx-1 (mod 2^16). */
static bool ref_need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(event - old) < (uint16_t)(new_idx - old);
}

static void need_event_wrap(void)
{
	static const uint16_t olds[] = {0, 1, 100, 32767, 32768, 65000, 65534, 65535};
	static const uint16_t moves[] = {0, 1, 2, 3, 255, 256, 32768, 65535};

	/* Named cases across the wrap. */
	CHECK(vring_need_event(65535, 2, 65534));  /* event passed just before wrap */
	CHECK(vring_need_event(0, 2, 65534));	   /* event at the wrap */
	CHECK(vring_need_event(1, 2, 65534));	   /* the last entry added */
	CHECK(!vring_need_event(2, 2, 65534));	   /* not reached yet */
	CHECK(!vring_need_event(65533, 2, 65534)); /* already passed before */
	CHECK(vring_need_event(65534, 65535, 65534));
	CHECK(!vring_need_event(65535, 65535, 65534));
	CHECK(!vring_need_event(7, 7, 7)); /* nothing moved, nothing to say */
	CHECK(vring_need_event(7, 8, 7));

	/* Every event index against a spread of (old, new) pairs. */
	for (size_t o = 0; o < ARRAY_SIZE(olds); o++) {
		for (size_t m = 0; m < ARRAY_SIZE(moves); m++) {
			uint16_t old = olds[o], new_idx = (uint16_t)(old + moves[m]);

			for (uint32_t e = 0; e <= 0xffff; e++) {
				if (vring_need_event((uint16_t)e, new_idx, old) !=
				    ref_need_event((uint16_t)e, new_idx, old))
					FAIL("vring_need_event(%u, %u, %u) is wrong", e, new_idx,
					     old);
			}
		}
	}
}

static void accessors(void)
{
	uint8_t b[8] __attribute__((aligned(8))) = {0};

	vq_write16(b, 0x1234);
	CHECK(b[0] == 0x34 && b[1] == 0x12);
	CHECK_EQ(vq_read16(b), 0x1234);
	vq_write32(b, 0x89abcdefu);
	CHECK(b[0] == 0xef && b[3] == 0x89);
	CHECK_EQ(vq_read32(b), 0x89abcdefu);
	vq_write64(b, 0x0102030405060708ull);
	CHECK(b[0] == 0x08 && b[7] == 0x01);
	CHECK(vq_read64(b) == 0x0102030405060708ull);
	vq_store_release16(b, 0xbeef);
	CHECK(b[0] == 0xef && b[1] == 0xbe);
	CHECK_EQ(vq_load_acquire16(b), 0xbeef);
}

/* clang-format off */
static const struct test_case cases[] = {
	{ "struct_layouts", struct_layouts },
	{ "split_sizes", split_sizes },
	{ "packed_sizes", packed_sizes },
	{ "event_words", event_words },
	{ "need_event_wrap", need_event_wrap },
	{ "accessors", accessors },
};
/* clang-format on */

int main(int argc, char **argv)
{
	return test_main(argc, argv, cases, ARRAY_SIZE(cases));
}
