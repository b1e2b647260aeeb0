// SPDX-License-Identifier: MIT
/*
 * rpc.c - vhostd's control methods: what the devices are and how busy.
 */
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "devices/blk.h"
#include "devices/scsi.h"
#include "rpc.h"

#ifndef VHOSTD_VERSION
#define VHOSTD_VERSION "unknown"
#endif

static const char *const cache_names[] = {
	[BLK_CACHE_NONE] = "none",
	[BLK_CACHE_WRITEBACK] = "writeback",
};

static const char *const stat_dir_names[BLK_STAT__COUNT] = {
	[BLK_STAT_READ] = "read",
	[BLK_STAT_WRITE] = "write",
	[BLK_STAT_DISCARD] = "discard",
	[BLK_STAT_FLUSH] = "flush",
};

static void add_str(struct json_object *obj, const char *key, const char *val)
{
	json_object_object_add(obj, key, json_object_new_string(val));
}

static void add_u64(struct json_object *obj, const char *key, uint64_t val)
{
	json_object_object_add(obj, key, json_object_new_uint64(val));
}

static struct json_object *device_describe(struct blk_dev *dev)
{
	const struct blk_options *o = blk_dev_options(dev);
	struct json_object *d = json_object_new_object();
	uint64_t sectors = blk_dev_capacity_sectors(dev);

	add_str(d, "id", blk_dev_id(dev));
	add_str(d, "type", "blk");
	add_str(d, "backend", blk_disk_backend_name(o->backend));
	add_str(d, "path", o->path);
	add_str(d, "socket", o->socket);
	add_u64(d, "capacity", sectors);
	add_u64(d, "size", sectors * 512);
	json_object_object_add(d, "readonly", json_object_new_boolean(o->readonly));
	add_u64(d, "num-queues", o->num_queues);
	add_u64(d, "queue-size", o->queue_size);
	add_str(d, "cache", o->cache <= BLK_CACHE_WRITEBACK ? cache_names[o->cache] : "?");
	json_object_object_add(d, "connected", json_object_new_boolean(blk_dev_connected(dev)));
	return d;
}

static struct json_object *scsi_describe(struct scsi_dev *dev)
{
	const struct scsi_options *o = scsi_dev_options(dev);
	struct json_object *d = json_object_new_object(), *arr = json_object_new_array();

	add_str(d, "id", scsi_dev_id(dev));
	add_str(d, "type", "scsi");
	add_str(d, "socket", o->socket);
	add_u64(d, "num-queues", o->num_queues);
	add_u64(d, "queue-size", o->queue_size);
	json_object_object_add(d, "connected", json_object_new_boolean(scsi_dev_connected(dev)));
	for (unsigned int i = 0; i < scsi_dev_nr_luns(dev); i++) {
		const struct scsi_lun_options *l = scsi_dev_lun_options(dev, i);
		struct json_object *lun;
		uint64_t blocks;
		uint32_t bs;

		if (!l)
			continue; /* a free slot */
		lun = json_object_new_object();
		blocks = scsi_dev_lun_blocks(dev, i);
		bs = scsi_dev_lun_block_size(dev, i);

		add_str(lun, "name", scsi_dev_lun_name(dev, i));
		add_u64(lun, "target", l->target);
		add_u64(lun, "lun", l->lun);
		add_str(lun, "backend", blk_disk_backend_name(l->backend));
		add_str(lun, "path", l->path);
		add_u64(lun, "block-size", bs);
		add_u64(lun, "blocks", blocks);
		add_u64(lun, "size", blocks * bs);
		json_object_object_add(lun, "readonly", json_object_new_boolean(l->readonly));
		add_str(lun, "cache",
			l->cache <= BLK_CACHE_WRITEBACK ? cache_names[l->cache] : "?");
		add_str(lun, "serial", l->serial);
		json_object_array_add(arr, lun);
	}
	json_object_object_add(d, "luns", arr);
	return d;
}

static int rpc_list_devices(void *opaque, struct json_object *params, struct json_object **result,
			    char *err, size_t err_len)
{
	struct rpc_devices *devs = opaque;
	struct json_object *arr = json_object_new_array();

	for (unsigned int i = 0; i < devs->count; i++)
		json_object_array_add(arr, device_describe(devs->devs[i]));
	for (unsigned int i = 0; i < devs->nscsi; i++)
		json_object_array_add(arr, scsi_describe(devs->scsi_devs[i]));
	*result = json_object_new_object();
	json_object_object_add(*result, "devices", arr);
	return 0;
}

/* The /proc/diskstats line, without the newline that file has. */
static const char *diskstats_line(const struct blk_stats *st, const char *name, char *buf,
				  size_t len)
{
	size_t n;

	blk_stats_format(st, name, buf, len);
	n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return buf;
}

static struct json_object *stats_object(const struct blk_stats *st_in, const char *id)
{
	struct json_object *d = json_object_new_object(), *dir;
	const struct blk_stats st = *st_in;
	char line[512];

	add_str(d, "id", id);
	for (int i = 0; i < BLK_STAT__COUNT; i++) {
		dir = json_object_new_object();
		add_u64(dir, "ios", st.ios[i]);
		add_u64(dir, "merges", st.merges[i]);
		add_u64(dir, "sectors", st.sectors[i]);
		add_u64(dir, "ticks-ms", st.ticks_ms[i]);
		json_object_object_add(d, stat_dir_names[i], dir);
	}
	add_u64(d, "in-flight", st.in_flight);
	add_u64(d, "io-ticks-ms", st.io_ticks_ms);
	add_u64(d, "time-in-queue-ms", st.time_in_queue_ms);
	add_str(d, "diskstats", diskstats_line(&st, id, line, sizeof(line)));
	return d;
}

static struct json_object *stats_describe(struct blk_dev *dev)
{
	struct blk_stats st;

	blk_dev_get_stats(dev, &st);
	return stats_object(&st, blk_dev_id(dev));
}

/* The optional device name: {"name": "vda"} or ["vda"]. */
static int stats_name(struct json_object *params, const char **name, char *err, size_t err_len)
{
	struct json_object *n = NULL;

	*name = NULL;
	if (!params)
		return 0;
	if (json_object_is_type(params, json_type_array)) {
		if (json_object_array_length(params) > 1)
			goto bad;
		n = json_object_array_get_idx(params, 0);
	} else if (json_object_object_length(params) > 1 ||
		   (json_object_object_length(params) == 1 &&
		    !json_object_object_get_ex(params, "name", &n))) {
		goto bad;
	} else {
		json_object_object_get_ex(params, "name", &n);
	}
	if (!n)
		return 0;
	if (!json_object_is_type(n, json_type_string))
		goto bad;
	*name = json_object_get_string(n);
	return 0;
bad:
	snprintf(err, err_len, "stats takes one optional parameter: the device name");
	return CTL_ERR_INVALID_PARAMS;
}

static int rpc_stats(void *opaque, struct json_object *params, struct json_object **result,
		     char *err, size_t err_len)
{
	struct rpc_devices *devs = opaque;
	struct json_object *arr;
	const char *name;
	bool found = false;
	int ret;

	ret = stats_name(params, &name, err, err_len);
	if (ret)
		return ret;
	arr = json_object_new_array();
	for (unsigned int i = 0; i < devs->count; i++) {
		if (name && strcmp(name, blk_dev_id(devs->devs[i])))
			continue;
		json_object_array_add(arr, stats_describe(devs->devs[i]));
		found = true;
	}
	/* virtio-scsi: a line per LUN; the name picks a controller or one LUN. */
	for (unsigned int i = 0; i < devs->nscsi; i++) {
		struct scsi_dev *sd = devs->scsi_devs[i];
		bool all = !name || !strcmp(name, scsi_dev_id(sd));

		for (unsigned int j = 0; j < scsi_dev_nr_luns(sd); j++) {
			struct blk_stats st;

			if (!scsi_dev_lun_options(sd, j) ||
			    (!all && strcmp(name, scsi_dev_lun_name(sd, j))))
				continue;
			scsi_dev_lun_stats(sd, j, &st);
			json_object_array_add(arr, stats_object(&st, scsi_dev_lun_name(sd, j)));
			found = true;
		}
	}
	if (name && !found) {
		json_object_put(arr);
		snprintf(err, err_len, "no device named '%.64s'", name);
		return CTL_ERR_INVALID_PARAMS;
	}
	*result = json_object_new_object();
	json_object_object_add(*result, "devices", arr);
	return 0;
}

/* ---- virtio-scsi LUNs at run time ---- */

static struct scsi_dev *find_scsi(struct rpc_devices *devs, const char *name)
{
	for (unsigned int i = 0; i < devs->nscsi; i++) {
		if (!strcmp(scsi_dev_id(devs->scsi_devs[i]), name))
			return devs->scsi_devs[i];
	}
	return NULL;
}

/* Append ",key=value" to @spec, doubling commas in the value (kvopts.h). */
static void spec_add(char *spec, size_t len, const char *key, const char *val)
{
	size_t n = strlen(spec);

	n += (size_t)snprintf(spec + n, n < len ? len - n : 0, ",%s=", key);
	for (; *val && n + 2 < len; val++) {
		spec[n++] = *val;
		if (*val == ',')
			spec[n++] = ',';
	}
	spec[n < len ? n : len - 1] = '\0';
}

/*
 * The controller, target and LUN of a scsi-* call: {"name": N, "target":
 * T, "lun": L, ...}.  0, or CTL_ERR_INVALID_PARAMS with a message.
 */
static int scsi_params(struct rpc_devices *devs, struct json_object *params, struct scsi_dev **dev,
		       unsigned int *target, unsigned int *lun, char *err, size_t err_len)
{
	struct json_object *n, *t, *l;

	if (!params || !json_object_is_type(params, json_type_object) ||
	    !json_object_object_get_ex(params, "name", &n) ||
	    !json_object_is_type(n, json_type_string) ||
	    !json_object_object_get_ex(params, "target", &t) ||
	    !json_object_is_type(t, json_type_int) ||
	    !json_object_object_get_ex(params, "lun", &l) ||
	    !json_object_is_type(l, json_type_int)) {
		snprintf(err, err_len,
			 "expected {\"name\": CONTROLLER, \"target\": T, \"lun\": L, ...}");
		return CTL_ERR_INVALID_PARAMS;
	}
	*dev = find_scsi(devs, json_object_get_string(n));
	if (!*dev) {
		snprintf(err, err_len, "no virtio-scsi controller named '%.64s'",
			 json_object_get_string(n));
		return CTL_ERR_INVALID_PARAMS;
	}
	if (json_object_get_int64(t) < 0 || json_object_get_int64(t) > SCSI_MAX_TARGET ||
	    json_object_get_int64(l) < 0 || json_object_get_int64(l) > SCSI_MAX_LUN) {
		snprintf(err, err_len, "target 0..%d and lun 0..%d expected", SCSI_MAX_TARGET,
			 SCSI_MAX_LUN);
		return CTL_ERR_INVALID_PARAMS;
	}
	*target = (unsigned int)json_object_get_int64(t);
	*lun = (unsigned int)json_object_get_int64(l);
	return 0;
}

/*
 * scsi-add-lun {"name", "target", "lun", and the --lun keys as strings or
 * booleans: "path" or "backend"+"size" or "backend"+"uri", "readonly", "serial", "cache",
 * "block-size"}.
 */
static int rpc_scsi_add_lun(void *opaque, struct json_object *params, struct json_object **result,
			    char *err, size_t err_len)
{
	static const char *const keys[] = {"path",  "backend", "size",	   "readonly",
					   "serial", "cache", "block-size", "uri"};
	struct scsi_lun_options o;
	struct scsi_dev *dev;
	unsigned int target, lun;
	char spec[4608], msg[256] = "";
	int ret;

	ret = scsi_params(opaque, params, &dev, &target, &lun, err, err_len);
	if (ret)
		return ret;
	snprintf(spec, sizeof(spec), "scsi=%s,target=%u,lun=%u", scsi_dev_id(dev), target, lun);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		struct json_object *v;

		if (!json_object_object_get_ex(params, keys[i], &v))
			continue;
		if (json_object_is_type(v, json_type_boolean))
			spec_add(spec, sizeof(spec), keys[i],
				 json_object_get_boolean(v) ? "on" : "off");
		else if (json_object_is_type(v, json_type_string) ||
			 json_object_is_type(v, json_type_int))
			spec_add(spec, sizeof(spec), keys[i], json_object_get_string(v));
		else {
			snprintf(err, err_len, "%s: a string expected", keys[i]);
			return CTL_ERR_INVALID_PARAMS;
		}
	}
	if (scsi_lun_options_parse(spec, &o, msg, sizeof(msg)) ||
	    scsi_dev_add_lun(dev, &o, msg, sizeof(msg))) {
		snprintf(err, err_len, "%s", msg[0] ? msg : "cannot add the LUN");
		return CTL_ERR_INVALID_PARAMS;
	}
	*result = json_object_new_object();
	return 0;
}

static int rpc_scsi_remove_lun(void *opaque, struct json_object *params,
			       struct json_object **result, char *err, size_t err_len)
{
	struct scsi_dev *dev;
	unsigned int target, lun;
	int ret = scsi_params(opaque, params, &dev, &target, &lun, err, err_len);

	if (ret)
		return ret;
	if (scsi_dev_remove_lun(dev, target, lun, err, err_len))
		return CTL_ERR_INVALID_PARAMS;
	*result = json_object_new_object();
	return 0;
}

static int rpc_scsi_resize(void *opaque, struct json_object *params, struct json_object **result,
			   char *err, size_t err_len)
{
	struct scsi_dev *dev;
	unsigned int target, lun;
	int ret = scsi_params(opaque, params, &dev, &target, &lun, err, err_len);

	if (ret)
		return ret;
	if (scsi_dev_resize_lun(dev, target, lun, err, err_len))
		return CTL_ERR_INVALID_PARAMS;
	*result = json_object_new_object();
	return 0;
}

static int rpc_version(void *opaque, struct json_object *params, struct json_object **result,
		       char *err, size_t err_len)
{
	*result = json_object_new_object();
	add_str(*result, "name", "vhostd");
	add_str(*result, "version", VHOSTD_VERSION);
	return 0;
}

const struct ctl_method rpc_methods[] = {
	{"list-devices", rpc_list_devices},
	{"scsi-add-lun", rpc_scsi_add_lun},
	{"scsi-remove-lun", rpc_scsi_remove_lun},
	{"scsi-resize", rpc_scsi_resize},
	{"stats", rpc_stats},
	{"version", rpc_version},
	{NULL, NULL},
};
