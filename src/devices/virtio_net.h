/* SPDX-License-Identifier: MIT */
/*
 * virtio_net.h - the virtio network device's wire format (virtio 1.2,
 * 5.1): feature bits, the packet header, the control queue's classes and
 * commands, and the configuration space.  Little-endian throughout; the
 * numbers are the spec's (as in Linux's include/uapi/linux/virtio_net.h),
 * written out here so that the build needs no kernel headers.
 */
#ifndef VHOSTD_DEVICES_VIRTIO_NET_H
#define VHOSTD_DEVICES_VIRTIO_NET_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#define VIRTIO_ID_NET 1

/* Feature bits (5.1.3). */
#define VIRTIO_NET_F_CSUM		 0
#define VIRTIO_NET_F_GUEST_CSUM		 1
#define VIRTIO_NET_F_CTRL_GUEST_OFFLOADS 2
#define VIRTIO_NET_F_MTU		 3
#define VIRTIO_NET_F_MAC		 5
#define VIRTIO_NET_F_GUEST_TSO4		 7
#define VIRTIO_NET_F_GUEST_TSO6		 8
#define VIRTIO_NET_F_GUEST_ECN		 9
#define VIRTIO_NET_F_GUEST_UFO		 10
#define VIRTIO_NET_F_HOST_TSO4		 11
#define VIRTIO_NET_F_HOST_TSO6		 12
#define VIRTIO_NET_F_HOST_ECN		 13
#define VIRTIO_NET_F_HOST_UFO		 14
#define VIRTIO_NET_F_MRG_RXBUF		 15
#define VIRTIO_NET_F_STATUS		 16
#define VIRTIO_NET_F_CTRL_VQ		 17
#define VIRTIO_NET_F_CTRL_RX		 18
#define VIRTIO_NET_F_CTRL_VLAN		 19
#define VIRTIO_NET_F_CTRL_RX_EXTRA	 20
#define VIRTIO_NET_F_GUEST_ANNOUNCE	 21
#define VIRTIO_NET_F_MQ			 22
#define VIRTIO_NET_F_CTRL_MAC_ADDR	 23
#define VIRTIO_NET_F_HASH_REPORT	 57
#define VIRTIO_NET_F_RSS		 60

/* config.status (5.1.4). */
#define VIRTIO_NET_S_LINK_UP  1
#define VIRTIO_NET_S_ANNOUNCE 2

/* virtio_net_hdr.flags and gso_type (5.1.6). */
#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1
#define VIRTIO_NET_HDR_F_DATA_VALID 2
#define VIRTIO_NET_HDR_F_RSC_INFO   4
#define VIRTIO_NET_HDR_GSO_NONE	    0
#define VIRTIO_NET_HDR_GSO_TCPV4    1
#define VIRTIO_NET_HDR_GSO_UDP	    3
#define VIRTIO_NET_HDR_GSO_TCPV6    4
#define VIRTIO_NET_HDR_GSO_UDP_L4   5
#define VIRTIO_NET_HDR_GSO_ECN	    0x80

/*
 * The header in front of every packet: 12 bytes with VERSION_1 or
 * MRG_RXBUF (num_buffers), 10 bytes for a legacy driver without either.
 */
struct virtio_net_hdr {
	uint8_t flags;
	uint8_t gso_type;
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
	uint16_t num_buffers;
};
static_assert(sizeof(struct virtio_net_hdr) == 12, "virtio_net_hdr layout");
#define VIRTIO_NET_HDR_LEGACY_LEN 10

/* With VIRTIO_NET_F_HASH_REPORT every header is this one (5.1.6). */
struct virtio_net_hdr_v1_hash {
	struct virtio_net_hdr hdr;
	uint32_t hash_value;
	uint16_t hash_report;
	uint16_t padding;
};
static_assert(sizeof(struct virtio_net_hdr_v1_hash) == 20, "virtio_net_hdr_v1_hash layout");

/* Hash types (5.1.6.4.3.1) and the report values (5.1.6.4.4). */
#define VIRTIO_NET_RSS_HASH_TYPE_IPv4  (1u << 0)
#define VIRTIO_NET_RSS_HASH_TYPE_TCPv4 (1u << 1)
#define VIRTIO_NET_RSS_HASH_TYPE_UDPv4 (1u << 2)
#define VIRTIO_NET_RSS_HASH_TYPE_IPv6  (1u << 3)
#define VIRTIO_NET_RSS_HASH_TYPE_TCPv6 (1u << 4)
#define VIRTIO_NET_RSS_HASH_TYPE_UDPv6 (1u << 5)
#define VIRTIO_NET_HASH_REPORT_NONE    0
#define VIRTIO_NET_HASH_REPORT_IPv4    1
#define VIRTIO_NET_HASH_REPORT_TCPv4   2
#define VIRTIO_NET_HASH_REPORT_UDPv4   3
#define VIRTIO_NET_HASH_REPORT_IPv6    4
#define VIRTIO_NET_HASH_REPORT_TCPv6   5
#define VIRTIO_NET_HASH_REPORT_UDPv6   6

/* Control queue (5.1.6.5): class, command, data, then the ack byte. */
struct virtio_net_ctrl_hdr {
	uint8_t class;
	uint8_t cmd;
};
#define VIRTIO_NET_OK  0
#define VIRTIO_NET_ERR 1

#define VIRTIO_NET_CTRL_RX	    0
#define VIRTIO_NET_CTRL_RX_PROMISC  0
#define VIRTIO_NET_CTRL_RX_ALLMULTI 1
#define VIRTIO_NET_CTRL_RX_ALLUNI   2
#define VIRTIO_NET_CTRL_RX_NOMULTI  3
#define VIRTIO_NET_CTRL_RX_NOUNI    4
#define VIRTIO_NET_CTRL_RX_NOBCAST  5

#define VIRTIO_NET_CTRL_MAC	      1
#define VIRTIO_NET_CTRL_MAC_TABLE_SET 0
#define VIRTIO_NET_CTRL_MAC_ADDR_SET  1

#define VIRTIO_NET_CTRL_VLAN	 2
#define VIRTIO_NET_CTRL_VLAN_ADD 0
#define VIRTIO_NET_CTRL_VLAN_DEL 1

#define VIRTIO_NET_CTRL_ANNOUNCE     3
#define VIRTIO_NET_CTRL_ANNOUNCE_ACK 0

#define VIRTIO_NET_CTRL_MQ		4
#define VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET 0
#define VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN 1
#define VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MAX 0x8000
#define VIRTIO_NET_CTRL_MQ_RSS_CONFIG	1
#define VIRTIO_NET_CTRL_MQ_HASH_CONFIG	2

#define VIRTIO_NET_CTRL_GUEST_OFFLOADS	   5
#define VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET 0

/* Configuration space (5.1.4), up to the fields we fill. */
struct virtio_net_config {
	uint8_t mac[6];
	uint16_t status;
	uint16_t max_virtqueue_pairs;
	uint16_t mtu;
	uint32_t speed;
	uint8_t duplex;
	uint8_t rss_max_key_size;
	uint16_t rss_max_indirection_table_length;
	uint32_t supported_hash_types;
} __attribute__((packed));
static_assert(sizeof(struct virtio_net_config) == 24, "virtio_net_config layout");
static_assert(offsetof(struct virtio_net_config, mtu) == 10, "virtio_net_config mtu");

#define ETH_ALEN      6
#define ETH_HLEN      14
#define ETH_P_8021Q   0x8100
#define VLAN_VID_MASK 0x0fff

#endif /* VHOSTD_DEVICES_VIRTIO_NET_H */
