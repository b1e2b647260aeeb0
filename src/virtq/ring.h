/* SPDX-License-Identifier: MIT */
/*
 * ring.h - virtqueue memory layouts from the virtio 1.2 specification.
 *
 * Everything both sides of a ring agree on lives here: the split ring
 * (2.7) and packed ring (2.8) structures, their flags, the feature bits that
 * change how a ring is walked, the size/alignment helpers and the
 * little-endian accessors.  No state and no policy: device.c and driver.c
 * build on this.
 *
 * All multi-byte fields are little-endian in ring memory (virtio 1.x).  The
 * ring is shared with a peer we do not trust, so every read of a field the
 * peer may write goes through one of the vq_read* accessors below, which
 * load the value exactly once (a volatile access: the compiler may neither
 * repeat nor tear it).
 */
#ifndef VHOSTD_VIRTQ_RING_H
#define VHOSTD_VIRTQ_RING_H

#include <endian.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest queue the spec allows (2.6: Queue Size up to 32768). */
#define VIRTQ_MAX_SIZE 32768u

/* Feature bits that shape the ring (6, "Reserved Feature Bits"). */
#define VIRTIO_F_NOTIFY_ON_EMPTY 24
#define VIRTIO_F_ANY_LAYOUT 27
#define VIRTIO_RING_F_INDIRECT_DESC 28
#define VIRTIO_RING_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32
#define VIRTIO_F_ACCESS_PLATFORM 33
#define VIRTIO_F_RING_PACKED 34
#define VIRTIO_F_IN_ORDER 35
#define VIRTIO_F_ORDER_PLATFORM 36

/* Device status bits (2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 64
#define VIRTIO_STATUS_FAILED 128

/* Descriptor flags, common to both layouts (2.7.5, 2.8.13). */
#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2
#define VRING_DESC_F_INDIRECT 4
/* Packed ring only (2.8.1): the driver's and device's wrap-counter bits. */
#define VRING_PACKED_DESC_F_AVAIL (1u << 7)
#define VRING_PACKED_DESC_F_USED (1u << 15)

/* Split ring suppression flags (2.7.7, 2.7.10). */
#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VRING_USED_F_NO_NOTIFY 1

/* Packed ring event suppression (2.8.10). */
#define VRING_PACKED_EVENT_FLAG_ENABLE 0
#define VRING_PACKED_EVENT_FLAG_DISABLE 1
#define VRING_PACKED_EVENT_FLAG_DESC 2
/* off_wrap: bits 0..14 a descriptor offset, bit 15 the wrap counter. */
#define VRING_PACKED_EVENT_WRAP_SHIFT 15

/* vhost-user packs the packed ring's wrap counter into bit 15 of a ring base. */
#define VIRTQ_PACKED_WRAP_BIT 15

/* --- split ring (2.7) --- */

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vring_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[];
	/* uint16_t used_event follows ring[num] (VIRTIO_RING_F_EVENT_IDX) */
};

struct vring_used_elem {
	uint32_t id;
	uint32_t len;
};

struct vring_used {
	uint16_t flags;
	uint16_t idx;
	struct vring_used_elem ring[];
	/* uint16_t avail_event follows ring[num] (VIRTIO_RING_F_EVENT_IDX) */
};

/* Alignment the 1.x spec requires of each part (2.7, table "Alignment"). */
#define VRING_DESC_ALIGN 16
#define VRING_AVAIL_ALIGN 2
#define VRING_USED_ALIGN 4
/* The legacy interface put the used ring on its own page. */
#define VRING_LEGACY_ALIGN 4096

static inline uint64_t vring_align(uint64_t x, uint64_t align)
{
	return (x + align - 1) & ~(align - 1);
}

static inline size_t vring_desc_size(unsigned int num)
{
	return sizeof(struct vring_desc) * num;
}

/* Avail ring bytes, including the trailing used_event word. */
static inline size_t vring_avail_size(unsigned int num)
{
	return sizeof(struct vring_avail) + sizeof(uint16_t) * num + sizeof(uint16_t);
}

/* Used ring bytes, including the trailing avail_event word. */
static inline size_t vring_used_size(unsigned int num)
{
	return sizeof(struct vring_used) + sizeof(struct vring_used_elem) * num +
	       sizeof(uint16_t);
}

/*
 * Bytes for a contiguous split ring: descriptors, then the avail ring, then
 * the used ring starting at the next multiple of @align (VRING_USED_ALIGN for
 * a 1.x ring, VRING_LEGACY_ALIGN for the legacy layout).
 */
static inline size_t vring_split_size(unsigned int num, unsigned long align)
{
	return vring_align(vring_desc_size(num) + vring_avail_size(num), align) +
	       vring_used_size(num);
}

/* Where used_event / avail_event live: just past the last ring entry. */
static inline uint16_t *vring_used_event(struct vring_avail *avail, unsigned int num)
{
	return &avail->ring[num];
}

static inline uint16_t *vring_avail_event(struct vring_used *used, unsigned int num)
{
	return (uint16_t *)&used->ring[num];
}

/*
 * 2.7.10.2 / 2.7.7.2: should the side that just moved its index from @old to
 * @new_idx notify, given the peer asked to hear once @event_idx is passed?
 * All arithmetic is modulo 2^16 on purpose.
 */
static inline bool vring_need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event_idx - 1) < (uint16_t)(new_idx - old);
}

/* --- packed ring (2.8) --- */

struct vring_packed_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t id;
	uint16_t flags;
};

struct vring_packed_desc_event {
	uint16_t off_wrap;
	uint16_t flags;
};

#define VRING_PACKED_DESC_ALIGN 16
#define VRING_PACKED_EVENT_ALIGN 4

/* Bytes for a contiguous packed ring: descriptors, driver area, device area. */
static inline size_t vring_packed_size(unsigned int num)
{
	return vring_align(sizeof(struct vring_packed_desc) * num, VRING_PACKED_EVENT_ALIGN) +
	       2 * sizeof(struct vring_packed_desc_event);
}

/* --- little-endian accessors for memory the peer can write --- */

static inline uint16_t vq_read16(const void *p)
{
	return le16toh(*(const volatile uint16_t *)p);
}

static inline uint32_t vq_read32(const void *p)
{
	return le32toh(*(const volatile uint32_t *)p);
}

static inline uint64_t vq_read64(const void *p)
{
	return le64toh(*(const volatile uint64_t *)p);
}

static inline void vq_write16(void *p, uint16_t v)
{
	*(volatile uint16_t *)p = htole16(v);
}

static inline void vq_write32(void *p, uint32_t v)
{
	*(volatile uint32_t *)p = htole32(v);
}

static inline void vq_write64(void *p, uint64_t v)
{
	*(volatile uint64_t *)p = htole64(v);
}

/*
 * Ordered index/flags accesses.  These are the points where the spec needs
 * ordering between the ring index (or a packed descriptor's flags) and the
 * data it publishes: a release store publishes everything written before
 * it, an acquire load makes everything the peer published before its
 * release visible.  The objects are plain uint16_t in shared memory, so we
 * use the GCC/Clang __atomic builtins (the C11 _Atomic qualifier would change
 * the shared layout's type, not its bytes; the builtins give the same C11
 * memory-model semantics).
 */
static inline uint16_t vq_load_acquire16(const void *p)
{
	return le16toh(__atomic_load_n((const uint16_t *)p, __ATOMIC_ACQUIRE));
}

static inline void vq_store_release16(void *p, uint16_t v)
{
	__atomic_store_n((uint16_t *)p, htole16(v), __ATOMIC_RELEASE);
}

/*
 * Full barrier between our store (index / event flag) and our next load of
 * the peer's index: the store-load ordering that stops both sides from going
 * to sleep at once (2.7.7.2 "re-check after enabling notifications").
 */
static inline void vq_mb(void)
{
	atomic_thread_fence(memory_order_seq_cst);
}

#endif /* VHOSTD_VIRTQ_RING_H */
