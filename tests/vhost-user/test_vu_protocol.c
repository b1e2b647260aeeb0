// SPDX-License-Identifier: MIT
/*
 * test_vu_protocol.c - the back-end and the front-end end to end.
 *
 * A front-end negotiates with a back-end that serves the echo device,
 * shares memory and drives two queues at once from two threads; every
 * request's bytes come back checked.  Run over split and packed rings,
 * with and without EVENT_IDX and indirect descriptors, with more requests
 * in flight than the ring holds.  Also: the replies of GET_CONFIG,
 * GET_STATUS, GET_MAX_MEM_SLOTS and GET_QUEUE_NUM, REPLY_ACK acks, client
 * mode with reconnection, a device that breaks and is reset, and that
 * every queue started is stopped.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "vu_test.h"

static struct vt_loop loop;
static struct echo_dev echo;
static struct vu_dev *dev;
static const char *sock_path;

struct mode {
	const char *name;
	uint64_t features;
	unsigned int indirect_max;
	uint16_t queue_size;
	unsigned int depth;
};

static const struct mode modes[] = {
	{"split", VT_FEATURES_SPLIT, 0, 64, 16},
	{"split+event_idx", VT_FEATURES_SPLIT | VT_FEATURES_EVENT_IDX, 0, 64, 48},
	{"split+indirect", VT_FEATURES_SPLIT | VT_FEATURES_INDIRECT, 4, 32, 32},
	/* More in flight than the ring holds: add_sgs must hit -ENOSPC and recover. */
	{"split+event_idx+indirect",
	 VT_FEATURES_SPLIT | VT_FEATURES_EVENT_IDX | VT_FEATURES_INDIRECT, 4, 16, 64},
	{"packed", VT_FEATURES_SPLIT | VT_FEATURES_PACKED, 0, 64, 16},
	{"packed+event_idx", VT_FEATURES_SPLIT | VT_FEATURES_PACKED | VT_FEATURES_EVENT_IDX, 0, 50,
	 40},
	{"packed+indirect", VT_FEATURES_SPLIT | VT_FEATURES_PACKED | VT_FEATURES_INDIRECT, 4, 64,
	 16},
	{"packed+event_idx+indirect",
	 VT_FEATURES_SPLIT | VT_FEATURES_PACKED | VT_FEATURES_EVENT_IDX | VT_FEATURES_INDIRECT, 4,
	 16, 64},
};

/* A request through vu_fe_send_raw() and its reply (a struct vhost_user_msg). */
static struct vhost_user_msg raw_request(struct vu_fe *fe, uint32_t request, uint32_t flags,
					 const void *payload, uint32_t size)
{
	uint8_t wire[VHOST_USER_HDR_SIZE + VHOST_USER_MAX_PAYLOAD];
	struct vhost_user_msg reply;
	size_t len = vt_wire(wire, request, flags, size, payload, size);

	memset(&reply, 0, sizeof(reply));
	CHECK_EQ(vu_fe_send_raw(fe, wire, len, NULL, 0, &reply, sizeof(reply)), 0);
	CHECK_EQ(reply.hdr.request, request);
	CHECK_EQ(reply.hdr.flags, VHOST_USER_VERSION | VHOST_USER_REPLY_MASK);
	return reply;
}

static void check_control_plane(struct vu_fe *fe)
{
	uint8_t config[VT_CONFIG_SIZE];
	struct vhost_user_msg r;

	CHECK_EQ(vu_fe_get_config(fe, config, sizeof(config)), 0);
	CHECK(!memcmp(config, echo.config, sizeof(config)));

	r = raw_request(fe, VHOST_USER_GET_STATUS, 0, NULL, 0);
	CHECK_EQ(r.hdr.size, 8);
	CHECK(r.payload.u64 & VIRTIO_STATUS_DRIVER_OK);
	CHECK_EQ(atomic_load(&echo.status), r.payload.u64);

	r = raw_request(fe, VHOST_USER_GET_MAX_MEM_SLOTS, 0, NULL, 0);
	CHECK_EQ(r.payload.u64, MEMMAP_MAX_REGIONS);
	r = raw_request(fe, VHOST_USER_GET_QUEUE_NUM, 0, NULL, 0);
	CHECK_EQ(r.payload.u64, 2);

	/* REPLY_ACK: a message without a reply of its own gets a u64 0 when asked. */
	r = raw_request(fe, VHOST_USER_SET_OWNER, VHOST_USER_NEED_REPLY_MASK, NULL, 0);
	CHECK_EQ(r.hdr.size, 8);
	CHECK_EQ(r.payload.u64, 0);
	/* ...and non-zero for a well-formed request the device refuses. */
	{
		struct {
			uint32_t offset, size, flags;
			uint8_t data[4];
		} __attribute__((packed)) cfg = {.offset = VT_CONFIG_SIZE, .size = 4};

		r = raw_request(fe, VHOST_USER_SET_CONFIG, VHOST_USER_NEED_REPLY_MASK, &cfg,
				sizeof(cfg));
		CHECK_EQ(r.hdr.size, 8);
		CHECK(r.payload.u64 != 0);
	}
}

static void run_mode(const struct mode *m)
{
	unsigned int starts = atomic_load(&echo.starts);
	uint64_t requests = atomic_load(&echo.requests);
	int fds = vt_count_fds();
	struct vt_io io[2];
	pthread_t thr[2];
	struct vu_fe *fe;
	uint64_t want = m->features | 1ull << VHOST_USER_F_PROTOCOL_FEATURES;

	fprintf(stderr, "mode %s (queue size %u, depth %u)\n", m->name, m->queue_size, m->depth);
	fe = vt_connect(sock_path, 0, m->queue_size, m->features, m->indirect_max);
	CHECK_EQ(vu_fe_num_queues(fe), 2);
	CHECK_EQ(vu_fe_features(fe), want);
	CHECK_EQ(echo.features, m->features);

	for (unsigned int q = 0; q < 2; q++) {
		io[q] = (struct vt_io){
			.fe = fe,
			.queue = q,
			.area_len = (size_t)m->depth * VT_SLOT_SIZE,
			.depth = m->depth,
			.nreq = 3000,
			.seed = 1000 + q,
		};
		io[q].area = vu_fe_alloc(fe, io[q].area_len, 4096);
		CHECK(io[q].area);
	}
	for (unsigned int q = 0; q < 2; q++)
		CHECK(!pthread_create(&thr[q], NULL, vt_io_thread, &io[q]));
	for (unsigned int q = 0; q < 2; q++) {
		pthread_join(thr[q], NULL);
		CHECK_EQ(io[q].completed, 3000);
	}
	CHECK_EQ(atomic_load(&echo.requests) - requests, 6000);
	CHECK_EQ(atomic_load(&echo.starts) - starts, 2);

	check_control_plane(fe);

	/*
	 * GET_VRING_BASE: split, the count of chains consumed; packed, a slot
	 * inside the ring plus its wrap counter (chains take 1-5 slots).
	 */
	{
		uint16_t base;

		CHECK_EQ(vu_fe_stop_queue(fe, 0, &base), 0);
		if (m->features & VT_FEATURES_PACKED)
			CHECK((base & 0x7fff) < m->queue_size);
		else
			CHECK_EQ(base, 3000);
	}
	vu_fe_disconnect(fe);
	vt_wait_disconnected(dev);
	CHECK_EQ(atomic_load(&echo.starts), atomic_load(&echo.stops));
	CHECK_EQ(vt_count_fds(), fds);
}

/*
 * A hostile chain: the device marks itself broken (vu_dev_set_broken from
 * its queue thread), the back-end stops every ring, signals SET_VRING_ERR's
 * eventfd and reports NEEDS_RESET; stopping every ring, as QEMU does on a
 * guest reset, clears it.
 */
static void test_broken_device(void)
{
	int fds = vt_count_fds();
	struct vu_fe *fe = vt_connect(sock_path, 2, 64, VT_FEATURES_SPLIT, 0);
	int err_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct virtq_sg sg = {.addr = 0x10, .len = 64}; /* outside every region */
	struct pollfd pfd = {.fd = err_fd, .events = POLLIN};
	uint8_t wire[VHOST_USER_HDR_SIZE + 8];
	uint64_t ring = 1;
	struct vhost_user_msg r;
	static int token;

	fprintf(stderr, "broken device\n");
	memset(&r, 0, sizeof(r));
	CHECK_EQ(vu_fe_send_raw(fe, wire,
				vt_wire(wire, VHOST_USER_SET_VRING_ERR, VHOST_USER_NEED_REPLY_MASK,
					8, &ring, 8),
				&err_fd, 1, &r, sizeof(r)),
		 0);
	CHECK_EQ(r.payload.u64, 0);

	CHECK_EQ(virtq_drv_add_sgs(vu_fe_queue(fe, 0), &sg, 1, 0, &token), 0);
	CHECK_EQ(vu_fe_kick(fe, 0) < 0, 0);
	CHECK_EQ(poll(&pfd, 1, 2000), 1);

	r = raw_request(fe, VHOST_USER_GET_STATUS, 0, NULL, 0);
	CHECK(r.payload.u64 & VIRTIO_STATUS_NEEDS_RESET);
	CHECK_EQ(atomic_load(&echo.starts), atomic_load(&echo.stops));

	CHECK_EQ(vu_fe_stop_queue(fe, 0, NULL), 0);
	CHECK_EQ(vu_fe_stop_queue(fe, 1, NULL), 0);
	r = raw_request(fe, VHOST_USER_GET_STATUS, 0, NULL, 0);
	CHECK(!(r.payload.u64 & VIRTIO_STATUS_NEEDS_RESET));

	vu_fe_disconnect(fe);
	close(err_fd);
	vt_wait_disconnected(dev);
	CHECK_EQ(vt_count_fds(), fds);
	vt_session(sock_path, 2, VT_FEATURES_SPLIT, 100);
	vt_wait_disconnected(dev);
}

/*
 * SET_STATUS 0 resets the device (virtio 2.1.2): every ring stops and stays
 * stopped until the front-end sets it up again or writes DRIVER_OK, rather
 * than being restarted on its old settings by the readiness check that runs
 * after the message.
 */
static void test_status_reset(void)
{
	int fds = vt_count_fds();
	struct vu_fe *fe = vt_connect(sock_path, 2, 64, VT_FEATURES_SPLIT, 0);
	uint64_t status = 0;
	struct vhost_user_msg r;

	fprintf(stderr, "status reset\n");
	CHECK_EQ(atomic_load(&echo.starts) - atomic_load(&echo.stops), 2);

	/* The ack comes once the rings have settled (after the readiness check). */
	r = raw_request(fe, VHOST_USER_SET_STATUS, VHOST_USER_NEED_REPLY_MASK, &status, 8);
	CHECK_EQ(r.payload.u64, 0);
	CHECK_EQ(atomic_load(&echo.starts), atomic_load(&echo.stops));
	r = raw_request(fe, VHOST_USER_GET_STATUS, 0, NULL, 0);
	CHECK_EQ(r.payload.u64, 0);

	status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
		 VIRTIO_STATUS_DRIVER_OK;
	r = raw_request(fe, VHOST_USER_SET_STATUS, VHOST_USER_NEED_REPLY_MASK, &status, 8);
	CHECK_EQ(r.payload.u64, 0);
	CHECK_EQ(atomic_load(&echo.starts) - atomic_load(&echo.stops), 2);

	vu_fe_disconnect(fe);
	vt_wait_disconnected(dev);
	CHECK_EQ(atomic_load(&echo.starts), atomic_load(&echo.stops));
	CHECK_EQ(vt_count_fds(), fds);
}

/* The back-end connects to us, and again after we hang up or go away. */
static void test_client_mode(void)
{
	const char *path = vt_path("client.sock");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct echo_dev e2;
	struct vu_dev *cdev;
	struct vt_loop l2;
	int lfd, conn;

	fprintf(stderr, "client mode\n");
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(lfd >= 0);
	CHECK(!bind(lfd, (struct sockaddr *)&sa, sizeof(sa)));
	CHECK(!listen(lfd, 4));

	echo_dev_init(&e2);
	vt_loop_init(&l2);
	{
		struct vu_dev_config cfg = {
			.name = "echo-client",
			.socket_path = path,
			.client = true,
			.num_queues = 1,
			.ops = &echo_ops,
			.opaque = &e2,
			.watch = &vu_evloop_watch_ops,
			.loop = l2.loop,
		};

		cdev = vu_dev_new(&cfg);
		CHECK(cdev);
	}
	vt_loop_start(&l2);

	for (int round = 0; round < 3; round++) {
		struct pollfd pfd = {.fd = lfd, .events = POLLIN};
		struct vhost_user_msg msg;
		struct vhost_user_rx rx;

		if (round == 2) {
			/* The front-end goes away entirely and comes back later. */
			close(lfd);
			unlink(path);
			usleep(300 * 1000);
			lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
			CHECK(!bind(lfd, (struct sockaddr *)&sa, sizeof(sa)));
			CHECK(!listen(lfd, 4));
			pfd.fd = lfd;
		}
		/* Backoff tops out at 5 s. */
		CHECK_EQ(poll(&pfd, 1, 8000), 1);
		conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		CHECK(conn >= 0);

		vhost_user_msg_init(&msg, VHOST_USER_GET_FEATURES, 0, 0);
		CHECK_EQ(vhost_user_send(conn, &msg, NULL, 0, 1000), 0);
		vhost_user_rx_init(&rx);
		CHECK_EQ(vhost_user_recv(conn, &rx, 5000), 1);
		CHECK_EQ(rx.msg.hdr.request, VHOST_USER_GET_FEATURES);
		CHECK(rx.msg.payload.u64 & (1ull << VHOST_USER_F_PROTOCOL_FEATURES));
		CHECK(vu_dev_connected(cdev));
		/* Hang up: the next round's accept proves it noticed and came back. */
		close(conn);
	}

	vt_loop_stop(&l2);
	vu_dev_free(cdev);
	evloop_free(l2.loop);
	close(lfd);
}

int main(void)
{
	dev = vt_echo_start(&loop, &echo, &sock_path, 2, 256);

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		run_mode(&modes[i]);
	test_broken_device();
	test_status_reset();
	test_client_mode();

	vt_echo_stop(&loop, dev);
	fprintf(stderr, "ok\n");
	return 0;
}
