// SPDX-License-Identifier: MIT
/*
 * ring.c - ring-bench: what a request through our virtqueue library costs,
 * set against the floor that any ring pays.
 *
 * SYNOPSIS
 *	ring-bench [--queue-size N] [--requests N | --seconds S] [--quick]
 *		   [--layout split|packed] [--event-idx on|off] [--batch B]
 *		   [--json] [--help]
 *
 * WHAT IS MEASURED
 *	Our driver side (virtq_drv.h) runs on one thread and our device side
 *	(virtq.h) on another, pinned to the first two CPUs we may use.  They
 *	move requests with nothing checked on the way, only a sum at the end.
 *	There is one row per layout (split, packed) x EVENT_IDX (on, off) x
 *	batch (1, 32, 64).  This is the unchecked, fast cousin of
 *	tests/stress.
 *
 *	A request is one 16-byte device-readable buffer and one 16-byte
 *	device-writable buffer in two direct descriptors: a request header and
 *	its status, the smallest shape a real device sees.  There is no
 *	indirect table (walking it would add a cost of its own), so a queue of
 *	N descriptors holds N/2 requests.  Neither side touches the buffers'
 *	bytes: that cost belongs to the device model, not to the ring.
 *
 *	Once B requests fit, the driver adds B of them and then calls
 *	kick_prepare(), which publishes all B at once (batch publish,
 *	virtq_drv.h).  The device pops up to B with one virtq_pop_batch(),
 *	fills each one (used length 16), flushes once and asks
 *	should_notify().  The driver reaps everything that get_buf() hands
 *	back.
 *
 *	Both sides busy-poll, so the figure is the ring's own cost and not the
 *	cost of an eventfd.  Each side still does what it would do before it
 *	slept.  The device calls enable_notify() when it finds the ring empty,
 *	and the driver calls enable_cb_prepare() and poll() when it has nothing
 *	to add or to reap.  Each then spins where it would have slept.
 *	kicks/req and calls/req count how often kick_prepare() and
 *	should_notify() said yes, which is how many eventfd writes a real pair
 *	would have made.
 *
 * THE BARE EXCHANGE
 *	Before every row, the same two threads move the same number of requests
 *	over two single-producer, single-consumer rings of 16-bit indices, one
 *	ring each way, each the size of the queue.  At most as many requests
 *	are in flight as our queue holds.  A producer writes up to B entries and
 *	then publishes its tail with one release store.  The consumer
 *	acquire-loads that tail and loads it again only when it has used up
 *	what it saw.  There are no descriptors, no checks and no notifications.
 *	This is the cache-line traffic that every ring pays to move a request
 *	there and back, on this machine, at this moment: the floor.  Each bare
 *	run sits right beside the row it is compared with, so machine noise
 *	affects both alike.
 *
 * OUTPUT
 *	One line per row: layout, event_idx, batch, our Mreq/s, the bare
 *	exchange's Mreq/s, ours as a percentage of bare, kicks/req and
 *	calls/req.  --json prints the same data and the raw counters as one
 *	JSON object.  The exit status is 0 only if every request submitted came
 *	back exactly once, with its own token (in both kinds of run).
 *
 * OPTIONS
 *	--queue-size N	ring entries (default 256; split needs a power of two)
 *	--requests N	requests per run (default 2000000)
 *	--seconds S	run each side S seconds instead of a fixed count
 *	--quick		a few thousand requests per run: a check, not a figure
 *	--layout L, --event-idx on|off, --batch B	run only those rows
 *	--json		machine-readable output
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common/util.h"
#include "ring_fixture.h"
#include "ring_pair.h"
#include "test_util.h"

#define REQ_BUF		 16 /* bytes in each of a request's two buffers */
#define REQ_DESCS	 2  /* descriptors per request */
#define DEFAULT_QSIZE	 256
#define DEFAULT_REQUESTS 2000000ull
#define QUICK_REQUESTS	 3000ull
#define MAX_BATCH	 64
/* Spins between yields when the peer seems to be off its CPU. */
#define YIELD_SPINS 1024
/* --seconds: requests between looks at the clock. */
#define CLOCK_EVERY 4096

static const unsigned int batches[] = {1, 32, 64};

struct bench_opts {
	uint16_t num;
	uint64_t requests;
	double seconds;
	bool json;
	int only_packed;	 /* -1: both */
	int only_event_idx;	 /* -1: both */
	unsigned int only_batch; /* 0: all */
};

/* One run's figures.  Each counter is written by one side only. */
struct bench_result {
	uint64_t requests;
	uint64_t ns;
	uint64_t kicks, kick_checks; /* driver: kick_prepare() yes / calls */
	uint64_t calls, call_checks; /* device: should_notify() yes / calls */
	uint64_t driver_sleeps;	     /* times the driver would have slept */
	uint64_t device_sleeps;	     /* times the device would have slept */
};

/* One direction of the bare exchange. */
struct bare_ring {
	_Alignas(64) uint32_t tail;   /* free-running; the producer's release store */
	_Alignas(64) uint16_t slot[]; /* num entries */
};

/* What the two threads of one run share. */
struct bench_run {
	const struct bench_opts *opts;
	bool packed, event_idx;
	unsigned int batch;
	unsigned int max_inflight; /* requests: num / REQ_DESCS */
	int cpu[2];		   /* driver, device; -1: not pinned */
	pthread_barrier_t start;
	_Alignas(64) atomic_bool stop; /* driver: all completed, device may leave */

	/* ours */
	struct virtq_drv *drv;
	void *mem; /* rings, then request buffers; gpa == hva */
	size_t mem_size;
	uint8_t *data;
	struct virtq_drv_addrs addrs;
	uint64_t dev_popped;

	/* bare */
	struct bare_ring *fwd, *back;

	_Alignas(64) struct bench_result drv_res;
	_Alignas(64) struct bench_result dev_res;
};

/* One round of a wait; now and then yield, in case the peer shares our CPU. */
static inline void spin(unsigned int *n)
{
	if (++*n % YIELD_SPINS)
		cpu_relax();
	else
		sched_yield();
}

/* The first two CPUs we may run on; -1 for both if there is only one. */
static void pick_cpus(int cpu[2])
{
	cpu_set_t set;
	int found = 0;

	cpu[0] = cpu[1] = -1;
	if (sched_getaffinity(0, sizeof(set), &set))
		return;
	for (int c = 0; c < CPU_SETSIZE && found < 2; c++) {
		if (CPU_ISSET(c, &set))
			cpu[found++] = c;
	}
	if (found < 2)
		cpu[0] = cpu[1] = -1;
}

/* Best effort: an unpinned run is noisier, not wrong. */
static void pin_self(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	(void)sched_setaffinity(0, sizeof(set), &set);
}

/*
 * The driver's side of the count: how many requests it may still start,
 * and, with --seconds, a look at the clock now and then that ends
 * submission.
 */
struct drv_budget {
	uint64_t limit;	     /* submit no more than this */
	uint64_t deadline;   /* ns; 0: fixed count */
	uint64_t next_check; /* submitted count of the next clock look */
};

static void budget_init(struct drv_budget *b, const struct bench_opts *opts, uint64_t t0)
{
	b->limit = opts->seconds > 0 ? UINT64_MAX : opts->requests;
	b->deadline = opts->seconds > 0 ? t0 + (uint64_t)(opts->seconds * 1e9) : 0;
	b->next_check = CLOCK_EVERY;
}

/* How many to add now: a batch, fewer at the very end, 0 when done. */
static unsigned int budget_want(struct drv_budget *b, uint64_t submitted, unsigned int batch)
{
	if (b->deadline && submitted >= b->next_check) {
		b->next_check = submitted + CLOCK_EVERY;
		if (test_now_ns() >= b->deadline)
			b->limit = submitted;
	}
	return b->limit - submitted < batch ? (unsigned int)(b->limit - submitted) : batch;
}

/* Every request came back once: the count, and the sum of 0 .. n-1. */
static void check_sum(const char *who, uint64_t submitted, uint64_t completed, uint64_t sum)
{
	if (completed != submitted)
		FAIL("%s: %llu submitted, %llu completed", who, (unsigned long long)submitted,
		     (unsigned long long)completed);
	if (sum != (submitted ? submitted * (submitted - 1) / 2 : 0))
		FAIL("%s: %llu requests came back with the wrong sequence numbers", who,
		     (unsigned long long)submitted);
}

/* --- ours: the library's driver side --- */

struct drv_req {
	uint64_t seq;
	bool in_flight;
};

/* Reap every completion; returns how many.  Checks only what costs nothing. */
static unsigned int ours_reap(struct bench_run *r, struct drv_req *reqs, uint16_t *free_reqs,
			      unsigned int *nr_free, uint64_t *sum)
{
	unsigned int n = 0;
	struct drv_req *q;
	uint32_t len;

	while ((q = virtq_drv_get_buf(r->drv, &len))) {
		if (q < reqs || q >= reqs + r->max_inflight || !q->in_flight || len != REQ_BUF)
			FAIL("driver: a completion we did not expect (token %p, len %u)", (void *)q,
			     len);
		q->in_flight = false;
		*sum += q->seq;
		free_reqs[(*nr_free)++] = (uint16_t)(q - reqs);
		n++;
	}
	if (virtq_drv_is_broken(r->drv))
		FAIL("driver: the queue broke");
	return n;
}

/* Add request slot @slot: its header buffer, then its status buffer. */
static void ours_add(struct bench_run *r, struct drv_req *reqs, uint16_t slot, uint64_t seq)
{
	uint64_t addr = (uint64_t)(uintptr_t)(r->data + (size_t)slot * REQ_DESCS * REQ_BUF);
	struct virtq_sg sgs[REQ_DESCS] = {
		{.addr = addr, .len = REQ_BUF},
		{.addr = addr + REQ_BUF, .len = REQ_BUF},
	};

	reqs[slot].seq = seq;
	reqs[slot].in_flight = true;
	if (virtq_drv_add_sgs(r->drv, sgs, 1, 1, &reqs[slot]))
		FAIL("driver: add_sgs refused request %llu", (unsigned long long)seq);
}

static void *ours_driver(void *arg)
{
	struct bench_run *r = arg;
	struct bench_result *res = &r->drv_res;
	struct drv_req *reqs = calloc(r->max_inflight, sizeof(*reqs));
	uint16_t *free_reqs = calloc(r->max_inflight, sizeof(*free_reqs));
	uint64_t submitted = 0, completed = 0, sum = 0, t0;
	unsigned int nr_free = 0, want;
	struct drv_budget budget;

	if (!reqs || !free_reqs)
		FAIL("out of memory");
	for (unsigned int i = r->max_inflight; i-- > 0;)
		free_reqs[nr_free++] = (uint16_t)i;
	pin_self(r->cpu[0]);
	/* Callbacks off while we poll, as a driver in its polling loop has them. */
	virtq_drv_disable_cb(r->drv);
	/* Bursts: one publish per kick_prepare(), as a burst-mode driver does. */
	virtq_drv_set_batch_publish(r->drv, true);
	pthread_barrier_wait(&r->start);
	t0 = test_now_ns();
	budget_init(&budget, r->opts, t0);

	for (;;) {
		unsigned int reaped = ours_reap(r, reqs, free_reqs, &nr_free, &sum);
		unsigned int pos, spins = 0;

		completed += reaped;
		want = budget_want(&budget, submitted, r->batch);
		if (want && nr_free >= want) {
			for (unsigned int k = 0; k < want; k++)
				ours_add(r, reqs, free_reqs[--nr_free], submitted++);
			res->kick_checks++;
			if (virtq_drv_kick_prepare(r->drv))
				res->kicks++;
			continue;
		}
		if (!want && completed == submitted)
			break;
		if (reaped)
			continue;
		/* Nothing to add or reap: where a driver would wait for an interrupt. */
		pos = virtq_drv_enable_cb_prepare(r->drv);
		if (!virtq_drv_poll(r->drv, pos)) {
			res->driver_sleeps++;
			while (!virtq_drv_poll(r->drv, pos))
				spin(&spins);
		}
		virtq_drv_disable_cb(r->drv);
	}
	res->ns = test_now_ns() - t0;
	res->requests = submitted;
	atomic_store_explicit(&r->stop, true, memory_order_release);

	check_sum("driver", submitted, completed, sum);
	CHECK_EQ(virtq_drv_num_free(r->drv), r->opts->num);
	free(reqs);
	free(free_reqs);
	return NULL;
}

/* --- ours: the library's device side --- */

/* The device's queue over the driver's block: identity map, gpa == hva. */
static void ours_device_init(struct bench_run *r, struct virtq *vq)
{
	struct mem_region region = {
		.gpa = (uint64_t)(uintptr_t)r->mem,
		.size = r->mem_size,
		.uva = (uint64_t)(uintptr_t)r->mem,
		.hva = r->mem,
	};
	struct memmap *map = memmap_new(&region, 1);
	struct virtq_config vc;
	int ret;

	if (!map)
		FAIL("memmap_new: %m");
	if (ring_pair_config(
		    &vc, map, &r->addrs, r->opts->num,
		    fix_features(r->packed, r->event_idx ? FEAT(VIRTIO_RING_F_EVENT_IDX) : 0),
		    "bench:q0"))
		FAIL("the driver's rings are outside its block");
	ret = virtq_init(vq, &vc);
	if (ret)
		FAIL("virtq_init: %d", ret);
	memmap_put(map); /* the queue holds its own */
}

/* Pop up to a batch in one call; returns how many. */
static unsigned int ours_pop(struct bench_run *r, struct virtq *vq, struct virtq_elem *const *elems,
			     struct iovec (*iov)[REQ_DESCS])
{
	int ret;

	for (unsigned int i = 0; i < r->batch; i++)
		virtq_elem_init(elems[i], iov[i], REQ_DESCS);
	ret = virtq_pop_batch(vq, elems, r->batch);
	if (ret < 0 || vq->broken)
		FAIL("device: virtq_pop_batch refused our own driver's ring: %s",
		     virtq_strerror(vq->error));
	return (unsigned int)ret;
}

static void *ours_device(void *arg)
{
	struct bench_run *r = arg;
	struct bench_result *res = &r->dev_res;
	struct iovec iov[MAX_BATCH][REQ_DESCS];
	struct virtq_elem elems[MAX_BATCH], *elemp[MAX_BATCH];
	struct virtq vq;

	for (unsigned int i = 0; i < MAX_BATCH; i++)
		elemp[i] = &elems[i];
	pin_self(r->cpu[1]);
	ours_device_init(r, &vq);
	pthread_barrier_wait(&r->start);

	for (;;) {
		unsigned int n = ours_pop(r, &vq, elemp, iov), spins = 0;

		if (n) {
			/* As if the device wrote each status buffer whole. */
			for (unsigned int i = 0; i < n; i++)
				virtq_fill(&vq, &elems[i], elems[i].in_len);
			virtq_flush(&vq);
			res->call_checks++;
			if (virtq_should_notify(&vq))
				res->calls++;
			continue;
		}
		if (atomic_load_explicit(&r->stop, memory_order_acquire))
			break;
		/* Empty: what a device does before it sleeps, then spin instead. */
		if (virtq_enable_notify(&vq)) {
			virtq_disable_notify(&vq);
			continue;
		}
		res->device_sleeps++;
		while (virtq_avail_empty(&vq) &&
		       !atomic_load_explicit(&r->stop, memory_order_relaxed))
			spin(&spins);
		virtq_disable_notify(&vq);
	}
	if (vq.broken)
		FAIL("device: the queue broke: %s", virtq_strerror(vq.error));
	CHECK_EQ(vq.inflight, 0);
	r->dev_popped = vq.nr_popped;
	virtq_destroy(&vq);
	return NULL;
}

/* --- the bare exchange: indices there and back, nothing else --- */

static void bare_publish(struct bare_ring *ring, uint32_t tail)
{
	__atomic_store_n(&ring->tail, tail, __ATOMIC_RELEASE);
}

static uint32_t bare_peek(const struct bare_ring *ring)
{
	return __atomic_load_n(&ring->tail, __ATOMIC_ACQUIRE);
}

static void *bare_driver(void *arg)
{
	struct bench_run *r = arg;
	struct bench_result *res = &r->drv_res;
	unsigned int num = r->opts->num, nr_free = 0, want, fwd_pos = 0, back_pos = 0;
	uint64_t *seq = calloc(r->max_inflight, sizeof(*seq));
	uint16_t *free_idx = calloc(r->max_inflight, sizeof(*free_idx));
	uint64_t submitted = 0, completed = 0, sum = 0, t0;
	uint32_t fwd_tail = 0, back_head = 0;
	struct drv_budget budget;
	unsigned int spins = 0;

	if (!seq || !free_idx)
		FAIL("out of memory");
	for (unsigned int i = r->max_inflight; i-- > 0;)
		free_idx[nr_free++] = (uint16_t)i;
	pin_self(r->cpu[0]);
	pthread_barrier_wait(&r->start);
	t0 = test_now_ns();
	budget_init(&budget, r->opts, t0);

	for (;;) {
		uint32_t back_tail = bare_peek(r->back);
		bool reaped = back_head != back_tail;

		for (; back_head != back_tail; back_head++) {
			uint16_t i = r->back->slot[back_pos];

			back_pos = back_pos + 1 == num ? 0 : back_pos + 1;
			sum += seq[i];
			free_idx[nr_free++] = i;
			completed++;
		}
		want = budget_want(&budget, submitted, r->batch);
		if (want && nr_free >= want) {
			for (unsigned int k = 0; k < want; k++) {
				uint16_t i = free_idx[--nr_free];

				seq[i] = submitted++;
				r->fwd->slot[fwd_pos] = i;
				fwd_pos = fwd_pos + 1 == num ? 0 : fwd_pos + 1;
			}
			fwd_tail += want;
			bare_publish(r->fwd, fwd_tail);
			continue;
		}
		if (!want && completed == submitted)
			break;
		if (!reaped)
			spin(&spins);
	}
	res->ns = test_now_ns() - t0;
	res->requests = submitted;
	atomic_store_explicit(&r->stop, true, memory_order_release);

	check_sum("bare driver", submitted, completed, sum);
	free(seq);
	free(free_idx);
	return NULL;
}

static void *bare_device(void *arg)
{
	struct bench_run *r = arg;
	unsigned int num = r->opts->num, pos = 0, back_pos = 0, spins = 0;
	uint32_t head = 0, seen = 0, back_tail = 0;

	pin_self(r->cpu[1]);
	pthread_barrier_wait(&r->start);
	for (;;) {
		uint32_t n;

		/* Like a ring's shadow index: look again only once all seen is used. */
		if (head == seen)
			seen = bare_peek(r->fwd);
		n = seen - head;
		if (!n) {
			if (atomic_load_explicit(&r->stop, memory_order_acquire))
				break;
			spin(&spins);
			continue;
		}
		if (n > r->batch)
			n = r->batch;
		for (uint32_t k = 0; k < n; k++) {
			r->back->slot[back_pos] = r->fwd->slot[pos];
			pos = pos + 1 == num ? 0 : pos + 1;
			back_pos = back_pos + 1 == num ? 0 : back_pos + 1;
		}
		head += n;
		back_tail += n;
		bare_publish(r->back, back_tail);
	}
	r->dev_popped = head;
	return NULL;
}

/* --- runs and rows --- */

static void run_threads(struct bench_run *r, void *(*driver)(void *), void *(*device)(void *))
{
	pthread_t drv, dev;

	if (pthread_barrier_init(&r->start, NULL, 2))
		FAIL("pthread_barrier_init");
	if (pthread_create(&dev, NULL, device, r) || pthread_create(&drv, NULL, driver, r))
		FAIL("pthread_create");
	pthread_join(drv, NULL);
	pthread_join(dev, NULL);
	pthread_barrier_destroy(&r->start);
	/* The device saw each request once: no more, no fewer. */
	CHECK_EQ(r->dev_popped, r->drv_res.requests);
}

static struct bare_ring *bare_ring_new(uint16_t num)
{
	size_t size = vring_align(sizeof(struct bare_ring) + (size_t)num * sizeof(uint16_t), 64);
	struct bare_ring *ring = aligned_alloc(64, size);

	if (!ring)
		FAIL("out of memory");
	memset(ring, 0, size);
	return ring;
}

static void run_bare(struct bench_run *r)
{
	r->fwd = bare_ring_new(r->opts->num);
	r->back = bare_ring_new(r->opts->num);
	run_threads(r, bare_driver, bare_device);
	free(r->fwd);
	free(r->back);
}

static void run_ours(struct bench_run *r)
{
	uint64_t features =
		fix_features(r->packed, r->event_idx ? FEAT(VIRTIO_RING_F_EVENT_IDX) : 0);
	size_t ring = virtq_drv_mem_size(r->opts->num, r->packed, 0);

	if (!ring)
		FAIL("queue size %u is not valid for a %s ring", r->opts->num,
		     r->packed ? "packed" : "split");
	/* Rings, then each request's two buffers, one after the other. */
	ring = vring_align(ring, 64);
	r->mem_size = ring + (size_t)r->max_inflight * REQ_DESCS * REQ_BUF;
	r->mem =
		mmap(NULL, r->mem_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r->mem == MAP_FAILED)
		FAIL("mmap: %m");
	r->data = (uint8_t *)r->mem + ring;
	/* Identity map: the device knows the block by our own address. */
	r->drv = virtq_drv_new(r->opts->num, features, r->mem, (uint64_t)(uintptr_t)r->mem, 0);
	if (!r->drv)
		FAIL("virtq_drv_new: %m");
	virtq_drv_get_addrs(r->drv, &r->addrs);
	run_threads(r, ours_driver, ours_device);
	virtq_drv_free(r->drv);
	munmap(r->mem, r->mem_size);
}

struct bench_row {
	bool packed, event_idx;
	unsigned int batch;
	struct bench_result ours, bare;
};

static struct bench_result merged(const struct bench_run *r)
{
	struct bench_result m = r->drv_res;

	m.calls = r->dev_res.calls;
	m.call_checks = r->dev_res.call_checks;
	m.device_sleeps = r->dev_res.device_sleeps;
	return m;
}

static void run_row(const struct bench_opts *opts, const int cpu[2], struct bench_row *row)
{
	struct bench_run r = {
		.opts = opts,
		.packed = row->packed,
		.event_idx = row->event_idx,
		.batch = row->batch,
		.max_inflight = opts->num / REQ_DESCS,
		.cpu = {cpu[0], cpu[1]},
	};

	/* Bare first, then ours, back to back: noise hits both alike. */
	run_bare(&r);
	row->bare = merged(&r);
	memset(&r.drv_res, 0, sizeof(r.drv_res));
	memset(&r.dev_res, 0, sizeof(r.dev_res));
	atomic_store(&r.stop, false);
	run_ours(&r);
	row->ours = merged(&r);
}

static double mreqs(const struct bench_result *res)
{
	return res->ns ? (double)res->requests * 1e3 / (double)res->ns : 0;
}

static double per_req(uint64_t n, const struct bench_result *res)
{
	return res->requests ? (double)n / (double)res->requests : 0;
}

static double percent(const struct bench_row *row)
{
	double bare = mreqs(&row->bare);

	return bare > 0 ? 100 * mreqs(&row->ours) / bare : 0;
}

static void print_table_header(const struct bench_opts *opts, const int cpu[2])
{
	printf("# ring-bench: queue size %u, %s per run, driver on CPU %d, device on CPU %d\n",
	       opts->num, opts->seconds > 0 ? "fixed time" : "fixed count", cpu[0], cpu[1]);
	printf("%-6s %-9s %5s %12s %12s %7s %9s %9s\n", "layout", "event_idx", "batch",
	       "ours_Mreq/s", "bare_Mreq/s", "%bare", "kicks/req", "calls/req");
}

static void print_table_row(const struct bench_row *row)
{
	printf("%-6s %-9s %5u %12.2f %12.2f %6.1f%% %9.4f %9.4f\n",
	       row->packed ? "packed" : "split", row->event_idx ? "on" : "off", row->batch,
	       mreqs(&row->ours), mreqs(&row->bare), percent(row),
	       per_req(row->ours.kicks, &row->ours), per_req(row->ours.calls, &row->ours));
	fflush(stdout);
}

static void print_json_row(const struct bench_row *row, bool first)
{
	const struct bench_result *o = &row->ours, *b = &row->bare;

	printf("%s\n    {\"layout\": \"%s\", \"event_idx\": %s, \"batch\": %u, "
	       "\"ours_mreqs\": %.4f, \"bare_mreqs\": %.4f, \"percent_of_bare\": %.2f, "
	       "\"kicks_per_req\": %.6f, \"calls_per_req\": %.6f, "
	       "\"ours_requests\": %llu, \"ours_ns\": %llu, \"bare_requests\": %llu, "
	       "\"bare_ns\": %llu, \"kicks\": %llu, \"kick_checks\": %llu, \"calls\": %llu, "
	       "\"call_checks\": %llu, \"driver_sleeps\": %llu, \"device_sleeps\": %llu}",
	       first ? "" : ",", row->packed ? "packed" : "split",
	       row->event_idx ? "true" : "false", row->batch, mreqs(o), mreqs(b), percent(row),
	       per_req(o->kicks, o), per_req(o->calls, o), (unsigned long long)o->requests,
	       (unsigned long long)o->ns, (unsigned long long)b->requests,
	       (unsigned long long)b->ns, (unsigned long long)o->kicks,
	       (unsigned long long)o->kick_checks, (unsigned long long)o->calls,
	       (unsigned long long)o->call_checks, (unsigned long long)o->driver_sleeps,
	       (unsigned long long)o->device_sleeps);
}

static bool row_wanted(const struct bench_opts *opts, const struct bench_row *row)
{
	return (opts->only_packed < 0 || opts->only_packed == row->packed) &&
	       (opts->only_event_idx < 0 || opts->only_event_idx == row->event_idx) &&
	       (!opts->only_batch || opts->only_batch == row->batch);
}

static void run_all(const struct bench_opts *opts)
{
	unsigned int nr_batches = opts->only_batch ? 1 : ARRAY_SIZE(batches);
	bool first = true;
	int cpu[2];

	pick_cpus(cpu);
	if (opts->json)
		printf("{\"queue_size\": %u, \"requests\": %llu, \"seconds\": %g, "
		       "\"cpus\": [%d, %d], \"rows\": [",
		       opts->num, (unsigned long long)opts->requests, opts->seconds, cpu[0],
		       cpu[1]);
	else
		print_table_header(opts, cpu);
	for (unsigned int b = 0; b < nr_batches; b++) {
		for (unsigned int m = 0; m < 4; m++) {
			struct bench_row row = {
				.packed = m & 2,
				.event_idx = !(m & 1),
				.batch = opts->only_batch ? opts->only_batch : batches[b],
			};

			if (!row_wanted(opts, &row))
				continue;
			run_row(opts, cpu, &row);
			if (opts->json)
				print_json_row(&row, first);
			else
				print_table_row(&row);
			first = false;
		}
	}
	if (opts->json)
		printf("\n]}\n");
}

static void usage(FILE *f, const char *prog)
{
	fprintf(f,
		"usage: %s [--queue-size N] [--requests N | --seconds S] [--quick]\n"
		"          [--layout split|packed] [--event-idx on|off] [--batch B] [--json]\n"
		"\n"
		"Our virtqueue driver and device sides on two pinned threads, busy-polling,\n"
		"split/packed x EVENT_IDX on/off x batch 1/32/64, each row beside a bare\n"
		"exchange of 16-bit indices over two SPSC rings of the queue's size between\n"
		"the same threads (the floor any ring pays).  Prints our Mreq/s, bare Mreq/s,\n"
		"ours as %% of bare, and how many kicks and calls a real pair would make.\n"
		"\n"
		"  --queue-size N  ring entries (default %u); a request takes 2 descriptors\n"
		"  --requests N    requests per run (default %llu)\n"
		"  --seconds S     each run lasts S seconds instead\n"
		"  --quick         %llu requests per run: checks the counts, no figures\n"
		"  --layout, --event-idx, --batch   run only the rows that match\n"
		"  --json          one JSON object instead of the table\n",
		prog, DEFAULT_QSIZE, DEFAULT_REQUESTS, QUICK_REQUESTS);
}

static int parse_on_off(const char *s, const char *on, const char *off)
{
	if (!strcmp(s, on))
		return 1;
	if (!strcmp(s, off))
		return 0;
	return -2;
}

int main(int argc, char **argv)
{
	/* clang-format off */
	static const struct option longopts[] = {
		{ "queue-size", required_argument, NULL, 'q' },
		{ "requests", required_argument, NULL, 'n' },
		{ "seconds", required_argument, NULL, 's' },
		{ "quick", no_argument, NULL, 'Q' },
		{ "layout", required_argument, NULL, 'l' },
		{ "event-idx", required_argument, NULL, 'e' },
		{ "batch", required_argument, NULL, 'b' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	/* clang-format on */
	struct bench_opts opts = {
		.num = DEFAULT_QSIZE,
		.requests = DEFAULT_REQUESTS,
		.only_packed = -1,
		.only_event_idx = -1,
	};
	unsigned long v;
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'q':
			v = strtoul(optarg, &end, 0);
			if (*end || v < 2 || v > VIRTQ_MAX_SIZE)
				FAIL("--queue-size: 2..%u", VIRTQ_MAX_SIZE);
			opts.num = (uint16_t)v;
			break;
		case 'n':
			opts.requests = strtoull(optarg, &end, 0);
			if (*end || !opts.requests)
				FAIL("--requests: a positive count");
			break;
		case 's':
			opts.seconds = strtod(optarg, &end);
			if (*end || !(opts.seconds > 0))
				FAIL("--seconds: a positive number");
			break;
		case 'Q':
			opts.requests = QUICK_REQUESTS;
			opts.seconds = 0;
			break;
		case 'l':
			opts.only_packed = parse_on_off(optarg, "packed", "split");
			if (opts.only_packed < -1)
				FAIL("--layout: split or packed");
			break;
		case 'e':
			opts.only_event_idx = parse_on_off(optarg, "on", "off");
			if (opts.only_event_idx < -1)
				FAIL("--event-idx: on or off");
			break;
		case 'b':
			v = strtoul(optarg, &end, 0);
			if (*end || !v || v > MAX_BATCH)
				FAIL("--batch: 1..%u", MAX_BATCH);
			opts.only_batch = (unsigned int)v;
			break;
		case 'j':
			opts.json = true;
			break;
		case 'h':
			usage(stdout, argv[0]);
			return 0;
		default:
			usage(stderr, argv[0]);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr, argv[0]);
		return 2;
	}
	/* Every batch must fit the queue, or it could never be added whole. */
	if ((opts.only_batch ? opts.only_batch : MAX_BATCH) > opts.num / REQ_DESCS)
		FAIL("--queue-size %u holds %u requests, fewer than a batch", opts.num,
		     opts.num / REQ_DESCS);
	/* 2.7: a split ring's size is a power of two; say so before any row runs. */
	if (opts.only_packed != 1 && (opts.num & (opts.num - 1)))
		FAIL("--queue-size %u: split rings need a power of two (or --layout packed)",
		     opts.num);
	run_all(&opts);
	return 0;
}
