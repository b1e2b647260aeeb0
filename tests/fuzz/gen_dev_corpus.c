// SPDX-License-Identifier: MIT
/*
 * gen_dev_corpus.c - write the seed corpora of the device-level harnesses:
 *
 *	fuzz_gen_dev_corpus blk DIR	(tests/fuzz/blk-corpus)
 *	fuzz_gen_dev_corpus scsi DIR	(tests/fuzz/scsi-ctrl-corpus)
 *	fuzz_gen_dev_corpus vu DIR	(tests/fuzz/vu-corpus)
 *
 * Each seed is a well-formed input of its harness (fuzz_chain.h's chain
 * format, or fuzz_vu_msgs.c's message format) that reaches deep into the
 * parser: every request type with good and bad framing, so mutation starts
 * from requests the device actually carries out.
 */
#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_scsi.h"
#include "fuzz_chain.h"
#include "vhost-user/protocol.h"

static uint8_t buf[16384];
static size_t len;
static const char *out_dir;

static void put(const void *p, size_t n)
{
	CHECK(len + n <= sizeof(buf));
	memcpy(buf + len, p, n);
	len += n;
}

static void u8(uint8_t v)
{
	put(&v, 1);
}

static void u16(uint16_t v)
{
	v = htole16(v);
	put(&v, 2);
}

static void u32(uint32_t v)
{
	v = htole32(v);
	put(&v, 4);
}

static void u64(uint64_t v)
{
	v = htole64(v);
	put(&v, 8);
}

static void begin(void)
{
	len = 0;
}

static void save(const char *name)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", out_dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(buf, 1, len, f) != len || fclose(f))
		FAIL("write %s", path);
}

/* ---- chains (fuzz_chain.h) ------------------------------------------------------ */

/* Segment descriptor: 'r' readable, 'w' writable, 'W' writable in region B. */
struct seg {
	char dir;
	uint16_t len;
};

static void chain(unsigned int n, const struct seg *s)
{
	u8((uint8_t)(n - 1));
	for (unsigned int i = 0; i < n; i++) {
		u8(s[i].dir == 'w' ? 1 : s[i].dir == 'W' ? 3 : 0);
		u16(s[i].len);
	}
}

static void blk_hdr(uint32_t type, uint64_t sector)
{
	u32(type);
	u32(0);
	u64(sector);
}

static void blk_rw(uint32_t type, uint64_t sector, uint16_t bytes)
{
	if (type == VIRTIO_BLK_T_OUT) {
		chain(3, (struct seg[]){{'r', 16}, {'r', bytes}, {'w', 1}});
		blk_hdr(type, sector);
		for (unsigned int i = 0; i < bytes; i++)
			u8((uint8_t)i);
	} else {
		chain(3, (struct seg[]){{'r', 16}, {'w', bytes}, {'w', 1}});
		blk_hdr(type, sector);
	}
}

static void blk_dwz(uint32_t type, unsigned int n, uint32_t flags)
{
	chain(3, (struct seg[]){{'r', 16}, {'r', (uint16_t)(16 * n)}, {'w', 1}});
	blk_hdr(type, 0);
	for (unsigned int i = 0; i < n; i++) {
		u64(64 * i);
		u32(8 + i);
		u32(flags);
	}
}

static void blk_seed(const char *name, uint8_t dflags, uint8_t rflags, void (*body)(void))
{
	begin();
	u8(dflags);
	u8(rflags);
	u8(2); /* 32 entries */
	body();
	save(name);
}

static void b_read(void)
{
	blk_rw(VIRTIO_BLK_T_IN, 8, 4096);
}

static void b_write(void)
{
	blk_rw(VIRTIO_BLK_T_OUT, 16, 512);
}

static void b_flush(void)
{
	chain(2, (struct seg[]){{'r', 16}, {'w', 1}});
	blk_hdr(VIRTIO_BLK_T_FLUSH, 0);
}

static void b_get_id(void)
{
	chain(3, (struct seg[]){{'r', 16}, {'w', 20}, {'w', 1}});
	blk_hdr(VIRTIO_BLK_T_GET_ID, 0);
	chain(3, (struct seg[]){{'r', 16}, {'w', 7}, {'w', 1}});
	blk_hdr(VIRTIO_BLK_T_GET_ID, 0);
}

static void b_discard(void)
{
	blk_dwz(VIRTIO_BLK_T_DISCARD, 2, 0);
	blk_dwz(VIRTIO_BLK_T_DISCARD, 1, 1); /* UNMAP on a discard: UNSUPP */
}

static void b_write_zeroes(void)
{
	blk_dwz(VIRTIO_BLK_T_WRITE_ZEROES, 3, 1);
	blk_dwz(VIRTIO_BLK_T_WRITE_ZEROES, 1, 0);
	/* A torn range. */
	chain(3, (struct seg[]){{'r', 16}, {'r', 20}, {'w', 1}});
	blk_hdr(VIRTIO_BLK_T_WRITE_ZEROES, 0);
	u64(0);
	u32(8);
	u32(0);
	u32(0);
}

static void b_framing(void)
{
	/* Header split in two; status sharing the last data buffer. */
	chain(3, (struct seg[]){{'r', 8}, {'r', 8}, {'w', 513}});
	blk_hdr(VIRTIO_BLK_T_IN, 0);
	/* Header and data in one buffer. */
	chain(2, (struct seg[]){{'r', 528}, {'w', 1}});
	blk_hdr(VIRTIO_BLK_T_OUT, 1);
	for (unsigned int i = 0; i < 512; i++)
		u8(0x5a);
	/* Data in region B, crossing a sector boundary oddly. */
	chain(3, (struct seg[]){{'r', 16}, {'W', 1000}, {'w', 25}});
	blk_hdr(VIRTIO_BLK_T_IN, 100);
}

static void b_bad(void)
{
	chain(2, (struct seg[]){{'r', 16}, {'w', 1}});
	blk_hdr(99, 0);
	blk_rw(VIRTIO_BLK_T_IN, 8191, 1024); /* past the end */
	blk_rw(VIRTIO_BLK_T_IN, ~0ull >> 3, 512); /* overflowing sector */
	chain(2, (struct seg[]){{'r', 16}, {'w', 100}});
	blk_hdr(VIRTIO_BLK_T_IN, 0); /* not a multiple of 512 */
}

static void b_halt(void)
{
	blk_rw(VIRTIO_BLK_T_IN, 0, 512);
	chain(1, (struct seg[]){{'r', 16}}); /* no status byte: the queue halts */
	blk_hdr(VIRTIO_BLK_T_IN, 0);
}

static void b_mixed(void)
{
	b_read();
	b_write();
	b_flush();
	b_get_id();
	b_discard();
	b_write_zeroes();
	b_bad();
}

static void gen_blk(void)
{
	blk_seed("read", 0, 0, b_read);
	blk_seed("write", 0, 0, b_write);
	blk_seed("write-ro", 1, 0, b_write);
	blk_seed("flush", 2, 0, b_flush);
	blk_seed("get-id", 0, 0, b_get_id);
	blk_seed("get-id-ro", 1, FUZZ_CH_PACKED, b_get_id);
	blk_seed("discard", 4, 0, b_discard);
	blk_seed("write-zeroes", 4, FUZZ_CH_INDIRECT, b_write_zeroes);
	blk_seed("framing", 0, 0, b_framing);
	blk_seed("bad", 0, FUZZ_CH_EVENT_IDX, b_bad);
	blk_seed("halt", 0, 0, b_halt);
	blk_seed("mixed-split", 6, 0, b_mixed);
	blk_seed("mixed-packed-indirect", 6 | 8 | 32, FUZZ_CH_PACKED | FUZZ_CH_INDIRECT, b_mixed);
	blk_seed("mixed-reset-ro", 1 | 6 | 16, FUZZ_CH_PACKED, b_mixed);
}

/* ---- virtio-scsi queues (fuzz_scsi_ctrl.c) -------------------------------------- */

static void scsi_lun_addr(unsigned int target, unsigned int lun)
{
	u8(1);
	u8((uint8_t)target);
	u8((uint8_t)(0x40 | lun >> 8));
	u8((uint8_t)lun);
	u32(0);
}

static void tmf(uint32_t subtype, unsigned int target, unsigned int lun, uint64_t tag)
{
	chain(2, (struct seg[]){{'r', 24}, {'w', 1}});
	u32(VIRTIO_SCSI_T_TMF);
	u32(subtype);
	scsi_lun_addr(target, lun);
	u64(tag);
}

static void an(uint32_t type, uint32_t events)
{
	chain(2, (struct seg[]){{'r', 16}, {'w', 5}});
	u32(type);
	scsi_lun_addr(0, 0);
	u32(events);
}

static void s_tmf_all(void)
{
	for (uint32_t st = 0; st <= 8; st++)
		tmf(st, 0, st & 1, 7);
}

static void s_tmf_bad(void)
{
	tmf(VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET, 2, 0, 0); /* no such target */
	tmf(VIRTIO_SCSI_T_TMF_ABORT_TASK, 0, 9, 0);	    /* no such LUN */
	tmf(VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET, 1, 5, 0);
	/* A flat-space LUN (0x40..) and a peripheral one (0). */
	chain(2, (struct seg[]){{'r', 24}, {'w', 1}});
	u32(VIRTIO_SCSI_T_TMF);
	u32(VIRTIO_SCSI_T_TMF_QUERY_TASK_SET);
	u8(1), u8(1), u8(0), u8(5), u32(0);
	u64(0);
	an(7, 0); /* unknown type: nothing written */
	chain(2, (struct seg[]){{'r', 8}, {'w', 1}}); /* short TMF: the queue halts */
	u32(VIRTIO_SCSI_T_TMF);
	u32(0);
}

static void s_an(void)
{
	an(VIRTIO_SCSI_T_AN_QUERY, 0xffffffff);
	an(VIRTIO_SCSI_T_AN_SUBSCRIBE, 0x54);
	tmf(VIRTIO_SCSI_T_TMF_ABORT_TASK_SET, 0, 0, 0);
}

/* A command: header (51 bytes), then data out or room for data in, and the response. */
static void cmd(unsigned int target, unsigned int lun, const uint8_t *cdb, size_t cdb_len,
		uint16_t out, uint16_t in)
{
	uint8_t c[VIRTIO_SCSI_CDB_SIZE] = {0};

	memcpy(c, cdb, cdb_len);
	if (out)
		chain(3, (struct seg[]){{'r', 51}, {'r', out}, {'w', 108}});
	else if (in)
		chain(3, (struct seg[]){{'r', 51}, {'w', 108}, {'W', in}});
	else
		chain(2, (struct seg[]){{'r', 51}, {'w', 108}});
	scsi_lun_addr(target, lun);
	u64(0x1234);
	u8(0), u8(0), u8(0);
	put(c, sizeof(c));
	for (unsigned int i = 0; i < out; i++)
		u8((uint8_t)(i * 7));
}

static void s_cmds(void)
{
	cmd(0, 0, (const uint8_t[]){0x12, 0, 0, 0, 96, 0}, 6, 0, 96); /* INQUIRY */
	cmd(0, 0, (const uint8_t[]){0x00, 0, 0, 0, 0, 0}, 6, 0, 0);   /* TEST UNIT READY */
	cmd(0, 1, (const uint8_t[]){0x28, 0, 0, 0, 0, 1, 0, 0, 1, 0}, 10, 0, 4096); /* READ(10) */
	cmd(0, 0, (const uint8_t[]){0x2a, 0, 0, 0, 0, 2, 0, 0, 1, 0}, 10, 512, 0); /* WRITE(10) */
	cmd(1, 5, (const uint8_t[]){0x2a, 0, 0, 0, 0, 2, 0, 0, 1, 0}, 10, 512, 0); /* read-only */
	cmd(0, 0, (const uint8_t[]){0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0}, 12, 0, 64); /* REPORT LUNS */
	cmd(0, 7, (const uint8_t[]){0x12, 0, 0, 0, 36, 0}, 6, 0, 36); /* absent LUN */
	cmd(3, 0, (const uint8_t[]){0x00}, 1, 0, 0);		     /* no such target */
	cmd(0, 0, (const uint8_t[]){0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 10, 0, 0); /* SYNC CACHE */
	cmd(0, 0, (const uint8_t[]){0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 10, 0, 8); /* READ CAPACITY */
}

static void s_framing(void)
{
	/* Data both ways; the response over nine 12-byte buffers; too short a header. */
	chain(4, (struct seg[]){{'r', 51}, {'r', 512}, {'w', 108}, {'w', 512}});
	scsi_lun_addr(0, 0);
	u64(1), u8(0), u8(0), u8(0);
	for (unsigned int i = 0; i < 32 + 512; i++)
		u8(0);
	chain(8, (struct seg[]){{'r', 51}, {'w', 12}, {'w', 12}, {'w', 12}, {'w', 12},
				{'w', 12}, {'w', 12}, {'w', 36}});
	scsi_lun_addr(0, 0);
	u64(2), u8(0), u8(0), u8(0);
	for (unsigned int i = 0; i < 32; i++)
		u8(0);
	chain(2, (struct seg[]){{'r', 40}, {'w', 108}});
}

static void scsi_seed(const char *name, uint8_t flags, uint8_t rflags, void (*body)(void))
{
	begin();
	u8(flags);
	u8(rflags);
	u8(2);
	body();
	save(name);
}

static void gen_scsi(void)
{
	scsi_seed("tmf-all", 0, 0, s_tmf_all);
	scsi_seed("tmf-all-packed-reset", 2, FUZZ_CH_PACKED, s_tmf_all);
	scsi_seed("tmf-bad", 0, FUZZ_CH_INDIRECT, s_tmf_bad);
	scsi_seed("an", 4, 0, s_an);
	scsi_seed("cmds", 1, 0, s_cmds);
	scsi_seed("cmds-reset-indirect", 3, FUZZ_CH_INDIRECT, s_cmds);
	scsi_seed("cmds-packed", 1, FUZZ_CH_PACKED | FUZZ_CH_EVENT_IDX, s_cmds);
	scsi_seed("framing", 1, 0, s_framing);
}

int main(int argc, char **argv)
{
	if (argc != 3)
		FAIL("usage: fuzz_gen_dev_corpus blk|scsi|vu DIR");
	out_dir = argv[2];
	if (!strcmp(argv[1], "blk"))
		gen_blk();
	else if (!strcmp(argv[1], "scsi"))
		gen_scsi();
	else
		FAIL("unknown corpus %s", argv[1]);
	return 0;
}
