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
 *   start_queue(q)  - the ring is mapped and enabled, q->kick_fd/call_fd are
 *                     valid; the device begins servicing (usually on its own
 *                     thread).
 *   stop_queue(q)   - synchronous: when it returns the device has finished or
 *                     cancelled every in-flight request, pushed their
 *                     completions, and will not touch the ring again.
 * A new memory table, a disconnect, RESET_DEVICE or GET_VRING_BASE stop the
 * affected queues first, so a device never sees memory change under it.
 */
#ifndef VHOSTD_VHOST_USER_BACKEND_H
#define VHOSTD_VHOST_USER_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "virtq/virtq.h"

#define VU_MAX_QUEUES 64

struct vu_dev;

/* One queue as handed to the device model. */
struct vu_queue {
	struct vu_dev *dev;
	unsigned int index;
	struct virtq vq;	/* device side of the ring, valid while started */
	int kick_fd;		/* guest → device (eventfd), -1 if polling */
	int call_fd;		/* device → guest (eventfd), -1 if none */
	int err_fd;
	bool enabled;		/* SET_VRING_ENABLE */
	bool started;		/* handed to the device */
	void *priv;		/* the device model's per-queue state */
};

/*
 * Signal the guest if the ring's suppression state asks for it (after a
 * virtq_flush).  Safe to call from the queue's own thread.
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
	/* Status byte written by the driver (SET_STATUS); optional. */
	void (*set_status)(void *opaque, uint8_t status);
};

/* How the back-end gets its sockets watched (bound to evloop by the daemon). */
struct vu_watch_ops {
	int (*add)(void *loop, int fd, void (*cb)(void *arg, uint32_t events), void *arg);
	void (*del)(void *loop, int fd);
};

struct vu_dev_config {
	const char *name;		/* for log lines */
	const char *socket_path;
	bool client;			/* connect (and reconnect) instead of listen */
	unsigned int num_queues;	/* queues the device offers (GET_QUEUE_NUM) */
	uint16_t max_queue_size;
	const struct vu_device_ops *ops;
	void *opaque;			/* passed to every ops call */
	const struct vu_watch_ops *watch;
	void *loop;			/* passed to every watch call */
};

/* Create the device and start listening / connecting.  NULL with errno set. */
struct vu_dev *vu_dev_new(const struct vu_dev_config *cfg);

/* Stop every queue, close the connection and the socket, free. */
void vu_dev_free(struct vu_dev *dev);

/* Is a front-end connected and driving the device? */
bool vu_dev_connected(const struct vu_dev *dev);

/* Mark the device broken (NEEDS_RESET): stop its queues, log once. */
void vu_dev_set_broken(struct vu_dev *dev, const char *why);

#endif /* VHOSTD_VHOST_USER_BACKEND_H */
