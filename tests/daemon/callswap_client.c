// SPDX-License-Identifier: MIT
/*
 * callswap_client.c SOCKET SECONDS [packed] - a front-end that swaps a
 * running queue's call eventfd again and again (SET_VRING_CALL, as QEMU
 * does when it masks and unmasks a vector) while requests are in flight,
 * against vhostd's blk device with a file back-end (issue 9).
 *
 * Each of SLOTS slots owns one 4 KiB block and cycles write generation g,
 * read it back, check it.  The driver waits for interrupts the way a guest
 * does: it harvests the used ring, turns callbacks on, and only if nothing
 * slipped in, waits - after swapping the call fd, every few rounds, and
 * closing the old one unread.  A completion whose only interrupt went to
 * the old fd is lost: the wait times out with buffers in the used ring.
 * Exits 0 when every check passed and no interrupt was lost, 1 otherwise.
 *
 * callswap_client SOCKET stop MIN_MS - instead: post SLOTS reads and send
 * GET_VRING_BASE at once, against a device whose requests take MIN_MS or
 * more (backend=null,delay-ms=).  The reply must come after the drain:
 * not before MIN_MS, with base SLOTS, and every request already in the
 * used ring with status OK (issue 12: a parked message keeps its meaning).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "devices/virtio_blk.h"
#include "vhost-user/frontend.h"
#include "vhost-user/protocol.h"

#define SLOTS	   32
#define BLOCK	   4096
#define SWAP_EVERY 3 /* rounds between swaps */

struct slot {
	struct virtio_blk_outhdr *hdr;
	uint64_t *data;
	uint8_t *status;
	uint64_t gen;
	bool writing; /* the request in flight is the write of gen */
	bool busy;
};

static void die(const char *what)
{
	fprintf(stderr, "callswap_client: %s\n", what);
	exit(1);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void fill(struct slot *s, unsigned int i)
{
	for (unsigned int k = 0; k < BLOCK / 8; k++)
		s->data[k] = (uint64_t)i << 48 | s->gen << 16 | k;
}

static bool matches(const struct slot *s, unsigned int i)
{
	for (unsigned int k = 0; k < BLOCK / 8; k++) {
		if (s->data[k] != ((uint64_t)i << 48 | s->gen << 16 | k))
			return false;
	}
	return true;
}

static void post(struct vu_fe *fe, struct virtq_drv *drv, struct slot *slots)
{
	bool added = false;

	for (uintptr_t i = 0; i < SLOTS; i++) {
		struct slot *s = &slots[i];
		struct virtq_sg sg[3];

		if (s->busy)
			continue;
		s->hdr->type = s->writing ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN;
		s->hdr->sector = i * (BLOCK / 512);
		if (s->writing)
			fill(s, (unsigned int)i);
		else
			memset(s->data, 0xa5, BLOCK);
		*s->status = 0xff;
		sg[0] = (struct virtq_sg){vu_fe_addr(fe, s->hdr), sizeof(*s->hdr)};
		sg[1] = (struct virtq_sg){vu_fe_addr(fe, s->data), BLOCK};
		sg[2] = (struct virtq_sg){vu_fe_addr(fe, s->status), 1};
		if (virtq_drv_add_sgs(drv, sg, s->writing ? 2 : 1, s->writing ? 1 : 2,
				      (void *)(i + 1)))
			die("cannot add a request");
		s->busy = added = true;
	}
	if (added && vu_fe_kick(fe, 0) < 0)
		die("kick failed");
}

/* Take every used buffer; returns how many. */
static unsigned int harvest(struct virtq_drv *drv, struct slot *slots)
{
	unsigned int n = 0;
	uintptr_t token;

	while ((token = (uintptr_t)virtq_drv_get_buf(drv, NULL))) {
		struct slot *s = &slots[token - 1];

		if (*s->status != VIRTIO_BLK_S_OK)
			die("a request failed");
		if (!s->writing) {
			if (!matches(s, (unsigned int)(token - 1)))
				die("read back other data than was written");
			s->gen++;
		}
		s->writing = !s->writing;
		s->busy = false;
		n++;
	}
	return n;
}

/* The GET_VRING_BASE mode (see the top). */
static int stop_mode(struct vu_fe *fe, struct virtq_drv *drv, struct slot *slots, double min_ms)
{
	uint16_t base = 0;
	unsigned int n;
	double t0, ms;

	for (unsigned int i = 0; i < SLOTS; i++)
		slots[i].writing = false;
	post(fe, drv, slots);
	t0 = now_s();
	if (vu_fe_stop_queue(fe, 0, &base))
		die("GET_VRING_BASE failed");
	ms = (now_s() - t0) * 1000;
	n = 0;
	for (uintptr_t token; (token = (uintptr_t)virtq_drv_get_buf(drv, NULL)); n++) {
		const struct slot *sl = &slots[token - 1];

		if (*sl->status != VIRTIO_BLK_S_OK)
			die("a request failed");
		/* post() filled it with 0xa5; the null back-end reads zeroes. */
		for (unsigned int k = 0; k < BLOCK / 8; k++) {
			if (sl->data[k])
				die("a completed read's data is not there");
		}
	}
	fprintf(stderr, "callswap_client: GET_VRING_BASE answered %u after %.0f ms, %u completed\n",
		base, ms, n);
	if (ms < min_ms)
		die("GET_VRING_BASE answered before the requests could complete");
	if (base != SLOTS || n != SLOTS)
		die("the base or the used ring does not count every request");
	vu_fe_disconnect(fe);
	return 0;
}

int main(int argc, char **argv)
{
	struct vu_fe_config cfg = {
		.num_queues = 1,
		.queue_size = 128, /* 3 descriptors per slot */
		.features = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_RING_F_EVENT_IDX,
		.mem_size = 4u << 20,
	};
	struct slot slots[SLOTS] = {0};
	unsigned long rounds = 0, swaps = 0, done = 0;
	struct virtq_drv *drv;
	struct vu_fe *fe;
	double end;

	if (argc < 3)
		die("usage: callswap_client SOCKET SECONDS [packed] | SOCKET stop MIN_MS");
	cfg.socket_path = argv[1];
	if (argc > 3 && !strcmp(argv[3], "packed"))
		cfg.features |= 1ull << VIRTIO_F_RING_PACKED;
	fe = vu_fe_connect(&cfg);
	if (!fe)
		die("cannot connect");
	drv = vu_fe_queue(fe, 0);
	for (unsigned int i = 0; i < SLOTS; i++) {
		slots[i].hdr = vu_fe_alloc(fe, sizeof(*slots[i].hdr), 16);
		slots[i].data = vu_fe_alloc(fe, BLOCK, BLOCK);
		slots[i].status = vu_fe_alloc(fe, 1, 1);
		slots[i].writing = true;
		if (!slots[i].hdr || !slots[i].data || !slots[i].status)
			die("out of shared memory");
	}

	if (!strcmp(argv[2], "stop"))
		return stop_mode(fe, drv, slots, argc > 3 ? atof(argv[3]) : 0);
	end = now_s() + atof(argv[2]);
	while (now_s() < end) {
		unsigned int n;

		post(fe, drv, slots);
		n = harvest(drv, slots);
		done += n;
		/* Free slots are posted again first: sleep only with all in flight. */
		if (n)
			continue;
		/* Something slipped in: take it before sleeping. */
		if (!virtq_drv_enable_cb(drv))
			continue;
		if (++rounds % SWAP_EVERY == 0) {
			if (vu_fe_swap_call_fd(fe, 0))
				die("SET_VRING_CALL failed");
			swaps++;
		}
		if (vu_fe_wait_call(fe, 0, 5000) == 0) {
			n = harvest(drv, slots);

			fprintf(stderr,
				"callswap_client: no interrupt for 5 s with %u completion(s) in "
				"the "
				"used ring (after %lu swaps, %lu completions)\n",
				n, swaps, done);
			die(n ? "an interrupt was lost" : "the device hangs");
		}
	}
	/* The rest, then a clean stop (GET_VRING_BASE). */
	for (int i = 0; i < 500; i++) {
		bool busy = false;

		done += harvest(drv, slots);
		for (unsigned int k = 0; k < SLOTS; k++)
			busy |= slots[k].busy;
		if (!busy)
			break;
		if (virtq_drv_enable_cb(drv))
			vu_fe_wait_call(fe, 0, 10);
	}
	vu_fe_disconnect(fe);
	fprintf(stderr, "callswap_client: %lu requests verified, %lu call fd swaps\n", done, swaps);
	if (swaps < 10 || done < 100)
		die("too little happened to tell");
	return 0;
}
