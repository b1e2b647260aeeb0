/* SPDX-License-Identifier: MIT */
/*
 * vu_test.h - what the vhost-user tests share: an event-loop thread for
 * the back-end, a tiny echo device model, a front-end I/O driver that
 * checks every byte, descriptor counting, stderr capture and a builder for
 * raw (possibly malformed) wire messages.
 *
 * The echo device copies each chain's readable bytes into its writable
 * buffers and completes it with that length: one thread per queue, burst
 * pops, one flush and one notification per burst.  Together with the
 * front-end it runs the whole stack end to end: driver ring, vhost-user
 * messages, memory sharing, back-end dispatch, device ring.
 */
#ifndef VHOSTD_TESTS_VU_TEST_H
#define VHOSTD_TESTS_VU_TEST_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "check.h"
#include "common/evloop.h"
#include "vhost-user/backend.h"
#include "vhost-user/frontend.h"
#include "vhost-user/protocol.h"

/* --- the back-end's event loop, on its own thread --- */

struct vt_loop {
	struct evloop *loop;
	pthread_t thread;
	bool running;
};

void vt_loop_init(struct vt_loop *l);
void vt_loop_start(struct vt_loop *l);
void vt_loop_stop(struct vt_loop *l); /* joins; devices can then be freed */

/* A private directory for sockets; vt_path() builds names inside it. */
void vt_tmpdir_init(void);
const char *vt_path(const char *name);
void vt_tmpdir_cleanup(void);

/* --- the echo device --- */

#define VT_CONFIG_SIZE 16

struct echo_dev;

struct echo_queue {
	struct echo_dev *e;
	struct vu_queue *q;
	pthread_t thread;
	int stop_fd;
};

struct echo_dev {
	uint64_t offered;		  /* virtio features offered */
	uint64_t features;		  /* set_features */
	uint64_t extra_protocol_features; /* offered beside CONFIG (INFLIGHT_SHMFD) */
	atomic_uint starts, stops;
	atomic_uint_least64_t requests;
	atomic_uint status;
	uint8_t config[VT_CONFIG_SIZE];
	struct echo_queue queues[VU_MAX_QUEUES];
};

extern const struct vu_device_ops echo_ops;

void echo_dev_init(struct echo_dev *e);

/* A server-mode device at @path with @nq queues of at most @max_size entries. */
struct vu_dev *vt_echo_server(struct vt_loop *l, struct echo_dev *e, const char *path,
			      unsigned int nq, uint16_t max_size);

/*
 * What most tests start with: a private socket directory, @e initialised
 * and served by vt_echo_server() at vt_path("echo.sock") (*@path), and
 * @l's loop running.  vt_echo_stop() undoes it all.
 */
struct vu_dev *vt_echo_start(struct vt_loop *l, struct echo_dev *e, const char **path,
			     unsigned int nq, uint16_t max_size);
void vt_echo_stop(struct vt_loop *l, struct vu_dev *dev);

/* --- the front-end side --- */

#define VT_FEATURES_SPLIT     (1ull << VIRTIO_F_VERSION_1)
#define VT_FEATURES_EVENT_IDX (1ull << VIRTIO_RING_F_EVENT_IDX)
#define VT_FEATURES_INDIRECT  (1ull << VIRTIO_RING_F_INDIRECT_DESC)
#define VT_FEATURES_PACKED    (1ull << VIRTIO_F_RING_PACKED)

struct vu_fe *vt_connect(const char *path, unsigned int nq, uint16_t qsize, uint64_t features,
			 unsigned int indirect_max);

/* One front-end I/O run on one queue; see vt_io_run(). */
struct vt_io {
	struct vu_fe *fe;
	unsigned int queue;
	uint8_t *area; /* shared memory for the buffers */
	size_t area_len;
	unsigned int depth; /* requests in flight at most */
	uint64_t nreq;	    /* stop after this many (0: until *stop) */
	atomic_bool *stop;  /* optional */
	uint64_t seed;
	bool submit_only;   /* post one batch and return without waiting */
	bool tolerate_loss; /* once *stop is set, give up on what never completes */
	uint64_t completed; /* out */
};

#define VT_SLOT_SIZE 4096

/*
 * Submit echo requests (1-3 readable buffers of random sizes, 1-2 writable
 * ones) and check that every completion returns exactly the bytes sent,
 * with the writable bytes past them untouched.  Fails the test on a wrong
 * byte, a wrong length or a 5 s wait for an interrupt.
 */
void vt_io_run(struct vt_io *io);
void *vt_io_thread(void *io); /* pthread wrapper */

/* Quick full session: connect, I/O on every queue, disconnect. */
void vt_session(const char *path, unsigned int nq, uint64_t features, uint64_t nreq);

/* --- hygiene --- */

int vt_count_fds(void);
/* Wait up to 2 s for the back-end to drop its connection. */
void vt_wait_disconnected(struct vu_dev *dev);

struct vt_capture {
	int saved;
	int fd;
};

void vt_capture_start(struct vt_capture *c);
/* Stop capturing stderr; the text (NUL-terminated) goes to @buf and is echoed. */
void vt_capture_stop(struct vt_capture *c, char *buf, size_t len);
/* Lines at error or warning level in @text. */
unsigned int vt_count_problems(const char *text);

/* --- raw messages --- */

/* Header (version 1 | @flags) and @len payload bytes, as on the wire; returns bytes. */
size_t vt_wire(void *out, uint32_t request, uint32_t flags, uint32_t size, const void *payload,
	       size_t len);
/* A blocking connection with no negotiation at all. */
int vt_raw_connect(const char *path);
/* Read until EOF (true) or 5 s pass (false), discarding replies. */
bool vt_wait_eof(int sock);

#endif /* VHOSTD_TESTS_VU_TEST_H */
