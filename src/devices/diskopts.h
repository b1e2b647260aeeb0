/* SPDX-License-Identifier: MIT */
/*
 * diskopts.h - the option keys of a disk behind any device model (a
 * --blk device, a --lun of a SCSI controller): path=, backend=, size=,
 * readonly=, cache=, locking=, the Ceph image's pool=, image=, conf=, user=, and
 * the NBD server's uri=, parsed once for all of them.  uri= (backend=nbd)
 * is kept in the path field: a model lists it with its path bit.  A model's setter hands
 * each key here first and handles its own when blk_disk_option_set() says
 * -ENOENT; its option struct names the fields as BLK_DISK_FIELDS() expects.
 */
#ifndef VHOSTD_DEVICES_DISKOPTS_H
#define VHOSTD_DEVICES_DISKOPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum blk_cache_mode {
	BLK_CACHE_NONE,	     /* O_DIRECT; flush still reaches the disk */
	BLK_CACHE_WRITEBACK, /* page cache; flush is fdatasync */
};

enum blk_backend_kind {
	BLK_BACKEND_FILE, /* path=: an image file or block device, io_uring */
	BLK_BACKEND_NULL, /* size=: no storage; reads return zeroes */
	BLK_BACKEND_RBD,  /* pool=, image=[, conf=, user=]: a Ceph RBD image */
	BLK_BACKEND_NBD,  /* uri=: an NBD server's export, libnbd (held in path) */
};

/* backend=rbd: where the image is (empty strings: not given). */
struct blk_rbd_options {
	char pool[128];
	char image[128];
	char conf[1024]; /* a ceph.conf; empty: Ceph's own search path */
	char user[64];	 /* the cephx client name without "client."; empty: admin */
};

struct blk_disk_fields {
	enum blk_backend_kind *backend;
	char *path;
	size_t path_size;
	uint64_t *size;
	bool *readonly;
	enum blk_cache_mode *cache;
	struct blk_rbd_options *rbd;
	bool *no_locking; /* locking=off */
};

/* The disk fields of an option struct @o that names them as above. */
#define BLK_DISK_FIELDS(o)                                                                         \
	((struct blk_disk_fields){&(o)->backend, (o)->path, sizeof((o)->path), &(o)->size,         \
				  &(o)->readonly, &(o)->cache, &(o)->rbd, &(o)->no_locking})

/* Set @key to @v if it is a disk key: 0, -EINVAL with a message, or -ENOENT. */
int blk_disk_option_set(const struct blk_disk_fields *f, const char *key, const char *v, char *err,
			size_t err_len);

/*
 * After parsing: path= goes with backend=file, size= with backend=null,
 * pool= and image= (and conf=, user=) with backend=rbd, uri= with
 * backend=nbd.
 * @path_seen / @size_seen: whether those keys were given.  0 or -EINVAL.
 */
int blk_disk_options_check(const struct blk_disk_fields *f, bool path_seen, bool size_seen,
			   char *err, size_t err_len);

/* The back-end's ops table and name ("file", "null", "rbd", "nbd"). */
const struct blk_backend_ops *blk_disk_backend_ops(enum blk_backend_kind kind);
const char *blk_disk_backend_name(enum blk_backend_kind kind);

/*
 * The disk as log lines name it: the path, "the null back-end" or
 * "rbd:POOL/IMAGE", written into @buf; returns @buf.
 */
const char *blk_disk_describe(enum blk_backend_kind kind, const char *path,
			      const struct blk_rbd_options *rbd, char *buf, size_t len);

#endif /* VHOSTD_DEVICES_DISKOPTS_H */
