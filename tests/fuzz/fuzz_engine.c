// SPDX-License-Identifier: MIT
/*
 * fuzz_engine.c - the synchronous engine of the fuzz harnesses (see
 * fuzz_engine.h for why it exists and what it promises).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "fuzz_engine.h"

struct eng_queue {
	const struct eng_queue_ops *ops;
	struct vu_queue *q;
	struct virtq *vq;
	void *priv;
	char name[48];
	unsigned int num, max_iov;
	size_t stride, iov_off;
	void *slots;
	struct virtq_elem stage;
	struct iovec *stage_iov;
	unsigned int inflight, nr_filled;
	bool halted, woken;
	bool detached; /* eng_queue_stop_async() ran; eng_queue_stop_finish() frees */
	struct eng_queue_counters *counters;
	struct eng_queue *next, **pprev;
};

static pthread_mutex_t big_lock;
static pthread_once_t big_once = PTHREAD_ONCE_INIT;
static struct eng_queue *queues;
static unsigned int nr_queues;
/* Never waited on: the null back-end completes at once and never submits. */
static struct reactor fake_reactor;

static void big_lock_init(void)
{
	pthread_mutexattr_t a;

	pthread_mutexattr_init(&a);
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&big_lock, &a);
	pthread_mutexattr_destroy(&a);
}

void fuzz_eng_lock(void)
{
	pthread_once(&big_once, big_lock_init);
	pthread_mutex_lock(&big_lock);
}

void fuzz_eng_unlock(void)
{
	pthread_mutex_unlock(&big_lock);
}

uint64_t eng_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int eng_pool_init(unsigned int nr_threads)
{
	(void)nr_threads;
	return 0;
}

unsigned int eng_pool_default_threads(void)
{
	return 1;
}

/* Like --io-threads 0: one private "thread" (the caller) per queue. */
unsigned int eng_pool_threads(void)
{
	return 0;
}

void eng_pool_shutdown(void)
{
}

static struct eng_req *slot(struct eng_queue *eq, unsigned int i)
{
	return (struct eng_req *)((char *)eq->slots + (size_t)i * eq->stride);
}

static void publish(struct eng_queue *eq)
{
	if (!eq->nr_filled)
		return;
	virtq_flush(eq->vq);
	eq->nr_filled = 0;
	/* The real engine writes call_fd through io_uring; the harness has no guest to wake. */
	(void)virtq_should_notify(eq->vq);
	if (eq->counters)
		atomic_fetch_add_explicit(&eq->counters->notifies, 1, memory_order_relaxed);
}

void eng_req_complete(struct eng_queue *eq, struct eng_req *req, uint32_t used_len)
{
	if (!req->busy) {
		log_error("fuzz engine: %s: a request completed twice", eq->name);
		abort();
	}
	virtq_fill(eq->vq, &req->elem, used_len);
	req->busy = false;
	eq->inflight--;
	eq->nr_filled++;
}

void eng_queue_halt(struct eng_queue *eq, const char *why)
{
	char msg[160];

	if (eq->halted)
		return;
	eq->halted = true;
	snprintf(msg, sizeof(msg), "%s: %s", eq->name, why);
	vu_dev_set_broken(eq->q->dev, msg);
}

void eng_queue_wake(struct eng_queue *eq)
{
	eq->woken = true;
}

static int pop_one(struct eng_queue *eq)
{
	struct virtq_elem *e = &eq->stage;
	struct eng_req *req;
	unsigned int n;
	int r;

	virtq_elem_init(e, eq->stage_iov, eq->max_iov);
	r = virtq_pop(eq->vq, e);
	if (r <= 0) {
		if (r < 0)
			eng_queue_halt(eq, virtq_strerror(eq->vq->error));
		return r;
	}
	req = e->id < eq->num ? slot(eq, e->id) : NULL;
	if (!req || req->busy) {
		eng_queue_halt(eq, "descriptor head out of range or already in flight");
		virtq_fill(eq->vq, e, 0);
		eq->nr_filled++;
		return -EIO;
	}
	n = e->out_num + e->in_num;
	req->elem = *e;
	req->elem.iov = (struct iovec *)((char *)req + eq->iov_off);
	memcpy(req->elem.iov, e->iov, (size_t)n * sizeof(struct iovec));
	req->busy = true;
	eq->inflight++;
	eq->ops->start(eq, req);
	return eq->halted ? -EIO : 1; /* as engine.c: a halted queue pops no more */
}

int eng_queue_pop(struct eng_queue *eq)
{
	if (eq->halted)
		return -EIO;
	return pop_one(eq);
}

static void reap(struct eng_queue *eq)
{
	eq->woken = false;
	if (eq->ops->reap)
		eq->ops->reap(eq);
}

/*
 * A multi-step request (WRITE SAME, UNMAP: one back-end operation after
 * another) wakes its queue once per step, and the real engine gives each
 * wake a pass; a few hundred steps are normal.  Far more, and the model
 * wakes itself without end: the caller's wait for idle reports the hang.
 */
#define FUZZ_ENG_MAX_WAKES 100000

static void reap_woken(struct eng_queue *eq)
{
	for (unsigned int i = 0; i < FUZZ_ENG_MAX_WAKES && eq->woken; i++)
		reap(eq);
}

unsigned int fuzz_eng_run(struct eng_queue *eq)
{
	unsigned int popped = 0;

	fuzz_eng_lock();
	reap(eq);
	if (!eq->halted && !eq->ops->manual_pop) {
		/* A ring holds at most num chains; completions may make room for a few more. */
		while (popped < 4 * eq->num && pop_one(eq) > 0) {
			popped++;
			if (popped % 16 == 0) {
				reap(eq);
				publish(eq);
			}
		}
		reap(eq);
	}
	reap_woken(eq);
	publish(eq);
	fuzz_eng_unlock();
	return popped;
}

unsigned int fuzz_eng_run_all(void)
{
	unsigned int total = 0;

	fuzz_eng_lock();
	for (unsigned int round = 0; round < 4; round++) {
		unsigned int n = 0;

		for (struct eng_queue *eq = queues; eq; eq = eq->next)
			n += fuzz_eng_run(eq);
		total += n;
		if (!n)
			break;
	}
	fuzz_eng_unlock();
	return total;
}

/*
 * Has FUZZ_ENG_WAIT_MS passed since @start?  By the clock, not by counting
 * sleeps: a 50 us nanosleep takes twice that or more, and libFuzzer's own
 * 10 s alarm must not fire before our clearer message.
 */
static bool waited_too_long(uint64_t start)
{
	return eng_now_ns() - start > (uint64_t)FUZZ_ENG_WAIT_MS * 1000000;
}

bool fuzz_eng_wait_idle(void)
{
	for (uint64_t start = eng_now_ns(); !waited_too_long(start);) {
		unsigned int n = 0;

		fuzz_eng_lock();
		for (struct eng_queue *eq = queues; eq; eq = eq->next) {
			/* Woken by another thread (a TMF's last command) or a step. */
			if (eq->woken) {
				reap_woken(eq);
				publish(eq);
			}
			n += eq->inflight;
		}
		fuzz_eng_unlock();
		if (!n)
			return true;
		nanosleep(&(struct timespec){.tv_nsec = 50000}, NULL);
	}
	return false;
}

unsigned int fuzz_eng_inflight(const struct eng_queue *eq)
{
	return eq->inflight;
}

bool fuzz_eng_halted(const struct eng_queue *eq)
{
	return eq->halted;
}

unsigned int fuzz_eng_nr_queues(void)
{
	return nr_queues;
}

/*
 * The slot arrays of the last queues stopped are kept for the next starts:
 * harnesses start and stop their queues on every input, and a fresh calloc
 * of a few hundred KiB (page faults, ASan's allocator) cost more than the
 * request parser under test.  Zeroed again on reuse, as calloc would.
 */
#define NR_SPARE 8

static struct {
	void *p;
	size_t size;
} spare[NR_SPARE];

static void *slots_alloc(size_t size)
{
	for (int i = 0; i < NR_SPARE; i++) {
		void *p = spare[i].p;

		if (p && spare[i].size >= size) {
			spare[i].p = NULL;
			memset(p, 0, size);
			return p;
		}
	}
	return calloc(1, size);
}

static void slots_free(void *p, size_t size)
{
	int smallest = 0;

	if (!p)
		return;
	for (int i = 0; i < NR_SPARE; i++) {
		if (!spare[i].p) {
			smallest = i;
			break;
		}
		if (spare[i].size < spare[smallest].size)
			smallest = i;
	}
	if (spare[smallest].p && spare[smallest].size >= size) {
		free(p);
		return;
	}
	free(spare[smallest].p);
	spare[smallest].p = p;
	spare[smallest].size = size;
}

static void queue_free(struct eng_queue *eq)
{
	free(eq->stage_iov);
	fuzz_eng_lock();
	slots_free(eq->slots, (size_t)eq->num * eq->stride);
	fuzz_eng_unlock();
	free(eq);
}

int eng_queue_start(struct vu_queue *q, const struct eng_queue_ops *ops,
		    const struct eng_queue_config *cfg, struct eng_queue **out)
{
	struct eng_queue *eq = calloc(1, sizeof(*eq));
	int r;

	if (!eq)
		return -ENOMEM;
	eq->ops = ops;
	eq->q = q;
	eq->vq = &q->vq;
	eq->priv = cfg->priv;
	eq->num = q->vq.num;
	eq->max_iov = cfg->max_iov;
	eq->counters = cfg->counters;
	snprintf(eq->name, sizeof(eq->name), "%s", cfg->name);
	eq->iov_off = (ops->req_size + 15) & ~(size_t)15;
	eq->stride = eq->iov_off + (size_t)eq->max_iov * sizeof(struct iovec);
	fuzz_eng_lock();
	eq->slots = slots_alloc((size_t)eq->num * eq->stride);
	fuzz_eng_unlock();
	eq->stage_iov = calloc(eq->max_iov ? eq->max_iov : 1, sizeof(struct iovec));
	if (!eq->slots || !eq->stage_iov) {
		queue_free(eq);
		return -ENOMEM;
	}
	fuzz_eng_lock();
	r = ops->attach ? ops->attach(eq, &fake_reactor) : 0;
	if (r < 0) {
		fuzz_eng_unlock();
		queue_free(eq);
		return r;
	}
	eq->next = queues;
	eq->pprev = &queues;
	if (queues)
		queues->pprev = &eq->next;
	queues = eq;
	nr_queues++;
	fuzz_eng_unlock();
	*out = eq;
	return 0;
}

/* Drain (the null back-end finishes by the next reap), publish, detach, unlink. */
static void drain_detach(struct eng_queue *eq)
{
	fuzz_eng_lock();
	/*
	 * The null back-end has finished everything by the next reap; a
	 * virtio-scsi TMF completes from the TMF thread, which needs the lock.
	 */
	for (uint64_t start = eng_now_ns(); eq->inflight && !waited_too_long(start);) {
		reap(eq);
		if (!eq->inflight)
			break;
		fuzz_eng_unlock();
		nanosleep(&(struct timespec){.tv_nsec = 50000}, NULL);
		fuzz_eng_lock();
	}
	if (eq->inflight) {
		log_error("fuzz engine: %s: %u request(s) still in flight at stop", eq->name,
			  eq->inflight);
		abort();
	}
	publish(eq);
	if (eq->ops->detach)
		eq->ops->detach(eq);
	*eq->pprev = eq->next;
	if (eq->next)
		eq->next->pprev = eq->pprev;
	nr_queues--;
	fuzz_eng_unlock();
}

void eng_queue_stop(struct eng_queue *eq)
{
	drain_detach(eq);
	queue_free(eq);
}

/* Synchronous here too: @done runs before this returns, as it may on a real I/O thread. */
void eng_queue_stop_async(struct eng_queue *eq, void (*done)(void *arg), void *arg)
{
	drain_detach(eq);
	eq->detached = true;
	if (done)
		done(arg);
}

void eng_queue_stop_finish(struct eng_queue *eq)
{
	queue_free(eq);
}

/* Every stop has finished by the time anyone could give up on it. */
bool eng_queue_abandon(struct eng_queue *eq, unsigned int *inflight)
{
	if (inflight)
		*inflight = 0;
	if (!eq->detached)
		drain_detach(eq);
	queue_free(eq);
	return false;
}

/* Interrupts are vu_queue_notify() calls here: no fd to swap. */
int eng_queue_set_call_fd(struct eng_queue *eq, int fd)
{
	(void)eq;
	(void)fd;
	return 0;
}

bool eng_queue_stopping(const struct eng_queue *eq)
{
	return eq->detached;
}

int eng_queue_call(struct eng_queue *eq, int (*fn)(struct eng_queue *eq, void *arg), void *arg)
{
	int r;

	fuzz_eng_lock();
	r = fn(eq, arg);
	fuzz_eng_unlock();
	return r;
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
	(void)eq;
	return eng_now_ns();
}

int eng_queue_thread(const struct eng_queue *eq)
{
	(void)eq;
	return -1;
}
