/* SPDX-License-Identifier: MIT */
/*
 * devkind.h - the kinds of device vhostd serves (blk, scsi, the LUNs of a
 * scsi controller, net), as one table.
 *
 * A kind is everything the daemon needs to know about a device model and
 * nothing about how the daemon uses it: its option keys (the model's own
 * key=value parser, the one --blk / --scsi / --lun use, is the only source
 * of truth for keys: JSON params are turned into that string first), how
 * to start and tear down one, how to describe it, count its I/O and write
 * it back as the device-add object that rebuilds it.  The command line
 * (--KIND SPEC), --config, device-add, device-remove, device-show,
 * list-devices, stats and save-config all walk this table, so a new device
 * model plugs in with one entry in devkind.c.
 *
 * A kind with a parent (a LUN: parent "scsi") is not a device of its own:
 * its options name the parent device (info().parent), which starts with
 * them (create's @children) or takes them at run time (add_child).
 *
 * Every call runs on the daemon's event loop thread (or before it runs).
 */
#ifndef VHOSTD_DAEMON_DEVKIND_H
#define VHOSTD_DAEMON_DEVKIND_H

#include <stdbool.h>
#include <stddef.h>

struct json_object;
struct blk_stats;
struct metrics;
struct vu_dev;

/* What the daemon checks across devices, read from a kind's options. */
struct devkind_info {
	char name[64];	    /* the id, or "CTRL:T:L" for a LUN */
	const char *socket; /* NULL: none (a LUN) */
	bool client;
	int io_thread;	   /* -1: spread */
	const char *image; /* NULL: none (backend=null, a controller) */
	bool readonly;
	const char *parent; /* the parent device's id, or NULL */
};

/*
 * A disk's stats object: "id", "read"/"write"/"discard"/"flush" {"ios",
 * "merges", "sectors", "ticks-ms"}, "in-flight", "io-ticks-ms",
 * "time-in-queue-ms" and "diskstats" (its /proc/diskstats line).
 */
struct json_object *devkind_disk_stats(const struct blk_stats *st, const char *name);

struct devkind {
	const char *name;   /* "blk": device-add's "type" and the --blk option */
	const char *parent; /* "scsi" for a LUN; NULL for a device */
	size_t opts_size;   /* sizeof its options struct */

	/* The model's key=value parser: 0 or -EINVAL, message in @err. */
	int (*parse)(const char *spec, void *opts, char *err, size_t err_len);
	void (*info)(const void *opts, struct devkind_info *info);

	/* Devices only (parent == NULL). */
	/* Start with @nchildren options of the child kind.  NULL, message in @err. */
	void *(*create)(const void *opts, const void *children, unsigned int nchildren, void *loop,
			char *err, size_t err_len);
	/* Stop taking requests, finish those in flight, close, unlink the socket. */
	void (*destroy)(void *dev);
	const char *(*id)(const void *dev);
	/* The options it runs with (for info()). */
	const void *(*options)(const void *dev);
	bool (*connected)(const void *dev);
	/* Is the front-end driving it (any queue started)? */
	bool (*active)(void *dev);
	/* Its vhost-user device (for a forced removal: vu_dev_retire). */
	struct vu_dev *(*vu)(void *dev);
	/* The list-devices / device-show object. */
	struct json_object *(*describe)(void *dev);
	/* Append to @arr the device-add objects that rebuild it, children after it. */
	void (*save)(void *dev, struct json_object *arr);
	/*
	 * Append the stats method's objects to @arr: one per disk for a
	 * block device (devkind_disk_stats()), whatever fits for another kind
	 * ("id" and "type" at least); @name NULL: all, else the device's id
	 * or a child's name.  True if @name matched.  Optional.
	 */
	bool (*stats)(void *dev, const char *name, struct json_object *arr);
	/* Its samples for a scrape (metrics.h); connected/active are added for it. */
	void (*metrics)(void *dev, struct metrics *m);

	/* Devices with children only.  0, or -errno with a message in @err. */
	int (*add_child)(void *dev, const void *child_opts, char *err, size_t err_len);
	int (*remove_child)(void *dev, const char *name, char *err, size_t err_len);
	/* The child @name's describe object, or NULL if it has none by that name. */
	struct json_object *(*describe_child)(void *dev, const char *name);
};

/* The table, NULL-terminated. */
extern const struct devkind *const devkinds[];

const struct devkind *devkind_find(const char *name);
/* The kind whose parent is @kind, or NULL. */
const struct devkind *devkind_child_of(const struct devkind *kind);

/*
 * Turn device-add params (a JSON object of strings, integers and booleans)
 * into the kind's key=value spec, skipping "type": booleans become on/off,
 * a ',' in a value is doubled (kvopts.h).  0, or -EINVAL with a message
 * naming the key.
 */
int devkind_spec_from_json(struct json_object *params, char *spec, size_t len, char *err,
			   size_t err_len);

/* Add "key": value to a save() object. */
void devkind_save_str(struct json_object *o, const char *key, const char *val);
void devkind_save_u64(struct json_object *o, const char *key, unsigned long long val);
void devkind_save_bool(struct json_object *o, const char *key, bool val);
/* The keys every vhost-user device takes (engine/devopts.h). */
void devkind_save_common(struct json_object *o, const char *id, const char *socket, bool client,
			 unsigned int poll_us, int io_thread, unsigned long long max_guest_memory);

/* virtio-net (devkind_net.c). */
extern const struct devkind devkind_net;

#endif /* VHOSTD_DAEMON_DEVKIND_H */
