// SPDX-License-Identifier: MIT
/*
 * reactor.c - one io_uring as a thread's single wait point (reactor.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "reactor.h"

static const char *const mode_names[] = {
	[REACTOR_DEFER] = "defer",
	[REACTOR_COOP] = "coop",
	[REACTOR_PLAIN] = "plain",
	[REACTOR_SQPOLL] = "sqpoll",
};

static enum reactor_mode reactor_wanted_mode(void)
{
	const char *v = getenv("VHOSTD_IO_URING");

	if (v) {
		for (unsigned int i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++) {
			if (!strcmp(v, mode_names[i]))
				return (enum reactor_mode)i;
		}
	}
	return REACTOR_DEFER;
}

static unsigned int reactor_mode_flags(enum reactor_mode mode)
{
	switch (mode) {
	case REACTOR_DEFER:
		/*
		 * Completions are posted only when this thread waits, so no
		 * IPI ever interrupts it; TASKRUN_FLAG lets a spinning thread
		 * see that some are pending (reactor_has_work()).
		 */
		return IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
		       IORING_SETUP_TASKRUN_FLAG;
	case REACTOR_COOP:
		return IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
		       IORING_SETUP_SINGLE_ISSUER;
	case REACTOR_SQPOLL:
		return IORING_SETUP_SQPOLL | IORING_SETUP_SINGLE_ISSUER;
	case REACTOR_PLAIN:
		break;
	}
	return 0;
}

int reactor_init(struct reactor *r, unsigned int entries)
{
	struct io_uring_params p;
	int ret;

	memset(r, 0, sizeof(*r));
	r->defer_tail = &r->defer_head;
	r->mode = reactor_wanted_mode();
	for (;;) {
		memset(&p, 0, sizeof(p));
		p.flags = reactor_mode_flags(r->mode) | IORING_SETUP_CQSIZE;
		p.cq_entries = entries * 4;
		if (r->mode == REACTOR_SQPOLL)
			p.sq_thread_idle = 1000; /* ms */
		ret = io_uring_queue_init_params(entries, &r->ring, &p);
		if (ret != -EINVAL || r->mode == REACTOR_PLAIN)
			break;
		log_debug("io_uring: mode %s refused, using plain", mode_names[r->mode]);
		r->mode = REACTOR_PLAIN;
	}
	if (ret < 0)
		return ret;
	if (!(p.features & IORING_FEAT_NODROP))
		log_warn("io_uring: this kernel may drop completions under load (no NODROP)");
	return 0;
}

void reactor_exit(struct reactor *r)
{
	io_uring_queue_exit(&r->ring);
}

const char *reactor_mode_name(const struct reactor *r)
{
	return mode_names[r->mode];
}

struct io_uring_sqe *reactor_sqe(struct reactor *r, struct reactor_event *ev)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);

	if (!sqe) {
		/* SQ full: hand it to the kernel now; completions are not lost (NODROP). */
		if (io_uring_submit(&r->ring) < 0)
			return NULL;
		sqe = io_uring_get_sqe(&r->ring);
		if (!sqe)
			return NULL;
	}
	io_uring_sqe_set_data(sqe, ev);
	return sqe;
}

int reactor_file_register(struct reactor *r, int fd)
{
	const char *v;

	if (r->files_refused)
		return -1;
	if (!r->files_ready) {
		v = getenv("VHOSTD_FIXED_FILES");
		if ((v && !strcmp(v, "0")) ||
		    io_uring_register_files_sparse(&r->ring, REACTOR_MAX_FILES) < 0) {
			r->files_refused = true;
			return -1;
		}
		r->files_ready = true;
	}
	for (int i = 0; i < REACTOR_MAX_FILES; i++) {
		uint64_t bit = 1ull << (i % 64);

		if (r->files_used[i / 64] & bit)
			continue;
		if (io_uring_register_files_update(&r->ring, (unsigned int)i, &fd, 1) != 1)
			return -1;
		r->files_used[i / 64] |= bit;
		return i;
	}
	return -1;
}

void reactor_file_unregister(struct reactor *r, int index)
{
	int none = -1;

	if (index < 0 || index >= REACTOR_MAX_FILES)
		return;
	io_uring_register_files_update(&r->ring, (unsigned int)index, &none, 1);
	r->files_used[index / 64] &= ~(1ull << (index % 64));
}

void reactor_defer(struct reactor *r, struct reactor_event *ev, int res)
{
	ev->res = res;
	ev->next = NULL;
	*r->defer_tail = ev;
	r->defer_tail = &ev->next;
}

int reactor_submit(struct reactor *r)
{
	int ret = io_uring_submit(&r->ring);

	if (ret == -EINTR || ret == -EAGAIN || ret == -EBUSY)
		ret = 0;
	return ret < 0 ? ret : 0;
}

int reactor_wait(struct reactor *r, int64_t timeout_ns)
{
	struct io_uring_cqe *cqe;
	int ret;

	/* Deferred events are work already: never sleep over them. */
	if (r->defer_head && timeout_ns)
		timeout_ns = 0;
	if (timeout_ns == 0) {
		ret = io_uring_submit(&r->ring);
		/* With DEFER_TASKRUN, completions appear only if we ask for events. */
		if (ret >= 0 && r->mode == REACTOR_DEFER &&
		    (IO_URING_READ_ONCE(*r->ring.sq.kflags) & IORING_SQ_TASKRUN))
			ret = io_uring_get_events(&r->ring);
	} else if (timeout_ns < 0) {
		ret = io_uring_submit_and_wait(&r->ring, 1);
	} else {
		struct __kernel_timespec ts = {
			.tv_sec = timeout_ns / 1000000000,
			.tv_nsec = timeout_ns % 1000000000,
		};

		ret = io_uring_submit_and_wait_timeout(&r->ring, &cqe, 1, &ts, NULL);
	}
	if (ret == -EINTR || ret == -ETIME || ret == -EAGAIN || ret == -EBUSY)
		ret = 0;
	return ret < 0 ? ret : 0;
}

unsigned int reactor_dispatch(struct reactor *r)
{
	struct io_uring_cqe *cqe;
	unsigned int head, n = 0;

	io_uring_for_each_cqe(&r->ring, head, cqe)
	{
		struct reactor_event *ev = io_uring_cqe_get_data(cqe);
		int res = cqe->res;
		uint32_t flags = cqe->flags;

		/*
		 * Consume the entry before the callback (head and the ring's
		 * head move together): a callback may submit, and the kernel
		 * then has room for what that completes.
		 */
		io_uring_cq_advance(&r->ring, 1);
		if (ev) {
			ev->fn(ev, res, flags);
			n++;
		}
	}

	/* Only what was deferred before now: what these defer runs next time. */
	if (r->defer_head) {
		struct reactor_event *ev = r->defer_head, *next;

		r->defer_head = NULL;
		r->defer_tail = &r->defer_head;
		for (; ev; ev = next) {
			next = ev->next;
			ev->fn(ev, ev->res, 0);
			n++;
		}
	}
	return n;
}
