/* SPDX-License-Identifier: MIT */
/*
 * protocol.h - the vhost-user wire format, shared by the back-end
 * (backend.c) and the front-end (frontend.c).
 *
 * Layouts, request codes, header flags and protocol feature bits follow
 * QEMU's docs/interop/vhost-user.rst ("Message Specification", "Protocol
 * features", "Front-end message types").  All numbers are in the host's
 * native byte order: both ends run on the same machine.
 *
 * The one transport routine pair lives here too, so both roles frame
 * messages, pass file descriptors and survive short reads the same way:
 * vhost_user_send() and vhost_user_recv() / vhost_user_recv_step().  The
 * receive side never trusts the header: it reads exactly 12 bytes, refuses
 * a payload larger than VHOST_USER_MAX_PAYLOAD before reading it, takes
 * descriptors with MSG_CMSG_CLOEXEC and closes any it cannot keep.
 */
#ifndef VHOSTD_VHOST_USER_PROTOCOL_H
#define VHOSTD_VHOST_USER_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Front-end requests ("Front-end message types"). */
enum vhost_user_request {
	VHOST_USER_NONE = 0,
	VHOST_USER_GET_FEATURES = 1,
	VHOST_USER_SET_FEATURES = 2,
	VHOST_USER_SET_OWNER = 3,
	VHOST_USER_RESET_OWNER = 4,
	VHOST_USER_SET_MEM_TABLE = 5,
	VHOST_USER_SET_LOG_BASE = 6,
	VHOST_USER_SET_LOG_FD = 7,
	VHOST_USER_SET_VRING_NUM = 8,
	VHOST_USER_SET_VRING_ADDR = 9,
	VHOST_USER_SET_VRING_BASE = 10,
	VHOST_USER_GET_VRING_BASE = 11,
	VHOST_USER_SET_VRING_KICK = 12,
	VHOST_USER_SET_VRING_CALL = 13,
	VHOST_USER_SET_VRING_ERR = 14,
	VHOST_USER_GET_PROTOCOL_FEATURES = 15,
	VHOST_USER_SET_PROTOCOL_FEATURES = 16,
	VHOST_USER_GET_QUEUE_NUM = 17,
	VHOST_USER_SET_VRING_ENABLE = 18,
	VHOST_USER_SEND_RARP = 19,
	VHOST_USER_NET_SET_MTU = 20,
	VHOST_USER_SET_BACKEND_REQ_FD = 21,
	VHOST_USER_IOTLB_MSG = 22,
	VHOST_USER_SET_VRING_ENDIAN = 23,
	VHOST_USER_GET_CONFIG = 24,
	VHOST_USER_SET_CONFIG = 25,
	VHOST_USER_CREATE_CRYPTO_SESSION = 26,
	VHOST_USER_CLOSE_CRYPTO_SESSION = 27,
	VHOST_USER_POSTCOPY_ADVISE = 28,
	VHOST_USER_POSTCOPY_LISTEN = 29,
	VHOST_USER_POSTCOPY_END = 30,
	VHOST_USER_GET_INFLIGHT_FD = 31,
	VHOST_USER_SET_INFLIGHT_FD = 32,
	VHOST_USER_GPU_SET_SOCKET = 33,
	VHOST_USER_RESET_DEVICE = 34,
	VHOST_USER_VRING_KICK = 35,
	VHOST_USER_GET_MAX_MEM_SLOTS = 36,
	VHOST_USER_ADD_MEM_REG = 37,
	VHOST_USER_REM_MEM_REG = 38,
	VHOST_USER_SET_STATUS = 39,
	VHOST_USER_GET_STATUS = 40,
	VHOST_USER_REQUEST_MAX,
};

/* Header flags: version in bits 0-1, then REPLY and NEED_REPLY ("Header"). */
#define VHOST_USER_VERSION_MASK	   0x3u
#define VHOST_USER_VERSION	   0x1u
#define VHOST_USER_REPLY_MASK	   (1u << 2)
#define VHOST_USER_NEED_REPLY_MASK (1u << 3)

/* Virtio feature bit 30, reused by vhost-user for protocol negotiation. */
#define VHOST_USER_F_PROTOCOL_FEATURES 30
/* vhost's dirty-page logging for live migration (SET_LOG_BASE, "Migration"). */
#define VHOST_F_LOG_ALL 26

/* Protocol features ("Protocol features"). */
#define VHOST_USER_PROTOCOL_F_MQ		   0
#define VHOST_USER_PROTOCOL_F_LOG_SHMFD		   1
#define VHOST_USER_PROTOCOL_F_RARP		   2
#define VHOST_USER_PROTOCOL_F_REPLY_ACK		   3
#define VHOST_USER_PROTOCOL_F_NET_MTU		   4
#define VHOST_USER_PROTOCOL_F_BACKEND_REQ	   5
#define VHOST_USER_PROTOCOL_F_CROSS_ENDIAN	   6
#define VHOST_USER_PROTOCOL_F_CRYPTO_SESSION	   7
#define VHOST_USER_PROTOCOL_F_PAGEFAULT		   8
#define VHOST_USER_PROTOCOL_F_CONFIG		   9
#define VHOST_USER_PROTOCOL_F_BACKEND_SEND_FD	   10
#define VHOST_USER_PROTOCOL_F_HOST_NOTIFIER	   11
#define VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD	   12
#define VHOST_USER_PROTOCOL_F_RESET_DEVICE	   13
#define VHOST_USER_PROTOCOL_F_INBAND_NOTIFICATIONS 14
#define VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS  15
#define VHOST_USER_PROTOCOL_F_STATUS		   16

/* SET_VRING_KICK/CALL/ERR u64: ring index in bits 0-7, "no fd" in bit 8. */
#define VHOST_USER_VRING_IDX_MASK  0xffull
#define VHOST_USER_VRING_NOFD_MASK (1ull << 8)

/* SET_VRING_ADDR flags: bit 0 asks for used-ring dirty logging. */
#define VHOST_VRING_F_LOG 0

/* SET_MEM_TABLE carries at most this many regions (and as many fds). */
#define VHOST_USER_MEM_TABLE_MAX_REGIONS 8
/* Largest config space exchanged by GET/SET_CONFIG (QEMU's limit). */
#define VHOST_USER_MAX_CONFIG_SIZE 256
/* Most descriptors any one message may carry (SET_MEM_TABLE's table). */
#define VHOST_USER_MAX_FDS VHOST_USER_MEM_TABLE_MAX_REGIONS

/* SET_CONFIG flags. */
#define VHOST_USER_CONFIG_FLAG_WRITABLE	 0
#define VHOST_USER_CONFIG_FLAG_MIGRATION 1

struct vhost_user_hdr {
	uint32_t request;
	uint32_t flags;
	uint32_t size; /* payload bytes that follow */
};

/* "A vring state description" */
struct vhost_user_vring_state {
	uint32_t index;
	uint32_t num;
};

/* "A vring address description": user addresses of the ring parts. */
struct vhost_user_vring_addr {
	uint32_t index;
	uint32_t flags;
	uint64_t desc;
	uint64_t used;
	uint64_t avail;
	uint64_t log;
};

/* One region of "Memory regions description" / "Single memory region". */
struct vhost_user_mem_region {
	uint64_t guest_phys_addr;
	uint64_t memory_size;
	uint64_t userspace_addr;
	uint64_t mmap_offset;
};

struct vhost_user_mem_table {
	uint32_t nregions;
	uint32_t padding;
	struct vhost_user_mem_region regions[VHOST_USER_MEM_TABLE_MAX_REGIONS];
};

/* ADD_MEM_REG / REM_MEM_REG payload. */
struct vhost_user_mem_reg {
	uint64_t padding;
	struct vhost_user_mem_region region;
};

/* SET_LOG_BASE with LOG_SHMFD: where the log is in the attached file. */
struct vhost_user_log {
	uint64_t mmap_size;
	uint64_t mmap_offset;
};

/* "Virtio device config space": header, then @size bytes. */
struct vhost_user_config {
	uint32_t offset;
	uint32_t size;
	uint32_t flags;
	uint8_t region[VHOST_USER_MAX_CONFIG_SIZE];
};

#define VHOST_USER_CONFIG_HDR_SIZE offsetof(struct vhost_user_config, region)

/* GET_INFLIGHT_FD / SET_INFLIGHT_FD: "Inflight description". */
struct vhost_user_inflight {
	uint64_t mmap_size;
	uint64_t mmap_offset;
	uint16_t num_queues;
	uint16_t queue_size;
};

/* QEMU sends sizeof() (24 bytes, tail padding included); the fields end at 20. */
#define VHOST_USER_INFLIGHT_MIN_SIZE 20

union vhost_user_payload {
	uint64_t u64;
	struct vhost_user_inflight inflight;
	struct vhost_user_vring_state state;
	struct vhost_user_vring_addr addr;
	struct vhost_user_mem_table mem;
	struct vhost_user_mem_reg mem_reg;
	struct vhost_user_config config;
	struct vhost_user_log log;
};

/* No message we accept is larger: checked before a payload is read. */
#define VHOST_USER_MAX_PAYLOAD sizeof(union vhost_user_payload)

/*
 * A message in memory.  On the wire the payload follows the 12-byte header
 * directly; here it sits at its natural 8-byte alignment (the padding is
 * never sent), so no field is ever accessed unaligned.
 */
struct vhost_user_msg {
	struct vhost_user_hdr hdr;
	union vhost_user_payload payload;
};

#define VHOST_USER_HDR_SIZE sizeof(struct vhost_user_hdr)
_Static_assert(VHOST_USER_HDR_SIZE == 12, "vhost-user header is 12 bytes on the wire");

/* "GET_FEATURES" etc. for log lines; "unknown" for codes we do not know. */
const char *vhost_user_request_name(uint32_t request);

/* Fill @msg's header for a request (or reply) with @size payload bytes. */
static inline void vhost_user_msg_init(struct vhost_user_msg *msg, uint32_t request, uint32_t flags,
				       uint32_t size)
{
	msg->hdr.request = request;
	msg->hdr.flags = VHOST_USER_VERSION | flags;
	msg->hdr.size = size;
}

/*
 * Send the bytes of @iov (at most 4 entries) with @nfds descriptors attached
 * to the first byte.  Short writes are continued; a full send buffer is
 * waited for up to @timeout_ms (-1: forever).  0 or -errno (-EPIPE if the
 * peer went away; never raises SIGPIPE).
 */
int vhost_user_sendv(int sock, const struct iovec *iov, unsigned int iovcnt, const int *fds,
		     unsigned int nfds, int timeout_ms);

/* Send @msg: its header and hdr.size bytes of payload (at most the maximum). */
int vhost_user_send(int sock, const struct vhost_user_msg *msg, const int *fds, unsigned int nfds,
		    int timeout_ms);

/*
 * Incremental receiver for one message.  Bytes and descriptors accumulate
 * across calls until the header and exactly hdr.size payload bytes are in;
 * nothing of the next message is consumed.
 */
struct vhost_user_rx {
	struct vhost_user_msg msg;
	size_t got; /* wire bytes received so far (header first) */
	int fds[VHOST_USER_MAX_FDS];
	unsigned int nfds;
};

void vhost_user_rx_init(struct vhost_user_rx *rx);
/* Close every descriptor still held by @rx and reset it. */
void vhost_user_rx_reset(struct vhost_user_rx *rx);

/*
 * Read what is available without blocking.  Returns 1 when a whole message
 * is in @rx, 0 when more bytes are needed (EAGAIN), or:
 *   -ECONNRESET  the peer closed the connection between messages;
 *   -EPIPE       it closed in the middle of a message (truncated);
 *   -EMSGSIZE    hdr.size exceeds VHOST_USER_MAX_PAYLOAD;
 *   -ETOOMANYREFS more than VHOST_USER_MAX_FDS descriptors were sent;
 *   -errno       the socket failed.
 * @rx keeps the descriptors it received either way; the caller closes them
 * with vhost_user_rx_reset() (or takes them).
 */
int vhost_user_recv_step(int sock, struct vhost_user_rx *rx);

/* Blocking form: wait up to @timeout_ms (-1: forever) for a whole message. */
int vhost_user_recv(int sock, struct vhost_user_rx *rx, int timeout_ms);

/* Close @n descriptors, skipping negative ones. */
void vhost_user_close_fds(int *fds, unsigned int n);

#endif /* VHOSTD_VHOST_USER_PROTOCOL_H */
