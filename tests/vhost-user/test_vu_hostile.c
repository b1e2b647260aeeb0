// SPDX-License-Identifier: MIT
/*
 * test_vu_hostile.c - a front-end that attacks the daemon through the
 * descriptors it hands over (issue 12): eventfds whose counter is full
 * and whose O_NONBLOCK it clears behind our back, pipes, files and
 * semaphore eventfds where an eventfd belongs, lingering TCP sockets as
 * surplus or unread descriptors, sparse memory beyond max-guest-memory,
 * a short GET_CONFIG, and guest memory that faults (SIGBUS): an unsealed
 * memfd or a tmpfs file shrunk under running I/O or before the ring is
 * set up, and a sealed hugetlbfs memfd the host has no huge page for.
 *
 * Two devices live in this one back-end process: "a" is attacked, "b"
 * keeps serving a front-end that checks every byte, on a thread, all the
 * time.  After each case: the process is alive, b's requests still
 * complete and its connection still answers (within generous bounds,
 * never a speed), a takes a new front-end that moves data, and every
 * descriptor the attack sent was closed (/proc/self/fd is back to its
 * count).  Run one case by naming it; --list prints them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/ufd.h"
#include "vu_test.h"

#define REGION_BASE 0x10000000ull
#define FULL_COUNT  0xfffffffffffffffeull

static struct vt_loop loop;
static struct echo_dev echo_a, echo_b;
static struct vu_dev *dev_a, *dev_b;
static const char *path_a, *path_b;
static struct vu_fe *fe_b;

/* --- building blocks --- */

static void send_bytes(int sock, const void *buf, size_t len, const int *fds, unsigned int nfds)
{
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	int r = vhost_user_sendv(sock, &iov, 1, fds, nfds, 2000);

	if (r && r != -EPIPE && r != -ECONNRESET)
		FAIL("send: %s", strerror(-r));
}

static void send_msg(int sock, uint32_t request, const void *payload, uint32_t size, const int *fds,
		     unsigned int nfds)
{
	uint8_t wire[VHOST_USER_HDR_SIZE + VHOST_USER_MAX_PAYLOAD];

	send_bytes(sock, wire, vt_wire(wire, request, 0, size, payload, size), fds, nfds);
}

static void send_u64(int sock, uint32_t request, uint64_t v, const int *fds, unsigned int nfds)
{
	send_msg(sock, request, &v, sizeof(v), fds, nfds);
}

/* A raw request with NEED_REPLY on a live front-end's connection; true if acked with 0. */
static bool fe_request_acked(struct vu_fe *fe, uint32_t request, uint64_t v, const int *fds,
			     unsigned int nfds)
{
	uint8_t wire[VHOST_USER_HDR_SIZE + sizeof(v)];
	struct vhost_user_msg reply;

	if (vu_fe_send_raw(
		    fe, wire,
		    vt_wire(wire, request, VHOST_USER_NEED_REPLY_MASK, sizeof(v), &v, sizeof(v)),
		    fds, nfds, &reply, sizeof(reply)))
		return false;
	return reply.payload.u64 == 0;
}

/* A control message on a connection gets its answer (the loop is not stuck). */
static void ping(struct vu_fe *fe, const char *who)
{
	uint8_t wire[VHOST_USER_HDR_SIZE];
	struct vhost_user_msg reply;
	int r = vu_fe_send_raw(fe, wire, vt_wire(wire, VHOST_USER_GET_FEATURES, 0, 0, NULL, 0),
			       NULL, 0, &reply, sizeof(reply));

	if (r)
		FAIL("%s: GET_FEATURES got no answer: %s", who, strerror(-r));
}

/* Device b completes requests: its count moves within 5 s. */
static void b_still_serving(void)
{
	uint64_t start = atomic_load(&echo_b.requests);

	for (int i = 0; i < 500 && atomic_load(&echo_b.requests) == start; i++)
		usleep(10000);
	if (atomic_load(&echo_b.requests) == start)
		FAIL("device b completed nothing for 5 s");
	ping(fe_b, "device b");
}

static int efd_full(bool blocking)
{
	int fd = eventfd(0, EFD_CLOEXEC);

	CHECK(fd >= 0 && eventfd_write(fd, FULL_COUNT) == 0);
	if (!blocking)
		CHECK(!fcntl(fd, F_SETFL, O_NONBLOCK));
	return fd;
}

static int memfd_sized(uint64_t size)
{
	int fd = memfd_create("hostile", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	CHECK(fd >= 0 && !ftruncate(fd, (off_t)size));
	CHECK(!fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW));
	return fd;
}

/*
 * A TCP socket whose last close() lingers: connected over loopback to a
 * listener that never accepts, its send buffer full, SO_LINGER 60 s.
 * Closing *@listener resets it (and ends any linger).  -1 if this machine
 * has no IPv4 loopback.
 */
static int lingering_socket(int *listener)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct linger lg = {.l_onoff = 1, .l_linger = 60};
	socklen_t sl = sizeof(sa);
	int small = 4096, c, l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct pollfd p;
	char buf[4096];

	if (l < 0)
		return -1;
	setsockopt(l, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	if (bind(l, (struct sockaddr *)&sa, sizeof(sa)) || listen(l, 4) ||
	    getsockname(l, (struct sockaddr *)&sa, &sl)) {
		close(l);
		return -1;
	}
	c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(c >= 0);
	setsockopt(c, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	CHECK(!connect(c, (struct sockaddr *)&sa, sizeof(sa)));
	memset(buf, 0x5a, sizeof(buf));
	/* Fill both buffers: nobody reads, so the data can never be sent. */
	for (;;) {
		p = (struct pollfd){.fd = c, .events = POLLOUT};
		if (poll(&p, 1, 200) != 1)
			break;
		if (send(c, buf, sizeof(buf), MSG_DONTWAIT) < 0 && errno != EAGAIN)
			break;
	}
	CHECK(!setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)));
	*listener = l;
	return c;
}

/* --- the cases --- */

struct hostile_case {
	const char *name;
	/* Raw connection to a (or -1 with own_connection); the line the refusal must contain. */
	void (*fn)(int sock);
	bool own_connection;
	const char *expect;
};

static void vring_fd(int sock, uint32_t request, int fd)
{
	send_u64(sock, request, 0, &fd, 1);
	close(fd);
}

static void kick_pipe(int sock)
{
	int p[2];

	CHECK(!pipe2(p, O_CLOEXEC));
	/* Readable forever: as a kick fd it would spin a core. */
	CHECK(write(p[1], "x", 1) == 1);
	vring_fd(sock, VHOST_USER_SET_VRING_KICK, p[0]);
	close(p[1]);
}

static void kick_regular_file(int sock)
{
	vring_fd(sock, VHOST_USER_SET_VRING_KICK, memfd_sized(4096));
}

static void kick_semaphore(int sock)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_SEMAPHORE);

	CHECK(fd >= 0 && eventfd_write(fd, FULL_COUNT) == 0);
	vring_fd(sock, VHOST_USER_SET_VRING_KICK, fd);
}

static void call_socket(int sock)
{
	int sv[2];

	CHECK(!socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	vring_fd(sock, VHOST_USER_SET_VRING_CALL, sv[0]);
	close(sv[1]);
}

static void err_timerfd_like(int sock)
{
	/* Another anonymous inode: not an eventfd either. */
	int fd = epoll_create1(EPOLL_CLOEXEC);

	CHECK(fd >= 0);
	vring_fd(sock, VHOST_USER_SET_VRING_ERR, fd);
}

/* A lingering socket where no descriptor belongs: closed at once, linger or not. */
static void surplus_lingering_socket(int sock)
{
	int l, s = lingering_socket(&l);

	if (s < 0) {
		fprintf(stderr, "  (no IPv4 loopback: sending a socketpair instead)\n");
		call_socket(sock);
		return;
	}
	send_msg(sock, VHOST_USER_GET_FEATURES, NULL, 0, &s, 1);
	close(s);
	CHECK(vt_wait_eof(sock));
	b_still_serving();
	close(l);
}

/*
 * A refused message followed by one carrying a lingering socket that the
 * back-end never reads: it is released with the connection, and its
 * linger must not hold the event loop.
 */
static void unread_lingering_socket(int sock)
{
	int l, s = lingering_socket(&l);

	if (s < 0) {
		fprintf(stderr, "  (no IPv4 loopback: skipped)\n");
		send_u64(sock, VHOST_USER_SET_FEATURES, 1ull << 63, NULL, 0);
		return;
	}
	uint8_t wire[VHOST_USER_HDR_SIZE];
	struct iovec iov = {.iov_base = wire};
	int r;

	send_u64(sock, VHOST_USER_SET_FEATURES, 1ull << 63, NULL, 0);
	iov.iov_len = vt_wire(wire, VHOST_USER_GET_FEATURES, 0, 0, NULL, 0);
	r = vhost_user_sendv(sock, &iov, 1, &s, 1, 2000);
	if (r && r != -EPIPE && r != -ECONNRESET)
		FAIL("send: %s", strerror(-r));
	if (r) {
		/*
		 * The back-end hung up before our second message: the socket
		 * never left us, and its last close would be ours, lingering
		 * for a minute.  Reset its connection first.
		 */
		fprintf(stderr, "  (the back-end closed first: nothing left unread)\n");
		close(l);
		l = -1;
	}
	close(s);
	CHECK(vt_wait_eof(sock));
	/* The closer sleeps in that close; the loop and device b do not. */
	b_still_serving();
	if (ufd_closer_wait_idle(300))
		fprintf(stderr, "  (the kernel did not linger: nothing was at stake)\n");
	if (l >= 0)
		close(l); /* resets the connection: the lingering close returns */
}

static void mem_table_sparse_huge(int sock)
{
	/* 128 GiB of sparse memfd costs the front-end nothing. */
	uint64_t size = 128ull << 30;
	struct vhost_user_mem_table t = {
		.nregions = 1,
		.regions[0] = {REGION_BASE, size, REGION_BASE, 0},
	};
	int fd = memfd_sized(size);

	send_msg(sock, VHOST_USER_SET_MEM_TABLE, &t,
		 offsetof(struct vhost_user_mem_table, regions) + sizeof(t.regions[0]), &fd, 1);
	close(fd);
}

static void add_mem_reg_over_limit(int sock)
{
	uint64_t size = 40ull << 30;
	int fd = memfd_sized(size);

	send_u64(sock, VHOST_USER_SET_PROTOCOL_FEATURES,
		 1ull << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS, NULL, 0);
	for (uint64_t i = 0; i < 2; i++) {
		struct vhost_user_mem_reg m = {
			.region = {REGION_BASE + i * size, size, REGION_BASE + i * size, 0}};

		/* The first fits in 64 GiB, the second does not. */
		send_msg(sock, VHOST_USER_ADD_MEM_REG, &m, sizeof(m), &fd, 1);
	}
	close(fd);
}

static void short_get_config(int sock)
{
	struct vhost_user_config c = {.offset = 0, .size = 16};

	send_u64(sock, VHOST_USER_SET_PROTOCOL_FEATURES, 1ull << VHOST_USER_PROTOCOL_F_CONFIG, NULL,
		 0);
	send_msg(sock, VHOST_USER_GET_CONFIG, &c, 16, NULL, 0);
}

/*
 * The call fd and the err fd are eventfds at 0xfffffffffffffffe with
 * O_NONBLOCK cleared (after we set it: the file description is shared),
 * so a plain write would sleep until the front-end reads - never.
 */
static void full_call_and_err(int sock)
{
	struct vu_fe *fe = vt_connect(path_a, 1, 64, VT_FEATURES_SPLIT | VT_FEATURES_EVENT_IDX, 0);
	int call = efd_full(false), err = efd_full(false);
	uint64_t before = atomic_load(&echo_a.requests);
	struct vhost_user_msg reply;
	uint8_t wire[VHOST_USER_HDR_SIZE];
	struct vt_io io = {
		.fe = fe,
		.queue = 0,
		.area_len = 8 * VT_SLOT_SIZE,
		.depth = 8,
		.nreq = 8,
		.seed = 3,
		.submit_only = true,
	};

	CHECK(fe_request_acked(fe, VHOST_USER_SET_VRING_CALL, 0, &call, 1));
	CHECK(fe_request_acked(fe, VHOST_USER_SET_VRING_ERR, 0, &err, 1));
	CHECK(!fcntl(call, F_SETFL, 0));
	CHECK(!fcntl(err, F_SETFL, 0));

	/* The device completes them and signals the full call fd, once per burst. */
	io.area = vu_fe_alloc(fe, io.area_len, 4096);
	CHECK(io.area);
	vt_io_run(&io);
	for (int i = 0; i < 500 && atomic_load(&echo_a.requests) < before + 8; i++)
		usleep(10000);
	CHECK(atomic_load(&echo_a.requests) >= before + 8);
	ping(fe, "device a");
	b_still_serving();

	/* Broken: the loop signals the full err fd. */
	vu_dev_set_broken(dev_a, "test: signal the err fd");
	CHECK_EQ(vu_fe_send_raw(fe, wire, vt_wire(wire, VHOST_USER_GET_STATUS, 0, 0, NULL, 0), NULL,
				0, &reply, sizeof(reply)),
		 0);
	CHECK(reply.payload.u64 & VIRTIO_STATUS_NEEDS_RESET);
	b_still_serving();

	/* Stopping the queue cancels the write that sleeps on the full counter. */
	vu_fe_disconnect(fe);
	close(call);
	close(err);
}

/* --- guest memory that faults (SIGBUS) --- */

#define SHRINK_SIZE (1u << 20)
#define HUGE_SIZE   (2u << 20)

/* GET_STATUS on a front-end's connection. */
static uint8_t fe_status(struct vu_fe *fe)
{
	uint8_t status;

	CHECK_EQ(vu_fe_get_status(fe, &status), 0);
	return status;
}

/* Device a says NEEDS_RESET within 5 s. */
static void fe_wait_needs_reset(struct vu_fe *fe)
{
	for (int i = 0; i < 500; i++) {
		if (fe_status(fe) & VIRTIO_STATUS_NEEDS_RESET)
			return;
		usleep(10000);
	}
	FAIL("device a: no NEEDS_RESET 5 s after its memory went away");
}

static int memfd_unsealed(size_t size)
{
	int fd = memfd_create("shrinking", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	CHECK(fd >= 0 && !ftruncate(fd, (off_t)size));
	return fd;
}

/* A file on tmpfs (/dev/shm), already unlinked; -1 if there is none. */
static int tmpfs_file(size_t size)
{
	char name[] = "/dev/shm/vhostd-sigbus-XXXXXX";
	int fd = mkostemp(name, O_CLOEXEC);

	if (fd < 0)
		return -1;
	unlink(name);
	CHECK(!ftruncate(fd, (off_t)size));
	return fd;
}

/*
 * A sealed hugetlbfs memfd of one 2 MiB page that the host cannot supply,
 * or -1 with the reason in @why: the back-end maps it (MAP_NORESERVE), and
 * its first touch faults.
 */
static int hugetlb_unsupplied(char *why, size_t len)
{
	static const char *const knobs[] = {
		"/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages",
		"/sys/kernel/mm/hugepages/hugepages-2048kB/nr_overcommit_hugepages",
	};
	int fd;

	for (unsigned int i = 0; i < 2; i++) {
		FILE *f = fopen(knobs[i], "r");
		unsigned long v = 0;
		bool ok = f && fscanf(f, "%lu", &v) == 1;

		if (f)
			fclose(f);
		if (!ok) {
			snprintf(why, len, "no 2 MiB huge pages on this kernel (%s)", knobs[i]);
			return -1;
		}
		if (v) {
			snprintf(why, len, "%s is %lu: the host can supply the page", knobs[i], v);
			return -1;
		}
	}
	fd = memfd_create("huge", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB);
	if (fd < 0) {
		snprintf(why, len, "memfd_create(MFD_HUGETLB): %s", strerror(errno));
		return -1;
	}
	if (ftruncate(fd, HUGE_SIZE) ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)) {
		snprintf(why, len, "sizing or sealing a hugetlb memfd: %s", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * A front-end I/O run whose every buffer lies in the hostile region: the
 * rings are in the front-end's own sealed memory, and this process never
 * touches the hostile file (it would fault here too).  Echo requests go
 * round as fast as they complete; the data is not checked (after the
 * fault the device reads zeroes), only that completions stop.
 */
struct hostile_io {
	struct vu_fe *fe;
	uint64_t gpa; /* the hostile region's guest address */
	atomic_bool stop;
	atomic_uint_least64_t completed;
};

#define HOSTILE_SLOTS 8

static void *hostile_io_thread(void *arg)
{
	struct hostile_io *h = arg;
	struct virtq_drv *drv = vu_fe_queue(h->fe, 0);
	bool busy[HOSTILE_SLOTS] = {false};

	while (!atomic_load(&h->stop)) {
		bool added = false;
		uintptr_t token;

		for (uintptr_t i = 0; i < HOSTILE_SLOTS; i++) {
			struct virtq_sg sg[2] = {
				{h->gpa + i * 2 * VT_SLOT_SIZE, VT_SLOT_SIZE},
				{h->gpa + (i * 2 + 1) * VT_SLOT_SIZE, VT_SLOT_SIZE},
			};

			if (busy[i] || virtq_drv_add_sgs(drv, sg, 1, 1, (void *)(i + 1)))
				continue;
			busy[i] = added = true;
		}
		if (added)
			CHECK(vu_fe_kick(h->fe, 0) >= 0);
		while ((token = (uintptr_t)virtq_drv_get_buf(drv, NULL))) {
			busy[token - 1] = false;
			atomic_fetch_add(&h->completed, 1);
		}
		CHECK(!virtq_drv_is_broken(drv));
		/* Once the device is broken nothing completes: wait in slices, to see stop. */
		if (virtq_drv_enable_cb(drv))
			vu_fe_wait_call(h->fe, 0, 100);
	}
	return NULL;
}

/* ADD_MEM_REG of @fd at @gpa (the same user address) on a live front-end; true if acked. */
static bool fe_add_region(struct vu_fe *fe, uint64_t gpa, uint64_t size, int fd)
{
	struct vhost_user_mem_reg m = {.region = {gpa, size, gpa, 0}};
	uint8_t wire[VHOST_USER_HDR_SIZE + sizeof(m)];
	struct vhost_user_msg reply;

	if (vu_fe_send_raw(fe, wire,
			   vt_wire(wire, VHOST_USER_ADD_MEM_REG, VHOST_USER_NEED_REPLY_MASK,
				   sizeof(m), &m, sizeof(m)),
			   &fd, 1, &reply, sizeof(reply)))
		return false;
	return reply.payload.u64 == 0;
}

/*
 * Device a runs I/O on memory in @fd (@size bytes), then it faults:
 * truncated to nothing if @shrink, else it faults on first touch (a huge
 * page nobody can supply).  The daemon lives, a says NEEDS_RESET and
 * nothing of it completes any more, b serves throughout.
 */
static void memory_fault_under_io(int fd, size_t size, bool shrink)
{
	struct vu_fe *fe = vt_connect(path_a, 1, 64, VT_FEATURES_SPLIT | VT_FEATURES_EVENT_IDX, 0);
	/* An address range of our own, so that the region overlaps nothing of the front-end's. */
	void *va = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	struct hostile_io h = {.fe = fe};
	uint64_t before = atomic_load(&echo_a.requests), done;
	pthread_t t;

	CHECK(va != MAP_FAILED);
	h.gpa = (uintptr_t)va;
	CHECK(fe_add_region(fe, h.gpa, size, fd));
	CHECK(!pthread_create(&t, NULL, hostile_io_thread, &h));
	if (shrink) {
		/* I/O on the doomed memory really runs before it goes. */
		for (int i = 0; i < 500 && atomic_load(&echo_a.requests) < before + 256; i++)
			usleep(10000);
		CHECK(atomic_load(&echo_a.requests) >= before + 256);
		CHECK(!ftruncate(fd, 0));
	}
	fe_wait_needs_reset(fe);
	b_still_serving();

	/* Broken means stopped: nothing of a's completes any more. */
	done = atomic_load(&h.completed);
	usleep(200000);
	CHECK_EQ(atomic_load(&h.completed), done);
	ping(fe, "device a");

	atomic_store(&h.stop, true);
	pthread_join(t, NULL);
	vu_fe_disconnect(fe);
	close(fd);
	munmap(va, size);
}

static void shrink_memfd_under_io(int sock)
{
	memory_fault_under_io(memfd_unsealed(SHRINK_SIZE), SHRINK_SIZE, true);
}

static void shrink_tmpfs_under_io(int sock)
{
	int fd = tmpfs_file(SHRINK_SIZE);

	if (fd < 0) {
		/* The one line the case expects, so the rest of it still runs. */
		fprintf(stderr, "  (skipped: no tmpfs at /dev/shm: %s)\n", strerror(errno));
		vu_dev_set_broken(dev_a, "test: is gone (skipped)");
		return;
	}
	memory_fault_under_io(fd, SHRINK_SIZE, true);
}

static void hugetlb_no_page(int sock)
{
	char why[160];
	int fd = hugetlb_unsupplied(why, sizeof(why));

	if (fd < 0) {
		fprintf(stderr, "  (skipped: %s)\n", why);
		vu_dev_set_broken(dev_a, "test: is gone (skipped)");
		return;
	}
	memory_fault_under_io(fd, HUGE_SIZE, false);
}

/* A raw request with NEED_REPLY; its reply's u64 (the ack: 0 is success). */
static uint64_t raw_request(int sock, uint32_t request, const void *payload, uint32_t size,
			    const int *fds, unsigned int nfds)
{
	uint8_t wire[VHOST_USER_HDR_SIZE + VHOST_USER_MAX_PAYLOAD];
	struct vhost_user_rx rx;
	uint64_t v;

	send_bytes(sock, wire,
		   vt_wire(wire, request, VHOST_USER_NEED_REPLY_MASK, size, payload, size), fds,
		   nfds);
	vhost_user_rx_init(&rx);
	CHECK_EQ(vhost_user_recv(sock, &rx, 5000), 1);
	CHECK_EQ(rx.msg.hdr.request, request);
	v = rx.msg.payload.u64;
	vhost_user_rx_reset(&rx);
	return v;
}

/*
 * The memfd shrinks between SET_MEM_TABLE and the ring's set-up, so the
 * first touch is the loop thread's own: virtq_init() clearing the used
 * ring's flags when SET_VRING_ENABLE makes the ring ready.  Then: the
 * ring stays down across a reset, and comes back with a new memory table.
 */
static void shrink_before_rings(int sock)
{
	struct vhost_user_mem_table t = {
		.nregions = 1,
		.regions[0] = {REGION_BASE, SHRINK_SIZE, REGION_BASE, 0},
	};
	struct vhost_user_vring_addr addr = {
		.index = 0,
		.desc = REGION_BASE,
		.avail = REGION_BASE + 0x1000,
		.used = REGION_BASE + 0x2000,
	};
	struct vhost_user_vring_state num = {0, 64}, enable = {0, 1};
	int fd = memfd_unsealed(SHRINK_SIZE), kick = eventfd(0, EFD_CLOEXEC);
	unsigned int starts;

	sock = vt_raw_connect(path_a);
	CHECK(kick >= 0);
	send_msg(sock, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0);
	send_u64(sock, VHOST_USER_SET_FEATURES,
		 VT_FEATURES_SPLIT | 1ull << VHOST_USER_F_PROTOCOL_FEATURES, NULL, 0);
	send_u64(sock, VHOST_USER_SET_PROTOCOL_FEATURES,
		 1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK | 1ull << VHOST_USER_PROTOCOL_F_STATUS,
		 NULL, 0);
	CHECK_EQ(raw_request(sock, VHOST_USER_SET_MEM_TABLE, &t,
			     offsetof(struct vhost_user_mem_table, regions) + sizeof(t.regions[0]),
			     &fd, 1),
		 0);
	CHECK(!ftruncate(fd, 0));
	CHECK_EQ(raw_request(sock, VHOST_USER_SET_VRING_NUM, &num, sizeof(num), NULL, 0), 0);
	CHECK_EQ(raw_request(sock, VHOST_USER_SET_VRING_ADDR, &addr, sizeof(addr), NULL, 0), 0);
	CHECK_EQ(raw_request(sock, VHOST_USER_SET_VRING_KICK, &(uint64_t){0}, 8, &kick, 1), 0);
	/* Ready now: the ring starts, and its set-up faults on the loop thread. */
	CHECK_EQ(raw_request(sock, VHOST_USER_SET_VRING_ENABLE, &enable, sizeof(enable), NULL, 0),
		 0);
	for (int i = 0; i < 500; i++) {
		if (raw_request(sock, VHOST_USER_GET_STATUS, NULL, 0, NULL, 0) &
		    VIRTIO_STATUS_NEEDS_RESET)
			break;
		CHECK(i < 499);
		usleep(10000);
	}
	b_still_serving();

	/*
	 * A reset (every ring stopped) is not enough: the memory is still
	 * gone, so the ring set up again does not start, and the device
	 * still needs a reset...
	 */
	starts = atomic_load(&echo_a.starts);
	raw_request(sock, VHOST_USER_GET_VRING_BASE, &num, sizeof(num), NULL, 0);
	CHECK_EQ(raw_request(sock, VHOST_USER_SET_VRING_KICK, &(uint64_t){0}, 8, &kick, 1), 0);
	CHECK(raw_request(sock, VHOST_USER_GET_STATUS, NULL, 0, NULL, 0) &
	      VIRTIO_STATUS_NEEDS_RESET);
	CHECK_EQ(atomic_load(&echo_a.starts), starts);
	/* ... until a memory table with a fresh memfd: then the ring runs again. */
	close(fd);
	fd = memfd_unsealed(SHRINK_SIZE);
	CHECK_EQ(raw_request(sock, VHOST_USER_SET_MEM_TABLE, &t,
			     offsetof(struct vhost_user_mem_table, regions) + sizeof(t.regions[0]),
			     &fd, 1),
		 0);
	CHECK(!(raw_request(sock, VHOST_USER_GET_STATUS, NULL, 0, NULL, 0) &
		VIRTIO_STATUS_NEEDS_RESET));
	CHECK_EQ(atomic_load(&echo_a.starts), starts + 1);

	close(sock);
	close(fd);
	close(kick);
}

static const struct hostile_case cases[] = {
	{"kick-pipe", kick_pipe, false, "kick fd is a pipe"},
	{"kick-regular-file", kick_regular_file, false, "kick fd is a memory file"},
	{"kick-semaphore-eventfd", kick_semaphore, false, "kick fd is a semaphore-mode eventfd"},
	{"call-socket", call_socket, false, "call fd is a socket"},
	{"err-anon-inode", err_timerfd_like, false, "err fd is an anonymous inode"},
	{"surplus-lingering-socket", surplus_lingering_socket, false, "file descriptors attached"},
	{"unread-lingering-socket", unread_lingering_socket, false, "were never offered"},
	{"mem-table-beyond-max", mem_table_sparse_huge, false, "max-guest-memory=64 GiB"},
	{"add-mem-reg-beyond-max", add_mem_reg_over_limit, false, "max-guest-memory=64 GiB"},
	{"short-get-config", short_get_config, false, "holds 4 after the 12-byte config header"},
	{"full-call-and-err", full_call_and_err, true, "device needs reset"},
	{"shrink-memfd-under-io", shrink_memfd_under_io, true, "is gone"},
	{"shrink-tmpfs-under-io", shrink_tmpfs_under_io, true, "is gone"},
	{"shrink-memfd-before-rings", shrink_before_rings, true, "is gone"},
	{"hugetlb-no-page", hugetlb_no_page, true, "is gone"},
};

static void run_case(const struct hostile_case *c)
{
	char log[16384];
	struct vt_capture cap;
	int fds = vt_count_fds();

	fprintf(stderr, "case %s\n", c->name);
	vt_capture_start(&cap);
	if (c->own_connection) {
		c->fn(-1);
	} else {
		int sock = vt_raw_connect(path_a);

		c->fn(sock);
		if (!vt_wait_eof(sock))
			FAIL("%s: the back-end did not close the connection", c->name);
		close(sock);
	}
	vt_wait_disconnected(dev_a);
	b_still_serving();
	vt_capture_stop(&cap, log, sizeof(log));

	if (vt_count_problems(log) != 1)
		FAIL("%s: %u error lines, expected exactly one", c->name, vt_count_problems(log));
	if (!strstr(log, c->expect))
		FAIL("%s: no line says \"%s\"", c->name, c->expect);
	CHECK_EQ(vt_count_fds(), fds);

	/* Device a takes a new front-end that moves data. */
	vt_session(path_a, 1, VT_FEATURES_SPLIT | VT_FEATURES_EVENT_IDX, 64);
	vt_wait_disconnected(dev_a);
	CHECK_EQ(vt_count_fds(), fds);
	CHECK_EQ(atomic_load(&echo_a.starts), atomic_load(&echo_a.stops));
}

int main(int argc, char **argv)
{
	size_t n = sizeof(cases) / sizeof(cases[0]), ran = 0;
	atomic_bool stop_b = false;
	struct vt_io io_b;
	pthread_t thread_b;

	if (argc == 2 && !strcmp(argv[1], "--list")) {
		for (size_t i = 0; i < n; i++)
			printf("%s\n", cases[i].name);
		return 0;
	}

	vt_tmpdir_init();
	path_a = vt_path("a.sock");
	path_b = vt_path("b.sock");
	echo_dev_init(&echo_a);
	echo_dev_init(&echo_b);
	vt_loop_init(&loop);
	dev_a = vt_echo_server(&loop, &echo_a, path_a, 1, 256);
	dev_b = vt_echo_server(&loop, &echo_b, path_b, 1, 256);
	vt_loop_start(&loop);

	/* Device b: verified I/O all along, failing on any 5 s wait. */
	fe_b = vt_connect(path_b, 1, 64, VT_FEATURES_SPLIT | VT_FEATURES_EVENT_IDX, 0);
	io_b = (struct vt_io){
		.fe = fe_b,
		.queue = 0,
		.area_len = 8 * VT_SLOT_SIZE,
		.depth = 8,
		.stop = &stop_b,
		.seed = 11,
	};
	io_b.area = vu_fe_alloc(fe_b, io_b.area_len, 4096);
	CHECK(io_b.area);
	CHECK(!pthread_create(&thread_b, NULL, vt_io_thread, &io_b));
	/* b's first interrupt sets up its signalling ring: count fds after it. */
	b_still_serving();

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

	atomic_store(&stop_b, true);
	pthread_join(thread_b, NULL);
	CHECK(io_b.completed > 0);
	vu_fe_disconnect(fe_b);
	vt_wait_disconnected(dev_b);
	vt_loop_stop(&loop);
	vu_dev_free(dev_a);
	vu_dev_free(dev_b);
	evloop_free(loop.loop);
	vt_tmpdir_cleanup();
	fprintf(stderr, "ok: %zu cases, device b completed %llu requests\n", ran,
		(unsigned long long)io_b.completed);
	return 0;
}
