// SPDX-License-Identifier: MIT
/*
 * diskopts.c - the option keys of a disk behind any device model
 * (diskopts.h).
 */
#include <errno.h>
#include <string.h>

#include "common/kvopts.h"
#include "diskopts.h"

int blk_disk_option_set(const struct blk_disk_fields *f, const char *key, const char *v, char *err,
			size_t err_len)
{
	if (!strcmp(key, "path")) {
		if (kv_str(f->path, f->path_size, v))
			return kv_err(err, err_len, "path: empty or longer than %zu bytes",
				      f->path_size - 1);
	} else if (!strcmp(key, "backend")) {
		if (!strcmp(v, "file"))
			*f->backend = BLK_BACKEND_FILE;
		else if (!strcmp(v, "null"))
			*f->backend = BLK_BACKEND_NULL;
		else
			return kv_err(err, err_len, "backend: file or null expected, not '%s'", v);
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
	if (*f->backend == BLK_BACKEND_NULL) {
		if (path_seen)
			return kv_err(err, err_len, "path= is not for backend=null (no image)");
		if (!size_seen)
			return kv_err(err, err_len, "backend=null needs size=");
	} else {
		if (!path_seen)
			return kv_err(err, err_len, "path= is required");
		if (size_seen)
			return kv_err(err, err_len,
				      "size= is only for backend=null (an image has its own)");
	}
	return 0;
}
