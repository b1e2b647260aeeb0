// SPDX-License-Identifier: MIT
/*
 * diskopts.c - the option keys of a disk behind any device model
 * (diskopts.h).
 */
#include <errno.h>
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

const struct blk_backend_ops *blk_disk_backend_ops(enum blk_backend_kind kind)
{
	switch (kind) {
	case BLK_BACKEND_NULL:
		return &blk_backend_null_ops;
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
	case BLK_BACKEND_NBD:
		return "nbd";
	default:
		return "file";
	}
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
		else if (!strcmp(v, "nbd"))
			*f->backend = BLK_BACKEND_NBD;
		else
			return kv_err(err, err_len, "backend: file, null or nbd expected, not '%s'",
				      v);
	} else if (!strcmp(key, "size")) {
		if (kv_parse_bytes(v, f->size) || *f->size % 512)
			return kv_err(err, err_len,
				      "size: a multiple of 512 bytes (k/m/g/t suffix) expected, "
				      "not '%s'",
				      v);
	} else if (!strcmp(key, "readonly")) {
		if (kv_parse_bool(v, f->readonly))
			return kv_err(err, err_len, "readonly: on or off expected, not '%s'", v);
	} else if (!strcmp(key, "cache")) {
		if (!strcmp(v, "none"))
			*f->cache = BLK_CACHE_NONE;
		else if (!strcmp(v, "writeback"))
			*f->cache = BLK_CACHE_WRITEBACK;
		else
			return kv_err(err, err_len, "cache: none or writeback expected, not '%s'",
				      v);
	} else {
		return -ENOENT;
	}
	return 0;
}

int blk_disk_options_check(const struct blk_disk_fields *f, bool path_seen, bool size_seen,
			   char *err, size_t err_len)
{
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
