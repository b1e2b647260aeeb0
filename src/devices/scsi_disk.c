// SPDX-License-Identifier: MIT
/*
 * scsi_disk.c - SCSI direct-access block device emulation (scsi_disk.h).
 *
 * One command's life: scsi_disk_exec() decodes how many bytes the CDB
 * moves and in which direction, refuses a transfer the driver's buffers
 * cannot hold (overrun, before anything is read or written, as QEMU's
 * virtio-scsi does), reports a pending unit attention, and then runs the
 * command: emulated ones finish at once with their data-in written, block
 * I/O ones come back as one operation for the transport's back-end.
 *
 * The answers follow QEMU's scsi-hd (hw/scsi/scsi-disk.c, scsi-bus.c,
 * emulation.c) field by field: emulated data-in is padded with zeroes to
 * the allocation length, INQUIRY claims SPC-3, the block limits are those
 * of QEMU's defaults, geometry pages use its CHS guess.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "scsi_disk.h"
#include "virtq/virtq.h"

/* Opcodes (SPC-4, SBC-3). */
enum {
	TEST_UNIT_READY = 0x00,
	REQUEST_SENSE = 0x03,
	READ_6 = 0x08,
	WRITE_6 = 0x0a,
	INQUIRY = 0x12,
	MODE_SELECT_6 = 0x15,
	RESERVE_6 = 0x16,
	RELEASE_6 = 0x17,
	MODE_SENSE_6 = 0x1a,
	START_STOP_UNIT = 0x1b,
	PREVENT_ALLOW = 0x1e,
	READ_CAPACITY_10 = 0x25,
	READ_10 = 0x28,
	WRITE_10 = 0x2a,
	SEEK_10 = 0x2b,
	VERIFY_10 = 0x2f,
	SYNCHRONIZE_CACHE_10 = 0x35,
	WRITE_SAME_10 = 0x41,
	UNMAP = 0x42,
	MODE_SELECT_10 = 0x55,
	RESERVE_10 = 0x56,
	RELEASE_10 = 0x57,
	MODE_SENSE_10 = 0x5a,
	READ_16 = 0x88,
	WRITE_16 = 0x8a,
	VERIFY_16 = 0x8f,
	SYNCHRONIZE_CACHE_16 = 0x91,
	WRITE_SAME_16 = 0x93,
	SERVICE_ACTION_IN_16 = 0x9e,
	REPORT_LUNS = 0xa0,
	MAINTENANCE_IN = 0xa3,
	READ_12 = 0xa8,
	WRITE_12 = 0xaa,
	VERIFY_12 = 0xaf,
};

#define SAI_READ_CAPACITY_16	    0x10
#define MI_REPORT_SUPPORTED_OPCODES 0x0c

/* Mode pages (SBC-3 6.5, SPC-4 7.5). */
#define MODE_PAGE_R_W_ERROR		 0x01
#define MODE_PAGE_HD_GEOMETRY		 0x04
#define MODE_PAGE_FLEXIBLE_DISK_GEOMETRY 0x05
#define MODE_PAGE_CACHING		 0x08
#define MODE_PAGE_CONTROL		 0x0a
#define MODE_PAGE_ALL			 0x3f

/* INQUIRY strings: ours, not QEMU's (the one allowed difference). */
#define SCSI_VENDOR	    "VHOSTD"
#define SCSI_PRODUCT	    "VIRTUAL DISK"
#define SCSI_REVISION	    "0.1"
#define SCSI_TARGET_PRODUCT "VIRTUAL TARGET"

/* QEMU's scsi-hd limits (scsi-disk.c, DEFAULT_MAX_UNMAP_SIZE / IO_SIZE). */
#define SCSI_MAX_UNMAP_BYTES (1ull << 30)
#define SCSI_MAX_IO_BYTES    2147483647ull
#define SCSI_MAX_ALLOC_LEN   65536

enum xfer_dir { XFER_NONE, XFER_FROM_DEV, XFER_TO_DEV };

/* ---- byte order ------------------------------------------------------------ */

static uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_be64(const uint8_t *p)
{
	return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	put_be16(p, (uint16_t)(v >> 16));
	put_be16(p + 2, (uint16_t)v);
}

static void put_be64(uint8_t *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}

/* ---- results ---------------------------------------------------------------- */

static void task_reset(struct scsi_task *t)
{
	t->status = SCSI_STATUS_GOOD;
	t->overrun = false;
	t->sense_len = 0;
	t->data_in = 0;
	t->op = SCSI_OP_NONE;
	t->flags = 0;
	t->nr_ranges = 0;
}

static void build_sense(uint8_t *s, uint8_t key, uint8_t asc, uint8_t ascq)
{
	memset(s, 0, SCSI_SENSE_LEN);
	s[0] = 0x70; /* current error, fixed format */
	s[2] = key;
	s[7] = SCSI_SENSE_LEN - 8;
	s[12] = asc;
	s[13] = ascq;
}

void scsi_task_check(struct scsi_task *t, uint8_t key, uint8_t asc, uint8_t ascq)
{
	t->status = SCSI_STATUS_CHECK_CONDITION;
	t->sense_len = SCSI_SENSE_LEN;
	build_sense(t->sense, key, asc, ascq);
	t->op = SCSI_OP_NONE;
}

/*
 * INVALID FIELD IN CDB (24h/00h) with the sense-key specific field
 * pointer (SPC-4 4.5.2.4.2): byte @byte of the CDB, bit @bit (-1: the
 * whole byte).
 */
static void invalid_field(struct scsi_task *t, unsigned int byte, int bit)
{
	scsi_task_check(t, SCSI_SK_ILLEGAL_REQUEST, 0x24, 0x00);
	t->sense[15] = 0x80 | 0x40 | (bit >= 0 ? 0x08 | (bit & 7) : 0);
	put_be16(&t->sense[16], (uint16_t)byte);
}

/* INVALID FIELD IN PARAMETER LIST (26h/00h), pointing into the data-out. */
static void invalid_param(struct scsi_task *t, unsigned int byte)
{
	scsi_task_check(t, SCSI_SK_ILLEGAL_REQUEST, 0x26, 0x00);
	t->sense[15] = 0x80;
	put_be16(&t->sense[16], (uint16_t)byte);
}

static void invalid_param_len(struct scsi_task *t)
{
	scsi_task_check(t, SCSI_SK_ILLEGAL_REQUEST, 0x1a, 0x00);
}

static void invalid_opcode(struct scsi_task *t)
{
	scsi_task_check(t, SCSI_SK_ILLEGAL_REQUEST, 0x20, 0x00);
	t->sense[15] = 0x80 | 0x40;
}

static void lba_out_of_range(struct scsi_task *t)
{
	scsi_task_check(t, SCSI_SK_ILLEGAL_REQUEST, 0x21, 0x00);
}

static void write_protected(struct scsi_task *t)
{
	scsi_task_check(t, SCSI_SK_DATA_PROTECT, 0x27, 0x00);
}

static void lun_not_supported(struct scsi_task *t)
{
	scsi_task_check(t, SCSI_SK_ILLEGAL_REQUEST, 0x25, 0x00);
}

/*
 * Emulated data-in: @len bytes of @buf, padded with zeroes to @xfer (the
 * allocation length; QEMU transfers all of it), never more than the
 * driver's buffers (checked before: xfer <= in_len).
 */
static void data_in(struct scsi_task *t, const struct scsi_bufs *b, const void *buf, size_t len,
		    size_t xfer)
{
	static const uint8_t zeroes[512];
	size_t n = len < xfer ? len : xfer, off;

	if (xfer > b->in_len)
		xfer = b->in_len;
	if (n > xfer)
		n = xfer;
	off = iov_from_buf(b->in, b->in_cnt, 0, buf, n);
	while (off < xfer) {
		size_t chunk = xfer - off < sizeof(zeroes) ? xfer - off : sizeof(zeroes);
		size_t w = iov_from_buf(b->in, b->in_cnt, off, zeroes, chunk);

		if (!w)
			break;
		off += w;
	}
	t->data_in = (uint32_t)off;
}

/* ---- the disk ---------------------------------------------------------------- */

/* FNV-1a: a stable 64-bit digest of the serial for the NAA identifier. */
static uint64_t fnv1a(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (; *s; s++) {
		h ^= (uint8_t)*s;
		h *= 0x100000001b3ull;
	}
	return h;
}

int scsi_disk_init(struct scsi_disk *d, const struct scsi_disk_config *cfg)
{
	uint32_t pbs = cfg->physical_block_size ? cfg->physical_block_size : cfg->block_size;
	uint32_t gran = cfg->discard_granularity;

	if (cfg->block_size != 512 && cfg->block_size != 4096)
		return -EINVAL;
	if (pbs < cfg->block_size || (pbs & (pbs - 1)))
		return -EINVAL;
	memset(d, 0, sizeof(*d));
	d->block_size = cfg->block_size;
	d->block_shift = cfg->block_size == 512 ? 9 : 12;
	while ((cfg->block_size << d->phys_exp) < pbs && d->phys_exp < 15)
		d->phys_exp++;
	d->readonly = cfg->readonly;
	d->no_unmap = cfg->no_unmap;
	/* QEMU: discard_granularity defaults to max(logical block, 4 KiB). */
	if (gran < 4096)
		gran = 4096;
	if (gran < cfg->block_size)
		gran = cfg->block_size;
	d->unmap_granularity = gran >> d->block_shift;
	snprintf(d->serial, sizeof(d->serial), "%s", cfg->serial ? cfg->serial : "");
	snprintf(d->t10_id, sizeof(d->t10_id), "%.20s", d->serial);
	/* NAA 3 (locally assigned): 60 bits of the serial's digest. */
	d->naa = 3ull << 60 | (fnv1a(d->serial) & ((1ull << 60) - 1));
	atomic_init(&d->nr_blocks, cfg->size >> d->block_shift);
	atomic_init(&d->wce, cfg->writeback);
	atomic_init(&d->ua, SCSI_UA_RESET);
	atomic_flag_clear(&d->sense_lock);
	return 0;
}

static void sense_lock(struct scsi_disk *d)
{
	while (atomic_flag_test_and_set_explicit(&d->sense_lock, memory_order_acquire))
		;
}

static void sense_unlock(struct scsi_disk *d)
{
	atomic_flag_clear_explicit(&d->sense_lock, memory_order_release);
}

void scsi_disk_task_done(struct scsi_disk *d, const struct scsi_task *t)
{
	uint8_t len = t->status == SCSI_STATUS_GOOD ? 0 : t->sense_len;

	if (t->overrun)
		return;
	/* The common case, GOOD with nothing kept: no locked instruction. */
	if (!len && !atomic_load_explicit(&d->last_sense_len, memory_order_relaxed))
		return;
	sense_lock(d);
	atomic_store_explicit(&d->last_sense_len, len, memory_order_relaxed);
	if (len)
		memcpy(d->last_sense, t->sense, len);
	sense_unlock(d);
}

uint64_t scsi_disk_blocks(const struct scsi_disk *d)
{
	return atomic_load_explicit(&d->nr_blocks, memory_order_relaxed);
}

void scsi_disk_set_ua(struct scsi_disk *d, unsigned int ua)
{
	atomic_fetch_or(&d->ua, ua);
}

void scsi_disk_resize(struct scsi_disk *d, uint64_t size)
{
	atomic_store(&d->nr_blocks, size >> d->block_shift);
	scsi_disk_set_ua(d, SCSI_UA_CAPACITY_CHANGED);
}

void scsi_disk_reset(struct scsi_disk *d, bool writeback)
{
	atomic_store(&d->wce, writeback);
	scsi_disk_set_ua(d, SCSI_UA_RESET);
}

/* Is [lba, lba + n) inside the disk?  (n == 0 at the end is fine.)  No overflowing sum. */
static bool lba_range_ok(const struct scsi_disk *d, uint64_t lba, uint64_t n)
{
	uint64_t blocks = scsi_disk_blocks(d);

	return lba <= blocks && n <= blocks - lba;
}

/* Report the highest-priority pending unit attention, if any; true if one was. */
static bool report_ua(struct scsi_disk *d, struct scsi_task *t)
{
	static const struct {
		unsigned int bit;
		uint8_t asc, ascq;
	} uas[] = {
		{SCSI_UA_RESET, 0x29, 0x00},
		{SCSI_UA_CAPACITY_CHANGED, 0x2a, 0x09},
		{SCSI_UA_LUNS_CHANGED, 0x3f, 0x0e},
	};
	unsigned int pending = atomic_load(&d->ua);

	for (unsigned int i = 0; i < ARRAY_SIZE(uas); i++) {
		if (!(pending & uas[i].bit))
			continue;
		/* Another queue may report it first: only the one that clears it does. */
		if (!(atomic_fetch_and(&d->ua, ~uas[i].bit) & uas[i].bit))
			continue;
		scsi_task_check(t, SCSI_SK_UNIT_ATTENTION, uas[i].asc, uas[i].ascq);
		return true;
	}
	return false;
}

/* ---- transfer length and direction of a CDB -------------------------------------- */

/*
 * How many bytes @cdb moves and which way (QEMU's scsi_req_xfer): block
 * I/O in logical blocks, emulated commands by their allocation or
 * parameter list length.  Unknown opcodes move nothing.
 */
static uint64_t cdb_xfer(const struct scsi_disk *d, const uint8_t *cdb, enum xfer_dir *dir)
{
	uint64_t bs = d->block_size;

	*dir = XFER_FROM_DEV;
	switch (cdb[0]) {
	case READ_6:
		return (cdb[4] ? cdb[4] : 256u) * bs;
	case READ_10:
		return get_be16(&cdb[7]) * bs;
	case READ_12:
		return get_be32(&cdb[6]) * bs;
	case READ_16:
		return get_be32(&cdb[10]) * bs;
	case INQUIRY:
		return get_be16(&cdb[3]);
	case MODE_SENSE_6:
	case REQUEST_SENSE:
		return cdb[4];
	case MODE_SENSE_10:
		return get_be16(&cdb[7]);
	case READ_CAPACITY_10:
		return 8;
	case SERVICE_ACTION_IN_16:
		return get_be32(&cdb[10]);
	case REPORT_LUNS:
	case MAINTENANCE_IN:
		return get_be32(&cdb[6]);
	}

	*dir = XFER_TO_DEV;
	switch (cdb[0]) {
	case WRITE_6:
		return (cdb[4] ? cdb[4] : 256u) * bs;
	case WRITE_10:
		return get_be16(&cdb[7]) * bs;
	case WRITE_12:
		return get_be32(&cdb[6]) * bs;
	case WRITE_16:
		return get_be32(&cdb[10]) * bs;
	case MODE_SELECT_6:
		return cdb[4];
	case MODE_SELECT_10:
	case UNMAP:
		return get_be16(&cdb[7]);
	case WRITE_SAME_10:
		return bs;
	case WRITE_SAME_16:
		return (cdb[1] & 1) ? 0 : bs; /* NDOB: no data-out */
	case VERIFY_10:
		/* BYTCHK=1 would send data; refused later, but sized as QEMU does. */
		return (cdb[1] & 2) ? get_be16(&cdb[7]) * bs : 0;
	case VERIFY_12:
		return (cdb[1] & 2) ? get_be32(&cdb[6]) * bs : 0;
	case VERIFY_16:
		return (cdb[1] & 2) ? get_be32(&cdb[10]) * bs : 0;
	}
	*dir = XFER_NONE;
	return 0;
}

/*
 * Spec 5.6.6.1 / QEMU: a command that needs more bytes than the buffers
 * of its direction hold is not executed (OVERRUN).  True if refused.
 */
static bool check_overrun(struct scsi_task *t, enum xfer_dir dir, uint64_t xfer,
			  const struct scsi_bufs *b)
{
	size_t have = dir == XFER_TO_DEV ? b->out_len : b->in_len;

	if (dir == XFER_NONE || !xfer)
		return false;
	if (xfer <= have && !(dir == XFER_TO_DEV ? b->in_len : b->out_len))
		return false;
	t->overrun = true;
	return true;
}

/* ---- INQUIRY ----------------------------------------------------------------- */

static void pad_copy(uint8_t *dst, size_t len, const char *src)
{
	size_t n = strlen(src);

	memset(dst, ' ', len);
	memcpy(dst, src, n < len ? n : len);
}

/* VPD page @page into @out (at least 256 bytes); its length, or -1 if unsupported. */
static int inquiry_vpd(const struct scsi_disk *d, uint8_t page, uint8_t *out)
{
	uint64_t max_io = SCSI_MAX_IO_BYTES >> d->block_shift;
	int len = 4;

	out[0] = 0x00; /* direct access block device */
	out[1] = page;
	switch (page) {
	case 0x00:
		out[len++] = 0x00;
		if (d->serial[0])
			out[len++] = 0x80;
		out[len++] = 0x83;
		out[len++] = 0xb0;
		out[len++] = 0xb1;
		out[len++] = 0xb2;
		break;
	case 0x80: {
		size_t n = strlen(d->serial);

		if (!n)
			return -1;
		memcpy(out + len, d->serial, n);
		len += (int)n;
		break;
	}
	case 0x83: {
		size_t n = strlen(d->t10_id);

		/* QEMU's: an ASCII vendor-specific designator holding the serial. */
		if (n) {
			out[len++] = 0x02; /* code set ASCII */
			out[len++] = 0x00; /* LUN, vendor specific */
			out[len++] = 0x00;
			out[len++] = (uint8_t)n;
			memcpy(out + len, d->t10_id, n);
			len += (int)n;
		}
		/* NAA, derived from the serial: stable across restarts. */
		out[len++] = 0x01; /* binary */
		out[len++] = 0x03; /* LUN, NAA */
		out[len++] = 0x00;
		out[len++] = 8;
		put_be64(out + len, d->naa);
		len += 8;
		break;
	}
	case 0xb0: /* block limits: QEMU's emulation.c with scsi-hd's defaults */
		memset(out + 4, 0, 0x3c);
		out[4] = 1; /* WSNZ */
		put_be16(out + 6, 0);
		put_be32(out + 8, (uint32_t)max_io);
		put_be32(out + 12, 0);
		if (!d->no_unmap) {
			put_be32(out + 20, (uint32_t)(SCSI_MAX_UNMAP_BYTES >> d->block_shift));
			put_be32(out + 24, SCSI_UNMAP_MAX_DESC);
		}
		put_be32(out + 28, d->unmap_granularity);
		put_be64(out + 36, max_io);
		len += 0x3c;
		break;
	case 0xb1: /* block device characteristics: rotation rate not reported */
		memset(out + 4, 0, 0x3c);
		len = 0x40;
		break;
	case 0xb2: /* logical block provisioning */
		out[4] = 0;
		/* LBPU, LBPWS, LBPWS10; thin provisioned.  Neither without unmap. */
		out[5] = d->no_unmap ? 0 : 0xe0;
		out[6] = d->no_unmap ? 0 : 2;
		out[7] = 0;
		len = 8;
		break;
	default:
		return -1;
	}
	put_be16(out + 2, (uint16_t)(len - 4));
	return len;
}

static void cmd_inquiry(struct scsi_disk *d, struct scsi_task *t, const uint8_t *cdb, uint64_t xfer,
			const struct scsi_bufs *b)
{
	uint8_t out[256] = {0};
	int len;

	if (cdb[1] & 0x02) {
		invalid_field(t, 1, 1); /* CMDDT (obsolete) */
		return;
	}
	if (cdb[1] & 0x01) {
		len = inquiry_vpd(d, cdb[2], out);
		if (len < 0) {
			invalid_field(t, 2, -1);
			return;
		}
		data_in(t, b, out, (size_t)len, xfer);
		return;
	}
	if (cdb[2]) {
		invalid_field(t, 2, -1);
		return;
	}
	len = xfer > sizeof(out) ? (int)sizeof(out) : (int)xfer;
	out[0] = 0x00; /* peripheral qualifier 0, direct access */
	out[1] = 0x00; /* not removable */
	out[2] = 5;    /* SPC-3, as QEMU claims */
	out[3] = 0x12; /* HiSup, response data format 2 */
	out[4] = len > 36 ? (uint8_t)(len - 5) : 36 - 5;
	out[7] = 0x12; /* Sync, CmdQue */
	pad_copy(out + 8, 8, SCSI_VENDOR);
	pad_copy(out + 16, 16, SCSI_PRODUCT);
	pad_copy(out + 32, 4, SCSI_REVISION);
	data_in(t, b, out, sizeof(out), xfer);
}

/* ---- MODE SENSE / MODE SELECT -------------------------------------------------- */

/* QEMU's CHS guess for a disk without a partition table (hw/block/hd-geometry.c). */
static void chs_guess(const struct scsi_disk *d, uint32_t *cyls, uint32_t *heads, uint32_t *secs)
{
	uint64_t sectors = scsi_disk_blocks(d) << (d->block_shift - 9);
	uint64_t c = sectors / (16 * 63);

	if (c > 16383)
		c = 16383;
	else if (c < 2)
		c = 2;
	*cyls = (uint32_t)c;
	*heads = 16;
	*secs = 63;
}

/*
 * Mode page @page with page control @pc (0 current, 1 changeable, 2
 * default) at @p: its length with the 2-byte header, or -1 if we have none.
 */
static int mode_page(const struct scsi_disk *d, unsigned int page, unsigned int pc, uint8_t *p)
{
	uint32_t cyls, heads, secs;
	uint8_t *q = p + 2;
	int len;

	chs_guess(d, &cyls, &heads, &secs);
	switch (page) {
	case MODE_PAGE_R_W_ERROR:
		len = 10;
		memset(q, 0, (size_t)len);
		if (pc != 1)
			q[0] = 0x80; /* AWRE */
		break;
	case MODE_PAGE_HD_GEOMETRY:
		len = 0x16;
		memset(q, 0, (size_t)len);
		if (pc == 1)
			break;
		q[0] = (uint8_t)(cyls >> 16);
		q[1] = (uint8_t)(cyls >> 8);
		q[2] = (uint8_t)cyls;
		q[3] = (uint8_t)heads;
		q[4] = q[7] = q[0];
		q[5] = q[8] = q[1];
		q[6] = q[9] = q[2];
		put_be16(q + 10, 200); /* step rate, ns */
		q[12] = q[13] = q[14] = 0xff;
		put_be16(q + 18, 5400); /* rpm */
		break;
	case MODE_PAGE_FLEXIBLE_DISK_GEOMETRY:
		len = 0x1e;
		memset(q, 0, (size_t)len);
		if (pc == 1)
			break;
		put_be16(q, 5000); /* kbit/s */
		q[2] = (uint8_t)heads;
		q[3] = (uint8_t)secs;
		q[4] = (uint8_t)(d->block_size >> 8);
		put_be16(q + 6, (uint16_t)cyls);
		put_be16(q + 8, (uint16_t)cyls);
		put_be16(q + 10, (uint16_t)cyls);
		put_be16(q + 12, 1);
		q[14] = 1;
		put_be16(q + 15, 1);
		q[17] = 1;
		q[18] = 1;
		put_be16(q + 26, 5400);
		break;
	case MODE_PAGE_CACHING:
		len = 0x12;
		memset(q, 0, (size_t)len);
		if (pc == 1 || (pc == 0 && atomic_load(&d->wce)))
			q[0] = 0x04; /* WCE */
		break;
	case MODE_PAGE_CONTROL:
		len = 0x0a;
		memset(q, 0, (size_t)len);
		if (pc != 1)
			q[1] = 0x10; /* unrestricted reordering; D_SENSE 0: fixed sense */
		break;
	default:
		return -1;
	}
	p[0] = (uint8_t)page;
	p[1] = (uint8_t)len;
	return len + 2;
}

static void cmd_mode_sense(struct scsi_disk *d, struct scsi_task *t, const uint8_t *cdb,
			   uint64_t xfer, const struct scsi_bufs *b)
{
	bool ten = cdb[0] == MODE_SENSE_10;
	bool dbd = cdb[1] & 0x08;
	unsigned int page = cdb[2] & 0x3f, pc = cdb[2] >> 6;
	uint64_t blocks = scsi_disk_blocks(d);
	uint8_t out[512] = {0};
	uint8_t *p = out;
	size_t len;
	/* DPOFUA: FUA is honoured; WP when read-only. */
	uint8_t dsp = 0x10 | (d->readonly ? 0x80 : 0);

	if (ten) {
		p[3] = dsp;
		p += 8;
	} else {
		p[2] = dsp;
		p += 4;
	}
	if (!dbd && blocks) {
		uint64_t n = blocks > 0xffffff ? 0 : blocks;

		out[ten ? 7 : 3] = 8;
		p[1] = (uint8_t)(n >> 16);
		p[2] = (uint8_t)(n >> 8);
		p[3] = (uint8_t)n;
		p[6] = (uint8_t)(d->block_size >> 8);
		p += 8;
	}
	if (pc == 3) {
		scsi_task_check(t, SCSI_SK_ILLEGAL_REQUEST, 0x39, 0x00);
		return;
	}
	if (page == MODE_PAGE_ALL) {
		for (unsigned int i = 0; i < MODE_PAGE_ALL; i++) {
			int n = mode_page(d, i, pc, p);

			if (n > 0)
				p += n;
		}
	} else {
		int n = mode_page(d, page, pc, p);

		if (n < 0) {
			invalid_field(t, 2, 5);
			return;
		}
		p += n;
	}
	len = (size_t)(p - out);
	if (ten)
		put_be16(out, (uint16_t)(len - 2));
	else
		out[0] = (uint8_t)(len - 1);
	data_in(t, b, out, len, xfer);
}

/*
 * One pass over the pages of a MODE SELECT parameter list: check (every
 * page is one we have, at its full length, changing only changeable
 * bits), or apply.  @p / @len: the pages after header and block
 * descriptor; @base: their offset in the parameter list.  0 or -1 (@t set).
 */
static int mode_select_pages(struct scsi_disk *d, struct scsi_task *t, const uint8_t *p, size_t len,
			     size_t base, bool apply)
{
	size_t off = 0;

	while (off < len) {
		unsigned int page = p[off] & 0x3f;
		uint8_t cur[64], chg[64];
		size_t plen;
		int n;

		if (p[off] & 0x40) { /* SPF: a subpage, which we have none of */
			invalid_param(t, (unsigned int)(base + off));
			return -1;
		}
		if (len - off < 2) {
			invalid_param_len(t);
			return -1;
		}
		plen = p[off + 1];
		if (plen > len - off - 2) {
			invalid_param_len(t);
			return -1;
		}
		n = mode_page(d, page, 0, cur);
		if (n < 0 || (size_t)n != plen + 2 || page == MODE_PAGE_ALL) {
			invalid_param(t, (unsigned int)(base + off));
			return -1;
		}
		mode_page(d, page, 1, chg);
		for (size_t i = 2; i < plen + 2; i++) {
			if ((cur[i] ^ p[off + i]) & ~chg[i]) {
				invalid_param(t, (unsigned int)(base + off + i));
				return -1;
			}
		}
		if (apply && page == MODE_PAGE_CACHING)
			atomic_store(&d->wce, (p[off + 2] & 0x04) != 0);
		off += plen + 2;
	}
	return 0;
}

static void cmd_mode_select(struct scsi_disk *d, struct scsi_task *t, const uint8_t *cdb,
			    uint64_t xfer, const struct scsi_bufs *b)
{
	bool ten = cdb[0] == MODE_SELECT_10;
	size_t hdr = ten ? 8 : 4, bd_len;
	uint8_t buf[SCSI_PARAM_MAX];
	size_t len;

	/* Only PF=1, SP=0, as QEMU. */
	if ((cdb[1] & 0x11) != 0x10) {
		invalid_field(t, 1, (cdb[1] & 0x01) ? 0 : 4);
		return;
	}
	if (xfer > sizeof(buf)) {
		invalid_field(t, ten ? 7 : 4, -1);
		return;
	}
	if (!xfer)
		return; /* nothing to change */
	/* Copy once; from here on only the copy is looked at. */
	len = iov_to_buf(b->out, b->out_cnt, 0, buf, (size_t)xfer);
	if (len < hdr) {
		invalid_param_len(t);
		return;
	}
	bd_len = ten ? get_be16(&buf[6]) : buf[3];
	if (len - hdr < bd_len) {
		invalid_param_len(t);
		return;
	}
	if (bd_len != 0 && bd_len != 8) {
		invalid_param(t, ten ? 6 : 3);
		return;
	}
	if (bd_len) {
		uint32_t bs = (uint32_t)buf[hdr + 5] << 16 | get_be16(&buf[hdr + 6]);

		/* A block size other than ours cannot be had. */
		if (bs && bs != d->block_size) {
			invalid_param(t, (unsigned int)hdr + 5);
			return;
		}
	}
	/* Check everything first: an error changes nothing. */
	if (mode_select_pages(d, t, buf + hdr + bd_len, len - hdr - bd_len, hdr + bd_len, false))
		return;
	mode_select_pages(d, t, buf + hdr + bd_len, len - hdr - bd_len, hdr + bd_len, true);
	/* Write cache now off: what it held must be durable (QEMU flushes too). */
	if (!atomic_load(&d->wce))
		t->op = SCSI_OP_FLUSH;
}

/* ---- READ CAPACITY, REQUEST SENSE, REPORT SUPPORTED OPERATION CODES ------------- */

static void cmd_read_capacity_10(struct scsi_disk *d, struct scsi_task *t, const uint8_t *cdb,
				 const struct scsi_bufs *b)
{
	uint64_t blocks = scsi_disk_blocks(d);
	uint8_t out[8] = {0};

	if (!blocks) {
		scsi_task_check(t, SCSI_SK_NOT_READY, 0x04, 0x00);
		return;
	}
	if (!(cdb[8] & 1) && get_be32(&cdb[2])) {
		invalid_field(t, 2, -1);
		return;
	}
	/* The last LBA, clipped: READ CAPACITY (16) tells the rest. */
	put_be32(out, blocks - 1 > UINT32_MAX ? UINT32_MAX : (uint32_t)(blocks - 1));
	put_be32(out + 4, d->block_size);
	data_in(t, b, out, sizeof(out), 8);
}

static void cmd_read_capacity_16(struct scsi_disk *d, struct scsi_task *t, const uint8_t *cdb,
				 uint64_t xfer, const struct scsi_bufs *b)
{
	uint64_t blocks = scsi_disk_blocks(d);
	uint8_t out[32] = {0};

	if (!blocks) {
		scsi_task_check(t, SCSI_SK_NOT_READY, 0x04, 0x00);
		return;
	}
	if (!(cdb[14] & 1) && get_be64(&cdb[2])) {
		invalid_field(t, 2, -1);
		return;
	}
	put_be64(out, blocks - 1);
	put_be32(out + 8, d->block_size);
	out[13] = d->phys_exp;
	out[14] = d->no_unmap ? 0 : 0x80; /* LBPME: UNMAP and WRITE SAME deallocate */
	data_in(t, b, out, sizeof(out), xfer);
}

/*
 * The last command's sense if it ended in CHECK CONDITION (QEMU keeps it
 * for REQUEST SENSE, autosense or not), else NO SENSE; fixed or, with
 * DESC, descriptor format.
 */
static void cmd_request_sense(struct scsi_disk *d, struct scsi_task *t, const uint8_t *cdb,
			      uint64_t xfer, const struct scsi_bufs *b)
{
	uint8_t out[SCSI_SENSE_LEN], key = SCSI_SK_NO_SENSE, asc = 0, ascq = 0;
	size_t len;

	sense_lock(d);
	if (atomic_load_explicit(&d->last_sense_len, memory_order_relaxed)) {
		key = d->last_sense[2] & 0x0f;
		asc = d->last_sense[12];
		ascq = d->last_sense[13];
		memcpy(out, d->last_sense, SCSI_SENSE_LEN);
	}
	sense_unlock(d);
	if (cdb[1] & 1) {
		memset(out, 0, 8);
		out[0] = 0x72; /* descriptor format */
		out[1] = key;
		out[2] = asc;
		out[3] = ascq;
		len = 8;
	} else {
		if (key == SCSI_SK_NO_SENSE && !asc)
			build_sense(out, SCSI_SK_NO_SENSE, 0, 0);
		len = SCSI_SENSE_LEN;
	}
	data_in(t, b, out, len, xfer < len ? xfer : len);
}

/* Every command we support, for REPORT SUPPORTED OPERATION CODES. */
struct opcode_info {
	uint8_t opcode;
	bool has_sa;
	uint16_t sa;
	uint8_t cdb_len;
	uint8_t usage[16]; /* CDB usage data: the bits a driver may set */
};

static const struct opcode_info opcodes[] = {
	{TEST_UNIT_READY, false, 0, 6, {0x00, 0, 0, 0, 0, 0x07}},
	{REQUEST_SENSE, false, 0, 6, {0x03, 0x01, 0, 0, 0xff, 0x07}},
	{READ_6, false, 0, 6, {0x08, 0x1f, 0xff, 0xff, 0xff, 0x07}},
	{WRITE_6, false, 0, 6, {0x0a, 0x1f, 0xff, 0xff, 0xff, 0x07}},
	{INQUIRY, false, 0, 6, {0x12, 0x01, 0xff, 0xff, 0xff, 0x07}},
	{MODE_SELECT_6, false, 0, 6, {0x15, 0x10, 0, 0, 0xff, 0x07}},
	{RESERVE_6, false, 0, 6, {0x16, 0, 0, 0, 0, 0x07}},
	{RELEASE_6, false, 0, 6, {0x17, 0, 0, 0, 0, 0x07}},
	{MODE_SENSE_6, false, 0, 6, {0x1a, 0x08, 0xff, 0xff, 0xff, 0x07}},
	{START_STOP_UNIT, false, 0, 6, {0x1b, 0x01, 0, 0x0f, 0xf7, 0x07}},
	{PREVENT_ALLOW, false, 0, 6, {0x1e, 0, 0, 0, 0x03, 0x07}},
	{READ_CAPACITY_10, false, 0, 10, {0x25, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0x01, 0x07}},
	{READ_10, false, 0, 10, {0x28, 0x18, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0x07}},
	{WRITE_10, false, 0, 10, {0x2a, 0x18, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0x07}},
	{SEEK_10, false, 0, 10, {0x2b, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0x07}},
	{VERIFY_10, false, 0, 10, {0x2f, 0x10, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0x07}},
	{SYNCHRONIZE_CACHE_10,
	 false,
	 0,
	 10,
	 {0x35, 0x06, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0x07}},
	{WRITE_SAME_10, false, 0, 10, {0x41, 0x08, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0x07}},
	{UNMAP, false, 0, 10, {0x42, 0, 0, 0, 0, 0, 0x1f, 0xff, 0xff, 0x07}},
	{MODE_SELECT_10, false, 0, 10, {0x55, 0x10, 0, 0, 0, 0, 0, 0xff, 0xff, 0x07}},
	{RESERVE_10, false, 0, 10, {0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0x07}},
	{RELEASE_10, false, 0, 10, {0x57, 0, 0, 0, 0, 0, 0, 0, 0, 0x07}},
	{MODE_SENSE_10, false, 0, 10, {0x5a, 0x08, 0xff, 0xff, 0, 0, 0, 0xff, 0xff, 0x07}},
	{READ_16,
	 false,
	 0,
	 16,
	 {0x88, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f,
	  0x07}},
	{WRITE_16,
	 false,
	 0,
	 16,
	 {0x8a, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f,
	  0x07}},
	{VERIFY_16,
	 false,
	 0,
	 16,
	 {0x8f, 0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f,
	  0x07}},
	{SYNCHRONIZE_CACHE_16,
	 false,
	 0,
	 16,
	 {0x91, 0x06, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f,
	  0x07}},
	{WRITE_SAME_16,
	 false,
	 0,
	 16,
	 {0x93, 0x09, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f,
	  0x07}},
	{SERVICE_ACTION_IN_16,
	 true,
	 SAI_READ_CAPACITY_16,
	 16,
	 {0x9e, 0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
	  0x07}},
	{REPORT_LUNS, false, 0, 12, {0xa0, 0, 0xff, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0x07}},
	{MAINTENANCE_IN,
	 true,
	 MI_REPORT_SUPPORTED_OPCODES,
	 12,
	 {0xa3, 0x0c, 0x87, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0x07}},
	{READ_12,
	 false,
	 0,
	 12,
	 {0xa8, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x07}},
	{WRITE_12,
	 false,
	 0,
	 12,
	 {0xaa, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x07}},
	{VERIFY_12,
	 false,
	 0,
	 12,
	 {0xaf, 0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x07}},
};

/* A command timeouts descriptor (SPC-4 6.35.4): no timeouts given. */
static size_t put_timeouts(uint8_t *p)
{
	memset(p, 0, 12);
	put_be16(p, 0x0a);
	return 12;
}

static void cmd_report_opcodes(struct scsi_task *t, const uint8_t *cdb, uint64_t xfer,
			       const struct scsi_bufs *b)
{
	unsigned int options = cdb[2] & 0x07;
	bool rctd = cdb[2] & 0x80;
	uint8_t req_op = cdb[3];
	uint16_t req_sa = get_be16(&cdb[4]);
	uint8_t out[SCSI_PARAM_MAX] = {0};
	const struct opcode_info *oi = NULL;
	size_t len = 4;

	if (options == 0) {
		for (unsigned int i = 0; i < ARRAY_SIZE(opcodes); i++) {
			uint8_t *p = out + len;

			p[0] = opcodes[i].opcode;
			put_be16(p + 2, opcodes[i].sa);
			p[5] = (opcodes[i].has_sa ? 0x01 : 0) | (rctd ? 0x02 : 0);
			put_be16(p + 6, opcodes[i].cdb_len);
			len += 8;
			if (rctd)
				len += put_timeouts(out + len);
		}
		put_be32(out, (uint32_t)(len - 4));
		data_in(t, b, out, len, xfer);
		return;
	}
	if (options > 2) {
		invalid_field(t, 2, 0);
		return;
	}
	for (unsigned int i = 0; i < ARRAY_SIZE(opcodes); i++) {
		if (opcodes[i].opcode == req_op) {
			oi = &opcodes[i];
			break;
		}
	}
	/* Option 1 names an opcode without service actions, option 2 one with. */
	if (oi && (options == 1) == oi->has_sa) {
		invalid_field(t, 2, 0);
		return;
	}
	if (oi && oi->has_sa && oi->sa != req_sa)
		oi = NULL;
	out[1] = (rctd ? 0x80 : 0) | (oi ? 0x03 : 0x01); /* supported / not supported */
	if (oi) {
		put_be16(out + 2, oi->cdb_len);
		memcpy(out + 4, oi->usage, oi->cdb_len);
		len = 4u + oi->cdb_len;
		if (rctd)
			len += put_timeouts(out + len);
	}
	data_in(t, b, out, len, xfer);
}

/* ---- block commands ------------------------------------------------------------ */

/* READ / WRITE (6, 10, 12, 16): the LBA, the length and the protect/FUA flags. */
static void cmd_rw(struct scsi_disk *d, struct scsi_task *t, const uint8_t *cdb)
{
	bool write =
		cdb[0] == WRITE_6 || cdb[0] == WRITE_10 || cdb[0] == WRITE_12 || cdb[0] == WRITE_16;
	uint64_t lba;
	uint32_t n;

	switch (cdb[0]) {
	case READ_6:
	case WRITE_6:
		lba = (uint64_t)(cdb[1] & 0x1f) << 16 | get_be16(&cdb[2]);
		n = cdb[4] ? cdb[4] : 256;
		break;
	case READ_10:
	case WRITE_10:
		lba = get_be32(&cdb[2]);
		n = get_be16(&cdb[7]);
		break;
	case READ_12:
	case WRITE_12:
		lba = get_be32(&cdb[2]);
		n = get_be32(&cdb[6]);
		break;
	default:
		lba = get_be64(&cdb[2]);
		n = get_be32(&cdb[10]);
		break;
	}
	if (write && d->readonly) {
		write_protected(t);
		return;
	}
	/* RDPROTECT / WRPROTECT: no protection information here. */
	if (cdb[0] != READ_6 && cdb[0] != WRITE_6 && (cdb[1] & 0xe0)) {
		invalid_field(t, 1, 7);
		return;
	}
	if (!lba_range_ok(d, lba, n)) {
		lba_out_of_range(t);
		return;
	}
	if (!n)
		return;
	t->op = write ? SCSI_OP_WRITE : SCSI_OP_READ;
	t->lba = lba;
	t->nblocks = n;
	/* FUA, or writethrough (WCE 0): durable on completion. */
	if (write && ((cdb[0] != WRITE_6 && (cdb[1] & 0x08)) || !atomic_load(&d->wce)))
		t->flags |= SCSI_IO_FUA;
}

static void cmd_verify(struct scsi_disk *d, struct scsi_task *t, const uint8_t *cdb)
{
	uint64_t lba;
	uint32_t n;

	if (cdb[0] == VERIFY_16) {
		lba = get_be64(&cdb[2]);
		n = get_be32(&cdb[10]);
	} else if (cdb[0] == VERIFY_12) {
		lba = get_be32(&cdb[2]);
		n = get_be32(&cdb[6]);
	} else {
		lba = get_be32(&cdb[2]);
		n = get_be16(&cdb[7]);
	}
	/* BYTCHK: comparing data is not offered (QEMU refuses it too). */
	if (cdb[1] & 0x06) {
		invalid_field(t, 1, 1);
		return;
	}
	if (cdb[1] & 0xe0) {
		invalid_field(t, 1, 7);
		return;
	}
	/* Nothing to verify in a file, but the range must exist (SBC-3 5.33). */
	if (!lba_range_ok(d, lba, n))
		lba_out_of_range(t);
}

static void cmd_write_same(struct scsi_disk *d, struct scsi_task *t, const uint8_t *cdb,
			   const struct scsi_bufs *b)
{
	bool sixteen = cdb[0] == WRITE_SAME_16;
	uint64_t lba = sixteen ? get_be64(&cdb[2]) : get_be32(&cdb[2]);
	uint32_t n = sixteen ? get_be32(&cdb[10]) : get_be16(&cdb[7]);
	bool ndob = sixteen && (cdb[1] & 0x01);
	bool zero = true;

	/* PBDATA, LBDATA, ANCHOR: refused, as by QEMU; and WSNZ: no length 0. */
	if (cdb[1] & 0x16) {
		invalid_field(t, 1, (cdb[1] & 0x04) ? 2 : (cdb[1] & 0x02) ? 1 : 4);
		return;
	}
	if (!n) {
		invalid_field(t, sixteen ? 10 : 7, -1);
		return;
	}
	if (d->readonly) {
		write_protected(t);
		return;
	}
	if (!lba_range_ok(d, lba, n)) {
		lba_out_of_range(t);
		return;
	}
	if (!ndob) {
		/* Copy the block once; the pattern is this copy from now on. */
		if (iov_to_buf(b->out, b->out_cnt, 0, t->ws_block, d->block_size) !=
		    d->block_size) {
			invalid_param_len(t);
			return;
		}
		for (uint32_t i = 0; i < d->block_size && zero; i++)
			zero = !t->ws_block[i];
	}
	t->lba = lba;
	t->nblocks = n;
	if (zero) {
		t->op = SCSI_OP_WRITE_ZEROES;
		if (cdb[1] & 0x08)
			t->flags |= SCSI_IO_UNMAP;
	} else {
		t->op = SCSI_OP_WRITE_SAME;
	}
	if (!atomic_load(&d->wce))
		t->flags |= SCSI_IO_FUA;
}

static void cmd_unmap(struct scsi_disk *d, struct scsi_task *t, const uint8_t *cdb, uint64_t xfer,
		      const struct scsi_bufs *b)
{
	uint8_t buf[SCSI_PARAM_MAX];
	size_t len;
	unsigned int count;

	if (cdb[1] & 0x01) {
		invalid_field(t, 1, 0); /* ANCHOR */
		return;
	}
	if (xfer > sizeof(buf)) {
		invalid_field(t, 7, -1);
		return;
	}
	if (!xfer)
		return; /* SBC-3: a zero parameter list length is not an error */
	/* Copy once; only the copy is parsed. */
	len = iov_to_buf(b->out, b->out_cnt, 0, buf, (size_t)xfer);
	if (len < 8 || len < get_be16(&buf[0]) + 2u || len < get_be16(&buf[2]) + 8u ||
	    (get_be16(&buf[2]) & 15)) {
		invalid_param_len(t);
		return;
	}
	if (d->readonly) {
		write_protected(t);
		return;
	}
	count = get_be16(&buf[2]) >> 4;
	/* Every range is checked before any is deallocated. */
	for (unsigned int i = 0; i < count; i++) {
		const uint8_t *p = buf + 8 + 16 * i;
		uint64_t lba = get_be64(p);
		uint32_t n = get_be32(p + 8);

		if (!lba_range_ok(d, lba, n)) {
			lba_out_of_range(t);
			t->nr_ranges = 0;
			return;
		}
		if (!n)
			continue;
		t->ranges[t->nr_ranges].lba = lba;
		t->ranges[t->nr_ranges].nblocks = n;
		t->nr_ranges++;
	}
	if (t->nr_ranges)
		t->op = SCSI_OP_UNMAP;
}

/* ---- dispatch ------------------------------------------------------------------ */

static void exec_cmd(struct scsi_disk *d, struct scsi_task *t, const uint8_t *cdb, uint64_t xfer,
		     const struct scsi_bufs *b)
{
	/* QEMU refuses allocation lengths it would have to buffer beyond 64 KiB. */
	switch (cdb[0]) {
	case INQUIRY:
	case MODE_SENSE_6:
	case MODE_SENSE_10:
	case SERVICE_ACTION_IN_16:
	case MAINTENANCE_IN:
		if (xfer > SCSI_MAX_ALLOC_LEN) {
			invalid_field(t,
				      cdb[0] == INQUIRY		? 3
				      : cdb[0] == MODE_SENSE_10 ? 7
								: 10,
				      -1);
			return;
		}
	}

	switch (cdb[0]) {
	case TEST_UNIT_READY:
	case START_STOP_UNIT:
	case PREVENT_ALLOW:
		return;
	case RESERVE_6:
	case RELEASE_6:
		if (cdb[1] & 0x01)
			invalid_field(t, 1, 0);
		return;
	case RESERVE_10:
	case RELEASE_10:
		if (cdb[1] & 0x03)
			invalid_field(t, 1, (cdb[1] & 0x01) ? 0 : 1);
		return;
	case REQUEST_SENSE:
		cmd_request_sense(d, t, cdb, xfer, b);
		return;
	case INQUIRY:
		cmd_inquiry(d, t, cdb, xfer, b);
		return;
	case MODE_SENSE_6:
	case MODE_SENSE_10:
		cmd_mode_sense(d, t, cdb, xfer, b);
		return;
	case MODE_SELECT_6:
	case MODE_SELECT_10:
		cmd_mode_select(d, t, cdb, xfer, b);
		return;
	case READ_CAPACITY_10:
		cmd_read_capacity_10(d, t, cdb, b);
		return;
	case SERVICE_ACTION_IN_16:
		if ((cdb[1] & 0x1f) == SAI_READ_CAPACITY_16)
			cmd_read_capacity_16(d, t, cdb, xfer, b);
		else
			invalid_field(t, 1, 4);
		return;
	case MAINTENANCE_IN:
		if ((cdb[1] & 0x1f) == MI_REPORT_SUPPORTED_OPCODES)
			cmd_report_opcodes(t, cdb, xfer, b);
		else
			invalid_field(t, 1, 4);
		return;
	case READ_6:
	case READ_10:
	case READ_12:
	case READ_16:
	case WRITE_6:
	case WRITE_10:
	case WRITE_12:
	case WRITE_16:
		cmd_rw(d, t, cdb);
		return;
	case VERIFY_10:
	case VERIFY_12:
	case VERIFY_16:
		cmd_verify(d, t, cdb);
		return;
	case SEEK_10:
		if (get_be32(&cdb[2]) >= scsi_disk_blocks(d))
			lba_out_of_range(t);
		return;
	case SYNCHRONIZE_CACHE_10:
	case SYNCHRONIZE_CACHE_16:
		t->op = SCSI_OP_FLUSH;
		return;
	case WRITE_SAME_10:
	case WRITE_SAME_16:
		cmd_write_same(d, t, cdb, b);
		return;
	case UNMAP:
		cmd_unmap(d, t, cdb, xfer, b);
		return;
	default:
		invalid_opcode(t);
		return;
	}
}

enum scsi_op scsi_disk_exec(struct scsi_disk *d, struct scsi_task *t, const uint8_t *cdb,
			    const struct scsi_bufs *b)
{
	enum xfer_dir dir;
	uint64_t xfer;

	task_reset(t);
	t->opcode = cdb[0];
	xfer = cdb_xfer(d, cdb, &dir);
	if (check_overrun(t, dir, xfer, b))
		return SCSI_OP_NONE;
	/* SPC-4 5.14: INQUIRY and REPORT LUNS neither report nor clear a UA. */
	if (cdb[0] != INQUIRY && cdb[0] != REPORT_LUNS && report_ua(d, t))
		return SCSI_OP_NONE;
	exec_cmd(d, t, cdb, xfer, b);
	return (enum scsi_op)t->op;
}

void scsi_task_io_done(struct scsi_task *t, int64_t res)
{
	if (res >= 0) {
		t->status = SCSI_STATUS_GOOD;
		if (t->op == SCSI_OP_READ)
			t->data_in = (uint32_t)res;
		return;
	}
	/* QEMU's mapping of errno to sense (scsi_sense_from_errno). */
	if (res == -ENOSPC)
		scsi_task_check(t, SCSI_SK_DATA_PROTECT, 0x27, 0x07);
	else if (res == -ENOMEM)
		scsi_task_check(t, SCSI_SK_ABORTED_COMMAND, 0x55, 0x03);
	else if (res == -EINVAL)
		scsi_task_check(t, SCSI_SK_ILLEGAL_REQUEST, 0x24, 0x00);
	else
		scsi_task_check(t, SCSI_SK_ABORTED_COMMAND, 0x00, 0x06);
	t->data_in = 0;
}

/* ---- target level ---------------------------------------------------------------- */

bool scsi_cdb_is_report_luns(const uint8_t *cdb)
{
	return cdb[0] == REPORT_LUNS;
}

void scsi_report_luns(struct scsi_task *t, const uint8_t *cdb, const uint16_t *luns, unsigned int n,
		      const struct scsi_bufs *b)
{
	uint8_t out[8 + 8 * (SCSI_REPORT_LUNS_MAX + 1)] = {0};
	uint32_t xfer = get_be32(&cdb[6]);
	size_t len = 16; /* header and LUN 0, always listed */

	task_reset(t);
	t->opcode = cdb[0];
	if (check_overrun(t, XFER_FROM_DEV, xfer, b))
		return;
	if (xfer < 16) {
		invalid_field(t, 6, -1);
		return;
	}
	if (cdb[2] > 2) {
		invalid_field(t, 2, -1);
		return;
	}
	for (unsigned int i = 0; i < n && i < SCSI_REPORT_LUNS_MAX; i++) {
		uint16_t lun = luns[i];

		if (!lun)
			continue;
		if (lun < 256) {
			out[len + 1] = (uint8_t)lun;
		} else {
			out[len] = (uint8_t)(0x40 | (lun >> 8)); /* flat space */
			out[len + 1] = (uint8_t)lun;
		}
		len += 8;
	}
	put_be32(out, (uint32_t)(len - 8));
	/* QEMU transfers whole entries only. */
	data_in(t, b, out, len, len < (xfer & ~7u) ? len : (xfer & ~7u));
}

void scsi_absent_lun(struct scsi_task *t, const uint8_t *cdb, const struct scsi_bufs *b)
{
	enum xfer_dir dir = XFER_FROM_DEV;
	uint8_t out[36] = {0};
	uint64_t xfer = 0;

	task_reset(t);
	t->opcode = cdb[0];
	if (cdb[0] == INQUIRY)
		xfer = get_be16(&cdb[3]);
	else if (cdb[0] == REQUEST_SENSE)
		xfer = cdb[4];
	if (check_overrun(t, dir, xfer, b))
		return;
	switch (cdb[0]) {
	case INQUIRY:
		if (cdb[1] & 0x02) {
			invalid_field(t, 1, 1);
			return;
		}
		if (cdb[1] & 0x01) {
			/* Only the list of VPD pages, holding itself. */
			if (cdb[2] || xfer < 4) {
				invalid_field(t, 2, -1);
				return;
			}
			out[0] = 0x7f;
			put_be16(out + 2, 1);
			data_in(t, b, out, 5, xfer < 5 ? xfer : 5);
			return;
		}
		if (cdb[2]) {
			invalid_field(t, 2, -1);
			return;
		}
		/* Peripheral qualifier 3: no logical unit here (SPC-4 6.6.2). */
		out[0] = 0x7f;
		out[2] = 5;
		out[3] = 0x12;
		out[4] = 36 - 5;
		out[7] = 0x12;
		pad_copy(out + 8, 8, SCSI_VENDOR);
		pad_copy(out + 16, 16, SCSI_TARGET_PRODUCT);
		pad_copy(out + 32, 4, SCSI_REVISION);
		data_in(t, b, out, sizeof(out), xfer < sizeof(out) ? xfer : sizeof(out));
		return;
	case REQUEST_SENSE:
		build_sense(out, SCSI_SK_ILLEGAL_REQUEST, 0x25, 0x00);
		data_in(t, b, out, SCSI_SENSE_LEN, xfer < SCSI_SENSE_LEN ? xfer : SCSI_SENSE_LEN);
		return;
	default:
		lun_not_supported(t);
		return;
	}
}
