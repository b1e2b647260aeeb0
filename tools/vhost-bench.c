// SPDX-License-Identifier: MIT
/*
 * vhost-bench.c - drive any vhost-user-blk back-end (vhostd,
 * qemu-storage-daemon, ...) from user space and measure it.
 *
 * The vhost-user front-end (frontend.h) plays the guest: one thread per
 * queue keeps --iodepth virtio-blk requests in flight, each a 16-byte
 * header (device-readable), the data, and a one-byte status
 * (device-writable), all in the memory shared with the back-end.  Requests
 * complete by the queue's call eventfd (a guest's interrupt) or, with
 * --poll, by spinning on the used ring.  Every status byte is checked.
 *
 * Nothing is allocated per request: slots are made once, and a completed
 * slot is refilled and resubmitted at once.  One clock reading serves a
 * whole batch of completions, as their end time and as the start time of
 * the requests that replace them, so measuring costs less than one
 * clock_gettime() per request; the error is the time to walk one batch
 * (microseconds), once in each direction.
 *
 * --verify checks the data read back as well: every sector written starts
 * with a tag {magic, generation, sector, sequence number} and the rest of
 * it is derived from the tag, and a read of a block this run has written
 * must return exactly the last write's bytes.  Each queue then owns a
 * disjoint slice of the blocks and never has two requests to one block in
 * flight, so "the last write" is well defined without locks.
 *
 * --rate IOPS turns the closed loop into an open one: each queue issues its
 * share of the rate on a fixed schedule (the queues' schedules interleaved),
 * whether or not the device has kept up, with at most --iodepth in flight.
 * Latency counts from the time a request was *due*, not from the time it
 * went out, so a device that falls behind shows its queueing delay instead
 * of slowing the load down to what it can take (the coordinated omission of
 * a closed loop).  A request that finds every slot busy waits for one and
 * is counted late; one still waiting when the run ends is counted dropped.
 * Between issues the thread sleeps on the call eventfd with a timeout set
 * to the next due time, or, with --poll, spins.
 *
 * --cpu-pid PID reads the user and system time of a process (the back-end
 * under test, all its threads) from /proc/PID/stat just before the first
 * request and after the last completion, so the CPU time per request
 * covers exactly the requests counted, and none of the connection set-up
 * and tear-down a script sampling around the whole run would add.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/log.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_scsi.h"
#include "lat_hist.h"
#include "vhost-user/frontend.h"
#include "virtq/ring.h"

#ifndef VHOSTD_VERSION
#define VHOSTD_VERSION "unknown"
#endif

#define EXIT_USAGE 2
/* A request that takes this long means the back-end is stuck. */
#define STALL_MS   10000
#define DATA_ALIGN 4096
/* --verify keeps a sequence number per block: at most this many blocks. */
#define VERIFY_MAX_BLOCKS (64ull << 20)
#define VERIFY_MAGIC	  0x76626368u /* "vbch" */
#define RATE_MAX	  10000000u
/* The longest a worker sleeps, so a failure elsewhere or a stall is noticed. */
#define WAIT_MAX_NS 50000000u

enum rw_mode { RW_READ, RW_WRITE, RW_RANDREAD, RW_RANDWRITE, RW_RANDRW };

static const char *const rw_names[] = {
	[RW_READ] = "read",	      [RW_WRITE] = "write",   [RW_RANDREAD] = "randread",
	[RW_RANDWRITE] = "randwrite", [RW_RANDRW] = "randrw",
};

struct bench_opts {
	const char *socket;
	enum rw_mode rw;
	uint32_t bs;
	unsigned int iodepth;
	unsigned int queues;
	double time_s;
	uint64_t size;		/* bytes of the device to use; 0: all */
	unsigned int rwmixread; /* percent of reads for randrw */
	uint16_t queue_size;	/* 0: derived from iodepth */
	unsigned int rate;	/* --rate: total IOPS, open loop; 0: closed loop */
	pid_t cpu_pid;		/* --cpu-pid: a process whose CPU time to report; 0: none */
	bool poll;
	bool json;
	bool packed;
	bool inflight; /* --inflight: ask for the in-flight region */
	bool event_idx;
	bool indirect;
	bool verify;
	bool scsi; /* --scsi-lun: a virtio-scsi LUN, READ (16) / WRITE (16) */
	unsigned int scsi_target, scsi_lun;
};

/* One request, preallocated; the header and data live in shared memory. */
struct slot {
	struct virtio_blk_outhdr *hdr; /* virtio-scsi too: hdr->sector for messages */
	struct virtio_scsi_cmd_req *sreq;
	struct virtio_scsi_cmd_resp *sresp;
	uint8_t *data;
	uint8_t *status;
	uint64_t t_submit; /* ns, CLOCK_MONOTONIC */
	uint64_t block;
	uint32_t seq; /* --verify: written, or expected (0: never written) */
	bool write;
};

struct worker_stats {
	uint64_t ios[2]; /* [0] reads, [1] writes */
	uint64_t bytes[2];
	uint64_t kicks;
	uint64_t calls;
	uint64_t verified; /* reads whose data was checked */
	/* --rate */
	uint64_t scheduled; /* requests due before the end of the run */
	uint64_t late;	    /* issued after waiting for a free slot */
	uint64_t dropped;   /* still waiting for a slot when the run ended */
	struct lat_hist lat;
	struct lat_hist lag; /* --rate: issue time minus due time */
};

/*
 * --rate: one queue's share of one schedule at the total rate.  Request g
 * of the whole schedule is due at start + g * 1e9 / rate ns; queue q of Q
 * takes g = q, q + Q, q + 2Q, ...: its k-th request is g = q + k * Q.
 */
struct schedule {
	uint64_t start; /* ns, CLOCK_MONOTONIC */
	double rate;	/* requests a second, all queues */
	unsigned int q, stride;
	uint64_t k;	 /* the next request to issue */
	uint64_t next;	 /* when it is due */
	uint64_t end;	 /* nothing due from here on is issued */
	uint64_t t_full; /* the last time a due request found every slot busy */
	struct slot **free;
	unsigned int nfree;
};

struct worker {
	struct bench *b;
	unsigned int q;
	unsigned int vring; /* q, or q + 2 on a virtio-scsi controller */
	struct virtq_drv *vq;
	struct slot *slots;
	unsigned int inflight;
	uint64_t rng;
	uint64_t next_block; /* sequential modes */
	uint64_t first_block, nblocks;
	uint64_t *busy;	    /* --verify: blocks of the slice in flight, a bitmap */
	unsigned int depth; /* requests kept in flight */
	struct schedule sched;
	uint64_t t_end;
	char err[512];
	struct worker_stats st;
	pthread_t thread;
};

struct bench {
	struct bench_opts o;
	struct vu_fe *fe;
	uint64_t capacity; /* sectors */
	uint32_t scsi_bs;  /* --scsi-lun: the LUN's logical block size */
	uint64_t nblocks;  /* bs-sized blocks in the region used */
	struct worker *workers;
	uint32_t *seqs; /* --verify: per block, the last sequence number written */
	uint32_t gen;	/* --verify: this run's generation */
	atomic_bool stop;
	atomic_bool failed;
	uint64_t t_start;
	/* CPU time over the measuring window: --cpu-pid's, in ticks, and our own, in ns */
	uint64_t cpu_ticks[2];
	uint64_t self_cpu_ns[2];
};

__attribute__((format(printf, 1, 2))) static void error(const char *fmt, ...)
{
	va_list ap;

	fputs("vhost-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* xorshift64*: fast, and good enough to scatter block numbers. */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* --- requests --- */

static bool rw_random(enum rw_mode rw)
{
	return rw == RW_RANDREAD || rw == RW_RANDWRITE || rw == RW_RANDRW;
}

static bool op_is_write(struct worker *w)
{
	switch (w->b->o.rw) {
	case RW_WRITE:
	case RW_RANDWRITE:
		return true;
	case RW_RANDRW:
		return rng_next(&w->rng) % 100 >= w->b->o.rwmixread;
	default:
		return false;
	}
}

static bool busy_test(const struct worker *w, uint64_t i)
{
	return w->busy[i / 64] & (1ull << (i % 64));
}

/*
 * --verify: a block of the worker's slice with no request in flight.  The
 * slice has at least w->depth blocks and fewer are in flight, so one is
 * free; after a few random (or sequential) tries, scan for it.
 */
static uint64_t op_block_verify(struct worker *w)
{
	bool random = rw_random(w->b->o.rw);
	uint64_t i = 0;

	for (int tries = 0; tries < 16; tries++) {
		if (random) {
			i = rng_next(&w->rng) % w->nblocks;
		} else {
			i = w->next_block;
			if (++w->next_block == w->nblocks)
				w->next_block = 0;
		}
		if (!busy_test(w, i))
			goto found;
	}
	while (busy_test(w, i))
		i = i + 1 == w->nblocks ? 0 : i + 1;
found:
	w->busy[i / 64] |= 1ull << (i % 64);
	return w->first_block + i;
}

static uint64_t op_block(struct worker *w)
{
	uint64_t blk;

	if (w->b->o.verify)
		return op_block_verify(w);
	if (rw_random(w->b->o.rw))
		return rng_next(&w->rng) % w->b->nblocks;
	blk = w->first_block + w->next_block;
	if (++w->next_block == w->nblocks)
		w->next_block = 0;
	return blk % w->b->nblocks;
}

/* --- --verify: what a sector holds --- */

struct vtag {
	uint32_t magic;
	uint32_t gen;
	uint64_t lba;
	uint64_t seq;
};

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static void vtag_make(struct vtag *t, uint32_t gen, uint64_t lba, uint32_t seq)
{
	t->magic = htole32(VERIFY_MAGIC);
	t->gen = htole32(gen);
	t->lba = htole64(lba);
	t->seq = htole64(seq);
}

/* Word @i after the tag: a function of the whole tag, so of the sector and write. */
static uint64_t vtag_word(const struct vtag *t, unsigned int i)
{
	uint64_t seed = splitmix64(t->lba ^ ((uint64_t)t->gen << 32 | t->magic));

	return splitmix64(seed ^ t->seq * 0xff51afd7ed558ccdull ^ i);
}

#define VWORDS ((VIRTIO_BLK_SECTOR_SIZE - sizeof(struct vtag)) / sizeof(uint64_t))

static void sector_fill(uint8_t *p, const struct vtag *t)
{
	uint64_t *words = (uint64_t *)(p + sizeof(*t));

	memcpy(p, t, sizeof(*t));
	for (unsigned int i = 0; i < VWORDS; i++)
		words[i] = vtag_word(t, i);
}

/* Offset of the first byte of @p that differs from sector_fill(@t), or -1. */
static int sector_check(const uint8_t *p, const struct vtag *t)
{
	const uint64_t *words = (const uint64_t *)(p + sizeof(*t));

	if (memcmp(p, t, sizeof(*t))) {
		for (unsigned int i = 0; i < sizeof(*t); i++) {
			if (p[i] != ((const uint8_t *)t)[i])
				return (int)i;
		}
	}
	for (unsigned int i = 0; i < VWORDS; i++) {
		if (words[i] != vtag_word(t, i))
			return (int)(sizeof(*t) + i * sizeof(uint64_t));
	}
	return -1;
}

static void slot_prepare_verify(struct worker *w, struct slot *s, uint64_t sector)
{
	unsigned int n = w->b->o.bs >> VIRTIO_BLK_SECTOR_SHIFT;
	uint32_t *seq = &w->b->seqs[s->block];
	struct vtag t;

	if (!s->write) {
		/* A device that returns success without writing the data is caught. */
		s->seq = *seq;
		for (unsigned int i = 0; i < n; i++)
			memset(s->data + i * VIRTIO_BLK_SECTOR_SIZE, 0, sizeof(t));
		return;
	}
	s->seq = *seq + 1 ? *seq + 1 : 1;
	for (unsigned int i = 0; i < n; i++) {
		vtag_make(&t, w->b->gen, sector + i, s->seq);
		sector_fill(s->data + i * VIRTIO_BLK_SECTOR_SIZE, &t);
	}
}

/* The data of a completed read of a block this run wrote; false on a mismatch. */
static bool slot_verify(struct worker *w, struct slot *s)
{
	unsigned int n = w->b->o.bs >> VIRTIO_BLK_SECTOR_SHIFT;
	uint64_t sector = le64toh(s->hdr->sector);
	struct vtag t, f;
	int off;

	for (unsigned int i = 0; i < n; i++) {
		const uint8_t *p = s->data + i * VIRTIO_BLK_SECTOR_SIZE;

		vtag_make(&t, w->b->gen, sector + i, s->seq);
		off = sector_check(p, &t);
		if (off < 0)
			continue;
		memcpy(&f, p, sizeof(f));
		snprintf(w->err, sizeof(w->err),
			 "q%u: verify: block %" PRIu64 " (sector %" PRIu64
			 "): byte %d differs: expected tag {magic 0x%08x gen 0x%08x lba %" PRIu64
			 " seq %" PRIu64 "}, found {magic 0x%08x gen 0x%08x lba %" PRIu64
			 " seq %" PRIu64 "}",
			 w->q, s->block, sector + i, off, le32toh(t.magic), le32toh(t.gen),
			 le64toh(t.lba), le64toh(t.seq), le32toh(f.magic), le32toh(f.gen),
			 le64toh(f.lba), le64toh(f.seq));
		return false;
	}
	w->st.verified++;
	return true;
}

/* --- virtio-scsi --- */

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The command header for @cdb (16 bytes) to the LUN under test. */
static void scsi_cmd(const struct bench_opts *o, struct virtio_scsi_cmd_req *req, uint64_t tag,
		     const uint8_t *cdb)
{
	memset(req, 0, sizeof(*req));
	req->lun[0] = 1;
	req->lun[1] = (uint8_t)o->scsi_target;
	req->lun[2] = o->scsi_lun >= 256 ? (uint8_t)(0x40 | (o->scsi_lun >> 8)) : 0;
	req->lun[3] = (uint8_t)o->scsi_lun;
	req->tag = htole64(tag);
	memcpy(req->cdb, cdb, 16);
}

/* READ (16) or WRITE (16) of the slot's block, in the LUN's logical blocks. */
static void scsi_prepare(struct worker *w, struct slot *s)
{
	uint32_t per = w->b->o.bs / w->b->scsi_bs;
	uint8_t cdb[16] = {s->write ? 0x8a : 0x88};

	put_be64(cdb + 2, s->block * per);
	put_be32(cdb + 10, per);
	scsi_cmd(&w->b->o, s->sreq, (uint64_t)(uintptr_t)s, cdb);
	s->sresp->response = 0xff;
	s->sresp->status = 0xff;
}

static int scsi_add(struct worker *w, struct slot *s)
{
	struct vu_fe *fe = w->b->fe;
	struct virtq_sg sg[3];

	sg[0] = (struct virtq_sg){vu_fe_addr(fe, s->sreq), sizeof(*s->sreq)};
	if (s->write) {
		sg[1] = (struct virtq_sg){vu_fe_addr(fe, s->data), w->b->o.bs};
		sg[2] = (struct virtq_sg){vu_fe_addr(fe, s->sresp), sizeof(*s->sresp)};
	} else {
		sg[1] = (struct virtq_sg){vu_fe_addr(fe, s->sresp), sizeof(*s->sresp)};
		sg[2] = (struct virtq_sg){vu_fe_addr(fe, s->data), w->b->o.bs};
	}
	return virtq_drv_add_sgs(w->vq, sg, s->write ? 2 : 1, s->write ? 1 : 2, s);
}

/*
 * READ CAPACITY (16) before the workers start, on the first request queue:
 * the LUN's size and block size.  Unit attentions (power on) are retried.
 */
static int scsi_read_capacity(struct bench *b)
{
	struct virtio_scsi_cmd_req *req = vu_fe_alloc(b->fe, sizeof(*req), 16);
	struct virtio_scsi_cmd_resp *resp = vu_fe_alloc(b->fe, sizeof(*resp), 16);
	uint8_t *data = vu_fe_alloc(b->fe, 32, 16);
	struct virtq_drv *vq = vu_fe_queue(b->fe, VIRTIO_SCSI_REQ_QUEUE0);
	uint8_t cdb[16] = {0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32};
	int token;

	if (!req || !resp || !data || !vq)
		return -1;
	for (int tries = 0; tries < 4; tries++) {
		struct virtq_sg sg[3] = {
			{vu_fe_addr(b->fe, req), sizeof(*req)},
			{vu_fe_addr(b->fe, resp), sizeof(*resp)},
			{vu_fe_addr(b->fe, data), 32},
		};
		uint32_t len;
		void *t;

		scsi_cmd(&b->o, req, 1, cdb);
		if (virtq_drv_add_sgs(vq, sg, 1, 2, &token) ||
		    vu_fe_kick(b->fe, VIRTIO_SCSI_REQ_QUEUE0) < 0)
			return -1;
		while (!(t = virtq_drv_get_buf(vq, &len))) {
			if (virtq_drv_enable_cb(vq) &&
			    vu_fe_wait_call(b->fe, VIRTIO_SCSI_REQ_QUEUE0, 5000) != 1)
				return -1;
		}
		if (resp->response != VIRTIO_SCSI_S_OK) {
			error("LUN %u:%u: virtio-scsi response %u (3: no such target)",
			      b->o.scsi_target, b->o.scsi_lun, resp->response);
			return -1;
		}
		if (resp->status == 0) {
			uint64_t last = (uint64_t)get_be32(data) << 32 | get_be32(data + 4);

			b->scsi_bs = get_be32(data + 8);
			if (b->scsi_bs < 512 || b->o.bs % b->scsi_bs) {
				error("--bs %u is not a multiple of the LUN's block size %u",
				      b->o.bs, b->scsi_bs);
				return -1;
			}
			b->capacity = (last + 1) * (b->scsi_bs / 512);
			return 0;
		}
		/* CHECK CONDITION: a unit attention is answered by asking again. */
		if ((resp->sense[2] & 0x0f) != 6) {
			error("LUN %u:%u: READ CAPACITY failed: sense %x/%02x/%02x",
			      b->o.scsi_target, b->o.scsi_lun, resp->sense[2] & 0x0f,
			      resp->sense[12], resp->sense[13]);
			return -1;
		}
	}
	error("LUN %u:%u: unit attention after unit attention", b->o.scsi_target, b->o.scsi_lun);
	return -1;
}

/* Fill @s with the next operation and expose it: header, data, status. */
static int slot_submit(struct worker *w, struct slot *s, uint64_t t)
{
	struct vu_fe *fe = w->b->fe;
	uint32_t bs = w->b->o.bs;
	struct virtq_sg sg[3];
	int ret;

	s->write = op_is_write(w);
	s->hdr->type = htole32(s->write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN);
	s->hdr->ioprio = 0;
	s->block = op_block(w);
	s->hdr->sector = htole64(s->block * (bs >> VIRTIO_BLK_SECTOR_SHIFT));
	if (w->b->o.verify)
		slot_prepare_verify(w, s, le64toh(s->hdr->sector));
	/* Not a status a device can return: a device that forgets to write it is caught. */
	*s->status = 0xff;
	s->t_submit = t;

	if (w->b->o.scsi) {
		scsi_prepare(w, s);
		ret = scsi_add(w, s);
	} else {
		sg[0] = (struct virtq_sg){vu_fe_addr(fe, s->hdr), sizeof(*s->hdr)};
		sg[1] = (struct virtq_sg){vu_fe_addr(fe, s->data), bs};
		sg[2] = (struct virtq_sg){vu_fe_addr(fe, s->status), 1};
		ret = virtq_drv_add_sgs(w->vq, sg, s->write ? 2 : 1, s->write ? 1 : 2, s);
	}
	if (ret) {
		snprintf(w->err, sizeof(w->err), "q%u: cannot add a request: %s", w->q,
			 strerror(-ret));
		return ret;
	}
	w->inflight++;
	return 0;
}

static const char *status_name(uint8_t status)
{
	switch (status) {
	case VIRTIO_BLK_S_IOERR:
		return "IOERR";
	case VIRTIO_BLK_S_UNSUPP:
		return "UNSUPP";
	case 0xff:
		return "never written";
	default:
		return "invalid";
	}
}

/* Check one completed request and account for it; false on a failed one. */
static bool slot_complete(struct worker *w, struct slot *s, uint32_t len, uint64_t t)
{
	uint8_t status = *(volatile uint8_t *)s->status;
	unsigned int dir = s->write;

	w->inflight--;
	if (w->b->o.scsi) {
		const volatile struct virtio_scsi_cmd_resp *r = s->sresp;

		if (r->response != VIRTIO_SCSI_S_OK || r->status || len < sizeof(*r)) {
			snprintf(w->err, sizeof(w->err),
				 "q%u: %s of sector %" PRIu64 " failed: response %u, status %#x, "
				 "sense %x/%02x/%02x, used length %u",
				 w->q, s->write ? "write" : "read", le64toh(s->hdr->sector),
				 r->response, r->status, r->sense[2] & 0x0f, r->sense[12],
				 r->sense[13], len);
			return false;
		}
		status = VIRTIO_BLK_S_OK;
		len = 1;
	}
	if (status != VIRTIO_BLK_S_OK || len < 1) {
		snprintf(w->err, sizeof(w->err),
			 "q%u: %s of sector %" PRIu64 " failed: status %u (%s), used length %u",
			 w->q, s->write ? "write" : "read", le64toh(s->hdr->sector), status,
			 status_name(status), len);
		return false;
	}
	if (w->b->o.verify) {
		uint64_t i = s->block - w->first_block;

		w->busy[i / 64] &= ~(1ull << (i % 64));
		if (s->write)
			w->b->seqs[s->block] = s->seq;
		else if (s->seq && !slot_verify(w, s))
			return false;
	}
	lat_hist_add(&w->st.lat, t - s->t_submit);
	w->st.ios[dir]++;
	w->st.bytes[dir] += w->b->o.bs;
	return true;
}

static void fail(struct worker *w)
{
	atomic_store(&w->b->failed, true);
	atomic_store(&w->b->stop, true);
}

/* Publish what was added and notify the device if it asks for it. */
static int worker_kick(struct worker *w)
{
	int ret = vu_fe_kick(w->b->fe, w->vring);

	if (ret < 0) {
		snprintf(w->err, sizeof(w->err), "q%u: kick: %s", w->q, strerror(-ret));
		return ret;
	}
	/* vu_fe_kick() returns 1 only when the ring asked for a kick. */
	w->st.kicks += (uint64_t)ret;
	return 0;
}

/*
 * Take every used request, check it, and refill it at once unless the
 * run is over (--rate: put it back on the free list instead).  Returns
 * how many completed, or -1 on a failure.
 */
static int worker_reap(struct worker *w)
{
	bool stopping = atomic_load_explicit(&w->b->stop, memory_order_relaxed);
	unsigned int added = 0;
	int done = 0;
	struct slot *s;
	uint64_t t = 0;
	uint32_t len;

	while ((s = virtq_drv_get_buf(w->vq, &len))) {
		if (!done)
			t = now_ns();
		done++;
		if (!slot_complete(w, s, len, t))
			return -1;
		if (w->b->o.rate) {
			w->sched.free[w->sched.nfree++] = s;
			continue;
		}
		if (stopping)
			continue;
		if (slot_submit(w, s, t))
			return -1;
		added++;
	}
	if (virtq_drv_is_broken(w->vq)) {
		snprintf(w->err, sizeof(w->err), "q%u: the device broke the ring protocol", w->q);
		return -1;
	}
	if (added && worker_kick(w))
		return -1;
	return done;
}

/*
 * Sleep until the device calls.  Interrupts stay off while we reap (the
 * device need not signal what we will see anyway) and are switched on
 * only before sleeping; enable_cb() says whether something slipped in
 * meanwhile, which closes the race with the device's last completion.
 */
static int worker_wait(struct worker *w)
{
	int ret;

	if (!virtq_drv_enable_cb(w->vq)) {
		virtq_drv_disable_cb(w->vq);
		return 0;
	}
	ret = vu_fe_wait_call(w->b->fe, w->vring, 100);
	virtq_drv_disable_cb(w->vq);
	if (ret < 0) {
		snprintf(w->err, sizeof(w->err), "q%u: waiting for a call: %s", w->q,
			 strerror(-ret));
		return ret;
	}
	if (ret > 0) {
		w->st.calls++;
	} else if (vu_fe_hung_up(w->b->fe)) {
		/* The daemon went away (or removed the device): no call will come. */
		snprintf(w->err, sizeof(w->err),
			 "q%u: the back-end closed the connection with %u requests in flight", w->q,
			 w->inflight);
		return -EPIPE;
	}
	return 0;
}

static bool worker_stalled(struct worker *w, uint64_t since)
{
	if (now_ns() - since < (uint64_t)STALL_MS * 1000000u)
		return false;
	snprintf(w->err, sizeof(w->err), "q%u: no completion for %d s with %u requests in flight",
		 w->q, STALL_MS / 1000, w->inflight);
	return true;
}

static int worker_loop(struct worker *w)
{
	uint64_t last_progress = now_ns();
	int n;

	while (w->inflight) {
		n = worker_reap(w);
		if (n < 0)
			return -1;
		if (n) {
			last_progress = now_ns();
			continue;
		}
		if (!w->b->o.poll && worker_wait(w))
			return -1;
		if (worker_stalled(w, last_progress))
			return -1;
	}
	return 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t t = w->b->t_start;

	virtq_drv_disable_cb(w->vq);
	for (unsigned int i = 0; i < w->depth; i++) {
		if (slot_submit(w, &w->slots[i], t))
			goto failed;
	}
	if (worker_kick(w) || worker_loop(w))
		goto failed;
	w->t_end = now_ns();
	return NULL;
failed:
	w->t_end = now_ns();
	fail(w);
	return NULL;
}

/* --- --rate: the open loop --- */

static uint64_t sched_due(const struct schedule *sc, uint64_t k)
{
	/* From the global index each time: no rounding error builds up. */
	return sc->start + (uint64_t)((double)(sc->q + k * sc->stride) * 1e9 / sc->rate);
}

static void sched_advance(struct schedule *sc)
{
	sc->next = sched_due(sc, ++sc->k);
}

/*
 * How many requests of the schedule are due before its end: the estimate,
 * corrected by the very rounding rate_issue() sees, so that requests
 * issued plus dropped is exactly this.
 */
static uint64_t sched_count(const struct schedule *sc)
{
	uint64_t n;

	if (sched_due(sc, 0) >= sc->end)
		return 0;
	n = (uint64_t)((double)(sc->end - sc->start) * sc->rate / 1e9 / sc->stride);
	while (sched_due(sc, n) < sc->end)
		n++;
	while (n && sched_due(sc, n - 1) >= sc->end)
		n--;
	return n;
}

/*
 * Issue every request that is due by @now, as long as a slot is free.
 * A due request that finds none waits for one, as would a guest whose
 * queue is full; it is counted late, and its latency still starts when it
 * was due.  Returns how many went out, or -1 on a failure.
 */
static int rate_issue(struct worker *w, uint64_t now)
{
	struct schedule *sc = &w->sched;
	int added = 0;

	while (sc->next <= now && sc->next < sc->end) {
		if (!sc->nfree) {
			sc->t_full = now;
			break;
		}
		if (sc->next <= sc->t_full)
			w->st.late++;
		lat_hist_add(&w->st.lag, now - sc->next);
		if (slot_submit(w, sc->free[--sc->nfree], sc->next))
			return -1;
		sched_advance(sc);
		added++;
	}
	if (added && worker_kick(w))
		return -1;
	return added;
}

/*
 * Sleep until @until or the device's call, whichever comes first.  As in
 * worker_wait(), interrupts are on only while we sleep.  ppoll() takes a
 * timespec, so the schedule is kept to the microsecond, not rounded to
 * poll()'s millisecond.
 */
static int rate_wait(struct worker *w, uint64_t now, uint64_t until)
{
	int fd = vu_fe_call_fd(w->b->fe, w->vring);
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	uint64_t ns = until > now ? until - now : 0;
	struct timespec ts;
	eventfd_t v;
	int r;

	if (w->inflight && !virtq_drv_enable_cb(w->vq)) {
		virtq_drv_disable_cb(w->vq);
		return 0;
	}
	if (ns > WAIT_MAX_NS)
		ns = WAIT_MAX_NS;
	ts.tv_sec = (time_t)(ns / 1000000000u);
	ts.tv_nsec = (long)(ns % 1000000000u);
	r = ppoll(&pfd, 1, &ts, NULL);
	if (w->inflight)
		virtq_drv_disable_cb(w->vq);
	if (r < 0 && errno != EINTR) {
		snprintf(w->err, sizeof(w->err), "q%u: waiting for a call: %s", w->q,
			 strerror(errno));
		return -1;
	}
	if (r > 0) {
		/* Non-blocking: a call for a wait that was skipped is simply consumed. */
		eventfd_read(fd, &v);
		w->st.calls++;
	}
	return 0;
}

static int rate_loop(struct worker *w)
{
	struct schedule *sc = &w->sched;
	uint64_t last_progress = now_ns(), now, until;
	bool issuing = true;
	int n, added;

	for (;;) {
		n = worker_reap(w);
		if (n < 0)
			return -1;
		now = now_ns();
		added = 0;
		if (issuing) {
			added = rate_issue(w, now);
			if (added < 0)
				return -1;
			/*
			 * The end of the schedule (not the main thread's stop) ends
			 * the issuing, after this last pass: what is due and still
			 * finds no free slot is dropped.
			 */
			if (now >= sc->end ||
			    atomic_load_explicit(&w->b->failed, memory_order_relaxed))
				issuing = false;
		} else if (!w->inflight) {
			return 0;
		}
		if (n || added) {
			last_progress = now;
			continue;
		}
		if (w->inflight && worker_stalled(w, last_progress))
			return -1;
		if (w->b->o.poll)
			continue;
		/* Nothing to do before the next due time, or before a slot frees. */
		until = issuing && sc->nfree ? sc->next : now + WAIT_MAX_NS;
		if (issuing && until > sc->end)
			until = sc->end;
		if (rate_wait(w, now, until))
			return -1;
	}
}

static void *rate_main(void *arg)
{
	struct worker *w = arg;
	struct schedule *sc = &w->sched;

	/*
	 * The default 50 us timer slack would make every wake-up up to 50 us
	 * late, and that lateness would count as latency.
	 */
	if (!w->b->o.poll)
		prctl(PR_SET_TIMERSLACK, 1000ul, 0, 0, 0);
	virtq_drv_disable_cb(w->vq);
	if (rate_loop(w))
		fail(w);
	w->t_end = now_ns();
	w->st.scheduled = sched_count(sc);
	w->st.dropped = w->st.scheduled > sc->k ? w->st.scheduled - sc->k : 0;
	return NULL;
}

/* --- set-up --- */

/*
 * --rate: queue @q takes every queues-th request of one schedule at the
 * total rate, so the queues' requests interleave instead of coming in
 * bursts of one per queue.
 */
static void sched_init(struct worker *w, unsigned int q)
{
	const struct bench *b = w->b;
	struct schedule *sc = &w->sched;

	sc->start = b->t_start;
	sc->rate = b->o.rate;
	sc->q = q;
	sc->stride = b->o.queues;
	sc->next = sched_due(sc, 0);
	sc->end = b->t_start + (uint64_t)(b->o.time_s * 1e9);
	sc->nfree = w->depth;
	for (unsigned int i = 0; i < w->depth; i++)
		sc->free[i] = &w->slots[w->depth - 1 - i];
}

static int worker_init(struct bench *b, struct worker *w, unsigned int q)
{
	struct bench_opts *o = &b->o;

	w->b = b;
	w->q = q;
	w->vring = o->scsi ? VIRTIO_SCSI_REQ_QUEUE0 + q : q;
	w->vq = vu_fe_queue(b->fe, w->vring);
	w->rng = (0x9e3779b97f4a7c15ull * (q + 1) ^ (uint64_t)getpid()) | 1;
	/* Sequential streams start spread over the region, one per queue. */
	w->nblocks = b->nblocks;
	w->first_block = b->nblocks / o->queues * q;
	w->depth = o->iodepth;
	if (o->verify) {
		/* A slice of its own, and never more requests than blocks in it. */
		w->first_block = b->nblocks * q / o->queues;
		w->nblocks = b->nblocks * (q + 1) / o->queues - w->first_block;
		if (w->depth > w->nblocks)
			w->depth = (unsigned int)w->nblocks;
		w->busy = calloc((w->nblocks + 63) / 64, sizeof(*w->busy));
		if (!w->busy) {
			error("q%u: out of memory for --verify", q);
			return -1;
		}
	}
	lat_hist_init(&w->st.lat);
	lat_hist_init(&w->st.lag);
	w->slots = calloc(o->iodepth, sizeof(*w->slots));
	if (o->rate)
		w->sched.free = calloc(o->iodepth, sizeof(*w->sched.free));
	if (!w->vq || !w->slots || (o->rate && !w->sched.free)) {
		error("q%u: cannot set up the queue", q);
		return -1;
	}
	for (unsigned int i = 0; i < o->iodepth; i++) {
		struct slot *s = &w->slots[i];

		s->hdr = vu_fe_alloc(b->fe, sizeof(*s->hdr), 16);
		s->status = vu_fe_alloc(b->fe, 1, 1);
		s->data = vu_fe_alloc(b->fe, o->bs, DATA_ALIGN);
		if (o->scsi) {
			s->sreq = vu_fe_alloc(b->fe, sizeof(*s->sreq), 16);
			s->sresp = vu_fe_alloc(b->fe, sizeof(*s->sresp), 16);
		}
		if (!s->hdr || !s->status || !s->data || (o->scsi && (!s->sreq || !s->sresp))) {
			error("out of shared memory for request buffers");
			return -1;
		}
		/* Something other than zeroes for writes, so a device cannot cheat. */
		memset(s->data, 0xa5 ^ (int)(i & 0xff), o->bs);
	}
	return 0;
}

static uint16_t default_queue_size(const struct bench_opts *o)
{
	/* Each request takes 3 descriptors, or 1 in an indirect table. */
	unsigned int need = o->iodepth * (o->indirect ? 1 : 3);
	/* vhostd's virtio-scsi rings default to 128 (QEMU's virtqueue_size). */
	unsigned int size = o->scsi ? 128 : 256;

	while (size < need && size < VIRTQ_MAX_SIZE)
		size *= 2;
	return (uint16_t)size;
}

static size_t shared_mem_size(const struct bench_opts *o)
{
	size_t ring = virtq_drv_mem_size(o->queue_size, o->packed, o->indirect ? 3 : 0);
	size_t slot = 16 + 1 + 15 + o->bs + DATA_ALIGN;

	/* Rings, request slots with alignment slack, and room for the front-end. */
	return o->queues * (ring + 4096 + (size_t)o->iodepth * slot) + (1u << 20);
}

static uint64_t driver_features(const struct bench_opts *o)
{
	uint64_t f = 1ull << VIRTIO_F_VERSION_1;

	if (o->event_idx)
		f |= 1ull << VIRTIO_RING_F_EVENT_IDX;
	if (o->indirect)
		f |= 1ull << VIRTIO_RING_F_INDIRECT_DESC;
	if (o->packed)
		f |= 1ull << VIRTIO_F_RING_PACKED;
	if (o->scsi)
		return f; /* no virtio-scsi device bit matters here */
	/*
	 * Device bits the bench understands: how many queues, read-only, block
	 * size, and FLUSH as a guest kernel accepts it: without FLUSH a device
	 * must write through (5.2.5), which would measure a different path
	 * from the one guests use.
	 */
	f |= 1ull << VIRTIO_BLK_F_MQ | 1ull << VIRTIO_BLK_F_RO | 1ull << VIRTIO_BLK_F_BLK_SIZE |
	     1ull << VIRTIO_BLK_F_FLUSH;
	return f;
}

static bool has(uint64_t features, unsigned int bit)
{
	return features & (1ull << bit);
}

/* Check what the device said it is against what we are asked to do. */
static int check_device(struct bench *b)
{
	struct bench_opts *o = &b->o;
	uint64_t f = vu_fe_features(b->fe), bytes;
	struct virtio_blk_config cfg = {0};

	if (o->scsi) {
		if (scsi_read_capacity(b))
			return -1;
	} else if (vu_fe_get_config(b->fe, &cfg,
				    offsetof(struct virtio_blk_config, max_discard_sectors))) {
		error("cannot read the device's config space");
		return -1;
	} else {
		b->capacity = le64toh(cfg.capacity);
	}
	bytes = b->capacity << VIRTIO_BLK_SECTOR_SHIFT;
	if (o->size > bytes) {
		error("--size %" PRIu64 " is larger than the device (%" PRIu64 " bytes)", o->size,
		      bytes);
		return -1;
	}
	if (o->size)
		bytes = o->size;
	b->nblocks = bytes / o->bs;
	if (!b->nblocks) {
		error("the device (%" PRIu64 " bytes) is smaller than one block of %u", bytes,
		      o->bs);
		return -1;
	}
	if (o->verify && b->nblocks > VERIFY_MAX_BLOCKS) {
		error("--verify: %" PRIu64 " blocks of %u to track, more than %llu: use --size or "
		      "a larger --bs",
		      b->nblocks, o->bs, VERIFY_MAX_BLOCKS);
		return -1;
	}
	if (o->verify && b->nblocks < o->queues) {
		error("--verify: %" PRIu64 " blocks cannot give each of %u queues its own",
		      b->nblocks, o->queues);
		return -1;
	}
	if (!o->scsi && has(f, VIRTIO_BLK_F_RO) && o->rw != RW_READ && o->rw != RW_RANDREAD) {
		error("the device is read-only: use --rw read or randread");
		return -1;
	}
	if (!o->scsi && has(f, VIRTIO_BLK_F_BLK_SIZE) && le32toh(cfg.blk_size) &&
	    o->bs % le32toh(cfg.blk_size))
		error("warning: --bs %u is not a multiple of the device's block size %u", o->bs,
		      le32toh(cfg.blk_size));
	return 0;
}

static int bench_connect(struct bench *b)
{
	struct bench_opts *o = &b->o;
	struct vu_fe_config cfg = {
		.socket_path = o->socket,
		.num_queues = o->scsi ? VIRTIO_SCSI_REQ_QUEUE0 + o->queues : o->queues,
		.queue_size = o->queue_size,
		.features = driver_features(o),
		.indirect_max = o->indirect ? 3 : 0,
		.mem_size = shared_mem_size(o),
		.inflight = o->inflight,
	};

	b->fe = vu_fe_connect(&cfg);
	if (!b->fe) {
		error("cannot connect to a vhost-user-blk back-end at %s with %u queue(s) of %u: "
		      "%s",
		      o->socket, o->queues, o->queue_size, strerror(errno));
		return -1;
	}
	if (vu_fe_num_queues(b->fe) < (o->scsi ? VIRTIO_SCSI_REQ_QUEUE0 : 0) + o->queues) {
		error("the device has %u queues, fewer than --queues %u", vu_fe_num_queues(b->fe),
		      o->queues);
		return -1;
	}
	return check_device(b);
}

/* --- running --- */

/* utime + stime of every thread of @pid, dead ones included, in clock ticks. */
static int proc_cpu_ticks(pid_t pid, uint64_t *ticks)
{
	char path[64], buf[1024], *p;
	uint64_t utime, stime;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	/* The command name in parentheses may hold anything: skip to its last ')'. */
	p = strrchr(buf, ')');
	/* State, ppid, pgrp, session, tty_nr, tpgid, flags, 4 fault counts: fields 3-13. */
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %" SCNu64 " %" SCNu64,
			 &utime, &stime) != 2)
		return -1;
	*ticks = utime + stime;
	return 0;
}

/* Sample the CPU clocks at the start (@i 0) or the end (@i 1) of the measuring window. */
static void cpu_sample(struct bench *b, int i)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	b->self_cpu_ns[i] = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	/* Checked readable at start-up; a target that died meanwhile counts no more time. */
	if (b->o.cpu_pid && proc_cpu_ticks(b->o.cpu_pid, &b->cpu_ticks[i]))
		b->cpu_ticks[i] = b->cpu_ticks[0];
}

static void sleep_until(uint64_t deadline, struct bench *b)
{
	struct timespec ts;
	uint64_t t;

	while (!atomic_load(&b->stop) && (t = now_ns()) < deadline) {
		/* Wake every 50 ms so a failed worker ends the run early. */
		t = deadline - t < 50000000u ? deadline - t : 50000000u;
		ts.tv_sec = (time_t)(t / 1000000000u);
		ts.tv_nsec = (long)(t % 1000000000u);
		nanosleep(&ts, NULL);
	}
}

static int bench_run(struct bench *b)
{
	unsigned int started = 0;
	int ret = 0;

	b->workers = calloc(b->o.queues, sizeof(*b->workers));
	if (!b->workers)
		return -1;
	if (b->o.verify) {
		b->seqs = calloc(b->nblocks, sizeof(*b->seqs));
		if (!b->seqs) {
			error("out of memory for --verify (%" PRIu64 " blocks)", b->nblocks);
			return -1;
		}
		/* Blocks are checked only once this run wrote them; gen tells runs apart. */
		b->gen = (uint32_t)splitmix64(now_ns() ^ (uint64_t)getpid() << 32);
	}
	for (unsigned int q = 0; q < b->o.queues; q++) {
		if (worker_init(b, &b->workers[q], q))
			return -1;
	}
	cpu_sample(b, 0);
	b->t_start = now_ns();
	for (unsigned int q = 0; q < b->o.queues && b->o.rate; q++)
		sched_init(&b->workers[q], q);
	for (; started < b->o.queues; started++) {
		if (pthread_create(&b->workers[started].thread, NULL,
				   b->o.rate ? rate_main : worker_main, &b->workers[started])) {
			error("cannot start a thread");
			atomic_store(&b->stop, true);
			ret = -1;
			break;
		}
	}
	sleep_until(b->t_start + (uint64_t)(b->o.time_s * 1e9), b);
	atomic_store(&b->stop, true);
	for (unsigned int q = 0; q < started; q++) {
		pthread_join(b->workers[q].thread, NULL);
		if (b->workers[q].err[0]) {
			error("%s", b->workers[q].err);
			ret = -1;
		}
	}
	cpu_sample(b, 1);
	return atomic_load(&b->failed) ? -1 : ret;
}

/* --- report --- */

static double us(uint64_t ns)
{
	return (double)ns / 1000.0;
}

struct totals {
	struct worker_stats st;
	double secs;
	uint64_t ios;
	double cpu_us;	    /* --cpu-pid's CPU time over the window */
	double self_cpu_us; /* ours */
};

static void totals_sum(const struct bench *b, struct totals *t)
{
	uint64_t t_end = b->t_start;

	memset(t, 0, sizeof(*t));
	lat_hist_init(&t->st.lat);
	lat_hist_init(&t->st.lag);
	for (unsigned int q = 0; q < b->o.queues; q++) {
		const struct worker *w = &b->workers[q];

		for (int d = 0; d < 2; d++) {
			t->st.ios[d] += w->st.ios[d];
			t->st.bytes[d] += w->st.bytes[d];
		}
		t->st.kicks += w->st.kicks;
		t->st.calls += w->st.calls;
		t->st.verified += w->st.verified;
		t->st.scheduled += w->st.scheduled;
		t->st.late += w->st.late;
		t->st.dropped += w->st.dropped;
		lat_hist_merge(&t->st.lat, &w->st.lat);
		lat_hist_merge(&t->st.lag, &w->st.lag);
		if (w->t_end > t_end)
			t_end = w->t_end;
	}
	t->secs = (double)(t_end - b->t_start) / 1e9;
	t->ios = t->st.ios[0] + t->st.ios[1];
	t->cpu_us =
		(double)(b->cpu_ticks[1] - b->cpu_ticks[0]) * 1e6 / (double)sysconf(_SC_CLK_TCK);
	t->self_cpu_us = us(b->self_cpu_ns[1] - b->self_cpu_ns[0]);
}

static double per_req(uint64_t n, uint64_t ios)
{
	return ios ? (double)n / (double)ios : 0;
}

static const char *features_text(const struct bench *b, char *buf, size_t len)
{
	uint64_t f = vu_fe_features(b->fe);

	snprintf(buf, len, "%s%s%s", has(f, VIRTIO_F_RING_PACKED) ? "packed" : "split",
		 has(f, VIRTIO_RING_F_EVENT_IDX) ? " event-idx" : "",
		 has(f, VIRTIO_RING_F_INDIRECT_DESC) ? " indirect" : "");
	return buf;
}

static double per_req_f(double v, uint64_t ios)
{
	return ios ? v / (double)ios : 0;
}

static void report_rate_text(const struct totals *t)
{
	const struct lat_hist *g = &t->st.lag;

	printf("  schedule: %" PRIu64 " requests due, %" PRIu64
	       " late (waited for a free slot), %" PRIu64 " dropped (still waiting at the end)\n",
	       t->st.scheduled, t->st.late, t->st.dropped);
	printf("  issue lag (us): p50 %.1f, p99 %.1f, max %.1f\n", us(lat_hist_percentile(g, 50)),
	       us(lat_hist_percentile(g, 99)), us(g->max));
}

static void report_text(const struct bench *b, const struct totals *t)
{
	const struct bench_opts *o = &b->o;
	const struct lat_hist *h = &t->st.lat;
	char feat[64];

	printf("%s: %s bs=%u iodepth=%u queues=%u, %.2f s, %s, %s completion", o->socket,
	       rw_names[o->rw], o->bs, o->iodepth, o->queues, t->secs,
	       features_text(b, feat, sizeof(feat)), o->poll ? "polled" : "call eventfd");
	if (o->rate)
		printf(", open loop at %u IOPS", o->rate);
	putchar('\n');
	printf("  IOPS %.0f, %.1f MB/s", t->ios / t->secs,
	       (double)(t->st.bytes[0] + t->st.bytes[1]) / t->secs / 1e6);
	if (o->rw == RW_RANDRW)
		printf(" (read %.0f IOPS, write %.0f IOPS)", t->st.ios[0] / t->secs,
		       t->st.ios[1] / t->secs);
	printf("\n  latency (us): min %.1f, mean %.1f, p50 %.1f, p99 %.1f, p99.9 %.1f, max %.1f\n",
	       us(h->count ? h->min : 0), h->count ? us(h->sum) / (double)h->count : 0,
	       us(lat_hist_percentile(h, 50)), us(lat_hist_percentile(h, 99)),
	       us(lat_hist_percentile(h, 99.9)), us(h->max));
	printf("  per request: %.3f kicks, %.3f calls (%" PRIu64 " requests, %" PRIu64
	       " kicks, %" PRIu64 " calls)\n",
	       per_req(t->st.kicks, t->ios), per_req(t->st.calls, t->ios), t->ios, t->st.kicks,
	       t->st.calls);
	if (o->verify)
		printf("  verify: %" PRIu64 " blocks read back and verified, no mismatch "
		       "(generation 0x%08x)\n",
		       t->st.verified, b->gen);
	if (o->rate)
		report_rate_text(t);
	if (o->cpu_pid)
		printf("  CPU: pid %d %.2f us/request (%.1f%% of one CPU), vhost-bench %.2f "
		       "us/request\n",
		       (int)o->cpu_pid, per_req_f(t->cpu_us, t->ios), t->cpu_us / t->secs / 1e4,
		       per_req_f(t->self_cpu_us, t->ios));
}

static void json_add_double(struct json_object *obj, const char *key, double v)
{
	char text[64];

	/* Three decimals are plenty; json-c would otherwise print 17 digits. */
	snprintf(text, sizeof(text), "%.3f", v);
	json_object_object_add(obj, key, json_object_new_double_s(v, text));
}

static void json_add_u64(struct json_object *obj, const char *key, uint64_t v)
{
	json_object_object_add(obj, key, json_object_new_uint64(v));
}

static struct json_object *json_dir(const struct totals *t, int d)
{
	struct json_object *obj = json_object_new_object();

	json_add_u64(obj, "ios", t->st.ios[d]);
	json_add_double(obj, "iops", t->st.ios[d] / t->secs);
	json_add_double(obj, "mbps", (double)t->st.bytes[d] / t->secs / 1e6);
	return obj;
}

static struct json_object *json_latency(const struct lat_hist *h)
{
	struct json_object *obj = json_object_new_object();

	json_add_double(obj, "min", us(h->count ? h->min : 0));
	json_add_double(obj, "mean", h->count ? us(h->sum) / (double)h->count : 0);
	json_add_double(obj, "p50", us(lat_hist_percentile(h, 50)));
	json_add_double(obj, "p99", us(lat_hist_percentile(h, 99)));
	json_add_double(obj, "p99.9", us(lat_hist_percentile(h, 99.9)));
	json_add_double(obj, "max", us(h->max));
	return obj;
}

static void json_add_rate(struct json_object *r, const struct totals *t)
{
	const struct lat_hist *g = &t->st.lag;
	struct json_object *lag = json_object_new_object();

	json_add_u64(r, "scheduled", t->st.scheduled);
	json_add_u64(r, "late", t->st.late);
	json_add_u64(r, "dropped", t->st.dropped);
	json_add_double(lag, "p50", us(lat_hist_percentile(g, 50)));
	json_add_double(lag, "p99", us(lat_hist_percentile(g, 99)));
	json_add_double(lag, "max", us(g->max));
	json_object_object_add(r, "issue-lag-us", lag);
}

static void report_json(const struct bench *b, const struct totals *t)
{
	const struct bench_opts *o = &b->o;
	struct json_object *r = json_object_new_object();
	uint64_t f = vu_fe_features(b->fe);

	json_object_object_add(r, "socket", json_object_new_string(o->socket));
	json_object_object_add(r, "rw", json_object_new_string(rw_names[o->rw]));
	json_add_u64(r, "bs", o->bs);
	json_add_u64(r, "iodepth", o->iodepth);
	json_add_u64(r, "queues", o->queues);
	json_add_u64(r, "queue-size", o->queue_size);
	json_add_u64(r, "capacity", b->capacity);
	json_object_object_add(r, "poll", json_object_new_boolean(o->poll));
	json_object_object_add(r, "packed", json_object_new_boolean(has(f, VIRTIO_F_RING_PACKED)));
	json_object_object_add(r, "event-idx",
			       json_object_new_boolean(has(f, VIRTIO_RING_F_EVENT_IDX)));
	json_object_object_add(r, "indirect",
			       json_object_new_boolean(has(f, VIRTIO_RING_F_INDIRECT_DESC)));
	json_add_double(r, "seconds", t->secs);
	json_add_u64(r, "ios", t->ios);
	json_add_double(r, "iops", t->ios / t->secs);
	json_add_double(r, "mbps", (double)(t->st.bytes[0] + t->st.bytes[1]) / t->secs / 1e6);
	json_object_object_add(r, "read", json_dir(t, 0));
	json_object_object_add(r, "write", json_dir(t, 1));
	json_object_object_add(r, "latency-us", json_latency(&t->st.lat));
	json_add_u64(r, "kicks", t->st.kicks);
	json_add_u64(r, "calls", t->st.calls);
	json_add_double(r, "kicks-per-request", per_req(t->st.kicks, t->ios));
	json_add_double(r, "calls-per-request", per_req(t->st.calls, t->ios));
	json_object_object_add(r, "verify", json_object_new_boolean(o->verify));
	json_add_u64(r, "verified", t->st.verified);
	json_add_u64(r, "rate", o->rate);
	if (o->rate)
		json_add_rate(r, t);
	if (o->cpu_pid) {
		json_add_u64(r, "cpu-pid", (uint64_t)o->cpu_pid);
		json_add_double(r, "cpu-us", t->cpu_us);
		json_add_double(r, "cpu-us-per-request", per_req_f(t->cpu_us, t->ios));
	}
	json_add_double(r, "bench-cpu-us", t->self_cpu_us);
	json_add_double(r, "bench-cpu-us-per-request", per_req_f(t->self_cpu_us, t->ios));
	printf("%s\n", json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN |
								 JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(r);
}

/* --- command line --- */

static const char usage_text[] =
	"Usage: vhost-bench --socket PATH [OPTIONS]\n"
	"\n"
	"Connect to a vhost-user-blk back-end as a userspace virtio driver and\n"
	"measure it: IOPS, MB/s, latency percentiles, notifications per request.\n"
	"\n"
	"  --socket PATH      the back-end's vhost-user socket (required)\n"
	"  --rw MODE          randread (default), randwrite, read, write, randrw\n"
	"  --bs SIZE          request size, a multiple of 512 (default 4k)\n"
	"  --iodepth N        requests in flight per queue (default 32)\n"
	"  --queues N         queues, one thread each (default 1)\n"
	"  --time S           seconds to run (default 5)\n"
	"  --size BYTES       use only the first BYTES of the device\n"
	"  --rwmixread PCT    percent of reads for randrw (default 50)\n"
	"  --queue-size N     ring size (default: 256, or enough for --iodepth)\n"
	"  --poll             complete by polling the used ring, not by call eventfd\n"
	"  --packed           offer VIRTIO_F_RING_PACKED\n"
	"  --no-event-idx     do not offer VIRTIO_RING_F_EVENT_IDX\n"
	"  --no-indirect      do not offer VIRTIO_RING_F_INDIRECT_DESC\n"
	"  --inflight         take the back-end's in-flight region (INFLIGHT_SHMFD),\n"
	"                     as a VMM that reconnects does: it tracks every request\n"
	"  --scsi-lun T:L     the back-end is virtio-scsi: drive its target T, LUN L\n"
	"                     with READ (16) / WRITE (16) on request queues 2..\n"
	"  --verify           write tagged data and check every read of a block\n"
	"                     written in this run (at most 64M blocks)\n"
	"  --rate IOPS        open loop: issue IOPS requests a second in all, on a\n"
	"                     fixed schedule, at most --iodepth in flight per queue;\n"
	"                     latency counts from when a request was due\n"
	"  --cpu-pid PID      report PID's CPU time per request (all its threads,\n"
	"                     from /proc/PID/stat, over the measured interval)\n"
	"  --json             print one JSON object instead of text\n"
	"  -h, --help         show this help and exit\n"
	"  -V, --version      show the version and exit\n"
	"\n"
	"SIZE and BYTES take a k, m, g or t suffix (powers of 1024).  Exit status:\n"
	"0 if every request succeeded (and, with --verify, all data read back was\n"
	"what was written), 1 on any failed request, mismatch or error, 2 for a\n"
	"usage error.\n";

enum {
	OPT_SOCKET = 0x100,
	OPT_RW,
	OPT_BS,
	OPT_IODEPTH,
	OPT_QUEUES,
	OPT_TIME,
	OPT_SIZE,
	OPT_RWMIXREAD,
	OPT_QUEUE_SIZE,
	OPT_RATE,
	OPT_CPU_PID, /* the last option with an argument */
	OPT_POLL,
	OPT_PACKED,
	OPT_INFLIGHT,
	OPT_NO_EVENT_IDX,
	OPT_NO_INDIRECT,
	OPT_JSON,
	OPT_VERIFY,
	OPT_SCSI_LUN,
};

static const struct option long_options[] = {
	{"socket", required_argument, NULL, OPT_SOCKET},
	{"rw", required_argument, NULL, OPT_RW},
	{"bs", required_argument, NULL, OPT_BS},
	{"iodepth", required_argument, NULL, OPT_IODEPTH},
	{"queues", required_argument, NULL, OPT_QUEUES},
	{"time", required_argument, NULL, OPT_TIME},
	{"size", required_argument, NULL, OPT_SIZE},
	{"rwmixread", required_argument, NULL, OPT_RWMIXREAD},
	{"queue-size", required_argument, NULL, OPT_QUEUE_SIZE},
	{"rate", required_argument, NULL, OPT_RATE},
	{"cpu-pid", required_argument, NULL, OPT_CPU_PID},
	{"poll", no_argument, NULL, OPT_POLL},
	{"packed", no_argument, NULL, OPT_PACKED},
	{"inflight", no_argument, NULL, OPT_INFLIGHT},
	{"no-event-idx", no_argument, NULL, OPT_NO_EVENT_IDX},
	{"no-indirect", no_argument, NULL, OPT_NO_INDIRECT},
	{"json", no_argument, NULL, OPT_JSON},
	{"verify", no_argument, NULL, OPT_VERIFY},
	{"scsi-lun", required_argument, NULL, OPT_SCSI_LUN},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0},
};

/* "4096", "4k", "1M", "2g": a byte count with an optional binary suffix. */
static int parse_size(const char *s, uint64_t *out)
{
	unsigned int shift = 0;
	unsigned long long v;
	const char *suffix;
	char *end;

	errno = 0;
	/* strtoull skips blanks and takes a sign (" -1" is 2^64 - 1): digits only. */
	if (!isdigit((unsigned char)*s))
		return -1;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	suffix = *end ? strchr("kmgt", tolower((unsigned char)*end)) : NULL;
	if (suffix) {
		shift = 10 * (unsigned int)(suffix - "kmgt" + 1);
		end++;
	}
	if (*end == 'b' || *end == 'B')
		end++;
	if (*end || v > (UINT64_MAX >> shift))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

static int parse_uint(const char *s, unsigned int min, unsigned int max, unsigned int *out)
{
	uint64_t v;

	if (parse_size(s, &v) || v < min || v > max)
		return -1;
	*out = (unsigned int)v;
	return 0;
}

/* A plain decimal number: "20000", not "20k" (which would be 20480). */
static int parse_decimal(const char *s, unsigned int min, unsigned int max, unsigned int *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	if (!isdigit((unsigned char)*s))
		return -1;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = (unsigned int)v;
	return 0;
}

static int parse_rw(const char *s, enum rw_mode *rw)
{
	for (unsigned int i = 0; i < sizeof(rw_names) / sizeof(rw_names[0]); i++) {
		if (!strcmp(s, rw_names[i])) {
			*rw = (enum rw_mode)i;
			return 0;
		}
	}
	return -1;
}

static int parse_time(const char *s, double *secs)
{
	char *end;

	errno = 0;
	*secs = strtod(s, &end);
	return errno || end == s || *end || !(*secs > 0 && *secs <= 86400) ? -1 : 0;
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("vhost-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (try 'vhost-bench --help')\n", stderr);
	return -1;
}

/* One option with an argument; 0, or -1 after a message. */
static int parse_value_opt(struct bench_opts *o, int opt, const char *arg)
{
	unsigned int u;
	uint64_t v;

	switch (opt) {
	case OPT_SOCKET:
		o->socket = arg;
		return 0;
	case OPT_SCSI_LUN: {
		unsigned int t, l;
		char c;

		if (sscanf(arg, "%u:%u%c", &t, &l, &c) != 2 || t > 255 || l > 16383)
			return usage_error("--scsi-lun %s: TARGET:LUN expected (0..255:0..16383)",
					   arg);
		o->scsi = true;
		o->scsi_target = t;
		o->scsi_lun = l;
		return 0;
	}
	case OPT_RW:
		if (parse_rw(arg, &o->rw))
			return usage_error(
				"--rw %s: expected read, write, randread, randwrite or randrw",
				arg);
		return 0;
	case OPT_BS:
		if (parse_size(arg, &v) || !v || v % VIRTIO_BLK_SECTOR_SIZE || v > (64u << 20))
			return usage_error("--bs %s: expected a multiple of 512 up to 64M", arg);
		o->bs = (uint32_t)v;
		return 0;
	case OPT_IODEPTH:
		if (parse_uint(arg, 1, 4096, &o->iodepth))
			return usage_error("--iodepth %s: expected 1 to 4096", arg);
		return 0;
	case OPT_QUEUES:
		if (parse_uint(arg, 1, 64, &o->queues))
			return usage_error("--queues %s: expected 1 to 64", arg);
		return 0;
	case OPT_TIME:
		if (parse_time(arg, &o->time_s))
			return usage_error("--time %s: expected seconds, more than 0", arg);
		return 0;
	case OPT_SIZE:
		if (parse_size(arg, &o->size) || !o->size)
			return usage_error("--size %s: expected a byte count", arg);
		return 0;
	case OPT_RWMIXREAD:
		if (parse_uint(arg, 0, 100, &o->rwmixread))
			return usage_error("--rwmixread %s: expected 0 to 100", arg);
		return 0;
	case OPT_QUEUE_SIZE:
		if (parse_uint(arg, 1, VIRTQ_MAX_SIZE, &u))
			return usage_error("--queue-size %s: expected 1 to 32768", arg);
		o->queue_size = (uint16_t)u;
		return 0;
	case OPT_RATE:
		if (parse_decimal(arg, 1, RATE_MAX, &o->rate))
			return usage_error("--rate %s: expected 1 to %u requests a second", arg,
					   RATE_MAX);
		return 0;
	case OPT_CPU_PID:
		if (parse_decimal(arg, 1, INT32_MAX, &u) || proc_cpu_ticks((pid_t)u, &v))
			return usage_error("--cpu-pid %s: no /proc/%s/stat to read", arg, arg);
		o->cpu_pid = (pid_t)u;
		return 0;
	}
	return usage_error("internal: option %d", opt);
}

static int parse_flag_opt(struct bench_opts *o, int opt, char **argv)
{
	switch (opt) {
	case OPT_POLL:
		o->poll = true;
		return 0;
	case OPT_PACKED:
		o->packed = true;
		return 0;
	case OPT_INFLIGHT:
		o->inflight = true;
		return 0;
	case OPT_NO_EVENT_IDX:
		o->event_idx = false;
		return 0;
	case OPT_NO_INDIRECT:
		o->indirect = false;
		return 0;
	case OPT_JSON:
		o->json = true;
		return 0;
	case OPT_VERIFY:
		o->verify = true;
		return 0;
	case 'h':
		fputs(usage_text, stdout);
		return 1;
	case 'V':
		printf("vhost-bench %s\n", VHOSTD_VERSION);
		return 1;
	case ':':
		return usage_error("option '%s' needs an argument", argv[optind - 1]);
	}
	return usage_error("unknown option '%s'", argv[optind - 1]);
}

static int check_opts(struct bench_opts *o)
{
	if (!o->socket)
		return usage_error("--socket is required");
	if (o->verify && o->size && o->size / o->bs > VERIFY_MAX_BLOCKS)
		return usage_error("--verify: --size %" PRIu64 " holds more than %llu blocks of %u",
				   o->size, VERIFY_MAX_BLOCKS, o->bs);
	if (o->size && o->size < o->bs)
		return usage_error("--size %" PRIu64 " is smaller than --bs %u", o->size, o->bs);
	if (!o->queue_size)
		o->queue_size = default_queue_size(o);
	if (!o->packed && (o->queue_size & (o->queue_size - 1)))
		return usage_error("--queue-size %u: a split ring needs a power of two",
				   o->queue_size);
	if (o->iodepth * (o->indirect ? 1 : 3) > o->queue_size)
		return usage_error("--iodepth %u does not fit a ring of %u", o->iodepth,
				   o->queue_size);
	return 0;
}

/* 0: run; 1: done (help, version); -1: usage error, reported. */
static int parse_args(struct bench_opts *o, int argc, char **argv)
{
	int opt, ret;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":hV", long_options, NULL)) != -1) {
		if ((opt >= OPT_SOCKET && opt <= OPT_CPU_PID) || opt == OPT_SCSI_LUN)
			ret = parse_value_opt(o, opt, optarg);
		else
			ret = parse_flag_opt(o, opt, argv);
		if (ret)
			return ret;
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	return check_opts(o);
}

int main(int argc, char **argv)
{
	struct bench b = {
		.o =
			{
				.rw = RW_RANDREAD,
				.bs = 4096,
				.iodepth = 32,
				.queues = 1,
				.time_s = 5,
				.rwmixread = 50,
				.event_idx = true,
				.indirect = true,
			},
	};
	struct totals t;
	int ret;

	ret = parse_args(&b.o, argc, argv);
	if (ret)
		return ret < 0 ? EXIT_USAGE : 0;
	/* The front-end's own log lines: errors only, so --json stays parseable. */
	log_set_ident("vhost-bench");
	log_set_level(LOG_LVL_ERROR);
	ret = bench_connect(&b) || bench_run(&b) ? 1 : 0;
	if (!ret) {
		totals_sum(&b, &t);
		if (b.o.json)
			report_json(&b, &t);
		else
			report_text(&b, &t);
	}
	if (b.fe)
		vu_fe_disconnect(b.fe);
	if (b.workers) {
		for (unsigned int q = 0; q < b.o.queues; q++) {
			free(b.workers[q].slots);
			free(b.workers[q].busy);
			free(b.workers[q].sched.free);
		}
	}
	free(b.workers);
	free(b.seqs);
	return ret;
}
