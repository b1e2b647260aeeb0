// SPDX-License-Identifier: MIT
/*
 * frontend.c - a vhost-user front-end: a userspace virtio driver over a
 * vhost-user socket (the part of QEMU or DPDK's virtio-user that talks to
 * a back-end), for vhost-bench and the tests.
 *
 * Guest memory is one or more memfds shared with the back-end.  Like
 * virtio-user, each region's guest-physical address and user address are
 * the address of its mapping in this process, so a pointer into shared
 * memory is already a device-visible address.
 *
 * The socket is blocking and used by one thread at a time (the caller's);
 * every reply is waited for with a timeout so a stuck back-end cannot hang
 * a test.  Framing is protocol.c's, shared with the back-end.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "frontend.h"
#include "protocol.h"

#define VU_FE_TIMEOUT_MS 5000
#define VU_FE_RING_ALIGN 4096

struct vu_fe_region {
	int fd;
	void *addr;
	size_t size;
	uint64_t gpa; /* guest-physical address of addr */
};

struct vu_fe_queue {
	struct virtq_drv *drv;
	struct virtq_drv_addrs addrs;
	int kick_fd;
	int call_fd;
};

struct vu_fe {
	int sock;
	char *path;		    /* for log lines */
	uint64_t features;	    /* negotiated virtio features */
	uint64_t offered;	    /* what the back-end offered */
	uint64_t protocol_features; /* negotiated protocol features */
	unsigned int num_queues;
	struct vu_fe_region regions[VHOST_USER_MEM_TABLE_MAX_REGIONS];
	unsigned int nr_regions; /* regions[0]: rings + vu_fe_alloc() */
	size_t used;		 /* bump pointer into regions[0] */
	struct vu_fe_queue *queues;
	struct vu_fe_config cfg; /* for vu_fe_reconnect() (socket_path: path) */
	/* The back-end's in-flight region (GET_INFLIGHT_FD), kept across reconnects. */
	int inflight_fd;
	struct vhost_user_inflight inflight;
};

/* Protocol features we use when the back-end offers them. */
#define VU_FE_PROTOCOL_FEATURES                                                                    \
	(1ull << VHOST_USER_PROTOCOL_F_MQ | 1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK |              \
	 1ull << VHOST_USER_PROTOCOL_F_CONFIG | 1ull << VHOST_USER_PROTOCOL_F_STATUS |             \
	 1ull << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS |                                       \
	 1ull << VHOST_USER_PROTOCOL_F_LOG_SHMFD | 1ull << VHOST_USER_PROTOCOL_F_RARP)

static bool fe_has_protocol(const struct vu_fe *fe, unsigned int bit)
{
	return fe->protocol_features & (1ull << bit);
}

/*
 * Send @msg and wait for what it solicits: its reply payload of exactly
 * @reply_size bytes (copied back into @msg), or, for a request without a
 * reply, the REPLY_ACK u64 when that was negotiated.  0 or -errno; -EIO if
 * the back-end acked with failure, -EPROTO for a malformed reply.
 */
static int fe_request_fd(struct vu_fe *fe, struct vhost_user_msg *msg, const int *fds,
			 unsigned int nfds, size_t reply_size, int *reply_fd);

static int fe_request(struct vu_fe *fe, struct vhost_user_msg *msg, const int *fds,
		      unsigned int nfds, size_t reply_size)
{
	return fe_request_fd(fe, msg, fds, nfds, reply_size, NULL);
}

/* The same, taking the one descriptor a reply carries into *@reply_fd. */
static int fe_request_fd(struct vu_fe *fe, struct vhost_user_msg *msg, const int *fds,
			 unsigned int nfds, size_t reply_size, int *reply_fd)
{
	uint32_t request = msg->hdr.request;
	bool ack = !reply_size && fe_has_protocol(fe, VHOST_USER_PROTOCOL_F_REPLY_ACK);
	struct vhost_user_rx rx;
	int r;

	if (ack)
		msg->hdr.flags |= VHOST_USER_NEED_REPLY_MASK;
	r = vhost_user_send(fe->sock, msg, fds, nfds, VU_FE_TIMEOUT_MS);
	if (r || (!reply_size && !ack))
		return r;

	vhost_user_rx_init(&rx);
	r = vhost_user_recv(fe->sock, &rx, VU_FE_TIMEOUT_MS);
	if (r == 1) {
		const struct vhost_user_hdr *h = &rx.msg.hdr;
		size_t want = ack ? sizeof(uint64_t) : reply_size;

		r = 0;
		if (h->request != request || !(h->flags & VHOST_USER_REPLY_MASK) ||
		    (h->flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION || h->size != want)
			r = -EPROTO;
		else if (ack)
			r = rx.msg.payload.u64 ? -EIO : 0;
		else
			*msg = rx.msg;
		if (!r && reply_fd) {
			if (rx.nfds != 1) {
				r = -EPROTO;
			} else {
				*reply_fd = rx.fds[0];
				rx.fds[0] = -1;
				rx.nfds = 0;
			}
		}
	}
	/* A reply carries no descriptors we asked for. */
	vhost_user_rx_reset(&rx);
	return r;
}

static int fe_get_u64(struct vu_fe *fe, uint32_t request, uint64_t *v)
{
	struct vhost_user_msg msg;
	int r;

	vhost_user_msg_init(&msg, request, 0, 0);
	r = fe_request(fe, &msg, NULL, 0, sizeof(msg.payload.u64));
	if (!r)
		*v = msg.payload.u64;
	return r;
}

static int fe_set_u64(struct vu_fe *fe, uint32_t request, uint64_t v, int fd)
{
	struct vhost_user_msg msg;

	vhost_user_msg_init(&msg, request, 0, sizeof(msg.payload.u64));
	msg.payload.u64 = v;
	return fe_request(fe, &msg, &fd, fd >= 0 ? 1 : 0, 0);
}

static int fe_set_state(struct vu_fe *fe, uint32_t request, unsigned int index, uint32_t num)
{
	struct vhost_user_msg msg;

	vhost_user_msg_init(&msg, request, 0, sizeof(msg.payload.state));
	msg.payload.state.index = index;
	msg.payload.state.num = num;
	return fe_request(fe, &msg, NULL, 0, 0);
}

/* --- shared memory --- */

static int fe_region_new(struct vu_fe *fe, size_t size, struct vu_fe_region **out)
{
	struct vu_fe_region *reg;
	int r;

	if (fe->nr_regions >= VHOST_USER_MEM_TABLE_MAX_REGIONS)
		return -ENOSPC;
	reg = &fe->regions[fe->nr_regions];
	reg->fd = memfd_create("vhostd-fe", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (reg->fd < 0)
		return -errno;
	/*
	 * Sealed at its size, as QEMU's memfd backend does: the back-end can
	 * then trust that the memory it maps never shrinks under it.
	 */
	if (ftruncate(reg->fd, (off_t)size) < 0 ||
	    fcntl(reg->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		goto fail;
	reg->addr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, reg->fd, 0);
	if (reg->addr == MAP_FAILED)
		goto fail;
	reg->size = size;
	reg->gpa = (uint64_t)(uintptr_t)reg->addr;
	fe->nr_regions++;
	*out = reg;
	return 0;

fail:
	r = -errno;
	close(reg->fd);
	return r;
}

static void fe_region_free(struct vu_fe_region *reg)
{
	munmap(reg->addr, reg->size);
	close(reg->fd);
}

/* Identity: the mapping's address is both its guest and its user address. */
static void fe_region_wire(const struct vu_fe_region *reg, struct vhost_user_mem_region *w)
{
	w->guest_phys_addr = reg->gpa;
	w->userspace_addr = (uint64_t)(uintptr_t)reg->addr;
	w->memory_size = reg->size;
	w->mmap_offset = 0;
}

static int fe_send_mem_table(struct vu_fe *fe)
{
	struct vhost_user_msg msg;
	int fds[VHOST_USER_MEM_TABLE_MAX_REGIONS];

	vhost_user_msg_init(&msg, VHOST_USER_SET_MEM_TABLE, 0,
			    offsetof(struct vhost_user_mem_table, regions) +
				    fe->nr_regions * sizeof(msg.payload.mem.regions[0]));
	msg.payload.mem.nregions = fe->nr_regions;
	msg.payload.mem.padding = 0;
	for (unsigned int i = 0; i < fe->nr_regions; i++) {
		fe_region_wire(&fe->regions[i], &msg.payload.mem.regions[i]);
		fds[i] = fe->regions[i].fd;
	}
	return fe_request(fe, &msg, fds, fe->nr_regions, 0);
}

static int fe_mem_reg(struct vu_fe *fe, uint32_t request, const struct vu_fe_region *reg)
{
	struct vhost_user_msg msg;

	vhost_user_msg_init(&msg, request, 0, sizeof(msg.payload.mem_reg));
	msg.payload.mem_reg.padding = 0;
	fe_region_wire(reg, &msg.payload.mem_reg.region);
	return fe_request(fe, &msg, request == VHOST_USER_ADD_MEM_REG ? &reg->fd : NULL,
			  request == VHOST_USER_ADD_MEM_REG ? 1 : 0, 0);
}

void *vu_fe_alloc(struct vu_fe *fe, size_t size, size_t align)
{
	struct vu_fe_region *reg = &fe->regions[0];
	size_t off;

	if (!align)
		align = 16;
	if (align & (align - 1))
		return NULL;
	off = (fe->used + align - 1) & ~(align - 1);
	if (off < fe->used || off > reg->size || size > reg->size - off)
		return NULL;
	fe->used = off + size;
	return (uint8_t *)reg->addr + off;
}

uint64_t vu_fe_addr(const struct vu_fe *fe, const void *ptr)
{
	uintptr_t p = (uintptr_t)ptr;

	for (unsigned int i = 0; i < fe->nr_regions; i++) {
		const struct vu_fe_region *r = &fe->regions[i];

		if (p >= (uintptr_t)r->addr && p - (uintptr_t)r->addr < r->size)
			return r->gpa + (p - (uintptr_t)r->addr);
	}
	return p;
}

/* The front-end address (what vring addresses are given in) of a device-visible one. */
static uint64_t fe_gpa_to_uva(const struct vu_fe *fe, uint64_t gpa)
{
	for (unsigned int i = 0; i < fe->nr_regions; i++) {
		const struct vu_fe_region *r = &fe->regions[i];

		if (gpa >= r->gpa && gpa - r->gpa < r->size)
			return (uintptr_t)r->addr + (gpa - r->gpa);
	}
	return gpa;
}

void *vu_fe_add_region(struct vu_fe *fe, size_t size)
{
	struct vu_fe_region *reg;
	int r = fe_region_new(fe, size, &reg);

	if (r)
		goto fail;
	if (fe_has_protocol(fe, VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS))
		r = fe_mem_reg(fe, VHOST_USER_ADD_MEM_REG, reg);
	else
		r = fe_send_mem_table(fe);
	if (!r)
		return reg->addr;
	fe->nr_regions--;
	fe_region_free(reg);
fail:
	log_error("vu-fe: %s: adding a memory region: %s", fe->path, strerror(-r));
	errno = -r;
	return NULL;
}

int vu_fe_remove_region(struct vu_fe *fe, void *addr)
{
	struct vu_fe_region reg;
	unsigned int i;
	int r;

	/* Region 0 holds the rings: it stays. */
	for (i = 1; i < fe->nr_regions && fe->regions[i].addr != addr; i++)
		;
	if (i >= fe->nr_regions)
		return -ENOENT;
	reg = fe->regions[i];
	memmove(&fe->regions[i], &fe->regions[i + 1],
		(fe->nr_regions - i - 1) * sizeof(fe->regions[0]));
	fe->nr_regions--;
	if (fe_has_protocol(fe, VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS))
		r = fe_mem_reg(fe, VHOST_USER_REM_MEM_REG, &reg);
	else
		r = fe_send_mem_table(fe);
	/* Acked (or failed for good): either way the back-end no longer needs it. */
	fe_region_free(&reg);
	return r;
}

int vu_fe_resend_mem_table(struct vu_fe *fe)
{
	return fe_send_mem_table(fe);
}

/* --- set-up --- */

static int fe_negotiate(struct vu_fe *fe, const struct vu_fe_config *cfg, const char **step)
{
	uint64_t offer, pf_offer, max_queues = 1;
	int r;

	*step = "GET_FEATURES";
	r = fe_get_u64(fe, VHOST_USER_GET_FEATURES, &offer);
	if (r)
		return r;
	fe->features = offer & cfg->features;
	fe->offered = offer;

	if (offer & (1ull << VHOST_USER_F_PROTOCOL_FEATURES)) {
		fe->features |= 1ull << VHOST_USER_F_PROTOCOL_FEATURES;
		*step = "GET_PROTOCOL_FEATURES";
		r = fe_get_u64(fe, VHOST_USER_GET_PROTOCOL_FEATURES, &pf_offer);
		if (r)
			return r;
		*step = "SET_PROTOCOL_FEATURES";
		if (!cfg->inflight)
			pf_offer &= ~(1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD);
		pf_offer &= VU_FE_PROTOCOL_FEATURES | 1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD;
		r = fe_set_u64(fe, VHOST_USER_SET_PROTOCOL_FEATURES, pf_offer, -1);
		if (r)
			return r;
		/* From here on, REPLY_ACK (if negotiated) applies. */
		fe->protocol_features = pf_offer;
		if (fe_has_protocol(fe, VHOST_USER_PROTOCOL_F_MQ)) {
			*step = "GET_QUEUE_NUM";
			r = fe_get_u64(fe, VHOST_USER_GET_QUEUE_NUM, &max_queues);
			if (r)
				return r;
		}
	}

	/*
	 * With MQ the back-end says how many it has; without it the device
	 * has a fixed count the caller knows ("Multiple queue support").
	 */
	*step = "queue count";
	if (fe_has_protocol(fe, VHOST_USER_PROTOCOL_F_MQ)) {
		fe->num_queues = cfg->num_queues ? cfg->num_queues : (unsigned int)max_queues;
		if (!fe->num_queues || fe->num_queues > max_queues)
			return -EINVAL;
	} else {
		fe->num_queues = cfg->num_queues ? cfg->num_queues : 1;
	}

	*step = "SET_OWNER";
	{
		struct vhost_user_msg msg;

		vhost_user_msg_init(&msg, VHOST_USER_SET_OWNER, 0, 0);
		r = fe_request(fe, &msg, NULL, 0, 0);
		if (r)
			return r;
	}
	*step = "SET_FEATURES";
	return fe_set_u64(fe, VHOST_USER_SET_FEATURES, fe->features, -1);
}

/* Tell the back-end about ring @i (NUM, BASE = @base, ADDR, CALL, KICK, ENABLE). */
static int fe_send_queue(struct vu_fe *fe, unsigned int i, uint32_t base, const char **step)
{
	struct vu_fe_queue *q = &fe->queues[i];
	struct virtq_drv_addrs addrs;
	struct vhost_user_msg msg;
	int r;

	virtq_drv_get_addrs(q->drv, &addrs);
	q->addrs = addrs;
	*step = "SET_VRING_NUM";
	r = fe_set_state(fe, VHOST_USER_SET_VRING_NUM, i, virtq_drv_size(q->drv));
	if (r)
		return r;
	*step = "SET_VRING_BASE";
	r = fe_set_state(fe, VHOST_USER_SET_VRING_BASE, i, base);
	if (r)
		return r;
	*step = "SET_VRING_ADDR";
	vhost_user_msg_init(&msg, VHOST_USER_SET_VRING_ADDR, 0, sizeof(msg.payload.addr));
	msg.payload.addr = (struct vhost_user_vring_addr){
		.index = i,
		.desc = fe_gpa_to_uva(fe, addrs.desc),
		.avail = fe_gpa_to_uva(fe, addrs.driver_area),
		.used = fe_gpa_to_uva(fe, addrs.device_area),
	};
	r = fe_request(fe, &msg, NULL, 0, 0);
	if (r)
		return r;
	/* Call before kick: without protocol features the kick starts the ring. */
	*step = "SET_VRING_CALL";
	r = fe_set_u64(fe, VHOST_USER_SET_VRING_CALL, i, q->call_fd);
	if (r)
		return r;
	*step = "SET_VRING_KICK";
	r = fe_set_u64(fe, VHOST_USER_SET_VRING_KICK, i, q->kick_fd);
	if (r)
		return r;
	if (!(fe->features & (1ull << VHOST_USER_F_PROTOCOL_FEATURES)))
		return 0;
	*step = "SET_VRING_ENABLE";
	return fe_set_state(fe, VHOST_USER_SET_VRING_ENABLE, i, 1);
}

/*
 * The in-flight region, as QEMU handles it: asked for once (GET_INFLIGHT_FD)
 * and kept; given to the back-end on every connection (SET_INFLIGHT_FD).
 */
static int fe_inflight(struct vu_fe *fe, const char **step)
{
	struct vhost_user_msg msg;
	int r;

	if (!fe_has_protocol(fe, VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD))
		return 0;
	if (fe->inflight_fd < 0) {
		*step = "GET_INFLIGHT_FD";
		vhost_user_msg_init(&msg, VHOST_USER_GET_INFLIGHT_FD, 0,
				    sizeof(msg.payload.inflight));
		msg.payload.inflight = (struct vhost_user_inflight){
			.num_queues = (uint16_t)fe->num_queues,
			.queue_size = fe->cfg.queue_size,
		};
		r = fe_request_fd(fe, &msg, NULL, 0, sizeof(msg.payload.inflight),
				  &fe->inflight_fd);
		if (r)
			return r;
		fe->inflight = msg.payload.inflight;
	}
	*step = "SET_INFLIGHT_FD";
	vhost_user_msg_init(&msg, VHOST_USER_SET_INFLIGHT_FD, 0, sizeof(msg.payload.inflight));
	msg.payload.inflight = fe->inflight;
	return fe_request(fe, &msg, &fe->inflight_fd, 1, 0);
}

static int fe_setup_queue(struct vu_fe *fe, unsigned int i, const struct vu_fe_config *cfg,
			  const char **step)
{
	struct vu_fe_queue *q = &fe->queues[i];
	bool packed = fe->features & (1ull << VIRTIO_F_RING_PACKED);
	size_t size;
	void *mem;

	*step = "ring memory";
	size = virtq_drv_mem_size(cfg->queue_size, packed, cfg->indirect_max);
	if (!size)
		return -EINVAL;
	mem = vu_fe_alloc(fe, size, VU_FE_RING_ALIGN);
	if (!mem)
		return -ENOMEM;
	q->drv = virtq_drv_new(cfg->queue_size, fe->features, mem, vu_fe_addr(fe, mem),
			       cfg->indirect_max);
	if (!q->drv)
		return -errno;
	q->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	q->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (q->kick_fd < 0 || q->call_fd < 0)
		return -errno;
	/*
	 * A fresh packed ring starts with both wrap counters at 1 (2.8.1);
	 * like QEMU, send the avail position in bits 0-15 and the used one in
	 * bits 16-31.
	 */
	return fe_send_queue(fe, i, packed ? 0x10001u << VIRTQ_PACKED_WRAP_BIT : 0, step);
}

/* SET_VRING_ADDR of queue @i, with the used ring logged at its address or not. */
static int fe_set_vring_addr(struct vu_fe *fe, unsigned int i, bool log)
{
	const struct virtq_drv_addrs *a = &fe->queues[i].addrs;
	struct vhost_user_msg msg;

	vhost_user_msg_init(&msg, VHOST_USER_SET_VRING_ADDR, 0, sizeof(msg.payload.addr));
	msg.payload.addr = (struct vhost_user_vring_addr){
		.index = i,
		.flags = log ? 1u << VHOST_VRING_F_LOG : 0,
		.desc = fe_gpa_to_uva(fe, a->desc),
		.avail = fe_gpa_to_uva(fe, a->driver_area),
		.used = fe_gpa_to_uva(fe, a->device_area),
		/* log_guest_addr is guest-physical, as QEMU sends it. */
		.log = log ? a->device_area : 0,
	};
	return fe_request(fe, &msg, NULL, 0, 0);
}

int vu_fe_set_log_base(struct vu_fe *fe, int fd, uint64_t size, uint64_t offset)
{
	struct vhost_user_msg msg;

	if (!fe_has_protocol(fe, VHOST_USER_PROTOCOL_F_LOG_SHMFD))
		return -ENOTSUP;
	vhost_user_msg_init(&msg, VHOST_USER_SET_LOG_BASE, 0, sizeof(msg.payload.log));
	msg.payload.log.mmap_size = size;
	msg.payload.log.mmap_offset = offset;
	/* With LOG_SHMFD the back-end replies (QEMU waits for it too). */
	return fe_request(fe, &msg, &fd, 1, sizeof(msg.payload.u64));
}

int vu_fe_send_rarp(struct vu_fe *fe, const uint8_t mac[6])
{
	uint64_t v = 0;

	if (!fe_has_protocol(fe, VHOST_USER_PROTOCOL_F_RARP))
		return -ENOTSUP;
	memcpy(&v, mac, 6);
	return fe_set_u64(fe, VHOST_USER_SEND_RARP, v, -1);
}

int vu_fe_set_log_all(struct vu_fe *fe, bool on)
{
	uint64_t features = fe->features & ~(1ull << VHOST_F_LOG_ALL);
	int r;

	if (!(fe->offered & (1ull << VHOST_F_LOG_ALL)))
		return -ENOTSUP;
	if (on)
		features |= 1ull << VHOST_F_LOG_ALL;
	r = fe_set_u64(fe, VHOST_USER_SET_FEATURES, features, -1);
	if (r)
		return r;
	fe->features = features;
	for (unsigned int i = 0; i < fe->num_queues; i++) {
		r = fe_set_vring_addr(fe, i, on);
		if (r)
			return r;
	}
	return 0;
}

static void fe_free(struct vu_fe *fe)
{
	if (fe->sock >= 0)
		close(fe->sock);
	for (unsigned int i = 0; fe->queues && i < fe->num_queues; i++) {
		struct vu_fe_queue *q = &fe->queues[i];

		virtq_drv_free(q->drv);
		if (q->kick_fd >= 0)
			close(q->kick_fd);
		if (q->call_fd >= 0)
			close(q->call_fd);
	}
	free(fe->queues);
	if (fe->inflight_fd >= 0)
		close(fe->inflight_fd);
	for (unsigned int i = 0; i < fe->nr_regions; i++)
		fe_region_free(&fe->regions[i]);
	free(fe->path);
	free(fe);
}

static int fe_connect_socket(struct vu_fe *fe, const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fe->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fe->sock < 0)
		return -errno;
	if (connect(fe->sock, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	return 0;
}

struct vu_fe *vu_fe_connect(const struct vu_fe_config *cfg)
{
	const char *step = "arguments";
	struct vu_fe_region *reg;
	struct vu_fe *fe;
	int r = -EINVAL;

	if (!cfg || !cfg->socket_path || !cfg->mem_size || !cfg->queue_size) {
		errno = EINVAL;
		return NULL;
	}
	fe = calloc(1, sizeof(*fe));
	if (!fe)
		return NULL;
	fe->sock = -1;
	fe->inflight_fd = -1;
	fe->cfg = *cfg;
	fe->path = strdup(cfg->socket_path);
	if (!fe->path) {
		free(fe);
		return NULL;
	}

	step = "connect";
	r = fe_connect_socket(fe, cfg->socket_path);
	if (r)
		goto fail;
	step = "shared memory";
	r = fe_region_new(fe, cfg->mem_size, &reg);
	if (r)
		goto fail;
	if (cfg->gpa_base)
		reg->gpa = cfg->gpa_base;
	r = fe_negotiate(fe, cfg, &step);
	if (r)
		goto fail;
	/* QEMU's order: after SET_FEATURES, before the memory table. */
	r = fe_inflight(fe, &step);
	if (r)
		goto fail;

	step = "SET_MEM_TABLE";
	r = fe_send_mem_table(fe);
	if (r)
		goto fail;

	step = "queues";
	fe->queues = calloc(fe->num_queues, sizeof(*fe->queues));
	if (!fe->queues) {
		r = -ENOMEM;
		goto fail;
	}
	for (unsigned int i = 0; i < fe->num_queues; i++)
		fe->queues[i].kick_fd = fe->queues[i].call_fd = -1;
	for (unsigned int i = 0; i < fe->num_queues; i++) {
		r = fe_setup_queue(fe, i, cfg, &step);
		if (r)
			goto fail;
	}

	if (fe_has_protocol(fe, VHOST_USER_PROTOCOL_F_STATUS)) {
		step = "SET_STATUS";
		r = fe_set_u64(fe, VHOST_USER_SET_STATUS,
			       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
				       VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK,
			       -1);
		if (r)
			goto fail;
	}
	return fe;

fail:
	log_error("vu-fe: %s: %s: %s", cfg->socket_path, step, strerror(-r));
	fe_free(fe);
	errno = -r;
	return NULL;
}

int vu_fe_reconnect(struct vu_fe *fe, int timeout_ms)
{
	const char *step = "connect";
	struct timespec ts = {0, 50 * 1000 * 1000};
	int r, waited = 0;

	if (fe->sock >= 0)
		close(fe->sock);
	fe->sock = -1;
	fe->features = fe->protocol_features = 0;
	/* The back-end is restarting: its socket may not be there yet. */
	for (;;) {
		r = fe_connect_socket(fe, fe->path);
		if (!r)
			break;
		if (fe->sock >= 0)
			close(fe->sock);
		fe->sock = -1;
		if (waited >= timeout_ms)
			goto fail;
		nanosleep(&ts, NULL);
		waited += 50;
	}
	fe->cfg.socket_path = fe->path;
	r = fe_negotiate(fe, &fe->cfg, &step);
	if (r)
		goto fail;
	r = fe_inflight(fe, &step);
	if (r)
		goto fail;
	step = "SET_MEM_TABLE";
	r = fe_send_mem_table(fe);
	if (r)
		goto fail;
	for (unsigned int i = 0; i < fe->num_queues; i++) {
		struct virtq_drv_addrs addrs;
		const volatile uint16_t *used_idx;

		if (virtq_drv_is_packed(fe->queues[i].drv)) {
			/*
			 * QEMU 7.2 keeps no packed position when it loses
			 * the back-end: it sends the base of the last
			 * GET_VRING_BASE answered, at worst the session's
			 * start.  So do we: the back-end must find its
			 * place in the in-flight region.
			 */
			r = fe_send_queue(fe, i, 0x10001u << VIRTQ_PACKED_WRAP_BIT, &step);
			if (r)
				goto fail;
			continue;
		}
		/*
		 * QEMU's guess when it lost the back-end: the ring resumes at
		 * used->idx (the back-end corrects it from the in-flight region).
		 */
		virtq_drv_get_addrs(fe->queues[i].drv, &addrs);
		used_idx = (const volatile uint16_t *)((uintptr_t)addrs.device_area + 2);
		r = fe_send_queue(fe, i, *used_idx, &step);
		if (r)
			goto fail;
	}
	if (fe_has_protocol(fe, VHOST_USER_PROTOCOL_F_STATUS)) {
		step = "SET_STATUS";
		r = fe_set_u64(fe, VHOST_USER_SET_STATUS,
			       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
				       VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK,
			       -1);
		if (r)
			goto fail;
	}
	return 0;
fail:
	log_error("vu-fe: %s: reconnect: %s: %s", fe->path, step, strerror(-r));
	return r;
}

int vu_fe_get_status(struct vu_fe *fe, uint8_t *status)
{
	uint64_t v;
	int r;

	if (!fe_has_protocol(fe, VHOST_USER_PROTOCOL_F_STATUS))
		return -ENOTSUP;
	r = fe_get_u64(fe, VHOST_USER_GET_STATUS, &v);
	if (!r)
		*status = (uint8_t)v;
	return r;
}

bool vu_fe_has_inflight(const struct vu_fe *fe)
{
	return fe->inflight_fd >= 0;
}

int vu_fe_inflight_fd(const struct vu_fe *fe, uint64_t *size)
{
	if (size)
		*size = fe->inflight.mmap_size;
	return fe->inflight_fd;
}

int vu_fe_stop_queue(struct vu_fe *fe, unsigned int index, uint16_t *base)
{
	struct vhost_user_msg msg;
	int r;

	if (index >= fe->num_queues)
		return -EINVAL;
	vhost_user_msg_init(&msg, VHOST_USER_GET_VRING_BASE, 0, sizeof(msg.payload.state));
	msg.payload.state.index = index;
	msg.payload.state.num = 0;
	r = fe_request(fe, &msg, NULL, 0, sizeof(msg.payload.state));
	if (!r && base)
		*base = (uint16_t)msg.payload.state.num;
	return r;
}

void vu_fe_disconnect(struct vu_fe *fe)
{
	if (!fe)
		return;
	/* Stop the rings cleanly if the back-end is still there; quietly if not. */
	for (unsigned int i = 0; fe->sock >= 0 && i < fe->num_queues; i++) {
		if (vu_fe_stop_queue(fe, i, NULL))
			break;
	}
	fe_free(fe);
}

uint64_t vu_fe_features(const struct vu_fe *fe)
{
	return fe->features;
}

unsigned int vu_fe_num_queues(const struct vu_fe *fe)
{
	return fe->num_queues;
}

int vu_fe_get_config(struct vu_fe *fe, void *buf, uint32_t len)
{
	struct vhost_user_msg msg;
	int r;

	if (len > VHOST_USER_MAX_CONFIG_SIZE)
		return -EINVAL;
	if (!fe_has_protocol(fe, VHOST_USER_PROTOCOL_F_CONFIG))
		return -ENOTSUP;
	vhost_user_msg_init(&msg, VHOST_USER_GET_CONFIG, 0, VHOST_USER_CONFIG_HDR_SIZE + len);
	msg.payload.config.offset = 0;
	msg.payload.config.size = len;
	msg.payload.config.flags = 0;
	memset(msg.payload.config.region, 0, len);
	/* An error reply has no payload: the size check turns it into -EPROTO. */
	r = fe_request(fe, &msg, NULL, 0, VHOST_USER_CONFIG_HDR_SIZE + len);
	if (!r)
		memcpy(buf, msg.payload.config.region, len);
	return r;
}

struct virtq_drv *vu_fe_queue(struct vu_fe *fe, unsigned int index)
{
	return index < fe->num_queues ? fe->queues[index].drv : NULL;
}

int vu_fe_kick(struct vu_fe *fe, unsigned int index)
{
	struct vu_fe_queue *q;

	if (index >= fe->num_queues)
		return -EINVAL;
	q = &fe->queues[index];
	if (!virtq_drv_kick_prepare(q->drv))
		return 0;
	if (eventfd_write(q->kick_fd, 1) < 0)
		return -errno;
	return 1;
}

int vu_fe_call_fd(const struct vu_fe *fe, unsigned int index)
{
	return index < fe->num_queues ? fe->queues[index].call_fd : -1;
}

int vu_fe_swap_call_fd(struct vu_fe *fe, unsigned int index)
{
	int fd, r;

	if (index >= fe->num_queues)
		return -EINVAL;
	fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fd < 0)
		return -errno;
	r = fe_set_u64(fe, VHOST_USER_SET_VRING_CALL, index, fd);
	if (r) {
		close(fd);
		return r;
	}
	/* Whatever the old one still holds is never looked at. */
	close(fe->queues[index].call_fd);
	fe->queues[index].call_fd = fd;
	return 0;
}

int vu_fe_wait_call(struct vu_fe *fe, unsigned int index, int timeout_ms)
{
	struct pollfd pfd = {.events = POLLIN};
	eventfd_t v;
	int r;

	if (index >= fe->num_queues)
		return -EINVAL;
	pfd.fd = fe->queues[index].call_fd;
	do {
		r = poll(&pfd, 1, timeout_ms);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (!r)
		return 0;
	/* Non-blocking: another waiter may have consumed it; still a wake-up. */
	eventfd_read(pfd.fd, &v);
	return 1;
}

bool vu_fe_hung_up(struct vu_fe *fe)
{
	struct pollfd pfd = {.fd = fe->sock, .events = POLLRDHUP};

	return poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

int vu_fe_send_raw(struct vu_fe *fe, const void *msg, size_t len, const int *fds, unsigned int nfds,
		   void *reply, size_t reply_len)
{
	struct iovec iov = {.iov_base = (void *)msg, .iov_len = len};
	struct vhost_user_rx rx;
	int r;

	r = vhost_user_sendv(fe->sock, &iov, 1, fds, nfds, VU_FE_TIMEOUT_MS);
	if (r || !reply)
		return r;
	vhost_user_rx_init(&rx);
	r = vhost_user_recv(fe->sock, &rx, VU_FE_TIMEOUT_MS);
	if (r == 1) {
		memcpy(reply, &rx.msg, reply_len < sizeof(rx.msg) ? reply_len : sizeof(rx.msg));
		r = 0;
	}
	vhost_user_rx_reset(&rx);
	return r;
}
