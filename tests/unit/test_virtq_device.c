// SPDX-License-Identifier: MIT
/*
 * test_virtq_device.c - unit test of the device side of the virtqueue
 * (src/virtq/device*.c), with the driver side played by hand: rings are
 * laid out in a malloc'd "guest memory", chains are written descriptor by
 * descriptor, and the used ring is checked byte for byte.
 *
 * Covers split and packed: direct, multi-descriptor and indirect chains,
 * wraparound (ring and 16-bit index), out-of-order completion with one
 * publish per flush, notification decisions with and without EVENT_IDX,
 * enable/disable notify, and every named refusal of a hostile chain.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/log.h"
#include "virtq/virtq.h"

#define F(bit) (UINT64_C(1) << (bit))

/*
 * Guest memory: two regions that are adjacent in guest-physical space but
 * not in ours, so a buffer across the boundary must be refused.
 */
#define GPA_A	 0x100000u
#define GPA_B	 0x200000u
#define MEM_SIZE 0x100000u
/*
 * And a huge region nothing ever dereferences (pop only translates), so a
 * chain can add up to more than 4 GiB of mapped buffers.
 */
#define GPA_HUGE  UINT64_C(0x1000000000)
#define HUGE_SIZE UINT64_C(0x200000000)

static uint8_t *mem_a, *mem_b;
static struct memmap *map;

static void *hva(uint64_t gpa)
{
	if (gpa >= GPA_B)
		return mem_b + (gpa - GPA_B);
	return mem_a + (gpa - GPA_A);
}

static void mem_setup(void)
{
	struct mem_region r[3] = {
		{
			.gpa = GPA_A,
			.size = MEM_SIZE,
			.uva = 0x7000000,
		},
		{
			.gpa = GPA_B,
			.size = MEM_SIZE,
			.uva = 0x8000000,
		},
		{
			.gpa = GPA_HUGE,
			.size = HUGE_SIZE,
			.uva = 0x10000000000,
		},
	};

	mem_a = aligned_alloc(4096, MEM_SIZE);
	mem_b = aligned_alloc(4096, MEM_SIZE);
	r[0].hva = mem_a;
	r[1].hva = mem_b;
	r[2].hva = (void *)(uintptr_t)0x10000;
	map = memmap_new(r, 3);
	if (!map) {
		perror("memmap_new");
		exit(1);
	}
}

/* Rings live at the start of region A; data buffers from DATA on. */
#define RING_GPA  GPA_A
#define DATA_GPA  (GPA_A + 0x40000u)
#define TABLE_GPA (GPA_A + 0x80000u)

/* ------------------------------------------------------------------ */
/* split ring, driver side by hand                                    */

struct sdrv {
	uint16_t num;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t avail_idx;
	uint16_t used_seen;
};

static void sdrv_setup(struct sdrv *d, struct virtq *vq, uint16_t num, uint64_t features,
		       uint16_t base)
{
	struct virtq_config cfg;
	uint8_t *p = hva(RING_GPA);

	memset(p, 0, vring_split_size(num, VRING_USED_ALIGN));
	d->num = num;
	d->desc = (void *)p;
	d->avail = (void *)(p + vring_desc_size(num));
	d->used = (void *)(p + vring_align(vring_desc_size(num) + vring_avail_size(num),
					   VRING_USED_ALIGN));
	d->avail_idx = base;
	d->used_seen = base;
	d->avail->idx = base;
	d->used->idx = base;

	memset(&cfg, 0, sizeof(cfg));
	cfg.num = num;
	cfg.features = features;
	cfg.desc = d->desc;
	cfg.driver_area = d->avail;
	cfg.device_area = d->used;
	cfg.base = base;
	cfg.mem = map;
	cfg.name = "test:split";
	CHECK(virtq_init(vq, &cfg) == 0);
}

static void sdesc(struct sdrv *d, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
		  uint16_t next)
{
	d->desc[i] = (struct vring_desc){addr, len, flags, next};
}

/* A table entry at any (possibly odd) address. */
static void tdesc(uint64_t table_gpa, unsigned int i, uint64_t addr, uint32_t len, uint16_t flags,
		  uint16_t next)
{
	struct vring_desc x = {addr, len, flags, next};

	memcpy((uint8_t *)hva(table_gpa) + i * sizeof(x), &x, sizeof(x));
}

static void savail(struct sdrv *d, uint16_t head)
{
	d->avail->ring[d->avail_idx & (d->num - 1)] = head;
	d->avail_idx++;
	__atomic_store_n(&d->avail->idx, d->avail_idx, __ATOMIC_RELEASE);
}

static int pop(struct virtq *vq, struct virtq_elem *e, struct iovec *iov, unsigned int max)
{
	virtq_elem_init(e, iov, max);
	return virtq_pop(vq, e);
}

static void test_split_basic(void)
{
	struct sdrv d;
	struct virtq vq;
	struct virtq_elem e[3];
	struct iovec iov[3][8];

	sdrv_setup(&d, &vq, 8, F(VIRTIO_F_VERSION_1), 0);
	CHECK(virtq_avail_empty(&vq));
	CHECK(pop(&vq, &e[0], iov[0], 8) == 0);

	/* chain 0: 16 readable then 64 writable (descs 0 -> 5) */
	sdesc(&d, 0, DATA_GPA, 16, VRING_DESC_F_NEXT, 5);
	sdesc(&d, 5, DATA_GPA + 0x1000, 64, VRING_DESC_F_WRITE, 0);
	savail(&d, 0);
	/* chain 1: one writable */
	sdesc(&d, 1, DATA_GPA + 0x2000, 512, VRING_DESC_F_WRITE, 0);
	savail(&d, 1);
	/* chain 2: three readable, one zero-length in the middle */
	sdesc(&d, 2, DATA_GPA + 0x3000, 8, VRING_DESC_F_NEXT, 3);
	sdesc(&d, 3, DATA_GPA + 0x3100, 0, VRING_DESC_F_NEXT, 4);
	sdesc(&d, 4, DATA_GPA + 0x3200, 8, 0, 0);
	savail(&d, 2);

	CHECK(!virtq_avail_empty(&vq));
	CHECK(pop(&vq, &e[0], iov[0], 8) == 1);
	CHECK(e[0].id == 0 && e[0].out_num == 1 && e[0].in_num == 1);
	CHECK(e[0].out_len == 16 && e[0].in_len == 64 && e[0].ndescs == 2);
	CHECK(iov[0][0].iov_base == hva(DATA_GPA) && iov[0][0].iov_len == 16);
	CHECK(iov[0][1].iov_base == hva(DATA_GPA + 0x1000) && iov[0][1].iov_len == 64);
	CHECK(e[0].mem == map);

	CHECK(pop(&vq, &e[1], iov[1], 8) == 1);
	CHECK(e[1].id == 1 && e[1].out_num == 0 && e[1].in_num == 1 && e[1].in_len == 512);

	CHECK(pop(&vq, &e[2], iov[2], 8) == 1);
	CHECK(e[2].id == 2 && e[2].out_num == 2 && e[2].in_num == 0 && e[2].ndescs == 3);
	CHECK(iov[2][1].iov_base == hva(DATA_GPA + 0x3200));
	{
		struct virtq_elem x;
		struct iovec xiov[1];

		CHECK(pop(&vq, &x, xiov, 1) == 0);
	}
	CHECK(vq.inflight == 3);

	/* out of order: 2, 0, 1; nothing visible before the flush */
	virtq_fill(&vq, &e[2], 0);
	virtq_fill(&vq, &e[0], 1000); /* clamped to in_len */
	CHECK(d.used->idx == 0);
	virtq_flush(&vq);
	CHECK(d.used->idx == 2);
	CHECK(d.used->ring[0].id == 2 && d.used->ring[0].len == 0);
	CHECK(d.used->ring[1].id == 0 && d.used->ring[1].len == 64);
	virtq_push(&vq, &e[1], 100);
	CHECK(d.used->idx == 3 && d.used->ring[2].id == 1 && d.used->ring[2].len == 100);
	CHECK(vq.inflight == 0 && !virtq_is_broken(&vq));
	CHECK(virtq_get_base(&vq) == 3);

	/* a double completion is the device model's bug */
	virtq_fill(&vq, &e[1], 0);
	CHECK(virtq_is_broken(&vq) && vq.error == VIRTQ_ERR_USED_ID);
	CHECK(pop(&vq, &e[0], iov[0], 8) == -EIO);
	virtq_destroy(&vq);
}

static void test_split_indirect(void)
{
	struct sdrv d;
	struct virtq vq;
	struct virtq_elem e;
	struct iovec iov[8];

	sdrv_setup(&d, &vq, 4, F(VIRTIO_RING_F_INDIRECT_DESC), 0);
	/* table order 0 -> 2 -> 1: chained by next, not by position */
	/* odd address on purpose: tables need no alignment */
	tdesc(TABLE_GPA + 4, 0, DATA_GPA, 10, VRING_DESC_F_NEXT, 2);
	tdesc(TABLE_GPA + 4, 2, DATA_GPA + 0x100, 20, VRING_DESC_F_NEXT, 1);
	tdesc(TABLE_GPA + 4, 1, DATA_GPA + 0x200, 30, VRING_DESC_F_WRITE, 0);
	sdesc(&d, 3, TABLE_GPA + 4, 3 * 16, VRING_DESC_F_INDIRECT, 0);
	savail(&d, 3);
	CHECK(pop(&vq, &e, iov, 8) == 1);
	CHECK(e.id == 3 && e.ndescs == 1 && e.out_num == 2 && e.in_num == 1);
	CHECK(iov[1].iov_base == hva(DATA_GPA + 0x100) && iov[2].iov_len == 30);
	virtq_push(&vq, &e, 30);
	CHECK(d.used->idx == 1 && d.used->ring[0].id == 3 && d.used->ring[0].len == 30);

	/* a direct descriptor followed by an indirect one ends the chain there */
	tdesc(TABLE_GPA + 0x100, 0, DATA_GPA + 0x400, 10, 0, 0);
	sdesc(&d, 0, DATA_GPA + 0x300, 4, VRING_DESC_F_NEXT, 1);
	sdesc(&d, 1, TABLE_GPA + 0x100, 16, VRING_DESC_F_INDIRECT, 0);
	savail(&d, 0);
	CHECK(pop(&vq, &e, iov, 8) == 1);
	CHECK(e.id == 0 && e.ndescs == 2 && e.out_num == 2 && e.out_len == 14);
	virtq_push(&vq, &e, 0);
	CHECK(!virtq_is_broken(&vq));
	virtq_destroy(&vq);
}

/* Ring wrap and 16-bit index wrap: start just below 65536. */
static void test_split_wrap(void)
{
	struct sdrv d;
	struct virtq vq;
	struct virtq_elem e[2];
	struct iovec iov[2][4];
	uint16_t base = 65533;

	sdrv_setup(&d, &vq, 4, 0, base);
	for (unsigned int round = 0; round < 20; round++) {
		uint16_t h0 = (uint16_t)(round % 4), h1 = (uint16_t)((round + 2) % 4);

		sdesc(&d, h0, DATA_GPA + round * 64, 32, VRING_DESC_F_WRITE, 0);
		sdesc(&d, h1, DATA_GPA + round * 64 + 32, 32, VRING_DESC_F_WRITE, 0);
		savail(&d, h0);
		savail(&d, h1);
		CHECK(pop(&vq, &e[0], iov[0], 4) == 1 && e[0].id == h0);
		CHECK(pop(&vq, &e[1], iov[1], 4) == 1 && e[1].id == h1);
		virtq_fill(&vq, &e[1], 1);
		virtq_fill(&vq, &e[0], 2);
		virtq_flush(&vq);
		CHECK(d.used->idx == (uint16_t)(base + 2 * (round + 1)));
		CHECK(d.used->ring[(uint16_t)(d.used->idx - 2) & 3].id == h1);
		CHECK(d.used->ring[(uint16_t)(d.used->idx - 1) & 3].id == h0);
	}
	CHECK(virtq_get_base(&vq) == (uint16_t)(base + 40));
	CHECK(!virtq_is_broken(&vq));
	virtq_destroy(&vq);
}

static void split_post_one(struct sdrv *d, uint16_t head)
{
	sdesc(d, head, DATA_GPA + head * 64u, 64, VRING_DESC_F_WRITE, 0);
	savail(d, head);
}

static void test_split_notify(void)
{
	struct sdrv d;
	struct virtq vq;
	struct virtq_elem e[8];
	struct iovec iov[8][2];

	/* no EVENT_IDX: VRING_AVAIL_F_NO_INTERRUPT decides, and NO_NOTIFY is ours */
	sdrv_setup(&d, &vq, 8, 0, 0);
	CHECK(d.used->flags == 0);
	split_post_one(&d, 0);
	CHECK(pop(&vq, &e[0], iov[0], 2) == 1);
	virtq_push(&vq, &e[0], 4);
	CHECK(virtq_should_notify(&vq));
	CHECK(!virtq_should_notify(&vq)); /* nothing new since */
	d.avail->flags = VRING_AVAIL_F_NO_INTERRUPT;
	split_post_one(&d, 1);
	CHECK(pop(&vq, &e[1], iov[1], 2) == 1);
	virtq_push(&vq, &e[1], 4);
	CHECK(!virtq_should_notify(&vq));
	CHECK(vq.nr_notified == 1 && vq.nr_notify_suppressed == 1);

	virtq_disable_notify(&vq);
	CHECK(d.used->flags == VRING_USED_F_NO_NOTIFY);
	CHECK(!virtq_enable_notify(&vq));
	CHECK(d.used->flags == 0);
	split_post_one(&d, 2);
	virtq_disable_notify(&vq);
	CHECK(virtq_enable_notify(&vq)); /* a buffer is waiting: poll again */
	virtq_destroy(&vq);

	/* EVENT_IDX: used_event decides */
	sdrv_setup(&d, &vq, 8, F(VIRTIO_RING_F_EVENT_IDX), 0);
	for (uint16_t i = 0; i < 6; i++)
		split_post_one(&d, i);
	for (int i = 0; i < 6; i++)
		CHECK(pop(&vq, &e[i], iov[i], 2) == 1);
	CHECK(*vring_avail_event(d.used, 8) == 0);
	CHECK(pop(&vq, &e[6], iov[6], 2) == 0); /* empty: re-arms at 6 */
	*vring_used_event(d.avail, 8) = 3;	/* interrupt once entry 3 is used */
	virtq_push(&vq, &e[0], 1);
	CHECK(virtq_should_notify(&vq)); /* first decision: we could not tell */
	virtq_push(&vq, &e[1], 1);	 /* used idx 1 -> 2 */
	CHECK(!virtq_should_notify(&vq));
	virtq_fill(&vq, &e[2], 1);
	virtq_fill(&vq, &e[3], 1);
	virtq_fill(&vq, &e[4], 1);
	virtq_flush(&vq); /* 2 -> 5 steps over 3 */
	CHECK(d.used->idx == 5);
	CHECK(virtq_should_notify(&vq));
	virtq_push(&vq, &e[5], 1); /* 5 -> 6, event 3 behind us */
	CHECK(!virtq_should_notify(&vq));
	*vring_used_event(d.avail, 8) = 6;
	CHECK(!virtq_should_notify(&vq)); /* nothing published since */

	/* avail_event: the empty pop moved it to where we stopped */
	CHECK(*vring_avail_event(d.used, 8) == 6);
	CHECK(d.used->flags == 0);
	virtq_disable_notify(&vq); /* writes nothing with EVENT_IDX */
	split_post_one(&d, 6);
	CHECK(pop(&vq, &e[6], iov[6], 2) == 1);
	CHECK(pop(&vq, &e[7], iov[7], 2) == 0);
	CHECK(*vring_avail_event(d.used, 8) == 6); /* disabled: left behind */
	CHECK(!virtq_enable_notify(&vq));
	CHECK(*vring_avail_event(d.used, 8) == 7);
	split_post_one(&d, 7);
	CHECK(virtq_enable_notify(&vq));
	virtq_push(&vq, &e[6], 0);
	virtq_destroy(&vq);

	/* NOTIFY_ON_EMPTY overrides suppression once all work is done */
	sdrv_setup(&d, &vq, 8, F(VIRTIO_F_NOTIFY_ON_EMPTY), 0);
	d.avail->flags = VRING_AVAIL_F_NO_INTERRUPT;
	split_post_one(&d, 0);
	split_post_one(&d, 1);
	CHECK(pop(&vq, &e[0], iov[0], 2) == 1);
	CHECK(pop(&vq, &e[1], iov[1], 2) == 1);
	virtq_push(&vq, &e[0], 0);
	CHECK(!virtq_should_notify(&vq));
	virtq_push(&vq, &e[1], 0);
	CHECK(virtq_should_notify(&vq));
	virtq_destroy(&vq);
}

/* Each hostile shape on a fresh queue: refused by name, nothing popped. */
static void split_expect(struct sdrv *d, struct virtq *vq, enum virtq_error err,
			 unsigned int max_iov)
{
	struct virtq_elem e;
	struct iovec iov[8];

	CHECK(pop(vq, &e, iov, max_iov) == -EIO);
	CHECK(virtq_is_broken(vq));
	if (vq->error != err)
		fprintf(stderr, "  expected %s, got %s\n", virtq_strerror(err),
			virtq_strerror(vq->error));
	CHECK(vq->error == err);
	CHECK(pop(vq, &e, iov, max_iov) == -EIO);
	CHECK(vq->nr_popped == 0 || err == VIRTQ_ERR_ID_IN_FLIGHT);
	(void)d;
}

/*
 * A device that polls re-arms kicks with virtq_enable_notify() and sleeps
 * when it returns false.  If the driver's avail index is a lie at that
 * moment, the re-check breaks the queue; enable_notify must then say
 * "poll again", so the device's next pop sees -EIO and the device is marked
 * NEEDS_RESET now, not whenever a kick happens to come.
 */
static void test_split_enable_notify_broken(void)
{
	struct sdrv d;
	struct virtq vq;
	struct virtq_elem e;
	struct iovec iov[2];

	for (int evidx = 0; evidx < 2; evidx++) {
		sdrv_setup(&d, &vq, 8, evidx ? F(VIRTIO_RING_F_EVENT_IDX) : 0, 0);
		split_post_one(&d, 0);
		CHECK(pop(&vq, &e, iov, 2) == 1);
		virtq_push(&vq, &e, 4);
		virtq_disable_notify(&vq);
		/* nine more than the ring holds */
		__atomic_store_n(&d.avail->idx, (uint16_t)(d.avail_idx + 9), __ATOMIC_RELEASE);
		CHECK(virtq_enable_notify(&vq));
		CHECK(virtq_is_broken(&vq) && vq.error == VIRTQ_ERR_AVAIL_IDX);
		CHECK(pop(&vq, &e, iov, 2) == -EIO);
		virtq_destroy(&vq);
	}
}

#define SPLIT_EXPECT(err, max_iov)                                                                 \
	do {                                                                                       \
		split_expect(&d, &vq, err, max_iov);                                               \
		virtq_destroy(&vq);                                                                \
	} while (0)

static void test_split_hostile(void)
{
	uint64_t ind = F(VIRTIO_RING_F_INDIRECT_DESC);
	struct virtq_elem e;
	struct iovec iov[8];
	struct sdrv d;
	struct virtq vq;

	sdrv_setup(&d, &vq, 8, 0, 0);
	sdesc(&d, 0, 0x1000, 16, 0, 0); /* below every region */
	savail(&d, 0);
	SPLIT_EXPECT(VIRTQ_ERR_ADDR, 8);

	sdrv_setup(&d, &vq, 8, 0, 0);
	sdesc(&d, 0, GPA_B - 8, 16, 0, 0); /* straddles A and B */
	savail(&d, 0);
	SPLIT_EXPECT(VIRTQ_ERR_ADDR, 8);

	sdrv_setup(&d, &vq, 8, 0, 0);
	sdesc(&d, 0, GPA_HUGE, 0xfffffff0u, VRING_DESC_F_NEXT, 1);
	sdesc(&d, 1, GPA_HUGE, 0x10, VRING_DESC_F_NEXT, 2); /* exactly 2^32 - 1: fine */
	sdesc(&d, 2, GPA_HUGE, 0x1, 0, 0);		    /* one byte more */
	savail(&d, 0);
	SPLIT_EXPECT(VIRTQ_ERR_LEN_OVERFLOW, 8);

	sdrv_setup(&d, &vq, 8, 0, 0);
	sdesc(&d, 0, DATA_GPA, 1, VRING_DESC_F_NEXT, 1); /* 0 -> 1 -> 0 ... */
	sdesc(&d, 1, DATA_GPA, 1, VRING_DESC_F_NEXT, 0);
	savail(&d, 0);
	SPLIT_EXPECT(VIRTQ_ERR_CHAIN_LONG, 64);

	sdrv_setup(&d, &vq, 8, ind, 0);
	tdesc(TABLE_GPA, 0, DATA_GPA, 1, VRING_DESC_F_NEXT, 0); /* loop in table */
	sdesc(&d, 0, TABLE_GPA, 16, VRING_DESC_F_INDIRECT, 0);
	savail(&d, 0);
	SPLIT_EXPECT(VIRTQ_ERR_CHAIN_LONG, 64);

	sdrv_setup(&d, &vq, 8, ind, 0);
	tdesc(TABLE_GPA, 0, TABLE_GPA, 16, VRING_DESC_F_INDIRECT, 0);
	sdesc(&d, 0, TABLE_GPA, 16, VRING_DESC_F_INDIRECT, 0);
	savail(&d, 0);
	SPLIT_EXPECT(VIRTQ_ERR_NESTED_INDIRECT, 8);

	sdrv_setup(&d, &vq, 8, ind, 0);
	sdesc(&d, 0, TABLE_GPA, 24, VRING_DESC_F_INDIRECT, 0);
	savail(&d, 0);
	SPLIT_EXPECT(VIRTQ_ERR_INDIRECT_LEN, 8);

	sdrv_setup(&d, &vq, 8, ind, 0);
	sdesc(&d, 0, TABLE_GPA, 0, VRING_DESC_F_INDIRECT, 0);
	savail(&d, 0);
	SPLIT_EXPECT(VIRTQ_ERR_INDIRECT_LEN, 8);

	sdrv_setup(&d, &vq, 8, ind, 0);
	sdesc(&d, 0, TABLE_GPA, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
	sdesc(&d, 1, DATA_GPA, 16, 0, 0);
	savail(&d, 0);
	SPLIT_EXPECT(VIRTQ_ERR_INDIRECT_NEXT, 8);

	sdrv_setup(&d, &vq, 8, 0, 0);
	tdesc(TABLE_GPA, 0, DATA_GPA, 1, 0, 0);
	sdesc(&d, 0, TABLE_GPA, 16, VRING_DESC_F_INDIRECT, 0);
	savail(&d, 0);
	SPLIT_EXPECT(VIRTQ_ERR_INDIRECT_FEATURE, 8);

	sdrv_setup(&d, &vq, 8, ind, 0);
	sdesc(&d, 0, MEM_SIZE * 2 + GPA_B, 16, VRING_DESC_F_INDIRECT, 0); /* table unmapped */
	savail(&d, 0);
	SPLIT_EXPECT(VIRTQ_ERR_ADDR, 8);

	sdrv_setup(&d, &vq, 8, 0, 0);
	sdesc(&d, 0, DATA_GPA, 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	sdesc(&d, 1, DATA_GPA, 16, 0, 0);
	savail(&d, 0);
	SPLIT_EXPECT(VIRTQ_ERR_ORDER, 8);

	sdrv_setup(&d, &vq, 8, 0, 0);
	d.avail_idx = 9; /* 9 new of 8 */
	__atomic_store_n(&d.avail->idx, 9, __ATOMIC_RELEASE);
	SPLIT_EXPECT(VIRTQ_ERR_AVAIL_IDX, 8);

	sdrv_setup(&d, &vq, 8, 0, 0);
	savail(&d, 8);
	SPLIT_EXPECT(VIRTQ_ERR_HEAD, 8);

	sdrv_setup(&d, &vq, 8, 0, 0);
	sdesc(&d, 0, DATA_GPA, 16, VRING_DESC_F_NEXT, 200);
	savail(&d, 0);
	SPLIT_EXPECT(VIRTQ_ERR_HEAD, 8);

	sdrv_setup(&d, &vq, 8, 0, 0);
	sdesc(&d, 0, DATA_GPA, 16, VRING_DESC_F_NEXT, 1);
	sdesc(&d, 1, DATA_GPA, 16, VRING_DESC_F_NEXT, 2);
	sdesc(&d, 2, DATA_GPA, 16, 0, 0);
	savail(&d, 0);
	SPLIT_EXPECT(VIRTQ_ERR_TOO_MANY_IOV, 2);

	/* the same head offered twice while we hold it */
	sdrv_setup(&d, &vq, 8, 0, 0);
	sdesc(&d, 0, DATA_GPA, 16, 0, 0);
	savail(&d, 0);
	savail(&d, 0);
	CHECK(pop(&vq, &e, iov, 8) == 1);
	split_expect(&d, &vq, VIRTQ_ERR_ID_IN_FLIGHT, 8);
	virtq_fill(&vq, &e, 0); /* broken: only releases the map reference */
	CHECK(d.used->idx == 0);
	virtq_destroy(&vq);

	/* no memory map */
	sdrv_setup(&d, &vq, 8, 0, 0);
	virtq_set_memmap(&vq, NULL);
	SPLIT_EXPECT(VIRTQ_ERR_NO_MAP, 8);
}

static void test_split_config(void)
{
	struct virtq vq;
	struct virtq_config cfg;
	uint8_t *p = hva(RING_GPA);

	memset(&cfg, 0, sizeof(cfg));
	cfg.num = 6; /* split needs a power of two */
	cfg.desc = p;
	cfg.driver_area = p + 0x1000;
	cfg.device_area = p + 0x2000;
	cfg.mem = map;
	CHECK(virtq_init(&vq, &cfg) == -EINVAL);
	cfg.num = 0;
	CHECK(virtq_init(&vq, &cfg) == -EINVAL);
	cfg.num = 32768;	      /* the largest: fits */
	cfg.device_area = p + 0x2002; /* misaligned used ring */
	CHECK(virtq_init(&vq, &cfg) == -EINVAL);
	cfg.device_area = p + 0x80000;
	CHECK(virtq_init(&vq, &cfg) == 0);
	virtq_destroy(&vq);
}

/* ------------------------------------------------------------------ */
/* packed ring, driver side by hand                                   */

struct pdrv {
	uint16_t num;
	struct vring_packed_desc *desc;
	struct vring_packed_desc_event *driver; /* ours (read by the device) */
	struct vring_packed_desc_event *device;
	uint16_t next_avail;
	bool avail_wrap;
	uint16_t next_used;
	bool used_wrap;
	uint16_t sgs[64]; /* by id: slots each list took */
};

static void pdrv_setup(struct pdrv *d, struct virtq *vq, uint16_t num, uint64_t features)
{
	struct virtq_config cfg;
	uint8_t *p = hva(RING_GPA);

	memset(p, 0, vring_packed_size(num));
	d->num = num;
	d->desc = (void *)p;
	d->driver = (void *)(p + vring_align(16u * num, VRING_PACKED_EVENT_ALIGN));
	d->device = d->driver + 1;
	d->next_avail = d->next_used = 0;
	d->avail_wrap = d->used_wrap = true; /* 2.8.1: both start at 1 */

	memset(&cfg, 0, sizeof(cfg));
	cfg.num = num;
	cfg.features = features | F(VIRTIO_F_RING_PACKED);
	cfg.desc = d->desc;
	cfg.driver_area = d->driver;
	cfg.device_area = d->device;
	cfg.base = 1u << VIRTQ_PACKED_WRAP_BIT;
	cfg.mem = map;
	cfg.name = "test:packed";
	CHECK(virtq_init(vq, &cfg) == 0);
}

/* A new device on @d's ring as it is (a back-end restarted), at @base. */
static void pdrv_restart(struct pdrv *d, struct virtq *vq, uint16_t base, const char *name)
{
	struct virtq_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.num = d->num;
	cfg.features = F(VIRTIO_F_RING_PACKED);
	cfg.desc = d->desc;
	cfg.driver_area = d->driver;
	cfg.device_area = d->device;
	cfg.base = base;
	cfg.mem = map;
	cfg.name = name;
	CHECK(virtq_init(vq, &cfg) == 0);
}

struct buf {
	uint64_t addr;
	uint32_t len;
	uint16_t flags; /* WRITE / INDIRECT */
};

/*
 * Make a list available as 2.8.21.1 says: every descriptor but the first
 * gets its flags at once, the first one's flags go last with release.
 * @ids: id written in each descriptor (the device must use the last).
 */
static void ppost_ids(struct pdrv *d, const struct buf *b, unsigned int n, const uint16_t *ids)
{
	uint16_t head = d->next_avail, head_flags = 0;

	for (unsigned int k = 0; k < n; k++) {
		struct vring_packed_desc *x = &d->desc[d->next_avail];
		uint16_t f = b[k].flags;

		f |= d->avail_wrap ? VRING_PACKED_DESC_F_AVAIL : VRING_PACKED_DESC_F_USED;
		if (k + 1 < n)
			f |= VRING_DESC_F_NEXT;
		x->addr = b[k].addr;
		x->len = b[k].len;
		x->id = ids[k];
		if (k == 0)
			head_flags = f;
		else
			x->flags = f;
		if (++d->next_avail == d->num) {
			d->next_avail = 0;
			d->avail_wrap = !d->avail_wrap;
		}
	}
	d->sgs[ids[n - 1]] = (uint16_t)n;
	__atomic_store_n(&d->desc[head].flags, head_flags, __ATOMIC_RELEASE);
}

static void ppost(struct pdrv *d, const struct buf *b, unsigned int n, uint16_t id)
{
	uint16_t ids[16];

	for (unsigned int k = 0; k < n; k++)
		ids[k] = id;
	ppost_ids(d, b, n, ids);
}

/* The driver's get_buf: next used descriptor, or false. */
static bool pget(struct pdrv *d, uint16_t *id, uint32_t *len, uint16_t *flags_out)
{
	uint16_t flags = __atomic_load_n(&d->desc[d->next_used].flags, __ATOMIC_ACQUIRE);
	bool avail = flags & VRING_PACKED_DESC_F_AVAIL, used = flags & VRING_PACKED_DESC_F_USED;

	if (avail != used || used != d->used_wrap)
		return false;
	*id = d->desc[d->next_used].id;
	*len = d->desc[d->next_used].len;
	if (flags_out)
		*flags_out = flags;
	d->next_used += d->sgs[*id];
	if (d->next_used >= d->num) {
		d->next_used -= d->num;
		d->used_wrap = !d->used_wrap;
	}
	return true;
}

static void test_packed_basic(void)
{
	struct pdrv d;
	struct virtq vq;
	struct virtq_elem e[3];
	struct iovec iov[3][8];
	uint16_t id, flags;
	uint32_t len;

	pdrv_setup(&d, &vq, 5, 0); /* not a power of two */
	CHECK(virtq_get_base(&vq) == 0x8000);
	CHECK(d.device->flags == VRING_PACKED_EVENT_FLAG_ENABLE);
	CHECK(virtq_avail_empty(&vq));
	CHECK(pop(&vq, &e[0], iov[0], 8) == 0);

	/* A: 2 descs (id in the last one only matters), B: 1, C: 2 across the wrap */
	ppost_ids(&d, (struct buf[]){{DATA_GPA, 16, 0}, {DATA_GPA + 0x100, 32, VRING_DESC_F_WRITE}},
		  2, (uint16_t[]){4, 0});
	ppost(&d, (struct buf[]){{DATA_GPA + 0x200, 8, VRING_DESC_F_WRITE}}, 1, 1);
	CHECK(!virtq_avail_empty(&vq));
	CHECK(pop(&vq, &e[0], iov[0], 8) == 1);
	CHECK(e[0].id == 0 && e[0].ndescs == 2 && e[0].out_num == 1 && e[0].in_num == 1);
	CHECK(iov[0][1].iov_base == hva(DATA_GPA + 0x100));
	CHECK(pop(&vq, &e[1], iov[1], 8) == 1);
	CHECK(e[1].id == 1 && e[1].ndescs == 1 && e[1].in_len == 8);
	CHECK(pop(&vq, &e[2], iov[2], 8) == 0);

	/* complete B then A: B's used desc lands in slot 0, A's in slot 1 */
	virtq_fill(&vq, &e[1], 8);
	virtq_fill(&vq, &e[0], 0);
	/* slot 1 is written, slot 0 (the batch head) still looks available */
	CHECK(d.desc[1].id == 0 && (d.desc[1].flags & VRING_PACKED_DESC_F_USED));
	CHECK(!pget(&d, &id, &len, NULL));
	virtq_flush(&vq);
	CHECK(pget(&d, &id, &len, &flags) && id == 1 && len == 8 && (flags & VRING_DESC_F_WRITE));
	CHECK(pget(&d, &id, &len, &flags) && id == 0 && !(flags & VRING_DESC_F_WRITE));
	CHECK(!pget(&d, &id, &len, NULL));
	CHECK(virtq_get_base(&vq) == (0x8000 | 3));

	/* C: 3 descriptors, slots 3, 4, 0 (wraps) */
	ppost(&d,
	      (struct buf[]){{DATA_GPA, 1, 0},
			     {DATA_GPA + 1, 2, 0},
			     {DATA_GPA + 3, 3, VRING_DESC_F_WRITE}},
	      3, 2);
	CHECK(pop(&vq, &e[2], iov[2], 8) == 1);
	CHECK(e[2].id == 2 && e[2].ndescs == 3 && e[2].out_len == 3 && e[2].in_len == 3);
	CHECK(virtq_get_base(&vq) == 1); /* slot 1, wrap 0 */
	virtq_push(&vq, &e[2], 3);
	CHECK(pget(&d, &id, &len, NULL) && id == 2 && len == 3);
	CHECK(!virtq_is_broken(&vq) && vq.inflight == 0);
	virtq_destroy(&vq);
}

static void test_packed_indirect(void)
{
	struct pdrv d;
	struct virtq vq;
	struct virtq_elem e;
	struct iovec iov[8];
	struct vring_packed_desc *t = hva(TABLE_GPA + 8);
	uint16_t id;
	uint32_t len;

	pdrv_setup(&d, &vq, 4, F(VIRTIO_RING_F_INDIRECT_DESC));
	/* sequential; a stray NEXT and ids inside are ignored */
	t[0] = (struct vring_packed_desc){DATA_GPA, 10, 77, VRING_DESC_F_NEXT};
	t[1] = (struct vring_packed_desc){DATA_GPA + 0x10, 20, 0, VRING_DESC_F_WRITE};
	t[2] = (struct vring_packed_desc){DATA_GPA + 0x40, 30, 0, VRING_DESC_F_WRITE};
	ppost(&d, (struct buf[]){{TABLE_GPA + 8, 48, VRING_DESC_F_INDIRECT}}, 1, 3);
	CHECK(pop(&vq, &e, iov, 8) == 1);
	CHECK(e.id == 3 && e.ndescs == 1 && e.out_num == 1 && e.in_num == 2 && e.in_len == 50);
	virtq_push(&vq, &e, 50);
	CHECK(pget(&d, &id, &len, NULL) && id == 3 && len == 50);
	virtq_destroy(&vq);
}

/* Many rounds of uneven lists over a 7-slot ring, completed in reverse. */
static void test_packed_wrap(void)
{
	struct pdrv d;
	struct virtq vq;
	struct virtq_elem e[3];
	struct iovec iov[3][4];
	uint16_t id;
	uint32_t len;

	pdrv_setup(&d, &vq, 7, 0);
	for (unsigned int round = 0; round < 50; round++) {
		unsigned int n0 = 1 + round % 3, n1 = 1 + (round + 1) % 2;
		struct buf b[3] = {{DATA_GPA, 4, VRING_DESC_F_WRITE},
				   {DATA_GPA + 4, 4, VRING_DESC_F_WRITE},
				   {DATA_GPA + 8, 4, VRING_DESC_F_WRITE}};

		ppost(&d, b, n0, 0);
		ppost(&d, b, n1, 1);
		CHECK(pop(&vq, &e[0], iov[0], 4) == 1 && e[0].id == 0 && e[0].ndescs == n0);
		CHECK(pop(&vq, &e[1], iov[1], 4) == 1 && e[1].id == 1 && e[1].ndescs == n1);
		CHECK(pop(&vq, &e[2], iov[2], 4) == 0);
		virtq_fill(&vq, &e[1], 4 * n1);
		virtq_fill(&vq, &e[0], 4 * n0);
		virtq_flush(&vq);
		CHECK(pget(&d, &id, &len, NULL) && id == 1 && len == 4 * n1);
		CHECK(pget(&d, &id, &len, NULL) && id == 0 && len == 4 * n0);
		CHECK(!pget(&d, &id, &len, NULL));
		CHECK(d.next_used == d.next_avail && d.used_wrap == d.avail_wrap);
	}
	CHECK(virtq_get_base(&vq) ==
	      (d.next_avail | (uint16_t)d.avail_wrap << VIRTQ_PACKED_WRAP_BIT));
	CHECK(!virtq_is_broken(&vq));
	virtq_destroy(&vq);
}

static void pdrv_event(struct pdrv *d, uint16_t flags, uint16_t off, bool wrap)
{
	d->driver->off_wrap = off | (uint16_t)wrap << VRING_PACKED_EVENT_WRAP_SHIFT;
	d->driver->flags = flags;
}

/* Post and pop @n one-slot lists (ids 0..n-1), then complete them as one batch. */
static void packed_batch(struct pdrv *d, struct virtq *vq, unsigned int n)
{
	struct virtq_elem e[9];
	struct iovec iov[9][1];
	uint16_t id;
	uint32_t len;

	for (unsigned int k = 0; k < n; k++)
		ppost(d, (struct buf[]){{DATA_GPA, 4, VRING_DESC_F_WRITE}}, 1, (uint16_t)k);
	for (unsigned int k = 0; k < n; k++)
		CHECK(pop(vq, &e[k], iov[k], 1) == 1);
	CHECK(pop(vq, &e[n], iov[n], 1) == 0);
	for (unsigned int k = 0; k < n; k++)
		virtq_fill(vq, &e[k], 4);
	virtq_flush(vq);
	for (unsigned int k = 0; k < n; k++)
		CHECK(pget(d, &id, &len, NULL) && id == k);
}

static void test_packed_notify(void)
{
	struct pdrv d;
	struct virtq vq;
	struct virtq_elem e;
	struct iovec iov[1];
	uint16_t ow;

	/* flags only */
	pdrv_setup(&d, &vq, 4, 0);
	packed_batch(&d, &vq, 1);
	CHECK(virtq_should_notify(&vq));  /* ENABLE */
	CHECK(!virtq_should_notify(&vq)); /* nothing new */
	pdrv_event(&d, VRING_PACKED_EVENT_FLAG_DISABLE, 0, 0);
	packed_batch(&d, &vq, 2);
	CHECK(!virtq_should_notify(&vq));
	virtq_disable_notify(&vq);
	CHECK(d.device->flags == VRING_PACKED_EVENT_FLAG_DISABLE);
	CHECK(!virtq_enable_notify(&vq));
	CHECK(d.device->flags == VRING_PACKED_EVENT_FLAG_ENABLE);
	virtq_destroy(&vq);

	/* EVENT_IDX: the driver's event offset with its wrap counter */
	pdrv_setup(&d, &vq, 4, F(VIRTIO_RING_F_EVENT_IDX));
	CHECK(d.device->flags == VRING_PACKED_EVENT_FLAG_DESC);
	CHECK(d.device->off_wrap == 0x8000);
	pdrv_event(&d, VRING_PACKED_EVENT_FLAG_DESC, 2, 1);
	packed_batch(&d, &vq, 1);	 /* slots [0,1), wrap 1 */
	CHECK(virtq_should_notify(&vq)); /* first decision */
	packed_batch(&d, &vq, 1);	 /* [1,2) */
	CHECK(!virtq_should_notify(&vq));
	packed_batch(&d, &vq, 2); /* [2,4): slot 2 used, now wrap 0 at 0 */
	CHECK(virtq_should_notify(&vq));
	/* device off_wrap followed us after the empty pop: slot 0, wrap 0 */
	CHECK(d.device->off_wrap == 0);

	/*
	 * Window [3, 5) across the wrap: used slots 0 (wrap 0)...
	 * first move to slot 3 (wrap 0): publish 3 more.
	 */
	pdrv_event(&d, VRING_PACKED_EVENT_FLAG_DESC, 0, 1); /* behind us */
	packed_batch(&d, &vq, 3); /* [0,3) wrap 0; event slot 0 wrap 1 is a lap back */
	CHECK(!virtq_should_notify(&vq));
	pdrv_event(&d, VRING_PACKED_EVENT_FLAG_DESC, 0, 1); /* slot 0 of the next lap */
	packed_batch(&d, &vq, 2);			    /* slots 3 (wrap 0), 0 (wrap 1) */
	CHECK(virtq_should_notify(&vq));
	pdrv_event(&d, VRING_PACKED_EVENT_FLAG_DESC, 2, 0); /* a lap back now */
	packed_batch(&d, &vq, 2);			    /* slots 1, 2 of wrap 1 */
	CHECK(!virtq_should_notify(&vq));
	pdrv_event(&d, VRING_PACKED_EVENT_FLAG_DESC, 3, 0);
	packed_batch(&d, &vq, 1);	  /* slot 3, wrap 1; now at 0 wrap 0 */
	CHECK(!virtq_should_notify(&vq)); /* slot 3 of this lap is ahead */
	pdrv_event(&d, VRING_PACKED_EVENT_FLAG_DESC, 3, 1);
	packed_batch(&d, &vq, 1);	  /* slot 0, wrap 0: window [3,4) in wrap 1 */
	CHECK(!virtq_should_notify(&vq)); /* slot 3 wrap 1 was the previous window */
	pdrv_event(&d, VRING_PACKED_EVENT_FLAG_DESC, 3, 1);
	packed_batch(&d, &vq, 2); /* slots 1, 2 wrap 0 */
	CHECK(!virtq_should_notify(&vq));
	pdrv_event(&d, VRING_PACKED_EVENT_FLAG_DESC, 3, 0);
	packed_batch(&d, &vq, 2); /* slots 3 (wrap 0) and 0 (wrap 1) */
	CHECK(virtq_should_notify(&vq));

	/* disable leaves off_wrap; enable re-arms at our next slot */
	ow = d.device->off_wrap;
	CHECK(ow == (d.next_avail | (uint16_t)d.avail_wrap << VRING_PACKED_EVENT_WRAP_SHIFT));
	virtq_disable_notify(&vq);
	CHECK(d.device->flags == VRING_PACKED_EVENT_FLAG_DISABLE && d.device->off_wrap == ow);
	ppost(&d, (struct buf[]){{DATA_GPA, 4, VRING_DESC_F_WRITE}}, 1, 0);
	CHECK(virtq_enable_notify(&vq)); /* one waiting */
	CHECK(d.device->flags == VRING_PACKED_EVENT_FLAG_DESC && d.device->off_wrap == ow);
	CHECK(pop(&vq, &e, iov, 1) == 1);
	virtq_push(&vq, &e, 0);
	virtq_destroy(&vq);
}

static void packed_expect(struct virtq *vq, enum virtq_error err)
{
	struct virtq_elem e;
	struct iovec iov[8];

	CHECK(pop(vq, &e, iov, 8) == -EIO);
	CHECK(virtq_is_broken(vq));
	if (vq->error != err)
		fprintf(stderr, "  expected %s, got %s\n", virtq_strerror(err),
			virtq_strerror(vq->error));
	CHECK(vq->error == err);
	CHECK(pop(vq, &e, iov, 8) == -EIO);
}

#define PACKED_EXPECT(err)                                                                         \
	do {                                                                                       \
		packed_expect(&vq, err);                                                           \
		virtq_destroy(&vq);                                                                \
	} while (0)

static void test_packed_hostile(void)
{
	uint64_t ind = F(VIRTIO_RING_F_INDIRECT_DESC);
	struct vring_packed_desc *t = hva(TABLE_GPA);
	struct buf w = {DATA_GPA, 4, VRING_DESC_F_WRITE};
	struct virtq_elem e[4];
	struct iovec iov[4][8];
	struct pdrv d;
	struct virtq vq;

	/* NEXT on every slot: laps the ring */
	pdrv_setup(&d, &vq, 4, 0);
	ppost(&d, (struct buf[]){w, w, w, w}, 4, 0);
	d.desc[3].flags |= VRING_DESC_F_NEXT;
	PACKED_EXPECT(VIRTQ_ERR_CHAIN_LONG);

	pdrv_setup(&d, &vq, 4, 0);
	ppost(&d, &w, 1, 4); /* id >= num */
	PACKED_EXPECT(VIRTQ_ERR_HEAD);

	pdrv_setup(&d, &vq, 4, ind);
	ppost(&d, (struct buf[]){w, {TABLE_GPA, 16, VRING_DESC_F_INDIRECT}}, 2, 0);
	PACKED_EXPECT(VIRTQ_ERR_INDIRECT_NEXT);

	pdrv_setup(&d, &vq, 4, ind);
	ppost(&d, (struct buf[]){{TABLE_GPA, 16, VRING_DESC_F_INDIRECT}, w}, 2, 0);
	PACKED_EXPECT(VIRTQ_ERR_INDIRECT_NEXT);

	pdrv_setup(&d, &vq, 4, ind);
	t[0] = (struct vring_packed_desc){TABLE_GPA, 16, 0, VRING_DESC_F_INDIRECT};
	ppost(&d, (struct buf[]){{TABLE_GPA, 16, VRING_DESC_F_INDIRECT}}, 1, 0);
	PACKED_EXPECT(VIRTQ_ERR_NESTED_INDIRECT);

	pdrv_setup(&d, &vq, 4, ind);
	ppost(&d, (struct buf[]){{TABLE_GPA, 17, VRING_DESC_F_INDIRECT}}, 1, 0);
	PACKED_EXPECT(VIRTQ_ERR_INDIRECT_LEN);

	pdrv_setup(&d, &vq, 4, 0);
	ppost(&d, (struct buf[]){{TABLE_GPA, 16, VRING_DESC_F_INDIRECT}}, 1, 0);
	PACKED_EXPECT(VIRTQ_ERR_INDIRECT_FEATURE);

	pdrv_setup(&d, &vq, 4, 0);
	ppost(&d, (struct buf[]){w, {DATA_GPA, 4, 0}}, 2, 0);
	PACKED_EXPECT(VIRTQ_ERR_ORDER);

	pdrv_setup(&d, &vq, 4, 0);
	ppost(&d, (struct buf[]){{GPA_B + MEM_SIZE - 2, 4, 0}}, 1, 0);
	PACKED_EXPECT(VIRTQ_ERR_ADDR);

	/* the same id twice */
	pdrv_setup(&d, &vq, 4, 0);
	ppost(&d, &w, 1, 2);
	ppost(&d, &w, 1, 2);
	CHECK(pop(&vq, &e[0], iov[0], 8) == 1);
	packed_expect(&vq, VIRTQ_ERR_ID_IN_FLIGHT);
	virtq_fill(&vq, &e[0], 0);
	virtq_destroy(&vq);

	/*
	 * The driver re-offers slots we hold: 4 one-slot lists in flight, then
	 * slot 0 made available again (next lap) before anything was used.
	 */
	pdrv_setup(&d, &vq, 4, 0);
	for (uint16_t k = 0; k < 4; k++)
		ppost(&d, &w, 1, k);
	for (int k = 0; k < 4; k++)
		CHECK(pop(&vq, &e[k], iov[k], 8) == 1);
	ppost(&d, &w, 1, 0);
	packed_expect(&vq, VIRTQ_ERR_AVAIL_IDX);
	for (int k = 0; k < 4; k++)
		virtq_fill(&vq, &e[k], 0);
	virtq_destroy(&vq);
}

/*
 * Crash-safe reconnect on a packed ring: a pop copies the list's
 * descriptors (virtq_elem.descs); B completes first, so its used element
 * overwrites A's first slot; a new queue resumed at the used position
 * (virtq_resume_used) starts A again from the copy (virtq_pop_saved),
 * and the driver sees A's used element next.  Bad copies break the queue.
 */
/*
 * virtq_packed_resync() after a flush the crash cut short: a batch of
 * three used elements written, the later two slots' flags out, the head's
 * not.  The new device publishes that batch (its ids and lengths are the
 * dead one's) and resumes after it, where the chain popped but never
 * completed is popped again; the driver sees every id once.
 */
static void test_packed_torn_flush(void)
{
	struct pdrv d;
	struct virtq vq, vq2;
	struct virtq_elem e[6];
	struct iovec iov[6][2];
	uint16_t id, found = 0, flags;
	uint32_t len;

	pdrv_setup(&d, &vq, 8, 0);
	for (uint16_t i = 0; i < 6; i++)
		ppost(&d, (struct buf[]){{DATA_GPA + i * 0x100u, 64, VRING_DESC_F_WRITE}}, 1, i);
	for (unsigned int i = 0; i < 6; i++)
		CHECK(pop(&vq, &e[i], iov[i], 2) == 1 && e[i].id == i);
	virtq_fill(&vq, &e[0], 1);
	virtq_fill(&vq, &e[1], 2);
	virtq_flush(&vq);
	CHECK(pget(&d, &id, &len, NULL) && id == 0);
	CHECK(pget(&d, &id, &len, NULL) && id == 1);
	virtq_fill(&vq, &e[2], 10);
	virtq_fill(&vq, &e[3], 20);
	virtq_fill(&vq, &e[4], 30);
	/* The crash: the head's flags never went out, chain 5 never completed. */
	CHECK(!pget(&d, &id, &len, NULL));
	memmap_put(e[5].mem);
	virtq_destroy(&vq);

	/* A new device, given the session's first base (QEMU 7.2 after a crash). */
	pdrv_restart(&d, &vq2, 1u << VIRTQ_PACKED_WRAP_BIT, "test:packed2");
	CHECK(virtq_packed_resync(&vq2, &found) == 0);
	CHECK_MSG(found == (0x8000 | 5), "resumed at %#x", found);
	CHECK(pget(&d, &id, &len, &flags) && id == 2 && len == 10 && (flags & VRING_DESC_F_WRITE));
	CHECK(pget(&d, &id, &len, NULL) && id == 3 && len == 20);
	CHECK(pget(&d, &id, &len, NULL) && id == 4 && len == 30);
	CHECK(!pget(&d, &id, &len, NULL));
	CHECK(pop(&vq2, &e[5], iov[5], 2) == 1 && e[5].id == 5);
	CHECK(pop(&vq2, &e[0], iov[0], 2) == 0);
	virtq_push(&vq2, &e[5], 40);
	CHECK(pget(&d, &id, &len, NULL) && id == 5 && len == 40);
	virtq_destroy(&vq2);
}

static void test_packed_saved(void)
{
	struct virtq_desc_copy dc[2][8], bad[2];
	struct pdrv d;
	struct virtq vq;
	struct virtq_elem e[2];
	struct iovec iov[2][8];
	uint16_t id;
	uint32_t len;

	pdrv_setup(&d, &vq, 5, 0);
	ppost_ids(&d, (struct buf[]){{DATA_GPA, 16, 0}, {DATA_GPA + 0x100, 32, VRING_DESC_F_WRITE}},
		  2, (uint16_t[]){9, 0});
	ppost(&d, (struct buf[]){{DATA_GPA + 0x200, 8, VRING_DESC_F_WRITE}}, 1, 1);
	for (unsigned int i = 0; i < 2; i++) {
		virtq_elem_init(&e[i], iov[i], 8);
		e[i].descs = dc[i];
		CHECK(virtq_pop(&vq, &e[i]) == 1);
	}
	CHECK(e[0].ndescs == 2 && dc[0][0].addr == DATA_GPA && dc[0][0].len == 16 &&
	      (dc[0][0].flags & VRING_DESC_F_NEXT) && dc[0][1].next == 0 &&
	      (dc[0][1].flags & VRING_DESC_F_WRITE) && dc[0][1].addr == DATA_GPA + 0x100);
	CHECK(e[1].ndescs == 1 && dc[1][0].next == 1);
	virtq_push(&vq, &e[1], 8);
	CHECK(pget(&d, &id, &len, NULL) && id == 1);
	CHECK(d.desc[0].id == 1); /* A's first slot holds B's used element now */
	CHECK(virtq_get_base(&vq) == (0x8000 | 3));
	/* The back-end dies with A in flight: its element goes with it. */
	virtq_fill(&vq, &e[0], 0);
	virtq_destroy(&vq);

	pdrv_restart(&d, &vq, 0x8000 | 3, "test:packed-saved");
	virtq_resume_used(&vq, 0x8000 | 1);
	CHECK(virtq_pop_head(&vq, &e[0], 0) == -EOPNOTSUPP);
	virtq_elem_init(&e[0], iov[0], 8);
	CHECK(virtq_pop_saved(&vq, &e[0], dc[0], 2) == 1);
	CHECK(e[0].id == 0 && e[0].ndescs == 2 && e[0].out_len == 16 && e[0].in_len == 32);
	CHECK(iov[0][1].iov_base == hva(DATA_GPA + 0x100));
	virtq_push(&vq, &e[0], 32);
	CHECK(pget(&d, &id, &len, NULL) && id == 0 && len == 32);
	CHECK(!virtq_is_broken(&vq));
	virtq_destroy(&vq);

	/* The same id twice is a second completion waiting to happen. */
	pdrv_restart(&d, &vq, 0x8000 | 3, "test:packed-saved");
	virtq_elem_init(&e[0], iov[0], 8);
	CHECK(virtq_pop_saved(&vq, &e[0], dc[0], 2) == 1);
	virtq_elem_init(&e[1], iov[1], 8);
	CHECK(virtq_pop_saved(&vq, &e[1], dc[0], 2) == -EIO);
	CHECK(vq.error == VIRTQ_ERR_ID_IN_FLIGHT);
	virtq_fill(&vq, &e[0], 0);
	virtq_destroy(&vq);

	/* A copy whose last descriptor says NEXT, or an id past the ring. */
	for (unsigned int k = 0; k < 2; k++) {
		pdrv_restart(&d, &vq, 0x8000 | 3, "test:packed-saved");
		bad[0] = dc[0][0];
		bad[1] = dc[0][1];
		if (k == 0)
			bad[1].flags |= VRING_DESC_F_NEXT;
		else
			bad[1].next = 5;
		virtq_elem_init(&e[0], iov[0], 8);
		CHECK(virtq_pop_saved(&vq, &e[0], bad, 2) == -EIO && virtq_is_broken(&vq));
		CHECK(virtq_pop_saved(&vq, &e[0], dc[0], 0) == -EIO);
		virtq_destroy(&vq);
	}
}

static void test_iov(void)
{
	char a[4] = "abcd", b[3] = "efg", out[8] = {0};
	struct iovec iov[2] = {{a, 4}, {b, 3}};

	CHECK(iov_length(iov, 2) == 7);
	CHECK(iov_to_buf(iov, 2, 2, out, sizeof(out)) == 5 && !memcmp(out, "cdefg", 5));
	CHECK(iov_from_buf(iov, 2, 3, "XYZ", 3) == 3 && !memcmp(a, "abcX", 4) &&
	      !memcmp(b, "YZg", 3));
	CHECK(iov_to_buf(iov, 2, 9, out, 1) == 0);
}

int main(void)
{
	mem_setup();
	/* Each refusal below logs its one "broken:" line to stderr. */

	test_split_basic();
	test_split_indirect();
	test_split_wrap();
	test_split_notify();
	test_split_enable_notify_broken();
	test_split_hostile();
	test_split_config();
	test_packed_basic();
	test_packed_indirect();
	test_packed_wrap();
	test_packed_notify();
	test_packed_hostile();
	test_packed_saved();
	test_packed_torn_flush();
	test_iov();

	/* Every popped element was filled: only our own reference is left. */
	CHECK(atomic_load(&map->refcount) == 1);
	memmap_put(map);
	free(mem_a);
	free(mem_b);
	printf("test_virtq_device: ok\n");
	return 0;
}
