/* SPDX-License-Identifier: MIT */
/*
 * net_proto.h - the parts of virtio-net that are pure functions of bytes
 * the guest wrote: the transmit header check, the control queue's
 * commands and the receive filter they build (virtio 1.2, 5.1.6).  No
 * guest memory and no threads here: the caller copies the header or the
 * command out of the ring first and hands over the copy, so the fuzz
 * harness (tests/fuzz/fuzz_net.c) drives exactly what the device runs.
 */
#ifndef VHOSTD_DEVICES_NET_PROTO_H
#define VHOSTD_DEVICES_NET_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "virtio_net.h"

/* Largest frame (without the virtio header) we carry: 64 KiB, as TSO allows. */
#define NET_MAX_FRAME 65536u
/* MAC table entries, unicast and multicast together (QEMU has the same). */
#define NET_MAC_TABLE_ENTRIES 64
#define NET_MAX_VLANS	      4096

/* Why a packet was dropped (per-queue counters, in this order in stats). */
enum net_drop {
	NET_DROP_BAD_HEADER, /* tx: header malformed or asks for an offload not negotiated */
	NET_DROP_OVERSIZE,   /* tx: frame above 64 KiB, or under an Ethernet header */
	NET_DROP_BACKEND,    /* tx: the back-end refused it (queue full, link down) */
	NET_DROP_FILTERED,   /* rx: the receive filter said no */
	NET_DROP_NO_ROOM,    /* rx: one big buffer too small for the frame */
	NET_DROP_OFFLOAD,    /* rx: a GSO frame the guest cannot take */
	NET_DROP_STEER,	     /* rx: RSS picked a pair whose inbox was full */
	NET_DROP__COUNT
};

/* "bad-header", ... for stats. */
const char *net_drop_name(enum net_drop d);

struct net_filter {
	uint8_t mac[ETH_ALEN];
	bool promisc, allmulti, alluni, nomulti, nouni, nobcast;
	bool uni_overflow, multi_overflow; /* table too long: accept that whole class */
	bool vlan_filter;		   /* CTRL_VLAN negotiated: tagged frames need their vid */
	unsigned int uni_count, multi_count;
	uint8_t macs[NET_MAC_TABLE_ENTRIES][ETH_ALEN]; /* unicast, then multicast */
	uint32_t vlans[NET_MAX_VLANS / 32];
};

/* RSS (5.1.6.4.3): what we offer, and what the driver configured. */
#define NET_RSS_KEY_SIZE   40
#define NET_RSS_TABLE_SIZE 128
#define NET_RSS_HASH_TYPES                                                                         \
	(VIRTIO_NET_RSS_HASH_TYPE_IPv4 | VIRTIO_NET_RSS_HASH_TYPE_TCPv4 |                          \
	 VIRTIO_NET_RSS_HASH_TYPE_UDPv4 | VIRTIO_NET_RSS_HASH_TYPE_IPv6 |                          \
	 VIRTIO_NET_RSS_HASH_TYPE_TCPv6 | VIRTIO_NET_RSS_HASH_TYPE_UDPv6)

struct net_rss {
	bool steering;	     /* RSS_CONFIG: the table picks the rx queue */
	uint32_t hash_types; /* 0: no hash computed */
	uint16_t mask;	     /* indirection_table_mask */
	uint16_t unclassified;
	uint16_t table[NET_RSS_TABLE_SIZE]; /* queue pair of each hash & mask */
	uint8_t key_len;
	uint8_t key[NET_RSS_KEY_SIZE];
};

/* What the control queue changes. */
struct net_ctrl_state {
	struct net_filter filter;
	uint64_t features;	 /* negotiated */
	uint16_t max_pairs;	 /* offered */
	uint16_t pairs;		 /* in use (MQ_VQ_PAIRS_SET) */
	uint64_t guest_offloads; /* GUEST_OFFLOADS_SET, initially the negotiated ones */
	bool announce_pending;	 /* cleared by ANNOUNCE_ACK */
	struct net_rss rss;
};

/*
 * The state after a device reset with @features negotiated (2.1, and
 * QEMU's choice of promiscuous until the driver says otherwise).
 */
void net_ctrl_reset(struct net_ctrl_state *st, const uint8_t mac[ETH_ALEN], uint64_t features,
		    uint16_t max_pairs);

/*
 * Carry out one command whose class and command bytes and @len data bytes
 * (a copy) the driver sent.  VIRTIO_NET_OK, or VIRTIO_NET_ERR with @st
 * unchanged: unknown, not negotiated, or malformed.
 */
uint8_t net_ctrl_exec(struct net_ctrl_state *st, uint8_t class, uint8_t cmd, const uint8_t *data,
		      size_t len);

/* The Toeplitz hash of @len bytes of @in with @key (Microsoft's RSS, virtio 5.1.6.4.3.1). */
uint32_t net_toeplitz(const uint8_t *key, size_t key_len, const uint8_t *in, size_t len);

/*
 * Classify a frame (Ethernet, one optional VLAN tag, IPv4 or IPv6 without
 * extension headers, TCP or UDP unless fragmented) and hash it over the
 * fields of the most specific type @rss->hash_types enables.  Returns the
 * VIRTIO_NET_HASH_REPORT_* value (NONE: no enabled type matched) and the
 * hash in *@hash.
 */
unsigned int net_rss_hash(const struct net_rss *rss, const uint8_t *frame, size_t len,
			  uint32_t *hash);

/* May a frame of @len bytes (Ethernet header first) reach the guest? */
bool net_filter_accept(const struct net_filter *f, const uint8_t *frame, size_t len);

/*
 * Check a copied tx header against the negotiated @features and the
 * frame's @len (without the header): -1 if it may go, else the drop
 * cause.  A frame the guest asks to checksum must have the field inside.
 */
int net_tx_hdr_check(const struct virtio_net_hdr *h, uint64_t features, size_t len);

/*
 * The Internet checksum a NEEDS_CSUM header asks for, done in software for
 * a receiver without GUEST_CSUM: folds [csum_start, len) and stores it at
 * csum_start + csum_offset.  The header was checked (net_tx_hdr_check).
 */
void net_csum_fill(uint8_t *frame, size_t len, uint16_t csum_start, uint16_t csum_offset);

#endif /* VHOSTD_DEVICES_NET_PROTO_H */
