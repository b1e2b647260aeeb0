// SPDX-License-Identifier: MIT
/*
 * test_scsi_device.c - the virtio-scsi device end to end in one process: a
 * scsi_dev served by an event-loop thread, driven over its vhost-user
 * socket by our front-end (frontend.h) as a guest driver would, on split
 * and packed rings.
 *
 * The controller has three LUNs: 0:0 on an image file, 0:1 on the null
 * back-end, and 1:2 (a target without LUN 0) read-only with 4 KiB blocks.
 * Every command of scsi_disk.c is sent with good and bad fields and the
 * answers are checked byte by byte where QEMU's scsi-hd defines them;
 * the image is compared with a model at the end, so a refused command
 * provably wrote nothing.  Then: task management with commands in flight
 * (no command completes after the TMF that aborts it, none twice), events
 * with and without buffers, and hostile chains.
 */
#include <endian.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "blk_test.h"
#include "common/evloop.h"
#include "common/log.h"
#include "devices/scsi.h"
#include "devices/scsi_disk.h"
#include "devices/virtio_scsi.h"
#include "vhost-user/frontend.h"
#include "vhost-user/protocol.h"
#include "virtq/ring.h"

#define IMG_BLOCKS 8192u /* 4 MiB of 512-byte blocks */
#define IMG_BYTES  ((size_t)IMG_BLOCKS * 512)
#define QSIZE	   64
#define DATA_BYTES (256u * 1024)
#define RQ	   VIRTIO_SCSI_REQ_QUEUE0

struct ctx {
	struct evloop *loop;
	pthread_t loop_thread;
	bool loop_running;
	struct scsi_dev *dev;
	struct vu_fe *fe;
	char img[256], img_ro[256];
	char sock[108];
	int img_fd;
	uint8_t *model;

	struct virtio_scsi_cmd_req *req;
	struct virtio_scsi_cmd_resp *resp;
	uint8_t *data;
};

struct result {
	uint8_t response;
	uint8_t status;
	uint32_t sense_len;
	uint32_t resid;
	uint8_t sense[SCSI_SENSE_LEN];
	uint32_t used;
};

/* ---- plumbing ------------------------------------------------------------ */

static void *loop_main(void *arg)
{
	evloop_run(arg);
	return NULL;
}

static void parse_lun(struct scsi_lun_options *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void parse_lun(struct scsi_lun_options *o, const char *fmt, ...)
{
	char spec[1024], err[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(spec, sizeof(spec), fmt, ap);
	va_end(ap);
	if (scsi_lun_options_parse(spec, o, err, sizeof(err)))
		FAIL("lun options %s: %s", spec, err);
}

static void dev_start(struct ctx *c, bool packed, uint64_t drop_features)
{
	struct scsi_lun_options luns[3];
	struct scsi_options opts;
	struct vu_fe_config fcfg;
	char spec[512], err[256];
	static int serial;
	uint64_t want;

	snprintf(c->sock, sizeof(c->sock), "/tmp/vhostd-scsi-%d-%d.sock", (int)getpid(), serial);
	unlink(c->sock);
	snprintf(spec, sizeof(spec), "id=sc%d,socket=%s,queue-size=%d,num-queues=2", serial++,
		 c->sock, QSIZE);
	if (scsi_options_parse(spec, &opts, err, sizeof(err)))
		FAIL("options: %s", err);
	parse_lun(&luns[0], "scsi=%s,target=0,lun=0,path=%s,serial=SCSI-SERIAL-0", opts.id, c->img);
	parse_lun(&luns[1], "scsi=%s,target=0,lun=1,backend=null,size=4M", opts.id);
	parse_lun(&luns[2], "scsi=%s,target=1,lun=2,path=%s,readonly=on,block-size=4096", opts.id,
		  c->img_ro);
	c->loop = evloop_new();
	CHECK(c->loop);
	c->dev = scsi_dev_new(&opts, luns, 3, &vu_evloop_watch_ops, c->loop, err, sizeof(err));
	if (!c->dev)
		FAIL("scsi_dev_new: %s", err);
	CHECK_EQ(scsi_dev_nr_luns(c->dev), 3);
	CHECK_EQ(pthread_create(&c->loop_thread, NULL, loop_main, c->loop), 0);
	c->loop_running = true;

	want = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_RING_F_EVENT_IDX |
	       1ull << VIRTIO_RING_F_INDIRECT_DESC | 1ull << VIRTIO_SCSI_F_HOTPLUG |
	       1ull << VIRTIO_SCSI_F_CHANGE;
	if (packed)
		want |= 1ull << VIRTIO_F_RING_PACKED;
	want &= ~drop_features;
	fcfg = (struct vu_fe_config){
		.socket_path = c->sock,
		.mem_size = 16u << 20,
		.queue_size = QSIZE,
		.features = want,
		.indirect_max = 8,
	};
	c->fe = vu_fe_connect(&fcfg);
	if (!c->fe)
		FAIL("vu_fe_connect: %s", strerror(errno));
	CHECK_EQ(vu_fe_num_queues(c->fe), 4);
	c->req = vu_fe_alloc(c->fe, sizeof(*c->req), 16);
	c->resp = vu_fe_alloc(c->fe, sizeof(*c->resp), 16);
	c->data = vu_fe_alloc(c->fe, DATA_BYTES, 4096);
	CHECK(c->req && c->resp && c->data);
}

static void loop_stop(struct ctx *c)
{
	if (!c->loop_running)
		return;
	evloop_stop(c->loop);
	pthread_join(c->loop_thread, NULL);
	c->loop_running = false;
}

static void dev_stop(struct ctx *c)
{
	vu_fe_disconnect(c->fe);
	c->fe = NULL;
	loop_stop(c);
	scsi_dev_free(c->dev);
	c->dev = NULL;
	evloop_free(c->loop);
	c->loop = NULL;
	unlink(c->sock);
}

static uint64_t addr(struct ctx *c, const void *p)
{
	return vu_fe_addr(c->fe, p);
}

static void *wait_any(struct ctx *c, unsigned int q, uint32_t *len)
{
	struct virtq_drv *vq = vu_fe_queue(c->fe, q);

	for (;;) {
		void *t = virtq_drv_get_buf(vq, len);

		if (t)
			return t;
		if (!virtq_drv_enable_cb(vq))
			continue;
		if (vu_fe_wait_call(c->fe, q, 5000) != 1)
			FAIL("no completion and no interrupt within 5 s on queue %u", q);
	}
}

static uint32_t run_chain(struct ctx *c, unsigned int q, const struct virtq_sg *sg,
			  unsigned int nout, unsigned int nin)
{
	static int token;
	uint32_t len;

	CHECK_EQ(virtq_drv_add_sgs(vu_fe_queue(c->fe, q), sg, nout, nin, &token), 0);
	CHECK_EQ(vu_fe_kick(c->fe, q) < 0, 0);
	CHECK(wait_any(c, q, &len) == &token);
	return len;
}

static void set_lun(uint8_t *lun, unsigned int target, unsigned int id)
{
	memset(lun, 0, 8);
	lun[0] = 1;
	lun[1] = (uint8_t)target;
	lun[2] = (uint8_t)(0x40 | (id >> 8));
	lun[3] = (uint8_t)id;
}

/*
 * One command: @cdb to target:lun with @dout_len bytes of c->data out, or
 * @din_len bytes of c->data in (the rest of c->data is a 0xa5 sentinel).
 */
static struct result cmd(struct ctx *c, unsigned int target, unsigned int lun, const uint8_t *cdb,
			 size_t cdb_len, size_t dout_len, size_t din_len)
{
	struct virtq_sg sg[4];
	unsigned int nout = 0, nin = 0;
	struct result r;

	memset(c->req, 0, sizeof(*c->req));
	set_lun(c->req->lun, target, lun);
	c->req->tag = htole64(0x1234);
	memcpy(c->req->cdb, cdb, cdb_len);
	memset(c->resp, 0xee, sizeof(*c->resp));
	if (!dout_len)
		memset(c->data, 0xa5, DATA_BYTES);
	sg[nout++] = (struct virtq_sg){addr(c, c->req), sizeof(*c->req)};
	if (dout_len)
		sg[nout++] = (struct virtq_sg){addr(c, c->data), (uint32_t)dout_len};
	sg[nout + nin++] = (struct virtq_sg){addr(c, c->resp), sizeof(*c->resp)};
	if (din_len)
		sg[nout + nin++] = (struct virtq_sg){addr(c, c->data), (uint32_t)din_len};
	r.used = run_chain(c, RQ, sg, nout, nin);
	r.response = c->resp->response;
	r.status = c->resp->status;
	r.sense_len = le32toh(c->resp->sense_len);
	r.resid = le32toh(c->resp->resid);
	memcpy(r.sense, c->resp->sense, sizeof(r.sense));
	CHECK(r.used >= sizeof(*c->resp));
	return r;
}

static void expect_good(const struct result *r)
{
	CHECK_EQ(r->response, VIRTIO_SCSI_S_OK);
	CHECK_MSG(r->status == SCSI_STATUS_GOOD, "status %#x sense %x/%02x/%02x", r->status,
		  r->sense[2], r->sense[12], r->sense[13]);
	CHECK_EQ(r->sense_len, 0);
}

static void expect_sense(const struct result *r, uint8_t key, uint8_t asc, uint8_t ascq)
{
	CHECK_EQ(r->response, VIRTIO_SCSI_S_OK);
	CHECK_EQ(r->status, SCSI_STATUS_CHECK_CONDITION);
	CHECK_EQ(r->sense_len, SCSI_SENSE_LEN);
	CHECK_EQ(r->sense[0], 0x70);
	CHECK_EQ(r->sense[2], key);
	CHECK_EQ(r->sense[7], 10);
	CHECK_EQ(r->sense[12], asc);
	CHECK_EQ(r->sense[13], ascq);
}

/* INVALID FIELD IN CDB pointing at byte @byte (bit @bit, or -1). */
static void expect_invalid_field(const struct result *r, unsigned int byte, int bit)
{
	expect_sense(r, SCSI_SK_ILLEGAL_REQUEST, 0x24, 0x00);
	CHECK_EQ(r->sense[15], 0xc0 | (bit >= 0 ? 0x08 | bit : 0));
	CHECK_EQ(r->sense[16] << 8 | r->sense[17], byte);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)(v >> 32));
	put32(p + 4, (uint32_t)v);
}

/* ---- images --------------------------------------------------------------- */

static void new_images(struct ctx *c)
{
	int fd;

	c->img_fd = blk_test_image(c->img, sizeof(c->img), IMG_BYTES);
	c->model = calloc(1, IMG_BYTES);
	CHECK(c->model);
	fd = blk_test_image(c->img_ro, sizeof(c->img_ro), IMG_BYTES);
	close(fd);
}

static void check_image(struct ctx *c)
{
	uint8_t *buf = malloc(IMG_BYTES);

	CHECK(buf);
	CHECK_EQ(pread(c->img_fd, buf, IMG_BYTES, 0), (ssize_t)IMG_BYTES);
	for (size_t i = 0; i < IMG_BYTES; i++) {
		if (buf[i] != c->model[i])
			FAIL("image byte %zu is %#x, expected %#x", i, buf[i], c->model[i]);
	}
	free(buf);
}

static void drop_images(struct ctx *c)
{
	close(c->img_fd);
	unlink(c->img);
	unlink(c->img_ro);
	free(c->model);
}

/* ---- commands --------------------------------------------------------------- */

static void test_unit_attention(struct ctx *c)
{
	uint8_t tur[6] = {0};
	struct result r;

	/* Power on: the first command to each LUN sees 29h/00h, then it is gone. */
	r = cmd(c, 0, 0, tur, 6, 0, 0);
	expect_sense(&r, SCSI_SK_UNIT_ATTENTION, 0x29, 0x00);
	r = cmd(c, 0, 0, tur, 6, 0, 0);
	expect_good(&r);
	r = cmd(c, 0, 1, tur, 6, 0, 0);
	expect_sense(&r, SCSI_SK_UNIT_ATTENTION, 0x29, 0x00);
	/* INQUIRY neither reports nor clears it. */
	{
		uint8_t inq[6] = {0x12, 0, 0, 0, 36, 0};

		r = cmd(c, 1, 2, inq, 6, 0, 36);
		expect_good(&r);
		r = cmd(c, 1, 2, tur, 6, 0, 0);
		expect_sense(&r, SCSI_SK_UNIT_ATTENTION, 0x29, 0x00);
	}
	r = cmd(c, 0, 1, tur, 6, 0, 0);
	expect_good(&r);
}

static void test_inquiry(struct ctx *c)
{
	uint8_t cdb[6] = {0x12, 0, 0, 0, 36, 0};
	uint8_t *d = c->data;
	struct result r;

	r = cmd(c, 0, 0, cdb, 6, 0, 36);
	expect_good(&r);
	CHECK_EQ(r.resid, 0);
	CHECK_EQ(r.used, sizeof(struct virtio_scsi_cmd_resp) + 36);
	CHECK_EQ(d[0], 0);
	CHECK_EQ(d[1], 0);
	CHECK_EQ(d[2], 5);
	CHECK_EQ(d[3], 0x12);
	CHECK_EQ(d[4], 31);
	CHECK_EQ(d[7], 0x12);
	CHECK(!memcmp(d + 8, "VHOSTD  ", 8));
	CHECK_EQ(d[36], 0xa5); /* nothing past the allocation length */

	/* QEMU: the additional length follows a larger allocation, zero padded. */
	cdb[4] = 96;
	r = cmd(c, 0, 0, cdb, 6, 0, 96);
	expect_good(&r);
	CHECK_EQ(d[4], 91);
	CHECK_EQ(d[95], 0);
	CHECK_EQ(r.resid, 0);

	/* A buffer larger than the allocation: the rest is the residual. */
	cdb[4] = 36;
	r = cmd(c, 0, 0, cdb, 6, 0, 100);
	expect_good(&r);
	CHECK_EQ(r.resid, 64);
	CHECK_EQ(d[36], 0xa5);

	/* Allocation larger than the buffer: overrun, nothing written. */
	cdb[4] = 200;
	r = cmd(c, 0, 0, cdb, 6, 0, 100);
	CHECK_EQ(r.response, VIRTIO_SCSI_S_OVERRUN);
	CHECK_EQ(r.resid, 100);
	CHECK_EQ(d[0], 0xa5);
	CHECK_EQ(r.used, sizeof(struct virtio_scsi_cmd_resp));

	/* Page code without EVPD: INVALID FIELD pointing at byte 2. */
	cdb[2] = 0x80;
	cdb[4] = 36;
	r = cmd(c, 0, 0, cdb, 6, 0, 36);
	expect_invalid_field(&r, 2, -1);

	/* VPD 0x00: the supported pages. */
	cdb[1] = 1;
	cdb[2] = 0x00;
	cdb[4] = 255;
	r = cmd(c, 0, 0, cdb, 6, 0, 255);
	expect_good(&r);
	CHECK_EQ(d[1], 0x00);
	CHECK_EQ(d[3], 6);
	CHECK(!memcmp(d + 4, "\x00\x80\x83\xb0\xb1\xb2", 6));

	/* VPD 0x80: the serial. */
	cdb[2] = 0x80;
	r = cmd(c, 0, 0, cdb, 6, 0, 255);
	expect_good(&r);
	CHECK_EQ(d[3], 13);
	CHECK(!memcmp(d + 4, "SCSI-SERIAL-0", 13));

	/* VPD 0x83: QEMU's ASCII designator, then an NAA one derived from the serial. */
	cdb[2] = 0x83;
	r = cmd(c, 0, 0, cdb, 6, 0, 255);
	expect_good(&r);
	CHECK_EQ(d[4], 0x02);
	CHECK_EQ(d[7], 13);
	CHECK(!memcmp(d + 8, "SCSI-SERIAL-0", 13));
	CHECK_EQ(d[21], 0x01);
	CHECK_EQ(d[22], 0x03);
	CHECK_EQ(d[24], 8);
	CHECK_EQ(d[25] >> 4, 3);
	CHECK_EQ(d[3], 4 + 13 + 4 + 8);

	/* VPD 0xB0: QEMU's block limits for 512-byte blocks. */
	cdb[2] = 0xb0;
	r = cmd(c, 0, 0, cdb, 6, 0, 255);
	expect_good(&r);
	CHECK_EQ(d[3], 0x3c);
	CHECK_EQ(d[4], 1);
	CHECK_EQ(be32(d + 8), 4194303);
	CHECK_EQ(be32(d + 20), 2097152);
	CHECK_EQ(be32(d + 24), 255);
	CHECK_EQ(be32(d + 28), 8);
	CHECK_EQ(be64(d + 36), 4194303);

	cdb[2] = 0xb1;
	r = cmd(c, 0, 0, cdb, 6, 0, 255);
	expect_good(&r);
	CHECK_EQ(d[3], 0x3c);

	cdb[2] = 0xb2;
	r = cmd(c, 0, 0, cdb, 6, 0, 255);
	expect_good(&r);
	CHECK_EQ(d[3], 4);
	CHECK_EQ(d[5], 0xe0);
	CHECK_EQ(d[6], 2);

	cdb[2] = 0x99;
	r = cmd(c, 0, 0, cdb, 6, 0, 255);
	expect_invalid_field(&r, 2, -1);
}

static void test_luns(struct ctx *c)
{
	uint8_t rl[12] = {0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0};
	uint8_t inq[6] = {0x12, 0, 0, 0, 36, 0};
	uint8_t tur[6] = {0};
	uint8_t rs[6] = {0x03, 0, 0, 0, 18, 0};
	uint8_t *d = c->data;
	struct result r;

	/* Target 0: LUNs 0 and 1. */
	r = cmd(c, 0, 0, rl, 12, 0, 256);
	expect_good(&r);
	CHECK_EQ(be32(d), 16);
	CHECK_EQ(be64(d + 8), 0);
	CHECK_EQ(d[17], 1);
	CHECK_EQ(r.resid, 256 - 24);

	/* Target 1 has LUN 2 only; LUN 0 is listed anyway (QEMU, SPC-4). */
	r = cmd(c, 1, 0, rl, 12, 0, 256);
	expect_good(&r);
	CHECK_EQ(be32(d), 16);
	CHECK_EQ(be64(d + 8), 0);
	CHECK_EQ(d[17], 2);

	/* Allocation length under 16: INVALID FIELD at byte 6. */
	rl[9] = 8;
	rl[8] = 0;
	r = cmd(c, 0, 0, rl, 12, 0, 8);
	expect_invalid_field(&r, 6, -1);

	/* LUN 0 of target 1 is absent: peripheral qualifier 3. */
	r = cmd(c, 1, 0, inq, 6, 0, 36);
	expect_good(&r);
	CHECK_EQ(d[0], 0x7f);
	r = cmd(c, 1, 0, tur, 6, 0, 0);
	expect_sense(&r, SCSI_SK_ILLEGAL_REQUEST, 0x25, 0x00);
	r = cmd(c, 1, 0, rs, 6, 0, 18);
	expect_good(&r);
	CHECK_EQ(d[2], SCSI_SK_ILLEGAL_REQUEST);
	CHECK_EQ(d[12], 0x25);

	/* No such target, or no virtio-scsi address at all: BAD_TARGET. */
	r = cmd(c, 7, 0, tur, 6, 0, 0);
	CHECK_EQ(r.response, VIRTIO_SCSI_S_BAD_TARGET);
	{
		uint8_t cdb[6] = {0};
		struct virtq_sg sg[2];

		memset(c->req, 0, sizeof(*c->req));
		c->req->lun[0] = 2; /* not 1 */
		memcpy(c->req->cdb, cdb, 6);
		sg[0] = (struct virtq_sg){addr(c, c->req), sizeof(*c->req)};
		sg[1] = (struct virtq_sg){addr(c, c->resp), sizeof(*c->resp)};
		run_chain(c, RQ, sg, 1, 1);
		CHECK_EQ(c->resp->response, VIRTIO_SCSI_S_BAD_TARGET);
	}

	/* Data both ways without F_INOUT: FAILURE. */
	{
		struct virtq_sg sg[4];

		memset(c->req, 0, sizeof(*c->req));
		set_lun(c->req->lun, 0, 0);
		sg[0] = (struct virtq_sg){addr(c, c->req), sizeof(*c->req)};
		sg[1] = (struct virtq_sg){addr(c, c->data), 512};
		sg[2] = (struct virtq_sg){addr(c, c->resp), sizeof(*c->resp)};
		sg[3] = (struct virtq_sg){addr(c, c->data + 4096), 512};
		run_chain(c, RQ, sg, 2, 2);
		CHECK_EQ(c->resp->response, VIRTIO_SCSI_S_FAILURE);
	}
}

static void test_capacity(struct ctx *c)
{
	uint8_t rc10[10] = {0x25};
	uint8_t rc16[16] = {0x9e, 0x10};
	uint8_t *d = c->data;
	struct result r;

	r = cmd(c, 0, 0, rc10, 10, 0, 8);
	expect_good(&r);
	CHECK_EQ(be32(d), IMG_BLOCKS - 1);
	CHECK_EQ(be32(d + 4), 512);

	/* PMI 0 with an LBA: INVALID FIELD. */
	rc10[5] = 1;
	r = cmd(c, 0, 0, rc10, 10, 0, 8);
	expect_invalid_field(&r, 2, -1);

	put32(rc16 + 10, 32);
	r = cmd(c, 0, 0, rc16, 16, 0, 32);
	expect_good(&r);
	CHECK_EQ(be64(d), IMG_BLOCKS - 1);
	CHECK_EQ(be32(d + 8), 512);
	CHECK_EQ(d[14] & 0x80, 0x80); /* LBPME */

	/* The 4 KiB LUN. */
	r = cmd(c, 1, 2, rc16, 16, 0, 32);
	expect_good(&r);
	CHECK_EQ(be64(d), IMG_BYTES / 4096 - 1);
	CHECK_EQ(be32(d + 8), 4096);

	/* Unknown service action. */
	rc16[1] = 0x11;
	r = cmd(c, 0, 0, rc16, 16, 0, 32);
	expect_invalid_field(&r, 1, 4);
}

/* Write @blocks at @lba through WRITE (@op) and check the model. */
static void write_blocks(struct ctx *c, uint8_t op, uint64_t lba, uint32_t blocks, bool fua,
			 unsigned int seed)
{
	uint8_t cdb[16] = {op};
	size_t len = (size_t)blocks * 512;
	struct result r;
	size_t cdb_len = 10;

	switch (op) {
	case 0x0a:
		cdb[1] = (uint8_t)(lba >> 16);
		cdb[2] = (uint8_t)(lba >> 8);
		cdb[3] = (uint8_t)lba;
		cdb[4] = (uint8_t)blocks;
		cdb_len = 6;
		break;
	case 0x2a:
		put32(cdb + 2, (uint32_t)lba);
		cdb[7] = (uint8_t)(blocks >> 8);
		cdb[8] = (uint8_t)blocks;
		break;
	case 0xaa:
		put32(cdb + 2, (uint32_t)lba);
		put32(cdb + 6, blocks);
		cdb_len = 12;
		break;
	default:
		put64(cdb + 2, lba);
		put32(cdb + 10, blocks);
		cdb_len = 16;
		break;
	}
	if (fua && op != 0x0a)
		cdb[1] |= 0x08;
	blk_test_fill(c->data, len, seed, lba * 512);
	r = cmd(c, 0, 0, cdb, cdb_len, len, 0);
	expect_good(&r);
	CHECK_EQ(r.resid, 0);
	memcpy(c->model + lba * 512, c->data, len);
}

static void read_blocks(struct ctx *c, uint8_t op, uint64_t lba, uint32_t blocks)
{
	uint8_t cdb[16] = {op};
	size_t len = (size_t)blocks * 512, cdb_len = 10;
	struct result r;

	switch (op) {
	case 0x08:
		cdb[1] = (uint8_t)(lba >> 16);
		cdb[2] = (uint8_t)(lba >> 8);
		cdb[3] = (uint8_t)lba;
		cdb[4] = (uint8_t)blocks;
		cdb_len = 6;
		break;
	case 0x28:
		put32(cdb + 2, (uint32_t)lba);
		cdb[7] = (uint8_t)(blocks >> 8);
		cdb[8] = (uint8_t)blocks;
		break;
	case 0xa8:
		put32(cdb + 2, (uint32_t)lba);
		put32(cdb + 6, blocks);
		cdb_len = 12;
		break;
	default:
		put64(cdb + 2, lba);
		put32(cdb + 10, blocks);
		cdb_len = 16;
		break;
	}
	r = cmd(c, 0, 0, cdb, cdb_len, 0, len + 512);
	expect_good(&r);
	CHECK_EQ(r.resid, 512);
	CHECK(!memcmp(c->data, c->model + lba * 512, len));
	CHECK_EQ(c->data[len], 0xa5); /* nothing past the transfer */
}

static void test_rw(struct ctx *c)
{
	static const uint8_t wops[] = {0x0a, 0x2a, 0xaa, 0x8a};
	static const uint8_t rops[] = {0x08, 0x28, 0xa8, 0x88};
	uint8_t cdb[16];
	struct result r;

	for (unsigned int i = 0; i < 4; i++) {
		write_blocks(c, wops[i], 100 + i * 64, 8 + i, i & 1, i + 1);
		for (unsigned int j = 0; j < 4; j++)
			read_blocks(c, rops[j], 100 + i * 64, 8 + i);
	}
	/* The last blocks of the disk. */
	write_blocks(c, 0x8a, IMG_BLOCKS - 4, 4, true, 9);
	read_blocks(c, 0x88, IMG_BLOCKS - 4, 4);

	/* Beyond the end: LBA OUT OF RANGE, the image untouched. */
	memset(cdb, 0, sizeof(cdb));
	cdb[0] = 0x2a;
	put32(cdb + 2, IMG_BLOCKS - 1);
	cdb[8] = 2;
	blk_test_fill(c->data, 1024, 77, 0);
	r = cmd(c, 0, 0, cdb, 10, 1024, 0);
	expect_sense(&r, SCSI_SK_ILLEGAL_REQUEST, 0x21, 0x00);
	CHECK_EQ(r.resid, 1024);
	cdb[0] = 0x88;
	put64(cdb + 2, UINT64_MAX);
	put32(cdb + 10, 2);
	r = cmd(c, 0, 0, cdb, 16, 0, 1024);
	expect_sense(&r, SCSI_SK_ILLEGAL_REQUEST, 0x21, 0x00);
	CHECK_EQ(c->data[0], 0xa5);

	/* RDPROTECT: INVALID FIELD at byte 1 bit 7. */
	memset(cdb, 0, sizeof(cdb));
	cdb[0] = 0x28;
	cdb[1] = 0x20;
	cdb[8] = 1;
	r = cmd(c, 0, 0, cdb, 10, 0, 512);
	expect_invalid_field(&r, 1, 7);

	/* A write larger than its buffer: OVERRUN, nothing written. */
	memset(cdb, 0, sizeof(cdb));
	cdb[0] = 0x2a;
	put32(cdb + 2, 10);
	cdb[8] = 8;
	r = cmd(c, 0, 0, cdb, 10, 2048, 0);
	CHECK_EQ(r.response, VIRTIO_SCSI_S_OVERRUN);
	CHECK_EQ(r.resid, 2048);
	/* A read larger than its buffer: the same, nothing read into it. */
	cdb[0] = 0x28;
	r = cmd(c, 0, 0, cdb, 10, 0, 2048);
	CHECK_EQ(r.response, VIRTIO_SCSI_S_OVERRUN);
	CHECK_EQ(c->data[0], 0xa5);
	/* A read with data-out buffers: the wrong direction is an overrun too. */
	r = cmd(c, 0, 0, cdb, 10, 4096, 0);
	CHECK_EQ(r.response, VIRTIO_SCSI_S_OVERRUN);

	/* Zero length: nothing moves, GOOD. */
	cdb[8] = 0;
	r = cmd(c, 0, 0, cdb, 10, 0, 0);
	expect_good(&r);

	/* The read-only LUN refuses writes: DATA PROTECT / WRITE PROTECTED. */
	memset(cdb, 0, sizeof(cdb));
	cdb[0] = 0x2a;
	cdb[8] = 1;
	r = cmd(c, 1, 2, cdb, 10, 4096, 0);
	expect_sense(&r, SCSI_SK_DATA_PROTECT, 0x27, 0x00);

	/* The null LUN: writes vanish, reads are zero. */
	r = cmd(c, 0, 1, cdb, 10, 512, 0);
	expect_good(&r);
	cdb[0] = 0x28;
	r = cmd(c, 0, 1, cdb, 10, 0, 512);
	expect_good(&r);
	for (int i = 0; i < 512; i++)
		CHECK_EQ(c->data[i], 0);
}

static void test_misc(struct ctx *c)
{
	uint8_t cdb[16];
	struct result r;
	uint8_t *d = c->data;

	/* Unknown opcode. */
	memset(cdb, 0, sizeof(cdb));
	cdb[0] = 0xc0;
	r = cmd(c, 0, 0, cdb, 6, 0, 0);
	expect_sense(&r, SCSI_SK_ILLEGAL_REQUEST, 0x20, 0x00);
	/* REQUEST SENSE returns it once (QEMU keeps the last sense), then NO SENSE. */
	memset(cdb, 0, sizeof(cdb));
	cdb[0] = 0x03;
	cdb[4] = 18;
	r = cmd(c, 0, 0, cdb, 6, 0, 18);
	expect_good(&r);
	CHECK_EQ(d[2], SCSI_SK_ILLEGAL_REQUEST);
	CHECK_EQ(d[12], 0x20);
	r = cmd(c, 0, 0, cdb, 6, 0, 18);
	expect_good(&r);
	CHECK_EQ(d[2], 0);
	CHECK_EQ(d[12], 0);

	/* SYNCHRONIZE CACHE 10 / 16, VERIFY 10 / 16, START STOP UNIT. */
	memset(cdb, 0, sizeof(cdb));
	cdb[0] = 0x35;
	expect_good((r = cmd(c, 0, 0, cdb, 10, 0, 0), &r));
	cdb[0] = 0x91;
	expect_good((r = cmd(c, 0, 0, cdb, 16, 0, 0), &r));
	memset(cdb, 0, sizeof(cdb));
	cdb[0] = 0x2f;
	put32(cdb + 2, 10);
	cdb[8] = 4;
	expect_good((r = cmd(c, 0, 0, cdb, 10, 0, 0), &r));
	put32(cdb + 2, IMG_BLOCKS);
	r = cmd(c, 0, 0, cdb, 10, 0, 0);
	expect_sense(&r, SCSI_SK_ILLEGAL_REQUEST, 0x21, 0x00);
	memset(cdb, 0, sizeof(cdb));
	cdb[0] = 0x8f;
	put64(cdb + 2, 0);
	put32(cdb + 10, 8);
	expect_good((r = cmd(c, 0, 0, cdb, 16, 0, 0), &r));
	memset(cdb, 0, sizeof(cdb));
	cdb[0] = 0x1b;
	cdb[4] = 1;
	expect_good((r = cmd(c, 0, 0, cdb, 6, 0, 0), &r));

	/* REQUEST SENSE: NO SENSE, fixed and descriptor format. */
	memset(cdb, 0, sizeof(cdb));
	cdb[0] = 0x03;
	cdb[4] = 252;
	r = cmd(c, 0, 0, cdb, 6, 0, 252);
	expect_good(&r);
	CHECK_EQ(d[0], 0x70);
	CHECK_EQ(d[2], 0);
	CHECK_EQ(r.resid, 252 - 18);
	cdb[1] = 1;
	r = cmd(c, 0, 0, cdb, 6, 0, 252);
	expect_good(&r);
	CHECK_EQ(d[0], 0x72);

	/* REPORT SUPPORTED OPERATION CODES: all, then one. */
	memset(cdb, 0, sizeof(cdb));
	cdb[0] = 0xa3;
	cdb[1] = 0x0c;
	put32(cdb + 6, 4096);
	r = cmd(c, 0, 0, cdb, 12, 0, 4096);
	expect_good(&r);
	CHECK(be32(d) >= 8 * 30 && be32(d) % 8 == 0);
	{
		bool found = false;

		for (uint32_t off = 4; off < 4 + be32(d); off += 8)
			found |= d[off] == 0x88;
		CHECK(found);
	}
	cdb[2] = 1;
	cdb[3] = 0x28;
	r = cmd(c, 0, 0, cdb, 12, 0, 4096);
	expect_good(&r);
	CHECK_EQ(d[1] & 7, 3);
	CHECK_EQ(d[3], 10);
	CHECK_EQ(d[4], 0x28);
	cdb[3] = 0xc0;
	r = cmd(c, 0, 0, cdb, 12, 0, 4096);
	expect_good(&r);
	CHECK_EQ(d[1] & 7, 1);
	cdb[3] = 0x9e; /* has service actions: not with option 1 */
	r = cmd(c, 0, 0, cdb, 12, 0, 4096);
	expect_invalid_field(&r, 2, 0);
}

static void test_mode(struct ctx *c)
{
	uint8_t ms[6] = {0x1a, 0x08, 0x08, 0, 255, 0};
	uint8_t ms10[10] = {0x5a, 0, 0x3f, 0, 0, 0, 0, 0x10, 0x00, 0};
	uint8_t sel[6] = {0x15, 0x10, 0, 0, 0, 0};
	uint8_t *d = c->data;
	uint8_t page[20];
	struct result r;

	/* Caching page, no block descriptor: WCE set. */
	r = cmd(c, 0, 0, ms, 6, 0, 255);
	expect_good(&r);
	CHECK_EQ(d[0], 3 + 20);
	CHECK_EQ(d[2], 0x10); /* DPOFUA */
	CHECK_EQ(d[3], 0);
	CHECK_EQ(d[4], 0x08);
	CHECK_EQ(d[5], 0x12);
	CHECK_EQ(d[6] & 4, 4);
	memcpy(page, d + 4, 20);

	/* MODE SELECT: WCE off (the guest's cache_type "write through"). */
	memset(d, 0, 4);
	memcpy(d + 4, page, 20);
	d[6] &= ~4;
	sel[4] = 24;
	r = cmd(c, 0, 0, sel, 6, 24, 0);
	expect_good(&r);
	r = cmd(c, 0, 0, ms, 6, 0, 255);
	expect_good(&r);
	CHECK_EQ(d[6] & 4, 0);

	/* A change to a bit that cannot change: INVALID FIELD IN PARAMETER LIST. */
	memset(d, 0, 4);
	memcpy(d + 4, page, 20);
	d[7] = 0x55;
	r = cmd(c, 0, 0, sel, 6, 24, 0);
	expect_sense(&r, SCSI_SK_ILLEGAL_REQUEST, 0x26, 0x00);
	/* SP=1 is not supported. */
	sel[1] = 0x11;
	r = cmd(c, 0, 0, sel, 6, 24, 0);
	expect_invalid_field(&r, 1, 0);
	sel[1] = 0x10;
	/* Back on. */
	memset(d, 0, 4);
	memcpy(d + 4, page, 20);
	r = cmd(c, 0, 0, sel, 6, 24, 0);
	expect_good(&r);
	r = cmd(c, 0, 0, ms, 6, 0, 255);
	expect_good(&r);
	CHECK_EQ(d[6] & 4, 4);

	/* Every page with a block descriptor (MODE SENSE 10). */
	r = cmd(c, 0, 0, ms10, 10, 0, 4096);
	expect_good(&r);
	CHECK_EQ(d[7], 8);
	CHECK_EQ(be32(d + 8) & 0xffffff, IMG_BLOCKS);
	CHECK_EQ(d[8 + 6], 2); /* 512 >> 8 */
	{
		size_t len = (size_t)(d[0] << 8 | d[1]) + 2, off = 16;
		unsigned int seen = 0;

		while (off < len) {
			seen |= 1u << (d[off] & 0x3f);
			off += 2 + d[off + 1];
		}
		CHECK_EQ(off, len);
		CHECK_EQ(seen, (1u << 1) | (1u << 4) | (1u << 5) | (1u << 8) | (1u << 10));
	}
	/* Control page alone; saved values are not supported; unknown pages are refused. */
	ms[2] = 0x0a;
	r = cmd(c, 0, 0, ms, 6, 0, 255);
	expect_good(&r);
	CHECK_EQ(d[4], 0x0a);
	CHECK_EQ(d[5], 0x0a);
	ms[2] = 0xc8;
	r = cmd(c, 0, 0, ms, 6, 0, 255);
	expect_sense(&r, SCSI_SK_ILLEGAL_REQUEST, 0x39, 0x00);
	ms[2] = 0x1c;
	r = cmd(c, 0, 0, ms, 6, 0, 255);
	expect_invalid_field(&r, 2, 5);

	/* The read-only LUN says so in the device-specific parameter. */
	ms[2] = 0x08;
	r = cmd(c, 1, 2, ms, 6, 0, 255);
	expect_good(&r);
	CHECK_EQ(d[2], 0x90);
}

static void test_unmap_write_same(struct ctx *c)
{
	uint8_t um[10] = {0x42};
	uint8_t ws[16];
	uint8_t *d = c->data;
	struct result r;

	write_blocks(c, 0x2a, 1024, 64, false, 31);
	/* UNMAP two ranges (one empty), then they read back as zeroes. */
	memset(d, 0, 64);
	d[1] = 6 + 32;
	d[3] = 32;
	put64(d + 8, 1024);
	put32(d + 16, 16);
	put64(d + 24, 1040);
	put32(d + 32, 0);
	um[8] = 40;
	r = cmd(c, 0, 0, um, 10, 40, 0);
	expect_good(&r);
	memset(c->model + 1024 * 512, 0, 16 * 512);
	read_blocks(c, 0x28, 1024, 64);

	/* A range beyond the end: nothing is deallocated. */
	memset(d, 0, 64);
	d[1] = 6 + 32;
	d[3] = 32;
	put32(d + 16, 16);
	put64(d + 24, IMG_BLOCKS - 1);
	put32(d + 32, 2);
	put64(d + 8, 1040);
	r = cmd(c, 0, 0, um, 10, 40, 0);
	expect_sense(&r, SCSI_SK_ILLEGAL_REQUEST, 0x21, 0x00);
	read_blocks(c, 0x28, 1024, 64);
	/* Descriptor length not a multiple of 16. */
	d[3] = 20;
	r = cmd(c, 0, 0, um, 10, 40, 0);
	expect_sense(&r, SCSI_SK_ILLEGAL_REQUEST, 0x1a, 0x00);
	/* ANCHOR. */
	um[1] = 1;
	r = cmd(c, 0, 0, um, 10, 40, 0);
	expect_invalid_field(&r, 1, 0);
	um[1] = 0;

	/* WRITE SAME (10) with a pattern. */
	memset(ws, 0, sizeof(ws));
	ws[0] = 0x41;
	put32(ws + 2, 2000);
	ws[8] = 40;
	blk_test_fill(d, 512, 41, 0);
	r = cmd(c, 0, 0, ws, 10, 512, 0);
	expect_good(&r);
	for (int i = 0; i < 40; i++)
		memcpy(c->model + (2000 + i) * 512, d, 512);
	read_blocks(c, 0x28, 2000, 40);

	/* WRITE SAME (16) with UNMAP and a zero block. */
	memset(ws, 0, sizeof(ws));
	ws[0] = 0x93;
	ws[1] = 0x08;
	put64(ws + 2, 2010);
	put32(ws + 10, 20);
	memset(d, 0, 512);
	r = cmd(c, 0, 0, ws, 16, 512, 0);
	expect_good(&r);
	memset(c->model + 2010 * 512, 0, 20 * 512);
	read_blocks(c, 0x28, 2000, 40);

	/* NDOB: no data-out, zeroes. */
	write_blocks(c, 0x2a, 3000, 8, false, 43);
	ws[1] = 0x01;
	put64(ws + 2, 3000);
	put32(ws + 10, 8);
	r = cmd(c, 0, 0, ws, 16, 0, 0);
	expect_good(&r);
	memset(c->model + 3000 * 512, 0, 8 * 512);
	read_blocks(c, 0x28, 3000, 8);

	/* Length 0 (WSNZ), LBDATA, out of range. */
	ws[1] = 0;
	put32(ws + 10, 0);
	r = cmd(c, 0, 0, ws, 16, 512, 0);
	expect_invalid_field(&r, 10, -1);
	ws[1] = 0x02;
	put32(ws + 10, 1);
	r = cmd(c, 0, 0, ws, 16, 512, 0);
	expect_invalid_field(&r, 1, 1);
	ws[1] = 0;
	put64(ws + 2, IMG_BLOCKS);
	r = cmd(c, 0, 0, ws, 16, 512, 0);
	expect_sense(&r, SCSI_SK_ILLEGAL_REQUEST, 0x21, 0x00);
}

/* ---- task management -------------------------------------------------------- */

static uint8_t tmf(struct ctx *c, uint32_t subtype, unsigned int target, unsigned int lun,
		   uint64_t tag)
{
	struct virtio_scsi_ctrl_tmf_req *req = vu_fe_alloc(c->fe, sizeof(*req), 8);
	struct virtio_scsi_ctrl_tmf_resp *resp = vu_fe_alloc(c->fe, sizeof(*resp), 8);
	struct virtq_sg sg[2];

	CHECK(req && resp);
	memset(req, 0, sizeof(*req));
	req->type = htole32(VIRTIO_SCSI_T_TMF);
	req->subtype = htole32(subtype);
	set_lun(req->lun, target, lun);
	req->tag = htole64(tag);
	resp->response = 0xee;
	sg[0] = (struct virtq_sg){addr(c, req), sizeof(*req)};
	sg[1] = (struct virtq_sg){addr(c, resp), sizeof(*resp)};
	CHECK_EQ(run_chain(c, VIRTIO_SCSI_CTRL_QUEUE, sg, 1, 1), 1);
	return resp->response;
}

static void test_tmf_simple(struct ctx *c)
{
	uint8_t tur[6] = {0};
	struct result r;

	CHECK_EQ(tmf(c, VIRTIO_SCSI_T_TMF_ABORT_TASK, 0, 0, 99), VIRTIO_SCSI_S_FUNCTION_COMPLETE);
	CHECK_EQ(tmf(c, VIRTIO_SCSI_T_TMF_QUERY_TASK_SET, 0, 0, 0),
		 VIRTIO_SCSI_S_FUNCTION_COMPLETE);
	CHECK_EQ(tmf(c, VIRTIO_SCSI_T_TMF_ABORT_TASK, 9, 0, 1), VIRTIO_SCSI_S_BAD_TARGET);
	CHECK_EQ(tmf(c, VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET, 1, 0, 0),
		 VIRTIO_SCSI_S_INCORRECT_LUN);
	CHECK_EQ(tmf(c, VIRTIO_SCSI_T_TMF_CLEAR_ACA, 0, 0, 0), VIRTIO_SCSI_S_FUNCTION_REJECTED);
	CHECK_EQ(tmf(c, 99, 0, 0, 0), VIRTIO_SCSI_S_FUNCTION_REJECTED);

	/* A LUN reset leaves a unit attention on that LUN only. */
	CHECK_EQ(tmf(c, VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET, 0, 1, 0),
		 VIRTIO_SCSI_S_FUNCTION_COMPLETE);
	r = cmd(c, 0, 1, tur, 6, 0, 0);
	expect_sense(&r, SCSI_SK_UNIT_ATTENTION, 0x29, 0x00);
	r = cmd(c, 0, 0, tur, 6, 0, 0);
	expect_good(&r);
	/* An I_T nexus reset: every LUN of the target. */
	CHECK_EQ(tmf(c, VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET, 0, 0, 0),
		 VIRTIO_SCSI_S_FUNCTION_COMPLETE);
	r = cmd(c, 0, 0, tur, 6, 0, 0);
	expect_sense(&r, SCSI_SK_UNIT_ATTENTION, 0x29, 0x00);
	r = cmd(c, 0, 1, tur, 6, 0, 0);
	expect_sense(&r, SCSI_SK_UNIT_ATTENTION, 0x29, 0x00);
	r = cmd(c, 1, 2, tur, 6, 0, 0);
	expect_good(&r);

	/* Asynchronous notification: answered, nothing supported. */
	{
		struct virtio_scsi_ctrl_an_req *req = vu_fe_alloc(c->fe, sizeof(*req), 8);
		struct virtio_scsi_ctrl_an_resp *resp = vu_fe_alloc(c->fe, sizeof(*resp), 8);
		struct virtq_sg sg[2];

		CHECK(req && resp);
		for (uint32_t type = VIRTIO_SCSI_T_AN_QUERY; type <= VIRTIO_SCSI_T_AN_SUBSCRIBE;
		     type++) {
			memset(req, 0, sizeof(*req));
			req->type = htole32(type);
			set_lun(req->lun, 0, 0);
			req->event_requested = htole32(VIRTIO_SCSI_EVT_ASYNC_MEDIA_CHANGE);
			memset(resp, 0xee, sizeof(*resp));
			sg[0] = (struct virtq_sg){addr(c, req), sizeof(*req)};
			sg[1] = (struct virtq_sg){addr(c, resp), sizeof(*resp)};
			CHECK_EQ(run_chain(c, VIRTIO_SCSI_CTRL_QUEUE, sg, 1, 1), 5);
			CHECK_EQ(resp->response, VIRTIO_SCSI_S_OK);
			CHECK_EQ(resp->event_actual, 0);
		}
	}
}

/*
 * @n large writes to @target:@lun in flight, then @subtype: every command
 * completes exactly once, with OK or the TMF's abort response, and all of
 * them are visible in the used ring by the time the TMF's answer is.
 */
static void test_tmf_inflight(struct ctx *c, unsigned int lun, uint32_t subtype)
{
	enum { N = 24, LEN = 64 * 1024 };
	struct virtio_scsi_cmd_req *reqs = vu_fe_alloc(c->fe, N * sizeof(*reqs), 16);
	struct virtio_scsi_cmd_resp *resps = vu_fe_alloc(c->fe, N * sizeof(*resps), 16);
	uint8_t *bufs = vu_fe_alloc(c->fe, (size_t)N * LEN, 4096);
	struct virtq_drv *vq = vu_fe_queue(c->fe, RQ + 1);
	struct virtio_scsi_ctrl_tmf_req *treq = vu_fe_alloc(c->fe, sizeof(*treq), 8);
	struct virtio_scsi_ctrl_tmf_resp *tresp = vu_fe_alloc(c->fe, sizeof(*tresp), 8);
	bool seen[N] = {false};
	unsigned int got = 0, aborted = 0;
	struct virtq_sg sg[4];
	uint32_t len;
	bool *tok;
	int ttok;
	uint8_t want = subtype == VIRTIO_SCSI_T_TMF_ABORT_TASK_SET ||
				       subtype == VIRTIO_SCSI_T_TMF_CLEAR_TASK_SET ||
				       subtype == VIRTIO_SCSI_T_TMF_ABORT_TASK
			       ? VIRTIO_SCSI_S_ABORTED
			       : VIRTIO_SCSI_S_RESET;

	CHECK(reqs && resps && bufs && treq && tresp);
	for (int i = 0; i < N; i++) {
		uint64_t lba = 4096 + (uint64_t)i * (LEN / 512) % 4000;

		memset(&reqs[i], 0, sizeof(reqs[i]));
		set_lun(reqs[i].lun, 0, lun);
		reqs[i].tag = htole64(1000 + (uint64_t)i);
		reqs[i].cdb[0] = 0x8a;
		put64(reqs[i].cdb + 2, lba % (IMG_BLOCKS - LEN / 512));
		put32(reqs[i].cdb + 10, LEN / 512);
		blk_test_fill(bufs + (size_t)i * LEN, LEN, 100 + (unsigned int)i, 0);
		resps[i].response = 0xee;
		sg[0] = (struct virtq_sg){addr(c, &reqs[i]), sizeof(reqs[i])};
		sg[1] = (struct virtq_sg){addr(c, bufs + (size_t)i * LEN), LEN};
		sg[2] = (struct virtq_sg){addr(c, &resps[i]), sizeof(resps[i])};
		CHECK_EQ(virtq_drv_add_sgs(vq, sg, 2, 1, &seen[i]), 0);
	}
	CHECK_EQ(vu_fe_kick(c->fe, RQ + 1) < 0, 0);

	memset(treq, 0, sizeof(*treq));
	treq->type = htole32(VIRTIO_SCSI_T_TMF);
	treq->subtype = htole32(subtype);
	set_lun(treq->lun, 0, lun);
	treq->tag = htole64(1000 + N - 1);
	tresp->response = 0xee;
	sg[0] = (struct virtq_sg){addr(c, treq), sizeof(*treq)};
	sg[1] = (struct virtq_sg){addr(c, tresp), sizeof(*tresp)};
	CHECK_EQ(virtq_drv_add_sgs(vu_fe_queue(c->fe, VIRTIO_SCSI_CTRL_QUEUE), sg, 1, 1, &ttok), 0);
	CHECK_EQ(vu_fe_kick(c->fe, VIRTIO_SCSI_CTRL_QUEUE) < 0, 0);
	CHECK(wait_any(c, VIRTIO_SCSI_CTRL_QUEUE, &len) == &ttok);
	CHECK_EQ(tresp->response, VIRTIO_SCSI_S_FUNCTION_COMPLETE);

	/* The TMF is answered: whatever it aborted is already in the used ring. */
	while ((tok = virtq_drv_get_buf(vq, &len))) {
		int i = (int)(tok - seen);

		CHECK(i >= 0 && i < N && !*tok);
		*tok = true;
		got++;
		if (resps[i].response == want)
			aborted++;
		else
			CHECK_EQ(resps[i].response, VIRTIO_SCSI_S_OK);
	}
	/* What the TMF did not cover may still be running: collect it. */
	while (got < N) {
		tok = wait_any(c, RQ + 1, &len);
		CHECK(tok >= seen && tok < seen + N && !*tok);
		*tok = true;
		got++;
		CHECK_EQ(resps[tok - seen].response, VIRTIO_SCSI_S_OK);
	}
	printf("  TMF %u on LUN 0:%u: %u of %d commands aborted in flight\n", subtype, lun, aborted,
	       N);
	/* The image holds what was written: reread it into the model. */
	CHECK_EQ(pread(c->img_fd, c->model, IMG_BYTES, 0), (ssize_t)IMG_BYTES);
	/* Clear the UA a reset left. */
	if (want == VIRTIO_SCSI_S_RESET) {
		uint8_t tur[6] = {0};
		struct result r = cmd(c, 0, lun, tur, 6, 0, 0);

		CHECK(r.status == SCSI_STATUS_CHECK_CONDITION || r.status == SCSI_STATUS_GOOD);
		if (lun == 0 || subtype == VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET) {
			r = cmd(c, 0, 1, tur, 6, 0, 0);
			r = cmd(c, 0, 0, tur, 6, 0, 0);
		}
	}
}

/* ---- events ----------------------------------------------------------------- */

static void test_events(struct ctx *c, bool hotplug)
{
	struct virtio_scsi_event *evs = vu_fe_alloc(c->fe, 4 * sizeof(*evs), 8);
	struct virtq_drv *vq = vu_fe_queue(c->fe, VIRTIO_SCSI_EVENT_QUEUE);
	struct virtq_sg sg;
	uint32_t len;
	int toks[4];
	int *t;

	CHECK(evs);
	/* No buffer yet: the event is missed. */
	scsi_dev_event(c->dev, VIRTIO_SCSI_T_TRANSPORT_RESET, 0, 5, VIRTIO_SCSI_EVT_RESET_RESCAN);
	memset(evs, 0xee, 4 * sizeof(*evs));
	/* As many as will be used: none is left with the device for later tests. */
	for (int i = 0; i < (hotplug ? 3 : 4); i++) {
		sg = (struct virtq_sg){addr(c, &evs[i]), sizeof(evs[i])};
		CHECK_EQ(virtq_drv_add_sgs(vq, &sg, 0, 1, &toks[i]), 0);
	}
	CHECK_EQ(vu_fe_kick(c->fe, VIRTIO_SCSI_EVENT_QUEUE) < 0, 0);
	if (hotplug) {
		/* The first buffer says so at once. */
		t = wait_any(c, VIRTIO_SCSI_EVENT_QUEUE, &len);
		CHECK(t == &toks[0]);
		CHECK_EQ(len, sizeof(evs[0]));
		CHECK_EQ(le32toh(evs[0].event),
			 VIRTIO_SCSI_T_NO_EVENT | VIRTIO_SCSI_T_EVENTS_MISSED);
	}
	/* With buffers: delivered in order. */
	scsi_dev_event(c->dev, VIRTIO_SCSI_T_TRANSPORT_RESET, 1, 300,
		       VIRTIO_SCSI_EVT_RESET_REMOVED);
	scsi_dev_event(c->dev, VIRTIO_SCSI_T_PARAM_CHANGE, 0, 0, 0x2a | 0x09 << 8);
	if (hotplug) {
		t = wait_any(c, VIRTIO_SCSI_EVENT_QUEUE, &len);
		CHECK(t == &toks[1]);
		CHECK_EQ(le32toh(evs[1].event), VIRTIO_SCSI_T_TRANSPORT_RESET);
		CHECK_EQ(le32toh(evs[1].reason), VIRTIO_SCSI_EVT_RESET_REMOVED);
		CHECK_EQ(evs[1].lun[0], 1);
		CHECK_EQ(evs[1].lun[1], 1);
		CHECK_EQ(evs[1].lun[2], 0x40 | (300 >> 8));
		CHECK_EQ(evs[1].lun[3], 300 & 0xff);
	}
	t = wait_any(c, VIRTIO_SCSI_EVENT_QUEUE, &len);
	CHECK(t == &toks[hotplug ? 2 : 0]);
	CHECK_EQ(le32toh(evs[hotplug ? 2 : 0].event), VIRTIO_SCSI_T_PARAM_CHANGE);
	CHECK_EQ(le32toh(evs[hotplug ? 2 : 0].reason), 0x092a);
	/* The rest stay with the device until it stops; nothing else arrives. */
	CHECK(!virtq_drv_get_buf(vq, &len));
}

/* ---- LUNs at run time ------------------------------------------------------------ */

static void post_event_buffers(struct ctx *c, struct virtio_scsi_event *evs, int *toks, int n)
{
	struct virtq_drv *vq = vu_fe_queue(c->fe, VIRTIO_SCSI_EVENT_QUEUE);

	for (int i = 0; i < n; i++) {
		struct virtq_sg sg = {addr(c, &evs[i]), sizeof(evs[i])};

		CHECK_EQ(virtq_drv_add_sgs(vq, &sg, 0, 1, &toks[i]), 0);
	}
	CHECK_EQ(vu_fe_kick(c->fe, VIRTIO_SCSI_EVENT_QUEUE) < 0, 0);
}

static struct virtio_scsi_event *next_event(struct ctx *c, struct virtio_scsi_event *evs, int *toks)
{
	uint32_t len;
	int *t = wait_any(c, VIRTIO_SCSI_EVENT_QUEUE, &len);

	CHECK(t >= toks && t < toks + 8);
	CHECK_EQ(len, sizeof(*evs));
	return &evs[t - toks];
}

/*
 * Hot-add a LUN, write to it with commands in flight, hot-remove it while
 * they run (they finish first, none is lost), resize another: the guest
 * sees each change through events, unit attentions and REPORT LUNS.
 */
static void test_hotplug(struct ctx *c)
{
	enum { N = 16, LEN = 32 * 1024 };
	struct virtio_scsi_event *evs = vu_fe_alloc(c->fe, 8 * sizeof(*evs), 8);
	struct virtio_scsi_cmd_req *reqs = vu_fe_alloc(c->fe, N * sizeof(*reqs), 16);
	struct virtio_scsi_cmd_resp *resps = vu_fe_alloc(c->fe, N * sizeof(*resps), 16);
	uint8_t *bufs = vu_fe_alloc(c->fe, (size_t)N * LEN, 4096);
	struct virtq_drv *vq = vu_fe_queue(c->fe, RQ);
	uint8_t rl[12] = {0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0};
	uint8_t rc16[16] = {0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0};
	uint8_t tur[6] = {0};
	struct scsi_lun_options o;
	struct virtio_scsi_event *ev;
	char img[256], err[256];
	struct result r;
	bool seen[N] = {false};
	int toks[8], fd, got = 0;
	uint32_t len;
	bool *tok;

	CHECK(evs && reqs && resps && bufs);
	printf("  hot-add, hot-remove with I/O in flight, resize\n");
	fd = blk_test_image(img, sizeof(img), IMG_BYTES);
	post_event_buffers(c, evs, toks, 8);

	parse_lun(&o, "scsi=%s,target=0,lun=2,path=%s", scsi_dev_id(c->dev), img);
	CHECK_EQ(scsi_dev_add_lun(c->dev, &o, err, sizeof(err)), 0);
	CHECK(scsi_dev_add_lun(c->dev, &o, err, sizeof(err)) != 0);
	CHECK(strstr(err, "exists"));
	ev = next_event(c, evs, toks);
	CHECK_EQ(le32toh(ev->event) & ~VIRTIO_SCSI_T_EVENTS_MISSED, VIRTIO_SCSI_T_TRANSPORT_RESET);
	CHECK_EQ(le32toh(ev->reason), VIRTIO_SCSI_EVT_RESET_RESCAN);
	CHECK_EQ(ev->lun[1], 0);
	CHECK_EQ(ev->lun[2], 0); /* peripheral addressing below 256, as QEMU */
	CHECK_EQ(ev->lun[3], 2);
	/* The target's other LUNs: REPORTED LUNS DATA HAS CHANGED, cleared by REPORT LUNS. */
	r = cmd(c, 0, 1, tur, 6, 0, 0);
	expect_sense(&r, SCSI_SK_UNIT_ATTENTION, 0x3f, 0x0e);
	r = cmd(c, 0, 0, rl, 12, 0, 256);
	expect_good(&r);
	CHECK_EQ(be32(c->data), 24);
	r = cmd(c, 0, 0, tur, 6, 0, 0);
	expect_good(&r);
	/* The new LUN starts with its power-on unit attention. */
	r = cmd(c, 0, 2, tur, 6, 0, 0);
	expect_sense(&r, SCSI_SK_UNIT_ATTENTION, 0x29, 0x00);

	/* Writes in flight on it, then remove it: they finish first, all of them. */
	for (int i = 0; i < N; i++) {
		struct virtq_sg sg[3];

		memset(&reqs[i], 0, sizeof(reqs[i]));
		set_lun(reqs[i].lun, 0, 2);
		reqs[i].cdb[0] = 0x8a;
		put64(reqs[i].cdb + 2, (uint64_t)i * (LEN / 512));
		put32(reqs[i].cdb + 10, LEN / 512);
		blk_test_fill(bufs + (size_t)i * LEN, LEN, 200, (size_t)i * LEN);
		resps[i].response = 0xee;
		sg[0] = (struct virtq_sg){addr(c, &reqs[i]), sizeof(reqs[i])};
		sg[1] = (struct virtq_sg){addr(c, bufs + (size_t)i * LEN), LEN};
		sg[2] = (struct virtq_sg){addr(c, &resps[i]), sizeof(resps[i])};
		CHECK_EQ(virtq_drv_add_sgs(vq, sg, 2, 1, &seen[i]), 0);
	}
	CHECK_EQ(vu_fe_kick(c->fe, RQ) < 0, 0);
	CHECK_EQ(scsi_dev_remove_lun(c->dev, 0, 2, err, sizeof(err)), 0);
	CHECK(scsi_dev_remove_lun(c->dev, 0, 2, err, sizeof(err)) != 0);
	while (got < N) {
		tok = wait_any(c, RQ, &len);
		CHECK(tok >= seen && tok < seen + N && !*tok);
		*tok = true;
		got++;
		/* Popped before the removal: done; after it: no such LUN. */
		CHECK(resps[tok - seen].response == VIRTIO_SCSI_S_OK);
		if (resps[tok - seen].status == SCSI_STATUS_GOOD)
			CHECK(blk_test_matches(fd, (tok - seen) * LEN, LEN, 200));
		else
			CHECK_EQ(resps[tok - seen].sense[12], 0x25);
	}
	ev = next_event(c, evs, toks);
	CHECK_EQ(le32toh(ev->event), VIRTIO_SCSI_T_TRANSPORT_RESET);
	CHECK_EQ(le32toh(ev->reason), VIRTIO_SCSI_EVT_RESET_REMOVED);
	r = cmd(c, 0, 2, tur, 6, 0, 0);
	expect_sense(&r, SCSI_SK_ILLEGAL_REQUEST, 0x25, 0x00);
	r = cmd(c, 0, 1, tur, 6, 0, 0);
	expect_sense(&r, SCSI_SK_UNIT_ATTENTION, 0x3f, 0x0e);
	/* REPORT LUNS neither reports nor keeps it. */
	r = cmd(c, 0, 0, rl, 12, 0, 256);
	expect_good(&r);
	CHECK_EQ(be32(c->data), 16);
	r = cmd(c, 0, 0, tur, 6, 0, 0);
	expect_good(&r);
	close(fd);
	unlink(img);

	/* Resize: the image grows, the guest hears of it. */
	CHECK_EQ(ftruncate(c->img_fd, 2 * IMG_BYTES), 0);
	CHECK_EQ(scsi_dev_resize_lun(c->dev, 0, 0, err, sizeof(err)), 0);
	ev = next_event(c, evs, toks);
	CHECK_EQ(le32toh(ev->event), VIRTIO_SCSI_T_PARAM_CHANGE);
	CHECK_EQ(le32toh(ev->reason), 0x092a);
	r = cmd(c, 0, 0, tur, 6, 0, 0);
	expect_sense(&r, SCSI_SK_UNIT_ATTENTION, 0x2a, 0x09);
	r = cmd(c, 0, 0, rc16, 16, 0, 32);
	expect_good(&r);
	CHECK_EQ(be64(c->data), 2 * IMG_BLOCKS - 1);
	CHECK(scsi_dev_resize_lun(c->dev, 0, 1, err, sizeof(err)) != 0); /* null: fixed */
	CHECK_EQ(ftruncate(c->img_fd, IMG_BYTES), 0);
	CHECK_EQ(scsi_dev_resize_lun(c->dev, 0, 0, err, sizeof(err)), 0);
	next_event(c, evs, toks);
	r = cmd(c, 0, 0, tur, 6, 0, 0);
	expect_sense(&r, SCSI_SK_UNIT_ATTENTION, 0x2a, 0x09);
}

/* ---- hostile chains ------------------------------------------------------------ */

static void run_hostile(int variant)
{
	struct ctx c = {0};
	struct virtq_sg sg[2];
	uint8_t tur[6] = {0};
	struct result r;

	printf("hostile chain %d\n", variant);
	new_images(&c);
	dev_start(&c, false, 0);
	memset(c.req, 0, sizeof(*c.req));
	set_lun(c.req->lun, 0, 0);
	switch (variant) {
	case 0: /* response header short by one byte */
		sg[0] = (struct virtq_sg){addr(&c, c.req), sizeof(*c.req)};
		sg[1] = (struct virtq_sg){addr(&c, c.resp), sizeof(*c.resp) - 1};
		run_chain(&c, RQ, sg, 1, 1);
		break;
	case 1: /* request header short */
		sg[0] = (struct virtq_sg){addr(&c, c.req), 20};
		sg[1] = (struct virtq_sg){addr(&c, c.resp), sizeof(*c.resp)};
		run_chain(&c, RQ, sg, 1, 1);
		break;
	default: /* a TMF without room for its answer */
		sg[0] = (struct virtq_sg){addr(&c, c.req), 24};
		run_chain(&c, VIRTIO_SCSI_CTRL_QUEUE, sg, 1, 0);
		break;
	}
	/* The device is broken now (NEEDS_RESET), the process alive; the image untouched. */
	(void)tur;
	(void)r;
	dev_stop(&c);
	check_image(&c);
	drop_images(&c);
}

static void run_main(bool packed)
{
	struct ctx c = {0};

	printf("commands, %s ring\n", packed ? "packed" : "split");
	new_images(&c);
	dev_start(&c, packed, 0);
	test_unit_attention(&c);
	test_inquiry(&c);
	test_luns(&c);
	test_capacity(&c);
	test_rw(&c);
	test_misc(&c);
	test_mode(&c);
	test_unmap_write_same(&c);
	check_image(&c);
	test_tmf_simple(&c);
	test_tmf_inflight(&c, 0, VIRTIO_SCSI_T_TMF_ABORT_TASK_SET);
	test_tmf_inflight(&c, 0, VIRTIO_SCSI_T_TMF_ABORT_TASK);
	test_tmf_inflight(&c, 0, VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET);
	test_tmf_inflight(&c, 0, VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET);
	test_tmf_inflight(&c, 1, VIRTIO_SCSI_T_TMF_CLEAR_TASK_SET);
	test_events(&c, true);
	test_hotplug(&c);
	dev_stop(&c);
	check_image(&c);
	drop_images(&c);
}

/* Without HOTPLUG negotiated, transport resets are not sent; param changes still are. */
static void run_events_no_hotplug(void)
{
	struct ctx c = {0};

	printf("events without VIRTIO_SCSI_F_HOTPLUG\n");
	new_images(&c);
	dev_start(&c, false, 1ull << VIRTIO_SCSI_F_HOTPLUG);
	test_events(&c, false);
	dev_stop(&c);
	drop_images(&c);
}

int main(void)
{
	log_set_level(LOG_LVL_ERROR);
	run_main(false);
	run_main(true);
	run_events_no_hotplug();
	for (int v = 0; v < 3; v++)
		run_hostile(v);
	printf("ok\n");
	return 0;
}
