// SPDX-License-Identifier: MIT
/*
 * rbd.c - the Ceph RBD block back-end: an image in a RADOS pool, through
 * librbd's asynchronous calls (rbd_aio_readv/writev/flush/discard/
 * write_zeroes).
 *
 * One cluster connection and one open image per device; every queue
 * submits to the same rbd_image_t (librbd is thread-safe, and a second
 * handle of the same image in one process would fight over the exclusive
 * lock).  The image size is the cluster's.
 *
 * Completions.  librbd calls a completion's callback on one of its own
 * threads, never on the queue's I/O thread, and that thread must not
 * block the engine.  So a callback only links its slot onto the queue's
 * finished list under a small mutex and, when the list was empty, writes
 * the queue's eventfd.  The I/O thread's reactor polls that eventfd while
 * librbd holds any of the queue's operations (and only then: a drained
 * queue leaves nothing in the ring, so freeing it never races with a
 * pending poll); the poll's completion takes the whole list, reads each
 * result, releases the rbd_completion_t and hands the blk_io to the
 * shared done list (bqueue.c).  The mutex is what makes tearing a queue
 * down safe: once every slot is back, taking it once guarantees no
 * librbd thread is still between its push and its eventfd write.
 *
 * Slots (one per blk_io the queue may hold) are preallocated; the only
 * allocation per operation is librbd's own completion object.  A write
 * with FUA is a write and then a flush (librbd's cache may hold the
 * write), reported once at the end.  Reads that come back short (the
 * image shrank under us) are zero-filled, as a disk past its end reads.
 *
 * Connecting.  rados_connect() would wait client_mount_timeout (300 s by
 * default) for a cluster that is not there, and opening the image waits
 * for the monitors; unless the Ceph configuration says otherwise both are
 * bounded at RBD_CONNECT_TIMEOUT seconds, so a daemon started against a
 * dead cluster fails with one line instead of hanging.  Once connected, an
 * OSD that stops answering is librbd's business: it resends when the OSD
 * is back, and until then the requests stay in flight, so a queue cannot
 * stop before they finish (as in QEMU); "rados osd op timeout" in the
 * configuration turns them into I/O errors instead.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <rados/librados.h>
#include <rbd/librbd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include "backend.h"
#include "common/log.h"
#include "common/util.h"

/* Seconds to reach the cluster, when its configuration keeps Ceph's default. */
#define RBD_CONNECT_TIMEOUT "10"

struct rbd_backend {
	struct blk_backend be;
	rados_t cluster;
	rados_ioctx_t ioctx;
	rbd_image_t image;
	struct blk_backend_info info;
	char name[64];
};

/* One blk_io's operation while librbd holds it. */
struct rbd_slot {
	struct blk_backend_queue *q;
	struct blk_io *io;
	rbd_completion_t c;
	bool in_librbd;	       /* I/O thread: started and not collected */
	struct rbd_slot *next; /* the free list, or the finished list */
};

struct blk_backend_queue {
	struct blk_queue_base base; /* first: bqueue.c casts */
	struct rbd_backend *rb;
	struct rbd_slot *slots; /* base.depth of them */
	struct rbd_slot *free;
	unsigned int busy; /* slots librbd holds */
	bool dying;	   /* queue_free: start nothing more */
	int efd;	   /* written by librbd's threads: finished is not empty */
	bool armed;	   /* a poll on efd is in the reactor */
	struct reactor_event ev;
	pthread_mutex_t lock; /* guards finished; see the top of the file */
	struct rbd_slot *finished;
};

static struct rbd_backend *to_rb(struct blk_backend *be)
{
	return container_of(be, struct rbd_backend, be);
}

/* ---- open / close -------------------------------------------------------- */

/* Shorten a Ceph default that is far too long for a daemon starting up. */
static void rbd_bound_timeout(rados_t cluster, const char *key, const char *ceph_default)
{
	char v[32];

	if (rados_conf_get(cluster, key, v, sizeof(v)) == 0 && !strcmp(v, ceph_default))
		rados_conf_set(cluster, key, RBD_CONNECT_TIMEOUT);
}

static int rbd_connect(struct rbd_backend *rb, const struct blk_backend_config *cfg, char *err,
		       size_t err_len)
{
	const char *conf = cfg->rbd_conf && cfg->rbd_conf[0] ? cfg->rbd_conf : NULL;
	const char *user = cfg->rbd_user && cfg->rbd_user[0] ? cfg->rbd_user : NULL;
	char mon[256] = "";
	int r;

	r = rados_create(&rb->cluster, user);
	if (r < 0) {
		errbuf_printf(err, err_len, "%s: rados_create(%s): %s", rb->name,
			      user ? user : "admin", strerror(-r));
		rb->cluster = NULL;
		return r;
	}
	/* Library code must not write to our stderr; errors come back as codes. */
	rados_conf_set(rb->cluster, "log_to_stderr", "false");
	rados_conf_set(rb->cluster, "err_to_stderr", "false");
	r = rados_conf_read_file(rb->cluster, conf);
	if (r < 0) {
		if (conf)
			errbuf_printf(err, err_len, "%s: cannot read Ceph configuration %s: %s",
				      rb->name, conf, strerror(-r));
		else
			errbuf_printf(err, err_len,
				      "%s: no Ceph configuration found (give conf=FILE): %s",
				      rb->name, strerror(-r));
		return r;
	}
	/* CEPH_ARGS, as the rbd and ceph tools take it. */
	rados_conf_parse_env(rb->cluster, NULL);
	rbd_bound_timeout(rb->cluster, "client_mount_timeout", "300");
	rbd_bound_timeout(rb->cluster, "rados_mon_op_timeout", "0");
	/* cache=none: no librbd cache either, as QEMU does for rbd. */
	if (cfg->direct)
		rados_conf_set(rb->cluster, "rbd_cache", "false");
	r = rados_connect(rb->cluster);
	if (r < 0) {
		rados_conf_get(rb->cluster, "mon_host", mon, sizeof(mon));
		errbuf_printf(err, err_len,
			      "%s: cannot connect to the Ceph cluster (mon host %s): %s", rb->name,
			      mon[0] ? mon : "unset", strerror(-r));
		return r;
	}
	return 0;
}

static int rbd_open_image(struct rbd_backend *rb, const struct blk_backend_config *cfg, char *err,
			  size_t err_len)
{
	uint64_t size;
	int r;

	r = rados_ioctx_create(rb->cluster, cfg->rbd_pool, &rb->ioctx);
	if (r < 0) {
		rb->ioctx = NULL;
		if (r == -ENOENT)
			errbuf_printf(err, err_len, "%s: Ceph pool '%s' does not exist", rb->name,
				      cfg->rbd_pool);
		else
			errbuf_printf(err, err_len, "%s: Ceph pool '%s': %s", rb->name,
				      cfg->rbd_pool, strerror(-r));
		return r;
	}
	if (cfg->readonly)
		r = rbd_open_read_only(rb->ioctx, cfg->rbd_image, &rb->image, NULL);
	else
		r = rbd_open(rb->ioctx, cfg->rbd_image, &rb->image, NULL);
	if (r < 0) {
		rb->image = NULL;
		if (r == -ENOENT)
			errbuf_printf(err, err_len, "%s: RBD image '%s/%s' does not exist",
				      rb->name, cfg->rbd_pool, cfg->rbd_image);
		else
			errbuf_printf(err, err_len, "%s: RBD image '%s/%s': %s", rb->name,
				      cfg->rbd_pool, cfg->rbd_image, strerror(-r));
		return r;
	}
	r = rbd_get_size(rb->image, &size);
	if (r < 0) {
		errbuf_printf(err, err_len, "%s: RBD image '%s/%s': size: %s", rb->name,
			      cfg->rbd_pool, cfg->rbd_image, strerror(-r));
		return r;
	}
	rb->info = (struct blk_backend_info){
		.size = size,
		.logical_block_size = 512,
		/* librbd updates sub-4K writes by read-modify-write of its objects' extents */
		.physical_block_size = 4096,
		.readonly = cfg->readonly,
		.direct = cfg->direct,
	};
	return 0;
}

static void rbd_close_be(struct blk_backend *be)
{
	struct rbd_backend *rb;

	if (!be)
		return;
	rb = to_rb(be);
	/* rbd_close waits for what librbd still holds (nothing: queues are gone). */
	if (rb->image)
		rbd_close(rb->image);
	if (rb->ioctx)
		rados_ioctx_destroy(rb->ioctx);
	if (rb->cluster)
		rados_shutdown(rb->cluster);
	free(rb);
}

static int rbd_open_be(const struct blk_backend_config *cfg, struct blk_backend **out, char *err,
		       size_t err_len)
{
	struct rbd_backend *rb;
	int r;

	if (!cfg->rbd_pool || !cfg->rbd_pool[0] || !cfg->rbd_image || !cfg->rbd_image[0]) {
		errbuf_printf(err, err_len, "%s: the rbd back-end needs pool= and image=",
			      cfg->name ? cfg->name : "rbd");
		return -EINVAL;
	}
	rb = calloc(1, sizeof(*rb));
	if (!rb) {
		errbuf_printf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	rb->be.ops = &blk_backend_rbd_ops;
	snprintf(rb->name, sizeof(rb->name), "%s", cfg->name ? cfg->name : cfg->rbd_image);
	r = rbd_connect(rb, cfg, err, err_len);
	if (!r)
		r = rbd_open_image(rb, cfg, err, err_len);
	if (r < 0) {
		rbd_close_be(&rb->be);
		return r;
	}
	*out = &rb->be;
	return 0;
}

static void rbd_get_info(const struct blk_backend *be, struct blk_backend_info *info)
{
	*info = container_of(be, const struct rbd_backend, be)->info;
}

/* ---- completions ------------------------------------------------------------ */

/* On a librbd thread: hand @c's slot to the queue's I/O thread. */
static void rbd_callback(rbd_completion_t c, void *arg)
{
	struct rbd_slot *s = arg;
	struct blk_backend_queue *q = s->q;
	uint64_t one = 1;
	bool was_empty;

	pthread_mutex_lock(&q->lock);
	was_empty = !q->finished;
	s->next = q->finished;
	q->finished = s;
	/* Only the first needs a wake-up: the I/O thread takes the whole list. */
	if (was_empty && write(q->efd, &one, sizeof(one)) < 0)
		log_error("%s: eventfd write: %s", q->rb->name, strerror(errno));
	pthread_mutex_unlock(&q->lock);
}

static void rbd_notified(struct reactor_event *ev, int res, uint32_t flags);

/* Poll efd while librbd holds an operation of ours. */
static void rbd_arm(struct blk_backend_queue *q)
{
	struct io_uring_sqe *sqe;

	if (q->armed || !q->busy)
		return;
	sqe = reactor_sqe(q->base.r, &q->ev);
	if (!sqe) {
		/* The ring refused a submission: look again on the next pass. */
		reactor_defer(q->base.r, &q->ev, -EAGAIN);
		q->armed = true;
		return;
	}
	io_uring_prep_poll_add(sqe, q->efd, POLLIN);
	q->armed = true;
}

static int rbd_start(struct blk_backend_queue *q, struct rbd_slot *s);

/* @s came back from librbd: the next step of its blk_io, or its end. */
static void rbd_slot_done(struct blk_backend_queue *q, struct rbd_slot *s)
{
	struct blk_io *io = s->io;
	ssize_t r = rbd_aio_get_return_value(s->c);

	rbd_aio_release(s->c);
	s->in_librbd = false;
	q->busy--;
	if (r < 0) {
		io->res = r;
	} else if (io->stage == 0) {
		if (io->op == BLK_IO_READ && (uint64_t)r < io->len) {
			/* Past the image's end: zeroes, as a disk reads there. */
			uint64_t skip = (uint64_t)r;

			for (unsigned int i = 0; i < io->iovcnt; i++) {
				size_t l = io->iov[i].iov_len;

				if (skip >= l) {
					skip -= l;
					continue;
				}
				memset((char *)io->iov[i].iov_base + skip, 0, l - skip);
				skip = 0;
			}
		}
		io->res = io->op == BLK_IO_READ || io->op == BLK_IO_WRITE ? (int64_t)io->len : 0;
		io->done = io->len;
		if ((io->flags & BLK_IO_F_FUA) && io->op != BLK_IO_READ && !q->dying) {
			/* FUA: durable before it completes, whatever librbd caches. */
			int e;

			io->stage = 1;
			e = rbd_start(q, s);
			if (!e)
				return;
			io->res = e;
		}
	}
	s->next = q->free;
	q->free = s;
	blk_queue_base_finish(&q->base, io);
}

/* Take what librbd finished, in the order it finished. */
static unsigned int rbd_collect(struct blk_backend_queue *q)
{
	struct rbd_slot *list, *rev = NULL, *next;
	unsigned int n = 0;

	pthread_mutex_lock(&q->lock);
	list = q->finished;
	q->finished = NULL;
	pthread_mutex_unlock(&q->lock);
	for (; list; list = next) {
		next = list->next;
		list->next = rev;
		rev = list;
	}
	for (; rev; rev = next) {
		next = rev->next;
		rbd_slot_done(q, rev);
		n++;
	}
	return n;
}

static void rbd_notified(struct reactor_event *ev, int res, uint32_t flags)
{
	struct blk_backend_queue *q = container_of(ev, struct blk_backend_queue, ev);
	uint64_t v;

	q->armed = false;
	/* Reset the count first: a push after this writes it again. */
	if (read(q->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_error("%s: eventfd read: %s", q->rb->name, strerror(errno));
	rbd_collect(q);
	rbd_arm(q);
}

/* ---- queues -------------------------------------------------------------- */

static void rbd_queue_drain(struct blk_backend_queue *q)
{
	q->dying = true;
	while (q->busy) {
		if (q->base.own_reactor) {
			/* Our own ring: its poll on efd collects them. */
			reactor_wait(q->base.r, -1);
			reactor_dispatch(q->base.r);
			continue;
		}
		/*
		 * Not expected: the engine drains a queue before freeing it.
		 * Wait for librbd directly; the poll stays in the shared ring.
		 */
		for (unsigned int i = 0; i < q->base.depth; i++)
			if (q->slots[i].in_librbd)
				rbd_aio_wait_for_complete(q->slots[i].c);
		rbd_collect(q);
	}
	/* No librbd thread is left between its push and its eventfd write. */
	pthread_mutex_lock(&q->lock);
	pthread_mutex_unlock(&q->lock);
}

static void rbd_orphan_poll(struct reactor_event *ev, int res, uint32_t flags)
{
	struct blk_backend_queue *q = container_of(ev, struct blk_backend_queue, ev);

	close(q->efd);
	free(q);
}

static void rbd_queue_free(struct blk_backend_queue *q)
{
	uint64_t one = 1;

	if (!q)
		return;
	rbd_queue_drain(q);
	free(q->slots);
	pthread_mutex_destroy(&q->lock);
	blk_queue_base_destroy(&q->base);
	if (q->armed && !q->base.own_reactor) {
		/* A poll in a ring we do not own: let it fire, and free us then. */
		q->ev.fn = rbd_orphan_poll;
		if (write(q->efd, &one, sizeof(one)) == sizeof(one))
			return;
		log_error("%s: queue freed with a poll pending: leaking it", q->rb->name);
		return;
	}
	close(q->efd);
	free(q);
}

static int rbd_queue_attach(struct blk_backend *be, unsigned int depth, struct reactor *r,
			    void (*wake)(void *arg), void *arg, struct blk_backend_queue **out)
{
	struct blk_backend_queue *q;
	int ret;

	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->rb = to_rb(be);
	q->efd = -1;
	ret = blk_queue_base_init(&q->base, depth, r, wake, arg);
	if (ret < 0) {
		free(q);
		return ret;
	}
	q->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	q->slots = calloc(depth, sizeof(*q->slots));
	if (q->efd < 0 || !q->slots) {
		ret = q->efd < 0 ? -errno : -ENOMEM;
		if (q->efd >= 0)
			close(q->efd);
		free(q->slots);
		blk_queue_base_destroy(&q->base);
		free(q);
		return ret;
	}
	pthread_mutex_init(&q->lock, NULL);
	q->ev.fn = rbd_notified;
	for (unsigned int i = depth; i-- > 0;) {
		q->slots[i].q = q;
		q->slots[i].next = q->free;
		q->free = &q->slots[i];
	}
	*out = q;
	return 0;
}

static int rbd_queue_new(struct blk_backend *be, unsigned int depth, struct blk_backend_queue **out)
{
	return rbd_queue_attach(be, depth, NULL, NULL, NULL, out);
}

/* ---- submission ---------------------------------------------------------- */

/* Hand @s's blk_io (its current stage) to librbd: 0 or -errno (nothing started). */
static int rbd_start(struct blk_backend_queue *q, struct rbd_slot *s)
{
	rbd_image_t img = q->rb->image;
	struct blk_io *io = s->io;
	int r;

	r = rbd_aio_create_completion(s, rbd_callback, &s->c);
	if (r < 0)
		return r;
	if (io->stage) {
		r = rbd_aio_flush(img, s->c);
	} else {
		switch (io->op) {
		case BLK_IO_READ:
			r = rbd_aio_readv(img, io->iov, (int)io->iovcnt, io->offset, s->c);
			break;
		case BLK_IO_WRITE:
			r = rbd_aio_writev(img, io->iov, (int)io->iovcnt, io->offset, s->c);
			break;
		case BLK_IO_FLUSH:
			r = rbd_aio_flush(img, s->c);
			break;
		case BLK_IO_DISCARD:
			r = rbd_aio_discard(img, io->offset, io->len, s->c);
			break;
		default: /* BLK_IO_WRITE_ZEROES */
			/* Without UNMAP the range must stay allocated (QEMU does the same). */
			r = rbd_aio_write_zeroes(img, io->offset, io->len, s->c,
						 io->flags & BLK_IO_F_UNMAP
							 ? 0
							 : RBD_WRITE_ZEROES_FLAG_THICK_PROVISION,
						 0);
			break;
		}
	}
	if (r < 0) {
		rbd_aio_release(s->c);
		return r;
	}
	s->in_librbd = true;
	q->busy++;
	rbd_arm(q);
	return 0;
}

static int rbd_prep(struct blk_backend_queue *q, struct blk_io *io)
{
	struct rbd_slot *s;
	int r;

	if (io->op > BLK_IO_EVENTFD)
		return -EINVAL;
	if ((io->op == BLK_IO_READ || io->op == BLK_IO_WRITE) && io->iovcnt > INT_MAX)
		return -EINVAL;
	r = blk_queue_base_admit(&q->base, q, io);
	if (r < 0)
		return r;
	if (io->op == BLK_IO_EVENTFD) {
		r = blk_queue_base_wait_eventfd(&q->base, io);
		if (r < 0)
			q->base.inflight--;
		return r;
	}
	if (io->op == BLK_IO_READ || io->op == BLK_IO_WRITE) {
		io->len = 0;
		for (unsigned int i = 0; i < io->iovcnt; i++)
			io->len += io->iov[i].iov_len;
	}
	/* admit() bounds blk_ios at depth, and there are depth slots. */
	s = q->free;
	q->free = s->next;
	s->io = io;
	r = rbd_start(q, s);
	if (r < 0) {
		/* librbd refused it (a read-only image, a blocklisted client): the I/O fails. */
		s->next = q->free;
		q->free = s;
		io->res = r;
		blk_queue_base_finish(&q->base, io);
	}
	return 0;
}

static int rbd_submit(struct blk_backend_queue *q, int timeout_ms)
{
	return blk_queue_base_submit(&q->base, timeout_ms);
}

static unsigned int rbd_reap(struct blk_backend_queue *q, blk_io_done_fn done, void *arg)
{
	return blk_queue_base_reap(&q->base, done, arg);
}

const struct blk_backend_ops blk_backend_rbd_ops = {
	.name = "rbd",
	.open = rbd_open_be,
	.close = rbd_close_be,
	.get_info = rbd_get_info,
	.queue_new = rbd_queue_new,
	.queue_attach = rbd_queue_attach,
	.queue_free = rbd_queue_free,
	.prep = rbd_prep,
	.submit = rbd_submit,
	.reap = rbd_reap,
};
