// SPDX-License-Identifier: MIT
/*
 * net_proto.c - tx header checks, control-queue commands and the receive
 * filter (net_proto.h).  Every input is a copy; every length is checked
 * before the byte it covers is read.
 */
#include <endian.h>
#include <string.h>

#include "common/util.h"
#include "net_proto.h"

static const char *const drop_names[NET_DROP__COUNT] = {
	[NET_DROP_BAD_HEADER] = "bad-header", [NET_DROP_OVERSIZE] = "bad-size",
	[NET_DROP_BACKEND] = "backend",	      [NET_DROP_FILTERED] = "filtered",
	[NET_DROP_NO_ROOM] = "no-room",	      [NET_DROP_OFFLOAD] = "offload",
	[NET_DROP_STEER] = "steer-full",
};

const char *net_drop_name(enum net_drop d)
{
	return (unsigned int)d < NET_DROP__COUNT ? drop_names[d] : "?";
}

static bool has(uint64_t features, unsigned int bit)
{
	return features & (1ull << bit);
}

/* The offloads a guest may switch with GUEST_OFFLOADS_SET (5.1.6.5.6.1). */
static const uint64_t guest_offload_bits =
	1ull << VIRTIO_NET_F_GUEST_CSUM | 1ull << VIRTIO_NET_F_GUEST_TSO4 |
	1ull << VIRTIO_NET_F_GUEST_TSO6 | 1ull << VIRTIO_NET_F_GUEST_ECN |
	1ull << VIRTIO_NET_F_GUEST_UFO;

void net_ctrl_reset(struct net_ctrl_state *st, const uint8_t mac[ETH_ALEN], uint64_t features,
		    uint16_t max_pairs)
{
	struct net_filter *f = &st->filter;

	memset(st, 0, sizeof(*st));
	memcpy(f->mac, mac, ETH_ALEN);
	/*
	 * A driver without CTRL_RX cannot ask for its filter, so it gets
	 * everything; one with it starts promiscuous too, as QEMU's device
	 * does, until it sends its rx mode.
	 */
	f->promisc = true;
	/* Without CTRL_VLAN every VLAN passes (QEMU fills the bitmap). */
	f->vlan_filter = has(features, VIRTIO_NET_F_CTRL_VLAN);
	st->features = features;
	st->max_pairs = max_pairs ? max_pairs : 1;
	/* 5.1.6.5.5: one pair until the driver sets more. */
	st->pairs = 1;
	st->guest_offloads = features & guest_offload_bits;
}

static uint8_t ctrl_rx(struct net_ctrl_state *st, uint8_t cmd, const uint8_t *data, size_t len)
{
	struct net_filter *f = &st->filter;
	bool on;

	if (!has(st->features, VIRTIO_NET_F_CTRL_RX) || len != 1)
		return VIRTIO_NET_ERR;
	on = data[0] != 0;
	/* 5.1.6.5.1: ALLUNI and later need CTRL_RX_EXTRA. */
	if (cmd >= VIRTIO_NET_CTRL_RX_ALLUNI && cmd <= VIRTIO_NET_CTRL_RX_NOBCAST &&
	    !has(st->features, VIRTIO_NET_F_CTRL_RX_EXTRA))
		return VIRTIO_NET_ERR;
	switch (cmd) {
	case VIRTIO_NET_CTRL_RX_PROMISC:
		f->promisc = on;
		break;
	case VIRTIO_NET_CTRL_RX_ALLMULTI:
		f->allmulti = on;
		break;
	case VIRTIO_NET_CTRL_RX_ALLUNI:
		f->alluni = on;
		break;
	case VIRTIO_NET_CTRL_RX_NOMULTI:
		f->nomulti = on;
		break;
	case VIRTIO_NET_CTRL_RX_NOUNI:
		f->nouni = on;
		break;
	case VIRTIO_NET_CTRL_RX_NOBCAST:
		f->nobcast = on;
		break;
	default:
		return VIRTIO_NET_ERR;
	}
	return VIRTIO_NET_OK;
}

/*
 * Read one MAC table (le32 count, then count addresses) at @*off of @data:
 * the count is checked against what is left before any address is read.
 * Returns the count, or -1 if malformed.
 */
static long mac_table_at(const uint8_t *data, size_t len, size_t *off)
{
	uint32_t n;
	size_t left;

	if (len - *off < sizeof(n))
		return -1;
	memcpy(&n, data + *off, sizeof(n));
	n = le32toh(n);
	*off += sizeof(n);
	left = len - *off;
	if (n > left / ETH_ALEN)
		return -1;
	return (long)n;
}

/* TABLE_SET (5.1.6.5.2): unicast table, then multicast table, nothing after. */
static uint8_t ctrl_mac_table(struct net_filter *f, const uint8_t *data, size_t len)
{
	struct net_filter nf = *f;
	size_t off = 0, uni_off, multi_off;
	long nu, nm;

	nu = mac_table_at(data, len, &off);
	if (nu < 0)
		return VIRTIO_NET_ERR;
	uni_off = off;
	off += (size_t)nu * ETH_ALEN;
	nm = mac_table_at(data, len, &off);
	if (nm < 0)
		return VIRTIO_NET_ERR;
	multi_off = off;
	off += (size_t)nm * ETH_ALEN;
	if (off != len)
		return VIRTIO_NET_ERR;

	nf.uni_count = nf.multi_count = 0;
	nf.uni_overflow = nf.multi_overflow = false;
	/* Too many for the table: let that whole class through (QEMU's choice). */
	if (nu > NET_MAC_TABLE_ENTRIES) {
		nf.uni_overflow = true;
	} else {
		memcpy(nf.macs, data + uni_off, (size_t)nu * ETH_ALEN);
		nf.uni_count = (unsigned int)nu;
	}
	if (nm > NET_MAC_TABLE_ENTRIES - (long)nf.uni_count) {
		nf.multi_overflow = true;
	} else {
		memcpy(nf.macs[nf.uni_count], data + multi_off, (size_t)nm * ETH_ALEN);
		nf.multi_count = (unsigned int)nm;
	}
	*f = nf;
	return VIRTIO_NET_OK;
}

static uint8_t ctrl_mac(struct net_ctrl_state *st, uint8_t cmd, const uint8_t *data, size_t len)
{
	switch (cmd) {
	case VIRTIO_NET_CTRL_MAC_TABLE_SET:
		if (!has(st->features, VIRTIO_NET_F_CTRL_RX))
			return VIRTIO_NET_ERR;
		return ctrl_mac_table(&st->filter, data, len);
	case VIRTIO_NET_CTRL_MAC_ADDR_SET:
		if (!has(st->features, VIRTIO_NET_F_CTRL_MAC_ADDR) || len != ETH_ALEN)
			return VIRTIO_NET_ERR;
		memcpy(st->filter.mac, data, ETH_ALEN);
		return VIRTIO_NET_OK;
	}
	return VIRTIO_NET_ERR;
}

static uint8_t ctrl_vlan(struct net_ctrl_state *st, uint8_t cmd, const uint8_t *data, size_t len)
{
	uint16_t vid;

	if (!has(st->features, VIRTIO_NET_F_CTRL_VLAN) || len != sizeof(vid))
		return VIRTIO_NET_ERR;
	memcpy(&vid, data, sizeof(vid));
	vid = le16toh(vid);
	if (vid >= NET_MAX_VLANS)
		return VIRTIO_NET_ERR;
	if (cmd == VIRTIO_NET_CTRL_VLAN_ADD)
		st->filter.vlans[vid / 32] |= 1u << (vid % 32);
	else if (cmd == VIRTIO_NET_CTRL_VLAN_DEL)
		st->filter.vlans[vid / 32] &= ~(1u << (vid % 32));
	else
		return VIRTIO_NET_ERR;
	return VIRTIO_NET_OK;
}

/*
 * RSS_CONFIG (@hash_only false) or HASH_CONFIG (true), 5.1.6.5.7: checked
 * whole before any of it is taken.  The table holds queue pair numbers, as
 * Linux fills it and QEMU reads it.
 */
static uint8_t ctrl_rss(struct net_ctrl_state *st, bool hash_only, const uint8_t *data, size_t len)
{
	struct net_rss r = {0};
	uint16_t v16, max_tx = 0;
	uint32_t types;
	size_t off, entries = 1;

	if (len < 4 + 8 + 1)
		return VIRTIO_NET_ERR;
	memcpy(&types, data, 4);
	types = le32toh(types);
	if (types & ~NET_RSS_HASH_TYPES)
		return VIRTIO_NET_ERR;
	if (hash_only) {
		off = 12; /* hash_types, reserved[4] */
	} else {
		memcpy(&v16, data + 4, 2);
		r.mask = le16toh(v16);
		memcpy(&v16, data + 6, 2);
		r.unclassified = le16toh(v16);
		entries = (size_t)r.mask + 1;
		/* A power of two, at most the table we offered. */
		if (entries > NET_RSS_TABLE_SIZE || (entries & (entries - 1)) ||
		    r.unclassified >= st->max_pairs)
			return VIRTIO_NET_ERR;
		if (len < 8 + 2 * entries + 2 + 1)
			return VIRTIO_NET_ERR;
		for (size_t i = 0; i < entries; i++) {
			memcpy(&v16, data + 8 + 2 * i, 2);
			r.table[i] = le16toh(v16);
			if (r.table[i] >= st->max_pairs)
				return VIRTIO_NET_ERR;
		}
		off = 8 + 2 * entries;
		memcpy(&v16, data + off, 2);
		max_tx = le16toh(v16);
		if (max_tx < 1 || max_tx > st->max_pairs)
			return VIRTIO_NET_ERR;
		off += 2;
	}
	r.key_len = data[off++];
	if (r.key_len > NET_RSS_KEY_SIZE || len != off + r.key_len || (types && !r.key_len))
		return VIRTIO_NET_ERR;
	memcpy(r.key, data + off, r.key_len);
	r.hash_types = types;
	r.steering = !hash_only && types;
	st->rss = r;
	if (!hash_only)
		st->pairs = max_tx;
	return VIRTIO_NET_OK;
}

static uint8_t ctrl_mq(struct net_ctrl_state *st, uint8_t cmd, const uint8_t *data, size_t len)
{
	uint16_t pairs;

	if (cmd == VIRTIO_NET_CTRL_MQ_RSS_CONFIG)
		return has(st->features, VIRTIO_NET_F_RSS) ? ctrl_rss(st, false, data, len)
							   : VIRTIO_NET_ERR;
	if (cmd == VIRTIO_NET_CTRL_MQ_HASH_CONFIG)
		return has(st->features, VIRTIO_NET_F_HASH_REPORT) ? ctrl_rss(st, true, data, len)
								   : VIRTIO_NET_ERR;
	if (!has(st->features, VIRTIO_NET_F_MQ) || cmd != VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET ||
	    len != sizeof(pairs))
		return VIRTIO_NET_ERR;
	memcpy(&pairs, data, sizeof(pairs));
	pairs = le16toh(pairs);
	/* 5.1.6.5.5.2: 1..max_virtqueue_pairs, else an error and no change. */
	if (pairs < VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN || pairs > st->max_pairs)
		return VIRTIO_NET_ERR;
	st->pairs = pairs;
	/* 5.1.6.5.6.4: a pair count turns RSS steering off. */
	st->rss.steering = false;
	return VIRTIO_NET_OK;
}

static uint8_t ctrl_offloads(struct net_ctrl_state *st, uint8_t cmd, const uint8_t *data,
			     size_t len)
{
	uint64_t o;

	if (!has(st->features, VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) ||
	    cmd != VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET || len != sizeof(o))
		return VIRTIO_NET_ERR;
	memcpy(&o, data, sizeof(o));
	o = le64toh(o);
	/* Only offloads that were negotiated and that a guest may switch. */
	if (o & ~(st->features & guest_offload_bits))
		return VIRTIO_NET_ERR;
	st->guest_offloads = o;
	return VIRTIO_NET_OK;
}

uint8_t net_ctrl_exec(struct net_ctrl_state *st, uint8_t class, uint8_t cmd, const uint8_t *data,
		      size_t len)
{
	switch (class) {
	case VIRTIO_NET_CTRL_RX:
		return ctrl_rx(st, cmd, data, len);
	case VIRTIO_NET_CTRL_MAC:
		return ctrl_mac(st, cmd, data, len);
	case VIRTIO_NET_CTRL_VLAN:
		return ctrl_vlan(st, cmd, data, len);
	case VIRTIO_NET_CTRL_ANNOUNCE:
		if (!has(st->features, VIRTIO_NET_F_GUEST_ANNOUNCE) ||
		    cmd != VIRTIO_NET_CTRL_ANNOUNCE_ACK || len)
			return VIRTIO_NET_ERR;
		st->announce_pending = false;
		return VIRTIO_NET_OK;
	case VIRTIO_NET_CTRL_MQ:
		return ctrl_mq(st, cmd, data, len);
	case VIRTIO_NET_CTRL_GUEST_OFFLOADS:
		return ctrl_offloads(st, cmd, data, len);
	}
	return VIRTIO_NET_ERR;
}

uint32_t net_toeplitz(const uint8_t *key, size_t key_len, const uint8_t *in, size_t len)
{
	uint32_t hash = 0, window;
	size_t next = 4; /* next key byte to shift in */

	if (key_len < 4)
		return 0;
	/* window: the 32 key bits that line up with the current input bit. */
	window = (uint32_t)key[0] << 24 | (uint32_t)key[1] << 16 | (uint32_t)key[2] << 8 | key[3];
	for (size_t i = 0; i < len; i++) {
		uint8_t nk = next < key_len ? key[next] : 0;

		for (int b = 7; b >= 0; b--) {
			if (in[i] & (1u << b))
				hash ^= window;
			window = window << 1 | ((nk >> b) & 1);
		}
		next++;
	}
	return hash;
}

unsigned int net_rss_hash(const struct net_rss *rss, const uint8_t *frame, size_t len,
			  uint32_t *hash)
{
	const uint32_t t = rss->hash_types;
	size_t l3 = ETH_HLEN, l4;
	uint16_t type;
	uint8_t in[36], proto;
	bool frag;

	*hash = 0;
	if (!t || len < ETH_HLEN)
		return VIRTIO_NET_HASH_REPORT_NONE;
	type = (uint16_t)(frame[12] << 8 | frame[13]);
	if (type == ETH_P_8021Q && len >= ETH_HLEN + 4) {
		type = (uint16_t)(frame[16] << 8 | frame[17]);
		l3 += 4;
	}
	if (type == 0x0800 && len >= l3 + 20 && (frame[l3] >> 4) == 4) {
		const uint8_t *ip = frame + l3;

		proto = ip[9];
		frag = (ip[6] & 0x3f) || ip[7]; /* MF or a fragment offset */
		l4 = l3 + (size_t)(ip[0] & 0xf) * 4;
		memcpy(in, ip + 12, 8); /* source, destination */
		if (!frag && l4 + 4 <= len && (ip[0] & 0xf) >= 5) {
			memcpy(in + 8, frame + l4, 4); /* source port, destination port */
			if (proto == 6 && (t & VIRTIO_NET_RSS_HASH_TYPE_TCPv4)) {
				*hash = net_toeplitz(rss->key, rss->key_len, in, 12);
				return VIRTIO_NET_HASH_REPORT_TCPv4;
			}
			if (proto == 17 && (t & VIRTIO_NET_RSS_HASH_TYPE_UDPv4)) {
				*hash = net_toeplitz(rss->key, rss->key_len, in, 12);
				return VIRTIO_NET_HASH_REPORT_UDPv4;
			}
		}
		if (t & VIRTIO_NET_RSS_HASH_TYPE_IPv4) {
			*hash = net_toeplitz(rss->key, rss->key_len, in, 8);
			return VIRTIO_NET_HASH_REPORT_IPv4;
		}
		return VIRTIO_NET_HASH_REPORT_NONE;
	}
	if (type == 0x86dd && len >= l3 + 40 && (frame[l3] >> 4) == 6) {
		const uint8_t *ip = frame + l3;

		proto = ip[6]; /* extension headers are not walked: IP hash only */
		l4 = l3 + 40;
		memcpy(in, ip + 8, 32);
		if (l4 + 4 <= len) {
			memcpy(in + 32, frame + l4, 4);
			if (proto == 6 && (t & VIRTIO_NET_RSS_HASH_TYPE_TCPv6)) {
				*hash = net_toeplitz(rss->key, rss->key_len, in, 36);
				return VIRTIO_NET_HASH_REPORT_TCPv6;
			}
			if (proto == 17 && (t & VIRTIO_NET_RSS_HASH_TYPE_UDPv6)) {
				*hash = net_toeplitz(rss->key, rss->key_len, in, 36);
				return VIRTIO_NET_HASH_REPORT_UDPv6;
			}
		}
		if (t & VIRTIO_NET_RSS_HASH_TYPE_IPv6) {
			*hash = net_toeplitz(rss->key, rss->key_len, in, 32);
			return VIRTIO_NET_HASH_REPORT_IPv6;
		}
	}
	return VIRTIO_NET_HASH_REPORT_NONE;
}

static bool mac_in(const uint8_t (*macs)[ETH_ALEN], unsigned int n, const uint8_t *mac)
{
	for (unsigned int i = 0; i < n; i++) {
		if (!memcmp(macs[i], mac, ETH_ALEN))
			return true;
	}
	return false;
}

bool net_filter_accept(const struct net_filter *f, const uint8_t *frame, size_t len)
{
	static const uint8_t bcast[ETH_ALEN] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	const uint8_t *dst = frame;

	if (len < ETH_HLEN)
		return false;
	if (f->promisc)
		return true;
	if (f->vlan_filter && len >= ETH_HLEN + 4 && frame[12] == ETH_P_8021Q >> 8 &&
	    frame[13] == (ETH_P_8021Q & 0xff)) {
		unsigned int vid = ((unsigned int)frame[14] << 8 | frame[15]) & VLAN_VID_MASK;

		if (!(f->vlans[vid / 32] & (1u << (vid % 32))))
			return false;
	}
	if (dst[0] & 1) {
		if (!memcmp(dst, bcast, ETH_ALEN))
			return !f->nobcast;
		if (f->nomulti)
			return false;
		if (f->allmulti || f->multi_overflow)
			return true;
		return mac_in(f->macs + f->uni_count, f->multi_count, dst);
	}
	if (f->nouni)
		return false;
	if (f->alluni || f->uni_overflow || !memcmp(dst, f->mac, ETH_ALEN))
		return true;
	return mac_in(f->macs, f->uni_count, dst);
}

int net_tx_hdr_check(const struct virtio_net_hdr *h, uint64_t features, size_t len)
{
	uint8_t gso = h->gso_type & ~VIRTIO_NET_HDR_GSO_ECN;

	if (len < ETH_HLEN || len > NET_MAX_FRAME)
		return NET_DROP_OVERSIZE;
	/* DATA_VALID and RSC_INFO are for the device to set, never the driver's to send. */
	if (h->flags & ~VIRTIO_NET_HDR_F_NEEDS_CSUM)
		return NET_DROP_BAD_HEADER;
	if (h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
		uint32_t start = le16toh(h->csum_start), off = le16toh(h->csum_offset);

		if (!has(features, VIRTIO_NET_F_CSUM) || start + off + 2 > len)
			return NET_DROP_BAD_HEADER;
	}
	if (gso == VIRTIO_NET_HDR_GSO_NONE) {
		if (h->gso_type & VIRTIO_NET_HDR_GSO_ECN)
			return NET_DROP_BAD_HEADER;
		return -1;
	}
	switch (gso) {
	case VIRTIO_NET_HDR_GSO_TCPV4:
		if (!has(features, VIRTIO_NET_F_HOST_TSO4))
			return NET_DROP_BAD_HEADER;
		break;
	case VIRTIO_NET_HDR_GSO_TCPV6:
		if (!has(features, VIRTIO_NET_F_HOST_TSO6))
			return NET_DROP_BAD_HEADER;
		break;
	case VIRTIO_NET_HDR_GSO_UDP:
		if (!has(features, VIRTIO_NET_F_HOST_UFO))
			return NET_DROP_BAD_HEADER;
		break;
	default:
		return NET_DROP_BAD_HEADER;
	}
	if ((h->gso_type & VIRTIO_NET_HDR_GSO_ECN) && !has(features, VIRTIO_NET_F_HOST_ECN))
		return NET_DROP_BAD_HEADER;
	/* 5.1.6.2: segmentation needs the checksum offload and a segment size. */
	if (!(h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) || !le16toh(h->gso_size))
		return NET_DROP_BAD_HEADER;
	return -1;
}

void net_csum_fill(uint8_t *frame, size_t len, uint16_t csum_start, uint16_t csum_offset)
{
	uint64_t sum = 0;
	size_t i;
	uint16_t out;

	if ((size_t)csum_start + csum_offset + 2 > len)
		return;
	for (i = csum_start; i + 1 < len; i += 2)
		sum += (uint32_t)frame[i] << 8 | frame[i + 1];
	if (i < len)
		sum += (uint32_t)frame[i] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	out = (uint16_t)~sum;
	frame[csum_start + csum_offset] = (uint8_t)(out >> 8);
	frame[csum_start + csum_offset + 1] = (uint8_t)out;
}
