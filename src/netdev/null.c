// SPDX-License-Identifier: MIT
/*
 * null.c - the sink: every frame sent is counted (by the device) and
 * dropped, nothing is ever received.  For measuring the tx datapath alone.
 */
#include <errno.h>
#include <stdlib.h>

#include "common/kvopts.h"
#include "devices/virtio_net.h"
#include "netdev.h"

struct netdev {
	unsigned int pairs;
};

static int null_open(const struct netdev_config *cfg, struct netdev **out, char *err,
		     size_t err_len)
{
	struct netdev *nd = calloc(1, sizeof(*nd));

	if (!nd)
		return kv_err(err, err_len, "out of memory"), -ENOMEM;
	nd->pairs = cfg->pairs;
	*out = nd;
	return 0;
}

static void null_close(struct netdev *nd)
{
	free(nd);
}

/* Anything the header can say is fine for a sink. */
static uint64_t null_features(struct netdev *nd)
{
	return 1ull << VIRTIO_NET_F_CSUM | 1ull << VIRTIO_NET_F_GUEST_CSUM |
	       1ull << VIRTIO_NET_F_HOST_TSO4 | 1ull << VIRTIO_NET_F_HOST_TSO6 |
	       1ull << VIRTIO_NET_F_HOST_ECN | 1ull << VIRTIO_NET_F_GUEST_TSO4 |
	       1ull << VIRTIO_NET_F_GUEST_TSO6 | 1ull << VIRTIO_NET_F_GUEST_ECN;
}

static int null_rx_fd(struct netdev *nd, unsigned int p)
{
	return -1;
}

static ssize_t null_peek(struct netdev *nd, unsigned int p, uint8_t **pkt)
{
	return -EAGAIN;
}

static void null_consume(struct netdev *nd, unsigned int p)
{
}

static int null_send(struct netdev *nd, unsigned int p, const struct iovec *iov, unsigned int cnt)
{
	return 0;
}

const struct netdev_ops netdev_null_ops = {
	.kind = "null",
	.open = null_open,
	.close = null_close,
	.features = null_features,
	.rx_fd = null_rx_fd,
	.peek = null_peek,
	.consume = null_consume,
	.send = null_send,
};
