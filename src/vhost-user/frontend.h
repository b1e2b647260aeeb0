/* SPDX-License-Identifier: MIT */
/*
 * frontend.h - a vhost-user front-end: a userspace virtio driver that talks
 * to a vhost-user back-end over its unix socket (like DPDK's virtio-user or
 * libblkio), used by vhost-bench and the tests.
 *
 * It shares one memfd with the back-end as "guest memory".  As DPDK's
 * virtio-user does, the address a buffer has in this process is also its
 * guest-physical address unless gpa_base says otherwise; either way a
 * pointer from vu_fe_alloc() goes into a descriptor through vu_fe_addr().
 */
#ifndef VHOSTD_VHOST_USER_FRONTEND_H
#define VHOSTD_VHOST_USER_FRONTEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "virtq/virtq_drv.h"

struct vu_fe;

struct vu_fe_config {
	const char *socket_path;
	size_t mem_size;	 /* bytes of shared memory (rings + buffers) */
	unsigned int num_queues; /* 0: as many as the back-end offers */
	uint16_t queue_size;
	uint64_t features;	   /* bits the driver accepts; ANDed with the offer */
	unsigned int indirect_max; /* indirect table size per slot (0: none) */
	/*
	 * Ask for the back-end's in-flight region (INFLIGHT_SHMFD) when it
	 * offers one, and keep it for vu_fe_reconnect(), as QEMU does.
	 */
	bool inflight;
	/*
	 * Guest-physical address of the shared memory, as a VM would have
	 * it (a dirty log needs low addresses: one bit per page from 0).
	 * 0: the same as its address in this process.
	 */
	uint64_t gpa_base;
};

/*
 * Connect, negotiate features and protocol features, share memory, set up
 * and enable every queue (SET_VRING_NUM/ADDR/BASE/KICK/CALL/ENABLE) and set
 * DRIVER_OK.  NULL with errno set (and one log line) on failure.
 */
struct vu_fe *vu_fe_connect(const struct vu_fe_config *cfg);

/*
 * What a VMM does when its back-end died (QEMU's reconnect=): drop the
 * connection, connect again to the same socket (retrying for up to
 * @timeout_ms while the back-end restarts), negotiate again, share the same
 * memory and the kept in-flight region (SET_INFLIGHT_FD), and set every
 * ring up again where the used ring says it is.  The driver side of the
 * rings is untouched: buffers in flight stay in flight.  Split rings only.
 * 0 or -errno (logged).
 */
int vu_fe_reconnect(struct vu_fe *fe, int timeout_ms);
/* Does the front-end hold an in-flight region? */
bool vu_fe_has_inflight(const struct vu_fe *fe);
/* For hostile-peer tests: the region's fd (-1: none) and its size. */
int vu_fe_inflight_fd(const struct vu_fe *fe, uint64_t *size);

/* GET_VRING_BASE on every queue, close the socket, free the memory. */
void vu_fe_disconnect(struct vu_fe *fe);

uint64_t vu_fe_features(const struct vu_fe *fe); /* negotiated */
unsigned int vu_fe_num_queues(const struct vu_fe *fe);

/* GET_CONFIG: read @len bytes of the device's config space. */
int vu_fe_get_config(struct vu_fe *fe, void *buf, uint32_t len);

/* Bump-allocate shared memory (never freed before disconnect); NULL if full. */
void *vu_fe_alloc(struct vu_fe *fe, size_t size, size_t align);
/* Device-visible address of a pointer into shared memory. */
uint64_t vu_fe_addr(const struct vu_fe *fe, const void *ptr);

/*
 * Memory hot-plug, as QEMU does it: share one more memfd of @size bytes
 * (ADD_MEM_REG with CONFIGURE_MEM_SLOTS, else a whole new SET_MEM_TABLE)
 * and return its mapping, device-visible at its own address.  NULL with
 * errno set on failure.  Safe while queues run on other threads.
 */
void *vu_fe_add_region(struct vu_fe *fe, size_t size);
/* Take a region from vu_fe_add_region() back (REM_MEM_REG) and unmap it. */
int vu_fe_remove_region(struct vu_fe *fe, void *addr);
/* Send the current memory table again (SET_MEM_TABLE), as on a VM reconfiguration. */
int vu_fe_resend_mem_table(struct vu_fe *fe);

struct virtq_drv *vu_fe_queue(struct vu_fe *fe, unsigned int index);

/*
 * Live migration, as QEMU drives it: SET_LOG_BASE hands the back-end a
 * dirty-page log, @size bytes of the file @fd from @offset (LOG_SHMFD;
 * -ENOTSUP if not negotiated), and waits for its reply.
 */
int vu_fe_set_log_base(struct vu_fe *fe, int fd, uint64_t size, uint64_t offset);
/*
 * Turn logging on or off: SET_FEATURES with or without VHOST_F_LOG_ALL,
 * then SET_VRING_ADDR of every queue with VHOST_VRING_F_LOG and the used
 * ring's address as log_guest_addr (or without).  -ENOTSUP if the back-end
 * did not offer VHOST_F_LOG_ALL.  Not while a queue's requests are being
 * added from another thread.
 */
int vu_fe_set_log_all(struct vu_fe *fe, bool on);

/* Kick the device if virtq_drv_kick_prepare() says so: 1 kicked, 0 not needed, -errno. */
int vu_fe_kick(struct vu_fe *fe, unsigned int index);

/* The queue's call eventfd (to poll), and a blocking wait for it. */
int vu_fe_call_fd(const struct vu_fe *fe, unsigned int index);
/*
 * SET_VRING_CALL with a fresh eventfd while the queue runs (as QEMU does
 * when it masks a vector); the old one is closed unread once the back-end
 * acked (REPLY_ACK), so a completion signalled only there is lost to us.
 * 0 or -errno.
 */
int vu_fe_swap_call_fd(struct vu_fe *fe, unsigned int index);
/* Wait up to @timeout_ms for a call; 1 = signalled, 0 = timeout, -errno. */
int vu_fe_wait_call(struct vu_fe *fe, unsigned int index, int timeout_ms);
/*
 * Has the back-end closed the connection?  A driver waiting for calls
 * checks this now and then: a back-end that died sends none.
 */
bool vu_fe_hung_up(struct vu_fe *fe);

/*
 * GET_STATUS: the device status byte, where a broken device says
 * VIRTIO_STATUS_NEEDS_RESET.  0 or -errno (-ENOTSUP without the STATUS
 * protocol feature).
 */
int vu_fe_get_status(struct vu_fe *fe, uint8_t *status);

/*
 * VHOST_USER_SEND_RARP: ask the back-end to announce @mac, as QEMU does
 * after a migration.  -ENOTSUP without the RARP protocol feature.
 */
int vu_fe_send_rarp(struct vu_fe *fe, const uint8_t mac[6]);

/* Stop one queue (GET_VRING_BASE); its base is stored in *@base. */
int vu_fe_stop_queue(struct vu_fe *fe, unsigned int index, uint16_t *base);

/*
 * For protocol tests: send @len raw wire bytes (a header and its payload,
 * well-formed or not) with @fds attached, and, if @reply is non-NULL, read
 * one reply into it as a struct vhost_user_msg (protocol.h; at most
 * @reply_len bytes).  0 or -errno: -ECONNRESET when the back-end closed the
 * connection instead of replying, -ETIMEDOUT after 5 s.
 */
int vu_fe_send_raw(struct vu_fe *fe, const void *msg, size_t len, const int *fds, unsigned int nfds,
		   void *reply, size_t reply_len);

#endif /* VHOSTD_VHOST_USER_FRONTEND_H */
