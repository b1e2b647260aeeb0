// SPDX-License-Identifier: MIT
/*
 * test_vu_reconnect.c - connections that end while requests are in flight.
 *
 * Three ways a session ends mid-I/O, each followed by a new front-end that
 * must get a clean device and move data:
 *   clean     the front-end stops its rings (GET_VRING_BASE) and leaves
 *             with requests still queued;
 *   dropped   the back-end drops the connection (a malformed message)
 *             while two threads keep both queues full;
 *   crashed   a front-end process dies (_exit) with requests queued: the
 *             back-end sees EOF, stops its rings and unmaps memory that
 *             only it still maps.
 * Then many short sessions in a row.  After each: every started queue was
 * stopped and no descriptor is left open.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vu_test.h"

static struct vt_loop loop;
static struct echo_dev echo;
static struct vu_dev *dev;
static const char *sock_path;

#define FEATURES (VT_FEATURES_SPLIT | VT_FEATURES_EVENT_IDX | VT_FEATURES_INDIRECT)

static void check_clean(int fds)
{
	vt_wait_disconnected(dev);
	CHECK_EQ(atomic_load(&echo.starts), atomic_load(&echo.stops));
	CHECK_EQ(vt_count_fds(), fds);
	/* The next front-end gets a working device. */
	vt_session(sock_path, 2, FEATURES, 200);
	vt_wait_disconnected(dev);
	CHECK_EQ(atomic_load(&echo.starts), atomic_load(&echo.stops));
	CHECK_EQ(vt_count_fds(), fds);
}

/* Fill both queues without waiting for completions. */
static void post_batch(struct vu_fe *fe, uint64_t seed)
{
	for (unsigned int q = 0; q < 2; q++) {
		struct vt_io io = {
			.fe = fe,
			.queue = q,
			.area_len = 32 * VT_SLOT_SIZE,
			.depth = 32,
			.nreq = 32,
			.seed = seed + q,
			.submit_only = true,
		};

		io.area = vu_fe_alloc(fe, io.area_len, 4096);
		CHECK(io.area);
		vt_io_run(&io);
	}
}

static void test_clean_mid_io(void)
{
	int fds = vt_count_fds();

	fprintf(stderr, "clean disconnect with requests queued\n");
	for (int i = 0; i < 10; i++) {
		/* Packed on odd rounds: both layouts give their base back. */
		struct vu_fe *fe = vt_connect(sock_path, 2, 64,
					      FEATURES | (i & 1 ? VT_FEATURES_PACKED : 0), 4);

		post_batch(fe, 100 + i);
		vu_fe_disconnect(fe);
	}
	check_clean(fds);
}

static void test_dropped_mid_io(void)
{
	int fds = vt_count_fds();
	struct vu_fe *fe = vt_connect(sock_path, 2, 64, FEATURES, 4);
	atomic_bool stop = false;
	struct vt_io io[2];
	pthread_t thr[2];
	uint8_t wire[VHOST_USER_HDR_SIZE];
	struct vhost_user_msg reply;
	struct vt_capture cap;
	char log[4096];

	fprintf(stderr, "back-end drops the connection under load\n");
	for (unsigned int q = 0; q < 2; q++) {
		io[q] = (struct vt_io){.fe = fe,
				       .queue = q,
				       .area_len = 32 * VT_SLOT_SIZE,
				       .depth = 32,
				       .stop = &stop,
				       .tolerate_loss = true,
				       .seed = 7 + q};
		io[q].area = vu_fe_alloc(fe, io[q].area_len, 4096);
		CHECK(io[q].area);
	}
	for (unsigned int q = 0; q < 2; q++)
		CHECK(!pthread_create(&thr[q], NULL, vt_io_thread, &io[q]));
	usleep(100 * 1000);

	/* Both queues are busy: break the protocol. */
	vt_capture_start(&cap);
	CHECK_EQ(vu_fe_send_raw(fe, wire, vt_wire(wire, 1234, 0, 0, NULL, 0), NULL, 0, &reply,
				sizeof(reply)),
		 -ECONNRESET);
	vt_wait_disconnected(dev);
	vt_capture_stop(&cap, log, sizeof(log));
	CHECK_EQ(vt_count_problems(log), 1);

	atomic_store(&stop, true);
	for (unsigned int q = 0; q < 2; q++) {
		pthread_join(thr[q], NULL);
		CHECK(io[q].completed > 0);
		fprintf(stderr, "  queue %u: %llu requests completed before the drop\n", q,
			(unsigned long long)io[q].completed);
	}
	vu_fe_disconnect(fe);
	check_clean(fds);
}

static void test_crashed_mid_io(void)
{
	int fds = vt_count_fds();
	int status;
	pid_t pid;

	fprintf(stderr, "front-end process dies with requests queued\n");
	for (int i = 0; i < 3; i++) {
		pid = fork();
		CHECK(pid >= 0);
		if (pid == 0) {
			struct vu_fe *fe = vt_connect(sock_path, 2, 64, FEATURES, 4);

			post_batch(fe, 900 + i);
			usleep(20 * 1000);
			/* No GET_VRING_BASE, no close: the kernel tidies up. */
			_exit(0);
		}
		CHECK_EQ(waitpid(pid, &status, 0), pid);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		check_clean(fds);
	}
}

static void test_many_sessions(void)
{
	int fds = vt_count_fds();

	fprintf(stderr, "50 short sessions\n");
	for (int i = 0; i < 50; i++) {
		vt_session(sock_path, 2, FEATURES | (i % 3 ? 0 : VT_FEATURES_PACKED), 20);
		vt_wait_disconnected(dev);
	}
	CHECK_EQ(atomic_load(&echo.starts), atomic_load(&echo.stops));
	CHECK_EQ(vt_count_fds(), fds);
}

int main(void)
{
	dev = vt_echo_start(&loop, &echo, &sock_path, 2, 256);

	test_clean_mid_io();
	test_dropped_mid_io();
	test_crashed_mid_io();
	test_many_sessions();

	vt_echo_stop(&loop, dev);
	fprintf(stderr, "ok\n");
	return 0;
}
