// SPDX-License-Identifier: MIT
/*
 * blk_features.c SOCKET - connect to a vhost-user-blk device as a driver
 * that accepts every block feature, and print the optional commands the
 * device offered, as words: "flush discard write-zeroes ro" (those
 * present, in that order; "none" for none).  Exit 1 if the device cannot
 * be reached.  The NBD test checks with it that vhostd offers only what
 * the NBD server can do.
 */
#include <stdio.h>

#include "devices/virtio_blk.h"
#include "vhost-user/frontend.h"

int main(int argc, char **argv)
{
	static const struct {
		unsigned int bit;
		const char *name;
	} words[] = {
		{VIRTIO_BLK_F_FLUSH, "flush"},
		{VIRTIO_BLK_F_DISCARD, "discard"},
		{VIRTIO_BLK_F_WRITE_ZEROES, "write-zeroes"},
		{VIRTIO_BLK_F_RO, "ro"},
	};
	struct vu_fe_config cfg = {
		.mem_size = 1u << 20,
		.num_queues = 1,
		.queue_size = 16,
		.features = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_BLK_F_FLUSH |
			    1ull << VIRTIO_BLK_F_DISCARD | 1ull << VIRTIO_BLK_F_WRITE_ZEROES |
			    1ull << VIRTIO_BLK_F_RO,
	};
	struct vu_fe *fe;
	uint64_t f;
	int n = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: blk_features SOCKET\n");
		return 2;
	}
	cfg.socket_path = argv[1];
	fe = vu_fe_connect(&cfg);
	if (!fe)
		return 1;
	f = vu_fe_features(fe);
	for (unsigned int i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (f & (1ull << words[i].bit))
			printf("%s%s", n++ ? " " : "", words[i].name);
	printf("%s\n", n ? "" : "none");
	vu_fe_disconnect(fe);
	return 0;
}
