/* SPDX-License-Identifier: MIT */
/*
 * reactor.h - one io_uring as a thread's single wait point.
 *
 * A reactor belongs to one thread: the thread that calls reactor_init() is
 * the only one that may touch it afterwards (the ring is created with
 * IORING_SETUP_SINGLE_ISSUER where the kernel has it).  Everything the
 * thread waits for is an SQE whose user_data is a struct reactor_event:
 * a guest's kick (a read of its eventfd), a back-end's I/O, a command
 * posted by another thread.  reactor_dispatch() calls each finished
 * event's callback, and also the events that were deferred with
 * reactor_defer() - work that completes without the kernel (the null
 * back-end) and must not run inside the code that started it.
 *
 * The CQ ring is larger than the SQ ring, and the kernel's NODROP feature
 * (5.5+) keeps completions that still do not fit, so a thread can have
 * more operations in flight than its ring has entries.
 */
#ifndef VHOSTD_COMMON_REACTOR_H
#define VHOSTD_COMMON_REACTOR_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

struct reactor_event;

/* @res is the CQE's result (or reactor_defer()'s), @flags its flags. */
typedef void (*reactor_fn)(struct reactor_event *ev, int res, uint32_t flags);

struct reactor_event {
	reactor_fn fn;
	struct reactor_event *next; /* on the deferred list */
	int res;		    /* deferred result */
};

/* How the ring is set up: measured in bench/, chosen with VHOSTD_IO_URING. */
enum reactor_mode {
	REACTOR_DEFER,	/* SINGLE_ISSUER + DEFER_TASKRUN: completions run when we wait */
	REACTOR_COOP,	/* COOP_TASKRUN: no IPIs to interrupt a busy thread */
	REACTOR_PLAIN,	/* no flags */
	REACTOR_SQPOLL, /* a kernel thread polls the SQ (burns a core while busy) */
};

/* Registered files per reactor (a device's image takes one or two). */
#define REACTOR_MAX_FILES 256

struct reactor {
	struct io_uring ring;
	struct reactor_event *defer_head, **defer_tail;
	enum reactor_mode mode;
	bool files_ready;   /* the sparse file table is registered */
	bool files_refused; /* ... or the kernel said no, or VHOSTD_FIXED_FILES=0 */
	uint64_t files_used[REACTOR_MAX_FILES / 64];
};

/*
 * Set up a ring of @entries SQEs (CQ ring four times that) in the mode
 * VHOSTD_IO_URING asks for (defer, coop, plain, sqpoll; default defer),
 * falling back to plain if the kernel refuses.  Call it on the thread
 * that will use the reactor.  0 or -errno.
 */
int reactor_init(struct reactor *r, unsigned int entries);
void reactor_exit(struct reactor *r);
const char *reactor_mode_name(const struct reactor *r);

/*
 * An SQE whose completion calls @ev (user_data = @ev; NULL: completion
 * ignored).  Submits what is queued when the SQ ring is full, so it fails
 * only if the kernel refuses that submission: NULL then.
 */
struct io_uring_sqe *reactor_sqe(struct reactor *r, struct reactor_event *ev);

/*
 * Register @fd in the ring's file table (IOSQE_FIXED_FILE saves the
 * kernel a file lookup and reference per operation): its index, or -1
 * when files cannot be registered (then use @fd itself).
 */
int reactor_file_register(struct reactor *r, int fd);
void reactor_file_unregister(struct reactor *r, int index);

/*
 * Submit what is queued now, without waiting: for an SQE that must reach
 * the kernel before the caller's thread lets another one close its fd
 * (a submitted operation holds its own reference to the file).
 */
int reactor_submit(struct reactor *r);

/* Call @ev->fn(@ev, @res, 0) from the next reactor_dispatch(). */
void reactor_defer(struct reactor *r, struct reactor_event *ev, int res);

/*
 * Submit what is queued, then wait until a completion is ready or
 * @timeout_ns pass (< 0: no limit; 0: do not wait).  0 or -errno (-EINTR
 * and -ETIME are reported as 0).
 */
int reactor_wait(struct reactor *r, int64_t timeout_ns);

/* Run every ready completion, then every deferred event; how many ran. */
unsigned int reactor_dispatch(struct reactor *r);

/*
 * Is there something to dispatch, or kernel work that a wait would turn
 * into completions?  No system call: for loops that spin.
 */
static inline bool reactor_has_work(struct reactor *r)
{
	return r->defer_head || io_uring_cq_ready(&r->ring) ||
	       (IO_URING_READ_ONCE(*r->ring.sq.kflags) &
		(IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW));
}

#endif /* VHOSTD_COMMON_REACTOR_H */
