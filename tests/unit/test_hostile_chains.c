// SPDX-License-Identifier: MIT
/*
 * test_hostile_chains.c - the device side must refuse every malformed chain
 * a hostile driver can write, with the named reason, without touching
 * memory outside the guest's regions.
 *
 * Each case writes one bad ring by hand (ring.h structures, not the driver
 * side) into guarded guest memory (ring_fixture.h) and checks:
 *   - virtq_pop() returns -EIO, and keeps doing so;
 *   - vq->broken is set and vq->error is the expected enum virtq_error;
 *   - nothing was written: the driver-owned ring and every buffer are
 *     byte-for-byte unchanged, the canaries between regions intact, and any
 *     stray access at all would have hit a guard page or the untouchable
 *     region C.
 * Control cases show the fixture's rings are accepted when well formed, so
 * a refusal is for the flaw the case plants and nothing else.
 *
 *	test_hostile_chains [CASE...]	(none: all, each in a child process)
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ring_fixture.h"
#include "test_util.h"

#define SPLIT_NUM  8
#define PACKED_NUM 7 /* packed rings need not be a power of two */
#define MAX_IOV	   16
#define GIB	   (1ull << 30)

static struct ring_fixture f;
static uint8_t *snapshot;

static void begin(bool packed, uint64_t extra_features)
{
	int ret;

	fixture_create(&f, 64 * 1024, 4096, FIX_BIG);
	ret = fixture_ring_init(&f, packed, packed ? PACKED_NUM : SPLIT_NUM,
				fix_features(packed, extra_features), fix_fresh_base(packed), NULL);
	if (ret)
		FAIL("virtq_init: %d", ret);
}

static uint64_t buf(unsigned int i)
{
	return fixture_data_gpa(&f, 4096 + 256 * (size_t)i);
}

/* Last byte of region A: a buffer starting here and longer than 1 straddles into B. */
static uint64_t a_end(void)
{
	return FIX_GPA_A + f.a_size;
}

/* Where the device may legitimately write in A: the used ring / device event area. */
static void device_owned(size_t *off, size_t *len)
{
	if (f.packed) {
		*off = (size_t)((uint8_t *)f.device_event - f.a);
		*len = sizeof(*f.device_event);
	} else {
		*off = (size_t)((uint8_t *)f.used - f.a);
		*len = vring_used_size(f.num);
	}
}

static void take_snapshot(void)
{
	snapshot = malloc(f.a_size);
	CHECK(snapshot);
	memcpy(snapshot, f.a, f.a_size);
}

/* A refused pop wrote nothing the driver owns: ring, tables, buffers. */
static void check_untouched(void)
{
	size_t off, len;

	device_owned(&off, &len);
	for (size_t i = 0; i < f.a_size; i++) {
		if ((i < off || i >= off + len) && f.a[i] != snapshot[i])
			FAIL("byte %zu of guest memory changed by a refused pop", i);
	}
	if (!f.packed)
		CHECK_EQ(vq_read16(&f.used->idx), 0);
}

static int pop(unsigned int max_iov)
{
	static struct iovec iov[MAX_IOV];
	static struct virtq_elem e;

	virtq_elem_init(&e, iov, max_iov);
	return virtq_pop(&f.vq, &e);
}

static void expect_error(enum virtq_error err)
{
	CHECK(f.vq.broken);
	CHECK(virtq_is_broken(&f.vq));
	if (f.vq.error != err)
		FAIL("queue broken with \"%s\" (%d), expected \"%s\" (%d)",
		     virtq_strerror(f.vq.error), f.vq.error, virtq_strerror(err), err);
	/* Broken stays broken: nothing more is walked. */
	CHECK_EQ(pop(MAX_IOV), -EIO);
	fixture_check_canaries(&f);
	fixture_destroy(&f);
	free(snapshot);
}

/* Pop with an element of @max_iov iovecs and expect refusal @err. */
static void refused_iov(enum virtq_error err, unsigned int max_iov)
{
	int ret;

	take_snapshot();
	ret = pop(max_iov);
	if (ret != -EIO)
		FAIL("virtq_pop returned %d, expected -EIO (%s)", ret, virtq_strerror(err));
	check_untouched();
	expect_error(err);
}

static void refused(enum virtq_error err)
{
	refused_iov(err, MAX_IOV);
}

/* ---- split ring ---- */

static void desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	fix_split_desc(f.desc, i, addr, len, flags, next);
}

static struct vring_desc *table(size_t off)
{
	return fixture_data(&f, off);
}

static uint64_t table_gpa(size_t off)
{
	return fixture_data_gpa(&f, off);
}

static void split_control(void)
{
	static struct iovec iov[MAX_IOV];
	struct virtq_elem e;

	begin(false, FEAT(VIRTIO_RING_F_INDIRECT_DESC));
	desc(0, buf(0), 10, VRING_DESC_F_NEXT, 1);
	desc(1, buf(1), 20, VRING_DESC_F_WRITE, 0);
	fix_split_avail(&f, 0);
	fix_split_desc(table(0), 0, buf(2), 30, VRING_DESC_F_NEXT, 1);
	fix_split_desc(table(0), 1, fixture_gpa(&f, f.b), 40, VRING_DESC_F_WRITE, 0);
	desc(5, table_gpa(0), 32, VRING_DESC_F_INDIRECT, 0);
	fix_split_avail(&f, 5);

	virtq_elem_init(&e, iov, MAX_IOV);
	CHECK_EQ(virtq_pop(&f.vq, &e), 1);
	CHECK_EQ(e.id, 0);
	CHECK_EQ(e.out_num, 1);
	CHECK_EQ(e.in_num, 1);
	CHECK(e.iov[0].iov_base == fixture_data(&f, 4096));
	CHECK(e.iov[1].iov_base == fixture_data(&f, 4096 + 256));
	CHECK_EQ(e.out_len, 10);
	CHECK_EQ(e.in_len, 20);
	virtq_push(&f.vq, &e, 7);
	CHECK_EQ(vq_read16(&f.used->idx), 1);
	CHECK_EQ(vq_read32(&f.used->ring[0].id), 0);
	CHECK_EQ(vq_read32(&f.used->ring[0].len), 7);

	virtq_elem_init(&e, iov, MAX_IOV);
	CHECK_EQ(virtq_pop(&f.vq, &e), 1);
	CHECK_EQ(e.id, 5);
	CHECK(e.iov[1].iov_base == f.b);
	CHECK_EQ(e.in_len, 40);
	virtq_push(&f.vq, &e, 40);
	CHECK_EQ(virtq_pop(&f.vq, &e), 0);
	CHECK(!f.vq.broken);
	fixture_check_canaries(&f);
	fixture_destroy(&f);
}

/* 3 GiB + (1 GiB - 1): the largest total a used length can describe is fine. */
static void split_len_max_ok(void)
{
	static struct iovec iov[MAX_IOV];
	struct virtq_elem e;

	begin(false, 0);
	for (uint16_t i = 0; i < 4; i++)
		desc(i, FIX_GPA_BIG + i * GIB, (uint32_t)(i < 3 ? GIB : GIB - 1),
		     i < 3 ? VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	fix_split_avail(&f, 0);
	virtq_elem_init(&e, iov, MAX_IOV);
	CHECK_EQ(virtq_pop(&f.vq, &e), 1);
	CHECK_EQ(e.out_len, 0xffffffffu);
	CHECK_EQ(e.out_num, 4);
	virtq_push(&f.vq, &e, 0);
	CHECK(!f.vq.broken);
	fixture_destroy(&f);
}

static void split_addr_outside(void)
{
	begin(false, 0);
	desc(0, FIX_GPA_NOWHERE, 16, 0, 0);
	fix_split_avail(&f, 0);
	refused(VIRTQ_ERR_ADDR);
}

/* Just past the last region: a walker that adds without checking hits the guard page. */
static void split_addr_past_end(void)
{
	begin(false, 0);
	desc(0, buf(0), 16, VRING_DESC_F_NEXT, 1);
	desc(1, a_end() + f.b_size, 1, VRING_DESC_F_WRITE, 0);
	fix_split_avail(&f, 0);
	refused(VIRTQ_ERR_ADDR);
}

static void split_addr_straddle(void)
{
	begin(false, 0);
	desc(0, a_end() - 8, 16, 0, 0);
	fix_split_avail(&f, 0);
	refused(VIRTQ_ERR_ADDR);
}

static void split_addr_wrap(void)
{
	begin(false, 0);
	desc(0, UINT64_MAX - 7, 16, 0, 0);
	fix_split_avail(&f, 0);
	refused(VIRTQ_ERR_ADDR);
}

/* Five valid 1 GiB buffers: 5 GiB does not fit a 32-bit length. */
static void split_len_overflow_many(void)
{
	begin(false, 0);
	for (uint16_t i = 0; i < 5; i++)
		desc(i, FIX_GPA_BIG + i * GIB, (uint32_t)GIB, i < 4 ? VRING_DESC_F_NEXT : 0,
		     (uint16_t)(i + 1));
	fix_split_avail(&f, 0);
	refused(VIRTQ_ERR_LEN_OVERFLOW);
}

static void split_len_overflow_near_max(void)
{
	begin(false, 0);
	desc(0, FIX_GPA_BIG, UINT32_MAX - 15, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1);
	desc(1, FIX_GPA_BIG + 4 * GIB, UINT32_MAX - 15, VRING_DESC_F_WRITE, 0);
	fix_split_avail(&f, 0);
	refused(VIRTQ_ERR_LEN_OVERFLOW);
}

static void split_chain_loop(void)
{
	begin(false, 0);
	desc(0, buf(0), 16, VRING_DESC_F_NEXT, 1);
	desc(1, buf(1), 16, VRING_DESC_F_NEXT, 0);
	fix_split_avail(&f, 0);
	refused(VIRTQ_ERR_CHAIN_LONG);
}

static void split_chain_self_loop(void)
{
	begin(false, 0);
	desc(3, buf(0), 16, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 3);
	fix_split_avail(&f, 3);
	refused(VIRTQ_ERR_CHAIN_LONG);
}

static void split_indirect_loop(void)
{
	begin(false, FEAT(VIRTIO_RING_F_INDIRECT_DESC));
	fix_split_desc(table(0), 0, buf(0), 16, VRING_DESC_F_NEXT, 1);
	fix_split_desc(table(0), 1, buf(1), 16, VRING_DESC_F_NEXT, 0);
	desc(0, table_gpa(0), 32, VRING_DESC_F_INDIRECT, 0);
	fix_split_avail(&f, 0);
	refused(VIRTQ_ERR_CHAIN_LONG);
}

static void split_nested_indirect(void)
{
	begin(false, FEAT(VIRTIO_RING_F_INDIRECT_DESC));
	fix_split_desc(table(0), 0, buf(0), 16, VRING_DESC_F_NEXT, 1);
	fix_split_desc(table(0), 1, table_gpa(0), 32, VRING_DESC_F_INDIRECT, 0);
	desc(0, table_gpa(0), 32, VRING_DESC_F_INDIRECT, 0);
	fix_split_avail(&f, 0);
	refused(VIRTQ_ERR_NESTED_INDIRECT);
}

static void split_indirect_len_unaligned(void)
{
	begin(false, FEAT(VIRTIO_RING_F_INDIRECT_DESC));
	fix_split_desc(table(0), 0, buf(0), 16, 0, 0);
	desc(0, table_gpa(0), 24, VRING_DESC_F_INDIRECT, 0);
	fix_split_avail(&f, 0);
	refused(VIRTQ_ERR_INDIRECT_LEN);
}

static void split_indirect_len_zero(void)
{
	begin(false, FEAT(VIRTIO_RING_F_INDIRECT_DESC));
	desc(0, table_gpa(0), 0, VRING_DESC_F_INDIRECT, 0);
	fix_split_avail(&f, 0);
	refused(VIRTQ_ERR_INDIRECT_LEN);
}

static void split_indirect_next(void)
{
	begin(false, FEAT(VIRTIO_RING_F_INDIRECT_DESC));
	fix_split_desc(table(0), 0, buf(0), 16, 0, 0);
	desc(0, table_gpa(0), 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
	desc(1, buf(1), 16, VRING_DESC_F_WRITE, 0);
	fix_split_avail(&f, 0);
	refused(VIRTQ_ERR_INDIRECT_NEXT);
}

static void split_indirect_no_feature(void)
{
	begin(false, 0);
	fix_split_desc(table(0), 0, buf(0), 16, 0, 0);
	desc(0, table_gpa(0), 16, VRING_DESC_F_INDIRECT, 0);
	fix_split_avail(&f, 0);
	refused(VIRTQ_ERR_INDIRECT_FEATURE);
}

static void split_indirect_table_outside(void)
{
	begin(false, FEAT(VIRTIO_RING_F_INDIRECT_DESC));
	desc(0, FIX_GPA_NOWHERE, 64, VRING_DESC_F_INDIRECT, 0);
	fix_split_avail(&f, 0);
	refused(VIRTQ_ERR_ADDR);
}

/* A table whose second entry would be read from the canary page. */
static void split_indirect_table_straddle(void)
{
	begin(false, FEAT(VIRTIO_RING_F_INDIRECT_DESC));
	fix_split_desc((struct vring_desc *)(f.a + f.a_size - 16), 0, buf(0), 16, VRING_DESC_F_NEXT,
		       1);
	desc(0, a_end() - 16, 32, VRING_DESC_F_INDIRECT, 0);
	fix_split_avail(&f, 0);
	refused(VIRTQ_ERR_ADDR);
}

static void split_order(void)
{
	begin(false, 0);
	desc(0, buf(0), 16, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1);
	desc(1, buf(1), 16, 0, 0);
	fix_split_avail(&f, 0);
	refused(VIRTQ_ERR_ORDER);
}

static void split_order_indirect(void)
{
	begin(false, FEAT(VIRTIO_RING_F_INDIRECT_DESC));
	fix_split_desc(table(0), 0, buf(0), 16, VRING_DESC_F_NEXT, 1);
	fix_split_desc(table(0), 1, buf(1), 16, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
	fix_split_desc(table(0), 2, buf(2), 16, 0, 0);
	desc(0, table_gpa(0), 48, VRING_DESC_F_INDIRECT, 0);
	fix_split_avail(&f, 0);
	refused(VIRTQ_ERR_ORDER);
}

static void split_avail_ahead(void)
{
	begin(false, 0);
	desc(0, buf(0), 16, 0, 0);
	fix_split_avail(&f, 0);
	vq_store_release16(&f.avail->idx, SPLIT_NUM + 1);
	refused(VIRTQ_ERR_AVAIL_IDX);
}

/* The same across the 16-bit wrap of the index. */
static void split_avail_ahead_wrapped(void)
{
	int ret;

	fixture_create(&f, 64 * 1024, 4096, FIX_BIG);
	ret = fixture_ring_init(&f, false, SPLIT_NUM, fix_features(false, 0), 65530, NULL);
	CHECK_EQ(ret, 0);
	desc(0, buf(0), 16, 0, 0);
	vq_store_release16(&f.avail->idx, (uint16_t)(65530 + SPLIT_NUM + 1));
	refused(VIRTQ_ERR_AVAIL_IDX);
}

static void split_head_out_of_range(void)
{
	begin(false, 0);
	desc(0, buf(0), 16, 0, 0);
	fix_split_avail(&f, SPLIT_NUM);
	refused(VIRTQ_ERR_HEAD);
}

static void split_head_far_out_of_range(void)
{
	begin(false, 0);
	fix_split_avail(&f, 0xffff);
	refused(VIRTQ_ERR_HEAD);
}

static void split_next_out_of_range(void)
{
	begin(false, 0);
	desc(0, buf(0), 16, VRING_DESC_F_NEXT, SPLIT_NUM);
	fix_split_avail(&f, 0);
	refused(VIRTQ_ERR_HEAD);
}

/* The same head offered twice before we completed it. */
static void split_head_in_flight(void)
{
	static struct iovec iov[MAX_IOV];
	struct virtq_elem e;

	begin(false, 0);
	desc(2, buf(0), 16, 0, 0);
	fix_split_avail(&f, 2);
	fix_split_avail(&f, 2);
	virtq_elem_init(&e, iov, MAX_IOV);
	CHECK_EQ(virtq_pop(&f.vq, &e), 1);
	CHECK_EQ(pop(MAX_IOV), -EIO);
	virtq_fill(&f.vq, &e, 0);
	snapshot = NULL;
	expect_error(VIRTQ_ERR_ID_IN_FLIGHT);
}

static void split_no_map(void)
{
	begin(false, 0);
	desc(0, buf(0), 16, 0, 0);
	fix_split_avail(&f, 0);
	virtq_set_memmap(&f.vq, NULL);
	refused(VIRTQ_ERR_NO_MAP);
}

static void split_too_many_iov(void)
{
	begin(false, 0);
	desc(0, buf(0), 16, VRING_DESC_F_NEXT, 1);
	desc(1, buf(1), 16, VRING_DESC_F_NEXT, 2);
	desc(2, buf(2), 16, VRING_DESC_F_WRITE, 0);
	fix_split_avail(&f, 0);
	refused_iov(VIRTQ_ERR_TOO_MANY_IOV, 2);
}

static void split_too_many_iov_indirect(void)
{
	begin(false, FEAT(VIRTIO_RING_F_INDIRECT_DESC));
	for (uint16_t i = 0; i < MAX_IOV + 1; i++)
		fix_split_desc(table(0), i, buf(i), 16, i < MAX_IOV ? VRING_DESC_F_NEXT : 0,
			       (uint16_t)(i + 1));
	desc(0, table_gpa(0), (MAX_IOV + 1) * 16, VRING_DESC_F_INDIRECT, 0);
	fix_split_avail(&f, 0);
	refused(VIRTQ_ERR_TOO_MANY_IOV);
}

/* Pop one good chain, then complete something else. */
static void fill_bad(bool twice)
{
	static struct iovec iov[MAX_IOV];
	struct virtq_elem e, other;

	virtq_elem_init(&e, iov, MAX_IOV);
	CHECK_EQ(virtq_pop(&f.vq, &e), 1);
	if (twice) {
		virtq_push(&f.vq, &e, 0);
		CHECK(!f.vq.broken);
		virtq_fill(&f.vq, &e, 0);
	} else {
		other = e;
		other.id = (uint16_t)(e.id + 1);
		virtq_fill(&f.vq, &other, 0);
		/* Every popped element is filled once, even on a broken queue. */
		CHECK(f.vq.broken);
		virtq_fill(&f.vq, &e, 0);
	}
	virtq_flush(&f.vq);
	CHECK_EQ(virtq_pop(&f.vq, &e), -EIO);
	snapshot = NULL;
	expect_error(VIRTQ_ERR_USED_ID);
}

static void split_fill_not_in_flight(void)
{
	begin(false, 0);
	desc(0, buf(0), 16, 0, 0);
	desc(1, buf(1), 16, 0, 0);
	fix_split_avail(&f, 0);
	fix_split_avail(&f, 1);
	fill_bad(false);
}

static void split_fill_twice(void)
{
	begin(false, 0);
	desc(0, buf(0), 16, 0, 0);
	fix_split_avail(&f, 0);
	fill_bad(true);
}

/* ---- packed ring ---- */

static void pdesc(uint16_t slot, uint64_t addr, uint32_t len, uint16_t id, uint16_t flags)
{
	fix_packed_desc(&f, slot, addr, len, id, flags);
}

static struct vring_packed_desc *ptable(size_t off)
{
	return fixture_data(&f, off);
}

static void packed_control(void)
{
	static struct iovec iov[MAX_IOV];
	struct virtq_elem e;

	begin(true, FEAT(VIRTIO_RING_F_INDIRECT_DESC));
	pdesc(1, buf(1), 20, 4, VRING_DESC_F_WRITE);
	pdesc(0, buf(0), 10, 4, VRING_DESC_F_NEXT);
	fix_packed_table_desc(ptable(0), 0, buf(2), 30, 0);
	fix_packed_table_desc(ptable(0), 1, fixture_gpa(&f, f.b), 40, VRING_DESC_F_WRITE);
	pdesc(2, table_gpa(0), 32, 6, VRING_DESC_F_INDIRECT);

	virtq_elem_init(&e, iov, MAX_IOV);
	CHECK_EQ(virtq_pop(&f.vq, &e), 1);
	CHECK_EQ(e.id, 4);
	CHECK_EQ(e.ndescs, 2);
	CHECK_EQ(e.out_num, 1);
	CHECK_EQ(e.in_num, 1);
	CHECK(e.iov[0].iov_base == fixture_data(&f, 4096));
	CHECK_EQ(e.out_len, 10);
	CHECK_EQ(e.in_len, 20);
	virtq_push(&f.vq, &e, 7);
	/* 2.8.21: the used element goes in the first slot, with the buffer id. */
	CHECK_EQ(vq_read16(&f.pdesc[0].id), 4);
	CHECK_EQ(vq_read32(&f.pdesc[0].len), 7);
	CHECK_EQ(vq_read16(&f.pdesc[0].flags) &
			 (VRING_PACKED_DESC_F_AVAIL | VRING_PACKED_DESC_F_USED),
		 VRING_PACKED_DESC_F_AVAIL | VRING_PACKED_DESC_F_USED);

	virtq_elem_init(&e, iov, MAX_IOV);
	CHECK_EQ(virtq_pop(&f.vq, &e), 1);
	CHECK_EQ(e.id, 6);
	CHECK_EQ(e.ndescs, 1);
	CHECK(e.iov[1].iov_base == f.b);
	CHECK_EQ(e.in_len, 40);
	virtq_push(&f.vq, &e, 40);
	CHECK_EQ(virtq_pop(&f.vq, &e), 0);
	CHECK(!f.vq.broken);
	fixture_check_canaries(&f);
	fixture_destroy(&f);
}

static void packed_addr_outside(void)
{
	begin(true, 0);
	pdesc(0, FIX_GPA_NOWHERE, 16, 0, 0);
	refused(VIRTQ_ERR_ADDR);
}

static void packed_addr_straddle(void)
{
	begin(true, 0);
	pdesc(0, a_end() - 8, 16, 0, 0);
	refused(VIRTQ_ERR_ADDR);
}

static void packed_len_overflow(void)
{
	begin(true, 0);
	for (uint16_t i = 5; i-- > 0;)
		pdesc(i, FIX_GPA_BIG + i * GIB, (uint32_t)GIB, 0, i < 4 ? VRING_DESC_F_NEXT : 0);
	refused(VIRTQ_ERR_LEN_OVERFLOW);
}

static void packed_order(void)
{
	begin(true, 0);
	pdesc(1, buf(1), 16, 0, 0);
	pdesc(0, buf(0), 16, 0, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE);
	refused(VIRTQ_ERR_ORDER);
}

static void packed_nested_indirect(void)
{
	begin(true, FEAT(VIRTIO_RING_F_INDIRECT_DESC));
	fix_packed_table_desc(ptable(0), 0, buf(0), 16, 0);
	fix_packed_table_desc(ptable(0), 1, table_gpa(0), 32, VRING_DESC_F_INDIRECT);
	pdesc(0, table_gpa(0), 32, 0, VRING_DESC_F_INDIRECT);
	refused(VIRTQ_ERR_NESTED_INDIRECT);
}

static void packed_indirect_len_unaligned(void)
{
	begin(true, FEAT(VIRTIO_RING_F_INDIRECT_DESC));
	fix_packed_table_desc(ptable(0), 0, buf(0), 16, 0);
	pdesc(0, table_gpa(0), 17, 0, VRING_DESC_F_INDIRECT);
	refused(VIRTQ_ERR_INDIRECT_LEN);
}

static void packed_indirect_len_zero(void)
{
	begin(true, FEAT(VIRTIO_RING_F_INDIRECT_DESC));
	pdesc(0, table_gpa(0), 0, 0, VRING_DESC_F_INDIRECT);
	refused(VIRTQ_ERR_INDIRECT_LEN);
}

static void packed_indirect_no_feature(void)
{
	begin(true, 0);
	fix_packed_table_desc(ptable(0), 0, buf(0), 16, 0);
	pdesc(0, table_gpa(0), 16, 0, VRING_DESC_F_INDIRECT);
	refused(VIRTQ_ERR_INDIRECT_FEATURE);
}

/* 2.8.19: an indirect descriptor is never part of a NEXT list. */
static void packed_indirect_in_list(void)
{
	begin(true, FEAT(VIRTIO_RING_F_INDIRECT_DESC));
	fix_packed_table_desc(ptable(0), 0, buf(0), 16, 0);
	pdesc(1, table_gpa(0), 16, 0, VRING_DESC_F_INDIRECT);
	pdesc(0, buf(1), 16, 0, VRING_DESC_F_NEXT);
	refused(VIRTQ_ERR_INDIRECT_NEXT);
}

static void packed_indirect_table_outside(void)
{
	begin(true, FEAT(VIRTIO_RING_F_INDIRECT_DESC));
	pdesc(0, a_end() + f.b_size, 32, 0, VRING_DESC_F_INDIRECT);
	refused(VIRTQ_ERR_ADDR);
}

static void packed_order_indirect(void)
{
	begin(true, FEAT(VIRTIO_RING_F_INDIRECT_DESC));
	fix_packed_table_desc(ptable(0), 0, buf(0), 16, VRING_DESC_F_WRITE);
	fix_packed_table_desc(ptable(0), 1, buf(1), 16, 0);
	pdesc(0, table_gpa(0), 32, 0, VRING_DESC_F_INDIRECT);
	refused(VIRTQ_ERR_ORDER);
}

/* Every slot available and flagged NEXT: the chain never ends. */
static void packed_chain_longer_than_queue(void)
{
	begin(true, 0);
	for (uint16_t i = PACKED_NUM; i-- > 0;)
		pdesc(i, buf(i), 16, 0, VRING_DESC_F_NEXT);
	refused(VIRTQ_ERR_CHAIN_LONG);
}

static void packed_id_out_of_range(void)
{
	begin(true, 0);
	pdesc(0, buf(0), 16, PACKED_NUM, 0);
	refused(VIRTQ_ERR_HEAD);
}

/* A buffer id reused while the first buffer with it is still in flight. */
static void packed_id_in_flight(void)
{
	static struct iovec iov[MAX_IOV];
	struct virtq_elem e;

	begin(true, 0);
	pdesc(0, buf(0), 16, 3, 0);
	pdesc(1, buf(1), 16, 3, 0);
	virtq_elem_init(&e, iov, MAX_IOV);
	CHECK_EQ(virtq_pop(&f.vq, &e), 1);
	CHECK_EQ(pop(MAX_IOV), -EIO);
	virtq_fill(&f.vq, &e, 0);
	snapshot = NULL;
	expect_error(VIRTQ_ERR_ID_IN_FLIGHT);
}

/*
 * The packed analogue of the avail index running ahead: the driver re-offers
 * a slot of the next lap while we still hold every slot of this one.
 */
static void packed_ring_overrun(void)
{
	static struct iovec iov[PACKED_NUM][MAX_IOV];
	struct virtq_elem e[PACKED_NUM];
	struct vring_packed_desc *d;

	begin(true, 0);
	for (uint16_t i = 0; i < PACKED_NUM; i++)
		pdesc(i, buf(i), 16, i, 0);
	for (uint16_t i = 0; i < PACKED_NUM; i++) {
		virtq_elem_init(&e[i], iov[i], MAX_IOV);
		CHECK_EQ(virtq_pop(&f.vq, &e[i]), 1);
	}
	/* Slot 0 again, second lap (wrap counter 0: AVAIL clear, USED set). */
	d = &f.pdesc[0];
	vq_write64(&d->addr, buf(0));
	vq_write32(&d->len, 16);
	vq_write16(&d->id, 0);
	vq_store_release16(&d->flags, VRING_PACKED_DESC_F_USED);
	take_snapshot();
	CHECK_EQ(pop(MAX_IOV), -EIO);
	check_untouched();
	for (uint16_t i = 0; i < PACKED_NUM; i++)
		virtq_fill(&f.vq, &e[i], 0);
	expect_error(VIRTQ_ERR_AVAIL_IDX);
}

static void packed_too_many_iov(void)
{
	begin(true, 0);
	pdesc(2, buf(2), 16, 0, VRING_DESC_F_WRITE);
	pdesc(1, buf(1), 16, 0, VRING_DESC_F_NEXT);
	pdesc(0, buf(0), 16, 0, VRING_DESC_F_NEXT);
	refused_iov(VIRTQ_ERR_TOO_MANY_IOV, 2);
}

static void packed_fill_not_in_flight(void)
{
	begin(true, 0);
	pdesc(0, buf(0), 16, 2, 0);
	fill_bad(false);
}

static void packed_fill_twice(void)
{
	begin(true, 0);
	pdesc(0, buf(0), 16, 2, 0);
	fill_bad(true);
}

/* clang-format off */
#define CASE(fn) { #fn, fn }

static const struct test_case cases[] = {
	CASE(split_control),
	CASE(split_len_max_ok),
	CASE(split_addr_outside),
	CASE(split_addr_past_end),
	CASE(split_addr_straddle),
	CASE(split_addr_wrap),
	CASE(split_len_overflow_many),
	CASE(split_len_overflow_near_max),
	CASE(split_chain_loop),
	CASE(split_chain_self_loop),
	CASE(split_indirect_loop),
	CASE(split_nested_indirect),
	CASE(split_indirect_len_unaligned),
	CASE(split_indirect_len_zero),
	CASE(split_indirect_next),
	CASE(split_indirect_no_feature),
	CASE(split_indirect_table_outside),
	CASE(split_indirect_table_straddle),
	CASE(split_order),
	CASE(split_order_indirect),
	CASE(split_avail_ahead),
	CASE(split_avail_ahead_wrapped),
	CASE(split_head_out_of_range),
	CASE(split_head_far_out_of_range),
	CASE(split_next_out_of_range),
	CASE(split_head_in_flight),
	CASE(split_too_many_iov),
	CASE(split_too_many_iov_indirect),
	CASE(split_fill_not_in_flight),
	CASE(split_fill_twice),
	CASE(split_no_map),
	CASE(packed_control),
	CASE(packed_addr_outside),
	CASE(packed_addr_straddle),
	CASE(packed_len_overflow),
	CASE(packed_order),
	CASE(packed_order_indirect),
	CASE(packed_nested_indirect),
	CASE(packed_indirect_len_unaligned),
	CASE(packed_indirect_len_zero),
	CASE(packed_indirect_no_feature),
	CASE(packed_indirect_in_list),
	CASE(packed_indirect_table_outside),
	CASE(packed_chain_longer_than_queue),
	CASE(packed_id_out_of_range),
	CASE(packed_id_in_flight),
	CASE(packed_ring_overrun),
	CASE(packed_too_many_iov),
	CASE(packed_fill_not_in_flight),
	CASE(packed_fill_twice),
};
/* clang-format on */

int main(int argc, char **argv)
{
	return test_main(argc, argv, cases, ARRAY_SIZE(cases));
}
