/* SPDX-License-Identifier: MIT */
/*
 * ring_pair.h - both ends of one ring in one program: the device side of a
 * ring that our driver side (virtq_drv.h) laid out.  Shared by the
 * two-sided stress test (tests/stress) and the ring benchmark (bench/ring.c).
 *
 * The driver side puts its rings in a block of memory that the device knows
 * by an address of its own (virtq_drv_new()'s mem_dma).  The device side
 * reaches them through a memory map holding that block, as a vhost-user
 * back-end does after SET_MEM_TABLE and SET_VRING_ADDR: each area is
 * translated with its layout's size, so a ring that does not lie wholly
 * inside the map is refused here rather than walked.
 */
#ifndef VHOSTD_TESTS_RING_PAIR_H
#define VHOSTD_TESTS_RING_PAIR_H

#include <stdint.h>

#include "virtq/virtq.h"
#include "virtq/virtq_drv.h"

/*
 * Fill @vc for the ring of @num entries at @addrs (virtq_drv_get_addrs()),
 * translated through @mem (borrowed into vc->mem), at a fresh base.
 * Returns 0, or -EFAULT if an area is not inside @mem.
 */
int ring_pair_config(struct virtq_config *vc, struct memmap *mem,
		     const struct virtq_drv_addrs *addrs, uint16_t num, uint64_t features,
		     const char *name);

#endif /* VHOSTD_TESTS_RING_PAIR_H */
