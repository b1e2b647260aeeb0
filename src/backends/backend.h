/* SPDX-License-Identifier: MIT */
/*
 * backend.h - block storage back-ends: where a block device model's
 * requests end up (a raw image file or a host block device through
 * io_uring, an image in a Ceph cluster through librbd, or nothing at all:
 * the null back-end).
 *
 * A back-end is opened once per device (struct blk_backend) and gives each
 * virtqueue its own submission context (struct blk_backend_queue), so
 * queues never share a lock.  A context lives on one thread's reactor
 * (reactor.h: the io_uring that thread waits on), shared with every other
 * queue that thread serves (queue_attach: the engine's I/O threads), or on
 * a reactor of its own (queue_new: tools and tests, which then wait with
 * submit()).  Work is described by a struct blk_io that the caller embeds
 * in its preallocated request: nothing is allocated per I/O.  The caller
 * preps any number of blk_ios and reaps completions through a callback;
 * an attached context calls its wake hook when completions are waiting.
 * Besides disk I/O a blk_io can wait for an eventfd (own reactor only).
 *
 * The back-end hides how an operation is carried out: it finishes short
 * transfers, retries EINTR/EAGAIN, sends I/O that O_DIRECT cannot take
 * (misaligned guest buffers) through a buffered descriptor of the same
 * file, and falls back from one fallocate mode to another, and finally to
 * writing zeroes, for write-zeroes.  The caller sees one completion per
 * blk_io it prepped.  On a block device a discard is BLKDISCARD, which
 * io_uring cannot issue on every kernel we run on; it runs on a helper
 * thread of the queue and still completes through the same wait.
 */
#ifndef VHOSTD_BACKENDS_BACKEND_H
#define VHOSTD_BACKENDS_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/reactor.h"

enum blk_io_op {
	BLK_IO_READ,	/* preadv into iov at offset */
	BLK_IO_WRITE,	/* pwritev from iov at offset */
	BLK_IO_FLUSH,	/* fdatasync */
	BLK_IO_DISCARD, /* deallocate [offset, offset+len); a hint: never fails for lack of support
			 */
	BLK_IO_WRITE_ZEROES, /* [offset, offset+len) reads back as zeroes */
	BLK_IO_EVENTFD,	     /* wait until eventfd @fd is readable, then reset its count */
};

/* blk_io flags */
#define BLK_IO_F_FUA   1u /* WRITE/WRITE_ZEROES/DISCARD: durable when completed */
#define BLK_IO_F_UNMAP 2u /* WRITE_ZEROES: the range may be deallocated */

/*
 * One operation.  The caller fills the first block, preps it and gets it
 * back in its reap callback with @res set; between the two the back-end
 * owns it (including @iov, which it may advance to finish a short
 * transfer).
 */
struct blk_io {
	uint8_t op;	   /* enum blk_io_op */
	uint8_t flags;	   /* BLK_IO_F_* */
	int fd;		   /* BLK_IO_EVENTFD */
	struct iovec *iov; /* READ / WRITE */
	unsigned int iovcnt;
	uint64_t offset; /* bytes */
	uint64_t len;	 /* bytes: DISCARD / WRITE_ZEROES; READ / WRITE: set by prep */

	int64_t res; /* bytes transferred (READ/WRITE), 0, or -errno */

	/* private to the back-end */
	uint64_t done;		      /* bytes finished so far */
	uint8_t stage;		      /* fallback step */
	struct blk_backend_queue *bq; /* where it was prepped */
	struct reactor_event ev;      /* its SQE's completion */
	struct blk_io *next;	      /* on a helper thread's list, or the done list */
};

/* What the device model needs to describe the disk to the guest. */
struct blk_backend_info {
	uint64_t size;		      /* bytes */
	uint32_t logical_block_size;  /* smallest unit the device advertises (>= 512) */
	uint32_t physical_block_size; /* unit that avoids read-modify-write */
	/*
	 * The unit in which discards deallocate, in bytes (a block device's
	 * discard_granularity); 0: unknown, the physical block size is a
	 * fair guess.
	 */
	uint32_t discard_granularity;
	bool readonly;
	bool direct; /* O_DIRECT is in effect */
	bool blockdev;
	/*
	 * What the storage cannot do, so the device model does not offer it
	 * (an NBD server without flush, trim or write-zeroes support); the
	 * back-end still accepts such operations (a flush or a discard then
	 * does nothing, write-zeroes writes zeroes).
	 */
	bool no_flush;
	bool no_discard;
	bool no_write_zeroes;
};

struct blk_backend_config {
	const char *path; /* io_uring: the image; nbd: the server's URI */
	uint64_t size;	  /* null: the capacity in bytes, a multiple of 512 */
	bool readonly;
	bool direct; /* O_DIRECT (cache=none); refused by the FS: buffered + a warning */
	/*
	 * null: every operation completes this long after it was prepped
	 * (a slow or, at the maximum, stalled disk: for tests); 0: at once.
	 */
	unsigned int delay_ms;
	bool no_lock; /* file: take no OFD lock (locking=off, for live migration) */
	const char *name; /* for log lines */
	/* rbd: the image; conf NULL: Ceph's search path; user NULL: client.admin */
	const char *rbd_pool, *rbd_image, *rbd_conf, *rbd_user;
};

struct blk_backend;
struct blk_backend_queue;

typedef void (*blk_io_done_fn)(struct blk_io *io, void *arg);

struct blk_backend_ops {
	const char *name;
	/* Open the image.  0 or -errno with a message in @err. */
	int (*open)(const struct blk_backend_config *cfg, struct blk_backend **out, char *err,
		    size_t err_len);
	/* Close it; every queue must be freed first. */
	void (*close)(struct blk_backend *be);
	void (*get_info)(const struct blk_backend *be, struct blk_backend_info *info);
	/*
	 * A submission context with a reactor of its own, able to hold
	 * @depth blk_ios in flight at once; wait on it with submit().
	 * 0 or -errno.
	 */
	int (*queue_new)(struct blk_backend *be, unsigned int depth,
			 struct blk_backend_queue **out);
	/*
	 * The same on @r, the calling thread's reactor, which the caller
	 * waits on; @wake(@arg) is called on that thread whenever
	 * completions start waiting for reap().  0 or -errno.
	 */
	int (*queue_attach)(struct blk_backend *be, unsigned int depth, struct reactor *r,
			    void (*wake)(void *arg), void *arg, struct blk_backend_queue **out);
	/* Free it; pending operations are cancelled, not reported. */
	void (*queue_free)(struct blk_backend_queue *bq);
	/*
	 * Stage @io for the next submit.  0, or -errno if @io is malformed
	 * (nothing staged) or more than @depth are in flight (-EBUSY).
	 */
	int (*prep)(struct blk_backend_queue *bq, struct blk_io *io);
	/*
	 * A queue with its own reactor: submit everything staged with one
	 * system call, then wait for a completion as poll(2) does:
	 * @timeout_ms < 0 until one is ready, 0 not at all, > 0 at most that
	 * long.  0 or -errno (-EINTR is harmless).
	 */
	int (*submit)(struct blk_backend_queue *bq, int timeout_ms);
	/* Call @done for each finished blk_io; returns how many. */
	unsigned int (*reap)(struct blk_backend_queue *bq, blk_io_done_fn done, void *arg);
};

/* The io_uring back-end (uring.c). */
extern const struct blk_backend_ops blk_backend_uring_ops;
/*
 * The null back-end (null.c): @size bytes of nothing, like QEMU's null-co
 * with read-zeroes=on.  Reads return zeroes, everything else succeeds and
 * stores nothing; every operation completes at once, or after delay_ms.
 */
extern const struct blk_backend_ops blk_backend_null_ops;
/*
 * The Ceph RBD back-end (rbd.c): an image in a RADOS pool through
 * librbd's aio calls; completions come back through an eventfd that the
 * queue's reactor polls, never blocking the I/O thread.
 */
extern const struct blk_backend_ops blk_backend_rbd_ops;

/*
 * The NBD back-end (nbd.c): an export of an NBD server by URI
 * (nbd://HOST[:PORT]/EXPORT, nbd+unix:///EXPORT?socket=PATH) through
 * libnbd, one connection per queue polled from its reactor, reconnecting
 * (and resending what was in flight) when the server restarts.
 */
extern const struct blk_backend_ops blk_backend_nbd_ops;

/* Every opened back-end starts with this, so callers reach its ops. */
struct blk_backend {
	const struct blk_backend_ops *ops;
};

/*
 * What both back-ends' queue contexts share (bqueue.c): the reactor, the
 * list of finished blk_ios in completion order, the wake hook, eventfd
 * waits.  Each back-end's struct blk_backend_queue starts with it.
 */
struct blk_queue_base {
	struct reactor *r;
	struct reactor own; /* queue_new: r == &own */
	bool own_reactor;
	unsigned int depth;
	unsigned int inflight; /* prepped and not yet reported */
	struct blk_io *done_head, **done_tail;
	void (*wake)(void *arg);
	void *wake_arg;
};

int blk_queue_base_init(struct blk_queue_base *b, unsigned int depth, struct reactor *r,
			void (*wake)(void *arg), void *arg);
void blk_queue_base_destroy(struct blk_queue_base *b);
/* Admit one more blk_io (resets its private fields): 0 or -EBUSY. */
int blk_queue_base_admit(struct blk_queue_base *b, struct blk_backend_queue *bq, struct blk_io *io);
/* @io has its final res: report it from the next reap. */
void blk_queue_base_finish(struct blk_queue_base *b, struct blk_io *io);
/* BLK_IO_EVENTFD: a poll on the reactor, then the count reset without blocking. */
int blk_queue_base_wait_eventfd(struct blk_queue_base *b, struct blk_io *io);
int blk_queue_base_submit(struct blk_queue_base *b, int timeout_ms);
unsigned int blk_queue_base_reap(struct blk_queue_base *b, blk_io_done_fn done, void *arg);

#endif /* VHOSTD_BACKENDS_BACKEND_H */
