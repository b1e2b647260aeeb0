/* SPDX-License-Identifier: MIT */
/*
 * netdev.h - packet back-ends for the virtio-net device model: where the
 * guest's frames go and where its received frames come from.  One const
 * struct netdev_ops per kind (null, loopback, tap, macvtap), chosen by
 * --net's options; the device model never looks inside.
 *
 * A back-end has one queue per virtqueue pair.  Frames cross this
 * interface with a 12-byte struct virtio_net_hdr in front (num_buffers
 * included, as a tap with TUNSETVNETHDRSZ 12 reads and writes them), so a
 * tap's header goes to and from the guest unchanged in meaning.
 *
 * Threads.  Pair @p's receive calls (rx_fd, peek, consume) come from the
 * thread serving that pair's rx virtqueue, its send calls (send, flush)
 * from the thread serving its tx virtqueue: they may differ, so a
 * back-end that moves frames between the two (loopback) synchronises
 * them.  open, close, set_offload and set_pair_active come from the
 * vhost-user loop's thread.
 */
#ifndef VHOSTD_NETDEV_NETDEV_H
#define VHOSTD_NETDEV_NETDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

/* The header every frame carries across this interface. */
#define NETDEV_HDR_LEN 12

struct netdev;

struct netdev_config {
	const char *name;   /* the device id, for log lines */
	const char *ifname; /* tap / macvtap: the interface */
	unsigned int pairs; /* queue pairs */
};

struct netdev_ops {
	const char *kind;
	/* Open with @cfg->pairs queues.  0, or -errno with one line in @err. */
	int (*open)(const struct netdev_config *cfg, struct netdev **out, char *err,
		    size_t err_len);
	void (*close)(struct netdev *nd);
	/*
	 * Feature bits (VIRTIO_NET_F_* offloads) the back-end can carry in
	 * the header; the device offers only these.
	 */
	uint64_t (*features)(struct netdev *nd);
	/*
	 * An fd that polls readable (POLLIN) when pair @p may have a frame
	 * after peek said -EAGAIN; -1: frames never come (null).
	 */
	int (*rx_fd)(struct netdev *nd, unsigned int p);
	/*
	 * The next frame of pair @p, header first: its length and *@pkt
	 * (writable, owned by the back-end until consume()); the same frame
	 * again until then.  -EAGAIN: none now, wait for rx_fd.
	 */
	ssize_t (*peek)(struct netdev *nd, unsigned int p, uint8_t **pkt);
	void (*consume)(struct netdev *nd, unsigned int p);
	/* Send one frame, header first in @iov.  0, or -errno (dropped). */
	int (*send)(struct netdev *nd, unsigned int p, const struct iovec *iov, unsigned int cnt);
	/* End of a burst of send()s (loopback wakes its receiver here).  Optional. */
	void (*flush)(struct netdev *nd, unsigned int p);
	/*
	 * The offloads the guest takes now (VIRTIO_NET_F_GUEST_* bits): a tap
	 * hands it only frames it can take (TUNSETOFFLOAD).  Optional.
	 */
	int (*set_offload)(struct netdev *nd, uint64_t guest_offloads);
	/* Pair @p in use or not (tap: TUNSETQUEUE attach / detach).  Optional. */
	int (*set_pair_active)(struct netdev *nd, unsigned int p, bool on);
	/*
	 * Make rx_fd readable once, from any thread: the receiver looks
	 * again (a change it must notice, not a frame).  Optional.
	 */
	void (*wake)(struct netdev *nd, unsigned int p);
	/* Frames dropped before they reached us (tap: the kernel's count).  Optional. */
	uint64_t (*kernel_drops)(struct netdev *nd);
};

extern const struct netdev_ops netdev_null_ops;
extern const struct netdev_ops netdev_loopback_ops;
extern const struct netdev_ops netdev_tap_ops;
extern const struct netdev_ops netdev_macvtap_ops;

#endif /* VHOSTD_NETDEV_NETDEV_H */
