/* SPDX-License-Identifier: MIT */
/*
 * util.h - the few macros every module wants, defined once.
 */
#ifndef VHOSTD_COMMON_UTIL_H
#define VHOSTD_COMMON_UTIL_H

#include <stddef.h>

/* The struct that embeds @ptr as its @member (kernel idiom). */
#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Branch hints for checks that fail only when a peer misbehaves. */
#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/*
 * Start pulling @p's cache line in ahead of use (prefetchw: to write it).
 * Only a hint: it never faults, so any address is fine.
 */
#define prefetch(p)  __builtin_prefetch((p), 0, 3)
#define prefetchw(p) __builtin_prefetch((p), 1, 3)

/* One round of a spin-wait: tell the CPU we are waiting (and let a sibling thread run). */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

#endif /* VHOSTD_COMMON_UTIL_H */
