// SPDX-License-Identifier: MIT
/*
 * test_vu_negative.c - hostile and malformed vhost-user messages.
 *
 * Each case opens a connection, sends something a well-behaved front-end
 * never would, and then checks, with the back-end running in this very
 * process (and under ASan/UBSan in build-san):
 *   - the back-end closes that connection (we read EOF);
 *   - it says why in exactly one error line;
 *   - every descriptor it received was closed: /proc/self/fd counts the
 *     same as before the case;
 *   - it accepts a fresh connection that negotiates and moves data.
 * Run one case by naming it on the command line; --list prints them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vu_test.h"

static struct vt_loop loop;
static struct echo_dev echo;
static struct vu_dev *dev;
static const char *sock_path;

#define PF_BIT	    (1ull << VHOST_USER_F_PROTOCOL_FEATURES)
#define REGION_BASE 0x10000000ull
#define REGION_SIZE (1u << 20)

/* --- building blocks --- */

/* Send raw wire bytes; the back-end may already have hung up, which is fine. */
static void send_bytes(int sock, const void *buf, size_t len, const int *fds, unsigned int nfds)
{
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	int r = vhost_user_sendv(sock, &iov, 1, fds, nfds, 2000);

	if (r && r != -EPIPE && r != -ECONNRESET)
		FAIL("send: %s", strerror(-r));
}

static void send_msg(int sock, uint32_t request, uint32_t flags, const void *payload, uint32_t size,
		     const int *fds, unsigned int nfds)
{
	uint8_t wire[VHOST_USER_HDR_SIZE + VHOST_USER_MAX_PAYLOAD];

	CHECK(size <= VHOST_USER_MAX_PAYLOAD);
	send_bytes(sock, wire, vt_wire(wire, request, flags, size, payload, size), fds, nfds);
}

static void send_u64(int sock, uint32_t request, uint64_t v, const int *fds, unsigned int nfds)
{
	send_msg(sock, request, 0, &v, sizeof(v), fds, nfds);
}

static void send_state(int sock, uint32_t request, uint32_t index, uint32_t num)
{
	struct vhost_user_vring_state st = {.index = index, .num = num};

	send_msg(sock, request, 0, &st, sizeof(st), NULL, 0);
}

static int memfd_sized(size_t size)
{
	int fd = memfd_create("neg", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	/* Sealed, as QEMU's are: an unsealed memfd earns a warning of its own. */
	CHECK(fd >= 0 && !ftruncate(fd, (off_t)size));
	CHECK(!fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW));
	return fd;
}

/* A valid one-region memory table at REGION_BASE (guest and user address). */
static void send_mem_table(int sock)
{
	struct vhost_user_mem_table t = {
		.nregions = 1,
		.regions[0] = {REGION_BASE, REGION_SIZE, REGION_BASE, 0},
	};
	int fd = memfd_sized(REGION_SIZE);

	send_msg(sock, VHOST_USER_SET_MEM_TABLE, 0, &t,
		 offsetof(struct vhost_user_mem_table, regions) + sizeof(t.regions[0]), &fd, 1);
	close(fd);
}

static void send_mem_reg(int sock, uint32_t request, uint64_t gpa, uint64_t size, uint64_t uva,
			 uint64_t offset, int fd)
{
	struct vhost_user_mem_reg m = {.region = {gpa, size, uva, offset}};

	send_msg(sock, request, 0, &m, sizeof(m), &fd, fd >= 0 ? 1 : 0);
}

static void send_addr(int sock, uint32_t index, uint32_t flags, uint64_t desc, uint64_t avail,
		      uint64_t used)
{
	struct vhost_user_vring_addr a = {
		.index = index,
		.flags = flags,
		.desc = desc,
		.used = used,
		.avail = avail,
	};

	send_msg(sock, VHOST_USER_SET_VRING_ADDR, 0, &a, sizeof(a), NULL, 0);
}

/* --- framing --- */

static void truncated_header(int sock)
{
	uint8_t wire[VHOST_USER_HDR_SIZE];

	vt_wire(wire, VHOST_USER_GET_FEATURES, 0, 0, NULL, 0);
	send_bytes(sock, wire, 6, NULL, 0);
	shutdown(sock, SHUT_WR);
}

static void truncated_payload(int sock)
{
	uint8_t wire[VHOST_USER_HDR_SIZE + 8];
	uint64_t v = 0;

	vt_wire(wire, VHOST_USER_SET_FEATURES, 0, 8, &v, 8);
	send_bytes(sock, wire, VHOST_USER_HDR_SIZE + 4, NULL, 0);
	shutdown(sock, SHUT_WR);
}

/* Size bigger than the request allows: refused before any payload arrives. */
static void size_over_request_max_stalled(int sock)
{
	uint8_t wire[VHOST_USER_HDR_SIZE];

	/* Nothing follows the header, and we keep the connection open. */
	send_bytes(sock, wire, vt_wire(wire, VHOST_USER_SET_FEATURES, 0, 64, NULL, 0), NULL, 0);
}

static void size_over_protocol_max(int sock)
{
	uint8_t wire[VHOST_USER_HDR_SIZE];

	send_bytes(sock, wire, vt_wire(wire, VHOST_USER_GET_FEATURES, 0, 1u << 20, NULL, 0), NULL,
		   0);
}

static void payload_on_get(int sock)
{
	send_u64(sock, VHOST_USER_GET_FEATURES, 0, NULL, 0);
}

static void bad_version(int sock)
{
	uint8_t wire[VHOST_USER_HDR_SIZE];
	struct vhost_user_hdr h = {VHOST_USER_GET_FEATURES, 0x2, 0};

	memcpy(wire, &h, sizeof(h));
	send_bytes(sock, wire, sizeof(wire), NULL, 0);
}

static void reply_flag(int sock)
{
	send_msg(sock, VHOST_USER_GET_FEATURES, VHOST_USER_REPLY_MASK, NULL, 0, NULL, 0);
}

static void unknown_request(int sock)
{
	send_msg(sock, 99, 0, NULL, 0, NULL, 0);
}

static void request_zero(int sock)
{
	send_msg(sock, VHOST_USER_NONE, 0, NULL, 0, NULL, 0);
}

static void unsupported_request(int sock)
{
	/* SET_LOG_BASE before LOG_SHMFD was negotiated. */
	int fd = memfd_sized(4096);

	send_u64(sock, VHOST_USER_SET_LOG_BASE, 0, &fd, 1);
	close(fd);
}

/* --- descriptors --- */

static void fd_on_set_features(int sock)
{
	int fd = eventfd(0, EFD_CLOEXEC);

	send_u64(sock, VHOST_USER_SET_FEATURES, 1ull << VIRTIO_F_VERSION_1, &fd, 1);
	close(fd);
}

static void kick_without_fd(int sock)
{
	send_u64(sock, VHOST_USER_SET_VRING_KICK, 0, NULL, 0);
}

static void kick_nofd_with_fd(int sock)
{
	int fd = eventfd(0, EFD_CLOEXEC);

	send_u64(sock, VHOST_USER_SET_VRING_KICK, VHOST_USER_VRING_NOFD_MASK, &fd, 1);
	close(fd);
}

static void call_two_fds(int sock)
{
	int fds[2] = {eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC)};

	send_u64(sock, VHOST_USER_SET_VRING_CALL, 1, fds, 2);
	close(fds[0]);
	close(fds[1]);
}

/* More descriptors than any message may carry: the kernel truncates, we refuse. */
static void nine_fds(int sock)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 9)];
		struct cmsghdr align;
	} control;
	uint8_t wire[VHOST_USER_HDR_SIZE];
	struct iovec iov = {.iov_base = wire, .iov_len = sizeof(wire)};
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = control.buf,
		.msg_controllen = sizeof(control.buf),
	};
	struct cmsghdr *c;
	int fds[9];

	vt_wire(wire, VHOST_USER_SET_OWNER, 0, 0, NULL, 0);
	for (int i = 0; i < 9; i++)
		fds[i] = eventfd(0, EFD_CLOEXEC);
	memset(&control, 0, sizeof(control));
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(c), fds, sizeof(fds));
	CHECK(sendmsg(sock, &mh, MSG_NOSIGNAL) == sizeof(wire));
	for (int i = 0; i < 9; i++)
		close(fds[i]);
}

static void mem_table_without_fd(int sock)
{
	struct vhost_user_mem_table t = {
		.nregions = 1,
		.regions[0] = {REGION_BASE, REGION_SIZE, REGION_BASE, 0},
	};

	send_msg(sock, VHOST_USER_SET_MEM_TABLE, 0, &t,
		 offsetof(struct vhost_user_mem_table, regions) + sizeof(t.regions[0]), NULL, 0);
}

/* --- ring index and ring values --- */

static void ring_index_state(int sock)
{
	send_state(sock, VHOST_USER_SET_VRING_NUM, 2, 64);
}

static void ring_index_huge(int sock)
{
	send_state(sock, VHOST_USER_SET_VRING_BASE, 0xffffffffu, 0);
}

static void ring_index_fd(int sock)
{
	send_u64(sock, VHOST_USER_SET_VRING_CALL, 200 | VHOST_USER_VRING_NOFD_MASK, NULL, 0);
}

static void ring_reserved_bits(int sock)
{
	send_u64(sock, VHOST_USER_SET_VRING_CALL, (1ull << 20) | VHOST_USER_VRING_NOFD_MASK, NULL,
		 0);
}

static void num_not_power_of_two(int sock)
{
	send_state(sock, VHOST_USER_SET_VRING_NUM, 0, 100);
}

static void num_too_big(int sock)
{
	send_state(sock, VHOST_USER_SET_VRING_NUM, 1, 512);
}

static void num_zero(int sock)
{
	send_state(sock, VHOST_USER_SET_VRING_NUM, 0, 0);
}

static void packed_base_beyond_size(int sock)
{
	send_u64(sock, VHOST_USER_SET_FEATURES, PF_BIT | VT_FEATURES_SPLIT | VT_FEATURES_PACKED,
		 NULL, 0);
	send_state(sock, VHOST_USER_SET_VRING_NUM, 0, 100); /* packed: any size */
	send_state(sock, VHOST_USER_SET_VRING_BASE, 0, 0x8000 | 100);
}

static void base_over_16_bits(int sock)
{
	send_state(sock, VHOST_USER_SET_VRING_BASE, 0, 0x10000);
}

static void enable_value(int sock)
{
	send_state(sock, VHOST_USER_SET_VRING_ENABLE, 0, 2);
}

/* --- ring addresses --- */

static void addr_outside_memory(int sock)
{
	send_mem_table(sock);
	send_state(sock, VHOST_USER_SET_VRING_NUM, 0, 64);
	send_addr(sock, 0, 0, REGION_BASE, REGION_BASE + 0x1000, REGION_BASE + REGION_SIZE);
}

static void addr_straddles_end(int sock)
{
	send_mem_table(sock);
	send_state(sock, VHOST_USER_SET_VRING_NUM, 0, 256);
	/* 256 descriptors need 4 KiB: start 2 KiB before the end. */
	send_addr(sock, 0, 0, REGION_BASE + REGION_SIZE - 2048, REGION_BASE, REGION_BASE + 0x4000);
}

static void addr_misaligned(int sock)
{
	send_mem_table(sock);
	send_state(sock, VHOST_USER_SET_VRING_NUM, 0, 64);
	send_addr(sock, 0, 0, REGION_BASE + 8, REGION_BASE + 0x1000, REGION_BASE + 0x2000);
}

/* VHOST_VRING_F_LOG is the only flag SET_VRING_ADDR knows. */
static void addr_unknown_flag(int sock)
{
	send_addr(sock, 0, 1u << VHOST_VRING_F_LOG | 2u, REGION_BASE, REGION_BASE + 0x1000,
		  REGION_BASE + 0x2000);
}

/* A live session: the ring is started when its address goes bad. */
static void addr_outside_live(int sock)
{
	struct vu_fe *fe = vt_connect(sock_path, 2, 64, VT_FEATURES_SPLIT, 0);
	struct vhost_user_vring_addr a = {
		.index = 0, .desc = 0x1000, .used = 0x3000, .avail = 0x2000};
	uint8_t wire[VHOST_USER_HDR_SIZE + sizeof(a)];
	struct vhost_user_msg reply;
	struct vt_io io = {.fe = fe,
			   .queue = 0,
			   .area_len = 8 * VT_SLOT_SIZE,
			   .depth = 8,
			   .nreq = 100,
			   .seed = 7};

	/* Moving data first: the ring is running when its address goes bad. */
	io.area = vu_fe_alloc(fe, io.area_len, 4096);
	CHECK(io.area);
	vt_io_run(&io);
	CHECK_EQ(vu_fe_send_raw(fe, wire,
				vt_wire(wire, VHOST_USER_SET_VRING_ADDR, VHOST_USER_NEED_REPLY_MASK,
					sizeof(a), &a, sizeof(a)),
				NULL, 0, &reply, sizeof(reply)),
		 -ECONNRESET);
	vu_fe_disconnect(fe);
}

/* --- memory regions --- */

static void regions_overlap_gpa(int sock)
{
	struct vhost_user_mem_table t = {
		.nregions = 2,
		.regions =
			{
				{REGION_BASE, REGION_SIZE, REGION_BASE, 0},
				{REGION_BASE + REGION_SIZE / 2, REGION_SIZE / 2, 0x70000000, 0},
			},
	};
	int fds[2] = {memfd_sized(REGION_SIZE), memfd_sized(REGION_SIZE)};

	send_msg(sock, VHOST_USER_SET_MEM_TABLE, 0, &t,
		 offsetof(struct vhost_user_mem_table, regions) + 2 * sizeof(t.regions[0]), fds, 2);
	close(fds[0]);
	close(fds[1]);
}

static void regions_overlap_uva(int sock)
{
	struct vhost_user_mem_table t = {
		.nregions = 2,
		.regions =
			{
				{REGION_BASE, REGION_SIZE, REGION_BASE, 0},
				{0x70000000, REGION_SIZE, REGION_BASE + 4096, 0},
			},
	};
	int fds[2] = {memfd_sized(REGION_SIZE), memfd_sized(REGION_SIZE)};

	send_msg(sock, VHOST_USER_SET_MEM_TABLE, 0, &t,
		 offsetof(struct vhost_user_mem_table, regions) + 2 * sizeof(t.regions[0]), fds, 2);
	close(fds[0]);
	close(fds[1]);
}

/* A region longer than its file: touching the tail would SIGBUS the daemon. */
static void region_past_end_of_file(int sock)
{
	struct vhost_user_mem_table t = {
		.nregions = 1,
		.regions[0] = {REGION_BASE, REGION_SIZE, REGION_BASE, 4096},
	};
	int fd = memfd_sized(REGION_SIZE);

	send_msg(sock, VHOST_USER_SET_MEM_TABLE, 0, &t,
		 offsetof(struct vhost_user_mem_table, regions) + sizeof(t.regions[0]), &fd, 1);
	close(fd);
}

static void region_not_a_file(int sock)
{
	struct vhost_user_mem_table t = {
		.nregions = 1,
		.regions[0] = {REGION_BASE, 4096, REGION_BASE, 0},
	};
	int fd = eventfd(0, EFD_CLOEXEC);

	send_msg(sock, VHOST_USER_SET_MEM_TABLE, 0, &t,
		 offsetof(struct vhost_user_mem_table, regions) + sizeof(t.regions[0]), &fd, 1);
	close(fd);
}

static void region_wraps(int sock)
{
	struct vhost_user_mem_table t = {
		.nregions = 1,
		.regions[0] = {~0ull - 100, 4096, REGION_BASE, 0},
	};
	int fd = memfd_sized(4096);

	send_msg(sock, VHOST_USER_SET_MEM_TABLE, 0, &t,
		 offsetof(struct vhost_user_mem_table, regions) + sizeof(t.regions[0]), &fd, 1);
	close(fd);
}

static void region_count_vs_size(int sock)
{
	struct vhost_user_mem_table t = {
		.nregions = 2,
		.regions[0] = {REGION_BASE, 4096, REGION_BASE, 0},
	};
	int fd = memfd_sized(4096);

	send_msg(sock, VHOST_USER_SET_MEM_TABLE, 0, &t,
		 offsetof(struct vhost_user_mem_table, regions) + sizeof(t.regions[0]), &fd, 1);
	close(fd);
}

static void add_reg_not_negotiated(int sock)
{
	int fd = memfd_sized(4096);

	send_mem_reg(sock, VHOST_USER_ADD_MEM_REG, REGION_BASE, 4096, REGION_BASE, 0, fd);
	close(fd);
}

static void negotiate_mem_slots(int sock)
{
	send_u64(sock, VHOST_USER_SET_PROTOCOL_FEATURES,
		 1ull << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS, NULL, 0);
}

static void add_reg_overlap(int sock)
{
	int fd = memfd_sized(2 * 4096);

	negotiate_mem_slots(sock);
	send_mem_reg(sock, VHOST_USER_ADD_MEM_REG, REGION_BASE, 8192, REGION_BASE, 0, fd);
	send_mem_reg(sock, VHOST_USER_ADD_MEM_REG, REGION_BASE + 4096, 8192, 0x70000000, 0, fd);
	close(fd);
}

/* 32 slots are fine; the 33rd is refused. */
static void add_reg_beyond_slots(int sock)
{
	int fd = memfd_sized((MEMMAP_MAX_REGIONS + 1) * 4096);

	negotiate_mem_slots(sock);
	for (uint64_t i = 0; i <= MEMMAP_MAX_REGIONS; i++)
		send_mem_reg(sock, VHOST_USER_ADD_MEM_REG, REGION_BASE + i * 0x10000, 4096,
			     REGION_BASE + i * 0x10000, i * 4096, fd);
	close(fd);
}

static void rem_reg_unknown(int sock)
{
	int fd = memfd_sized(4096);

	negotiate_mem_slots(sock);
	send_mem_reg(sock, VHOST_USER_ADD_MEM_REG, REGION_BASE, 4096, REGION_BASE, 0, fd);
	/* Right address, wrong size: not the region we have. */
	send_mem_reg(sock, VHOST_USER_REM_MEM_REG, REGION_BASE, 8192, REGION_BASE, 0, -1);
	close(fd);
}

/* --- features --- */

static void feature_not_offered(int sock)
{
	send_u64(sock, VHOST_USER_SET_FEATURES, PF_BIT | (1ull << 63), NULL, 0);
}

static void protocol_feature_not_offered(int sock)
{
	send_u64(sock, VHOST_USER_SET_PROTOCOL_FEATURES,
		 1ull << VHOST_USER_PROTOCOL_F_HOST_NOTIFIER, NULL, 0);
}

static void config_not_negotiated(int sock)
{
	struct vhost_user_config c = {.offset = 0, .size = 4};

	send_msg(sock, VHOST_USER_GET_CONFIG, 0, &c, VHOST_USER_CONFIG_HDR_SIZE + 4, NULL, 0);
}

static void config_size_mismatch(int sock)
{
	struct vhost_user_config c = {.offset = 0, .size = 8};

	send_u64(sock, VHOST_USER_SET_PROTOCOL_FEATURES, 1ull << VHOST_USER_PROTOCOL_F_CONFIG, NULL,
		 0);
	send_msg(sock, VHOST_USER_GET_CONFIG, 0, &c, VHOST_USER_CONFIG_HDR_SIZE + 4, NULL, 0);
}

static void status_too_big(int sock)
{
	send_u64(sock, VHOST_USER_SET_PROTOCOL_FEATURES, 1ull << VHOST_USER_PROTOCOL_F_STATUS, NULL,
		 0);
	send_u64(sock, VHOST_USER_SET_STATUS, 0x100, NULL, 0);
}

/* --- SET_LOG_BASE (LOG_SHMFD negotiated first) --- */

static void send_log_base(int sock, uint64_t size, uint64_t offset, int fd)
{
	struct vhost_user_log l = {.mmap_size = size, .mmap_offset = offset};

	send_u64(sock, VHOST_USER_SET_PROTOCOL_FEATURES, 1ull << VHOST_USER_PROTOCOL_F_LOG_SHMFD,
		 NULL, 0);
	send_msg(sock, VHOST_USER_SET_LOG_BASE, 0, &l, sizeof(l), fd >= 0 ? &fd : NULL,
		 fd >= 0 ? 1 : 0);
}

/* A log past the end of its file would raise SIGBUS at the first bit. */
static void log_past_end_of_file(int sock)
{
	int fd = memfd_sized(4096);

	send_log_base(sock, 8192, 0, fd);
	close(fd);
}

static void log_offset_wraps(int sock)
{
	int fd = memfd_sized(4096);

	send_log_base(sock, 4096, UINT64_MAX - 100, fd);
	close(fd);
}

static void log_size_zero(int sock)
{
	int fd = memfd_sized(4096);

	send_log_base(sock, 0, 0, fd);
	close(fd);
}

static void log_size_huge(int sock)
{
	int fd = memfd_sized(4096);

	send_log_base(sock, 1ull << 40, 0, fd);
	close(fd);
}

static void log_without_fd(int sock)
{
	send_log_base(sock, 4096, 0, -1);
}

static void log_not_a_file(int sock)
{
	int fd = eventfd(0, EFD_CLOEXEC);

	send_log_base(sock, 4096, 0, fd);
	close(fd);
}

/*
 * --- GET/SET_INFLIGHT_FD (INFLIGHT_SHMFD negotiated first; the echo
 * device offers it here) ---
 */

static void send_inflight(int sock, uint32_t request, uint64_t size, uint64_t offset,
			  uint16_t num_queues, uint16_t queue_size, int fd)
{
	struct vhost_user_inflight in = {.mmap_size = size,
					 .mmap_offset = offset,
					 .num_queues = num_queues,
					 .queue_size = queue_size};

	send_u64(sock, VHOST_USER_SET_PROTOCOL_FEATURES,
		 1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD, NULL, 0);
	send_msg(sock, request, 0, &in, sizeof(in), fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0);
}

static void inflight_get_no_queues(int sock)
{
	send_inflight(sock, VHOST_USER_GET_INFLIGHT_FD, 0, 0, 0, 64, -1);
}

static void inflight_get_more_queues(int sock)
{
	send_inflight(sock, VHOST_USER_GET_INFLIGHT_FD, 0, 0, 3, 64, -1);
}

static void inflight_get_ring_too_big(int sock)
{
	send_inflight(sock, VHOST_USER_GET_INFLIGHT_FD, 0, 0, 1, 65535, -1);
}

static void inflight_without_fd(int sock)
{
	send_inflight(sock, VHOST_USER_SET_INFLIGHT_FD, 8192, 0, 1, 64, -1);
}

/* The region is shared for good: a pipe, or a file that can shrink (SIGBUS), is refused. */
static void inflight_pipe(int sock)
{
	int p[2];

	CHECK(!pipe2(p, O_CLOEXEC));
	send_inflight(sock, VHOST_USER_SET_INFLIGHT_FD, 8192, 0, 1, 64, p[0]);
	close(p[0]);
	close(p[1]);
}

static void inflight_not_sealed(int sock)
{
	int fd = memfd_create("neg", MFD_CLOEXEC);

	CHECK(fd >= 0 && !ftruncate(fd, 8192));
	send_inflight(sock, VHOST_USER_SET_INFLIGHT_FD, 8192, 0, 1, 64, fd);
	close(fd);
}

static void inflight_past_end_of_file(int sock)
{
	int fd = memfd_sized(4096);

	send_inflight(sock, VHOST_USER_SET_INFLIGHT_FD, 8192, 0, 1, 64, fd);
	close(fd);
}

static void inflight_offset_wraps(int sock)
{
	int fd = memfd_sized(8192);

	send_inflight(sock, VHOST_USER_SET_INFLIGHT_FD, 8192, UINT64_MAX - 4095, 1, 64, fd);
	close(fd);
}

/* Smaller than 2 rings of 64 need, whatever the file holds. */
static void inflight_region_too_small(int sock)
{
	int fd = memfd_sized(1 << 20);

	send_inflight(sock, VHOST_USER_SET_INFLIGHT_FD, 4096, 0, 2, 64, fd);
	close(fd);
}

/* --- the cases --- */

struct neg_case {
	const char *name;
	void (*fn)(int sock); /* given a fresh raw connection, or -1 (uses its own) */
	bool own_connection;
};

static const struct neg_case cases[] = {
	{"truncated-header", truncated_header, false},
	{"truncated-payload", truncated_payload, false},
	{"size-over-request-max", size_over_request_max_stalled, false},
	{"size-over-protocol-max", size_over_protocol_max, false},
	{"payload-on-get", payload_on_get, false},
	{"bad-version", bad_version, false},
	{"reply-flag-on-request", reply_flag, false},
	{"unknown-request", unknown_request, false},
	{"request-zero", request_zero, false},
	{"unsupported-request", unsupported_request, false},
	{"fd-on-set-features", fd_on_set_features, false},
	{"kick-without-fd", kick_without_fd, false},
	{"kick-nofd-with-fd", kick_nofd_with_fd, false},
	{"call-two-fds", call_two_fds, false},
	{"nine-fds", nine_fds, false},
	{"mem-table-without-fd", mem_table_without_fd, false},
	{"ring-index-state", ring_index_state, false},
	{"ring-index-huge", ring_index_huge, false},
	{"ring-index-fd", ring_index_fd, false},
	{"ring-reserved-bits", ring_reserved_bits, false},
	{"num-not-power-of-two", num_not_power_of_two, false},
	{"num-too-big", num_too_big, false},
	{"num-zero", num_zero, false},
	{"packed-base-beyond-size", packed_base_beyond_size, false},
	{"base-over-16-bits", base_over_16_bits, false},
	{"enable-value", enable_value, false},
	{"addr-outside-memory", addr_outside_memory, false},
	{"addr-straddles-end", addr_straddles_end, false},
	{"addr-misaligned", addr_misaligned, false},
	{"addr-unknown-flag", addr_unknown_flag, false},
	{"log-past-end-of-file", log_past_end_of_file, false},
	{"log-offset-wraps", log_offset_wraps, false},
	{"log-size-zero", log_size_zero, false},
	{"log-size-huge", log_size_huge, false},
	{"log-without-fd", log_without_fd, false},
	{"log-not-a-file", log_not_a_file, false},
	{"addr-outside-live", addr_outside_live, true},
	{"regions-overlap-gpa", regions_overlap_gpa, false},
	{"regions-overlap-uva", regions_overlap_uva, false},
	{"region-past-end-of-file", region_past_end_of_file, false},
	{"region-not-a-file", region_not_a_file, false},
	{"region-wraps", region_wraps, false},
	{"region-count-vs-size", region_count_vs_size, false},
	{"add-reg-not-negotiated", add_reg_not_negotiated, false},
	{"add-reg-overlap", add_reg_overlap, false},
	{"add-reg-beyond-slots", add_reg_beyond_slots, false},
	{"rem-reg-unknown", rem_reg_unknown, false},
	{"feature-not-offered", feature_not_offered, false},
	{"protocol-feature-not-offered", protocol_feature_not_offered, false},
	{"config-not-negotiated", config_not_negotiated, false},
	{"config-size-mismatch", config_size_mismatch, false},
	{"status-too-big", status_too_big, false},
	{"inflight-get-no-queues", inflight_get_no_queues, false},
	{"inflight-get-more-queues", inflight_get_more_queues, false},
	{"inflight-get-ring-too-big", inflight_get_ring_too_big, false},
	{"inflight-without-fd", inflight_without_fd, false},
	{"inflight-pipe", inflight_pipe, false},
	{"inflight-not-sealed", inflight_not_sealed, false},
	{"inflight-past-end-of-file", inflight_past_end_of_file, false},
	{"inflight-offset-wraps", inflight_offset_wraps, false},
	{"inflight-region-too-small", inflight_region_too_small, false},
};

static void run_case(const struct neg_case *c)
{
	char log[16384];
	struct vt_capture cap;
	int fds = vt_count_fds();
	bool eof = true;

	fprintf(stderr, "case %s\n", c->name);
	vt_capture_start(&cap);
	if (c->own_connection) {
		c->fn(-1);
	} else {
		int sock = vt_raw_connect(sock_path);

		c->fn(sock);
		eof = vt_wait_eof(sock);
		close(sock);
	}
	vt_wait_disconnected(dev);
	vt_capture_stop(&cap, log, sizeof(log));

	if (!eof)
		FAIL("%s: the back-end did not close the connection", c->name);
	if (vt_count_problems(log) != 1)
		FAIL("%s: %u error lines, expected exactly one", c->name, vt_count_problems(log));
	CHECK_EQ(vt_count_fds(), fds);

	/* Still serving: a fresh front-end negotiates and moves data. */
	vt_session(sock_path, 2, VT_FEATURES_SPLIT | VT_FEATURES_EVENT_IDX, 64);
	vt_wait_disconnected(dev);
	CHECK_EQ(vt_count_fds(), fds);
	CHECK_EQ(atomic_load(&echo.starts), atomic_load(&echo.stops));
}

int main(int argc, char **argv)
{
	size_t n = sizeof(cases) / sizeof(cases[0]), ran = 0;

	if (argc == 2 && !strcmp(argv[1], "--list")) {
		for (size_t i = 0; i < n; i++)
			printf("%s\n", cases[i].name);
		return 0;
	}

	dev = vt_echo_start(&loop, &echo, &sock_path, 2, 256);
	/* For the inflight-* cases; before any connection, so the loop sees it. */
	echo.extra_protocol_features = 1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD;

	for (size_t i = 0; i < n; i++) {
		bool wanted = argc < 2;

		for (int a = 1; a < argc; a++)
			wanted |= !strcmp(argv[a], cases[i].name);
		if (wanted) {
			run_case(&cases[i]);
			ran++;
		}
	}
	if (!ran)
		FAIL("no case matched");

	vt_echo_stop(&loop, dev);
	fprintf(stderr, "ok: %zu cases\n", ran);
	return 0;
}
