// SPDX-License-Identifier: MIT
/*
 * fuzz_main.c - run the fuzz harness without libFuzzer, so that every build
 * (gcc, ASan+UBSan) exercises it as an ordinary test:
 *
 *	fuzz_virtq_pop_run [-n COUNT] CORPUS_DIR_OR_FILE...
 *
 * Each corpus file is fed as is, then COUNT (default 20000, scaled by
 * VHOSTD_STRESS_SCALE) mutants of them: a few bytes overwritten, bits
 * flipped, the input cut short or the header re-rolled.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_ring.h"
#include "test_util.h"

#define FUZZ_INPUT_MAX (sizeof(struct fuzz_hdr) + FUZZ_A_SIZE + FUZZ_B_SIZE)

struct corpus {
	uint8_t **data;
	size_t *size;
	unsigned int nr, cap;
};

static void corpus_add_file(struct corpus *c, const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = malloc(FUZZ_INPUT_MAX);
	size_t n;

	if (!f || !buf)
		FAIL("open %s: %m", path);
	n = fread(buf, 1, FUZZ_INPUT_MAX, f);
	fclose(f);
	if (c->nr == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 16;
		c->data = realloc(c->data, c->cap * sizeof(*c->data));
		c->size = realloc(c->size, c->cap * sizeof(*c->size));
		if (!c->data || !c->size)
			FAIL("out of memory");
	}
	c->data[c->nr] = buf;
	c->size[c->nr++] = n;
}

static void corpus_add(struct corpus *c, const char *path)
{
	struct dirent **names;
	struct stat st;
	char file[4096];
	int n;

	if (stat(path, &st))
		FAIL("%s: %m", path);
	if (!S_ISDIR(st.st_mode)) {
		corpus_add_file(c, path);
		return;
	}
	/* Sorted, so a run is reproducible. */
	n = scandir(path, &names, NULL, alphasort);
	if (n < 0)
		FAIL("scandir %s: %m", path);
	for (int i = 0; i < n; i++) {
		snprintf(file, sizeof(file), "%s/%s", path, names[i]->d_name);
		if (names[i]->d_name[0] != '.' && !stat(file, &st) && S_ISREG(st.st_mode))
			corpus_add_file(c, file);
		free(names[i]);
	}
	free(names);
}

/* A libFuzzer-like mutation, much cruder: enough to leave the happy path. */
static size_t mutate(struct test_rng *rng, uint8_t *buf, size_t size)
{
	unsigned int edits = test_rng_range(rng, 1, 8);

	for (unsigned int i = 0; i < edits && size; i++) {
		size_t at;

		switch (test_rng_below(rng, 6)) {
		case 0: /* a random byte */
			buf[test_rng_below(rng, (uint32_t)size)] = (uint8_t)test_rng_next(rng);
			break;
		case 1: /* a bit */
			buf[test_rng_below(rng, (uint32_t)size)] ^=
				(uint8_t)(1u << test_rng_below(rng, 8));
			break;
		case 2: /* a small delta on a 16-bit field: indices and flags */
			at = test_rng_below(rng, (uint32_t)size) & ~(size_t)1;
			if (at + 1 < size)
				buf[at] = (uint8_t)(buf[at] + test_rng_range(rng, 1, 3) - 2);
			break;
		case 3: /* the header, which picks layout, size and features */
			buf[test_rng_below(rng, 4)] = (uint8_t)test_rng_next(rng);
			break;
		case 4: /* an interesting value */
			at = test_rng_below(rng, (uint32_t)size);
			buf[at] = (const uint8_t[]){
				0, 1, 0x7f, 0x80, 0xff, 16, 0x10}[test_rng_below(rng, 7)];
			break;
		default: /* cut short */
			size = test_rng_range(rng, 1, (uint32_t)size);
		}
	}
	return size;
}

int main(int argc, char **argv)
{
	uint64_t count = test_scaled(20000, 2000);
	struct corpus c = {0};
	struct test_rng rng;
	uint8_t *buf = malloc(FUZZ_INPUT_MAX);
	int i = 1;

	if (argc > 2 && !strcmp(argv[1], "-n")) {
		count = strtoull(argv[2], NULL, 0);
		i = 3;
	}
	for (; i < argc; i++)
		corpus_add(&c, argv[i]);
	if (!c.nr || !buf)
		FAIL("no corpus given");
	test_rng_seed(&rng, test_seed(0xf022));

	for (unsigned int k = 0; k < c.nr; k++)
		LLVMFuzzerTestOneInput(c.data[k], c.size[k]);
	printf("%u corpus inputs ok\n", c.nr);

	for (uint64_t k = 0; k < count; k++) {
		unsigned int pick = test_rng_below(&rng, c.nr);
		size_t size = c.size[pick];

		memcpy(buf, c.data[pick], size);
		size = mutate(&rng, buf, size);
		LLVMFuzzerTestOneInput(buf, size);
	}
	printf("%llu mutated inputs ok\n", (unsigned long long)count);

	for (unsigned int k = 0; k < c.nr; k++)
		free(c.data[k]);
	free(c.data);
	free(c.size);
	free(buf);
	return 0;
}
