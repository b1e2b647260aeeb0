// SPDX-License-Identifier: MIT
/*
 * ring_pair.c - the device-side view of a ring our driver side laid out.
 */
#include <errno.h>

#include "ring_fixture.h"
#include "ring_pair.h"

int ring_pair_config(struct virtq_config *vc, struct memmap *mem,
		     const struct virtq_drv_addrs *addrs, uint16_t num, uint64_t features,
		     const char *name)
{
	bool packed = features & FEAT(VIRTIO_F_RING_PACKED);
	/* What the device reads and writes of each area (2.7, 2.8.10). */
	size_t desc_size = (size_t)num * 16;
	size_t driver_size =
		packed ? sizeof(struct vring_packed_desc_event) : vring_avail_size(num);
	size_t device_size = packed ? sizeof(struct vring_packed_desc_event) : vring_used_size(num);

	*vc = (struct virtq_config){
		.num = num,
		.features = features,
		.base = fix_fresh_base(packed),
		.mem = mem,
		.name = name,
		.desc = memmap_gpa_to_hva(mem, addrs->desc, desc_size),
		.driver_area = memmap_gpa_to_hva(mem, addrs->driver_area, driver_size),
		.device_area = memmap_gpa_to_hva(mem, addrs->device_area, device_size),
	};
	if (!vc->desc || !vc->driver_area || !vc->device_area)
		return -EFAULT;
	return 0;
}
