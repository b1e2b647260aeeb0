// SPDX-License-Identifier: MIT
/*
 * fuzz_blk_req.c - libFuzzer harness of the virtio-blk request parser
 * (src/devices/blk.c) over the null back-end: request headers, data
 * segments, GET_ID, FLUSH, DISCARD / WRITE_ZEROES segment lists, unknown
 * types, short and long buffers, every framing, on split and packed rings,
 * direct or indirect, on a writable and on a read-only disk.
 *
 * The device model runs unchanged, on the synchronous engine of
 * fuzz_engine.h and behind the vhost-user stand-in of fuzz_vu_fake.h.
 * Checks, beyond ASan/UBSan: nothing outside guest memory is written
 * (canaries), every chain popped is completed before the queue stops, a
 * used length never exceeds the chain's writable bytes, a completed
 * request's status byte (the last writable byte) is OK, IOERR or UNSUPP,
 * a successful read returns zeroes (the null back-end), and the queue only
 * stops early (halted) when the device was marked broken.
 *
 * Input: device flags (1 byte: 1 the read-only disk, 2 negotiate FLUSH,
 * 4 negotiate DISCARD and WRITE_ZEROES, 8 a writeback write through
 * config space first, 16 a status reset first), then the chains in
 * fuzz_chain.h's format.  Seeds: tests/fuzz/blk-corpus (fuzz_gen_corpus).
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/log.h"
#include "devices/blk.h"
#include "devices/virtio_blk.h"
#include "fuzz_chain.h"
#include "fuzz_engine.h"
#include "fuzz_vu_fake.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DISK_BYTES (4u << 20)

static struct ring_fixture fix;
static struct fuzz_ring ring;
static struct blk_dev *blk[2];
static struct vu_dev *vu[2];

static void setup(void)
{
	static const char *const opts[2] = {
		"id=fuzz-rw,backend=null,size=4m,socket=/nonexistent/vhd-fuzz-rw,queue-size=64",
		"id=fuzz-ro,backend=null,size=4m,socket=/nonexistent/vhd-fuzz-ro,queue-size=64,"
		"readonly=on,serial=0123456789abcdefghij",
	};
	char err[256];

	check_abort_on_failure();
	log_set_level(getenv("FUZZ_VERBOSE") ? LOG_LVL_DEBUG : LOG_LVL_ERROR);
	fixture_create(&fix, FUZZ_CH_A_SIZE, FUZZ_CH_B_SIZE, 0);
	for (int i = 0; i < 2; i++) {
		struct blk_options o;

		CHECK_EQ(blk_options_parse(opts[i], &o, err, sizeof(err)), 0);
		blk[i] = blk_dev_new(&o, NULL, NULL, err, sizeof(err));
		if (!blk[i])
			FAIL("blk_dev_new: %s", err);
		vu[i] = fuzz_vu_last;
		CHECK(vu[i]);
	}
}

/* Split rings: every used entry names a chain we made and says something sane. */
static void check_used(bool halted)
{
	uint16_t n = vq_read16(&fix.used->idx);

	if (!halted)
		CHECK_EQ(n, ring.nr);
	CHECK(n <= ring.nr);
	for (uint16_t i = 0; i < n; i++) {
		struct vring_used_elem *u = &fix.used->ring[i % ring.num];
		struct fuzz_chain *c = fuzz_ring_chain(&ring, vq_read32(&u->id));
		uint32_t len = vq_read32(&u->len);
		uint8_t status;

		CHECK(c);
		CHECK(len <= c->in_len);
		if (!len)
			continue; /* halted on it: nothing answered */
		status = *fuzz_chain_in_byte(c, c->in_len - 1);
		log_debug("fuzz: chain %u: used %u of %u, status %u", c->head, len, c->in_len,
			  status);
		CHECK(status == VIRTIO_BLK_S_OK || status == VIRTIO_BLK_S_IOERR ||
		      status == VIRTIO_BLK_S_UNSUPP);
		if (status != VIRTIO_BLK_S_OK)
			CHECK_EQ(len, 1);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = {data, size};
	struct vu_queue q;
	struct virtq_config cfg;
	uint64_t features;
	uint8_t dflags;
	struct vu_dev *d;
	bool halted;

	if (!fix.a)
		setup();
	dflags = fuzz_u8(&in);
	d = vu[dflags & 1];
	if (fuzz_ring_build(&fix, &ring, &in, 0))
		return 0;

	features = ring.features | FEAT(VIRTIO_BLK_F_SEG_MAX) | FEAT(VIRTIO_BLK_F_BLK_SIZE) |
		   FEAT(VIRTIO_BLK_F_CONFIG_WCE);
	if (dflags & 2)
		features |= FEAT(VIRTIO_BLK_F_FLUSH);
	if (dflags & 4)
		features |= FEAT(VIRTIO_BLK_F_DISCARD) | FEAT(VIRTIO_BLK_F_WRITE_ZEROES);
	features &= d->ops->get_features(d->opaque);
	if (dflags & 16)
		d->ops->set_status(d->opaque, 0);
	CHECK_EQ(d->ops->set_features(d->opaque, features), 0);
	if (dflags & 8) {
		uint8_t wb = (dflags >> 5) & 1;

		d->ops->set_config(d->opaque, &wb, offsetof(struct virtio_blk_config, writeback), 1);
	}

	memset(&q, 0, sizeof(q));
	q.dev = d;
	q.kick_fd = q.call_fd = q.err_fd = -1;
	q.enabled = true;
	cfg = (struct virtq_config){
		.num = ring.num,
		.features = features,
		.base = fix_fresh_base(ring.packed),
		.mem = fix.mem,
		.name = "fuzz:q0",
		.desc = ring.packed ? (void *)fix.pdesc : (void *)fix.desc,
		.driver_area = ring.packed ? (void *)fix.driver_event : (void *)fix.avail,
		.device_area = ring.packed ? (void *)fix.device_event : (void *)fix.used,
	};
	CHECK_EQ(virtq_init(&q.vq, &cfg), 0);
	d->broken = false;
	CHECK_EQ(d->ops->start_queue(d->opaque, &q), 0);
	/* Twice: the second pass finds nothing new. */
	fuzz_eng_run_all();
	halted = d->broken;
	CHECK_EQ(fuzz_eng_run_all(), 0);
	d->ops->stop_queue(d->opaque, &q);
	CHECK_EQ(fuzz_eng_nr_queues(), 0);
	CHECK_EQ(q.vq.inflight, 0);
	virtq_destroy(&q.vq);
	if (!ring.packed)
		check_used(halted);
	fixture_check_canaries(&fix);
	return 0;
}
