// SPDX-License-Identifier: MIT
/*
 * packed_resync.c - find a packed ring's resume position from its
 * descriptors, for a device that was not stopped cleanly.
 *
 * A split ring tells a new back-end where to resume (used->idx), and QEMU
 * restores last_avail_idx from it when GET_VRING_BASE cannot be answered.
 * A packed ring has no such index in shared memory, and QEMU 7.2's
 * virtio_queue_packed_restore_last_avail_idx() does nothing, so after a
 * back-end crash QEMU hands the next back-end the base of the last clean
 * stop - usually the start of the session (0 with wrap 1).  Starting
 * there, the device either finds nothing available (the slot was used in
 * this lap) or the ring's next lap, and the queue hangs.
 *
 * A device that completes in order, one slot per list, leaves the ring in
 * a shape the flags alone describe: the slots it has used carry AVAIL ==
 * USED, and the ones the driver made available since (including those the
 * dead back-end had popped but not completed) carry AVAIL != USED, in one
 * contiguous run that starts at the device's position.  That is the only
 * used->available edge in the ring, and the run's first slot's AVAIL bit
 * is the wrap counter to resume with.  Without any available slot the
 * position is where the used slots' wrap bit changes (the driver's next
 * slot, a lap boundary); with every slot available, where their AVAIL bit
 * changes.  Lists of several slots break the shape: a used list leaves its
 * tail slots looking available.  Linux's virtio_ring uses one slot per
 * list whenever indirect descriptors are negotiated (more than one
 * segment goes indirect) and always for single-buffer lists, which is
 * every virtio-net rx buffer with mergeable buffers.  A ring that does not
 * have the shape (a pending slot with NEXT, two used->available edges) is
 * refused and the caller keeps the front-end's base.
 *
 * One more shape is a flush the crash cut short: the device writes a
 * batch's used elements and the flags of every slot but the first, whose
 * flags go last and expose the whole batch.  The ring then shows a pending
 * slot right after this lap's used run, and after it slots already used in
 * this lap.  An in-order device writes a slot's element only after the
 * previous slot's, so the pending slot's id and len are the batch head's:
 * virtq_packed_resync() stores its flags, publishing the batch as the dead
 * device meant to, and the ring has the plain shape again.  (Left as it
 * is, the next batch would hang behind it, or be refused as two edges.)
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "virtq.h"

static bool slot_pending(uint16_t flags)
{
	return !(flags & VRING_PACKED_DESC_F_AVAIL) != !(flags & VRING_PACKED_DESC_F_USED);
}

static bool slot_avail_bit(uint16_t flags)
{
	return flags & VRING_PACKED_DESC_F_AVAIL;
}

int virtq_packed_find_base(const struct vring_packed_desc *desc, uint16_t num, uint16_t *base)
{
	unsigned int i, edges = 0, pending = 0, at = 0, change = 0;
	uint16_t *flags;
	bool wrap;

	if (!num)
		return -EINVAL;
	flags = malloc(num * sizeof(*flags));
	if (!flags)
		return -ENOMEM;
	/* One snapshot: the driver may go on adding while we look. */
	for (i = 0; i < num; i++)
		flags[i] = vq_load_acquire16(&desc[i].flags);
	for (i = 0; i < num; i++) {
		uint16_t prev = flags[(i + num - 1) % num];

		if (!slot_pending(flags[i]))
			continue;
		pending++;
		if (flags[i] & VRING_DESC_F_NEXT) {
			free(flags);
			return -EPROTO; /* a list of several slots */
		}
		if (!slot_pending(prev)) {
			edges++;
			at = i;
		}
	}
	if (edges > 1) {
		free(flags);
		return -EPROTO;
	}
	if (edges == 1) {
		wrap = slot_avail_bit(flags[at]);
	} else {
		/*
		 * All used or all available: the lap boundary is where the
		 * AVAIL bit changes; none means the lap began at slot 0.
		 */
		for (i = 1; i < num && !change; i++)
			if (slot_avail_bit(flags[i]) != slot_avail_bit(flags[0]))
				change = i;
		at = change;
		wrap = slot_avail_bit(flags[at]);
		/*
		 * All used, one lap: the device went round and its wrap
		 * counter flipped at the end (a fresh ring, all zero, gives
		 * slot 0 with wrap 1).  Used slots before the change are this
		 * lap's, so their bit is the counter at the change.
		 */
		if (!pending)
			wrap = change ? slot_avail_bit(flags[0]) : !slot_avail_bit(flags[0]);
	}
	free(flags);
	*base = (uint16_t)(at | (uint16_t)wrap << VIRTQ_PACKED_WRAP_BIT);
	return 0;
}

/* The head of a flush cut short (above), if there is one: its used flags stored. */
static void packed_finish_flush(struct virtq *vq)
{
	struct vring_packed_desc *desc = vq->packed.desc;
	uint16_t num = vq->num;

	/* A batch that crossed the ring's end is not recognised (refused). */
	for (unsigned int i = 0; i + 1 < num; i++) {
		uint16_t f = vq_load_acquire16(&desc[i].flags);
		uint16_t prev = vq_load_acquire16(&desc[(i + num - 1) % num].flags);
		uint16_t next = vq_load_acquire16(&desc[i + 1].flags);
		uint16_t used;
		bool w;

		if (!slot_pending(f) || slot_pending(prev) || slot_pending(next))
			continue;
		w = slot_avail_bit(f);
		/* The used run before it is this lap's (the last lap's at slot 0)... */
		if (slot_avail_bit(prev) != (i ? w : !w))
			continue;
		/* ... and so is the slot after it: written after it, in order. */
		if (slot_avail_bit(next) != w || (f & VRING_DESC_F_NEXT))
			continue;
		used = w ? VRING_PACKED_DESC_F_AVAIL | VRING_PACKED_DESC_F_USED : 0;
		if (vq_read32(&desc[i].len))
			used |= VRING_DESC_F_WRITE;
		vq_store_release16(&desc[i].flags, used);
		virtq_log_ring(vq, vq->log_desc_gpa, (uint64_t)i * sizeof(*desc), sizeof(*desc));
		return;
	}
}

int virtq_packed_resync(struct virtq *vq, uint16_t *found)
{
	struct virtq_packed_state *p = &vq->packed;
	struct virtq_config cfg = {
		.num = vq->num,
		.desc = p->desc,
		.driver_area = p->driver_event,
		.device_area = p->device_event,
	};
	int r;

	if (vq->ops != &virtq_packed_layout)
		return -EOPNOTSUPP;
	if (vq->inflight)
		return -EBUSY;
	packed_finish_flush(vq);
	r = virtq_packed_find_base(p->desc, vq->num, &cfg.base);
	if (r)
		return r;
	*found = cfg.base;
	if (cfg.base == virtq_get_base(vq))
		return 0;
	/* As virtq_init() would have, at the position the ring shows. */
	return vq->ops->init(vq, &cfg);
}
