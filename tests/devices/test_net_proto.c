// SPDX-License-Identifier: MIT
/*
 * test_net_proto.c - the RSS hash (net_proto.c) against the Toeplitz test
 * vectors of Microsoft's "Verifying the RSS Hash Calculation", which the
 * virtio spec (5.1.6.4.3.1) refers to: the same key, five IPv4 and three
 * IPv6 flows, hashed over addresses only and over addresses and TCP
 * ports.  The frames are built here, so the classification (Ethernet,
 * VLAN, IPv4/IPv6, TCP/UDP, fragments) is tested on the way: the IP-only
 * value must come out for a fragment and for a type that is not enabled.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "devices/net_proto.h"

static const uint8_t ms_key[40] = {
	0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
	0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
	0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
};

struct vec {
	const char *dst, *src;
	uint16_t dport, sport;
	uint32_t ip, tcp;
};

static const struct vec v4[] = {
	{"161.142.100.80", "66.9.149.187", 1766, 2794, 0x323e8fc2, 0x51ccc178},
	{"65.69.140.83", "199.92.111.2", 4739, 14230, 0xd718262a, 0xc626b0ea},
	{"12.22.207.184", "24.19.198.95", 38024, 12898, 0xd2d0a5de, 0x5c2b394a},
	{"209.142.163.6", "38.27.205.30", 2217, 48228, 0x82989176, 0xafc7327f},
	{"202.188.127.2", "153.39.163.191", 1303, 44251, 0x5d1809c5, 0x10e828a2},
};

static const struct vec v6[] = {
	{"3ffe:2501:200:3::1", "3ffe:2501:200:1fff::7", 1766, 2794, 0x2cc18cd5, 0x40207d3d},
	{"ff02::1", "3ffe:501:8::260:97ff:fe40:efab", 4739, 14230, 0x0f0c461c, 0xdde51bbf},
	{"fe80::200:f8ff:fe21:67cf", "3ffe:1900:4545:3:200:f8ff:fe21:67cf", 38024, 44251,
	 0x4b61e985, 0x02d1feef},
};

/* Ethernet (+ VLAN tag), IPv4 or IPv6, TCP ports; returns the length. */
static size_t build(uint8_t *f, const struct vec *v, bool ipv6, bool vlan, uint8_t proto, bool frag)
{
	size_t l3 = 14;
	uint16_t dp = htons(v->dport), sp = htons(v->sport);

	memset(f, 0, 128);
	if (vlan) {
		f[12] = 0x81;
		f[14] = 0;
		f[15] = 5;
		l3 += 4;
	}
	f[l3 - 2] = ipv6 ? 0x86 : 0x08;
	f[l3 - 1] = ipv6 ? 0xdd : 0x00;
	if (ipv6) {
		f[l3] = 0x60;
		f[l3 + 6] = proto;
		CHECK(inet_pton(AF_INET6, v->src, f + l3 + 8) == 1);
		CHECK(inet_pton(AF_INET6, v->dst, f + l3 + 24) == 1);
		memcpy(f + l3 + 40, &sp, 2);
		memcpy(f + l3 + 42, &dp, 2);
		return l3 + 40 + 20;
	}
	f[l3] = 0x45;
	f[l3 + 9] = proto;
	if (frag)
		f[l3 + 6] = 0x20; /* more fragments */
	CHECK(inet_pton(AF_INET, v->src, f + l3 + 12) == 1);
	CHECK(inet_pton(AF_INET, v->dst, f + l3 + 16) == 1);
	memcpy(f + l3 + 20, &sp, 2);
	memcpy(f + l3 + 22, &dp, 2);
	return l3 + 20 + 20;
}

static struct net_rss rss_of(uint32_t types)
{
	struct net_rss r = {.hash_types = types, .key_len = 40};

	memcpy(r.key, ms_key, 40);
	return r;
}

int main(void)
{
	uint8_t f[128];
	uint32_t h;
	struct net_rss all = rss_of(NET_RSS_HASH_TYPES);
	struct net_rss ip4 = rss_of(VIRTIO_NET_RSS_HASH_TYPE_IPv4);

	for (unsigned int i = 0; i < ARRAY_SIZE(v4); i++) {
		for (int vlan = 0; vlan < 2; vlan++) {
			size_t n = build(f, &v4[i], false, vlan, 6, false);

			CHECK_EQ(net_rss_hash(&all, f, n, &h), VIRTIO_NET_HASH_REPORT_TCPv4);
			CHECK_MSG(h == v4[i].tcp, "v4 %u tcp: %#x, want %#x", i, h, v4[i].tcp);
			CHECK_EQ(net_rss_hash(&ip4, f, n, &h), VIRTIO_NET_HASH_REPORT_IPv4);
			CHECK_MSG(h == v4[i].ip, "v4 %u ip: %#x, want %#x", i, h, v4[i].ip);
			/* A fragment has no ports to hash: the IP hash. */
			n = build(f, &v4[i], false, vlan, 6, true);
			CHECK_EQ(net_rss_hash(&all, f, n, &h), VIRTIO_NET_HASH_REPORT_IPv4);
			CHECK_EQ(h, v4[i].ip);
			/* UDP with only TCPv4 and IPv4 enabled: the IP hash. */
			n = build(f, &v4[i], false, vlan, 17, false);
			{
				struct net_rss r = rss_of(VIRTIO_NET_RSS_HASH_TYPE_TCPv4 |
							  VIRTIO_NET_RSS_HASH_TYPE_IPv4);

				CHECK_EQ(net_rss_hash(&r, f, n, &h), VIRTIO_NET_HASH_REPORT_IPv4);
				CHECK_EQ(h, v4[i].ip);
			}
			/* With UDPv4 the same ports hash as TCP's do. */
			CHECK_EQ(net_rss_hash(&all, f, n, &h), VIRTIO_NET_HASH_REPORT_UDPv4);
			CHECK_EQ(h, v4[i].tcp);
		}
	}
	for (unsigned int i = 0; i < ARRAY_SIZE(v6); i++) {
		struct net_rss ip6 = rss_of(VIRTIO_NET_RSS_HASH_TYPE_IPv6);
		size_t n = build(f, &v6[i], true, false, 6, false);

		CHECK_EQ(net_rss_hash(&all, f, n, &h), VIRTIO_NET_HASH_REPORT_TCPv6);
		CHECK_MSG(h == v6[i].tcp, "v6 %u tcp: %#x, want %#x", i, h, v6[i].tcp);
		CHECK_EQ(net_rss_hash(&ip6, f, n, &h), VIRTIO_NET_HASH_REPORT_IPv6);
		CHECK_MSG(h == v6[i].ip, "v6 %u ip: %#x, want %#x", i, h, v6[i].ip);
		/* IPv4-only types on an IPv6 frame: no hash. */
		CHECK_EQ(net_rss_hash(&ip4, f, n, &h), VIRTIO_NET_HASH_REPORT_NONE);
	}
	/* Not IP, runts: no hash. */
	memset(f, 0, sizeof(f));
	f[12] = 0x88;
	f[13] = 0xb5;
	CHECK_EQ(net_rss_hash(&all, f, 60, &h), VIRTIO_NET_HASH_REPORT_NONE);
	CHECK_EQ(net_rss_hash(&all, f, 10, &h), VIRTIO_NET_HASH_REPORT_NONE);
	printf("ok\n");
	return 0;
}
