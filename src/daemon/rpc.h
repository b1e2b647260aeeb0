/* SPDX-License-Identifier: MIT */
/*
 * rpc.h - the control methods vhostd serves on its JSON-RPC socket.
 *
 *   list-devices        -> {"devices": [{"id", "type": "blk", "path", "socket",
 *                           "capacity" (512-byte sectors), "size" (bytes),
 *                           "readonly", "num-queues", "queue-size", "cache",
 *                           "connected"}, ..., {"id", "type": "scsi", "socket",
 *                           "num-queues", "queue-size", "connected", "luns":
 *                           [{"name": "ID:T:L", "target", "lun", "backend",
 *                           "path", "block-size", "blocks", "size",
 *                           "readonly", "cache", "serial"}, ...]}, ...,
 *                           {"id", "type": "net", "socket", "backend",
 *                           "interface", "mac", "queues", "queue-size",
 *                           "mtu", "connected"}, ...]}
 *   stats [{"name": N}] -> {"devices": [{"id", "read"/"write"/"discard"/
 *                           "flush": {"ios", "merges", "sectors", "ticks-ms"},
 *                           "in-flight", "io-ticks-ms", "time-in-queue-ms",
 *                           "diskstats": "<one /proc/diskstats line>"}, ...]}
 *                          (virtio-scsi: one entry per LUN, "id" "ID:T:L";
 *                           NAME is a controller, a LUN or a blk device;
 *                           virtio-net: {"id", "type": "net", "kernel-drops",
 *                           "queues": [{"name": "rx0"|"tx0"|...|"ctrl",
 *                           "packets", "bytes", "drops": {CAUSE: n, ...},
 *                           "no-buffers", "kicks", "notifications"}, ...],
 *                           "lines": ["ID QUEUE packets bytes ...", ...]})
 *   scsi-add-lun {"name": CTRL, "target": T, "lun": L, "path": FILE
 *                 | "backend": "null" + "size": BYTES, ["readonly": bool,
 *                 "serial", "cache", "block-size"]} -> {}
 *   scsi-remove-lun {"name", "target", "lun"} -> {} (after its I/O finished)
 *   scsi-resize {"name", "target", "lun"} -> {} (the image's size read again)
 *   version             -> {"name": "vhostd", "version": "X.Y.Z"}
 *
 * The methods run on the daemon's event loop thread, like the vhost-user
 * back-ends, so they never race with a device being set up or torn down.
 */
#ifndef VHOSTD_DAEMON_RPC_H
#define VHOSTD_DAEMON_RPC_H

#include "control.h"

struct blk_dev;
struct scsi_dev;
struct net_dev;

/* The opaque pointer every method gets: the daemon's devices. */
struct rpc_devices {
	struct blk_dev **devs;
	unsigned int count;
	struct scsi_dev **scsi_devs;
	unsigned int nscsi;
	struct net_dev **net_devs;
	unsigned int nnet;
};

/* The method table for ctl_server_new(), NULL-terminated. */
extern const struct ctl_method rpc_methods[];

#endif /* VHOSTD_DAEMON_RPC_H */
