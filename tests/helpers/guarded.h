/* SPDX-License-Identifier: MIT */
/*
 * guarded.h - memory with PROT_NONE guard pages around it, and canaries.
 *
 * A device-side bug that walks off the end of guest memory should crash on
 * the spot (a guard page), and one that writes somewhere it should not but
 * still inside our mapping should be caught afterwards (a canary).
 */
#ifndef VHOSTD_TESTS_GUARDED_H
#define VHOSTD_TESTS_GUARDED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct guarded {
	uint8_t *mem; /* first usable byte, page aligned */
	size_t size;  /* usable bytes, a multiple of the page size */
	void *base;   /* the whole mapping, guard pages included */
	size_t total;
};

size_t test_page_size(void);

/* Map @size bytes (rounded up to pages) between two PROT_NONE pages; exits on failure. */
void guarded_alloc(struct guarded *g, size_t size);
void guarded_free(struct guarded *g);

/* Make a page-aligned part of a guarded mapping inaccessible. */
void guarded_protect(void *p, size_t len);

/*
 * Reserve @size bytes of address space that may never be touched: a region
 * the device may translate addresses into but must not access at pop time.
 */
void *reserve_untouchable(size_t size);
void release_untouchable(void *p, size_t size);

/* Fill / verify a canary; canary_check() returns the first bad offset or -1. */
void canary_fill(void *p, size_t len, uint8_t seed);
long canary_check(const void *p, size_t len, uint8_t seed);

#endif /* VHOSTD_TESTS_GUARDED_H */
