// SPDX-License-Identifier: MIT
/*
 * gen_corpus.c - write the seed corpus of fuzz_virtq_pop:
 *
 *	fuzz_gen_corpus DIR	(tests/fuzz/corpus holds its output)
 *
 * Each seed is a ring built with the ring_fixture helpers, dumped in the
 * fuzz input format: mostly well-formed rings of both layouts (direct and
 * indirect chains, wrap-around, buffers in region B), so mutation starts
 * from the deep end of the walker, plus a few classic refusals.
 */
#include <stdio.h>
#include <string.h>

#include "fuzz_ring.h"
#include "ring_fixture.h"
#include "test_util.h"

static struct ring_fixture fix;
static const char *out_dir;

struct seed {
	const char *name;
	uint8_t flags;
	uint16_t num;
	uint16_t base;
	void (*build)(void);
};

/* Buffers live from 1 KiB into the data area, tables at its start. */
static uint64_t buf_gpa(unsigned int i)
{
	return fixture_data_gpa(&fix, 1024 + 64 * (size_t)i);
}

/* One split chain of @n descriptors starting at @head, the last @in writable. */
static void split_chain(uint16_t head, unsigned int n, unsigned int in)
{
	for (unsigned int i = 0; i < n; i++) {
		uint16_t flags = (i + 1 < n ? VRING_DESC_F_NEXT : 0) |
				 (i >= n - in ? VRING_DESC_F_WRITE : 0);

		fix_split_desc(fix.desc, (uint16_t)(head + i), buf_gpa(head + i), 48, flags,
			       (uint16_t)(head + i + 1));
	}
	fix_split_avail(&fix, head);
}

/* A split chain whose @n buffers sit in an indirect table at data offset @off. */
static void split_indirect(uint16_t head, size_t off, unsigned int n, unsigned int in)
{
	struct vring_desc *table = fixture_data(&fix, off);

	for (unsigned int i = 0; i < n; i++) {
		uint16_t flags = (i + 1 < n ? VRING_DESC_F_NEXT : 0) |
				 (i >= n - in ? VRING_DESC_F_WRITE : 0);

		fix_split_desc(table, (uint16_t)i, buf_gpa(8 * head + i), 40, flags,
			       (uint16_t)(i + 1));
	}
	fix_split_desc(fix.desc, head, fixture_data_gpa(&fix, off), n * 16, VRING_DESC_F_INDIRECT,
		       0);
	fix_split_avail(&fix, head);
}

/* A packed chain of @n descriptors from @slot with buffer @id. */
static void packed_chain(uint16_t slot, uint16_t id, unsigned int n, unsigned int in)
{
	/* The head's flags go last, so the chain appears all at once. */
	for (unsigned int k = n; k-- > 0;) {
		uint16_t flags = (k + 1 < n ? VRING_DESC_F_NEXT : 0) |
				 (k >= n - in ? VRING_DESC_F_WRITE : 0);

		fix_packed_desc(&fix, (uint16_t)(slot + k), buf_gpa(slot + k), 48, id, flags);
	}
}

static void packed_indirect(uint16_t slot, uint16_t id, size_t off, unsigned int n, unsigned int in)
{
	struct vring_packed_desc *table = fixture_data(&fix, off);

	for (unsigned int i = 0; i < n; i++)
		fix_packed_table_desc(table, (uint16_t)i, buf_gpa(8 * slot + i), 40,
				      i >= n - in ? VRING_DESC_F_WRITE : 0);
	fix_packed_desc(&fix, slot, fixture_data_gpa(&fix, off), n * 16, id, VRING_DESC_F_INDIRECT);
}

static void build_split_simple(void)
{
	split_chain(0, 2, 1);
}

static void build_split_mixed(void)
{
	split_chain(0, 1, 0);
	split_indirect(1, 0, 3, 1);
	split_chain(2, 4, 2);
	split_indirect(6, 64, 5, 3);
	split_chain(7, 3, 3);
}

static void build_split_wrap(void)
{
	/* Start three short of the 16-bit wrap of the avail index. */
	vq_write16(&fix.avail->idx, 65533);
	for (uint16_t h = 0; h < 6; h++)
		split_chain(h, 1, h & 1);
}

static void build_split_region_b(void)
{
	fix_split_desc(fix.desc, 0, buf_gpa(0), 32, VRING_DESC_F_NEXT, 1);
	fix_split_desc(fix.desc, 1, fixture_gpa(&fix, fix.b + 128), 256, VRING_DESC_F_WRITE, 0);
	fix_split_avail(&fix, 0);
}

static void build_split_full(void)
{
	for (uint16_t h = 0; h < fix.num; h++)
		split_chain(h, 1, 1);
}

static void build_split_loop(void)
{
	fix_split_desc(fix.desc, 0, buf_gpa(0), 16, VRING_DESC_F_NEXT, 1);
	fix_split_desc(fix.desc, 1, buf_gpa(1), 16, VRING_DESC_F_NEXT, 0);
	fix_split_avail(&fix, 0);
}

static void build_packed_simple(void)
{
	packed_chain(0, 0, 2, 1);
}

static void build_packed_mixed(void)
{
	packed_chain(0, 3, 1, 0);
	packed_indirect(1, 7, 0, 3, 1);
	packed_chain(2, 1, 4, 2);
	packed_indirect(6, 2, 64, 5, 3);
	packed_chain(7, 0, 3, 3);
}

static void build_packed_full(void)
{
	for (uint16_t s = 0; s < fix.num; s++)
		packed_chain(s, s, 1, s & 1);
}

static void build_packed_nested(void)
{
	struct vring_packed_desc *table = fixture_data(&fix, 0);

	fix_packed_table_desc(table, 0, fixture_data_gpa(&fix, 0), 16, VRING_DESC_F_INDIRECT);
	fix_packed_desc(&fix, 0, fixture_data_gpa(&fix, 0), 16, 0, VRING_DESC_F_INDIRECT);
}

#define ALL_COMPACT (FUZZ_F_COMPACT_ADDR | FUZZ_F_COMPACT_LEN)

/* clang-format off */
static const struct seed seeds[] = {
	{ "split-simple", ALL_COMPACT, 8, 0, build_split_simple },
	{ "split-mixed", FUZZ_F_INDIRECT | ALL_COMPACT, 16, 0, build_split_mixed },
	{ "split-mixed-evidx", FUZZ_F_INDIRECT | FUZZ_F_EVENT_IDX | FUZZ_F_PUSH_EACH, 16, 0,
	  build_split_mixed },
	{ "split-wrap", FUZZ_F_EVENT_IDX | ALL_COMPACT, 8, 65533, build_split_wrap },
	{ "split-region-b", FUZZ_F_REGION_B | ALL_COMPACT, 4, 0, build_split_region_b },
	{ "split-full", FUZZ_F_NOTIFY_ON_EMPTY, 32, 0, build_split_full },
	{ "split-loop", ALL_COMPACT, 4, 0, build_split_loop },
	{ "packed-simple", FUZZ_F_PACKED | ALL_COMPACT, 8, 0x8000, build_packed_simple },
	{ "packed-mixed", FUZZ_F_PACKED | FUZZ_F_INDIRECT | ALL_COMPACT, 13, 0x8000,
	  build_packed_mixed },
	{ "packed-mixed-evidx", FUZZ_F_PACKED | FUZZ_F_INDIRECT | FUZZ_F_EVENT_IDX, 13, 0x8000,
	  build_packed_mixed },
	{ "packed-full", FUZZ_F_PACKED | FUZZ_F_PUSH_EACH | ALL_COMPACT, 5, 0x8000,
	  build_packed_full },
	{ "packed-nested", FUZZ_F_PACKED | FUZZ_F_INDIRECT | ALL_COMPACT, 4, 0x8000,
	  build_packed_nested },
};
/* clang-format on */

/* qsize byte that selects @num for the layout. */
static uint8_t qsize_byte(bool packed, uint16_t num)
{
	uint8_t log = 0;

	if (packed)
		return (uint8_t)num; /* 256 wraps to 0, which means 256 */
	while ((1u << log) < num)
		log++;
	return log;
}

static size_t used_len(const uint8_t *p, size_t size)
{
	while (size && !p[size - 1])
		size--;
	return size;
}

static void write_seed(const struct seed *s)
{
	bool packed = s->flags & FUZZ_F_PACKED;
	struct fuzz_hdr h = {
		.flags = s->flags,
		.qsize = qsize_byte(packed, s->num),
		.max_iov = 15,
		.order = 2,
		.base = htole16(s->base),
		.fill = {0xff, 0x80, 0, 0xff, 0x11, 0xff, 0x40, 0xff, 0xfe, 0xff},
	};
	size_t b_len, a_len;
	char path[4096];
	FILE *f;

	fixture_reset(&fix);
	if (fixture_ring_init(&fix, packed, s->num, fix_features(packed, 0), s->base, NULL))
		FAIL("%s: virtq_init refused the seed's ring", s->name);
	if (!packed)
		vq_write16(&fix.avail->idx, s->base);
	s->build();
	fixture_ring_fini(&fix);

	b_len = used_len(fix.b, FUZZ_B_SIZE);
	a_len = b_len ? FUZZ_A_SIZE : used_len(fix.a, FUZZ_A_SIZE);
	snprintf(path, sizeof(path), "%s/%s", out_dir, s->name);
	f = fopen(path, "wb");
	if (!f || fwrite(&h, sizeof(h), 1, f) != 1 || fwrite(fix.a, 1, a_len, f) != a_len ||
	    fwrite(fix.b, 1, b_len, f) != b_len || fclose(f))
		FAIL("write %s: %m", path);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	out_dir = argv[1];
	fixture_create(&fix, FUZZ_A_SIZE, FUZZ_B_SIZE, 0);
	for (size_t i = 0; i < ARRAY_SIZE(seeds); i++)
		write_seed(&seeds[i]);
	fixture_destroy(&fix);
	printf("%zu seeds written to %s\n", ARRAY_SIZE(seeds), out_dir);
	return 0;
}
