/* SPDX-License-Identifier: MIT */
/*
 * fuzz_inflight.h - the input format of fuzz_inflight (fuzz_inflight.c),
 * shared with the seed corpus generator (gen_dev_corpus.c).
 *
 * An input is this header, then nr_ops op bytes (phase 2), then the bytes
 * of the in-flight region (inflight_num_queues parts of
 * VU_INFLIGHT_STRIDE(inflight_queue_size) bytes; short inputs leave the
 * rest zero).  An op byte: low two bits 0 pop, 1 complete (fill), 2
 * publish, 3 crash (with bit 7: right after the used index went out,
 * before the batch was cleared); the head is (op >> 2) % ring size.
 */
#ifndef VHOSTD_TESTS_FUZZ_INFLIGHT_H
#define VHOSTD_TESTS_FUZZ_INFLIGHT_H

#include <stdint.h>

#define FI_MAX_QSIZE  160u /* ring sizes 1..FI_MAX_QSIZE */
#define FI_MAX_QUEUES 2u

/* fuzz_inflight_hdr.flags */
#define FI_PACKED		0x01 /* VIRTIO_F_RING_PACKED negotiated */
#define FI_NO_PROTOCOL_FEATURE	0x02 /* INFLIGHT_SHMFD not negotiated */
#define FI_NO_REGION		0x04 /* no SET_INFLIGHT_FD */

struct fuzz_inflight_hdr {
	uint8_t flags;
	uint8_t qsize;	      /* the ring: 1 + qsize % FI_MAX_QSIZE entries */
	uint8_t region_qsize; /* the region's queue size: see fuzz_inflight.c */
	uint8_t queues;	      /* low nibble: region's queues - 1; high: ring index */
	uint16_t used_idx;    /* the used ring's idx, little-endian */
	uint16_t base;	      /* the front-end's SET_VRING_BASE, little-endian */
	uint8_t nr_ops;
	uint8_t pad[3];
} __attribute__((packed));

_Static_assert(sizeof(struct fuzz_inflight_hdr) == 12, "fuzz header is 12 bytes");

#endif /* VHOSTD_TESTS_FUZZ_INFLIGHT_H */
