/* SPDX-License-Identifier: MIT */
/*
 * driver_priv.h - what driver.c, driver_split.c and driver_packed.c share:
 * the queue struct, the per-layout ops table and the bookkeeping helpers.
 * Not a public header: users see only the opaque handle in virtq_drv.h.
 *
 * Like Linux's virtio_ring.c the driver never reads back what it wrote to
 * ring memory: the device may scribble on it.  The free list, chain lengths
 * and tokens live in private memory (desc_state, next[]), allocated once at
 * virtq_drv_new().
 */
#ifndef VHOSTD_VIRTQ_DRIVER_PRIV_H
#define VHOSTD_VIRTQ_DRIVER_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include "virtq_drv.h"

struct virtq_drv;

/*
 * One layout (split or packed).  driver.c has already checked
 * everything a caller can get wrong, so add() cannot fail.
 */
struct virtq_drv_ops {
	/* Ring bytes for @num entries (indirect tables follow, 16-aligned). */
	size_t (*ring_size)(uint16_t num);
	/* Point the layout at vq->mem and set the initial ring state. */
	void (*init)(struct virtq_drv *vq);
	void (*get_addrs)(const struct virtq_drv *vq, struct virtq_drv_addrs *addrs);
	/*
	 * Write one chain; @indirect: all of @sgs go into one table.  Publish
	 * it too, unless vq->batch_publish (then publish() does, later).
	 */
	void (*add)(struct virtq_drv *vq, const struct virtq_sg *sgs, unsigned int out,
		    unsigned int total, void *token, bool indirect);
	/* Batch publish: expose every chain added since the last call, one store. */
	void (*publish)(struct virtq_drv *vq);
	/* After vq_mb(): does the device want a kick for @added new entries? */
	bool (*need_kick)(struct virtq_drv *vq, unsigned int added);
	/* Next used element, read once; false if none (or the queue broke). */
	bool (*next_used)(struct virtq_drv *vq, uint16_t *id, uint32_t *len);
	/* Step past the used element just taken, whose chain held @ndescs. */
	void (*consumed)(struct virtq_drv *vq, uint16_t ndescs);
	void (*disable_cb)(struct virtq_drv *vq);
	unsigned int (*enable_cb_prepare)(struct virtq_drv *vq);
	/* After vq_mb(): anything used since enable_cb_prepare() said @pos? */
	bool (*poll)(const struct virtq_drv *vq, unsigned int pos);
	bool (*enable_cb_delayed)(struct virtq_drv *vq);
	/* detach_unused_buf() took back a chain the device never saw used. */
	void (*unused_detached)(struct virtq_drv *vq);
};

extern const struct virtq_drv_ops virtq_drv_split_ops;
extern const struct virtq_drv_ops virtq_drv_packed_ops;

/*
 * Private state of one in-flight chain, indexed by its head descriptor
 * (split) or its buffer id (packed).  The indirect table is tied to the same
 * index, so it needs no pointer here.
 */
struct virtq_drv_desc_state {
	void *token;	 /* NULL: not in flight */
	uint16_t ndescs; /* ring descriptors the chain holds */
	uint16_t last;	 /* its last free-list entry, for O(1) detach */
};

struct virtq_drv_split {
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t avail_idx_shadow;   /* next avail index: chains added so far */
	uint16_t avail_idx_public;   /* last value stored to avail->idx */
	uint16_t avail_flags_shadow; /* VRING_AVAIL_F_NO_INTERRUPT wanted? */
};

struct virtq_drv_packed {
	struct vring_packed_desc *desc;
	struct vring_packed_desc_event *driver; /* ours: used buffer notifications */
	struct vring_packed_desc_event *device; /* the device's: kicks */
	uint16_t next_avail;			/* next slot to fill */
	uint16_t avail_used_flags;		/* AVAIL/USED bits marking this lap's slots */
	bool avail_wrap;
	bool used_wrap;
	uint16_t event_flags_shadow; /* last value stored to driver->flags */
	/*
	 * Batch publish: the first unpublished chain's head slot and the
	 * flags it is waiting for; the chains after it are already marked
	 * available, and are seen only once this head is.
	 */
	bool pending;
	uint16_t pending_head;
	uint16_t pending_flags;
};

struct virtq_drv {
	const struct virtq_drv_ops *ops;
	uint16_t num;
	bool event_idx;		   /* VIRTIO_RING_F_EVENT_IDX negotiated */
	bool indirect;		   /* VIRTIO_RING_F_INDIRECT_DESC and tables present */
	bool broken;		   /* the device broke the protocol: stop */
	bool batch_publish;	   /* add_sgs() leaves publishing to kick_prepare() */
	unsigned int indirect_max; /* descriptors per indirect table */

	void *mem;	       /* device-visible block: rings, then tables */
	uint64_t mem_dma;      /* its address as the device knows it */
	void *indirect_tables; /* num tables of indirect_max descriptors */

	unsigned int num_free;	/* free ring descriptors */
	uint16_t free_head;	/* free list through next[]: take from the head, */
	uint16_t free_tail;	/* give back at the tail (valid while num_free) */
	unsigned int num_added; /* entries published since the last kick_prepare */
	uint16_t last_used;	/* split: used index; packed: next used slot */

	union {
		struct virtq_drv_split split;
		struct virtq_drv_packed packed;
	};

	uint16_t *next; /* free-list links, private (Linux's desc_extra) */
	struct virtq_drv_desc_state state[];
};

/* Device-visible address of a pointer into vq->mem. */
static inline uint64_t virtq_drv_dma(const struct virtq_drv *vq, const void *p)
{
	return vq->mem_dma + (uint64_t)((const char *)p - (const char *)vq->mem);
}

/* The indirect table that belongs to head (split) or buffer id (packed) @slot. */
static inline void *virtq_drv_indirect_table(const struct virtq_drv *vq, uint16_t slot)
{
	return (char *)vq->indirect_tables + (size_t)slot * vq->indirect_max * 16;
}

/* Descriptor flag for buffer @i of a chain whose first @out are device-readable. */
static inline uint16_t virtq_drv_sg_flags(unsigned int i, unsigned int out)
{
	return i < out ? 0 : VRING_DESC_F_WRITE;
}

/* Take @n free-list entries for @token; returns the first (the chain's index). */
uint16_t virtq_drv_take(struct virtq_drv *vq, unsigned int n, void *token);

/* Mark the queue unusable after a protocol violation; logs once. */
void virtq_drv_set_broken(struct virtq_drv *vq, const char *why, unsigned int val);

#endif /* VHOSTD_VIRTQ_DRIVER_PRIV_H */
