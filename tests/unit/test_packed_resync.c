// SPDX-License-Identifier: MIT
/*
 * test_packed_resync.c - virtq_packed_find_base(): the resume position a
 * packed ring's flags show, against a model of an in-order device and a
 * driver that adds one slot per list (virtq/packed_resync.c).
 *
 * The model keeps the driver's and the device's positions as free-running
 * counts; the ring's flags are written as they would be (the driver's
 * AVAIL = its wrap, USED = the inverse; the device's AVAIL = USED = its
 * wrap).  After every step the scan must name the device's used position
 * and wrap counter, for many ring sizes (powers of two or not) and every
 * mix of full, empty and partly filled rings, including the first lap of
 * a fresh ring.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "virtq/virtq.h"

struct model {
	struct vring_packed_desc *desc;
	uint16_t num;
	uint64_t added, used; /* lists the driver added / the device used */
};

static bool wrap_at(const struct model *m, uint64_t pos)
{
	return (pos / m->num) % 2 == 0; /* both counters start at 1 */
}

static void driver_add(struct model *m)
{
	uint16_t slot = (uint16_t)(m->added % m->num);
	bool w = wrap_at(m, m->added);

	m->desc[slot].id = slot;
	m->desc[slot].flags = w ? VRING_PACKED_DESC_F_AVAIL : VRING_PACKED_DESC_F_USED;
	m->added++;
}

static void device_use(struct model *m)
{
	uint16_t slot = (uint16_t)(m->used % m->num);

	m->desc[slot].flags =
		wrap_at(m, m->used) ? VRING_PACKED_DESC_F_AVAIL | VRING_PACKED_DESC_F_USED : 0;
	m->used++;
}

static void expect_base(const struct model *m)
{
	uint16_t base = 0xffff, want;

	want = (uint16_t)(m->used % m->num) | (uint16_t)wrap_at(m, m->used)
						      << VIRTQ_PACKED_WRAP_BIT;
	CHECK_EQ(virtq_packed_find_base(m->desc, m->num, &base), 0);
	CHECK_MSG(base == want, "size %u, added %llu, used %llu: found %#x, want %#x", m->num,
		  (unsigned long long)m->added, (unsigned long long)m->used, base, want);
}

static void run_model(uint16_t num, unsigned int steps, unsigned int seed)
{
	struct model m = {.num = num};

	m.desc = calloc(num, sizeof(*m.desc));
	CHECK(m.desc);
	srand(seed);
	expect_base(&m); /* fresh: slot 0, wrap 1 */
	for (unsigned int s = 0; s < steps; s++) {
		/* Phases that fill the ring up and drain it, and mixes. */
		unsigned int bias = (s / 97) % 3;
		bool add = m.added - m.used < num &&
			   (m.added == m.used || (unsigned int)rand() % 4 < (bias == 0	 ? 3u
									     : bias == 1 ? 1u
											 : 2u));

		if (add)
			driver_add(&m);
		else
			device_use(&m);
		expect_base(&m);
	}
	free(m.desc);
}

/* Shapes the scan cannot read refuse, rather than guess. */
static void run_refused(void)
{
	struct model m = {.num = 8};
	uint16_t base;

	m.desc = calloc(m.num, sizeof(*m.desc));
	CHECK(m.desc);
	for (int i = 0; i < 4; i++)
		driver_add(&m);
	/* A list of two slots at the device's position. */
	m.desc[0].flags |= VRING_DESC_F_NEXT;
	CHECK_EQ(virtq_packed_find_base(m.desc, m.num, &base), -EPROTO);
	m.desc[0].flags &= (uint16_t)~VRING_DESC_F_NEXT;
	/* Two used->available edges: out-of-order completion. */
	device_use(&m);
	device_use(&m);
	m.desc[0].flags = VRING_PACKED_DESC_F_AVAIL; /* slot 0 available again */
	CHECK_EQ(virtq_packed_find_base(m.desc, m.num, &base), -EPROTO);
	free(m.desc);
}

int main(void)
{
	static const uint16_t sizes[] = {1, 2, 3, 7, 8, 64, 100, 256};

	for (unsigned int i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		run_model(sizes[i], 5000, 1 + i);
	run_refused();
	printf("ok\n");
	return 0;
}
