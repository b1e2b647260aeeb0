// SPDX-License-Identifier: MIT
/*
 * stress_device.c - the device side of the stress test: pops in bursts,
 * checks every readable byte, writes its answer, and completes out of
 * order (a few elements are held back and the rest completed shuffled) with
 * one flush and at most one notification per burst.
 *
 * Now and then it also does what a vhost-user back-end does mid-run: it
 * installs a fresh memory map while elements are in flight (each element
 * must keep the map it was popped under alive: SET_MEM_TABLE), and, when
 * nothing is in flight, tears the queue down and sets it up again from
 * virtq_get_base() (GET/SET_VRING_BASE, the packed wrap counter included).
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pattern.h"
#include "ring_pair.h"
#include "stress.h"
#include "test_util.h"
#include "virtq/virtq.h"

struct dev_slot {
	struct virtq_elem elem;
	struct iovec iov[STRESS_MAX_SGS];
	uint64_t seq;
	uint32_t written;
	bool filled; /* handed back to the queue (its map reference with it) */
};

struct dev_side {
	struct stress_shared *sh;
	struct virtq vq;
	struct dev_slot *slots;
	struct dev_slot **free_slots;
	unsigned int nr_free;
	struct dev_slot **pending; /* popped, answered, not yet filled */
	unsigned int nr_pending;
	uint8_t *seen; /* one bit per sequence number */
	struct test_rng rng;
	uint64_t completed;
	struct virtq_config vc;	  /* for re-init */
	struct mem_region region; /* for new maps */
	unsigned int maps_made, maps_released;
	bool closing; /* the final virtq_destroy() */
	/* counters of queues already torn down */
	uint64_t popped, notified, suppressed;
};

/* Only one device side per process (thread or child), so the hook finds it here. */
static struct dev_side *the_dev;

/* A map's last reference is gone: no element still in flight may point into it. */
static void dev_map_released(struct mem_region *r)
{
	const struct memmap *map =
		(const struct memmap *)((const char *)r - offsetof(struct memmap, regions));

	for (unsigned int i = 0; i < the_dev->nr_pending; i++) {
		if (!the_dev->pending[i]->filled && the_dev->pending[i]->elem.mem == map)
			FAIL("device: map released while an element popped under it is in flight");
	}
	if (map == the_dev->vq.mem && !the_dev->closing)
		FAIL("device: the queue's current map was released");
	the_dev->maps_released++;
}

static struct memmap *dev_new_map(struct dev_side *d)
{
	struct memmap *map = memmap_new(&d->region, 1);

	if (!map)
		FAIL("memmap_new: %m");
	d->maps_made++;
	return map;
}

/* SET_MEM_TABLE: a new map for the queue; elements in flight keep theirs. */
static void dev_swap_map(struct dev_side *d)
{
	struct memmap *map = dev_new_map(d);

	virtq_set_memmap(&d->vq, map);
	memmap_put(map);
}

/* Stop and restart the queue where it stood: nothing may be in flight. */
static void dev_reinit(struct dev_side *d)
{
	uint16_t base = virtq_get_base(&d->vq);
	int ret;

	CHECK_EQ(d->vq.inflight, 0);
	d->popped += d->vq.nr_popped;
	d->notified += d->vq.nr_notified;
	d->suppressed += d->vq.nr_notify_suppressed;
	d->vc.base = base;
	d->vc.mem = memmap_get(d->vq.mem);
	virtq_destroy(&d->vq);
	ret = virtq_init(&d->vq, &d->vc);
	memmap_put(d->vc.mem);
	if (ret)
		FAIL("device: virtq_init at base %#x: %d", base, ret);
	CHECK_EQ(virtq_get_base(&d->vq), base);
	d->sh->device_resets++;
}

static bool driver_gone(const struct stress_shared *sh)
{
	/* Process mode: we were re-parented, so the driver exited. */
	return sh->cfg.processes && getppid() == 1;
}

/* Check a popped chain against the request it claims to be, and answer it. */
static void dev_handle(struct dev_side *d, struct dev_slot *s)
{
	const struct stress_cfg *cfg = &d->sh->cfg;
	const struct virtq_elem *e = &s->elem;
	struct stress_shape shape;
	uint8_t hdr[8];
	long bad;

	if (e->out_num < 1 || iov_to_buf(e->iov, e->out_num, 0, hdr, 8) != 8)
		FAIL("device: chain %u has no sequence number", e->id);
	s->seq = 0;
	for (int i = 0; i < 8; i++)
		s->seq |= (uint64_t)hdr[i] << (8 * i);
	if (s->seq >= cfg->requests)
		FAIL("device: sequence number %llu out of range", (unsigned long long)s->seq);
	if (d->seen[s->seq / 8] & (1u << (s->seq % 8)))
		FAIL("device: request %llu popped twice", (unsigned long long)s->seq);
	d->seen[s->seq / 8] |= (uint8_t)(1u << (s->seq % 8));

	stress_shape(cfg, s->seq, &shape);
	if (e->out_num != shape.nout || e->in_num != shape.nin)
		FAIL("device: seq %llu has %u+%u buffers, driver gave %u+%u",
		     (unsigned long long)s->seq, e->out_num, e->in_num, shape.nout, shape.nin);
	for (unsigned int i = 0; i < shape.nout + shape.nin; i++) {
		if (e->iov[i].iov_len != shape.len[i])
			FAIL("device: seq %llu buffer %u is %zu bytes, driver gave %u",
			     (unsigned long long)s->seq, i, e->iov[i].iov_len, shape.len[i]);
	}
	CHECK_EQ(e->out_len, shape.out_len);
	CHECK_EQ(e->in_len, shape.in_len);
	CHECK_EQ(iov_length(e->iov, e->out_num), shape.out_len);
	bad = pattern_check_iov(e->iov, e->out_num, 8, shape.out_len - 8,
				stress_out_seed(cfg->seed, s->seq));
	if (bad >= 0)
		FAIL("device: seq %llu readable byte %ld of %u is wrong",
		     (unsigned long long)s->seq, bad, shape.out_len);
	pattern_fill_iov(e->iov + e->out_num, e->in_num, 0, shape.written,
			 stress_in_seed(cfg->seed, s->seq));
	s->written = shape.written;
}

/* Pop up to a random burst; returns how many; FAILs if the ring is refused. */
static unsigned int dev_pop_burst(struct dev_side *d)
{
	unsigned int burst = test_rng_range(&d->rng, 1, STRESS_BURST), n = 0;

	while (n < burst && d->nr_free) {
		struct dev_slot *s = d->free_slots[d->nr_free - 1];
		int r;

		virtq_elem_init(&s->elem, s->iov, STRESS_MAX_SGS);
		r = virtq_pop(&d->vq, &s->elem);
		if (r == 0)
			break;
		if (r < 0)
			FAIL("device: virtq_pop refused our own driver's ring: %s",
			     virtq_strerror(d->vq.error));
		d->nr_free--;
		s->filled = false;
		dev_handle(d, s);
		d->pending[d->nr_pending++] = s;
		n++;
	}
	return n;
}

/* Complete all pending elements but @hold of them, in random order. */
static void dev_complete(struct dev_side *d, unsigned int hold)
{
	unsigned int n = d->nr_pending > hold ? d->nr_pending - hold : 0;
	bool one_by_one = test_rng_below(&d->rng, 8) == 0;

	if (!n)
		return;
	/* Fisher-Yates: the first n after the shuffle go, the rest wait. */
	for (unsigned int i = d->nr_pending - 1; i > 0; i--) {
		unsigned int j = test_rng_below(&d->rng, i + 1);
		struct dev_slot *t = d->pending[i];

		d->pending[i] = d->pending[j];
		d->pending[j] = t;
	}
	for (unsigned int i = 0; i < n; i++) {
		struct dev_slot *s = d->pending[i];

		/* Mostly a burst of fills and one flush; sometimes push each. */
		s->filled = true;
		if (one_by_one)
			virtq_push(&d->vq, &s->elem, s->written);
		else
			virtq_fill(&d->vq, &s->elem, s->written);
		d->free_slots[d->nr_free++] = s;
	}
	if (!one_by_one)
		virtq_flush(&d->vq);
	if (d->vq.broken)
		FAIL("device: queue broke on completion: %s", virtq_strerror(d->vq.error));
	memmove(d->pending, d->pending + n, (d->nr_pending - n) * sizeof(d->pending[0]));
	d->nr_pending -= n;
	d->completed += n;
	d->sh->call_checks++;
	if (virtq_should_notify(&d->vq)) {
		stress_notify(d->sh->call_fd);
		d->sh->calls++;
	}
}

static void dev_loop(struct dev_side *d)
{
	const struct stress_cfg *cfg = &d->sh->cfg;

	while (d->completed < cfg->requests) {
		unsigned int n = dev_pop_burst(d);

		/*
		 * Hold a few back while the ring has more (out-of-order
		 * completion), but never sleep on held work: the driver may
		 * be waiting for exactly those.
		 */
		dev_complete(d, n ? test_rng_below(&d->rng, STRESS_HOLD + 1) : 0);
		if (!test_rng_below(&d->rng, 512))
			dev_swap_map(d);
		if (!d->nr_pending && !test_rng_below(&d->rng, 256))
			dev_reinit(d);
		if (n || d->completed == cfg->requests)
			continue;
		stress_jitter(&d->rng);
		if (virtq_enable_notify(&d->vq)) {
			virtq_disable_notify(&d->vq);
			continue;
		}
		d->sh->device_sleeps++;
		stress_wait(d->sh, d->sh->kick_fd, "device", driver_gone);
		virtq_disable_notify(&d->vq);
	}
}

/* Device-side view of the ring: translate the driver's addresses through our map. */
static void dev_init(struct dev_side *d, void *hva)
{
	const struct stress_shared *sh = d->sh;
	const struct stress_cfg *cfg = &sh->cfg;
	struct virtq_config *vc = &d->vc;
	int ret;

	the_dev = d;
	d->region = (struct mem_region){
		.gpa = sh->mem_dma,
		.size = sh->mem_size,
		.uva = sh->mem_uva,
		.hva = hva,
		.release = dev_map_released,
	};
	if (ring_pair_config(vc, dev_new_map(d), &sh->addrs, cfg->num, stress_features(cfg),
			     "stress:q0"))
		FAIL("driver's ring addresses are not inside the block");
	ret = virtq_init(&d->vq, vc);
	if (ret)
		FAIL("virtq_init: %d", ret);
	memmap_put(vc->mem); /* the queue holds its own reference */

	d->slots = calloc(cfg->num, sizeof(*d->slots));
	d->free_slots = calloc(cfg->num, sizeof(*d->free_slots));
	d->pending = calloc(cfg->num, sizeof(*d->pending));
	d->seen = calloc(cfg->requests / 8 + 1, 1);
	if (!d->slots || !d->free_slots || !d->pending || !d->seen)
		FAIL("out of memory");
	for (unsigned int i = 0; i < cfg->num; i++)
		d->free_slots[d->nr_free++] = &d->slots[i];
	test_rng_seed(&d->rng, cfg->seed ^ 0xde71ce);
}

void stress_device_run(struct stress_shared *sh, void *hva)
{
	struct dev_side d = {.sh = sh};

	dev_init(&d, hva);
	dev_loop(&d);

	/* Everything was popped exactly once and nothing is left in flight. */
	for (uint64_t i = 0; i < sh->cfg.requests; i++) {
		if (!(d.seen[i / 8] & (1u << (i % 8))))
			FAIL("device: request %llu never popped", (unsigned long long)i);
	}
	CHECK(virtq_avail_empty(&d.vq));
	CHECK_EQ(d.vq.inflight, 0);
	CHECK_EQ(d.popped + d.vq.nr_popped, sh->cfg.requests);
	if (!sh->cfg.packed)
		CHECK_EQ(virtq_get_base(&d.vq), (uint16_t)sh->cfg.requests);
	sh->dev_notified = d.notified + d.vq.nr_notified;
	sh->dev_suppressed = d.suppressed + d.vq.nr_notify_suppressed;
	/* Every map but the queue's own is gone; the last goes with the queue. */
	CHECK_EQ(d.maps_released, d.maps_made - 1);
	d.closing = true;
	virtq_destroy(&d.vq);
	CHECK_EQ(d.maps_released, d.maps_made);
	sh->device_maps = d.maps_made;
	free(d.slots);
	free(d.free_slots);
	free(d.pending);
	free(d.seen);
}
