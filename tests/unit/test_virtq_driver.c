// SPDX-License-Identifier: MIT
/*
 * test_virtq_driver.c - unit test of the driver side of the virtqueue
 * (src/virtq/driver*.c): the bytes add_sgs() leaves in ring memory (flags,
 * chaining, indirect tables, packed wrap), get_buf() against hand-written
 * used entries, notification suppression, broken-device handling, and a
 * randomized round trip against a tiny fake device written here, for split
 * and packed, EVENT_IDX on and off, queue sizes 1, 2, 256, 32768 (and odd
 * packed sizes).
 *
 * Standalone for now:
 *	gcc -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Isrc -Itests/helpers \
 *		tests/unit/test_virtq_driver.c tests/helpers/check.c src/virtq/driver.c \
 *		src/virtq/driver_split.c src/virtq/driver_packed.c \
 *		src/common/log.c -pthread -o /tmp/test_virtq_driver && /tmp/test_virtq_driver
 *
 * The threaded round trip at the end is meant for -fsanitize=thread too: the
 * fake device runs on its own thread and reads the ring only through the
 * acquire loads, so a missing release/acquire pair shows up as a race.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/log.h"
#include "virtq/virtq_drv.h"

#define F(bit)	 (1ull << (bit))
#define DMA_BASE 0x40000000ull

static const uint16_t sizes[] = {1, 2, 256, 32768};

/* Test tokens: any distinct non-NULL pointers. */
static char tokens[70000];
#define TOK(i) ((void *)&tokens[(i)])

struct tq {
	struct virtq_drv *vq;
	void *mem;
	size_t size;
	uint16_t num;
	struct virtq_drv_addrs a;
};

/* Set for the second pass of the round trips: queues publish at kick_prepare(). */
static bool batch_publish;

static struct tq tq_new(uint16_t num, uint64_t features, unsigned int indirect_max)
{
	bool packed = features & F(VIRTIO_F_RING_PACKED);
	struct tq t = {.num = num};

	t.size = virtq_drv_mem_size(num, packed, indirect_max);
	t.mem = aligned_alloc(4096, (t.size + 4095) & ~(size_t)4095);
	memset(t.mem, 0xa5, t.size); /* new() must zero it */
	t.vq = virtq_drv_new(num, features, t.mem, DMA_BASE, indirect_max);
	if (!t.vq) {
		fprintf(stderr, "virtq_drv_new(%u) failed: %s\n", num, strerror(errno));
		exit(1);
	}
	virtq_drv_get_addrs(t.vq, &t.a);
	virtq_drv_set_batch_publish(t.vq, batch_publish);
	return t;
}

static void tq_free(struct tq *t)
{
	virtq_drv_free(t->vq);
	free(t->mem);
}

/* Host pointer for a device-visible address inside the block. */
static void *P(struct tq *t, uint64_t dma)
{
	return (char *)t->mem + (dma - DMA_BASE);
}

static struct vring_desc *S_DESC(struct tq *t)
{
	return P(t, t->a.desc);
}

static struct vring_avail *S_AVAIL(struct tq *t)
{
	return P(t, t->a.driver_area);
}

static struct vring_used *S_USED(struct tq *t)
{
	return P(t, t->a.device_area);
}

static struct vring_packed_desc *P_DESC(struct tq *t)
{
	return P(t, t->a.desc);
}

static struct vring_packed_desc_event *P_DRV(struct tq *t)
{
	return P(t, t->a.driver_area);
}

static struct vring_packed_desc_event *P_DEV(struct tq *t)
{
	return P(t, t->a.device_area);
}

static void sgs_fill(struct virtq_sg *sg, unsigned int n, uint64_t tag)
{
	for (unsigned int k = 0; k < n; k++) {
		sg[k].addr = tag << 16 | k;
		sg[k].len = 100 + k;
	}
}

/* Hand-written device completion, split: one used entry. */
static void s_used(struct tq *t, uint32_t id, uint32_t len)
{
	struct vring_used *u = S_USED(t);
	uint16_t idx = le16toh(u->idx);

	u->ring[idx & (t->num - 1)].id = htole32(id);
	u->ring[idx & (t->num - 1)].len = htole32(len);
	vq_store_release16(&u->idx, idx + 1);
}

/* Hand-written device completion, packed: a used element at @slot on lap @wrap. */
static void p_used(struct tq *t, uint16_t slot, bool wrap, uint16_t id, uint32_t len)
{
	struct vring_packed_desc *d = &P_DESC(t)[slot];

	d->id = htole16(id);
	d->len = htole32(len);
	vq_store_release16(&d->flags,
			   wrap ? VRING_PACKED_DESC_F_AVAIL | VRING_PACKED_DESC_F_USED : 0);
}

/* ------------------------------------------------------------------ */

static void test_layout(void)
{
	/* split 256: desc 4096, avail 6+512+... used at align 4, tables at 16. */
	size_t used_off = (4096 + 4 + 2 * 256 + 2 + 3) & ~(size_t)3;
	size_t split_end = used_off + 4 + 8 * 256 + 2;
	size_t tables = (split_end + 15) & ~(size_t)15;

	CHECK(virtq_drv_mem_size(256, false, 0) == tables);
	CHECK(virtq_drv_mem_size(256, false, 4) == tables + 256 * 4 * 16);
	CHECK(virtq_drv_mem_size(256, true, 0) == 4096 + 16);
	CHECK(virtq_drv_mem_size(3, true, 2) == ((48 + 8 + 15) & ~(size_t)15) + 3 * 2 * 16);
	CHECK(virtq_drv_mem_size(0, false, 0) == 0);
	CHECK(virtq_drv_mem_size(0, true, 0) == 0);
	CHECK(virtq_drv_mem_size(3, false, 0) == 0);
	CHECK(virtq_drv_mem_size(32768, false, 0) != 0);
	CHECK(virtq_drv_mem_size(32768, true, 0) != 0);
	CHECK(virtq_drv_mem_size(40000, true, 0) == 0);
	CHECK(virtq_drv_mem_size(4, true, 32769) == 0);

	struct tq t = tq_new(256, F(VIRTIO_RING_F_INDIRECT_DESC), 4);

	CHECK(t.a.desc == DMA_BASE);
	CHECK(t.a.driver_area == DMA_BASE + 4096);
	CHECK(t.a.device_area == DMA_BASE + used_off);
	for (size_t i = 0; i < t.size; i++)
		if (((unsigned char *)t.mem)[i]) {
			CHECK(!"memory zeroed");
			break;
		}
	CHECK(virtq_drv_size(t.vq) == 256 && !virtq_drv_is_packed(t.vq));
	tq_free(&t);

	t = tq_new(3, F(VIRTIO_F_RING_PACKED), 0);
	CHECK(t.a.desc == DMA_BASE && t.a.driver_area == DMA_BASE + 48 &&
	      t.a.device_area == DMA_BASE + 52);
	CHECK(virtq_drv_is_packed(t.vq) && virtq_drv_num_free(t.vq) == 3);
	tq_free(&t);

	static _Alignas(16) char buf[1 << 16];

	errno = 0;
	CHECK(!virtq_drv_new(3, 0, buf, DMA_BASE, 0) && errno == EINVAL);
	errno = 0;
	CHECK(!virtq_drv_new(4, 0, buf + 8, DMA_BASE, 0) && errno == EINVAL);
	errno = 0;
	CHECK(!virtq_drv_new(4, 0, buf, DMA_BASE + 4, 0) && errno == EINVAL);
	errno = 0;
	CHECK(!virtq_drv_new(0, F(VIRTIO_F_RING_PACKED), buf, DMA_BASE, 0) && errno == EINVAL);
}

/* ------------------------------------------------------------------ */

static void test_split_basic(uint16_t num, bool event)
{
	uint64_t feat = event ? F(VIRTIO_RING_F_EVENT_IDX) : 0;
	struct tq t = tq_new(num, feat, 0);
	struct virtq_sg sg[8];
	unsigned int n = num < 3 ? num : 3, i;
	uint32_t len;

	/* A chain: out, then in; NEXT on all but the last, free-list order. */
	sgs_fill(sg, n, 1);
	CHECK(virtq_drv_add_sgs(t.vq, sg, 1, n - 1, TOK(1)) == 0);
	CHECK(virtq_drv_num_free(t.vq) == num - n);
	CHECK(le16toh(S_AVAIL(&t)->ring[0]) == 0);
	CHECK(le16toh(S_AVAIL(&t)->idx) == 1);
	for (i = 0; i < n; i++) {
		struct vring_desc *d = &S_DESC(&t)[i];
		uint16_t want = (i ? VRING_DESC_F_WRITE : 0) | (i + 1 < n ? VRING_DESC_F_NEXT : 0);

		CHECK(le64toh(d->addr) == (1u << 16 | i));
		CHECK(le32toh(d->len) == 100 + i);
		CHECK(le16toh(d->flags) == want);
		CHECK(le16toh(d->next) == (i + 1 < n ? i + 1 : 0));
	}

	/* kick: without EVENT_IDX honour NO_NOTIFY; with it, avail_event. */
	if (!event) {
		CHECK(virtq_drv_kick_prepare(t.vq));
		S_USED(&t)->flags = htole16(VRING_USED_F_NO_NOTIFY);
		CHECK(!virtq_drv_kick_prepare(t.vq));
		S_USED(&t)->flags = 0;
	} else {
		/* avail_event 0: device wants to hear once entry 0 is added. */
		CHECK(virtq_drv_kick_prepare(t.vq));
		CHECK(!virtq_drv_kick_prepare(t.vq)); /* nothing new */
	}

	CHECK(virtq_drv_get_buf(t.vq, &len) == NULL);
	s_used(&t, 0, 77);
	CHECK(virtq_drv_get_buf(t.vq, &len) == TOK(1) && len == 77);
	CHECK(virtq_drv_num_free(t.vq) == num);
	CHECK(virtq_drv_get_buf(t.vq, &len) == NULL);
	if (event)
		CHECK(le16toh(*vring_used_event(S_AVAIL(&t), num)) == 1);
	else
		CHECK(le16toh(*vring_used_event(S_AVAIL(&t), num)) == 0);

	/* Bad shapes. */
	CHECK(virtq_drv_add_sgs(t.vq, sg, 0, 0, TOK(2)) == -EINVAL);
	CHECK(virtq_drv_add_sgs(t.vq, sg, 1, 0, NULL) == -EINVAL);
	if (num < 8)
		CHECK(virtq_drv_add_sgs(t.vq, sg, num, 1, TOK(2)) == -EINVAL);
	sg[0].len = 0xffffffffu;
	sg[1].len = 1;
	if (num >= 2)
		CHECK(virtq_drv_add_sgs(t.vq, sg, 2, 0, TOK(2)) == -EINVAL);
	sg[0].len = sg[1].len = 1;

	/* Fill the ring with single buffers, then -ENOSPC. */
	for (i = 0; i < num; i++)
		CHECK(virtq_drv_add_sgs(t.vq, sg, 0, 1, TOK(10 + i)) == 0);
	CHECK(virtq_drv_add_sgs(t.vq, sg, 0, 1, TOK(9)) == -ENOSPC);
	CHECK(virtq_drv_num_free(t.vq) == 0);

	/* Complete in reverse order of heads; tokens follow the heads. */
	uint16_t base = 1;
	uint16_t *heads = malloc(num * sizeof(*heads));

	for (i = 0; i < num; i++)
		heads[i] = le16toh(S_AVAIL(&t)->ring[(base + i) & (num - 1)]);
	for (i = num; i-- > 0;)
		s_used(&t, heads[i], i);
	for (i = num; i-- > 0;) {
		void *tok = virtq_drv_get_buf(t.vq, &len);

		CHECK(tok == TOK(10 + i) && len == i);
	}
	CHECK(virtq_drv_num_free(t.vq) == num);
	free(heads);

	/* detach_unused_buf takes back never-used chains and rolls back idx. */
	uint16_t idx0 = le16toh(S_AVAIL(&t)->idx);

	CHECK(virtq_drv_add_sgs(t.vq, sg, 1, 0, TOK(5)) == 0);
	void *d1 = virtq_drv_detach_unused_buf(t.vq);

	CHECK(d1 == TOK(5));
	CHECK(virtq_drv_detach_unused_buf(t.vq) == NULL);
	CHECK(le16toh(S_AVAIL(&t)->idx) == idx0);
	CHECK(virtq_drv_num_free(t.vq) == num);
	CHECK(!virtq_drv_is_broken(t.vq));
	tq_free(&t);
}

static void test_split_indirect(uint16_t num)
{
	struct tq t = tq_new(num, F(VIRTIO_RING_F_INDIRECT_DESC), 4);
	struct virtq_sg sg[8];
	uint32_t len;

	if (num < 5) {
		/* Indirect cannot lift the queue-size limit on chain length. */
		sgs_fill(sg, num + 1, 3);
		CHECK(virtq_drv_add_sgs(t.vq, sg, 1, num, TOK(3)) == -EINVAL);
	}
	if (num < 3) {
		tq_free(&t);
		return;
	}

	sgs_fill(sg, 3, 2);
	CHECK(virtq_drv_add_sgs(t.vq, sg, 2, 1, TOK(2)) == 0);
	CHECK(virtq_drv_num_free(t.vq) == num - 1u);
	struct vring_desc *d = &S_DESC(&t)[0];

	CHECK(le16toh(d->flags) == VRING_DESC_F_INDIRECT);
	CHECK(le32toh(d->len) == 3 * 16);
	uint64_t tdma = le64toh(d->addr);

	CHECK(tdma % 16 == 0 && tdma >= t.a.device_area && tdma + 48 <= DMA_BASE + t.size);
	struct vring_desc *tbl = P(&t, tdma);

	for (unsigned int i = 0; i < 3; i++) {
		CHECK(le64toh(tbl[i].addr) == (2u << 16 | i));
		CHECK(le32toh(tbl[i].len) == 100 + i);
		CHECK(le16toh(tbl[i].flags) ==
		      ((i == 2 ? VRING_DESC_F_WRITE : 0) | (i < 2 ? VRING_DESC_F_NEXT : 0)));
		CHECK(le16toh(tbl[i].next) == (i < 2 ? i + 1 : 0));
	}

	/* One buffer: direct.  More than indirect_max: direct too. */
	CHECK(virtq_drv_add_sgs(t.vq, sg, 1, 0, TOK(4)) == 0);
	CHECK(le16toh(S_DESC(&t)[1].flags) == 0);
	if (num >= 8) {
		sgs_fill(sg, 5, 6);
		CHECK(virtq_drv_add_sgs(t.vq, sg, 5, 0, TOK(6)) == 0);
		CHECK(virtq_drv_num_free(t.vq) == num - 7u);
		CHECK(le16toh(S_DESC(&t)[2].flags) == VRING_DESC_F_NEXT);
	}

	/* Tables belong to heads: a second indirect chain uses its own. */
	sgs_fill(sg, 2, 7);
	CHECK(virtq_drv_add_sgs(t.vq, sg, 1, 1, TOK(7)) == 0);
	uint16_t h = le16toh(S_AVAIL(&t)->ring[num >= 8 ? 3 : 2]);

	CHECK(h == (num >= 8 ? 7 : 2));
	CHECK(le16toh(S_DESC(&t)[h].flags) == VRING_DESC_F_INDIRECT);
	CHECK(le64toh(S_DESC(&t)[h].addr) == tdma + (uint64_t)h * 4 * 16);
	CHECK(le64toh(((struct vring_desc *)P(&t, tdma + h * 64))[1].addr) == (7u << 16 | 1));

	/* Completing the indirect chain frees one ring descriptor. */
	unsigned int before = virtq_drv_num_free(t.vq);

	s_used(&t, 0, 5);
	CHECK(virtq_drv_get_buf(t.vq, &len) == TOK(2) && len == 5);
	CHECK(virtq_drv_num_free(t.vq) == before + 1);
	tq_free(&t);
}

static void test_split_broken(void)
{
	struct virtq_sg sg[1] = {{0x1000, 1}};
	uint32_t len;
	struct tq t = tq_new(4, 0, 0);

	/* Used id out of range (including one that would alias mod 2^16). */
	CHECK(virtq_drv_add_sgs(t.vq, sg, 1, 0, TOK(1)) == 0);
	s_used(&t, 0x10000, 1);
	CHECK(virtq_drv_get_buf(t.vq, &len) == NULL && virtq_drv_is_broken(t.vq));
	CHECK(virtq_drv_add_sgs(t.vq, sg, 1, 0, TOK(2)) == -EIO);
	tq_free(&t);

	/* Used id in range but not in flight. */
	t = tq_new(4, 0, 0);
	CHECK(virtq_drv_add_sgs(t.vq, sg, 1, 0, TOK(1)) == 0);
	s_used(&t, 2, 1);
	CHECK(virtq_drv_get_buf(t.vq, &len) == NULL && virtq_drv_is_broken(t.vq));
	tq_free(&t);

	/* Used index ahead of what was made available. */
	t = tq_new(4, 0, 0);
	CHECK(virtq_drv_add_sgs(t.vq, sg, 1, 0, TOK(1)) == 0);
	s_used(&t, 0, 1);
	s_used(&t, 0, 1);
	CHECK(virtq_drv_get_buf(t.vq, &len) == NULL && virtq_drv_is_broken(t.vq));
	tq_free(&t);

	/* Same id used twice: the second is not in flight any more. */
	t = tq_new(4, 0, 0);
	CHECK(virtq_drv_add_sgs(t.vq, sg, 1, 0, TOK(1)) == 0);
	CHECK(virtq_drv_add_sgs(t.vq, sg, 1, 0, TOK(2)) == 0);
	s_used(&t, 0, 1);
	s_used(&t, 0, 1);
	CHECK(virtq_drv_get_buf(t.vq, &len) == TOK(1));
	CHECK(virtq_drv_get_buf(t.vq, &len) == NULL && virtq_drv_is_broken(t.vq));
	tq_free(&t);
}

static void test_split_cb(bool event)
{
	struct tq t = tq_new(16, event ? F(VIRTIO_RING_F_EVENT_IDX) : 0, 0);
	struct virtq_sg sg[1] = {{0x1000, 1}};
	uint16_t *used_event = vring_used_event(S_AVAIL(&t), 16);
	uint32_t len;
	unsigned int i;

	for (i = 0; i < 8; i++)
		CHECK(virtq_drv_add_sgs(t.vq, sg, 1, 0, TOK(i + 1)) == 0);
	s_used(&t, 0, 1);
	CHECK(virtq_drv_get_buf(t.vq, &len) == TOK(1));

	virtq_drv_disable_cb(t.vq);
	if (event) {
		CHECK(le16toh(S_AVAIL(&t)->flags) == 0);
		CHECK(le16toh(*used_event) == 0); /* last_used - 1: already passed */
	} else {
		CHECK(le16toh(S_AVAIL(&t)->flags) == VRING_AVAIL_F_NO_INTERRUPT);
	}
	/* With callbacks off, get_buf does not move used_event. */
	s_used(&t, 1, 1);
	CHECK(virtq_drv_get_buf(t.vq, &len) == TOK(2));
	if (event)
		CHECK(le16toh(*used_event) == 0);

	/* Nothing pending: enable succeeds and points used_event at us. */
	CHECK(virtq_drv_enable_cb(t.vq));
	CHECK(le16toh(S_AVAIL(&t)->flags) == 0);
	if (event)
		CHECK(le16toh(*used_event) == 2);

	/* Something pending: enable reports it. */
	virtq_drv_disable_cb(t.vq);
	s_used(&t, 2, 1);
	CHECK(!virtq_drv_enable_cb(t.vq));
	unsigned int pos = virtq_drv_enable_cb_prepare(t.vq);

	CHECK(virtq_drv_poll(t.vq, pos));
	CHECK(virtq_drv_get_buf(t.vq, &len) == TOK(3));
	pos = virtq_drv_enable_cb_prepare(t.vq);
	CHECK(!virtq_drv_poll(t.vq, pos));

	/* Delayed: 5 outstanding, last_used 3: event at 3 + 5*3/4 = 6. */
	virtq_drv_disable_cb(t.vq);
	CHECK(virtq_drv_enable_cb_delayed(t.vq));
	if (event) {
		CHECK(le16toh(*used_event) == 6);
		s_used(&t, 3, 1); /* 1 pending <= 3: still fine to wait */
		CHECK(virtq_drv_enable_cb_delayed(t.vq));
		s_used(&t, 4, 1);
		s_used(&t, 5, 1);
		s_used(&t, 6, 1);
		CHECK(!virtq_drv_enable_cb_delayed(t.vq));
	} else {
		s_used(&t, 3, 1); /* no EVENT_IDX: any pending entry is reported */
		CHECK(!virtq_drv_enable_cb_delayed(t.vq));
	}
	tq_free(&t);
}

static void test_split_event_kick(void)
{
	struct tq t = tq_new(8, F(VIRTIO_RING_F_EVENT_IDX), 0);
	struct virtq_sg sg[1] = {{0x1000, 1}};
	uint16_t *avail_event = vring_avail_event(S_USED(&t), 8);

	/* Two adds since the last kick: old 0, new 2. */
	CHECK(virtq_drv_add_sgs(t.vq, sg, 1, 0, TOK(1)) == 0);
	CHECK(virtq_drv_add_sgs(t.vq, sg, 1, 0, TOK(2)) == 0);
	*avail_event = htole16(2); /* device wants to hear when entry 2 goes in */
	CHECK(!virtq_drv_kick_prepare(t.vq));
	CHECK(virtq_drv_add_sgs(t.vq, sg, 1, 0, TOK(3)) == 0);
	CHECK(virtq_drv_kick_prepare(t.vq)); /* old 2, new 3: entry 2 added */
	CHECK(virtq_drv_add_sgs(t.vq, sg, 1, 0, TOK(4)) == 0);
	CHECK(!virtq_drv_kick_prepare(t.vq)); /* event 2 already behind */
	*avail_event = htole16(3);
	CHECK(!virtq_drv_kick_prepare(t.vq)); /* nothing added since */
	tq_free(&t);
}

/* ------------------------------------------------------------------ */

static uint16_t p_flags(bool wrap)
{
	return wrap ? VRING_PACKED_DESC_F_AVAIL : VRING_PACKED_DESC_F_USED;
}

static void test_packed_basic(uint16_t num, bool event)
{
	uint64_t feat = F(VIRTIO_F_RING_PACKED) | (event ? F(VIRTIO_RING_F_EVENT_IDX) : 0);
	struct tq t = tq_new(num, feat, 0);
	struct vring_packed_desc *d = P_DESC(&t);
	struct virtq_sg sg[4];
	unsigned int n = num < 3 ? num : 3, i;
	uint16_t slot = 0;
	bool wrap = true;
	uint32_t len;

	if (event) /* starts in DESC mode at slot 0, lap 1 */
		CHECK(le16toh(P_DRV(&t)->flags) == VRING_PACKED_EVENT_FLAG_DESC &&
		      le16toh(P_DRV(&t)->off_wrap) == 0x8000);
	else
		CHECK(le16toh(P_DRV(&t)->flags) == VRING_PACKED_EVENT_FLAG_ENABLE);

	/*
	 * Walk the ring through several laps with n-descriptor chains, so a
	 * chain starts at every offset and straddles the end.
	 */
	for (unsigned int round = 0; round < 2u * num + 3; round++) {
		sgs_fill(sg, n, round);
		CHECK(virtq_drv_add_sgs(t.vq, sg, 1, n - 1, TOK(round + 1)) == 0);
		CHECK(virtq_drv_num_free(t.vq) == num - n);

		uint16_t id = le16toh(d[slot].id), s = slot;
		bool w = wrap;

		CHECK(id < num);
		for (i = 0; i < n; i++) {
			uint16_t want = p_flags(w) | (i ? VRING_DESC_F_WRITE : 0) |
					(i + 1 < n ? VRING_DESC_F_NEXT : 0);

			CHECK(le16toh(d[s].flags) == want);
			CHECK(le16toh(d[s].id) == id);
			CHECK(le64toh(d[s].addr) == ((uint64_t)round << 16 | i));
			CHECK(le32toh(d[s].len) == 100 + i);
			if (++s == num) {
				s = 0;
				w = !w;
			}
		}

		/* The device writes one used element at the chain's first slot. */
		CHECK(virtq_drv_get_buf(t.vq, &len) == NULL);
		p_used(&t, slot, wrap, id, round);
		CHECK(virtq_drv_get_buf(t.vq, &len) == TOK(round + 1) && len == round);
		CHECK(virtq_drv_get_buf(t.vq, &len) == NULL);
		CHECK(virtq_drv_num_free(t.vq) == num);
		slot = s;
		wrap = w;
		if (event)
			CHECK(le16toh(P_DRV(&t)->off_wrap) == (slot | (unsigned int)wrap << 15));
	}

	CHECK(virtq_drv_add_sgs(t.vq, sg, 0, 0, TOK(1)) == -EINVAL);
	if (num < 4)
		CHECK(virtq_drv_add_sgs(t.vq, sg, num, 1, TOK(1)) == -EINVAL);
	for (i = 0; i < num; i++)
		CHECK(virtq_drv_add_sgs(t.vq, sg, 1, 0, TOK(i + 1)) == 0);
	CHECK(virtq_drv_add_sgs(t.vq, sg, 1, 0, TOK(1)) == -ENOSPC);
	for (i = 0; i < num; i++)
		CHECK(virtq_drv_detach_unused_buf(t.vq) != NULL);
	CHECK(virtq_drv_detach_unused_buf(t.vq) == NULL);
	CHECK(virtq_drv_num_free(t.vq) == num && !virtq_drv_is_broken(t.vq));
	tq_free(&t);
}

static void test_packed_indirect(void)
{
	uint64_t feat = F(VIRTIO_F_RING_PACKED) | F(VIRTIO_RING_F_INDIRECT_DESC);
	struct tq t = tq_new(3, feat, 4);
	struct vring_packed_desc *d = P_DESC(&t);
	struct virtq_sg sg[4];
	uint32_t len;

	sgs_fill(sg, 3, 9);
	CHECK(virtq_drv_add_sgs(t.vq, sg, 1, 2, TOK(9)) == 0);
	CHECK(virtq_drv_num_free(t.vq) == 2);
	CHECK(le16toh(d[0].flags) == (VRING_DESC_F_INDIRECT | VRING_PACKED_DESC_F_AVAIL));
	CHECK(le32toh(d[0].len) == 48);
	uint16_t id = le16toh(d[0].id);
	uint64_t tdma = le64toh(d[0].addr);

	CHECK(tdma % 16 == 0 && tdma + 48 <= DMA_BASE + t.size && tdma >= t.a.device_area + 4);
	struct vring_packed_desc *tbl = P(&t, tdma);

	for (unsigned int i = 0; i < 3; i++) {
		CHECK(le64toh(tbl[i].addr) == (9u << 16 | i));
		CHECK(le32toh(tbl[i].len) == 100 + i);
		CHECK(le16toh(tbl[i].flags) == (i ? VRING_DESC_F_WRITE : 0));
	}
	/* Slot 1 is next; a 2-buffer indirect chain, then wrap to slot 0. */
	CHECK(virtq_drv_add_sgs(t.vq, sg, 2, 0, TOK(10)) == 0);
	CHECK(virtq_drv_add_sgs(t.vq, sg, 1, 0, TOK(11)) == 0);
	CHECK(le16toh(d[2].flags) == VRING_PACKED_DESC_F_AVAIL);
	p_used(&t, 0, true, id, 1);
	CHECK(virtq_drv_get_buf(t.vq, &len) == TOK(9));
	CHECK(virtq_drv_add_sgs(t.vq, sg, 2, 0, TOK(12)) == 0);
	CHECK(le16toh(d[0].flags) == (VRING_DESC_F_INDIRECT | VRING_PACKED_DESC_F_USED));
	tq_free(&t);
}

static void test_packed_kick_cb(void)
{
	uint64_t feat = F(VIRTIO_F_RING_PACKED) | F(VIRTIO_RING_F_EVENT_IDX);
	struct tq t = tq_new(4, feat, 0);
	struct virtq_sg sg[1] = {{0x1000, 1}};
	struct vring_packed_desc_event *dev = P_DEV(&t), *drv = P_DRV(&t);
	uint32_t len;

	/* ENABLE / DISABLE. */
	CHECK(virtq_drv_add_sgs(t.vq, sg, 1, 0, TOK(1)) == 0);
	CHECK(virtq_drv_kick_prepare(t.vq));
	dev->flags = htole16(VRING_PACKED_EVENT_FLAG_DISABLE);
	CHECK(virtq_drv_add_sgs(t.vq, sg, 1, 0, TOK(2)) == 0);
	CHECK(!virtq_drv_kick_prepare(t.vq));

	/* DESC: slots 0,1 added; now add slot 2 and ask about slot 2 / 3. */
	dev->flags = htole16(VRING_PACKED_EVENT_FLAG_DESC);
	dev->off_wrap = htole16(0x8000 | 2);
	CHECK(virtq_drv_add_sgs(t.vq, sg, 1, 0, TOK(3)) == 0);
	CHECK(virtq_drv_kick_prepare(t.vq));
	dev->off_wrap = htole16(0x8000 | 3);
	CHECK(virtq_drv_add_sgs(t.vq, sg, 1, 0, TOK(4)) == 0); /* slot 3, wraps after */
	CHECK(virtq_drv_kick_prepare(t.vq));

	/* Complete all four, then cross into lap 2 and check wrap handling. */
	p_used(&t, 0, true, le16toh(P_DESC(&t)[0].id), 0);
	p_used(&t, 1, true, le16toh(P_DESC(&t)[1].id), 0);
	p_used(&t, 2, true, le16toh(P_DESC(&t)[2].id), 0);
	p_used(&t, 3, true, le16toh(P_DESC(&t)[3].id), 0);
	for (int i = 0; i < 4; i++)
		CHECK(virtq_drv_get_buf(t.vq, &len) == TOK(i + 1));
	CHECK(le16toh(drv->off_wrap) == 0); /* slot 0, lap 2 (wrap 0) */
	/* Device asks for slot 0 of lap 2 (wrap bit 0); add slot 0 -> kick. */
	dev->off_wrap = htole16(0);
	CHECK(virtq_drv_add_sgs(t.vq, sg, 1, 0, TOK(5)) == 0);
	CHECK(virtq_drv_kick_prepare(t.vq));
	/* Asking for slot 3 of lap 1 (behind us): no kick for slot 1. */
	dev->off_wrap = htole16(0x8000 | 3);
	CHECK(virtq_drv_add_sgs(t.vq, sg, 1, 0, TOK(6)) == 0);
	CHECK(!virtq_drv_kick_prepare(t.vq));

	/* Callbacks: disable, enable (nothing pending), enable with pending. */
	virtq_drv_disable_cb(t.vq);
	CHECK(le16toh(drv->flags) == VRING_PACKED_EVENT_FLAG_DISABLE);
	CHECK(virtq_drv_enable_cb(t.vq));
	CHECK(le16toh(drv->flags) == VRING_PACKED_EVENT_FLAG_DESC);
	CHECK(le16toh(drv->off_wrap) == 0);
	virtq_drv_disable_cb(t.vq);
	p_used(&t, 0, false, le16toh(P_DESC(&t)[0].id), 0);
	CHECK(!virtq_drv_enable_cb(t.vq));
	CHECK(virtq_drv_get_buf(t.vq, &len) == TOK(5));
	unsigned int pos = virtq_drv_enable_cb_prepare(t.vq);

	CHECK(pos == 1 && !virtq_drv_poll(t.vq, pos));
	p_used(&t, 1, false, le16toh(P_DESC(&t)[1].id), 0);
	CHECK(virtq_drv_poll(t.vq, pos));
	CHECK(virtq_drv_get_buf(t.vq, &len) == TOK(6));

	/* Delayed: 4 outstanding at slot 2 lap 2: event at 2 + 3 = slot 1, lap 3. */
	for (int i = 0; i < 4; i++)
		CHECK(virtq_drv_add_sgs(t.vq, sg, 1, 0, TOK(7 + i)) == 0);
	virtq_drv_disable_cb(t.vq);
	CHECK(virtq_drv_enable_cb_delayed(t.vq));
	CHECK(le16toh(drv->off_wrap) == (0x8000 | 1));
	tq_free(&t);

	/* No EVENT_IDX: enable means ENABLE, get_buf leaves off_wrap alone. */
	t = tq_new(4, F(VIRTIO_F_RING_PACKED), 0);
	drv = P_DRV(&t);
	virtq_drv_disable_cb(t.vq);
	CHECK(le16toh(drv->flags) == VRING_PACKED_EVENT_FLAG_DISABLE);
	CHECK(virtq_drv_enable_cb(t.vq));
	CHECK(le16toh(drv->flags) == VRING_PACKED_EVENT_FLAG_ENABLE);
	CHECK(virtq_drv_add_sgs(t.vq, sg, 1, 0, TOK(1)) == 0);
	p_used(&t, 0, true, le16toh(P_DESC(&t)[0].id), 0);
	CHECK(virtq_drv_get_buf(t.vq, &len) == TOK(1));
	CHECK(drv->off_wrap == 0);
	tq_free(&t);
}

static void test_packed_broken(void)
{
	struct virtq_sg sg[1] = {{0x1000, 1}};
	uint32_t len;
	struct tq t = tq_new(4, F(VIRTIO_F_RING_PACKED), 0);

	CHECK(virtq_drv_add_sgs(t.vq, sg, 1, 0, TOK(1)) == 0);
	p_used(&t, 0, true, 4, 0);
	CHECK(virtq_drv_get_buf(t.vq, &len) == NULL && virtq_drv_is_broken(t.vq));
	CHECK(virtq_drv_add_sgs(t.vq, sg, 1, 0, TOK(2)) == -EIO);
	tq_free(&t);

	t = tq_new(4, F(VIRTIO_F_RING_PACKED), 0);
	CHECK(virtq_drv_add_sgs(t.vq, sg, 1, 0, TOK(1)) == 0);
	p_used(&t, 0, true, 3, 0);
	CHECK(virtq_drv_get_buf(t.vq, &len) == NULL && virtq_drv_is_broken(t.vq));
	tq_free(&t);

	/* Used with the wrong wrap polarity is simply not used yet. */
	t = tq_new(4, F(VIRTIO_F_RING_PACKED), 0);
	CHECK(virtq_drv_add_sgs(t.vq, sg, 1, 0, TOK(1)) == 0);
	p_used(&t, 0, false, 0, 0);
	CHECK(virtq_drv_get_buf(t.vq, &len) == NULL && !virtq_drv_is_broken(t.vq));
	tq_free(&t);
}

/* ------------------------------------------------------------------ */
/*
 * Randomized round trip against a fake device that walks what the driver
 * wrote, checks every buffer against the token that carried it, and
 * completes chains out of order.  Exercises free-list reuse, indirect
 * tables and many wraps of every index.
 */

struct fake_chain {
	uint16_t id;
	uint16_t ndescs; /* packed: slots to skip */
	uint32_t tok;
};

struct fake_dev {
	struct tq *t;
	bool packed;
	uint16_t last_avail, used_idx;
	bool avail_wrap, used_wrap;
	struct fake_chain *inflight;
	unsigned int ninflight;
	unsigned int expect_n[70000];
	unsigned int expect_out[70000];
};

/* Check one buffer of token @tok at position @k against what was added. */
static void fake_check(struct fake_dev *fd, uint32_t tok, unsigned int k, uint64_t addr,
		       uint32_t len, uint16_t flags)
{
	CHECK(addr == ((uint64_t)tok << 16 | k) && len == 100 + k);
	CHECK(!!(flags & VRING_DESC_F_WRITE) == (k >= fd->expect_out[tok]));
}

static uint32_t fake_tok(uint64_t addr)
{
	return (uint32_t)(addr >> 16);
}

static bool fake_pop_split(struct fake_dev *fd)
{
	struct tq *t = fd->t;
	uint16_t avail = vq_load_acquire16(&S_AVAIL(t)->idx);
	struct vring_desc *desc = S_DESC(t), *dd;
	unsigned int k = 0, max = t->num;
	uint16_t head, i;
	uint32_t tok;

	if (avail == fd->last_avail)
		return false;
	head = vq_read16(&S_AVAIL(t)->ring[fd->last_avail++ & (t->num - 1)]);
	CHECK(head < t->num);
	dd = desc;
	i = head;
	if (vq_read16(&desc[head].flags) & VRING_DESC_F_INDIRECT) {
		dd = P(t, vq_read64(&desc[head].addr));
		max = vq_read32(&desc[head].len) / 16;
		i = 0;
	}
	tok = fake_tok(vq_read64(&dd[i].addr));
	for (;;) {
		uint16_t flags = vq_read16(&dd[i].flags);

		fake_check(fd, tok, k, vq_read64(&dd[i].addr), vq_read32(&dd[i].len), flags);
		k++;
		if (!(flags & VRING_DESC_F_NEXT) || k >= max)
			break;
		i = vq_read16(&dd[i].next);
	}
	CHECK(k == fd->expect_n[tok]);
	fd->inflight[fd->ninflight++] = (struct fake_chain){head, 1, tok};
	return true;
}

static bool fake_pop_packed(struct fake_dev *fd)
{
	struct tq *t = fd->t;
	struct vring_packed_desc *d = P_DESC(t);
	uint16_t i = fd->last_avail, flags = vq_load_acquire16(&d[i].flags), id;
	unsigned int k = 0, n = 0;
	uint32_t tok;

	if (!!(flags & VRING_PACKED_DESC_F_AVAIL) != fd->avail_wrap ||
	    !!(flags & VRING_PACKED_DESC_F_USED) == fd->avail_wrap)
		return false;
	id = vq_read16(&d[i].id);
	tok = fake_tok(vq_read64(&d[i].addr));
	if (flags & VRING_DESC_F_INDIRECT) {
		struct vring_packed_desc *tbl = P(t, vq_read64(&d[i].addr));
		unsigned int cnt = vq_read32(&d[i].len) / 16;

		tok = fake_tok(vq_read64(&tbl[0].addr));
		for (k = 0; k < cnt; k++)
			fake_check(fd, tok, k, vq_read64(&tbl[k].addr), vq_read32(&tbl[k].len),
				   vq_read16(&tbl[k].flags));
		n = 1;
	} else {
		for (;;) {
			flags = vq_read16(&d[i].flags);
			CHECK(vq_read16(&d[i].id) == id);
			fake_check(fd, tok, k, vq_read64(&d[i].addr), vq_read32(&d[i].len), flags);
			k++;
			n++;
			if (++i == t->num)
				i = 0;
			if (!(flags & VRING_DESC_F_NEXT) || n >= t->num)
				break;
		}
	}
	CHECK(k == fd->expect_n[tok]);
	fd->last_avail += n;
	if (fd->last_avail >= t->num) {
		fd->last_avail -= t->num;
		fd->avail_wrap = !fd->avail_wrap;
	}
	fd->inflight[fd->ninflight++] = (struct fake_chain){id, (uint16_t)n, tok};
	return true;
}

static void fake_complete(struct fake_dev *fd, unsigned int which)
{
	struct fake_chain c = fd->inflight[which];
	struct tq *t = fd->t;

	fd->inflight[which] = fd->inflight[--fd->ninflight];
	if (!fd->packed) {
		s_used(t, c.id, c.tok);
		return;
	}
	p_used(t, fd->used_idx, fd->used_wrap, c.id, c.tok);
	fd->used_idx += c.ndescs;
	if (fd->used_idx >= t->num) {
		fd->used_idx -= t->num;
		fd->used_wrap = !fd->used_wrap;
	}
}

static void test_roundtrip(uint16_t num, uint64_t features, unsigned int indirect_max,
			   unsigned int iters)
{
	struct tq t = tq_new(num, features, indirect_max);
	struct fake_dev *fd = calloc(1, sizeof(*fd));
	struct virtq_sg sg[8];
	unsigned int next_tok = 1, outstanding = 0, done = 0, steps = 0;
	uint32_t len;
	void *tok;

	fd->t = &t;
	fd->packed = features & F(VIRTIO_F_RING_PACKED);
	fd->avail_wrap = fd->used_wrap = true;
	fd->inflight = calloc(num, sizeof(*fd->inflight));

	while (done < iters && steps++ < 50 * iters) {
		unsigned int r = (unsigned int)rand();

		if (r % 3 != 0) {
			unsigned int max = num < 6 ? num : 6;
			unsigned int n = 1 + r / 3 % max, out = r / 64 % (n + 1);

			if (next_tok >= 65536)
				next_tok = 1;
			sgs_fill(sg, n, next_tok);
			fd->expect_n[next_tok] = n;
			fd->expect_out[next_tok] = out;
			int ret = virtq_drv_add_sgs(t.vq, sg, out, n - out, TOK(next_tok));

			CHECK(ret == 0 || ret == -ENOSPC);
			if (ret == 0) {
				next_tok++;
				outstanding++;
			}
			if (r % 5 == 0)
				virtq_drv_kick_prepare(t.vq);
		}
		while (r % 2 && (fd->packed ? fake_pop_packed(fd) : fake_pop_split(fd)))
			;
		if (fd->ninflight && r % 7 < 3)
			fake_complete(fd, r / 7 % fd->ninflight);
		while ((tok = virtq_drv_get_buf(t.vq, &len))) {
			uint32_t idx = (uint32_t)((char *)tok - tokens);

			CHECK(len == idx);
			outstanding--;
			done++;
		}
		if (r % 11 == 0) {
			virtq_drv_disable_cb(t.vq);
			virtq_drv_enable_cb(t.vq);
		}
		if (virtq_drv_is_broken(t.vq))
			break;
	}
	CHECK(!virtq_drv_is_broken(t.vq) && done >= iters);
	/* Whatever is left comes back through detach_unused_buf. */
	while (virtq_drv_detach_unused_buf(t.vq))
		outstanding--;
	CHECK(outstanding == 0 && virtq_drv_num_free(t.vq) == num);
	free(fd->inflight);
	free(fd);
	tq_free(&t);
}

/*
 * Batch publish: chains added are invisible until kick_prepare(), which
 * exposes the whole burst; turning the mode off publishes what is pending.
 */
static void test_batch_publish(bool packed)
{
	struct tq t = tq_new(8, packed ? F(VIRTIO_F_RING_PACKED) : 0, 0);
	struct vring_packed_desc *d = P_DESC(&t);
	struct virtq_sg sg[2];
	uint32_t len;

	virtq_drv_set_batch_publish(t.vq, true);
	sgs_fill(sg, 2, 1);
	CHECK(virtq_drv_add_sgs(t.vq, sg, 1, 1, TOK(1)) == 0);
	CHECK(virtq_drv_add_sgs(t.vq, sg, 1, 0, TOK(2)) == 0);
	if (packed) {
		/* The first head waits; the chain after it may be marked already. */
		CHECK(le16toh(d[0].flags) == 0);
		CHECK(le16toh(d[2].flags) == p_flags(true));
	} else {
		CHECK(le16toh(S_AVAIL(&t)->idx) == 0);
	}
	CHECK(virtq_drv_kick_prepare(t.vq));
	if (packed)
		CHECK(le16toh(d[0].flags) == (p_flags(true) | VRING_DESC_F_NEXT));
	else
		CHECK(le16toh(S_AVAIL(&t)->idx) == 2);

	/* Pending at the mode switch: turning batch publish off publishes it. */
	CHECK(virtq_drv_add_sgs(t.vq, sg, 1, 0, TOK(3)) == 0);
	if (!packed) {
		CHECK(le16toh(S_AVAIL(&t)->idx) == 2);
		virtq_drv_set_batch_publish(t.vq, false);
		CHECK(le16toh(S_AVAIL(&t)->idx) == 3);
		s_used(&t, 0, 5);
		CHECK(virtq_drv_get_buf(t.vq, &len) == TOK(1) && len == 5);
	} else {
		CHECK(le16toh(d[3].flags) == 0);
		virtq_drv_set_batch_publish(t.vq, false);
		CHECK(le16toh(d[3].flags) == p_flags(true));
	}
	CHECK(!virtq_drv_is_broken(t.vq));
	tq_free(&t);
}

/*
 * Two threads, polling only: the driver adds and reaps, the fake device pops
 * and completes out of order.  Tokens are only reused once back, so the
 * expect_* entries the device reads were published by the add that carried
 * them.
 */
struct mt {
	struct fake_dev *fd;
	atomic_bool stop;
	unsigned int seed;
};

static void *mt_device(void *arg)
{
	struct mt *m = arg;
	struct fake_dev *fd = m->fd;
	unsigned int seed = m->seed;

	while (!atomic_load(&m->stop)) {
		while (fd->packed ? fake_pop_packed(fd) : fake_pop_split(fd))
			;
		if (fd->ninflight)
			fake_complete(fd, (unsigned int)rand_r(&seed) % fd->ninflight);
	}
	return NULL;
}

static void test_threads(uint16_t num, uint64_t features, unsigned int indirect_max,
			 unsigned int iters)
{
	struct tq t = tq_new(num, features, indirect_max);
	struct fake_dev *fd = calloc(1, sizeof(*fd));
	static bool busy[65536];
	struct mt m = {.fd = fd, .seed = 1};
	unsigned int tok = 0, done = 0, seed = 2;
	struct virtq_sg sg[8];
	pthread_t th;
	uint32_t len;
	void *got;

	memset(busy, 0, sizeof(busy));
	fd->t = &t;
	fd->packed = features & F(VIRTIO_F_RING_PACKED);
	fd->avail_wrap = fd->used_wrap = true;
	fd->inflight = calloc(num, sizeof(*fd->inflight));
	atomic_init(&m.stop, false);
	pthread_create(&th, NULL, mt_device, &m);

	while (done < iters && !virtq_drv_is_broken(t.vq)) {
		unsigned int r = (unsigned int)rand_r(&seed);
		unsigned int max = num < 6 ? num : 6;
		unsigned int n = 1 + r % max, out = r / 8 % (n + 1);

		do
			tok = tok % 65535 + 1;
		while (busy[tok]);
		sgs_fill(sg, n, tok);
		fd->expect_n[tok] = n;
		fd->expect_out[tok] = out;
		if (virtq_drv_add_sgs(t.vq, sg, out, n - out, TOK(tok)) == 0)
			busy[tok] = true;
		virtq_drv_kick_prepare(t.vq);
		while ((got = virtq_drv_get_buf(t.vq, &len))) {
			uint32_t idx = (uint32_t)((char *)got - tokens);

			CHECK(len == idx && busy[idx]);
			busy[idx] = false;
			done++;
		}
	}
	atomic_store(&m.stop, true);
	pthread_join(th, NULL);
	CHECK(!virtq_drv_is_broken(t.vq) && done >= iters);
	while (virtq_drv_get_buf(t.vq, &len))
		;
	while (virtq_drv_detach_unused_buf(t.vq))
		;
	CHECK(virtq_drv_num_free(t.vq) == num);
	free(fd->inflight);
	free(fd);
	tq_free(&t);
}

static void run_roundtrips(void)
{
	static const uint16_t rt_sizes[] = {1, 2, 3, 8, 256, 32768};

	for (unsigned int s = 0; s < sizeof(rt_sizes) / sizeof(rt_sizes[0]); s++) {
		uint16_t n = rt_sizes[s];

		for (unsigned int f = 0; f < 8; f++) {
			uint64_t feat = (f & 1 ? F(VIRTIO_RING_F_EVENT_IDX) : 0) |
					(f & 2 ? F(VIRTIO_RING_F_INDIRECT_DESC) : 0) |
					(f & 4 ? F(VIRTIO_F_RING_PACKED) : 0);

			if (!(f & 4) && (n & (n - 1)))
				continue;
			test_roundtrip(n, feat, f & 2 ? 4 : 0, n >= 256 ? 20000 : 150000);
		}
	}

	for (unsigned int f = 0; f < 8; f++) {
		uint64_t feat = (f & 1 ? F(VIRTIO_RING_F_EVENT_IDX) : 0) |
				(f & 2 ? F(VIRTIO_RING_F_INDIRECT_DESC) : 0) |
				(f & 4 ? F(VIRTIO_F_RING_PACKED) : 0);

		test_threads(f & 4 ? 7 : 8, feat, f & 2 ? 4 : 0, 20000);
	}
}

int main(void)
{
	/* The broken-device cases log one expected error line each. */
	log_set_level(LOG_LVL_ERROR);
	test_layout();
	for (unsigned int s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		for (int ev = 0; ev < 2; ev++) {
			test_split_basic(sizes[s], ev);
			test_packed_basic(sizes[s], ev);
		}
		test_split_indirect(sizes[s]);
	}
	test_packed_basic(3, false);
	test_packed_basic(5, true);
	test_split_indirect(8);
	test_split_broken();
	test_split_cb(false);
	test_split_cb(true);
	test_split_event_kick();
	test_packed_indirect();
	test_packed_kick_cb();
	test_packed_broken();

	test_batch_publish(false);
	test_batch_publish(true);

	/* Round trips and threads twice: publish on add, then batch publish. */
	run_roundtrips();
	batch_publish = true;
	run_roundtrips();

	printf("test_virtq_driver: ok\n");
	return 0;
}
