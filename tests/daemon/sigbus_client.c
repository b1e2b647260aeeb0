// SPDX-License-Identifier: MIT
/*
 * sigbus_client.c SOCKET - a hostile front-end for vhostd's blk device:
 * it shares one extra, unsealed memfd (ADD_MEM_REG) that holds every
 * request's header, data buffer and status byte, reads from the device
 * until some requests have completed, then truncates the memfd to
 * nothing and keeps the queue kicked.  The daemon's I/O thread faults on
 * the next header it copies.  Exits 0 once the device says NEEDS_RESET
 * (GET_STATUS) and completes nothing more, 1 otherwise.
 *
 * The rings stay in the front-end's own sealed memory, and this process
 * never touches the memfd after truncating it (it would fault here too).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "devices/virtio_blk.h"
#include "vhost-user/frontend.h"
#include "vhost-user/protocol.h"

#define SLOTS	    16
#define SLOT_BYTES  8192 /* header at 0, status at 512, data at 4096 */
#define REGION_SIZE (SLOTS * SLOT_BYTES)

static void die(const char *what)
{
	fprintf(stderr, "sigbus_client: %s\n", what);
	exit(1);
}

/* A request with NEED_REPLY; its reply's u64 (an ack: 0 is success). */
static uint64_t request(struct vu_fe *fe, uint32_t req, const void *payload, uint32_t size,
			const int *fds, unsigned int nfds)
{
	uint8_t wire[VHOST_USER_HDR_SIZE + VHOST_USER_MAX_PAYLOAD];
	struct vhost_user_hdr h = {
		.request = req,
		.flags = VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK,
		.size = size,
	};
	struct vhost_user_msg reply;

	memcpy(wire, &h, sizeof(h));
	if (size)
		memcpy(wire + sizeof(h), payload, size);
	if (vu_fe_send_raw(fe, wire, sizeof(h) + size, fds, nfds, &reply, sizeof(reply)))
		die("no reply from the back-end");
	return reply.payload.u64;
}

static bool needs_reset(struct vu_fe *fe)
{
	return request(fe, VHOST_USER_GET_STATUS, NULL, 0, NULL, 0) & VIRTIO_STATUS_NEEDS_RESET;
}

/* Post every idle slot again; the contents are whatever the memory holds. */
static void post(struct vu_fe *fe, struct virtq_drv *drv, uint64_t gpa, bool *busy)
{
	bool added = false;

	for (uintptr_t i = 0; i < SLOTS; i++) {
		uint64_t base = gpa + i * SLOT_BYTES;
		struct virtq_sg sg[3] = {
			{base, sizeof(struct virtio_blk_outhdr)},
			{base + 4096, 4096},
			{base + 512, 1},
		};

		if (busy[i] || virtq_drv_add_sgs(drv, sg, 1, 2, (void *)(i + 1)))
			continue;
		busy[i] = added = true;
	}
	if (added && vu_fe_kick(fe, 0) < 0)
		die("kick failed");
}

/* Reap completions for up to @ms; returns how many. */
static unsigned int reap(struct vu_fe *fe, struct virtq_drv *drv, bool *busy, int ms)
{
	unsigned int n = 0;
	uintptr_t token;

	for (int waited = 0; waited < ms; waited += 10) {
		while ((token = (uintptr_t)virtq_drv_get_buf(drv, NULL))) {
			busy[token - 1] = false;
			n++;
		}
		if (n)
			break;
		if (virtq_drv_enable_cb(drv))
			vu_fe_wait_call(fe, 0, 10);
	}
	return n;
}

int main(int argc, char **argv)
{
	struct vu_fe_config cfg = {
		.num_queues = 1,
		.queue_size = 64,
		.features = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_RING_F_EVENT_IDX,
		.mem_size = 1u << 20,
	};
	bool busy[SLOTS] = {false};
	struct vhost_user_mem_reg m;
	unsigned int done = 0, after = 0;
	struct virtq_drv *drv;
	struct vu_fe *fe;
	uint8_t *p;
	int fd;

	if (argc != 2)
		die("usage: sigbus_client SOCKET");
	cfg.socket_path = argv[1];
	fe = vu_fe_connect(&cfg);
	if (!fe)
		die("cannot connect");
	drv = vu_fe_queue(fe, 0);

	/* Unsealed, as DPDK's virtio-user or QEMU with seal=off share it. */
	fd = memfd_create("hostile", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, REGION_SIZE))
		die("memfd");
	p = mmap(NULL, REGION_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		die("mmap");
	/* Reads of sector i: valid requests while the memory lasts. */
	for (unsigned int i = 0; i < SLOTS; i++) {
		struct virtio_blk_outhdr h = {.type = VIRTIO_BLK_T_IN, .sector = i * 8};

		memcpy(p + i * SLOT_BYTES, &h, sizeof(h));
	}
	m = (struct vhost_user_mem_reg){.region = {(uintptr_t)p, REGION_SIZE, (uintptr_t)p, 0}};
	if (request(fe, VHOST_USER_ADD_MEM_REG, &m, sizeof(m), &fd, 1))
		die("ADD_MEM_REG refused");

	while (done < 256) {
		post(fe, drv, (uintptr_t)p, busy);
		done += reap(fe, drv, busy, 5000);
		if (!done)
			die("no completion in 5 s before the truncation");
	}
	if (ftruncate(fd, 0))
		die("ftruncate");
	fprintf(stderr, "sigbus_client: %u requests done; memfd truncated\n", done);

	/* Keep it busy until the device gives up on its memory (5 s at most). */
	for (int i = 0; i < 500 && !needs_reset(fe); i++) {
		post(fe, drv, (uintptr_t)p, busy);
		reap(fe, drv, busy, 10);
	}
	if (!needs_reset(fe))
		die("the device never said NEEDS_RESET");
	/* Broken means stopped: nothing completes any more. */
	reap(fe, drv, busy, 50);
	post(fe, drv, (uintptr_t)p, busy);
	after = reap(fe, drv, busy, 300);
	if (after)
		die("the broken device still completes requests");
	fprintf(stderr, "sigbus_client: device says NEEDS_RESET and completes nothing\n");

	vu_fe_disconnect(fe);
	munmap(p, REGION_SIZE);
	close(fd);
	return 0;
}
