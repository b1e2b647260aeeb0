/* SPDX-License-Identifier: MIT */
/*
 * fuzz_vu_fake.h - a stand-in for the vhost-user back-end's device-facing
 * functions (vu_dev_new, vu_dev_free, vu_dev_connected, vu_dev_set_broken,
 * vu_queue_notify), linked into the request-parser harnesses instead of
 * src/vhost-user/backend.c.  vu_dev_new() opens no socket: it records the
 * device model's ops table and opaque pointer, so the harness can call
 * set_features / start_queue / stop_queue itself on rings it built in fake
 * guest memory (ring_fixture.h), with the synchronous engine of
 * fuzz_engine.h serving them.
 */
#ifndef VHOSTD_TESTS_FUZZ_VU_FAKE_H
#define VHOSTD_TESTS_FUZZ_VU_FAKE_H

#include <stdbool.h>

#include "vhost-user/backend.h"

struct vu_dev {
	const struct vu_device_ops *ops;
	void *opaque;
	bool broken;
	char name[64];
};

/* The device vu_dev_new() made last. */
extern struct vu_dev *fuzz_vu_last;

#endif /* VHOSTD_TESTS_FUZZ_VU_FAKE_H */
