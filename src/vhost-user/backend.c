// SPDX-License-Identifier: MIT
/*
 * backend.c - the vhost-user back-end: sockets, the message dispatcher and
 * the ring life cycle.  Message handlers are in backend_msgs.c, guest
 * memory in backend_mem.c.
 *
 * Security model.  The front-end is a separate, less trusted process (a
 * guest-facing QEMU may be compromised), so no field of any message is
 * trusted: not the header's size, not the number of descriptors attached,
 * not a ring index, a queue size, an address or a region.  One table
 * (vu_msg_table) says what each request may carry; the dispatcher checks
 * the header, payload size, descriptor count and ring index against it
 * before any handler runs, and handlers check the values.  A message that
 * breaks a rule closes that one connection with one log line naming the
 * rule: the daemon and its other devices keep serving, and this device
 * takes the next connection.  Every descriptor received is either kept by a
 * handler or closed by the dispatcher.  What the peer writes into shared
 * memory is the ring code's business (virtq.h); what this file guarantees
 * is that the ring code only ever sees rings that lie inside mapped memory.
 *
 * Threads.  Everything here runs on the thread of the event loop that
 * watches our sockets; device models run their queues on their own threads
 * between start_queue() and stop_queue().  Anything a queue thread reads
 * (the ring, call_fd, the memory map) is changed only while that queue is
 * stopped: messages that touch a ring stop it first (VU_MSG_STOP_*), and
 * after every message the rings' readiness is evaluated again, starting
 * the ones that became ready and stopping the ones that no longer are (the
 * DPDK model).
 *
 * Stops are asynchronous (stop_queue_begin): a ring whose requests take
 * seconds to drain must not keep this thread from everyone else.  A
 * message that needs stopped rings parks in dev->rx, descriptors and all,
 * with the connection unwatched; the device's vu_queue_stopped() wakes
 * stop_fd and the message resumes where it stopped (enum vu_step), so to
 * the front-end nothing changes but the wait.  A stop that outlasts
 * stop_timeout_ms is abandoned (stop_timer_fd).
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "backend_priv.h"
#include "common/log.h"
#include "common/sigbus.h"
#include "common/util.h"

/* Client mode: first retry after this, doubling up to the maximum. */
#define VU_RECONNECT_MIN_MS 50
#define VU_RECONNECT_MAX_MS 5000
/* Messages handled per readable event, so one busy peer cannot starve others. */
#define VU_MSGS_PER_EVENT 64
/*
 * A peer that leaves its replies unread until the socket buffer is full,
 * and for this long after, is dropped (the loop waits that long, once).
 */
#define VU_SEND_TIMEOUT_MS 200
/*
 * Guest memory one device maps by default (max-guest-memory=).  Every
 * device of every front-end shares the daemon's 128 TiB of address space,
 * and a front-end can describe terabytes of sparse memfd at no cost to
 * itself.  64 GiB covers the guests most devices serve while leaving room
 * for about 2000 devices at the limit; a bigger guest's device says so.
 */
#define VU_DEFAULT_MAX_GUEST_MEMORY (64ull << 30)
/*
 * How long a ring's stop may drain before its requests are given up on
 * (stop_timeout_ms): a guest's block layer times a request out after 30 s
 * by default, so a drain that takes longer has failed anyway.
 */
#define VU_DEFAULT_STOP_TIMEOUT_MS 30000

static void vu_resume(struct vu_dev *dev);
static void vu_conn_close(struct vu_dev *dev);
static void vu_conn_event(void *arg, uint32_t events);
static void vu_accept_event(void *arg, uint32_t events);

static uint64_t vu_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

enum vu_result vu_reject(struct vu_dev *dev, const struct vhost_user_msg *msg, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	log_error("%s: %s (%u): %s; closing connection", dev->name,
		  vhost_user_request_name(msg->hdr.request), msg->hdr.request, why);
	return VU_CLOSE;
}

uint64_t vu_offered_features(const struct vu_dev *dev)
{
	uint64_t f = dev->ops->get_features(dev->opaque);

	/*
	 * A vIOMMU needs messages we do not implement (IOTLB_MSG), so never
	 * let a device offer it.  Dirty logging is ours to offer: without it
	 * QEMU refuses to migrate the guest.
	 */
	f &= ~(1ull << VIRTIO_F_ACCESS_PLATFORM);
	return f | (1ull << VHOST_USER_F_PROTOCOL_FEATURES) | (1ull << VHOST_F_LOG_ALL);
}

uint64_t vu_offered_protocol_features(const struct vu_dev *dev)
{
	uint64_t f = 1ull << VHOST_USER_PROTOCOL_F_MQ | 1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK |
		     1ull << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS |
		     1ull << VHOST_USER_PROTOCOL_F_STATUS |
		     1ull << VHOST_USER_PROTOCOL_F_RESET_DEVICE |
		     1ull << VHOST_USER_PROTOCOL_F_LOG_SHMFD;

	/* CONFIG only for a device that has a config space to show. */
	if (dev->ops->get_protocol_features && dev->ops->get_config)
		f |= dev->ops->get_protocol_features(dev->opaque) &
		     (1ull << VHOST_USER_PROTOCOL_F_CONFIG);
	/*
	 * INFLIGHT_SHMFD for a device that opts in: its requests may be
	 * started again after a crash (the engine does the tracking).
	 */
	if (dev->ops->get_protocol_features)
		f |= dev->ops->get_protocol_features(dev->opaque) &
		     (1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD);
	/* RARP for a device that can put a frame on its network. */
	if (dev->ops->send_rarp)
		f |= 1ull << VHOST_USER_PROTOCOL_F_RARP;
	return f;
}

/* --- ring life cycle --- */

/*
 * Host pointer for one ring part: wholly inside one region, and aligned as
 * 2.7 / 2.8 demand (a misaligned index would make our atomic accesses tear).
 */
static int translate_part(const struct memmap *mem, uint64_t uva, size_t len, size_t align,
			  const char *part, void **out, char *why, size_t why_len)
{
	*out = memmap_uva_to_hva(mem, uva, len);
	if (!*out) {
		snprintf(why, why_len, "%s [%#llx, +%zu) is not inside guest memory", part,
			 (unsigned long long)uva, len);
		return -EINVAL;
	}
	if ((uintptr_t)*out & (align - 1)) {
		snprintf(why, why_len, "%s at %#llx is not %zu-byte aligned", part,
			 (unsigned long long)uva, align);
		return -EINVAL;
	}
	return 0;
}

int vu_vring_translate(const struct vu_dev *dev, const struct vu_vring *vr, struct vu_ring_ptrs *p,
		       char *why, size_t why_len)
{
	bool event_idx = vu_has_feature(dev, VIRTIO_RING_F_EVENT_IDX);
	size_t desc_len, drv_len, dev_len, drv_align, dev_align;
	int r;

	if (!dev->mem || !vr->num) {
		snprintf(why, why_len, "%s", dev->mem ? "no queue size" : "no memory table");
		return -EINVAL;
	}
	if (vu_has_feature(dev, VIRTIO_F_RING_PACKED)) {
		desc_len = sizeof(struct vring_packed_desc) * vr->num;
		drv_len = dev_len = sizeof(struct vring_packed_desc_event);
		drv_align = dev_align = VRING_PACKED_EVENT_ALIGN;
	} else {
		/* The trailing event words exist only with EVENT_IDX (2.7.6, 2.7.8). */
		desc_len = vring_desc_size(vr->num);
		drv_len = vring_avail_size(vr->num) - (event_idx ? 0 : sizeof(uint16_t));
		dev_len = vring_used_size(vr->num) - (event_idx ? 0 : sizeof(uint16_t));
		drv_align = VRING_AVAIL_ALIGN;
		dev_align = VRING_USED_ALIGN;
	}

	r = translate_part(dev->mem, vr->addr.desc, desc_len, VRING_DESC_ALIGN, "descriptor table",
			   &p->desc, why, why_len);
	if (!r)
		r = translate_part(dev->mem, vr->addr.avail, drv_len, drv_align, "driver area",
				   &p->driver_area, why, why_len);
	if (!r)
		r = translate_part(dev->mem, vr->addr.used, dev_len, dev_align, "device area",
				   &p->device_area, why, why_len);
	return r;
}

static bool vu_vring_ready(const struct vu_dev *dev, const struct vu_vring *vr)
{
	return dev->mem && !dev->mem_poisoned && vr->num && vr->addr_set && vr->kick_set &&
	       vr->q.enabled && !vr->start_failed && !vr->held_by_reset &&
	       !atomic_load(&dev->broken);
}

/*
 * Dirty logging for a ring about to start ("Migration"): on while
 * VHOST_F_LOG_ALL is negotiated and a log is mapped.  The ring's own
 * writes are logged when SET_VRING_ADDR asked (VHOST_VRING_F_LOG): a split
 * ring's used ring at log_guest_addr, as the spec says.  A packed ring's
 * used elements go into its descriptor ring, which QEMU 7.2 gives no log
 * address for (its log_guest_addr is the device event area), so both parts
 * are logged at the guest-physical addresses the memory table gives.
 */
static void vu_vring_log_config(const struct vu_dev *dev, const struct vu_vring *vr,
				struct virtq_config *cfg)
{
	if (!vu_has_feature(dev, VHOST_F_LOG_ALL) || !dev->log.bits || dev->log_broken_for_test)
		return;
	cfg->log = &dev->log;
	if (!(vr->addr.flags & (1u << VHOST_VRING_F_LOG)))
		return;
	cfg->log_rings = true;
	if (!vu_has_feature(dev, VIRTIO_F_RING_PACKED)) {
		cfg->log_device_gpa = vr->addr.log;
		return;
	}
	/* vu_vring_translate() found both parts inside one region each. */
	if (!memmap_uva_to_gpa(dev->mem, vr->addr.desc, 1, &cfg->log_desc_gpa) ||
	    !memmap_uva_to_gpa(dev->mem, vr->addr.used, 1, &cfg->log_device_gpa))
		cfg->log_rings = false;
}

static void vu_vring_start(struct vu_dev *dev, struct vu_vring *vr)
{
	struct virtq_config cfg = {
		.num = vr->num,
		.features = dev->features,
		.base = vu_vring_base(dev, vr),
		.mem = dev->mem,
		.name = vr->name,
	};
	struct vu_ring_ptrs p;
	char why[128];
	int r;

	/* Translated on every start: the memory table may have changed. */
	if (vu_vring_translate(dev, vr, &p, why, sizeof(why))) {
		log_error("%s: not started: %s", vr->name, why);
		goto failed;
	}
	cfg.desc = p.desc;
	cfg.driver_area = p.driver_area;
	cfg.device_area = p.device_area;
	/* Crash-safe reconnect: where to resume, and what to start again. */
	if (vu_inflight_ring_start(dev, vr, &p, &cfg.base, why, sizeof(why))) {
		char msg[192];

		/*
		 * Only the front-end writes the region between our sessions: a
		 * region that fails its checks is its doing, and the ring's
		 * requests cannot be accounted for.  Unlike a ring address
		 * that a later message may still fix, say so (NEEDS_RESET).
		 */
		snprintf(msg, sizeof(msg), "%s: not started: %s", vr->name, why);
		vu_dev_set_broken(dev, msg);
		goto failed;
	}
	vu_vring_log_config(dev, vr, &cfg);
	/*
	 * vu_queue_notify() sets its io_uring up on first use: the engine's
	 * device models signal through their I/O thread's own ring and never
	 * need one per queue.
	 */
	r = virtq_init(&vr->q.vq, &cfg);
	if (r) {
		log_error("%s: not started: ring rejected (size %u, base %#x): %s", vr->name,
			  vr->num, cfg.base, strerror(-r));
		goto failed;
	}
	/* Resubmitted chains complete after the base: the used ring lags it. */
	if (vr->q.inflight)
		virtq_resume_used(&vr->q.vq, vr->q.inflight->used_idx);
	r = dev->ops->start_queue(dev->opaque, &vr->q);
	if (r < 0) {
		log_error("%s: not started: device refused: %s", vr->name, strerror(-r));
		virtq_destroy(&vr->q.vq);
		goto failed;
	}
	vr->q.started = true;
	log_debug("%s: started (size %u, base %#x%s)", vr->name, vr->num, cfg.base,
		  cfg.log ? (cfg.log_rings ? ", logging dirty pages and the ring"
					   : ", logging dirty pages")
			  : "");
	return;

failed:
	/* Retried once the front-end changes something about this ring. */
	vr->start_failed = true;
}

/* The device has let go of the ring (or it was given up on: @abandoned). */
static void vu_vring_stopped(struct vu_dev *dev, struct vu_vring *vr, bool abandoned)
{
	/*
	 * A device model that returns with chains still popped breaks its
	 * contract: the base below already counts them, so the driver would
	 * never see them completed.  Say so loudly; it is our bug, not the
	 * guest's.  (Abandoned ones were logged as such.)
	 */
	if (vr->q.vq.inflight && !abandoned)
		log_error("%s: device stopped with %u request(s) still in flight", vr->name,
			  vr->q.vq.inflight);
	vr->base = virtq_get_base(&vr->q.vq);
	vr->base_set = true;
	virtq_destroy(&vr->q.vq);
	/* Writes to call_fd still in flight are cancelled; the ring goes with them. */
	ufd_signal_reset(&vr->call_sig);
	vr->q.started = false;
	log_debug("%s: stopped at base %#x", vr->name, vr->base);
}

static void vu_stop_timer_set(struct vu_dev *dev, unsigned int ms)
{
	struct itimerspec its = {
		.it_value = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000},
	};

	timerfd_settime(dev->stop_timer_fd, 0, &its, NULL);
}

/* Begin stopping @vr; it may end at once (a synchronous device) or later. */
static void vu_vring_stop(struct vu_dev *dev, struct vu_vring *vr)
{
	if (!vr->q.started || vr->stopping)
		return;
	if (!dev->ops->stop_queue_begin) {
		/* Synchronous: every in-flight request is completed when it returns. */
		dev->ops->stop_queue(dev->opaque, &vr->q);
		vu_vring_stopped(dev, vr, false);
		return;
	}
	vr->stopping = true;
	vr->abandon_refused = false;
	atomic_store(&vr->stop_done, false);
	if (dev->nr_stopping++ == 0)
		vu_stop_timer_set(dev, dev->stop_timeout_ms);
	dev->ops->stop_queue_begin(dev->opaque, &vr->q);
}

/* @left: requests the device gave up on (stop_queue_abandon), or 0. */
static void vu_vring_stop_end(struct vu_dev *dev, struct vu_vring *vr, unsigned int left)
{
	if (left)
		log_error("%s: stop gave up after %u ms on %u request(s) still in the back-end: "
			  "the driver will not see them complete",
			  vr->name, dev->stop_timeout_ms, left);
	vr->stopping = false;
	if (--dev->nr_stopping == 0)
		vu_stop_timer_set(dev, 0);
	vu_vring_stopped(dev, vr, left > 0);
}

/* End the stops the devices reported done. */
static void vu_collect_stops(struct vu_dev *dev)
{
	for (unsigned int i = 0; dev->nr_stopping && i < dev->num_queues; i++) {
		struct vu_vring *vr = &dev->vrings[i];

		if (vr->stopping && atomic_load(&vr->stop_done)) {
			dev->ops->stop_queue_end(dev->opaque, &vr->q);
			vu_vring_stop_end(dev, vr, 0);
		}
	}
}

/* The stop timeout passed: give up on every stop still draining. */
static void vu_abandon_stops(struct vu_dev *dev)
{
	vu_collect_stops(dev);
	for (unsigned int i = 0; dev->nr_stopping && i < dev->num_queues; i++) {
		struct vu_vring *vr = &dev->vrings[i];

		int left = -EBUSY;

		if (!vr->stopping)
			continue;
		if (dev->ops->stop_queue_abandon)
			left = dev->ops->stop_queue_abandon(dev->opaque, &vr->q);
		if (left >= 0) {
			vu_vring_stop_end(dev, vr, (unsigned int)left);
		} else if (!vr->abandon_refused) {
			vr->abandon_refused = true;
			log_error("%s: stop still waiting after %u ms for requests the back-end "
				  "has not completed; this queue cannot give them up",
				  vr->name, dev->stop_timeout_ms);
		}
	}
}

void vu_queue_stopped(struct vu_queue *q)
{
	struct vu_vring *vr = container_of(q, struct vu_vring, q);

	atomic_store(&vr->stop_done, true);
	/* Our own eventfd: never near its maximum, so this cannot block. */
	eventfd_write(q->dev->stop_fd, 1);
}

void vu_stop_all(struct vu_dev *dev)
{
	for (unsigned int i = 0; i < dev->num_queues; i++)
		vu_vring_stop(dev, &dev->vrings[i]);
}

/*
 * Begin every stop and wait for them here, at most stop_timeout_ms, then
 * abandon the rest (vu_dev_free: the loop may not run any more).
 */
static void vu_stop_all_wait(struct vu_dev *dev)
{
	struct pollfd pfd = {.fd = dev->stop_fd, .events = POLLIN};
	uint64_t deadline;

	vu_stop_all(dev);
	deadline = vu_now_ms() + dev->stop_timeout_ms;
	while (dev->nr_stopping) {
		uint64_t now = vu_now_ms();
		eventfd_t v;

		if (now >= deadline) {
			vu_abandon_stops(dev);
			if (!dev->nr_stopping)
				break;
			/* A device that cannot abandon: nothing to do but wait. */
			deadline = UINT64_MAX;
			now = 0;
		}
		poll(&pfd, 1, deadline == UINT64_MAX ? 1000 : (int)(deadline - now));
		eventfd_read(dev->stop_fd, &v);
		vu_collect_stops(dev);
	}
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* A descriptor the front-end gave us: closing it must never wait. */
static void close_peer_fd(int *fd)
{
	if (*fd >= 0)
		ufd_close(*fd);
	*fd = -1;
}

void vu_vring_reset(struct vu_vring *vr)
{
	ufd_signal_reset(&vr->call_sig);
	ufd_signal_forget(&vr->q.dev->err_sig, vr->q.index);
	close_peer_fd(&vr->q.kick_fd);
	close_peer_fd(&vr->q.call_fd);
	close_peer_fd(&vr->q.err_fd);
	vr->q.enabled = false;
	vr->num = 0;
	vr->base = 0;
	vr->base_set = false;
	vr->addr_set = false;
	vr->kick_set = false;
	vr->start_failed = false;
	vr->held_by_reset = false;
}

/*
 * Stop what no longer is ready, then, once no stop is in progress and if
 * @may_start, start what became ready: run after every message.
 */
static void vu_update_rings(struct vu_dev *dev, bool may_start)
{
	for (unsigned int i = 0; i < dev->num_queues; i++) {
		struct vu_vring *vr = &dev->vrings[i];

		if (vr->q.started && !vu_vring_ready(dev, vr))
			vu_vring_stop(dev, vr);
	}
	if (dev->nr_stopping || !may_start)
		return;
	for (unsigned int i = 0; i < dev->num_queues; i++) {
		struct vu_vring *vr = &dev->vrings[i];

		if (!vr->q.started && vu_vring_ready(dev, vr))
			vu_vring_start(dev, vr);
	}
}

void vu_queue_notify(struct vu_queue *q)
{
	struct vu_vring *vr = container_of(q, struct vu_vring, q);

	/*
	 * Always ask, so the suppression bookkeeping stays in step.  Never
	 * eventfd_write(): the front-end can fill the counter and clear
	 * O_NONBLOCK on its side of the file, and that write would sleep.
	 */
	if (virtq_should_notify(&q->vq) && q->call_fd >= 0 &&
	    ufd_signal(&vr->call_sig, 0, q->call_fd) < 0)
		vu_dev_set_broken(q->dev, "cannot signal the call eventfd");
}

/* --- the dispatcher --- */

/* Checks that need only the header, so a bad one is refused before its payload arrives. */
static enum vu_result vu_check_header(struct vu_dev *dev, const struct vhost_user_msg *msg)
{
	const struct vhost_user_hdr *h = &msg->hdr;
	const struct vu_msg_info *info;

	if ((h->flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION)
		return vu_reject(dev, msg, "protocol version %u, expected %u",
				 h->flags & VHOST_USER_VERSION_MASK, VHOST_USER_VERSION);
	if (h->flags & VHOST_USER_REPLY_MASK)
		return vu_reject(dev, msg, "reply flag set on a request");
	if (h->request >= VHOST_USER_REQUEST_MAX || !vu_msg_table[h->request].handler)
		return vu_reject(dev, msg, "request not supported");
	info = &vu_msg_table[h->request];
	if (info->needs_protocol_feature &&
	    !vu_has_protocol_feature(dev, info->needs_protocol_feature - 1u))
		return vu_reject(dev, msg, "protocol feature %u not negotiated",
				 info->needs_protocol_feature - 1u);
	if (h->size < info->min_size || h->size > info->max_size)
		return vu_reject(dev, msg, "payload size %u, expected %u..%u", h->size,
				 info->min_size, info->max_size);
	return VU_OK;
}

/* The ring a VU_MSG_VRING / VU_MSG_VRING_FD message addresses. */
static unsigned int vu_msg_ring(const struct vhost_user_msg *msg, const struct vu_msg_info *info)
{
	if (info->flags & VU_MSG_VRING_FD)
		return (unsigned int)(msg->payload.u64 & VHOST_USER_VRING_IDX_MASK);
	return msg->payload.state.index;
}

static const char *const vu_fd_role[VHOST_USER_REQUEST_MAX] = {
	[VHOST_USER_SET_VRING_KICK] = "kick fd",
	[VHOST_USER_SET_VRING_CALL] = "call fd",
	[VHOST_USER_SET_VRING_ERR] = "err fd",
};

/*
 * What each descriptor really is, before any handler keeps one: a pipe or
 * a semaphore-mode eventfd as a kick fd keeps the queue "kicked" forever
 * (a spinning core), anything but a file cannot back guest memory, and a
 * socket kept around may linger on its last close.  Refused ones are
 * closed by the dispatcher, without waiting (ufd_close).
 */
static enum vu_result vu_check_fds(struct vu_dev *dev, const struct vhost_user_msg *msg,
				   const struct vu_msg_info *info, int *fds, unsigned int nfds)
{
	for (unsigned int i = 0; i < nfds; i++) {
		struct ufd_info fi;
		enum ufd_kind k;

		if (info->fd_kind == VU_FD_UNUSED)
			break;
		k = ufd_classify(fds[i], &fi);
		if (info->fd_kind == VU_FD_MEMORY) {
			if (!ufd_kind_is_memory(k))
				return vu_reject(dev, msg, "descriptor %u is %s, not a memory file",
						 i, fi.desc);
			continue;
		}
		if (k != UFD_EVENTFD)
			return vu_reject(dev, msg, "ring %u: %s is %s, not a counter-mode eventfd",
					 vu_msg_ring(msg, info), vu_fd_role[msg->hdr.request],
					 fi.desc);
		/* Belt and braces: the front-end can clear it again, so no I/O relies on it. */
		ufd_set_nonblock(fds[i]);
	}
	return VU_OK;
}

/* Checks against the table entry that need the payload and the descriptors. */
static enum vu_result vu_check_args(struct vu_dev *dev, const struct vhost_user_msg *msg, int *fds,
				    unsigned int nfds)
{
	const struct vu_msg_info *info = &vu_msg_table[msg->hdr.request];
	unsigned int ring;

	if (nfds < info->min_fds || nfds > info->max_fds)
		return vu_reject(dev, msg, "%u file descriptors attached, expected %u..%u", nfds,
				 info->min_fds, info->max_fds);
	if (!(info->flags & (VU_MSG_VRING | VU_MSG_VRING_FD)))
		return vu_check_fds(dev, msg, info, fds, nfds);

	ring = vu_msg_ring(msg, info);
	if (ring >= dev->num_queues)
		return vu_reject(dev, msg, "ring %u out of range (%u rings)", ring,
				 dev->num_queues);
	if (info->flags & VU_MSG_VRING_FD) {
		uint64_t v = msg->payload.u64;
		bool nofd = v & VHOST_USER_VRING_NOFD_MASK;

		if (v & ~(VHOST_USER_VRING_IDX_MASK | VHOST_USER_VRING_NOFD_MASK))
			return vu_reject(dev, msg, "reserved bits set in %#llx",
					 (unsigned long long)v);
		/* The NOFD bit and the ancillary data must agree. */
		if (nfds != (nofd ? 0u : 1u))
			return vu_reject(dev, msg, "%u file descriptors with the no-fd flag %s",
					 nfds, nofd ? "set" : "clear");
	}
	return vu_check_fds(dev, msg, info, fds, nfds);
}

static int vu_send_reply(struct vu_dev *dev, struct vhost_user_msg *msg)
{
	int fd = dev->reply_fd, r;

	msg->hdr.flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK;
	r = vhost_user_send(dev->conn_fd, msg, &fd, fd >= 0 ? 1 : 0, VU_SEND_TIMEOUT_MS);
	if (fd >= 0)
		close(fd); /* the front-end has its own now */
	dev->reply_fd = -1;
	return r;
}

/*
 * Run the message in dev->rx from dev->dispatch_step on: VU_OK or
 * VU_CLOSE when done, VU_PARKED while rings it stopped are draining.
 */
static enum vu_result vu_dispatch_run(struct vu_dev *dev)
{
	struct vhost_user_msg *msg = &dev->rx.msg;
	const struct vu_msg_info *info = &vu_msg_table[msg->hdr.request];
	enum vu_result res;
	int r = 0;

	while (dev->dispatch_step != VU_STEP_REPLY) {
		if (dev->nr_stopping)
			return VU_PARKED;
		if (dev->dispatch_step == VU_STEP_HANDLER) {
			res = info->handler(dev, msg, dev->rx.fds, dev->rx.nfds);
			if (res == VU_CLOSE)
				return VU_CLOSE;
			dev->dispatch_res = res;
			dev->dispatch_step = VU_STEP_RINGS;
		} else {
			/*
			 * Rings first, reply second: when the front-end reads
			 * its ack the message has taken full effect (a
			 * disabled ring is stopped, rings run on the new
			 * memory table).  Stops first, starts once they end.
			 */
			vu_update_rings(dev, true);
			if (!dev->nr_stopping)
				dev->dispatch_step = VU_STEP_REPLY;
		}
	}

	res = (enum vu_result)dev->dispatch_res;
	if (info->flags & VU_MSG_REPLY) {
		r = vu_send_reply(dev, msg);
	} else if (dev->dispatch_need_ack) {
		msg->payload.u64 = res == VU_OK ? 0 : 1;
		msg->hdr.size = sizeof(msg->payload.u64);
		r = vu_send_reply(dev, msg);
	} else if (res == VU_NACK) {
		log_warn("%s: %s failed (no reply requested)", dev->name,
			 vhost_user_request_name(msg->hdr.request));
	}
	if (r) {
		log_error("%s: cannot send the %s reply: %s; closing connection", dev->name,
			  vhost_user_request_name(msg->hdr.request), strerror(-r));
		return VU_CLOSE;
	}
	return VU_OK;
}

/* Does a SET_VRING_CALL have to stop its ring (the device cannot swap live)? */
static bool vu_call_needs_stop(const struct vu_dev *dev)
{
	return !dev->ops->set_call_fd;
}

/* Check the message in dev->rx, begin the stops it needs, and run it. */
static enum vu_result vu_dispatch(struct vu_dev *dev)
{
	struct vhost_user_msg *msg = &dev->rx.msg;
	const struct vu_msg_info *info;

	if (vu_check_header(dev, msg) != VU_OK ||
	    vu_check_args(dev, msg, dev->rx.fds, dev->rx.nfds) != VU_OK)
		return VU_CLOSE;
	info = &vu_msg_table[msg->hdr.request];
	log_debug("%s: %s size %u fds %u", dev->name, vhost_user_request_name(msg->hdr.request),
		  msg->hdr.size, dev->rx.nfds);

	/* REPLY_ACK: an ack only if negotiated before this message. */
	dev->dispatch_need_ack = (msg->hdr.flags & VHOST_USER_NEED_REPLY_MASK) &&
				 vu_has_protocol_feature(dev, VHOST_USER_PROTOCOL_F_REPLY_ACK);

	/* A ring's inputs change only while its queue thread is parked. */
	if (info->flags & VU_MSG_STOP_ALL) {
		vu_stop_all(dev);
		for (unsigned int i = 0; i < dev->num_queues; i++)
			dev->vrings[i].start_failed = false;
	} else if ((info->flags & VU_MSG_STOP_VRING) ||
		   ((info->flags & VU_MSG_CALL_FD) && vu_call_needs_stop(dev))) {
		struct vu_vring *vr = &dev->vrings[vu_msg_ring(msg, info)];

		vu_vring_stop(dev, vr);
		vr->start_failed = false;
	}
	dev->dispatch_step = VU_STEP_HANDLER;
	return vu_dispatch_run(dev);
}

/* --- connection --- */

static void vu_schedule_reconnect(struct vu_dev *dev, unsigned int ms)
{
	struct itimerspec its = {
		.it_value = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000},
	};

	timerfd_settime(dev->timer_fd, 0, &its, NULL);
}

/*
 * Back to the state of a fresh connection: nothing of the old session
 * survives.  Every ring is stopped (or abandoned) by now.
 */
static void vu_session_reset(struct vu_dev *dev)
{
	eventfd_t v;

	for (unsigned int i = 0; i < dev->num_queues; i++)
		vu_vring_reset(&dev->vrings[i]);
	vu_inflight_drop(dev);
	vu_mem_drop(dev);
	ufd_signal_reset(&dev->err_sig);
	dev->owner = false;
	dev->features = 0;
	dev->protocol_features = 0;
	dev->status = 0;
	/* Queue threads are gone: no vu_dev_set_broken() can race with this. */
	atomic_store(&dev->broken, false);
	eventfd_read(dev->broken_fd, &v);
}

static void vu_conn_watch(struct vu_dev *dev, bool on)
{
	if (dev->conn_fd < 0 || dev->conn_watched == on)
		return;
	if (!on) {
		dev->watch->del(dev->loop, dev->conn_fd);
	} else if (dev->watch->add(dev->loop, dev->conn_fd, vu_conn_event, dev) < 0) {
		/* Nothing reads this connection any more: end it. */
		log_error("%s: cannot watch the connection again; closing it", dev->name);
		vu_conn_close(dev);
		return;
	}
	dev->conn_watched = on;
}

static void vu_listen_watch(struct vu_dev *dev, bool on)
{
	if (dev->listen_fd < 0 || dev->listen_watched == on)
		return;
	if (!on)
		dev->watch->del(dev->loop, dev->listen_fd);
	else if (dev->watch->add(dev->loop, dev->listen_fd, vu_accept_event, dev) < 0)
		log_error("%s: cannot watch the listening socket again", dev->name);
	dev->listen_watched = on;
}

/*
 * Tear the session down once its rings are stopped; the socket is closed
 * last, so EOF means "all released".
 */
static void vu_conn_teardown(struct vu_dev *dev)
{
	if (dev->conn_fd < 0)
		return;
	vu_conn_watch(dev, false);
	dev->pending = VU_PENDING_NONE;
	vu_session_reset(dev);
	vhost_user_rx_reset(&dev->rx);
	/*
	 * Off this thread: descriptors the front-end queued and we never
	 * read are released with the socket, and the last close of one (a
	 * lingering socket) would sleep right here.
	 */
	ufd_close_async(dev->conn_fd);
	dev->conn_fd = -1;
	atomic_store(&dev->connected, false);
}

/* The drain of a closed connection is over: let the next front-end in. */
static void vu_retire_end(struct vu_dev *dev)
{
	void (*done)(void *arg) = dev->retire_done;

	dev->retire_done = NULL;
	if (done)
		done(dev->retire_arg); /* frees dev */
}

static void vu_conn_close_end(struct vu_dev *dev)
{
	vu_conn_teardown(dev);
	if (dev->retiring) {
		vu_retire_end(dev);
		return;
	}
	vu_listen_watch(dev, true);
	if (dev->client) {
		dev->backoff_ms = VU_RECONNECT_MIN_MS;
		vu_schedule_reconnect(dev, dev->backoff_ms);
	}
}

/*
 * End the connection: stop reading it, and stop its rings without waiting
 * for them; a parked message is dropped (its descriptors closed).  A new
 * front-end is taken only once the old one's requests are drained: until
 * then it waits in the listen backlog, its connect() already done.
 */
static void vu_conn_close(struct vu_dev *dev)
{
	if (dev->conn_fd < 0 || dev->pending == VU_PENDING_CLOSE)
		return;
	vu_conn_watch(dev, false);
	vu_listen_watch(dev, false);
	vhost_user_rx_reset(&dev->rx);
	dev->pending = VU_PENDING_CLOSE;
	vu_stop_all(dev);
	vu_resume(dev);
}

/*
 * No stop in progress any more (or never was): carry on with what waited
 * for them, until something begins new stops or nothing is left.
 */
static void vu_resume(struct vu_dev *dev)
{
	while (!dev->nr_stopping) {
		enum vu_result res;

		switch (dev->pending) {
		case VU_PENDING_NONE:
			vu_conn_watch(dev, true);
			return;
		case VU_PENDING_CLOSE:
			vu_conn_close_end(dev);
			return;
		case VU_PENDING_MSG:
			res = vu_dispatch_run(dev);
			if (res == VU_PARKED)
				break;
			dev->pending = VU_PENDING_NONE;
			/* Closes whatever descriptors the handler did not keep. */
			vhost_user_rx_reset(&dev->rx);
			if (res == VU_CLOSE)
				vu_conn_close(dev);
			break;
		}
	}
	/* Messages wait for the stops; the other devices do not. */
	vu_conn_watch(dev, false);
}

/* A device said a stop is complete (vu_queue_stopped). */
static void vu_stop_event(void *arg, uint32_t events)
{
	struct vu_dev *dev = arg;
	eventfd_t v;

	if (eventfd_read(dev->stop_fd, &v) < 0)
		return;
	if (!dev->nr_stopping)
		return;
	vu_collect_stops(dev);
	vu_resume(dev);
}

/* stop_timeout_ms since the first stop began: give up on what still drains. */
static void vu_stop_timer_event(void *arg, uint32_t events)
{
	struct vu_dev *dev = arg;
	uint64_t expirations;

	if (read(dev->stop_timer_fd, &expirations, sizeof(expirations)) < 0 || !dev->nr_stopping)
		return;
	vu_abandon_stops(dev);
	vu_resume(dev);
}

/* One line for a receive failure; a clean EOF between messages is not an error. */
static void vu_log_recv_error(struct vu_dev *dev, int err)
{
	const struct vhost_user_rx *rx = &dev->rx;

	switch (err) {
	case -ECONNRESET:
		log_info("%s: front-end disconnected", dev->name);
		break;
	case -EPIPE:
		log_error("%s: connection closed in the middle of a message (%zu bytes of %s); "
			  "closing connection",
			  dev->name, rx->got,
			  rx->got >= VHOST_USER_HDR_SIZE ? "payload" : "the 12-byte header");
		break;
	case -EMSGSIZE:
		log_error("%s: %s (%u): payload size %u exceeds the protocol maximum %zu; "
			  "closing connection",
			  dev->name, vhost_user_request_name(rx->msg.hdr.request),
			  rx->msg.hdr.request, rx->msg.hdr.size, VHOST_USER_MAX_PAYLOAD);
		break;
	case -ETOOMANYREFS:
		log_error("%s: more than %d file descriptors attached to a message; "
			  "closing connection",
			  dev->name, VHOST_USER_MAX_FDS);
		break;
	default:
		log_error("%s: socket error: %s; closing connection", dev->name, strerror(-err));
		break;
	}
}

static void vu_conn_event(void *arg, uint32_t events)
{
	struct vu_dev *dev = arg;

	for (unsigned int budget = VU_MSGS_PER_EVENT; budget; budget--) {
		enum vu_result res;
		int r = vhost_user_recv_step(dev->conn_fd, &dev->rx);

		if (r == 0) {
			/*
			 * The rest has not arrived.  If the header is in,
			 * judge it now rather than wait for a payload that
			 * a hostile size says is coming.
			 */
			if (dev->rx.got >= VHOST_USER_HDR_SIZE &&
			    vu_check_header(dev, &dev->rx.msg) != VU_OK)
				goto close;
			return;
		}
		if (r < 0) {
			vu_log_recv_error(dev, r);
			goto close;
		}
		res = vu_dispatch(dev);
		if (res == VU_PARKED) {
			/* The message and its descriptors wait in rx (vu_resume). */
			log_debug("%s: %s waits for %u ring(s) to drain", dev->name,
				  vhost_user_request_name(dev->rx.msg.hdr.request),
				  dev->nr_stopping);
			dev->pending = VU_PENDING_MSG;
			vu_conn_watch(dev, false);
			return;
		}
		/* Closes whatever descriptors the handler did not keep. */
		vhost_user_rx_reset(&dev->rx);
		if (res == VU_CLOSE)
			goto close;
	}
	/* Budget used up: level-triggered watching calls us again. */
	return;

close:
	vu_conn_close(dev);
}

static int vu_conn_open(struct vu_dev *dev, int fd)
{
	int r;

	dev->conn_fd = fd;
	vhost_user_rx_init(&dev->rx);
	r = dev->watch->add(dev->loop, fd, vu_conn_event, dev);
	if (r < 0) {
		log_error("%s: cannot watch the connection: %s", dev->name, strerror(-r));
		close_fd(&dev->conn_fd);
		return r;
	}
	dev->conn_watched = true;
	dev->pending = VU_PENDING_NONE;
	atomic_store(&dev->connected, true);
	log_info("%s: front-end connected", dev->name);
	return 0;
}

/* --- server mode --- */

/*
 * Has the front-end on @fd hung up?  Its EOF may sit in the same epoll
 * batch as the next front-end's connect, after it.
 */
static bool vu_conn_hung_up(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLRDHUP};

	return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

static void vu_accept_event(void *arg, uint32_t events)
{
	struct vu_dev *dev = arg;
	int fd;

	/*
	 * An event of the batch that closed the last connection, after its
	 * close unwatched us: the new front-end waits in the backlog until
	 * the drain is over.
	 */
	if (!dev->listen_watched)
		return;
	/*
	 * A front-end that reconnects at once (close, then connect) must not
	 * be refused because its old connection's EOF is still unread: end
	 * that one first; the close unwatches us until its drain is over.
	 */
	if (dev->conn_fd >= 0 && vu_conn_hung_up(dev->conn_fd)) {
		vu_conn_close(dev);
		return;
	}
	fd = accept4(dev->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
		    errno != ECONNABORTED)
			log_warn("%s: accept: %s", dev->name, strerror(errno));
		return;
	}
	/* One front-end drives a device; a second one gets an immediate EOF. */
	if (dev->conn_fd >= 0) {
		log_warn("%s: refusing a second front-end while one is connected", dev->name);
		/* It may already carry descriptors: see vu_conn_teardown(). */
		ufd_close_async(fd);
		return;
	}
	vu_conn_open(dev, fd);
}

static int vu_socket_addr(const struct vu_dev *dev, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(dev->socket_path) >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	strcpy(sa->sun_path, dev->socket_path);
	return 0;
}

static int vu_listen(struct vu_dev *dev)
{
	struct sockaddr_un sa;
	struct stat st;
	int r = vu_socket_addr(dev, &sa);

	if (r)
		return r;
	dev->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (dev->listen_fd < 0)
		return -errno;
	/*
	 * A socket left by an earlier run would make bind() fail; anything
	 * else at that path is not ours to delete.
	 */
	if (!lstat(dev->socket_path, &st) && S_ISSOCK(st.st_mode))
		unlink(dev->socket_path);
	if (bind(dev->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(dev->listen_fd, 1) < 0)
		return -errno;
	r = dev->watch->add(dev->loop, dev->listen_fd, vu_accept_event, dev);
	dev->listen_watched = r == 0;
	return r;
}

/* --- client mode --- */

static int vu_try_connect(struct vu_dev *dev)
{
	struct sockaddr_un sa;
	int fd, r = vu_socket_addr(dev, &sa);

	if (r)
		return r;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* AF_UNIX connect completes or fails at once, even non-blocking. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return vu_conn_open(dev, fd);
}

static void vu_timer_event(void *arg, uint32_t events)
{
	struct vu_dev *dev = arg;
	uint64_t expirations;
	int r;

	if (read(dev->timer_fd, &expirations, sizeof(expirations)) < 0 || dev->conn_fd >= 0 ||
	    dev->retiring)
		return;
	r = vu_try_connect(dev);
	if (!r) {
		dev->backoff_ms = VU_RECONNECT_MIN_MS;
		return;
	}
	log_debug("%s: connect %s: %s; retrying in %u ms", dev->name, dev->socket_path,
		  strerror(-r), dev->backoff_ms);
	vu_schedule_reconnect(dev, dev->backoff_ms);
	dev->backoff_ms = dev->backoff_ms * 2 > VU_RECONNECT_MAX_MS ? VU_RECONNECT_MAX_MS
								    : dev->backoff_ms * 2;
}

/* --- broken devices --- */

void vu_dev_set_broken(struct vu_dev *dev, const char *why)
{
	if (atomic_exchange(&dev->broken, true))
		return;
	log_error("%s: device needs reset: %s", dev->name, why);
	/* Any thread may call this; the rings are stopped on the loop's thread. */
	eventfd_write(dev->broken_fd, 1);
}

static void vu_broken_event(void *arg, uint32_t events)
{
	struct vu_dev *dev = arg;
	eventfd_t v;

	if (eventfd_read(dev->broken_fd, &v) < 0)
		return;
	/* Guest memory faulted (common/sigbus.h); after a disconnect, stale news. */
	if (atomic_exchange(&dev->mem_fault, false) && dev->conn_fd >= 0)
		vu_mem_report_faults(dev);
	if (dev->conn_fd < 0 || !atomic_load(&dev->broken) || dev->pending == VU_PENDING_CLOSE)
		return;
	/* SET_VRING_ERR's eventfds tell the front-end; GET_STATUS shows NEEDS_RESET. */
	for (unsigned int i = 0; i < dev->num_queues; i++) {
		/* Never a plain write: see vu_queue_notify(). */
		if (ufd_signal(&dev->err_sig, i, dev->vrings[i].q.err_fd) < 0)
			log_error("%s: cannot signal the err eventfd", dev->vrings[i].name);
	}
	/* A parked message starts rings itself, after its handler ran. */
	vu_update_rings(dev, dev->pending == VU_PENDING_NONE);
	vu_resume(dev);
}

/* --- life cycle --- */

static void vu_unwatch_close(struct vu_dev *dev, int *fd)
{
	if (*fd < 0)
		return;
	dev->watch->del(dev->loop, *fd);
	close_fd(fd);
}

struct vu_dev *vu_dev_new(const struct vu_dev_config *cfg)
{
	struct vu_dev *dev;
	int r = -EINVAL;

	if (!cfg || !cfg->socket_path || !cfg->ops || !cfg->ops->get_features ||
	    !cfg->ops->start_queue || !cfg->ops->stop_queue || !cfg->watch || !cfg->watch->add ||
	    !cfg->watch->del || !cfg->num_queues || cfg->num_queues > VU_MAX_QUEUES ||
	    cfg->max_queue_size > VIRTQ_MAX_SIZE) {
		errno = EINVAL;
		return NULL;
	}
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return NULL;
	dev->listen_fd = dev->timer_fd = dev->broken_fd = dev->conn_fd = -1;
	dev->reply_fd = -1;
	dev->stop_fd = dev->stop_timer_fd = -1;
	dev->stop_timeout_ms =
		cfg->stop_timeout_ms ? cfg->stop_timeout_ms : VU_DEFAULT_STOP_TIMEOUT_MS;
	dev->client = cfg->client;
	dev->num_queues = cfg->num_queues;
	dev->max_queue_size = cfg->max_queue_size ? cfg->max_queue_size : VIRTQ_MAX_SIZE;
	dev->max_guest_memory =
		cfg->max_guest_memory ? cfg->max_guest_memory : VU_DEFAULT_MAX_GUEST_MEMORY;
	dev->ops = cfg->ops;
	dev->opaque = cfg->opaque;
	dev->watch = cfg->watch;
	dev->loop = cfg->loop;
	dev->backoff_ms = VU_RECONNECT_MIN_MS;
	atomic_init(&dev->connected, false);
	atomic_init(&dev->broken, false);
	atomic_init(&dev->mem_fault, false);
	vhost_user_rx_init(&dev->rx);

	/*
	 * For the migration test only (tests/guest/cases/blk-migrate): a
	 * daemon that loses the guest's data on migration, to show the test
	 * can tell.  Said loudly, since nobody should run like this.
	 */
	if (getenv("VHOSTD_TEST_BREAK_DIRTY_LOG")) {
		dev->log_broken_for_test = true;
		log_warn("%s: VHOSTD_TEST_BREAK_DIRTY_LOG is set: dirty pages are not logged, "
			 "a migrated guest will see stale data",
			 cfg->name ? cfg->name : cfg->socket_path);
	}

	/* Before any guest memory is mapped: a truncated file must not kill us. */
	r = sigbus_guard_init();
	if (r < 0) {
		log_error("cannot install the SIGBUS handler: %s", strerror(-r));
		goto fail;
	}

	dev->socket_path = strdup(cfg->socket_path);
	dev->name = strdup(cfg->name ? cfg->name : cfg->socket_path);
	dev->vrings = calloc(cfg->num_queues, sizeof(*dev->vrings));
	if (!dev->socket_path || !dev->name || !dev->vrings ||
	    ufd_signal_init(&dev->err_sig, dev->num_queues)) {
		r = -ENOMEM;
		goto fail;
	}
	for (unsigned int i = 0; i < dev->num_queues; i++) {
		struct vu_vring *vr = &dev->vrings[i];

		if (ufd_signal_init(&vr->call_sig, 1)) {
			r = -ENOMEM;
			goto fail;
		}
		vr->q.dev = dev;
		vr->q.index = i;
		vr->q.kick_fd = vr->q.call_fd = vr->q.err_fd = -1;
		snprintf(vr->name, sizeof(vr->name), "%s:q%u", dev->name, i);
	}

	dev->broken_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (dev->broken_fd < 0) {
		r = -errno;
		goto fail;
	}
	r = dev->watch->add(dev->loop, dev->broken_fd, vu_broken_event, dev);
	if (r < 0) {
		close_fd(&dev->broken_fd);
		goto fail;
	}
	dev->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	dev->stop_timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (dev->stop_fd < 0 || dev->stop_timer_fd < 0) {
		r = -errno;
		close_fd(&dev->stop_fd);
		close_fd(&dev->stop_timer_fd);
		goto fail;
	}
	r = dev->watch->add(dev->loop, dev->stop_fd, vu_stop_event, dev);
	if (r < 0) {
		close_fd(&dev->stop_fd);
		close_fd(&dev->stop_timer_fd);
		goto fail;
	}
	r = dev->watch->add(dev->loop, dev->stop_timer_fd, vu_stop_timer_event, dev);
	if (r < 0) {
		close_fd(&dev->stop_timer_fd);
		goto fail;
	}

	if (dev->client) {
		dev->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
		if (dev->timer_fd < 0) {
			r = -errno;
			goto fail;
		}
		r = dev->watch->add(dev->loop, dev->timer_fd, vu_timer_event, dev);
		if (r < 0) {
			close_fd(&dev->timer_fd);
			goto fail;
		}
		if (vu_try_connect(dev)) {
			log_info("%s: waiting for a front-end at %s", dev->name, dev->socket_path);
			vu_schedule_reconnect(dev, dev->backoff_ms);
		}
	} else {
		r = vu_listen(dev);
		if (r < 0) {
			log_error("%s: cannot listen on %s: %s", dev->name, dev->socket_path,
				  strerror(-r));
			/* vu_listen leaves the fd unwatched on failure. */
			close_fd(&dev->listen_fd);
			goto fail;
		}
		log_info("%s: listening on %s", dev->name, dev->socket_path);
	}
	return dev;

fail:
	vu_dev_free(dev);
	errno = -r;
	return NULL;
}

void vu_dev_retire(struct vu_dev *dev, void (*done)(void *arg), void *arg)
{
	struct itimerspec off = {0};

	dev->retiring = true;
	dev->retire_done = done;
	dev->retire_arg = arg;
	if (dev->timer_fd >= 0)
		timerfd_settime(dev->timer_fd, 0, &off, NULL);
	if (dev->listen_fd >= 0) {
		vu_listen_watch(dev, false);
		close_fd(&dev->listen_fd);
		unlink(dev->socket_path);
	}
	if (dev->conn_fd < 0) {
		vu_retire_end(dev);
		return;
	}
	/* Already closing: its end (vu_conn_close_end) finishes the retire. */
	if (dev->pending != VU_PENDING_CLOSE)
		vu_conn_close(dev);
}

void vu_dev_free(struct vu_dev *dev)
{
	if (!dev)
		return;
	dev->retire_done = NULL;
	/* The loop may not run again: wait here, within stop_timeout_ms. */
	if (dev->stop_fd >= 0)
		vu_stop_all_wait(dev);
	vu_conn_teardown(dev);
	if (dev->listen_fd >= 0) {
		if (dev->listen_watched)
			dev->watch->del(dev->loop, dev->listen_fd);
		close_fd(&dev->listen_fd);
		unlink(dev->socket_path);
	}
	vu_unwatch_close(dev, &dev->stop_timer_fd);
	vu_unwatch_close(dev, &dev->stop_fd);
	vu_unwatch_close(dev, &dev->timer_fd);
	/* No mapping should outlive the session; if one did, it forgets us. */
	sigbus_guard_disown(dev->broken_fd, &dev->mem_fault);
	vu_unwatch_close(dev, &dev->broken_fd);
	for (unsigned int i = 0; dev->vrings && i < dev->num_queues; i++)
		ufd_signal_destroy(&dev->vrings[i].call_sig);
	ufd_signal_destroy(&dev->err_sig);
	if (dev->vrings)
		vu_inflight_drop(dev);
	free(dev->vrings);
	free(dev->name);
	free(dev->socket_path);
	free(dev);
}

bool vu_dev_connected(const struct vu_dev *dev)
{
	return atomic_load(&dev->connected);
}
