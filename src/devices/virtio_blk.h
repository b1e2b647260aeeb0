/* SPDX-License-Identifier: MIT */
/*
 * virtio_blk.h - the virtio block device's wire format (virtio 1.2, 5.2):
 * feature bits, request types and status codes, the request header, the
 * discard / write-zeroes segment and the configuration space.
 *
 * Everything here is little-endian on the wire and in config space.  Our
 * own definitions (the numbers are the spec's, as in Linux's
 * include/uapi/linux/virtio_blk.h), so that the build needs no kernel
 * headers and the layout is checked by static asserts below.
 */
#ifndef VHOSTD_DEVICES_VIRTIO_BLK_H
#define VHOSTD_DEVICES_VIRTIO_BLK_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

/* Virtio device ID (5, "Device Types"). */
#define VIRTIO_ID_BLOCK 2

/* Feature bits (5.2.3). */
#define VIRTIO_BLK_F_SIZE_MAX	  1  /* size_max is the largest segment */
#define VIRTIO_BLK_F_SEG_MAX	  2  /* seg_max is the most segments per request */
#define VIRTIO_BLK_F_GEOMETRY	  4  /* legacy geometry is valid */
#define VIRTIO_BLK_F_RO		  5  /* the device is read-only */
#define VIRTIO_BLK_F_BLK_SIZE	  6  /* blk_size is the logical block size */
#define VIRTIO_BLK_F_FLUSH	  9  /* the FLUSH command exists (legacy: WCE) */
#define VIRTIO_BLK_F_TOPOLOGY	  10 /* topology fields are valid */
#define VIRTIO_BLK_F_CONFIG_WCE	  11 /* the driver may toggle writeback */
#define VIRTIO_BLK_F_MQ		  12 /* num_queues is valid */
#define VIRTIO_BLK_F_DISCARD	  13 /* the DISCARD command exists */
#define VIRTIO_BLK_F_WRITE_ZEROES 14 /* the WRITE_ZEROES command exists */
#define VIRTIO_BLK_F_LIFETIME	  15 /* GET_LIFETIME (not offered) */
#define VIRTIO_BLK_F_SECURE_ERASE 16 /* SECURE_ERASE (not offered) */
#define VIRTIO_BLK_F_ZONED	  17 /* zoned block device (not offered) */

/* Request types (5.2.6). */
#define VIRTIO_BLK_T_IN		  0
#define VIRTIO_BLK_T_OUT	  1
#define VIRTIO_BLK_T_FLUSH	  4
#define VIRTIO_BLK_T_GET_ID	  8
#define VIRTIO_BLK_T_GET_LIFETIME 10
#define VIRTIO_BLK_T_DISCARD	  11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_T_SECURE_ERASE 14

/* Status byte values (5.2.6). */
#define VIRTIO_BLK_S_OK	    0
#define VIRTIO_BLK_S_IOERR  1
#define VIRTIO_BLK_S_UNSUPP 2

/* GET_ID writes at most this many bytes, not NUL-terminated if full. */
#define VIRTIO_BLK_ID_BYTES 20

/* Sectors are always 512 bytes, whatever blk_size says (5.2.6). */
#define VIRTIO_BLK_SECTOR_SHIFT 9
#define VIRTIO_BLK_SECTOR_SIZE	(1u << VIRTIO_BLK_SECTOR_SHIFT)

/*
 * The device-readable header every request starts with (5.2.6).  The
 * driver may split it over several descriptors (2.6.4, message framing),
 * so it is gathered with iov_to_buf(), never read in place.
 */
struct virtio_blk_outhdr {
	uint32_t type;	 /* le32 VIRTIO_BLK_T_* */
	uint32_t ioprio; /* le32, "reserved" in 1.2 */
	uint64_t sector; /* le64, 512-byte units; 0 for non-I/O commands */
};
static_assert(sizeof(struct virtio_blk_outhdr) == 16, "virtio_blk_outhdr layout");

/* One range of a DISCARD or WRITE_ZEROES request (5.2.6). */
struct virtio_blk_discard_write_zeroes {
	uint64_t sector;      /* le64 */
	uint32_t num_sectors; /* le32 */
	uint32_t flags;	      /* le32: bit 0 unmap, bits 1..31 reserved */
};
static_assert(sizeof(struct virtio_blk_discard_write_zeroes) == 16, "discard segment layout");

#define VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP 1u

struct virtio_blk_geometry {
	uint16_t cylinders;
	uint8_t heads;
	uint8_t sectors;
};

struct virtio_blk_topology {
	uint8_t physical_block_exp; /* log2(physical / logical block) */
	uint8_t alignment_offset;   /* first aligned logical block */
	uint16_t min_io_size;	    /* le16, in logical blocks */
	uint32_t opt_io_size;	    /* le32, in logical blocks */
};

/*
 * Configuration space (5.2.4), up to the secure-erase fields.  The zoned
 * characteristics that follow in 1.2 are not offered; config reads past
 * this struct return zeroes.
 */
struct virtio_blk_config {
	uint64_t capacity; /* in 512-byte sectors */
	uint32_t size_max;
	uint32_t seg_max;
	struct virtio_blk_geometry geometry;
	uint32_t blk_size;
	struct virtio_blk_topology topology;
	uint8_t writeback; /* CONFIG_WCE: 0 writethrough, 1 writeback */
	uint8_t unused0;
	uint16_t num_queues;
	uint32_t max_discard_sectors;
	uint32_t max_discard_seg;
	uint32_t discard_sector_alignment;
	uint32_t max_write_zeroes_sectors;
	uint32_t max_write_zeroes_seg;
	uint8_t write_zeroes_may_unmap;
	uint8_t unused1[3];
	uint32_t max_secure_erase_sectors;
	uint32_t max_secure_erase_seg;
	uint32_t secure_erase_sector_alignment;
} __attribute__((packed));

static_assert(offsetof(struct virtio_blk_config, geometry) == 16, "config layout");
static_assert(offsetof(struct virtio_blk_config, blk_size) == 20, "config layout");
static_assert(offsetof(struct virtio_blk_config, writeback) == 32, "config layout");
static_assert(offsetof(struct virtio_blk_config, num_queues) == 34, "config layout");
static_assert(offsetof(struct virtio_blk_config, max_discard_sectors) == 36, "config layout");
static_assert(offsetof(struct virtio_blk_config, write_zeroes_may_unmap) == 56, "config layout");
static_assert(sizeof(struct virtio_blk_config) == 72, "config layout");

#endif /* VHOSTD_DEVICES_VIRTIO_BLK_H */
