/* SPDX-License-Identifier: MIT */
/*
 * inflight.h - crash-safe reconnect: the in-flight region of
 * VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD (vhost-user.rst, "Inflight I/O
 * tracking"), split and packed rings.
 *
 * The back-end hands the front-end a sealed memfd (GET_INFLIGHT_FD); the
 * front-end keeps it across a back-end crash and gives it back to each new
 * back-end (SET_INFLIGHT_FD).  Per ring it holds one header and one entry
 * per descriptor: what is in flight, in which order it was popped, and
 * where the ring stands.  After a restart the chains in flight are started
 * again in pop order, exactly once, before any new chain is popped
 * (backend.c at ring start, engine.c), and the ring resumes after them.
 *
 * Split: one entry per descriptor head ("this head is in flight, popped as
 * the counter-th"); the chains stay in the descriptor table until used, so
 * the head is enough, and used->idx in guest memory says where the used
 * ring is.  The ring resumes popping at used->idx + (heads in flight).
 *
 * Packed: the ring keeps no position in shared memory (the used position
 * and both wrap counters are the device's own), and a chain's slots may be
 * overwritten by used elements of chains that completed before it.  So
 * the region keeps (a) the used position the driver has seen (old_used_idx,
 * old_used_wrap_counter) and the one a batch being published will reach
 * (used_idx, used_wrap_counter), and (b) a copy of every descriptor of
 * every chain in flight, in entries taken from a free list: the head entry
 * says inflight, num (slots the chain took), last and counter, each entry
 * holds one descriptor (addr, len, flags, id) and links to the next by
 * next.  The ring resumes using at the used position and popping num slots
 * per chain in flight after it.  Entries are allocated from a private free
 * list rebuilt at ring start from the live chains, so free_head and
 * old_free_head are not used (left 0).  inflight is 1 while a chain is in
 * flight, 2 once its used element is written and waits for a publish.
 * QEMU 7.2 hands a reconnecting back-end a stale packed base (the value of
 * the last GET_VRING_BASE that was answered), so with a region that was
 * used the region's position wins over SET_VRING_BASE.
 *
 * The layouts are the spec's; numbers in host byte order.  Each ring's
 * part is VU_INFLIGHT_STRIDE(queue_size) bytes, room for the larger
 * (packed) layout, so the region fits whichever ring layout SET_FEATURES
 * picks, whenever the front-end asks for it.
 *
 * The region is shared with the front-end, which may scribble on it at any
 * time: at ring start a private copy is validated and only the copy is
 * used (one log line and the ring does not start if it is bad); while the
 * ring runs the back-end only stores into the region (what it clears and
 * frees comes from its own lists, not from the region's links).
 *
 * A device model that runs on the engine gets all of it for free: the
 * engine calls the hooks below around pop, fill and flush (vu_inflight_*).
 */
#ifndef VHOSTD_VHOST_USER_INFLIGHT_H
#define VHOSTD_VHOST_USER_INFLIGHT_H

#include <stdint.h>

#include "virtq/virtq.h"

struct vu_inflight_desc_split {
	uint8_t inflight; /* 1: popped, its used entry not yet published */
	uint8_t padding[5];
	uint16_t next;	  /* the batch of used entries being published: a list */
	uint64_t counter; /* pop order */
};

struct vu_inflight_split {
	uint64_t features; /* 0 */
	uint16_t version;  /* 1; 0: never used (a fresh region) */
	uint16_t desc_num; /* the ring's size */
	uint16_t last_batch_head;
	uint16_t used_idx; /* used->idx once the last batch's entries were cleared */
	struct vu_inflight_desc_split desc[];
};

struct vu_inflight_desc_packed {
	uint8_t inflight; /* head: 1 in flight, 2 used element written, 0 not */
	uint8_t padding;
	uint16_t next;	  /* the chain's next entry */
	uint16_t last;	  /* head: the chain's last entry */
	uint16_t num;	  /* head: ring slots (descriptors) the chain took */
	uint64_t counter; /* head: pop order */
	uint16_t id;	  /* the descriptor as the driver made it available */
	uint16_t flags;
	uint32_t len;
	uint64_t addr;
};

struct vu_inflight_packed {
	uint64_t features;  /* 0 */
	uint16_t version;   /* 1; 0: never used (a fresh region) */
	uint16_t desc_num;  /* the ring's size */
	uint16_t free_head; /* not used by vhostd (private free list) */
	uint16_t old_free_head;
	uint16_t used_idx;     /* where the batch being published ends */
	uint16_t old_used_idx; /* where the driver's view of the used ring ends */
	uint8_t used_wrap_counter;
	uint8_t old_used_wrap_counter;
	uint8_t padding[10];
	struct vu_inflight_desc_packed desc[];
};

_Static_assert(sizeof(struct vu_inflight_desc_split) == 16, "spec layout");
_Static_assert(sizeof(struct vu_inflight_split) == 16, "spec layout");
_Static_assert(sizeof(struct vu_inflight_desc_packed) == 32, "spec layout");
_Static_assert(sizeof(struct vu_inflight_packed) == 32, "spec layout");

#define VU_INFLIGHT_VERSION 1
/* Bytes of one ring's part: the packed layout's 32-byte header and entries. */
#define VU_INFLIGHT_STRIDE(qsize) ((((uint64_t)(qsize) + 1) * 32 + 63) & ~(uint64_t)63)
/* No entry (packed: a buffer id with no chain recorded). */
#define VU_INFLIGHT_NONE 0xffffu

struct vu_inflight_queue;

/* What differs between the layouts (inflight.c: split_ops, packed_ops). */
struct vu_inflight_ops {
	/* A chain was popped: record it before the request starts.  -ENOSPC: hostile. */
	int (*begin)(struct vu_inflight_queue *iq, const struct virtq_elem *e);
	/* @e's used entry was written (not yet published). */
	void (*filled)(struct vu_inflight_queue *iq, const struct virtq_elem *e);
	/* Right before virtq_flush(). */
	void (*flushing)(struct vu_inflight_queue *iq, const struct virtq *vq);
	/* Right after virtq_flush(): clear the batch. */
	void (*published)(struct vu_inflight_queue *iq, const struct virtq *vq);
	/* Take the @i-th chain to start again as popped (virtq_pop_head / _saved). */
	int (*repop)(struct vu_inflight_queue *iq, struct virtq *vq, struct virtq_elem *e,
		     unsigned int i);
};

/* One ring's tracking while it runs (struct vu_queue's inflight). */
struct vu_inflight_queue {
	const struct vu_inflight_ops *ops;
	void *r; /* this ring's part of the shared region */
	uint16_t num;
	uint64_t counter; /* the next pop's counter */
	/*
	 * Our own copy of the used position the region holds: split, its
	 * used_idx; packed, old_used_idx | old_used_wrap_counter << 15.
	 */
	uint16_t used_idx;
	uint16_t *batch; /* heads (packed: head entries) filled since the last publish */
	unsigned int nr_batch;
	uint16_t *resubmit; /* heads (packed: head entries) to start again, in counter order */
	unsigned int nr_resubmit;
	unsigned int live; /* recorded and not cleared (logs, the test hook) */
	/*
	 * Recovered from a region a previous back-end used: it may have
	 * published completions and died before it signalled them, so the
	 * engine sends the driver one interrupt when the ring starts.
	 */
	bool recovered;
	/* Packed only (NULL for split), each for num entries: */
	struct virtq_desc_copy *descs; /* the engine pops into it (virtq_elem.descs) */
	uint16_t *free;		       /* free entries, a stack */
	unsigned int nr_free;
	uint16_t *link;		       /* entry -> the chain's next entry (private copy) */
	uint16_t *chain_len;	       /* head entry -> entries of its chain */
	uint16_t *id_entry;	       /* buffer id -> head entry, or VU_INFLIGHT_NONE */
	struct virtq_desc_copy *saved; /* the chains to start again, by head entry */
	uint16_t *saved_off;	       /* head entry -> its first descriptor in saved */
};

static inline int vu_inflight_begin(struct vu_inflight_queue *iq, const struct virtq_elem *e)
{
	return iq->ops->begin(iq, e);
}

static inline void vu_inflight_filled(struct vu_inflight_queue *iq, const struct virtq_elem *e)
{
	iq->ops->filled(iq, e);
}

static inline void vu_inflight_flushing(struct vu_inflight_queue *iq, const struct virtq *vq)
{
	iq->ops->flushing(iq, vq);
}

static inline void vu_inflight_published(struct vu_inflight_queue *iq, const struct virtq *vq)
{
	iq->ops->published(iq, vq);
}

static inline int vu_inflight_repop(struct vu_inflight_queue *iq, struct virtq *vq,
				    struct virtq_elem *e, unsigned int i)
{
	return iq->ops->repop(iq, vq, e, i);
}

#endif /* VHOSTD_VHOST_USER_INFLIGHT_H */
