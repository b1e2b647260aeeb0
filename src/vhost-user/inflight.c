// SPDX-License-Identifier: MIT
/*
 * inflight.c - GET_INFLIGHT_FD / SET_INFLIGHT_FD, the recovery of a ring
 * from the in-flight region at its start, and the tracking the engine does
 * while it runs (inflight.h).
 *
 * What a crash may interrupt, and why each point is safe.  A crash (SIGKILL)
 * stops the process between two instructions; every store it executed is
 * in the memfd's pages, which the front-end keeps.  So what must hold is
 * the order of the stores in program order, which the compiler must keep:
 * the fences below (release, also enough on weakly ordered CPUs for a
 * front-end that reads the region live).  For one request, in order:
 *
 *   1. popped (last_avail_idx moved, private): not recorded.  Recovery
 *      resumes at used->idx + (heads in flight), which does not count it,
 *      so the chain is popped again from the avail ring.  Safe because
 *      nothing was started: step 2 comes before the request starts.
 *   2. desc[head].counter, then desc[head].inflight = 1 (release), then a
 *      release fence, then the request is started (back-end I/O).  A
 *      crash after 2: the head is resubmitted, in counter order.  A pop
 *      is recorded at once after it, so only the last popped chain can be
 *      unrecorded, and the resume point above stays exact.
 *   3. the I/O completes; the used entry is written (private: beyond
 *      used->idx) and the head linked into the batch list (desc[h].next =
 *      last_batch_head; last_batch_head = h).  Crash: still in flight,
 *      not published: resubmitted (a write is repeated, never lost; the
 *      driver sees one completion).
 *   4. used->idx is stored (release, virtq_flush): the batch is published.
 *      Crash after it but before 5 and 6: region used_idx != used->idx;
 *      recovery clears the used->idx - used_idx entries of the list from
 *      last_batch_head, so they are not resubmitted (no second completion
 *      of a head the driver may already have reused).  That is why the
 *      links must be visible before used->idx (its release orders them).
 *   5. desc[h].inflight = 0 for the batch (after a release fence: never
 *      before used->idx, or a crash between would lose the request).
 *   6. region used_idx = used->idx (release: after every clear of 5, or a
 *      crash between would leave a published head marked in flight and
 *      make recovery skip the fix-up of 4: a second completion).
 *
 * Packed rings (inflight.h), the same steps with a position instead of
 * used->idx.  C is the committed used position (old_used_idx and
 * old_used_wrap_counter), T the target (used_idx, used_wrap_counter);
 * C == T while no batch is being published.
 *
 *   1. popped: not recorded; recovery resumes popping at C + (slots of the
 *      chains recorded), which does not count it: popped again.
 *   2. the chain's descriptors are copied into free entries and linked,
 *      the head gets num, last and counter, then inflight = 1 (release:
 *      a head marked in flight has its whole chain written), then a
 *      release fence before the I/O starts.
 *   3. the used element is written (id, len; the batch head's flags wait
 *      for the flush) and the head marked inflight = 2.  Crash: C == T,
 *      so recovery takes every 2 back to 1: resubmitted.
 *   4a. T = the used position after the batch (release: after every 2 of
 *      the batch), then the flush's release store of the batch head's
 *      flags publishes the batch.  Crash between 4a and 4b: T != C, and
 *      the descriptor slot at C tells which: its USED bit equals C's wrap
 *      counter once the head's flags are out (also after the driver took
 *      the element and offered the slot again in the next lap), and the
 *      opposite before (it still holds the driver's available flags of
 *      this lap).  Published: every 2 is done (cleared, C = T); not: back
 *      to 1 (T = C first, so a crash in the middle of that leaves a state
 *      recovery reads the same way).
 *   5. every 2 of the batch = 0 and its entries back on the free list
 *      (after a release fence: never before the flags, or a crash between
 *      would lose the request).
 *   6. C = T (idx, then wrap counter, release: after every clear of 5).
 *      A crash inside 6 leaves T != C with no 2 left: recovery completes
 *      it (C = T).  Entries freed in 5 are reused only after 6.
 *
 * Recovery is itself a sequence of stores in that order, so a crash while
 * a ring starts leaves a region the next start reads the same way.  On a
 * packed ring it also takes the used flags of a cut-short batch out of the
 * ring (packed_scrub_unpublished()): the slots after C are not the driver's
 * to read yet, but they would be after the next process's first flush.
 */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend_priv.h"
#include "common/log.h"
#include "inflight.h"

/*
 * Test hook: VHOSTD_TEST_CRASH=POINT:N makes the process SIGKILL itself
 * the N-th time any ring reaches POINT - "popped" (step 1 done, not 2),
 * "started" (step 2 done, the I/O
 * not started), "filled" (step 3 done, not published), "flushing" (a
 * batch about to be published: packed, step 4a done, not 4b), "published"
 * (step 4 done, the batch not cleared), "cleared" (step 5 done, not 6) or
 * "filled-tail" (step 3 done for a request that is not the first of its
 * batch: on a packed ring its slot's used flags are already out) or
 * "clearing" (step 5 begun: one request of a batch of several cleared) - so
 * a test can crash exactly there.  "inflight:N" instead kills it once some
 * ring has N requests recorded in flight (a guest test's kill with many
 * requests in flight, whatever the timing).  Read once, at the first ring
 * start.
 */
enum crash_point {
	CRASH_NONE,
	CRASH_POPPED,
	CRASH_STARTED,
	CRASH_FILLED,
	CRASH_PUBLISHED,
	CRASH_CLEARED,
	CRASH_INFLIGHT,
	CRASH_FLUSHING,
	CRASH_FILLED_TAIL,
	CRASH_CLEARING
};
static enum crash_point crash_at;
static _Atomic long crash_countdown;

static void crash_hook_init(void)
{
	static const char *const names[] = {"",		 "popped",  "started",	"filled",
					    "published", "cleared", "inflight", "flushing",
					    "filled-tail", "clearing"};
	static bool done;
	const char *env = getenv("VHOSTD_TEST_CRASH"), *colon;

	if (done || !env)
		return;
	done = true;
	colon = strchr(env, ':');
	for (unsigned int i = 1; colon && i < sizeof(names) / sizeof(names[0]); i++) {
		if ((size_t)(colon - env) == strlen(names[i]) &&
		    !strncmp(env, names[i], strlen(names[i]))) {
			atomic_store(&crash_countdown, atol(colon + 1));
			crash_at = (enum crash_point)i;
			log_warn("test hook: SIGKILL at in-flight step \"%s\", time %ld", names[i],
				 atol(colon + 1));
		}
	}
}

static inline void crash_hook(enum crash_point p)
{
	if (unlikely(crash_at == p) && atomic_fetch_sub(&crash_countdown, 1) == 1)
		raise(SIGKILL);
}

/* A used entry was written (step 3): "filled", and "filled-tail" past a batch's first. */
static inline void crash_hook_filled(const struct vu_inflight_queue *iq)
{
	crash_hook(CRASH_FILLED);
	if (iq->nr_batch > 1)
		crash_hook(CRASH_FILLED_TAIL);
}

/* Step 5 cleared the @i-th of the batch: "clearing" after the first of several. */
static inline void crash_hook_clearing(const struct vu_inflight_queue *iq, unsigned int i)
{
	if (i == 0 && iq->nr_batch > 1)
		crash_hook(CRASH_CLEARING);
}

/* A request was recorded: "inflight:N" fires at N on one ring. */
static inline void crash_hook_live(struct vu_inflight_queue *iq)
{
	iq->live++;
	if (unlikely(crash_at == CRASH_INFLIGHT) && iq->live >= atomic_load(&crash_countdown)) {
		log_warn("test hook: SIGKILL with %u requests in flight on a ring", iq->live);
		raise(SIGKILL);
	}
}

/* --- while the ring runs (its I/O thread): split --- */

static int split_begin(struct vu_inflight_queue *iq, const struct virtq_elem *e)
{
	struct vu_inflight_split *r = iq->r;
	struct vu_inflight_desc_split *d;

	if (e->id >= iq->num)
		return 0; /* refused by the engine as well */
	d = &r->desc[e->id];
	crash_hook(CRASH_POPPED);
	d->counter = iq->counter++;
	/* Step 2: the counter before the mark, the mark before the I/O. */
	__atomic_store_n(&d->inflight, 1, __ATOMIC_RELEASE);
	atomic_thread_fence(memory_order_release);
	crash_hook(CRASH_STARTED);
	crash_hook_live(iq);
	return 0;
}

static void split_filled(struct vu_inflight_queue *iq, const struct virtq_elem *e)
{
	struct vu_inflight_split *r = iq->r;
	uint16_t head = e->id;

	if (head >= iq->num)
		return;
	/* Step 3: ordered before used->idx by virtq_flush()'s release store. */
	r->desc[head].next = r->last_batch_head;
	r->last_batch_head = head;
	if (iq->nr_batch < iq->num)
		iq->batch[iq->nr_batch++] = head;
	crash_hook_filled(iq);
}

static void split_flushing(struct vu_inflight_queue *iq, const struct virtq *vq)
{
	(void)vq;
	if (iq->nr_batch)
		crash_hook(CRASH_FLUSHING);
}

static void split_published(struct vu_inflight_queue *iq, const struct virtq *vq)
{
	struct vu_inflight_split *r = iq->r;
	uint16_t used_idx = vq->split.published_used_idx;

	/* Nothing published (a broken ring): the batch stays in flight. */
	if (used_idx == iq->used_idx)
		return;
	crash_hook(CRASH_PUBLISHED);
	/* Step 5 after step 4. */
	atomic_thread_fence(memory_order_release);
	for (unsigned int i = 0; i < iq->nr_batch; i++) {
		__atomic_store_n(&r->desc[iq->batch[i]].inflight, 0, __ATOMIC_RELAXED);
		crash_hook_clearing(iq, i);
	}
	iq->live -= iq->nr_batch < iq->live ? iq->nr_batch : iq->live;
	iq->nr_batch = 0;
	crash_hook(CRASH_CLEARED);
	/* Step 6 after step 5. */
	__atomic_store_n(&r->used_idx, used_idx, __ATOMIC_RELEASE);
	iq->used_idx = used_idx;
}

static int split_repop(struct vu_inflight_queue *iq, struct virtq *vq, struct virtq_elem *e,
		       unsigned int i)
{
	return virtq_pop_head(vq, e, iq->resubmit[i]);
}

static const struct vu_inflight_ops split_ops = {
	.begin = split_begin,
	.filled = split_filled,
	.flushing = split_flushing,
	.published = split_published,
	.repop = split_repop,
};

/* --- while the ring runs (its I/O thread): packed --- */

static uint16_t packed_pos(uint16_t idx, bool wrap)
{
	return idx | (uint16_t)wrap << VIRTQ_PACKED_WRAP_BIT;
}

static int packed_begin(struct vu_inflight_queue *iq, const struct virtq_elem *e)
{
	struct vu_inflight_packed *r = iq->r;
	unsigned int n = e->ndescs;
	uint16_t head, ent, prev = VU_INFLIGHT_NONE;

	/*
	 * Entries are only short when more slots are popped and not yet
	 * published than the ring holds: a driver that offered slots it
	 * had not seen used.
	 */
	if (!n || n > iq->nr_free || e->id >= iq->num || !e->descs)
		return -ENOSPC;
	crash_hook(CRASH_POPPED);
	head = iq->free[iq->nr_free - 1];
	for (unsigned int k = 0; k < n; k++) {
		struct vu_inflight_desc_packed *d;

		ent = iq->free[--iq->nr_free];
		d = &r->desc[ent];
		d->addr = e->descs[k].addr;
		d->len = e->descs[k].len;
		d->flags = e->descs[k].flags;
		d->id = e->descs[k].next;
		if (k)
			__atomic_store_n(&d->inflight, 0, __ATOMIC_RELAXED);
		if (prev != VU_INFLIGHT_NONE) {
			r->desc[prev].next = ent;
			iq->link[prev] = ent;
		}
		prev = ent;
	}
	r->desc[head].num = (uint16_t)n;
	r->desc[head].last = prev;
	r->desc[head].counter = iq->counter++;
	iq->chain_len[head] = (uint16_t)n;
	iq->id_entry[e->id] = head;
	/* Step 2: the chain before the mark, the mark before the I/O. */
	__atomic_store_n(&r->desc[head].inflight, 1, __ATOMIC_RELEASE);
	atomic_thread_fence(memory_order_release);
	crash_hook(CRASH_STARTED);
	crash_hook_live(iq);
	return 0;
}

static void packed_filled(struct vu_inflight_queue *iq, const struct virtq_elem *e)
{
	struct vu_inflight_packed *r = iq->r;
	uint16_t head;

	if (e->id >= iq->num || (head = iq->id_entry[e->id]) == VU_INFLIGHT_NONE)
		return; /* never recorded (a refused chain) */
	iq->id_entry[e->id] = VU_INFLIGHT_NONE;
	/* Step 3: ordered before T by packed_flushing()'s release. */
	__atomic_store_n(&r->desc[head].inflight, 2, __ATOMIC_RELAXED);
	if (iq->nr_batch < iq->num)
		iq->batch[iq->nr_batch++] = head;
	crash_hook_filled(iq);
}

static void packed_flushing(struct vu_inflight_queue *iq, const struct virtq *vq)
{
	struct vu_inflight_packed *r = iq->r;

	if (!iq->nr_batch)
		return;
	/* Step 4a: after the batch's 2s, before the flags the flush stores. */
	__atomic_store_n(&r->used_idx, vq->packed.used_idx, __ATOMIC_RELEASE);
	__atomic_store_n(&r->used_wrap_counter, vq->packed.used_wrap, __ATOMIC_RELEASE);
	crash_hook(CRASH_FLUSHING);
}

static void packed_published(struct vu_inflight_queue *iq, const struct virtq *vq)
{
	struct vu_inflight_packed *r = iq->r;
	uint16_t pos = packed_pos(vq->packed.published_used_idx, vq->packed.published_used_wrap);

	/* Nothing published (a broken ring): the batch stays in flight. */
	if (!iq->nr_batch || pos == iq->used_idx)
		return;
	crash_hook(CRASH_PUBLISHED);
	/* Step 5 after step 4b. */
	atomic_thread_fence(memory_order_release);
	for (unsigned int i = 0; i < iq->nr_batch; i++) {
		uint16_t ent = iq->batch[i];

		__atomic_store_n(&r->desc[ent].inflight, 0, __ATOMIC_RELAXED);
		for (unsigned int k = iq->chain_len[ent]; k; k--) {
			iq->free[iq->nr_free++] = ent;
			ent = iq->link[ent];
		}
		crash_hook_clearing(iq, i);
	}
	iq->live -= iq->nr_batch < iq->live ? iq->nr_batch : iq->live;
	iq->nr_batch = 0;
	crash_hook(CRASH_CLEARED);
	/* Step 6 after step 5: the index first, so T != C until both are out. */
	atomic_thread_fence(memory_order_release);
	__atomic_store_n(&r->old_used_idx, vq->packed.published_used_idx, __ATOMIC_RELAXED);
	__atomic_store_n(&r->old_used_wrap_counter, vq->packed.published_used_wrap,
			 __ATOMIC_RELEASE);
	iq->used_idx = pos;
}

static int packed_repop(struct vu_inflight_queue *iq, struct virtq *vq, struct virtq_elem *e,
			unsigned int i)
{
	uint16_t head = iq->resubmit[i];
	int r;

	r = virtq_pop_saved(vq, e, &iq->saved[iq->saved_off[head]], iq->chain_len[head]);
	if (r > 0)
		iq->id_entry[e->id] = head;
	return r;
}

static const struct vu_inflight_ops packed_ops = {
	.begin = packed_begin,
	.filled = packed_filled,
	.flushing = packed_flushing,
	.published = packed_published,
	.repop = packed_repop,
};

/* --- the messages (loop thread) --- */

static void inflight_queue_free(struct vu_inflight_queue *iq)
{
	free(iq->batch);
	free(iq->resubmit);
	free(iq->descs);
	free(iq->free);
	free(iq->link);
	free(iq->chain_len);
	free(iq->id_entry);
	free(iq->saved);
	free(iq->saved_off);
	memset(iq, 0, sizeof(*iq));
}

void vu_inflight_drop(struct vu_dev *dev)
{
	for (unsigned int i = 0; i < dev->num_queues; i++) {
		struct vu_inflight_queue *iq = &dev->vrings[i].iq;

		inflight_queue_free(iq);
		dev->vrings[i].q.inflight = NULL;
	}
	if (dev->inflight_addr)
		munmap(dev->inflight_addr, dev->inflight_len);
	dev->inflight_addr = NULL;
	dev->inflight_len = 0;
	dev->inflight_num_queues = 0;
	dev->inflight_queue_size = 0;
}

/* The region for @num_queues rings of @queue_size, or 0 if the request is out of range. */
static uint64_t inflight_size(const struct vu_dev *dev, uint16_t num_queues, uint16_t queue_size)
{
	if (!num_queues || num_queues > dev->num_queues || !queue_size ||
	    queue_size > VIRTQ_MAX_SIZE)
		return 0;
	return VU_INFLIGHT_STRIDE(queue_size) * num_queues;
}

enum vu_result vu_get_inflight_fd(struct vu_dev *dev, struct vhost_user_msg *msg, int *fds,
				  unsigned int nfds)
{
	struct vhost_user_inflight in = {0};
	uint64_t size;
	int fd;

	(void)fds;
	(void)nfds;
	memcpy(&in, &msg->payload, msg->hdr.size < sizeof(in) ? msg->hdr.size : sizeof(in));
	size = inflight_size(dev, in.num_queues, in.queue_size);
	if (!size)
		return vu_reject(dev, msg, "%u queues of %u entries", in.num_queues, in.queue_size);
	fd = memfd_create("vhostd-inflight", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		log_error("%s: GET_INFLIGHT_FD: cannot make the region: %s", dev->name,
			  strerror(errno));
		if (fd >= 0)
			close(fd);
		msg->hdr.size = 0; /* QEMU reads a short reply as a failure */
		return VU_OK;
	}
	/* Zero-filled: every ring's version is 0, initialised at its first start. */
	msg->payload.inflight = (struct vhost_user_inflight){
		.mmap_size = size,
		.mmap_offset = 0,
		.num_queues = in.num_queues,
		.queue_size = in.queue_size,
	};
	msg->hdr.size = sizeof(msg->payload.inflight);
	dev->reply_fd = fd; /* sent with the reply, then closed */
	return VU_OK;
}

enum vu_result vu_set_inflight_fd(struct vu_dev *dev, struct vhost_user_msg *msg, int *fds,
				  unsigned int nfds)
{
	struct vhost_user_inflight in = {0};
	uint64_t size;
	struct stat st;
	void *addr;
	int seals;

	(void)nfds;
	memcpy(&in, &msg->payload, msg->hdr.size < sizeof(in) ? msg->hdr.size : sizeof(in));
	size = inflight_size(dev, in.num_queues, in.queue_size);
	if (!size || in.mmap_size < size || in.mmap_size > SIZE_MAX ||
	    in.mmap_offset % (uint64_t)sysconf(_SC_PAGESIZE))
		return vu_reject(dev, msg, "region of %llu bytes at %llu for %u queues of %u",
				 (unsigned long long)in.mmap_size,
				 (unsigned long long)in.mmap_offset, in.num_queues, in.queue_size);
	/*
	 * A file that can shrink under us would SIGBUS the I/O threads: only
	 * a sealed one (ours from GET_INFLIGHT_FD is), big enough.
	 */
	seals = fcntl(fds[0], F_GET_SEALS);
	if (seals < 0 || !(seals & F_SEAL_SHRINK) || fstat(fds[0], &st) < 0 ||
	    (uint64_t)st.st_size < in.mmap_offset ||
	    (uint64_t)st.st_size - in.mmap_offset < in.mmap_size)
		return vu_reject(dev, msg,
				 "the region's file is not sealed against shrinking "
				 "or too small");
	addr = mmap(NULL, in.mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0],
		    (off_t)in.mmap_offset);
	if (addr == MAP_FAILED) {
		log_error("%s: SET_INFLIGHT_FD: mmap: %s", dev->name, strerror(errno));
		return VU_NACK;
	}
	vu_inflight_drop(dev); /* every ring is stopped (VU_MSG_STOP_ALL) */
	dev->inflight_addr = addr;
	dev->inflight_len = in.mmap_size;
	dev->inflight_num_queues = in.num_queues;
	dev->inflight_queue_size = in.queue_size;
	log_info("%s: in-flight region set (%u queues of %u entries)", dev->name, in.num_queues,
		 in.queue_size);
	return VU_OK;
}

/* --- ring start (loop thread, the ring stopped) --- */

static int by_counter_split(const void *a, const void *b, void *arg)
{
	const struct vu_inflight_desc_split *d = arg;
	uint64_t ca = d[*(const uint16_t *)a].counter, cb = d[*(const uint16_t *)b].counter;

	return ca < cb ? -1 : ca > cb;
}

static int by_counter_packed(const void *a, const void *b, void *arg)
{
	const struct vu_inflight_desc_packed *d = arg;
	uint64_t ca = d[*(const uint16_t *)a].counter, cb = d[*(const uint16_t *)b].counter;

	return ca < cb ? -1 : ca > cb;
}

/* Split: recover from @r (a copy checked, the region fixed); 1 fresh, 0, -EINVAL. */
static int split_start(struct vu_vring *vr, struct vu_inflight_queue *iq,
		       struct vu_inflight_split *r, const struct vu_ring_ptrs *p, uint16_t *base,
		       char *why, size_t why_len)
{
	unsigned int num = vr->num, inuse = 0;
	struct vu_inflight_desc_split *copy;
	struct vu_inflight_split hdr;
	uint64_t max_counter = 0;
	uint16_t used, diff;

	/* used->idx: guest memory, read once. */
	used = __atomic_load_n(&((struct vring_used *)p->device_area)->idx, __ATOMIC_ACQUIRE);
	copy = malloc(sizeof(*copy) * num);
	if (!copy) {
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
	}
	/* The front-end shares it: copy once, check the copy, use the copy. */
	memcpy(&hdr, r, sizeof(hdr));
	memcpy(copy, r->desc, sizeof(*copy) * num);

	if (hdr.version == 0) {
		/* A fresh region (GET_INFLIGHT_FD zeroes it): nothing was in flight. */
		memset(r, 0, sizeof(*r) + sizeof(*copy) * num);
		r->desc_num = (uint16_t)num;
		r->used_idx = used;
		__atomic_store_n(&r->version, VU_INFLIGHT_VERSION, __ATOMIC_RELEASE);
		iq->used_idx = used;
		iq->ops = &split_ops;
		free(copy);
		return 1;
	}
	if (hdr.version != VU_INFLIGHT_VERSION || hdr.features || hdr.desc_num != num) {
		snprintf(why, why_len, "in-flight region: version %u, features %#llx, %u entries",
			 hdr.version, (unsigned long long)hdr.features, hdr.desc_num);
		goto bad;
	}
	for (unsigned int i = 0; i < num; i++) {
		if (copy[i].inflight > 1) {
			snprintf(why, why_len, "in-flight region: entry %u is %u", i,
				 copy[i].inflight);
			goto bad;
		}
		inuse += copy[i].inflight;
	}

	/*
	 * Step 4 of inflight.c's top was done, 5 and 6 maybe not: the last
	 * batch (diff heads, linked from last_batch_head) is published, so
	 * it is not in flight any more.  With nothing in flight at all the
	 * ring was drained (or reset by the driver): just take its index.
	 */
	diff = (uint16_t)(used - hdr.used_idx);
	if (diff && inuse) {
		uint16_t h = hdr.last_batch_head;

		if (diff > num) {
			snprintf(why, why_len, "in-flight region: used_idx %u, used ring %u",
				 hdr.used_idx, used);
			goto bad;
		}
		for (unsigned int k = 0; k < diff; k++) {
			if (h >= num) {
				snprintf(why, why_len, "in-flight region: batch link %u", h);
				goto bad;
			}
			if (copy[h].inflight) {
				copy[h].inflight = 0;
				inuse--;
				__atomic_store_n(&r->desc[h].inflight, 0, __ATOMIC_RELAXED);
			}
			h = copy[h].next;
		}
		log_info("%s: the last %u completion(s) were published before the crash: "
			 "not started again",
			 vr->name, diff);
	}
	atomic_thread_fence(memory_order_release);
	__atomic_store_n(&r->used_idx, used, __ATOMIC_RELEASE);

	for (unsigned int i = 0; i < num; i++) {
		if (!copy[i].inflight)
			continue;
		iq->resubmit[iq->nr_resubmit++] = (uint16_t)i;
		if (copy[i].counter >= max_counter)
			max_counter = copy[i].counter + 1;
	}
	qsort_r(iq->resubmit, iq->nr_resubmit, sizeof(*iq->resubmit), by_counter_split, copy);
	free(copy);
	iq->counter = max_counter;
	iq->used_idx = used;
	/*
	 * Every chain popped is published or in flight: resume after them.
	 * (A front-end that lost its back-end says used->idx, QEMU's guess.)
	 */
	*base = (uint16_t)(used + iq->nr_resubmit);
	iq->ops = &split_ops;
	return 0;
bad:
	free(copy);
	return -EINVAL;
}

/* @idx/@wrap stepped by @n slots (n <= num). */
static void packed_step(unsigned int num, uint16_t *idx, bool *wrap, unsigned int n)
{
	unsigned int next = *idx + n;

	if (next >= num) {
		next -= num;
		*wrap = !*wrap;
	}
	*idx = (uint16_t)next;
}

/*
 * The slots from the used position C to the resume point A were popped and
 * their completions never published.  But a batch cut short by the crash
 * may have left used flags in them: fill writes every slot's flags but the
 * batch head's before the flush.  The driver cannot see those while C is
 * not used, but the first batch the new process publishes exposes the
 * slot after it, and its stale flags and id would complete a request twice
 * (or one never started).  So every slot in [C, A) gets the flags the
 * driver gave it for this lap: available, not used.  The driver does not
 * write these slots (they are outstanding to it) and the new process pops
 * from A on, so nobody else touches them.
 */
static void packed_scrub_unpublished(struct vring_packed_desc *ring, unsigned int num,
				     uint16_t c_idx, bool c_wrap, uint16_t a_idx, bool a_wrap)
{
	while (c_idx != a_idx || c_wrap != a_wrap) {
		uint16_t flags = vq_read16(&ring[c_idx].flags);

		flags &= (uint16_t)~(VRING_PACKED_DESC_F_AVAIL | VRING_PACKED_DESC_F_USED);
		flags |= c_wrap ? VRING_PACKED_DESC_F_AVAIL : VRING_PACKED_DESC_F_USED;
		vq_write16(&ring[c_idx].flags, flags);
		packed_step(num, &c_idx, &c_wrap, 1);
	}
	/* Before any used element of the new process (its flush releases). */
	atomic_thread_fence(memory_order_release);
}

static int packed_alloc(struct vu_inflight_queue *iq, unsigned int num)
{
	iq->descs = calloc(num, sizeof(*iq->descs));
	iq->free = calloc(num, sizeof(*iq->free));
	iq->link = calloc(num, sizeof(*iq->link));
	iq->chain_len = calloc(num, sizeof(*iq->chain_len));
	iq->id_entry = malloc(num * sizeof(*iq->id_entry));
	iq->saved = calloc(num, sizeof(*iq->saved));
	iq->saved_off = calloc(num, sizeof(*iq->saved_off));
	if (!iq->descs || !iq->free || !iq->link || !iq->chain_len || !iq->id_entry || !iq->saved ||
	    !iq->saved_off)
		return -ENOMEM;
	memset(iq->id_entry, 0xff, num * sizeof(*iq->id_entry));
	return 0;
}

/*
 * Packed: recover from @r (inflight.c's top, packed steps).  Sets *@base
 * (where popping resumes) and iq->used_idx (where using does).  1 fresh,
 * 0, -EINVAL (why says what was wrong) or -ENOMEM.
 */
static int packed_start(struct vu_vring *vr, struct vu_inflight_queue *iq,
			struct vu_inflight_packed *r, const struct vu_ring_ptrs *p, uint16_t *base,
			char *why, size_t why_len)
{
	unsigned int num = vr->num, n2 = 0, slots = 0, nsaved = 0, done = 0;
	struct vu_inflight_desc_packed *copy;
	struct vu_inflight_packed hdr;
	uint16_t c_idx, t_idx, a_idx;
	bool c_wrap, t_wrap, a_wrap;
	uint64_t max_counter = 0;
	uint8_t *claimed = NULL;
	int ret = -EINVAL;

	if (packed_alloc(iq, num))
		goto nomem;
	copy = malloc(sizeof(*copy) * num);
	claimed = calloc(num, 1);
	if (!copy || !claimed) {
		free(copy);
		goto nomem;
	}
	/* The front-end shares it: copy once, check the copy, use the copy. */
	memcpy(&hdr, r, sizeof(hdr));
	memcpy(copy, r->desc, sizeof(*copy) * num);

	if (hdr.version == 0) {
		/* A fresh region: nothing was in flight, the base is right. */
		uint16_t idx = *base & ((1u << VIRTQ_PACKED_WRAP_BIT) - 1);
		bool wrap = *base >> VIRTQ_PACKED_WRAP_BIT;

		memset(r, 0, sizeof(*r) + sizeof(*copy) * num);
		r->desc_num = (uint16_t)num;
		r->used_idx = r->old_used_idx = idx;
		r->used_wrap_counter = r->old_used_wrap_counter = wrap;
		__atomic_store_n(&r->version, VU_INFLIGHT_VERSION, __ATOMIC_RELEASE);
		for (unsigned int i = num; i; i--)
			iq->free[iq->nr_free++] = (uint16_t)(i - 1);
		iq->used_idx = *base;
		ret = 1;
		goto out;
	}
	if (hdr.version != VU_INFLIGHT_VERSION || hdr.features || hdr.desc_num != num ||
	    hdr.used_idx >= num || hdr.old_used_idx >= num || hdr.used_wrap_counter > 1 ||
	    hdr.old_used_wrap_counter > 1) {
		snprintf(why, why_len,
			 "in-flight region: version %u, features %#llx, %u entries, "
			 "used %u/%u, wrap %u/%u",
			 hdr.version, (unsigned long long)hdr.features, hdr.desc_num,
			 hdr.old_used_idx, hdr.used_idx, hdr.old_used_wrap_counter,
			 hdr.used_wrap_counter);
		goto out;
	}
	c_idx = hdr.old_used_idx;
	c_wrap = hdr.old_used_wrap_counter;
	t_idx = hdr.used_idx;
	t_wrap = hdr.used_wrap_counter;

	/* Every chain in flight: whole, inside the table, no entry twice. */
	for (unsigned int h = 0; h < num; h++) {
		unsigned int n = copy[h].num, e = h;

		if (copy[h].inflight > 2) {
			snprintf(why, why_len, "in-flight region: entry %u is %u", h,
				 copy[h].inflight);
			goto out;
		}
		if (!copy[h].inflight)
			continue;
		if (!n || n > num) {
			snprintf(why, why_len, "in-flight region: entry %u holds %u", h, n);
			goto out;
		}
		iq->saved_off[h] = (uint16_t)nsaved;
		iq->chain_len[h] = (uint16_t)n;
		for (unsigned int k = 0; k < n; k++) {
			if (e >= num || claimed[e] || nsaved >= num) {
				snprintf(why, why_len, "in-flight region: chain at entry %u", h);
				goto out;
			}
			claimed[e] = 1;
			iq->saved[nsaved++] = (struct virtq_desc_copy){
				.addr = copy[e].addr,
				.len = copy[e].len,
				.flags = copy[e].flags,
				.next = copy[e].id,
			};
			if (k + 1 < n) {
				iq->link[e] = copy[e].next;
				e = copy[e].next;
			}
		}
		if (copy[h].last != e) {
			snprintf(why, why_len, "in-flight region: chain at entry %u", h);
			goto out;
		}
		if (copy[h].inflight == 2) {
			n2++;
			slots += n;
		}
	}

	if (c_idx != t_idx || c_wrap != t_wrap) {
		bool published = true;

		/*
		 * A batch was being published (steps 4a to 6).  With 2s left,
		 * the flags of the slot at C say whether the flush happened:
		 * guest memory, read once.
		 */
		if (n2) {
			const struct vring_packed_desc *ring = p->desc;
			uint16_t flags = vq_load_acquire16(&ring[c_idx].flags);
			unsigned int dist = (t_idx + num - c_idx) % num;

			published = !!(flags & VRING_PACKED_DESC_F_USED) == c_wrap;
			/*
			 * Not published: every 2 of the batch is left and T is
			 * C plus its slots, but maybe with the wrap counter of
			 * before (4a stores the index first); T goes back to C
			 * anyway.  Published: step 5 may have cleared some of
			 * them already, so they cover at most the batch.
			 */
			if (published ? slots > (dist ? dist : num) : dist != slots % num) {
				snprintf(why, why_len,
					 "in-flight region: used %u/%u, wrap %u/%u, batch of %u",
					 c_idx, t_idx, c_wrap, t_wrap, slots);
				goto out;
			}
		}
		if (published) {
			/* Steps 5 and 6 again. */
			for (unsigned int h = 0; h < num; h++) {
				if (copy[h].inflight != 2)
					continue;
				copy[h].inflight = 0;
				__atomic_store_n(&r->desc[h].inflight, 0, __ATOMIC_RELAXED);
				done++;
			}
			atomic_thread_fence(memory_order_release);
			__atomic_store_n(&r->old_used_idx, t_idx, __ATOMIC_RELAXED);
			__atomic_store_n(&r->old_used_wrap_counter, t_wrap, __ATOMIC_RELEASE);
			c_idx = t_idx;
			c_wrap = t_wrap;
			if (done)
				log_info("%s: the last %u completion(s) were published before "
					 "the crash: not started again",
					 vr->name, done);
		} else {
			/* Undo 4a first: T == C makes the 2s plain "not published". */
			__atomic_store_n(&r->used_idx, c_idx, __ATOMIC_RELAXED);
			__atomic_store_n(&r->used_wrap_counter, c_wrap, __ATOMIC_RELEASE);
			log_info("%s: a batch of %u completion(s) was not published before the "
				 "crash: started again",
				 vr->name, n2);
		}
	}
	/* What is left marked 2 was written to the ring but never published. */
	for (unsigned int h = 0; h < num; h++) {
		if (copy[h].inflight != 2)
			continue;
		copy[h].inflight = 1;
		__atomic_store_n(&r->desc[h].inflight, 1, __ATOMIC_RELAXED);
	}
	atomic_thread_fence(memory_order_release);

	/* Start again what is in flight, in pop order; resume popping after it. */
	a_idx = c_idx;
	a_wrap = c_wrap;
	memset(claimed, 0, num);
	for (unsigned int h = 0; h < num; h++) {
		uint16_t e = (uint16_t)h;

		if (copy[h].inflight != 1)
			continue;
		iq->resubmit[iq->nr_resubmit++] = (uint16_t)h;
		for (unsigned int k = 0; k < copy[h].num; k++) {
			claimed[e] = 1;
			e = iq->link[e];
		}
		packed_step(num, &a_idx, &a_wrap, copy[h].num);
		if (copy[h].counter >= max_counter)
			max_counter = copy[h].counter + 1;
	}
	qsort_r(iq->resubmit, iq->nr_resubmit, sizeof(*iq->resubmit), by_counter_packed, copy);
	packed_scrub_unpublished(p->desc, num, c_idx, c_wrap, a_idx, a_wrap);
	for (unsigned int i = num; i; i--) {
		if (!claimed[i - 1])
			iq->free[iq->nr_free++] = (uint16_t)(i - 1);
	}
	iq->counter = max_counter;
	iq->used_idx = packed_pos(c_idx, c_wrap);
	if (*base != packed_pos(a_idx, a_wrap))
		log_info("%s: resuming at slot %u wrap %u, used slot %u wrap %u "
			 "(the front-end said %u wrap %u)",
			 vr->name, a_idx, a_wrap, c_idx, c_wrap,
			 *base & ((1u << VIRTQ_PACKED_WRAP_BIT) - 1),
			 *base >> VIRTQ_PACKED_WRAP_BIT);
	*base = packed_pos(a_idx, a_wrap);
	ret = 0;
out:
	if (ret >= 0)
		iq->ops = &packed_ops;
	free(copy);
	free(claimed);
	return ret;
nomem:
	free(claimed);
	snprintf(why, why_len, "out of memory");
	return -ENOMEM;
}

int vu_inflight_ring_start(struct vu_dev *dev, struct vu_vring *vr, const struct vu_ring_ptrs *p,
			   uint16_t *base, char *why, size_t why_len)
{
	struct vu_inflight_queue *iq = &vr->iq;
	unsigned int idx = vr->q.index, num = vr->num;
	void *r;
	int ret;

	vr->q.inflight = NULL;
	inflight_queue_free(iq);
	crash_hook_init();
	if (!dev->inflight_addr ||
	    !vu_has_protocol_feature(dev, VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD))
		return 0;
	if (idx >= dev->inflight_num_queues)
		return 0; /* the front-end tracks fewer rings than it runs */
	if (num > dev->inflight_queue_size) {
		snprintf(why, why_len, "ring of %u entries, in-flight region for %u", num,
			 dev->inflight_queue_size);
		return -EINVAL;
	}
	r = (char *)dev->inflight_addr + VU_INFLIGHT_STRIDE(dev->inflight_queue_size) * idx;
	iq->batch = calloc(num, sizeof(*iq->batch));
	iq->resubmit = calloc(num, sizeof(*iq->resubmit));
	if (!iq->batch || !iq->resubmit) {
		snprintf(why, why_len, "out of memory");
		ret = -ENOMEM;
	} else if (vu_has_feature(dev, VIRTIO_F_RING_PACKED)) {
		ret = packed_start(vr, iq, r, p, base, why, why_len);
	} else {
		ret = split_start(vr, iq, r, p, base, why, why_len);
	}
	if (ret < 0) {
		inflight_queue_free(iq);
		return ret;
	}
	iq->r = r;
	iq->num = (uint16_t)num;
	iq->live = iq->nr_resubmit;
	iq->recovered = ret == 0;
	if (iq->nr_resubmit)
		log_info("%s: %u request(s) were in flight: started again", vr->name,
			 iq->nr_resubmit);
	vr->q.inflight = iq;
	return 0;
}
