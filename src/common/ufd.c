// SPDX-License-Identifier: MIT
/*
 * ufd.c - classifying, closing and signalling untrusted descriptors
 * (see ufd.h for the threats and the rules).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "ufd.h"

/* linux/magic.h, spelled out so that no kernel header is needed. */
#define UFD_TMPFS_MAGIC	     0x01021994u
#define UFD_HUGETLBFS_MAGIC  0x958458f6u
#define UFD_ANON_INODE_MAGIC 0x09041934u

/* --- classification --- */

static void fd_link(int fd, char *buf, size_t len)
{
	char path[40];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, buf, len - 1);
	buf[n > 0 ? n : 0] = '\0';
}

/*
 * EFD_SEMAPHORE is not in the file's flags; fdinfo shows it since Linux
 * 6.2 ("eventfd-semaphore: 1").  An older kernel does not say, and we take
 * such an eventfd for what the peer should have sent.
 */
static bool eventfd_is_semaphore(int fd)
{
	char path[40], buf[512];
	const char *p;
	ssize_t n;
	int f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return false;
	n = read(f, buf, sizeof(buf) - 1);
	close(f);
	buf[n > 0 ? n : 0] = '\0';
	p = strstr(buf, "eventfd-semaphore:");
	return p && atoi(p + strlen("eventfd-semaphore:")) != 0;
}

static enum ufd_kind set_info(struct ufd_info *info, enum ufd_kind kind, const char *what,
			      const char *link)
{
	info->kind = kind;
	if (link[0])
		snprintf(info->desc, sizeof(info->desc), "%s (%s)", what, link);
	else
		snprintf(info->desc, sizeof(info->desc), "%s", what);
	return kind;
}

enum ufd_kind ufd_classify(int fd, struct ufd_info *info)
{
	char link[64];
	struct statfs sfs;
	struct stat st;
	bool anon;

	if (fd < 0 || fstat(fd, &st) < 0)
		return set_info(info, UFD_BAD, "not an open descriptor", "");
	/* The link names what fstat cannot tell apart: eventfd, timerfd, signalfd... */
	fd_link(fd, link, sizeof(link));
	if (S_ISSOCK(st.st_mode))
		return set_info(info, UFD_SOCKET, "a socket", link);
	if (S_ISFIFO(st.st_mode))
		return set_info(info, UFD_PIPE, "a pipe", link);
	if (!strcmp(link, "anon_inode:[eventfd]")) {
		if (eventfd_is_semaphore(fd))
			return set_info(info, UFD_EVENTFD_SEMAPHORE, "a semaphore-mode eventfd",
					"");
		return set_info(info, UFD_EVENTFD, "an eventfd", "");
	}
	/* Anonymous inodes may look like regular files; they are not memory. */
	anon = !strncmp(link, "anon_inode:", strlen("anon_inode:")) ||
	       (fstatfs(fd, &sfs) == 0 && (uint32_t)sfs.f_type == UFD_ANON_INODE_MAGIC);
	if (S_ISREG(st.st_mode) && !anon) {
		/* f_type is signed on some ABIs: compare the low 32 bits. */
		if (fstatfs(fd, &sfs) == 0 && ((uint32_t)sfs.f_type == UFD_TMPFS_MAGIC ||
					       (uint32_t)sfs.f_type == UFD_HUGETLBFS_MAGIC))
			return set_info(info, UFD_MEMFILE, "a memory file", link);
		return set_info(info, UFD_FILE, "a regular file", link);
	}
	if (S_ISDIR(st.st_mode))
		return set_info(info, UFD_OTHER, "a directory", link);
	if (S_ISCHR(st.st_mode))
		return set_info(info, UFD_OTHER, "a character device", link);
	if (S_ISBLK(st.st_mode))
		return set_info(info, UFD_OTHER, "a block device", link);
	if (anon)
		return set_info(info, UFD_OTHER, "an anonymous inode", link);
	return set_info(info, UFD_OTHER, "an unknown kind of file", link);
}

int ufd_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* --- the closer thread --- */

static pthread_mutex_t closer_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t closer_work = PTHREAD_COND_INITIALIZER;
static pthread_cond_t closer_idle = PTHREAD_COND_INITIALIZER;
static int *closer_queue;
static size_t closer_len, closer_cap;
static size_t closer_pending; /* queued plus being closed */
static bool closer_started;

static void *closer_thread(void *arg)
{
	pthread_mutex_lock(&closer_lock);
	for (;;) {
		int *batch;
		size_t n;

		while (!closer_len)
			pthread_cond_wait(&closer_work, &closer_lock);
		batch = closer_queue;
		n = closer_len;
		closer_queue = NULL;
		closer_len = closer_cap = 0;
		pthread_mutex_unlock(&closer_lock);

		/* In order; one that sleeps (a lingering socket) delays the rest, no more. */
		for (size_t i = 0; i < n; i++)
			close(batch[i]);
		free(batch);

		pthread_mutex_lock(&closer_lock);
		closer_pending -= n;
		if (!closer_pending)
			pthread_cond_broadcast(&closer_idle);
	}
	return NULL;
}

/* Called with closer_lock held. */
static bool closer_start(void)
{
	pthread_attr_t attr;
	pthread_t t;
	int r;

	if (closer_started)
		return true;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	/* It only calls close(). */
	pthread_attr_setstacksize(&attr, 64 * 1024);
	r = pthread_create(&t, &attr, closer_thread, NULL);
	pthread_attr_destroy(&attr);
	if (r)
		return false;
	pthread_setname_np(t, "ufd-closer");
	closer_started = true;
	return true;
}

void ufd_close_async(int fd)
{
	bool queued = false;

	if (fd < 0)
		return;
	pthread_mutex_lock(&closer_lock);
	if (closer_len == closer_cap) {
		size_t cap = closer_cap ? closer_cap * 2 : 16;
		int *q = realloc(closer_queue, cap * sizeof(*q));

		if (q) {
			closer_queue = q;
			closer_cap = cap;
		}
	}
	if (closer_len < closer_cap && closer_start()) {
		closer_queue[closer_len++] = fd;
		closer_pending++;
		pthread_cond_signal(&closer_work);
		queued = true;
	}
	pthread_mutex_unlock(&closer_lock);
	if (!queued) {
		/* No memory or no thread: closing here beats leaking it forever. */
		log_warn("ufd: cannot hand descriptor %d to the closer thread; closing inline", fd);
		close(fd);
	}
}

void ufd_close(int fd)
{
	struct ufd_info info;
	static const struct linger abort_close = {.l_onoff = 1, .l_linger = 0};

	switch (ufd_classify(fd, &info)) {
	case UFD_BAD:
		return;
	case UFD_EVENTFD:
	case UFD_EVENTFD_SEMAPHORE:
	case UFD_MEMFILE:
		/* Releasing these never sleeps. */
		close(fd);
		return;
	case UFD_SOCKET:
		/*
		 * Abort rather than linger (TCP sends RST).  The peer may keep a
		 * reference and re-arm SO_LINGER; then the closer waits, not us.
		 */
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_close, sizeof(abort_close));
		ufd_close_async(fd);
		return;
	default:
		ufd_close_async(fd);
		return;
	}
}

bool ufd_closer_wait_idle(int timeout_ms)
{
	struct timespec deadline;
	bool idle;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&closer_lock);
	while (closer_pending) {
		if (pthread_cond_timedwait(&closer_idle, &closer_lock, &deadline) == ETIMEDOUT)
			break;
	}
	idle = !closer_pending;
	pthread_mutex_unlock(&closer_lock);
	return idle;
}

/* --- reads and writes --- */

int ufd_eventfd_read(int fd, uint64_t *v)
{
	/* eventfd honours RWF_NOWAIT on reads, whatever the file's O_NONBLOCK. */
	struct iovec iov = {.iov_base = v, .iov_len = sizeof(*v)};
	ssize_t n;

	do {
		n = preadv2(fd, &iov, 1, -1, RWF_NOWAIT);
	} while (n < 0 && errno == EINTR);
	if (n == sizeof(*v))
		return 1;
	if (n < 0 && errno == EAGAIN)
		return 0;
	return n < 0 ? -errno : -EIO;
}

#define UFD_SIGNAL_ENTRIES 8
/* user_data: slot in bits 0-31, generation in 32-47; cancels are tagged. */
#define UFD_CANCEL_TAG (1ull << 63)

static const uint64_t ufd_one = 1;

static uint64_t slot_data(const struct ufd_signal *s, unsigned int slot)
{
	return (uint64_t)slot | (uint64_t)s->slots[slot].gen << 32;
}

static void signal_reap(struct ufd_signal *s)
{
	struct io_uring_cqe *cqe;

	while (io_uring_peek_cqe(&s->ring, &cqe) == 0) {
		uint64_t d = cqe->user_data;
		unsigned int slot = (unsigned int)(d & 0xffffffffu);

		/* A write to a descriptor the slot no longer holds is not counted. */
		if (!(d & UFD_CANCEL_TAG) && slot < s->nslots && (d >> 32) == s->slots[slot].gen &&
		    s->slots[slot].inflight)
			s->slots[slot].inflight--;
		io_uring_cqe_seen(&s->ring, cqe);
	}
}

int ufd_signal_init(struct ufd_signal *s, unsigned int nslots)
{
	memset(s, 0, sizeof(*s));
	s->slots = calloc(nslots ? nslots : 1, sizeof(*s->slots));
	if (!s->slots)
		return -ENOMEM;
	s->nslots = nslots;
	return 0;
}

int ufd_signal_setup(struct ufd_signal *s)
{
	int r;

	if (s->ready)
		return 0;
	r = io_uring_queue_init(UFD_SIGNAL_ENTRIES, &s->ring, 0);
	if (r < 0)
		return r;
	s->ready = true;
	return 0;
}

void ufd_signal_reset(struct ufd_signal *s)
{
	/* Closing the ring cancels what is still in flight; it does not wait. */
	if (s->ready)
		io_uring_queue_exit(&s->ring);
	s->ready = false;
	for (unsigned int i = 0; i < s->nslots; i++) {
		s->slots[i].gen++;
		s->slots[i].inflight = 0;
	}
}

void ufd_signal_destroy(struct ufd_signal *s)
{
	if (!s->slots)
		return;
	ufd_signal_reset(s);
	free(s->slots);
	s->slots = NULL;
	s->nslots = 0;
}

static struct io_uring_sqe *signal_sqe(struct ufd_signal *s)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);

	if (!sqe) {
		io_uring_submit(&s->ring);
		sqe = io_uring_get_sqe(&s->ring);
	}
	return sqe;
}

int ufd_signal(struct ufd_signal *s, unsigned int slot, int fd)
{
	struct ufd_signal_slot *sl;
	struct io_uring_sqe *sqe;
	int r;

	if (fd < 0 || slot >= s->nslots)
		return 0;
	r = ufd_signal_setup(s);
	if (r < 0)
		return r;
	signal_reap(s);
	sl = &s->slots[slot];
	if (sl->inflight) {
		/*
		 * A write still in flight may be stuck on a full counter, or
		 * may have landed and been read already.  If the eventfd is
		 * readable now, the peer has a wake-up it has yet to take and
		 * will see everything published before this call: nothing
		 * to add.  Otherwise write again, up to a bound.
		 */
		struct pollfd p = {.fd = fd, .events = POLLIN};

		if (poll(&p, 1, 0) == 1 && (p.revents & POLLIN))
			return 0;
		if (sl->inflight >= UFD_SIGNAL_MAX_INFLIGHT)
			return 0;
	}
	sqe = signal_sqe(s);
	if (!sqe)
		return -EBUSY;
	/* Offset -1: the eventfd has no position. */
	io_uring_prep_write(sqe, fd, &ufd_one, sizeof(ufd_one), (uint64_t)-1);
	io_uring_sqe_set_data64(sqe, slot_data(s, slot));
	sl->inflight++;
	r = io_uring_submit(&s->ring);
	if (r < 0) {
		sl->inflight--;
		return r;
	}
	/* Usually done already: tried at once, with O_NONBLOCK as we set it. */
	signal_reap(s);
	return 0;
}

void ufd_signal_forget(struct ufd_signal *s, unsigned int slot)
{
	struct ufd_signal_slot *sl;

	if (slot >= s->nslots)
		return;
	sl = &s->slots[slot];
	if (s->ready) {
		signal_reap(s);
		if (sl->inflight) {
			struct io_uring_sqe *sqe = signal_sqe(s);

			/* A write sleeping on a full counter is woken and fails. */
			if (sqe) {
				io_uring_prep_cancel64(sqe, slot_data(s, slot),
						       IORING_ASYNC_CANCEL_ALL);
				io_uring_sqe_set_data64(sqe, UFD_CANCEL_TAG);
				io_uring_submit(&s->ring);
			}
		}
	}
	sl->gen++;
	sl->inflight = 0;
}
