/* SPDX-License-Identifier: MIT */
/*
 * dirtylog.h - the dirty-page log of live migration (vhost-user.rst,
 * "Migration"; the log of the kernel's vhost): a bitmap the front-end
 * shares with us, one bit per 4 KiB page of guest-physical memory, bit
 * (gpa / 4096) % 8 of byte gpa / 4096 / 8.  While VHOST_F_LOG_ALL is on,
 * every page the device writes must have its bit set, or the migration
 * thread, which sends only pages that it or the log saw dirtied, leaves
 * the destination with the page as it was before our write.
 *
 * The front-end reads and clears the bitmap concurrently (QEMU: an atomic
 * exchange of 64 bits at a time, then a copy of the pages found), so a bit
 * is set with an atomic OR, and only after the bytes it covers were
 * written: the release order of the OR pairs with the front-end's
 * exchange, so whoever sees the bit also sees the data.  A bit set too
 * early could be cleared and its page sent before our data lands there.
 *
 * Addresses beyond the bitmap are ignored, as the spec's log has no room
 * for them: a front-end sizes its log to cover all of guest memory, and a
 * hostile one gains nothing by making it smaller.
 */
#ifndef VHOSTD_VIRTQ_DIRTYLOG_H
#define VHOSTD_VIRTQ_DIRTYLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "memmap.h"

/* VHOST_LOG_PAGE: one bit covers this many bytes of guest-physical memory. */
#define DLOG_PAGE_SHIFT 12
#define DLOG_PAGE_SIZE	(1ull << DLOG_PAGE_SHIFT)

struct dlog {
	uint8_t *bits;	 /* the shared bitmap */
	uint64_t size;	 /* its bytes: covers size * 8 pages */
	void *mmap_addr; /* the whole mapping (owner's business) */
	size_t mmap_size;
};

/* Mark every page of guest-physical [@gpa, @gpa + @len) dirty (no-op for len 0). */
void dlog_mark_gpa(const struct dlog *log, uint64_t gpa, uint64_t len);

/*
 * Mark [@hva, @hva + @len), a host pointer into guest memory @mem, dirty:
 * translated back through the region that holds it.  A range outside every
 * region (not guest memory at all) is ignored.
 */
void dlog_mark_hva(const struct dlog *log, const struct memmap *mem, const void *hva, size_t len);

/* The first @len bytes of @iov (all of them if @len is SIZE_MAX). */
void dlog_mark_iov(const struct dlog *log, const struct memmap *mem, const struct iovec *iov,
		   unsigned int cnt, size_t len);

#endif /* VHOSTD_VIRTQ_DIRTYLOG_H */
