/* SPDX-License-Identifier: MIT */
/*
 * pattern.h - reproducible byte streams for checking data end to end.
 *
 * Stream @seed is an endless sequence of pseudo-random bytes; both ends of a
 * ring derive the same bytes from the same seed (a request's sequence
 * number), so every byte that crosses the ring can be checked without
 * sending the expected data along.
 */
#ifndef VHOSTD_TESTS_PATTERN_H
#define VHOSTD_TESTS_PATTERN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Write bytes [@off, @off + @len) of stream @seed into @buf. */
void pattern_fill(void *buf, size_t len, uint64_t seed, uint64_t off);
/* Index of the first byte of @buf that differs from the stream, or -1. */
long pattern_check(const void *buf, size_t len, uint64_t seed, uint64_t off);

/*
 * The same over the byte stream an iovec array describes: stream offsets
 * [@skip, @skip + @len), counted from the first byte of iov[0].
 */
void pattern_fill_iov(const struct iovec *iov, unsigned int cnt, size_t skip, size_t len,
		      uint64_t seed);
/* Stream offset of the first bad (or missing) byte, or -1. */
long pattern_check_iov(const struct iovec *iov, unsigned int cnt, size_t skip, size_t len,
		       uint64_t seed);

#endif /* VHOSTD_TESTS_PATTERN_H */
