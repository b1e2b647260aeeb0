/* SPDX-License-Identifier: MIT */
/*
 * blk_test.h - what the virtio-blk tests share besides the checks of
 * check.h: temporary image files that remove themselves, and patterned
 * contents.
 */
#ifndef VHOSTD_TESTS_DEVICES_BLK_TEST_H
#define VHOSTD_TESTS_DEVICES_BLK_TEST_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

/*
 * A sparse temporary file of @size bytes (ext4 / xfs / tmpfs all punch
 * holes).  Under $TMPDIR, else /var/tmp (disk-backed, O_DIRECT works).
 */
static inline int blk_test_image(char *path, size_t path_len, off_t size)
{
	const char *dir = getenv("TMPDIR");
	int fd;

	snprintf(path, path_len, "%s/vhostd-blk-XXXXXX", dir && *dir ? dir : "/var/tmp");
	fd = mkstemp(path);
	if (fd < 0)
		FAIL("mkstemp %s: %s", path, strerror(errno));
	if (ftruncate(fd, size) < 0)
		FAIL("ftruncate: %s", strerror(errno));
	return fd;
}

/* Deterministic contents: byte @i of a sector-pattern with @seed. */
static inline unsigned char blk_test_byte(unsigned int seed, size_t i)
{
	return (unsigned char)((i * 131u + seed * 7u + (i >> 9)) ^ (seed >> 3));
}

static inline void blk_test_fill(void *buf, size_t len, unsigned int seed, size_t base)
{
	unsigned char *p = buf;

	for (size_t i = 0; i < len; i++)
		p[i] = blk_test_byte(seed, base + i);
}

#endif /* VHOSTD_TESTS_DEVICES_BLK_TEST_H */
