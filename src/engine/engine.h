/* SPDX-License-Identifier: MIT */
/*
 * engine.h - the device engine: a fixed pool of I/O threads that serve
 * the virtqueues of every device model (SPDK's reactors, QEMU's IOThreads).
 *
 * A device model hands each started queue (struct vu_queue, backend.h) to
 * the engine with eng_queue_start() and a const table of callbacks; from
 * then on one I/O thread owns the queue: it waits for the guest's kicks,
 * pops chains into request slots preallocated per descriptor head, calls
 * the model's start() for each, and publishes completions with one flush
 * and at most one interrupt per 16 chains and at the end of the queue's
 * turn in each pass.  The model holds only its
 * device's logic: what a request means and which back-end carries it out.
 *
 * Threads.  eng_pool_init(N) makes N I/O threads (0: one private thread per
 * queue, the old model).  Each thread has one wait point, an io_uring
 * (reactor.h), watching the kick eventfds of its queues (as reads, which
 * never block whatever the front-end does with the fd), the I/O of the
 * back-ends attached to it, and its control eventfd.  A pass dispatches
 * completions, then runs every queue that has work, round robin, each with
 * a budget of ENG_BUDGET chains (NAPI's idea: a busy queue cannot starve a
 * quiet one).  When no queue has work the thread spins on the rings of the
 * queues that were just busy for the largest poll-us among them (kicks
 * still off: a busy driver need not kick), then turns kicks back on,
 * re-checks, and sleeps.  A spin that finds nothing makes the next few
 * sleeps come without one, so an idle thread costs no CPU.
 *
 * Life cycle.  eng_queue_start() and eng_queue_stop() are called on the
 * vhost-user loop's thread (backend.h's start_queue / stop_queue) and are
 * synchronous: start returns once the queue is attached to its thread
 * (the model's attach() ran there), stop once every request is completed
 * and published, the kick wait is cancelled, the model's detach() ran on
 * the I/O thread and the thread will not touch the queue again.  A drain
 * can take as long as the slowest request, so the loop uses
 * eng_queue_stop_async() instead, which says when it is done, and gives
 * up on a stop that never ends with eng_queue_abandon().
 *
 * Callbacks other than those two run on the queue's I/O thread, one at a
 * time per thread: no lock is needed for per-queue state.
 */
#ifndef VHOSTD_ENGINE_ENGINE_H
#define VHOSTD_ENGINE_ENGINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/reactor.h"
#include "vhost-user/backend.h"
#include "virtq/virtq.h"

/* Chains popped per queue per pass. */
#define ENG_BUDGET 64
/* Threads at most for the default pool (one per online CPU up to this). */
#define ENG_DEFAULT_MAX_THREADS 8
#define ENG_MAX_THREADS		256
/* poll-us= accepts 0..ENG_MAX_POLL_US. */
#define ENG_MAX_POLL_US 1000

/*
 * Make the pool: @nr_threads I/O threads, or one private thread per queue
 * if 0.  Call once, before any device starts a queue; without it the first
 * queue makes the default pool.  0 or -errno.
 */
int eng_pool_init(unsigned int nr_threads);
/* One per online CPU, at most ENG_DEFAULT_MAX_THREADS. */
unsigned int eng_pool_default_threads(void);
/* Threads in the pool (0: a private thread per queue). */
unsigned int eng_pool_threads(void);
/* Stop the threads; every queue must have been stopped. */
void eng_pool_shutdown(void);

/* The head of every request slot; the device model's request embeds it first. */
struct eng_req {
	struct virtq_elem elem; /* the popped chain; elem.iov points into the slot */
	bool busy;		/* popped and not completed */
};

struct eng_queue;

struct eng_queue_ops {
	/* Size of the model's request struct, which starts with struct eng_req. */
	size_t req_size;
	/*
	 * On the I/O thread, before the first pop: set up what needs the
	 * thread (a back-end queue on its reactor).  0 or -errno.
	 */
	int (*attach)(struct eng_queue *eq, struct reactor *r);
	/* On the I/O thread, once drained, before the queue leaves it. */
	void (*detach)(struct eng_queue *eq);
	/*
	 * A chain was popped into @req: start it, and complete it with
	 * eng_req_complete() at once or later (from reap()).
	 */
	void (*start)(struct eng_queue *eq, struct eng_req *req);
	/* Collect back-end completions; runs on each pass the queue runs. */
	void (*reap)(struct eng_queue *eq);
	/*
	 * The engine never pops this queue's chains itself: the model pops
	 * one with eng_queue_pop() when it has something to put in it (a
	 * virtio-scsi event queue).  Kicks still run the queue (reap()).
	 */
	bool manual_pop;
	/*
	 * start() always completes the request before it returns (a packet
	 * handed to a socket): the engine then pops chains in batches straight
	 * into a few request structs of its own instead of a slot per head,
	 * and starts them from there.
	 */
	bool completes_in_start;
};

/*
 * Counters the engine keeps for a model that wants them (per-queue
 * statistics): written by the queue's thread only, relaxed, so any thread
 * may read them; they outlive the queue's start/stop cycles.
 */
struct eng_queue_counters {
	_Atomic uint64_t kicks;	  /* kick eventfd reads that found a kick */
	_Atomic uint64_t notifies; /* interrupts sent to the guest */
};

struct eng_queue_config {
	const char *name;     /* "dev:qN", for log lines */
	unsigned int max_iov; /* iovecs per request slot */
	unsigned int poll_us; /* spin this long on an empty ring before sleeping */
	int io_thread;	      /* pool thread index, or -1: the least loaded one */
	void *priv;	      /* eng_queue_priv() */
	struct eng_queue_counters *counters; /* optional */
};

/*
 * Attach @q (started by the vhost-user back-end) to an I/O thread and
 * start serving it.  0 or -errno (nothing attached; @err says why).
 */
int eng_queue_start(struct vu_queue *q, const struct eng_queue_ops *ops,
		    const struct eng_queue_config *cfg, struct eng_queue **out);
/* Synchronous (see the top): drain, detach, free. */
void eng_queue_stop(struct eng_queue *eq);
/*
 * The same without waiting: returns at once, and @done(@arg) runs on the
 * I/O thread once the queue is drained and detached (keep it short: an
 * eventfd write).  Then, on the stopper's thread and not from @done,
 * eng_queue_stop_finish() frees it.
 */
void eng_queue_stop_async(struct eng_queue *eq, void (*done)(void *arg), void *arg);
void eng_queue_stop_finish(struct eng_queue *eq);
/*
 * An async stop that takes too long (a stalled back-end): stop waiting.
 * False if it had finished after all (the queue is freed, as by
 * eng_queue_stop_finish(); @done ran or never will).  True if the queue
 * became an orphan, with *@inflight requests still in the back-end: what
 * had completed is published, and from now on it touches neither the ring
 * nor the vhost-user queue, nor calls @done; its requests finish into
 * nothing, their slots and memory-map references kept until then, and
 * then it frees itself after its detach() (the model's last callback).
 * Either way @eq is no longer the caller's.
 */
bool eng_queue_abandon(struct eng_queue *eq, unsigned int *inflight);
/*
 * SET_VRING_CALL on a running queue: from now on interrupts go to @fd
 * (-1: none).  A write in flight to the old fd finishes there and one
 * more goes to @fd, so no completion goes unsignalled; every write to the
 * old fd is issued when this returns, so the caller may close it.  0, or
 * -EBUSY if the queue is stopping.  Not from an I/O thread.
 */
int eng_queue_set_call_fd(struct eng_queue *eq, int fd);

/*
 * Complete @req: fill it into the used ring with @used_len bytes written.
 * Published (flush + notify) at the end of the queue's run in this pass.
 */
void eng_req_complete(struct eng_queue *eq, struct eng_req *req, uint32_t used_len);
/*
 * The driver broke the rules in a way no status byte can answer: stop
 * popping, and mark the device broken (NEEDS_RESET) with one log line.
 */
void eng_queue_halt(struct eng_queue *eq, const char *why);
/* A back-end has completions for this queue: run it (reap()) this pass. */
void eng_queue_wake(struct eng_queue *eq);
/*
 * A manual_pop queue, on its thread (reap(), or an eng_queue_call()
 * function): pop one chain and start() it.  1 popped, 0 the ring is
 * empty, -EIO the queue is halted or the chain was hostile.
 */
int eng_queue_pop(struct eng_queue *eq);
/*
 * The same for up to @max chains at once (at most 16 are taken): read
 * together, their first buffers prefetched, then each start()ed in ring
 * order.  The number popped, 0 the ring is empty, -EIO as above.
 */
int eng_queue_pop_many(struct eng_queue *eq, unsigned int max);

/*
 * Run @fn(@eq, @arg) on the queue's I/O thread and wait for it; returns
 * its result.  For work another thread starts on a running queue: a LUN
 * added to a SCSI controller (a back-end queue to attach on each thread),
 * an event to complete on an event queue.  Not from an I/O thread.
 */
int eng_queue_call(struct eng_queue *eq, int (*fn)(struct eng_queue *eq, void *arg), void *arg);

void *eng_queue_priv(const struct eng_queue *eq);
const char *eng_queue_name(const struct eng_queue *eq);
/* The clock (CLOCK_MONOTONIC ns) at the start of the thread's pass. */
uint64_t eng_queue_now_ns(const struct eng_queue *eq);
/*
 * Is the queue being stopped?  A manual_pop model that holds popped
 * chains across passes (virtio-net's rx buffers waiting for a frame)
 * completes them in reap() once this is true: stop waits for them.
 */
bool eng_queue_stopping(const struct eng_queue *eq);
/* Which thread serves it (-1: a private one). */
int eng_queue_thread(const struct eng_queue *eq);

/* CLOCK_MONOTONIC in ns. */
uint64_t eng_now_ns(void);

#endif /* VHOSTD_ENGINE_ENGINE_H */
