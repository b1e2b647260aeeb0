// SPDX-License-Identifier: MIT
/*
 * scsi_ctrl.c - the virtio-scsi control queue (5.6.6.2): task management
 * and asynchronous notification, and the controller's TMF thread.
 *
 * A TMF cannot finish before the commands it aborts (the guest may reuse
 * their buffers the moment it does), and back-end I/O cannot be cancelled
 * once issued.  So a TMF with a target goes to the TMF thread, which marks
 * the matching in-flight commands on each request queue's thread
 * (eng_queue_call), waits until they are complete and published (they
 * answer ABORTED or RESET), raises the unit attentions a reset leaves, and
 * completes the TMF on the control queue's thread.  Responses follow
 * QEMU's virtio_scsi_do_tmf().  A TMF that was in flight when a previous
 * vhostd died is started again from the in-flight region; it first waits
 * until the request queues have started theirs (scsi_tmf_wait_replays).
 */
#include <endian.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/util.h"
#include "scsi_priv.h"

/* ---- task management (the TMF thread) ------------------------------------------- */

/* Does in-flight command @req fall under @tmf? */
static bool scsi_tmf_matches(const struct scsi_tmf *tmf, const struct scsi_req *req)
{
	switch (tmf->subtype) {
	case VIRTIO_SCSI_T_TMF_ABORT_TASK:
	case VIRTIO_SCSI_T_TMF_QUERY_TASK:
		return (int)req->lun->slot == tmf->lun_slot && req->tag == tmf->tag;
	case VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET:
		return req->lun->opts.target == tmf->target;
	default:
		return (int)req->lun->slot == tmf->lun_slot;
	}
}

/* On a request queue's thread: mark (or, for queries, count) the matching commands. */
static int scsi_tmf_mark(struct eng_queue *eq, void *arg)
{
	struct scsi_queue *sq = eng_queue_priv(eq);
	struct scsi_tmf *tmf = arg;
	bool query = tmf->subtype == VIRTIO_SCSI_T_TMF_QUERY_TASK ||
		     tmf->subtype == VIRTIO_SCSI_T_TMF_QUERY_TASK_SET;
	bool reset = tmf->subtype == VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET ||
		     tmf->subtype == VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET;

	for (struct scsi_req *req = sq->inflight; req; req = req->next) {
		if (!scsi_tmf_matches(tmf, req) || req->tmf)
			continue;
		tmf->found++;
		if (query)
			continue;
		/* Before any completion can count it down: same thread. */
		atomic_fetch_add(&tmf->pending, 1);
		req->tmf = tmf;
		req->abort_resp = reset ? VIRTIO_SCSI_S_RESET : VIRTIO_SCSI_S_ABORTED;
	}
	return 0;
}

/* On the control queue's thread: answer the TMF. */
static int scsi_tmf_complete(struct eng_queue *eq, void *arg)
{
	struct scsi_tmf *tmf = arg;
	struct virtq_elem *e = &tmf->req->base.elem;
	struct virtio_scsi_ctrl_tmf_resp resp = {.response = tmf->response};

	iov_from_buf(e->iov + e->out_num, e->in_num, 0, &resp, sizeof(resp));
	tmf->req->work = NULL;
	eng_req_complete(eq, &tmf->req->base, sizeof(resp));
	return 0;
}

/*
 * Are the commands a previous vhostd had in flight started again on every
 * request queue (struct scsi_queue's replays)?  A queue not started yet
 * may still bring some.
 */
static bool scsi_replays_started(struct scsi_dev *dev)
{
	bool done = true;

	pthread_mutex_lock(&dev->qlock);
	for (unsigned int i = VIRTIO_SCSI_REQ_QUEUE0; i < dev->nr_queues && done; i++)
		done = dev->queues[i].ext_eq &&
		       !atomic_load_explicit(&dev->queues[i].replays, memory_order_acquire);
	pthread_mutex_unlock(&dev->qlock);
	return done;
}

/*
 * A TMF that was in flight when the previous vhostd died, started again
 * from the in-flight region.  The commands it aborts may be in flight
 * too, started again on request queues that the front-end starts after
 * the control queue.  Answered before they are, the TMF would break its
 * promise (the guest reuses their buffers, and Linux retries them, while
 * they still run), so it waits until every request queue has started
 * what it had.  Bounded: a front-end that never starts some request
 * queue gets its answer after SCSI_REPLAY_WAIT_MS anyway (logged).  A
 * poll, not a wait on tmf_cond: that would need qlock under tmf_lock,
 * the reverse of a queue stop's order; this runs once after a crash.
 */
#define SCSI_REPLAY_WAIT_MS 5000

static void scsi_tmf_wait_replays(struct scsi_dev *dev)
{
	const struct timespec tick = {0, 10 * 1000 * 1000};
	unsigned int ms;

	for (ms = 0; ms < SCSI_REPLAY_WAIT_MS; ms += 10) {
		if (scsi_replays_started(dev))
			return;
		pthread_mutex_lock(&dev->tmf_lock);
		ms = dev->tmf_exit ? SCSI_REPLAY_WAIT_MS : ms;
		pthread_mutex_unlock(&dev->tmf_lock);
		nanosleep(&tick, NULL);
	}
	log_warn("%s: a task management function started again after a crash: not every "
		 "request queue started within %u ms, answering with what runs",
		 dev->opts.id, SCSI_REPLAY_WAIT_MS);
}

static void scsi_tmf_run(struct scsi_dev *dev, struct scsi_tmf *tmf)
{
	bool query = tmf->subtype == VIRTIO_SCSI_T_TMF_QUERY_TASK ||
		     tmf->subtype == VIRTIO_SCSI_T_TMF_QUERY_TASK_SET;

	atomic_init(&tmf->pending, 0);
	tmf->found = 0;
	if (tmf->replayed)
		scsi_tmf_wait_replays(dev);
	/* qlock: no queue's eq is freed under us (stop_queue takes it first). */
	pthread_mutex_lock(&dev->qlock);
	for (unsigned int i = VIRTIO_SCSI_REQ_QUEUE0; i < dev->nr_queues; i++) {
		if (dev->queues[i].ext_eq)
			eng_queue_call(dev->queues[i].ext_eq, scsi_tmf_mark, tmf);
	}
	pthread_mutex_unlock(&dev->qlock);

	/* Every marked command completes: the back-end finishes what it started. */
	pthread_mutex_lock(&dev->tmf_lock);
	while (atomic_load(&tmf->pending))
		pthread_cond_wait(&dev->tmf_cond, &dev->tmf_lock);
	pthread_mutex_unlock(&dev->tmf_lock);

	if (query && tmf->found)
		tmf->response = VIRTIO_SCSI_S_FUNCTION_SUCCEEDED;
	/* SAM-5: a reset leaves a unit attention on every LUN it reset. */
	if (tmf->subtype == VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET && tmf->lun_slot >= 0) {
		struct scsi_lun *l = lun_at(dev, (unsigned int)tmf->lun_slot);

		if (l)
			scsi_disk_set_ua(&l->disk, SCSI_UA_RESET);
	} else if (tmf->subtype == VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET) {
		for (unsigned int i = 0; i < nr_luns_of(dev); i++) {
			struct scsi_lun *l = lun_at(dev, i);

			if (l && l->opts.target == tmf->target)
				scsi_disk_set_ua(&l->disk, SCSI_UA_RESET);
		}
	}
	/* The control queue cannot finish stopping while this TMF is in flight. */
	eng_queue_call(tmf->ctrl_eq, scsi_tmf_complete, tmf);
}

void *scsi_tmf_main(void *arg)
{
	struct scsi_dev *dev = arg;
	struct scsi_tmf *tmf;

	pthread_mutex_lock(&dev->tmf_lock);
	for (;;) {
		while (!dev->tmf_head && !dev->tmf_exit)
			pthread_cond_wait(&dev->tmf_cond, &dev->tmf_lock);
		if (!dev->tmf_head)
			break;
		tmf = dev->tmf_head;
		dev->tmf_head = tmf->next;
		if (!dev->tmf_head)
			dev->tmf_tail = &dev->tmf_head;
		pthread_mutex_unlock(&dev->tmf_lock);
		pthread_mutex_lock(&dev->tmf_run_lock);
		scsi_tmf_run(dev, tmf);
		pthread_mutex_unlock(&dev->tmf_run_lock);
		free(tmf);
		pthread_mutex_lock(&dev->tmf_lock);
	}
	pthread_mutex_unlock(&dev->tmf_lock);
	return NULL;
}

/* ---- the control queue ------------------------------------------------------------ */

static void scsi_ctrl_answer(struct eng_queue *eq, struct eng_req *base, const void *resp,
			     size_t len)
{
	struct virtq_elem *e = &base->elem;

	iov_from_buf(e->iov + e->out_num, e->in_num, 0, resp, len);
	eng_req_complete(eq, base, (uint32_t)len);
}

static void scsi_ctrl_tmf(struct eng_queue *eq, struct scsi_ctrl_req *req, bool replayed)
{
	struct scsi_queue *sq = eng_queue_priv(eq);
	struct scsi_dev *dev = sq->dev;
	struct virtio_scsi_ctrl_tmf_resp resp = {.response = VIRTIO_SCSI_S_FUNCTION_COMPLETE};
	uint32_t subtype = le32toh(req->tmf.subtype);
	unsigned int target = 0, id = 0;
	bool valid, target_exists = false;
	struct scsi_lun *lun = NULL;
	struct scsi_tmf *tmf;

	valid = scsi_decode_lun(req->tmf.lun, &target, &id);
	if (valid)
		lun = scsi_find_lun(dev, target, id, &target_exists);
	switch (subtype) {
	case VIRTIO_SCSI_T_TMF_ABORT_TASK:
	case VIRTIO_SCSI_T_TMF_QUERY_TASK:
	case VIRTIO_SCSI_T_TMF_ABORT_TASK_SET:
	case VIRTIO_SCSI_T_TMF_CLEAR_TASK_SET:
	case VIRTIO_SCSI_T_TMF_QUERY_TASK_SET:
	case VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET:
		/* QEMU's answers: no such target, or a target without that LUN. */
		if (!valid || (!lun && !target_exists)) {
			resp.response = VIRTIO_SCSI_S_BAD_TARGET;
			break;
		}
		if (!lun) {
			resp.response = VIRTIO_SCSI_S_INCORRECT_LUN;
			break;
		}
		goto queue;
	case VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET:
		if (!valid) {
			resp.response = VIRTIO_SCSI_S_BAD_TARGET;
			break;
		}
		goto queue;
	default:
		/* CLEAR_ACA (NACA is never accepted) and anything unknown. */
		resp.response = VIRTIO_SCSI_S_FUNCTION_REJECTED;
		break;
	}
	scsi_ctrl_answer(eq, &req->base, &resp, sizeof(resp));
	return;

queue:
	tmf = calloc(1, sizeof(*tmf));
	if (!tmf) {
		resp.response = VIRTIO_SCSI_S_FAILURE;
		scsi_ctrl_answer(eq, &req->base, &resp, sizeof(resp));
		return;
	}
	tmf->req = req;
	tmf->ctrl_eq = eq;
	tmf->subtype = subtype;
	tmf->lun_slot = lun ? (int)lun->slot : -1;
	tmf->target = target;
	tmf->tag = le64toh(req->tmf.tag);
	tmf->response = VIRTIO_SCSI_S_FUNCTION_COMPLETE;
	tmf->replayed = replayed;
	req->work = tmf;
	pthread_mutex_lock(&dev->tmf_lock);
	*dev->tmf_tail = tmf;
	dev->tmf_tail = &tmf->next;
	pthread_cond_broadcast(&dev->tmf_cond);
	pthread_mutex_unlock(&dev->tmf_lock);
}

static void scsi_ctrl_start(struct eng_queue *eq, struct eng_req *base)
{
	struct scsi_ctrl_req *req = container_of(base, struct scsi_ctrl_req, base);
	struct scsi_queue *sq = eng_queue_priv(eq);
	struct virtq_elem *e = &base->elem;
	bool replayed = false;
	uint32_t type;

	/* The first sq->replays chains: started again after a crash. */
	if (unlikely(atomic_load_explicit(&sq->replays, memory_order_relaxed))) {
		atomic_fetch_sub_explicit(&sq->replays, 1, memory_order_relaxed);
		replayed = true;
	}
	req->work = NULL;
	if (e->out_len < sizeof(type)) {
		scsi_req_bad(eq, base, "control request without a type");
		return;
	}
	/* Copy once: the type, then the whole request of that type. */
	iov_to_buf(e->iov, e->out_num, 0, &type, sizeof(type));
	type = le32toh(type);
	if (type == VIRTIO_SCSI_T_TMF) {
		if (e->out_len < sizeof(req->tmf) ||
		    e->in_len < sizeof(struct virtio_scsi_ctrl_tmf_resp)) {
			scsi_req_bad(eq, base, "task management request too short");
			return;
		}
		iov_to_buf(e->iov, e->out_num, 0, &req->tmf, sizeof(req->tmf));
		req->tmf.type = htole32(type); /* the type we decided on, whatever the guest did */
		scsi_ctrl_tmf(eq, req, replayed);
	} else if (type == VIRTIO_SCSI_T_AN_QUERY || type == VIRTIO_SCSI_T_AN_SUBSCRIBE) {
		struct virtio_scsi_ctrl_an_resp resp = {.event_actual = 0,
							.response = VIRTIO_SCSI_S_OK};

		if (e->out_len < sizeof(struct virtio_scsi_ctrl_an_req) ||
		    e->in_len < sizeof(resp)) {
			scsi_req_bad(eq, base, "asynchronous notification request too short");
			return;
		}
		/* No asynchronous notification class is supported (QEMU: the same). */
		scsi_ctrl_answer(eq, base, &resp, sizeof(resp));
	} else {
		/* Unknown: nothing written, as QEMU. */
		eng_req_complete(eq, base, 0);
	}
}

const struct eng_queue_ops scsi_ctrl_ops = {
	.req_size = sizeof(struct scsi_ctrl_req),
	.start = scsi_ctrl_start,
};
