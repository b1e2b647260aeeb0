// SPDX-License-Identifier: MIT
/*
 * test_net_device.c - the virtio-net device end to end in one process: a
 * net_dev served by a small event-loop thread and driven over its
 * vhost-user socket by our front-end (frontend.h), as a guest driver
 * would, on split and packed rings, over the loopback and null back-ends.
 *
 * Frames sent on a pair's tx queue come back on its rx queue (loopback)
 * and are compared byte for byte: small, MTU-sized, jumbo and 64 KiB
 * frames, through mergeable buffers (num_buffers checked) and through big
 * buffers.  Then: malformed tx headers and bad sizes are dropped and
 * counted while the queue keeps working; the control queue's receive
 * filter (promiscuous, MAC tables, all-unicast, no-broadcast, VLANs,
 * CTRL_MAC_ADDR) decides what arrives; a partial checksum is finished
 * for a guest without GUEST_CSUM; frames wait (and are counted as such)
 * while the guest has no rx buffers and arrive after the next kick; a
 * second pair carries its own traffic; the null back-end counts what it
 * swallows; and a hostile chain breaks the device, not the process.
 *
 * A filtered frame is followed by a marker frame that must pass: the
 * marker arriving first proves the other was dropped, with no timeout.
 */
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "common/evloop.h"
#include "common/log.h"
#include "devices/net.h"
#include "devices/virtio_net.h"
#include "vhost-user/frontend.h"
#include "virtq/ring.h"

#define QSIZE	   256
#define RX_BUFS	   128 /* per pair */
#define MRG_BUF	   1536
#define BIG_BUF	   (20 + 65536)
#define TX_BUFS	   32
#define TX_BUF	   (12 + 65536 + 64)
#define MAX_PAIRS  2
#define ETH_P_TEST 0x88b5 /* IEEE local experimental */

static const uint8_t dev_mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
static const uint8_t other_mac[6] = {0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc};
static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
static const uint8_t mcast[6] = {0x01, 0x00, 0x5e, 0x00, 0x00, 0x01};

struct ctx {
	struct evloop *loop;
	pthread_t thread;
	struct net_dev *dev;
	struct vu_fe *fe;
	char sock[108];
	bool mrg;
	unsigned int hl; /* header: 12, or 20 with HASH_REPORT */
	unsigned int pairs;
	size_t rx_size;
	uint8_t *rx[MAX_PAIRS]; /* RX_BUFS buffers of rx_size */
	uint8_t *tx[MAX_PAIRS]; /* TX_BUFS buffers of TX_BUF */
	bool tx_busy[MAX_PAIRS][TX_BUFS];
	uint8_t *ctrl;	      /* a command and its ack */
	uint8_t frame[70000]; /* scratch */
	uint8_t got[70000];
	uint64_t gpa_base; /* 0: guest-physical = our addresses */
};

static void *loop_main(void *arg)
{
	evloop_run(arg);
	return NULL;
}

static unsigned int rxq(unsigned int p)
{
	return 2 * p;
}

static unsigned int txq(unsigned int p)
{
	return 2 * p + 1;
}

static uint64_t addr(struct ctx *c, const void *p)
{
	return vu_fe_addr(c->fe, p);
}

static void post_rx_buf(struct ctx *c, unsigned int p, unsigned int i)
{
	struct virtq_sg sg = {addr(c, c->rx[p] + (size_t)i * c->rx_size), (uint32_t)c->rx_size};

	CHECK_EQ(virtq_drv_add_sgs(vu_fe_queue(c->fe, rxq(p)), &sg, 0, 1,
				   (void *)(uintptr_t)(i + 1)),
		 0);
}

static void post_rx(struct ctx *c, unsigned int p, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		post_rx_buf(c, p, i);
	CHECK(vu_fe_kick(c->fe, rxq(p)) >= 0);
}

static void dev_start(struct ctx *c, const char *backend, unsigned int pairs, bool packed,
		      uint64_t drop_features, bool fill_rx)
{
	struct net_options o;
	struct vu_fe_config fcfg;
	char spec[512], err[256];
	static int serial;
	uint64_t want;

	memset(c->tx_busy, 0, sizeof(c->tx_busy));
	c->pairs = pairs;
	snprintf(c->sock, sizeof(c->sock), "/tmp/vhd-net-%d-%d.sock", (int)getpid(), serial++);
	unlink(c->sock);
	/* "loopback", or a whole option such as "tap=IF". */
	snprintf(spec, sizeof(spec),
		 "id=n%d,socket=%s,%s%s,queues=%u,queue-size=%d,mac=52:54:00:12:34:56", serial,
		 c->sock, strchr(backend, '=') ? "" : "backend=", backend, pairs, QSIZE);
	if (net_options_parse(spec, &o, err, sizeof(err)))
		FAIL("options: %s", err);
	c->loop = evloop_new();
	CHECK(c->loop);
	c->dev = net_dev_new(&o, &vu_evloop_watch_ops, c->loop, err, sizeof(err));
	if (!c->dev)
		FAIL("net_dev_new: %s", err);
	CHECK_EQ(pthread_create(&c->thread, NULL, loop_main, c->loop), 0);

	want = ~0ull & ~drop_features;
	if (!packed)
		want &= ~(1ull << VIRTIO_F_RING_PACKED);
	fcfg = (struct vu_fe_config){
		.socket_path = c->sock,
		.mem_size = 48u << 20,
		.queue_size = QSIZE,
		.features = want,
		.indirect_max = 8,
		.gpa_base = c->gpa_base,
	};
	c->fe = vu_fe_connect(&fcfg);
	if (!c->fe)
		FAIL("vu_fe_connect: %s", strerror(errno));
	CHECK_EQ(vu_fe_num_queues(c->fe), 2 * pairs + 1);
	c->mrg = vu_fe_features(c->fe) & (1ull << VIRTIO_NET_F_MRG_RXBUF);
	c->hl = vu_fe_features(c->fe) & (1ull << VIRTIO_NET_F_HASH_REPORT) ? 20 : 12;
	CHECK_EQ(!!(vu_fe_features(c->fe) & (1ull << VIRTIO_F_RING_PACKED)), packed);
	c->rx_size = c->mrg ? MRG_BUF : BIG_BUF;
	for (unsigned int p = 0; p < pairs; p++) {
		c->rx[p] = vu_fe_alloc(c->fe, RX_BUFS * c->rx_size, 64);
		c->tx[p] = vu_fe_alloc(c->fe, (size_t)TX_BUFS * TX_BUF, 64);
		CHECK(c->rx[p] && c->tx[p]);
		if (fill_rx)
			post_rx(c, p, c->mrg ? RX_BUFS : 8);
	}
	c->ctrl = vu_fe_alloc(c->fe, 4096, 64);
	CHECK(c->ctrl);
}

static void dev_stop(struct ctx *c)
{
	vu_fe_disconnect(c->fe);
	evloop_stop(c->loop);
	pthread_join(c->thread, NULL);
	net_dev_free(c->dev);
	evloop_free(c->loop);
	unlink(c->sock);
}

/* Reclaim finished tx buffers; returns a free one (waiting if needed). */
static unsigned int tx_slot(struct ctx *c, unsigned int p)
{
	struct virtq_drv *vq = vu_fe_queue(c->fe, txq(p));

	for (;;) {
		void *t;

		while ((t = virtq_drv_get_buf(vq, NULL)))
			c->tx_busy[p][(uintptr_t)t - 1] = false;
		for (unsigned int i = 0; i < TX_BUFS; i++) {
			if (!c->tx_busy[p][i])
				return i;
		}
		if (virtq_drv_enable_cb(vq))
			CHECK_MSG(vu_fe_wait_call(c->fe, txq(p), 5000) == 1,
				  "tx completions stuck");
	}
}

/* Send header + frame as one buffer (or @split: header and frame apart). */
static void send_frame(struct ctx *c, unsigned int p, const struct virtio_net_hdr *h,
		       const void *frame, size_t len, bool split)
{
	unsigned int i = tx_slot(c, p);
	uint8_t *b = c->tx[p] + (size_t)i * TX_BUF;
	struct virtq_sg sg[2];

	memset(b, 0x77, c->hl); /* the hash fields of a tx header are the driver's junk */
	memcpy(b, h, sizeof(*h));
	memcpy(b + 64, frame, len);
	if (split) {
		sg[0] = (struct virtq_sg){addr(c, b), c->hl};
		sg[1] = (struct virtq_sg){addr(c, b + 64), (uint32_t)len};
	} else {
		memmove(b + c->hl, b + 64, len);
		sg[0] = (struct virtq_sg){addr(c, b), (uint32_t)(c->hl + len)};
	}
	c->tx_busy[p][i] = true;
	CHECK_EQ(virtq_drv_add_sgs(vu_fe_queue(c->fe, txq(p)), sg, split ? 2 : 1, 0,
				   (void *)(uintptr_t)(i + 1)),
		 0);
	CHECK(vu_fe_kick(c->fe, txq(p)) >= 0);
}

static void send_plain(struct ctx *c, unsigned int p, const void *frame, size_t len)
{
	struct virtio_net_hdr h = {0};

	send_frame(c, p, &h, frame, len, false);
}

/* The next used rx buffer of pair @p: its index, or -1 after @ms. */
static int next_rx(struct ctx *c, unsigned int p, uint32_t *len, int ms)
{
	struct virtq_drv *vq = vu_fe_queue(c->fe, rxq(p));

	for (;;) {
		void *t = virtq_drv_get_buf(vq, len);

		if (t)
			return (int)((uintptr_t)t - 1);
		if (!virtq_drv_enable_cb(vq))
			continue;
		if (vu_fe_wait_call(c->fe, rxq(p), ms) != 1)
			return -1;
	}
}

/*
 * Receive one frame on pair @p into c->got (header into *@h): its length,
 * or -1 if none came within @ms.  Buffers go back to the ring.
 */
static struct virtio_net_hdr_v1_hash last_hh; /* the last frame's whole header */

static long recv_frame(struct ctx *c, unsigned int p, struct virtio_net_hdr *h, int ms)
{
	uint32_t len;
	int i = next_rx(c, p, &len, ms);
	unsigned int nbufs, hl = c->hl;
	size_t total;

	if (i < 0)
		return -1;
	CHECK(len >= hl);
	memcpy(&last_hh, c->rx[p] + (size_t)i * c->rx_size, hl);
	*h = last_hh.hdr;
	total = len - hl;
	memcpy(c->got, c->rx[p] + (size_t)i * c->rx_size + hl, total);
	post_rx_buf(c, p, (unsigned int)i);
	nbufs = le16toh(h->num_buffers);
	CHECK_MSG(nbufs >= 1 && (c->mrg || nbufs == 1), "num_buffers %u", nbufs);
	for (unsigned int b = 1; b < nbufs; b++) {
		i = next_rx(c, p, &len, 5000);
		CHECK_MSG(i >= 0, "buffer %u of %u missing", b + 1, nbufs);
		CHECK(total + len <= sizeof(c->got));
		memcpy(c->got + total, c->rx[p] + (size_t)i * c->rx_size, len);
		total += len;
		post_rx_buf(c, p, (unsigned int)i);
	}
	CHECK(vu_fe_kick(c->fe, rxq(p)) >= 0);
	return (long)total;
}

static size_t make_frame(uint8_t *f, const uint8_t *dst, size_t len, uint32_t seq)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, other_mac, 6);
	f[12] = ETH_P_TEST >> 8;
	f[13] = ETH_P_TEST & 0xff;
	for (size_t i = 14; i < len; i++)
		f[i] = (uint8_t)(seq * 7 + i * 13);
	memcpy(f + 14, &seq, sizeof(seq));
	return len;
}

/* Send a frame and expect it back unchanged on the same pair. */
static void echo(struct ctx *c, unsigned int p, size_t len, uint32_t seq, bool split)
{
	struct virtio_net_hdr h = {0};
	long n;

	make_frame(c->frame, dev_mac, len, seq);
	send_frame(c, p, &h, c->frame, len, split);
	n = recv_frame(c, p, &h, 5000);
	CHECK_MSG(n >= 0, "frame %u (%zu bytes) did not come back", seq, len);
	CHECK_EQ(n, len);
	CHECK_MSG(!memcmp(c->got, c->frame, len), "frame %u corrupted", seq);
	if (c->mrg)
		CHECK_EQ(le16toh(h.num_buffers), (len + c->hl + MRG_BUF - 1) / MRG_BUF);
}

/* Send a frame the filter or the header check should drop, then a marker that passes. */
static void expect_dropped(struct ctx *c, unsigned int p, const struct virtio_net_hdr *bad_h,
			   const uint8_t *dst, size_t len)
{
	struct virtio_net_hdr h = {0};
	uint32_t marker = 0x4d41524b;
	long n;

	make_frame(c->frame, dst, len, 1);
	send_frame(c, p, bad_h ? bad_h : &h, c->frame, len, false);
	make_frame(c->frame, dev_mac, 100, marker);
	send_plain(c, p, c->frame, 100);
	n = recv_frame(c, p, &h, 5000);
	CHECK_EQ(n, 100);
	CHECK_MSG(!memcmp(c->got + 14, &marker, 4), "a frame that should be dropped arrived");
}

static void expect_passes(struct ctx *c, unsigned int p, const uint8_t *dst)
{
	struct virtio_net_hdr h = {0};

	make_frame(c->frame, dst, 80, 77);
	send_plain(c, p, c->frame, 80);
	CHECK_EQ(recv_frame(c, p, &h, 5000), 80);
	CHECK(!memcmp(c->got, c->frame, 80));
}

/* One control command; returns the ack. */
static uint8_t ctrl_cmd(struct ctx *c, uint8_t class, uint8_t cmd, const void *data, size_t len)
{
	unsigned int q = 2 * c->pairs;
	struct virtq_drv *vq = vu_fe_queue(c->fe, q);
	uint8_t *ack = c->ctrl + 2048;
	struct virtq_sg sg[3];
	static int token;
	uint32_t used;
	void *t;

	c->ctrl[0] = class;
	c->ctrl[1] = cmd;
	if (len)
		memcpy(c->ctrl + 2, data, len);
	*ack = 0xee;
	sg[0] = (struct virtq_sg){addr(c, c->ctrl), 2};
	sg[1] = (struct virtq_sg){addr(c, c->ctrl + 2), (uint32_t)len};
	sg[2] = (struct virtq_sg){addr(c, ack), 1};
	if (len)
		CHECK_EQ(virtq_drv_add_sgs(vq, sg, 2, 1, &token), 0);
	else
		CHECK_EQ(virtq_drv_add_sgs(vq, (struct virtq_sg[]){sg[0], sg[2]}, 1, 1, &token), 0);
	CHECK(vu_fe_kick(c->fe, q) >= 0);
	while (!(t = virtq_drv_get_buf(vq, &used))) {
		if (virtq_drv_enable_cb(vq))
			CHECK_MSG(vu_fe_wait_call(c->fe, q, 5000) == 1, "control command stuck");
	}
	CHECK(t == &token);
	CHECK_EQ(used, 1);
	return *ack;
}

static uint8_t ctrl_bool(struct ctx *c, uint8_t cmd, bool on)
{
	uint8_t v = on;

	return ctrl_cmd(c, VIRTIO_NET_CTRL_RX, cmd, &v, 1);
}

static void stats(struct ctx *c, unsigned int q, struct net_queue_stats *st)
{
	net_dev_queue_stats(c->dev, q, st);
}

/* ---- cases --------------------------------------------------------------------- */

static void run_config(bool packed)
{
	struct ctx *c = calloc(1, sizeof(*c));
	struct virtio_net_config cfg;

	dev_start(c, "loopback", 2, packed, 0, false);
	CHECK_EQ(vu_fe_get_config(c->fe, &cfg, sizeof(cfg)), 0);
	CHECK(!memcmp(cfg.mac, dev_mac, 6));
	CHECK_EQ(le16toh(cfg.status), VIRTIO_NET_S_LINK_UP);
	CHECK_EQ(le16toh(cfg.max_virtqueue_pairs), 2);
	for (unsigned int b = 0; b < 24; b++) {
		/* Not defined (4, 6), MTU without mtu=, UFO (the kernel's tap has none). */
		if (b == 3 || b == 4 || b == 6 || b == 10 || b == 14)
			continue;
		if ((0x00ffffbfull >> b) & 1)
			CHECK_MSG(vu_fe_features(c->fe) & (1ull << b), "feature %u not offered", b);
	}
	CHECK(!(vu_fe_features(c->fe) & (1ull << VIRTIO_NET_F_MTU)));
	dev_stop(c);
	free(c);
}

static void run_echo(bool packed, bool mrg)
{
	struct ctx *c = calloc(1, sizeof(*c));
	static const size_t sizes[] = {60, 64, 1514, 1536 - 12, 1536 - 11, 9014, 65536, 200, 14};

	dev_start(c, "loopback", 1, packed, mrg ? 0 : 1ull << VIRTIO_NET_F_MRG_RXBUF, true);
	CHECK_EQ(c->mrg, mrg);
	for (unsigned int i = 0; i < ARRAY_SIZE(sizes); i++)
		echo(c, 0, sizes[i], i, i % 2);
	/* A burst larger than the ring: every frame back, in order. */
	for (uint32_t s = 0; s < 600; s++) {
		struct virtio_net_hdr h;

		make_frame(c->frame, dev_mac, 60 + s % 1400, s);
		send_plain(c, 0, c->frame, 60 + s % 1400);
		if (s % 16 == 15 || s == 599) {
			for (uint32_t k = s - (s % 16); k <= s; k++) {
				long n = recv_frame(c, 0, &h, 5000);

				CHECK_EQ(n, 60 + k % 1400);
				CHECK(!memcmp(c->got + 14, &k, 4));
			}
		}
	}
	{
		struct net_queue_stats st;

		stats(c, txq(0), &st);
		CHECK_EQ(st.packets, ARRAY_SIZE(sizes) + 600);
		CHECK(st.kicks > 0);
		stats(c, rxq(0), &st);
		CHECK_EQ(st.packets, ARRAY_SIZE(sizes) + 600);
		CHECK(st.notifies > 0);
		for (int d = 0; d < NET_DROP__COUNT; d++)
			CHECK_EQ(st.drops[d], 0);
	}
	dev_stop(c);
	free(c);
}

/* Without mergeable buffers, a frame larger than a buffer is dropped, the buffer kept. */
static void run_small_big_buffer(void)
{
	struct ctx *c = calloc(1, sizeof(*c));
	struct net_queue_stats st;

	dev_start(c, "loopback", 1, false, 1ull << VIRTIO_NET_F_MRG_RXBUF, false);
	/* Post 4 buffers of 1000 bytes (rx_size stays BIG_BUF apart: any slice will do). */
	for (unsigned int i = 0; i < 4; i++) {
		struct virtq_sg sg = {addr(c, c->rx[0] + (size_t)i * c->rx_size), 1000};

		CHECK_EQ(virtq_drv_add_sgs(vu_fe_queue(c->fe, rxq(0)), &sg, 0, 1,
					   (void *)(uintptr_t)(i + 1)),
			 0);
	}
	CHECK(vu_fe_kick(c->fe, rxq(0)) >= 0);
	make_frame(c->frame, dev_mac, 1500, 5);
	send_plain(c, 0, c->frame, 1500);
	make_frame(c->frame, dev_mac, 900, 6);
	send_plain(c, 0, c->frame, 900);
	{
		struct virtio_net_hdr h;
		uint32_t len;
		int i = next_rx(c, 0, &len, 5000);

		CHECK(i >= 0);
		CHECK_EQ(len, 900 + c->hl);
		memcpy(&h, c->rx[0] + (size_t)i * c->rx_size, 12);
		CHECK_EQ(le16toh(h.num_buffers), 1);
		CHECK(!memcmp(c->rx[0] + (size_t)i * c->rx_size + c->hl, c->frame, 900));
	}
	stats(c, rxq(0), &st);
	CHECK_EQ(st.drops[NET_DROP_NO_ROOM], 1);
	dev_stop(c);
	free(c);
}

static void run_bad_tx(bool packed)
{
	struct ctx *c = calloc(1, sizeof(*c));
	struct virtio_net_hdr h;
	struct net_queue_stats st;
	uint64_t no_csum = 1ull << VIRTIO_NET_F_CSUM | 1ull << VIRTIO_NET_F_HOST_TSO4 |
			   1ull << VIRTIO_NET_F_HOST_TSO6 | 1ull << VIRTIO_NET_F_HOST_ECN;

	dev_start(c, "loopback", 1, packed, no_csum, true);
	/* NEEDS_CSUM without VIRTIO_NET_F_CSUM. */
	h = (struct virtio_net_hdr){.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
				    .csum_start = htole16(14),
				    .csum_offset = htole16(6)};
	expect_dropped(c, 0, &h, dev_mac, 100);
	/* GSO without HOST_TSO4. */
	h = (struct virtio_net_hdr){.gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
				    .gso_size = htole16(1448)};
	expect_dropped(c, 0, &h, dev_mac, 100);
	/* Flags the driver may not send, an unknown GSO type, ECN alone. */
	h = (struct virtio_net_hdr){.flags = VIRTIO_NET_HDR_F_DATA_VALID};
	expect_dropped(c, 0, &h, dev_mac, 100);
	h = (struct virtio_net_hdr){.gso_type = 0x42};
	expect_dropped(c, 0, &h, dev_mac, 100);
	h = (struct virtio_net_hdr){.gso_type = VIRTIO_NET_HDR_GSO_ECN};
	expect_dropped(c, 0, &h, dev_mac, 100);
	/* A runt and a frame over 64 KiB. */
	expect_dropped(c, 0, NULL, dev_mac, 13);
	expect_dropped(c, 0, NULL, dev_mac, 65537);
	stats(c, txq(0), &st);
	CHECK_EQ(st.drops[NET_DROP_BAD_HEADER], 5);
	CHECK_EQ(st.drops[NET_DROP_OVERSIZE], 2);
	/* A chain shorter than the header. */
	{
		unsigned int i = tx_slot(c, 0);
		struct virtq_sg sg = {addr(c, c->tx[0] + (size_t)i * TX_BUF), 5};

		c->tx_busy[0][i] = true;
		CHECK_EQ(virtq_drv_add_sgs(vu_fe_queue(c->fe, txq(0)), &sg, 1, 0,
					   (void *)(uintptr_t)(i + 1)),
			 0);
		CHECK(vu_fe_kick(c->fe, txq(0)) >= 0);
	}
	expect_passes(c, 0, dev_mac);
	stats(c, txq(0), &st);
	CHECK_EQ(st.drops[NET_DROP_BAD_HEADER], 6);
	dev_stop(c);
	free(c);
}

static void run_filter(bool packed)
{
	struct ctx *c = calloc(1, sizeof(*c));
	uint8_t table[4 + 6 + 4 + 12];
	uint32_t n;
	uint16_t vid;
	struct net_queue_stats st;

	dev_start(c, "loopback", 1, packed, 0, true);
	/* Promiscuous after reset: anything goes. */
	expect_passes(c, 0, other_mac);
	CHECK_EQ(ctrl_bool(c, VIRTIO_NET_CTRL_RX_PROMISC, false), VIRTIO_NET_OK);
	expect_dropped(c, 0, NULL, other_mac, 60);
	expect_passes(c, 0, bcast);
	expect_dropped(c, 0, NULL, mcast, 60);
	/* Unicast table with other_mac, multicast table with mcast and one more. */
	n = htole32(1);
	memcpy(table, &n, 4);
	memcpy(table + 4, other_mac, 6);
	n = htole32(2);
	memcpy(table + 10, &n, 4);
	memcpy(table + 14, mcast, 6);
	memcpy(table + 20, mcast, 6);
	table[25] = 2;
	CHECK_EQ(ctrl_cmd(c, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, table,
			  sizeof(table)),
		 VIRTIO_NET_OK);
	expect_passes(c, 0, other_mac);
	expect_passes(c, 0, mcast);
	/* A torn table is refused and changes nothing. */
	CHECK_EQ(ctrl_cmd(c, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, table,
			  sizeof(table) - 1),
		 VIRTIO_NET_ERR);
	expect_passes(c, 0, other_mac);
	/* Empty tables again: other_mac dropped; ALLUNI lets it through. */
	memset(table, 0, 8);
	CHECK_EQ(ctrl_cmd(c, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, table, 8),
		 VIRTIO_NET_OK);
	expect_dropped(c, 0, NULL, other_mac, 60);
	CHECK_EQ(ctrl_bool(c, VIRTIO_NET_CTRL_RX_ALLUNI, true), VIRTIO_NET_OK);
	expect_passes(c, 0, other_mac);
	CHECK_EQ(ctrl_bool(c, VIRTIO_NET_CTRL_RX_ALLUNI, false), VIRTIO_NET_OK);
	CHECK_EQ(ctrl_bool(c, VIRTIO_NET_CTRL_RX_ALLMULTI, true), VIRTIO_NET_OK);
	expect_passes(c, 0, mcast);
	CHECK_EQ(ctrl_bool(c, VIRTIO_NET_CTRL_RX_NOMULTI, true), VIRTIO_NET_OK);
	expect_dropped(c, 0, NULL, mcast, 60);
	CHECK_EQ(ctrl_bool(c, VIRTIO_NET_CTRL_RX_NOBCAST, true), VIRTIO_NET_OK);
	expect_dropped(c, 0, NULL, bcast, 60);
	CHECK_EQ(ctrl_bool(c, VIRTIO_NET_CTRL_RX_NOBCAST, false), VIRTIO_NET_OK);
	expect_passes(c, 0, bcast);
	/* CTRL_MAC_ADDR: the device's own address moves. */
	CHECK_EQ(ctrl_cmd(c, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, other_mac, 6),
		 VIRTIO_NET_OK);
	expect_passes(c, 0, other_mac);
	{
		struct virtio_net_config cfg;

		CHECK_EQ(vu_fe_get_config(c->fe, &cfg, sizeof(cfg)), 0);
		CHECK(!memcmp(cfg.mac, other_mac, 6));
	}
	make_frame(c->frame, dev_mac, 60, 3);
	/* dev_mac is no longer ours: the marker must use other_mac, so check by hand. */
	CHECK_EQ(ctrl_cmd(c, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, dev_mac, 6),
		 VIRTIO_NET_OK);
	/* VLAN filter: a tagged frame needs its vid. */
	make_frame(c->frame, dev_mac, 80, 9);
	c->frame[12] = 0x81;
	c->frame[13] = 0x00;
	c->frame[14] = 0x00;
	c->frame[15] = 100;
	{
		struct virtio_net_hdr h = {0};
		uint32_t marker = 0x4d41524b;

		send_plain(c, 0, c->frame, 80);
		make_frame(c->frame + 100, dev_mac, 60, marker);
		send_plain(c, 0, c->frame + 100, 60);
		CHECK_EQ(recv_frame(c, 0, &h, 5000), 60);
		vid = htole16(100);
		CHECK_EQ(ctrl_cmd(c, VIRTIO_NET_CTRL_VLAN, VIRTIO_NET_CTRL_VLAN_ADD, &vid, 2),
			 VIRTIO_NET_OK);
		send_plain(c, 0, c->frame, 80);
		CHECK_EQ(recv_frame(c, 0, &h, 5000), 80);
		CHECK(!memcmp(c->got, c->frame, 80));
		vid = htole16(4096);
		CHECK_EQ(ctrl_cmd(c, VIRTIO_NET_CTRL_VLAN, VIRTIO_NET_CTRL_VLAN_ADD, &vid, 2),
			 VIRTIO_NET_ERR);
	}
	/* Unknown commands, bad lengths, and MQ pairs out of range are refused. */
	CHECK_EQ(ctrl_cmd(c, 99, 0, NULL, 0), VIRTIO_NET_ERR);
	CHECK_EQ(ctrl_cmd(c, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, "ab", 2),
		 VIRTIO_NET_ERR);
	vid = htole16(2);
	CHECK_EQ(ctrl_cmd(c, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &vid, 2),
		 VIRTIO_NET_ERR);
	vid = htole16(1);
	CHECK_EQ(ctrl_cmd(c, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &vid, 2),
		 VIRTIO_NET_OK);
	CHECK_EQ(ctrl_cmd(c, VIRTIO_NET_CTRL_ANNOUNCE, VIRTIO_NET_CTRL_ANNOUNCE_ACK, NULL, 0),
		 VIRTIO_NET_OK);
	stats(c, rxq(0), &st);
	CHECK_EQ(st.drops[NET_DROP_FILTERED], 6);
	dev_stop(c);
	free(c);
}

/* A partial checksum is finished for a guest that did not take GUEST_CSUM. */
static void run_csum(void)
{
	struct ctx *c = calloc(1, sizeof(*c));
	struct virtio_net_hdr h = {0};
	uint8_t *f = c->frame;
	size_t len = 14 + 20 + 8 + 33;
	uint32_t sum = 0;

	dev_start(c, "loopback", 1, false, 1ull << VIRTIO_NET_F_GUEST_CSUM, true);
	make_frame(f, dev_mac, len, 1);
	f[12] = 0x08;
	f[13] = 0x00;
	/* The UDP checksum field holds the (arbitrary) partial sum 0x1234. */
	f[14 + 20 + 6] = 0x12;
	f[14 + 20 + 7] = 0x34;
	h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	h.csum_start = htole16(14 + 20);
	h.csum_offset = htole16(6);
	send_frame(c, 0, &h, f, len, false);
	CHECK_EQ(recv_frame(c, 0, &h, 5000), len);
	CHECK_EQ(h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM, 0);
	/*
	 * The covered bytes with the checksum in place, plus the pseudo-header
	 * sum the driver had put there, add up to 0xffff (RFC 1071).
	 */
	sum = 0x1234;
	for (size_t i = 34; i < len; i += 2)
		sum += (uint32_t)c->got[i] << 8 | (i + 1 < len ? c->got[i + 1] : 0);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	CHECK_EQ(sum, 0xffff);
	dev_stop(c);
	free(c);
}

/* With no rx buffers the frames wait, are counted, and arrive after a kick. */
static void run_no_buffers(bool packed)
{
	struct ctx *c = calloc(1, sizeof(*c));
	struct net_queue_stats st;
	struct virtio_net_hdr h;

	dev_start(c, "loopback", 1, packed, 0, false);
	for (uint32_t s = 0; s < 20; s++) {
		make_frame(c->frame, dev_mac, 100, s);
		send_plain(c, 0, c->frame, 100);
	}
	/* All sent (tx completed) while nothing could be received. */
	(void)tx_slot(c, 0);
	usleep(50 * 1000);
	stats(c, rxq(0), &st);
	CHECK_EQ(st.packets, 0);
	CHECK(st.no_buffers >= 1);
	post_rx(c, 0, c->mrg ? 64 : 8);
	for (uint32_t s = 0; s < 20; s++) {
		CHECK_EQ(recv_frame(c, 0, &h, 5000), 100);
		CHECK(!memcmp(c->got + 14, &s, 4));
	}
	dev_stop(c);
	free(c);
}

/* Two pairs: each pair's frames come back on its own rx queue. */
static void run_mq(bool packed)
{
	struct ctx *c = calloc(1, sizeof(*c));
	struct net_queue_stats st;

	dev_start(c, "loopback", 2, packed, 0, true);
	for (uint32_t s = 0; s < 50; s++) {
		echo(c, 1, 60 + s, s, false);
		echo(c, 0, 1000 + s, s, false);
	}
	for (unsigned int q = 0; q < 4; q++) {
		stats(c, q, &st);
		CHECK_EQ(st.packets, 50);
	}
	/*
	 * One pair in use: pair 1's rx gets nothing (its frame waits in the
	 * back-end), until the driver sets two pairs again: then it arrives
	 * without any kick from us.
	 */
	{
		uint16_t pairs = htole16(1);
		struct virtio_net_hdr h;

		CHECK_EQ(
			ctrl_cmd(c, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &pairs, 2),
			VIRTIO_NET_OK);
		make_frame(c->frame, dev_mac, 70, 99);
		send_plain(c, 1, c->frame, 70);
		CHECK_EQ(recv_frame(c, 1, &h, 200), -1);
		pairs = htole16(2);
		CHECK_EQ(
			ctrl_cmd(c, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &pairs, 2),
			VIRTIO_NET_OK);
		CHECK_EQ(recv_frame(c, 1, &h, 5000), 70);
		CHECK(!memcmp(c->got, c->frame, 70));
	}
	dev_stop(c);
	free(c);
}

/* The null back-end: every frame counted and dropped; rx stays empty. */
static void run_null(bool packed)
{
	struct ctx *c = calloc(1, sizeof(*c));
	struct net_queue_stats st;
	struct virtio_net_hdr h;
	uint64_t bytes = 0;

	dev_start(c, "null", 1, packed, 0, true);
	for (uint32_t s = 0; s < 500; s++) {
		make_frame(c->frame, dev_mac, 60 + s, s);
		send_plain(c, 0, c->frame, 60 + s);
		bytes += 60 + s;
	}
	(void)tx_slot(c, 0);
	while (virtq_drv_num_free(vu_fe_queue(c->fe, txq(0))) < QSIZE)
		(void)tx_slot(c, 0), usleep(1000);
	stats(c, txq(0), &st);
	CHECK_EQ(st.packets, 500);
	CHECK_EQ(st.bytes, bytes);
	CHECK_EQ(recv_frame(c, 0, &h, 100), -1);
	dev_stop(c);
	free(c);
}

static const uint8_t ms_key[40] = {
	0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
	0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
	0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
};

/* The first IPv4 flow of Microsoft's RSS vectors: TCP hash 0x51ccc178. */
static size_t tcp4_frame(uint8_t *f)
{
	static const uint8_t ip[] = {0x45, 0,  0,	  40,	       0,	  0,
				     0,	   0,  64,	  6,	       0,	  0,
				     66,   9,  149,	  187,	       161,	  142,
				     100,  80, 2794 >> 8, 2794 & 0xff, 1766 >> 8, 1766 & 0xff};

	make_frame(f, dev_mac, 14 + 40, 0);
	f[12] = 0x08;
	f[13] = 0x00;
	memcpy(f + 14, ip, sizeof(ip));
	return 14 + 40;
}

/* RSS_CONFIG: hash types, a table of @n entries all @q, unclassified @uq. */
static uint8_t rss_config(struct ctx *c, uint32_t types, unsigned int n, uint16_t q, uint16_t uq,
			  uint8_t key_len)
{
	uint8_t b[1024];
	size_t o = 0;
	uint32_t t = htole32(types);
	uint16_t v;

	memcpy(b, &t, 4);
	v = htole16((uint16_t)(n - 1));
	memcpy(b + 4, &v, 2);
	v = htole16(uq);
	memcpy(b + 6, &v, 2);
	o = 8;
	for (unsigned int i = 0; i < n; i++, o += 2) {
		v = htole16(q);
		memcpy(b + o, &v, 2);
	}
	v = htole16(2);
	memcpy(b + o, &v, 2);
	o += 2;
	b[o++] = key_len;
	memcpy(b + o, ms_key, key_len > 40 ? 40 : key_len);
	o += key_len;
	return ctrl_cmd(c, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_RSS_CONFIG, b, o);
}

/*
 * RSS and hash reports through our front-end (QEMU 7.2 could pass the
 * bits, but it keeps the control queue, so a guest's RSS_CONFIG never
 * reaches a vhost-user back-end): the hash of the spec's first vector in
 * the v1 hash header, the table steering a frame sent on pair 0 to rx1
 * and an unclassified one to the unclassified queue, bad configurations
 * refused, and a pair count switching steering off.
 */
static void run_rss(bool packed)
{
	struct ctx *c = calloc(1, sizeof(*c));
	struct virtio_net_hdr h;
	struct net_queue_stats st;
	struct virtio_net_config cfg;
	uint8_t hc[13 + 40] = {0};
	uint32_t types = htole32(VIRTIO_NET_RSS_HASH_TYPE_IPv4 | VIRTIO_NET_RSS_HASH_TYPE_TCPv4);
	uint16_t pairs;
	size_t n;

	dev_start(c, "loopback", 2, packed, 0, true);
	CHECK_EQ(c->hl, 20);
	CHECK_EQ(vu_fe_get_config(c->fe, &cfg, sizeof(cfg)), 0);
	CHECK_EQ(cfg.rss_max_key_size, 40);
	CHECK_EQ(le16toh(cfg.rss_max_indirection_table_length), 128);
	CHECK_EQ(le32toh(cfg.supported_hash_types), 0x3f);

	/* No hash configured yet: report NONE. */
	n = tcp4_frame(c->frame);
	send_plain(c, 0, c->frame, n);
	CHECK_EQ(recv_frame(c, 0, &h, 5000), n);
	CHECK_EQ(le16toh(last_hh.hash_report), VIRTIO_NET_HASH_REPORT_NONE);

	/* HASH_CONFIG: reports, no steering. */
	memcpy(hc, &types, 4);
	hc[12] = 40;
	memcpy(hc + 13, ms_key, 40);
	CHECK_EQ(ctrl_cmd(c, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_HASH_CONFIG, hc, sizeof(hc)),
		 VIRTIO_NET_OK);
	send_plain(c, 0, c->frame, n);
	CHECK_EQ(recv_frame(c, 0, &h, 5000), n);
	CHECK_EQ(le16toh(last_hh.hash_report), VIRTIO_NET_HASH_REPORT_TCPv4);
	CHECK_EQ(le32toh(last_hh.hash_value), 0x51ccc178);
	CHECK(!memcmp(c->got, c->frame, n));

	/* RSS_CONFIG: every hash to pair 1; unclassified to pair 0. */
	CHECK_EQ(rss_config(c, 0x3f, 8, 1, 0, 40), VIRTIO_NET_OK);
	send_plain(c, 0, c->frame, n);
	CHECK_EQ(recv_frame(c, 1, &h, 5000), n);
	CHECK(!memcmp(c->got, c->frame, n));
	CHECK_EQ(le16toh(last_hh.hash_report), VIRTIO_NET_HASH_REPORT_TCPv4);
	CHECK_EQ(le32toh(last_hh.hash_value), 0x51ccc178);
	stats(c, rxq(0), &st);
	CHECK_EQ(st.steered, 1);
	/* A non-IP frame: unclassified, to pair 0, even when sent on pair 1. */
	make_frame(c->frame + 200, dev_mac, 80, 7);
	send_plain(c, 1, c->frame + 200, 80);
	CHECK_EQ(recv_frame(c, 0, &h, 5000), 80);
	CHECK_EQ(le16toh(last_hh.hash_report), VIRTIO_NET_HASH_REPORT_NONE);
	/* Table of pair 0: a flow sent on pair 1 arrives on rx0. */
	CHECK_EQ(rss_config(c, 0x3f, 128, 0, 1, 40), VIRTIO_NET_OK);
	send_plain(c, 1, c->frame, n);
	CHECK_EQ(recv_frame(c, 0, &h, 5000), n);
	CHECK_EQ(le32toh(last_hh.hash_value), 0x51ccc178);

	/* Refused, and nothing changes: table size not a power of two, too big,
	 * a pair that does not exist, a key too long, no key, types we lack. */
	CHECK_EQ(rss_config(c, 0x3f, 6, 1, 0, 40), VIRTIO_NET_ERR);
	CHECK_EQ(rss_config(c, 0x3f, 256, 1, 0, 40), VIRTIO_NET_ERR);
	CHECK_EQ(rss_config(c, 0x3f, 8, 2, 0, 40), VIRTIO_NET_ERR);
	CHECK_EQ(rss_config(c, 0x3f, 8, 1, 2, 40), VIRTIO_NET_ERR);
	CHECK_EQ(rss_config(c, 0x3f, 8, 1, 0, 41), VIRTIO_NET_ERR);
	CHECK_EQ(rss_config(c, 0x3f, 8, 1, 0, 0), VIRTIO_NET_ERR);
	CHECK_EQ(rss_config(c, 0x1ff, 8, 1, 0, 40), VIRTIO_NET_ERR);
	send_plain(c, 1, c->frame, n);
	CHECK_EQ(recv_frame(c, 0, &h, 5000), n);

	/* A pair count turns steering off: frames stay on their pair. */
	pairs = htole16(2);
	CHECK_EQ(ctrl_cmd(c, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &pairs, 2),
		 VIRTIO_NET_OK);
	send_plain(c, 1, c->frame, n);
	CHECK_EQ(recv_frame(c, 1, &h, 5000), n);
	dev_stop(c);
	free(c);
}

/* A tx chain with a writable descriptor: the device breaks, the process lives. */
static void run_hostile(void)
{
	struct ctx *c = calloc(1, sizeof(*c));
	struct virtq_sg sg[2];
	unsigned int i;

	dev_start(c, "loopback", 1, false, 0, true);
	i = tx_slot(c, 0);
	sg[0] = (struct virtq_sg){addr(c, c->tx[0] + (size_t)i * TX_BUF), 100};
	sg[1] = (struct virtq_sg){addr(c, c->tx[0] + (size_t)i * TX_BUF + 200), 100};
	c->tx_busy[0][i] = true;
	CHECK_EQ(
		virtq_drv_add_sgs(vu_fe_queue(c->fe, txq(0)), sg, 1, 1, (void *)(uintptr_t)(i + 1)),
		0);
	CHECK(vu_fe_kick(c->fe, txq(0)) >= 0);
	usleep(100 * 1000);
	dev_stop(c);
	free(c);
}

/*
 * VHOST_USER_SEND_RARP (what QEMU sends after a migration for a guest
 * without GUEST_ANNOUNCE): the loopback brings the announce back on rx, a
 * broadcast RARP request naming the MAC, and it is counted.
 */
static void run_rarp(bool packed)
{
	struct ctx *c = calloc(1, sizeof(*c));
	static const uint8_t mac[6] = {0x52, 0x54, 0x00, 0x77, 0x88, 0x99};
	struct virtio_net_hdr h;
	long n;

	dev_start(c, "loopback", 1, packed, 0, true);
	CHECK_EQ(net_dev_rarps(c->dev), 0);
	CHECK_EQ(vu_fe_send_rarp(c->fe, mac), 0);
	n = recv_frame(c, 0, &h, 5000);
	CHECK_MSG(n == 60, "announce frame of %ld bytes", n);
	CHECK(!memcmp(c->got, bcast, 6));
	CHECK(!memcmp(c->got + 6, mac, 6));
	CHECK(c->got[12] == 0x80 && c->got[13] == 0x35); /* ETH_P_RARP */
	CHECK(c->got[20] == 0 && c->got[21] == 3);	 /* reverse request */
	CHECK(!memcmp(c->got + 22, mac, 6));
	CHECK(!memcmp(c->got + 32, mac, 6));
	CHECK_EQ(h.flags, 0);
	CHECK_EQ(h.gso_type, VIRTIO_NET_HDR_GSO_NONE);
	CHECK_EQ(net_dev_rarps(c->dev), 1);
	/* Traffic goes on as before. */
	echo(c, 0, 100, 1, false);
	dev_stop(c);
	free(c);
}

/*
 * Live migration: with VHOST_F_LOG_ALL on, every rx buffer the device
 * fills is marked in the dirty log (virtq_fill logs an element's writable
 * buffers), and a tx buffer, which the device only reads, is not.  The
 * guest test (net-migrate) cannot show this: a Linux guest dirties each
 * mergeable rx page itself when it builds the skb.
 */
#define LOG_GPA_MAX (1ull << 30)
#define LOG_BYTES   (LOG_GPA_MAX / 4096 / 8)
static void run_dirtylog(bool packed)
{
	struct ctx *c = calloc(1, sizeof(*c));
	uint8_t *log;
	uint32_t len;
	uint64_t page, tx_page;
	int fd, i;

	CHECK(c);
	c->gpa_base = 1u << 20; /* guest memory from 1 MiB up, as in a VM: a small log */
	dev_start(c, "loopback", 1, packed, 0, true);
	fd = memfd_create("net-dirty-log", MFD_CLOEXEC);
	CHECK(fd >= 0);
	CHECK_EQ(ftruncate(fd, LOG_BYTES), 0);
	log = mmap(NULL, LOG_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(log != MAP_FAILED);
	CHECK(vu_fe_addr(c->fe, c->rx[0] + RX_BUFS * c->rx_size) < LOG_GPA_MAX);
	CHECK_EQ(vu_fe_set_log_base(c->fe, fd, LOG_BYTES, 0), 0);
	CHECK_EQ(vu_fe_set_log_all(c->fe, true), 0);
	/* Restarting the rings under logging may have logged their own pages. */
	memset(log, 0, LOG_BYTES);
	make_frame(c->frame, dev_mac, 1000, 7);
	send_plain(c, 0, c->frame, 1000);
	i = next_rx(c, 0, &len, 5000);
	CHECK(i >= 0);
	CHECK_EQ(len, c->hl + 1000);
	CHECK(!memcmp(c->rx[0] + (size_t)i * c->rx_size + c->hl, c->frame, 1000));
	page = vu_fe_addr(c->fe, c->rx[0] + (size_t)i * c->rx_size) / 4096;
	CHECK_MSG(log[page / 8] >> (page % 8) & 1, "rx buffer page %#llx not in the dirty log",
		  (unsigned long long)page);
	page = vu_fe_addr(c->fe, c->rx[0] + (size_t)i * c->rx_size + len - 1) / 4096;
	CHECK(log[page / 8] >> (page % 8) & 1);
	tx_page = vu_fe_addr(c->fe, c->tx[0] + TX_BUF / 2) / 4096;
	CHECK_MSG(!(log[tx_page / 8] >> (tx_page % 8) & 1), "a tx buffer page was logged");
	post_rx_buf(c, 0, (unsigned int)i);
	CHECK_EQ(vu_fe_set_log_all(c->fe, false), 0);
	dev_stop(c);
	munmap(log, LOG_BYTES);
	close(fd);
	free(c);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * Fairness across queue pairs: both pairs of a loopback flooded at once
 * (every free tx buffer filled, every rx buffer handed back at once, the
 * driver treating both alike) for a second.  A device that let one pair's
 * work starve the other's would show it in the counts; the bound is
 * generous (neither pair below a quarter of the other) since the two
 * pairs share the I/O threads with everything else on the machine.
 */
static void run_fairness(bool packed, bool one_thread)
{
	struct ctx *c = calloc(1, sizeof(*c));
	uint64_t got[2] = {0, 0}, sent[2] = {0, 0}, end;
	struct net_queue_stats st[2], tst[2];

	CHECK(c);
	/*
	 * one_thread: all four queues on I/O thread 0, so rx and tx compete
	 * for the same passes too: the budget must let rx keep up with what
	 * tx feeds the loopback (else frames pile up and are dropped there).
	 */
	dev_start(c, one_thread ? "backend=loopback,io-thread=0" : "loopback", 2, packed, 0, true);
	end = now_ms() + 1000;
	while (now_ms() < end) {
		for (unsigned int p = 0; p < 2; p++) {
			struct virtq_drv *tq = vu_fe_queue(c->fe, txq(p));
			struct virtq_drv *rq = vu_fe_queue(c->fe, rxq(p));
			uint32_t len;
			bool added = false;
			void *t;

			while ((t = virtq_drv_get_buf(tq, NULL)))
				c->tx_busy[p][(uintptr_t)t - 1] = false;
			for (unsigned int i = 0; i < TX_BUFS; i++) {
				uint8_t *b = c->tx[p] + (size_t)i * TX_BUF;
				struct virtq_sg sg;

				if (c->tx_busy[p][i])
					continue;
				memset(b, 0, c->hl);
				make_frame(b + c->hl, dev_mac, 200, (uint32_t)sent[p]);
				sg = (struct virtq_sg){addr(c, b), c->hl + 200};
				CHECK_EQ(virtq_drv_add_sgs(tq, &sg, 1, 0,
							   (void *)(uintptr_t)(i + 1)),
					 0);
				c->tx_busy[p][i] = true;
				sent[p]++;
				added = true;
			}
			if (added)
				CHECK(vu_fe_kick(c->fe, txq(p)) >= 0);
			added = false;
			while ((t = virtq_drv_get_buf(rq, &len))) {
				unsigned int i = (unsigned int)((uintptr_t)t - 1);

				CHECK_EQ(len, c->hl + 200);
				post_rx_buf(c, p, i);
				got[p]++;
				added = true;
			}
			if (added)
				CHECK(vu_fe_kick(c->fe, rxq(p)) >= 0);
		}
	}
	for (unsigned int p = 0; p < 2; p++) {
		stats(c, rxq(p), &st[p]);
		stats(c, txq(p), &tst[p]);
	}
	printf("fairness (%s%s): pair 0 %llu frames back of %llu sent, pair 1 %llu of %llu\n",
	       packed ? "packed" : "split", one_thread ? ", one thread" : "",
	       (unsigned long long)got[0], (unsigned long long)tst[0].packets,
	       (unsigned long long)got[1], (unsigned long long)tst[1].packets);
	/* rx against tx: what tx handed the loopback mostly came back. */
	for (unsigned int p = 0; p < 2; p++)
		CHECK_MSG(got[p] * 4 >= tst[p].packets, "pair %u: rx %llu behind tx %llu", p,
			  (unsigned long long)got[p], (unsigned long long)tst[p].packets);
	CHECK_MSG(got[0] >= 100 && got[1] >= 100, "a pair barely moved: %llu / %llu",
		  (unsigned long long)got[0], (unsigned long long)got[1]);
	CHECK_MSG(got[0] * 4 >= got[1] && got[1] * 4 >= got[0], "unfair: %llu / %llu",
		  (unsigned long long)got[0], (unsigned long long)got[1]);
	/* The device's own counters agree that both moved. */
	CHECK(st[0].packets >= got[0] && st[1].packets >= got[1]);
	dev_stop(c);
	free(c);
}

/* ethtool -k @ifname: is @feature ("tcp-segmentation-offload") on? */
static bool tap_feature_on(const char *ifname, const char *feature)
{
	char cmd[128], line[256];
	size_t flen = strlen(feature);
	bool on = false, seen = false;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "ethtool -k %s", ifname);
	f = popen(cmd, "r");
	CHECK(f);
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, feature, flen) || line[flen] != ':')
			continue;
		seen = true;
		on = !strncmp(line + flen + 1, " on", 3);
	}
	CHECK_EQ(pclose(f), 0);
	CHECK_MSG(seen, "ethtool -k %s shows no %s", ifname, feature);
	return on;
}

static void expect_tap_offloads(const char *ifname, bool csum, bool tso)
{
	CHECK_MSG(tap_feature_on(ifname, "tx-checksumming") == csum, "%s: tx-checksumming not %s",
		  ifname, csum ? "on" : "off");
	CHECK_MSG(tap_feature_on(ifname, "tcp-segmentation-offload") == tso,
		  "%s: tcp-segmentation-offload not %s", ifname, tso ? "on" : "off");
}

static uint8_t set_guest_offloads(struct ctx *c, uint64_t o)
{
	uint64_t le = htole64(o);

	return ctrl_cmd(c, VIRTIO_NET_CTRL_GUEST_OFFLOADS, VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET, &le,
			sizeof(le));
}

/*
 * VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET reaches a real tap as TUNSETOFFLOAD:
 * what the kernel may hand the tap's reader (the guest) is what the tap
 * shows as its own offloads (ethtool -k: tx-checksumming follows
 * GUEST_CSUM, tcp-segmentation-offload GUEST_TSO4/6).  Needs root and
 * /dev/net/tun; runs in network and mount namespaces of its own (unshared
 * before any thread exists, so every later thread is in them too; they go
 * away with the process, the tap with them).
 */
static void run_tap_offloads(void)
{
	static const char ifname[] = "vhd-off0";
	const uint64_t csum = 1ull << VIRTIO_NET_F_GUEST_CSUM;
	const uint64_t tso = 1ull << VIRTIO_NET_F_GUEST_TSO4 | 1ull << VIRTIO_NET_F_GUEST_TSO6;
	char cmd[128];
	struct ctx *c;

	if (geteuid() != 0 || access("/dev/net/tun", R_OK | W_OK)) {
		printf("tap offloads: skipped: needs root and /dev/net/tun for a tap\n");
		return;
	}
	/*
	 * vhostd checks the tap in sysfs, which shows the namespace of
	 * whoever mounted it: a mount namespace with a sysfs of our own.
	 */
	if (unshare(CLONE_NEWNET | CLONE_NEWNS) ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
	    mount("sysfs", "/sys", "sysfs", 0, NULL)) {
		printf("tap offloads: skipped: no network namespace: %s\n", strerror(errno));
		return;
	}
	snprintf(cmd, sizeof(cmd), "ip tuntap add dev %s mode tap multi_queue vnet_hdr", ifname);
	CHECK_EQ(system(cmd), 0);
	c = calloc(1, sizeof(*c));
	CHECK(c);
	dev_start(c, "tap=vhd-off0", 1, false, 0, true);
	CHECK(vu_fe_features(c->fe) & (1ull << VIRTIO_NET_F_CTRL_GUEST_OFFLOADS));
	CHECK(vu_fe_features(c->fe) & tso);
	/* SET_FEATURES: everything the guest negotiated. */
	expect_tap_offloads(ifname, true, true);
	CHECK_EQ(set_guest_offloads(c, csum), VIRTIO_NET_OK);
	expect_tap_offloads(ifname, true, false);
	CHECK_EQ(set_guest_offloads(c, 0), VIRTIO_NET_OK);
	expect_tap_offloads(ifname, false, false);
	CHECK_EQ(set_guest_offloads(c, csum | tso), VIRTIO_NET_OK);
	expect_tap_offloads(ifname, true, true);
	/* TSO without CSUM: a tap takes no segments it must checksum itself. */
	CHECK_EQ(set_guest_offloads(c, tso), VIRTIO_NET_OK);
	expect_tap_offloads(ifname, false, false);
	/* Not negotiated (HOST_TSO4 is no guest offload): refused, nothing changes. */
	CHECK_EQ(set_guest_offloads(c, csum | 1ull << VIRTIO_NET_F_HOST_TSO4), VIRTIO_NET_ERR);
	expect_tap_offloads(ifname, false, false);
	CHECK_EQ(set_guest_offloads(c, csum | tso), VIRTIO_NET_OK);
	expect_tap_offloads(ifname, true, true);
	dev_stop(c);
	free(c);
	printf("tap offloads: ok\n");
}

int main(void)
{
	log_set_level(LOG_LVL_ERROR);
	run_tap_offloads();
	for (int packed = 0; packed < 2; packed++) {
		run_config(packed);
		run_echo(packed, true);
		run_echo(packed, false);
		run_bad_tx(packed);
		run_filter(packed);
		run_no_buffers(packed);
		run_mq(packed);
		run_null(packed);
		run_rss(packed);
		run_rarp(packed);
		run_fairness(packed, false);
		run_fairness(packed, true);
		run_dirtylog(packed);
	}
	run_small_big_buffer();
	run_csum();
	run_hostile();
	printf("ok\n");
	return 0;
}
