/* SPDX-License-Identifier: MIT */
/*
 * scsi.h - the virtio-scsi device model (one controller, many LUNs),
 * exported over vhost-user.
 *
 * One struct scsi_dev per --scsi option: a vhost-user back-end
 * (backend.h) with a control queue, an event queue and num-queues request
 * queues, all served by the engine's I/O threads (engine.h).  Each LUN
 * (--lun) is a SCSI disk (scsi_disk.h) over its own block back-end
 * (backends/: a raw image or block device through io_uring, or null),
 * opened once; every request queue has a back-end queue per LUN on its
 * own thread.  Statistics are kept per LUN with the meaning of
 * /proc/diskstats, as for virtio-blk.
 */
#ifndef VHOSTD_DEVICES_SCSI_H
#define VHOSTD_DEVICES_SCSI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blk.h"
#include "vhost-user/backend.h"

#define SCSI_MAX_TARGET 255
#define SCSI_MAX_LUN	16383
/* LUNs per controller (REPORT LUNS lists at most this many per target). */
#define SCSI_MAX_LUNS 256
/* Request queues at most: the control and event queues take two of VU_MAX_QUEUES. */
#define SCSI_MAX_REQ_QUEUES	(VU_MAX_QUEUES - 2)
#define SCSI_DEFAULT_QUEUE_SIZE 128 /* QEMU's virtqueue_size default */
#define SCSI_MIN_QUEUE_SIZE	4
#define SCSI_MAX_QUEUE_SIZE	1024
#define SCSI_DEFAULT_POLL_US	50

struct scsi_options {
	char id[32];
	char socket[108];
	bool client;
	unsigned int num_queues; /* request queues */
	uint16_t queue_size;
	unsigned int poll_us;
	int io_thread;
	uint64_t max_guest_memory;
	unsigned int stop_timeout_ms; /* a queue's drain, at most; 0: backend.h's default */
};

struct scsi_lun_options {
	char scsi[32]; /* the controller's id */
	unsigned int target;
	unsigned int lun;
	enum blk_backend_kind backend;
	char path[4096];
	uint64_t size; /* backend=null */
	struct blk_rbd_options rbd; /* backend=rbd */
	bool readonly;
	bool no_locking; /* locking=off: no OFD lock on the image (migration) */
	char serial[37]; /* empty: "<scsi>-<target>-<lun>" */
	enum blk_cache_mode cache;
	uint32_t block_size;   /* 0: the back-end's logical block size (512 at least) */
	unsigned int delay_ms; /* backend=null: each command's I/O takes this long (tests) */
};

/*
 * "id=NAME,socket=PATH[,num-queues=N][,queue-size=N][,poll-us=N]
 * [,io-thread=K][,client=on][,max-guest-memory=BYTES]": 1 request queue of
 * 128 by default, poll-us 50.  0, or -EINVAL with a message in @err.
 */
int scsi_options_parse(const char *str, struct scsi_options *opts, char *err, size_t err_len);

/*
 * "scsi=NAME,target=T,lun=L,path=FILE|backend=null,size=BYTES
 * |backend=rbd,pool=P,image=I[,conf=FILE][,user=NAME]
 * [,readonly=on][,serial=STR][,cache=none|writeback][,block-size=512|4096]":
 * T 0..255, L 0..16383, serial 1..36 printable characters.  0, or -EINVAL
 * with a message in @err.
 */
int scsi_lun_options_parse(const char *str, struct scsi_lun_options *opts, char *err,
			   size_t err_len);

struct scsi_dev;
struct vu_dev;

/*
 * Open every LUN's image (@luns: @nr_luns of them, all for this
 * controller, no target/lun twice) and start the vhost-user back-end.
 * NULL, message in @err.
 */
struct scsi_dev *scsi_dev_new(const struct scsi_options *opts, const struct scsi_lun_options *luns,
			      unsigned int nr_luns, const struct vu_watch_ops *watch, void *loop,
			      char *err, size_t err_len);
/* Stop taking requests, finish the in-flight ones, close everything. */
void scsi_dev_free(struct scsi_dev *dev);

const char *scsi_dev_id(const struct scsi_dev *dev);
const struct scsi_options *scsi_dev_options(const struct scsi_dev *dev);
bool scsi_dev_connected(const struct scsi_dev *dev);
/* Is any queue started (the front-end driving the controller)? */
bool scsi_dev_active(struct scsi_dev *dev);
/* Its vhost-user device. */
struct vu_dev *scsi_dev_vu(struct scsi_dev *dev);

/*
 * LUN slots 0 .. scsi_dev_nr_luns() - 1: options (NULL for a free slot:
 * skip it), capacity and counters.  On the vhost-user loop's thread.
 */
unsigned int scsi_dev_nr_luns(const struct scsi_dev *dev);
const struct scsi_lun_options *scsi_dev_lun_options(const struct scsi_dev *dev, unsigned int i);
uint64_t scsi_dev_lun_blocks(const struct scsi_dev *dev, unsigned int i);
uint32_t scsi_dev_lun_block_size(const struct scsi_dev *dev, unsigned int i);
/* "NAME:T:L", as in its diskstats line. */
const char *scsi_dev_lun_name(const struct scsi_dev *dev, unsigned int i);
void scsi_dev_lun_stats(struct scsi_dev *dev, unsigned int i, struct blk_stats *st);
void scsi_dev_lun_lat_hist(struct scsi_dev *dev, unsigned int i, struct blk_lat_hist *h);

/* Virtqueues (control, event, then request queues) and their notifications. */
unsigned int scsi_dev_nr_vqueues(const struct scsi_dev *dev);
void scsi_dev_queue_counts(struct scsi_dev *dev, unsigned int q, uint64_t *kicks,
			   uint64_t *notifications);

/*
 * At run time, on the vhost-user loop's thread.  0, or -errno with a
 * message in @err.
 *
 * add: open the image, give every started request queue a back-end queue
 * for it, then let commands see it; REPORTED LUNS DATA HAS CHANGED on the
 * target's other LUNs and a TRANSPORT_RESET / RESCAN event.
 * remove: commands stop finding it, those in flight on it finish, the
 * image is closed; the same unit attention and a TRANSPORT_RESET /
 * REMOVED event.
 * resize: read the image's size again (it grew or shrank): CAPACITY DATA
 * HAS CHANGED and a PARAM_CHANGE event.
 */
int scsi_dev_add_lun(struct scsi_dev *dev, const struct scsi_lun_options *o, char *err,
		     size_t err_len);
int scsi_dev_remove_lun(struct scsi_dev *dev, unsigned int target, unsigned int lun, char *err,
			size_t err_len);
int scsi_dev_resize_lun(struct scsi_dev *dev, unsigned int target, unsigned int lun, char *err,
			size_t err_len);

/*
 * Send an event on the event queue (VIRTIO_SCSI_T_TRANSPORT_RESET with
 * VIRTIO_SCSI_EVT_RESET_RESCAN / _REMOVED, or VIRTIO_SCSI_T_PARAM_CHANGE
 * with reason asc | ascq << 8), if the driver accepted that kind; without
 * a buffer it is missed and the next buffer carries EVENTS_MISSED.  On the
 * vhost-user loop's thread.
 */
void scsi_dev_event(struct scsi_dev *dev, uint32_t event, unsigned int target, unsigned int lun,
		    uint32_t reason);

#endif /* VHOSTD_DEVICES_SCSI_H */
