/* SPDX-License-Identifier: MIT */
/*
 * blk_test.h - what the virtio-blk tests share besides the checks of
 * check.h: temporary image files that remove themselves, patterned
 * contents, and looks at what a file holds (holes, zeroes, patterns).
 */
#ifndef VHOSTD_TESTS_DEVICES_BLK_TEST_H
#define VHOSTD_TESTS_DEVICES_BLK_TEST_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
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

/* [off, off+len) of @fd is one hole: no data starts inside it. */
static inline bool blk_test_is_hole(int fd, off_t off, off_t len)
{
	off_t d;

	if (lseek(fd, off, SEEK_HOLE) != off)
		return false;
	d = lseek(fd, off, SEEK_DATA);
	return d < 0 || d >= off + len;
}

/* 512-byte blocks allocated to @fd. */
static inline blkcnt_t blk_test_file_blocks(int fd)
{
	struct stat st;

	CHECK_EQ(fstat(fd, &st), 0);
	return st.st_blocks;
}

static inline bool blk_test_all_zero(int fd, off_t off, size_t len)
{
	unsigned char buf[4096];

	while (len) {
		size_t n = len < sizeof(buf) ? len : sizeof(buf);

		CHECK_EQ(pread(fd, buf, n, off), (ssize_t)n);
		for (size_t i = 0; i < n; i++) {
			if (buf[i])
				return false;
		}
		off += (off_t)n;
		len -= n;
	}
	return true;
}

/* [off, off+len) holds blk_test_byte(@seed, file offset). */
static inline bool blk_test_matches(int fd, off_t off, size_t len, unsigned int seed)
{
	unsigned char *buf = malloc(len);
	bool ok = true;

	CHECK(buf);
	CHECK_EQ(pread(fd, buf, len, off), (ssize_t)len);
	for (size_t i = 0; i < len && ok; i++)
		ok = buf[i] == blk_test_byte(seed, (size_t)off + i);
	free(buf);
	return ok;
}

#endif /* VHOSTD_TESTS_DEVICES_BLK_TEST_H */
