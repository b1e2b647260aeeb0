// SPDX-License-Identifier: MIT
/*
 * inflight_client - a front-end that survives its back-end being killed
 * (SIGKILL) and restarted on the same socket, as QEMU's reconnect=1 does:
 * it keeps the in-flight region (INFLIGHT_SHMFD), reconnects and sends it
 * back (vu_fe_reconnect).  Issue 9, crash-safe reconnect.
 *
 * inflight_client SOCKET burst N DIR
 *   Post N requests at once on a slow back-end: the odd ones GET_ID (done
 *   at once), the even ones writes (none done before the kill).  Once the
 *   GET_IDs are in, create DIR/ready, wait for DIR/restarted (the script
 *   killed and restarted vhostd), reconnect, and wait for the writes: each
 *   completes exactly once (a second used entry for a head breaks the
 *   driver ring), with status OK.  Then N more, to see the ring serve new
 *   chains.
 *
 * inflight_client SOCKET hostile version|entry|chain|position DIR
 *   Corrupt the region (an unknown version, an entry marked 2; packed:
 *   3, a chain that links to itself, a used position past the ring),
 *   reconnect: the ring must not run.
 *
 * INFLIGHT_PACKED=1 in the environment: the same on a packed ring (each
 * request a list of 3 descriptors, which the region must copy).
 *
 * inflight_client SOCKET verify SECONDS DIR
 *   SLOTS slots, each owning one 4 KiB block, cycle: write generation g,
 *   read it back, check it.  Whenever DIR/restarted appears the client
 *   reconnects (and removes it); DIR/ready is created once I/O runs.
 *   After SECONDS it drains, reads every block once more and checks it
 *   holds the last generation written.  Exits 0 when every check passed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vhost-user/inflight.h"

#include "devices/virtio_blk.h"
#include "vhost-user/frontend.h"

#define SLOTS 64
#define BLOCK 4096

struct slot {
	struct virtio_blk_outhdr *hdr;
	uint64_t *data;
	uint8_t *status;
	uint64_t gen;
	bool writing;
	bool get_id; /* burst: completes at once, out of the writes' order */
	bool busy;
	unsigned int completions;
};

static const char *dir;
static bool packed; /* INFLIGHT_PACKED=1: a packed ring */

static void die(const char *what)
{
	fprintf(stderr, "inflight_client: %s\n", what);
	exit(1);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static bool exists(const char *name)
{
	char p[4096];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return access(p, F_OK) == 0;
}

static void touch(const char *name)
{
	char p[4096];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	f = fopen(p, "w");
	if (!f)
		die("cannot create a flag file");
	fclose(f);
}

static void unflag(const char *name)
{
	char p[4096];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	unlink(p);
}

static void pattern(struct slot *s, unsigned int i)
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

static void post_one(struct vu_fe *fe, struct virtq_drv *drv, struct slot *slots, uintptr_t i)
{
	struct slot *s = &slots[i];
	struct virtq_sg sg[3];

	s->hdr->type = s->get_id    ? VIRTIO_BLK_T_GET_ID
		       : s->writing ? VIRTIO_BLK_T_OUT
				    : VIRTIO_BLK_T_IN;
	s->hdr->sector = i * (BLOCK / 512);
	if (s->writing && !s->get_id)
		pattern(s, (unsigned int)i);
	else
		memset(s->data, 0xa5, BLOCK);
	*s->status = 0xff;
	sg[0] = (struct virtq_sg){vu_fe_addr(fe, s->hdr), sizeof(*s->hdr)};
	sg[1] = (struct virtq_sg){vu_fe_addr(fe, s->data), BLOCK};
	sg[2] = (struct virtq_sg){vu_fe_addr(fe, s->status), 1};
	if (virtq_drv_add_sgs(drv, sg, s->writing && !s->get_id ? 2 : 1,
			      s->writing && !s->get_id ? 1 : 2, (void *)(i + 1)))
		die("cannot add a request");
	s->busy = true;
}

static void reconnect_if_asked(struct vu_fe *fe)
{
	if (!exists("restarted"))
		return;
	unflag("restarted");
	if (vu_fe_reconnect(fe, 10000))
		die("reconnect failed");
	if (vu_fe_kick(fe, 0) < 0)
		die("kick failed");
	fprintf(stderr, "inflight_client: reconnected\n");
}

/* Take what completed: every completion of a request in flight, status OK. */
static unsigned int burst_harvest(struct virtq_drv *drv, struct slot *slots)
{
	unsigned int n = 0;
	uintptr_t token;

	while ((token = (uintptr_t)virtq_drv_get_buf(drv, NULL))) {
		struct slot *s = &slots[token - 1];

		if (!s->busy || *s->status != VIRTIO_BLK_S_OK)
			die("a completion twice, or failed");
		s->busy = false;
		s->completions++;
		n++;
	}
	if (virtq_drv_is_broken(drv))
		die("the used ring broke the driver's rules (a head completed twice?)");
	return n;
}

/*
 * Every odd slot asks GET_ID, which the device answers at once; the even
 * ones write to a slow disk.  So at the kill the used ring holds the odd
 * heads, out of avail order, and the even ones are in flight: resuming at
 * used->idx without the region would repeat some GET_IDs and lose writes.
 */
static int burst(struct vu_fe *fe, struct virtq_drv *drv, struct slot *slots, unsigned int n)
{
	unsigned int done = 0, want;
	double end;

	for (int round = 0; round < 2; round++) {
		for (uintptr_t i = 0; i < n; i++) {
			slots[i].get_id = round == 0 && (i & 1);
			post_one(fe, drv, slots, i);
		}
		if (vu_fe_kick(fe, 0) < 0)
			die("kick failed");
		if (round == 0) {
			end = now_s() + 5;
			while (done < n / 2 && now_s() < end) {
				vu_fe_wait_call(fe, 0, 20);
				done += burst_harvest(drv, slots);
			}
			for (unsigned int i = 0; i < n; i++) {
				if (slots[i].busy != !(i & 1))
					die("not just the GET_IDs completed before the kill: "
					    "too fast to test");
			}
			touch("ready");
			while (!exists("restarted")) {
				done += burst_harvest(drv, slots);
				usleep(10000);
			}
			if (done != n / 2)
				die("a write completed before the kill: too fast to test");
			reconnect_if_asked(fe);
		}
		want = round == 0 ? n : 2 * n;
		end = now_s() + 20;
		while (done < want && now_s() < end) {
			vu_fe_wait_call(fe, 0, 100);
			done += burst_harvest(drv, slots);
		}
		if (done != want) {
			fprintf(stderr, "inflight_client: %u of %u completed\n", done, want);
			die("requests lost across the restart");
		}
	}
	/* Nothing more may come: a late duplicate would show here. */
	usleep(200000);
	if (burst_harvest(drv, slots))
		die("a completion after all were in");
	for (unsigned int i = 0; i < n; i++) {
		if (slots[i].completions != 2)
			die("a request did not complete exactly once per post");
	}
	fprintf(stderr, "inflight_client: burst: %u writes across the kill, each once\n", n / 2);
	vu_fe_disconnect(fe);
	return 0;
}

/* Take every used buffer; returns how many. */
static unsigned int harvest(struct virtq_drv *drv, struct slot *slots)
{
	unsigned int n = 0;
	uintptr_t token;

	while ((token = (uintptr_t)virtq_drv_get_buf(drv, NULL))) {
		struct slot *s = &slots[token - 1];

		if (!s->busy)
			die("a completion for a request not in flight");
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
	if (virtq_drv_is_broken(drv))
		die("the used ring broke the driver's rules");
	return n;
}

static int verify(struct vu_fe *fe, struct virtq_drv *drv, struct slot *slots, double secs)
{
	double end = now_s() + secs, stall;
	unsigned long done = 0;
	bool flagged = false;

	for (unsigned int i = 0; i < SLOTS; i++)
		slots[i].writing = true;
	while (now_s() < end) {
		bool added = false;

		for (uintptr_t i = 0; i < SLOTS; i++) {
			if (!slots[i].busy) {
				post_one(fe, drv, slots, i);
				added = true;
			}
		}
		if (added && vu_fe_kick(fe, 0) < 0 && !exists("restarted"))
			usleep(1000); /* the back-end is gone: wait for the flag */
		if (!flagged && done > 1000) {
			touch("ready");
			flagged = true;
		}
		vu_fe_wait_call(fe, 0, 20);
		done += harvest(drv, slots);
		reconnect_if_asked(fe);
	}
	/* Drain: every request in flight completes. */
	stall = now_s() + 20;
	for (;;) {
		unsigned int busy = 0;

		for (unsigned int i = 0; i < SLOTS; i++)
			busy += slots[i].busy;
		if (!busy)
			break;
		if (now_s() > stall)
			die("requests in flight never completed");
		reconnect_if_asked(fe);
		vu_fe_wait_call(fe, 0, 50);
		done += harvest(drv, slots);
	}
	/* The last generation written must be on disk: read every block back. */
	for (uintptr_t i = 0; i < SLOTS; i++) {
		/* Next a write: the last done was the read of gen - 1. */
		if (slots[i].writing)
			slots[i].gen--;
		slots[i].writing = false;
		post_one(fe, drv, slots, i);
	}
	vu_fe_kick(fe, 0);
	stall = now_s() + 20;
	while (now_s() < stall) {
		unsigned int busy = 0;

		vu_fe_wait_call(fe, 0, 50);
		done += harvest(drv, slots);
		for (unsigned int i = 0; i < SLOTS; i++)
			busy += slots[i].busy;
		if (!busy)
			break;
	}
	for (unsigned int i = 0; i < SLOTS; i++) {
		if (slots[i].busy)
			die("a final read never completed");
	}
	fprintf(stderr, "inflight_client: verify: %lu requests, every block checked\n", done);
	vu_fe_disconnect(fe);
	return 0;
}

/*
 * A front-end that scribbles on the region before it hands it back: the
 * ring must not start (one log line), nothing completes, the daemon lives.
 * @what: "version" (an unknown version) or "entry" (an entry marked 2).
 */
static int hostile(struct vu_fe *fe, struct virtq_drv *drv, struct slot *slots, const char *what)
{
	struct vu_inflight_split *r;
	uint64_t size;
	int fd = vu_fe_inflight_fd(fe, &size);

	r = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (r == MAP_FAILED)
		die("cannot map the region");
	/* The version sits at the same place in both layouts. */
	if (!strcmp(what, "version"))
		r->version = 7;
	else if (!strcmp(what, "chain") && packed) {
		/* A chain of two whose second entry is itself: a loop. */
		struct vu_inflight_desc_packed *d = &((struct vu_inflight_packed *)r)->desc[5];

		d->num = 2;
		d->next = 5;
		d->last = 5;
		d->inflight = 1;
	} else if (!strcmp(what, "position") && packed)
		((struct vu_inflight_packed *)r)->old_used_idx = 0xfffe;
	else if (packed)
		((struct vu_inflight_packed *)r)->desc[3].inflight = 3;
	else
		r->desc[3].inflight = 2;
	munmap(r, size);
	if (vu_fe_reconnect(fe, 5000))
		die("reconnect failed");
	post_one(fe, drv, slots, 0);
	vu_fe_kick(fe, 0);
	usleep(500000);
	if (virtq_drv_get_buf(drv, NULL))
		die("the ring ran on a hostile region");
	fprintf(stderr, "inflight_client: hostile %s: the ring did not start\n", what);
	vu_fe_disconnect(fe);
	return 0;
}

int main(int argc, char **argv)
{
	struct vu_fe_config cfg = {
		.num_queues = 1,
		.queue_size = 256, /* 3 descriptors per slot */
		.features = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_RING_F_EVENT_IDX,
		.mem_size = 4u << 20,
		.inflight = true,
	};
	struct slot slots[SLOTS] = {0};
	struct virtq_drv *drv;
	struct vu_fe *fe;

	packed = getenv("INFLIGHT_PACKED") && !strcmp(getenv("INFLIGHT_PACKED"), "1");
	if (packed)
		cfg.features |= 1ull << VIRTIO_F_RING_PACKED;
	if (argc != 5)
		die("usage: inflight_client SOCKET burst N DIR | SOCKET verify SECONDS DIR");
	cfg.socket_path = argv[1];
	dir = argv[4];
	fe = vu_fe_connect(&cfg);
	if (!fe)
		die("cannot connect");
	if (!vu_fe_has_inflight(fe))
		die("the back-end offers no in-flight region");
	drv = vu_fe_queue(fe, 0);
	for (unsigned int i = 0; i < SLOTS; i++) {
		slots[i].hdr = vu_fe_alloc(fe, sizeof(*slots[i].hdr), 16);
		slots[i].data = vu_fe_alloc(fe, BLOCK, BLOCK);
		slots[i].status = vu_fe_alloc(fe, 1, 1);
		slots[i].writing = true;
		if (!slots[i].hdr || !slots[i].data || !slots[i].status)
			die("out of shared memory");
	}
	if (!strcmp(argv[2], "burst")) {
		unsigned int n = (unsigned int)atoi(argv[3]);

		if (!n || n > SLOTS)
			die("burst: 1..64 requests");
		return burst(fe, drv, slots, n);
	}
	if (!strcmp(argv[2], "hostile"))
		return hostile(fe, drv, slots, argv[3]);
	if (!strcmp(argv[2], "verify"))
		return verify(fe, drv, slots, atof(argv[3]));
	die("unknown mode");
	return 1;
}
