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
 *                           "mtu", "connected", "active"}, ...]}
 *   stats [{"name": N}] -> {"devices": [{"id", "read"/"write"/"discard"/
 *                           "flush": {"ios", "merges", "sectors", "ticks-ms"},
 *                           "in-flight", "io-ticks-ms", "time-in-queue-ms",
 *                           "diskstats": "<one /proc/diskstats line>"}, ...],
 *                           "time-ns": the daemon's monotonic clock, for rates}
 *                          (virtio-scsi: one entry per LUN, "id" "ID:T:L";
 *                           NAME is a controller, a LUN or a blk device;
 *                           virtio-net: {"id", "type": "net", "kernel-drops",
 *                           "queues": [{"name": "rx0"|"tx0"|...|"ctrl",
 *                           "packets", "bytes", "drops": {CAUSE: n, ...},
 *                           "no-buffers", "steered", "kicks",
 *                           "notifications"}, ...], "lines": [...]})
 *   scsi-add-lun {"name": CTRL, "target": T, "lun": L, "path": FILE
 *                 | "backend": "null" + "size": BYTES, ["readonly": bool,
 *                 "serial", "cache", "block-size"]} -> {}
 *   scsi-remove-lun {"name", "target", "lun"} -> {} (after its I/O finished)
 *   scsi-resize {"name", "target", "lun"} -> {} (the image's size read again)
 *   version             -> {"name": "vhostd", "version": "X.Y.Z"}
 *   device-add {"type": "blk" | "scsi" | "lun" | "net", KEY: VALUE, ...}
 *                       -> the device-show object of what was added.  The
 *                          keys are those of --blk / --scsi / --lun / --net, values
 *                          strings, integers or booleans (devkind.h)
 *   device-remove {"name": ID | "CTRL:T:L"[, "force": bool]} -> {}
 *                          (refused while a front-end drives the device,
 *                          unless force; see devset.h)
 *   device-show {"name"} -> one list-devices entry (a LUN: its entry with
 *                          "type": "lun", "scsi", "connected")
 *   save-config         -> {"devices": [device-add params, ...]}, what
 *                          vhostd --config reads
 *
 * The methods run on the daemon's event loop thread, like the vhost-user
 * back-ends, so they never race with a device being set up or torn down.
 */
#ifndef VHOSTD_DAEMON_RPC_H
#define VHOSTD_DAEMON_RPC_H

#include "control.h"

/* The opaque pointer every method gets is the daemon's struct devset. */

/* The method table for ctl_server_new(), NULL-terminated. */
extern const struct ctl_method rpc_methods[];

#endif /* VHOSTD_DAEMON_RPC_H */
