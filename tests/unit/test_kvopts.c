// SPDX-License-Identifier: MIT
/*
 * test_kvopts.c - the value parsers every device model's options use
 * (common/kvopts.c): kv_parse_uint at its bounds, including maxima below
 * 9, where a digit larger than the maximum once wrapped the overflow check
 * and let "7" pass for a maximum of 5.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>

#include "check.h"
#include "common/kvopts.h"

static int parse(const char *v, unsigned long min, unsigned long max, unsigned long *out)
{
	*out = 12345;
	return kv_parse_uint(v, min, max, out);
}

int main(void)
{
	unsigned long n;
	char buf[32];

	/* Every value of a small range, and the next one up. */
	for (unsigned long max = 0; max < 12; max++) {
		for (unsigned long v = 0; v <= max + 1; v++) {
			snprintf(buf, sizeof(buf), "%lu", v);
			if (v <= max) {
				CHECK_EQ(parse(buf, 0, max, &n), 0);
				CHECK_EQ(n, v);
			} else {
				CHECK_EQ(parse(buf, 0, max, &n), -ERANGE);
				CHECK_EQ(n, 12345ul); /* untouched on error */
			}
		}
	}
	CHECK_EQ(parse("9", 0, 5, &n), -ERANGE);
	CHECK_EQ(parse("07", 0, 5, &n), -ERANGE);
	CHECK_EQ(parse("05", 0, 5, &n), 0);
	CHECK_EQ(parse("0", 1, 5, &n), -ERANGE);
	CHECK_EQ(parse("", 0, 5, &n), -EINVAL);
	CHECK_EQ(parse("1x", 0, 5, &n), -EINVAL);
	CHECK_EQ(parse("-1", 0, 5, &n), -EINVAL);
	CHECK_EQ(parse("+1", 0, 5, &n), -EINVAL);

	/* The top of the type. */
	snprintf(buf, sizeof(buf), "%lu", ULONG_MAX);
	CHECK_EQ(parse(buf, 0, ULONG_MAX, &n), 0);
	CHECK_EQ(n, ULONG_MAX);
	snprintf(buf, sizeof(buf), "%lu0", ULONG_MAX);
	CHECK_EQ(parse(buf, 0, ULONG_MAX, &n), -ERANGE);
	CHECK_EQ(parse("18446744073709551616", 0, ULONG_MAX, &n), -ERANGE);
	snprintf(buf, sizeof(buf), "%lu", ULONG_MAX - 1);
	CHECK_EQ(parse(buf, 0, ULONG_MAX - 1, &n), 0);
	snprintf(buf, sizeof(buf), "%lu", ULONG_MAX);
	CHECK_EQ(parse(buf, 0, ULONG_MAX - 1, &n), -ERANGE);

	/* Byte counts with suffixes ride on it. */
	uint64_t b;

	CHECK_EQ(kv_parse_bytes("4k", &b), 0);
	CHECK_EQ(b, 4096ull);
	CHECK_EQ(kv_parse_bytes("16777215t", &b), 0);
	CHECK_EQ(b, 16777215ull << 40);
	CHECK_EQ(kv_parse_bytes("16777216t", &b), -EINVAL);
	CHECK_EQ(kv_parse_bytes("0", &b), -EINVAL);
	printf("ok\n");
	return 0;
}
