/* SPDX-License-Identifier: MIT */
/*
 * backend.h - the vhost-user back-end (the device end QEMU connects to).
 *
 * One struct vu_dev per exported device: it owns the unix socket (server
 * mode, or client mode that reconnects), speaks the protocol of QEMU's
 * docs/interop/vhost-user.rst, keeps the guest memory map and the queues'
 * ring addresses and eventfds, and hands started queues to a device model
 * through struct vu_device_ops.  It depends on no event loop: it asks for
 * its sockets to be watched through struct vu_watch_ops.
 *
 * Queue life cycle as the device sees it:
 *   start_queue(q)  - the ring is mapped and enabled, q->vq is freshly
 *                     initialised, q->kick_fd/call_fd are valid; the device
 *                     begins servicing (usually on its own thread).  It must
 *                     look at the ring once before it first waits for a
 *                     kick: a kick may have been consumed before a restart.
 *                     q->kick_fd is -1 when the front-end asked for polling.
 *   stop_queue(q)   - synchronous: when it returns the device has finished or
 *                     cancelled every in-flight request, pushed their
 *                     completions, and will not touch the ring again.
 *   stop_queue_begin(q) ... vu_queue_stopped(q) ... stop_queue_end(q)
 *                   - the same promise, kept asynchronously (a drain can
 *                     take seconds); or stop_queue_abandon(q) when it is
 *                     not kept within stop_timeout_ms.
 * A new memory table (SET_MEM_TABLE, ADD/REM_MEM_REG), SET_FEATURES, a
 * disconnect, RESET_DEVICE or GET_VRING_BASE stop the affected queues
 * first, so a device never sees memory or eventfds change under it; a
 * queue that is still ready is started again right after, resuming where
 * it stopped.  Start and stop always come in pairs.  A new call fd is
 * handed over with set_call_fd, or by a stop and a start.
 *
 * A message whose rings must stop waits for their stops off the loop: the
 * device's socket is not read meanwhile (so replies keep their order and
 * GET_VRING_BASE answers with the position after the drain), and every
 * other device and socket on the loop is served.
 *
 * Threads: vu_dev_new/vu_dev_free and every vu_device_ops call run on the
 * thread of the loop behind vu_watch_ops (vu_dev_new/free may also run while
 * that loop is not running).  vu_queue_notify(), vu_queue_stopped() and
 * vu_dev_set_broken() may be called from queue threads.
 *
 * Descriptors (common/ufd.h).  kick_fd, call_fd and err_fd are checked at
 * receipt to be counter-mode eventfds (a pipe, a file, a socket or a
 * semaphore eventfd is refused) and get O_NONBLOCK, but the front-end
 * shares their open file description: it can clear O_NONBLOCK, fill the
 * counter or read the kick fd first at any moment.  So a device never
 * read()s or write()s them plainly: it reads kick_fd through io_uring or
 * ufd_eventfd_read() (RWF_NOWAIT), and signals call_fd through
 * vu_queue_notify() or its own io_uring.  vu_queue_notify() never blocks.
 * Descriptors the back-end drops are closed without blocking this thread
 * (ufd_close; sockets and the connection on a closer thread).  Guest
 * memory is capped per device (max_guest_memory).
 *
 * Guest memory that goes away.  The front-end can shrink a memory file
 * after sharing it, and hugetlbfs may have no page for it: a load or store
 * there raises SIGBUS.  vu_dev_new() installs a process-wide handler
 * (common/sigbus.h) that turns the lost page into a zero page, so the
 * access completes reading zeroes, and marks the device broken, with one
 * log line, from the loop's thread; its rings stay stopped until a memory
 * table without that mapping arrives.  So a device model may read garbage
 * (zeroes) from guest memory, never crash on it - as long as every thread
 * that touches guest memory leaves SIGBUS unblocked: a blocked fault kills
 * the process (sigbus_block_other_signals()).
 */
#ifndef VHOSTD_VHOST_USER_BACKEND_H
#define VHOSTD_VHOST_USER_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "virtq/virtq.h"

#define VU_MAX_QUEUES 64

struct vu_dev;
struct vu_inflight_queue;

/* One queue as handed to the device model. */
struct vu_queue {
	struct vu_dev *dev;
	unsigned int index;
	struct virtq vq; /* device side of the ring, valid while started */
	int kick_fd;	 /* guest → device (eventfd), -1 if polling */
	int call_fd;	 /* device → guest (eventfd), -1 if none */
	int err_fd;
	bool enabled; /* SET_VRING_ENABLE */
	bool started; /* handed to the device */
	void *priv;   /* the device model's per-queue state */
	/*
	 * Crash-safe reconnect (inflight.h): non-NULL while the front-end's
	 * in-flight region tracks this ring.  The engine records each pop
	 * and publish in it, and first starts again the heads it lists.
	 */
	struct vu_inflight_queue *inflight;
};

/*
 * Signal the guest if the ring's suppression state asks for it (after a
 * virtq_flush): virtq_should_notify(), then a write to call_fd through an
 * io_uring that is set up while the queue is started, so it never blocks
 * even on a full counter.  Call it from the queue's own thread, once per
 * flushed burst.  If no write can be issued the device is marked broken.
 */
void vu_queue_notify(struct vu_queue *q);

/* The device model: one const table per device type. */
struct vu_device_ops {
	/* Virtio feature bits the device offers (device + transport bits). */
	uint64_t (*get_features)(void *opaque);
	/* The driver's choice; called before any queue starts.  0 or -errno. */
	int (*set_features)(void *opaque, uint64_t features);
	/* Optional protocol features beyond the back-end's own (e.g. CONFIG). */
	uint64_t (*get_protocol_features)(void *opaque);
	/* Copy up to @len bytes of config space; returns bytes or -errno. */
	int (*get_config)(void *opaque, uint8_t *buf, uint32_t len);
	/* Driver writes to config space (e.g. blk's writeback flag). */
	int (*set_config)(void *opaque, const uint8_t *buf, uint32_t offset, uint32_t len);
	int (*start_queue)(void *opaque, struct vu_queue *q);
	void (*stop_queue)(void *opaque, struct vu_queue *q);
	/*
	 * Optional, begin and end together: stop_queue without holding the
	 * loop up while requests drain.  stop_queue_begin starts the stop
	 * and returns; the device calls vu_queue_stopped(q) from any thread
	 * once stop_queue's promise holds, and the loop's thread then calls
	 * stop_queue_end (the device frees what it kept for the stop).
	 */
	void (*stop_queue_begin)(void *opaque, struct vu_queue *q);
	void (*stop_queue_end)(void *opaque, struct vu_queue *q);
	/*
	 * Optional: a begun stop did not end within stop_timeout_ms (a stalled
	 * back-end).  Called instead of stop_queue_end: from its return on the
	 * device never touches the ring or q's fds again, and keeps the
	 * requests still in flight (and the guest memory they point into)
	 * until they complete, completing them into nothing.  Returns how many
	 * it left behind (0: it had stopped after all), or -EBUSY if it cannot
	 * give this queue up (nothing changed).  Without it, or on -EBUSY, the
	 * loop keeps waiting, and says so once.
	 */
	int (*stop_queue_abandon)(void *opaque, struct vu_queue *q);
	/*
	 * Optional: SET_VRING_CALL on a started queue.  Signal @fd (-1: no
	 * interrupts) instead of q->call_fd from now on, without stopping:
	 * every signal to the old fd must be issued when this returns (the
	 * caller closes it), and one more goes to @fd.  0 or -errno.  Without
	 * it, the ring is stopped, given the new fd and started again.
	 */
	int (*set_call_fd)(void *opaque, struct vu_queue *q, int fd);
	/* Status byte written by the driver (SET_STATUS); optional. */
	void (*set_status)(void *opaque, uint8_t status);
	/*
	 * Optional (net): VHOST_USER_SEND_RARP, offered as the RARP protocol
	 * feature when set.  Announce @mac to the network (after a migration,
	 * for a guest that cannot announce itself).  Must not block.
	 */
	void (*send_rarp)(void *opaque, const uint8_t mac[6]);
};

/*
 * How the back-end gets its sockets watched (bound to evloop by the daemon).
 * add: call @cb whenever @fd is readable (level-triggered; EPOLLIN), 0 or
 * -errno.  del: stop, and never call that watch's @cb again, even when del
 * is called from inside a callback of the same round (evloop guarantees it).
 */
struct vu_watch_ops {
	int (*add)(void *loop, int fd, void (*cb)(void *arg, uint32_t events), void *arg);
	void (*del)(void *loop, int fd);
};

/* The watches bound to common/evloop.h (evloop_watch.c): @loop is a struct evloop. */
extern const struct vu_watch_ops vu_evloop_watch_ops;

struct vu_dev_config {
	const char *name; /* for log lines */
	const char *socket_path;
	bool client;		 /* connect (and reconnect) instead of listen */
	unsigned int num_queues; /* queues the device offers (GET_QUEUE_NUM) */
	uint16_t max_queue_size;
	/*
	 * Bytes of guest memory the front-end may have this device map, all
	 * regions together (max-guest-memory=); 0: 64 GiB.  Address space is
	 * shared by every device of the daemon, and a sparse memfd costs the
	 * front-end nothing.
	 */
	uint64_t max_guest_memory;
	/*
	 * How long a ring's stop may take before the device gives up on the
	 * requests still in flight (stop_queue_abandon); 0: 30 s.  The same
	 * bound holds in vu_dev_free().
	 */
	unsigned int stop_timeout_ms;
	const struct vu_device_ops *ops;
	void *opaque; /* passed to every ops call */
	const struct vu_watch_ops *watch;
	void *loop; /* passed to every watch call */
};

/*
 * Create the device and start listening (server mode: a stale socket file at
 * the path is replaced; one front-end at a time, a second one is refused) or
 * connecting (client mode: retried with backoff from 50 ms up to 5 s, also
 * after every disconnect).  NULL with errno set.
 */
struct vu_dev *vu_dev_new(const struct vu_dev_config *cfg);

/*
 * Stop every queue (waiting at most stop_timeout_ms for their requests,
 * then abandoning them), close the connection and the socket, free.
 */
void vu_dev_free(struct vu_dev *dev);

/*
 * Take the device out of service without waiting on the loop's thread
 * (a forced device-remove under a front-end whose requests may take long
 * or never finish).  The socket goes at once, so a new device may listen
 * at its path; every ring stops as on a disconnect, bounded by
 * stop_timeout_ms and then abandoned, while the loop serves the other
 * devices; then the connection closes and @done(@arg) runs on the loop's
 * thread, to call vu_dev_free (which then has nothing to wait for).
 * @done may run before this returns.  vu_dev_free before @done is fine:
 * it waits, bounded, as always, and @done never runs.
 */
void vu_dev_retire(struct vu_dev *dev, void (*done)(void *arg), void *arg);

/*
 * The device's stop of @q (stop_queue_begin) is complete: from any
 * thread, once.  The loop's thread then calls stop_queue_end.
 */
void vu_queue_stopped(struct vu_queue *q);

/* Is a front-end connected and driving the device? */
bool vu_dev_connected(const struct vu_dev *dev);

/*
 * Mark the device broken (NEEDS_RESET), from any thread: logs once; soon
 * after, the loop's thread signals every SET_VRING_ERR eventfd and stops
 * every queue, and GET_STATUS reports NEEDS_RESET.  Cleared by a device
 * reset - the front-end stopping every ring (GET_VRING_BASE, as QEMU does on
 * a guest reset), SET_STATUS 0 or RESET_DEVICE - or a new connection.
 */
void vu_dev_set_broken(struct vu_dev *dev, const char *why);

#endif /* VHOSTD_VHOST_USER_BACKEND_H */
