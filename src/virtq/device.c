// SPDX-License-Identifier: MIT
/*
 * device.c - the device side of a virtqueue: the public entry points and
 * everything the split (device_split.c) and packed (device_packed.c)
 * layouts share.
 *
 * Done once, here: the broken-queue gate, the per-id in-flight bitmap (a
 * double completion or a driver re-offering an id we still hold is caught
 * by id, whatever the layout), the memory-map reference each element holds,
 * the full barriers of the notification protocol, and the two pieces of
 * chain walking that do not depend on the layout: turning one descriptor
 * into an iovec and checking an indirect table.
 *
 * Security model: the driver owns the rings and may rewrite any byte of
 * them at any time.  Every descriptor reaches this file as a private copy
 * (struct virtq_desc_copy, read once), and every buffer address goes through
 * memmap_gpa_to_hva_hint(), which refuses ranges not wholly inside one region.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "virtq.h"

/* Both layouts' descriptors (and so indirect table entries) are 16 bytes. */
_Static_assert(sizeof(struct vring_desc) == 16, "split descriptor size");
_Static_assert(sizeof(struct vring_packed_desc) == 16, "packed descriptor size");
_Static_assert(sizeof(struct virtq_raw_desc) == 16, "raw descriptor size");

static const char *const error_names[VIRTQ_ERR__COUNT] = {
	[VIRTQ_OK] = "no error",
	[VIRTQ_ERR_AVAIL_IDX] = "driver made more available than the queue holds",
	[VIRTQ_ERR_HEAD] = "descriptor index or buffer id out of range",
	[VIRTQ_ERR_ADDR] = "buffer outside guest memory or straddling two regions",
	[VIRTQ_ERR_LEN_OVERFLOW] = "chain length overflows 32 bits",
	[VIRTQ_ERR_CHAIN_LONG] = "chain longer than the queue or table (loop)",
	[VIRTQ_ERR_NESTED_INDIRECT] = "indirect descriptor inside an indirect table",
	[VIRTQ_ERR_INDIRECT_LEN] = "indirect table length zero, not a multiple of 16 or too long",
	[VIRTQ_ERR_INDIRECT_NEXT] = "indirect descriptor in a NEXT chain",
	[VIRTQ_ERR_INDIRECT_FEATURE] = "indirect descriptor without VIRTIO_RING_F_INDIRECT_DESC",
	[VIRTQ_ERR_ORDER] = "readable descriptor after a writable one",
	[VIRTQ_ERR_TOO_MANY_IOV] = "chain needs more iovecs than the element holds",
	[VIRTQ_ERR_NO_MAP] = "no memory map",
	[VIRTQ_ERR_USED_ID] = "completion of an id that is not in flight",
	[VIRTQ_ERR_ID_IN_FLIGHT] = "id made available again while still in flight",
};

const char *virtq_strerror(enum virtq_error err)
{
	if ((unsigned int)err >= VIRTQ_ERR__COUNT)
		return "unknown error";
	return error_names[err];
}

int virtq_set_broken(struct virtq *vq, enum virtq_error err, const char *detail)
{
	/* The first reason is the one that matters; a dead queue logs once. */
	if (vq->broken)
		return -EIO;
	vq->broken = true;
	vq->error = err;
	log_error("%s: broken: %s%s%s", vq->name, virtq_strerror(err), detail ? ": " : "",
		  detail ? detail : "");
	return -EIO;
}

/* --- in-flight ids: one bit each, allocated once at init --- */

static bool inflight_test(const struct virtq *vq, uint16_t id)
{
	return (vq->inflight_map[id / 64] >> (id % 64)) & 1;
}

static void inflight_flip(struct virtq *vq, uint16_t id)
{
	vq->inflight_map[id / 64] ^= UINT64_C(1) << (id % 64);
}

/*
 * --- memory map references ---
 *
 * Every popped element holds a reference on the map its iovecs point into
 * (memmap.h).  Taking and dropping one per element would be two locked
 * read-modify-writes per request on a cache line other queues share, so
 * the queue takes references MEM_REF_BATCH at a time and keeps the unused
 * ones in mem_spare: pop hands one out, fill gives it back if the element's
 * map is still the queue's.  The count still covers every element in
 * flight, so a map is never freed under an I/O.
 */
#define MEM_REF_BATCH 64

static struct memmap *mem_ref_take(struct virtq *vq)
{
	if (!vq->mem_spare) {
		memmap_get_many(vq->mem, MEM_REF_BATCH);
		vq->mem_spare = MEM_REF_BATCH;
	}
	vq->mem_spare--;
	return vq->mem;
}

static void mem_ref_give(struct virtq *vq, struct memmap *mem)
{
	if (mem && mem == vq->mem)
		vq->mem_spare++;
	else
		memmap_put(mem);
}

/* --- life cycle --- */

static void virtq_init_log(struct virtq *vq, const struct virtq_config *cfg);

int virtq_init(struct virtq *vq, const struct virtq_config *cfg)
{
	bool packed = cfg->features & (UINT64_C(1) << VIRTIO_F_RING_PACKED);
	uint64_t *map;
	int r;

	if (!cfg->num || cfg->num > VIRTQ_MAX_SIZE || !cfg->desc || !cfg->driver_area ||
	    !cfg->device_area)
		return -EINVAL;
	map = calloc((cfg->num + 63u) / 64, sizeof(*map));
	if (!map)
		return -ENOMEM;

	memset(vq, 0, sizeof(*vq));
	vq->ops = packed ? &virtq_packed_layout : &virtq_split_layout;
	vq->name = cfg->name ? cfg->name : "virtq";
	vq->num = cfg->num;
	vq->event_idx = cfg->features & (UINT64_C(1) << VIRTIO_RING_F_EVENT_IDX);
	vq->indirect = cfg->features & (UINT64_C(1) << VIRTIO_RING_F_INDIRECT_DESC);
	vq->notify_on_empty = cfg->features & (UINT64_C(1) << VIRTIO_F_NOTIFY_ON_EMPTY);
	vq->notify_enabled = true;
	vq->inflight_map = map;
	virtq_init_log(vq, cfg);

	r = vq->ops->init(vq, cfg);
	if (r) {
		free(map);
		vq->inflight_map = NULL;
		return r;
	}
	vq->mem = cfg->mem ? memmap_get(cfg->mem) : NULL;
	return 0;
}

/*
 * The logging fields go in before the layout's init, which already writes
 * the ring (flags, event index) and must log that.
 */
static void virtq_init_log(struct virtq *vq, const struct virtq_config *cfg)
{
	vq->log = cfg->log;
	vq->log_ring = cfg->log && cfg->log_rings ? cfg->log : NULL;
	vq->log_device_gpa = cfg->log_device_gpa;
	vq->log_desc_gpa = cfg->log_desc_gpa;
}

void virtq_destroy(struct virtq *vq)
{
	/* The queue's own reference and its spares. */
	if (vq->mem)
		memmap_put_many(vq->mem, 1 + vq->mem_spare);
	vq->mem = NULL;
	vq->mem_spare = 0;
	free(vq->inflight_map);
	vq->inflight_map = NULL;
}

void virtq_set_memmap(struct virtq *vq, struct memmap *mem)
{
	struct memmap *old = vq->mem;
	unsigned int old_refs = 1 + vq->mem_spare;

	/* Installed before the old one is dropped: @mem may be the same map. */
	vq->mem = mem ? memmap_get(mem) : NULL;
	vq->mem_spare = 0;
	vq->mem_hint = 0;
	if (old)
		memmap_put_many(old, old_refs);
}

/* --- the datapath --- */

int virtq_pop_batch(struct virtq *vq, struct virtq_elem *const *elems, unsigned int n)
{
	unsigned int got, i;

	if (vq->broken)
		return -EIO;
	if (!vq->mem)
		return virtq_set_broken(vq, VIRTQ_ERR_NO_MAP, NULL);
	if (!n)
		return 0;

	got = vq->ops->pop(vq, elems, n);
	/*
	 * Empty, and kicks wanted: move the event index (avail_event, or the
	 * packed device event offset) to where we stopped, so the driver's next
	 * add kicks us (2.7.10, 2.8.10).  The driver may have added in between
	 * our look and that store, so look again after a full barrier, which
	 * pairs with the driver's barrier between publishing and reading our
	 * event.  If the event was already there, that earlier store and its
	 * barrier still hold and there is nothing to re-check.
	 */
	if (!got && !vq->broken && vq->event_idx && vq->notify_enabled &&
	    vq->ops->set_notify(vq, true)) {
		vq_mb();
		got = vq->ops->pop(vq, elems, n);
	}

	for (i = 0; i < got; i++) {
		struct virtq_elem *elem = elems[i];

		/*
		 * Split: the driver re-offered a head whose chain we still
		 * hold; packed: it reused a buffer id.  Either way its
		 * completion could not be told apart from the first one's.
		 * Checked in pop order, so the same id twice in one burst is
		 * caught too.
		 */
		if (unlikely(inflight_test(vq, elem->id))) {
			virtq_set_broken(vq, VIRTQ_ERR_ID_IN_FLIGHT, NULL);
			break;
		}
		inflight_flip(vq, elem->id);
		/* The iovecs point into this map: keep it alive until fill. */
		elem->mem = mem_ref_take(vq);
		/* Before the device model can narrow them (virtq_elem.log_iov). */
		if (unlikely(vq->log) && elem->log_iov)
			memcpy(elem->log_iov, elem->iov + elem->out_num,
			       elem->in_num * sizeof(*elem->iov));
	}
	vq->inflight += i;
	vq->nr_popped += i;
	if (!i && vq->broken)
		return -EIO;
	return (int)i;
}

/* A chain walked outside the avail ring (start again after a restart): take it as popped. */
static int take_walked(struct virtq *vq, struct virtq_elem *elem)
{
	if (inflight_test(vq, elem->id))
		return virtq_set_broken(vq, VIRTQ_ERR_ID_IN_FLIGHT, "chain to start again");
	inflight_flip(vq, elem->id);
	elem->mem = mem_ref_take(vq);
	/* As virtq_pop_batch() does: before the device model narrows them. */
	if (unlikely(vq->log) && elem->log_iov)
		memcpy(elem->log_iov, elem->iov + elem->out_num, elem->in_num * sizeof(*elem->iov));
	vq->inflight++;
	vq->nr_popped++;
	return 1;
}

int virtq_pop_head(struct virtq *vq, struct virtq_elem *elem, uint16_t head)
{
	int r;

	if (vq->broken)
		return -EIO;
	if (!vq->mem)
		return virtq_set_broken(vq, VIRTQ_ERR_NO_MAP, NULL);
	if (vq->ops != &virtq_split_layout)
		return -EOPNOTSUPP;
	r = virtq_split_walk_head(vq, elem, head);
	if (r < 0)
		return r;
	return take_walked(vq, elem);
}

int virtq_pop_saved(struct virtq *vq, struct virtq_elem *elem, const struct virtq_desc_copy *descs,
		    unsigned int n)
{
	int r;

	if (vq->broken)
		return -EIO;
	if (!vq->mem)
		return virtq_set_broken(vq, VIRTQ_ERR_NO_MAP, NULL);
	if (vq->ops != &virtq_packed_layout)
		return -EOPNOTSUPP;
	r = virtq_packed_walk_saved(vq, elem, descs, n);
	if (r < 0)
		return r;
	return take_walked(vq, elem);
}

void virtq_resume_used(struct virtq *vq, uint16_t used)
{
	if (vq->ops == &virtq_split_layout)
		virtq_split_resume_used(vq, used);
	else
		virtq_packed_resume_used(vq, used);
}

int virtq_pop(struct virtq *vq, struct virtq_elem *elem)
{
	return virtq_pop_batch(vq, &elem, 1);
}

/*
 * Every writable buffer of a completed chain, whole: the device may have
 * written any byte of it (an I/O that failed half-way, a short SCSI
 * transfer), and used len says how much, not where.  Marking a page we did
 * not write only costs the front-end one more page to send.
 */
static void virtq_log_elem(const struct virtq *vq, const struct virtq_elem *elem)
{
	const struct iovec *in = elem->log_iov ? elem->log_iov : elem->iov + elem->out_num;

	if (elem->mem)
		dlog_mark_iov(vq->log, elem->mem, in, elem->in_num, SIZE_MAX);
}

void virtq_log_iov(const struct virtq *vq, const struct virtq_elem *elem, const struct iovec *iov,
		   unsigned int cnt, size_t len)
{
	if (virtq_logging(vq) && elem->mem)
		dlog_mark_iov(vq->log, elem->mem, iov, cnt, len);
}

void virtq_fill(struct virtq *vq, const struct virtq_elem *elem, uint32_t len)
{
	if (elem->id >= vq->num || !inflight_test(vq, elem->id)) {
		virtq_set_broken(vq, VIRTQ_ERR_USED_ID, NULL);
		return;
	}
	/* Data first, its bits next (release), the used entry and index last. */
	if (unlikely(vq->log))
		virtq_log_elem(vq, elem);
	inflight_flip(vq, elem->id);
	vq->inflight--;
	mem_ref_give(vq, elem->mem);
	if (vq->broken)
		return;
	/* Never tell the driver we wrote more than it gave us. */
	if (len > elem->in_len)
		len = elem->in_len;
	vq->ops->fill(vq, elem, len);
}

void virtq_flush(struct virtq *vq)
{
	if (!vq->broken)
		vq->ops->flush(vq);
}

void virtq_push(struct virtq *vq, const struct virtq_elem *elem, uint32_t len)
{
	virtq_fill(vq, elem, len);
	virtq_flush(vq);
}

bool virtq_should_notify(struct virtq *vq)
{
	int r;

	if (vq->broken)
		return false;
	/*
	 * Our release store of used->idx (or of the batch head's flags) must
	 * be visible before we read the driver's used_event / flags: a
	 * store->load order, so a full barrier.  It pairs with the driver's
	 * barrier between writing used_event (or its event flags) and
	 * re-checking the used ring (Linux virtqueue_enable_cb_delayed): one
	 * of the two sides always sees the other's store.
	 */
	vq_mb();
	r = vq->ops->should_notify(vq);
	if (r < 0)
		return false; /* nothing new since the last decision */
	/* VIRTIO_F_NOTIFY_ON_EMPTY: out of work, notify even if suppressed. */
	if (!r && vq->notify_on_empty && !vq->inflight && vq->ops->avail_empty(vq))
		r = 1;
	if (r)
		vq->nr_notified++;
	else
		vq->nr_notify_suppressed++;
	return r;
}

bool virtq_enable_notify(struct virtq *vq)
{
	if (vq->broken)
		return false;
	vq->notify_enabled = true;
	vq->ops->set_notify(vq, true);
	/*
	 * Store (our suppression state) then load (the driver's avail index /
	 * flags): full barrier, pairing with the driver's barrier between
	 * publishing a buffer and reading our state (2.7.13.4, 2.8.21.2).
	 * Either it sees kicks enabled, or we see its buffer here.
	 */
	vq_mb();
	/*
	 * A lying avail index breaks the queue here (split).  Say "poll
	 * again" then: the caller's next pop returns -EIO and the device is
	 * marked broken now, instead of sleeping until a kick that a hostile
	 * driver need never send.
	 */
	return !vq->ops->avail_empty(vq) || vq->broken;
}

void virtq_disable_notify(struct virtq *vq)
{
	if (vq->broken)
		return;
	vq->notify_enabled = false;
	vq->ops->set_notify(vq, false);
}

bool virtq_avail_empty(struct virtq *vq)
{
	if (vq->broken)
		return true;
	return vq->ops->avail_empty(vq);
}

uint16_t virtq_get_base(const struct virtq *vq)
{
	return vq->ops->get_base(vq);
}

/* --- chain walking pieces shared by both layouts --- */

int virtq_indirect_table(struct virtq *vq, const struct virtq_desc_copy *d, const void **table,
			 unsigned int *n)
{
	const void *hva;

	/* 2.7.5.3.1 / 2.8.19: the driver MUST NOT use INDIRECT unless negotiated. */
	if (!vq->indirect)
		return virtq_set_broken(vq, VIRTQ_ERR_INDIRECT_FEATURE, NULL);
	/*
	 * 2.7.5.3.1: not with NEXT either; the table replaces the rest of the
	 * chain (packed, 2.8.19: never in a NEXT list at all).
	 */
	if (d->flags & VRING_DESC_F_NEXT)
		return virtq_set_broken(vq, VIRTQ_ERR_INDIRECT_NEXT, NULL);
	/*
	 * A table is whole descriptors.  No more than the largest queue: a
	 * multi-gigabyte table of zero-length entries would otherwise be a
	 * long walk that maps nothing.
	 */
	if (!d->len || d->len % sizeof(struct vring_desc) ||
	    d->len / sizeof(struct vring_desc) > VIRTQ_MAX_SIZE)
		return virtq_set_broken(vq, VIRTQ_ERR_INDIRECT_LEN, NULL);
	hva = memmap_gpa_to_hva_hint(vq->mem, d->addr, d->len, &vq->mem_hint);
	if (!hva)
		return virtq_set_broken(vq, VIRTQ_ERR_ADDR, "indirect table");
	*table = hva;
	*n = d->len / sizeof(struct vring_desc);
	return 0;
}

/* --- iovec helpers --- */

size_t iov_length(const struct iovec *iov, unsigned int cnt)
{
	size_t len = 0;

	for (unsigned int i = 0; i < cnt; i++)
		len += iov[i].iov_len;
	return len;
}

struct iovec *iov_skip(struct iovec *iov, unsigned int *cnt, size_t n)
{
	while (*cnt && n >= iov->iov_len) {
		n -= iov->iov_len;
		iov++;
		(*cnt)--;
	}
	if (*cnt && n) {
		iov->iov_base = (char *)iov->iov_base + n;
		iov->iov_len -= n;
	}
	return iov;
}

/* Copy between @buf and the bytes of @iov from @offset on; @to_buf picks the way. */
static size_t iov_copy(const struct iovec *iov, unsigned int cnt, size_t offset, void *buf,
		       size_t len, bool to_buf)
{
	size_t done = 0;

	for (unsigned int i = 0; i < cnt && done < len; i++) {
		size_t n;

		if (offset >= iov[i].iov_len) {
			offset -= iov[i].iov_len;
			continue;
		}
		n = iov[i].iov_len - offset;
		if (n > len - done)
			n = len - done;
		if (to_buf)
			memcpy((char *)buf + done, (char *)iov[i].iov_base + offset, n);
		else
			memcpy((char *)iov[i].iov_base + offset, (char *)buf + done, n);
		done += n;
		offset = 0;
	}
	return done;
}

size_t iov_to_buf(const struct iovec *iov, unsigned int cnt, size_t offset, void *buf, size_t len)
{
	return iov_copy(iov, cnt, offset, buf, len, true);
}

size_t iov_from_buf(const struct iovec *iov, unsigned int cnt, size_t offset, const void *buf,
		    size_t len)
{
	return iov_copy(iov, cnt, offset, (void *)buf, len, false);
}
