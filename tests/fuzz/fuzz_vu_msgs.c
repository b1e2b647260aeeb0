// SPDX-License-Identifier: MIT
/*
 * fuzz_vu_msgs.c - libFuzzer harness of the vhost-user back-end's message
 * handling (src/vhost-user/backend.c, backend_msgs.c, backend_mem.c): any
 * sequence of messages, with descriptors from a small pool (memfds of
 * several sizes, counter and semaphore eventfds, a pipe, /dev/null),
 * interleaved with guest writes into the shared memory and shrinking of
 * it, against a virtio-blk disk and a virtio-scsi controller on the null
 * back-end.  Input format: fuzz_vu_msgs.h.
 *
 * The back-end runs unchanged, over a real unix socket, watched by this
 * harness instead of an event loop; the device models run on the
 * synchronous engine of fuzz_engine.h, so queue starts and stops cost no
 * thread handshake and requests in the rings are served right after each
 * operation.  Checks, beyond ASan/UBSan/LeakSanitizer: the back-end never
 * blocks (every reply fits the socket and is read at once; libFuzzer's
 * -timeout catches a hang), after the front-end hangs up no queue is left
 * started and the device says it is disconnected, and no descriptor is
 * leaked (the process has as many open as after the first input, allowing
 * the closer thread a moment).
 */
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "common/log.h"
#include "common/ufd.h"
#include "devices/blk.h"
#include "devices/scsi.h"
#include "fuzz_chain.h"
#include "fuzz_engine.h"
#include "fuzz_vu_msgs.h"
#include "vhost-user/protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_WATCH     16
#define SERVE_ROUNDS  32
#define FD_GRACE_MS   5000

struct watch {
	int fd;
	void (*cb)(void *arg, uint32_t events);
	void *arg;
};

static struct watch watches[MAX_WATCH];
static int pool[FUZZ_VU_POOL];
static const size_t memfd_size[FUZZ_VU_NR_MEMFD] = {1u << 20, 64u << 10, 4096};
static struct blk_dev *blk;
static struct scsi_dev *scsi;
static char blk_sock[108], scsi_sock[108];
static int listen_fd[2] = {-1, -1}; /* blk, scsi */
static int client = -1;
static int baseline_fds = -1;

/* ---- the event loop stand-in ------------------------------------------------------ */

static int watch_add(void *loop, int fd, void (*cb)(void *arg, uint32_t events), void *arg)
{
	(void)loop;
	for (int i = 0; i < MAX_WATCH; i++) {
		if (!watches[i].cb) {
			watches[i] = (struct watch){fd, cb, arg};
			return 0;
		}
	}
	return -ENOSPC;
}

static void watch_del(void *loop, int fd)
{
	(void)loop;
	for (int i = 0; i < MAX_WATCH; i++) {
		if (watches[i].cb && watches[i].fd == fd)
			watches[i].cb = NULL;
	}
}

static const struct vu_watch_ops watch_ops = {.add = watch_add, .del = watch_del};

static struct watch *watch_of(int fd)
{
	for (int i = 0; i < MAX_WATCH; i++) {
		if (watches[i].cb && watches[i].fd == fd)
			return &watches[i];
	}
	return NULL;
}

/* Call back every readable watch but the listening sockets, until quiet. */
static void serve(void)
{
	for (int round = 0; round < SERVE_ROUNDS; round++) {
		struct pollfd p[MAX_WATCH];
		int n = 0, ready;

		for (int i = 0; i < MAX_WATCH; i++) {
			if (watches[i].cb && watches[i].fd != listen_fd[0] &&
			    watches[i].fd != listen_fd[1])
				p[n++] = (struct pollfd){.fd = watches[i].fd, .events = POLLIN};
		}
		ready = poll(p, (nfds_t)n, 0);
		if (ready <= 0)
			return;
		for (int i = 0; i < n; i++) {
			struct watch *w;

			/* A callback may have dropped (and the fd number been reused for) another. */
			if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)) || !(w = watch_of(p[i].fd)))
				continue;
			w->cb(w->arg, (uint32_t)p[i].revents);
		}
		fuzz_eng_run_all();
	}
}

/* ---- the front-end ------------------------------------------------------------- */

/* Read and drop whatever the back-end sent (replies; descriptors closed). */
static void drain_replies(void)
{
	for (;;) {
		char buf[4096];
		char ctl[CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_FDS)];
		struct iovec iov = {buf, sizeof(buf)};
		struct msghdr mh = {
			.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
			.msg_controllen = sizeof(ctl)};
		ssize_t r = recvmsg(client, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

		if (r <= 0)
			return;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
				size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
				int fds[VHOST_USER_MAX_FDS];

				memcpy(fds, CMSG_DATA(c), nfd * sizeof(int));
				for (size_t k = 0; k < nfd; k++)
					close(fds[k]);
			}
		}
	}
}

static void fe_connect(const char *path, int lfd)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct watch *w;
	int buf = 1 << 20;

	client = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(client >= 0);
	setsockopt(client, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	setsockopt(client, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(client, (struct sockaddr *)&sa, sizeof(sa)))
		FAIL("connect %s: %m", path);
	w = watch_of(lfd);
	CHECK(w);
	w->cb(w->arg, POLLIN);
}

static void fe_hang_up(void)
{
	close(client);
	client = -1;
	serve();
}

static void send_msg(struct fuzz_in *in)
{
	unsigned int nfds = fuzz_u8(in) % 4;
	uint8_t buf[VHOST_USER_HDR_SIZE + FUZZ_VU_MAX_PAYLOAD];
	char ctl[CMSG_SPACE(sizeof(int) * 3)] = {0};
	struct iovec iov = {buf, 0};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	uint32_t size;
	int fds[3];

	for (unsigned int i = 0; i < nfds; i++)
		fds[i] = pool[fuzz_u8(in) % FUZZ_VU_POOL];
	fuzz_bytes(in, buf, VHOST_USER_HDR_SIZE);
	memcpy(&size, buf + 8, sizeof(size));
	size = le32toh(size);
	if (size > FUZZ_VU_MAX_PAYLOAD)
		size = FUZZ_VU_MAX_PAYLOAD;
	fuzz_bytes(in, buf + VHOST_USER_HDR_SIZE, size);
	iov.iov_len = VHOST_USER_HDR_SIZE + size;
	if (nfds) {
		struct cmsghdr *c;

		mh.msg_control = ctl;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	/* The back-end may have hung up on us already: that is an answer too. */
	(void)sendmsg(client, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void guest_write(struct fuzz_in *in)
{
	unsigned int m = fuzz_u8(in) % FUZZ_VU_NR_MEMFD;
	uint32_t off = fuzz_u16(in) | (uint32_t)fuzz_u16(in) << 16;
	uint16_t len = fuzz_u16(in);
	uint8_t buf[65536];

	fuzz_bytes(in, buf, len);
	off %= (uint32_t)memfd_size[m];
	if (len > memfd_size[m] - off)
		len = (uint16_t)(memfd_size[m] - off);
	CHECK_EQ(pwrite(pool[m], buf, len, off), (ssize_t)len);
}

static void guest_truncate(struct fuzz_in *in)
{
	unsigned int m = fuzz_u8(in) % FUZZ_VU_NR_MEMFD;
	uint32_t sz = fuzz_u16(in) | (uint32_t)fuzz_u16(in) << 16;

	CHECK_EQ(ftruncate(pool[m], (off_t)(sz % (memfd_size[m] + 1))), 0);
}

/* ---- set-up and checks --------------------------------------------------------- */

static int make_memfd(const char *name, size_t size)
{
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);

	CHECK(fd >= 0);
	CHECK_EQ(ftruncate(fd, (off_t)size), 0);
	return fd;
}

/* The watched listening socket other than @not. */
static int find_listener(int not)
{
	for (int i = 0; i < MAX_WATCH; i++) {
		int on = 0;
		socklen_t len = sizeof(on);

		if (watches[i].cb && watches[i].fd != not &&
		    !getsockopt(watches[i].fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) && on)
			return watches[i].fd;
	}
	FAIL("no listening socket is watched");
}

/* libFuzzer exits without tearing the devices down: leave no socket files behind. */
static void remove_sockets(void)
{
	unlink(blk_sock);
	unlink(scsi_sock);
}

static void setup(void)
{
	struct blk_options bo;
	struct scsi_options so;
	struct scsi_lun_options lo[2];
	char spec[512], err[256];
	int p[2];

	check_abort_on_failure();
	log_set_level(getenv("FUZZ_VERBOSE") ? LOG_LVL_DEBUG : LOG_LVL_ERROR);
	pool[FUZZ_VU_MEM_1M] = make_memfd("fuzz-ram", memfd_size[0]);
	pool[FUZZ_VU_MEM_64K] = make_memfd("fuzz-64k", memfd_size[1]);
	pool[FUZZ_VU_MEM_4K] = make_memfd("fuzz-4k", memfd_size[2]);
	pool[FUZZ_VU_EMPTY] = make_memfd("fuzz-empty", 0);
	pool[FUZZ_VU_KICK] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	pool[FUZZ_VU_CALL] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	pool[FUZZ_VU_ERR] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	pool[FUZZ_VU_SEMAPHORE] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE);
	CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
	pool[FUZZ_VU_PIPE] = p[0];
	pool[FUZZ_VU_DEVNULL] = open("/dev/null", O_RDWR | O_CLOEXEC);
	for (int i = 0; i < FUZZ_VU_POOL; i++)
		CHECK(pool[i] >= 0);

	snprintf(blk_sock, sizeof(blk_sock), "/tmp/vhd-fuzz-blk-%d.sock", (int)getpid());
	snprintf(scsi_sock, sizeof(scsi_sock), "/tmp/vhd-fuzz-scsi-%d.sock", (int)getpid());
	atexit(remove_sockets);
	snprintf(spec, sizeof(spec), "id=fuzz-blk,backend=null,size=4m,socket=%s,queue-size=64,"
		 "num-queues=2", blk_sock);
	CHECK_EQ(blk_options_parse(spec, &bo, err, sizeof(err)), 0);
	blk = blk_dev_new(&bo, &watch_ops, NULL, err, sizeof(err));
	if (!blk)
		FAIL("blk_dev_new: %s", err);
	listen_fd[0] = find_listener(-1);
	snprintf(spec, sizeof(spec), "id=fuzz-scsi,socket=%s,queue-size=64", scsi_sock);
	if (scsi_options_parse(spec, &so, err, sizeof(err)))
		FAIL("options: %s", err);
	CHECK_EQ(scsi_lun_options_parse("scsi=fuzz-scsi,target=0,lun=0,backend=null,size=4M",
					&lo[0], err, sizeof(err)), 0);
	CHECK_EQ(scsi_lun_options_parse("scsi=fuzz-scsi,target=0,lun=1,backend=null,size=1M,"
					"readonly=on", &lo[1], err, sizeof(err)), 0);
	scsi = scsi_dev_new(&so, lo, 2, &watch_ops, NULL, err, sizeof(err));
	if (!scsi)
		FAIL("scsi_dev_new: %s", err);
	listen_fd[1] = find_listener(listen_fd[0]);
	CHECK(listen_fd[0] >= 0 && listen_fd[1] >= 0 && listen_fd[0] != listen_fd[1]);
}

/* Back to the pool's starting state: memory zeroed and full size, counters empty. */
static void reset_pool(void)
{
	eventfd_t v;

	for (int m = 0; m < FUZZ_VU_NR_MEMFD; m++) {
		CHECK_EQ(ftruncate(pool[m], 0), 0);
		CHECK_EQ(ftruncate(pool[m], (off_t)memfd_size[m]), 0);
	}
	for (int i = FUZZ_VU_KICK; i <= FUZZ_VU_SEMAPHORE; i++) {
		while (eventfd_read(pool[i], &v) == 0 && i == FUZZ_VU_SEMAPHORE)
			;
	}
}

/*
 * Descriptors the back-end could leak: sockets, anonymous inodes (eventfds,
 * io_urings, timerfds) and the pool's memfds and pipe.  Not all: libFuzzer
 * and the sanitizers open pipes and /dev/null of their own now and then.
 */
static bool ours(int fd)
{
	char path[64], link[64];
	struct stat st, p;
	ssize_t n;

	if (fstat(fd, &st))
		return false;
	if (S_ISSOCK(st.st_mode))
		return true;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n > 0 && !strncmp(link, "anon_inode:", 11 < n ? 11 : (size_t)n))
		return true;
	for (int i = 0; i < FUZZ_VU_POOL; i++) {
		if (i != FUZZ_VU_DEVNULL && !fstat(pool[i], &p) && p.st_dev == st.st_dev &&
		    p.st_ino == st.st_ino && !S_ISCHR(p.st_mode))
			return true;
	}
	return false;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	CHECK(d);
	while ((e = readdir(d))) {
		int fd = atoi(e->d_name);

		n += e->d_name[0] != '.' && fd != dirfd(d) && ours(fd);
	}
	closedir(d);
	return n;
}

static void list_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	CHECK(d);
	while ((e = readdir(d))) {
		char path[300], link[256];
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n > 0 && ours(atoi(e->d_name))) {
			link[n] = 0;
			log_error("fd %s: %s", e->d_name, link);
		}
	}
	closedir(d);
}

/*
 * Every open descriptor below FD_SCAN_MAX, in one poll() (a closed one
 * answers POLLNVAL): the cheap first look of the leak check.  The precise
 * count (a readlink and fstat per descriptor) cost more than the input it
 * checked, so it runs only when this one says there are more than before.
 */
#define FD_SCAN_MAX 1024

static int count_open_fds(void)
{
	static struct pollfd p[FD_SCAN_MAX];
	int n = 0;

	for (int i = 0; i < FD_SCAN_MAX; i++)
		p[i] = (struct pollfd){.fd = i};
	CHECK(poll(p, FD_SCAN_MAX, 0) >= 0);
	for (int i = 0; i < FD_SCAN_MAX; i++)
		n += !(p[i].revents & POLLNVAL);
	return n;
}

static void check_no_fd_leak(void)
{
	static int baseline_open = -1;
	int n, open_now;

	/*
	 * Sockets close on the back-end's closer thread.  On a loaded machine
	 * (a niced fuzzer) it may not run for a while: then this input's count
	 * proves nothing, and a real leak still shows after a later one.
	 */
	if (!ufd_closer_wait_idle(FD_GRACE_MS)) {
		log_warn("fuzz: the closer thread is still busy after %d ms; fd check skipped",
			 FD_GRACE_MS);
		return;
	}
	open_now = count_open_fds();
	if (baseline_fds >= 0 && open_now <= baseline_open)
		return;
	n = count_fds();
	if (baseline_fds < 0)
		baseline_fds = n;
	if (n <= baseline_fds) {
		/* More open, but not ours (libFuzzer's): the cheap look's new bound. */
		baseline_open = open_now;
		return;
	}
	if (n > baseline_fds) {
		list_fds();
		FAIL("descriptor leak: %d open, %d after the first input", n, baseline_fds);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = {data, size};
	bool use_scsi;
	const char *path;
	int lfd;

	if (!blk)
		setup();
	if (!size)
		return 0;
	use_scsi = fuzz_u8(&in) & 1;
	path = use_scsi ? scsi_sock : blk_sock;
	lfd = listen_fd[use_scsi];
	reset_pool();
	fe_connect(path, lfd);
	while (in.n) {
		switch (fuzz_u8(&in) % FUZZ_VU_OP__COUNT) {
		case FUZZ_VU_MSG:
			send_msg(&in);
			break;
		case FUZZ_VU_WRITE:
			guest_write(&in);
			break;
		case FUZZ_VU_TRUNCATE:
			guest_truncate(&in);
			break;
		default:
			fe_hang_up();
			fe_connect(path, lfd);
			break;
		}
		serve();
		drain_replies();
		fuzz_eng_run_all();
	}
	fe_hang_up();
	CHECK(!blk_dev_connected(blk));
	CHECK(!scsi_dev_connected(scsi));
	CHECK_EQ(fuzz_eng_nr_queues(), 0);
	check_no_fd_leak();
	return 0;
}
