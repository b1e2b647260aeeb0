/* SPDX-License-Identifier: MIT */
/*
 * net.h - the virtio-net device model, exported over vhost-user.
 *
 * One struct net_dev per --net option: a vhost-user back-end (backend.h)
 * with N queue pairs (rx 2k, tx 2k+1) and a control queue (2N), served
 * on the engine's I/O threads (engine.h), over one packet back-end
 * (netdev/netdev.h: null, loopback, tap, macvtap).
 */
#ifndef VHOSTD_DEVICES_NET_H
#define VHOSTD_DEVICES_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net_proto.h"
#include "vhost-user/backend.h"

#define NET_MAX_PAIRS ((VU_MAX_QUEUES - 1) / 2)

enum net_backend_kind {
	NET_BACKEND_NULL,
	NET_BACKEND_LOOPBACK,
	NET_BACKEND_TAP,
	NET_BACKEND_MACVTAP,
};

struct net_options {
	char id[32];
	char socket[108];
	bool client;
	unsigned int poll_us;
	int io_thread;
	uint64_t max_guest_memory;
	unsigned int stop_timeout_ms; /* a queue's drain, at most; 0: backend.h's default */
	enum net_backend_kind backend;
	char ifname[16]; /* tap= / macvtap= (IFNAMSIZ) */
	uint8_t mac[6];
	unsigned int pairs;  /* queues= */
	uint16_t queue_size; /* largest ring accepted */
	uint16_t mtu;	     /* 0: no VIRTIO_NET_F_MTU */
};

/*
 * Parse "id=NAME,socket=PATH,(tap=IF|macvtap=IF|backend=null|backend=loopback)
 * [,mac=MAC][,queues=N][,queue-size=N][,mtu=N][,poll-us=N][,io-thread=K]
 * [,client=on][,max-guest-memory=BYTES]" (defaults: 1 pair, queue-size
 * 1024, poll-us 50, a locally administered MAC made from the id).
 * 0, or -EINVAL with one line in @err.
 */
int net_options_parse(const char *str, struct net_options *opts, char *err, size_t err_len);

/* One queue's counters (any thread; each field consistent on its own). */
struct net_queue_stats {
	char name[8]; /* "rx0", "tx0", ..., "ctrl" */
	uint64_t packets, bytes;
	uint64_t drops[NET_DROP__COUNT];
	uint64_t no_buffers; /* rx: times a frame waited for the guest's buffers */
	uint64_t steered;    /* rx: frames RSS sent to another pair's queue */
	uint64_t kicks, notifies;
};

struct net_dev;
struct vu_dev;

/* Open the back-end and start the vhost-user back-end.  NULL, message in @err. */
struct net_dev *net_dev_new(const struct net_options *opts, const struct vu_watch_ops *watch,
			    void *loop, char *err, size_t err_len);
void net_dev_free(struct net_dev *dev);

const char *net_dev_id(const struct net_dev *dev);
const struct net_options *net_dev_options(const struct net_dev *dev);
bool net_dev_connected(const struct net_dev *dev);
/* Is the front-end driving it (any queue started)?  Loop thread. */
bool net_dev_active(const struct net_dev *dev);
/* Its vhost-user device. */
struct vu_dev *net_dev_vu(struct net_dev *dev);
const char *net_backend_name(enum net_backend_kind k);
/* Queues with counters: 2 per pair and the control queue. */
unsigned int net_dev_nr_queues(const struct net_dev *dev);
void net_dev_queue_stats(struct net_dev *dev, unsigned int i, struct net_queue_stats *st);
/* What the back-end's kernel side dropped (tap: frames the guest was too slow for). */
uint64_t net_dev_kernel_drops(struct net_dev *dev);
/* Announces sent for VHOST_USER_SEND_RARP (RARP frames to the back-end). */
uint64_t net_dev_rarps(struct net_dev *dev);

#endif /* VHOSTD_DEVICES_NET_H */
