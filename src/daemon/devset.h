/* SPDX-License-Identifier: MIT */
/*
 * devset.h - the devices a running vhostd serves, of any kind (devkind.h):
 * the set the control methods add to, remove from and walk.
 *
 * Adding checks what the command line checks before start-up (a unique
 * id, a unique socket that is not the control socket and can be made,
 * io-thread within the pool, a LUN's controller exists) and then starts
 * the device on its own: the other devices' queues run on, untouched, on
 * their I/O threads.  Removing is the device's own teardown path (its
 * destroy op: queues stopped after their in-flight requests finish, the
 * connection closed, the socket file removed); by default it is refused
 * while a front-end drives the device (any queue started), because the
 * guest would see its disk vanish under I/O: detach it in the front-end
 * first (QEMU's device_del stops every ring), or force.  A forced
 * removal answers at once: the device leaves the set and its socket goes
 * (the name and the path are free again), and its rings stop in the
 * background, bounded by its stop-timeout-ms, while the loop serves the
 * others; only then is it freed (struct devset_retiring).
 *
 * On the daemon's event loop thread only.
 */
#ifndef VHOSTD_DAEMON_DEVSET_H
#define VHOSTD_DAEMON_DEVSET_H

#include <stdbool.h>
#include <stddef.h>

#include "devkind.h"

/* A sanity bound: each device holds a socket, images and queues. */
#define DEVSET_MAX_DEVS 256

struct devset_entry {
	const struct devkind *kind;
	void *dev;
};

/* A device removed under its front-end, its rings still stopping (vu_dev_retire). */
struct devset_retiring {
	struct devset_retiring *next, **pprev;
	struct devset *set;
	const struct devkind *kind;
	void *dev;
};

struct devset {
	struct devset_entry *v; /* in the order they were added */
	struct devset_retiring *retiring; /* out of v, not yet freed */
	unsigned int n, cap;
	void *loop;		  /* the evloop the devices' sockets are watched on */
	const char *control_path; /* no device may take it; may be NULL */
	unsigned int io_threads;  /* the engine's pool: io-thread= must be below */
};

/*
 * Check @opts of @kind against the set (not yet started).  0, or -errno
 * with a message naming the device and the key.
 */
int devset_check(const struct devset *set, const struct devkind *kind, const void *opts, char *err,
		 size_t err_len);

/*
 * Check, then start a device with @nchildren children (options of the
 * kind's child kind, all naming it), or add a child to its running
 * parent.  0, or -errno with a message.
 */
int devset_add(struct devset *set, const struct devkind *kind, const void *opts,
	       const void *children, unsigned int nchildren, char *err, size_t err_len);

/*
 * Remove the device or child called @name (see above for @force).  0, or
 * -EINVAL with a message (no such device, or busy without @force).
 */
int devset_remove(struct devset *set, const char *name, bool force, char *err, size_t err_len);

/* The device with id @id, or NULL. */
struct devset_entry *devset_find(const struct devset *set, const char *id);

/* Tear every device down, newest first (and those still retiring), and free the array. */
void devset_clear(struct devset *set);

#endif /* VHOSTD_DAEMON_DEVSET_H */
