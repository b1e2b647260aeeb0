/* SPDX-License-Identifier: MIT */
/*
 * stress.h - the two-sided ring stress test (after Linux's
 * tools/virtio/vringh_test.c): our driver side and our device side of the
 * same ring, in two threads or two processes, exchanging requests whose
 * every byte is checked.
 *
 * A request is named by its sequence number.  Its shape (how many readable
 * and writable buffers, their lengths, how much the device writes back) and
 * its bytes are derived from (seed, seq) on both sides, so the device can
 * check what it reads and the driver what it gets back without anything but
 * the sequence number crossing the ring: the first 8 readable bytes.
 *
 * Notifications are eventfd writes, made only when kick_prepare() or
 * should_notify() ask for them, and each side sleeps on its eventfd only
 * after enable_cb() / enable_notify() said it was safe.  A lost wakeup is
 * therefore a hang, which the wait's watchdog turns into a failure.
 */
#ifndef VHOSTD_TESTS_STRESS_H
#define VHOSTD_TESTS_STRESS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "virtq/virtq_drv.h"

#define STRESS_MAX_OUT 6
#define STRESS_MAX_IN  6
#define STRESS_MAX_SGS (STRESS_MAX_OUT + STRESS_MAX_IN)
#define STRESS_MAX_LEN 2048
/* Room for one buffer plus a gap, so buffers never touch. */
#define STRESS_SG_STRIDE  (STRESS_MAX_LEN + 64)
#define STRESS_SLOT_BYTES (STRESS_MAX_SGS * STRESS_SG_STRIDE)
/* Chains longer than this go direct even with INDIRECT_DESC: a mix. */
#define STRESS_INDIRECT_MAX 8
/* Completions the device may keep back to complete out of order. */
#define STRESS_HOLD  4
#define STRESS_BURST 64

struct stress_cfg {
	bool packed;
	bool event_idx;
	bool indirect;
	bool processes; /* fork: device in the child */
	bool small;	/* tiny requests: measures the ring, not our byte checks */
	uint16_t num;
	uint64_t requests;
	uint64_t seed;
	unsigned int watchdog_ms; /* longest a side may sleep: lost wakeup */
};

/* One request's shape, the same on both sides. */
struct stress_shape {
	unsigned int nout, nin;
	uint32_t len[STRESS_MAX_SGS];
	uint32_t out_len, in_len;
	uint32_t written; /* bytes the device writes back = used length */
};

/*
 * The shape of request @seq.  The driver side refuses chains longer than
 * the queue (2.7.5.3.1), indirect or not, so a small queue gets short ones.
 */
void stress_shape(const struct stress_cfg *cfg, uint64_t seq, struct stress_shape *shape);

/* Negotiated features, and the device-visible block: rings, then data. */
uint64_t stress_features(const struct stress_cfg *cfg);
unsigned int stress_indirect_max(const struct stress_cfg *cfg);
size_t stress_data_off(const struct stress_cfg *cfg);
size_t stress_mem_size(const struct stress_cfg *cfg);

/* Stream seeds of a request's readable bytes, written bytes and poison. */
static inline uint64_t stress_out_seed(uint64_t seed, uint64_t seq)
{
	return seed ^ (seq << 2);
}

static inline uint64_t stress_in_seed(uint64_t seed, uint64_t seq)
{
	return seed ^ (seq << 2) ^ 1;
}

static inline uint64_t stress_poison_seed(uint64_t seed, uint64_t seq)
{
	return seed ^ (seq << 2) ^ 2;
}

/*
 * Shared by the two sides; in process mode it lives in a MAP_SHARED
 * anonymous mapping made before fork().
 */
struct stress_shared {
	struct stress_cfg cfg;
	int kick_fd; /* driver -> device */
	int call_fd; /* device -> driver */
	int memfd;   /* the device-visible block */
	size_t mem_size;
	uint64_t mem_dma; /* its address as the device knows it (gpa) */
	uint64_t mem_uva; /* the driver's address of it */
	struct virtq_drv_addrs addrs;
	pid_t device_pid; /* process mode */

	/* results, each written by one side */
	uint64_t kicks;	      /* eventfd writes on kick_fd */
	uint64_t calls;	      /* eventfd writes on call_fd */
	uint64_t kick_checks; /* virtq_drv_kick_prepare() calls */
	uint64_t call_checks; /* virtq_should_notify() calls */
	uint64_t driver_sleeps, device_sleeps;
	uint64_t dev_notified, dev_suppressed; /* virtq's own counters */
	uint64_t indirect_chains;
	uint64_t device_resets; /* queue re-inits from virtq_get_base() */
	uint64_t device_maps;	/* memory maps installed */
	atomic_bool device_done;
};

/*
 * Run one side to completion; FAIL (exit) on any mismatch.  The driver
 * side gets its queue (already made over @mem, its mapping of the block);
 * the device side builds its own over @hva, its mapping of the same block.
 */
void stress_driver_run(struct stress_shared *sh, struct virtq_drv *vq, void *mem);
void stress_device_run(struct stress_shared *sh, void *hva);

/*
 * Sleep until @fd is signalled.  Fails the test if nothing comes within the
 * watchdog: a notification was lost.  @peer_gone, if set, is polled so that
 * a crashed peer ends the wait early.
 */
void stress_wait(const struct stress_shared *sh, int fd, const char *who,
		 bool (*peer_gone)(const struct stress_shared *sh));
void stress_notify(int fd);

/*
 * Now and then, spin for a moment.  Called between a side's last look at
 * the ring and its re-enabling of notifications, it widens the window in
 * which a missing re-check would lose a wakeup, so such a bug hangs (and
 * fails) within a run rather than once a month.
 */
struct test_rng;
void stress_jitter(struct test_rng *rng);

#endif /* VHOSTD_TESTS_STRESS_H */
