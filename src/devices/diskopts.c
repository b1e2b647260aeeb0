// SPDX-License-Identifier: MIT
/*
 * diskopts.c - the option keys of a disk behind any device model
 * (diskopts.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "backends/backend.h"
#include "common/kvopts.h"
#include "diskopts.h"

/* An NBD URI as libnbd takes it; anything else in uri= is refused. */
static bool blk_is_nbd_uri(const char *s)
{
	return !strncmp(s, "nbd://", 6) || !strncmp(s, "nbd+unix://", 11) ||
	       !strncmp(s, "nbds://", 7) || !strncmp(s, "nbds+unix://", 12);
}

/* backend=rbd's keys: a string each, with its field in struct blk_rbd_options. */
static int rbd_option_set(struct blk_rbd_options *r, const char *key, const char *v, char *err,
			  size_t err_len)
{
	char *dst;
	size_t size;

	if (!strcmp(key, "pool")) {
		dst = r->pool;
		size = sizeof(r->pool);
	} else if (!strcmp(key, "image")) {
		dst = r->image;
		size = sizeof(r->image);
	} else if (!strcmp(key, "conf")) {
		dst = r->conf;
		size = sizeof(r->conf);
	} else if (!strcmp(key, "user")) {
		dst = r->user;
		size = sizeof(r->user);
	} else {
		return -ENOENT;
	}
	if (kv_str(dst, size, v))
		return kv_err(err, err_len, "%s: empty or longer than %zu bytes", key, size - 1);
	/* A '/' or '@' would make "pool/image@snap" ambiguous in Ceph's own tools. */
	if ((dst == r->pool || dst == r->image) && strpbrk(dst, "/@"))
		return kv_err(err, err_len, "%s: '/' and '@' are not allowed, not '%s'", key, v);
	return 0;
}

int blk_disk_option_set(const struct blk_disk_fields *f, const char *key, const char *v, char *err,
			size_t err_len)
{
	if (!strcmp(key, "path")) {
		if (kv_str(f->path, f->path_size, v))
			return kv_err(err, err_len, "path: empty or longer than %zu bytes",
				      f->path_size - 1);
	} else if (!strcmp(key, "uri")) {
		if (!blk_is_nbd_uri(v) || kv_str(f->path, f->path_size, v))
			return kv_err(err, err_len,
				      "uri: nbd://HOST[:PORT]/EXPORT or "
				      "nbd+unix:///EXPORT?socket=PATH expected, not '%s'",
				      v);
	} else if (!strcmp(key, "backend")) {
		if (!strcmp(v, "file"))
			*f->backend = BLK_BACKEND_FILE;
		else if (!strcmp(v, "null"))
			*f->backend = BLK_BACKEND_NULL;
		else if (!strcmp(v, "rbd"))
			*f->backend = BLK_BACKEND_RBD;
		else if (!strcmp(v, "nbd"))
			*f->backend = BLK_BACKEND_NBD;
		else
			return kv_err(err, err_len,
				      "backend: file, null, rbd or nbd expected, not '%s'", v);
	} else if (!strcmp(key, "size")) {
		if (kv_parse_bytes(v, f->size) || *f->size % 512)
			return kv_err(err, err_len,
				      "size: a multiple of 512 bytes (k/m/g/t suffix) expected, "
				      "not '%s'",
				      v);
	} else if (!strcmp(key, "readonly")) {
		if (kv_parse_bool(v, f->readonly))
			return kv_err(err, err_len, "readonly: on or off expected, not '%s'", v);
	} else if (!strcmp(key, "locking")) {
		bool on;

		/*
		 * off: take no lock on the image, so a second daemon can open
		 * it while a guest migrates from one to the other.
		 */
		if (kv_parse_bool(v, &on))
			return kv_err(err, err_len, "locking: on or off expected, not '%s'", v);
		*f->no_locking = !on;
	} else if (!strcmp(key, "cache")) {
		if (!strcmp(v, "none"))
			*f->cache = BLK_CACHE_NONE;
		else if (!strcmp(v, "writeback"))
			*f->cache = BLK_CACHE_WRITEBACK;
		else
			return kv_err(err, err_len, "cache: none or writeback expected, not '%s'",
				      v);
	} else {
		return rbd_option_set(f->rbd, key, v, err, err_len);
	}
	return 0;
}

int blk_disk_options_check(const struct blk_disk_fields *f, bool path_seen, bool size_seen,
			   char *err, size_t err_len)
{
	const struct blk_rbd_options *r = f->rbd;
	bool rbd_seen = r->pool[0] || r->image[0] || r->conf[0] || r->user[0];

	if (*f->backend == BLK_BACKEND_RBD) {
		if (path_seen)
			return kv_err(err, err_len, "path= is not for backend=rbd (pool=, image=)");
		if (size_seen)
			return kv_err(err, err_len,
				      "size= is only for backend=null (an RBD image has its own)");
		if (!r->pool[0] || !r->image[0])
			return kv_err(err, err_len, "backend=rbd needs pool= and image=");
		return 0;
	}
	if (rbd_seen)
		return kv_err(err, err_len, "pool=, image=, conf= and user= are for backend=rbd");
	if (*f->backend == BLK_BACKEND_NBD) {
		if (!path_seen || !blk_is_nbd_uri(f->path))
			return kv_err(err, err_len, "backend=nbd needs uri= (not path=)");
		if (size_seen)
			return kv_err(err, err_len,
				      "size= is only for backend=null (the server has its own)");
	} else if (*f->backend == BLK_BACKEND_NULL) {
		if (path_seen)
			return kv_err(err, err_len, "path= is not for backend=null (no image)");
		if (!size_seen)
			return kv_err(err, err_len, "backend=null needs size=");
	} else {
		if (path_seen && blk_is_nbd_uri(f->path))
			return kv_err(err, err_len, "uri= goes with backend=nbd");
		if (!path_seen)
			return kv_err(err, err_len, "path= is required");
		if (size_seen)
			return kv_err(err, err_len,
				      "size= is only for backend=null (an image has its own)");
	}
	return 0;
}

const struct blk_backend_ops *blk_disk_backend_ops(enum blk_backend_kind kind)
{
	switch (kind) {
	case BLK_BACKEND_NULL:
		return &blk_backend_null_ops;
	case BLK_BACKEND_RBD:
		return &blk_backend_rbd_ops;
	case BLK_BACKEND_NBD:
		return &blk_backend_nbd_ops;
	default:
		return &blk_backend_uring_ops;
	}
}

const char *blk_disk_backend_name(enum blk_backend_kind kind)
{
	switch (kind) {
	case BLK_BACKEND_NULL:
		return "null";
	case BLK_BACKEND_RBD:
		return "rbd";
	case BLK_BACKEND_NBD:
		return "nbd";
	default:
		return "file";
	}
}

const char *blk_disk_describe(enum blk_backend_kind kind, const char *path,
			      const struct blk_rbd_options *rbd, char *buf, size_t len)
{
	switch (kind) {
	case BLK_BACKEND_NULL:
		snprintf(buf, len, "the null back-end");
		break;
	case BLK_BACKEND_RBD:
		snprintf(buf, len, "rbd:%s/%s", rbd->pool, rbd->image);
		break;
	default:
		snprintf(buf, len, "%s", path);
		break;
	}
	return buf;
}
