// SPDX-License-Identifier: MIT
/*
 * vu_test.c - shared pieces of the vhost-user tests (see vu_test.h).
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/ufd.h"
#include "vu_test.h"

/* --- event loop --- */

void vt_loop_init(struct vt_loop *l)
{
	l->loop = evloop_new();
	CHECK(l->loop);
	l->running = false;
}

static void *loop_thread(void *arg)
{
	struct vt_loop *l = arg;

	if (evloop_run(l->loop))
		FAIL("evloop_run failed");
	return NULL;
}

void vt_loop_start(struct vt_loop *l)
{
	CHECK(!pthread_create(&l->thread, NULL, loop_thread, l));
	l->running = true;
}

void vt_loop_stop(struct vt_loop *l)
{
	if (!l->running)
		return;
	evloop_stop(l->loop);
	pthread_join(l->thread, NULL);
	l->running = false;
}

/* --- temporary directory --- */

static char tmpdir[64];
static char *paths[16];
static unsigned int nr_paths;

void vt_tmpdir_init(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/vhostd-vu-XXXXXX");
	CHECK(mkdtemp(tmpdir));
}

const char *vt_path(const char *name)
{
	char *p;

	CHECK(nr_paths < sizeof(paths) / sizeof(paths[0]));
	CHECK(asprintf(&p, "%s/%s", tmpdir, name) > 0);
	paths[nr_paths++] = p;
	return p;
}

void vt_tmpdir_cleanup(void)
{
	for (unsigned int i = 0; i < nr_paths; i++) {
		unlink(paths[i]);
		free(paths[i]);
	}
	nr_paths = 0;
	rmdir(tmpdir);
}

/* --- the echo device --- */

#define ECHO_MAX_IOV 64
#define ECHO_MAX_REQ 65536

static void echo_burst(struct echo_queue *eq, uint8_t *buf, bool *broken)
{
	struct vu_queue *q = eq->q;
	struct virtq *vq = &q->vq;
	struct iovec iov[ECHO_MAX_IOV];
	struct virtq_elem elem;
	unsigned int n;
	int r;

	do {
		n = 0;
		virtq_disable_notify(vq);
		for (;;) {
			size_t len, written;

			virtq_elem_init(&elem, iov, ECHO_MAX_IOV);
			r = virtq_pop(vq, &elem);
			if (r <= 0)
				break;
			len = iov_to_buf(elem.iov, elem.out_num, 0, buf, ECHO_MAX_REQ);
			written = iov_from_buf(elem.iov + elem.out_num, elem.in_num, 0, buf, len);
			virtq_fill(vq, &elem, (uint32_t)written);
			n++;
		}
		/* One publish and at most one interrupt per burst. */
		if (n) {
			/* Counted before the driver can see them. */
			atomic_fetch_add(&eq->e->requests, n);
			virtq_flush(vq);
			vu_queue_notify(q);
		}
		if (r < 0) {
			vu_dev_set_broken(q->dev, "echo: ring broken");
			*broken = true;
			return;
		}
	} while (virtq_enable_notify(vq));
}

static void *echo_thread(void *arg)
{
	struct echo_queue *eq = arg;
	struct vu_queue *q = eq->q;
	uint8_t *buf = malloc(ECHO_MAX_REQ);
	bool broken = false;

	CHECK(buf);
	for (;;) {
		struct pollfd pfd[2] = {
			{.fd = eq->stop_fd, .events = POLLIN},
			{.fd = q->kick_fd, .events = POLLIN},
		};
		bool polling = q->kick_fd < 0;

		/*
		 * Look at the ring before sleeping, also on the first round:
		 * a kick may have been consumed by the thread before a restart.
		 */
		if (!broken)
			echo_burst(eq, buf, &broken);
		if (poll(pfd, polling || broken ? 1 : 2, polling && !broken ? 1 : -1) < 0 &&
		    errno != EINTR)
			FAIL("poll: %m");
		if (pfd[0].revents)
			break;
		if (!polling && !broken && pfd[1].revents) {
			uint64_t v;

			/*
			 * Never eventfd_read(): the front-end may have read it
			 * first and cleared O_NONBLOCK, and we would sleep.
			 */
			ufd_eventfd_read(q->kick_fd, &v);
		}
	}
	free(buf);
	return NULL;
}

static uint64_t echo_get_features(void *opaque)
{
	return ((struct echo_dev *)opaque)->offered;
}

static int echo_set_features(void *opaque, uint64_t features)
{
	((struct echo_dev *)opaque)->features = features;
	return 0;
}

static uint64_t echo_get_protocol_features(void *opaque)
{
	return 1ull << VHOST_USER_PROTOCOL_F_CONFIG |
	       ((struct echo_dev *)opaque)->extra_protocol_features;
}

static int echo_get_config(void *opaque, uint8_t *buf, uint32_t len)
{
	struct echo_dev *e = opaque;
	uint32_t n = len < VT_CONFIG_SIZE ? len : VT_CONFIG_SIZE;

	memcpy(buf, e->config, n);
	return (int)n;
}

static int echo_set_config(void *opaque, const uint8_t *buf, uint32_t offset, uint32_t len)
{
	struct echo_dev *e = opaque;

	if (offset > VT_CONFIG_SIZE || len > VT_CONFIG_SIZE - offset)
		return -EINVAL;
	memcpy(e->config + offset, buf, len);
	return 0;
}

static int echo_start_queue(void *opaque, struct vu_queue *q)
{
	struct echo_dev *e = opaque;
	struct echo_queue *eq = &e->queues[q->index];

	eq->e = e;
	eq->q = q;
	eq->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (eq->stop_fd < 0)
		return -errno;
	if (pthread_create(&eq->thread, NULL, echo_thread, eq)) {
		close(eq->stop_fd);
		return -EAGAIN;
	}
	atomic_fetch_add(&e->starts, 1);
	return 0;
}

static void echo_stop_queue(void *opaque, struct vu_queue *q)
{
	struct echo_dev *e = opaque;
	struct echo_queue *eq = &e->queues[q->index];

	/* Every popped request is completed inside a burst: nothing is left over. */
	eventfd_write(eq->stop_fd, 1);
	pthread_join(eq->thread, NULL);
	close(eq->stop_fd);
	eq->stop_fd = -1;
	atomic_fetch_add(&e->stops, 1);
}

static void echo_set_status(void *opaque, uint8_t status)
{
	atomic_store(&((struct echo_dev *)opaque)->status, status);
}

const struct vu_device_ops echo_ops = {
	.get_features = echo_get_features,
	.set_features = echo_set_features,
	.get_protocol_features = echo_get_protocol_features,
	.get_config = echo_get_config,
	.set_config = echo_set_config,
	.start_queue = echo_start_queue,
	.stop_queue = echo_stop_queue,
	.set_status = echo_set_status,
};

void echo_dev_init(struct echo_dev *e)
{
	memset(e, 0, sizeof(*e));
	e->offered = VT_FEATURES_SPLIT | VT_FEATURES_EVENT_IDX | VT_FEATURES_INDIRECT |
		     VT_FEATURES_PACKED;
	for (unsigned int i = 0; i < VT_CONFIG_SIZE; i++)
		e->config[i] = (uint8_t)(i * 3 + 1);
}

struct vu_dev *vt_echo_server(struct vt_loop *l, struct echo_dev *e, const char *path,
			      unsigned int nq, uint16_t max_size)
{
	struct vu_dev_config cfg = {
		.name = "echo",
		.socket_path = path,
		.num_queues = nq,
		.max_queue_size = max_size,
		.ops = &echo_ops,
		.opaque = e,
		.watch = &vu_evloop_watch_ops,
		.loop = l->loop,
	};
	struct vu_dev *dev = vu_dev_new(&cfg);

	CHECK(dev);
	return dev;
}

struct vu_dev *vt_echo_start(struct vt_loop *l, struct echo_dev *e, const char **path,
			     unsigned int nq, uint16_t max_size)
{
	struct vu_dev *dev;

	vt_tmpdir_init();
	*path = vt_path("echo.sock");
	echo_dev_init(e);
	vt_loop_init(l);
	dev = vt_echo_server(l, e, *path, nq, max_size);
	vt_loop_start(l);
	return dev;
}

void vt_echo_stop(struct vt_loop *l, struct vu_dev *dev)
{
	vt_loop_stop(l);
	vu_dev_free(dev);
	evloop_free(l->loop);
	vt_tmpdir_cleanup();
}

/* --- front-end I/O --- */

struct vu_fe *vt_connect(const char *path, unsigned int nq, uint16_t qsize, uint64_t features,
			 unsigned int indirect_max)
{
	struct vu_fe_config cfg = {
		.socket_path = path,
		.mem_size = 8u << 20,
		.num_queues = nq,
		.queue_size = qsize,
		.features = features,
		.indirect_max = indirect_max,
	};
	struct vu_fe *fe = vu_fe_connect(&cfg);

	if (!fe)
		FAIL("vu_fe_connect(%s): %m", path);
	return fe;
}

static uint64_t rng_next(uint64_t *s)
{
	/* xorshift64*: plenty for buffer shapes. */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

static uint8_t pattern(uint64_t seq, uint32_t i)
{
	return (uint8_t)(seq * 131 + i * 7 + (i >> 8));
}

struct vt_slot {
	uint64_t seq;
	uint32_t out_len;
	uint32_t in_cap;
	bool busy;
	uint8_t *out;
	uint8_t *in;
};

#define VT_IN_OFFSET (VT_SLOT_SIZE / 2)
#define VT_POISON    0xee

/* Cut @len bytes at @base into @n pieces of at least one byte each. */
static unsigned int cut(struct vu_fe *fe, struct virtq_sg *sgs, uint8_t *base, uint32_t len,
			unsigned int n, uint64_t *rng)
{
	uint32_t off = 0;

	if (n > len)
		n = len;
	for (unsigned int i = 0; i < n; i++) {
		uint32_t left = len - off, piece = left - (n - 1 - i);

		if (i + 1 < n)
			piece = 1 + (uint32_t)(rng_next(rng) % piece);
		sgs[i].addr = vu_fe_addr(fe, base + off);
		sgs[i].len = piece;
		off += piece;
	}
	return n;
}

static int submit(struct vt_io *io, struct virtq_drv *drv, struct vt_slot *s, uint64_t seq,
		  uint64_t *rng)
{
	struct virtq_sg sgs[5];
	unsigned int nout, nin;

	s->seq = seq;
	s->out_len = 1 + (uint32_t)(rng_next(rng) % 1500);
	s->in_cap = s->out_len + (uint32_t)(rng_next(rng) % 64);
	for (uint32_t i = 0; i < s->out_len; i++)
		s->out[i] = pattern(seq, i);
	memset(s->in, VT_POISON, s->in_cap);
	nout = cut(io->fe, sgs, s->out, s->out_len, 1 + rng_next(rng) % 3, rng);
	nin = cut(io->fe, sgs + nout, s->in, s->in_cap, 1 + rng_next(rng) % 2, rng);
	return virtq_drv_add_sgs(drv, sgs, nout, nin, s);
}

static void check_done(struct vt_io *io, struct vt_slot *s, uint32_t len)
{
	if (len != s->out_len)
		FAIL("queue %u: request %llu: used length %u, sent %u", io->queue,
		     (unsigned long long)s->seq, len, s->out_len);
	for (uint32_t i = 0; i < s->in_cap; i++) {
		uint8_t want = i < len ? pattern(s->seq, i) : VT_POISON;

		if (s->in[i] != want)
			FAIL("queue %u: request %llu: byte %u is %#x, expected %#x", io->queue,
			     (unsigned long long)s->seq, i, s->in[i], want);
	}
	s->busy = false;
}

void vt_io_run(struct vt_io *io)
{
	struct virtq_drv *drv = vu_fe_queue(io->fe, io->queue);
	unsigned int nslots = (unsigned int)(io->area_len / VT_SLOT_SIZE), inflight = 0;
	uint64_t rng = io->seed | 1, submitted = 0, completed = 0;
	struct vt_slot *slots;

	if (nslots > io->depth)
		nslots = io->depth;
	CHECK(drv && nslots);
	slots = calloc(nslots, sizeof(*slots));
	CHECK(slots);
	for (unsigned int i = 0; i < nslots; i++) {
		slots[i].out = io->area + (size_t)i * VT_SLOT_SIZE;
		slots[i].in = slots[i].out + VT_IN_OFFSET;
	}

	for (;;) {
		bool added = false, more;
		unsigned int got = 0;
		struct vt_slot *s;
		uint32_t len;
		int r;

		more = io->nreq ? submitted < io->nreq : !(io->stop && atomic_load(io->stop));
		for (unsigned int i = 0; more && i < nslots && inflight < nslots; i++) {
			if (slots[i].busy)
				continue;
			r = submit(io, drv, &slots[i], submitted, &rng);
			if (r == -ENOSPC)
				break;
			CHECK_EQ(r, 0);
			slots[i].busy = true;
			inflight++;
			submitted++;
			added = true;
			more = io->nreq ? submitted < io->nreq : more;
		}
		if (added)
			CHECK_EQ(vu_fe_kick(io->fe, io->queue) < 0, 0);
		if (io->submit_only)
			break;

		while ((s = virtq_drv_get_buf(drv, &len))) {
			check_done(io, s, len);
			inflight--;
			completed++;
			got++;
		}
		CHECK(!virtq_drv_is_broken(drv));
		if (!more && !inflight)
			break;
		if (got)
			continue;
		/* Interrupts back on; if something slipped in meanwhile, poll again. */
		if (!virtq_drv_enable_cb(drv))
			continue;
		/*
		 * Wait in slices so that a run told to stop (after its
		 * connection was dropped) notices while it waits.
		 */
		for (int waited = 0;; waited += 100) {
			r = vu_fe_wait_call(io->fe, io->queue, 100);
			if (r)
				break;
			if (io->tolerate_loss && io->stop && atomic_load(io->stop))
				goto out;
			if (waited >= 5000)
				FAIL("queue %u: no interrupt for 5 s (%u in flight, %llu done)",
				     io->queue, inflight, (unsigned long long)completed);
		}
		CHECK(r > 0);
	}
out:
	io->completed = completed;
	free(slots);
}

void *vt_io_thread(void *io)
{
	vt_io_run(io);
	return NULL;
}

void vt_session(const char *path, unsigned int nq, uint64_t features, uint64_t nreq)
{
	struct vu_fe *fe = vt_connect(path, nq, 64, features, 4);

	for (unsigned int q = 0; q < nq; q++) {
		struct vt_io io = {
			.fe = fe,
			.queue = q,
			.area_len = 16 * VT_SLOT_SIZE,
			.depth = 16,
			.nreq = nreq,
			.seed = 42 + q,
		};

		io.area = vu_fe_alloc(fe, io.area_len, 4096);
		CHECK(io.area);
		vt_io_run(&io);
		CHECK_EQ(io.completed, nreq);
	}
	vu_fe_disconnect(fe);
}

/* --- hygiene --- */

int vt_count_fds(void)
{
	DIR *d;
	struct dirent *de;
	int n = 0;

	/* The back-end closes some descriptors on its closer thread (ufd.h). */
	CHECK(ufd_closer_wait_idle(5000));
	d = opendir("/proc/self/fd");
	CHECK(d);
	while ((de = readdir(d))) {
		if (de->d_name[0] != '.')
			n++;
	}
	closedir(d);
	return n - 1; /* the directory's own descriptor */
}

void vt_wait_disconnected(struct vu_dev *dev)
{
	for (int i = 0; i < 200 && vu_dev_connected(dev); i++)
		usleep(10000);
	CHECK(!vu_dev_connected(dev));
}

void vt_capture_start(struct vt_capture *c)
{
	fflush(stderr);
	c->fd = memfd_create("stderr", MFD_CLOEXEC);
	c->saved = dup(STDERR_FILENO);
	CHECK(c->fd >= 0 && c->saved >= 0);
	CHECK(dup2(c->fd, STDERR_FILENO) == STDERR_FILENO);
	check_report_fd(c->saved); /* a failure still goes to the real stderr */
}

void vt_capture_stop(struct vt_capture *c, char *buf, size_t len)
{
	ssize_t n;

	fflush(stderr);
	CHECK(dup2(c->saved, STDERR_FILENO) == STDERR_FILENO);
	check_report_fd(-1);
	close(c->saved);
	n = pread(c->fd, buf, len - 1, 0);
	close(c->fd);
	buf[n > 0 ? n : 0] = '\0';
	/* Show what the back-end said, indented, so a failing run explains itself. */
	for (char *line = buf, *end; *line; line = end) {
		end = strchrnul(line, '\n');
		fprintf(stderr, "    | %.*s\n", (int)(end - line), line);
		if (*end)
			end++;
	}
}

unsigned int vt_count_problems(const char *text)
{
	unsigned int n = 0;

	for (const char *p = text; (p = strstr(p, "vhostd: ")); p++) {
		if (!strncmp(p + 8, "error:", 6) || !strncmp(p + 8, "warn:", 5))
			n++;
	}
	return n;
}

/* --- raw messages --- */

size_t vt_wire(void *out, uint32_t request, uint32_t flags, uint32_t size, const void *payload,
	       size_t len)
{
	struct vhost_user_hdr h = {
		.request = request,
		.flags = VHOST_USER_VERSION | flags,
		.size = size,
	};

	memcpy(out, &h, sizeof(h));
	if (len)
		memcpy((uint8_t *)out + sizeof(h), payload, len);
	return sizeof(h) + len;
}

int vt_raw_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CHECK(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		FAIL("connect %s: %m", path);
	return fd;
}

bool vt_wait_eof(int sock)
{
	for (;;) {
		struct vhost_user_rx rx;
		int r;

		vhost_user_rx_init(&rx);
		r = vhost_user_recv(sock, &rx, 5000);
		vhost_user_rx_reset(&rx);
		if (r == 1)
			continue;
		return r == -ECONNRESET || r == -EPIPE;
	}
}
