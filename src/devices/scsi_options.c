// SPDX-License-Identifier: MIT
/*
 * scsi_options.c - the --scsi and --lun option strings (scsi.h), parsed
 * with common/kvopts.h as blk.c parses --blk.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kvopts.h"
#include "common/util.h"
#include "engine/devopts.h"
#include "engine/engine.h"
#include "scsi.h"

enum {
	OPT_ID = 1 << 0,
	OPT_SOCKET = 1 << 1,
	OPT_NUM_QUEUES = 1 << 2,
	OPT_QUEUE_SIZE = 1 << 3,
	OPT_POLL_US = 1 << 4,
	OPT_IO_THREAD = 1 << 5,
	OPT_CLIENT = 1 << 6,
	OPT_MAX_GUEST_MEMORY = 1 << 7,
	OPT_STOP_TIMEOUT_MS = 1 << 8,
};

static const struct kv_key scsi_keys[] = {
	{"id", OPT_ID},
	{"socket", OPT_SOCKET},
	{"num-queues", OPT_NUM_QUEUES},
	{"queue-size", OPT_QUEUE_SIZE},
	{"poll-us", OPT_POLL_US},
	{"io-thread", OPT_IO_THREAD},
	{"client", OPT_CLIENT},
	{"max-guest-memory", OPT_MAX_GUEST_MEMORY},
	{"stop-timeout-ms", OPT_STOP_TIMEOUT_MS},
};

static int scsi_option_set(void *ctx, unsigned int bit, const char *key, const char *v, char *err,
			   size_t err_len)
{
	struct scsi_options *o = ctx;
	unsigned long n;
	int r;

	r = eng_dev_option_set(&ENG_DEV_FIELDS(o), key, v, err, err_len);
	if (r != -ENOENT)
		return r;
	switch (bit) {
	case OPT_NUM_QUEUES:
		if (kv_parse_uint(v, 1, SCSI_MAX_REQ_QUEUES, &n))
			return kv_err(err, err_len, "num-queues: 1..%d expected, not '%s'",
				      SCSI_MAX_REQ_QUEUES, v);
		o->num_queues = (unsigned int)n;
		return 0;
	case OPT_QUEUE_SIZE:
		if (kv_parse_uint(v, SCSI_MIN_QUEUE_SIZE, SCSI_MAX_QUEUE_SIZE, &n) || (n & (n - 1)))
			return kv_err(err, err_len,
				      "queue-size: a power of two in %d..%d expected, not '%s'",
				      SCSI_MIN_QUEUE_SIZE, SCSI_MAX_QUEUE_SIZE, v);
		o->queue_size = (uint16_t)n;
		return 0;
	}
	return -EINVAL;
}

int scsi_options_parse(const char *str, struct scsi_options *opts, char *err, size_t err_len)
{
	unsigned int seen;
	int r;

	memset(opts, 0, sizeof(*opts));
	opts->num_queues = 1;
	opts->queue_size = SCSI_DEFAULT_QUEUE_SIZE;
	opts->poll_us = SCSI_DEFAULT_POLL_US;
	opts->io_thread = -1;
	r = kv_parse(str, scsi_keys, ARRAY_SIZE(scsi_keys), scsi_option_set, opts, &seen, err,
		     err_len);
	if (r)
		return r;
	if (!(seen & OPT_ID))
		return kv_err(err, err_len, "id= is required");
	if (!(seen & OPT_SOCKET))
		return kv_err(err, err_len, "socket= is required");
	return 0;
}

enum {
	LOPT_SCSI = 1 << 0,
	LOPT_TARGET = 1 << 1,
	LOPT_LUN = 1 << 2,
	LOPT_PATH = 1 << 3,
	LOPT_BACKEND = 1 << 4,
	LOPT_SIZE = 1 << 5,
	LOPT_READONLY = 1 << 6,
	LOPT_SERIAL = 1 << 7,
	LOPT_CACHE = 1 << 8,
	LOPT_BLOCK_SIZE = 1 << 9,
	LOPT_POOL = 1 << 10,
	LOPT_IMAGE = 1 << 11,
	LOPT_CONF = 1 << 12,
	LOPT_USER = 1 << 13,
	LOPT_DELAY_MS = 1 << 14,
	LOPT_LOCKING = 1 << 15,
};

static const struct kv_key lun_keys[] = {
	{"scsi", LOPT_SCSI},	     {"target", LOPT_TARGET},
	{"lun", LOPT_LUN},	     {"path", LOPT_PATH},
	{"backend", LOPT_BACKEND},   {"size", LOPT_SIZE},
	{"readonly", LOPT_READONLY}, {"serial", LOPT_SERIAL},
	{"cache", LOPT_CACHE},	     {"block-size", LOPT_BLOCK_SIZE},
	{"pool", LOPT_POOL},	     {"image", LOPT_IMAGE},
	{"conf", LOPT_CONF},	     {"user", LOPT_USER},
	{"uri", LOPT_PATH}, /* backend=nbd: the server, kept in path */
	{"delay-ms", LOPT_DELAY_MS},
	{"locking", LOPT_LOCKING},
};

static int lun_option_set(void *ctx, unsigned int bit, const char *key, const char *v, char *err,
			  size_t err_len)
{
	struct scsi_lun_options *o = ctx;
	unsigned long n;
	int r;

	r = blk_disk_option_set(&BLK_DISK_FIELDS(o), key, v, err, err_len);
	if (r != -ENOENT)
		return r;
	switch (bit) {
	case LOPT_SCSI:
		if (kv_str(o->scsi, sizeof(o->scsi), v) || !kv_valid_id(o->scsi))
			return kv_err(err, err_len, "scsi: a controller id expected, not '%s'", v);
		return 0;
	case LOPT_TARGET:
		if (kv_parse_uint(v, 0, SCSI_MAX_TARGET, &n))
			return kv_err(err, err_len, "target: 0..%d expected, not '%s'",
				      SCSI_MAX_TARGET, v);
		o->target = (unsigned int)n;
		return 0;
	case LOPT_LUN:
		if (kv_parse_uint(v, 0, SCSI_MAX_LUN, &n))
			return kv_err(err, err_len, "lun: 0..%d expected, not '%s'", SCSI_MAX_LUN,
				      v);
		o->lun = (unsigned int)n;
		return 0;
	case LOPT_SERIAL:
		if (kv_str(o->serial, sizeof(o->serial), v) || !kv_printable(o->serial))
			return kv_err(err, err_len, "serial: 1..%zu printable ASCII characters",
				      sizeof(o->serial) - 1);
		return 0;
	case LOPT_BLOCK_SIZE:
		if (strcmp(v, "512") && strcmp(v, "4096"))
			return kv_err(err, err_len, "block-size: 512 or 4096 expected, not '%s'",
				      v);
		o->block_size = (uint32_t)atoi(v);
		return 0;
	case LOPT_DELAY_MS:
		/* As --blk's: an hour at most, as good as a disk that never answers. */
		if (kv_parse_uint(v, 0, 3600000, &n))
			return kv_err(err, err_len, "delay-ms: 0..3600000 expected, not '%s'", v);
		o->delay_ms = (unsigned int)n;
		return 0;
	}
	return -EINVAL;
}

int scsi_lun_options_parse(const char *str, struct scsi_lun_options *opts, char *err,
			   size_t err_len)
{
	unsigned int seen;
	int r;

	memset(opts, 0, sizeof(*opts));
	opts->cache = BLK_CACHE_WRITEBACK;
	r = kv_parse(str, lun_keys, ARRAY_SIZE(lun_keys), lun_option_set, opts, &seen, err,
		     err_len);
	if (r)
		return r;
	if (!(seen & LOPT_SCSI))
		return kv_err(err, err_len, "scsi= is required");
	if (!(seen & LOPT_TARGET))
		return kv_err(err, err_len, "target= is required");
	if (!(seen & LOPT_LUN))
		return kv_err(err, err_len, "lun= is required");
	r = blk_disk_options_check(&BLK_DISK_FIELDS(opts), seen & LOPT_PATH, seen & LOPT_SIZE, err,
				   err_len);
	if (r)
		return r;
	if ((seen & LOPT_DELAY_MS) && opts->backend != BLK_BACKEND_NULL)
		return kv_err(err, err_len, "delay-ms= is only for backend=null");
	if (opts->block_size && opts->size % opts->block_size)
		return kv_err(err, err_len, "size= must be a multiple of block-size=");
	/* A stable identity across restarts: VPD 0x80 / 0x83 come from it. */
	if (!(seen & LOPT_SERIAL))
		snprintf(opts->serial, sizeof(opts->serial), "%.24s-%u-%u", opts->scsi,
			 opts->target, opts->lun);
	return 0;
}
