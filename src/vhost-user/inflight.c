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
 * not started), "filled" (step 3 done, not published), "published" (step
 * 4 done, the batch not cleared) or "cleared" (step 5 done, not 6) - so a
 * test can crash exactly there.  Read once, at the first ring start.
 */
enum crash_point {
	CRASH_NONE,
	CRASH_POPPED,
	CRASH_STARTED,
	CRASH_FILLED,
	CRASH_PUBLISHED,
	CRASH_CLEARED
};
static enum crash_point crash_at;
static _Atomic long crash_countdown;

static void crash_hook_init(void)
{
	static const char *const names[] = {"",	      "popped",	   "started",
					    "filled", "published", "cleared"};
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

/* --- while the ring runs (its I/O thread) --- */

void vu_inflight_begin(struct vu_inflight_queue *iq, uint16_t head)
{
	struct vu_inflight_desc_split *d = &iq->r->desc[head];

	crash_hook(CRASH_POPPED);
	d->counter = iq->counter++;
	/* Step 2: the counter before the mark, the mark before the I/O. */
	__atomic_store_n(&d->inflight, 1, __ATOMIC_RELEASE);
	atomic_thread_fence(memory_order_release);
	crash_hook(CRASH_STARTED);
}

void vu_inflight_filled(struct vu_inflight_queue *iq, uint16_t head)
{
	struct vu_inflight_split *r = iq->r;

	/* Step 3: ordered before used->idx by virtq_flush()'s release store. */
	r->desc[head].next = r->last_batch_head;
	r->last_batch_head = head;
	if (iq->nr_batch < iq->num)
		iq->batch[iq->nr_batch++] = head;
	crash_hook(CRASH_FILLED);
}

void vu_inflight_published(struct vu_inflight_queue *iq, uint16_t used_idx)
{
	struct vu_inflight_split *r = iq->r;

	/* Nothing published (a broken ring): the batch stays in flight. */
	if (used_idx == iq->used_idx)
		return;
	crash_hook(CRASH_PUBLISHED);
	/* Step 5 after step 4. */
	atomic_thread_fence(memory_order_release);
	for (unsigned int i = 0; i < iq->nr_batch; i++)
		__atomic_store_n(&r->desc[iq->batch[i]].inflight, 0, __ATOMIC_RELAXED);
	iq->nr_batch = 0;
	crash_hook(CRASH_CLEARED);
	/* Step 6 after step 5. */
	__atomic_store_n(&r->used_idx, used_idx, __ATOMIC_RELEASE);
	iq->used_idx = used_idx;
}

/* --- the messages (loop thread) --- */

void vu_inflight_drop(struct vu_dev *dev)
{
	for (unsigned int i = 0; i < dev->num_queues; i++) {
		struct vu_inflight_queue *iq = &dev->vrings[i].iq;

		free(iq->batch);
		free(iq->resubmit);
		memset(iq, 0, sizeof(*iq));
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

static int by_counter(const void *a, const void *b, void *arg)
{
	const struct vu_inflight_desc_split *d = arg;
	uint64_t ca = d[*(const uint16_t *)a].counter, cb = d[*(const uint16_t *)b].counter;

	return ca < cb ? -1 : ca > cb;
}

int vu_inflight_ring_start(struct vu_dev *dev, struct vu_vring *vr, void *device_area,
			   uint16_t *base, char *why, size_t why_len)
{
	struct vu_inflight_queue *iq = &vr->iq;
	unsigned int idx = vr->q.index, num = vr->num, inuse = 0;
	struct vu_inflight_desc_split *copy = NULL;
	struct vu_inflight_split *r, hdr;
	uint16_t used, diff;
	uint64_t max_counter = 0;
	bool fresh = false;

	vr->q.inflight = NULL;
	iq->nr_resubmit = iq->nr_batch = 0;
	crash_hook_init();
	if (!dev->inflight_addr ||
	    !vu_has_protocol_feature(dev, VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD))
		return 0;
	if (idx >= dev->inflight_num_queues)
		return 0; /* the front-end tracks fewer rings than it runs */
	if (vu_has_feature(dev, VIRTIO_F_RING_PACKED)) {
		log_warn("%s: in-flight tracking covers split rings only: not tracked", vr->name);
		return 0;
	}
	if (num > dev->inflight_queue_size) {
		snprintf(why, why_len, "ring of %u entries, in-flight region for %u", num,
			 dev->inflight_queue_size);
		return -EINVAL;
	}
	r = (void *)((char *)dev->inflight_addr +
		     VU_INFLIGHT_STRIDE(dev->inflight_queue_size) * idx);
	/* used->idx: guest memory, read once. */
	used = __atomic_load_n(&((struct vring_used *)device_area)->idx, __ATOMIC_ACQUIRE);

	free(iq->batch);
	free(iq->resubmit);
	iq->batch = calloc(num, sizeof(*iq->batch));
	iq->resubmit = calloc(num, sizeof(*iq->resubmit));
	copy = malloc(sizeof(*copy) * num);
	if (!iq->batch || !iq->resubmit || !copy) {
		free(copy);
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
		fresh = true;
		goto done;
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
	qsort_r(iq->resubmit, iq->nr_resubmit, sizeof(*iq->resubmit), by_counter, copy);
	if (iq->nr_resubmit)
		log_info("%s: %u request(s) were in flight: started again", vr->name,
			 iq->nr_resubmit);
done:
	free(copy);
	iq->r = r;
	iq->num = (uint16_t)num;
	iq->counter = max_counter;
	iq->used_idx = used;
	/*
	 * Every chain popped is published or in flight: resume after them.
	 * (A front-end that lost its back-end says used->idx, QEMU's guess.)
	 * A fresh region knows nothing: keep the front-end's base.
	 */
	if (!fresh)
		*base = (uint16_t)(used + iq->nr_resubmit);
	vr->q.inflight = iq;
	return 0;
bad:
	free(copy);
	return -EINVAL;
}
