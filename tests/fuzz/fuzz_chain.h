/* SPDX-License-Identifier: MIT */
/*
 * fuzz_chain.h - build well-framed descriptor chains from fuzz input, for
 * the harnesses of request parsers (fuzz_blk_req.c, fuzz_scsi_ctrl.c).
 *
 * The chain walker has a harness of its own (fuzz_virtq_pop.c), which feeds
 * it raw ring bytes; mutating raw bytes seldom yields a chain a device model
 * would parse deeply.  Here the input describes the chains instead, so
 * every mutation lands in what the device reads:
 *
 *	ring header (2 bytes):  flags (FUZZ_CH_*), queue size selector
 *	chain*:                 nseg (1 byte: 1 + n % FUZZ_CH_MAX_SEG)
 *	                        then per segment: flags (1 byte: bit 0
 *	                        device-writable, bit 1 in region B, bit 2 an
 *	                        empty-length descriptor), len (2 bytes le,
 *	                        % FUZZ_CH_MAX_LEN)
 *	                        then the bytes of the readable segments, in
 *	                        order (short input: zeroes)
 *
 * Chains are laid out in ring_fixture.h's regions A and B (direct, or in
 * one indirect table each with FUZZ_CH_INDIRECT), split or packed; input
 * that asks for more than the ring or the regions hold is cut there.
 * Writable bytes start as 0xa5, so the harness can tell what was written.
 */
#ifndef VHOSTD_TESTS_FUZZ_CHAIN_H
#define VHOSTD_TESTS_FUZZ_CHAIN_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "ring_fixture.h"

#define FUZZ_CH_A_SIZE	 65536u
#define FUZZ_CH_B_SIZE	 16384u
#define FUZZ_CH_MAX_SEG	 8u
#define FUZZ_CH_MAX_LEN	 4608u /* 9 sectors: a read can cross a page */
#define FUZZ_CH_MAX_REQS 64u

/* ring header flags */
#define FUZZ_CH_PACKED	  0x01
#define FUZZ_CH_INDIRECT  0x02
#define FUZZ_CH_EVENT_IDX 0x04

struct fuzz_in {
	const uint8_t *p;
	size_t n;
};

static inline uint8_t fuzz_u8(struct fuzz_in *in)
{
	uint8_t v = 0;

	if (in->n) {
		v = *in->p++;
		in->n--;
	}
	return v;
}

static inline uint16_t fuzz_u16(struct fuzz_in *in)
{
	uint16_t lo = fuzz_u8(in);

	return (uint16_t)(lo | fuzz_u8(in) << 8);
}

/* Copy up to @len bytes of input into @dst, zero the rest. */
static inline void fuzz_bytes(struct fuzz_in *in, void *dst, size_t len)
{
	size_t n = len < in->n ? len : in->n;

	memcpy(dst, in->p, n);
	memset((uint8_t *)dst + n, 0, len - n);
	in->p += n;
	in->n -= n;
}

struct fuzz_chain {
	uint16_t head; /* split: descriptor index; packed: buffer id */
	unsigned int nseg;
	uint8_t *seg[FUZZ_CH_MAX_SEG];
	uint32_t len[FUZZ_CH_MAX_SEG];
	bool writable[FUZZ_CH_MAX_SEG];
	uint32_t in_len; /* writable bytes */
};

struct fuzz_ring {
	bool packed, indirect;
	uint16_t num;
	uint64_t features;
	unsigned int nr;
	struct fuzz_chain chains[FUZZ_CH_MAX_REQS];
	size_t a_next, b_next; /* allocators */
	uint16_t slot;	       /* next descriptor */
};

static inline void *fuzz_ring_alloc(struct ring_fixture *fix, struct fuzz_ring *r, size_t len,
				    bool in_b)
{
	size_t align = 16;
	void *p;

	if (in_b) {
		size_t at = (r->b_next + align - 1) & ~(align - 1);

		if (at + len > fix->b_size)
			return NULL;
		p = fix->b + at;
		r->b_next = at + len;
	} else {
		size_t at = (r->a_next + align - 1) & ~(align - 1);

		if (fix->data_off + at + len > fix->a_size)
			return NULL;
		p = fix->a + fix->data_off + at;
		r->a_next = at + len;
	}
	return p;
}

/*
 * Set up the ring described by the 2-byte header and lay out every chain
 * the input describes.  @extra_features are the device's own bits.
 * Returns the fixture's ring init result (0: ready).
 */
static inline int fuzz_ring_build(struct ring_fixture *fix, struct fuzz_ring *r,
				  struct fuzz_in *in, uint64_t extra_features)
{
	uint8_t flags = fuzz_u8(in);
	int ret;

	memset(r, 0, sizeof(*r));
	r->packed = flags & FUZZ_CH_PACKED;
	r->indirect = flags & FUZZ_CH_INDIRECT;
	r->num = (uint16_t)(8u << (fuzz_u8(in) % 4)); /* 8..64 */
	r->features = fix_features(r->packed, extra_features) |
		      FEAT(VIRTIO_RING_F_INDIRECT_DESC) |
		      (flags & FUZZ_CH_EVENT_IDX ? FEAT(VIRTIO_RING_F_EVENT_IDX) : 0);
	fixture_reset(fix);
	ret = fixture_ring_init(fix, r->packed, r->num, r->features, fix_fresh_base(r->packed),
				fix->mem);
	if (ret)
		return ret;

	while (in->n && r->nr < FUZZ_CH_MAX_REQS) {
		struct fuzz_chain *c = &r->chains[r->nr];
		unsigned int nseg = 1 + fuzz_u8(in) % FUZZ_CH_MAX_SEG;
		uint8_t sflags[FUZZ_CH_MAX_SEG];
		unsigned int ndesc = r->indirect ? 1 : nseg;
		void *table = NULL;
		uint64_t table_gpa = 0;

		if (r->slot + ndesc > r->num)
			break;
		memset(c, 0, sizeof(*c));
		c->nseg = nseg;
		for (unsigned int i = 0; i < nseg; i++) {
			sflags[i] = fuzz_u8(in);
			c->len[i] = (sflags[i] & 4) ? 0 : fuzz_u16(in) % FUZZ_CH_MAX_LEN;
			c->writable[i] = sflags[i] & 1;
		}
		for (unsigned int i = 0; i < nseg; i++) {
			/* At least one byte, so an empty descriptor still has an address. */
			c->seg[i] = fuzz_ring_alloc(fix, r, c->len[i] ? c->len[i] : 1,
						    sflags[i] & 2);
			if (!c->seg[i])
				return 0;
			if (c->writable[i]) {
				memset(c->seg[i], 0xa5, c->len[i]);
				c->in_len += c->len[i];
			} else {
				fuzz_bytes(in, c->seg[i], c->len[i]);
			}
		}
		if (r->indirect) {
			table = fuzz_ring_alloc(fix, r, 16u * nseg, false);
			if (!table)
				return 0;
			table_gpa = fixture_gpa(fix, table);
		}
		c->head = r->slot;
		for (unsigned int i = 0; i < nseg; i++) {
			uint16_t df = (c->writable[i] ? VRING_DESC_F_WRITE : 0);
			uint64_t gpa = fixture_gpa(fix, c->seg[i]);

			if (r->packed && r->indirect) {
				fix_packed_table_desc(table, (uint16_t)i, gpa, c->len[i], df);
			} else if (r->packed) {
				if (i + 1 < nseg)
					df |= VRING_DESC_F_NEXT;
				/* Heads last: the chain appears all at once. */
				if (i)
					fix_packed_desc(fix, (uint16_t)(r->slot + i), gpa,
							c->len[i], c->head, df);
			} else {
				if (i + 1 < nseg)
					df |= VRING_DESC_F_NEXT;
				fix_split_desc(r->indirect ? table : (void *)fix->desc,
					       (uint16_t)(r->indirect ? i : r->slot + i), gpa,
					       c->len[i], df,
					       (uint16_t)(r->indirect ? i + 1 : r->slot + i + 1));
			}
		}
		if (r->packed) {
			if (r->indirect)
				fix_packed_desc(fix, r->slot, table_gpa, 16u * nseg, c->head,
						VRING_DESC_F_INDIRECT);
			else
				fix_packed_desc(fix, r->slot, fixture_gpa(fix, c->seg[0]), c->len[0],
						c->head,
						(c->writable[0] ? VRING_DESC_F_WRITE : 0) |
							(nseg > 1 ? VRING_DESC_F_NEXT : 0));
		} else {
			if (r->indirect)
				fix_split_desc(fix->desc, r->slot, table_gpa, 16u * nseg,
					       VRING_DESC_F_INDIRECT, 0);
			fix_split_avail(fix, r->slot);
		}
		r->slot = (uint16_t)(r->slot + ndesc);
		r->nr++;
	}
	return 0;
}

/* The chain whose head (split) or buffer id (packed) is @id, or NULL. */
static inline struct fuzz_chain *fuzz_ring_chain(struct fuzz_ring *r, uint32_t id)
{
	for (unsigned int i = 0; i < r->nr; i++) {
		if (r->chains[i].head == id)
			return &r->chains[i];
	}
	return NULL;
}

/* Byte @off of the chain's writable space (0 .. in_len - 1). */
static inline uint8_t *fuzz_chain_in_byte(struct fuzz_chain *c, uint32_t off)
{
	for (unsigned int i = 0; i < c->nseg; i++) {
		if (!c->writable[i])
			continue;
		if (off < c->len[i])
			return c->seg[i] + off;
		off -= c->len[i];
	}
	return NULL;
}

#endif /* VHOSTD_TESTS_FUZZ_CHAIN_H */
