// SPDX-License-Identifier: MIT
/*
 * fuzz_virtq_pop.c - libFuzzer harness for the device-side chain walker.
 *
 * The input is a whole ring plus the guest memory around it (fuzz_ring.h).
 * We pop until the ring is empty or refused, touch every byte of every
 * iovec we were given (reading the readable ones, writing the writable
 * ones), complete everything in some order with fill/flush, and check:
 *
 *   - a popped element is consistent (counts within max_iov, lengths add
 *     up, id in range) and each iovec lies inside a mapped region;
 *   - a refusal is -EIO with the queue broken and a named reason;
 *   - nothing outside the regions was written (canaries) or touched at all
 *     (guard pages, and ASan for everything else).
 *
 * Any violation aborts, which libFuzzer (or the standalone driver) reports.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "fuzz_ring.h"
#include "ring_fixture.h"
#include "test_util.h"

struct fuzz_slot {
	struct virtq_elem elem;
	struct iovec iov[FUZZ_MAX_IOV];
};

static struct ring_fixture fix;
static struct fuzz_slot slots[FUZZ_MAX_NUM + 1];

#define fuzz_assert(cond)                                                                          \
	do {                                                                                       \
		if (!(cond))                                                                       \
			fuzz_fail(#cond, __LINE__);                                                \
	} while (0)

static void fuzz_fail(const char *what, int line)
{
	log_error("fuzz_virtq_pop:%d: %s", line, what);
	abort();
}

static bool inside(const void *p, size_t len, const uint8_t *start, size_t size)
{
	const uint8_t *b = p;

	return b >= start && len <= size && (size_t)(b - start) <= size - len;
}

static void compact(struct vring_desc *d, uint8_t flags)
{
	/* Split and packed descriptors both start with addr, then len. */
	if (flags & FUZZ_F_COMPACT_ADDR)
		vq_write64(&d->addr, FIX_GPA_A + (vq_read64(&d->addr) & 0x3fff));
	if (flags & FUZZ_F_COMPACT_LEN)
		vq_write32(&d->len, vq_read32(&d->len) & 0x1fff);
}

/* Pull every descriptor-shaped slot of A towards valid addresses. */
static void compact_all(uint16_t num, uint8_t flags)
{
	size_t ring = fixture_ring_bytes(flags & FUZZ_F_PACKED, num);

	for (uint16_t i = 0; i < num; i++)
		compact((struct vring_desc *)fix.a + i, flags);
	for (size_t off = vring_align(ring, 16); off + 16 <= FUZZ_A_SIZE; off += 16)
		compact((struct vring_desc *)(fix.a + off), flags);
}

/* Each iovec must be wholly inside one region the queue's map holds. */
static void check_elem(const struct virtq_elem *e, uint16_t num, unsigned int max_iov,
		       bool region_b)
{
	uint64_t out = 0, in = 0;

	fuzz_assert(e->out_num + e->in_num <= max_iov);
	fuzz_assert(e->id < num);
	fuzz_assert(e->ndescs >= 1 && e->ndescs <= num);
	for (unsigned int i = 0; i < e->out_num + e->in_num; i++) {
		const struct iovec *v = &e->iov[i];

		fuzz_assert(inside(v->iov_base, v->iov_len, fix.a, fix.a_size) ||
			    (region_b && inside(v->iov_base, v->iov_len, fix.b, fix.b_size)));
		if (i < e->out_num)
			out += v->iov_len;
		else
			in += v->iov_len;
	}
	fuzz_assert(out == e->out_len);
	fuzz_assert(in == e->in_len);
}

/*
 * Read what we may read, write what we may write: a bad iovec faults here.
 * memcpy rather than a byte loop: ASan checks the whole range just the
 * same, and the loop (instrumented for coverage) cost more than the walker.
 */
static void touch(const struct virtq_elem *e, uint32_t written)
{
	static uint8_t sink[4096];

	for (unsigned int i = 0; i < e->out_num; i++) {
		const uint8_t *p = e->iov[i].iov_base;

		for (size_t k = 0, n; k < e->iov[i].iov_len; k += n) {
			n = e->iov[i].iov_len - k < sizeof(sink) ? e->iov[i].iov_len - k
								 : sizeof(sink);
			memcpy(sink, p + k, n);
			/* The copy is "used": the compiler may not drop it. */
			__asm__ volatile("" : : "r"(sink) : "memory");
		}
	}
	for (unsigned int i = e->out_num; i < e->out_num + e->in_num && written; i++) {
		size_t n = e->iov[i].iov_len < written ? e->iov[i].iov_len : written;

		memset(e->iov[i].iov_base, 0xa5, n);
		written -= (uint32_t)n;
	}
}

static uint32_t fill_len(const struct fuzz_hdr *h, unsigned int i, uint32_t in_len)
{
	uint8_t f = h->fill[i % sizeof(h->fill)];

	return f == 0xff ? in_len : (uint32_t)((uint64_t)in_len * f / 256);
}

static void complete(const struct fuzz_hdr *h, unsigned int i)
{
	struct virtq_elem *e = &slots[i].elem;
	uint32_t len = fill_len(h, i, e->in_len);

	touch(e, len);
	virtq_fill(&fix.vq, e, len);
}

/* Complete popped elements [0, n) in the order the header asks for. */
static void complete_all(const struct fuzz_hdr *h, unsigned int n)
{
	unsigned int order[FUZZ_MAX_NUM + 1];

	for (unsigned int i = 0; i < n; i++)
		order[i] = h->order == 1 ? n - 1 - i : i;
	if (h->order > 1) {
		uint64_t x = h->order;

		for (unsigned int i = n; i > 1; i--) {
			unsigned int j, t;

			x = x * 6364136223846793005ull + 1442695040888963407ull;
			j = (unsigned int)((x >> 33) % i);
			t = order[i - 1];
			order[i - 1] = order[j];
			order[j] = t;
		}
	}
	for (unsigned int i = 0; i < n; i++) {
		complete(h, order[i]);
		/* A flush mid-way now and then: several batches per round. */
		if (h->fill[i % sizeof(h->fill)] & 1)
			virtq_flush(&fix.vq);
	}
	virtq_flush(&fix.vq);
	(void)virtq_should_notify(&fix.vq);
}

static void check_refusal(int ret)
{
	fuzz_assert(ret == -EIO);
	fuzz_assert(fix.vq.broken);
	fuzz_assert(fix.vq.error > VIRTQ_OK && fix.vq.error < VIRTQ_ERR__COUNT);
	fuzz_assert(virtq_strerror(fix.vq.error) != NULL);
}

/* Pop until empty or refused; returns how many elements are outstanding. */
static unsigned int pop_round(const struct fuzz_hdr *h, uint16_t num, unsigned int max_iov)
{
	bool region_b = h->flags & FUZZ_F_REGION_B, push_each = h->flags & FUZZ_F_PUSH_EACH;
	unsigned int n = 0, popped = 0;

	for (;;) {
		struct virtq_elem *e = &slots[n].elem;
		int ret;

		virtq_elem_init(e, slots[n].iov, max_iov);
		ret = virtq_pop(&fix.vq, e);
		if (ret == 0)
			break;
		if (ret < 0) {
			check_refusal(ret);
			break;
		}
		fuzz_assert(ret == 1);
		check_elem(e, num, max_iov, region_b);
		/*
		 * Without completions in between, a ring of num entries
		 * cannot hold more than num chains: more would mean the
		 * walker invents them.  (Completing each at once may write
		 * through a hostile iovec into the ring itself, so anything
		 * goes then, up to a bound.)
		 */
		popped++;
		fuzz_assert(popped <= num || (push_each && popped <= 4u * num));
		if (push_each) {
			uint32_t len = fill_len(h, n, e->in_len);

			touch(e, len);
			virtq_push(&fix.vq, e, len);
			(void)virtq_should_notify(&fix.vq);
			if (popped == 4u * num)
				break;
			continue;
		}
		n++;
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_hdr h;
	uint64_t features;
	unsigned int max_iov, n;
	uint16_t num;
	bool packed;

	if (size < sizeof(h))
		return 0;
	if (!fix.a) {
		log_set_level(LOG_LVL_ERROR);
		fixture_create(&fix, FUZZ_A_SIZE, FUZZ_B_SIZE, 0);
	}
	memcpy(&h, data, sizeof(h));
	data += sizeof(h);
	size -= sizeof(h);

	fixture_reset(&fix);
	memcpy(fix.a, data, size < FUZZ_A_SIZE ? size : FUZZ_A_SIZE);
	if (size > FUZZ_A_SIZE)
		memcpy(fix.b, data + FUZZ_A_SIZE,
		       size - FUZZ_A_SIZE < FUZZ_B_SIZE ? size - FUZZ_A_SIZE : FUZZ_B_SIZE);

	packed = h.flags & FUZZ_F_PACKED;
	num = packed ? (h.qsize ? h.qsize : 256) : (uint16_t)(1u << (h.qsize % 9));
	max_iov = 1 + h.max_iov % FUZZ_MAX_IOV;
	features = fix_features(packed, 0);
	if (h.flags & FUZZ_F_INDIRECT)
		features |= FEAT(VIRTIO_RING_F_INDIRECT_DESC);
	if (h.flags & FUZZ_F_EVENT_IDX)
		features |= FEAT(VIRTIO_RING_F_EVENT_IDX);
	if (h.flags & FUZZ_F_NOTIFY_ON_EMPTY)
		features |= FEAT(VIRTIO_F_NOTIFY_ON_EMPTY);
	compact_all(num, h.flags);

	if (fixture_ring_init(&fix, packed, num, features, le16toh(h.base),
			      h.flags & FUZZ_F_REGION_B ? fix.mem : fix.mem_a))
		return 0; /* e.g. a packed base past the ring: refused up front */

	/* Two rounds: the second sees the ring after our completions. */
	n = pop_round(&h, num, max_iov);
	complete_all(&h, n);
	(void)virtq_enable_notify(&fix.vq);
	n = pop_round(&h, num, max_iov);
	virtq_disable_notify(&fix.vq);
	complete_all(&h, n);
	(void)virtq_avail_empty(&fix.vq);
	(void)virtq_get_base(&fix.vq);
	fuzz_assert(!fix.vq.broken || fix.vq.error != VIRTQ_OK);

	fixture_ring_fini(&fix);
	fixture_check_canaries(&fix);
	return 0;
}
