/* SPDX-License-Identifier: MIT */
/*
 * fuzz_ring.h - the input format of fuzz_virtq_pop, shared with the seed
 * corpus generator.
 *
 * An input is a 16-byte header and then the raw bytes of guest memory:
 * region A (FUZZ_A_SIZE bytes: the ring at offset 0, then anything,
 * typically indirect tables and buffers) and then region B (FUZZ_B_SIZE
 * bytes).  Short inputs leave the rest zero.  The guest-physical map is
 * ring_fixture.h's: A at FIX_GPA_A, B right after it but elsewhere in host
 * memory, so straddling chains are in reach.
 */
#ifndef VHOSTD_TESTS_FUZZ_RING_H
#define VHOSTD_TESTS_FUZZ_RING_H

#include <stddef.h>
#include <stdint.h>

#define FUZZ_A_SIZE  8192u
#define FUZZ_B_SIZE  4096u
#define FUZZ_MAX_NUM 256u
#define FUZZ_MAX_IOV 64u

/* fuzz_hdr.flags */
#define FUZZ_F_PACKED	 0x01
#define FUZZ_F_INDIRECT	 0x02 /* negotiate VIRTIO_RING_F_INDIRECT_DESC */
#define FUZZ_F_EVENT_IDX 0x04
#define FUZZ_F_REGION_B	 0x08 /* map B too (else A only) */
/*
 * Rewrite every descriptor address in the ring (and every 16-aligned one in
 * A after it, where tables usually are) to FIX_GPA_A + (addr & 0x3fff):
 * A, B and a hole after them.  Lets mutation reach valid addresses.
 */
#define FUZZ_F_COMPACT_ADDR    0x10
#define FUZZ_F_COMPACT_LEN     0x20 /* likewise lengths &= 0x1fff */
#define FUZZ_F_NOTIFY_ON_EMPTY 0x40
#define FUZZ_F_PUSH_EACH       0x80 /* complete each chain right after its pop */

struct fuzz_hdr {
	uint8_t flags;
	uint8_t qsize;	  /* split: 1 << (qsize % 9); packed: qsize, 0 = 256 */
	uint8_t max_iov;  /* the element holds 1 + max_iov % FUZZ_MAX_IOV iovecs */
	uint8_t order;	  /* completion order: 0 in order, 1 reversed, else shuffled */
	uint16_t base;	  /* virtq_config.base, little-endian */
	uint8_t fill[10]; /* used length chosen per element: fill/255 of in_len */
} __attribute__((packed));

_Static_assert(sizeof(struct fuzz_hdr) == 16, "fuzz header is 16 bytes");

/* libFuzzer's entry point (fuzz_virtq_pop.c). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif /* VHOSTD_TESTS_FUZZ_RING_H */
