// SPDX-License-Identifier: MIT
/*
 * backend_msgs.c - the back-end's message handlers and the table that
 * describes every request it accepts.
 *
 * By the time a handler runs, the dispatcher (backend.c) has checked the
 * header, the payload size, the number of descriptors and the ring index
 * against the table entry, and stopped the rings the message may change
 * (their stops have ended: no ring is draining while a handler runs).
 * Handlers check the values themselves.  Section names in comments are
 * those of QEMU's docs/interop/vhost-user.rst.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "backend_priv.h"
#include "common/log.h"

static void reply_u64(struct vhost_user_msg *msg, uint64_t v)
{
	msg->payload.u64 = v;
	msg->hdr.size = sizeof(msg->payload.u64);
}

static struct vu_vring *msg_vring(struct vu_dev *dev, const struct vhost_user_msg *msg)
{
	return &dev->vrings[msg->payload.state.index];
}

static struct vu_vring *msg_vring_fd(struct vu_dev *dev, const struct vhost_user_msg *msg)
{
	return &dev->vrings[msg->payload.u64 & VHOST_USER_VRING_IDX_MASK];
}

/*
 * The front-end stopped every ring (GET_VRING_BASE on each: QEMU's
 * vhost_dev_stop, as on a guest reset) - started rings always have a kick.
 */
static bool vu_all_rings_stopped(const struct vu_dev *dev)
{
	for (unsigned int i = 0; i < dev->num_queues; i++) {
		if (dev->vrings[i].kick_set)
			return false;
	}
	return true;
}

/*
 * A device that needed a reset got one (every ring stopped, status 0,
 * RESET_DEVICE): let its rings start again when they are set up anew.
 */
static void vu_clear_broken(struct vu_dev *dev)
{
	if (atomic_exchange(&dev->broken, false))
		log_info("%s: device reset", dev->name);
}

/* --- features and ownership --- */

static enum vu_result get_features(struct vu_dev *dev, struct vhost_user_msg *msg, int *fds,
				   unsigned int nfds)
{
	reply_u64(msg, vu_offered_features(dev));
	return VU_OK;
}

static enum vu_result set_features(struct vu_dev *dev, struct vhost_user_msg *msg, int *fds,
				   unsigned int nfds)
{
	uint64_t features = msg->payload.u64;
	uint64_t extra = features & ~vu_offered_features(dev);

	if (extra)
		return vu_reject(dev, msg, "features %#llx were never offered",
				 (unsigned long long)extra);
	if (dev->ops->set_features) {
		/* Bit 30 is the transport's business, not the device's. */
		int r = dev->ops->set_features(
			dev->opaque, features & ~(1ull << VHOST_USER_F_PROTOCOL_FEATURES));

		if (r < 0)
			return VU_NACK;
	}
	dev->features = features;
	/* "Ring states": without protocol features a ring is born enabled. */
	if (!vu_has_feature(dev, VHOST_USER_F_PROTOCOL_FEATURES)) {
		for (unsigned int i = 0; i < dev->num_queues; i++)
			dev->vrings[i].q.enabled = true;
	}
	return VU_OK;
}

static enum vu_result get_protocol_features(struct vu_dev *dev, struct vhost_user_msg *msg,
					    int *fds, unsigned int nfds)
{
	reply_u64(msg, vu_offered_protocol_features(dev));
	return VU_OK;
}

static enum vu_result set_protocol_features(struct vu_dev *dev, struct vhost_user_msg *msg,
					    int *fds, unsigned int nfds)
{
	uint64_t extra = msg->payload.u64 & ~vu_offered_protocol_features(dev);

	if (extra)
		return vu_reject(dev, msg, "protocol features %#llx were never offered",
				 (unsigned long long)extra);
	dev->protocol_features = msg->payload.u64;
	return VU_OK;
}

static enum vu_result set_owner(struct vu_dev *dev, struct vhost_user_msg *msg, int *fds,
				unsigned int nfds)
{
	dev->owner = true;
	return VU_OK;
}

/* Deprecated; the spec recommends "disable all rings" and nothing more. */
static enum vu_result reset_owner(struct vu_dev *dev, struct vhost_user_msg *msg, int *fds,
				  unsigned int nfds)
{
	for (unsigned int i = 0; i < dev->num_queues; i++)
		dev->vrings[i].q.enabled = false;
	return VU_OK;
}

/*
 * Back to the initial device state, "ready to be reinitialized".  The
 * connection-level state (ownership, protocol features, memory table)
 * stays: QEMU does not send those again after a reset.
 */
static enum vu_result reset_device(struct vu_dev *dev, struct vhost_user_msg *msg, int *fds,
				   unsigned int nfds)
{
	for (unsigned int i = 0; i < dev->num_queues; i++)
		vu_vring_reset(&dev->vrings[i]);
	dev->features = 0;
	dev->status = 0;
	vu_clear_broken(dev);
	if (dev->ops->set_status)
		dev->ops->set_status(dev->opaque, 0);
	return VU_OK;
}

static enum vu_result get_queue_num(struct vu_dev *dev, struct vhost_user_msg *msg, int *fds,
				    unsigned int nfds)
{
	reply_u64(msg, dev->num_queues);
	return VU_OK;
}

/* --- rings --- */

static enum vu_result set_vring_num(struct vu_dev *dev, struct vhost_user_msg *msg, int *fds,
				    unsigned int nfds)
{
	struct vu_vring *vr = msg_vring(dev, msg);
	uint32_t num = msg->payload.state.num;

	if (!num || num > dev->max_queue_size)
		return vu_reject(dev, msg, "ring %u: size %u outside 1..%u", vr->q.index, num,
				 dev->max_queue_size);
	/* 2.7: a split ring's size is a power of two; its indices wrap with it. */
	if (!vu_has_feature(dev, VIRTIO_F_RING_PACKED) && (num & (num - 1)))
		return vu_reject(dev, msg, "ring %u: split ring size %u is not a power of two",
				 vr->q.index, num);
	vr->num = (uint16_t)num;
	return VU_OK;
}

static enum vu_result set_vring_addr(struct vu_dev *dev, struct vhost_user_msg *msg, int *fds,
				     unsigned int nfds)
{
	struct vu_vring *vr = msg_vring(dev, msg);
	struct vu_ring_ptrs p;
	char why[128];

	/*
	 * VHOST_VRING_F_LOG is the only flag: log the ring's writes at
	 * log_guest_addr.  That address only ever indexes the log's bitmap
	 * (dirtylog.h), so any value is harmless.
	 */
	if (msg->payload.addr.flags & ~(1u << VHOST_VRING_F_LOG))
		return vu_reject(dev, msg, "ring %u: unknown flags %#x", vr->q.index,
				 msg->payload.addr.flags);
	vr->addr = msg->payload.addr;
	vr->addr_set = true;
	/*
	 * Check now when we can, so a ring outside memory is refused at
	 * once; either way the addresses are checked again at every start.
	 */
	if (dev->mem && vr->num && vu_vring_translate(dev, vr, &p, why, sizeof(why)))
		return vu_reject(dev, msg, "ring %u: %s", vr->q.index, why);
	return VU_OK;
}

/*
 * Packed rings: QEMU encodes both positions in the 32-bit state, the next
 * avail slot and its wrap counter in bits 0-15 and the next used slot and
 * its wrap counter in bits 16-31 (virtio_queue_packed_get_last_avail_idx).
 * We resume only idle rings, where the two are equal, so the avail half is
 * the position and the used half is checked for range like it.
 */
#define PACKED_USED_SHIFT 16

static bool packed_slot_ok(uint32_t half, uint16_t num)
{
	return (half & ~(1u << VIRTQ_PACKED_WRAP_BIT)) < num;
}

static enum vu_result set_vring_base(struct vu_dev *dev, struct vhost_user_msg *msg, int *fds,
				     unsigned int nfds)
{
	struct vu_vring *vr = msg_vring(dev, msg);
	uint32_t base = msg->payload.state.num;

	if (!vu_has_feature(dev, VIRTIO_F_RING_PACKED)) {
		if (base > UINT16_MAX)
			return vu_reject(dev, msg, "ring %u: base %#x does not fit 16 bits",
					 vr->q.index, base);
	} else if (vr->num && (!packed_slot_ok(base & UINT16_MAX, vr->num) ||
			       !packed_slot_ok(base >> PACKED_USED_SHIFT, vr->num))) {
		/* Bits 0-14 of each half are a slot and must lie inside the ring. */
		return vu_reject(dev, msg, "ring %u: packed base %#x beyond size %u",
				 vr->q.index, base, vr->num);
	}
	vr->base = (uint16_t)base;
	vr->base_set = true;
	return VU_OK;
}

/*
 * "Ring states": GET_VRING_BASE stops the ring.  The dispatcher stopped it
 * already (VU_MSG_STOP_VRING) and kept where it left off; the kick fd is
 * dropped so that it stays stopped until the next SET_VRING_KICK.
 */
static enum vu_result get_vring_base(struct vu_dev *dev, struct vhost_user_msg *msg, int *fds,
				     unsigned int nfds)
{
	struct vu_vring *vr = msg_vring(dev, msg);

	msg->payload.state.num = vu_vring_base(dev, vr);
	/* A stopped ring is idle: its used position equals its avail one. */
	if (vu_has_feature(dev, VIRTIO_F_RING_PACKED))
		msg->payload.state.num |= msg->payload.state.num << PACKED_USED_SHIFT;
	msg->hdr.size = sizeof(msg->payload.state);
	if (vr->q.kick_fd >= 0)
		ufd_close(vr->q.kick_fd);
	vr->q.kick_fd = -1;
	vr->kick_set = false;
	if (vu_all_rings_stopped(dev))
		vu_clear_broken(dev);
	return VU_OK;
}

/*
 * Install the message's descriptor (or none: NOFD) in @slot, closing the
 * old one.  The dispatcher checked it is an eventfd and set O_NONBLOCK.
 */
static void take_vring_fd(int *slot, int *fds, unsigned int nfds)
{
	if (*slot >= 0)
		ufd_close(*slot);
	*slot = -1;
	if (nfds) {
		*slot = fds[0];
		fds[0] = -1;
	}
}

static enum vu_result set_vring_kick(struct vu_dev *dev, struct vhost_user_msg *msg, int *fds,
				     unsigned int nfds)
{
	struct vu_vring *vr = msg_vring_fd(dev, msg);

	/* No fd (NOFD): the device polls the ring; q->kick_fd stays -1. */
	take_vring_fd(&vr->q.kick_fd, fds, nfds);
	vr->kick_set = true;
	vr->held_by_reset = false;
	if (!vu_has_feature(dev, VHOST_USER_F_PROTOCOL_FEATURES))
		vr->q.enabled = true;
	return VU_OK;
}

/*
 * A running ring gets its new call fd without a stop (QEMU swaps call fds
 * when it masks and unmasks a vector, at run time): the device switches
 * on its own thread and signals the new fd once, so a completion whose
 * interrupt went to the old fd is not lost.  Without set_call_fd the
 * dispatcher stopped the ring first.
 */
static enum vu_result set_vring_call(struct vu_dev *dev, struct vhost_user_msg *msg, int *fds,
				     unsigned int nfds)
{
	struct vu_vring *vr = msg_vring_fd(dev, msg);

	if (vr->q.started && dev->ops->set_call_fd) {
		int r = dev->ops->set_call_fd(dev->opaque, &vr->q, nfds ? fds[0] : -1);

		/*
		 * No stop runs under a handler, so this is our bug: keep the
		 * old fd (the queue may still write to it) and say so.
		 */
		if (r < 0) {
			vu_dev_set_broken(dev, "cannot switch the call fd of a running ring");
			return VU_NACK;
		}
	}
	take_vring_fd(&vr->q.call_fd, fds, nfds);
	return VU_OK;
}

static enum vu_result set_vring_err(struct vu_dev *dev, struct vhost_user_msg *msg, int *fds,
				    unsigned int nfds)
{
	struct vu_vring *vr = msg_vring_fd(dev, msg);

	/* A write to the old err fd may still be in flight: it is cancelled. */
	ufd_signal_forget(&dev->err_sig, vr->q.index);
	take_vring_fd(&vr->q.err_fd, fds, nfds);
	return VU_OK;
}

static enum vu_result set_vring_enable(struct vu_dev *dev, struct vhost_user_msg *msg, int *fds,
				       unsigned int nfds)
{
	struct vu_vring *vr = msg_vring(dev, msg);

	if (msg->payload.state.num > 1)
		return vu_reject(dev, msg, "ring %u: enable value %u is not 0 or 1", vr->q.index,
				 msg->payload.state.num);
	/* Readiness is evaluated after the message: this starts or stops the ring. */
	vr->q.enabled = msg->payload.state.num;
	return VU_OK;
}

/* --- config space and status --- */

/* The payload carries exactly the bytes its header says, within the config space. */
static bool config_msg_valid(struct vu_dev *dev, const struct vhost_user_msg *msg)
{
	const struct vhost_user_config *c = &msg->payload.config;

	if (msg->hdr.size != VHOST_USER_CONFIG_HDR_SIZE + (uint64_t)c->size) {
		vu_reject(dev, msg,
			  "its size field says %u bytes of config space follow, but the %u-byte "
			  "payload holds %u after the %u-byte config header",
			  c->size, msg->hdr.size,
			  msg->hdr.size - (unsigned int)VHOST_USER_CONFIG_HDR_SIZE,
			  (unsigned int)VHOST_USER_CONFIG_HDR_SIZE);
		return false;
	}
	return true;
}

static enum vu_result get_config(struct vu_dev *dev, struct vhost_user_msg *msg, int *fds,
				 unsigned int nfds)
{
	struct vhost_user_config *c = &msg->payload.config;
	uint8_t space[VHOST_USER_MAX_CONFIG_SIZE];
	int r;

	if (!config_msg_valid(dev, msg))
		return VU_CLOSE;
	/* Error replies carry no payload ("GET_CONFIG"). */
	if (c->offset > sizeof(space) || c->size > sizeof(space) - c->offset)
		goto error;
	r = dev->ops->get_config(dev->opaque, space, c->offset + c->size);
	if (r < 0 || (uint32_t)r < c->offset + c->size)
		goto error;
	memcpy(c->region, space + c->offset, c->size);
	return VU_OK;

error:
	msg->hdr.size = 0;
	return VU_NACK;
}

static enum vu_result set_config(struct vu_dev *dev, struct vhost_user_msg *msg, int *fds,
				 unsigned int nfds)
{
	const struct vhost_user_config *c = &msg->payload.config;

	if (!config_msg_valid(dev, msg))
		return VU_CLOSE;
	if (c->flags > VHOST_USER_CONFIG_FLAG_MIGRATION)
		return vu_reject(dev, msg, "config flags %#x", c->flags);
	if (!dev->ops->set_config || c->offset > VHOST_USER_MAX_CONFIG_SIZE ||
	    c->size > VHOST_USER_MAX_CONFIG_SIZE - c->offset)
		return VU_NACK;
	/* The device decides which fields are writable. */
	return dev->ops->set_config(dev->opaque, c->region, c->offset, c->size) < 0 ? VU_NACK
										    : VU_OK;
}

static enum vu_result set_status(struct vu_dev *dev, struct vhost_user_msg *msg, int *fds,
				 unsigned int nfds)
{
	if (msg->payload.u64 > UINT8_MAX)
		return vu_reject(dev, msg, "status %#llx does not fit the status byte",
				 (unsigned long long)msg->payload.u64);
	dev->status = (uint8_t)msg->payload.u64;
	/*
	 * Writing 0 resets the device (virtio 2.1.2): nothing may still run,
	 * and the readiness check after this message must not start the rings
	 * again on their old settings.  A ring comes back when the front-end
	 * sets it up again (a new SET_VRING_KICK, as QEMU sends on every
	 * start) or sets DRIVER_OK.
	 */
	if (!dev->status) {
		vu_stop_all(dev);
		vu_clear_broken(dev);
		for (unsigned int i = 0; i < dev->num_queues; i++)
			dev->vrings[i].held_by_reset = true;
	} else if (dev->status & VIRTIO_STATUS_DRIVER_OK) {
		for (unsigned int i = 0; i < dev->num_queues; i++)
			dev->vrings[i].held_by_reset = false;
	}
	if (dev->ops->set_status)
		dev->ops->set_status(dev->opaque, dev->status);
	return VU_OK;
}

static enum vu_result get_status(struct vu_dev *dev, struct vhost_user_msg *msg, int *fds,
				 unsigned int nfds)
{
	uint8_t status = dev->status;

	/* Lost guest memory outlasts a reset: it needs a new memory table too. */
	if (atomic_load(&dev->broken) || dev->mem_poisoned)
		status |= VIRTIO_STATUS_NEEDS_RESET;
	reply_u64(msg, status);
	return VU_OK;
}

/*
 * The MAC is the payload's first six bytes (vhost-user.rst).  QEMU sends
 * it after a migration only when the guest did not take GUEST_ANNOUNCE.
 */
static enum vu_result send_rarp(struct vu_dev *dev, struct vhost_user_msg *msg, int *fds,
				unsigned int nfds)
{
	uint8_t mac[6];

	memcpy(mac, &msg->payload.u64, sizeof(mac));
	dev->ops->send_rarp(dev->opaque, mac);
	return VU_OK;
}

/* --- the table --- */

#define U64	      sizeof(uint64_t)
#define STATE	      sizeof(struct vhost_user_vring_state)
#define ADDR	      sizeof(struct vhost_user_vring_addr)
#define MEM_REG	      sizeof(struct vhost_user_mem_reg)
#define LOG	      sizeof(struct vhost_user_log)
#define CONFIG_MIN    VHOST_USER_CONFIG_HDR_SIZE
#define CONFIG_MAX    sizeof(struct vhost_user_config)
#define MEM_TABLE_MIN offsetof(struct vhost_user_mem_table, regions)
#define MEM_TABLE_MAX sizeof(struct vhost_user_mem_table)

/*
 * Everything the dispatcher checks before a handler runs.  A request not
 * listed (IOTLB, back-end channel, postcopy, in-flight tracking, in-band
 * notifications...) belongs to a feature we never offer, so a front-end
 * that sends one is not following the protocol.  SET_LOG_FD (an eventfd
 * to signal after logging) is the kernel vhost's business: QEMU's
 * vhost-user front-end never sends it, and it polls the log.
 */
/* clang-format off */
const struct vu_msg_info vu_msg_table[VHOST_USER_REQUEST_MAX] = {
	[VHOST_USER_GET_FEATURES] = {
		.handler = get_features, .flags = VU_MSG_REPLY,
	},
	[VHOST_USER_SET_FEATURES] = {
		.handler = set_features, .min_size = U64, .max_size = U64,
		.flags = VU_MSG_STOP_ALL,
	},
	[VHOST_USER_SET_OWNER] = {
		.handler = set_owner,
	},
	[VHOST_USER_RESET_OWNER] = {
		.handler = reset_owner, .flags = VU_MSG_STOP_ALL,
	},
	[VHOST_USER_SET_MEM_TABLE] = {
		.handler = vu_set_mem_table, .min_size = MEM_TABLE_MIN,
		.max_size = MEM_TABLE_MAX, .max_fds = VHOST_USER_MEM_TABLE_MAX_REGIONS,
		.fd_kind = VU_FD_MEMORY, .flags = VU_MSG_STOP_ALL,
	},
	[VHOST_USER_SET_LOG_BASE] = {
		/* The rings stop, so none writes to the old log after our reply. */
		.handler = vu_set_log_base, .min_size = LOG, .max_size = LOG,
		.min_fds = 1, .max_fds = 1, .fd_kind = VU_FD_MEMORY,
		.flags = VU_MSG_STOP_ALL | VU_MSG_REPLY,
		.needs_protocol_feature = VU_NEEDS(VHOST_USER_PROTOCOL_F_LOG_SHMFD),
	},
	[VHOST_USER_SET_VRING_NUM] = {
		.handler = set_vring_num, .min_size = STATE, .max_size = STATE,
		.flags = VU_MSG_VRING | VU_MSG_STOP_VRING,
	},
	[VHOST_USER_SET_VRING_ADDR] = {
		.handler = set_vring_addr, .min_size = ADDR, .max_size = ADDR,
		.flags = VU_MSG_VRING | VU_MSG_STOP_VRING,
	},
	[VHOST_USER_SET_VRING_BASE] = {
		.handler = set_vring_base, .min_size = STATE, .max_size = STATE,
		.flags = VU_MSG_VRING | VU_MSG_STOP_VRING,
	},
	[VHOST_USER_GET_VRING_BASE] = {
		.handler = get_vring_base, .min_size = STATE, .max_size = STATE,
		.flags = VU_MSG_VRING | VU_MSG_STOP_VRING | VU_MSG_REPLY,
	},
	[VHOST_USER_SET_VRING_KICK] = {
		.handler = set_vring_kick, .min_size = U64, .max_size = U64, .max_fds = 1,
		.fd_kind = VU_FD_EVENTFD, .flags = VU_MSG_VRING_FD | VU_MSG_STOP_VRING,
	},
	[VHOST_USER_SET_VRING_CALL] = {
		/* The queue thread signals call_fd: swapped live, or while stopped. */
		.handler = set_vring_call, .min_size = U64, .max_size = U64, .max_fds = 1,
		.fd_kind = VU_FD_EVENTFD, .flags = VU_MSG_VRING_FD | VU_MSG_CALL_FD,
	},
	[VHOST_USER_SET_VRING_ERR] = {
		/* Only this thread signals err_fd: no need to stop the ring. */
		.handler = set_vring_err, .min_size = U64, .max_size = U64, .max_fds = 1,
		.fd_kind = VU_FD_EVENTFD, .flags = VU_MSG_VRING_FD,
	},
	[VHOST_USER_GET_PROTOCOL_FEATURES] = {
		.handler = get_protocol_features, .flags = VU_MSG_REPLY,
	},
	[VHOST_USER_SET_PROTOCOL_FEATURES] = {
		.handler = set_protocol_features, .min_size = U64, .max_size = U64,
	},
	[VHOST_USER_GET_QUEUE_NUM] = {
		.handler = get_queue_num, .flags = VU_MSG_REPLY,
	},
	[VHOST_USER_SET_VRING_ENABLE] = {
		.handler = set_vring_enable, .min_size = STATE, .max_size = STATE,
		.flags = VU_MSG_VRING,
	},
	[VHOST_USER_GET_CONFIG] = {
		.handler = get_config, .min_size = CONFIG_MIN, .max_size = CONFIG_MAX,
		.flags = VU_MSG_REPLY,
		.needs_protocol_feature = VU_NEEDS(VHOST_USER_PROTOCOL_F_CONFIG),
	},
	[VHOST_USER_SET_CONFIG] = {
		.handler = set_config, .min_size = CONFIG_MIN, .max_size = CONFIG_MAX,
		.needs_protocol_feature = VU_NEEDS(VHOST_USER_PROTOCOL_F_CONFIG),
	},
	[VHOST_USER_RESET_DEVICE] = {
		.handler = reset_device, .flags = VU_MSG_STOP_ALL,
		.needs_protocol_feature = VU_NEEDS(VHOST_USER_PROTOCOL_F_RESET_DEVICE),
	},
	[VHOST_USER_GET_MAX_MEM_SLOTS] = {
		.handler = vu_get_max_mem_slots, .flags = VU_MSG_REPLY,
		.needs_protocol_feature = VU_NEEDS(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS),
	},
	[VHOST_USER_ADD_MEM_REG] = {
		.handler = vu_add_mem_reg, .min_size = MEM_REG, .max_size = MEM_REG,
		.min_fds = 1, .max_fds = 1, .fd_kind = VU_FD_MEMORY, .flags = VU_MSG_STOP_ALL,
		.needs_protocol_feature = VU_NEEDS(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS),
	},
	[VHOST_USER_REM_MEM_REG] = {
		/* "MAY accept messages with one file descriptor"; it is closed unused. */
		.handler = vu_rem_mem_reg, .min_size = MEM_REG, .max_size = MEM_REG,
		.max_fds = 1, .flags = VU_MSG_STOP_ALL,
		.needs_protocol_feature = VU_NEEDS(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS),
	},
	[VHOST_USER_GET_INFLIGHT_FD] = {
		.handler = vu_get_inflight_fd, .min_size = VHOST_USER_INFLIGHT_MIN_SIZE,
		.max_size = sizeof(struct vhost_user_inflight), .flags = VU_MSG_REPLY,
		.needs_protocol_feature = VU_NEEDS(VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD),
	},
	[VHOST_USER_SET_INFLIGHT_FD] = {
		.handler = vu_set_inflight_fd, .min_size = VHOST_USER_INFLIGHT_MIN_SIZE,
		.max_size = sizeof(struct vhost_user_inflight), .min_fds = 1, .max_fds = 1,
		.fd_kind = VU_FD_MEMORY, .flags = VU_MSG_STOP_ALL,
		.needs_protocol_feature = VU_NEEDS(VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD),
	},
	[VHOST_USER_SEND_RARP] = {
		.handler = send_rarp, .min_size = U64, .max_size = U64,
		.needs_protocol_feature = VU_NEEDS(VHOST_USER_PROTOCOL_F_RARP),
	},
	[VHOST_USER_SET_STATUS] = {
		.handler = set_status, .min_size = U64, .max_size = U64,
		.needs_protocol_feature = VU_NEEDS(VHOST_USER_PROTOCOL_F_STATUS),
	},
	[VHOST_USER_GET_STATUS] = {
		.handler = get_status, .flags = VU_MSG_REPLY,
		.needs_protocol_feature = VU_NEEDS(VHOST_USER_PROTOCOL_F_STATUS),
	},
};
/* clang-format on */
