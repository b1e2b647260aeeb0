// SPDX-License-Identifier: MIT
/*
 * driver.c - the driver side of a virtqueue: what both layouts share.
 *
 * The public API checks its arguments, keeps the token and free-list
 * bookkeeping and validates what the device hands back, then dispatches to
 * one of two const ops tables (driver_split.c, driver_packed.c) for the ring
 * formats themselves, as Linux's virtio_ring.c does with its *_split and
 * *_packed families.
 *
 * The free list works the same for both layouts (Linux's desc_extra): a
 * chain of n ring descriptors takes n entries from it.  Split uses the
 * entries as descriptor indices; packed uses the first as the buffer id and
 * the rest only to keep ids from running out before descriptors do.
 *
 * The list is FIFO: a completed chain goes to the tail, so a driver that
 * completes in order walks the descriptor table in order.  LIFO would hand
 * the next add exactly the descriptors the device has just read, pulling
 * those cache lines back across while the device may still be near them;
 * in order, each line is written once per lap, sequentially, which the
 * hardware prefetchers on both sides follow.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "driver_priv.h"

/* Indirect tables hold either layout's descriptors: both are 16 bytes. */
#define INDIRECT_DESC_SIZE 16
_Static_assert(sizeof(struct vring_desc) == INDIRECT_DESC_SIZE, "split desc size");
_Static_assert(sizeof(struct vring_packed_desc) == INDIRECT_DESC_SIZE, "packed desc size");

/* The layout for @num entries, or NULL if the spec does not allow that size. */
static const struct virtq_drv_ops *drv_layout(uint16_t num, bool packed)
{
	if (num == 0 || num > VIRTQ_MAX_SIZE)
		return NULL;
	if (packed)
		return &virtq_drv_packed_ops;
	/* 2.7: a split ring's Queue Size is a power of 2. */
	if (num & (num - 1))
		return NULL;
	return &virtq_drv_split_ops;
}

/* Offset of the indirect tables: after the rings, descriptor-aligned. */
static size_t drv_tables_offset(const struct virtq_drv_ops *ops, uint16_t num)
{
	return vring_align(ops->ring_size(num), VRING_DESC_ALIGN);
}

size_t virtq_drv_mem_size(uint16_t num, bool packed, unsigned int indirect_max)
{
	const struct virtq_drv_ops *ops = drv_layout(num, packed);

	if (!ops || indirect_max > VIRTQ_MAX_SIZE)
		return 0;
	return drv_tables_offset(ops, num) + (size_t)num * indirect_max * INDIRECT_DESC_SIZE;
}

struct virtq_drv *virtq_drv_new(uint16_t num, uint64_t features, void *mem, uint64_t mem_dma,
				unsigned int indirect_max)
{
	bool packed = features & (1ull << VIRTIO_F_RING_PACKED);
	const struct virtq_drv_ops *ops = drv_layout(num, packed);
	struct virtq_drv *vq;
	unsigned int i;

	/*
	 * Descriptors must be 16-aligned in the device's view (2.7, 2.8), and
	 * in ours so that index and flags stores are single aligned accesses.
	 */
	if (!ops || !mem || indirect_max > VIRTQ_MAX_SIZE ||
	    (((uintptr_t)mem | mem_dma) & (VRING_DESC_ALIGN - 1))) {
		errno = EINVAL;
		return NULL;
	}

	/* All private state in one allocation: nothing is allocated per request. */
	vq = calloc(1, sizeof(*vq) + num * sizeof(vq->state[0]) + num * sizeof(vq->next[0]));
	if (!vq)
		return NULL;
	vq->next = (uint16_t *)&vq->state[num];

	memset(mem, 0, virtq_drv_mem_size(num, packed, indirect_max));
	vq->ops = ops;
	vq->num = num;
	vq->mem = mem;
	vq->mem_dma = mem_dma;
	vq->indirect_max = indirect_max;
	vq->indirect_tables = (char *)mem + drv_tables_offset(ops, num);
	vq->indirect = (features & (1ull << VIRTIO_RING_F_INDIRECT_DESC)) && indirect_max > 1;
	vq->event_idx = features & (1ull << VIRTIO_RING_F_EVENT_IDX);

	for (i = 0; i < num; i++)
		vq->next[i] = (uint16_t)(i + 1);
	vq->free_head = 0;
	vq->free_tail = (uint16_t)(num - 1);
	vq->num_free = num;

	ops->init(vq);
	return vq;
}

void virtq_drv_free(struct virtq_drv *vq)
{
	free(vq);
}

void virtq_drv_get_addrs(const struct virtq_drv *vq, struct virtq_drv_addrs *addrs)
{
	vq->ops->get_addrs(vq, addrs);
}

void virtq_drv_set_broken(struct virtq_drv *vq, const char *why, unsigned int val)
{
	if (!vq->broken)
		log_error("virtq_drv: device broke the ring: %s (%u)", why, val);
	vq->broken = true;
}

bool virtq_drv_is_broken(const struct virtq_drv *vq)
{
	return vq->broken;
}

uint16_t virtq_drv_take(struct virtq_drv *vq, unsigned int n, void *token)
{
	struct virtq_drv_desc_state *st;
	uint16_t head = vq->free_head, last = head;
	unsigned int i;

	for (i = 1; i < n; i++)
		last = vq->next[last];
	vq->free_head = vq->next[last];
	vq->num_free -= n;

	st = &vq->state[head];
	st->token = token;
	st->ndescs = (uint16_t)n;
	st->last = last;
	return head;
}

/* Give chain @head's entries back to the free list; returns its token. */
static void *drv_release(struct virtq_drv *vq, uint16_t head)
{
	struct virtq_drv_desc_state *st = &vq->state[head];
	void *token = st->token;

	/* The links inside the chain are still intact from take(). */
	if (vq->num_free)
		vq->next[vq->free_tail] = head;
	else
		vq->free_head = head;
	vq->free_tail = st->last;
	vq->num_free += st->ndescs;
	st->token = NULL;
	return token;
}

int virtq_drv_add_sgs(struct virtq_drv *vq, const struct virtq_sg *sgs, unsigned int out_sgs,
		      unsigned int in_sgs, void *token)
{
	unsigned int total = out_sgs + in_sgs, i;
	uint64_t bytes = 0;
	bool indirect;

	if (vq->broken)
		return -EIO;
	/*
	 * No chain longer than the Queue Size, indirect or not (2.7.5.3.1,
	 * and the packed ring's scatter-gather driver requirements), and none
	 * longer than 2^32 bytes (2.7.5.2).  A NULL token would read as "not
	 * in flight".
	 */
	if (!token || total == 0 || total < out_sgs || total > vq->num)
		return -EINVAL;
	for (i = 0; i < total; i++)
		bytes += sgs[i].len;
	if (bytes > UINT32_MAX)
		return -EINVAL;

	/* One ring slot instead of total, when the chain fits a table. */
	indirect = vq->indirect && total > 1 && total <= vq->indirect_max;
	if (vq->num_free < (indirect ? 1 : total))
		return -ENOSPC;

	vq->ops->add(vq, sgs, out_sgs, total, token, indirect);
	return 0;
}

bool virtq_drv_kick_prepare(struct virtq_drv *vq)
{
	unsigned int added = vq->num_added;

	/*
	 * Our avail index (split) or head descriptor flags (packed) must be
	 * visible before we read the device's suppression state; pairs with
	 * the full barrier in the device's virtq_enable_notify() between
	 * publishing avail_event / its event struct and re-checking the ring.
	 * Without it both sides could miss each other: no kick, device asleep.
	 */
	if (vq->batch_publish)
		vq->ops->publish(vq);
	vq_mb();
	vq->num_added = 0;
	return vq->ops->need_kick(vq, added);
}

void virtq_drv_set_batch_publish(struct virtq_drv *vq, bool on)
{
	if (vq->batch_publish && !on)
		vq->ops->publish(vq);
	vq->batch_publish = on;
}

void *virtq_drv_get_buf(struct virtq_drv *vq, uint32_t *len)
{
	struct virtq_drv_desc_state *st;
	uint32_t used_len;
	uint16_t id, ndescs;
	void *token;

	if (vq->broken)
		return NULL;
	if (!vq->ops->next_used(vq, &id, &used_len))
		return NULL;

	/* The id came from the device: it must name a chain we have out. */
	if (id >= vq->num) {
		virtq_drv_set_broken(vq, "used id out of range", id);
		return NULL;
	}
	st = &vq->state[id];
	if (!st->token) {
		virtq_drv_set_broken(vq, "used id not in flight", id);
		return NULL;
	}

	ndescs = st->ndescs;
	if (len)
		*len = used_len;
	token = drv_release(vq, id);
	vq->ops->consumed(vq, ndescs);
	return token;
}

void virtq_drv_disable_cb(struct virtq_drv *vq)
{
	vq->ops->disable_cb(vq);
}

unsigned int virtq_drv_enable_cb_prepare(struct virtq_drv *vq)
{
	return vq->ops->enable_cb_prepare(vq);
}

bool virtq_drv_poll(struct virtq_drv *vq, unsigned int pos)
{
	if (vq->broken)
		return false;
	/*
	 * enable_cb_prepare()'s stores (flags, used_event / off_wrap) must be
	 * visible before we look at the used ring again; pairs with the full
	 * barrier in the device's virtq_should_notify() between publishing
	 * used entries and reading our suppression state.  Otherwise the
	 * device may skip the interrupt while we miss its buffer.
	 */
	vq_mb();
	return vq->ops->poll(vq, pos);
}

bool virtq_drv_enable_cb(struct virtq_drv *vq)
{
	unsigned int pos = virtq_drv_enable_cb_prepare(vq);

	return !virtq_drv_poll(vq, pos);
}

bool virtq_drv_enable_cb_delayed(struct virtq_drv *vq)
{
	return vq->ops->enable_cb_delayed(vq);
}

void *virtq_drv_detach_unused_buf(struct virtq_drv *vq)
{
	unsigned int i;
	void *token;

	/*
	 * Whatever is still unpublished is published first, so a queue in
	 * batch mode tears down exactly as one that published on every add.
	 */
	if (vq->batch_publish)
		vq->ops->publish(vq);
	/* Teardown only: a linear scan is fine, and needs no ring reads. */
	for (i = 0; i < vq->num; i++) {
		if (!vq->state[i].token)
			continue;
		token = drv_release(vq, (uint16_t)i);
		if (vq->ops->unused_detached)
			vq->ops->unused_detached(vq);
		return token;
	}
	return NULL;
}

unsigned int virtq_drv_num_free(const struct virtq_drv *vq)
{
	return vq->num_free;
}

uint16_t virtq_drv_size(const struct virtq_drv *vq)
{
	return vq->num;
}

bool virtq_drv_is_packed(const struct virtq_drv *vq)
{
	return vq->ops == &virtq_drv_packed_ops;
}
