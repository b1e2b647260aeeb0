/* SPDX-License-Identifier: MIT */
/*
 * test_util.h - what every ring test needs: the checks of check.h, a
 * seeded PRNG (so a failure can be replayed from its seed), a clock, the
 * iteration scale and a tiny table-driven case runner.
 *
 * Tests are plain programs: exit status 0 passes, anything else (a failed
 * check, a signal from a guard page, a sanitizer report) fails.
 */
#ifndef VHOSTD_TESTS_TEST_UTIL_H
#define VHOSTD_TESTS_TEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "check.h"

/* A small, fast, seedable generator (xoshiro256**, seeded by splitmix64). */
struct test_rng {
	uint64_t s[4];
};

uint64_t splitmix64(uint64_t *state);
void test_rng_seed(struct test_rng *rng, uint64_t seed);
uint64_t test_rng_next(struct test_rng *rng);
/* Uniform in [0, n); n > 0. */
uint32_t test_rng_below(struct test_rng *rng, uint32_t n);
/* Uniform in [lo, hi]. */
uint32_t test_rng_range(struct test_rng *rng, uint32_t lo, uint32_t hi);

/* Seed from $VHOSTD_TEST_SEED, else @fallback; printed so a run can be replayed. */
uint64_t test_seed(uint64_t fallback);

/* Monotonic nanoseconds. */
uint64_t test_now_ns(void);

/* True when built with AddressSanitizer (gcc or clang). */
bool test_under_sanitizer(void);

/*
 * Iteration multiplier: $VHOSTD_STRESS_SCALE (a positive float, default 1)
 * times 1/4 under a sanitizer, where every access is several times slower.
 * test_scaled() applies it to a count and never returns less than @min.
 */
double test_scale(void);
uint64_t test_scaled(uint64_t count, uint64_t min);

/* One named case of a table-driven test. */
struct test_case {
	const char *name;
	void (*fn)(void);
};

/*
 * Run the cases named on the command line (all of them if none), each in
 * its own child process so that a crash from a guard page fails only that
 * case.  "--list" prints the names; "--expect NAME..." checks that the names
 * given (the ones tests/meson.build registers) are exactly the table.
 */
int test_main(int argc, char **argv, const struct test_case *cases, size_t nr);

#endif /* VHOSTD_TESTS_TEST_UTIL_H */
