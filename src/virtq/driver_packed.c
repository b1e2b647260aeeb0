// SPDX-License-Identifier: MIT
/*
 * driver_packed.c - driver side of the packed virtqueue (virtio 1.2, 2.8).
 *
 * Layout inside the caller's block: descriptor ring at 0 (16-aligned), then
 * the driver event suppression struct (ours, 4-aligned) and the device's.
 *
 * Slots are filled in ring order; a slot is available when its AVAIL bit
 * equals our wrap counter and its USED bit does not, used when both equal
 * the device's wrap counter (2.8.1).  Each chain carries its buffer id in
 * every descriptor, as Linux does.  The device side these barriers pair
 * with is device_packed.c: virtq_pop() acquire-loads a head's flags,
 * virtq_flush() release-stores the first used element's flags last, and
 * virtq_should_notify() / virtq_enable_notify() put a full barrier between
 * their ring stores and their read of our event struct / the ring.
 */
#include "driver_priv.h"

#define WRAP_SHIFT VRING_PACKED_EVENT_WRAP_SHIFT
#define OFF_MASK   ((1u << WRAP_SHIFT) - 1)

static size_t packed_ring_size(uint16_t num)
{
	return vring_packed_size(num);
}

static uint16_t packed_off_wrap(uint16_t off, bool wrap)
{
	return (uint16_t)(off | (unsigned int)wrap << WRAP_SHIFT);
}

static void packed_init(struct virtq_drv *vq)
{
	struct virtq_drv_packed *p = &vq->packed;
	char *base = vq->mem;
	size_t ring = sizeof(struct vring_packed_desc) * vq->num;

	p->desc = (struct vring_packed_desc *)base;
	p->driver = (struct vring_packed_desc_event *)(base +
						       vring_align(ring, VRING_PACKED_EVENT_ALIGN));
	p->device = p->driver + 1;
	p->next_avail = 0;
	/* 2.8.1: both wrap counters start at 1; first-lap slots say AVAIL=1 USED=0. */
	p->avail_wrap = true;
	p->used_wrap = true;
	p->avail_used_flags = VRING_PACKED_DESC_F_AVAIL;

	/*
	 * With EVENT_IDX start in DESC mode at slot 0 of lap 1 (the first used
	 * buffer interrupts), as a split ring's zero used_event does; Linux
	 * starts in ENABLE and only switches after a disable/enable cycle.
	 */
	p->event_flags_shadow = VRING_PACKED_EVENT_FLAG_ENABLE;
	if (vq->event_idx) {
		p->event_flags_shadow = VRING_PACKED_EVENT_FLAG_DESC;
		vq_write16(&p->driver->off_wrap, packed_off_wrap(0, true));
		vq_write16(&p->driver->flags, p->event_flags_shadow);
	}
}

static void packed_get_addrs(const struct virtq_drv *vq, struct virtq_drv_addrs *addrs)
{
	addrs->desc = virtq_drv_dma(vq, vq->packed.desc);
	addrs->driver_area = virtq_drv_dma(vq, vq->packed.driver);
	addrs->device_area = virtq_drv_dma(vq, vq->packed.device);
}

/* Everything but flags: those decide when the device may look. */
static void packed_write_body(struct vring_packed_desc *d, uint64_t addr, uint32_t len, uint16_t id)
{
	vq_write64(&d->addr, addr);
	vq_write32(&d->len, len);
	vq_write16(&d->id, id);
}

/* Next slot after @i; passing the end starts a new lap with flipped flags. */
static uint16_t packed_step(struct virtq_drv *vq, uint16_t i)
{
	struct virtq_drv_packed *p = &vq->packed;

	if (++i < vq->num)
		return i;
	p->avail_wrap = !p->avail_wrap;
	p->avail_used_flags ^= VRING_PACKED_DESC_F_AVAIL | VRING_PACKED_DESC_F_USED;
	return 0;
}

static void packed_add(struct virtq_drv *vq, const struct virtq_sg *sgs, unsigned int out,
		       unsigned int total, void *token, bool indirect)
{
	struct virtq_drv_packed *p = &vq->packed;
	uint16_t head = p->next_avail, i = head, head_flags;
	uint16_t id = virtq_drv_take(vq, indirect ? 1 : total, token);
	unsigned int k;

	if (indirect) {
		/* 2.8.7: a plain sequential table, no NEXT; ids inside are ignored. */
		struct vring_packed_desc *table = virtq_drv_indirect_table(vq, id);

		for (k = 0; k < total; k++) {
			packed_write_body(&table[k], sgs[k].addr, sgs[k].len, 0);
			vq_write16(&table[k].flags, virtq_drv_sg_flags(k, out));
		}
		packed_write_body(&p->desc[head], virtq_drv_dma(vq, table),
				  total * (uint32_t)sizeof(*table), id);
		head_flags = VRING_DESC_F_INDIRECT | p->avail_used_flags;
		i = packed_step(vq, i);
	} else {
		head_flags = 0;
		for (k = 0; k < total; k++) {
			uint16_t flags = p->avail_used_flags | virtq_drv_sg_flags(k, out) |
					 (k + 1 < total ? VRING_DESC_F_NEXT : 0);

			packed_write_body(&p->desc[i], sgs[k].addr, sgs[k].len, id);
			if (k == 0)
				head_flags = flags;
			else
				vq_write16(&p->desc[i].flags, flags);
			i = packed_step(vq, i);
		}
	}
	p->next_avail = i;
	vq->num_added += indirect ? 1 : total;

	if (!vq->batch_publish) {
		/*
		 * The driver must not make the head available before the rest
		 * of the chain (2.8, "Supplying Buffers"): its flags go last,
		 * with release.  Pairs with the acquire load of the head's
		 * flags in the device's virtq_pop().
		 */
		vq_store_release16(&p->desc[head].flags, head_flags);
	} else if (!p->pending) {
		/* The burst's first head: publish() stores its flags last. */
		p->pending = true;
		p->pending_head = head;
		p->pending_flags = head_flags;
	} else {
		/*
		 * A later chain of the burst: its head may be marked now.  The
		 * device walks slots in order and stops at the first head that
		 * is not available, so it reaches this one only after the
		 * pending head's release store in publish(), which orders this
		 * store (and the chain) before it.
		 */
		vq_write16(&p->desc[head].flags, head_flags);
	}
}

static void packed_publish(struct virtq_drv *vq)
{
	struct virtq_drv_packed *p = &vq->packed;

	if (!p->pending)
		return;
	/*
	 * Release: every chain of the burst, and the later heads' flags,
	 * before the first head's flags.  Pairs with the acquire load of the
	 * head's flags in the device's virtq_pop().
	 */
	vq_store_release16(&p->desc[p->pending_head].flags, p->pending_flags);
	p->pending = false;
}

static bool packed_need_kick(struct virtq_drv *vq, unsigned int added)
{
	struct virtq_drv_packed *p = &vq->packed;
	uint16_t new_idx = p->next_avail, old = (uint16_t)(new_idx - added);
	uint16_t off_wrap, flags, event;
	uint32_t snap;

	/*
	 * One 32-bit read of the device's struct: off_wrap and flags as they
	 * were at one instant (little-endian: off_wrap is the low half).
	 */
	snap = vq_read32(p->device);
	off_wrap = (uint16_t)snap;
	flags = (uint16_t)(snap >> 16);

	if (flags != VRING_PACKED_EVENT_FLAG_DESC)
		return flags != VRING_PACKED_EVENT_FLAG_DISABLE;
	/* A whole lap or more since the last kick: the offset is ambiguous. */
	if (added >= vq->num)
		return true;

	/*
	 * Bring the device's slot into the frame of our current lap: an
	 * event on the other wrap counter lies one lap back (2.8.10).
	 */
	event = off_wrap & OFF_MASK;
	if ((bool)(off_wrap >> WRAP_SHIFT) != p->avail_wrap)
		event -= vq->num;
	return vring_need_event(event, new_idx, old);
}

/* Has the device marked slot @idx used on lap @wrap? */
static bool packed_is_used(const struct virtq_drv *vq, uint16_t idx, bool wrap)
{
	/*
	 * Acquire pairs with the device's release store of the used flags in
	 * virtq_flush(): id and len read after this are the device's.
	 */
	uint16_t flags = vq_load_acquire16(&vq->packed.desc[idx].flags);
	bool avail = flags & VRING_PACKED_DESC_F_AVAIL;
	bool used = flags & VRING_PACKED_DESC_F_USED;

	return avail == used && used == wrap;
}

static bool packed_next_used(struct virtq_drv *vq, uint16_t *id, uint32_t *len)
{
	struct vring_packed_desc *d = &vq->packed.desc[vq->last_used];

	if (!packed_is_used(vq, vq->last_used, vq->packed.used_wrap))
		return false;
	/* Read once each; driver.c checks the id is ours. */
	*id = vq_read16(&d->id);
	*len = vq_read32(&d->len);
	return true;
}

static void packed_consumed(struct virtq_drv *vq, uint16_t ndescs)
{
	struct virtq_drv_packed *p = &vq->packed;

	/* The device skips the whole chain's slots, counted from our own state. */
	vq->last_used += ndescs;
	if (vq->last_used >= vq->num) {
		vq->last_used -= vq->num;
		p->used_wrap = !p->used_wrap;
	}

	/*
	 * In DESC mode, ask for an interrupt at the next slot.  The full
	 * barrier orders this store before our next read of the ring and pairs
	 * with the one in the device's virtq_should_notify().
	 */
	if (p->event_flags_shadow == VRING_PACKED_EVENT_FLAG_DESC) {
		vq_write16(&p->driver->off_wrap, packed_off_wrap(vq->last_used, p->used_wrap));
		vq_mb();
	}
}

static void packed_disable_cb(struct virtq_drv *vq)
{
	struct virtq_drv_packed *p = &vq->packed;

	/* Best effort, no barrier (like Linux). */
	if (p->event_flags_shadow == VRING_PACKED_EVENT_FLAG_DISABLE)
		return;
	p->event_flags_shadow = VRING_PACKED_EVENT_FLAG_DISABLE;
	vq_write16(&p->driver->flags, p->event_flags_shadow);
}

/*
 * Turn notifications back on, after the caller stored off_wrap.  Release
 * orders that off_wrap before the flags that make the device read it.
 */
static void packed_enable_flags(struct virtq_drv *vq)
{
	struct virtq_drv_packed *p = &vq->packed;

	if (p->event_flags_shadow != VRING_PACKED_EVENT_FLAG_DISABLE)
		return;
	p->event_flags_shadow =
		vq->event_idx ? VRING_PACKED_EVENT_FLAG_DESC : VRING_PACKED_EVENT_FLAG_ENABLE;
	vq_store_release16(&p->driver->flags, p->event_flags_shadow);
}

static unsigned int packed_enable_cb_prepare(struct virtq_drv *vq)
{
	struct virtq_drv_packed *p = &vq->packed;
	uint16_t pos = packed_off_wrap(vq->last_used, p->used_wrap);

	if (vq->event_idx)
		vq_write16(&p->driver->off_wrap, pos);
	packed_enable_flags(vq);
	return pos;
}

static bool packed_poll(const struct virtq_drv *vq, unsigned int pos)
{
	uint16_t idx = pos & OFF_MASK;

	if (idx >= vq->num)
		return false;
	return packed_is_used(vq, idx, (pos >> WRAP_SHIFT) & 1);
}

static bool packed_enable_cb_delayed(struct virtq_drv *vq)
{
	struct virtq_drv_packed *p = &vq->packed;

	if (vq->event_idx) {
		/* Interrupt after ~3/4 of the outstanding descriptors. */
		uint16_t bufs = (uint16_t)((vq->num - vq->num_free) * 3 / 4);
		uint16_t idx = (uint16_t)(vq->last_used + bufs);
		bool wrap = p->used_wrap;

		if (idx >= vq->num) {
			idx -= vq->num;
			wrap = !wrap;
		}
		vq_write16(&p->driver->off_wrap, packed_off_wrap(idx, wrap));
	}
	packed_enable_flags(vq);

	/* Same pairing as virtq_drv_poll(): our event struct, then the ring. */
	vq_mb();
	return !packed_is_used(vq, vq->last_used, p->used_wrap);
}

const struct virtq_drv_ops virtq_drv_packed_ops = {
	.ring_size = packed_ring_size,
	.init = packed_init,
	.get_addrs = packed_get_addrs,
	.add = packed_add,
	.publish = packed_publish,
	.need_kick = packed_need_kick,
	.next_used = packed_next_used,
	.consumed = packed_consumed,
	.disable_cb = packed_disable_cb,
	.enable_cb_prepare = packed_enable_cb_prepare,
	.poll = packed_poll,
	.enable_cb_delayed = packed_enable_cb_delayed,
	.unused_detached = NULL,
};
