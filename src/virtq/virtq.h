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
 *
 * Dirty-page logging (live migration, dirtylog.h).  A queue set up with a
 * log marks every byte it writes into guest memory: the used-ring entries,
 * index and event words at the ring's log addresses, and, in
 * virtq_fill(), every writable buffer of the completed chain, whole, as it
 * was popped (the device may have written any of it; len is not trusted to
 * say where).  So a device model needs no code for logging as long as it
 * writes guest memory only into the writable buffers of chains it then
 * fills, which is what a virtio device does.  Data goes before its bits,
 * and bits before the used index that publishes them.  Without a log the
 * cost is one predictable branch per pop and per fill.
 *
 * Kicks: a new queue asks the driver for kicks.  A device that polls calls
 * virtq_disable_notify() while it works and virtq_enable_notify() before it
 * sleeps (re-polling if that returns true).  With VIRTIO_RING_F_EVENT_IDX an
 * empty virtq_pop() also moves the event index to where it stopped, so a
 * device that never touches the notify calls still gets every kick it needs.
 */
#ifndef VHOSTD_VIRTQ_VIRTQ_H
#define VHOSTD_VIRTQ_VIRTQ_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/util.h"
#include "dirtylog.h"
#include "memmap.h"
#include "ring.h"

/* Why a queue was marked broken (named like vringh's refusals). */
enum virtq_error {
	VIRTQ_OK = 0,
	VIRTQ_ERR_AVAIL_IDX,	/* more made available than the queue holds (split: avail
				 * idx ahead by > num; packed: > num slots in flight) */
	VIRTQ_ERR_HEAD,		/* head / buffer id out of range */
	VIRTQ_ERR_ADDR,		/* buffer outside every region, or straddling two */
	VIRTQ_ERR_LEN_OVERFLOW,	/* total chain length overflows 32 bits */
	VIRTQ_ERR_CHAIN_LONG,	/* more descriptors than the queue (or table) holds: a loop */
	VIRTQ_ERR_NESTED_INDIRECT, /* indirect descriptor inside an indirect table */
	VIRTQ_ERR_INDIRECT_LEN,	/* table length zero, not a multiple of 16, > 32768 entries */
	VIRTQ_ERR_INDIRECT_NEXT, /* INDIRECT with NEXT (2.7.5.3.1); packed: in a list (2.8.19) */
	VIRTQ_ERR_INDIRECT_FEATURE, /* INDIRECT used without VIRTIO_RING_F_INDIRECT_DESC */
	VIRTQ_ERR_ORDER,	/* a readable descriptor after a writable one */
	VIRTQ_ERR_TOO_MANY_IOV,	/* chain needs more iovecs than the element holds */
	VIRTQ_ERR_NO_MAP,	/* no memory map installed */
	VIRTQ_ERR_USED_ID,	/* fill() of an id that is not in flight */
	VIRTQ_ERR_ID_IN_FLIGHT,	/* driver made available an id we have not completed */
	VIRTQ_ERR__COUNT
};

/* Human-readable name for logs and tests. */
const char *virtq_strerror(enum virtq_error err);

/*
 * One popped chain.  The caller owns the iovec storage (embed it in a
 * preallocated request: no allocation per I/O).  iov[0 .. out_num) are the
 * device-readable buffers, iov[out_num .. out_num + in_num) the writable
 * ones, in chain order.  Zero-length descriptors produce no iovec.
 *
 * A popped element holds a reference on the memory map its iovecs point
 * into (@mem); virtq_fill() drops it.  Every popped element must be filled
 * exactly once, even on a broken queue (fill is then only that release).
 */
struct virtq_desc_copy;

struct virtq_elem {
	uint16_t id;		/* split: head index; packed: buffer id */
	uint16_t ndescs;	/* ring slots the chain used (packed: used-ring step) */
	unsigned int out_num;
	unsigned int in_num;
	uint32_t out_len;	/* sum of readable lengths */
	uint32_t in_len;	/* sum of writable lengths */
	unsigned int max_iov;	/* capacity of iov[] */
	struct iovec *iov;
	struct memmap *mem;	/* referenced while in flight */
	/*
	 * Optional, capacity max_iov: while the queue logs, pop copies the
	 * writable iovecs here as walked, so a device model may narrow
	 * iov[] in place (skip a header, take a status byte) and fill still
	 * logs every writable byte.  NULL: fill logs the writable part of
	 * iov[] as it is then.
	 */
	struct iovec *log_iov;
	/*
	 * Optional, capacity the queue size: a packed pop copies the chain's
	 * descriptors here as walked (ring slots, not an indirect table's
	 * entries), so the in-flight region can keep them after the ring
	 * slots are overwritten by used elements (vhost-user/inflight.h).
	 * Split pops leave it alone (the table keeps a chain until it is used).
	 */
	struct virtq_desc_copy *descs;
};

static inline void virtq_elem_init(struct virtq_elem *elem, struct iovec *iov,
				   unsigned int max_iov)
{
	elem->iov = iov;
	elem->max_iov = max_iov;
	elem->out_num = elem->in_num = 0;
	elem->out_len = elem->in_len = 0;
	elem->mem = NULL;
	elem->log_iov = NULL;
	elem->descs = NULL;
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
	 * Both wrap counters start at 1 (2.8.1), so a fresh packed ring has
	 * base 0x8000, not 0.
	 */
	uint16_t base;
	struct memmap *mem;	/* borrowed: virtq_init takes its own reference */
	const char *name;	/* for log lines, e.g. "vda:q0" */
	/*
	 * Dirty-page logging: NULL, off; else borrowed, and it must stay
	 * mapped until the queue is destroyed.  With log_rings the ring's
	 * own writes are logged too (vhost-user's VHOST_VRING_F_LOG), at
	 * these guest-physical addresses: split, the used ring (vhost's
	 * log_guest_addr); packed, the device event area and the
	 * descriptor ring, where used elements are written.
	 */
	const struct dlog *log;
	bool log_rings;
	uint64_t log_device_gpa;
	uint64_t log_desc_gpa;
};

struct virtq;

/*
 * Split/packed dispatch; one const table per layout (device_split.c,
 * device_packed.c).  device.c does everything the two share: the broken
 * check, the in-flight ids and map references, the barriers, counting.
 */
struct virtq_layout_ops {
	/* Check @cfg's layout rules (size, base, alignment), set up, ask for kicks. */
	int (*init)(struct virtq *vq, const struct virtq_config *cfg);
	/*
	 * Walk up to @n chains into @elems (counts reset here; ids, ndescs
	 * and iovecs set).  Returns how many; stops early when the ring is
	 * empty or at a hostile chain (the queue is then broken and that
	 * chain is not counted).
	 */
	unsigned int (*pop)(struct virtq *vq, struct virtq_elem *const *elems, unsigned int n);
	/* Stage a used entry; @elem's id is known in flight, @len clamped. */
	void (*fill)(struct virtq *vq, const struct virtq_elem *elem, uint32_t len);
	/* Publish the staged entries with one release store. */
	void (*flush)(struct virtq *vq);
	/* After vq_mb(): -1 nothing published since last asked, 0 suppressed, 1 notify. */
	int (*should_notify)(struct virtq *vq);
	/* Write the kick-suppression state; true if ring memory changed. */
	bool (*set_notify)(struct virtq *vq, bool enable);
	bool (*avail_empty)(struct virtq *vq);
	uint16_t (*get_base)(const struct virtq *vq);
};

struct virtq_split_state {
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t last_avail_idx;	/* next avail entry to consume */
	uint16_t shadow_avail_idx;	/* last avail->idx we read (and checked) */
	uint16_t used_idx;		/* next used entry to write (private) */
	uint16_t published_used_idx;	/* value last stored to used->idx */
	uint16_t signalled_used;	/* published idx when should_notify last ran */
	bool signalled_used_valid;	/* false: we lost track, notify next time */
	uint16_t used_flags;		/* value last stored to used->flags */
	uint16_t avail_event;		/* value last stored to avail_event */
};

struct virtq_packed_state {
	struct vring_packed_desc *desc;
	struct vring_packed_desc_event *driver_event;
	struct vring_packed_desc_event *device_event;
	uint16_t last_avail_idx;	/* next slot to look at for available buffers */
	bool avail_wrap;		/* its wrap counter */
	uint16_t used_idx;		/* next slot to write a used element */
	bool used_wrap;
	uint16_t published_used_idx;	/* used_idx / used_wrap at the last flush */
	bool published_used_wrap;
	/* First used slot written since the last flush: its flags go last. */
	uint16_t batch_head_idx;
	uint16_t batch_head_flags;
	uint32_t batch_slots;		/* slots filled since the last flush */
	/*
	 * Slots published since should_notify last ran; saturates at num,
	 * which means "we lost track" (a full lap: notify unconditionally).
	 */
	uint16_t unsignalled;
	bool signalled_used_valid;
	uint32_t inflight_descs;	/* ring slots popped and not yet filled */
	uint32_t device_event_shadow;	/* value last stored to *device_event */
};

struct virtq {
	const struct virtq_layout_ops *ops;
	const char *name;
	uint16_t num;
	bool event_idx;
	bool indirect;
	bool notify_on_empty;
	bool notify_enabled;	/* kicks wanted (virtq_enable/disable_notify) */
	bool broken;
	enum virtq_error error;
	struct memmap *mem;	/* referenced; see virtq_set_memmap() */
	unsigned int mem_spare;	/* more references on mem, taken ahead for elements */
	unsigned int mem_hint;	/* region of mem the last buffer was in */
	uint16_t inflight;	/* popped, not yet filled */
	uint64_t *inflight_map;	/* bit per id: popped, not yet filled */
	const struct dlog *log;		/* buffers' dirty log; NULL: not logging */
	const struct dlog *log_ring;	/* the rings' own writes; NULL: not logged */
	uint64_t log_device_gpa;	/* see struct virtq_config */
	uint64_t log_desc_gpa;
	union {
		struct virtq_split_state split;
		struct virtq_packed_state packed;
	};
	/* counters for statistics and tests */
	uint64_t nr_popped;
	uint64_t nr_notify_suppressed;
	uint64_t nr_notified;
};

/*
 * Set up a device-side queue and ask the driver for kicks (writes the
 * device's suppression state).  -EINVAL for a bad size, base or ring
 * alignment; -ENOMEM.
 */
int virtq_init(struct virtq *vq, const struct virtq_config *cfg);

/* Drop the queue's memory-map reference and free; the rings are not touched. */
void virtq_destroy(struct virtq *vq);

/*
 * Install a new memory map (takes a reference, drops the old one; NULL
 * allowed).  Elements already popped keep their own map.
 */
void virtq_set_memmap(struct virtq *vq, struct memmap *mem);

/*
 * Pop the next available chain into @elem.  Returns 1 with @elem filled,
 * 0 if the ring is empty, or -EIO if the chain is hostile (queue now broken)
 * or the queue was already broken.
 */
int virtq_pop(struct virtq *vq, struct virtq_elem *elem);

/*
 * Pop up to @n chains, each into the element @elems[i] points to (set up
 * with virtq_elem_init()), with one broken/map check and, on a split ring,
 * one read of the driver's index for the burst.  Every chain gets exactly
 * the checks virtq_pop() applies.  Returns how many were popped (0: empty),
 * or -EIO if the queue was broken before the first.  A hostile chain ends
 * the burst: the ones before it are returned (fill them as usual), and the
 * next call says -EIO.
 */
int virtq_pop_batch(struct virtq *vq, struct virtq_elem *const *elems, unsigned int n);

/*
 * Split rings only: take the chain at descriptor @head as popped, without
 * consuming an avail entry - a chain that was in flight when a previous
 * back-end died (vhost-user/inflight.h), already counted in the base the
 * ring was started with.  Same checks and results as virtq_pop();
 * -EOPNOTSUPP on a packed ring.
 */
int virtq_pop_head(struct virtq *vq, struct virtq_elem *elem, uint16_t head);
/*
 * Packed rings only: take the chain whose @n ring descriptors were saved
 * in @descs (by a pop, elem->descs, kept in the in-flight region) as
 * popped, without consuming ring slots - its slots were consumed before
 * the back-end died and may hold used elements by now.  Walked with every
 * check virtq_pop() applies (the copy is as untrusted as the ring); it
 * counts @n slots as in flight, so its fill steps the used position by
 * @n.  Same results as virtq_pop(); -EOPNOTSUPP on a split ring.
 */
int virtq_pop_saved(struct virtq *vq, struct virtq_elem *elem,
		    const struct virtq_desc_copy *descs, unsigned int n);
/*
 * Right after virtq_init(): the used position is @used, not the base
 * (chains are still in flight across a back-end restart).  Split: used
 * index; packed: bits 0..14 the next used slot, bit 15 its wrap counter.
 */
void virtq_resume_used(struct virtq *vq, uint16_t used);

/*
 * Stage a completion: @len bytes were written to @elem's writable buffers
 * (clamped to elem->in_len).  Any order.  Drops @elem's map reference.
 * Completing an id that is not in flight breaks the queue (USED_ID).
 */
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
 * kick is lost.  Also true if the re-check found the driver's index to be
 * a lie: the queue is then broken and the next virtq_pop() says -EIO.
 */
bool virtq_enable_notify(struct virtq *vq);

/* Tell the driver not to kick (we are polling). */
void virtq_disable_notify(struct virtq *vq);

/* True if the driver has made nothing new available. */
bool virtq_avail_empty(struct virtq *vq);

/*
 * Packed rings (packed_resync.c): the resume position the descriptors'
 * flags show for a device that completes in order, one slot per list -
 * for a back-end restarted after a crash, when the front-end's base is
 * stale.  0 with *@base set; -EPROTO if the ring does not have that shape.
 */
int virtq_packed_find_base(const struct vring_packed_desc *desc, uint16_t num, uint16_t *base);
/*
 * Right after virtq_init() (nothing popped): move a packed ring to the
 * position virtq_packed_find_base() finds, stored in *@found.  0 (moved
 * or already there), -EPROTO (shape not recognised, position kept),
 * -EOPNOTSUPP on a split ring, -EBUSY with chains popped.
 */
int virtq_packed_resync(struct virtq *vq, uint16_t *found);

/* Resume point for GET_VRING_BASE (packed: wrap counter in bit 15). */
uint16_t virtq_get_base(const struct virtq *vq);

/* Mark broken with a reason; logs one line. Returns -EIO for tail calls. */
int virtq_set_broken(struct virtq *vq, enum virtq_error err, const char *detail)
	__attribute__((cold));

static inline bool virtq_is_broken(const struct virtq *vq)
{
	return vq->broken;
}

/* Is this queue logging dirty pages (a migration is running)? */
static inline bool virtq_logging(const struct virtq *vq)
{
	return unlikely(vq->log != NULL);
}

/*
 * For a device model that writes guest memory fill does not log (bytes
 * outside the writable buffers of the chain it completes, which virtio
 * never asks for): mark the first @len bytes of @iov, host pointers into
 * @elem's memory, dirty.  Call it after writing and before the fill.
 * Nothing when the queue does not log.
 */
void virtq_log_iov(const struct virtq *vq, const struct virtq_elem *elem, const struct iovec *iov,
		   unsigned int cnt, size_t len);

/* Ring writes: log [@off, @off + @len) of the ring part at guest-physical @base. */
static inline void virtq_log_ring(const struct virtq *vq, uint64_t base, uint64_t off, uint64_t len)
{
	if (unlikely(vq->log_ring))
		dlog_mark_gpa(vq->log_ring, base + off, len);
}

/* Copy helpers between an iovec array and a flat buffer; return bytes copied. */
size_t iov_to_buf(const struct iovec *iov, unsigned int cnt, size_t offset, void *buf,
		  size_t len);
size_t iov_from_buf(const struct iovec *iov, unsigned int cnt, size_t offset,
		    const void *buf, size_t len);
size_t iov_length(const struct iovec *iov, unsigned int cnt);
/*
 * Drop the first @n bytes of @iov (a request header): returns the new
 * start, *@cnt is updated and the first remaining entry shortened in place.
 */
struct iovec *iov_skip(struct iovec *iov, unsigned int *cnt, size_t n);

/*
 * --- internals: shared by device.c, device_split.c and device_packed.c ---
 * (struct virtq must be complete so callers can embed it; nothing below is
 * for device models.)
 */

extern const struct virtq_layout_ops virtq_split_layout;
extern const struct virtq_layout_ops virtq_packed_layout;
/* device_split.c: walk the chain at @head into @elem (virtq_pop_head). */
int virtq_split_walk_head(struct virtq *vq, struct virtq_elem *elem, uint16_t head);
void virtq_split_resume_used(struct virtq *vq, uint16_t used_idx);
/* device_packed.c: walk saved descriptors into @elem (virtq_pop_saved). */
int virtq_packed_walk_saved(struct virtq *vq, struct virtq_elem *elem,
			    const struct virtq_desc_copy *descs, unsigned int n);
void virtq_packed_resume_used(struct virtq *vq, uint16_t used);

/* A descriptor copied out of shared memory: read once, then checked, then used. */
struct virtq_desc_copy {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;		/* split: next index; packed: buffer id */
};

/*
 * The 16 bytes of either descriptor layout, byte-aligned: an indirect table
 * may sit at any address the driver picks, so entries are read through this
 * (still one load per field on x86, and no misaligned-access UB elsewhere).
 * Volatile: each field is loaded exactly once, as ring.h's accessors do.
 */
struct virtq_raw_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t w12;		/* split: flags; packed: id */
	uint16_t w14;		/* split: next; packed: flags */
} __attribute__((packed));

static inline void virtq_copy_split_desc(const void *src, struct virtq_desc_copy *d)
{
	const volatile struct virtq_raw_desc *r = src;

	d->addr = le64toh(r->addr);
	d->len = le32toh(r->len);
	d->flags = le16toh(r->w12);
	d->next = le16toh(r->w14);
}

/* Packed: everything but the flags, which the caller loaded (acquire) already. */
static inline void virtq_copy_packed_desc(const void *src, struct virtq_desc_copy *d)
{
	const volatile struct virtq_raw_desc *r = src;

	d->addr = le64toh(r->addr);
	d->len = le32toh(r->len);
	d->next = le16toh(r->w12);
}

static inline uint16_t virtq_packed_desc_flags(const void *src)
{
	const volatile struct virtq_raw_desc *r = src;

	return le16toh(r->w14);
}

/* Before a walk: nothing appended yet, and no map reference held. */
static inline void virtq_elem_reset(struct virtq_elem *elem)
{
	elem->out_num = elem->in_num = 0;
	elem->out_len = elem->in_len = 0;
	elem->mem = NULL;
}

/*
 * Append one descriptor's buffer to @elem: readable-before-writable order,
 * 32-bit total length, iovec capacity, translation through vq->mem.  0, or
 * -EIO with the queue broken.  Inline: it runs once per descriptor inside
 * both layouts' walks, and a call costs as much as the checks themselves.
 */
static inline int virtq_elem_add(struct virtq *vq, struct virtq_elem *elem,
				 const struct virtq_desc_copy *d)
{
	bool write = d->flags & VRING_DESC_F_WRITE;
	unsigned int n = elem->out_num + elem->in_num;
	void *hva;

	/* 2.7.5.2 / 2.8.17: all device-writable buffers follow the readable ones. */
	if (unlikely(!write && elem->in_num))
		return virtq_set_broken(vq, VIRTQ_ERR_ORDER, NULL);
	/*
	 * 2.7.5.2: no chain longer than 2^32 bytes in total.  Devices keep
	 * lengths in 32 bits (used len is le32); more would wrap their
	 * arithmetic.  Both partial sums are below 2^32 by induction, so this
	 * cannot overflow 64 bits.
	 */
	if (unlikely((uint64_t)elem->out_len + elem->in_len + d->len > UINT32_MAX))
		return virtq_set_broken(vq, VIRTQ_ERR_LEN_OVERFLOW, NULL);
	/* Nothing to map and nothing to hand to the device model. */
	if (!d->len)
		return 0;
	if (unlikely(n >= elem->max_iov))
		return virtq_set_broken(vq, VIRTQ_ERR_TOO_MANY_IOV, NULL);
	hva = memmap_gpa_to_hva_hint(vq->mem, d->addr, d->len, &vq->mem_hint);
	if (unlikely(!hva))
		return virtq_set_broken(vq, VIRTQ_ERR_ADDR, NULL);

	elem->iov[n].iov_base = hva;
	elem->iov[n].iov_len = d->len;
	if (write) {
		elem->in_num++;
		elem->in_len += d->len;
	} else {
		elem->out_num++;
		elem->out_len += d->len;
	}
	return 0;
}

/*
 * Check and map the indirect table @d points to (feature negotiated, length
 * a non-zero multiple of 16, inside one region).  0 with *@table / *@n set,
 * or -EIO with the queue broken.
 */
int virtq_indirect_table(struct virtq *vq, const struct virtq_desc_copy *d, const void **table,
			 unsigned int *n);

#endif /* VHOSTD_VIRTQ_VIRTQ_H */
