// SPDX-License-Identifier: MIT
/*
 * devkind.c - the device kinds (devkind.h): virtio-blk, virtio-scsi and a
 * virtio-scsi controller's LUNs; virtio-net's entry is in devkind_net.c.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "common/kvopts.h"
#include "devices/blk.h"
#include "devices/scsi.h"
#include "devkind.h"
#include "metrics.h"
#include "vhost-user/backend.h"

static const char *const cache_names[] = {
	[BLK_CACHE_NONE] = "none",
	[BLK_CACHE_WRITEBACK] = "writeback",
};

static const char *cache_name(enum blk_cache_mode c)
{
	return c <= BLK_CACHE_WRITEBACK ? cache_names[c] : "?";
}

void devkind_save_str(struct json_object *o, const char *key, const char *val)
{
	json_object_object_add(o, key, json_object_new_string(val));
}

void devkind_save_u64(struct json_object *o, const char *key, unsigned long long val)
{
	json_object_object_add(o, key, json_object_new_uint64(val));
}

void devkind_save_bool(struct json_object *o, const char *key, bool val)
{
	json_object_object_add(o, key, json_object_new_boolean(val));
}

static const char *const stat_dir_names[BLK_STAT__COUNT] = {
	[BLK_STAT_READ] = "read",
	[BLK_STAT_WRITE] = "write",
	[BLK_STAT_DISCARD] = "discard",
	[BLK_STAT_FLUSH] = "flush",
};

struct json_object *devkind_disk_stats(const struct blk_stats *st, const char *name)
{
	struct json_object *d = json_object_new_object(), *dir;
	char line[512];
	size_t n;

	devkind_save_str(d, "id", name);
	for (int i = 0; i < BLK_STAT__COUNT; i++) {
		dir = json_object_new_object();
		devkind_save_u64(dir, "ios", st->ios[i]);
		devkind_save_u64(dir, "merges", st->merges[i]);
		devkind_save_u64(dir, "sectors", st->sectors[i]);
		devkind_save_u64(dir, "ticks-ms", st->ticks_ms[i]);
		json_object_object_add(d, stat_dir_names[i], dir);
	}
	devkind_save_u64(d, "in-flight", st->in_flight);
	devkind_save_u64(d, "io-ticks-ms", st->io_ticks_ms);
	devkind_save_u64(d, "time-in-queue-ms", st->time_in_queue_ms);
	/* The /proc/diskstats line, without the newline that file has. */
	blk_stats_format(st, name, line, sizeof(line));
	n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == ' '))
		line[--n] = '\0';
	devkind_save_str(d, "diskstats", line);
	return d;
}

/* The disk keys both blk and a LUN take (diskopts.h). */
static void save_disk(struct json_object *o, enum blk_backend_kind backend, const char *path,
		      const struct blk_rbd_options *rbd, uint64_t size, bool readonly,
		      enum blk_cache_mode cache, bool no_locking)
{
	switch (backend) {
	case BLK_BACKEND_NULL:
		devkind_save_str(o, "backend", "null");
		devkind_save_u64(o, "size", size);
		break;
	case BLK_BACKEND_RBD:
		devkind_save_str(o, "backend", "rbd");
		devkind_save_str(o, "pool", rbd->pool);
		devkind_save_str(o, "image", rbd->image);
		if (rbd->conf[0])
			devkind_save_str(o, "conf", rbd->conf);
		if (rbd->user[0])
			devkind_save_str(o, "user", rbd->user);
		break;
	case BLK_BACKEND_NBD:
		devkind_save_str(o, "backend", "nbd");
		devkind_save_str(o, "uri", path);
		break;
	default:
		devkind_save_str(o, "path", path);
		break;
	}
	devkind_save_bool(o, "readonly", readonly);
	devkind_save_str(o, "cache", cache_name(cache));
	if (no_locking)
		devkind_save_bool(o, "locking", false);
}

/* The keys every vhost-user device takes (engine/devopts.h). */
void devkind_save_common(struct json_object *o, const char *id, const char *socket, bool client,
			 unsigned int poll_us, int io_thread, unsigned long long max_guest_memory)
{
	devkind_save_str(o, "id", id);
	devkind_save_str(o, "socket", socket);
	devkind_save_bool(o, "client", client);
	devkind_save_u64(o, "poll-us", poll_us);
	if (io_thread >= 0)
		devkind_save_u64(o, "io-thread", (unsigned int)io_thread);
	if (max_guest_memory)
		devkind_save_u64(o, "max-guest-memory", max_guest_memory);
}

/* ---- blk ---- */

static int blk_parse(const char *spec, void *opts, char *err, size_t err_len)
{
	return blk_options_parse(spec, opts, err, err_len);
}

static void blk_info(const void *opts, struct devkind_info *in)
{
	const struct blk_options *o = opts;

	*in = (struct devkind_info){
		.socket = o->socket,
		.client = o->client,
		.io_thread = o->io_thread,
		.image = o->backend == BLK_BACKEND_FILE ? o->path : NULL,
		.readonly = o->readonly,
	};
	snprintf(in->name, sizeof(in->name), "%s", o->id);
}

static void *blk_create(const void *opts, const void *children, unsigned int nchildren, void *loop,
			char *err, size_t err_len)
{
	return blk_dev_new(opts, &vu_evloop_watch_ops, loop, err, err_len);
}

static void blk_destroy(void *dev)
{
	blk_dev_free(dev);
}

static const char *blk_id(const void *dev)
{
	return blk_dev_id(dev);
}

static const void *blk_opts(const void *dev)
{
	return blk_dev_options(dev);
}

static bool blk_connected(const void *dev)
{
	return blk_dev_connected(dev);
}

static bool blk_active(void *dev)
{
	return blk_dev_active(dev);
}

static struct vu_dev *blk_vu(void *dev)
{
	return blk_dev_vu(dev);
}

static struct json_object *blk_describe(void *dev)
{
	const struct blk_options *o = blk_dev_options(dev);
	struct json_object *d = json_object_new_object();
	uint64_t sectors = blk_dev_capacity_sectors(dev);

	devkind_save_str(d, "id", o->id);
	devkind_save_str(d, "type", "blk");
	devkind_save_str(d, "backend", blk_disk_backend_name(o->backend));
	devkind_save_str(d, "path", o->path);
	if (o->backend == BLK_BACKEND_RBD) {
		devkind_save_str(d, "pool", o->rbd.pool);
		devkind_save_str(d, "image", o->rbd.image);
	}
	devkind_save_str(d, "socket", o->socket);
	devkind_save_u64(d, "capacity", sectors);
	devkind_save_u64(d, "size", sectors * 512);
	devkind_save_bool(d, "readonly", o->readonly);
	devkind_save_u64(d, "num-queues", o->num_queues);
	devkind_save_u64(d, "queue-size", o->queue_size);
	devkind_save_str(d, "cache", cache_name(o->cache));
	devkind_save_bool(d, "connected", blk_dev_connected(dev));
	devkind_save_bool(d, "active", blk_dev_active(dev));
	return d;
}

static void blk_save(void *dev, struct json_object *arr)
{
	const struct blk_options *o = blk_dev_options(dev);
	struct json_object *d = json_object_new_object();

	devkind_save_str(d, "type", "blk");
	devkind_save_common(d, o->id, o->socket, o->client, o->poll_us, o->io_thread, o->max_guest_memory);
	save_disk(d, o->backend, o->path, &o->rbd, o->size, o->readonly, o->cache,
		  o->no_locking);
	devkind_save_u64(d, "num-queues", o->num_queues);
	devkind_save_u64(d, "queue-size", o->queue_size);
	devkind_save_str(d, "serial", o->serial);
	json_object_array_add(arr, d);
}

static bool blk_stats(void *dev, const char *name, struct json_object *arr)
{
	struct blk_stats st;

	if (name && strcmp(name, blk_dev_id(dev)))
		return false;
	blk_dev_get_stats(dev, &st);
	json_object_array_add(arr, devkind_disk_stats(&st, blk_dev_id(dev)));
	return true;
}

static void blk_metrics(void *dev, struct metrics *m)
{
	const char *id = blk_dev_id(dev);
	struct blk_lat_hist h;
	struct blk_stats st;
	char l[128];

	snprintf(l, sizeof(l), "device=\"%s\"", id);
	blk_dev_get_stats(dev, &st);
	blk_dev_get_lat_hist(dev, &h);
	metrics_disk(m, l, &st, &h);
	metrics_u64(m, M_DISK_SIZE, "", l, blk_dev_capacity_sectors(dev) * 512);
	for (unsigned int q = 0; q < blk_dev_options(dev)->num_queues; q++) {
		struct blk_queue_counts c;
		uint64_t ios = 0;

		blk_dev_get_queue_counts(dev, q, &c);
		snprintf(l, sizeof(l), "device=\"%s\",queue=\"%u\"", id, q);
		metrics_u64(m, M_QUEUE_KICKS, "", l, c.kicks);
		metrics_u64(m, M_QUEUE_NOTIFICATIONS, "", l, c.notifications);
		metrics_u64(m, M_QUEUE_IN_FLIGHT, "", l, c.st.in_flight);
		for (int d = 0; d < BLK_STAT__COUNT; d++)
			ios += c.st.ios[d];
		metrics_u64(m, M_QUEUE_COMPLETED, "", l, ios);
	}
}

static const struct devkind blk_kind = {
	.name = "blk",
	.opts_size = sizeof(struct blk_options),
	.parse = blk_parse,
	.info = blk_info,
	.create = blk_create,
	.destroy = blk_destroy,
	.id = blk_id,
	.options = blk_opts,
	.connected = blk_connected,
	.active = blk_active,
	.vu = blk_vu,
	.describe = blk_describe,
	.save = blk_save,
	.stats = blk_stats,
	.metrics = blk_metrics,
};

/* ---- scsi: the controller ---- */

static int scsi_parse(const char *spec, void *opts, char *err, size_t err_len)
{
	return scsi_options_parse(spec, opts, err, err_len);
}

static void scsi_info(const void *opts, struct devkind_info *in)
{
	const struct scsi_options *o = opts;

	*in = (struct devkind_info){
		.socket = o->socket,
		.client = o->client,
		.io_thread = o->io_thread,
	};
	snprintf(in->name, sizeof(in->name), "%s", o->id);
}

static void *scsi_create(const void *opts, const void *children, unsigned int nchildren, void *loop,
			 char *err, size_t err_len)
{
	return scsi_dev_new(opts, children, nchildren, &vu_evloop_watch_ops, loop, err, err_len);
}

static void scsi_destroy(void *dev)
{
	scsi_dev_free(dev);
}

static const char *scsi_id(const void *dev)
{
	return scsi_dev_id(dev);
}

static const void *scsi_opts(const void *dev)
{
	return scsi_dev_options(dev);
}

static bool scsi_connected(const void *dev)
{
	return scsi_dev_connected(dev);
}

static bool scsi_active(void *dev)
{
	return scsi_dev_active(dev);
}

static struct vu_dev *scsi_vu(void *dev)
{
	return scsi_dev_vu(dev);
}

static struct json_object *lun_describe(struct scsi_dev *dev, unsigned int i)
{
	const struct scsi_lun_options *l = scsi_dev_lun_options(dev, i);
	struct json_object *lun = json_object_new_object();
	uint64_t blocks = scsi_dev_lun_blocks(dev, i);
	uint32_t bs = scsi_dev_lun_block_size(dev, i);

	devkind_save_str(lun, "name", scsi_dev_lun_name(dev, i));
	devkind_save_u64(lun, "target", l->target);
	devkind_save_u64(lun, "lun", l->lun);
	devkind_save_str(lun, "backend", blk_disk_backend_name(l->backend));
	devkind_save_str(lun, "path", l->path);
	if (l->backend == BLK_BACKEND_RBD) {
		devkind_save_str(lun, "pool", l->rbd.pool);
		devkind_save_str(lun, "image", l->rbd.image);
	}
	devkind_save_u64(lun, "block-size", bs);
	devkind_save_u64(lun, "blocks", blocks);
	devkind_save_u64(lun, "size", blocks * bs);
	devkind_save_bool(lun, "readonly", l->readonly);
	devkind_save_str(lun, "cache", cache_name(l->cache));
	devkind_save_str(lun, "serial", l->serial);
	return lun;
}

static struct json_object *scsi_describe(void *opaque)
{
	struct scsi_dev *dev = opaque;
	const struct scsi_options *o = scsi_dev_options(dev);
	struct json_object *d = json_object_new_object(), *arr = json_object_new_array();

	devkind_save_str(d, "id", o->id);
	devkind_save_str(d, "type", "scsi");
	devkind_save_str(d, "socket", o->socket);
	devkind_save_u64(d, "num-queues", o->num_queues);
	devkind_save_u64(d, "queue-size", o->queue_size);
	devkind_save_bool(d, "connected", scsi_dev_connected(dev));
	devkind_save_bool(d, "active", scsi_dev_active(dev));
	for (unsigned int i = 0; i < scsi_dev_nr_luns(dev); i++) {
		if (scsi_dev_lun_options(dev, i)) /* NULL: a free slot */
			json_object_array_add(arr, lun_describe(dev, i));
	}
	json_object_object_add(d, "luns", arr);
	return d;
}

static void scsi_save(void *opaque, struct json_object *arr)
{
	struct scsi_dev *dev = opaque;
	const struct scsi_options *o = scsi_dev_options(dev);
	struct json_object *d = json_object_new_object();

	devkind_save_str(d, "type", "scsi");
	devkind_save_common(d, o->id, o->socket, o->client, o->poll_us, o->io_thread, o->max_guest_memory);
	devkind_save_u64(d, "num-queues", o->num_queues);
	devkind_save_u64(d, "queue-size", o->queue_size);
	json_object_array_add(arr, d);
	for (unsigned int i = 0; i < scsi_dev_nr_luns(dev); i++) {
		const struct scsi_lun_options *l = scsi_dev_lun_options(dev, i);

		if (!l)
			continue;
		d = json_object_new_object();
		devkind_save_str(d, "type", "lun");
		devkind_save_str(d, "scsi", o->id);
		devkind_save_u64(d, "target", l->target);
		devkind_save_u64(d, "lun", l->lun);
		save_disk(d, l->backend, l->path, &l->rbd, l->size, l->readonly, l->cache,
			  l->no_locking);
		if (l->serial[0]) /* empty: the default, NAME-T-L */
			devkind_save_str(d, "serial", l->serial);
		if (l->block_size)
			devkind_save_u64(d, "block-size", l->block_size);
		json_object_array_add(arr, d);
	}
}

/* One line per LUN; @name picks the controller (all of them) or one LUN. */
static bool scsi_stats(void *opaque, const char *name, struct json_object *arr)
{
	struct scsi_dev *dev = opaque;
	bool all = !name || !strcmp(name, scsi_dev_id(dev)), found = all;

	for (unsigned int i = 0; i < scsi_dev_nr_luns(dev); i++) {
		struct blk_stats st;

		if (!scsi_dev_lun_options(dev, i) ||
		    (!all && strcmp(name, scsi_dev_lun_name(dev, i))))
			continue;
		scsi_dev_lun_stats(dev, i, &st);
		json_object_array_add(arr, devkind_disk_stats(&st, scsi_dev_lun_name(dev, i)));
		found = true;
	}
	return found;
}

static void scsi_metrics(void *opaque, struct metrics *m)
{
	struct scsi_dev *dev = opaque;
	const char *id = scsi_dev_id(dev);
	char l[160];

	for (unsigned int i = 0; i < scsi_dev_nr_luns(dev); i++) {
		const struct scsi_lun_options *o = scsi_dev_lun_options(dev, i);
		struct blk_lat_hist h;
		struct blk_stats st;

		if (!o)
			continue;
		snprintf(l, sizeof(l), "device=\"%s\",lun=\"%u:%u\"", id, o->target, o->lun);
		scsi_dev_lun_stats(dev, i, &st);
		scsi_dev_lun_lat_hist(dev, i, &h);
		metrics_disk(m, l, &st, &h);
		metrics_u64(m, M_DISK_SIZE, "", l,
			    scsi_dev_lun_blocks(dev, i) * scsi_dev_lun_block_size(dev, i));
	}
	for (unsigned int q = 0; q < scsi_dev_nr_vqueues(dev); q++) {
		uint64_t kicks, notifications;

		scsi_dev_queue_counts(dev, q, &kicks, &notifications);
		snprintf(l, sizeof(l), "device=\"%s\",queue=\"%u\"", id, q);
		metrics_u64(m, M_QUEUE_KICKS, "", l, kicks);
		metrics_u64(m, M_QUEUE_NOTIFICATIONS, "", l, notifications);
	}
}

static int scsi_add_child(void *dev, const void *child_opts, char *err, size_t err_len)
{
	return scsi_dev_add_lun(dev, child_opts, err, err_len);
}

/* "CTRL:T:L" of this controller: 0 with *@t and *@l, or -1. */
static int lun_name_parse(struct scsi_dev *dev, const char *name, unsigned int *t, unsigned int *l)
{
	size_t n = strlen(scsi_dev_id(dev));
	unsigned long v;
	char buf[32];
	const char *colon;

	if (strncmp(name, scsi_dev_id(dev), n) || name[n] != ':')
		return -1;
	name += n + 1;
	colon = strchr(name, ':');
	if (!colon || (size_t)(colon - name) >= sizeof(buf))
		return -1;
	memcpy(buf, name, (size_t)(colon - name));
	buf[colon - name] = '\0';
	if (kv_parse_uint(buf, 0, SCSI_MAX_TARGET, &v))
		return -1;
	*t = (unsigned int)v;
	if (kv_parse_uint(colon + 1, 0, SCSI_MAX_LUN, &v))
		return -1;
	*l = (unsigned int)v;
	return 0;
}

static int scsi_remove_child(void *dev, const char *name, char *err, size_t err_len)
{
	unsigned int t, l;

	if (lun_name_parse(dev, name, &t, &l))
		return kv_err(err, err_len, "no LUN named '%.64s'", name);
	return scsi_dev_remove_lun(dev, t, l, err, err_len);
}

static struct json_object *scsi_describe_child(void *opaque, const char *name)
{
	struct scsi_dev *dev = opaque;
	struct json_object *d;

	for (unsigned int i = 0; i < scsi_dev_nr_luns(dev); i++) {
		if (!scsi_dev_lun_options(dev, i) || strcmp(name, scsi_dev_lun_name(dev, i)))
			continue;
		d = lun_describe(dev, i);
		devkind_save_str(d, "type", "lun");
		devkind_save_str(d, "scsi", scsi_dev_id(dev));
		devkind_save_bool(d, "connected", scsi_dev_connected(dev));
		return d;
	}
	return NULL;
}

static const struct devkind scsi_kind = {
	.name = "scsi",
	.opts_size = sizeof(struct scsi_options),
	.parse = scsi_parse,
	.info = scsi_info,
	.create = scsi_create,
	.destroy = scsi_destroy,
	.id = scsi_id,
	.options = scsi_opts,
	.connected = scsi_connected,
	.active = scsi_active,
	.vu = scsi_vu,
	.describe = scsi_describe,
	.save = scsi_save,
	.stats = scsi_stats,
	.metrics = scsi_metrics,
	.add_child = scsi_add_child,
	.remove_child = scsi_remove_child,
	.describe_child = scsi_describe_child,
};

/* ---- lun: a disk of a scsi controller ---- */

static int lun_parse(const char *spec, void *opts, char *err, size_t err_len)
{
	return scsi_lun_options_parse(spec, opts, err, err_len);
}

static void lun_info(const void *opts, struct devkind_info *in)
{
	const struct scsi_lun_options *o = opts;

	*in = (struct devkind_info){
		.io_thread = -1,
		.image = o->backend == BLK_BACKEND_FILE ? o->path : NULL,
		.readonly = o->readonly,
		.parent = o->scsi,
	};
	snprintf(in->name, sizeof(in->name), "%s:%u:%u", o->scsi, o->target, o->lun);
}

static const struct devkind lun_kind = {
	.name = "lun",
	.parent = "scsi",
	.opts_size = sizeof(struct scsi_lun_options),
	.parse = lun_parse,
	.info = lun_info,
};

/* ---- the table ---- */

const struct devkind *const devkinds[] = {
	&blk_kind,
	&scsi_kind,
	&lun_kind,
	&devkind_net,
	NULL,
};

const struct devkind *devkind_find(const char *name)
{
	for (const struct devkind *const *k = devkinds; *k; k++) {
		if (!strcmp((*k)->name, name))
			return *k;
	}
	return NULL;
}

const struct devkind *devkind_child_of(const struct devkind *kind)
{
	for (const struct devkind *const *k = devkinds; *k; k++) {
		if ((*k)->parent && !strcmp((*k)->parent, kind->name))
			return *k;
	}
	return NULL;
}

/* Append ",key=value" to @spec, doubling commas in the value. */
static int spec_add(char *spec, size_t len, const char *key, const char *val)
{
	size_t n = strlen(spec);

	if (n)
		spec[n++] = ',';
	for (; *key; key++) {
		if (n + 2 >= len)
			return -1;
		spec[n++] = *key;
	}
	spec[n++] = '=';
	for (; *val; val++) {
		if (n + 3 >= len)
			return -1;
		spec[n++] = *val;
		if (*val == ',')
			spec[n++] = ',';
	}
	spec[n] = '\0';
	return 0;
}

int devkind_spec_from_json(struct json_object *params, char *spec, size_t len, char *err,
			   size_t err_len)
{
	spec[0] = '\0';
	if (!params || !json_object_is_type(params, json_type_object))
		return kv_err(err, err_len, "a JSON object of the device's keys expected");
	json_object_object_foreach(params, key, v)
	{
		const char *s;

		if (!strcmp(key, "type"))
			continue;
		/* A key with '=' or ',' would smuggle a second pair past the parser. */
		if (!key[0] || strpbrk(key, "=,"))
			return kv_err(err, err_len, "'%.64s': not a key", key);
		switch (v ? json_object_get_type(v) : json_type_null) {
		case json_type_boolean:
			s = json_object_get_boolean(v) ? "on" : "off";
			break;
		case json_type_int:
		case json_type_string:
			s = json_object_get_string(v);
			break;
		default:
			return kv_err(err, err_len, "%.64s: a string, integer or boolean expected",
				      key);
		}
		if (spec_add(spec, len, key, s))
			return kv_err(err, err_len, "%.64s: too long", key);
	}
	return 0;
}
