// SPDX-License-Identifier: MIT
/*
 * net.c - the virtio-net device model (virtio 1.2, 5.1) over vhost-user.
 *
 * Queues.  Pair k is rx 2k and tx 2k+1; the control queue is 2N.  Each
 * runs on an engine I/O thread (engine.h) and talks to pair k of the
 * packet back-end (netdev/netdev.h).
 *
 * tx.  The engine pops up to its budget of chains per pass; each is one
 * frame: its header is copied out of guest memory once, checked against
 * the negotiated features (net_proto.c), and handed to the back-end as
 * the copy followed by the frame's iovecs in guest memory (the back-end
 * copies: a tap's write, the loopback's slot).  A malformed header or a
 * frame above 64 KiB is dropped and counted; the chain still completes,
 * and no other queue notices.  Completions are published by the engine
 * in batches with one interrupt (event-idx permitting).
 *
 * rx.  The rx queue is manual_pop: a buffer is popped only for a frame.
 * When the back-end has a frame (its fd polled through the thread's
 * io_uring), reap() takes it, applies the receive filter and the guest's
 * offloads, and copies it into as many buffers as it needs (mergeable:
 * num_buffers of them, as QEMU's receive path does) or into one big
 * buffer.  Frames are taken at most NET_RX_BUDGET per pass (NAPI's 64),
 * then the queue goes to the back of the thread's list, so tx and the
 * other pairs get their turn.  With no buffers left the frame stays in
 * the back-end and nothing more is read (the tap's own queue fills and
 * the kernel counts what it drops) until the guest's next kick; popped
 * buffers are held for the frame, not returned empty.
 *
 * Control.  Commands are copied out, carried out by net_ctrl_exec() under
 * the device lock, and the rx queues pick up the new filter through a
 * generation count (one relaxed load per frame).  Offload changes go to
 * the back-end (TUNSETOFFLOAD), pair-count changes detach the tap queues
 * of unused pairs.
 *
 * Trust.  Guest memory is read once per header and per command; chains of
 * the wrong shape (a tx chain with writable buffers, an rx chain with
 * readable ones, a control command without an ack byte) mark the device
 * broken (NEEDS_RESET) with one log line.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/kvopts.h"
#include "common/log.h"
#include "common/util.h"
#include "engine/devopts.h"
#include "engine/engine.h"
#include "net.h"
#include "netdev/netdev.h"
#include "virtio_net.h"

#define NET_DEFAULT_QUEUE_SIZE 1024
#define NET_MIN_QUEUE_SIZE     4
#define NET_MAX_QUEUE_SIZE     1024
#define NET_DEFAULT_POLL_US    50
/* Segments per chain we accept (a chain may be as long as the ring). */
#define NET_MAX_IOV 1024
/* Frames received per queue per pass. */
#define NET_RX_BUDGET 64
/* The longest control command: two full MAC tables, with room to spare. */
#define NET_CTRL_MAX (2 + 8 + 2 * NET_MAC_TABLE_ENTRIES * ETH_ALEN + 64)

enum net_qkind { NQ_RX, NQ_TX, NQ_CTRL };

struct net_req {
	struct eng_req base;
};

struct net_qstats {
	_Atomic uint64_t packets, bytes, no_buffers, steered;
	_Atomic uint64_t drops[NET_DROP__COUNT];
	struct eng_queue_counters ec;
};

/* An armed poll on a frame source's fd; outlives the queue if it must. */
struct net_poll {
	struct reactor_event ev;
	struct net_queue *nq; /* NULL: the queue left, free on completion */
	bool armed;
};

/* Where an rx queue takes frames from: its pair of the back-end, or its inbox. */
struct net_source {
	const struct netdev_ops *ops;
	struct netdev *nd;
	struct net_poll *poll;
	bool inbox; /* frames other pairs steered here (RSS) */
};

/* What an rx queue needs from the control state, copied when it changes. */
struct net_rx_conf {
	struct net_filter filter;
	uint64_t guest_offloads;
	uint16_t pairs;
	struct net_rss rss;
};

struct net_queue {
	struct net_dev *dev;
	unsigned int index, pair;
	enum net_qkind kind;
	char name[48];
	struct net_qstats st;

	/* While started, touched only by the queue's thread. */
	struct eng_queue *eq;
	struct reactor *r;
	struct net_poll *poll;	/* the back-end's rx fd */
	struct net_poll *ipoll; /* the inbox's */
	bool waiting;		/* rx: a frame waits for buffers */
	/*
	 * rx: the pool thread it is attached to, -1 when detached; written
	 * by that thread only (attach / detach), so a tx queue that reads
	 * its own thread's index here knows the rx queue is attached to it
	 * right now and may wake it directly.
	 */
	atomic_int thread;
	bool tx_sent; /* tx: flush the back-end at the end of the burst */
	bool rx_error_logged;
	unsigned int hdr_len; /* the guest's header: 10 or 12 */
	bool mergeable;
	uint64_t features;
	/*
	 * rx: popped buffers not yet filled, oldest first: a circular list
	 * (nheld from held_head), since a frame retires buffers from the
	 * front while a driver may keep the whole ring posted.
	 */
	struct eng_req **held;
	unsigned int held_head, nheld, held_cap;
	uint64_t held_bytes;
	unsigned int conf_gen;
	struct net_rx_conf conf;
	struct iovec *tx_iov; /* header copy + the frame's segments */
	struct vu_queue *q;   /* while started; the loop thread's */
};

struct net_dev {
	struct net_options opts;
	const struct netdev_ops *nops;
	struct netdev *nd;
	uint64_t be_features; /* offloads the back-end carries */
	struct vu_dev *vu;
	_Atomic uint64_t features;

	pthread_mutex_t lock; /* ctrl, and the copy rx queues take of it */
	struct net_ctrl_state ctrl;
	atomic_uint conf_gen;

	unsigned int nr_queues; /* 2 * pairs + 1 */
	struct net_queue *queues;

	/*
	 * RSS: frames the table sends to another pair wait in that pair's
	 * inbox, a loopback back-end of our own (one ring per pair); the
	 * lock makes its single-producer rings safe for every pair's thread.
	 */
	struct netdev *inbox;
	pthread_mutex_t *inbox_lock;

	/*
	 * VHOST_USER_SEND_RARP: the MAC to announce (under lock), sent by
	 * tx0's thread, the only one that sends on pair 0.
	 */
	atomic_bool rarp_pending;
	uint8_t rarp_mac[6];
	atomic_uint_fast64_t rarps; /* announces sent */
};

/* ---- options ------------------------------------------------------------- */

enum {
	OPT_ID = 1 << 0,
	OPT_SOCKET = 1 << 1,
	OPT_CLIENT = 1 << 2,
	OPT_POLL_US = 1 << 3,
	OPT_IO_THREAD = 1 << 4,
	OPT_MAX_GUEST_MEMORY = 1 << 5,
	OPT_TAP = 1 << 6,
	OPT_MACVTAP = 1 << 7,
	OPT_BACKEND = 1 << 8,
	OPT_MAC = 1 << 9,
	OPT_QUEUES = 1 << 10,
	OPT_QUEUE_SIZE = 1 << 11,
	OPT_MTU = 1 << 12,
	OPT_STOP_TIMEOUT_MS = 1 << 13,
};

static const struct kv_key net_keys[] = {
	{"id", OPT_ID},
	{"socket", OPT_SOCKET},
	{"client", OPT_CLIENT},
	{"poll-us", OPT_POLL_US},
	{"io-thread", OPT_IO_THREAD},
	{"max-guest-memory", OPT_MAX_GUEST_MEMORY},
	{"stop-timeout-ms", OPT_STOP_TIMEOUT_MS},
	{"tap", OPT_TAP},
	{"macvtap", OPT_MACVTAP},
	{"backend", OPT_BACKEND},
	{"mac", OPT_MAC},
	{"queues", OPT_QUEUES},
	{"queue-size", OPT_QUEUE_SIZE},
	{"mtu", OPT_MTU},
};

static const char *const backend_names[] = {
	[NET_BACKEND_NULL] = "null",
	[NET_BACKEND_LOOPBACK] = "loopback",
	[NET_BACKEND_TAP] = "tap",
	[NET_BACKEND_MACVTAP] = "macvtap",
};

const char *net_backend_name(enum net_backend_kind k)
{
	return (unsigned int)k < ARRAY_SIZE(backend_names) ? backend_names[k] : "?";
}

static int parse_mac(const char *v, uint8_t mac[6])
{
	unsigned int b[6];
	char tail;

	if (sscanf(v, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
		   &tail) != 6 ||
	    strlen(v) != 17)
		return -EINVAL;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)b[i];
	/* A multicast address cannot be a station's. */
	return mac[0] & 1 ? -EINVAL : 0;
}

static int net_option_set(void *ctx, unsigned int bit, const char *key, const char *v, char *err,
			  size_t err_len)
{
	struct net_options *o = ctx;
	unsigned long n;
	int r;

	r = eng_dev_option_set(&ENG_DEV_FIELDS(o), key, v, err, err_len);
	if (r != -ENOENT)
		return r;
	switch (bit) {
	case OPT_TAP:
	case OPT_MACVTAP:
		if (kv_str(o->ifname, sizeof(o->ifname), v) || strchr(v, '/'))
			return kv_err(err, err_len, "%s: an interface name of 1..15 bytes expected",
				      key);
		o->backend = bit == OPT_TAP ? NET_BACKEND_TAP : NET_BACKEND_MACVTAP;
		return 0;
	case OPT_BACKEND:
		if (!strcmp(v, "null"))
			o->backend = NET_BACKEND_NULL;
		else if (!strcmp(v, "loopback"))
			o->backend = NET_BACKEND_LOOPBACK;
		else
			return kv_err(err, err_len,
				      "backend: null or loopback expected, not '%s' (tap=IF, "
				      "macvtap=IF for interfaces)",
				      v);
		return 0;
	case OPT_MAC:
		if (parse_mac(v, o->mac))
			return kv_err(err, err_len,
				      "mac: a unicast address like 52:54:00:12:34:56 expected, "
				      "not '%s'",
				      v);
		return 0;
	case OPT_QUEUES:
		if (kv_parse_uint(v, 1, NET_MAX_PAIRS, &n))
			return kv_err(err, err_len, "queues: 1..%d queue pairs expected, not '%s'",
				      NET_MAX_PAIRS, v);
		o->pairs = (unsigned int)n;
		return 0;
	case OPT_QUEUE_SIZE:
		if (kv_parse_uint(v, NET_MIN_QUEUE_SIZE, NET_MAX_QUEUE_SIZE, &n) || (n & (n - 1)))
			return kv_err(err, err_len,
				      "queue-size: a power of two in %d..%d expected, not '%s'",
				      NET_MIN_QUEUE_SIZE, NET_MAX_QUEUE_SIZE, v);
		o->queue_size = (uint16_t)n;
		return 0;
	case OPT_MTU:
		if (kv_parse_uint(v, 68, NET_MAX_FRAME - ETH_HLEN, &n))
			return kv_err(err, err_len, "mtu: 68..%u expected, not '%s'",
				      NET_MAX_FRAME - ETH_HLEN, v);
		o->mtu = (uint16_t)n;
		return 0;
	}
	return -EINVAL;
}

int net_options_parse(const char *str, struct net_options *opts, char *err, size_t err_len)
{
	unsigned int seen, kinds;
	uint32_t h = 2166136261u;
	int r;

	memset(opts, 0, sizeof(*opts));
	opts->pairs = 1;
	opts->queue_size = NET_DEFAULT_QUEUE_SIZE;
	opts->poll_us = NET_DEFAULT_POLL_US;
	opts->io_thread = -1;
	r = kv_parse(str, net_keys, ARRAY_SIZE(net_keys), net_option_set, opts, &seen, err,
		     err_len);
	if (r)
		return r;
	if (!(seen & OPT_ID))
		return kv_err(err, err_len, "id= is required");
	if (!(seen & OPT_SOCKET))
		return kv_err(err, err_len, "socket= is required");
	kinds = seen & (OPT_TAP | OPT_MACVTAP | OPT_BACKEND);
	if (!kinds || (kinds & (kinds - 1)))
		return kv_err(err, err_len,
			      "exactly one of tap=IF, macvtap=IF, backend=null|loopback expected");
	if (!(seen & OPT_MAC)) {
		/* Locally administered, stable for an id: 52:54:00 is QEMU's, we take 0a:. */
		for (const char *p = opts->id; *p; p++)
			h = (h ^ (uint8_t)*p) * 16777619u;
		opts->mac[0] = 0x0a;
		opts->mac[1] = 0x68; /* 'h' */
		opts->mac[2] = (uint8_t)(h >> 24);
		opts->mac[3] = (uint8_t)(h >> 16);
		opts->mac[4] = (uint8_t)(h >> 8);
		opts->mac[5] = (uint8_t)h;
	}
	return 0;
}

/* ---- counters --------------------------------------------------------------- */

/* Only the queue's thread writes: a plain add, no locked instruction. */
static void stat_add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static void net_drop(struct net_queue *nq, enum net_drop why)
{
	stat_add(&nq->st.drops[why], 1);
}

static bool has_feature(uint64_t f, unsigned int bit)
{
	return f & (1ull << bit);
}

/* ---- rx ---------------------------------------------------------------------- */

static void net_poll_done(struct reactor_event *ev, int res, uint32_t flags)
{
	struct net_poll *p = container_of(ev, struct net_poll, ev);

	if (!p->nq) {
		free(p);
		return;
	}
	p->armed = false;
	eng_queue_wake(p->nq->eq);
}

/* Wait for @src to have a frame (one-shot poll on its fd). */
static void net_rx_arm(struct net_queue *nq, const struct net_source *src)
{
	struct io_uring_sqe *sqe;
	int fd;

	if (src->poll->armed)
		return;
	fd = src->ops->rx_fd(src->nd, nq->pair);
	if (fd < 0)
		return;
	sqe = reactor_sqe(nq->r, &src->poll->ev);
	if (!sqe) {
		log_error("%s: cannot wait for frames (io_uring full)", nq->name);
		return;
	}
	io_uring_prep_poll_add(sqe, fd, POLLIN);
	src->poll->armed = true;
}

/* Take the control state's new version if there is one. */
static void net_rx_sync_conf(struct net_queue *nq)
{
	struct net_dev *dev = nq->dev;
	unsigned int gen = atomic_load_explicit(&dev->conf_gen, memory_order_acquire);

	if (gen == nq->conf_gen)
		return;
	pthread_mutex_lock(&dev->lock);
	nq->conf.filter = dev->ctrl.filter;
	nq->conf.guest_offloads = dev->ctrl.guest_offloads;
	nq->conf.pairs = dev->ctrl.pairs;
	nq->conf.rss = dev->ctrl.rss;
	nq->conf_gen = atomic_load(&dev->conf_gen);
	pthread_mutex_unlock(&dev->lock);
}

/* The @i-th oldest held buffer. */
static inline struct eng_req *net_held(const struct net_queue *nq, unsigned int i)
{
	unsigned int k = nq->held_head + i;

	return nq->held[k < nq->held_cap ? k : k - nq->held_cap];
}

/* Hand back held buffers unused (the queue is stopping). */
static void net_rx_release(struct net_queue *nq)
{
	for (unsigned int i = 0; i < nq->nheld; i++)
		eng_req_complete(nq->eq, net_held(nq, i), 0);
	nq->held_head = 0;
	nq->nheld = 0;
	nq->held_bytes = 0;
}

/* rx start(): a popped buffer joins the held list (the frame is copied by the caller). */
static void net_rx_start(struct eng_queue *eq, struct eng_req *req)
{
	struct net_queue *nq = eng_queue_priv(eq);
	const struct virtq_elem *e = &req->elem;
	unsigned int k;

	/* 5.1.6.3: receive buffers are device-writable only. */
	if (e->out_num || nq->nheld >= nq->held_cap) {
		eng_queue_halt(eq, "receive buffer with device-readable descriptors");
		eng_req_complete(eq, req, 0);
		return;
	}
	k = nq->held_head + nq->nheld++;
	nq->held[k < nq->held_cap ? k : k - nq->held_cap] = req;
	nq->held_bytes += e->in_len;
}

/*
 * Pop buffers until @need bytes are held (@one: a single buffer).  1
 * enough, 0 the ring ran dry, 2 never enough (every buffer of the ring is
 * held), -EIO halted.
 */
static int net_rx_hold(struct net_queue *nq, uint64_t need, bool one)
{
	while (one ? !nq->nheld : nq->held_bytes < need) {
		int r;

		if (nq->nheld >= nq->held_cap)
			return 2;
		/*
		 * Buffers come in batches, held for the frames after this
		 * one: their ring reads and first lines are fetched together
		 * (one at a time, each frame would wait for both in turn).
		 */
		r = eng_queue_pop_many(nq->eq, nq->held_cap - nq->nheld);
		if (r <= 0)
			return r;
	}
	return 1;
}

/* Complete the first @n held buffers with @lens, keep the rest in order. */
static void net_rx_complete(struct net_queue *nq, unsigned int n, const uint32_t *lens)
{
	for (unsigned int i = 0; i < n; i++) {
		struct eng_req *req = net_held(nq, i);

		nq->held_bytes -= req->elem.in_len;
		eng_req_complete(nq->eq, req, lens[i]);
	}
	nq->held_head += n;
	if (nq->held_head >= nq->held_cap)
		nq->held_head -= nq->held_cap;
	nq->nheld -= n;
}

enum { RX_DONE, RX_WAIT, RX_HALT };

/*
 * The receive header into @e's first buffer.  Where it fits there (every
 * driver's layout), field by field straight into guest memory: the copy of
 * a header built on our stack would read back our own fresh narrow stores
 * in one wide load, which waits until every earlier store has left the
 * store buffer, and those are the previous frames' stores into guest lines
 * another core holds.
 */
static void net_rx_put_hdr(const struct net_queue *nq, const struct virtq_elem *e,
			   const struct virtio_net_hdr *h, uint16_t num_buffers, uint32_t hash,
			   uint16_t report)
{
	struct virtio_net_hdr_v1_hash hh = {0};

	if (likely(e->iov[0].iov_len >= nq->hdr_len)) {
		struct virtio_net_hdr_v1_hash *g = e->iov[0].iov_base;

		*(volatile uint8_t *)&g->hdr.flags = h->flags;
		*(volatile uint8_t *)&g->hdr.gso_type = h->gso_type;
		vq_write16(&g->hdr.hdr_len, le16toh(h->hdr_len));
		vq_write16(&g->hdr.gso_size, le16toh(h->gso_size));
		vq_write16(&g->hdr.csum_start, le16toh(h->csum_start));
		vq_write16(&g->hdr.csum_offset, le16toh(h->csum_offset));
		if (nq->hdr_len >= sizeof(struct virtio_net_hdr))
			vq_write16(&g->hdr.num_buffers, num_buffers);
		if (nq->hdr_len >= sizeof(hh)) {
			vq_write32(&g->hash_value, hash);
			vq_write16(&g->hash_report, report);
			vq_write16(&g->padding, 0);
		}
		return;
	}
	hh.hdr = *h;
	hh.hdr.num_buffers = htole16(num_buffers);
	hh.hash_value = htole32(hash);
	hh.hash_report = htole16(report);
	iov_from_buf(e->iov, e->in_num, 0, &hh, nq->hdr_len);
}

/*
 * Put one frame (@pkt: the back-end's 12-byte header, then @flen bytes)
 * into the guest's buffers.  RX_DONE when it is delivered or dropped,
 * RX_WAIT when buffers are missing (the frame stays where it is).
 */
static int net_rx_one(struct net_queue *nq, uint8_t *pkt, size_t len, uint32_t hash,
		      unsigned int report)
{
	uint8_t *frame = pkt + NETDEV_HDR_LEN;
	size_t flen = len - NETDEV_HDR_LEN, off = 0;
	struct net_rx_conf *c = &nq->conf;
	uint32_t lens[256];
	struct virtio_net_hdr h;
	struct virtq_elem *first;
	unsigned int n = 0;
	uint64_t need;
	int r;

	memcpy(&h, pkt, sizeof(h));
	/* A segmented frame the guest cannot take: it would need software GSO. */
	if (h.gso_type != VIRTIO_NET_HDR_GSO_NONE) {
		unsigned int need_bit;

		switch (h.gso_type & ~VIRTIO_NET_HDR_GSO_ECN) {
		case VIRTIO_NET_HDR_GSO_TCPV4:
			need_bit = VIRTIO_NET_F_GUEST_TSO4;
			break;
		case VIRTIO_NET_HDR_GSO_TCPV6:
			need_bit = VIRTIO_NET_F_GUEST_TSO6;
			break;
		case VIRTIO_NET_HDR_GSO_UDP:
			need_bit = VIRTIO_NET_F_GUEST_UFO;
			break;
		default:
			need_bit = 63;
		}
		if (!has_feature(c->guest_offloads, need_bit) ||
		    ((h.gso_type & VIRTIO_NET_HDR_GSO_ECN) &&
		     !has_feature(c->guest_offloads, VIRTIO_NET_F_GUEST_ECN))) {
			net_drop(nq, NET_DROP_OFFLOAD);
			return RX_DONE;
		}
	}
	/* A partial checksum the guest will not finish: finish it here. */
	if ((h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) &&
	    !has_feature(c->guest_offloads, VIRTIO_NET_F_GUEST_CSUM)) {
		net_csum_fill(frame, flen, le16toh(h.csum_start), le16toh(h.csum_offset));
		h.flags &= (uint8_t)~VIRTIO_NET_HDR_F_NEEDS_CSUM;
		h.flags |= VIRTIO_NET_HDR_F_DATA_VALID;
	}
	if (!has_feature(c->guest_offloads, VIRTIO_NET_F_GUEST_CSUM))
		h.flags &= (uint8_t)~VIRTIO_NET_HDR_F_DATA_VALID;

	need = nq->hdr_len + flen;
	r = net_rx_hold(nq, need, !nq->mergeable);
	if (r < 0)
		return RX_HALT;
	if (!r)
		return RX_WAIT;
	if (r == 2) {
		net_drop(nq, NET_DROP_NO_ROOM);
		return RX_DONE;
	}

	first = &net_held(nq, 0)->elem;
	if (!nq->mergeable) {
		if (first->in_len < need) {
			/* The buffer stays held for the next frame. */
			net_drop(nq, NET_DROP_NO_ROOM);
			return RX_DONE;
		}
		lens[0] = (uint32_t)need;
		n = 1;
	} else {
		/* 5.1.6.4.2: the header goes in the first buffer, num_buffers counts them. */
		if (first->in_len < nq->hdr_len) {
			eng_queue_halt(nq->eq, "mergeable receive buffer smaller than the header");
			return RX_HALT;
		}
		/* Which buffers take how much (the held ones hold enough). */
		while (off < flen || !n) {
			size_t skip = n ? 0 : nq->hdr_len;
			size_t room = net_held(nq, n)->elem.in_len - skip;
			size_t chunk = flen - off < room ? flen - off : room;

			if (n == ARRAY_SIZE(lens)) {
				/* More than 256 buffers for one frame: smaller than any driver
				 * uses. */
				net_drop(nq, NET_DROP_NO_ROOM);
				return RX_DONE;
			}
			off += chunk;
			lens[n++] = (uint32_t)(skip + chunk);
		}
	}
	/* The header first: num_buffers is known, and the data follows it. */
	net_rx_put_hdr(nq, first, &h, (uint16_t)n, hash, (uint16_t)report);
	off = 0;
	for (unsigned int i = 0; i < n; i++) {
		const struct virtq_elem *e = &net_held(nq, i)->elem;
		size_t skip = i ? 0 : nq->hdr_len;

		iov_from_buf(e->iov, e->in_num, skip, frame + off, lens[i] - skip);
		off += lens[i] - skip;
	}
	net_rx_complete(nq, n, lens);
	stat_add(&nq->st.packets, 1);
	stat_add(&nq->st.bytes, flen);
	return RX_DONE;
}

/* Hand a frame to pair @target's inbox (RSS).  False if it was full. */
static bool net_rx_steer(struct net_dev *dev, unsigned int target, uint8_t *pkt, size_t len)
{
	struct iovec iov = {pkt, len};
	int r;

	pthread_mutex_lock(&dev->inbox_lock[target]);
	r = netdev_loopback_ops.send(dev->inbox, target, &iov, 1);
	netdev_loopback_ops.flush(dev->inbox, target);
	pthread_mutex_unlock(&dev->inbox_lock[target]);
	return r == 0;
}

/*
 * Frames from @src into the guest while *@budget lasts.  0: the source ran
 * dry (its poll is armed); 1: the budget ran out; -1: stop (no buffers, or
 * the queue halted).
 */
static int net_rx_source(struct net_queue *nq, const struct net_source *src, unsigned int *budget)
{
	struct net_dev *dev = nq->dev;

	while (*budget) {
		const struct net_rss *rss = &nq->conf.rss;
		unsigned int report = VIRTIO_NET_HASH_REPORT_NONE, target;
		uint32_t hash = 0;
		uint8_t *pkt;
		ssize_t len = src->ops->peek(src->nd, nq->pair, &pkt);
		int r;

		if (len == -EAGAIN) {
			net_rx_arm(nq, src);
			return 0;
		}
		if (len < 0) {
			/*
			 * The interface went away or broke: its fd would poll
			 * as ready forever, so it is not watched; the guest's
			 * next kick tries again.
			 */
			if (!nq->rx_error_logged) {
				nq->rx_error_logged = true;
				log_warn("%s: receiving: %s (not logged again)", nq->name,
					 strerror((int)-len));
			}
			return 0;
		}
		(*budget)--;
		if ((size_t)len < NETDEV_HDR_LEN + ETH_HLEN ||
		    (size_t)len - NETDEV_HDR_LEN > NET_MAX_FRAME) {
			net_drop(nq, NET_DROP_OVERSIZE);
			src->ops->consume(src->nd, nq->pair);
			continue;
		}
		if (!net_filter_accept(&nq->conf.filter, pkt + NETDEV_HDR_LEN,
				       (size_t)len - NETDEV_HDR_LEN)) {
			net_drop(nq, NET_DROP_FILTERED);
			src->ops->consume(src->nd, nq->pair);
			continue;
		}
		if (rss->hash_types)
			report = net_rss_hash(rss, pkt + NETDEV_HDR_LEN,
					      (size_t)len - NETDEV_HDR_LEN, &hash);
		/* RSS: the table picks the pair, whichever queue of the back-end it came on. */
		if (rss->steering && !src->inbox) {
			target = report ? rss->table[hash & rss->mask] : rss->unclassified;
			if (target != nq->pair && target < dev->opts.pairs) {
				if (net_rx_steer(dev, target, pkt, (size_t)len))
					stat_add(&nq->st.steered, 1);
				else
					net_drop(nq, NET_DROP_STEER);
				src->ops->consume(src->nd, nq->pair);
				continue;
			}
		}
		r = net_rx_one(nq, pkt, (size_t)len, hash, report);
		if (r == RX_HALT)
			return -1;
		if (r == RX_WAIT) {
			/* Count each stall once; the next kick runs us again. */
			if (!nq->waiting)
				stat_add(&nq->st.no_buffers, 1);
			nq->waiting = true;
			return -1;
		}
		nq->waiting = false;
		src->ops->consume(src->nd, nq->pair);
	}
	return 1;
}

/* rx reap(): move frames from the inbox and the back-end into the guest, within the budget. */
static void net_rx_run(struct eng_queue *eq)
{
	struct net_queue *nq = eng_queue_priv(eq);
	struct net_dev *dev = nq->dev;
	struct net_source src[2] = {
		{&netdev_loopback_ops, dev->inbox, nq->ipoll, true},
		{dev->nops, dev->nd, nq->poll, false},
	};
	unsigned int budget = NET_RX_BUDGET;

	if (eng_queue_stopping(eq)) {
		net_rx_release(nq);
		return;
	}
	net_rx_sync_conf(nq);
	/*
	 * A pair beyond what the driver set (MQ_VQ_PAIRS_SET; with RSS the
	 * table decides) gets nothing (5.1.6.5.5.2): its back-end queue is
	 * not read (a tap's is detached), what was steered to it is dropped,
	 * and it waits on its inbox only to hear of a change (net_ctrl_apply).
	 */
	if (!nq->conf.rss.steering && nq->pair >= nq->conf.pairs) {
		uint8_t *pkt;

		while (netdev_loopback_ops.peek(dev->inbox, nq->pair, &pkt) >= 0) {
			netdev_loopback_ops.consume(dev->inbox, nq->pair);
			net_drop(nq, NET_DROP_STEER);
		}
		net_rx_arm(nq, &src[0]);
		return;
	}
	for (unsigned int i = 0; i < ARRAY_SIZE(src); i++) {
		int r = net_rx_source(nq, &src[i], &budget);

		if (r < 0)
			return;
		if (r > 0) {
			/* Budget spent: the others get their turn, we come back next pass. */
			eng_queue_wake(eq);
			return;
		}
	}
}

/* ---- tx ---------------------------------------------------------------------- */

static void net_tx_start(struct eng_queue *eq, struct eng_req *req)
{
	struct net_queue *nq = eng_queue_priv(eq);
	struct net_dev *dev = nq->dev;
	struct virtq_elem *e = &req->elem;
	struct virtio_net_hdr_v1_hash hh = {0};
	struct virtio_net_hdr *h = &hh.hdr;
	unsigned int cnt = e->out_num;
	struct iovec *data;
	size_t flen;
	int why;

	/* 5.1.6.2: a transmit chain is device-readable only. */
	if (e->in_num) {
		eng_queue_halt(eq, "transmit chain with device-writable descriptors");
		eng_req_complete(eq, req, 0);
		return;
	}
	if (e->out_len < nq->hdr_len) {
		net_drop(nq, NET_DROP_BAD_HEADER);
		eng_req_complete(eq, req, 0);
		return;
	}
	/*
	 * Copy once; only the copy is checked and sent.  A header in the first
	 * buffer with room for the largest one (every driver's layout): a
	 * fixed-size copy, inlined; what it takes beyond hdr_len (frame
	 * bytes, or num_buffers of a 10-byte header) is never read as header.
	 */
	if (likely(e->iov[0].iov_len >= sizeof(hh)))
		memcpy(&hh, e->iov[0].iov_base, sizeof(hh));
	else
		iov_to_buf(e->iov, e->out_num, 0, &hh, nq->hdr_len);
	h->num_buffers = 0;
	flen = e->out_len - nq->hdr_len;
	why = net_tx_hdr_check(h, nq->features, flen);
	if (why >= 0) {
		net_drop(nq, (enum net_drop)why);
		eng_req_complete(eq, req, 0);
		return;
	}
	data = iov_skip(e->iov, &cnt, nq->hdr_len);
	nq->tx_iov[0].iov_base = h;
	nq->tx_iov[0].iov_len = NETDEV_HDR_LEN;
	/* Mostly one or two: a loop, not a call. */
	for (unsigned int i = 0; i < cnt; i++)
		nq->tx_iov[i + 1] = data[i];
	if (dev->nops->send(dev->nd, nq->pair, nq->tx_iov, cnt + 1) < 0) {
		net_drop(nq, NET_DROP_BACKEND);
	} else {
		stat_add(&nq->st.packets, 1);
		stat_add(&nq->st.bytes, flen);
		nq->tx_sent = true;
	}
	eng_req_complete(eq, req, 0);
}

/*
 * The announce a guest without GUEST_ANNOUNCE cannot make after a
 * migration: a broadcast RARP request (RFC 903, opcode 3) whose sender and
 * target are its MAC, so that switches and bridges learn the MAC's new
 * port at once.  Both IPv4 addresses are zero: a RARP request knows none.
 */
static void net_tx_send_rarp(struct net_queue *nq)
{
	struct net_dev *dev = nq->dev;
	static const uint8_t rarp_head[] = {
		0x80, 0x35, /* ETH_P_RARP */
		0x00, 0x01, /* hardware: Ethernet */
		0x08, 0x00, /* protocol: IPv4 */
		6,    4,    /* address lengths */
		0x00, 0x03, /* reverse request */
	};
	uint8_t hdr[NETDEV_HDR_LEN] = {0}; /* no offload: a plain frame */
	uint8_t f[60] = {0};		   /* the Ethernet minimum, zero-padded */
	struct iovec iov[2] = {{hdr, sizeof(hdr)}, {f, sizeof(f)}};
	uint8_t mac[6];

	pthread_mutex_lock(&dev->lock);
	memcpy(mac, dev->rarp_mac, sizeof(mac));
	pthread_mutex_unlock(&dev->lock);
	memset(f, 0xff, 6);
	memcpy(f + 6, mac, 6);
	memcpy(f + 12, rarp_head, sizeof(rarp_head));
	memcpy(f + 22, mac, 6); /* sender hardware address */
	memcpy(f + 32, mac, 6); /* target hardware address */
	if (dev->nops->send(dev->nd, nq->pair, iov, 2) < 0) {
		net_drop(nq, NET_DROP_BACKEND);
		log_warn("%s: could not announce %02x:%02x:%02x:%02x:%02x:%02x (RARP)",
			 dev->opts.id, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
		return;
	}
	nq->tx_sent = true;
	log_info("%s: announced %02x:%02x:%02x:%02x:%02x:%02x with a RARP frame (%" PRIuFAST64
		 " so far)",
		 dev->opts.id, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5],
		 atomic_fetch_add(&dev->rarps, 1) + 1);
}

/* tx reap(): runs every 16 chains and at the end of a burst. */
static void net_tx_reap(struct eng_queue *eq)
{
	struct net_queue *nq = eng_queue_priv(eq);
	struct net_dev *dev = nq->dev;

	if (nq->pair == 0 && atomic_load_explicit(&dev->rarp_pending, memory_order_relaxed) &&
	    atomic_exchange(&dev->rarp_pending, false))
		net_tx_send_rarp(nq);

	/* flush(): only a back-end that hands our frames back has one (loopback). */
	if (nq->tx_sent && dev->nops->flush) {
		struct net_queue *rq = &dev->queues[2 * nq->pair];
		int t = eng_queue_thread(eq);

		dev->nops->flush(dev->nd, nq->pair);
		/*
		 * Our own pair's rx queue on this very thread: run it this
		 * pass rather than after a round trip through its eventfd and
		 * the ring's poll.  Not for the others: an rx run for nothing
		 * costs a syscall (the inbox's empty check) per tx batch.
		 */
		if (t >= 0 && atomic_load_explicit(&rq->thread, memory_order_relaxed) == t)
			eng_queue_wake(rq->eq);
	}
	nq->tx_sent = false;
}

/* ---- control queue ------------------------------------------------------------ */

/* Side effects of a command on the back-end, after the state changed. */
static void net_ctrl_apply(struct net_dev *dev, const struct net_ctrl_state *old,
			   const struct net_ctrl_state *now)
{
	if (old->guest_offloads != now->guest_offloads && dev->nops->set_offload) {
		int r = dev->nops->set_offload(dev->nd, now->guest_offloads);

		if (r < 0)
			log_warn("%s: cannot set the back-end's offloads: %s", dev->opts.id,
				 strerror(-r));
	}
	if (old->pairs != now->pairs && dev->nops->set_pair_active) {
		for (unsigned int p = 0; p < dev->opts.pairs; p++) {
			bool was = p < old->pairs, is = p < now->pairs;

			if (was != is)
				dev->nops->set_pair_active(dev->nd, p, is);
		}
	}
	/* Every rx queue looks at the new state now, not at its next kick. */
	if (old->pairs != now->pairs || old->rss.steering != now->rss.steering) {
		for (unsigned int p = 0; p < dev->opts.pairs; p++)
			netdev_loopback_ops.wake(dev->inbox, p);
	}
	if (memcmp(old->filter.mac, now->filter.mac, ETH_ALEN))
		log_info("%s: guest set its MAC address to %02x:%02x:%02x:%02x:%02x:%02x",
			 dev->opts.id, now->filter.mac[0], now->filter.mac[1], now->filter.mac[2],
			 now->filter.mac[3], now->filter.mac[4], now->filter.mac[5]);
}

static void net_ctrl_start(struct eng_queue *eq, struct eng_req *req)
{
	struct net_queue *nq = eng_queue_priv(eq);
	struct net_dev *dev = nq->dev;
	struct virtq_elem *e = &req->elem;
	struct net_ctrl_state old;
	uint8_t cmd[NET_CTRL_MAX];
	uint8_t ack = VIRTIO_NET_ERR;

	/* 5.1.6.5: class and command readable, the ack byte writable. */
	if (e->out_len < sizeof(struct virtio_net_ctrl_hdr) || e->in_len < 1) {
		eng_queue_halt(eq, "control command without header or ack byte");
		eng_req_complete(eq, req, 0);
		return;
	}
	if (e->out_len <= sizeof(cmd)) {
		iov_to_buf(e->iov, e->out_num, 0, cmd, e->out_len);
		pthread_mutex_lock(&dev->lock);
		old = dev->ctrl;
		ack = net_ctrl_exec(&dev->ctrl, cmd[0], cmd[1], cmd + 2, e->out_len - 2);
		if (ack == VIRTIO_NET_OK) {
			atomic_fetch_add_explicit(&dev->conf_gen, 1, memory_order_release);
			net_ctrl_apply(dev, &old, &dev->ctrl);
		}
		pthread_mutex_unlock(&dev->lock);
		log_debug("%s: control class %u command %u: %s", nq->name, cmd[0], cmd[1],
			  ack == VIRTIO_NET_OK ? "ok" : "refused");
	}
	stat_add(&nq->st.packets, 1);
	if (ack != VIRTIO_NET_OK)
		net_drop(nq, NET_DROP_BAD_HEADER);
	iov_from_buf(e->iov + e->out_num, e->in_num, 0, &ack, 1);
	eng_req_complete(eq, req, 1);
}

/* ---- queues on their thread ----------------------------------------------------- */

static int net_queue_attach(struct eng_queue *eq, struct reactor *r)
{
	struct net_queue *nq = eng_queue_priv(eq);

	nq->eq = eq;
	nq->r = r;
	nq->held_head = 0;
	nq->nheld = 0;
	nq->held_bytes = 0;
	nq->waiting = false;
	nq->conf_gen = atomic_load(&nq->dev->conf_gen) - 1; /* take it on the first run */
	if (nq->kind == NQ_RX) {
		nq->poll = calloc(1, sizeof(*nq->poll));
		nq->ipoll = calloc(1, sizeof(*nq->ipoll));
		if (!nq->poll || !nq->ipoll) {
			free(nq->poll);
			free(nq->ipoll);
			nq->poll = nq->ipoll = NULL;
			return -ENOMEM;
		}
		nq->poll->ev.fn = nq->ipoll->ev.fn = net_poll_done;
		nq->poll->nq = nq->ipoll->nq = nq;
		atomic_store(&nq->thread, eng_queue_thread(eq));
	}
	return 0;
}

/* Let go of a poll token: freed now, or by its completion if still armed. */
static void net_poll_release(struct net_queue *nq, struct net_poll *p)
{
	struct io_uring_sqe *sqe;

	if (!p)
		return;
	if (!p->armed) {
		free(p);
		return;
	}
	p->nq = NULL;
	sqe = reactor_sqe(nq->r, NULL);
	if (sqe)
		io_uring_prep_poll_remove(sqe, (uint64_t)(uintptr_t)&p->ev);
}

static void net_queue_detach(struct eng_queue *eq)
{
	struct net_queue *nq = eng_queue_priv(eq);

	atomic_store(&nq->thread, -1);
	/* A poll still armed completes later: it must not find the queue. */
	net_poll_release(nq, nq->poll);
	net_poll_release(nq, nq->ipoll);
	nq->poll = nq->ipoll = NULL;
}

static const struct eng_queue_ops net_rx_ops = {
	.req_size = sizeof(struct net_req),
	.attach = net_queue_attach,
	.detach = net_queue_detach,
	.start = net_rx_start,
	.reap = net_rx_run,
	.manual_pop = true,
};

static const struct eng_queue_ops net_tx_ops = {
	.req_size = sizeof(struct net_req),
	.attach = net_queue_attach,
	.detach = net_queue_detach,
	.start = net_tx_start,
	.reap = net_tx_reap,
	.completes_in_start = true,
};

static const struct eng_queue_ops net_ctrl_ops = {
	.req_size = sizeof(struct net_req),
	.attach = net_queue_attach,
	.detach = net_queue_detach,
	.start = net_ctrl_start,
};

/* ---- vhost-user device ops ------------------------------------------------------ */

static uint64_t net_get_features(void *opaque)
{
	struct net_dev *dev = opaque;
	uint64_t f = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_RING_F_INDIRECT_DESC |
		     1ull << VIRTIO_RING_F_EVENT_IDX | 1ull << VIRTIO_F_RING_PACKED |
		     1ull << VIRTIO_NET_F_MAC | 1ull << VIRTIO_NET_F_STATUS |
		     1ull << VIRTIO_NET_F_MRG_RXBUF | 1ull << VIRTIO_NET_F_CTRL_VQ |
		     1ull << VIRTIO_NET_F_CTRL_RX | 1ull << VIRTIO_NET_F_CTRL_RX_EXTRA |
		     1ull << VIRTIO_NET_F_CTRL_VLAN | 1ull << VIRTIO_NET_F_CTRL_MAC_ADDR |
		     1ull << VIRTIO_NET_F_CTRL_GUEST_OFFLOADS |
		     1ull << VIRTIO_NET_F_GUEST_ANNOUNCE | 1ull << VIRTIO_NET_F_MQ |
		     1ull << VIRTIO_NET_F_RSS | 1ull << VIRTIO_NET_F_HASH_REPORT |
		     1ull << VIRTIO_F_IN_ORDER;

	if (dev->opts.mtu)
		f |= 1ull << VIRTIO_NET_F_MTU;
	return f | dev->be_features;
}

static int net_set_features(void *opaque, uint64_t features)
{
	struct net_dev *dev = opaque;
	struct net_ctrl_state old;

	atomic_store(&dev->features, features);
	pthread_mutex_lock(&dev->lock);
	old = dev->ctrl;
	net_ctrl_reset(&dev->ctrl, dev->opts.mac, features, (uint16_t)dev->opts.pairs);
	/*
	 * Front-ends that keep the control queue to themselves (QEMU, DPDK's
	 * virtio-user) choose the pairs by enabling rings: every pair may
	 * carry traffic until a control command says otherwise.
	 */
	dev->ctrl.pairs = (uint16_t)dev->opts.pairs;
	atomic_fetch_add(&dev->conf_gen, 1);
	if (old.guest_offloads != dev->ctrl.guest_offloads || !old.features)
		net_ctrl_apply(dev, &old, &dev->ctrl);
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

static uint64_t net_get_protocol_features(void *opaque)
{
	return 1ull << 9; /* VHOST_USER_PROTOCOL_F_CONFIG */
}

static int net_get_config(void *opaque, uint8_t *buf, uint32_t len)
{
	struct net_dev *dev = opaque;
	struct virtio_net_config c = {0};

	pthread_mutex_lock(&dev->lock);
	memcpy(c.mac, dev->ctrl.filter.mac, ETH_ALEN);
	pthread_mutex_unlock(&dev->lock);
	c.status = htole16(VIRTIO_NET_S_LINK_UP);
	c.max_virtqueue_pairs = htole16((uint16_t)dev->opts.pairs);
	c.mtu = htole16(dev->opts.mtu);
	c.speed = htole32(UINT32_MAX); /* unknown */
	c.duplex = 0xff;	       /* unknown */
	c.rss_max_key_size = NET_RSS_KEY_SIZE;
	c.rss_max_indirection_table_length = htole16(NET_RSS_TABLE_SIZE);
	c.supported_hash_types = htole32(NET_RSS_HASH_TYPES);
	memset(buf, 0, len);
	memcpy(buf, &c, len < sizeof(c) ? len : sizeof(c));
	return (int)len;
}

/* 5.1.4: mac is writable only by legacy drivers; we ignore every write. */
static int net_set_config(void *opaque, const uint8_t *buf, uint32_t offset, uint32_t len)
{
	return 0;
}

/*
 * A packed ring's base from the front-end can be stale: after a back-end
 * crash QEMU 7.2 passes on the position of the last clean stop (see
 * virtq/packed_resync.c).  Every net queue completes in order, one slot
 * per list with Linux, so the descriptors' flags say where to resume; a
 * lost frame (one the crashed back-end had taken from the tap but not
 * delivered) is allowed, a hung queue is not.  A ring of another shape
 * keeps the front-end's base, as a split ring always does.
 */
static void net_packed_resync(struct net_queue *nq, struct virtq *vq)
{
	uint16_t given = virtq_get_base(vq), found;
	int r = virtq_packed_resync(vq, &found);

	if (r)
		log_warn("%s: cannot check the packed ring's position (%s): resuming at %#x",
			 nq->name, strerror(-r), given);
	else if (found != given)
		log_info("%s: the packed ring shows position %#x, not the front-end's %#x: "
			 "resuming there",
			 nq->name, found, given);
}

static int net_start_queue(void *opaque, struct vu_queue *q)
{
	struct net_dev *dev = opaque;
	static const struct eng_queue_ops *const ops[] = {
		[NQ_RX] = &net_rx_ops, [NQ_TX] = &net_tx_ops, [NQ_CTRL] = &net_ctrl_ops};
	uint64_t features = atomic_load(&dev->features);
	struct eng_queue_config cfg;
	struct net_queue *nq;
	int r;

	if (q->index >= dev->nr_queues)
		return -EINVAL;
	nq = &dev->queues[q->index];
	if (nq->eq)
		return -EBUSY;
	nq->features = features;
	nq->mergeable = has_feature(features, VIRTIO_NET_F_MRG_RXBUF);
	nq->hdr_len = nq->mergeable || has_feature(features, VIRTIO_F_VERSION_1)
			      ? sizeof(struct virtio_net_hdr)
			      : VIRTIO_NET_HDR_LEGACY_LEN;
	if (has_feature(features, VIRTIO_NET_F_HASH_REPORT))
		nq->hdr_len = sizeof(struct virtio_net_hdr_v1_hash);
	if (nq->kind == NQ_RX) {
		free(nq->held);
		nq->held_cap = q->vq.num;
		nq->held = calloc(nq->held_cap, sizeof(*nq->held));
		if (!nq->held)
			return -ENOMEM;
		if (dev->nops->set_pair_active)
			dev->nops->set_pair_active(dev->nd, nq->pair, true);
	}
	/* Control commands are lists of several slots: not a shape to read. */
	if (has_feature(features, VIRTIO_F_RING_PACKED) && nq->kind != NQ_CTRL)
		net_packed_resync(nq, &q->vq);
	cfg = (struct eng_queue_config){
		.name = nq->name,
		.max_iov = NET_MAX_IOV,
		.poll_us = dev->opts.poll_us,
		.io_thread = dev->opts.io_thread,
		.priv = nq,
		.counters = &nq->st.ec,
	};
	r = eng_queue_start(q, ops[nq->kind], &cfg, &nq->eq);
	if (r < 0) {
		nq->eq = NULL;
		log_error("%s: cannot start: %s", nq->name, strerror(-r));
		return r;
	}
	q->priv = nq;
	nq->q = q;
	/* An announce asked for while tx0 was stopped: its thread sends it. */
	if (nq->index == 1 && atomic_load(&dev->rarp_pending) && q->kick_fd >= 0) {
		uint64_t one = 1;

		if (write(q->kick_fd, &one, sizeof(one)) < 0)
			log_warn("%s: cannot wake tx0 for the announce: %s", dev->opts.id,
				 strerror(errno));
	}
	log_debug("%s: started (%u entries, %s ring, I/O thread %d)", nq->name, q->vq.num,
		  has_feature(features, VIRTIO_F_RING_PACKED) ? "packed" : "split",
		  eng_queue_thread(nq->eq));
	return 0;
}

/*
 * VHOST_USER_SEND_RARP, on the loop thread.  tx0's thread sends the frame:
 * a write to its kick eventfd makes it run a pass even with an empty ring
 * (the guest may have nothing to send: that is why it is announced).  A
 * tx0 not started sends it when it starts.
 */
static void net_send_rarp(void *opaque, const uint8_t mac[6])
{
	struct net_dev *dev = opaque;
	struct net_queue *tx0 = &dev->queues[1];
	uint64_t one = 1;

	pthread_mutex_lock(&dev->lock);
	memcpy(dev->rarp_mac, mac, sizeof(dev->rarp_mac));
	pthread_mutex_unlock(&dev->lock);
	atomic_store(&dev->rarp_pending, true);
	log_debug("%s: the front-end asks for an announce (SEND_RARP)", dev->opts.id);
	if (tx0->eq && tx0->q && tx0->q->kick_fd >= 0 &&
	    write(tx0->q->kick_fd, &one, sizeof(one)) < 0)
		log_warn("%s: cannot wake tx0 for the announce: %s", dev->opts.id, strerror(errno));
}

uint64_t net_dev_rarps(struct net_dev *dev)
{
	return atomic_load(&dev->rarps);
}

static void net_stop_queue(void *opaque, struct vu_queue *q)
{
	struct net_dev *dev = opaque;
	struct net_queue *nq;

	if (q->index >= dev->nr_queues)
		return;
	nq = &dev->queues[q->index];
	if (!nq->eq)
		return;
	eng_queue_stop(nq->eq);
	nq->eq = NULL;
	nq->q = NULL;
	q->priv = NULL;
	if (nq->kind == NQ_RX && dev->nops->set_pair_active)
		dev->nops->set_pair_active(dev->nd, nq->pair, false);
	log_debug("%s: stopped", nq->name);
}

static void net_set_status(void *opaque, uint8_t status)
{
	struct net_dev *dev = opaque;

	log_debug("%s: status %#x", dev->opts.id, status);
	if (!status) {
		/* Reset (2.1): the filter and pairs go back to their initial state. */
		pthread_mutex_lock(&dev->lock);
		net_ctrl_reset(&dev->ctrl, dev->opts.mac, atomic_load(&dev->features),
			       (uint16_t)dev->opts.pairs);
		dev->ctrl.pairs = (uint16_t)dev->opts.pairs;
		atomic_fetch_add(&dev->conf_gen, 1);
		pthread_mutex_unlock(&dev->lock);
	}
}

static const struct vu_device_ops net_ops = {
	.get_features = net_get_features,
	.set_features = net_set_features,
	.get_protocol_features = net_get_protocol_features,
	.get_config = net_get_config,
	.set_config = net_set_config,
	.start_queue = net_start_queue,
	.send_rarp = net_send_rarp,
	.stop_queue = net_stop_queue,
	.set_status = net_set_status,
};

/* ---- the device --------------------------------------------------------------- */

static const struct netdev_ops *net_backend_ops(enum net_backend_kind k)
{
	switch (k) {
	case NET_BACKEND_NULL:
		return &netdev_null_ops;
	case NET_BACKEND_LOOPBACK:
		return &netdev_loopback_ops;
	case NET_BACKEND_TAP:
		return &netdev_tap_ops;
	case NET_BACKEND_MACVTAP:
		return &netdev_macvtap_ops;
	}
	return NULL;
}

static void net_dev_destroy(struct net_dev *dev)
{
	if (dev->nd)
		dev->nops->close(dev->nd);
	if (dev->inbox)
		netdev_loopback_ops.close(dev->inbox);
	for (unsigned int i = 0; dev->inbox_lock && i < dev->opts.pairs; i++)
		pthread_mutex_destroy(&dev->inbox_lock[i]);
	free(dev->inbox_lock);
	for (unsigned int i = 0; dev->queues && i < dev->nr_queues; i++) {
		free(dev->queues[i].held);
		free(dev->queues[i].tx_iov);
	}
	free(dev->queues);
	pthread_mutex_destroy(&dev->lock);
	free(dev);
}

struct net_dev *net_dev_new(const struct net_options *opts, const struct vu_watch_ops *watch,
			    void *loop, char *err, size_t err_len)
{
	struct netdev_config ncfg = {
		.name = opts->id, .ifname = opts->ifname, .pairs = opts->pairs};
	struct net_dev *dev;

	if (!opts->pairs || opts->pairs > NET_MAX_PAIRS || opts->queue_size < NET_MIN_QUEUE_SIZE ||
	    opts->queue_size > NET_MAX_QUEUE_SIZE) {
		kv_err(err, err_len, "%s: bad queues or queue-size", opts->id);
		return NULL;
	}
	if (opts->io_thread >= 0 && (unsigned int)opts->io_thread >= eng_pool_threads()) {
		kv_err(err, err_len, "%s: io-thread=%d, but there are only %u I/O threads",
		       opts->id, opts->io_thread, eng_pool_threads());
		return NULL;
	}
	dev = calloc(1, sizeof(*dev));
	if (!dev) {
		kv_err(err, err_len, "out of memory");
		return NULL;
	}
	dev->opts = *opts;
	pthread_mutex_init(&dev->lock, NULL);
	atomic_init(&dev->features, 0);
	atomic_init(&dev->conf_gen, 0);
	net_ctrl_reset(&dev->ctrl, opts->mac, 0, (uint16_t)opts->pairs);
	dev->ctrl.pairs = (uint16_t)opts->pairs;
	dev->nops = net_backend_ops(opts->backend);
	if (dev->nops->open(&ncfg, &dev->nd, err, err_len) < 0) {
		dev->nd = NULL;
		net_dev_destroy(dev);
		return NULL;
	}
	dev->be_features = dev->nops->features(dev->nd);
	dev->inbox_lock = calloc(opts->pairs, sizeof(*dev->inbox_lock));
	if (!dev->inbox_lock || netdev_loopback_ops.open(&ncfg, &dev->inbox, err, err_len) < 0) {
		dev->inbox = NULL;
		kv_err(err, err_len, "out of memory");
		net_dev_destroy(dev);
		return NULL;
	}
	for (unsigned int i = 0; i < opts->pairs; i++)
		pthread_mutex_init(&dev->inbox_lock[i], NULL);
	dev->nr_queues = 2 * opts->pairs + 1;
	dev->queues = calloc(dev->nr_queues, sizeof(*dev->queues));
	if (!dev->queues) {
		kv_err(err, err_len, "out of memory");
		net_dev_destroy(dev);
		return NULL;
	}
	for (unsigned int i = 0; i < dev->nr_queues; i++) {
		struct net_queue *nq = &dev->queues[i];

		nq->dev = dev;
		nq->index = i;
		nq->pair = i / 2;
		atomic_init(&nq->thread, -1);
		if (i == dev->nr_queues - 1) {
			nq->kind = NQ_CTRL;
			snprintf(nq->name, sizeof(nq->name), "%s:ctrl", opts->id);
		} else {
			nq->kind = i % 2 ? NQ_TX : NQ_RX;
			snprintf(nq->name, sizeof(nq->name), "%s:%s%u", opts->id,
				 i % 2 ? "tx" : "rx", nq->pair);
		}
		if (nq->kind == NQ_TX) {
			nq->tx_iov = calloc(NET_MAX_IOV + 1, sizeof(*nq->tx_iov));
			if (!nq->tx_iov) {
				kv_err(err, err_len, "out of memory");
				net_dev_destroy(dev);
				return NULL;
			}
		}
	}
	dev->vu = eng_dev_vu_new(&ENG_DEV_FIELDS(&dev->opts), dev->nr_queues, opts->queue_size,
				 &net_ops, dev, watch, loop, err, err_len);
	if (!dev->vu) {
		net_dev_destroy(dev);
		return NULL;
	}
	log_info("%s: %s back-end%s%s, %u queue pair(s) of up to %u, mac "
		 "%02x:%02x:%02x:%02x:%02x:%02x",
		 opts->id, net_backend_name(opts->backend), opts->ifname[0] ? " on " : "",
		 opts->ifname, opts->pairs, opts->queue_size, opts->mac[0], opts->mac[1],
		 opts->mac[2], opts->mac[3], opts->mac[4], opts->mac[5]);
	return dev;
}

void net_dev_free(struct net_dev *dev)
{
	if (!dev)
		return;
	vu_dev_free(dev->vu);
	net_dev_destroy(dev);
}

const char *net_dev_id(const struct net_dev *dev)
{
	return dev->opts.id;
}

const struct net_options *net_dev_options(const struct net_dev *dev)
{
	return &dev->opts;
}

bool net_dev_connected(const struct net_dev *dev)
{
	return vu_dev_connected(dev->vu);
}

bool net_dev_active(const struct net_dev *dev)
{
	/* Queues start and stop on the loop's thread, as this runs: no race. */
	for (unsigned int i = 0; i < dev->nr_queues; i++) {
		if (dev->queues[i].eq)
			return true;
	}
	return false;
}

unsigned int net_dev_nr_queues(const struct net_dev *dev)
{
	return dev->nr_queues;
}

void net_dev_queue_stats(struct net_dev *dev, unsigned int i, struct net_queue_stats *st)
{
	const struct net_queue *nq = &dev->queues[i];
	const struct net_qstats *s = &nq->st;
	const char *colon = strrchr(nq->name, ':');

	memset(st, 0, sizeof(*st));
	snprintf(st->name, sizeof(st->name), "%.7s", colon ? colon + 1 : nq->name);
	st->packets = atomic_load_explicit(&s->packets, memory_order_relaxed);
	st->bytes = atomic_load_explicit(&s->bytes, memory_order_relaxed);
	st->no_buffers = atomic_load_explicit(&s->no_buffers, memory_order_relaxed);
	st->steered = atomic_load_explicit(&s->steered, memory_order_relaxed);
	for (int d = 0; d < NET_DROP__COUNT; d++)
		st->drops[d] = atomic_load_explicit(&s->drops[d], memory_order_relaxed);
	st->kicks = atomic_load_explicit(&s->ec.kicks, memory_order_relaxed);
	st->notifies = atomic_load_explicit(&s->ec.notifies, memory_order_relaxed);
}

uint64_t net_dev_kernel_drops(struct net_dev *dev)
{
	return dev->nops->kernel_drops ? dev->nops->kernel_drops(dev->nd) : 0;
}

struct vu_dev *net_dev_vu(struct net_dev *dev)
{
	return dev->vu;
}
