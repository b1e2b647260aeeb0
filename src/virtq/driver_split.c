// SPDX-License-Identifier: MIT
/*
 * driver_split.c - driver side of the split virtqueue (virtio 1.2, 2.7).
 *
 * Layout inside the caller's block: descriptor table at 0 (16-aligned),
 * avail ring right after it (2-aligned), used ring at the next multiple of 4.
 *
 * The device side these barriers pair with is device_split.c: virtq_pop()
 * acquire-loads avail->idx, virtq_flush() release-stores used->idx, and
 * virtq_should_notify() / virtq_enable_notify() put a full barrier between
 * their own index store and their read of our used_event / avail->idx.
 */
#include "driver_priv.h"

static size_t split_ring_size(uint16_t num)
{
	return vring_split_size(num, VRING_USED_ALIGN);
}

static void split_init(struct virtq_drv *vq)
{
	char *base = vq->mem;
	size_t avail_end = vring_desc_size(vq->num) + vring_avail_size(vq->num);

	vq->split.desc = (struct vring_desc *)base;
	vq->split.avail = (struct vring_avail *)(base + vring_desc_size(vq->num));
	vq->split.used = (struct vring_used *)(base + vring_align(avail_end, VRING_USED_ALIGN));
	vq->split.avail_idx_shadow = 0;
	vq->split.avail_idx_public = 0;
	vq->split.avail_flags_shadow = 0;
	/* Zeroed memory already reads as: interrupts on, used_event 0. */
}

static void split_get_addrs(const struct virtq_drv *vq, struct virtq_drv_addrs *addrs)
{
	addrs->desc = virtq_drv_dma(vq, vq->split.desc);
	addrs->driver_area = virtq_drv_dma(vq, vq->split.avail);
	addrs->device_area = virtq_drv_dma(vq, vq->split.used);
}

static uint16_t *split_used_event(const struct virtq_drv *vq)
{
	return vring_used_event(vq->split.avail, vq->num);
}

static void split_write_desc(struct vring_desc *d, uint64_t addr, uint32_t len, uint16_t flags,
			     uint16_t next)
{
	vq_write64(&d->addr, addr);
	vq_write32(&d->len, len);
	vq_write16(&d->flags, flags);
	vq_write16(&d->next, next);
}

/*
 * Write @sgs as a NEXT-linked chain into @descs starting at index @i.  The
 * chain follows @link (the private free list) in the ring, or runs
 * sequentially (link == NULL) in an indirect table.  The last descriptor
 * gets next = 0 rather than a free-list index: nothing private leaks.
 */
static void split_write_chain(struct vring_desc *descs, uint16_t i, const uint16_t *link,
			      const struct virtq_sg *sgs, unsigned int out, unsigned int total)
{
	unsigned int k;

	for (k = 0; k < total; k++) {
		uint16_t next = link ? link[i] : (uint16_t)(i + 1);
		uint16_t flags = virtq_drv_sg_flags(k, out);
		bool more = k + 1 < total;

		split_write_desc(&descs[i], sgs[k].addr, sgs[k].len,
				 flags | (more ? VRING_DESC_F_NEXT : 0), more ? next : 0);
		i = next;
	}
}

static void split_publish(struct virtq_drv *vq)
{
	struct virtq_drv_split *s = &vq->split;

	if (s->avail_idx_public == s->avail_idx_shadow)
		return;
	/*
	 * 2.7.13.3: descriptors and ring entries before the index.  Release
	 * pairs with the acquire load of avail->idx in the device's
	 * virtq_pop(); no separate write barrier needed.
	 */
	s->avail_idx_public = s->avail_idx_shadow;
	vq_store_release16(&s->avail->idx, s->avail_idx_public);
}

static void split_add(struct virtq_drv *vq, const struct virtq_sg *sgs, unsigned int out,
		      unsigned int total, void *token, bool indirect)
{
	struct virtq_drv_split *s = &vq->split;
	uint16_t head = virtq_drv_take(vq, indirect ? 1 : total, token);

	if (indirect) {
		struct vring_desc *table = virtq_drv_indirect_table(vq, head);

		split_write_chain(table, 0, NULL, sgs, out, total);
		split_write_desc(&s->desc[head], virtq_drv_dma(vq, table),
				 total * (uint32_t)sizeof(*table), VRING_DESC_F_INDIRECT, 0);
	} else {
		split_write_chain(s->desc, head, vq->next, sgs, out, total);
	}

	vq_write16(&s->avail->ring[s->avail_idx_shadow & (vq->num - 1)], head);
	s->avail_idx_shadow++;
	vq->num_added++;
	/*
	 * Publishing on every add (as Linux does) lets a polling device start
	 * early; kicks are still batched by kick_prepare().  With batch
	 * publish the index moves once per burst instead, in kick_prepare().
	 */
	if (!vq->batch_publish)
		split_publish(vq);
}

static bool split_need_kick(struct virtq_drv *vq, unsigned int added)
{
	uint16_t new_idx = vq->split.avail_idx_shadow;
	uint16_t old = (uint16_t)(new_idx - added);

	if (!vq->event_idx)
		return !(vq_read16(&vq->split.used->flags) & VRING_USED_F_NO_NOTIFY);
	/* More than 2^16 - 1 adds since the last kick: the window is ambiguous. */
	if (added > UINT16_MAX)
		return true;
	return vring_need_event(vq_read16(vring_avail_event(vq->split.used, vq->num)), new_idx,
				old);
}

static bool split_next_used(struct virtq_drv *vq, uint16_t *id, uint32_t *len)
{
	struct virtq_drv_split *s = &vq->split;
	struct vring_used_elem *elem;
	uint16_t used_idx, pending;
	uint32_t raw_id;

	/*
	 * Acquire pairs with the release store of used->idx in the device's
	 * virtq_flush(): the entries below it are complete when we read them.
	 */
	used_idx = vq_load_acquire16(&s->used->idx);
	pending = (uint16_t)(used_idx - vq->last_used);
	if (!pending)
		return false;
	/* The device cannot have used more than we made available. */
	if (pending > (uint16_t)(s->avail_idx_public - vq->last_used)) {
		virtq_drv_set_broken(vq, "used index ran ahead of avail", used_idx);
		return false;
	}

	/* Each field read once: the device may rewrite them under us. */
	elem = &s->used->ring[vq->last_used & (vq->num - 1)];
	raw_id = vq_read32(&elem->id);
	*len = vq_read32(&elem->len);
	/* Check the full 32 bits before narrowing, so 0x10000 + id cannot alias. */
	if (raw_id >= vq->num) {
		virtq_drv_set_broken(vq, "used id out of range", raw_id);
		return false;
	}
	*id = (uint16_t)raw_id;
	return true;
}

static void split_consumed(struct virtq_drv *vq, uint16_t ndescs)
{
	(void)ndescs; /* one used entry per chain, however long */
	vq->last_used++;

	/*
	 * Callbacks on: ask for an interrupt at the next entry (2.7.7).  The
	 * full barrier orders this store before our next read of used->idx
	 * and pairs with the one in the device's virtq_should_notify()
	 * between its used->idx store and its used_event read.
	 */
	if (vq->event_idx && !(vq->split.avail_flags_shadow & VRING_AVAIL_F_NO_INTERRUPT)) {
		vq_write16(split_used_event(vq), vq->last_used);
		vq_mb();
	}
}

static void split_disable_cb(struct virtq_drv *vq)
{
	struct virtq_drv_split *s = &vq->split;

	if (s->avail_flags_shadow & VRING_AVAIL_F_NO_INTERRUPT)
		return;
	s->avail_flags_shadow |= VRING_AVAIL_F_NO_INTERRUPT;

	/*
	 * Best effort, no barrier (like Linux).  With EVENT_IDX the flags
	 * must stay 0 (2.7.7.1), so move used_event out of reach instead:
	 * last_used - 1 was already passed by the device's used index, so it
	 * will not fire again for another 2^16 entries (Linux writes 0).
	 */
	if (vq->event_idx)
		vq_write16(split_used_event(vq), (uint16_t)(vq->last_used - 1));
	else
		vq_write16(&s->avail->flags, s->avail_flags_shadow);
}

/* Clear NO_INTERRUPT in the shadow, and in the ring when it is what the device reads. */
static void split_enable_flags(struct virtq_drv *vq)
{
	struct virtq_drv_split *s = &vq->split;

	if (!(s->avail_flags_shadow & VRING_AVAIL_F_NO_INTERRUPT))
		return;
	s->avail_flags_shadow &= ~VRING_AVAIL_F_NO_INTERRUPT;
	if (!vq->event_idx)
		vq_write16(&s->avail->flags, s->avail_flags_shadow);
}

static unsigned int split_enable_cb_prepare(struct virtq_drv *vq)
{
	split_enable_flags(vq);
	/* Ordered against the used->idx re-read by the barrier in virtq_drv_poll(). */
	if (vq->event_idx)
		vq_write16(split_used_event(vq), vq->last_used);
	return vq->last_used;
}

static bool split_poll(const struct virtq_drv *vq, unsigned int pos)
{
	return (uint16_t)pos != vq_read16(&vq->split.used->idx);
}

static bool split_enable_cb_delayed(struct virtq_drv *vq)
{
	struct virtq_drv_split *s = &vq->split;
	uint16_t bufs = 0;

	split_enable_flags(vq);
	/*
	 * With EVENT_IDX, interrupt only after ~3/4 of what is outstanding.
	 * Without it the device cannot delay, and an entry used before we
	 * cleared NO_INTERRUPT would get no interrupt at all, so report any
	 * pending entry (Linux compares against the 3/4 mark either way).
	 */
	if (vq->event_idx) {
		bufs = (uint16_t)(s->avail_idx_shadow - vq->last_used) * 3 / 4;
		vq_write16(split_used_event(vq), (uint16_t)(vq->last_used + bufs));
	}
	/* Same pairing as virtq_drv_poll(): our store, then the used->idx re-read. */
	vq_mb();
	return (uint16_t)(vq_read16(&s->used->idx) - vq->last_used) <= bufs;
}

/*
 * Teardown: roll back the avail index for each chain taken back, as Linux
 * does, so that the index again matches what is in flight.  The device is
 * stopped, so a plain store will do.
 */
static void split_unused_detached(struct virtq_drv *vq)
{
	vq->split.avail_idx_shadow--;
	vq->split.avail_idx_public = vq->split.avail_idx_shadow;
	vq_write16(&vq->split.avail->idx, vq->split.avail_idx_shadow);
}

const struct virtq_drv_ops virtq_drv_split_ops = {
	.ring_size = split_ring_size,
	.init = split_init,
	.get_addrs = split_get_addrs,
	.add = split_add,
	.publish = split_publish,
	.need_kick = split_need_kick,
	.next_used = split_next_used,
	.consumed = split_consumed,
	.disable_cb = split_disable_cb,
	.enable_cb_prepare = split_enable_cb_prepare,
	.poll = split_poll,
	.enable_cb_delayed = split_enable_cb_delayed,
	.unused_detached = split_unused_detached,
};
