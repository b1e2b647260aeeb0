// SPDX-License-Identifier: MIT
/*
 * test_util.c - PRNG, clock, scale and case runner for the tests.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_util.h"

uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void test_rng_seed(struct test_rng *rng, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		rng->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t test_rng_next(struct test_rng *rng)
{
	uint64_t *s = rng->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

uint32_t test_rng_below(struct test_rng *rng, uint32_t n)
{
	/* Multiply-shift: unbiased enough for a test, and no division. */
	return (uint32_t)(((test_rng_next(rng) >> 32) * n) >> 32);
}

uint32_t test_rng_range(struct test_rng *rng, uint32_t lo, uint32_t hi)
{
	return lo + (uint32_t)(((test_rng_next(rng) >> 32) * ((uint64_t)hi - lo + 1)) >> 32);
}

uint64_t test_seed(uint64_t fallback)
{
	const char *env = getenv("VHOSTD_TEST_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 0) : fallback;

	printf("seed %#" PRIx64 " (replay with VHOSTD_TEST_SEED)\n", seed);
	return seed;
}

uint64_t test_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif

bool test_under_sanitizer(void)
{
#ifdef TEST_ASAN
	return true;
#else
	return false;
#endif
}

double test_scale(void)
{
	const char *env = getenv("VHOSTD_STRESS_SCALE");
	double scale = 1.0;

	if (env && atof(env) > 0)
		scale = atof(env);
	return test_under_sanitizer() ? scale / 4 : scale;
}

uint64_t test_scaled(uint64_t count, uint64_t min)
{
	double n = (double)count * test_scale();

	return n < (double)min ? min : (uint64_t)n;
}

static const struct test_case *find_case(const struct test_case *cases, size_t nr, const char *name)
{
	for (size_t i = 0; i < nr; i++) {
		if (!strcmp(cases[i].name, name))
			return &cases[i];
	}
	return NULL;
}

/* Every case in the table is named in @names and every name is a case. */
static int check_expected(const struct test_case *cases, size_t nr, int n, char **names)
{
	int bad = 0;

	for (size_t i = 0; i < nr; i++) {
		bool found = false;

		for (int j = 0; j < n; j++)
			found |= !strcmp(cases[i].name, names[j]);
		if (!found) {
			fprintf(stderr, "case %s is not registered in tests/meson.build\n",
				cases[i].name);
			bad = 1;
		}
	}
	for (int j = 0; j < n; j++) {
		if (!find_case(cases, nr, names[j])) {
			fprintf(stderr, "tests/meson.build names unknown case %s\n", names[j]);
			bad = 1;
		}
	}
	return bad;
}

/* Run one case in a child: a guard-page crash must not take the others down. */
static bool run_forked(const struct test_case *c)
{
	pid_t pid;
	int status;

	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		perror("fork");
		return false;
	}
	if (pid == 0) {
		c->fn();
		exit(0);
	}
	if (waitpid(pid, &status, 0) < 0) {
		perror("waitpid");
		return false;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return true;
	if (WIFSIGNALED(status))
		fprintf(stderr, "case %s: killed by signal %d\n", c->name, WTERMSIG(status));
	return false;
}

int test_main(int argc, char **argv, const struct test_case *cases, size_t nr)
{
	unsigned int failed = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 1 && !strcmp(argv[1], "--list")) {
		for (size_t i = 0; i < nr; i++)
			printf("%s\n", cases[i].name);
		return 0;
	}
	if (argc > 1 && !strcmp(argv[1], "--expect"))
		return check_expected(cases, nr, argc - 2, argv + 2);
	if (argc == 2) {
		/* One case, as meson registers them: run it in this process. */
		const struct test_case *c = find_case(cases, nr, argv[1]);

		if (!c) {
			fprintf(stderr, "unknown case %s\n", argv[1]);
			return 2;
		}
		c->fn();
		printf("ok %s\n", c->name);
		return 0;
	}
	for (size_t i = 0; i < nr; i++) {
		bool wanted = argc == 1;

		/* Several names: run just those, each in its own child. */
		for (int j = 1; j < argc; j++)
			wanted |= !strcmp(argv[j], cases[i].name);
		if (!wanted)
			continue;
		if (run_forked(&cases[i])) {
			printf("ok %s\n", cases[i].name);
		} else {
			printf("FAILED %s\n", cases[i].name);
			failed++;
		}
	}
	printf("%zu cases, %u failed\n", nr, failed);
	return failed ? 1 : 0;
}
