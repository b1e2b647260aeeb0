// SPDX-License-Identifier: MIT
/*
 * devopts.c - the option keys every vhost-user device model takes
 * (devopts.h).
 */
#include <errno.h>
#include <string.h>

#include "common/kvopts.h"
#include "devopts.h"
#include "engine.h"
#include "vhost-user/backend.h"

int eng_dev_option_set(const struct eng_dev_fields *f, const char *key, const char *v, char *err,
		       size_t err_len)
{
	unsigned long n;

	if (!strcmp(key, "id")) {
		if (kv_str(f->id, f->id_size, v) || !kv_valid_id(f->id))
			return kv_err(err, err_len,
				      "id: 1..%zu characters of [A-Za-z0-9_.-] expected",
				      f->id_size - 1);
	} else if (!strcmp(key, "socket")) {
		if (kv_str(f->socket, f->socket_size, v))
			return kv_err(err, err_len,
				      "socket: empty or longer than %zu bytes (sun_path)",
				      f->socket_size - 1);
	} else if (!strcmp(key, "client")) {
		if (kv_parse_bool(v, f->client))
			return kv_err(err, err_len, "client: on or off expected, not '%s'", v);
	} else if (!strcmp(key, "poll-us")) {
		if (kv_parse_uint(v, 0, ENG_MAX_POLL_US, &n))
			return kv_err(err, err_len, "poll-us: 0..%d expected, not '%s'",
				      ENG_MAX_POLL_US, v);
		*f->poll_us = (unsigned int)n;
	} else if (!strcmp(key, "io-thread")) {
		if (kv_parse_uint(v, 0, ENG_MAX_THREADS - 1, &n))
			return kv_err(err, err_len, "io-thread: 0..%d expected, not '%s'",
				      ENG_MAX_THREADS - 1, v);
		*f->io_thread = (int)n;
	} else if (!strcmp(key, "max-guest-memory")) {
		if (kv_parse_bytes(v, f->max_guest_memory))
			return kv_err(
				err, err_len,
				"max-guest-memory: a size in bytes (k/m/g/t suffix) expected, "
				"not '%s'",
				v);
	} else if (!strcmp(key, "stop-timeout-ms")) {
		if (kv_parse_uint(v, 1, ENG_MAX_STOP_TIMEOUT_MS, &n))
			return kv_err(err, err_len, "stop-timeout-ms: 1..%d expected, not '%s'",
				      ENG_MAX_STOP_TIMEOUT_MS, v);
		*f->stop_timeout_ms = (unsigned int)n;
	} else {
		return -ENOENT;
	}
	return 0;
}

struct vu_dev *eng_dev_vu_new(const struct eng_dev_fields *f, unsigned int num_queues,
			      uint16_t max_queue_size, const struct vu_device_ops *ops,
			      void *opaque, const struct vu_watch_ops *watch, void *loop, char *err,
			      size_t err_len)
{
	const struct vu_dev_config cfg = {
		.name = f->id,
		.socket_path = f->socket,
		.client = *f->client,
		.num_queues = num_queues,
		.max_queue_size = max_queue_size,
		.ops = ops,
		.opaque = opaque,
		.watch = watch,
		.loop = loop,
		.max_guest_memory = *f->max_guest_memory,
		.stop_timeout_ms = *f->stop_timeout_ms,
	};
	struct vu_dev *vu = vu_dev_new(&cfg);

	if (!vu)
		kv_err(err, err_len, "%s: vhost-user socket %s: %s", f->id, f->socket,
		       strerror(errno));
	return vu;
}
