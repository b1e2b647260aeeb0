// SPDX-License-Identifier: MIT
/*
 * tap.c - the tap and macvtap back-ends: one file descriptor per queue
 * pair on an interface the administrator made (`ip tuntap add dev IF mode
 * tap multi_queue vnet_hdr`, `ip link add link P name IF type macvtap
 * mode bridge`), each with a 12-byte virtio-net header on every frame
 * (TUNSETVNETHDRSZ), so the guest's header crosses unchanged in meaning.
 *
 * tap: /dev/net/tun, TUNSETIFF with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR
 * (| IFF_MULTI_QUEUE), once per pair.  macvtap: /dev/tapN, N the
 * interface's ifindex, opened once per pair (each open is a queue).
 *
 * We never create interfaces: TUNSETIFF on a name that does not exist
 * would make one, so the name is checked first.  Errors that a person can
 * fix are one line saying what to do.
 *
 * Offloads: TUNSETOFFLOAD tells the kernel which segmented or partially
 * checksummed frames the guest can take (it finishes the rest in
 * software); it follows the negotiated features and the guest's
 * VIRTIO_NET_CTRL_GUEST_OFFLOADS.  Frames the guest sends are written
 * with their header; the kernel validates and segments them.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/kvopts.h"
#include "common/log.h"
#include "devices/net_proto.h"
#include "devices/virtio_net.h"
#include "netdev.h"

#define TAP_BUF_SIZE (NETDEV_HDR_LEN + NET_MAX_FRAME + 64)

struct tap_pair {
	int fd;
	bool active;
	ssize_t pending; /* bytes of the frame in buf, 0: none */
	uint8_t *buf;
};

struct netdev {
	char ifname[IFNAMSIZ];
	bool macvtap;
	bool multi_queue;
	bool ufo; /* the kernel takes TUN_F_UFO */
	unsigned int pairs;
	struct tap_pair *p;
};

static void tap_close(struct netdev *nd)
{
	for (unsigned int i = 0; i < nd->pairs; i++) {
		if (nd->p[i].fd >= 0)
			close(nd->p[i].fd);
		free(nd->p[i].buf);
	}
	free(nd->p);
	free(nd);
}

/* Read a small sysfs attribute of @ifname; 0 or -errno. */
static int sysfs_read(const char *ifname, const char *attr, char *buf, size_t len)
{
	char path[256];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/sys/class/net/%s/%s", ifname, attr);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

static int perm_error(const struct netdev *nd, const char *what, char *err, size_t err_len)
{
	return kv_err(err, err_len,
		      "%s %s: permission denied (run as root, or create it with "
		      "'ip tuntap add dev %s mode tap multi_queue vnet_hdr user $USER')",
		      what, nd->ifname, nd->ifname);
}

static int tap_open_tun(struct netdev *nd, struct tap_pair *tp, char *err, size_t err_len)
{
	struct ifreq ifr = {0};

	tp->fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (tp->fd < 0) {
		if (errno == EACCES || errno == EPERM)
			return perm_error(nd, "/dev/net/tun for", err, err_len);
		return kv_err(err, err_len, "/dev/net/tun: %s", strerror(errno));
	}
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", nd->ifname);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (nd->multi_queue)
		ifr.ifr_flags |= IFF_MULTI_QUEUE;
	if (ioctl(tp->fd, TUNSETIFF, &ifr) < 0) {
		if (errno == EPERM || errno == EACCES)
			return perm_error(nd, "tap", err, err_len);
		if (errno == EBUSY)
			return kv_err(err, err_len,
				      "tap %s is in use by another process (or was not made with "
				      "multi_queue)",
				      nd->ifname);
		return kv_err(err, err_len, "tap %s: TUNSETIFF: %s", nd->ifname, strerror(errno));
	}
	return 0;
}

/* /dev/tapN for macvtap N; made from sysfs's major:minor where udev did not. */
static int tap_open_macvtap(struct netdev *nd, struct tap_pair *tp, char *err, size_t err_len)
{
	unsigned int idx = if_nametoindex(nd->ifname), maj, min;
	char path[64], attr[64], dev[32];
	struct ifreq ifr = {0};

	snprintf(path, sizeof(path), "/dev/tap%u", idx);
	tp->fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (tp->fd < 0 && errno == ENOENT) {
		snprintf(attr, sizeof(attr), "tap%u/dev", idx);
		if (!sysfs_read(nd->ifname, attr, dev, sizeof(dev)) &&
		    sscanf(dev, "%u:%u", &maj, &min) == 2 &&
		    (mknod(path, S_IFCHR | 0600, makedev(maj, min)) == 0 || errno == EEXIST))
			tp->fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		else
			errno = ENOENT;
	}
	if (tp->fd < 0) {
		if (errno == EACCES || errno == EPERM)
			return kv_err(err, err_len,
				      "%s for macvtap %s: permission denied (run as root, or "
				      "chown the device node)",
				      path, nd->ifname);
		return kv_err(err, err_len, "%s for macvtap %s: %s", path, nd->ifname,
			      strerror(errno));
	}
	/* A macvtap queue starts with IFF_VNET_HDR; say it anyway. */
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(tp->fd, TUNSETIFF, &ifr) < 0)
		return kv_err(err, err_len, "macvtap %s: TUNSETIFF: %s", nd->ifname,
			      strerror(errno));
	return 0;
}

static int tap_open_common(const struct netdev_config *cfg, bool macvtap, struct netdev **out,
			   char *err, size_t err_len)
{
	const char *kind = macvtap ? "macvtap" : "tap";
	struct netdev *nd;
	char flags[32];
	int hdr = NETDEV_HDR_LEN, r;

	if (!if_nametoindex(cfg->ifname))
		return kv_err(err, err_len, "no interface named %s (create it first: %s)",
			      cfg->ifname,
			      macvtap ? "ip link add link PARENT name IF type macvtap mode bridge"
				      : "ip tuntap add dev IF mode tap multi_queue vnet_hdr");
	nd = calloc(1, sizeof(*nd));
	if (!nd)
		return kv_err(err, err_len, "out of memory");
	nd->p = calloc(cfg->pairs, sizeof(*nd->p));
	if (!nd->p) {
		free(nd);
		return kv_err(err, err_len, "out of memory");
	}
	snprintf(nd->ifname, sizeof(nd->ifname), "%s", cfg->ifname);
	nd->macvtap = macvtap;
	nd->pairs = cfg->pairs;
	for (unsigned int i = 0; i < cfg->pairs; i++)
		nd->p[i].fd = -1;

	if (macvtap) {
		/* A macvtap (or ipvtap) interface has a "macvtap" class directory in sysfs. */
		if (sysfs_read(cfg->ifname, "macvtap/../ifindex", flags, sizeof(flags))) {
			r = kv_err(err, err_len,
				   "%s is not a macvtap interface (ip link add link PARENT name %s "
				   "type macvtap mode bridge)",
				   cfg->ifname, cfg->ifname);
			goto fail;
		}
	} else {
		unsigned long f;

		/* Only a tun/tap device has tun_flags. */
		if (sysfs_read(cfg->ifname, "tun_flags", flags, sizeof(flags))) {
			r = kv_err(err, err_len,
				   "%s is not a tap interface (ip tuntap add dev %s mode tap "
				   "multi_queue vnet_hdr)",
				   cfg->ifname, cfg->ifname);
			goto fail;
		}
		f = strtoul(flags, NULL, 16);
		if (!(f & IFF_TAP)) {
			r = kv_err(err, err_len, "%s is a tun, not a tap, interface", cfg->ifname);
			goto fail;
		}
		nd->multi_queue = f & IFF_MULTI_QUEUE;
		if (cfg->pairs > 1 && !nd->multi_queue) {
			r = kv_err(err, err_len,
				   "tap %s was made without multi_queue, but queues=%u (ip tuntap "
				   "add dev %s mode tap multi_queue vnet_hdr)",
				   cfg->ifname, cfg->pairs, cfg->ifname);
			goto fail;
		}
	}
	for (unsigned int i = 0; i < cfg->pairs; i++) {
		struct tap_pair *tp = &nd->p[i];

		r = macvtap ? tap_open_macvtap(nd, tp, err, err_len)
			    : tap_open_tun(nd, tp, err, err_len);
		if (r < 0)
			goto fail;
		if (ioctl(tp->fd, TUNSETVNETHDRSZ, &hdr) < 0) {
			r = kv_err(err, err_len, "%s %s: TUNSETVNETHDRSZ: %s", kind, cfg->ifname,
				   strerror(errno));
			goto fail;
		}
		tp->buf = malloc(TAP_BUF_SIZE);
		if (!tp->buf) {
			r = kv_err(err, err_len, "out of memory");
			goto fail;
		}
		tp->active = true;
	}
	/* Does this kernel still take UFO from a tap? */
	nd->ufo = ioctl(nd->p[0].fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_UFO) == 0;
	if (ioctl(nd->p[0].fd, TUNSETOFFLOAD, 0) < 0)
		log_warn("%s: TUNSETOFFLOAD: %s", cfg->name, strerror(errno));
	*out = nd;
	return 0;
fail:
	tap_close(nd);
	return r;
}

static int tap_open(const struct netdev_config *cfg, struct netdev **out, char *err, size_t err_len)
{
	return tap_open_common(cfg, false, out, err, err_len);
}

static int macvtap_open(const struct netdev_config *cfg, struct netdev **out, char *err,
			size_t err_len)
{
	return tap_open_common(cfg, true, out, err, err_len);
}

static uint64_t tap_features(struct netdev *nd)
{
	uint64_t f = 1ull << VIRTIO_NET_F_CSUM | 1ull << VIRTIO_NET_F_GUEST_CSUM |
		     1ull << VIRTIO_NET_F_HOST_TSO4 | 1ull << VIRTIO_NET_F_HOST_TSO6 |
		     1ull << VIRTIO_NET_F_HOST_ECN | 1ull << VIRTIO_NET_F_GUEST_TSO4 |
		     1ull << VIRTIO_NET_F_GUEST_TSO6 | 1ull << VIRTIO_NET_F_GUEST_ECN;

	if (nd->ufo)
		f |= 1ull << VIRTIO_NET_F_HOST_UFO | 1ull << VIRTIO_NET_F_GUEST_UFO;
	return f;
}

static int tap_rx_fd(struct netdev *nd, unsigned int p)
{
	return nd->p[p].fd;
}

static ssize_t tap_peek(struct netdev *nd, unsigned int p, uint8_t **pkt)
{
	struct tap_pair *tp = &nd->p[p];

	if (!tp->pending) {
		ssize_t n = read(tp->fd, tp->buf, TAP_BUF_SIZE);

		if (n < 0)
			return errno == EINTR ? -EAGAIN : -errno;
		if (n == 0)
			return -EAGAIN;
		tp->pending = n;
	}
	*pkt = tp->buf;
	return tp->pending;
}

static void tap_consume(struct netdev *nd, unsigned int p)
{
	nd->p[p].pending = 0;
}

static int tap_send(struct netdev *nd, unsigned int p, const struct iovec *iov, unsigned int cnt)
{
	ssize_t n;

	/* A tap takes at most UIO_MAXIOV segments; a longer frame is flattened first. */
	if (cnt > IOV_MAX)
		return -EMSGSIZE;
	n = writev(nd->p[p].fd, iov, (int)cnt);
	return n < 0 ? -errno : 0;
}

static int tap_set_offload(struct netdev *nd, uint64_t o)
{
	unsigned int f = 0;

	if (o & (1ull << VIRTIO_NET_F_GUEST_CSUM)) {
		f |= TUN_F_CSUM;
		if (o & (1ull << VIRTIO_NET_F_GUEST_TSO4))
			f |= TUN_F_TSO4;
		if (o & (1ull << VIRTIO_NET_F_GUEST_TSO6))
			f |= TUN_F_TSO6;
		if (o & (1ull << VIRTIO_NET_F_GUEST_ECN))
			f |= TUN_F_TSO_ECN;
		if ((o & (1ull << VIRTIO_NET_F_GUEST_UFO)) && nd->ufo)
			f |= TUN_F_UFO;
	}
	return ioctl(nd->p[0].fd, TUNSETOFFLOAD, f) < 0 ? -errno : 0;
}

/* An unused pair's queue leaves the tap, so the kernel stops steering frames to it. */
static int tap_set_pair_active(struct netdev *nd, unsigned int p, bool on)
{
	struct tap_pair *tp = &nd->p[p];
	struct ifreq ifr = {0};

	if (nd->macvtap || !nd->multi_queue || tp->active == on || p >= nd->pairs)
		return 0;
	ifr.ifr_flags = on ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE;
	if (ioctl(tp->fd, TUNSETQUEUE, &ifr) < 0)
		return -errno;
	tp->active = on;
	return 0;
}

/* Frames the kernel could not queue for us: the interface's tx_dropped. */
static uint64_t tap_kernel_drops(struct netdev *nd)
{
	char buf[32];

	if (sysfs_read(nd->ifname, "statistics/tx_dropped", buf, sizeof(buf)))
		return 0;
	return strtoull(buf, NULL, 10);
}

const struct netdev_ops netdev_tap_ops = {
	.kind = "tap",
	.open = tap_open,
	.close = tap_close,
	.features = tap_features,
	.rx_fd = tap_rx_fd,
	.peek = tap_peek,
	.consume = tap_consume,
	.send = tap_send,
	.set_offload = tap_set_offload,
	.set_pair_active = tap_set_pair_active,
	.kernel_drops = tap_kernel_drops,
};

const struct netdev_ops netdev_macvtap_ops = {
	.kind = "macvtap",
	.open = macvtap_open,
	.close = tap_close,
	.features = tap_features,
	.rx_fd = tap_rx_fd,
	.peek = tap_peek,
	.consume = tap_consume,
	.send = tap_send,
	.set_offload = tap_set_offload,
	.set_pair_active = tap_set_pair_active,
	.kernel_drops = tap_kernel_drops,
};
