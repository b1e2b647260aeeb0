/* SPDX-License-Identifier: MIT */
/*
 * scsi_priv.h - what the files of the virtio-scsi device model share
 * (scsi.c: queues, requests, LUNs, the device; scsi_ctrl.c: the control
 * queue and the TMF thread).  Not for other modules: scsi.h is the API.
 */
#ifndef VHOSTD_DEVICES_SCSI_PRIV_H
#define VHOSTD_DEVICES_SCSI_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "backends/backend.h"
#include "engine/engine.h"
#include "scsi.h"
#include "scsi_disk.h"
#include "stats.h"
#include "virtio_scsi.h"

#define SCSI_MAX_SEG_MAX 254
/* config space max_sectors and cmd_per_lun: QEMU's virtio-scsi defaults. */
#define SCSI_MAX_SECTORS 0xffff
#define SCSI_CMD_PER_LUN 128
/* The response header may be split over this many buffers at most. */
#define SCSI_RESP_IOV 8
/* WRITE SAME with a pattern: blocks written per back-end operation. */
#define SCSI_WS_IOV 32

struct scsi_lun {
	struct scsi_dev *dev;
	unsigned int slot; /* index in dev->luns */
	struct scsi_lun_options opts;
	struct blk_backend *be;
	const struct blk_backend_ops *bops;
	struct blk_backend_info info;
	struct scsi_disk disk;
	struct blk_dev_stats stats; /* one block per request queue */
	char name[48];		    /* "id:T:L" */
	atomic_bool ready;	    /* found by commands (false while added / removed) */
};

struct scsi_tmf;
struct scsi_event_args;

/* A request queue's command slot (engine.h); its iovec array follows. */
struct scsi_req {
	struct eng_req base;
	struct scsi_lun *lun;
	uint64_t tag;
	struct iovec resp_iov[SCSI_RESP_IOV];
	unsigned int resp_cnt;
	struct iovec *data; /* data-in or data-out, trimmed to the transfer */
	unsigned int data_cnt;
	size_t buf_len; /* the driver's data buffer, for the residual */
	uint64_t done;	/* blocks (WRITE SAME) or ranges (UNMAP) finished */
	struct blk_io io;
	struct scsi_tmf *tmf; /* marked by a TMF: answered with abort_resp */
	uint8_t abort_resp;
	int8_t stat_dir;
	uint64_t sectors;
	uint64_t start_ns;
	struct scsi_req *prev, *next; /* the queue's in-flight list */
	struct iovec ws_iov[SCSI_WS_IOV];
	struct scsi_task task; /* last: large */
};

/* A control queue slot: a TMF or AN request. */
struct scsi_ctrl_req {
	struct eng_req base;
	struct virtio_scsi_ctrl_tmf_req tmf;
	struct scsi_tmf *work;
};

struct scsi_queue {
	struct scsi_dev *dev;
	unsigned int index; /* vring index */
	char name[48];
	struct eng_queue *eq;	       /* the queue's own thread: set by attach */
	struct eng_queue *ext_eq;      /* other threads (TMFs, events), under qlock */
	struct eng_queue *stopping_eq; /* stop_queue_begin .. end (loop thread) */
	/*
	 * A request queue whose stop was abandoned: the engine's orphan still
	 * uses this struct (eq, bbq, inflight) and its LUNs until its last
	 * command completes; its detach clears this.  No restart, no LUN
	 * removal and no free until then.
	 */
	atomic_bool orphaned;
	struct reactor *r;
	unsigned int num;
	bool io_error_logged;
	struct eng_queue_counters counters; /* kicks, notifications: across restarts */
	/* request queues: a back-end queue per LUN slot, and what is in flight */
	struct blk_backend_queue *bbq[SCSI_MAX_LUNS];
	struct scsi_req *inflight;
	/*
	 * Commands a TMF marked that completed in pass tmf_pass (one TMF runs
	 * at a time): the TMF thread hears of them only from a later pass,
	 * once their used entries are published, so the guest never sees a
	 * TMF finish before the commands it aborted.
	 */
	struct scsi_tmf *tmf_done;
	unsigned int tmf_done_count;
	uint64_t tmf_pass;
	/* the event queue: the event the buffer being popped gets */
	const struct scsi_event_args *ev_pending;
	/*
	 * Crash-safe reconnect: chains the engine starts again first, from
	 * the in-flight region (vu_queue.inflight), not yet started; set
	 * before the queue starts, counted down by its start().  A TMF that
	 * is itself started again waits until every request queue's are.
	 */
	atomic_uint replays;
};

/* One task management function on its way through the TMF thread. */
struct scsi_tmf {
	struct scsi_ctrl_req *req;
	struct eng_queue *ctrl_eq;
	uint32_t subtype;
	int lun_slot; /* -1: none (I_T nexus reset) */
	unsigned int target;
	uint64_t tag;
	uint8_t response;
	atomic_uint pending; /* marked commands not yet completed */
	unsigned int found;
	bool replayed; /* in flight when a previous vhostd died: started again */
	struct scsi_tmf *next;
};

struct scsi_dev {
	struct scsi_options opts;
	struct vu_dev *vu;
	uint32_t seg_max;
	_Atomic uint64_t features;

	/*
	 * Changed only on the vhost-user loop's thread, read by every queue
	 * thread: through lun_at() / nr_luns_of().  A LUN is freed only after
	 * every started queue has passed a barrier (eng_queue_call) since it
	 * was unpublished.
	 */
	struct scsi_lun *luns[SCSI_MAX_LUNS];
	unsigned int nr_luns;	      /* slots in use: highest + 1 */
	pthread_mutex_t tmf_run_lock; /* held by the TMF thread while it runs one */

	unsigned int nr_queues; /* all of them: 2 + request queues */
	struct scsi_queue *queues;
	/* Held while reading or changing a queue's eq from another thread. */
	pthread_mutex_t qlock;

	/* The TMF thread. */
	pthread_t tmf_thread;
	bool tmf_running;
	pthread_mutex_t tmf_lock;
	pthread_cond_t tmf_cond; /* work posted, or a marked command completed */
	struct scsi_tmf *tmf_head, **tmf_tail;
	bool tmf_exit;

	atomic_bool events_missed;
};

/*
 * Published LUN slots, read from any thread (changed only on the
 * vhost-user loop's thread; see struct scsi_dev).
 */
static inline struct scsi_lun *lun_at(const struct scsi_dev *dev, unsigned int i)
{
	return __atomic_load_n(&dev->luns[i], __ATOMIC_ACQUIRE);
}

static inline unsigned int nr_luns_of(const struct scsi_dev *dev)
{
	return __atomic_load_n(&dev->nr_luns, __ATOMIC_ACQUIRE);
}

/* scsi.c */
/* The LUN at @target / @lun that commands may see, or NULL; *@target_exists: any on the target. */
struct scsi_lun *scsi_find_lun(struct scsi_dev *dev, unsigned int target, unsigned int lun,
			       bool *target_exists);
/* virtio-scsi addressing (lun[0] = 1, target, single-level LUN); false if not one. */
bool scsi_decode_lun(const uint8_t *lun, unsigned int *target, unsigned int *id);
/* A chain too short for its headers: mark the device broken, complete it with nothing. */
void scsi_req_bad(struct eng_queue *eq, struct eng_req *base, const char *what);
/* @n commands @tmf marked are complete and published: wake the TMF thread if done. */
void scsi_tmf_commands_done(struct scsi_dev *dev, struct scsi_tmf *tmf, unsigned int n);

/* scsi_ctrl.c */
extern const struct eng_queue_ops scsi_ctrl_ops;
/* The TMF thread's body (pthread_create argument: the device). */
void *scsi_tmf_main(void *arg);

#endif /* VHOSTD_DEVICES_SCSI_PRIV_H */
