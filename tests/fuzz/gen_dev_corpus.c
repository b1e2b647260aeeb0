// SPDX-License-Identifier: MIT
/*
 * gen_dev_corpus.c - write the seed corpora of the device-level harnesses:
 *
 *	fuzz_gen_dev_corpus blk DIR	(tests/fuzz/blk-corpus)
 *	fuzz_gen_dev_corpus scsi DIR	(tests/fuzz/scsi-ctrl-corpus)
 *	fuzz_gen_dev_corpus vu DIR	(tests/fuzz/vu-corpus)
 *	fuzz_gen_dev_corpus inflight DIR	(tests/fuzz/inflight-corpus)
 *
 * Each seed is a well-formed input of its harness (fuzz_chain.h's chain
 * format, fuzz_vu_msgs.c's message format, fuzz_inflight.h's region) that reaches deep into the
 * parser: every request type with good and bad framing, so mutation starts
 * from requests the device actually carries out.  Files named crash-* in
 * those directories are not generated: they are inputs a fuzzing run found,
 * kept so every build replays them.
 */
#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_scsi.h"
#include "fuzz_chain.h"
#include "fuzz_inflight.h"
#include "fuzz_vu_msgs.h"
#include "vhost-user/inflight.h"
#include "vhost-user/protocol.h"

static uint8_t seed_buf[16384];
static size_t out_len;
static const char *out_dir;

static void put(const void *p, size_t n)
{
	CHECK(out_len + n <= sizeof(seed_buf));
	memcpy(seed_buf + out_len, p, n);
	out_len += n;
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
	out_len = 0;
}

static void save(const char *name)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", out_dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(seed_buf, 1, out_len, f) != out_len || fclose(f))
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

/* ---- vhost-user sessions (fuzz_vu_msgs.c) --------------------------------------- */

#define UVA 0x7f0000000000ull /* where the "front-end" has guest RAM */
/* Ring q's parts in guest RAM (split, 32 entries), and request buffers. */
#define RING(q)	   (0x10000ull * (q))
#define DESC(q)	   RING(q)
#define AVAIL(q)   (RING(q) + 0x200)
#define USED(q)	   (RING(q) + 0x1000)
#define BUFS(q)	   (RING(q) + 0x4000)

static void msg_fds(uint32_t req, uint32_t flags, const void *payload, uint32_t size,
		    unsigned int nfds, const uint8_t *fds)
{
	u8(FUZZ_VU_MSG);
	u8((uint8_t)nfds);
	for (unsigned int i = 0; i < nfds; i++)
		u8(fds[i]);
	u32(req);
	u32(VHOST_USER_VERSION | flags);
	u32(size);
	put(payload, size);
}

static void msg(uint32_t req, const void *payload, uint32_t size)
{
	msg_fds(req, 0, payload, size, 0, NULL);
}

static void msg_u64(uint32_t req, uint64_t v)
{
	v = htole64(v);
	msg(req, &v, sizeof(v));
}

static void msg_state(uint32_t req, uint32_t index, uint32_t num)
{
	struct vhost_user_vring_state st = {htole32(index), htole32(num)};

	msg(req, &st, sizeof(st));
}

static void msg_ring_fd(uint32_t req, unsigned int q, uint8_t fd)
{
	uint64_t v = htole64(q);

	msg_fds(req, 0, &v, sizeof(v), 1, &fd);
}

/* Guest RAM write: what the driver puts into memory. */
static void gwrite(uint64_t gpa, const void *p, uint16_t n)
{
	u8(FUZZ_VU_WRITE);
	u8(FUZZ_VU_MEM_1M);
	u16((uint16_t)gpa);
	u16((uint16_t)(gpa >> 16));
	u16(n);
	put(p, n);
}

static void features(uint64_t dev_bits, uint64_t proto)
{
	msg(VHOST_USER_GET_FEATURES, NULL, 0);
	msg_u64(VHOST_USER_SET_FEATURES, 1ull << 32 | 1ull << VHOST_USER_F_PROTOCOL_FEATURES |
						 1ull << 28 | 1ull << 29 | dev_bits);
	msg(VHOST_USER_GET_PROTOCOL_FEATURES, NULL, 0);
	msg_u64(VHOST_USER_SET_PROTOCOL_FEATURES, proto);
	msg(VHOST_USER_SET_OWNER, NULL, 0);
}

static void mem_table(uint64_t size)
{
	struct {
		uint32_t nregions, padding;
		struct vhost_user_mem_region r;
	} t = {htole32(1), 0, {0, htole64(size), htole64(UVA), 0}};
	uint8_t fd = FUZZ_VU_MEM_1M;

	msg_fds(VHOST_USER_SET_MEM_TABLE, 0, &t, sizeof(t), 1, &fd);
}

static void ring(unsigned int q)
{
	struct vhost_user_vring_addr a = {
		.index = htole32(q),
		.desc = htole64(UVA + DESC(q)),
		.used = htole64(UVA + USED(q)),
		.avail = htole64(UVA + AVAIL(q)),
	};

	msg_state(VHOST_USER_SET_VRING_NUM, q, 32);
	msg_state(VHOST_USER_SET_VRING_BASE, q, 0);
	msg(VHOST_USER_SET_VRING_ADDR, &a, sizeof(a));
	msg_ring_fd(VHOST_USER_SET_VRING_KICK, q, FUZZ_VU_KICK);
	msg_ring_fd(VHOST_USER_SET_VRING_CALL, q, FUZZ_VU_CALL);
	msg_ring_fd(VHOST_USER_SET_VRING_ERR, q, FUZZ_VU_ERR);
	msg_state(VHOST_USER_SET_VRING_ENABLE, q, 1);
}

/* One request on ring q: a chain of @n buffers (the last @in writable), avail idx @idx. */
static void guest_req(unsigned int q, uint16_t idx, const void *hdr, uint16_t hdr_len,
		      uint16_t data_len, bool data_in)
{
	struct vring_desc d[3];
	uint16_t head = (uint16_t)(3 * (idx % 10));
	uint64_t buf = BUFS(q) + 0x2000ull * (idx % 10);
	uint16_t avail[3];
	unsigned int n = 0;

	d[n++] = (struct vring_desc){htole64(buf), htole32(hdr_len), htole16(VRING_DESC_F_NEXT),
				     htole16(head + 1)};
	if (data_len)
		d[n++] = (struct vring_desc){htole64(buf + 0x200), htole32(data_len),
					     htole16(VRING_DESC_F_NEXT |
						     (data_in ? VRING_DESC_F_WRITE : 0)),
					     htole16(head + 2)};
	d[n - 1].next = htole16((uint16_t)(head + n));
	d[n++] = (struct vring_desc){htole64(buf + 0x1800), htole32(data_in || !data_len ? 108 : 1),
				     htole16(VRING_DESC_F_WRITE), 0};
	gwrite(buf, hdr, hdr_len);
	gwrite(DESC(q) + 16u * head, d, (uint16_t)(n * sizeof(d[0])));
	avail[0] = htole16(head);
	gwrite(AVAIL(q) + 4 + 2u * (idx % 32), avail, 2);
	avail[0] = 0;
	avail[1] = htole16((uint16_t)(idx + 1));
	gwrite(AVAIL(q), avail, 4);
}

static void blk_req(unsigned int q, uint16_t idx, uint32_t type, uint64_t sector, uint16_t bytes)
{
	struct virtio_blk_outhdr h = {htole32(type), 0, htole64(sector)};

	guest_req(q, idx, &h, sizeof(h), bytes, type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID);
}

static void blk_session(void)
{
	features(1ull << VIRTIO_BLK_F_FLUSH | 1ull << VIRTIO_BLK_F_DISCARD |
			 1ull << VIRTIO_BLK_F_CONFIG_WCE | 1ull << VIRTIO_BLK_F_MQ,
		 1ull << VHOST_USER_PROTOCOL_F_MQ | 1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK |
			 1ull << VHOST_USER_PROTOCOL_F_CONFIG |
			 1ull << VHOST_USER_PROTOCOL_F_RESET_DEVICE |
			 1ull << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS |
			 1ull << VHOST_USER_PROTOCOL_F_STATUS);
	msg(VHOST_USER_GET_QUEUE_NUM, NULL, 0);
	mem_table(1u << 20);
	ring(0);
	ring(1);
	msg_u64(VHOST_USER_SET_STATUS, 0xf);
	blk_req(0, 0, VIRTIO_BLK_T_IN, 0, 512);
	blk_req(0, 1, VIRTIO_BLK_T_OUT, 8, 1024);
	blk_req(1, 0, VIRTIO_BLK_T_GET_ID, 0, 20);
	blk_req(1, 1, VIRTIO_BLK_T_FLUSH, 0, 0);
}

static void v_blk_basic(void)
{
	blk_session();
	msg_state(VHOST_USER_GET_VRING_BASE, 0, 0);
	msg_state(VHOST_USER_GET_VRING_BASE, 1, 0);
	msg(VHOST_USER_GET_STATUS, NULL, 0);
}

static void v_blk_config(void)
{
	struct {
		uint32_t offset, size, flags;
		uint8_t b[60];
	} c = {0, htole32(60), 0, {0}};
	struct __attribute__((packed)) {
		uint32_t offset, size, flags;
		uint8_t wce;
	} w = {htole32(offsetof(struct virtio_blk_config, writeback)), htole32(1), 0, 0};

	blk_session();
	msg(VHOST_USER_GET_CONFIG, &c, sizeof(c));
	msg_fds(VHOST_USER_SET_CONFIG, VHOST_USER_NEED_REPLY_MASK, &w, sizeof(w), 0, NULL);
	blk_req(0, 2, VIRTIO_BLK_T_OUT, 16, 512);
	msg_u64(VHOST_USER_SET_STATUS, 0);
	msg(VHOST_USER_RESET_DEVICE, NULL, 0);
}

static void v_blk_memslots(void)
{
	struct vhost_user_mem_reg r = {0, {htole64(0x200000), htole64(65536),
					   htole64(UVA + 0x200000), 0}};
	uint8_t fd = FUZZ_VU_MEM_64K;

	blk_session();
	msg(VHOST_USER_GET_MAX_MEM_SLOTS, NULL, 0);
	msg_fds(VHOST_USER_ADD_MEM_REG, VHOST_USER_NEED_REPLY_MASK, &r, sizeof(r), 1, &fd);
	blk_req(0, 2, VIRTIO_BLK_T_IN, 0, 4096);
	msg_fds(VHOST_USER_REM_MEM_REG, VHOST_USER_NEED_REPLY_MASK, &r, sizeof(r), 0, NULL);
	/* The call fd swapped at run time, then the kick fd refused (a pipe). */
	msg_ring_fd(VHOST_USER_SET_VRING_CALL, 0, FUZZ_VU_CALL);
	msg_ring_fd(VHOST_USER_SET_VRING_KICK, 0, FUZZ_VU_PIPE);
}

static void v_blk_shrink(void)
{
	blk_session();
	/* The front-end shrinks its memory under the rings: SIGBUS, device broken. */
	u8(FUZZ_VU_TRUNCATE);
	u8(FUZZ_VU_MEM_1M);
	u16(0x100), u16(0);
	mem_table(1u << 20);
	msg_state(VHOST_USER_GET_VRING_BASE, 0, 0);
}

static void v_blk_reconnect(void)
{
	blk_session();
	u8(FUZZ_VU_RECONNECT);
	blk_session();
}

static void v_blk_hostile(void)
{
	uint8_t fds[3] = {FUZZ_VU_SEMAPHORE, FUZZ_VU_DEVNULL, FUZZ_VU_EMPTY};

	features(0, 1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK);
	/* A region past the file's end, an eventfd as memory, an unknown request. */
	{
		struct {
			uint32_t nregions, padding;
			struct vhost_user_mem_region r[2];
		} t = {htole32(2), 0, {{0, htole64(1u << 20), htole64(UVA), htole64(4096)},
				       {htole64(1u << 20), htole64(4096), htole64(UVA + (1u << 20)),
					0}}};
		uint8_t m[2] = {FUZZ_VU_MEM_1M, FUZZ_VU_KICK};

		msg_fds(VHOST_USER_SET_MEM_TABLE, VHOST_USER_NEED_REPLY_MASK, &t, sizeof(t), 2, m);
	}
	msg_fds(VHOST_USER_SET_VRING_KICK, 0, (uint64_t[]){0}, 8, 3, fds);
	msg(99, NULL, 0);
}

static void v_blk_short(void)
{
	features(0, 0);
	/* A payload shorter than the request's (closes), after a good one. */
	msg_state(VHOST_USER_SET_VRING_NUM, 0, 16);
	msg(VHOST_USER_SET_VRING_NUM, (uint32_t[]){0}, 4);
}

static void scsi_session(void)
{
	features(1ull << 1 | 1ull << 2, 1ull << VHOST_USER_PROTOCOL_F_MQ |
						1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK |
						1ull << VHOST_USER_PROTOCOL_F_CONFIG |
						1ull << VHOST_USER_PROTOCOL_F_STATUS);
	mem_table(1u << 20);
	for (unsigned int q = 0; q < 3; q++)
		ring(q);
}

static void scsi_cmd(unsigned int q, uint16_t idx, uint8_t lun, const uint8_t *cdb, size_t n,
		     uint16_t in)
{
	uint8_t h[51] = {1, 0, 0x40, lun};

	memcpy(h + 19, cdb, n);
	guest_req(q, idx, h, sizeof(h), in, true);
}

static void v_scsi_basic(void)
{
	uint8_t tmf_req[24] = {0};

	scsi_session();
	scsi_cmd(2, 0, 0, (const uint8_t[]){0x12, 0, 0, 0, 96, 0}, 6, 96);
	scsi_cmd(2, 1, 1, (const uint8_t[]){0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0}, 10, 512);
	tmf_req[4] = VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET;
	tmf_req[8] = 1;
	tmf_req[10] = 0x40;
	guest_req(0, 0, tmf_req, sizeof(tmf_req), 0, false);
	/* An event buffer on the event queue. */
	msg_state(VHOST_USER_GET_VRING_BASE, 2, 0);
	msg_state(VHOST_USER_GET_VRING_BASE, 0, 0);
}

static void vu_seed(const char *name, uint8_t dev, void (*body)(void))
{
	begin();
	u8(dev);
	body();
	save(name);
}

static void gen_vu(void)
{
	vu_seed("blk-basic", 0, v_blk_basic);
	vu_seed("blk-config", 0, v_blk_config);
	vu_seed("blk-memslots", 0, v_blk_memslots);
	vu_seed("blk-shrink", 0, v_blk_shrink);
	vu_seed("blk-reconnect", 0, v_blk_reconnect);
	vu_seed("blk-hostile", 0, v_blk_hostile);
	vu_seed("blk-short", 0, v_blk_short);
	vu_seed("scsi-basic", 1, v_scsi_basic);
}

/* ---- in-flight regions (fuzz_inflight.h) ----------------------------------------- */

/* Op bytes of fuzz_inflight.h. */
#define OP_POP(h)  ((uint8_t)((h) << 2 | 0))
#define OP_FILL(h) ((uint8_t)((h) << 2 | 1))
#define OP_PUBLISH 2
#define OP_CRASH   3
#define OP_CRASH_PUBLISHED 0x83 /* the used index out, the batch not cleared */

struct fi_entry {
	uint16_t head, next;
	uint8_t inflight;
	uint64_t counter;
};

/*
 * One seed: a ring of @num entries in a region sized for @rqsize (the
 * header's region_qsize picks num + rqsize), part @idx of @nq; its header
 * (version @version, used_idx @ridx, last batch @last) and @n entries.
 */
static void fi_seed(const char *name, uint8_t flags, uint8_t num, uint8_t rqsize, uint8_t nq,
		    uint8_t idx, uint16_t used, uint16_t version, uint16_t ridx, uint16_t last,
		    const struct fi_entry *e, unsigned int n, const uint8_t *ops, unsigned int nops)
{
	uint64_t stride = VU_INFLIGHT_STRIDE(num + rqsize);

	begin();
	u8(flags);
	u8((uint8_t)(num - 1));
	u8(rqsize);
	u8((uint8_t)((nq - 1) | idx << 4));
	u16(used);
	u16(0x1234); /* the front-end's base: kept only for a fresh region */
	u8((uint8_t)nops);
	u8(0);
	u8(0);
	u8(0);
	put(ops, nops);
	for (unsigned int part = 0; part < nq; part++) {
		size_t start = out_len;

		if (part == idx && version) {
			u64(0);
			u16(version);
			u16(num);
			u16(last);
			u16(ridx);
			for (unsigned int i = 0; i < num; i++) {
				const struct fi_entry *d = NULL;

				for (unsigned int k = 0; k < n; k++)
					d = e[k].head == i ? &e[k] : d;
				u8(d ? d->inflight : 0);
				put((uint8_t[5]){0}, 5);
				u16(d ? d->next : 0);
				u64(d ? d->counter : 0);
			}
		}
		while (out_len < start + stride)
			u8(0);
	}
	save(name);
}

static void gen_inflight(void)
{
	static const uint8_t run[] = {OP_POP(0), OP_POP(1), OP_POP(2), OP_FILL(1), OP_PUBLISH,
				      OP_POP(3), OP_FILL(0), OP_FILL(3), OP_CRASH};
	static const uint8_t run_pub[] = {OP_POP(0), OP_POP(1), OP_POP(2), OP_FILL(2), OP_FILL(0),
					  OP_PUBLISH, OP_POP(4), OP_FILL(1), OP_FILL(4),
					  OP_CRASH_PUBLISHED};
	static const uint8_t resub[] = {OP_FILL(5), OP_PUBLISH, OP_POP(0), OP_FILL(2), OP_CRASH};
	/* Heads 2 and 5 in flight, 5 popped first. */
	static const struct fi_entry two[] = {{2, 0, 1, 7}, {5, 0, 1, 3}};
	/* Heads 1 and 4 published (used 7, region 5) but still marked; 6 in flight. */
	static const struct fi_entry batch[] = {{4, 1, 1, 5}, {1, 0, 1, 4}, {6, 0, 1, 9}};
	static const struct fi_entry bad_entry[] = {{3, 0, 2, 1}};
	static const struct fi_entry bad_link[] = {{4, 200, 1, 5}, {6, 0, 1, 9}};

	fi_seed("fresh", 0, 8, 0, 1, 0, 0, 0, 0, 0, NULL, 0, run, sizeof(run));
	fi_seed("fresh-crash-published", 0, 8, 0, 1, 0, 3, 0, 0, 0, NULL, 0, run_pub,
		sizeof(run_pub));
	fi_seed("resubmit", 0, 8, 0, 1, 0, 5, 1, 5, 0, two, 2, resub, sizeof(resub));
	fi_seed("batch-published", 0, 8, 0, 1, 0, 7, 1, 5, 4, batch, 3, resub, sizeof(resub));
	fi_seed("two-queues", 0, 16, 4, 2, 1, 5, 1, 5, 0, two, 2, run, sizeof(run));
	fi_seed("big-ring", 0, 160, 0, 1, 0, 100, 1, 100, 0, two, 2, run_pub, sizeof(run_pub));
	fi_seed("bad-version", 0, 8, 0, 1, 0, 5, 2, 5, 0, two, 2, NULL, 0);
	fi_seed("bad-entry", 0, 8, 0, 1, 0, 5, 1, 5, 0, bad_entry, 1, NULL, 0);
	fi_seed("bad-used-idx", 0, 8, 0, 1, 0, 100, 1, 5, 0, two, 2, NULL, 0);
	fi_seed("bad-link", 0, 8, 0, 1, 0, 7, 1, 5, 4, bad_link, 2, NULL, 0);
	fi_seed("packed", FI_PACKED, 8, 0, 1, 0, 5, 1, 5, 0, two, 2, run, sizeof(run));
	fi_seed("no-feature", FI_NO_PROTOCOL_FEATURE, 8, 0, 1, 0, 5, 1, 5, 0, two, 2, NULL, 0);
	fi_seed("untracked-ring", 0, 8, 0, 1, 1, 5, 1, 5, 0, two, 2, NULL, 0);
}

int main(int argc, char **argv)
{
	if (argc != 3)
		FAIL("usage: fuzz_gen_dev_corpus blk|scsi|vu|inflight DIR");
	out_dir = argv[2];
	if (!strcmp(argv[1], "blk"))
		gen_blk();
	else if (!strcmp(argv[1], "scsi"))
		gen_scsi();
	else if (!strcmp(argv[1], "vu"))
		gen_vu();
	else if (!strcmp(argv[1], "inflight"))
		gen_inflight();
	else
		FAIL("unknown corpus %s", argv[1]);
	return 0;
}
