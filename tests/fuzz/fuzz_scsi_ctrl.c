// SPDX-License-Identifier: MIT
/*
 * fuzz_scsi_ctrl.c - libFuzzer harness of the virtio-scsi queue parsers
 * (src/devices/scsi_ctrl.c, scsi.c): control-queue requests (task
 * management functions of every subtype, AN query / subscribe, unknown
 * types, short buffers) and request-queue headers (virtio_scsi_cmd_req:
 * LUN addressing of every form, tags, data both ways, the response split
 * over many buffers), against a controller with three null LUNs (target
 * 0 LUNs 0 and 1, target 1 LUN 5, read-only).  The CDBs themselves have
 * their own harness (fuzz_scsi_cdb.c).
 *
 * The device model runs unchanged on the synchronous engine of
 * fuzz_engine.h (TMFs still go through the controller's TMF thread) and
 * behind the vhost-user stand-in of fuzz_vu_fake.h.  Checks, beyond
 * ASan/UBSan: every chain is completed (TMFs within FUZZ_ENG_WAIT_MS, else
 * it is a hang), nothing outside guest memory is written, a used length
 * never exceeds the chain's writable bytes, and a response code is one
 * virtio-scsi defines.
 *
 * Input: flags (1 byte: 1 the request queue instead of the control queue,
 * 2 a device reset first, which leaves unit attentions, 4 negotiate
 * HOTPLUG and CHANGE), then the chains in fuzz_chain.h's format.  Seeds:
 * tests/fuzz/scsi-ctrl-corpus (fuzz_gen_dev_corpus).
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/log.h"
#include "devices/scsi.h"
#include "devices/virtio_scsi.h"
#include "fuzz_chain.h"
#include "fuzz_engine.h"
#include "fuzz_vu_fake.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ring_fixture fix;
static struct fuzz_ring ring;
static struct scsi_dev *scsi;
static struct vu_dev *vu;

static void lun(struct scsi_lun_options *o, const char *spec)
{
	char err[256];

	if (scsi_lun_options_parse(spec, o, err, sizeof(err)))
		FAIL("LUN %s: %s", spec, err);
}

static void setup(void)
{
	struct scsi_lun_options luns[3];
	struct scsi_options opts;
	char err[256];

	check_abort_on_failure();
	log_set_level(getenv("FUZZ_VERBOSE") ? LOG_LVL_DEBUG : LOG_LVL_ERROR);
	fixture_create(&fix, FUZZ_CH_A_SIZE, FUZZ_CH_B_SIZE, 0);
	if (scsi_options_parse("id=fuzz-scsi,socket=/nonexistent/vhd-fuzz-scsi,queue-size=64",
			       &opts, err, sizeof(err)))
		FAIL("options: %s", err);
	lun(&luns[0], "scsi=fuzz-scsi,target=0,lun=0,backend=null,size=4M");
	lun(&luns[1], "scsi=fuzz-scsi,target=0,lun=1,backend=null,size=1M,block-size=4096");
	lun(&luns[2], "scsi=fuzz-scsi,target=1,lun=5,backend=null,size=2M,readonly=on");
	scsi = scsi_dev_new(&opts, luns, 3, NULL, NULL, err, sizeof(err));
	if (!scsi)
		FAIL("scsi_dev_new: %s", err);
	vu = fuzz_vu_last;
	CHECK(vu);
}

static uint8_t in_byte(struct fuzz_chain *c, uint32_t off)
{
	uint8_t *p = fuzz_chain_in_byte(c, off);

	CHECK(p);
	return *p;
}

static void check_used(bool halted, bool request_queue)
{
	uint16_t n = vq_read16(&fix.used->idx);

	if (!halted)
		CHECK_EQ(n, ring.nr);
	CHECK(n <= ring.nr);
	for (uint16_t i = 0; i < n; i++) {
		struct vring_used_elem *u = &fix.used->ring[i % ring.num];
		struct fuzz_chain *c = fuzz_ring_chain(&ring, vq_read32(&u->id));
		uint32_t len = vq_read32(&u->len);

		CHECK(c);
		CHECK(len <= c->in_len);
		if (!len)
			continue;
		if (request_queue) {
			uint32_t sense_len = 0;

			CHECK(len >= sizeof(struct virtio_scsi_cmd_resp));
			for (int k = 3; k >= 0; k--)
				sense_len = sense_len << 8 | in_byte(c, (uint32_t)k);
			CHECK(sense_len <= VIRTIO_SCSI_SENSE_SIZE);
			CHECK(in_byte(c, offsetof(struct virtio_scsi_cmd_resp, response)) <=
			      VIRTIO_SCSI_S_INCORRECT_LUN);
			log_debug("fuzz: chain %u: used %u, response %u status %#x", c->head, len,
				  in_byte(c, offsetof(struct virtio_scsi_cmd_resp, response)),
				  in_byte(c, offsetof(struct virtio_scsi_cmd_resp, status)));
		} else {
			/* TMF (1 byte) or AN (4 + 1 bytes) response: response is the last byte. */
			CHECK(len == 1 || len == 5);
			CHECK(in_byte(c, len - 1) <= VIRTIO_SCSI_S_INCORRECT_LUN);
			log_debug("fuzz: chain %u: used %u, response %u", c->head, len,
				  in_byte(c, len - 1));
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = {data, size};
	struct vu_queue q;
	struct virtq_config cfg;
	uint64_t features;
	uint8_t flags;
	bool halted, rq;

	if (!fix.a)
		setup();
	flags = fuzz_u8(&in);
	rq = flags & 1;
	if (fuzz_ring_build(&fix, &ring, &in, 0))
		return 0;

	features = ring.features;
	if (flags & 4)
		features |= FEAT(VIRTIO_SCSI_F_HOTPLUG) | FEAT(VIRTIO_SCSI_F_CHANGE);
	features &= vu->ops->get_features(vu->opaque);
	if (flags & 2)
		vu->ops->set_status(vu->opaque, 0);
	CHECK_EQ(vu->ops->set_features(vu->opaque, features), 0);

	memset(&q, 0, sizeof(q));
	q.dev = vu;
	q.index = rq ? VIRTIO_SCSI_REQ_QUEUE0 : VIRTIO_SCSI_CTRL_QUEUE;
	q.kick_fd = q.call_fd = q.err_fd = -1;
	q.enabled = true;
	cfg = (struct virtq_config){
		.num = ring.num,
		.features = features,
		.base = fix_fresh_base(ring.packed),
		.mem = fix.mem,
		.name = "fuzz:q",
		.desc = ring.packed ? (void *)fix.pdesc : (void *)fix.desc,
		.driver_area = ring.packed ? (void *)fix.driver_event : (void *)fix.avail,
		.device_area = ring.packed ? (void *)fix.device_event : (void *)fix.used,
	};
	CHECK_EQ(virtq_init(&q.vq, &cfg), 0);
	vu->broken = false;
	CHECK_EQ(vu->ops->start_queue(vu->opaque, &q), 0);
	fuzz_eng_run_all();
	/* TMFs finish on the TMF thread: wait for them, then publish. */
	if (!fuzz_eng_wait_idle())
		FAIL("a request was not completed within %u ms", FUZZ_ENG_WAIT_MS);
	halted = vu->broken;
	CHECK_EQ(fuzz_eng_run_all(), 0);
	vu->ops->stop_queue(vu->opaque, &q);
	CHECK_EQ(fuzz_eng_nr_queues(), 0);
	CHECK_EQ(q.vq.inflight, 0);
	virtq_destroy(&q.vq);
	if (!ring.packed)
		check_used(halted, rq);
	fixture_check_canaries(&fix);
	return 0;
}
