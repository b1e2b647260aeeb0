// SPDX-License-Identifier: MIT
/*
 * fuzz_inflight.c - libFuzzer harness of the in-flight region's recovery
 * at ring start (vu_inflight_ring_start() in src/vhost-user/inflight.c)
 * and of the tracking that follows it (vu_inflight_begin / _filled /
 * _published).
 *
 * Phase 1, the hostile region: the front-end's region (any bytes) is
 * recovered for one ring.  Checks, beyond ASan/UBSan: a refusal is -EINVAL
 * with a reason and leaves the ring untracked; recovery writes nothing
 * outside its own ring's part; an accepted region leaves a sane header
 * (version, size, used_idx = the used ring's), exactly the heads it marks
 * in flight are the ones to start again, each once, that were in flight
 * before, in counter order, and popping resumes right after them.
 *
 * Phase 2, exactly once: from there the input drives the ring as the
 * engine would (pop = begin, complete = filled, publish = the used index
 * then published) and then crashes, plainly or between publishing the used
 * index and clearing the batch (inflight.c's steps 4 and 5); a second
 * recovery, as a restarted back-end does it, must start again exactly the
 * chains that were popped and not published, in pop order, and resume
 * after them.  A model of the ring says which those are.
 *
 * Input: struct fuzz_inflight_hdr, then nr_ops op bytes, then the region
 * (the rest of the region is zero).  Seeds: tests/fuzz/inflight-corpus
 * (fuzz_gen_dev_corpus inflight DIR).
 *
 * Packed rings are tracked too (inflight.c's packed layout), but this
 * harness models split rings only: the FI_PACKED flag is ignored.  Packed
 * recovery needs its own phase 1 rules (wrap counters, the old_* fields,
 * descriptor copies in entries) and a packed model for phase 2; until
 * then it is covered by vhostd-inflight-packed's hostile regions.
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/log.h"
#include "fuzz_inflight.h"
#include "vhost-user/backend_priv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REGION_MAX (FI_MAX_QUEUES * VU_INFLIGHT_STRIDE(FI_MAX_QSIZE))

static uint8_t region[REGION_MAX] __attribute__((aligned(64)));
static uint8_t before[REGION_MAX];
static struct vu_dev dev;
static struct vu_vring vring;
static struct vring_used used_ring; /* only its idx is read */

static void fi_fail(const char *what, int line)
{
	log_error("fuzz_inflight:%d: %s", line, what);
	abort();
}

#define fi_assert(cond)                                                                            \
	do {                                                                                       \
		if (!(cond))                                                                       \
			fi_fail(#cond, __LINE__);                                                  \
	} while (0)

static struct vu_inflight_split *ring_part(const uint8_t *base, unsigned int idx)
{
	return (void *)(base + VU_INFLIGHT_STRIDE(dev.inflight_queue_size) * idx);
}

/* A new back-end's ring start: a fresh vring, as after a restart. */
static int start(uint16_t num, unsigned int idx, uint16_t used, uint16_t *base, char *why)
{
	struct vu_ring_ptrs p = {.device_area = &used_ring};

	free(vring.iq.batch);
	free(vring.iq.resubmit);
	memset(&vring, 0, sizeof(vring));
	vring.num = num;
	vring.q.index = idx;
	snprintf(vring.name, sizeof(vring.name), "fuzz:q%u", idx);
	__atomic_store_n(&used_ring.idx, used, __ATOMIC_RELAXED);
	why[0] = 0;
	return vu_inflight_ring_start(&dev, &vring, &p, base, why, 128);
}

/* ---- phase 2's model of one ring ------------------------------------------------ */

enum head_state { FREE, POPPED, FILLED };

struct model {
	uint16_t num, used;
	uint8_t state[FI_MAX_QSIZE];
	uint64_t order[FI_MAX_QSIZE]; /* pop order: the model's own counter */
	uint64_t next;
	unsigned int nr_filled;
	bool exact_order; /* false if the hostile region's counters tie or wrap */
};

static void model_pop(struct model *m, uint16_t h)
{
	struct virtq_elem e = {.id = h};

	if (m->state[h] != FREE)
		return; /* a driver never reuses a head before its completion */
	fi_assert(vu_inflight_begin(&vring.iq, &e) == 0);
	m->state[h] = POPPED;
	m->order[h] = m->next++;
}

static void model_fill(struct model *m, uint16_t h)
{
	struct virtq_elem e = {.id = h};

	if (m->state[h] != POPPED)
		return;
	vu_inflight_filled(&vring.iq, &e);
	m->state[h] = FILLED;
	m->nr_filled++;
}

/* The used index goes out (virtq_flush); @tell: and the batch is cleared. */
static void model_publish(struct model *m, bool tell)
{
	if (!m->nr_filled)
		return;
	m->used = (uint16_t)(m->used + m->nr_filled);
	m->nr_filled = 0;
	for (unsigned int h = 0; h < m->num; h++) {
		if (m->state[h] == FILLED)
			m->state[h] = FREE;
	}
	if (tell) {
		static struct virtq vq; /* only the index it published is read */

		vq.split.published_used_idx = m->used;
		vu_inflight_published(&vring.iq, &vq);
	}
}

/* ---- the checks ------------------------------------------------------------------ */

/* Phase 1: what an accepted region must look like after recovery. */
static void check_recovered(uint16_t num, unsigned int idx, uint16_t used, uint16_t base0,
			    uint16_t base, struct model *m)
{
	const struct vu_inflight_split *old = ring_part(before, idx);
	const struct vu_inflight_split *r = ring_part(region, idx);
	struct vu_inflight_queue *iq = &vring.iq;
	bool fresh = old->version == 0, seen[FI_MAX_QSIZE] = {0}, wraps = false;
	uint64_t max_counter = 0;

	fi_assert(vring.q.inflight == iq);
	fi_assert(iq->r == r && iq->num == num && iq->used_idx == used);
	fi_assert(r->version == VU_INFLIGHT_VERSION && r->desc_num == num);
	fi_assert(r->used_idx == used && r->features == 0);
	fi_assert(iq->nr_resubmit <= num && iq->nr_batch == 0);
	if (fresh) {
		fi_assert(iq->nr_resubmit == 0 && base == base0);
		for (unsigned int i = 0; i < num; i++)
			fi_assert(r->desc[i].inflight == 0);
	} else {
		fi_assert(base == (uint16_t)(used + iq->nr_resubmit));
	}
	m->exact_order = true;
	for (unsigned int k = 0; k < iq->nr_resubmit; k++) {
		uint16_t h = iq->resubmit[k];

		fi_assert(h < num && !seen[h]);
		seen[h] = true;
		fi_assert(old->desc[h].inflight == 1); /* never invents a request */
		if (k) {
			uint64_t prev = old->desc[iq->resubmit[k - 1]].counter;

			fi_assert(prev <= old->desc[h].counter);
			if (prev == old->desc[h].counter)
				m->exact_order = false;
		}
		if (old->desc[h].counter >= max_counter)
			max_counter = old->desc[h].counter + 1;
		if (old->desc[h].counter >= UINT64_MAX - 2 * FI_MAX_QSIZE)
			wraps = true;
		m->state[h] = POPPED;
		m->order[h] = m->next++;
	}
	/* The region marks in flight exactly what is started again. */
	for (unsigned int i = 0; i < num; i++)
		fi_assert(r->desc[i].inflight == seen[i]);
	/*
	 * Heads marked in flight before and not started again: the published
	 * batch.  (A fresh region's marks are garbage: version 0 says unused.)
	 */
	for (unsigned int i = 0; i < num && !fresh; i++) {
		if (old->desc[i].inflight == 1 && !seen[i])
			fi_assert((uint16_t)(used - old->used_idx) != 0);
	}
	/*
	 * A hostile counter near 2^64 makes the next pops' counters wrap below
	 * the old ones (the order of a later resubmission is then off; the set
	 * is not): nothing to check about the order there.
	 */
	if (wraps)
		m->exact_order = false;
	else
		fi_assert(iq->counter == max_counter);
}

/* Phase 2: after the crash, recovery starts again what the model has in flight. */
static void check_exactly_once(const struct model *m, unsigned int idx)
{
	struct vu_inflight_queue *iq = &vring.iq;
	unsigned int expect = 0;
	uint16_t base = 0xbeef;
	char why[128];
	bool seen[FI_MAX_QSIZE] = {0};

	for (unsigned int h = 0; h < m->num; h++)
		expect += m->state[h] != FREE;
	if (start(m->num, idx, m->used, &base, why)) {
		log_error("fuzz_inflight: a region we wrote ourselves was refused: %s", why);
		abort();
	}
	fi_assert(vring.q.inflight == iq);
	fi_assert(iq->nr_resubmit == expect);
	fi_assert(base == (uint16_t)(m->used + expect));
	for (unsigned int k = 0; k < iq->nr_resubmit; k++) {
		uint16_t h = iq->resubmit[k];

		fi_assert(h < m->num && !seen[h] && m->state[h] != FREE);
		seen[h] = true;
		if (k && m->exact_order)
			fi_assert(m->order[iq->resubmit[k - 1]] < m->order[h]);
	}
}

/*
 * A refused region is left as it was, but for in-flight marks that went
 * from 1 to 0: recovery clears the published batch while it walks it and
 * may find a bad link after a few (those heads were published: clearing
 * them is right whatever comes next).
 */
static void check_refusal_writes(unsigned int idx, size_t region_len)
{
	const struct vu_inflight_split *old = ring_part(before, idx), *r = ring_part(region, idx);
	size_t off = VU_INFLIGHT_STRIDE(dev.inflight_queue_size) * idx;

	if (!memcmp(region, before, region_len))
		return;
	fi_assert(idx < dev.inflight_num_queues);
	fi_assert(!memcmp(region, before, off + sizeof(*old)));
	for (unsigned int i = 0; i < vring.num && i < dev.inflight_queue_size; i++) {
		fi_assert(!memcmp(&r->desc[i].padding, &old->desc[i].padding,
				  sizeof(r->desc[i]) - sizeof(r->desc[i].inflight)));
		fi_assert(r->desc[i].inflight == old->desc[i].inflight ||
			  (old->desc[i].inflight == 1 && r->desc[i].inflight == 0));
	}
	off += sizeof(*old) + sizeof(old->desc[0]) * vring.num;
	fi_assert(!memcmp(region + off, before + off, region_len - off));
}

/* ---- the entry point --------------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct model m;
	struct fuzz_inflight_hdr h;
	const uint8_t *ops;
	unsigned int idx, nr_ops;
	uint16_t num, used, base, base0;
	size_t region_len;
	char why[128];
	int r;

	if (size < sizeof(h))
		return 0;
	if (!dev.name) {
		log_set_level(getenv("FUZZ_VERBOSE") ? LOG_LVL_DEBUG : LOG_LVL_ERROR);
		dev.name = "fuzz";
	}
	memcpy(&h, data, sizeof(h));
	data += sizeof(h);
	size -= sizeof(h);
	nr_ops = h.nr_ops < size ? h.nr_ops : (unsigned int)size;
	ops = data;
	data += nr_ops;
	size -= nr_ops;

	num = (uint16_t)(1 + h.qsize % FI_MAX_QSIZE);
	/* Mostly a region for this ring size; sometimes larger, sometimes too small. */
	dev.inflight_queue_size = (uint16_t)(num + (h.region_qsize & 0x7f) % 32);
	if (h.region_qsize & 0x80)
		dev.inflight_queue_size = (uint16_t)(1 + h.region_qsize % num);
	if (dev.inflight_queue_size > FI_MAX_QSIZE)
		dev.inflight_queue_size = FI_MAX_QSIZE;
	dev.inflight_num_queues = (uint16_t)(1 + h.queues % FI_MAX_QUEUES);
	idx = (h.queues >> 4) % (FI_MAX_QUEUES + 1); /* one past the tracked ones too */
	dev.num_queues = FI_MAX_QUEUES + 1;
	dev.features = 0; /* split: see the top of the file about FI_PACKED */
	dev.protocol_features = h.flags & FI_NO_PROTOCOL_FEATURE
					? 0
					: 1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD;
	region_len = VU_INFLIGHT_STRIDE(dev.inflight_queue_size) * dev.inflight_num_queues;
	dev.inflight_addr = h.flags & FI_NO_REGION ? NULL : region;
	dev.inflight_len = region_len;
	memset(region, 0, region_len);
	memcpy(region, data, size < region_len ? size : region_len);
	memcpy(before, region, region_len);
	used = le16toh(h.used_idx);
	base = base0 = le16toh(h.base);

	/* Phase 1. */
	r = start(num, idx, used, &base, why);
	fi_assert(r == 0 || r == -EINVAL);
	if (r) {
		fi_assert(why[0] && vring.q.inflight == NULL);
		check_refusal_writes(idx, region_len);
		return 0;
	}
	if (!dev.inflight_addr || (h.flags & FI_NO_PROTOCOL_FEATURE) ||
	    idx >= dev.inflight_num_queues) {
		fi_assert(vring.q.inflight == NULL && base == base0);
		fi_assert(!memcmp(region, before, region_len));
		return 0;
	}
	/* Only this ring's part was written. */
	{
		size_t off = VU_INFLIGHT_STRIDE(dev.inflight_queue_size) * idx;
		size_t len = VU_INFLIGHT_STRIDE(dev.inflight_queue_size);

		fi_assert(!memcmp(region, before, off));
		fi_assert(!memcmp(region + off + len, before + off + len,
				  region_len - off - len));
	}
	memset(&m, 0, sizeof(m));
	m.num = num;
	m.used = used;
	check_recovered(num, idx, used, base0, base, &m);

	/* Phase 2: run, then crash. */
	for (unsigned int k = 0; k < nr_ops; k++) {
		uint8_t op = ops[k];
		uint16_t head = (uint16_t)((op >> 2) % num);

		switch (op & 3) {
		case 0:
			model_pop(&m, head);
			break;
		case 1:
			model_fill(&m, head);
			break;
		case 2:
			model_publish(&m, true);
			break;
		default:
			/* Crash between the used index going out and the batch's clearing. */
			if (op & 0x80)
				model_publish(&m, false);
			k = nr_ops;
			break;
		}
	}
	check_exactly_once(&m, idx);
	return 0;
}
