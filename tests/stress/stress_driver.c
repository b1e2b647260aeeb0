// SPDX-License-Identifier: MIT
/*
 * stress_driver.c - the driver side of the stress test: submits requests
 * in random batches, kicks when asked to, sleeps when nothing can be done
 * and checks every completion: its token, its used length and every byte
 * of its writable buffers.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "pattern.h"
#include "stress.h"
#include "test_util.h"

/* A request slot: owns a fixed stretch of the data area. */
struct drv_req {
	uint64_t seq;
	bool in_flight;
	struct stress_shape shape;
	struct iovec iov[STRESS_MAX_SGS]; /* the driver's view of the buffers */
};

struct drv_side {
	struct stress_shared *sh;
	struct virtq_drv *vq;
	uint8_t *mem;  /* our mapping of the device-visible block */
	uint8_t *data; /* first request slot's data */
	struct drv_req *reqs;
	uint16_t *free_reqs;
	unsigned int nr_free;
	struct test_rng rng;
	uint64_t submitted, completed;
};

static bool device_gone(const struct stress_shared *sh)
{
	int status;

	/* Process mode only: a child that exited before we finished failed. */
	return sh->cfg.processes && waitpid(sh->device_pid, &status, WNOHANG) == sh->device_pid;
}

/* Shape request @r and place its buffers in its slot's stretch of the data area. */
static void drv_layout(struct drv_side *d, struct drv_req *r, struct virtq_sg *sgs)
{
	uint8_t *base = d->data + (size_t)(r - d->reqs) * STRESS_SLOT_BYTES;

	stress_shape(&d->sh->cfg, r->seq, &r->shape);
	for (unsigned int i = 0; i < r->shape.nout + r->shape.nin; i++) {
		/* Vary the alignment: the walker must not care. */
		uint8_t *p = base + i * STRESS_SG_STRIDE + (r->seq + i) % 61;

		r->iov[i].iov_base = p;
		r->iov[i].iov_len = r->shape.len[i];
		sgs[i].addr = d->sh->mem_dma + (uint64_t)(p - d->mem);
		sgs[i].len = r->shape.len[i];
	}
}

/* Readable buffers get the request's data, writable ones poison. */
static void drv_fill(struct drv_side *d, struct drv_req *r)
{
	uint64_t seed = d->sh->cfg.seed;

	pattern_fill_iov(r->iov, r->shape.nout, 8, r->shape.out_len - 8,
			 stress_out_seed(seed, r->seq));
	/* The sequence number, little-endian, in the first 8 readable bytes. */
	for (unsigned int i = 0; i < 8; i++)
		((uint8_t *)r->iov[0].iov_base)[i] = (uint8_t)(r->seq >> (8 * i));
	pattern_fill_iov(r->iov + r->shape.nout, r->shape.nin, 0, r->shape.in_len,
			 stress_poison_seed(seed, r->seq));
}

/* Try to submit one request; false if the ring (or our slot pool) is full. */
static bool drv_submit_one(struct drv_side *d)
{
	struct virtq_sg sgs[STRESS_MAX_SGS];
	unsigned int free_before, total, want;
	struct drv_req *r;
	int ret;

	if (!d->nr_free)
		return false;
	r = &d->reqs[d->free_reqs[d->nr_free - 1]];
	r->seq = d->submitted;
	drv_layout(d, r, sgs);
	total = r->shape.nout + r->shape.nin;
	/* Indirect exactly when the feature is on and 1 < buffers <= max. */
	want = d->sh->cfg.indirect && total > 1 && total <= STRESS_INDIRECT_MAX ? 1 : total;
	free_before = virtq_drv_num_free(d->vq);
	if (free_before < want) {
		/* Must be refused without touching the ring. */
		ret = virtq_drv_add_sgs(d->vq, sgs, r->shape.nout, r->shape.nin, r);
		if (ret != -ENOSPC)
			FAIL("add_sgs of %u descriptors with %u free: %d, not -ENOSPC", want,
			     free_before, ret);
		CHECK_EQ(virtq_drv_num_free(d->vq), free_before);
		return false;
	}
	drv_fill(d, r);
	ret = virtq_drv_add_sgs(d->vq, sgs, r->shape.nout, r->shape.nin, r);
	if (ret)
		FAIL("add_sgs seq %llu (%u descriptors, %u free): %d", (unsigned long long)r->seq,
		     want, free_before, ret);
	if (free_before - virtq_drv_num_free(d->vq) != want)
		FAIL("add_sgs of %u buffers took %u descriptors, expected %u", total,
		     free_before - virtq_drv_num_free(d->vq), want);
	if (want == 1 && total > 1)
		d->sh->indirect_chains++;
	d->nr_free--;
	r->in_flight = true;
	d->submitted++;
	return true;
}

static void drv_check_done(struct drv_side *d, void *token, uint32_t len)
{
	const struct stress_cfg *cfg = &d->sh->cfg;
	struct drv_req *r = token;
	const struct stress_shape *s;
	long bad;

	if (r < d->reqs || r >= d->reqs + cfg->num ||
	    (uintptr_t)token != (uintptr_t)&d->reqs[r - d->reqs])
		FAIL("get_buf returned token %p that we never added", token);
	if (!r->in_flight)
		FAIL("token of seq %llu returned twice", (unsigned long long)r->seq);
	s = &r->shape;
	if (len != s->written)
		FAIL("seq %llu: used length %u, device wrote %u", (unsigned long long)r->seq, len,
		     s->written);
	bad = pattern_check_iov(r->iov + s->nout, s->nin, 0, s->written,
				stress_in_seed(cfg->seed, r->seq));
	if (bad >= 0)
		FAIL("seq %llu: written byte %ld of %u is wrong", (unsigned long long)r->seq, bad,
		     s->written);
	bad = pattern_check_iov(r->iov + s->nout, s->nin, s->written, s->in_len - s->written,
				stress_poison_seed(cfg->seed, r->seq));
	if (bad >= 0)
		FAIL("seq %llu: byte %ld of %u written past the used length",
		     (unsigned long long)r->seq, bad, s->in_len);
	r->in_flight = false;
	d->free_reqs[d->nr_free++] = (uint16_t)(r - d->reqs);
	d->completed++;
}

/* Re-enable callbacks one of three ways; true if it is now safe to sleep. */
static bool drv_enable_cb(struct drv_side *d)
{
	unsigned int pos;

	switch (test_rng_below(&d->rng, 4)) {
	case 0:
		return virtq_drv_enable_cb(d->vq);
	case 1:
		pos = virtq_drv_enable_cb_prepare(d->vq);
		vq_mb();
		return !virtq_drv_poll(d->vq, pos);
	default:
		/* Batching: wake only when most outstanding buffers are done. */
		return virtq_drv_enable_cb_delayed(d->vq);
	}
}

static void drv_loop(struct drv_side *d)
{
	const struct stress_cfg *cfg = &d->sh->cfg;
	uint32_t len;
	void *token;

	virtq_drv_disable_cb(d->vq);
	while (d->completed < cfg->requests) {
		unsigned int batch = test_rng_range(&d->rng, 1, 16);
		unsigned int added = 0, reaped = 0;

		while (d->submitted < cfg->requests && added < batch && drv_submit_one(d))
			added++;
		if (added) {
			d->sh->kick_checks++;
			if (virtq_drv_kick_prepare(d->vq)) {
				stress_notify(d->sh->kick_fd);
				d->sh->kicks++;
			}
		}
		while ((token = virtq_drv_get_buf(d->vq, &len))) {
			drv_check_done(d, token, len);
			reaped++;
		}
		if (virtq_drv_is_broken(d->vq))
			FAIL("driver side marked the queue broken");
		if (added || reaped)
			continue;
		/* Nothing to do until the device completes something. */
		stress_jitter(&d->rng);
		if (!drv_enable_cb(d)) {
			virtq_drv_disable_cb(d->vq);
			continue;
		}
		d->sh->driver_sleeps++;
		stress_wait(d->sh, d->sh->call_fd, "driver", device_gone);
		virtq_drv_disable_cb(d->vq);
	}
}

void stress_driver_run(struct stress_shared *sh, struct virtq_drv *vq, void *mem)
{
	const struct stress_cfg *cfg = &sh->cfg;
	struct drv_side d = {.sh = sh, .vq = vq, .mem = mem};
	uint32_t len;

	test_rng_seed(&d.rng, cfg->seed ^ 0xd41e);
	d.data = d.mem + stress_data_off(cfg);
	d.reqs = calloc(cfg->num, sizeof(*d.reqs));
	d.free_reqs = calloc(cfg->num, sizeof(*d.free_reqs));
	if (!d.reqs || !d.free_reqs)
		FAIL("out of memory");
	for (unsigned int i = 0; i < cfg->num; i++)
		d.free_reqs[d.nr_free++] = (uint16_t)(cfg->num - 1 - i);

	drv_loop(&d);

	/* Everything came back exactly once and the ring is whole again. */
	if (virtq_drv_get_buf(vq, &len))
		FAIL("a completion beyond the last request");
	CHECK_EQ(virtq_drv_num_free(vq), cfg->num);
	CHECK_EQ(d.nr_free, cfg->num);
	free(d.reqs);
	free(d.free_reqs);
}
