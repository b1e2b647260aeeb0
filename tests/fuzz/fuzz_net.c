// SPDX-License-Identifier: MIT
/*
 * fuzz_net.c - libFuzzer harness of what virtio-net parses from the guest
 * (src/devices/net_proto.c): the transmit header check with the software
 * checksum it allows, a sequence of control-queue commands, and the
 * receive filter they build applied to frames.  Checks, beyond ASan and
 * UBSan: a refused command leaves the state exactly as it was; the pair
 * count stays in 1..max; the MAC tables never hold more than 64 entries;
 * the guest's offloads stay within what was negotiated; a header that
 * passes the check has its checksum field inside the frame, and the
 * software checksum writes nothing else.
 *
 * Input: features (8 bytes, le), max pairs (1 byte), then records until
 * the input ends: a kind byte (even: a command, odd: a tx header, and
 * bit 1 also runs a frame through the filter), a length byte, that many
 * bytes.  A command record is class, command, data; a header record is
 * 12 header bytes and a 2-byte frame length.  Seeds: tests/fuzz/net-corpus.
 */
#include <endian.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "devices/net_proto.h"

#define GUARD 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_state(const struct net_ctrl_state *st)
{
	CHECK(st->pairs >= 1 && st->pairs <= st->max_pairs);
	CHECK(st->filter.uni_count + st->filter.multi_count <= NET_MAC_TABLE_ENTRIES);
	CHECK((st->guest_offloads & ~st->features) == 0);
}

static void tx_header(const uint8_t *rec, size_t len, uint64_t features)
{
	static uint8_t frame[NET_MAX_FRAME + 2 * GUARD];
	struct virtio_net_hdr h;
	size_t flen;
	int why;

	if (len < sizeof(h) + 2)
		return;
	memcpy(&h, rec, sizeof(h));
	flen = rec[sizeof(h)] | (size_t)rec[sizeof(h) + 1] << 8;
	if (rec[0] & 0x80)
		flen += 65536 - 512; /* reach the 64 KiB limit from both sides */
	why = net_tx_hdr_check(&h, features, flen);
	CHECK(why >= -1 && why < NET_DROP__COUNT);
	if (why >= 0 || !(h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM))
		return;
	/* Accepted with a partial checksum: the field is inside the frame. */
	CHECK((size_t)le16toh(h.csum_start) + le16toh(h.csum_offset) + 2 <= flen);
	memset(frame, 0x5a, GUARD);
	memset(frame + GUARD + flen, 0x5a, GUARD);
	net_csum_fill(frame + GUARD, flen, le16toh(h.csum_start), le16toh(h.csum_offset));
	for (size_t i = 0; i < GUARD; i++) {
		CHECK(frame[i] == 0x5a);
		CHECK(frame[GUARD + flen + i] == 0x5a);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct net_ctrl_state st, before;
	static const uint8_t mac[6] = {0x52, 0x54, 0, 0x12, 0x34, 0x56};
	uint64_t features;
	size_t off = 9;

	if (size < 9)
		return 0;
	memcpy(&features, data, 8);
	features = le64toh(features);
	net_ctrl_reset(&st, mac, features, (uint16_t)(data[8] % 32 + 1));
	check_state(&st);

	while (off + 2 <= size) {
		uint8_t kind = data[off], len = data[off + 1];
		const uint8_t *rec = data + off + 2;

		if (off + 2 + len > size)
			len = (uint8_t)(size - off - 2);
		off += 2u + len;
		if (kind & 1) {
			tx_header(rec, len, features);
		} else if (len >= 2) {
			uint8_t ack;

			before = st;
			ack = net_ctrl_exec(&st, rec[0], rec[1], rec + 2, len - 2u);
			CHECK(ack == VIRTIO_NET_OK || ack == VIRTIO_NET_ERR);
			if (ack == VIRTIO_NET_ERR)
				CHECK(!memcmp(&before, &st, sizeof(st)));
			check_state(&st);
		}
		if (kind & 2)
			(void)net_filter_accept(&st.filter, rec, len);
	}
	return 0;
}
