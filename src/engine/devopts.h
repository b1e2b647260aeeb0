/* SPDX-License-Identifier: MIT */
/*
 * devopts.h - the option keys every vhost-user device model takes (id,
 * socket, client, poll-us, io-thread, max-guest-memory), parsed once for
 * all of them.  A model's own setter hands each key here first and deals
 * with its own keys when eng_dev_option_set() says -ENOENT; its option
 * struct keeps the common fields under these names, so ENG_DEV_FIELDS()
 * can point at them.
 */
#ifndef VHOSTD_ENGINE_DEVOPTS_H
#define VHOSTD_ENGINE_DEVOPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct eng_dev_fields {
	char *id;
	size_t id_size;
	char *socket;
	size_t socket_size;
	bool *client;
	unsigned int *poll_us;
	int *io_thread;
	uint64_t *max_guest_memory;
	unsigned int *stop_timeout_ms;
};

/* The common fields of an option struct @o that names them as above. */
#define ENG_DEV_FIELDS(o)                                                                          \
	((struct eng_dev_fields){(o)->id, sizeof((o)->id), (o)->socket, sizeof((o)->socket),       \
				 &(o)->client, &(o)->poll_us, &(o)->io_thread,                     \
				 &(o)->max_guest_memory, &(o)->stop_timeout_ms})

struct vu_dev;
struct vu_device_ops;
struct vu_watch_ops;

/* stop-timeout-ms= at most (an hour); 0 is backend.h's default. */
#define ENG_MAX_STOP_TIMEOUT_MS 3600000

/*
 * Set @key to @v if it is a common key: 0, -EINVAL with a message in
 * @err, or -ENOENT if @key is the model's own.
 */
int eng_dev_option_set(const struct eng_dev_fields *f, const char *key, const char *v, char *err,
		       size_t err_len);

/*
 * The device's vhost-user side from its common options: listening on its
 * socket (or connecting to it, client=on).  @f's strings must live as long
 * as the device.  NULL with a message naming the device and the socket.
 */
struct vu_dev *eng_dev_vu_new(const struct eng_dev_fields *f, unsigned int num_queues,
			      uint16_t max_queue_size, const struct vu_device_ops *ops,
			      void *opaque, const struct vu_watch_ops *watch, void *loop, char *err,
			      size_t err_len);

#endif /* VHOSTD_ENGINE_DEVOPTS_H */
