/* SPDX-License-Identifier: MIT */
/*
 * backend_priv.h - what backend.c (connection, dispatcher, ring life
 * cycle), backend_msgs.c (message handlers and the dispatch table) and
 * backend_mem.c (guest memory) share.  Not for device models.
 */
#ifndef VHOSTD_VHOST_USER_BACKEND_PRIV_H
#define VHOSTD_VHOST_USER_BACKEND_PRIV_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "common/ufd.h"
#include "inflight.h"
#include "protocol.h"

/* One ring: the part the device sees, plus what the front-end told us. */
struct vu_vring {
	struct vu_queue q;
	uint16_t num;  /* SET_VRING_NUM; 0 = not set */
	uint16_t base; /* resume point (SET_VRING_BASE or saved at stop) */
	bool base_set;
	bool addr_set;
	struct vhost_user_vring_addr addr; /* front-end user addresses */
	bool kick_set;			   /* SET_VRING_KICK seen (an fd, or polling) */
	bool start_failed;		   /* don't retry until one of its inputs changes */
	bool held_by_reset;		   /* SET_STATUS 0: wait for a new kick or DRIVER_OK */
	char name[48];			   /* "dev:q3" for log lines and the virtq */
	/* Writes to call_fd (queue thread); its io_uring exists while started. */
	struct ufd_signal call_sig;
	bool stopping;		     /* stop_queue_begin called, stop_queue_end not yet */
	atomic_bool stop_done;	     /* vu_queue_stopped() (any thread) */
	bool abandon_refused;	     /* overdue, and the device cannot give it up: logged */
	struct vu_inflight_queue iq; /* q.inflight points here while tracked */
};

/* What a device waits for while some of its rings are stopping. */
enum vu_pending {
	VU_PENDING_NONE,  /* nothing: the connection is read again once stops end */
	VU_PENDING_MSG,	  /* the message in rx, at dispatch_step */
	VU_PENDING_CLOSE, /* the end of the connection (vu_conn_close) */
};

/* Where a parked message resumes. */
enum vu_step {
	VU_STEP_HANDLER, /* its rings are stopped: run the handler */
	VU_STEP_RINGS,	 /* readiness after the handler (stops, then starts) */
	VU_STEP_REPLY,
};

struct vu_dev {
	char *name;
	char *socket_path;
	bool client;
	unsigned int num_queues;
	uint16_t max_queue_size;
	uint64_t max_guest_memory; /* bytes one front-end may have us map */
	const struct vu_device_ops *ops;
	void *opaque;
	const struct vu_watch_ops *watch;
	void *loop;

	int listen_fd; /* server mode */
	int timer_fd;  /* client mode: reconnect backoff */
	unsigned int backoff_ms;
	int broken_fd; /* eventfd: vu_dev_set_broken() from any thread */
	int conn_fd;
	bool conn_watched;
	bool listen_watched;

	/*
	 * Ring stops in progress (stop_queue_begin).  While there are any,
	 * the connection is not read: the next message waits, and so does
	 * the one that asked for them (pending), but the loop serves every
	 * other device.  stop_fd says a device called vu_queue_stopped();
	 * stop_timer_fd fires stop_timeout_ms after the first stop began.
	 */
	int stop_fd;
	int stop_timer_fd;
	unsigned int stop_timeout_ms;
	unsigned int nr_stopping;
	enum vu_pending pending;
	enum vu_step dispatch_step;
	bool dispatch_need_ack;
	int dispatch_res; /* enum vu_result of the parked message's handler */
	atomic_bool connected;
	struct vhost_user_rx rx;

	/* Session state, reset on every disconnect. */
	bool owner;
	uint64_t features;	    /* SET_FEATURES */
	uint64_t protocol_features; /* SET_PROTOCOL_FEATURES */
	uint8_t status;		    /* SET_STATUS */
	struct memmap *mem;	    /* current guest memory; NULL before a table */
	/*
	 * The dirty-page log (SET_LOG_BASE); bits NULL before one.  Replaced
	 * only while every ring is stopped (VU_MSG_STOP_ALL), so the rings,
	 * which borrow it, never see it change under them.
	 */
	struct dlog log;
	/*
	 * Test switch (VHOSTD_TEST_BREAK_DIRTY_LOG): accept and map the log
	 * but never set a bit, so a migration test can prove it notices.
	 */
	bool log_broken_for_test;
	/* A region of mem faulted (SIGBUS): no ring starts until a new table. */
	bool mem_poisoned;
	/*
	 * ADD_MEM_REG of a region identical to a mapped one, per region: QEMU's
	 * multiqueue vhost-user-net keeps one vhost_dev per queue pair, and
	 * each adds (and later removes) every region itself (backend_mem.c).
	 */
	unsigned int mem_dups[MEMMAP_MAX_REGIONS];
	atomic_bool broken;
	/* Set by the SIGBUS handler (any thread) with a write to broken_fd. */
	atomic_bool mem_fault;
	struct ufd_signal err_sig; /* writes to the err fds, slot = ring (loop thread) */
	struct vu_vring *vrings;   /* num_queues of them */

	/* SET_INFLIGHT_FD's region (inflight.c); NULL: none. */
	void *inflight_addr;
	size_t inflight_len;
	uint16_t inflight_num_queues;
	uint16_t inflight_queue_size;
	/* A descriptor to send with the next reply (GET_INFLIGHT_FD), then close. */
	int reply_fd;

	/* vu_dev_retire(): called once the session is gone; NULL otherwise. */
	void (*retire_done)(void *arg);
	void *retire_arg;
	bool retiring;
};

/* What a handler tells the dispatcher. */
enum vu_result {
	VU_OK,	  /* done; reply (if any) is in the message */
	VU_NACK,  /* well-formed but refused or failed: ack with non-zero */
	VU_CLOSE, /* malformed or hostile: logged, drop the connection */
	/* The dispatcher's own (never a handler's): waiting for ring stops. */
	VU_PARKED,
};

/*
 * A handler sees the validated header (size, fd count and ring index were
 * checked against its table entry).  It may take descriptors by setting
 * fds[i] = -1; the dispatcher closes every one left.  A handler with a
 * reply (VU_MSG_REPLY) writes its payload into @msg and sets hdr.size.
 */
typedef enum vu_result (*vu_msg_handler)(struct vu_dev *dev, struct vhost_user_msg *msg, int *fds,
					 unsigned int nfds);

/* What a message's descriptors must be (checked centrally, ufd_classify). */
enum vu_fd_kind {
	VU_FD_UNUSED,  /* none expected, or closed unused: never inspected */
	VU_FD_EVENTFD, /* counter-mode eventfd; set O_NONBLOCK on receipt */
	VU_FD_MEMORY,  /* a file to map: memfd, tmpfs, hugetlbfs, other file */
};

/* Per-message metadata flags. */
#define VU_MSG_REPLY	  (1u << 0) /* has a reply payload of its own */
#define VU_MSG_VRING	  (1u << 1) /* payload starts with a u32 ring index */
#define VU_MSG_VRING_FD	  (1u << 2) /* u64: index bits 0-7, NOFD bit 8, fd iff !NOFD */
#define VU_MSG_STOP_VRING (1u << 3) /* stop the addressed ring first */
#define VU_MSG_STOP_ALL	  (1u << 4) /* stop every ring first */
/* SET_VRING_CALL: stop the ring first unless the device swaps call fds live */
#define VU_MSG_CALL_FD (1u << 5)

struct vu_msg_info {
	vu_msg_handler handler;	     /* NULL: we do not accept this request */
	uint16_t min_size, max_size; /* payload bytes */
	uint8_t min_fds, max_fds;
	uint8_t fd_kind; /* enum vu_fd_kind */
	uint8_t flags;
	/* Protocol feature bit (+1) that must be negotiated first; 0: none. */
	uint8_t needs_protocol_feature;
};

/* Indexed by request code; entries without a handler are refused. */
extern const struct vu_msg_info vu_msg_table[VHOST_USER_REQUEST_MAX];

#define VU_NEEDS(bit) ((uint8_t)((bit) + 1))

/* Log one line naming the message and the reason; returns VU_CLOSE. */
enum vu_result vu_reject(struct vu_dev *dev, const struct vhost_user_msg *msg, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static inline bool vu_has_feature(const struct vu_dev *dev, unsigned int bit)
{
	return dev->features & (1ull << bit);
}

static inline bool vu_has_protocol_feature(const struct vu_dev *dev, unsigned int bit)
{
	return dev->protocol_features & (1ull << bit);
}

/* Resume point: what the front-end set, or where a fresh ring starts. */
static inline uint16_t vu_vring_base(const struct vu_dev *dev, const struct vu_vring *vr)
{
	if (vr->base_set)
		return vr->base;
	/* 2.8.1: a packed ring's wrap counters start at 1. */
	return vu_has_feature(dev, VIRTIO_F_RING_PACKED) ? 1u << VIRTQ_PACKED_WRAP_BIT : 0;
}

/* --- backend.c: ring life cycle --- */

/* Forget everything about a ring (closing its fds); it must be stopped. */
void vu_vring_reset(struct vu_vring *vr);
/*
 * Begin stopping every started ring, keeping where each left off.  The
 * dispatcher runs a handler only with every stop ended; a handler that
 * calls this gets its reply sent once they have.
 */
void vu_stop_all(struct vu_dev *dev);
/* Where a ring's three parts are in this process. */
struct vu_ring_ptrs {
	void *desc;
	void *driver_area;
	void *device_area;
};

/*
 * Check a ring's addresses against the current memory map and layout:
 * 0 with @p filled in, or -EINVAL with the reason in @why.
 */
int vu_vring_translate(const struct vu_dev *dev, const struct vu_vring *vr, struct vu_ring_ptrs *p,
		       char *why, size_t why_len);
/* Features the back-end offers in GET_FEATURES / GET_PROTOCOL_FEATURES. */
uint64_t vu_offered_features(const struct vu_dev *dev);
uint64_t vu_offered_protocol_features(const struct vu_dev *dev);

/* --- inflight.c: VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD --- */

enum vu_result vu_get_inflight_fd(struct vu_dev *dev, struct vhost_user_msg *msg, int *fds,
				  unsigned int nfds);
enum vu_result vu_set_inflight_fd(struct vu_dev *dev, struct vhost_user_msg *msg, int *fds,
				  unsigned int nfds);
/* Unmap the region and forget every ring's tracking (rings stopped). */
void vu_inflight_drop(struct vu_dev *dev);
/*
 * Before @vr starts: with a region, recover it (the last batch, the chains
 * to start again, *@base: where popping resumes, vr->iq.used_idx: where
 * using does) and point vr->q.inflight at its tracking.  0, or -errno with
 * the reason in @why (hostile region).
 */
int vu_inflight_ring_start(struct vu_dev *dev, struct vu_vring *vr, const struct vu_ring_ptrs *p,
			   uint16_t *base, char *why, size_t why_len);

/* --- backend_mem.c: guest memory --- */

enum vu_result vu_set_mem_table(struct vu_dev *dev, struct vhost_user_msg *msg, int *fds,
				unsigned int nfds);
enum vu_result vu_add_mem_reg(struct vu_dev *dev, struct vhost_user_msg *msg, int *fds,
			      unsigned int nfds);
enum vu_result vu_rem_mem_reg(struct vu_dev *dev, struct vhost_user_msg *msg, int *fds,
			      unsigned int nfds);
enum vu_result vu_get_max_mem_slots(struct vu_dev *dev, struct vhost_user_msg *msg, int *fds,
				    unsigned int nfds);
/* Drop the session's memory and dirty log (disconnect). */
void vu_mem_drop(struct vu_dev *dev);
/* SET_LOG_BASE (LOG_SHMFD): map the front-end's log file. */
enum vu_result vu_set_log_base(struct vu_dev *dev, struct vhost_user_msg *msg, int *fds,
			       unsigned int nfds);
/*
 * The SIGBUS handler raised dev->mem_fault: find the region that faulted,
 * mark it poisoned and the device broken (one log line).  Loop thread.
 */
void vu_mem_report_faults(struct vu_dev *dev);

#endif /* VHOSTD_VHOST_USER_BACKEND_PRIV_H */
