// SPDX-License-Identifier: MIT
/*
 * guarded.c - guard pages and canaries.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "guarded.h"
#include "test_util.h"

size_t test_page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

void guarded_alloc(struct guarded *g, size_t size)
{
	size_t page = test_page_size();

	g->size = (size + page - 1) / page * page;
	g->total = g->size + 2 * page;
	g->base = mmap(NULL, g->total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (g->base == MAP_FAILED)
		FAIL("mmap %zu bytes: %m", g->total);
	g->mem = (uint8_t *)g->base + page;
	if (mprotect(g->mem, g->size, PROT_READ | PROT_WRITE))
		FAIL("mprotect: %m");
}

void guarded_free(struct guarded *g)
{
	if (g->base)
		munmap(g->base, g->total);
	g->base = NULL;
	g->mem = NULL;
}

void guarded_protect(void *p, size_t len)
{
	if (mprotect(p, len, PROT_NONE))
		FAIL("mprotect PROT_NONE: %m");
}

void *reserve_untouchable(size_t size)
{
	void *p = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		FAIL("reserve %zu bytes of address space: %m", size);
	return p;
}

void release_untouchable(void *p, size_t size)
{
	munmap(p, size);
}

static uint8_t canary_byte(size_t i, uint8_t seed)
{
	/* Not a constant: a stray memset of any single value is caught too. */
	return (uint8_t)(seed ^ (i * 131) ^ (i >> 7) ^ 0x5a);
}

void canary_fill(void *p, size_t len, uint8_t seed)
{
	uint8_t *b = p;

	for (size_t i = 0; i < len; i++)
		b[i] = canary_byte(i, seed);
}

long canary_check(const void *p, size_t len, uint8_t seed)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < len; i++) {
		if (b[i] != canary_byte(i, seed))
			return (long)i;
	}
	return -1;
}
