/* SPDX-License-Identifier: MIT */
/*
 * inflight.h - crash-safe reconnect: the in-flight region of
 * VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD (vhost-user.rst, "Inflight I/O
 * tracking"), split rings.
 *
 * The back-end hands the front-end a sealed memfd (GET_INFLIGHT_FD); the
 * front-end keeps it across a back-end crash and gives it back to each new
 * back-end (SET_INFLIGHT_FD).  Per ring it holds one header and one entry
 * per descriptor head: "this head is in flight, popped as the counter-th".
 * After a restart the ring resumes at used->idx + (heads in flight), and
 * the heads in flight are started again in counter order, exactly once,
 * before any new chain is popped (backend.c at ring start, engine.c).
 *
 * The layout is the spec's; numbers in host byte order.  Each ring's part
 * is VU_INFLIGHT_STRIDE(queue_size) bytes, room for the larger (packed)
 * layout, so the region fits whichever ring layout SET_FEATURES picks,
 * whenever the front-end asks for it.  Only split rings are tracked today.
 *
 * The region is shared with the front-end, which may scribble on it at any
 * time: at ring start a private copy is validated and only the copy is
 * used; while the ring runs the back-end only stores into the region (the
 * batch it clears comes from its own list, not from the region's links).
 */
#ifndef VHOSTD_VHOST_USER_INFLIGHT_H
#define VHOSTD_VHOST_USER_INFLIGHT_H

#include <stdint.h>

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

_Static_assert(sizeof(struct vu_inflight_desc_split) == 16, "spec layout");
_Static_assert(sizeof(struct vu_inflight_split) == 16, "spec layout");

#define VU_INFLIGHT_VERSION 1
/* Bytes of one ring's part: the packed layout's 32-byte header and entries. */
#define VU_INFLIGHT_STRIDE(qsize) ((((uint64_t)(qsize) + 1) * 32 + 63) & ~(uint64_t)63)

/* One ring's tracking while it runs (struct vu_queue's inflight). */
struct vu_inflight_queue {
	struct vu_inflight_split *r; /* this ring's part of the shared region */
	uint16_t num;
	uint64_t counter;  /* the next pop's counter */
	uint16_t used_idx; /* what r->used_idx says (our own copy) */
	uint16_t *batch;   /* heads filled since the last publish */
	unsigned int nr_batch;
	uint16_t *resubmit; /* heads to start again, in counter order */
	unsigned int nr_resubmit;
};

/* A chain at @head was popped: record it before the request starts. */
void vu_inflight_begin(struct vu_inflight_queue *iq, uint16_t head);
/* @head's used entry was written (not yet published): link it into the batch. */
void vu_inflight_filled(struct vu_inflight_queue *iq, uint16_t head);
/* The used ring's index was published as @used_idx: clear the batch. */
void vu_inflight_published(struct vu_inflight_queue *iq, uint16_t used_idx);

#endif /* VHOSTD_VHOST_USER_INFLIGHT_H */
