// SPDX-License-Identifier: MIT
/*
 * engine.c - the I/O threads and the queue machinery every device model
 * shares (engine.h).
 *
 * A queue moves between three places on its thread: the list of every
 * attached queue (t->queues), the FIFO of queues to run this pass
 * (t->ready: kicked, woken by a back-end, or budget left over), and
 * nowhere (idle, waiting for a kick).  A queue that ran out of chains
 * keeps kicks off (notify_off) until the thread goes idle, so a driver
 * that keeps adding buffers while the thread is busy elsewhere need not
 * kick; going idle turns kicks on for every such queue and looks at each
 * ring once more (virtq_enable_notify()), so no kick is ever lost.
 *
 * Eventfds of the front-end are touched only through the ring: a kick is
 * an 8-byte read, which completes when the counter is non-zero and never
 * blocks the thread even if the front-end reads the counter first or
 * clears O_NONBLOCK; an interrupt is an 8-byte write, at most one in
 * flight per queue (a second one while the first waits only sets
 * call_again: the first one's completion sends it).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "vhost-user/inflight.h"

#include "common/log.h"
#include "common/sigbus.h"
#include "common/util.h"
#include "engine.h"

/* SQ entries per thread's ring (the CQ ring is four times that). */
#define ENG_RING_ENTRIES 256
/* A polled queue (no kick eventfd) is looked at this often when idle. */
#define ENG_POLL_NS (1000 * 1000)
/*
 * Adaptive spinning, per thread.  A spin that finds nothing makes the next
 * 1, 2, 4 .. ENG_SPIN_BACKOFF_MAX sleeps come without one, so an idle
 * thread stops spinning at once and costs nothing; one that finds work
 * keeps spinning.  Tried and measured against it (bench/ab.sh, notes on
 * issue 6): spinning only while spins found work within a fraction of
 * poll-us.  On these VMs, where waking an idle vCPU costs tens of
 * microseconds, that rule stopped spinning exactly where spinning kept
 * the vCPUs warm: QD1 fell to half and a 100k IOPS open-loop load could
 * no longer be kept up with; it saved CPU only at 20k IOPS.
 */
#define ENG_SPIN_BACKOFF_MAX 64

/* Within a burst, completions are published every this many chains. */
#define ENG_PUBLISH_EVERY 16

/* iovecs kept in each request slot; longer chains borrow a full-size array. */
#define ENG_INLINE_IOV 16

/*
 * Chains popped with one virtq_pop_batch(): by a queue whose start()
 * completes them before it returns (eng_queue_ops.completes_in_start), one
 * publish per batch, as ENG_PUBLISH_EVERY gives the others; and by
 * eng_queue_pop_many().
 */
#define ENG_POP_BATCH ENG_PUBLISH_EVERY

enum eng_cmd_op { CMD_ATTACH, CMD_DETACH, CMD_DETACH_ASYNC, CMD_ABANDON, CMD_CALL, CMD_EXIT };

/*
 * Work posted to an I/O thread by another thread, which waits for it
 * (CMD_DETACH_ASYNC: which does not; the command lives in the queue).
 */
struct eng_cmd {
	enum eng_cmd_op op;
	struct eng_queue *eq;
	int (*fn)(struct eng_queue *eq, void *arg); /* CMD_CALL */
	void *arg;
	int result;
	bool done;
	struct eng_cmd *next;
};

struct eng_thread {
	struct reactor r;
	pthread_t tid;
	int index; /* in the pool; -1: a queue's private thread */
	char name[16];
	int init_result;
	bool init_done;

	/* Commands, under lock; ctl_fd says one was posted. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct eng_cmd *cmds, **cmds_tail;
	int ctl_fd;
	uint64_t ctl_buf;
	struct reactor_event ctl_ev;
	atomic_uint nr_queues; /* for placement, read by other threads */

	/* Owned by the thread. */
	struct eng_queue *queues;	       /* every attached queue */
	struct eng_queue *ready, **ready_tail; /* to run this pass, FIFO */
	unsigned int nr_polled;		       /* queues without a kick fd */
	unsigned int nr_attached, nr_orphans;  /* in queues; orphans: abandoned ones */
	uint64_t now_ns;
	unsigned int spin_skip, spin_backoff; /* see ENG_SPIN_BACKOFF_MAX */
	bool exiting;
};

struct eng_queue {
	const struct eng_queue_ops *ops;
	struct eng_thread *t;
	struct vu_queue *q;
	struct virtq *vq;
	void *priv;
	char name[48];
	uint64_t spin_ns;
	int io_thread;

	/*
	 * Request slots, one per descriptor head (kvmtool's blk.c), each with
	 * room for ENG_INLINE_IOV iovecs.  A chain is popped into @stage
	 * (max_iov iovecs), then moves into its head's slot; a chain with
	 * more segments borrows a full-size array from @big_iovs.  So a
	 * queue costs ~100 KiB rather than num * max_iov iovecs (1 MiB at
	 * 256 x 256), and a guest that cycles through every head (FIFO free
	 * lists) does not make all of it resident.
	 */
	void *slot_mem;
	size_t slot_stride;
	size_t iov_offset;
	unsigned int inline_iov;
	struct virtq_elem stage;
	struct iovec *stage_iov;
	struct iovec **big_iovs; /* free full-size arrays, up to num */
	/*
	 * While the ring logs dirty pages (a migration): the writable iovecs
	 * of each slot as popped, max_iov per slot, and the stage's
	 * (virtq_elem.log_iov).  NULL otherwise.
	 */
	struct iovec *log_iovs;
	struct iovec *stage_log_iov;
	/*
	 * completes_in_start and manual_pop queues without an in-flight
	 * region: ENG_POP_BATCH requests laid out as slots (the iovecs at
	 * iov_offset) but with max_iov iovecs each, which a batch of chains
	 * is popped into: started from there (completes_in_start: no slot, no
	 * copy) or moved into their slots (eng_queue_pop_many()).  And their
	 * log_iov arrays while the ring logs.  NULL otherwise.
	 */
	void *batch_mem;
	size_t batch_stride;
	struct iovec *batch_log_iovs;
	unsigned int nr_big_iovs;
	unsigned int num;
	unsigned int max_iov;
	unsigned int inflight; /* popped and not completed */
	unsigned int nr_filled;

	struct eng_queue *next, *prev; /* t->queues */
	struct eng_queue *ready_next;
	bool on_ready;
	bool notify_off; /* kicks off: we are polling the ring */
	bool halted;	 /* hostile input: pop no more */
	bool stopping;
	bool drained;	/* stop: final publish done, cancels sent */
	bool polled;	/* no kick fd (fixed at start) */
	bool stopped;	/* async stop: detached, done() called */
	bool abandoned; /* an orphan: the stopper let go of it (eng_queue_abandon) */
	int call_fd;	/* where interrupts go: q->call_fd, swapped on this thread */

	struct reactor_event kick_ev;
	uint64_t kick_buf;
	bool kick_armed;
	bool kick_error_logged;

	struct reactor_event call_ev;
	uint64_t call_val;
	bool call_busy;
	bool call_again;
	bool call_error_logged;

	struct eng_cmd *stop_cmd;
	struct eng_queue_counters *counters;
	/* The front-end's in-flight region tracks this ring (q->inflight). */
	struct vu_inflight_queue *iq;
	struct eng_cmd async_stop_cmd; /* CMD_DETACH_ASYNC */
	void (*stop_done)(void *arg);  /* async stop: on the I/O thread, once detached */
	void *stop_arg;
	struct eng_queue *orphan_next; /* orphans.list */
};

static struct {
	pthread_mutex_t lock;
	bool ready;
	unsigned int nr;
	struct eng_thread **threads;
	/* Private threads whose queue was abandoned: stopped at shutdown. */
	struct eng_thread *orphan_threads[ENG_MAX_THREADS];
	unsigned int nr_orphan_threads;
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER};

/*
 * Abandoned queues (eng_queue_abandon) that still have requests in the
 * back-end.  Kept reachable here until they finish, and forever if the
 * process exits first: their request slots are the memory the back-end
 * I/O still writes to, so they are never freed early.  Its own lock: an
 * I/O thread takes it while the pool lock may be held by a shutdown
 * waiting for that thread.
 */
static struct {
	pthread_mutex_t lock;
	struct eng_queue *list;
	unsigned int nr;
} orphans = {.lock = PTHREAD_MUTEX_INITIALIZER};

uint64_t eng_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- queues on their thread ------------------------------------------------ */

static void eng_mark_ready(struct eng_queue *eq)
{
	struct eng_thread *t = eq->t;

	if (eq->on_ready)
		return;
	eq->on_ready = true;
	eq->ready_next = NULL;
	*t->ready_tail = eq;
	t->ready_tail = &eq->ready_next;
}

static struct eng_queue *eng_take_ready(struct eng_thread *t)
{
	struct eng_queue *eq = t->ready;

	if (!eq)
		return NULL;
	t->ready = eq->ready_next;
	if (!t->ready)
		t->ready_tail = &t->ready;
	eq->on_ready = false;
	return eq;
}

static void eng_kick_done(struct reactor_event *ev, int res, uint32_t flags);

static void eng_arm_kick(struct eng_queue *eq)
{
	struct io_uring_sqe *sqe;

	/* Stopping first: an orphan's q may be gone. */
	if (eq->stopping || eq->kick_armed || eq->polled || eq->halted)
		return;
	sqe = reactor_sqe(&eq->t->r, &eq->kick_ev);
	if (!sqe) {
		log_error("%s: cannot wait for kicks (io_uring full)", eq->name);
		return;
	}
	io_uring_prep_read(sqe, eq->q->kick_fd, &eq->kick_buf, sizeof(eq->kick_buf), 0);
	eq->kick_armed = true;
}

static void eng_kick_done(struct reactor_event *ev, int res, uint32_t flags)
{
	struct eng_queue *eq = container_of(ev, struct eng_queue, kick_ev);

	eq->kick_armed = false;
	if (res == (int)sizeof(eq->kick_buf)) {
		if (eq->counters)
			atomic_fetch_add_explicit(&eq->counters->kicks, 1, memory_order_relaxed);
		eng_mark_ready(eq);
		eng_arm_kick(eq);
		return;
	}
	if (res == -ECANCELED) {
		eng_mark_ready(eq); /* a stopping queue finishes its stop */
		return;
	}
	/*
	 * Not an eventfd's answer (the back-end refuses other fds at
	 * receipt; this is the last line): stop waiting on it rather than
	 * spin.  The ring is still served when the thread next runs it.
	 */
	if (!eq->kick_error_logged) {
		eq->kick_error_logged = true;
		log_error("%s: kick fd read returned %d%s; no longer waiting for kicks", eq->name,
			  res, res < 0 ? "" : " bytes");
	}
	eng_mark_ready(eq);
}

static void eng_call_done(struct reactor_event *ev, int res, uint32_t flags);

static void eng_send_call(struct eng_queue *eq)
{
	struct io_uring_sqe *sqe = reactor_sqe(&eq->t->r, &eq->call_ev);

	if (!sqe) {
		log_error("%s: cannot signal the guest (io_uring full)", eq->name);
		return;
	}
	eq->call_val = 1;
	if (eq->counters)
		atomic_fetch_add_explicit(&eq->counters->notifies, 1, memory_order_relaxed);
	io_uring_prep_write(sqe, eq->call_fd, &eq->call_val, sizeof(eq->call_val), 0);
	eq->call_busy = true;
	eq->call_again = false;
}

static void eng_call_done(struct reactor_event *ev, int res, uint32_t flags)
{
	struct eng_queue *eq = container_of(ev, struct eng_queue, call_ev);

	eq->call_busy = false;
	if (res < 0 && res != -ECANCELED && !eq->call_error_logged) {
		eq->call_error_logged = true;
		log_error("%s: cannot signal the guest: %s", eq->name, strerror(-res));
	}
	/* An orphan's call fd belongs to the front-end no more. */
	if (eq->call_again && !eq->drained && !eq->abandoned && eq->call_fd >= 0)
		eng_send_call(eq);
	if (eq->stopping)
		eng_mark_ready(eq);
}

/* One flush and at most one interrupt for everything completed since the last. */
static void eng_publish(struct eng_queue *eq)
{
	if (!eq->nr_filled || eq->abandoned)
		return;
	/* inflight.c's step 4a (packed: where the batch will end) ... */
	if (eq->iq)
		vu_inflight_flushing(eq->iq, eq->vq);
	virtq_flush(eq->vq);
	/* ... and only after the batch is out, steps 5 and 6. */
	if (eq->iq)
		vu_inflight_published(eq->iq, eq->vq);
	eq->nr_filled = 0;
	if (eq->call_fd < 0 || !virtq_should_notify(eq->vq))
		return;
	/*
	 * A write still in flight has not reached the eventfd, or found it
	 * full (the guest will be woken anyway); either way one more is
	 * sent when it completes, after this flush.
	 */
	if (eq->call_busy)
		eq->call_again = true;
	else
		eng_send_call(eq);
}

static struct eng_req *eng_slot(struct eng_queue *eq, unsigned int i)
{
	return (struct eng_req *)((char *)eq->slot_mem + (size_t)i * eq->slot_stride);
}

static struct iovec *eng_slot_iov(struct eng_queue *eq, struct eng_req *req)
{
	return (struct iovec *)((char *)req + eq->iov_offset);
}

/* Stage a used entry, and link its head into the in-flight batch (step 3). */
static void eng_fill(struct eng_queue *eq, const struct virtq_elem *e, uint32_t len)
{
	virtq_fill(eq->vq, e, len);
	if (eq->iq)
		vu_inflight_filled(eq->iq, e);
}

void eng_req_complete(struct eng_queue *eq, struct eng_req *req, uint32_t used_len)
{
	/*
	 * An orphan's ring is someone else's now (restarted, or freed with
	 * its session): only the map reference the element holds is ours.
	 */
	if (eq->abandoned) {
		if (req->elem.mem)
			memmap_put(req->elem.mem);
		req->elem.mem = NULL;
	} else {
		/* The caller's stores to guest memory are ordered by virtq_flush(). */
		eng_fill(eq, &req->elem, used_len);
	}
	if (req->elem.iov != eng_slot_iov(eq, req))
		eq->big_iovs[eq->nr_big_iovs++] = req->elem.iov; /* at most num are out */
	req->busy = false;
	eq->inflight--;
	if (!eq->abandoned)
		eq->nr_filled++;
}

void eng_queue_halt(struct eng_queue *eq, const char *why)
{
	char msg[160];

	if (eq->halted)
		return;
	eq->halted = true;
	/* An orphan's device may be gone; its session is, anyway. */
	if (eq->abandoned)
		return;
	snprintf(msg, sizeof(msg), "%s: %s", eq->name, why);
	vu_dev_set_broken(eq->q->dev, msg);
}

void eng_queue_wake(struct eng_queue *eq)
{
	eng_mark_ready(eq);
}

/* The iovec storage for a chain of @n segments in @req: inline, or borrowed. */
static struct iovec *eng_req_iov(struct eng_queue *eq, struct eng_req *req, unsigned int n)
{
	if (n <= eq->inline_iov)
		return eng_slot_iov(eq, req);
	if (eq->nr_big_iovs)
		return eq->big_iovs[--eq->nr_big_iovs];
	return malloc((size_t)eq->max_iov * sizeof(struct iovec));
}

/* Move the chain in @e (popped) into its head's slot and start it.  1 or -EIO. */
static int eng_start_elem(struct eng_queue *eq, struct virtq_elem *e)
{
	struct eng_req *req;
	struct iovec *iov;
	unsigned int n;

	/* The ring code refuses both; checked again since a slot is at stake. */
	req = e->id < eq->num ? eng_slot(eq, e->id) : NULL;
	if (!req || req->busy) {
		eng_queue_halt(eq, "descriptor head out of range or already in flight");
		/* Still filled once (virtq.h), so its map reference is dropped. */
		eng_fill(eq, e, 0);
		eq->nr_filled++;
		return -EIO;
	}
	n = e->out_num + e->in_num;
	iov = eng_req_iov(eq, req, n);
	if (!iov) {
		eng_queue_halt(eq, "out of memory for a long chain");
		eng_fill(eq, e, 0);
		eq->nr_filled++;
		return -EIO;
	}
	memcpy(iov, e->iov, (size_t)n * sizeof(*iov));
	req->elem = *e;
	req->elem.iov = iov;
	if (unlikely(e->log_iov)) {
		req->elem.log_iov = eq->log_iovs + (size_t)e->id * eq->max_iov;
		memcpy(req->elem.log_iov, e->log_iov, (size_t)e->in_num * sizeof(*iov));
	}
	req->busy = true;
	eq->inflight++;
	eq->ops->start(eq, req);
	return 1;
}

/* Pop one chain and start it.  1 popped, 0 ring empty, -EIO queue halted. */
static int eng_pop_one(struct eng_queue *eq)
{
	struct virtq_elem *e = &eq->stage;
	int r;

	virtq_elem_init(e, eq->stage_iov, eq->max_iov);
	e->log_iov = eq->stage_log_iov;
	e->descs = eq->iq ? eq->iq->descs : NULL; /* packed: recorded by begin */
	r = virtq_pop(eq->vq, e);
	if (r <= 0) {
		if (r < 0)
			eng_queue_halt(eq, virtq_strerror(eq->vq->error));
		return r;
	}
	/* Recorded before anything starts it: inflight.c's step 2. */
	if (eq->iq && vu_inflight_begin(eq->iq, e) < 0) {
		eng_queue_halt(eq, "more slots in flight than the in-flight region holds");
		eng_fill(eq, e, 0);
		eq->nr_filled++;
		return -EIO;
	}
	r = eng_start_elem(eq, e);
	/*
	 * The device may have found the chain hostile and halted the queue
	 * ("pop no more"): a burst that went on would start requests on a
	 * queue that is about to be stopped as broken.
	 */
	return r > 0 && eq->halted ? -EIO : r;
}

/*
 * The first run after a start with an in-flight region: start again what
 * a previous back-end had in flight, in the order it popped them, before
 * any new chain.  Their records stay as they are (same counters).  Once.
 */
static void eng_resubmit(struct eng_queue *eq)
{
	struct vu_inflight_queue *iq = eq->iq;
	unsigned int i, nr = iq->nr_resubmit;

	iq->nr_resubmit = 0;
	for (i = 0; i < nr && !eq->halted; i++) {
		struct virtq_elem *e = &eq->stage;
		int r;

		virtq_elem_init(e, eq->stage_iov, eq->max_iov);
		e->log_iov = eq->stage_log_iov;
		r = vu_inflight_repop(iq, eq->vq, e, i);
		if (r < 0) {
			eng_queue_halt(eq, virtq_strerror(eq->vq->error));
			return;
		}
		eng_start_elem(eq, e);
	}
}

int eng_queue_pop(struct eng_queue *eq)
{
	if (eq->halted || eq->stopping)
		return eq->halted ? -EIO : 0;
	return eng_pop_one(eq);
}

static struct eng_req *eng_batch_req(struct eng_queue *eq, unsigned int i)
{
	return (struct eng_req *)((char *)eq->batch_mem + (size_t)i * eq->batch_stride);
}

/*
 * Pop up to @want (<= ENG_POP_BATCH) chains into the batch requests with
 * one virtq_pop_batch(): the ring code reads their heads together and
 * prefetches ahead of the walks.  The count, or -EIO (halted).
 */
static int eng_pop_into_batch(struct eng_queue *eq, unsigned int want)
{
	struct virtq_elem *elems[ENG_POP_BATCH];
	unsigned int i;
	int got;

	for (i = 0; i < want; i++) {
		struct eng_req *req = eng_batch_req(eq, i);

		virtq_elem_init(&req->elem, eng_slot_iov(eq, req), eq->max_iov);
		req->elem.log_iov =
			eq->batch_log_iovs ? eq->batch_log_iovs + (size_t)i * eq->max_iov : NULL;
		elems[i] = &req->elem;
	}
	got = virtq_pop_batch(eq->vq, elems, want);
	if (got < 0) {
		eng_queue_halt(eq, virtq_strerror(eq->vq->error));
		return -EIO;
	}
	/*
	 * Start pulling in every chain's first buffer (a packet's header, a
	 * receive buffer, a request's header): the driver's core wrote them
	 * last, and start() would otherwise wait for each in turn.
	 */
	for (i = 0; i < (unsigned int)got; i++) {
		const struct virtq_elem *e = elems[i];
		const char *base = e->iov[0].iov_base;
		/* And the next line: a header at the end of one (DPDK's headroom). */
		size_t last = e->iov[0].iov_len < 128 ? e->iov[0].iov_len : 128;

		if (e->out_num) {
			prefetch(base);
			if (last > 1)
				prefetch(base + last - 1);
		} else if (e->in_num) {
			prefetchw(base);
			if (last > 1)
				prefetchw(base + last - 1);
		}
	}
	return got;
}

/* After a batch: a ring the pop found broken halts the queue (one log line). */
static void eng_batch_check_broken(struct eng_queue *eq)
{
	if (eq->vq->broken && !eq->halted)
		eng_queue_halt(eq, virtq_strerror(eq->vq->error));
}

/* A completes_in_start request, from the batch request it was popped into. */
static void eng_start_in_place(struct eng_queue *eq, struct eng_req *req)
{
	req->busy = true;
	eq->inflight++;
	eq->ops->start(eq, req);
	if (unlikely(req->busy)) {
		/* The model broke its word: the request cannot outlive the batch. */
		eng_queue_halt(eq, "request left in flight by a model that said it would not");
		eng_req_complete(eq, req, 0);
	}
}

/* Any other request: moved into its head's slot first. */
static void eng_start_in_slot(struct eng_queue *eq, struct eng_req *req)
{
	eng_start_elem(eq, &req->elem);
}

/* Start the first @n batch requests in ring order with @start. */
static void eng_start_batch(struct eng_queue *eq, unsigned int n,
			    void (*start)(struct eng_queue *eq, struct eng_req *req))
{
	for (unsigned int i = 0; i < n; i++) {
		struct eng_req *req = eng_batch_req(eq, i);

		if (unlikely(eq->halted)) {
			/* A chain before it was hostile: filled unstarted (virtq.h). */
			eng_fill(eq, &req->elem, 0);
			eq->nr_filled++;
			continue;
		}
		start(eq, req);
	}
}

int eng_queue_pop_many(struct eng_queue *eq, unsigned int max)
{
	int got;

	if (eq->halted || eq->stopping)
		return eq->halted ? -EIO : 0;
	if (!eq->batch_mem)
		return eng_pop_one(eq);
	got = eng_pop_into_batch(eq, max < ENG_POP_BATCH ? max : ENG_POP_BATCH);
	if (got <= 0)
		return got;
	eng_start_batch(eq, (unsigned int)got, eng_start_in_slot);
	eng_batch_check_broken(eq);
	return eq->halted ? -EIO : got;
}

/*
 * eng_pop_burst() for a completes_in_start queue: ENG_POP_BATCH chains at
 * a time, started where they were popped, one publish per batch.  The
 * per-chain cost a packet-sized request cannot hide.
 */
static bool eng_pop_burst_batched(struct eng_queue *eq)
{
	unsigned int done = 0;

	while (done < ENG_BUDGET) {
		unsigned int want = ENG_BUDGET - done;
		int got;

		if (want > ENG_POP_BATCH)
			want = ENG_POP_BATCH;
		got = eng_pop_into_batch(eq, want);
		if (got < 0)
			return false;
		eng_start_batch(eq, (unsigned int)got, eng_start_in_place);
		done += (unsigned int)got;
		if (eq->ops->reap)
			eq->ops->reap(eq);
		eng_publish(eq);
		eng_batch_check_broken(eq);
		if ((unsigned int)got < want || eq->halted)
			return false;
	}
	return true;
}

/*
 * Pop up to the budget with kicks off.  True if the budget ran out (the
 * ring may hold more: run again next pass).
 */
static bool eng_pop_burst(struct eng_queue *eq)
{
	unsigned int n;

	if (!eq->notify_off) {
		virtq_disable_notify(eq->vq);
		eq->notify_off = true;
	}
	if (eq->batch_mem)
		return eng_pop_burst_batched(eq);
	for (n = 1; n <= ENG_BUDGET; n++) {
		int r = eng_pop_one(eq);

		if (r <= 0)
			return false;
		/*
		 * Hand back what is done every ENG_PUBLISH_EVERY chains: the
		 * driver refills while we work on the rest of the burst
		 * (bench/ab.sh: QD32 with interrupts 1.08-1.31x, the rest
		 * unchanged).
		 */
		if (n % ENG_PUBLISH_EVERY == 0) {
			if (eq->ops->reap)
				eq->ops->reap(eq);
			eng_publish(eq);
		}
	}
	return true;
}

static void eng_queue_finish_stop(struct eng_queue *eq);

/* A stopping queue: once nothing is in flight, publish, cancel the waits, leave. */
static void eng_queue_run_stopping(struct eng_queue *eq)
{
	struct io_uring_sqe *sqe;

	if (eq->inflight)
		return;
	if (!eq->drained && !eq->abandoned) {
		eng_publish(eq);
		eq->drained = true;
		/* Leave the ring asking for kicks, as a fresh queue does. */
		if (eq->notify_off && !eq->halted)
			virtq_enable_notify(eq->vq);
		eq->notify_off = false;
		/*
		 * SQEs run in order: the last interrupt is written before
		 * the cancel can reach it, so it is not lost unless the
		 * front-end's eventfd is full (it is signalled then anyway).
		 */
		if (eq->kick_armed && (sqe = reactor_sqe(&eq->t->r, NULL)))
			io_uring_prep_cancel(sqe, &eq->kick_ev, 0);
		if (eq->call_busy && (sqe = reactor_sqe(&eq->t->r, NULL)))
			io_uring_prep_cancel(sqe, &eq->call_ev, 0);
	}
	if (eq->kick_armed || eq->call_busy)
		return; /* their completions run us again */
	eng_queue_finish_stop(eq);
}

static void eng_queue_run(struct eng_queue *eq)
{
	bool more = false;

	if (eq->ops->reap)
		eq->ops->reap(eq);
	if (eq->stopping) {
		eng_queue_run_stopping(eq);
		return;
	}
	if (eq->iq && eq->iq->nr_resubmit && !eq->halted)
		eng_resubmit(eq);
	if (!eq->halted && !eq->ops->manual_pop) {
		more = eng_pop_burst(eq);
		/* What completed at once (null back-end, errors) goes out now. */
		if (eq->ops->reap)
			eq->ops->reap(eq);
	}
	eng_publish(eq);
	if (more)
		eng_mark_ready(eq);
}

/* ---- attach / detach (on the thread) ---------------------------------------- */

static void eng_cmd_done(struct eng_thread *t, struct eng_cmd *cmd, int result)
{
	pthread_mutex_lock(&t->lock);
	cmd->result = result;
	cmd->done = true;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

static void eng_queue_attach(struct eng_thread *t, struct eng_cmd *cmd)
{
	struct eng_queue *eq = cmd->eq;
	int r;

	eq->t = t;
	r = eq->ops->attach ? eq->ops->attach(eq, &t->r) : 0;
	if (r < 0) {
		eng_cmd_done(t, cmd, r);
		return;
	}
	eq->next = t->queues;
	eq->prev = NULL;
	if (t->queues)
		t->queues->prev = eq;
	t->queues = eq;
	t->nr_attached++;
	if (eq->polled)
		t->nr_polled++;
	eng_arm_kick(eq);
	/* Serve whatever the driver queued before we started: a kick may be gone. */
	eng_mark_ready(eq);
	/* A dead predecessor's last completions may have gone unsignalled. */
	if (eq->iq && eq->iq->recovered && eq->call_fd >= 0)
		eng_send_call(eq);
	eng_cmd_done(t, cmd, 0);
}

static void eng_queue_free(struct eng_queue *eq);
static void eng_orphan_finish(struct eng_queue *eq);

static void eng_queue_finish_stop(struct eng_queue *eq)
{
	struct eng_thread *t = eq->t;

	if (eq->ops->detach)
		eq->ops->detach(eq);
	if (eq->prev)
		eq->prev->next = eq->next;
	else
		t->queues = eq->next;
	if (eq->next)
		eq->next->prev = eq->prev;
	t->nr_attached--;
	if (eq->polled)
		t->nr_polled--;
	/* detach() may have woken it: the queue is freed once the stopper returns. */
	if (eq->on_ready) {
		struct eng_queue **pp = &t->ready;

		while (*pp != eq)
			pp = &(*pp)->ready_next;
		*pp = eq->ready_next;
		if (t->ready_tail == &eq->ready_next)
			t->ready_tail = pp;
		eq->on_ready = false;
	}
	if (eq->abandoned) {
		eng_orphan_finish(eq);
	} else if (eq->stop_done) {
		/* The stopper frees it (eng_queue_stop_finish) once it hears. */
		eq->stopped = true;
		eq->stop_done(eq->stop_arg);
	} else {
		eng_cmd_done(t, eq->stop_cmd, 0);
	}
}

/*
 * The last request of an abandoned queue completed: it is ours to free.
 * A private thread stays (idle) until the pool shuts down.
 */
static void eng_orphan_finish(struct eng_queue *eq)
{
	struct eng_thread *t = eq->t;
	struct eng_queue **pp;

	pthread_mutex_lock(&orphans.lock);
	for (pp = &orphans.list; *pp && *pp != eq; pp = &(*pp)->orphan_next)
		;
	if (*pp) {
		*pp = eq->orphan_next;
		orphans.nr--;
	}
	pthread_mutex_unlock(&orphans.lock);
	t->nr_orphans--;
	atomic_fetch_sub(&t->nr_queues, 1);
	log_info("%s: the requests it was stopped without have completed; freed", eq->name);
	eng_queue_free(eq);
}

/*
 * The stopper gives up waiting (on the I/O thread).  -1 if the stop had
 * finished anyway; else the requests left in flight, and the queue becomes an orphan: what
 * completed is published now, while ring and call fd are still the front-end's, and from here on it
 * touches neither the ring nor anything of the vhost-user queue.  Its requests finish in the
 * back-end and are dropped, then it frees itself (eng_orphan_finish).
 */
static int eng_queue_orphan(struct eng_queue *eq)
{
	struct eng_thread *t = eq->t;
	struct io_uring_sqe *sqe;

	if (eq->stopped)
		return -1;
	eng_publish(eq);
	if (eq->kick_armed && (sqe = reactor_sqe(&t->r, NULL)))
		io_uring_prep_cancel(sqe, &eq->kick_ev, 0);
	if (eq->call_busy && (sqe = reactor_sqe(&t->r, NULL)))
		io_uring_prep_cancel(sqe, &eq->call_ev, 0);
	/*
	 * Issue those now: the stopper closes the front-end's fds once we
	 * answer, and an SQE holds its file only once it is submitted.
	 */
	reactor_submit(&t->r);
	eq->abandoned = true;
	eq->call_fd = -1;
	t->nr_orphans++;
	pthread_mutex_lock(&orphans.lock);
	eq->orphan_next = orphans.list;
	orphans.list = eq;
	orphans.nr++;
	pthread_mutex_unlock(&orphans.lock);
	eng_mark_ready(eq);
	return (int)eq->inflight;
}

static void eng_run_cmds(struct eng_thread *t)
{
	struct eng_cmd *cmd, *next;

	pthread_mutex_lock(&t->lock);
	cmd = t->cmds;
	t->cmds = NULL;
	t->cmds_tail = &t->cmds;
	pthread_mutex_unlock(&t->lock);

	for (; cmd; cmd = next) {
		next = cmd->next;
		switch (cmd->op) {
		case CMD_ATTACH:
			eng_queue_attach(t, cmd);
			break;
		case CMD_DETACH:
		case CMD_DETACH_ASYNC:
			cmd->eq->stopping = true;
			cmd->eq->stop_cmd = cmd;
			eng_mark_ready(cmd->eq);
			break;
		case CMD_ABANDON:
			eng_cmd_done(t, cmd, eng_queue_orphan(cmd->eq));
			break;
		case CMD_CALL: {
			/* cmd lives on the poster's stack: gone once it is done. */
			struct eng_queue *eq = cmd->eq;

			eng_cmd_done(t, cmd, cmd->fn(eq, cmd->arg));
			/* What it completed or woke goes out this pass. */
			eng_mark_ready(eq);
			break;
		}
		case CMD_EXIT:
			t->exiting = true;
			eng_cmd_done(t, cmd, 0);
			break;
		}
	}
}

static void eng_arm_ctl(struct eng_thread *t)
{
	struct io_uring_sqe *sqe = reactor_sqe(&t->r, &t->ctl_ev);

	if (sqe)
		io_uring_prep_read(sqe, t->ctl_fd, &t->ctl_buf, sizeof(t->ctl_buf), 0);
	else
		log_error("%s: cannot wait for commands (io_uring full)", t->name);
}

static void eng_ctl_done(struct reactor_event *ev, int res, uint32_t flags)
{
	struct eng_thread *t = container_of(ev, struct eng_thread, ctl_ev);

	eng_run_cmds(t);
	if (!t->exiting)
		eng_arm_ctl(t);
}

/* Queue @cmd for @t without waiting. */
static void eng_post_nowait(struct eng_thread *t, struct eng_cmd *cmd)
{
	cmd->done = false;
	cmd->next = NULL;
	pthread_mutex_lock(&t->lock);
	*t->cmds_tail = cmd;
	t->cmds_tail = &cmd->next;
	pthread_mutex_unlock(&t->lock);
	/* Our own eventfd: its count never nears the maximum, the write cannot block. */
	if (eventfd_write(t->ctl_fd, 1) < 0)
		log_error("%s: cannot post a command: %s", t->name, strerror(errno));
}

/* Post @cmd to @t and wait until it is done.  Returns its result. */
static int eng_post(struct eng_thread *t, struct eng_cmd *cmd)
{
	int r;

	cmd->done = false;
	cmd->next = NULL;
	pthread_mutex_lock(&t->lock);
	*t->cmds_tail = cmd;
	t->cmds_tail = &cmd->next;
	pthread_mutex_unlock(&t->lock);
	/* Our own eventfd: its count never nears the maximum, the write cannot block. */
	if (eventfd_write(t->ctl_fd, 1) < 0)
		log_error("%s: cannot post a command: %s", t->name, strerror(errno));
	pthread_mutex_lock(&t->lock);
	while (!cmd->done)
		pthread_cond_wait(&t->cond, &t->lock);
	r = cmd->result;
	pthread_mutex_unlock(&t->lock);
	return r;
}

/* ---- the thread's loop -------------------------------------------------------- */

/* The longest poll-us among the queues that just ran dry (kicks still off). */
static uint64_t eng_spin_budget(struct eng_thread *t)
{
	uint64_t ns = 0;

	for (struct eng_queue *eq = t->queues; eq; eq = eq->next) {
		if (eq->notify_off && !eq->halted && !eq->stopping && eq->spin_ns > ns)
			ns = eq->spin_ns;
	}
	return ns;
}

/* Did a ring with kicks off get buffers (or break)?  Those queues go on the ready list. */
static bool eng_look_for_work(struct eng_thread *t)
{
	bool found = false;

	for (struct eng_queue *eq = t->queues; eq; eq = eq->next) {
		if (!eq->notify_off || eq->halted || eq->stopping)
			continue;
		if (!virtq_avail_empty(eq->vq) || eq->vq->broken) {
			eng_mark_ready(eq);
			found = true;
		}
	}
	return found;
}

/* Spin until a ring gets buffers, a completion arrives, or @ns pass.  True if work came. */
static bool eng_spin(struct eng_thread *t, uint64_t ns)
{
	uint64_t start;

	if (t->spin_skip) {
		t->spin_skip--;
		return false;
	}
	start = eng_now_ns();
	do {
		for (unsigned int i = 0; i < 16; i++) {
			if (eng_look_for_work(t) || reactor_has_work(&t->r)) {
				t->spin_backoff = 0;
				return true;
			}
			cpu_relax();
		}
	} while (eng_now_ns() - start < ns);
	t->spin_backoff = t->spin_backoff ? t->spin_backoff * 2 : 1;
	if (t->spin_backoff > ENG_SPIN_BACKOFF_MAX)
		t->spin_backoff = ENG_SPIN_BACKOFF_MAX;
	t->spin_skip = t->spin_backoff;
	return false;
}

/*
 * Nothing to run: spin if it pays, then ask for kicks on every ring we
 * were polling and look at each once more.  True if there is work after
 * all (no sleep).
 */
static bool eng_go_idle(struct eng_thread *t)
{
	uint64_t spin_ns = eng_spin_budget(t);
	bool found = false;

	if (spin_ns && eng_spin(t, spin_ns))
		return true;
	for (struct eng_queue *eq = t->queues; eq; eq = eq->next) {
		if (!eq->notify_off || eq->halted || eq->stopping)
			continue;
		eq->notify_off = false;
		if (virtq_enable_notify(eq->vq)) {
			/* Buffers slipped in: keep polling this one. */
			virtq_disable_notify(eq->vq);
			eq->notify_off = true;
			eng_mark_ready(eq);
			found = true;
		}
	}
	return found;
}

static void eng_thread_loop(struct eng_thread *t)
{
	for (;;) {
		struct eng_queue *eq;
		unsigned int n = 0;
		int64_t timeout;
		int r;

		t->now_ns = eng_now_ns();
		reactor_dispatch(&t->r);
		/* Orphans do not hold the exit up: see orphans. */
		if (t->exiting && t->nr_attached == t->nr_orphans)
			break;
		/* Only the queues ready now: one that runs out of budget goes to the back. */
		for (eq = t->ready; eq; eq = eq->ready_next)
			n++;
		while (n-- && (eq = eng_take_ready(t)))
			eng_queue_run(eq);

		if (t->ready || t->r.defer_head) {
			timeout = 0;
		} else if (eng_go_idle(t)) {
			timeout = 0;
		} else {
			timeout = t->nr_polled ? ENG_POLL_NS : -1;
		}
		r = reactor_wait(&t->r, timeout);
		if (r < 0)
			log_error("%s: io_uring wait: %s", t->name, strerror(-r));
		if (t->nr_polled && timeout) {
			for (eq = t->queues; eq; eq = eq->next) {
				if (eq->polled)
					eng_mark_ready(eq);
			}
		}
	}
}

static void *eng_thread_main(void *arg)
{
	struct eng_thread *t = arg;
	int r;

	/*
	 * Signals belong to the daemon's main thread, but for SIGBUS: this
	 * thread touches guest memory, and a blocked fault would kill us.
	 */
	sigbus_block_other_signals();

	/* The ring is made here: with SINGLE_ISSUER only its maker may submit. */
	r = reactor_init(&t->r, ENG_RING_ENTRIES);
	if (r == 0) {
		t->ctl_ev.fn = eng_ctl_done;
		eng_arm_ctl(t);
		log_debug("%s: io_uring mode %s", t->name, reactor_mode_name(&t->r));
	}
	pthread_mutex_lock(&t->lock);
	t->init_result = r;
	t->init_done = true;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
	if (r < 0)
		return NULL;

	eng_thread_loop(t);
	reactor_exit(&t->r);
	return NULL;
}

static void eng_thread_free(struct eng_thread *t)
{
	if (t->ctl_fd >= 0)
		close(t->ctl_fd);
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->cond);
	free(t);
}

static struct eng_thread *eng_thread_new(int index, const char *name, int *err)
{
	struct eng_thread *t = calloc(1, sizeof(*t));
	int r;

	if (!t) {
		*err = -ENOMEM;
		return NULL;
	}
	t->index = index;
	snprintf(t->name, sizeof(t->name), "%s", name);
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
	t->cmds_tail = &t->cmds;
	t->ready_tail = &t->ready;
	atomic_init(&t->nr_queues, 0);
	t->ctl_fd = eventfd(0, EFD_CLOEXEC);
	if (t->ctl_fd < 0) {
		*err = -errno;
		eng_thread_free(t);
		return NULL;
	}
	r = -pthread_create(&t->tid, NULL, eng_thread_main, t);
	if (r < 0) {
		*err = r;
		eng_thread_free(t);
		return NULL;
	}
	pthread_setname_np(t->tid, t->name);
	pthread_mutex_lock(&t->lock);
	while (!t->init_done)
		pthread_cond_wait(&t->cond, &t->lock);
	r = t->init_result;
	pthread_mutex_unlock(&t->lock);
	if (r < 0) {
		pthread_join(t->tid, NULL);
		*err = r;
		eng_thread_free(t);
		return NULL;
	}
	return t;
}

static void eng_thread_stop(struct eng_thread *t)
{
	struct eng_cmd cmd = {.op = CMD_EXIT};

	eng_post(t, &cmd);
	pthread_join(t->tid, NULL);
	eng_thread_free(t);
}

/* ---- the pool ------------------------------------------------------------------ */

unsigned int eng_pool_default_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		n = 1;
	return n > ENG_DEFAULT_MAX_THREADS ? ENG_DEFAULT_MAX_THREADS : (unsigned int)n;
}

static int eng_pool_init_locked(unsigned int nr)
{
	int err = 0;

	if (pool.ready)
		return -EALREADY;
	if (nr > ENG_MAX_THREADS)
		return -EINVAL;
	pool.threads = calloc(nr ? nr : 1, sizeof(*pool.threads));
	if (!pool.threads)
		return -ENOMEM;
	for (unsigned int i = 0; i < nr; i++) {
		char name[16];

		snprintf(name, sizeof(name), "vhostd-io%u", i);
		pool.threads[i] = eng_thread_new((int)i, name, &err);
		if (!pool.threads[i]) {
			while (i--)
				eng_thread_stop(pool.threads[i]);
			free(pool.threads);
			pool.threads = NULL;
			return err;
		}
	}
	pool.nr = nr;
	pool.ready = true;
	log_debug("engine: %u I/O thread(s)%s", nr, nr ? "" : " (one per queue)");
	return 0;
}

int eng_pool_init(unsigned int nr_threads)
{
	int r;

	pthread_mutex_lock(&pool.lock);
	r = eng_pool_init_locked(nr_threads);
	pthread_mutex_unlock(&pool.lock);
	return r;
}

unsigned int eng_pool_threads(void)
{
	unsigned int n;

	pthread_mutex_lock(&pool.lock);
	n = pool.ready ? pool.nr : eng_pool_default_threads();
	pthread_mutex_unlock(&pool.lock);
	return n;
}

void eng_pool_shutdown(void)
{
	pthread_mutex_lock(&pool.lock);
	for (unsigned int i = 0; i < pool.nr; i++)
		eng_thread_stop(pool.threads[i]);
	while (pool.nr_orphan_threads)
		eng_thread_stop(pool.orphan_threads[--pool.nr_orphan_threads]);
	if (orphans.nr)
		log_warn("engine: exiting with %u stopped queue(s) whose requests never completed",
			 orphans.nr);
	free(pool.threads);
	pool.threads = NULL;
	pool.nr = 0;
	pool.ready = false;
	pthread_mutex_unlock(&pool.lock);
}

/* The thread for a new queue: the one asked for, else the least loaded. */
static int eng_pool_pick(int wanted, struct eng_thread **out)
{
	int r = 0;

	pthread_mutex_lock(&pool.lock);
	if (!pool.ready)
		r = eng_pool_init_locked(eng_pool_default_threads());
	if (r == 0 && pool.nr) {
		unsigned int best = 0;

		if (wanted >= (int)pool.nr) {
			r = -ERANGE;
		} else if (wanted >= 0) {
			best = (unsigned int)wanted;
		} else {
			for (unsigned int i = 1; i < pool.nr; i++) {
				if (atomic_load(&pool.threads[i]->nr_queues) <
				    atomic_load(&pool.threads[best]->nr_queues))
					best = i;
			}
		}
		if (r == 0) {
			*out = pool.threads[best];
			atomic_fetch_add(&(*out)->nr_queues, 1);
		}
	} else if (r == 0) {
		*out = NULL; /* a private thread */
	}
	pthread_mutex_unlock(&pool.lock);
	return r;
}

/* ---- queue start / stop (vhost-user loop thread) -------------------------------- */

static void eng_queue_free(struct eng_queue *eq)
{
	while (eq->nr_big_iovs)
		free(eq->big_iovs[--eq->nr_big_iovs]);
	free(eq->big_iovs);
	free(eq->log_iovs);
	free(eq->stage_log_iov);
	free(eq->stage_iov);
	free(eq->slot_mem);
	free(eq->batch_mem);
	free(eq->batch_log_iovs);
	free(eq);
}

static int eng_queue_slots(struct eng_queue *eq)
{
	size_t head = (eq->ops->req_size + 15) & ~(size_t)15;

	eq->inline_iov = eq->max_iov < ENG_INLINE_IOV ? eq->max_iov : ENG_INLINE_IOV;
	eq->iov_offset = head;
	eq->slot_stride = head + (size_t)eq->inline_iov * sizeof(struct iovec);
	eq->slot_stride = (eq->slot_stride + 63) & ~(size_t)63;
	eq->slot_mem = calloc(eq->num, eq->slot_stride);
	eq->stage_iov = calloc(eq->max_iov, sizeof(*eq->stage_iov));
	eq->big_iovs = calloc(eq->num, sizeof(*eq->big_iovs));
	if (!eq->slot_mem || !eq->stage_iov || !eq->big_iovs)
		return -ENOMEM;
	/* Only while a migration runs: the ring restarts when logging starts. */
	if (virtq_logging(eq->vq)) {
		eq->log_iovs = calloc((size_t)eq->num * eq->max_iov, sizeof(*eq->log_iovs));
		eq->stage_log_iov = calloc(eq->max_iov, sizeof(*eq->stage_log_iov));
		if (!eq->log_iovs || !eq->stage_log_iov)
			return -ENOMEM;
	}
	/*
	 * Large but mostly never touched (pages come as iovecs are written):
	 * a chain as long as max_iov is rare.
	 */
	if ((eq->ops->completes_in_start || eq->ops->manual_pop) && !eq->iq) {
		eq->batch_stride = head + (size_t)eq->max_iov * sizeof(struct iovec);
		eq->batch_stride = (eq->batch_stride + 63) & ~(size_t)63;
		eq->batch_mem = calloc(ENG_POP_BATCH, eq->batch_stride);
		if (!eq->batch_mem)
			return -ENOMEM;
		if (virtq_logging(eq->vq)) {
			eq->batch_log_iovs = calloc((size_t)ENG_POP_BATCH * eq->max_iov,
						    sizeof(*eq->batch_log_iovs));
			if (!eq->batch_log_iovs)
				return -ENOMEM;
		}
	}
	return 0;
}

int eng_queue_start(struct vu_queue *q, const struct eng_queue_ops *ops,
		    const struct eng_queue_config *cfg, struct eng_queue **out)
{
	struct eng_cmd cmd = {.op = CMD_ATTACH};
	struct eng_thread *t = NULL;
	struct eng_queue *eq;
	int r;

	eq = calloc(1, sizeof(*eq));
	if (!eq)
		return -ENOMEM;
	eq->ops = ops;
	eq->q = q;
	eq->vq = &q->vq;
	eq->priv = cfg->priv;
	eq->num = q->vq.num;
	eq->max_iov = cfg->max_iov;
	eq->io_thread = cfg->io_thread;
	eq->counters = cfg->counters;
	eq->iq = q->inflight;
	/* Polled queues (no kick eventfd) never sleep long anyway. */
	eq->spin_ns = q->kick_fd < 0 ? 0 : (uint64_t)cfg->poll_us * 1000;
	eq->polled = q->kick_fd < 0;
	eq->call_fd = q->call_fd;
	snprintf(eq->name, sizeof(eq->name), "%s", cfg->name);
	eq->kick_ev.fn = eng_kick_done;
	eq->call_ev.fn = eng_call_done;
	r = eng_queue_slots(eq);
	if (r < 0)
		goto fail;

	r = eng_pool_pick(cfg->io_thread, &t);
	if (r < 0)
		goto fail;
	if (!t) {
		char name[16];

		snprintf(name, sizeof(name), "io-%.9s", cfg->name);
		t = eng_thread_new(-1, name, &r);
		if (!t)
			goto fail;
		atomic_store(&t->nr_queues, 1);
	}
	cmd.eq = eq;
	r = eng_post(t, &cmd);
	if (r < 0) {
		if (t->index < 0)
			eng_thread_stop(t);
		else
			atomic_fetch_sub(&t->nr_queues, 1);
		goto fail;
	}
	*out = eq;
	return 0;

fail:
	eng_queue_free(eq);
	return r;
}

void eng_queue_stop(struct eng_queue *eq)
{
	struct eng_cmd cmd = {.op = CMD_DETACH, .eq = eq};
	struct eng_thread *t = eq->t;

	eng_post(t, &cmd);
	if (t->index < 0)
		eng_thread_stop(t);
	else
		atomic_fetch_sub(&t->nr_queues, 1);
	eng_queue_free(eq);
}

void eng_queue_stop_async(struct eng_queue *eq, void (*done)(void *arg), void *arg)
{
	eq->stop_done = done;
	eq->stop_arg = arg;
	eq->async_stop_cmd = (struct eng_cmd){.op = CMD_DETACH_ASYNC, .eq = eq};
	eng_post_nowait(eq->t, &eq->async_stop_cmd);
}

/* The stopper lets go of a stopped (or abandoned) queue's thread. */
static void eng_queue_release_thread(struct eng_thread *t, bool orphan)
{
	if (t->index >= 0) {
		if (!orphan)
			atomic_fetch_sub(&t->nr_queues, 1);
		return;
	}
	if (!orphan) {
		eng_thread_stop(t);
		return;
	}
	/* Its orphan still runs there: the thread goes when the pool does. */
	pthread_mutex_lock(&pool.lock);
	if (pool.nr_orphan_threads < ENG_MAX_THREADS)
		pool.orphan_threads[pool.nr_orphan_threads++] = t;
	else
		log_warn("%s: too many abandoned private threads; this one is never joined",
			 t->name);
	pthread_mutex_unlock(&pool.lock);
}

void eng_queue_stop_finish(struct eng_queue *eq)
{
	eng_queue_release_thread(eq->t, false);
	eng_queue_free(eq);
}

bool eng_queue_abandon(struct eng_queue *eq, unsigned int *inflight)
{
	struct eng_cmd cmd = {.op = CMD_ABANDON, .eq = eq};
	struct eng_thread *t = eq->t;
	int r;

	/* The I/O thread never blocks, so this wait is short. */
	r = eng_post(t, &cmd);
	if (r < 0) {
		*inflight = 0;
		eng_queue_stop_finish(eq);
		return false;
	}
	/* The orphan is the thread's now: @eq may already be freed. */
	*inflight = (unsigned int)r;
	eng_queue_release_thread(t, true);
	return true;
}

/* On the I/O thread: switch the call fd (eng_queue_set_call_fd). */
static int eng_swap_call_fd(struct eng_queue *eq, void *arg)
{
	int fd = *(int *)arg;

	if (eq->stopping)
		return -EBUSY;
	eq->call_fd = fd;
	/*
	 * A write still in flight goes to the old fd; then one more goes
	 * to the new one, whatever the ring's suppression state says: the
	 * front-end may have stopped listening to the old fd before that
	 * write landed, and a spurious interrupt costs the guest a look at
	 * its used ring while a lost one can hang it.
	 */
	if (fd >= 0) {
		if (eq->call_busy)
			eq->call_again = true;
		else
			eng_send_call(eq);
	}
	/* Issued now, before the caller closes the old fd (see eng_queue_orphan). */
	reactor_submit(&eq->t->r);
	return 0;
}

int eng_queue_set_call_fd(struct eng_queue *eq, int fd)
{
	return eng_queue_call(eq, eng_swap_call_fd, &fd);
}

int eng_queue_call(struct eng_queue *eq, int (*fn)(struct eng_queue *eq, void *arg), void *arg)
{
	struct eng_cmd cmd = {.op = CMD_CALL, .eq = eq, .fn = fn, .arg = arg};

	return eng_post(eq->t, &cmd);
}

void *eng_queue_priv(const struct eng_queue *eq)
{
	return eq->priv;
}

const char *eng_queue_name(const struct eng_queue *eq)
{
	return eq->name;
}

uint64_t eng_queue_now_ns(const struct eng_queue *eq)
{
	return eq->t->now_ns;
}

bool eng_queue_stopping(const struct eng_queue *eq)
{
	return eq->stopping;
}

int eng_queue_thread(const struct eng_queue *eq)
{
	return eq->t->index;
}
