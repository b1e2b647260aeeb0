// SPDX-License-Identifier: MIT
/*
 * scsi.c - the virtio-scsi device model (virtio 1.2, 5.6) over vhost-user.
 *
 * Queues.  Queue 0 is the control queue (task management, asynchronous
 * notification), queue 1 the event queue (hot-plug and parameter-change
 * events), queues 2.. the request queues; every one runs on the engine
 * (engine.h), which pops chains into request slots indexed by descriptor
 * head.  A request queue turns each command into a SCSI task
 * (scsi_disk.h) and, for block I/O, one back-end operation on the back-end
 * queue of that LUN that lives on the same thread.  The event queue takes
 * a buffer only when an event happens (eng_queue_pop(), as QEMU and SPDK
 * do): a buffer kept popped would have to be handed back at every ring
 * stop, and a Linux guest does not post it again.  Every queue is tracked
 * in the front-end's in-flight region for crash-safe reconnect; why each
 * kind of chain may be started again is at scsi_get_protocol_features().
 *
 * Trust.  The driver is untrusted.  The request header (LUN, tag, CDB) and
 * every control request are copied out of guest memory once, then
 * validated, then only the copies are used; the response header is
 * written with iov_from_buf() into the iovecs it was found in, which are
 * remembered before the data buffers are carved out.  A chain too short to
 * hold its headers marks the device broken (NEEDS_RESET), as QEMU does;
 * everything else gets a response code or SCSI status.  scsi_disk.c
 * checks every LBA range against the capacity before any I/O, and refuses
 * a transfer the buffers cannot hold.
 *
 * Task management is in scsi_ctrl.c: a TMF waits for the commands it
 * aborts on the controller's TMF thread; this file keeps the request
 * queues' in-flight lists it marks, and tells it (from a later pass, once
 * published) when the marked ones completed.  Option strings are parsed
 * in scsi_options.c; the structures the three share are in scsi_priv.h.
 *
 * Statistics follow /proc/diskstats per LUN (stats.c): each request queue
 * thread owns its counters; commands that move no blocks are not counted.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/backend.h"
#include "common/kvopts.h"
#include "common/log.h"
#include "common/util.h"
#include "engine/devopts.h"
#include "engine/engine.h"
#include "vhost-user/inflight.h"
#include "scsi.h"
#include "scsi_disk.h"
#include "scsi_priv.h"
#include "stats.h"
#include "virtio_scsi.h"

/* ---- helpers -------------------------------------------------------------- */

static bool scsi_has_feature(const struct scsi_dev *dev, unsigned int bit)
{
	return atomic_load_explicit(&dev->features, memory_order_relaxed) & (1ull << bit);
}

/* Cut @iov to its first @n bytes (it holds at least that many). */
static void iov_trim(struct iovec *iov, unsigned int *cnt, size_t n)
{
	unsigned int i;

	for (i = 0; i < *cnt && n; i++) {
		if (iov[i].iov_len >= n) {
			iov[i].iov_len = n;
			n = 0;
		} else {
			n -= iov[i].iov_len;
		}
	}
	*cnt = i;
}

/* The LUN at @target / @lun, or NULL; *@target_exists says if the target has any. */
struct scsi_lun *scsi_find_lun(struct scsi_dev *dev, unsigned int target, unsigned int lun,
			       bool *target_exists)
{
	struct scsi_lun *found = NULL;
	unsigned int n = nr_luns_of(dev);

	*target_exists = false;
	for (unsigned int i = 0; i < n; i++) {
		struct scsi_lun *l = lun_at(dev, i);

		if (!l || l->opts.target != target || !atomic_load(&l->ready))
			continue;
		*target_exists = true;
		if (l->opts.lun == lun)
			found = l;
	}
	return found;
}

/*
 * virtio-scsi addressing (5.6.6.1): lun[0] = 1, lun[1] = target, lun[2..3]
 * a single-level LUN (peripheral or flat space, as QEMU accepts).  False if
 * the address is not one.
 */
bool scsi_decode_lun(const uint8_t *lun, unsigned int *target, unsigned int *id)
{
	if (lun[0] != 1)
		return false;
	if (lun[2] != 0 && !(lun[2] >= 0x40 && lun[2] < 0x80))
		return false;
	*target = lun[1];
	*id = ((unsigned int)lun[2] << 8 | lun[3]) & 0x3fff;
	return true;
}

/* ---- statistics ------------------------------------------------------------- */

static unsigned int scsi_rq_index(const struct scsi_queue *sq)
{
	return sq->index - VIRTIO_SCSI_REQ_QUEUE0;
}

static void scsi_stats_start(struct scsi_queue *sq, struct scsi_req *req, enum blk_stat_dir dir,
			     uint64_t sectors)
{
	req->stat_dir = (int8_t)dir;
	req->sectors = sectors;
	req->start_ns = eng_queue_now_ns(sq->eq);
	blk_stats_io_start(&req->lun->stats, scsi_rq_index(sq), req->start_ns);
}

static void scsi_stats_done(struct scsi_queue *sq, struct scsi_req *req, bool ok)
{
	if (req->stat_dir < 0)
		return;
	blk_stats_io_done(&req->lun->stats, scsi_rq_index(sq), (enum blk_stat_dir)req->stat_dir,
			  req->sectors, ok, req->start_ns, eng_queue_now_ns(sq->eq));
	req->stat_dir = -1;
}

/* ---- request queues ------------------------------------------------------------ */

static void scsi_inflight_add(struct scsi_queue *sq, struct scsi_req *req)
{
	req->prev = NULL;
	req->next = sq->inflight;
	if (sq->inflight)
		sq->inflight->prev = req;
	sq->inflight = req;
}

static void scsi_inflight_del(struct scsi_queue *sq, struct scsi_req *req)
{
	if (req->prev)
		req->prev->next = req->next;
	else
		sq->inflight = req->next;
	if (req->next)
		req->next->prev = req->prev;
	req->prev = req->next = NULL;
}

void scsi_tmf_commands_done(struct scsi_dev *dev, struct scsi_tmf *tmf, unsigned int n)
{
	pthread_mutex_lock(&dev->tmf_lock);
	if (atomic_fetch_sub(&tmf->pending, n) == n)
		pthread_cond_broadcast(&dev->tmf_cond);
	pthread_mutex_unlock(&dev->tmf_lock);
}

/* At the start of a pass (reap) or at detach: what earlier passes published. */
static void scsi_tmf_flush_done(struct scsi_queue *sq, bool all)
{
	if (!sq->tmf_done_count || (!all && sq->tmf_pass == eng_queue_now_ns(sq->eq)))
		return;
	scsi_tmf_commands_done(sq->dev, sq->tmf_done, sq->tmf_done_count);
	sq->tmf_done = NULL;
	sq->tmf_done_count = 0;
}

/*
 * Write the response header and complete.  @response: VIRTIO_SCSI_S_*; for
 * S_OK the task's status, sense and data-in count are reported.
 */
static void scsi_req_respond(struct scsi_queue *sq, struct scsi_req *req, uint8_t response)
{
	struct virtio_scsi_cmd_resp resp;
	struct scsi_task *t = &req->task;
	struct scsi_tmf *tmf = req->tmf;
	uint32_t transferred = 0;

	memset(&resp, 0, sizeof(resp));
	if (tmf) {
		response = req->abort_resp;
		req->tmf = NULL;
	}
	resp.response = response;
	if (response == VIRTIO_SCSI_S_OK && req->lun)
		scsi_disk_task_done(&req->lun->disk, t);
	if (response == VIRTIO_SCSI_S_OK) {
		resp.status = t->status;
		if (t->sense_len) {
			memcpy(resp.sense, t->sense, t->sense_len);
			resp.sense_len = htole32(t->sense_len);
		}
		if (t->status == SCSI_STATUS_GOOD) {
			if (t->op == SCSI_OP_WRITE)
				transferred =
					(uint32_t)(req->task.nblocks << req->lun->disk.block_shift);
			else
				transferred = t->data_in;
		} else {
			transferred = t->data_in;
		}
	}
	if (transferred > req->buf_len)
		transferred = (uint32_t)req->buf_len;
	resp.resid = htole32((uint32_t)(req->buf_len - transferred));
	/*
	 * Into the iovecs the header was found in; data-in bytes follow it.
	 * Sense bytes past sense_len are not the driver's to read (5.6.6.1).
	 */
	iov_from_buf(req->resp_iov, req->resp_cnt, 0, &resp,
		     offsetof(struct virtio_scsi_cmd_resp, sense) + le32toh(resp.sense_len));
	eng_req_complete(sq->eq, &req->base,
			 (uint32_t)sizeof(resp) +
				 (response == VIRTIO_SCSI_S_OK ? req->task.data_in : 0));
	if (tmf) {
		sq->tmf_done = tmf;
		sq->tmf_done_count++;
		sq->tmf_pass = eng_queue_now_ns(sq->eq);
		/* One more pass, after this one's publish, tells the TMF thread. */
		eng_queue_wake(sq->eq);
	}
}

static void scsi_req_finish(struct scsi_queue *sq, struct scsi_req *req, int64_t res)
{
	scsi_inflight_del(sq, req);
	if (res < 0 && !sq->io_error_logged) {
		sq->io_error_logged = true;
		log_warn("%s: %s opcode %#x failed: %s (further errors on this queue are not "
			 "logged)",
			 sq->name, req->lun->name, req->task.opcode, strerror((int)-res));
	}
	scsi_stats_done(sq, req, res >= 0);
	scsi_task_io_done(&req->task, res);
	scsi_req_respond(sq, req, VIRTIO_SCSI_S_OK);
}

/* Point req->io at the next piece of a multi-step operation; false when none is left. */
static bool scsi_req_next_io(struct scsi_req *req)
{
	struct scsi_task *t = &req->task;
	unsigned int shift = req->lun->disk.block_shift;
	uint8_t fua = (t->flags & SCSI_IO_FUA) ? BLK_IO_F_FUA : 0;

	switch (t->op) {
	case SCSI_OP_UNMAP:
		if (req->done >= t->nr_ranges)
			return false;
		req->io = (struct blk_io){
			.op = BLK_IO_DISCARD,
			.offset = t->ranges[req->done].lba << shift,
			.len = (uint64_t)t->ranges[req->done].nblocks << shift,
		};
		req->done++;
		return true;
	case SCSI_OP_WRITE_SAME: {
		uint64_t left = t->nblocks - req->done;
		unsigned int n = left > SCSI_WS_IOV ? SCSI_WS_IOV : (unsigned int)left;

		if (!left)
			return false;
		for (unsigned int i = 0; i < n; i++) {
			req->ws_iov[i].iov_base = t->ws_block;
			req->ws_iov[i].iov_len = req->lun->disk.block_size;
		}
		req->io = (struct blk_io){
			.op = BLK_IO_WRITE,
			.flags = fua,
			.iov = req->ws_iov,
			.iovcnt = n,
			.offset = (t->lba + req->done) << shift,
		};
		req->done += n;
		return true;
	}
	default:
		return false;
	}
}

static int scsi_req_submit(struct scsi_queue *sq, struct scsi_req *req)
{
	int r = req->lun->bops->prep(sq->bbq[req->lun->slot], &req->io);

	if (r < 0) {
		log_error("%s: cannot queue I/O: %s", sq->name, strerror(-r));
		return r;
	}
	return 0;
}

/* The task wants block I/O: describe it to the LUN's back-end queue. */
static void scsi_req_start_io(struct scsi_queue *sq, struct scsi_req *req)
{
	struct scsi_task *t = &req->task;
	unsigned int shift = req->lun->disk.block_shift;
	uint8_t fua = (t->flags & SCSI_IO_FUA) ? BLK_IO_F_FUA : 0;
	uint64_t sectors = (t->nblocks << shift) >> 9;

	req->done = 0;
	switch (t->op) {
	case SCSI_OP_READ:
	case SCSI_OP_WRITE:
		/* Exactly the transfer: a larger buffer is not read into or from. */
		iov_trim(req->data, &req->data_cnt, t->nblocks << shift);
		req->io = (struct blk_io){
			.op = t->op == SCSI_OP_READ ? BLK_IO_READ : BLK_IO_WRITE,
			.flags = t->op == SCSI_OP_WRITE ? fua : 0,
			.iov = req->data,
			.iovcnt = req->data_cnt,
			.offset = t->lba << shift,
		};
		scsi_stats_start(sq, req, t->op == SCSI_OP_READ ? BLK_STAT_READ : BLK_STAT_WRITE,
				 sectors);
		break;
	case SCSI_OP_FLUSH:
		req->io = (struct blk_io){.op = BLK_IO_FLUSH};
		scsi_stats_start(sq, req, BLK_STAT_FLUSH, 0);
		break;
	case SCSI_OP_WRITE_ZEROES:
		req->io = (struct blk_io){
			.op = BLK_IO_WRITE_ZEROES,
			.flags = fua | ((t->flags & SCSI_IO_UNMAP) ? BLK_IO_F_UNMAP : 0),
			.offset = t->lba << shift,
			.len = t->nblocks << shift,
		};
		scsi_stats_start(sq, req, BLK_STAT_WRITE, sectors);
		break;
	case SCSI_OP_UNMAP: {
		uint64_t total = 0;

		for (unsigned int i = 0; i < t->nr_ranges; i++)
			total += (uint64_t)t->ranges[i].nblocks << shift >> 9;
		scsi_req_next_io(req);
		scsi_stats_start(sq, req, BLK_STAT_DISCARD, total);
		break;
	}
	case SCSI_OP_WRITE_SAME:
		scsi_req_next_io(req);
		scsi_stats_start(sq, req, BLK_STAT_WRITE, sectors);
		break;
	}
	scsi_inflight_add(sq, req);
	if (scsi_req_submit(sq, req) < 0)
		scsi_req_finish(sq, req, -EIO);
}

void scsi_req_bad(struct eng_queue *eq, struct eng_req *base, const char *what)
{
	char why[128];

	snprintf(why, sizeof(why), "request %u: %s (%u readable / %u writable bytes)",
		 base->elem.id, what, base->elem.out_len, base->elem.in_len);
	eng_queue_halt(eq, why);
	/* Still filled once (virtq.h), so its map reference is dropped. */
	eng_req_complete(eq, base, 0);
}

/* Gather the iovecs that hold the response header (the first @len writable bytes). */
static bool scsi_take_resp_iov(struct scsi_req *req, const struct iovec *in, unsigned int cnt,
			       size_t len)
{
	req->resp_cnt = 0;
	for (unsigned int i = 0; i < cnt && len; i++) {
		size_t n = in[i].iov_len < len ? in[i].iov_len : len;

		if (!n)
			continue;
		if (req->resp_cnt == SCSI_RESP_IOV)
			return false;
		req->resp_iov[req->resp_cnt].iov_base = in[i].iov_base;
		req->resp_iov[req->resp_cnt].iov_len = n;
		req->resp_cnt++;
		len -= n;
	}
	return !len;
}

/* Target-level commands and LUN lookup; the task is set up, or I/O started. */
static void scsi_req_exec(struct scsi_queue *sq, struct scsi_req *req, const uint8_t *lun_addr,
			  const uint8_t *cdb, const struct scsi_bufs *b)
{
	struct scsi_dev *dev = sq->dev;
	unsigned int target, id;
	bool target_exists;
	struct scsi_lun *lun;

	if (!scsi_decode_lun(lun_addr, &target, &id) ||
	    (!(lun = scsi_find_lun(dev, target, id, &target_exists)) && !target_exists)) {
		scsi_req_respond(sq, req, VIRTIO_SCSI_S_BAD_TARGET);
		return;
	}
	if (scsi_cdb_is_report_luns(cdb)) {
		uint16_t luns[SCSI_MAX_LUNS];
		unsigned int n = 0;

		for (unsigned int i = 0; i < nr_luns_of(dev); i++) {
			struct scsi_lun *l = lun_at(dev, i);

			if (l && atomic_load(&l->ready) && l->opts.target == target)
				luns[n++] = (uint16_t)l->opts.lun;
		}
		scsi_report_luns(&req->task, cdb, luns, n, b);
		/* SPC-4 6.33: REPORT LUNS clears REPORTED LUNS DATA HAS CHANGED. */
		if (lun && req->task.status == SCSI_STATUS_GOOD && !req->task.overrun)
			atomic_fetch_and(&lun->disk.ua, ~(unsigned int)SCSI_UA_LUNS_CHANGED);
	} else if (!lun) {
		scsi_absent_lun(&req->task, cdb, b);
	} else {
		req->lun = lun;
		if (scsi_disk_exec(&lun->disk, &req->task, cdb, b) != SCSI_OP_NONE) {
			req->data = (struct iovec *)(req->task.op == SCSI_OP_READ ? b->in : b->out);
			req->data_cnt = req->task.op == SCSI_OP_READ ? b->in_cnt : b->out_cnt;
			scsi_req_start_io(sq, req);
			return;
		}
	}
	scsi_req_respond(sq, req, req->task.overrun ? VIRTIO_SCSI_S_OVERRUN : VIRTIO_SCSI_S_OK);
}

/* A freshly popped command (engine.h start()): copy, check, run. */
static void scsi_req_start_one(struct eng_queue *eq, struct eng_req *base)
{
	struct scsi_queue *sq = eng_queue_priv(eq);
	struct scsi_req *req = container_of(base, struct scsi_req, base);
	struct virtq_elem *e = &base->elem;
	struct virtio_scsi_cmd_req hdr;
	struct iovec *in_iov = e->iov + e->out_num, *out_iov;
	unsigned int in_cnt = e->in_num, out_cnt = e->out_num;
	uint8_t cdb[VIRTIO_SCSI_CDB_SIZE];
	struct scsi_bufs b;

	req->lun = NULL;
	req->tmf = NULL;
	req->stat_dir = -1;
	req->task.data_in = 0;
	req->task.op = SCSI_OP_NONE;
	req->buf_len = 0;

	/* QEMU marks the device broken for these too: there is nowhere to answer. */
	if (e->out_len < sizeof(hdr) || e->in_len < sizeof(struct virtio_scsi_cmd_resp)) {
		scsi_req_bad(eq, base, "too short for the request and response headers");
		return;
	}
	if (!scsi_take_resp_iov(req, in_iov, in_cnt, sizeof(struct virtio_scsi_cmd_resp))) {
		scsi_req_bad(eq, base, "response header in more than 8 buffers");
		return;
	}
	/* Copy once; from here on only the copy is looked at. */
	iov_to_buf(e->iov, e->out_num, 0, &hdr, sizeof(hdr));
	memcpy(cdb, hdr.cdb, sizeof(cdb));
	req->tag = le64toh(hdr.tag);

	out_iov = iov_skip(e->iov, &out_cnt, sizeof(hdr));
	in_iov = iov_skip(in_iov, &in_cnt, sizeof(struct virtio_scsi_cmd_resp));
	b = (struct scsi_bufs){
		.out = out_iov,
		.out_cnt = out_cnt,
		.out_len = e->out_len - sizeof(hdr),
		.in = in_iov,
		.in_cnt = in_cnt,
		.in_len = e->in_len - sizeof(struct virtio_scsi_cmd_resp),
	};
	req->buf_len = b.out_len ? b.out_len : b.in_len;
	/* Data both ways needs VIRTIO_SCSI_F_INOUT, which is not offered. */
	if (b.out_len && b.in_len) {
		scsi_req_respond(sq, req, VIRTIO_SCSI_S_FAILURE);
		return;
	}
	scsi_req_exec(sq, req, hdr.lun, cdb, &b);
}

/*
 * start(): the first sq->replays calls after a start are the commands a
 * previous vhostd had in flight when it died (the engine starts them again
 * before popping anything new).  Once the last of them is in sq->inflight
 * (or done), a TMF that was in flight too may look for them (scsi_ctrl.c).
 */
static void scsi_req_start(struct eng_queue *eq, struct eng_req *base)
{
	struct scsi_queue *sq = eng_queue_priv(eq);

	scsi_req_start_one(eq, base);
	if (unlikely(atomic_load_explicit(&sq->replays, memory_order_relaxed)))
		atomic_fetch_sub_explicit(&sq->replays, 1, memory_order_release);
}

static void scsi_io_done(struct blk_io *io, void *arg)
{
	struct scsi_queue *sq = arg;
	struct scsi_req *req = container_of(io, struct scsi_req, io);

	if (io->res >= 0 && scsi_req_next_io(req)) {
		if (scsi_req_submit(sq, req) < 0)
			scsi_req_finish(sq, req, -EIO);
		return;
	}
	scsi_req_finish(sq, req, io->res);
}

static void scsi_rq_reap(struct eng_queue *eq)
{
	struct scsi_queue *sq = eng_queue_priv(eq);
	struct scsi_dev *dev = sq->dev;

	scsi_tmf_flush_done(sq, false);
	for (unsigned int i = 0; i < nr_luns_of(dev); i++) {
		if (sq->bbq[i])
			lun_at(dev, i)->bops->reap(sq->bbq[i], scsi_io_done, sq);
	}
}

static void scsi_rq_wake(void *arg)
{
	eng_queue_wake(arg);
}

static int scsi_rq_attach_lun(struct scsi_queue *sq, struct scsi_lun *lun)
{
	return lun->bops->queue_attach(lun->be, sq->num, sq->r, scsi_rq_wake, sq->eq,
				       &sq->bbq[lun->slot]);
}

static void scsi_rq_detach(struct eng_queue *eq)
{
	struct scsi_queue *sq = eng_queue_priv(eq);

	/* Drained and published: a TMF waiting for these may go on. */
	scsi_tmf_flush_done(sq, true);

	for (unsigned int i = 0; i < SCSI_MAX_LUNS; i++) {
		if (sq->bbq[i]) {
			lun_at(sq->dev, i)->bops->queue_free(sq->bbq[i]);
			sq->bbq[i] = NULL;
		}
	}
	/* An orphan's last touch of @sq: the loop may restart or free it now. */
	atomic_store(&sq->orphaned, false);
}

static int scsi_rq_attach(struct eng_queue *eq, struct reactor *r)
{
	struct scsi_queue *sq = eng_queue_priv(eq);
	struct scsi_dev *dev = sq->dev;
	int ret;

	sq->eq = eq;
	sq->r = r;
	sq->io_error_logged = false;
	sq->inflight = NULL;
	sq->tmf_done = NULL;
	sq->tmf_done_count = 0;
	for (unsigned int i = 0; i < nr_luns_of(dev); i++) {
		if (!lun_at(dev, i))
			continue;
		ret = scsi_rq_attach_lun(sq, lun_at(dev, i));
		if (ret < 0) {
			scsi_rq_detach(eq);
			return ret;
		}
	}
	return 0;
}

static const struct eng_queue_ops scsi_rq_ops = {
	.req_size = sizeof(struct scsi_req),
	.attach = scsi_rq_attach,
	.detach = scsi_rq_detach,
	.start = scsi_req_start,
	.reap = scsi_rq_reap,
};

/* ---- the event queue ------------------------------------------------------------- */

struct scsi_event_args {
	uint32_t event;
	unsigned int target, lun;
	uint32_t reason;
};

/* Write @ev into the event buffer just popped, and complete it. */
static void scsi_event_fill(struct scsi_queue *sq, struct eng_req *base,
			    const struct scsi_event_args *ev)
{
	struct virtio_scsi_event out;
	struct virtq_elem *e = &base->elem;

	memset(&out, 0, sizeof(out));
	out.event = ev->event;
	if (atomic_exchange(&sq->dev->events_missed, false))
		out.event |= VIRTIO_SCSI_T_EVENTS_MISSED;
	out.event = htole32(out.event);
	if (ev->event != VIRTIO_SCSI_T_NO_EVENT) {
		/*
		 * As QEMU: peripheral addressing below 256, flat space above
		 * (Linux's virtio_scsi takes lun[2..3] as the LUN number).
		 */
		out.lun[0] = 1;
		out.lun[1] = (uint8_t)ev->target;
		out.lun[2] = ev->lun >= 256 ? (uint8_t)(0x40 | (ev->lun >> 8)) : 0;
		out.lun[3] = (uint8_t)ev->lun;
	}
	out.reason = htole32(ev->reason);
	iov_from_buf(e->iov + e->out_num, e->in_num, 0, &out, sizeof(out));
	eng_req_complete(sq->eq, base, sizeof(out));
}

/*
 * A buffer popped by eng_queue_pop() (the event queue is manual_pop: a
 * buffer is taken only for an event, as QEMU and SPDK do, so none is held
 * across a ring stop): fill in sq->ev_pending.
 */
static void scsi_event_start(struct eng_queue *eq, struct eng_req *base)
{
	static const struct scsi_event_args lost = {.event = VIRTIO_SCSI_T_NO_EVENT};
	struct scsi_queue *sq = eng_queue_priv(eq);

	if (base->elem.in_len < sizeof(struct virtio_scsi_event) || base->elem.out_len) {
		scsi_req_bad(eq, base, "event buffer is not 16 device-writable bytes");
		return;
	}
	/*
	 * Not popped for an event: the engine starts it again after a crash
	 * (the in-flight region says a previous vhostd took it for an event
	 * and died before the driver saw it).  What that event was is gone:
	 * the buffer goes back once, saying events were missed, so the
	 * driver rescans (Linux does) instead of losing a hot-plug.
	 */
	if (!sq->ev_pending) {
		log_info("%s: an event was being sent when the previous vhostd died: "
			 "reported as missed",
			 sq->name);
		atomic_store(&sq->dev->events_missed, true);
		scsi_event_fill(sq, base, &lost);
		return;
	}
	scsi_event_fill(sq, base, sq->ev_pending);
}

/* Send @ev if the driver left a buffer; false if not (the event is missed). */
static bool scsi_event_send(struct scsi_queue *sq, const struct scsi_event_args *ev)
{
	int r;

	sq->ev_pending = ev;
	r = eng_queue_pop(sq->eq);
	sq->ev_pending = NULL;
	return r == 1;
}

/*
 * On every pass the event queue runs (a kick: the driver gave buffers):
 * events were dropped for want of one, so say so at once (QEMU too).
 */
static void scsi_event_reap(struct eng_queue *eq)
{
	static const struct scsi_event_args missed = {.event = VIRTIO_SCSI_T_NO_EVENT};
	struct scsi_queue *sq = eng_queue_priv(eq);

	if (atomic_load(&sq->dev->events_missed))
		scsi_event_send(sq, &missed);
}

static int scsi_event_attach(struct eng_queue *eq, struct reactor *r)
{
	struct scsi_queue *sq = eng_queue_priv(eq);

	sq->eq = eq;
	sq->ev_pending = NULL;
	return 0;
}

static const struct eng_queue_ops scsi_event_ops = {
	.req_size = sizeof(struct eng_req),
	.attach = scsi_event_attach,
	.start = scsi_event_start,
	.reap = scsi_event_reap,
	.manual_pop = true,
};

static int scsi_event_push_fn(struct eng_queue *eq, void *arg)
{
	struct scsi_queue *sq = eng_queue_priv(eq);

	if (!scsi_event_send(sq, arg)) {
		log_debug("%s: no buffer for the event: missed", sq->name);
		atomic_store(&sq->dev->events_missed, true);
	}
	return 0;
}

/*
 * Send an event (from the vhost-user loop's thread): if the driver gave
 * no buffer, or the event queue is not running, it is missed and the next
 * buffer says so (EVENTS_MISSED).
 */
static void scsi_dev_push_event(struct scsi_dev *dev, const struct scsi_event_args *ev)
{
	struct scsi_queue *sq = &dev->queues[VIRTIO_SCSI_EVENT_QUEUE];
	uint64_t f = atomic_load(&dev->features);

	/* 5.6.6.3: only the kinds of events the driver accepted. */
	if ((ev->event == VIRTIO_SCSI_T_TRANSPORT_RESET &&
	     !(f & (1ull << VIRTIO_SCSI_F_HOTPLUG))) ||
	    (ev->event == VIRTIO_SCSI_T_PARAM_CHANGE && !(f & (1ull << VIRTIO_SCSI_F_CHANGE)))) {
		log_debug("%s: event %u for %u:%u not sent: the driver did not accept it (features "
			  "%#" PRIx64 ")",
			  dev->opts.id, ev->event, ev->target, ev->lun, f);
		return;
	}
	log_debug("%s: event %u reason %u for %u:%u", dev->opts.id, ev->event, ev->reason,
		  ev->target, ev->lun);
	pthread_mutex_lock(&dev->qlock);
	if (sq->ext_eq)
		eng_queue_call(sq->ext_eq, scsi_event_push_fn, (void *)ev);
	else
		atomic_store(&dev->events_missed, true);
	pthread_mutex_unlock(&dev->qlock);
}

void scsi_dev_event(struct scsi_dev *dev, uint32_t event, unsigned int target, unsigned int lun,
		    uint32_t reason)
{
	struct scsi_event_args ev = {
		.event = event,
		.target = target,
		.lun = lun,
		.reason = reason,
	};

	scsi_dev_push_event(dev, &ev);
}

/* ---- vhost-user device ops --------------------------------------------------------- */

static uint64_t scsi_get_features(void *opaque)
{
	return 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_RING_F_INDIRECT_DESC |
	       1ull << VIRTIO_RING_F_EVENT_IDX | 1ull << VIRTIO_F_RING_PACKED |
	       1ull << VIRTIO_SCSI_F_HOTPLUG | 1ull << VIRTIO_SCSI_F_CHANGE;
}

static int scsi_set_features(void *opaque, uint64_t features)
{
	struct scsi_dev *dev = opaque;

	atomic_store(&dev->features, features);
	return 0;
}

static uint64_t scsi_get_protocol_features(void *opaque)
{
	/*
	 * VHOST_USER_PROTOCOL_F_CONFIG (9): GET_CONFIG / SET_CONFIG.
	 * VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD (12): the engine tracks every
	 * queue, and each kind of chain can be started again after a crash:
	 *  - request queues: every command we implement is idempotent (READ,
	 *    WRITE and WRITE SAME with the same data, UNMAP, SYNCHRONIZE
	 *    CACHE, inquiries; RESERVE/RELEASE keep no state; no COMPARE AND
	 *    WRITE, no persistent reservations).  Commands complete out of
	 *    order, so the ring cannot resume at used->idx without the region.
	 *    The new vhostd's LUNs start with the power-on unit attention, so
	 *    the first command per LUN (maybe one started again) gets CHECK
	 *    CONDITION 29h/00h and the driver retries it, as after a reset.
	 *  - the control queue: a TMF may wait behind an AN query that is
	 *    answered at once (out of order again).  A TMF started again
	 *    waits until the request queues have started theirs, so the
	 *    commands it aborts still complete before it (scsi_ctrl.c).
	 *  - the event queue: a buffer is popped only for an event and
	 *    completed in the same pass, none is held; one in flight at the
	 *    crash comes back once as "events missed" (scsi_event_start).
	 */
	return 1ull << 9 | 1ull << 12;
}

static int scsi_get_config(void *opaque, uint8_t *buf, uint32_t len)
{
	struct scsi_dev *dev = opaque;
	struct virtio_scsi_config c = {
		.num_queues = htole32(dev->opts.num_queues),
		.seg_max = htole32(dev->seg_max),
		.max_sectors = htole32(SCSI_MAX_SECTORS),
		.cmd_per_lun = htole32(SCSI_CMD_PER_LUN),
		.event_info_size = htole32(sizeof(struct virtio_scsi_event)),
		.sense_size = htole32(VIRTIO_SCSI_SENSE_SIZE),
		.cdb_size = htole32(VIRTIO_SCSI_CDB_SIZE),
		.max_channel = htole16(0),
		.max_target = htole16(SCSI_MAX_TARGET),
		.max_lun = htole32(SCSI_MAX_LUN),
	};

	memset(buf, 0, len);
	memcpy(buf, &c, len < sizeof(c) ? len : sizeof(c));
	return (int)len;
}

/*
 * sense_size and cdb_size are writable (5.6.4), but only their defaults
 * are supported (QEMU's vhost-scsi refuses other values too).
 */
static int scsi_set_config(void *opaque, const uint8_t *buf, uint32_t offset, uint32_t len)
{
	struct scsi_dev *dev = opaque;
	uint8_t cur[sizeof(struct virtio_scsi_config)];

	if (offset >= sizeof(cur) || len > sizeof(cur) - offset)
		return -EINVAL;
	scsi_get_config(dev, cur, sizeof(cur));
	if (memcmp(cur + offset, buf, len)) {
		log_warn("%s: the driver changed sense_size or cdb_size; not supported",
			 dev->opts.id);
		return -EINVAL;
	}
	return 0;
}

static int scsi_start_queue(void *opaque, struct vu_queue *q)
{
	struct scsi_dev *dev = opaque;
	const struct eng_queue_ops *ops = &scsi_rq_ops;
	struct eng_queue_config cfg;
	struct scsi_queue *sq;
	struct eng_queue *eq;
	int r;

	if (q->index >= dev->nr_queues)
		return -EINVAL;
	sq = &dev->queues[q->index];
	if (sq->ext_eq)
		return -EBUSY;
	if (atomic_load(&sq->orphaned)) {
		log_error("%s: commands of an abandoned stop are still in the back-end", sq->name);
		return -EBUSY;
	}
	if (q->index == VIRTIO_SCSI_CTRL_QUEUE)
		ops = &scsi_ctrl_ops;
	else if (q->index == VIRTIO_SCSI_EVENT_QUEUE)
		ops = &scsi_event_ops;
	sq->num = q->vq.num;
	/* Before the engine can run start(): see scsi_req_start(). */
	atomic_store(&sq->replays, q->inflight ? q->inflight->nr_resubmit : 0);
	cfg = (struct eng_queue_config){
		.name = sq->name,
		.max_iov = dev->seg_max + 2,
		.poll_us = q->index >= VIRTIO_SCSI_REQ_QUEUE0 ? dev->opts.poll_us : 0,
		.io_thread = dev->opts.io_thread,
		.priv = sq,
		.counters = &sq->counters,
	};
	r = eng_queue_start(q, ops, &cfg, &eq);
	if (r < 0) {
		log_error("%s: cannot start: %s", sq->name, strerror(-r));
		return r;
	}
	pthread_mutex_lock(&dev->qlock);
	sq->ext_eq = eq;
	pthread_mutex_unlock(&dev->qlock);
	q->priv = sq;
	log_debug("%s: started (%u entries, %s ring, I/O thread %d)", sq->name, sq->num,
		  scsi_has_feature(dev, VIRTIO_F_RING_PACKED) ? "packed" : "split",
		  eng_queue_thread(eq));
	return 0;
}

static void scsi_stop_queue(void *opaque, struct vu_queue *q)
{
	struct scsi_dev *dev = opaque;
	struct scsi_queue *sq;
	struct eng_queue *eq;

	if (q->index >= dev->nr_queues)
		return;
	sq = &dev->queues[q->index];
	/* No TMF or event may reach it once we let go of qlock. */
	pthread_mutex_lock(&dev->qlock);
	eq = sq->ext_eq;
	sq->ext_eq = NULL;
	pthread_mutex_unlock(&dev->qlock);
	if (!eq)
		return;
	eng_queue_stop(eq);
	sq->eq = NULL;
	q->priv = NULL;
	log_debug("%s: stopped", sq->name);
}

/* On the I/O thread: the engine drained and detached the queue. */
static void scsi_queue_stopped(void *arg)
{
	vu_queue_stopped(arg);
}

/* The same without waiting (backend.h). */
static void scsi_stop_queue_begin(void *opaque, struct vu_queue *q)
{
	struct scsi_dev *dev = opaque;
	struct scsi_queue *sq = q->index < dev->nr_queues ? &dev->queues[q->index] : NULL;
	struct eng_queue *eq = NULL;

	if (sq) {
		pthread_mutex_lock(&dev->qlock);
		eq = sq->ext_eq;
		sq->ext_eq = NULL;
		pthread_mutex_unlock(&dev->qlock);
	}
	if (!eq) {
		vu_queue_stopped(q);
		return;
	}
	sq->stopping_eq = eq;
	eng_queue_stop_async(eq, scsi_queue_stopped, q);
}

static void scsi_stop_queue_end(void *opaque, struct vu_queue *q)
{
	struct scsi_dev *dev = opaque;
	struct scsi_queue *sq = q->index < dev->nr_queues ? &dev->queues[q->index] : NULL;

	if (!sq || !sq->stopping_eq)
		return;
	eng_queue_stop_finish(sq->stopping_eq);
	sq->stopping_eq = NULL;
	sq->eq = NULL;
	q->priv = NULL;
	log_debug("%s: stopped", sq->name);
}

/*
 * A request queue's commands outlast the stop timeout (a stalled LUN):
 * the engine keeps them as an orphan, with this queue's struct and the
 * LUNs they use (orphaned).  The control and event queues are not given
 * up: their requests belong to the TMF thread and to events, which would
 * have to let go too; they keep the stop waiting (backend.c says so).
 */
static int scsi_stop_queue_abandon(void *opaque, struct vu_queue *q)
{
	struct scsi_dev *dev = opaque;
	struct scsi_queue *sq = q->index < dev->nr_queues ? &dev->queues[q->index] : NULL;
	unsigned int left = 0;

	if (!sq || !sq->stopping_eq)
		return 0;
	if (q->index < VIRTIO_SCSI_REQ_QUEUE0)
		return -EBUSY;
	/* Before the orphan can exist: its detach clears it. */
	atomic_store(&sq->orphaned, true);
	/* sq->eq stays: the orphan's completions go through it on its thread. */
	if (!eng_queue_abandon(sq->stopping_eq, &left)) {
		sq->eq = NULL;
		atomic_store(&sq->orphaned, false);
	}
	sq->stopping_eq = NULL;
	q->priv = NULL;
	return (int)left;
}

/* Devices freed while an orphan still used them (scsi_dev_free: loop thread). */
static struct {
	struct scsi_dev *devs[64];
	unsigned int nr;
} scsi_graveyard;

static bool scsi_has_orphans(struct scsi_dev *dev)
{
	for (unsigned int i = 0; i < dev->nr_queues; i++) {
		if (atomic_load(&dev->queues[i].orphaned))
			return true;
	}
	return false;
}

static int scsi_set_call_fd(void *opaque, struct vu_queue *q, int fd)
{
	struct scsi_dev *dev = opaque;
	struct scsi_queue *sq = q->index < dev->nr_queues ? &dev->queues[q->index] : NULL;
	struct eng_queue *eq;
	int r = -ENODEV;

	if (!sq)
		return r;
	pthread_mutex_lock(&dev->qlock);
	eq = sq->ext_eq;
	if (eq)
		r = eng_queue_set_call_fd(eq, fd);
	pthread_mutex_unlock(&dev->qlock);
	return r;
}

static void scsi_set_status(void *opaque, uint8_t status)
{
	struct scsi_dev *dev = opaque;

	log_debug("%s: status %#x", dev->opts.id, status);
	/* Device reset: as after QEMU's system reset, every LUN has a RESET UA. */
	if (!status) {
		for (unsigned int i = 0; i < dev->nr_luns; i++) {
			if (lun_at(dev, i))
				scsi_disk_set_ua(&lun_at(dev, i)->disk, SCSI_UA_RESET);
		}
		atomic_store(&dev->events_missed, false);
	}
}

static const struct vu_device_ops scsi_ops = {
	.get_features = scsi_get_features,
	.set_features = scsi_set_features,
	.get_protocol_features = scsi_get_protocol_features,
	.get_config = scsi_get_config,
	.set_config = scsi_set_config,
	.start_queue = scsi_start_queue,
	.stop_queue = scsi_stop_queue,
	.stop_queue_begin = scsi_stop_queue_begin,
	.stop_queue_end = scsi_stop_queue_end,
	.stop_queue_abandon = scsi_stop_queue_abandon,
	.set_call_fd = scsi_set_call_fd,
	.set_status = scsi_set_status,
};

/* ---- LUNs ------------------------------------------------------------------------- */

static void scsi_lun_free(struct scsi_lun *lun)
{
	if (!lun)
		return;
	if (lun->be)
		lun->bops->close(lun->be);
	blk_dev_stats_destroy(&lun->stats);
	free(lun);
}

static struct scsi_lun *scsi_lun_open(struct scsi_dev *dev, const struct scsi_lun_options *o,
				      char *err, size_t err_len)
{
	struct blk_backend_config bcfg = {
		.path = o->path,
		.size = o->size,
		.delay_ms = o->delay_ms,
		.readonly = o->readonly,
		.direct = o->cache == BLK_CACHE_NONE,
		.no_lock = o->no_locking,
		.rbd_pool = o->rbd.pool,
		.rbd_image = o->rbd.image,
		.rbd_conf = o->rbd.conf,
		.rbd_user = o->rbd.user,
	};
	struct scsi_disk_config dcfg;
	struct scsi_lun *lun = calloc(1, sizeof(*lun));
	uint32_t bs;

	if (!lun) {
		kv_err(err, err_len, "out of memory");
		return NULL;
	}
	lun->dev = dev;
	lun->opts = *o;
	snprintf(lun->name, sizeof(lun->name), "%s:%u:%u", dev->opts.id, o->target, o->lun);
	bcfg.name = lun->name;
	lun->bops = blk_disk_backend_ops(o->backend);
	if (lun->bops->open(&bcfg, &lun->be, err, err_len) < 0) {
		lun->be = NULL;
		goto fail;
	}
	lun->bops->get_info(lun->be, &lun->info);
	bs = o->block_size ? o->block_size : lun->info.logical_block_size;
	if (bs < 512)
		bs = 512;
	if (bs != 512 && bs != 4096) {
		kv_err(err, err_len, "%s: logical block size %u is not 512 or 4096", lun->name, bs);
		goto fail;
	}
	if (bs < lun->info.logical_block_size) {
		kv_err(err, err_len, "%s: block-size=%u is below the device's %u", lun->name, bs,
		       lun->info.logical_block_size);
		goto fail;
	}
	dcfg = (struct scsi_disk_config){
		.size = lun->info.size,
		.block_size = bs,
		/*
		 * As QEMU's scsi-hd: the physical block size is probed on block
		 * devices only (a file's is its logical one), and the unmap
		 * granularity is max(logical block, 4 KiB) whatever the host says.
		 */
		.physical_block_size = lun->info.blockdev && lun->info.physical_block_size > bs
					       ? lun->info.physical_block_size
					       : bs,
		.discard_granularity = 0,
		.readonly = o->readonly,
		.no_unmap = lun->info.no_discard,
		.writeback = true,
		.serial = o->serial,
	};
	if (scsi_disk_init(&lun->disk, &dcfg)) {
		kv_err(err, err_len, "%s: bad block sizes", lun->name);
		goto fail;
	}
	if (blk_dev_stats_init(&lun->stats, dev->opts.num_queues)) {
		kv_err(err, err_len, "out of memory");
		goto fail;
	}
	return lun;
fail:
	scsi_lun_free(lun);
	return NULL;
}

/* ---- the device ------------------------------------------------------------------- */

static void scsi_dev_destroy(struct scsi_dev *dev)
{
	if (dev->tmf_running) {
		pthread_mutex_lock(&dev->tmf_lock);
		dev->tmf_exit = true;
		pthread_cond_broadcast(&dev->tmf_cond);
		pthread_mutex_unlock(&dev->tmf_lock);
		pthread_join(dev->tmf_thread, NULL);
	}
	for (unsigned int i = 0; i < SCSI_MAX_LUNS; i++)
		scsi_lun_free(dev->luns[i]);
	pthread_mutex_destroy(&dev->qlock);
	pthread_mutex_destroy(&dev->tmf_run_lock);
	pthread_mutex_destroy(&dev->tmf_lock);
	pthread_cond_destroy(&dev->tmf_cond);
	free(dev->queues);
	free(dev);
}

struct scsi_dev *scsi_dev_new(const struct scsi_options *opts, const struct scsi_lun_options *luns,
			      unsigned int nr_luns, const struct vu_watch_ops *watch, void *loop,
			      char *err, size_t err_len)
{
	struct scsi_dev *dev;

	if (!opts->num_queues || opts->num_queues > SCSI_MAX_REQ_QUEUES ||
	    opts->queue_size < SCSI_MIN_QUEUE_SIZE || opts->queue_size > SCSI_MAX_QUEUE_SIZE) {
		kv_err(err, err_len, "%s: bad num-queues or queue-size", opts->id);
		return NULL;
	}
	if (nr_luns > SCSI_MAX_LUNS) {
		kv_err(err, err_len, "%s: more than %d LUNs", opts->id, SCSI_MAX_LUNS);
		return NULL;
	}
	if (opts->io_thread >= 0 && (unsigned int)opts->io_thread >= eng_pool_threads()) {
		kv_err(err, err_len, "%s: io-thread=%d, but there are only %u I/O threads",
		       opts->id, opts->io_thread, eng_pool_threads());
		return NULL;
	}
	dev = calloc(1, sizeof(*dev));
	if (!dev) {
		kv_err(err, err_len, "out of memory");
		return NULL;
	}
	dev->opts = *opts;
	pthread_mutex_init(&dev->qlock, NULL);
	pthread_mutex_init(&dev->tmf_run_lock, NULL);
	pthread_mutex_init(&dev->tmf_lock, NULL);
	pthread_cond_init(&dev->tmf_cond, NULL);
	dev->tmf_tail = &dev->tmf_head;
	atomic_init(&dev->features, 0);
	atomic_init(&dev->events_missed, false);
	dev->seg_max = opts->queue_size - 2u;
	if (dev->seg_max > SCSI_MAX_SEG_MAX)
		dev->seg_max = SCSI_MAX_SEG_MAX;
	dev->nr_queues = VIRTIO_SCSI_REQ_QUEUE0 + opts->num_queues;
	dev->queues = calloc(dev->nr_queues, sizeof(*dev->queues));
	if (!dev->queues) {
		kv_err(err, err_len, "out of memory");
		goto fail;
	}
	for (unsigned int i = 0; i < dev->nr_queues; i++) {
		struct scsi_queue *sq = &dev->queues[i];

		sq->dev = dev;
		sq->index = i;
		if (i == VIRTIO_SCSI_CTRL_QUEUE)
			snprintf(sq->name, sizeof(sq->name), "%s:ctrl", opts->id);
		else if (i == VIRTIO_SCSI_EVENT_QUEUE)
			snprintf(sq->name, sizeof(sq->name), "%s:event", opts->id);
		else
			snprintf(sq->name, sizeof(sq->name), "%s:q%u", opts->id,
				 i - VIRTIO_SCSI_REQ_QUEUE0);
	}
	for (unsigned int i = 0; i < nr_luns; i++) {
		bool exists;

		if (strcmp(luns[i].scsi, opts->id)) {
			kv_err(err, err_len, "LUN %u:%u is for controller '%s', not '%s'",
			       luns[i].target, luns[i].lun, luns[i].scsi, opts->id);
			goto fail;
		}
		if (scsi_find_lun(dev, luns[i].target, luns[i].lun, &exists)) {
			kv_err(err, err_len, "%s: target %u LUN %u given twice", opts->id,
			       luns[i].target, luns[i].lun);
			goto fail;
		}
		dev->luns[i] = scsi_lun_open(dev, &luns[i], err, err_len);
		if (!dev->luns[i])
			goto fail;
		dev->luns[i]->slot = i;
		atomic_store(&dev->luns[i]->ready, true);
		dev->nr_luns = i + 1;
	}
	if (pthread_create(&dev->tmf_thread, NULL, scsi_tmf_main, dev)) {
		kv_err(err, err_len, "cannot start the TMF thread");
		goto fail;
	}
	dev->tmf_running = true;
	pthread_setname_np(dev->tmf_thread, "scsi-tmf");

	dev->vu = eng_dev_vu_new(&ENG_DEV_FIELDS(&dev->opts), dev->nr_queues, opts->queue_size,
				 &scsi_ops, dev, watch, loop, err, err_len);
	if (!dev->vu)
		goto fail;
	log_info("%s: virtio-scsi, %u LUN(s), %u request queue(s) of %u", opts->id, dev->nr_luns,
		 opts->num_queues, opts->queue_size);
	for (unsigned int i = 0; i < dev->nr_luns; i++) {
		const struct scsi_lun *l = dev->luns[i];
		char where[300];

		log_info("%s: %s, %" PRIu64 " blocks of %u%s", l->name,
			 blk_disk_describe(l->opts.backend, l->opts.path, &l->opts.rbd, where,
					   sizeof(where)),
			 scsi_disk_blocks(&l->disk), l->disk.block_size,
			 l->opts.readonly ? ", read-only" : "");
	}
	return dev;

fail:
	scsi_dev_destroy(dev);
	return NULL;
}

void scsi_dev_free(struct scsi_dev *dev)
{
	if (!dev)
		return;
	/* Stops every queue: each finishes and publishes what is in flight. */
	vu_dev_free(dev->vu);
	if (scsi_has_orphans(dev)) {
		/*
		 * Commands of an abandoned stop are still in a back-end that
		 * writes into memory we own, and may hold up the TMF thread:
		 * keep all of it, reachable, until the process exits.
		 */
		log_warn("%s: commands of an abandoned stop never completed; "
			 "the controller's memory is kept until exit",
			 dev->opts.id);
		if (scsi_graveyard.nr < ARRAY_SIZE(scsi_graveyard.devs))
			scsi_graveyard.devs[scsi_graveyard.nr++] = dev;
		return;
	}
	scsi_dev_destroy(dev);
}

const char *scsi_dev_id(const struct scsi_dev *dev)
{
	return dev->opts.id;
}

const struct scsi_options *scsi_dev_options(const struct scsi_dev *dev)
{
	return &dev->opts;
}

bool scsi_dev_connected(const struct scsi_dev *dev)
{
	return vu_dev_connected(dev->vu);
}

bool scsi_dev_active(struct scsi_dev *dev)
{
	bool active = false;

	pthread_mutex_lock(&dev->qlock);
	for (unsigned int i = 0; i < dev->nr_queues && !active; i++)
		active = dev->queues[i].ext_eq != NULL;
	pthread_mutex_unlock(&dev->qlock);
	return active;
}

unsigned int scsi_dev_nr_luns(const struct scsi_dev *dev)
{
	return dev->nr_luns;
}

const struct scsi_lun_options *scsi_dev_lun_options(const struct scsi_dev *dev, unsigned int i)
{
	return dev->luns[i] ? &dev->luns[i]->opts : NULL;
}

uint64_t scsi_dev_lun_blocks(const struct scsi_dev *dev, unsigned int i)
{
	return scsi_disk_blocks(&dev->luns[i]->disk);
}

uint32_t scsi_dev_lun_block_size(const struct scsi_dev *dev, unsigned int i)
{
	return dev->luns[i]->disk.block_size;
}

const char *scsi_dev_lun_name(const struct scsi_dev *dev, unsigned int i)
{
	return dev->luns[i]->name;
}

unsigned int scsi_dev_nr_vqueues(const struct scsi_dev *dev)
{
	return dev->nr_queues;
}

void scsi_dev_queue_counts(struct scsi_dev *dev, unsigned int q, uint64_t *kicks,
			   uint64_t *notifications)
{
	struct eng_queue_counters *n = &dev->queues[q].counters;

	*kicks = atomic_load_explicit(&n->kicks, memory_order_relaxed);
	*notifications = atomic_load_explicit(&n->notifies, memory_order_relaxed);
}

void scsi_dev_lun_lat_hist(struct scsi_dev *dev, unsigned int i, struct blk_lat_hist *h)
{
	blk_dev_stats_read_hist(&dev->luns[i]->stats, h);
}

void scsi_dev_lun_stats(struct scsi_dev *dev, unsigned int i, struct blk_stats *st)
{
	blk_dev_stats_read(&dev->luns[i]->stats, st);
}

/* ---- LUNs at run time (the vhost-user loop's thread) -------------------------------- */

static int scsi_barrier_fn(struct eng_queue *eq, void *arg)
{
	(void)eq;
	(void)arg;
	return 0;
}

/*
 * Every started queue has finished whatever it was doing when this was
 * called: a LUN unpublished before it is no longer looked at by any
 * command being parsed (in-flight I/O is waited for separately).
 */
static void scsi_barrier(struct scsi_dev *dev)
{
	pthread_mutex_lock(&dev->qlock);
	for (unsigned int i = 0; i < dev->nr_queues; i++) {
		if (dev->queues[i].ext_eq)
			eng_queue_call(dev->queues[i].ext_eq, scsi_barrier_fn, NULL);
	}
	pthread_mutex_unlock(&dev->qlock);
}

static int scsi_attach_lun_fn(struct eng_queue *eq, void *arg)
{
	return scsi_rq_attach_lun(eng_queue_priv(eq), arg);
}

/* On a request queue's thread: its commands on @arg in flight, or 0 after letting go of it. */
static int scsi_detach_lun_fn(struct eng_queue *eq, void *arg)
{
	struct scsi_queue *sq = eng_queue_priv(eq);
	struct scsi_lun *lun = arg;
	int n = 0;

	for (struct scsi_req *req = sq->inflight; req; req = req->next)
		n += req->lun == lun;
	if (!n && sq->bbq[lun->slot]) {
		lun->bops->queue_free(sq->bbq[lun->slot]);
		sq->bbq[lun->slot] = NULL;
	}
	return n;
}

/* Let go of @lun on every started request queue, once its commands there finished. */
static void scsi_detach_lun(struct scsi_dev *dev, struct scsi_lun *lun)
{
	pthread_mutex_lock(&dev->qlock);
	for (unsigned int i = VIRTIO_SCSI_REQ_QUEUE0; i < dev->nr_queues; i++) {
		struct eng_queue *eq = dev->queues[i].ext_eq;

		/* Back-end I/O cannot be cancelled: it finishes first (milliseconds). */
		while (eq && eng_queue_call(eq, scsi_detach_lun_fn, lun) > 0)
			usleep(1000);
	}
	pthread_mutex_unlock(&dev->qlock);
}

/* REPORTED LUNS DATA HAS CHANGED for the target's other LUNs (SPC-4 6.33). */
static void scsi_luns_changed(struct scsi_dev *dev, unsigned int target)
{
	for (unsigned int i = 0; i < dev->nr_luns; i++) {
		struct scsi_lun *l = dev->luns[i];

		if (l && atomic_load(&l->ready) && l->opts.target == target)
			scsi_disk_set_ua(&l->disk, SCSI_UA_LUNS_CHANGED);
	}
}

int scsi_dev_add_lun(struct scsi_dev *dev, const struct scsi_lun_options *o, char *err,
		     size_t err_len)
{
	struct scsi_lun *lun;
	unsigned int slot;
	bool exists;
	char where[300];
	int r = 0;

	if (strcmp(o->scsi, dev->opts.id))
		return kv_err(err, err_len, "the LUN is for controller '%s', not '%s'", o->scsi,
			      dev->opts.id);
	if (scsi_find_lun(dev, o->target, o->lun, &exists))
		return kv_err(err, err_len, "%s: target %u LUN %u exists", dev->opts.id, o->target,
			      o->lun);
	for (slot = 0; slot < SCSI_MAX_LUNS && dev->luns[slot]; slot++)
		;
	if (slot == SCSI_MAX_LUNS)
		return kv_err(err, err_len, "%s: already %d LUNs", dev->opts.id, SCSI_MAX_LUNS);
	lun = scsi_lun_open(dev, o, err, err_len);
	if (!lun)
		return -EINVAL;
	lun->slot = slot;
	/* Published but not ready: queues attach to it, commands do not see it yet. */
	__atomic_store_n(&dev->luns[slot], lun, __ATOMIC_RELEASE);
	if (slot >= dev->nr_luns)
		__atomic_store_n(&dev->nr_luns, slot + 1, __ATOMIC_RELEASE);
	pthread_mutex_lock(&dev->qlock);
	for (unsigned int i = VIRTIO_SCSI_REQ_QUEUE0; i < dev->nr_queues && !r; i++) {
		if (dev->queues[i].ext_eq)
			r = eng_queue_call(dev->queues[i].ext_eq, scsi_attach_lun_fn, lun);
	}
	pthread_mutex_unlock(&dev->qlock);
	if (r < 0) {
		kv_err(err, err_len, "%s: cannot attach to the I/O threads: %s", lun->name,
		       strerror(-r));
		scsi_detach_lun(dev, lun);
		__atomic_store_n(&dev->luns[slot], NULL, __ATOMIC_RELEASE);
		scsi_barrier(dev);
		scsi_lun_free(lun);
		return r;
	}
	scsi_luns_changed(dev, o->target);
	atomic_store(&lun->ready, true);
	log_info("%s: added, %s, %" PRIu64 " blocks of %u%s", lun->name,
		 blk_disk_describe(o->backend, o->path, &o->rbd, where, sizeof(where)),
		 scsi_disk_blocks(&lun->disk), lun->disk.block_size,
		 o->readonly ? ", read-only" : "");
	scsi_dev_event(dev, VIRTIO_SCSI_T_TRANSPORT_RESET, o->target, o->lun,
		       VIRTIO_SCSI_EVT_RESET_RESCAN);
	return 0;
}

static struct scsi_lun *scsi_lun_by_addr(struct scsi_dev *dev, unsigned int target, unsigned int id)
{
	for (unsigned int i = 0; i < dev->nr_luns; i++) {
		struct scsi_lun *l = dev->luns[i];

		if (l && atomic_load(&l->ready) && l->opts.target == target && l->opts.lun == id)
			return l;
	}
	return NULL;
}

int scsi_dev_remove_lun(struct scsi_dev *dev, unsigned int target, unsigned int id, char *err,
			size_t err_len)
{
	struct scsi_lun *lun = scsi_lun_by_addr(dev, target, id);

	if (!lun)
		return kv_err(err, err_len, "%s: no target %u LUN %u", dev->opts.id, target, id);
	/* A queue that is draining, or an orphan, may hold commands on it. */
	for (unsigned int i = 0; i < dev->nr_queues; i++) {
		if (dev->queues[i].stopping_eq || atomic_load(&dev->queues[i].orphaned))
			return kv_err(
				err, err_len,
				"%s: a queue is stopping or has abandoned commands; try again",
				lun->name);
	}
	/* New commands find no LUN; those being parsed finish; those in flight complete. */
	atomic_store(&lun->ready, false);
	scsi_barrier(dev);
	scsi_detach_lun(dev, lun);
	__atomic_store_n(&dev->luns[lun->slot], NULL, __ATOMIC_RELEASE);
	scsi_barrier(dev);
	/* A TMF running now may still look at the slot. */
	pthread_mutex_lock(&dev->tmf_run_lock);
	pthread_mutex_unlock(&dev->tmf_run_lock);
	scsi_luns_changed(dev, target);
	log_info("%s: removed", lun->name);
	scsi_lun_free(lun);
	scsi_dev_event(dev, VIRTIO_SCSI_T_TRANSPORT_RESET, target, id,
		       VIRTIO_SCSI_EVT_RESET_REMOVED);
	return 0;
}

/* The image's size now: a regular file's length or a block device's. */
static int scsi_image_size(const char *path, uint64_t *size)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int r = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		r = -errno;
	else if (S_ISBLK(st.st_mode))
		r = ioctl(fd, BLKGETSIZE64, size) < 0 ? -errno : 0;
	else
		*size = (uint64_t)st.st_size;
	close(fd);
	return r;
}

int scsi_dev_resize_lun(struct scsi_dev *dev, unsigned int target, unsigned int id, char *err,
			size_t err_len)
{
	struct scsi_lun *lun = scsi_lun_by_addr(dev, target, id);
	uint64_t size, old;
	int r;

	if (!lun)
		return kv_err(err, err_len, "%s: no target %u LUN %u", dev->opts.id, target, id);
	if (lun->opts.backend == BLK_BACKEND_NULL)
		return kv_err(err, err_len, "%s: the null back-end has a fixed size", lun->name);
	if (lun->opts.backend != BLK_BACKEND_FILE)
		return kv_err(err, err_len, "%s: resize is for image files only", lun->name);
	r = scsi_image_size(lun->opts.path, &size);
	if (r < 0)
		return kv_err(err, err_len, "%s: %s: %s", lun->name, lun->opts.path, strerror(-r));
	old = scsi_disk_blocks(&lun->disk);
	if (size >> lun->disk.block_shift == old)
		return 0;
	/* CAPACITY DATA HAS CHANGED on the next command, and a PARAM_CHANGE event. */
	scsi_disk_resize(&lun->disk, size);
	log_info("%s: resized from %" PRIu64 " to %" PRIu64 " blocks", lun->name, old,
		 scsi_disk_blocks(&lun->disk));
	scsi_dev_event(dev, VIRTIO_SCSI_T_PARAM_CHANGE, target, id, 0x2a | 0x09 << 8);
	return 0;
}

struct vu_dev *scsi_dev_vu(struct scsi_dev *dev)
{
	return dev->vu;
}
