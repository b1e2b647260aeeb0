// SPDX-License-Identifier: MIT
/*
 * stress_common.c - what both sides of the stress test derive alike:
 * request shapes, and eventfd waits with a lost-wakeup watchdog.
 */
#include <errno.h>
#include <poll.h>
#include <sys/eventfd.h>

#include "stress.h"
#include "test_util.h"

/* Mostly small buffers, some medium, a few large: like real I/O. */
static uint32_t stress_len(struct test_rng *rng)
{
	uint32_t r = test_rng_below(rng, 100);

	if (r < 70)
		return test_rng_range(rng, 1, 64);
	if (r < 95)
		return test_rng_range(rng, 65, 512);
	return test_rng_range(rng, 513, STRESS_MAX_LEN);
}

void stress_shape(const struct stress_cfg *cfg, uint64_t seq, struct stress_shape *s)
{
	unsigned int i, max = cfg->num < STRESS_MAX_SGS ? cfg->num : STRESS_MAX_SGS;
	struct test_rng rng;

	test_rng_seed(&rng, cfg->seed ^ (seq * 0x9e3779b97f4a7c15ull));
	s->nout = cfg->small ? 1 : test_rng_range(&rng, 1, STRESS_MAX_OUT);
	s->nin = test_rng_range(&rng, 0, cfg->small ? 1 : STRESS_MAX_IN);
	/* Trim to the queue: writable buffers first, one readable stays. */
	while (s->nout + s->nin > max) {
		if (s->nin)
			s->nin--;
		else
			s->nout--;
	}
	s->out_len = s->in_len = 0;
	for (i = 0; i < s->nout + s->nin; i++) {
		s->len[i] = cfg->small ? test_rng_range(&rng, 1, 16) : stress_len(&rng);
		/* The first readable buffer carries the 8-byte sequence number. */
		if (i == 0 && s->len[i] < 8)
			s->len[i] = 8;
		if (i < s->nout)
			s->out_len += s->len[i];
		else
			s->in_len += s->len[i];
	}
	/* The device writes all, part, or none of what it may. */
	switch (test_rng_below(&rng, 8)) {
	case 0:
		s->written = 0;
		break;
	case 1:
	case 2:
		s->written = s->in_len ? test_rng_below(&rng, s->in_len) : 0;
		break;
	default:
		s->written = s->in_len;
	}
}

uint64_t stress_features(const struct stress_cfg *cfg)
{
	uint64_t f = 1ull << VIRTIO_F_VERSION_1;

	if (cfg->packed)
		f |= 1ull << VIRTIO_F_RING_PACKED;
	if (cfg->event_idx)
		f |= 1ull << VIRTIO_RING_F_EVENT_IDX;
	if (cfg->indirect)
		f |= 1ull << VIRTIO_RING_F_INDIRECT_DESC;
	return f;
}

unsigned int stress_indirect_max(const struct stress_cfg *cfg)
{
	return cfg->indirect ? STRESS_INDIRECT_MAX : 0;
}

size_t stress_data_off(const struct stress_cfg *cfg)
{
	size_t ring = virtq_drv_mem_size(cfg->num, cfg->packed, stress_indirect_max(cfg));

	return (size_t)vring_align(ring, 4096);
}

size_t stress_mem_size(const struct stress_cfg *cfg)
{
	return stress_data_off(cfg) + (size_t)cfg->num * STRESS_SLOT_BYTES;
}

void stress_jitter(struct test_rng *rng)
{
	uint32_t spins;

	if (test_rng_below(rng, 4))
		return;
	spins = test_rng_below(rng, 2000);
	for (volatile uint32_t i = 0; i < spins; i++)
		;
}

void stress_notify(int fd)
{
	if (eventfd_write(fd, 1))
		FAIL("eventfd_write: %m");
}

void stress_wait(const struct stress_shared *sh, int fd, const char *who,
		 bool (*peer_gone)(const struct stress_shared *sh))
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	const int slice_ms = 100;
	unsigned int waited = 0;
	eventfd_t v;

	/*
	 * Time out in slices only to notice a dead peer; a timeout never
	 * sends us back to look at the ring, or a lost wakeup would be hidden.
	 */
	for (;;) {
		int r = poll(&p, 1, slice_ms);

		if (r > 0) {
			if (eventfd_read(fd, &v))
				FAIL("eventfd_read: %m");
			return;
		}
		if (r < 0 && errno != EINTR)
			FAIL("poll: %m");
		if (peer_gone && peer_gone(sh))
			FAIL("%s: the other side exited while we waited (it failed, or it "
			     "finished and our notification was lost)",
			     who);
		waited += slice_ms;
		if (waited >= sh->cfg.watchdog_ms)
			FAIL("%s: asleep for %u ms with work outstanding: a lost notification", who,
			     waited);
	}
}
