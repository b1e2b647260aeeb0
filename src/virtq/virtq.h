/* SPDX-License-Identifier: MIT */
/*
 * virtq.h - the device side of a virtqueue (the host end, as in QEMU's
 * virtqueue_pop / fill / flush / notify), split and packed layouts.
 *
 * The driver (guest or front-end) is untrusted.  Every chain is walked with
 * bounds on its length and on the iovecs it produces, every address is
 * translated through the queue's memory map and must lie inside one region,
 * and every descriptor is copied out of shared memory once, then validated,
 * then used.  A chain that breaks a rule makes virtq_pop() return an error,
 * marks the queue broken (the device should then set NEEDS_RESET) and logs
 * one line naming the rule; nothing outside mapped memory is read or
 * written.
 *
 * Typical use, one thread per queue:
 *
 *	while ((r = virtq_pop(vq, &req->elem)) > 0)
 *		submit(req);			// completes later, any order
 *	...
 *	virtq_fill(vq, &req->elem, written);	// once per completion
 *	virtq_flush(vq);			// once per burst
 *	if (virtq_should_notify(vq))
 *		eventfd_write(callfd, 1);
 *
 * A queue is not thread safe: pop/fill/flush/notify for one queue happen on
 * one thread (or under the caller's lock).
 */
#ifndef VHOSTD_VIRTQ_VIRTQ_H
#define VHOSTD_VIRTQ_VIRTQ_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "memmap.h"
#include "ring.h"

/* Why a queue was marked broken (named like vringh's refusals). */
enum virtq_error {
	VIRTQ_OK = 0,
	VIRTQ_ERR_AVAIL_IDX,	/* avail index ran ahead by more than the queue size */
	VIRTQ_ERR_HEAD,		/* head / buffer id out of range */
	VIRTQ_ERR_ADDR,		/* buffer outside every region, or straddling two */
	VIRTQ_ERR_LEN_OVERFLOW,	/* total chain length overflows 32 bits */
	VIRTQ_ERR_CHAIN_LONG,	/* more descriptors than the queue (or table) holds: a loop */
	VIRTQ_ERR_NESTED_INDIRECT, /* indirect descriptor inside an indirect table */
	VIRTQ_ERR_INDIRECT_LEN,	/* table length zero or not a multiple of 16 */
	VIRTQ_ERR_INDIRECT_NEXT, /* INDIRECT combined with NEXT (2.7.5.3.1) */
	VIRTQ_ERR_INDIRECT_FEATURE, /* INDIRECT used without VIRTIO_RING_F_INDIRECT_DESC */
	VIRTQ_ERR_ORDER,	/* a readable descriptor after a writable one */
	VIRTQ_ERR_TOO_MANY_IOV,	/* chain needs more iovecs than the element holds */
	VIRTQ_ERR_NO_MAP,	/* no memory map installed */
	VIRTQ_ERR_USED_ID,	/* fill() of an id that is not in flight */
	VIRTQ_ERR__COUNT
};

/* Human-readable name for logs and tests. */
const char *virtq_strerror(enum virtq_error err);

/*
 * One popped chain.  The caller owns the iovec storage (embed it in a
 * preallocated request: no allocation per I/O).  iov[0 .. out_num) are the
 * device-readable buffers, iov[out_num .. out_num + in_num) the writable
 * ones, in chain order.
 */
struct virtq_elem {
	uint16_t id;		/* split: head index; packed: buffer id */
	uint16_t ndescs;	/* ring slots the chain used (packed: used-ring step) */
	unsigned int out_num;
	unsigned int in_num;
	uint32_t out_len;	/* sum of readable lengths */
	uint32_t in_len;	/* sum of writable lengths */
	unsigned int max_iov;	/* capacity of iov[] */
	struct iovec *iov;
};

static inline void virtq_elem_init(struct virtq_elem *elem, struct iovec *iov,
				   unsigned int max_iov)
{
	elem->iov = iov;
	elem->max_iov = max_iov;
	elem->out_num = elem->in_num = 0;
}

/* Where the ring lives (host pointers, already translated) and how to walk it. */
struct virtq_config {
	uint16_t num;		/* queue size: split power of two; packed 1..32768 */
	uint64_t features;	/* negotiated virtio feature bits */
	void *desc;		/* split: vring_desc[num]; packed: vring_packed_desc[num] */
	void *driver_area;	/* split: vring_avail; packed: driver event suppression */
	void *device_area;	/* split: vring_used; packed: device event suppression */
	/*
	 * Where to resume (vhost-user SET_VRING_BASE): split, the next avail
	 * index; packed, bits 0..14 the next avail slot, bit 15 its wrap
	 * counter.  Used index starts equal to it (the ring must be idle).
	 */
	uint16_t base;
	struct memmap *mem;	/* borrowed: virtq_init takes its own reference */
	const char *name;	/* for log lines, e.g. "vda:q0" */
};

struct virtq;

/* Split/packed dispatch; one const table per layout. */
struct virtq_layout_ops {
	int (*pop)(struct virtq *vq, struct virtq_elem *elem);
	void (*fill)(struct virtq *vq, const struct virtq_elem *elem, uint32_t len);
	void (*flush)(struct virtq *vq);
	bool (*should_notify)(struct virtq *vq);
	bool (*enable_notify)(struct virtq *vq);
	void (*disable_notify)(struct virtq *vq);
	bool (*avail_empty)(struct virtq *vq);
	uint16_t (*get_base)(const struct virtq *vq);
};

struct virtq_split_state {
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t last_avail_idx;	/* next avail entry to consume */
	uint16_t shadow_avail_idx;	/* last avail->idx we read */
	uint16_t used_idx;		/* next used entry to write (private) */
	uint16_t published_used_idx;	/* value last stored to used->idx */
	uint16_t signalled_used;	/* used idx at the last notification */
	bool signalled_used_valid;
};

struct virtq_packed_state {
	struct vring_packed_desc *desc;
	struct vring_packed_desc_event *driver_event;
	struct vring_packed_desc_event *device_event;
	uint16_t last_avail_idx;	/* next slot to look at for available buffers */
	bool avail_wrap;		/* its wrap counter */
	uint16_t used_idx;		/* next slot to write a used element */
	bool used_wrap;
	/* First used slot written since the last flush: its flags go last. */
	uint16_t batch_head_idx;
	uint16_t batch_head_flags;
	uint16_t batch_count;
	uint16_t signalled_used;	/* used_idx at the last notification */
	bool signalled_used_wrap;
	bool signalled_used_valid;
};

struct virtq {
	const struct virtq_layout_ops *ops;
	const char *name;
	uint16_t num;
	bool event_idx;
	bool indirect;
	bool notify_on_empty;
	bool broken;
	enum virtq_error error;
	struct memmap *mem;	/* referenced; see virtq_set_memmap() */
	uint16_t inflight;	/* popped, not yet filled */
	union {
		struct virtq_split_state split;
		struct virtq_packed_state packed;
	};
	/* counters for statistics and tests */
	uint64_t nr_popped;
	uint64_t nr_notify_suppressed;
	uint64_t nr_notified;
};

/* Set up a device-side queue; -EINVAL for a bad size or layout. */
int virtq_init(struct virtq *vq, const struct virtq_config *cfg);

/* Drop the queue's memory-map reference; the rings are not touched. */
void virtq_destroy(struct virtq *vq);

/* Install a new memory map (takes a reference, drops the old one). */
void virtq_set_memmap(struct virtq *vq, struct memmap *mem);

/*
 * Pop the next available chain into @elem.  Returns 1 with @elem filled,
 * 0 if the ring is empty, or -EIO if the chain is hostile (queue now broken)
 * or the queue was already broken.
 */
int virtq_pop(struct virtq *vq, struct virtq_elem *elem);

/* Stage a completion: @len bytes were written to @elem's writable buffers. */
void virtq_fill(struct virtq *vq, const struct virtq_elem *elem, uint32_t len);

/* Publish every staged completion to the driver with one index update. */
void virtq_flush(struct virtq *vq);

/* fill + flush of one element. */
void virtq_push(struct virtq *vq, const struct virtq_elem *elem, uint32_t len);

/*
 * After a flush: does the driver want an interrupt now?  Honours
 * VRING_AVAIL_F_NO_INTERRUPT, used_event (EVENT_IDX) and the packed driver
 * event suppression structure.  Counts the decision.
 */
bool virtq_should_notify(struct virtq *vq);

/*
 * Ask the driver for kicks again (clear NO_NOTIFY / write avail_event /
 * enable the device event structure).  Returns true if buffers became
 * available meanwhile, so the caller polls again instead of sleeping: no
 * kick is lost.
 */
bool virtq_enable_notify(struct virtq *vq);

/* Tell the driver not to kick (we are polling). */
void virtq_disable_notify(struct virtq *vq);

/* True if the driver has made nothing new available. */
bool virtq_avail_empty(struct virtq *vq);

/* Resume point for GET_VRING_BASE (packed: wrap counter in bit 15). */
uint16_t virtq_get_base(const struct virtq *vq);

/* Mark broken with a reason; logs one line. Returns -EIO for tail calls. */
int virtq_set_broken(struct virtq *vq, enum virtq_error err, const char *detail);

static inline bool virtq_is_broken(const struct virtq *vq)
{
	return vq->broken;
}

/* Copy helpers between an iovec array and a flat buffer; return bytes copied. */
size_t iov_to_buf(const struct iovec *iov, unsigned int cnt, size_t offset, void *buf,
		  size_t len);
size_t iov_from_buf(const struct iovec *iov, unsigned int cnt, size_t offset,
		    const void *buf, size_t len);
size_t iov_length(const struct iovec *iov, unsigned int cnt);

#endif /* VHOSTD_VIRTQ_VIRTQ_H */
