// SPDX-License-Identifier: MIT
/*
 * nbd.c - the NBD block back-end: a disk exported by an NBD server
 * (nbdkit, qemu-nbd, ...), reached through libnbd by URI
 * (nbd://HOST[:PORT]/EXPORT, nbd+unix:///EXPORT?socket=PATH).
 *
 * Datapath.  Each queue context has its own libnbd handle (its own
 * connection), driven without any thread of its own: libnbd's socket is
 * polled from the queue's reactor (an io_uring poll, one-shot, re-armed
 * with the direction libnbd asks for), and nbd_aio_notify_read/write run
 * its state machine on the I/O thread.  A blk_io becomes one or more NBD
 * commands (one per guest buffer, split at the largest request the
 * server takes), all in flight at once; their completion callbacks only
 * count down, and the blk_io is settled once its last command is back:
 * after every call into libnbd the settled list is walked outside any
 * callback, so follow-up work (a flush after a write that wanted FUA from
 * a server without FUA, a retry) may issue new commands.  No copies, no
 * allocation per I/O: a blk_io's private fields hold its count of
 * commands in flight (done), its follow-up bits (stage) and its first
 * error (res).
 *
 * What the server offers decides what the guest is offered: flush, trim
 * and write-zeroes show up as blk_backend_info's no_* bits when missing.
 * Write-zeroes that reach a server without zero support (SCSI WRITE SAME)
 * are written from a zero page; discards are hints and succeed unissued.
 *
 * Reconnect.  A connection that dies (the server restarts, the socket is
 * reset) fails its commands inside libnbd; any blk_io that failed while
 * its connection was not healthy goes back to the pending list, whole,
 * and is issued again once a new connection is up (retrying a read or a
 * write of the same bytes is harmless).  The queue reconnects with a
 * short backoff (100 ms doubling to 1 s) on a reactor timeout, and keeps
 * new blk_ios pending meanwhile, so the guest only sees a slow disk.
 * After NBD_RECONNECT_S seconds (60, or VHOSTD_NBD_RECONNECT_S) without a
 * connection the queue gives up: one error line, everything pending fails
 * with EIO, and so does new I/O, while a reconnect is still tried every
 * few seconds so the disk comes back by itself when the server does.
 *
 * The poll and the timer are reactor events that may still be in the
 * ring when the queue is freed; they live in a small struct of their
 * own that the last of them frees (struct nbd_watch; an orphans list
 * keeps those still out when the process exits reachable).
 */
#include <errno.h>
#include <inttypes.h>
#include <libnbd.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "backend.h"
#include "common/log.h"
#include "common/util.h"

#define NBD_RECONNECT_S	     60
#define NBD_BACKOFF_MIN_MS   100
#define NBD_BACKOFF_MAX_MS   1000
#define NBD_GAVE_UP_RETRY_MS 5000
/* Largest command we send: NBD's usual limit, unless the server says less. */
#define NBD_MAX_REQ (32u << 20)
/* Largest trim / zero range per command (the protocol's length is 32 bits). */
#define NBD_MAX_RANGE (1u << 30)
/* Replies read per poll wake-up, at most (then the reactor's turn again). */
#define NBD_READ_BURST 64
/* Write-zeroes on a server without NBD_CMD_WRITE_ZEROES: written from this. */
#define NBD_ZERO_BUF (1u << 20)

static const uint8_t nbd_zero_page[NBD_ZERO_BUF];

/* blk_io->stage bits */
#define NQ_STAGE_FLUSH 1u /* after the write: a flush (FUA without server FUA) */

struct nbd_backend {
	struct blk_backend be;
	struct blk_backend_info info;
	char *uri;
	char name[64];
	bool can_flush, can_fua, can_trim, can_zero;
	bool multi_conn; /* a flush on one connection covers the others' writes */
	uint64_t max_req;
	unsigned int reconnect_s;
};

/* The queue's reactor events; outlives the queue until both are back. */
struct nbd_watch {
	struct nbd_watch *onext, **oprev; /* on the orphans' list once q is gone */
	struct reactor_event poll_ev;
	struct reactor_event timer_ev;
	struct __kernel_timespec ts;
	struct blk_backend_queue *q; /* NULL once the queue is freed */
	bool poll_armed, cancel_sent, timer_armed;
	int poll_fd;
	short poll_mask;
};

enum nq_state {
	NQ_CONNECTING, /* nbd_aio_connect_uri() under way */
	NQ_READY,      /* commands flow */
	NQ_BACKOFF,    /* waiting for the timer to try again */
};

struct io_list {
	struct blk_io *head, **tail;
};

struct blk_backend_queue {
	struct blk_queue_base base; /* first: bqueue.c casts */
	struct nbd_backend *nb;
	struct nbd_handle *h;
	enum nq_state state;
	struct nbd_watch *w;
	struct io_list pending;	 /* admitted, waiting for a connection */
	struct io_list settled;	 /* every command back: decide in nq_process() */
	struct blk_io **slot;	 /* [depth]: blk_ios with commands out */
	unsigned int *free_slot; /* [depth]: a stack of free slot indices */
	unsigned int nfree;
	uint64_t down_since_ns; /* when the connection was lost (or first tried) */
	unsigned int backoff_ms;
	unsigned int reconnects;
	bool was_connected; /* a reconnect, not the first connect */
	bool gave_up;	    /* down too long: I/O fails until a connection is up */
	bool error_logged;  /* one line per run of server errors */
	bool in_process;
};

/* ---- small helpers ------------------------------------------------------ */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void io_list_init(struct io_list *l)
{
	l->head = NULL;
	l->tail = &l->head;
}

static void io_list_add(struct io_list *l, struct blk_io *io)
{
	io->next = NULL;
	*l->tail = io;
	l->tail = &io->next;
}

static struct blk_io *io_list_pop(struct io_list *l)
{
	struct blk_io *io = l->head;

	if (io) {
		l->head = io->next;
		if (!l->head)
			l->tail = &l->head;
		io->next = NULL;
	}
	return io;
}

static struct nbd_backend *to_nb(struct blk_backend *be)
{
	return container_of(be, struct nbd_backend, be);
}

/* ---- opening: one synchronous connection to learn what the export is ---- */

static struct nbd_handle *nbd_handle_new(void)
{
	struct nbd_handle *h = nbd_create();

	if (!h)
		return NULL;
	/*
	 * Buffers are guest memory and are overwritten by the reply; zeroing
	 * them first is a second pass over every byte read.
	 */
	nbd_set_pread_initialize(h, false);
	return h;
}

static bool pow2_in(int64_t v, int64_t lo, int64_t hi)
{
	return v >= lo && v <= hi && !(v & (v - 1));
}

static unsigned int nbd_reconnect_limit(void)
{
	const char *s = getenv("VHOSTD_NBD_RECONNECT_S");
	char *end;
	unsigned long v;

	if (!s || !*s)
		return NBD_RECONNECT_S;
	v = strtoul(s, &end, 10);
	if (*end || v < 1 || v > 86400) {
		log_warn("VHOSTD_NBD_RECONNECT_S=%s: 1..86400 expected; using %d", s,
			 NBD_RECONNECT_S);
		return NBD_RECONNECT_S;
	}
	return (unsigned int)v;
}

static int nbd_open(const struct blk_backend_config *cfg, struct blk_backend **out, char *err,
		    size_t err_len)
{
	const char *name = cfg->name ? cfg->name : "nbd";
	struct nbd_backend *nb;
	struct nbd_handle *h;
	int64_t size, minb, prefb, maxb;
	int e;

	if (!cfg->path ||
	    (strncmp(cfg->path, "nbd://", 6) && strncmp(cfg->path, "nbd+unix://", 11) &&
	     strncmp(cfg->path, "nbds://", 7) && strncmp(cfg->path, "nbds+unix://", 12))) {
		errbuf_printf(err, err_len,
			      "%s: uri= must be nbd://HOST[:PORT]/EXPORT or "
			      "nbd+unix:///EXPORT?socket=PATH, not '%s'",
			      name, cfg->path ? cfg->path : "");
		return -EINVAL;
	}
	nb = calloc(1, sizeof(*nb));
	if (!nb || !(nb->uri = strdup(cfg->path))) {
		free(nb);
		errbuf_printf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	snprintf(nb->name, sizeof(nb->name), "%s", name);
	h = nbd_handle_new();
	if (!h) {
		errbuf_printf(err, err_len, "%s: libnbd: %s", name, nbd_get_error());
		e = -ENOMEM;
		goto fail;
	}
	if (nbd_connect_uri(h, nb->uri) < 0) {
		errbuf_printf(err, err_len, "%s: cannot connect to %s: %s", name, nb->uri,
			      nbd_get_error());
		e = -(nbd_get_errno() ? nbd_get_errno() : EIO);
		goto fail;
	}
	size = nbd_get_size(h);
	if (size < 0) {
		errbuf_printf(err, err_len, "%s: %s: no size: %s", name, nb->uri, nbd_get_error());
		e = -EIO;
		goto fail;
	}
	if (nbd_is_read_only(h) == 1 && !cfg->readonly) {
		errbuf_printf(err, err_len,
			      "%s: %s is a read-only export; add readonly=on to use it", name,
			      nb->uri);
		e = -EROFS;
		goto fail;
	}
	nb->can_flush = nbd_can_flush(h) == 1;
	nb->can_fua = nbd_can_fua(h) == 1;
	nb->can_trim = nbd_can_trim(h) == 1;
	nb->can_zero = nbd_can_zero(h) == 1;
	nb->multi_conn = nbd_can_multi_conn(h) == 1;
	minb = nbd_get_block_size(h, LIBNBD_SIZE_MINIMUM);
	prefb = nbd_get_block_size(h, LIBNBD_SIZE_PREFERRED);
	maxb = nbd_get_block_size(h, LIBNBD_SIZE_MAXIMUM);
	nb->max_req = NBD_MAX_REQ;
	if (maxb >= 4096 && (uint64_t)maxb < nb->max_req)
		nb->max_req = (uint64_t)maxb & ~4095ull;
	nb->info = (struct blk_backend_info){
		.size = (uint64_t)size & ~511ull,
		.logical_block_size = pow2_in(minb, 512, 4096) ? (uint32_t)minb : 512,
		.physical_block_size = pow2_in(prefb, 512, 65536) ? (uint32_t)prefb : 4096,
		.readonly = cfg->readonly,
		.no_flush = !nb->can_flush,
		.no_discard = !nb->can_trim,
		.no_write_zeroes = !nb->can_zero,
	};
	if (nb->info.physical_block_size < nb->info.logical_block_size)
		nb->info.physical_block_size = nb->info.logical_block_size;
	nb->reconnect_s = nbd_reconnect_limit();
	nbd_shutdown(h, 0);
	nbd_close(h);
	log_info("%s: %s: %" PRId64 " bytes, flush %s, fua %s, trim %s, zero %s, multi-conn %s",
		 name, nb->uri, size, nb->can_flush ? "yes" : "no", nb->can_fua ? "yes" : "no",
		 nb->can_trim ? "yes" : "no", nb->can_zero ? "yes" : "no",
		 nb->multi_conn ? "yes" : "no");
	/*
	 * Each queue has its own connection.  Without multi-conn the NBD
	 * spec lets a server flush only the writes of the connection the
	 * flush came on; servers over one file or device (nbdkit file,
	 * qemu-nbd) flush it all anyway, but say so.
	 */
	if (nb->can_flush && !nb->multi_conn)
		log_info("%s: the server does not promise that a flush covers other "
			 "connections: with num-queues > 1 a guest flush is only as strong as "
			 "the server makes it",
			 name);
	nb->be.ops = &blk_backend_nbd_ops;
	*out = &nb->be;
	return 0;

fail:
	if (h)
		nbd_close(h);
	free(nb->uri);
	free(nb);
	return e;
}

static void nbd_close_be(struct blk_backend *be)
{
	struct nbd_backend *nb;

	if (!be)
		return;
	nb = to_nb(be);
	free(nb->uri);
	free(nb);
}

static void nbd_get_info(const struct blk_backend *be, struct blk_backend_info *info)
{
	*info = container_of(be, const struct nbd_backend, be)->info;
}

/* ---- the reactor side: poll and timer ------------------------------------ */

static void nq_after(struct blk_backend_queue *q);
static void nq_try_connect(struct blk_backend_queue *q);

/*
 * Watches whose queue is gone, waiting for their cancelled poll or timer
 * to come back through the reactor.  Kept on a list so that one still
 * waiting when the process exits (its reactor closed first) is not a
 * leak; the engine's I/O threads share it.
 */
static pthread_mutex_t orphans_lock = PTHREAD_MUTEX_INITIALIZER;
static struct nbd_watch *orphans;

static void watch_orphan(struct nbd_watch *w)
{
	pthread_mutex_lock(&orphans_lock);
	w->onext = orphans;
	w->oprev = &orphans;
	if (orphans)
		orphans->oprev = &w->onext;
	orphans = w;
	pthread_mutex_unlock(&orphans_lock);
}

static void watch_maybe_free(struct nbd_watch *w)
{
	if (w->q || w->poll_armed || w->timer_armed)
		return;
	if (w->oprev) {
		pthread_mutex_lock(&orphans_lock);
		*w->oprev = w->onext;
		if (w->onext)
			w->onext->oprev = w->oprev;
		pthread_mutex_unlock(&orphans_lock);
	}
	free(w);
}

/* Does the socket hold unread bytes?  (No: EAGAIN, one cheap system call.) */
static bool nq_sock_readable(int fd)
{
	char c;

	return recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

/*
 * libnbd reads one reply per nbd_aio_notify_read(): go on while replies
 * are waiting and commands retire, so a burst of replies costs one poll
 * wake-up, not one each.  Never with the socket empty, or with nothing in
 * flight: libnbd would then sit in the middle of a reply that is not
 * coming, and hold back the commands issued next.
 */
static void nq_read_replies(struct blk_backend_queue *q)
{
	int before = nbd_aio_in_flight(q->h);

	if (nbd_aio_notify_read(q->h) < 0)
		return;
	for (unsigned int i = 1; i < NBD_READ_BURST && q->h; i++) {
		int now = nbd_aio_in_flight(q->h);

		if (now <= 0 || now >= before || nbd_aio_is_ready(q->h) != 1 ||
		    !nq_sock_readable(nbd_aio_get_fd(q->h)))
			break;
		before = now;
		if (nbd_aio_notify_read(q->h) < 0)
			break;
	}
}

static void nq_poll_ready(struct reactor_event *ev, int res, uint32_t flags)
{
	struct nbd_watch *w = container_of(ev, struct nbd_watch, poll_ev);
	struct blk_backend_queue *q = w->q;

	w->poll_armed = false;
	w->cancel_sent = false;
	if (!q) {
		watch_maybe_free(w);
		return;
	}
	/* A cancelled poll (the fd or the direction changed) is only re-armed. */
	if (q->h && res > 0 && w->poll_fd == nbd_aio_get_fd(q->h)) {
		if (res & (POLLIN | POLLHUP | POLLERR))
			nq_read_replies(q);
		if (q->h && (res & POLLOUT) &&
		    (nbd_aio_get_direction(q->h) & LIBNBD_AIO_DIRECTION_WRITE))
			nbd_aio_notify_write(q->h);
	}
	nq_after(q);
}

/* Poll the socket for what libnbd waits for; re-arm if that changed. */
static void nq_update_poll(struct blk_backend_queue *q)
{
	struct nbd_watch *w = q->w;
	struct io_uring_sqe *sqe;
	unsigned int dir;
	short want = 0;
	int fd;

	if (!q->h || (q->state != NQ_CONNECTING && q->state != NQ_READY))
		fd = -1;
	else
		fd = nbd_aio_get_fd(q->h);
	if (fd >= 0) {
		dir = nbd_aio_get_direction(q->h);
		if (dir & LIBNBD_AIO_DIRECTION_READ)
			want |= POLLIN;
		if (dir & LIBNBD_AIO_DIRECTION_WRITE)
			want |= POLLOUT;
	}
	if (w->poll_armed) {
		if (w->cancel_sent || (fd == w->poll_fd && want && !(want & ~w->poll_mask)))
			return;
		sqe = reactor_sqe(q->base.r, NULL);
		if (!sqe)
			return;
		io_uring_prep_poll_remove(sqe, (uint64_t)(uintptr_t)&w->poll_ev);
		w->cancel_sent = true;
		return;
	}
	if (fd < 0 || !want)
		return;
	sqe = reactor_sqe(q->base.r, &w->poll_ev);
	if (!sqe)
		return;
	io_uring_prep_poll_add(sqe, fd, (unsigned int)want);
	w->poll_armed = true;
	w->poll_fd = fd;
	w->poll_mask = want;
}

static void nq_timer_fired(struct reactor_event *ev, int res, uint32_t flags)
{
	struct nbd_watch *w = container_of(ev, struct nbd_watch, timer_ev);

	w->timer_armed = false;
	if (!w->q) {
		watch_maybe_free(w);
		return;
	}
	if (w->q->state == NQ_BACKOFF)
		nq_try_connect(w->q);
}

static void nq_arm_timer(struct blk_backend_queue *q, unsigned int ms)
{
	struct nbd_watch *w = q->w;
	struct io_uring_sqe *sqe;

	if (w->timer_armed)
		return;
	sqe = reactor_sqe(q->base.r, &w->timer_ev);
	if (!sqe)
		return;
	w->ts.tv_sec = ms / 1000;
	w->ts.tv_nsec = (long long)(ms % 1000) * 1000000;
	io_uring_prep_timeout(sqe, &w->ts, 0, 0);
	w->timer_armed = true;
}

/* ---- commands ------------------------------------------------------------ */

/*
 * Each blk_io with commands out sits in a slot (its index in ev.res, a
 * field the NBD back-end has no other use for), so that the commands a
 * dead handle never reports can be found.
 */
static void nq_slot_take(struct blk_backend_queue *q, struct blk_io *io)
{
	unsigned int i = q->free_slot[--q->nfree];

	q->slot[i] = io;
	io->ev.res = (int)i;
}

static void nq_settle(struct blk_io *io)
{
	struct blk_backend_queue *q = io->bq;

	if (--io->done)
		return;
	q->slot[io->ev.res] = NULL;
	q->free_slot[q->nfree++] = (unsigned int)io->ev.res;
	io_list_add(&q->settled, io);
}

static int nq_cmd_done(void *user_data, int *error)
{
	struct blk_io *io = user_data;

	if (*error && !io->res)
		io->res = -*error;
	nq_settle(io);
	return 1; /* retire the command */
}

/* A command could not be issued: count it as failed (errno from libnbd). */
static void nq_cmd_refused(struct blk_io *io)
{
	int e = nbd_get_errno();

	if (!io->res)
		io->res = -(e ? e : EIO);
}

#define NQ_CB(io) ((nbd_completion_callback){.callback = nq_cmd_done, .user_data = (io)})

/* One command per call, of at most @n bytes; false if it was refused. */
static bool nq_issue_one(struct blk_backend_queue *q, struct blk_io *io, int op, void *buf,
			 uint64_t n, uint64_t off, uint32_t flags)
{
	int64_t c = -1;

	io->done++;
	switch (op) {
	case BLK_IO_READ:
		c = nbd_aio_pread(q->h, buf, n, off, NQ_CB(io), 0);
		break;
	case BLK_IO_WRITE:
		c = nbd_aio_pwrite(q->h, buf, n, off, NQ_CB(io), flags);
		break;
	case BLK_IO_FLUSH:
		c = nbd_aio_flush(q->h, NQ_CB(io), 0);
		break;
	case BLK_IO_DISCARD:
		c = nbd_aio_trim(q->h, n, off, NQ_CB(io), flags);
		break;
	case BLK_IO_WRITE_ZEROES:
		c = nbd_aio_zero(q->h, n, off, NQ_CB(io), flags);
		break;
	}
	if (c < 0) {
		nq_cmd_refused(io);
		io->done--;
		return false;
	}
	return true;
}

/* Issue a buffer (or a range with @buf NULL, @zero_src for zero writes) in pieces. */
static bool nq_issue_range(struct blk_backend_queue *q, struct blk_io *io, int op, uint8_t *buf,
			   uint64_t len, uint64_t off, uint32_t flags, uint64_t max)
{
	while (len) {
		uint64_t n = len < max ? len : max;

		if (!nq_issue_one(q, io, op, buf, n, off, flags))
			return false;
		if (buf)
			buf += n;
		off += n;
		len -= n;
	}
	return true;
}

/* Send every command of @io; it settles when the last one is back. */
static void nq_issue(struct blk_backend_queue *q, struct blk_io *io)
{
	struct nbd_backend *nb = q->nb;
	bool fua = io->flags & BLK_IO_F_FUA;
	uint32_t flags = 0;
	uint64_t off = io->offset;

	io->res = 0;
	io->done = 1; /* ours until everything is issued */
	nq_slot_take(q, io);
	if (fua && nb->can_fua)
		flags |= LIBNBD_CMD_FLAG_FUA;
	else if (fua && nb->can_flush && io->op != BLK_IO_FLUSH)
		io->stage |= NQ_STAGE_FLUSH;

	switch (io->op) {
	case BLK_IO_READ:
	case BLK_IO_WRITE:
		for (unsigned int i = 0; i < io->iovcnt; i++) {
			if (!nq_issue_range(q, io, io->op, io->iov[i].iov_base, io->iov[i].iov_len,
					    off, io->op == BLK_IO_WRITE ? flags : 0, nb->max_req))
				break;
			off += io->iov[i].iov_len;
		}
		break;
	case BLK_IO_FLUSH:
		nq_issue_one(q, io, BLK_IO_FLUSH, NULL, 0, 0, 0);
		break;
	case BLK_IO_DISCARD:
		nq_issue_range(q, io, BLK_IO_DISCARD, NULL, io->len, off, flags, NBD_MAX_RANGE);
		break;
	case BLK_IO_WRITE_ZEROES:
		if (nb->can_zero) {
			if (!(io->flags & BLK_IO_F_UNMAP))
				flags |= LIBNBD_CMD_FLAG_NO_HOLE;
			nq_issue_range(q, io, BLK_IO_WRITE_ZEROES, NULL, io->len, off, flags,
				       NBD_MAX_RANGE);
			break;
		}
		/* Written from the zero page, one command per megabyte. */
		while (off < io->offset + io->len) {
			uint64_t n = io->offset + io->len - off;

			if (n > NBD_ZERO_BUF)
				n = NBD_ZERO_BUF;
			if (!nq_issue_one(q, io, BLK_IO_WRITE, (void *)nbd_zero_page, n, off,
					  flags))
				break;
			off += n;
		}
		break;
	}
	nq_settle(io);
}

/* ---- connection state ---------------------------------------------------- */

/*
 * Is the connection up?  (Not nbd_aio_is_ready(): that is false while
 * libnbd is in the middle of a reply or of sending a request.)
 */
static bool nq_alive(const struct blk_backend_queue *q)
{
	return q->state == NQ_READY && q->h && nbd_aio_is_dead(q->h) != 1 &&
	       nbd_aio_is_closed(q->h) != 1;
}

/* Fail everything waiting for a connection. */
static void nq_fail_pending(struct blk_backend_queue *q)
{
	struct blk_io *io;

	while ((io = io_list_pop(&q->pending))) {
		io->res = -EIO;
		blk_queue_base_finish(&q->base, io);
	}
}

static void nq_drop_handle(struct blk_backend_queue *q)
{
	struct nbd_handle *h = q->h;

	if (!h)
		return;
	/*
	 * Closing reaches the completion callback of any command still
	 * in flight (with an error); those blk_ios settle and, the handle
	 * being gone, go back to pending.
	 */
	q->h = NULL;
	nbd_close(h);
	/*
	 * Whatever libnbd did not hand back through a callback is lost
	 * with the handle (a command in flight when the connection died):
	 * settle it as failed, so that it is sent again.
	 */
	for (unsigned int i = 0; i < q->base.depth; i++) {
		struct blk_io *io = q->slot[i];

		if (!io)
			continue;
		if (!io->res)
			io->res = -ENOTCONN;
		io->done = 1;
		nq_settle(io);
	}
}

/* Down too long (or the export changed): fail what waits and what comes. */
static void nq_give_up(struct blk_backend_queue *q, const char *why)
{
	struct nbd_backend *nb = q->nb;

	if (!q->gave_up)
		log_error("%s: no usable connection to %s (%s); failing I/O with EIO until it "
			  "comes back",
			  nb->name, nb->uri, why);
	q->gave_up = true;
	q->state = NQ_BACKOFF;
	nq_fail_pending(q);
	nq_arm_timer(q, NBD_GAVE_UP_RETRY_MS);
}

/* A connection attempt failed or a live one died: back off, or give up. */
static void nq_conn_down(struct blk_backend_queue *q, const char *why)
{
	struct nbd_backend *nb = q->nb;
	uint64_t now = now_ns();
	bool was_ready = q->state == NQ_READY;
	char reason[160];

	/* @why may be libnbd's message, which the close below replaces. */
	snprintf(reason, sizeof(reason), "%s", why);
	nq_drop_handle(q);
	q->state = NQ_BACKOFF;
	if (was_ready) {
		log_warn("%s: lost the connection to %s (%s); reconnecting, I/O waits", nb->name,
			 nb->uri, reason);
		q->down_since_ns = now;
		q->backoff_ms = NBD_BACKOFF_MIN_MS;
	}
	if (q->gave_up) {
		nq_arm_timer(q, NBD_GAVE_UP_RETRY_MS);
		return;
	}
	if (now - q->down_since_ns >= (uint64_t)nb->reconnect_s * 1000000000ull) {
		char msg[200];

		snprintf(msg, sizeof(msg), "gave up after %u s: %s", nb->reconnect_s, reason);
		nq_give_up(q, msg);
		return;
	}
	nq_arm_timer(q, q->backoff_ms);
	q->backoff_ms =
		q->backoff_ms * 2 > NBD_BACKOFF_MAX_MS ? NBD_BACKOFF_MAX_MS : q->backoff_ms * 2;
}

static void nq_try_connect(struct blk_backend_queue *q)
{
	nq_drop_handle(q);
	q->h = nbd_handle_new();
	if (!q->h || nbd_aio_connect_uri(q->h, q->nb->uri) < 0) {
		const char *e = nbd_get_error();

		nq_conn_down(q, e ? e : "out of memory");
	} else {
		q->state = NQ_CONNECTING;
	}
	nq_after(q);
}

/* Send what waited for a connection (in order), while it stays up. */
static void nq_issue_pending(struct blk_backend_queue *q)
{
	struct io_list l = q->pending;
	struct blk_io *io;

	if (!l.head)
		return;
	io_list_init(&q->pending);
	while ((io = io_list_pop(&l))) {
		if (q->state == NQ_READY)
			nq_issue(q, io);
		else
			io_list_add(&q->pending, io);
	}
}

/* The handshake finished: check the export, then send what waited. */
static void nq_conn_up(struct blk_backend_queue *q)
{
	struct nbd_backend *nb = q->nb;
	int64_t size = nbd_get_size(q->h);

	if (size < 0 || ((uint64_t)size & ~511ull) != nb->info.size) {
		char msg[128];

		/* Another disk behind the same name: never write to it. */
		snprintf(msg, sizeof(msg), "the export now has %" PRId64 " bytes, not %" PRIu64,
			 size, nb->info.size);
		nq_drop_handle(q);
		nq_give_up(q, msg);
		return;
	}
	if (q->was_connected) {
		q->reconnects++;
		log_info("%s: reconnected to %s after %" PRIu64 " ms%s", nb->name, nb->uri,
			 (now_ns() - q->down_since_ns) / 1000000,
			 q->gave_up ? "; I/O works again" : "");
	}
	q->gave_up = false;
	q->was_connected = true;
	q->state = NQ_READY;
	q->down_since_ns = 0;
	q->backoff_ms = NBD_BACKOFF_MIN_MS;
	q->error_logged = false;
	nq_issue_pending(q);
}

/* An error that is about the connection, not the data: worth a retry. */
static bool nq_conn_error(int e)
{
	return e == ESHUTDOWN || e == ENOTCONN || e == ECONNRESET || e == EPIPE ||
	       e == ECONNABORTED || e == ECONNREFUSED || e == ETIMEDOUT;
}

/*
 * After every call into libnbd: decide what settled, follow the
 * connection's state, and poll for what libnbd waits for next.
 */
static void nq_process(struct blk_backend_queue *q)
{
	struct blk_io *io;

	while ((io = io_list_pop(&q->settled))) {
		if (io->res < 0 && nq_alive(q) && nq_conn_error((int)-io->res)) {
			/*
			 * The server is going away (nbdkit answers ESHUTDOWN
			 * while it stops): do not wait for it to hang up.
			 */
			nq_conn_down(q, strerror((int)-io->res));
		}
		if (io->res < 0 && !nq_alive(q)) {
			/* Lost with its connection: send it again on the next one. */
			io->res = 0;
			if (q->gave_up) {
				io->res = -EIO;
				blk_queue_base_finish(&q->base, io);
			} else {
				io_list_add(&q->pending, io);
			}
			continue;
		}
		if (io->res < 0) {
			if (!q->error_logged)
				log_warn("%s: %s: I/O error from the server: %s", q->nb->name,
					 q->nb->uri, strerror((int)-io->res));
			q->error_logged = true;
		} else if (io->stage & NQ_STAGE_FLUSH) {
			io->stage &= ~NQ_STAGE_FLUSH;
			io->done = 1;
			nq_slot_take(q, io);
			nq_issue_one(q, io, BLK_IO_FLUSH, NULL, 0, 0, 0);
			nq_settle(io);
			continue;
		} else {
			io->res = io->op == BLK_IO_READ || io->op == BLK_IO_WRITE ? (int64_t)io->len
										  : 0;
		}
		blk_queue_base_finish(&q->base, io);
	}
}

static void nq_after(struct blk_backend_queue *q)
{
	/* Callbacks run inside libnbd calls made from here: no recursion. */
	if (q->in_process)
		return;
	q->in_process = true;
	for (;;) {
		nq_process(q);
		if (q->state == NQ_CONNECTING && q->h) {
			if (nbd_aio_is_ready(q->h) == 1)
				nq_conn_up(q);
			else if (nbd_aio_is_dead(q->h) == 1 || nbd_aio_is_closed(q->h) == 1)
				nq_conn_down(q, nbd_get_error() ? nbd_get_error() : "refused");
		} else if (q->state == NQ_READY && !nq_alive(q)) {
			nq_conn_down(q, "server went away");
		} else if (q->state == NQ_READY && q->pending.head) {
			/* Nothing waits while a connection is up. */
			nq_issue_pending(q);
		}
		if (!q->settled.head)
			break;
	}
	nq_update_poll(q);
	q->in_process = false;
}

/* ---- queue contexts ------------------------------------------------------- */

static void nbd_queue_free(struct blk_backend_queue *q)
{
	struct nbd_watch *w;
	struct io_uring_sqe *sqe;

	if (!q)
		return;
	w = q->w;
	q->in_process = true; /* callbacks from nbd_close only count down */
	if (q->h) {
		nbd_aio_disconnect(q->h, 0);
		nq_drop_handle(q);
	}
	if (w) {
		w->q = NULL;
		if (q->base.own_reactor) {
			/* Closing our own ring cancels both; nothing will call back. */
			blk_queue_base_destroy(&q->base);
			free(w);
			free(q->slot);
			free(q->free_slot);
			free(q);
			return;
		}
		if (w->poll_armed && !w->cancel_sent && (sqe = reactor_sqe(q->base.r, NULL)))
			io_uring_prep_poll_remove(sqe, (uint64_t)(uintptr_t)&w->poll_ev);
		if (w->timer_armed && (sqe = reactor_sqe(q->base.r, NULL)))
			io_uring_prep_timeout_remove(sqe, (uint64_t)(uintptr_t)&w->timer_ev, 0);
		if (w->poll_armed || w->timer_armed)
			watch_orphan(w);
		else
			free(w);
	}
	blk_queue_base_destroy(&q->base);
	free(q->slot);
	free(q->free_slot);
	free(q);
}

static int nbd_queue_attach(struct blk_backend *be, unsigned int depth, struct reactor *r,
			    void (*wake)(void *arg), void *arg, struct blk_backend_queue **out)
{
	struct blk_backend_queue *q = calloc(1, sizeof(*q));
	int ret;

	if (!q)
		return -ENOMEM;
	q->w = calloc(1, sizeof(*q->w));
	if (!q->w) {
		free(q);
		return -ENOMEM;
	}
	ret = blk_queue_base_init(&q->base, depth, r, wake, arg);
	if (ret < 0) {
		free(q->w);
		free(q);
		return ret;
	}
	q->slot = calloc(depth, sizeof(*q->slot));
	q->free_slot = calloc(depth, sizeof(*q->free_slot));
	if (!q->slot || !q->free_slot) {
		free(q->slot);
		free(q->free_slot);
		blk_queue_base_destroy(&q->base);
		free(q->w);
		free(q);
		return -ENOMEM;
	}
	for (unsigned int i = 0; i < depth; i++)
		q->free_slot[i] = depth - 1 - i;
	q->nfree = depth;
	q->nb = to_nb(be);
	q->w->q = q;
	q->w->poll_ev.fn = nq_poll_ready;
	q->w->timer_ev.fn = nq_timer_fired;
	q->w->poll_fd = -1;
	io_list_init(&q->pending);
	io_list_init(&q->settled);
	q->backoff_ms = NBD_BACKOFF_MIN_MS;
	q->down_since_ns = now_ns();
	/* Asynchronous: I/O prepped before the handshake ends waits for it. */
	q->state = NQ_BACKOFF;
	nq_try_connect(q);
	*out = q;
	return 0;
}

static int nbd_queue_new(struct blk_backend *be, unsigned int depth, struct blk_backend_queue **out)
{
	return nbd_queue_attach(be, depth, NULL, NULL, NULL, out);
}

static int nbd_prep(struct blk_backend_queue *q, struct blk_io *io)
{
	int r;

	if (io->op > BLK_IO_EVENTFD)
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
	if (io->op != BLK_IO_READ && io->op != BLK_IO_FLUSH && q->nb->info.readonly) {
		io->res = -EROFS;
	} else if ((io->op == BLK_IO_FLUSH && !q->nb->can_flush) ||
		   (io->op == BLK_IO_DISCARD && !q->nb->can_trim) ||
		   ((io->op == BLK_IO_READ || io->op == BLK_IO_WRITE) && !io->len)) {
		/* Nothing to flush; a discard is a hint; nothing to move. */
		io->res = (int64_t)io->len;
	} else if (q->gave_up && q->state != NQ_READY) {
		io->res = -EIO;
	} else if (q->state != NQ_READY) {
		io_list_add(&q->pending, io);
		return 0;
	} else {
		nq_issue(q, io);
		nq_after(q);
		return 0;
	}
	blk_queue_base_finish(&q->base, io);
	return 0;
}

static int nbd_submit(struct blk_backend_queue *q, int timeout_ms)
{
	return blk_queue_base_submit(&q->base, timeout_ms);
}

static unsigned int nbd_reap(struct blk_backend_queue *q, blk_io_done_fn done, void *arg)
{
	return blk_queue_base_reap(&q->base, done, arg);
}

const struct blk_backend_ops blk_backend_nbd_ops = {
	.name = "nbd",
	.open = nbd_open,
	.close = nbd_close_be,
	.get_info = nbd_get_info,
	.queue_new = nbd_queue_new,
	.queue_attach = nbd_queue_attach,
	.queue_free = nbd_queue_free,
	.prep = nbd_prep,
	.submit = nbd_submit,
	.reap = nbd_reap,
};
