// SPDX-License-Identifier: MIT
/*
 * fuzz_vu_fake.c - see fuzz_vu_fake.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_vu_fake.h"

struct vu_dev *fuzz_vu_last;

struct vu_dev *vu_dev_new(const struct vu_dev_config *cfg)
{
	struct vu_dev *dev = calloc(1, sizeof(*dev));

	if (!dev) {
		errno = ENOMEM;
		return NULL;
	}
	dev->ops = cfg->ops;
	dev->opaque = cfg->opaque;
	snprintf(dev->name, sizeof(dev->name), "%s", cfg->name ? cfg->name : "fuzz");
	fuzz_vu_last = dev;
	return dev;
}

void vu_dev_free(struct vu_dev *dev)
{
	if (fuzz_vu_last == dev)
		fuzz_vu_last = NULL;
	free(dev);
}

bool vu_dev_connected(const struct vu_dev *dev)
{
	(void)dev;
	return true;
}

void vu_dev_set_broken(struct vu_dev *dev, const char *why)
{
	(void)why;
	dev->broken = true;
}

/* The stand-in engine's async stop is synchronous: nobody waits for this. */
void vu_queue_stopped(struct vu_queue *q)
{
	(void)q;
}

void vu_queue_notify(struct vu_queue *q)
{
	(void)virtq_should_notify(&q->vq);
}
