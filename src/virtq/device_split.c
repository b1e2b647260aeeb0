// SPDX-License-Identifier: MIT
/*
 * device_split.c - the device side of a split virtqueue (virtio 1.2, 2.7).
 *
 * The driver writes chains into the descriptor table, their heads into the
 * avail ring, then bumps avail->idx; we walk each chain and later write
 * {id, len} into the used ring and bump used->idx.  Our indices run free
 * over 16 bits and are reduced modulo num (a power of two) only to index a
 * ring, as the spec's own arithmetic does.
 *
 * Barrier pairings, driver (Linux virtio_ring.c) <-> here:
 *   virtio_wmb before avail->idx     <-> acquire load of avail->idx
 *   virtio_rmb after reading used->idx <-> release store of used->idx
 *   virtio_mb before reading avail_event/flags <-> vq_mb in enable_notify / pop
 *   virtio_mb before re-reading used->idx    <-> vq_mb in should_notify
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "virtq.h"

/* Dirty logging of the used ring, at vhost's log_guest_addr (virtq.h). */
static void split_log_used(const struct virtq *vq, size_t off, size_t len)
{
	virtq_log_ring(vq, vq->log_device_gpa, off, len);
}

static void split_log_avail_event(const struct virtq *vq)
{
	split_log_used(vq,
		       offsetof(struct vring_used, ring) + vq->num * sizeof(struct vring_used_elem),
		       sizeof(uint16_t));
}

static int split_init(struct virtq *vq, const struct virtq_config *cfg)
{
	struct virtq_split_state *s = &vq->split;

	/* 2.7: queue size a power of two; parts aligned 16 / 2 / 4. */
	if (vq->num & (vq->num - 1))
		return -EINVAL;
	if ((uintptr_t)cfg->desc % VRING_DESC_ALIGN ||
	    (uintptr_t)cfg->driver_area % VRING_AVAIL_ALIGN ||
	    (uintptr_t)cfg->device_area % VRING_USED_ALIGN)
		return -EINVAL;

	s->desc = cfg->desc;
	s->avail = cfg->driver_area;
	s->used = cfg->device_area;
	s->last_avail_idx = s->shadow_avail_idx = cfg->base;
	s->used_idx = s->published_used_idx = cfg->base;
	/* We do not know what a previous back-end signalled: notify first time. */
	s->signalled_used = cfg->base;
	s->signalled_used_valid = false;

	/*
	 * Ask for kicks from the start, whatever a previous back-end left in
	 * the used ring's flags or avail_event.
	 */
	s->used_flags = 0;
	vq_write16(&s->used->flags, 0);
	split_log_used(vq, offsetof(struct vring_used, flags), sizeof(uint16_t));
	s->avail_event = cfg->base;
	if (vq->event_idx) {
		vq_write16(vring_avail_event(s->used, vq->num), cfg->base);
		split_log_avail_event(vq);
	}
	return 0;
}

/*
 * Read avail->idx once and check it.  Returns 1 if there is something new,
 * 0 if not, -EIO if the index is a lie.
 */
static int split_read_avail_idx(struct virtq *vq)
{
	struct virtq_split_state *s = &vq->split;
	/*
	 * Acquire: pairs with the driver's write barrier before its avail->idx
	 * store (2.7.13.3), so the ring entries and descriptors it published
	 * are visible to every read that follows.
	 */
	uint16_t idx = vq_load_acquire16(&s->avail->idx);

	/*
	 * The driver cannot have more than num heads outstanding; a larger
	 * step would have us consume entries it never wrote (or the same ones
	 * twice).
	 */
	if ((uint16_t)(idx - s->last_avail_idx) > vq->num)
		return virtq_set_broken(vq, VIRTQ_ERR_AVAIL_IDX, NULL);
	s->shadow_avail_idx = idx;
	return idx != s->last_avail_idx;
}

/*
 * Walk the chain starting at descriptor @head, appending its buffers to
 * @elem.  Each descriptor is copied once (virtq_copy_split_desc) and only
 * the copy is checked and used.  An indirect descriptor switches the walk
 * to its table, once (2.7.5.3).  Returns the number of descriptor-table
 * entries the chain used, or -EIO.
 */
static int split_walk(struct virtq *vq, struct virtq_elem *elem, uint16_t head)
{
	const struct vring_desc *table = vq->split.desc;
	unsigned int n = vq->num, i = head, count = 0, ring_count = 0;
	bool indirect = false;
	struct virtq_desc_copy d;
	const void *t;
	int r;

	for (;;) {
		/*
		 * 2.7.5.3.1: no chain longer than the queue (or its table).
		 * Counting visits bounds a loop without remembering where we
		 * have been.
		 */
		if (++count > n)
			return virtq_set_broken(vq, VIRTQ_ERR_CHAIN_LONG,
						indirect ? "indirect table" : NULL);
		virtq_copy_split_desc(&table[i], &d);

		if (d.flags & VRING_DESC_F_INDIRECT) {
			/* 2.7.5.3.1: only one table per chain. */
			if (indirect)
				return virtq_set_broken(vq, VIRTQ_ERR_NESTED_INDIRECT, NULL);
			r = virtq_indirect_table(vq, &d, &t, &n);
			if (r)
				return r;
			/* The table's first entry is its index 0 (2.7.5.3). */
			table = t;
			ring_count = count;
			indirect = true;
			i = 0;
			count = 0;
			continue;
		}

		r = virtq_elem_add(vq, elem, &d);
		if (r)
			return r;
		if (!(d.flags & VRING_DESC_F_NEXT))
			break;
		if (d.next >= n)
			return virtq_set_broken(vq, VIRTQ_ERR_HEAD,
						indirect ? "next beyond indirect table"
							 : "next beyond descriptor table");
		i = d.next;
	}
	return indirect ? (int)ring_count : (int)count;
}

/* Heads read (once each) and prefetched ahead of their walks, per round. */
#define SPLIT_POP_AHEAD 16

static unsigned int split_pop(struct virtq *vq, struct virtq_elem *const *elems, unsigned int n)
{
	struct virtq_split_state *s = &vq->split;
	uint16_t mask = vq->num - 1, heads[SPLIT_POP_AHEAD];
	unsigned int done = 0;

	/* Only touch the driver's index when we have used up the last one. */
	if (s->last_avail_idx == s->shadow_avail_idx && split_read_avail_idx(vq) <= 0)
		return 0;
	if (n > (uint16_t)(s->shadow_avail_idx - s->last_avail_idx))
		n = (uint16_t)(s->shadow_avail_idx - s->last_avail_idx);

	while (done < n) {
		unsigned int k, m = n - done < SPLIT_POP_AHEAD ? n - done : SPLIT_POP_AHEAD;

		/*
		 * Read each head once (the driver may rewrite the slot behind
		 * our back) and start pulling in its first descriptor: those
		 * lines were just written on the driver's core, and walking
		 * the chains one by one would wait for each in turn.  The
		 * prefetch is only a hint, so it is aimed at head & mask; the
		 * range check comes before the walk uses the head.
		 */
		for (k = 0; k < m; k++) {
			heads[k] = vq_read16(&s->avail->ring[(s->last_avail_idx + k) & mask]);
			prefetch(&s->desc[heads[k] & mask]);
		}
		for (k = 0; k < m; k++) {
			struct virtq_elem *elem = elems[done];
			int r;

			if (unlikely(heads[k] >= vq->num)) {
				virtq_set_broken(vq, VIRTQ_ERR_HEAD, "avail ring head");
				return done;
			}
			virtq_elem_reset(elem);
			r = split_walk(vq, elem, heads[k]);
			if (unlikely(r < 0))
				return done;
			elem->id = heads[k];
			elem->ndescs = (uint16_t)r;
			s->last_avail_idx++;
			done++;
		}
	}
	return done;
}

static void split_fill(struct virtq *vq, const struct virtq_elem *elem, uint32_t len)
{
	struct virtq_split_state *s = &vq->split;
	uint16_t slot = s->used_idx & (vq->num - 1);
	struct vring_used_elem *u = &s->used->ring[slot];

	/*
	 * Written straight into the ring: the driver reads no entry at or
	 * beyond used->idx, so the entry is private until flush publishes it.
	 */
	vq_write32(&u->id, elem->id);
	vq_write32(&u->len, len);
	split_log_used(vq, offsetof(struct vring_used, ring) + slot * sizeof(*u), sizeof(*u));
	s->used_idx++;
}

static void split_flush(struct virtq *vq)
{
	struct virtq_split_state *s = &vq->split;
	uint16_t old = s->published_used_idx, new_idx = s->used_idx;

	if (old == new_idx)
		return;
	/*
	 * Release: every entry fill wrote is visible before the index that
	 * exposes it; pairs with the driver's read barrier after it loads
	 * used->idx (2.7.8, 2.7.14).  One store per batch.
	 */
	vq_store_release16(&s->used->idx, new_idx);
	/* After the store it covers: the log bit must not precede the data. */
	split_log_used(vq, offsetof(struct vring_used, idx), sizeof(uint16_t));
	s->published_used_idx = new_idx;
	/*
	 * If this batch carried the index past signalled_used, the window
	 * since the last decision is 2^16 or more and vring_need_event() can
	 * no longer tell whether used_event was crossed: notify next time.
	 */
	if ((uint16_t)(new_idx - s->signalled_used) < (uint16_t)(new_idx - old))
		s->signalled_used_valid = false;
}

static int split_should_notify(struct virtq *vq)
{
	struct virtq_split_state *s = &vq->split;
	uint16_t old = s->signalled_used, new_idx = s->published_used_idx;
	bool valid = s->signalled_used_valid;

	s->signalled_used = new_idx;
	s->signalled_used_valid = true;
	if (valid && old == new_idx)
		return -1;

	if (!vq->event_idx)
		return !(vq_read16(&s->avail->flags) & VRING_AVAIL_F_NO_INTERRUPT);
	/*
	 * 2.7.7.2: notify if the used index stepped over used_event since the
	 * last decision, i.e. used_event is in [old, new).
	 */
	return !valid ||
	       vring_need_event(vq_read16(vring_used_event(s->avail, vq->num)), new_idx, old);
}

static bool split_set_notify(struct virtq *vq, bool enable)
{
	struct virtq_split_state *s = &vq->split;
	uint16_t flags;

	if (vq->event_idx) {
		/*
		 * 2.7.10: with EVENT_IDX the driver ignores used->flags and
		 * kicks when its index passes avail_event.  Disabling writes
		 * nothing: a stale avail_event costs at most one kick, then
		 * the driver is past it and stays quiet.
		 */
		if (!enable || s->avail_event == s->shadow_avail_idx)
			return false;
		s->avail_event = s->shadow_avail_idx;
		vq_write16(vring_avail_event(s->used, vq->num), s->avail_event);
		split_log_avail_event(vq);
		return true;
	}
	flags = enable ? 0 : VRING_USED_F_NO_NOTIFY;
	if (flags == s->used_flags)
		return false;
	s->used_flags = flags;
	vq_write16(&s->used->flags, flags);
	split_log_used(vq, offsetof(struct vring_used, flags), sizeof(uint16_t));
	return true;
}

static bool split_avail_empty(struct virtq *vq)
{
	struct virtq_split_state *s = &vq->split;

	if (s->shadow_avail_idx != s->last_avail_idx)
		return false;
	return split_read_avail_idx(vq) <= 0;
}

static uint16_t split_get_base(const struct virtq *vq)
{
	return vq->split.last_avail_idx;
}

void virtq_split_resume_used(struct virtq *vq, uint16_t used_idx)
{
	struct virtq_split_state *s = &vq->split;

	s->used_idx = s->published_used_idx = used_idx;
	s->signalled_used = used_idx;
	s->signalled_used_valid = false;
}

int virtq_split_walk_head(struct virtq *vq, struct virtq_elem *elem, uint16_t head)
{
	int r;

	if (head >= vq->num)
		return virtq_set_broken(vq, VIRTQ_ERR_HEAD, "head to start again");
	virtq_elem_reset(elem);
	r = split_walk(vq, elem, head);
	if (r < 0)
		return r;
	elem->id = head;
	elem->ndescs = (uint16_t)r;
	return 0;
}

const struct virtq_layout_ops virtq_split_layout = {
	.init = split_init,
	.pop = split_pop,
	.fill = split_fill,
	.flush = split_flush,
	.should_notify = split_should_notify,
	.set_notify = split_set_notify,
	.avail_empty = split_avail_empty,
	.get_base = split_get_base,
};
