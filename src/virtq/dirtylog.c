// SPDX-License-Identifier: MIT
/*
 * dirtylog.c - setting bits in the dirty-page log (dirtylog.h).
 *
 * Only called while logging is on (a migration is running), so it favours
 * being obviously right over being fast: one atomic OR per page, no cache
 * of bits already seen set (the front-end may clear a bit at any moment,
 * and a skipped OR would then lose the page).
 */
#include "dirtylog.h"

static void dlog_set_page(const struct dlog *log, uint64_t page)
{
	uint64_t byte = page >> 3;

	if (byte >= log->size)
		return;
	/*
	 * Release: the data we wrote to this page (by the CPU, or by the
	 * kernel for an io_uring read whose completion we have consumed) is
	 * visible to whoever sees the bit; pairs with the front-end's
	 * exchange that collects and clears it.
	 */
	__atomic_fetch_or(&log->bits[byte], (uint8_t)(1u << (page & 7)), __ATOMIC_RELEASE);
}

void dlog_mark_gpa(const struct dlog *log, uint64_t gpa, uint64_t len)
{
	uint64_t first, last;

	if (!len)
		return;
	first = gpa >> DLOG_PAGE_SHIFT;
	/* A range that would wrap the address space is cut at its end. */
	last = (gpa + len - 1 < gpa ? UINT64_MAX : gpa + len - 1) >> DLOG_PAGE_SHIFT;
	for (uint64_t page = first; page <= last; page++) {
		if ((page >> 3) >= log->size)
			return;
		dlog_set_page(log, page);
	}
}

void dlog_mark_hva(const struct dlog *log, const struct memmap *mem, const void *hva, size_t len)
{
	uint64_t gpa;

	if (len && memmap_hva_to_gpa(mem, hva, len, &gpa))
		dlog_mark_gpa(log, gpa, len);
}

void dlog_mark_iov(const struct dlog *log, const struct memmap *mem, const struct iovec *iov,
		   unsigned int cnt, size_t len)
{
	for (unsigned int i = 0; i < cnt && len; i++) {
		size_t n = iov[i].iov_len < len ? iov[i].iov_len : len;

		dlog_mark_hva(log, mem, iov[i].iov_base, n);
		len -= n;
	}
}
