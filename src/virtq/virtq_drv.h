/* SPDX-License-Identifier: MIT */
/*
 * virtq_drv.h - the driver side of a virtqueue (what a guest kernel does, as
 * in Linux's drivers/virtio/virtio_ring.c), split and packed layouts.
 *
 * Used by our vhost-user front-end, vhost-bench and the ring tests.  The
 * caller gives one block of memory that the device can see (shared memfd
 * memory) for the rings and the indirect tables, plus the address the device
 * knows that block by; buffers are passed as device-visible addresses.  The
 * per-descriptor bookkeeping (tokens, chain lengths) lives in private memory
 * allocated once at init, never in the ring.
 *
 *	virtq_drv_add_sgs(vq, sgs, nout, nin, req);
 *	if (virtq_drv_kick_prepare(vq))
 *		eventfd_write(kickfd, 1);
 *	...
 *	while ((req = virtq_drv_get_buf(vq, &len)))
 *		complete(req, len);
 *
 * When the device sees a buffer: by default add_sgs() publishes each chain
 * at once (avail->idx, or the packed head's flags), as Linux does, so a
 * polling device may start on it before kick_prepare().  After
 * virtq_drv_set_batch_publish(vq, true), add_sgs() only writes the chain and
 * the buffers become visible to the device at the next kick_prepare(), all
 * with one store (DPDK's virtio-user publishes once per burst the same
 * way): fewer cache-line bounces against a polling device, but nothing is
 * seen until kick_prepare(), which the caller must then call after every
 * burst whether or not it means to kick.
 *
 * Not thread safe: one queue, one thread (or the caller's lock).
 */
#ifndef VHOSTD_VIRTQ_VIRTQ_DRV_H
#define VHOSTD_VIRTQ_VIRTQ_DRV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ring.h"

/* One buffer: a device-visible address and a length. */
struct virtq_sg {
	uint64_t addr;
	uint32_t len;
};

/* Where the rings ended up, for vhost-user SET_VRING_ADDR / SET_VRING_BASE. */
struct virtq_drv_addrs {
	uint64_t desc;		/* device-visible addresses */
	uint64_t driver_area;	/* split: avail ring; packed: driver event struct */
	uint64_t device_area;	/* split: used ring; packed: device event struct */
};

struct virtq_drv;

/*
 * Bytes of device-visible memory a queue needs: rings plus @indirect_max
 * descriptors of indirect table for each of @num slots (0: no indirect).
 * Layout, from offset 0: split: descriptors (16-aligned), avail ring, used
 * ring (4-aligned); packed: descriptors, driver event struct, device event
 * struct (4-aligned); then the tables at the next multiple of 16.  Returns
 * 0 for a size the spec does not allow (0, over 32768, split not a power of
 * two) or @indirect_max over 32768.
 */
size_t virtq_drv_mem_size(uint16_t num, bool packed, unsigned int indirect_max);

/*
 * Create a driver-side queue of @num entries over @mem (virtq_drv_mem_size()
 * bytes, zeroed here), which the device knows at address @mem_dma; both
 * must be 16-byte aligned.  @features are the negotiated bits (RING_PACKED,
 * EVENT_IDX, INDIRECT_DESC).  Returns NULL with errno set on a bad size or
 * alignment (EINVAL) or allocation failure (ENOMEM).
 */
struct virtq_drv *virtq_drv_new(uint16_t num, uint64_t features, void *mem, uint64_t mem_dma,
				unsigned int indirect_max);
void virtq_drv_free(struct virtq_drv *vq);

void virtq_drv_get_addrs(const struct virtq_drv *vq, struct virtq_drv_addrs *addrs);

/*
 * Expose @out_sgs device-readable then @in_sgs device-writable buffers as one
 * chain carrying @token (non-NULL).  Uses the slot's indirect table when the
 * feature was negotiated and 1 < buffers <= indirect_max.  Returns 0, or
 * -ENOSPC when too few descriptors are free, -EINVAL for a bad shape (no
 * buffers, more than the queue size, over 4 GiB in total, NULL token), -EIO
 * once the queue is broken.
 */
int virtq_drv_add_sgs(struct virtq_drv *vq, const struct virtq_sg *sgs, unsigned int out_sgs,
		      unsigned int in_sgs, void *token);

/*
 * Publish what was added (with batch publish: make it visible now); true if
 * the device wants a kick (avail_event / NO_NOTIFY / its event struct).
 */
bool virtq_drv_kick_prepare(struct virtq_drv *vq);

/*
 * Batch publish on or off (default off): see the top of this file.  Turning
 * it off publishes anything still pending.
 */
void virtq_drv_set_batch_publish(struct virtq_drv *vq, bool on);

/*
 * Next completed buffer's token and used length (@len may be NULL), or NULL;
 * detaches its chain.  A used id that is out of range or not in flight
 * marks the queue broken and returns NULL.
 */
void *virtq_drv_get_buf(struct virtq_drv *vq, uint32_t *len);

/* The device broke the ring protocol; the queue must be reset. */
bool virtq_drv_is_broken(const struct virtq_drv *vq);

/* Ask the device not to interrupt (best effort, like Linux). */
void virtq_drv_disable_cb(struct virtq_drv *vq);

/*
 * Re-enable interrupts.  Returns false if buffers are already pending (the
 * caller must poll again), true if it is safe to wait for an interrupt.
 */
bool virtq_drv_enable_cb(struct virtq_drv *vq);

/* Split form of enable_cb: returns an opaque position for virtq_drv_poll(). */
unsigned int virtq_drv_enable_cb_prepare(struct virtq_drv *vq);

/* True if buffers were used since virtq_drv_enable_cb_prepare() returned @pos. */
bool virtq_drv_poll(struct virtq_drv *vq, unsigned int pos);

/*
 * Re-enable interrupts, but only after about 3/4 of the outstanding buffers
 * are used (EVENT_IDX batching).  Same return as virtq_drv_enable_cb().
 */
bool virtq_drv_enable_cb_delayed(struct virtq_drv *vq);

/* After the device stopped: take back one never-used buffer's token, or NULL. */
void *virtq_drv_detach_unused_buf(struct virtq_drv *vq);

/* Descriptors free for add_sgs. */
unsigned int virtq_drv_num_free(const struct virtq_drv *vq);

/* Queue size, and whether the layout is packed. */
uint16_t virtq_drv_size(const struct virtq_drv *vq);
bool virtq_drv_is_packed(const struct virtq_drv *vq);

#endif /* VHOSTD_VIRTQ_VIRTQ_DRV_H */
