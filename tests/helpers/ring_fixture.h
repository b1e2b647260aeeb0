/* SPDX-License-Identifier: MIT */
/*
 * ring_fixture.h - a device-side queue over hand-written rings in guarded
 * guest memory, for the hostile-chain tests and the fuzz harness.
 *
 * Host memory (one mapping, guard pages at both ends):
 *
 *	guard | region A | canary page | region B | canary page | guard
 *
 * Guest-physical map:
 *
 *	A at FIX_GPA_A, B right after it (adjacent in gpa, not in host memory,
 *	so a buffer straddling the two would read the canary if it were
 *	allowed), optionally C: FIX_BIG_SIZE bytes at FIX_GPA_BIG backed by
 *	address space that must never be touched (a walker only translates, so
 *	huge valid buffers cost nothing and any access crashes).
 *
 * The ring sits at the start of A; indirect tables and buffers go in the
 * data area after it (fixture_data()).
 */
#ifndef VHOSTD_TESTS_RING_FIXTURE_H
#define VHOSTD_TESTS_RING_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>

#include "guarded.h"
#include "virtq/virtq.h"

#define FIX_GPA_A    0x100000ull
#define FIX_GPA_BIG  0x100000000ull
#define FIX_BIG_SIZE (8ull << 30)
/* Not in any region, not adjacent to one. */
#define FIX_GPA_NOWHERE 0xdead0000ull

/* fixture_create() flags */
#define FIX_BIG 1u /* add region C */

struct ring_fixture {
	struct guarded arena;
	uint8_t *a, *b;
	size_t a_size, b_size;
	uint8_t *canary[2]; /* after A, after B */
	/*
	 * What the canaries must hold, computed once: a reset copies it and a
	 * check compares with it (memcpy/memcmp), so the fuzz harnesses that
	 * reset per input spend their time in the code under test rather than
	 * in a byte loop (instrumented for coverage there).
	 */
	uint8_t *canary_ref[2];
	size_t canary_size;
	void *big;
	struct memmap *mem;   /* A, B (and C) */
	struct memmap *mem_a; /* A only */

	/* the ring in A, set by fixture_ring_init() */
	bool packed;
	uint16_t num;
	uint64_t features;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	struct vring_packed_desc *pdesc;
	struct vring_packed_desc_event *driver_event, *device_event;
	size_t data_off; /* first byte after the ring, 64-aligned */
	struct virtq vq;
	bool vq_live;
};

void fixture_create(struct ring_fixture *f, size_t a_size, size_t b_size, unsigned int flags);
void fixture_destroy(struct ring_fixture *f);

/* Zero A and B and rewrite the canaries (ends any live queue). */
void fixture_reset(struct ring_fixture *f);

/* Bytes of A the ring layout uses for @num entries. */
size_t fixture_ring_bytes(bool packed, uint16_t num);

/*
 * Lay out a ring of @num entries at the start of A (over whatever A holds)
 * and virtq_init() a device-side queue on it with @mem (NULL: f->mem).
 * Returns virtq_init()'s result.
 */
int fixture_ring_init(struct ring_fixture *f, bool packed, uint16_t num, uint64_t features,
		      uint16_t base, struct memmap *mem);
void fixture_ring_fini(struct ring_fixture *f);

/* Guest-physical address of a host pointer into A or B. */
uint64_t fixture_gpa(const struct ring_fixture *f, const void *p);
/* Host pointer @off bytes into A's data area. */
void *fixture_data(const struct ring_fixture *f, size_t off);
uint64_t fixture_data_gpa(const struct ring_fixture *f, size_t off);

/* FAIL unless both canaries are intact. */
void fixture_check_canaries(const struct ring_fixture *f);

/* Write split descriptor @i of @table (NULL: the ring's own table). */
void fix_split_desc(struct vring_desc *table, uint16_t i, uint64_t addr, uint32_t len,
		    uint16_t flags, uint16_t next);
/* Make @head available and publish the new avail index. */
void fix_split_avail(struct ring_fixture *f, uint16_t head);

/*
 * Write packed descriptor @slot as available in the driver's first lap
 * (wrap counter 1: AVAIL set, USED clear, added to @flags).  The flags word
 * goes last, with release, as a driver must publish it.
 */
void fix_packed_desc(struct ring_fixture *f, uint16_t slot, uint64_t addr, uint32_t len,
		     uint16_t id, uint16_t flags);
/* An entry of a packed indirect table (no AVAIL/USED bits). */
void fix_packed_table_desc(struct vring_packed_desc *table, uint16_t i, uint64_t addr, uint32_t len,
			   uint16_t flags);

/* Feature word for a ring: VERSION_1, plus PACKED when @packed, plus @extra bits. */
uint64_t fix_features(bool packed, uint64_t extra);
#define FEAT(bit) (1ull << (bit))

/* A queue's base for a fresh ring: split 0, packed slot 0 with wrap counter 1. */
uint16_t fix_fresh_base(bool packed);

#endif /* VHOSTD_TESTS_RING_FIXTURE_H */
