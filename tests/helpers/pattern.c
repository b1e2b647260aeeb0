// SPDX-License-Identifier: MIT
/*
 * pattern.c - reproducible byte streams.
 */
#include <string.h>

#include "pattern.h"

/* Eight bytes of stream @seed at block @blk (a stateless mix). */
static uint64_t pattern_word(uint64_t seed, uint64_t blk)
{
	uint64_t z = seed * 0x9e3779b97f4a7c15ull + blk * 0xd1b54a32d192ed03ull + 1;

	z = (z ^ (z >> 32)) * 0xd6e8feb86659fd93ull;
	return z ^ (z >> 32);
}

static uint8_t pattern_byte(uint64_t seed, uint64_t off)
{
	return (uint8_t)(pattern_word(seed, off / 8) >> (8 * (off % 8)));
}

void pattern_fill(void *buf, size_t len, uint64_t seed, uint64_t off)
{
	uint8_t *b = buf;
	size_t i = 0;

	for (; i < len && (off + i) % 8; i++)
		b[i] = pattern_byte(seed, off + i);
	for (; i + 8 <= len; i += 8) {
		uint64_t w = pattern_word(seed, (off + i) / 8);

		/* Little-endian byte order, the same as pattern_byte(). */
		for (int k = 0; k < 8; k++)
			b[i + k] = (uint8_t)(w >> (8 * k));
	}
	for (; i < len; i++)
		b[i] = pattern_byte(seed, off + i);
}

long pattern_check(const void *buf, size_t len, uint64_t seed, uint64_t off)
{
	const uint8_t *b = buf;
	uint8_t tmp[256];

	/* Compare in chunks against a freshly generated copy: memcmp is fast. */
	for (size_t done = 0; done < len;) {
		size_t n = len - done < sizeof(tmp) ? len - done : sizeof(tmp);

		pattern_fill(tmp, n, seed, off + done);
		if (memcmp(tmp, b + done, n)) {
			for (size_t i = 0; i < n; i++) {
				if (tmp[i] != b[done + i])
					return (long)(done + i);
			}
		}
		done += n;
	}
	return -1;
}

/*
 * Walk stream bytes [@skip, @skip + @len) of an iovec array (offsets count
 * from the first byte of iov[0]), calling @fn on each piece; stops at the
 * first piece that reports a bad byte.  A stream shorter than asked for is
 * a mismatch at its end.
 */
static long iov_walk(const struct iovec *iov, unsigned int cnt, size_t skip, size_t len,
		     uint64_t seed, long (*fn)(void *p, size_t n, uint64_t seed, uint64_t off))
{
	size_t pos = 0, end = skip + len;

	for (unsigned int i = 0; i < cnt && skip < end; i++) {
		size_t n = iov[i].iov_len;
		uint8_t *p = iov[i].iov_base;
		long bad;

		if (skip >= pos + n) {
			pos += n;
			continue;
		}
		p += skip - pos;
		n -= skip - pos;
		if (n > end - skip)
			n = end - skip;
		bad = fn(p, n, seed, skip);
		if (bad >= 0)
			return (long)skip + bad;
		pos = skip + n;
		skip = pos;
	}
	return skip < end ? (long)skip : -1;
}

static long fill_piece(void *p, size_t n, uint64_t seed, uint64_t off)
{
	pattern_fill(p, n, seed, off);
	return -1;
}

static long check_piece(void *p, size_t n, uint64_t seed, uint64_t off)
{
	return pattern_check(p, n, seed, off);
}

void pattern_fill_iov(const struct iovec *iov, unsigned int cnt, size_t skip, size_t len,
		      uint64_t seed)
{
	iov_walk(iov, cnt, skip, len, seed, fill_piece);
}

long pattern_check_iov(const struct iovec *iov, unsigned int cnt, size_t skip, size_t len,
		       uint64_t seed)
{
	return iov_walk(iov, cnt, skip, len, seed, check_piece);
}
