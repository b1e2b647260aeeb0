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

#endif /* VHOSTD_COMMON_UTIL_H */
