// SPDX-License-Identifier: MIT
/*
 * test_vu_seals.c - guest memory that can shrink under the back-end.
 *
 * A front-end that truncates a memfd after SET_MEM_TABLE makes the
 * back-end's next touch of the lost pages raise SIGBUS.  The back-end
 * survives that (it only breaks the device: test_vu_hostile's shrink
 * cases), so an unsealed memfd is no error: it is served, with one
 * informational line per region naming the seal, for whoever reads the
 * log after a truncation.  A memfd sealed with F_SEAL_SHRINK (QEMU's
 * default) is silent, and so is the front-end's own memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vu_test.h"

#define REGION_BASE 0x10000000ull
#define REGION_SIZE (1u << 20)

static struct vt_loop loop;
static struct echo_dev echo;
static struct vu_dev *dev;
static const char *sock_path;

static int memfd_sized(size_t size, unsigned int seals)
{
	int fd = memfd_create("seals", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	CHECK(fd >= 0 && !ftruncate(fd, (off_t)size));
	if (seals)
		CHECK(!fcntl(fd, F_ADD_SEALS, seals));
	return fd;
}

/* SET_MEM_TABLE with one region on @fd, then GET_FEATURES: the reply proves the link is up. */
static void mem_table_then_ping(int sock, int fd)
{
	uint8_t wire[VHOST_USER_HDR_SIZE + VHOST_USER_MAX_PAYLOAD];
	struct vhost_user_mem_table t = {
		.nregions = 1,
		.regions[0] = {REGION_BASE, REGION_SIZE, REGION_BASE, 0},
	};
	uint32_t size = offsetof(struct vhost_user_mem_table, regions) + sizeof(t.regions[0]);
	struct iovec iov = {.iov_base = wire};
	struct vhost_user_rx rx;

	iov.iov_len = vt_wire(wire, VHOST_USER_SET_MEM_TABLE, 0, size, &t, size);
	CHECK_EQ(vhost_user_sendv(sock, &iov, 1, &fd, 1, 2000), 0);
	iov.iov_len = vt_wire(wire, VHOST_USER_GET_FEATURES, 0, 0, NULL, 0);
	CHECK_EQ(vhost_user_sendv(sock, &iov, 1, NULL, 0, 2000), 0);
	vhost_user_rx_init(&rx);
	CHECK_EQ(vhost_user_recv(sock, &rx, 5000), 1);
	CHECK_EQ(rx.msg.hdr.request, VHOST_USER_GET_FEATURES);
	vhost_user_rx_reset(&rx);
}

/* Lines in @log that say a memfd could shrink. */
static unsigned int count_seal_notes(const char *log)
{
	unsigned int n = 0;

	for (const char *p = log; (p = strstr(p, "F_SEAL_SHRINK")); p++)
		n++;
	return n;
}

/* One connection that shares a memfd with @seals; returns the back-end's log. */
static void run(unsigned int seals, char *log, size_t len)
{
	struct vt_capture cap;
	int sock, fd = memfd_sized(REGION_SIZE, seals);

	vt_capture_start(&cap);
	sock = vt_raw_connect(sock_path);
	mem_table_then_ping(sock, fd);
	close(sock);
	vt_wait_disconnected(dev);
	vt_capture_stop(&cap, log, len);
	close(fd);
}

int main(void)
{
	char log[16384];
	struct vt_capture cap;
	int fds;

	dev = vt_echo_start(&loop, &echo, &sock_path, 1, 256);
	fds = vt_count_fds();

	/* Unsealed: served, no warning, one informational line that names the seal. */
	run(0, log, sizeof(log));
	CHECK_EQ(vt_count_problems(log), 0);
	CHECK_EQ(count_seal_notes(log), 1);

	/* Sealed against growing only: still shrinkable, still noted. */
	run(F_SEAL_GROW, log, sizeof(log));
	CHECK_EQ(vt_count_problems(log), 0);
	CHECK_EQ(count_seal_notes(log), 1);

	/* Sealed against shrinking, as QEMU does: nothing to say. */
	run(F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL, log, sizeof(log));
	CHECK_EQ(vt_count_problems(log), 0);
	CHECK_EQ(count_seal_notes(log), 0);

	/* The front-end seals its own memory, so a whole session is quiet. */
	vt_capture_start(&cap);
	vt_session(sock_path, 1, VT_FEATURES_SPLIT | VT_FEATURES_EVENT_IDX, 64);
	vt_wait_disconnected(dev);
	vt_capture_stop(&cap, log, sizeof(log));
	CHECK_EQ(vt_count_problems(log), 0);
	CHECK_EQ(vt_count_fds(), fds);

	vt_echo_stop(&loop, dev);
	fprintf(stderr, "ok\n");
	return 0;
}
