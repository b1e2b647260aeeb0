// SPDX-License-Identifier: MIT
/*
 * device_packed.c - the device side of a packed virtqueue (virtio 1.2, 2.8).
 *
 * One ring of descriptors shared both ways.  The driver makes a list
 * available by writing its descriptors in consecutive slots and, last, the
 * first one's flags (AVAIL = its wrap counter, USED = the inverse).  We
 * write one used descriptor per list at our own used position (AVAIL = USED
 * = our wrap counter) and step over as many slots as the list took.  Slot
 * positions and wrap counters replace the split ring's free-running
 * indices, because the queue size need not be a power of two.
 *
 * Barrier pairings, driver (Linux virtio_ring.c) <-> here:
 *   virtio_wmb before the head's flags  <-> acquire load of the head's flags
 *   virtio_rmb after a used desc's flags <-> release store of the batch head's flags
 *   virtio_mb before reading the device event <-> vq_mb in enable_notify / pop
 *   virtio_mb before re-reading the ring      <-> vq_mb in should_notify
 */
#include <errno.h>
#include <stdint.h>

#include "virtq.h"

#define EVENT_OFF_MASK ((1u << VRING_PACKED_EVENT_WRAP_SHIFT) - 1)

/* 2.8.1: available means AVAIL matches the driver's wrap counter and USED does not. */
static bool packed_desc_avail(uint16_t flags, bool wrap)
{
	return !!(flags & VRING_PACKED_DESC_F_AVAIL) == wrap &&
	       !!(flags & VRING_PACKED_DESC_F_USED) != wrap;
}

/* Step a slot position, toggling its wrap counter at the end of the ring. */
static void packed_advance(const struct virtq *vq, uint16_t *idx, bool *wrap, uint16_t step)
{
	uint32_t next = (uint32_t)*idx + step;

	if (next >= vq->num) {
		next -= vq->num;
		*wrap = !*wrap;
	}
	*idx = (uint16_t)next;
}

/*
 * The event suppression structure as one little-endian word, off_wrap in
 * the low half: a single 32-bit store updates both fields at once, so a
 * driver that snapshots the structure (Linux reads it as one u32) never
 * sees a new flags value with an old offset.
 */
static void packed_write_device_event(struct virtq *vq, uint16_t flags, uint16_t off_wrap)
{
	struct virtq_packed_state *p = &vq->packed;

	p->device_event_shadow = (uint32_t)flags << 16 | off_wrap;
	vq_write32(p->device_event, p->device_event_shadow);
	virtq_log_ring(vq, vq->log_device_gpa, 0, sizeof(uint32_t));
}

/* Dirty logging of a descriptor slot we wrote a used element into (virtq.h). */
static void packed_log_slot(const struct virtq *vq, uint16_t slot)
{
	virtq_log_ring(vq, vq->log_desc_gpa, (uint64_t)slot * sizeof(struct vring_packed_desc),
		       sizeof(struct vring_packed_desc));
}

static int packed_init(struct virtq *vq, const struct virtq_config *cfg)
{
	struct virtq_packed_state *p = &vq->packed;
	uint16_t idx = cfg->base & ((1u << VIRTQ_PACKED_WRAP_BIT) - 1);
	bool wrap = cfg->base >> VIRTQ_PACKED_WRAP_BIT;

	if (idx >= vq->num)
		return -EINVAL;
	/* 2.8.10.1: descriptors 16-aligned, event structures 4-aligned. */
	if ((uintptr_t)cfg->desc % VRING_PACKED_DESC_ALIGN ||
	    (uintptr_t)cfg->driver_area % VRING_PACKED_EVENT_ALIGN ||
	    (uintptr_t)cfg->device_area % VRING_PACKED_EVENT_ALIGN)
		return -EINVAL;

	p->desc = cfg->desc;
	p->driver_event = cfg->driver_area;
	p->device_event = cfg->device_area;
	/* An idle ring: the used position is where the next available one is. */
	p->last_avail_idx = p->used_idx = p->published_used_idx = idx;
	p->avail_wrap = p->used_wrap = p->published_used_wrap = wrap;
	p->batch_slots = 0;
	p->unsignalled = 0;
	p->signalled_used_valid = false;
	p->inflight_descs = 0;

	/* Ask for kicks from the start, whatever a previous back-end left. */
	if (vq->event_idx)
		packed_write_device_event(vq, VRING_PACKED_EVENT_FLAG_DESC,
					  idx | (uint16_t)wrap << VRING_PACKED_EVENT_WRAP_SHIFT);
	else
		packed_write_device_event(vq, VRING_PACKED_EVENT_FLAG_ENABLE, 0);
	return 0;
}

/*
 * An indirect table (2.8.7): entries in order, no NEXT links.  Only WRITE
 * is meaningful inside; ids are ignored.  A nested table breaks 2.8.19.
 */
static int packed_indirect(struct virtq *vq, struct virtq_elem *elem,
			   const struct virtq_desc_copy *d)
{
	const struct vring_packed_desc *table;
	struct virtq_desc_copy e;
	unsigned int n;
	const void *t;
	int r;

	r = virtq_indirect_table(vq, d, &t, &n);
	if (r)
		return r;
	table = t;
	for (unsigned int k = 0; k < n; k++) {
		e.flags = virtq_packed_desc_flags(&table[k]);
		virtq_copy_packed_desc(&table[k], &e);
		if (e.flags & VRING_DESC_F_INDIRECT)
			return virtq_set_broken(vq, VIRTQ_ERR_NESTED_INDIRECT, NULL);
		r = virtq_elem_add(vq, elem, &e);
		if (r)
			return r;
	}
	return 0;
}

static int packed_pop_one(struct virtq *vq, struct virtq_elem *elem)
{
	struct virtq_packed_state *p = &vq->packed;
	uint16_t i = p->last_avail_idx;
	bool wrap = p->avail_wrap;
	unsigned int count = 0;
	struct virtq_desc_copy d;
	int r;

	/*
	 * Acquire: pairs with the driver's write barrier before it stores the
	 * first descriptor's flags, which it does after writing the rest of
	 * the list (2.8.6, 2.8.21.1).  Everything read below is at least as
	 * new as the list it made available.
	 */
	d.flags = vq_load_acquire16(&p->desc[i].flags);
	if (!packed_desc_avail(d.flags, wrap))
		return 0;
	virtq_copy_packed_desc(&p->desc[i], &d);

	for (;;) {
		/* count < num here (checked below before each step). */
		if (elem->descs)
			elem->descs[count] = d;
		count++;
		if (d.flags & VRING_DESC_F_INDIRECT) {
			/* 2.8.19: an indirect descriptor never sits in a NEXT list. */
			if (count > 1)
				return virtq_set_broken(vq, VIRTQ_ERR_INDIRECT_NEXT,
							"indirect descriptor inside a list");
			r = packed_indirect(vq, elem, &d);
			if (r)
				return r;
			break;
		}
		r = virtq_elem_add(vq, elem, &d);
		if (r)
			return r;
		if (!(d.flags & VRING_DESC_F_NEXT))
			break;
		/*
		 * 2.8.17: no list longer than the queue.  NEXT on every slot
		 * would otherwise have us lap the ring for ever.
		 */
		if (count == vq->num)
			return virtq_set_broken(vq, VIRTQ_ERR_CHAIN_LONG, NULL);
		packed_advance(vq, &i, &wrap, 1);
		/* The rest of the list was ordered by the head's acquire above. */
		d.flags = virtq_packed_desc_flags(&p->desc[i]);
		virtq_copy_packed_desc(&p->desc[i], &d);
	}

	/*
	 * 2.8.6: the buffer id is in the last descriptor of the list (as QEMU
	 * reads it; Linux writes it in every one).  An indirect descriptor is
	 * its own last; ids inside its table are ignored (2.8.7).  Ids index
	 * our in-flight bitmap, so they must be below the queue size.
	 */
	if (d.next >= vq->num)
		return virtq_set_broken(vq, VIRTQ_ERR_HEAD, "buffer id");
	/*
	 * The driver can only re-offer a slot after it saw it used; more
	 * slots in flight than the ring holds means it re-offered slots we
	 * hold, and our used writes could overrun its available ones.
	 */
	if (p->inflight_descs + count > vq->num)
		return virtq_set_broken(vq, VIRTQ_ERR_AVAIL_IDX,
					"more descriptors in flight than the ring holds");

	packed_advance(vq, &i, &wrap, 1);
	p->last_avail_idx = i;
	p->avail_wrap = wrap;
	p->inflight_descs += count;
	elem->id = d.next;
	elem->ndescs = (uint16_t)count;
	return 1;
}

int virtq_packed_walk_saved(struct virtq *vq, struct virtq_elem *elem,
			    const struct virtq_desc_copy *descs, unsigned int n)
{
	struct virtq_packed_state *p = &vq->packed;
	unsigned int k;
	int r;

	virtq_elem_reset(elem);
	/* The rules packed_pop_one() applies to the same list in the ring. */
	if (!n || n > vq->num)
		return virtq_set_broken(vq, VIRTQ_ERR_CHAIN_LONG, "saved chain length");
	for (k = 0; k < n; k++) {
		const struct virtq_desc_copy *d = &descs[k];
		bool last = k == n - 1;

		if (d->flags & VRING_DESC_F_INDIRECT) {
			/* Ends the list whatever NEXT says, as in the ring. */
			if (n > 1)
				return virtq_set_broken(vq, VIRTQ_ERR_INDIRECT_NEXT,
							"indirect descriptor inside a list");
			r = packed_indirect(vq, elem, d);
		} else if (!!(d->flags & VRING_DESC_F_NEXT) == last) {
			return virtq_set_broken(vq, VIRTQ_ERR_CHAIN_LONG, "saved chain links");
		} else {
			r = virtq_elem_add(vq, elem, d);
		}
		if (r)
			return r;
	}
	if (descs[n - 1].next >= vq->num)
		return virtq_set_broken(vq, VIRTQ_ERR_HEAD, "buffer id");
	if (p->inflight_descs + n > vq->num)
		return virtq_set_broken(vq, VIRTQ_ERR_AVAIL_IDX,
					"more descriptors in flight than the ring holds");
	p->inflight_descs += n;
	elem->id = descs[n - 1].next;
	elem->ndescs = (uint16_t)n;
	return 0;
}

void virtq_packed_resume_used(struct virtq *vq, uint16_t used)
{
	struct virtq_packed_state *p = &vq->packed;
	uint16_t idx = used & ((1u << VIRTQ_PACKED_WRAP_BIT) - 1);

	if (idx >= vq->num)
		return; /* the caller checked it; keep the base's position */
	p->used_idx = p->published_used_idx = idx;
	p->used_wrap = p->published_used_wrap = used >> VIRTQ_PACKED_WRAP_BIT;
	p->unsignalled = 0;
	p->signalled_used_valid = false;
}

static unsigned int packed_pop(struct virtq *vq, struct virtq_elem *const *elems, unsigned int n)
{
	unsigned int done;

	for (done = 0; done < n; done++) {
		virtq_elem_reset(elems[done]);
		if (packed_pop_one(vq, elems[done]) <= 0)
			break;
	}
	return done;
}

static void packed_fill(struct virtq *vq, const struct virtq_elem *elem, uint32_t len)
{
	struct virtq_packed_state *p = &vq->packed;
	struct vring_packed_desc *u = &p->desc[p->used_idx];
	uint16_t flags = p->used_wrap ? VRING_PACKED_DESC_F_AVAIL | VRING_PACKED_DESC_F_USED : 0;

	/* ndescs steers our used position: it must be what pop gave out. */
	if (!elem->ndescs || elem->ndescs > p->inflight_descs) {
		virtq_set_broken(vq, VIRTQ_ERR_USED_ID, "element ndescs corrupted");
		return;
	}
	/* 2.8.3: WRITE in a used descriptor says len counts written bytes. */
	if (len)
		flags |= VRING_DESC_F_WRITE;

	/*
	 * This slot was consumed by a pop (used never passes avail), and the
	 * list that lived here was copied out then, so overwriting it cannot
	 * disturb a chain still in flight.
	 */
	vq_write16(&u->id, elem->id);
	vq_write32(&u->len, len);
	if (!p->batch_slots) {
		/* The batch head: its flags are what exposes the batch (flush). */
		p->batch_head_idx = p->used_idx;
		p->batch_head_flags = flags;
	} else {
		/* Ordered before the head's release store in flush. */
		vq_write16(&u->flags, flags);
	}
	packed_log_slot(vq, p->used_idx);
	p->batch_slots += elem->ndescs;
	p->inflight_descs -= elem->ndescs;
	packed_advance(vq, &p->used_idx, &p->used_wrap, elem->ndescs);
}

static void packed_flush(struct virtq *vq)
{
	struct virtq_packed_state *p = &vq->packed;
	uint32_t unsignalled;

	if (!p->batch_slots)
		return;
	/*
	 * Release: every used descriptor of the batch (ids, lengths, the later
	 * slots' flags) is visible before the first one's flags.  The driver
	 * polls only the next slot in order, so it sees the batch whole or not
	 * at all (2.8.9); pairs with its read barrier after it loads a used
	 * descriptor's flags.
	 */
	vq_store_release16(&p->desc[p->batch_head_idx].flags, p->batch_head_flags);
	/* After the store it covers: the log bit must not precede the data. */
	packed_log_slot(vq, p->batch_head_idx);
	p->published_used_idx = p->used_idx;
	p->published_used_wrap = p->used_wrap;
	/* Saturate at num: after a whole lap the event window means nothing. */
	unsignalled = p->unsignalled + p->batch_slots;
	p->unsignalled = unsignalled > vq->num ? vq->num : (uint16_t)unsignalled;
	p->batch_slots = 0;
}

static int packed_should_notify(struct virtq *vq)
{
	struct virtq_packed_state *p = &vq->packed;
	uint16_t dist = p->unsignalled, new_idx = p->published_used_idx, off_wrap, event;
	bool valid = p->signalled_used_valid;
	uint32_t ev;

	p->unsignalled = 0;
	p->signalled_used_valid = true;
	if (valid && !dist)
		return -1;

	/* One load, so off_wrap and flags are from the same moment. */
	ev = vq_read32(p->driver_event);
	off_wrap = (uint16_t)ev;
	switch (ev >> 16 & 3) {
	case VRING_PACKED_EVENT_FLAG_DISABLE:
		return 0;
	case VRING_PACKED_EVENT_FLAG_DESC:
		break;
	default:
		/* ENABLE, or the reserved value: a spare interrupt is harmless. */
		return 1;
	}
	/* DESC without EVENT_IDX is invalid (2.8.10): err on the side of notifying. */
	if (!vq->event_idx || !valid || dist >= vq->num)
		return 1;

	/*
	 * 2.8.10: notify if one of the slots we made used since the last
	 * decision, [new - dist, new), is the event slot.  Put everything in
	 * the coordinates of the current lap: an event offset whose wrap bit
	 * differs from ours lies in the previous lap, [-num, 0).  Since
	 * dist < num the window never reaches further back, so this reading of
	 * the one-bit wrap is the right one (Linux virtqueue_kick_prepare_packed
	 * and QEMU vring_packed_need_event do the same).
	 */
	event = off_wrap & EVENT_OFF_MASK;
	if (!!(off_wrap >> VRING_PACKED_EVENT_WRAP_SHIFT) != p->published_used_wrap)
		event -= vq->num;
	return vring_need_event(event, new_idx, (uint16_t)(new_idx - dist));
}

static bool packed_set_notify(struct virtq *vq, bool enable)
{
	struct virtq_packed_state *p = &vq->packed;
	uint16_t off_wrap = (uint16_t)p->device_event_shadow, flags;

	if (!enable) {
		flags = VRING_PACKED_EVENT_FLAG_DISABLE;
	} else if (vq->event_idx) {
		/* Kick us when the driver makes our next slot available. */
		flags = VRING_PACKED_EVENT_FLAG_DESC;
		off_wrap = p->last_avail_idx | (uint16_t)p->avail_wrap
						       << VRING_PACKED_EVENT_WRAP_SHIFT;
	} else {
		flags = VRING_PACKED_EVENT_FLAG_ENABLE;
	}
	if (((uint32_t)flags << 16 | off_wrap) == p->device_event_shadow)
		return false;
	packed_write_device_event(vq, flags, off_wrap);
	return true;
}

static bool packed_avail_empty(struct virtq *vq)
{
	struct virtq_packed_state *p = &vq->packed;

	return !packed_desc_avail(vq_load_acquire16(&p->desc[p->last_avail_idx].flags),
				  p->avail_wrap);
}

static uint16_t packed_get_base(const struct virtq *vq)
{
	return vq->packed.last_avail_idx | (uint16_t)vq->packed.avail_wrap << VIRTQ_PACKED_WRAP_BIT;
}

const struct virtq_layout_ops virtq_packed_layout = {
	.init = packed_init,
	.pop = packed_pop,
	.fill = packed_fill,
	.flush = packed_flush,
	.should_notify = packed_should_notify,
	.set_notify = packed_set_notify,
	.avail_empty = packed_avail_empty,
	.get_base = packed_get_base,
};
