// SPDX-License-Identifier: MIT
/*
 * loopback.c - each pair's tx frames come back on the same pair's rx, for
 * measuring both directions with one front-end.
 *
 * A pair is a single-producer single-consumer ring of LB_SLOTS frames
 * (the tx virtqueue's thread produces, the rx virtqueue's consumes; they
 * may be different threads).  Slots are LB_SLOT_SIZE bytes, contiguous,
 * so that small frames stay within a few pages (a slot per 64 KiB cost a
 * TLB miss per frame); a larger frame goes to a buffer of its slot's own,
 * allocated on first need and kept.  A full ring drops the frame, as a
 * NIC whose receiver is not keeping up does; the device counts it.
 *
 * Waking the receiver: before it sleeps on its eventfd it sets @sleeping
 * and looks at the ring once more; the producer writes the eventfd at
 * the end of a burst only if @sleeping was set (seq_cst on both sides, so
 * one of them always sees the other: no lost wake-up, and no system call
 * per frame while the receiver is busy).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/kvopts.h"
#include "devices/net_proto.h"
#include "devices/virtio_net.h"
#include "netdev.h"

#define LB_SLOTS     256
#define LB_SLOT_SIZE 2048 /* header and a 1514-byte frame, with room */
#define LB_BIG_SIZE  (NETDEV_HDR_LEN + NET_MAX_FRAME)

struct lb_slot {
	size_t len;
	uint8_t *big; /* frames above the slot's own room */
	uint8_t data[LB_SLOT_SIZE - 16];
};

struct lb_pair {
	_Alignas(64) atomic_uint head; /* next to consume (consumer writes) */
	_Alignas(64) atomic_uint tail; /* next to fill (producer writes) */
	atomic_bool sleeping;
	/*
	 * Wake-ups written to efd, counted after each write; wakes_seen (the
	 * consumer's) is what it had counted before its last read of efd.
	 * Equal while it sleeps: efd holds nothing, and an empty peek needs
	 * no read() to clear it (one syscall per run of a queue that is
	 * served without its poll: the inbox, a same-thread loopback).
	 */
	atomic_uint wakes;
	unsigned int wakes_seen;
	bool produced; /* since the last flush (producer only) */
	int efd;
	struct lb_slot *slots;
};

struct netdev {
	unsigned int pairs;
	struct lb_pair *p;
};

static void lb_close(struct netdev *nd)
{
	for (unsigned int i = 0; i < nd->pairs; i++) {
		if (nd->p[i].efd >= 0)
			close(nd->p[i].efd);
		for (unsigned int j = 0; nd->p[i].slots && j < LB_SLOTS; j++)
			free(nd->p[i].slots[j].big);
		free(nd->p[i].slots);
	}
	free(nd->p);
	free(nd);
}

static int lb_open(const struct netdev_config *cfg, struct netdev **out, char *err, size_t err_len)
{
	struct netdev *nd = calloc(1, sizeof(*nd));

	if (!nd)
		return kv_err(err, err_len, "out of memory");
	nd->p = calloc(cfg->pairs, sizeof(*nd->p));
	if (!nd->p) {
		free(nd);
		return kv_err(err, err_len, "out of memory");
	}
	nd->pairs = cfg->pairs;
	for (unsigned int i = 0; i < cfg->pairs; i++)
		nd->p[i].efd = -1;
	for (unsigned int i = 0; i < cfg->pairs; i++) {
		struct lb_pair *lp = &nd->p[i];

		lp->slots = calloc(LB_SLOTS, sizeof(*lp->slots));
		lp->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (!lp->slots || lp->efd < 0) {
			lb_close(nd);
			return kv_err(err, err_len, "loopback: out of memory or eventfds");
		}
		atomic_init(&lp->head, 0);
		atomic_init(&lp->tail, 0);
		atomic_init(&lp->sleeping, false);
		atomic_init(&lp->wakes, 0);
	}
	*out = nd;
	return 0;
}

/* Frames come back as they went: whatever the sender may offload, the receiver gets. */
static uint64_t lb_features(struct netdev *nd)
{
	return 1ull << VIRTIO_NET_F_CSUM | 1ull << VIRTIO_NET_F_GUEST_CSUM |
	       1ull << VIRTIO_NET_F_HOST_TSO4 | 1ull << VIRTIO_NET_F_HOST_TSO6 |
	       1ull << VIRTIO_NET_F_HOST_ECN | 1ull << VIRTIO_NET_F_GUEST_TSO4 |
	       1ull << VIRTIO_NET_F_GUEST_TSO6 | 1ull << VIRTIO_NET_F_GUEST_ECN;
}

static int lb_rx_fd(struct netdev *nd, unsigned int p)
{
	return nd->p[p].efd;
}

static ssize_t lb_peek(struct netdev *nd, unsigned int p, uint8_t **pkt)
{
	struct lb_pair *lp = &nd->p[p];
	unsigned int head = atomic_load_explicit(&lp->head, memory_order_relaxed);
	struct lb_slot *s;
	uint64_t v;

	if (head == atomic_load_explicit(&lp->tail, memory_order_acquire)) {
		unsigned int wakes = atomic_load(&lp->wakes);

		/* Asleep already, and nobody woke us since: nothing to clear. */
		if (atomic_load_explicit(&lp->sleeping, memory_order_relaxed) &&
		    wakes == lp->wakes_seen)
			return -EAGAIN;
		/* Going to sleep: say so, clear the eventfd, look once more. */
		atomic_store(&lp->sleeping, true);
		lp->wakes_seen = wakes;
		if (read(lp->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			return -errno;
		if (head == atomic_load(&lp->tail))
			return -EAGAIN;
	}
	atomic_store_explicit(&lp->sleeping, false, memory_order_relaxed);
	s = &lp->slots[head % LB_SLOTS];
	*pkt = s->len > sizeof(s->data) ? s->big : s->data;
	return (ssize_t)s->len;
}

static void lb_consume(struct netdev *nd, unsigned int p)
{
	struct lb_pair *lp = &nd->p[p];
	unsigned int head = atomic_load_explicit(&lp->head, memory_order_relaxed);

	/* The only writer of head: a plain store, no locked instruction. */
	atomic_store_explicit(&lp->head, head + 1, memory_order_release);
}

static int lb_send(struct netdev *nd, unsigned int p, const struct iovec *iov, unsigned int cnt)
{
	struct lb_pair *lp = &nd->p[p];
	unsigned int tail = atomic_load_explicit(&lp->tail, memory_order_relaxed);
	struct lb_slot *s;
	size_t len = 0, total = 0;
	uint8_t *dst;

	if (tail - atomic_load_explicit(&lp->head, memory_order_acquire) >= LB_SLOTS)
		return -ENOBUFS;
	for (unsigned int i = 0; i < cnt; i++)
		total += iov[i].iov_len;
	if (total > LB_BIG_SIZE)
		return -EMSGSIZE;
	s = &lp->slots[tail % LB_SLOTS];
	dst = s->data;
	if (total > sizeof(s->data)) {
		if (!s->big)
			s->big = malloc(LB_BIG_SIZE);
		if (!s->big)
			return -ENOMEM;
		dst = s->big;
	}
	for (unsigned int i = 0; i < cnt; i++) {
		memcpy(dst + len, iov[i].iov_base, iov[i].iov_len);
		len += iov[i].iov_len;
	}
	s->len = len;
	atomic_store_explicit(&lp->tail, tail + 1, memory_order_release);
	lp->produced = true;
	return 0;
}

/* Wake the consumer: write its eventfd, then count the wake-up (lb_peek). */
static void lb_signal(struct lb_pair *lp)
{
	if (eventfd_write(lp->efd, 1) < 0) {
		/* Our own eventfd, read on every sleep: it cannot be full. */
	}
	/* After the write: a reader that sees the count reads it away. */
	atomic_fetch_add(&lp->wakes, 1);
}

static void lb_flush(struct netdev *nd, unsigned int p)
{
	struct lb_pair *lp = &nd->p[p];

	if (!lp->produced)
		return;
	lp->produced = false;
	/* Pairs with the receiver's store to sleeping and its re-check of tail. */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load(&lp->sleeping))
		lb_signal(lp);
}

static void lb_wake(struct netdev *nd, unsigned int p)
{
	lb_signal(&nd->p[p]);
}

const struct netdev_ops netdev_loopback_ops = {
	.wake = lb_wake,
	.kind = "loopback",
	.open = lb_open,
	.close = lb_close,
	.features = lb_features,
	.rx_fd = lb_rx_fd,
	.peek = lb_peek,
	.consume = lb_consume,
	.send = lb_send,
	.flush = lb_flush,
};
