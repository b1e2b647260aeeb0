// SPDX-License-Identifier: MIT
/*
 * devkind_net.c - virtio-net as a device kind (devkind.h): --net, device-add
 * with "type": "net", its describe/save objects, per-queue stats and metrics.
 */
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "devices/net.h"
#include "devkind.h"
#include "metrics.h"
#include "vhost-user/backend.h"

static void format_mac(const uint8_t mac[6], char buf[18])
{
	snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
		 mac[5]);
}

static int net_parse(const char *spec, void *opts, char *err, size_t err_len)
{
	return net_options_parse(spec, opts, err, err_len);
}

static void net_info(const void *opts, struct devkind_info *in)
{
	const struct net_options *o = opts;

	*in = (struct devkind_info){
		.socket = o->socket,
		.client = o->client,
		.io_thread = o->io_thread,
	};
	snprintf(in->name, sizeof(in->name), "%s", o->id);
}

static void *net_create(const void *opts, const void *children, unsigned int nchildren, void *loop,
			char *err, size_t err_len)
{
	return net_dev_new(opts, &vu_evloop_watch_ops, loop, err, err_len);
}

static void net_destroy(void *dev)
{
	net_dev_free(dev);
}

static const char *net_id(const void *dev)
{
	return net_dev_id(dev);
}

static const void *net_opts(const void *dev)
{
	return net_dev_options(dev);
}

static bool net_connected(const void *dev)
{
	return net_dev_connected(dev);
}

static bool net_active(void *dev)
{
	return net_dev_active(dev);
}

static struct vu_dev *net_vu(void *dev)
{
	return net_dev_vu(dev);
}

static struct json_object *net_describe(void *dev)
{
	const struct net_options *o = net_dev_options(dev);
	struct json_object *d = json_object_new_object();
	char mac[18];

	format_mac(o->mac, mac);
	devkind_save_str(d, "id", o->id);
	devkind_save_str(d, "type", "net");
	devkind_save_str(d, "socket", o->socket);
	devkind_save_str(d, "backend", net_backend_name(o->backend));
	devkind_save_str(d, "interface", o->ifname);
	devkind_save_str(d, "mac", mac);
	devkind_save_u64(d, "queues", o->pairs);
	devkind_save_u64(d, "queue-size", o->queue_size);
	devkind_save_u64(d, "mtu", o->mtu);
	devkind_save_bool(d, "connected", net_dev_connected(dev));
	devkind_save_bool(d, "active", net_dev_active(dev));
	return d;
}

static void net_save(void *dev, struct json_object *arr)
{
	const struct net_options *o = net_dev_options(dev);
	struct json_object *d = json_object_new_object();
	char mac[18];

	format_mac(o->mac, mac);
	devkind_save_str(d, "type", "net");
	devkind_save_common(d, o->id, o->socket, o->client, o->poll_us, o->io_thread,
			    o->max_guest_memory);
	switch (o->backend) {
	case NET_BACKEND_TAP:
		devkind_save_str(d, "tap", o->ifname);
		break;
	case NET_BACKEND_MACVTAP:
		devkind_save_str(d, "macvtap", o->ifname);
		break;
	default:
		devkind_save_str(d, "backend", net_backend_name(o->backend));
		break;
	}
	devkind_save_str(d, "mac", mac);
	devkind_save_u64(d, "queues", o->pairs);
	devkind_save_u64(d, "queue-size", o->queue_size);
	if (o->mtu)
		devkind_save_u64(d, "mtu", o->mtu);
	json_object_array_add(arr, d);
}

/* One queue's stats object, and its line for vhostctl's plain output. */
static struct json_object *queue_stats(const char *id, const struct net_queue_stats *st,
				       struct json_object *lines)
{
	struct json_object *q = json_object_new_object(), *drops = json_object_new_object();
	char line[512];
	size_t n;

	devkind_save_str(q, "name", st->name);
	devkind_save_u64(q, "packets", st->packets);
	devkind_save_u64(q, "bytes", st->bytes);
	n = (size_t)snprintf(line, sizeof(line), "%s %s packets %llu bytes %llu", id, st->name,
			     (unsigned long long)st->packets, (unsigned long long)st->bytes);
	for (int c = 0; c < NET_DROP__COUNT; c++) {
		const char *cause = net_drop_name((enum net_drop)c);

		devkind_save_u64(drops, cause, st->drops[c]);
		if (n < sizeof(line))
			n += (size_t)snprintf(line + n, sizeof(line) - n, " drop-%s %llu", cause,
					      (unsigned long long)st->drops[c]);
	}
	json_object_object_add(q, "drops", drops);
	devkind_save_u64(q, "no-buffers", st->no_buffers);
	devkind_save_u64(q, "steered", st->steered);
	devkind_save_u64(q, "kicks", st->kicks);
	devkind_save_u64(q, "notifications", st->notifies);
	if (n < sizeof(line))
		snprintf(line + n, sizeof(line) - n,
			 " no-buffers %llu steered %llu kicks %llu notifications %llu",
			 (unsigned long long)st->no_buffers, (unsigned long long)st->steered,
			 (unsigned long long)st->kicks, (unsigned long long)st->notifies);
	json_object_array_add(lines, json_object_new_string(line));
	return q;
}

static bool net_stats(void *dev, const char *name, struct json_object *arr)
{
	const char *id = net_dev_id(dev);
	struct json_object *d, *qs, *lines;

	if (name && strcmp(name, id))
		return false;
	d = json_object_new_object();
	qs = json_object_new_array();
	lines = json_object_new_array();
	devkind_save_str(d, "id", id);
	devkind_save_str(d, "type", "net");
	devkind_save_u64(d, "kernel-drops", net_dev_kernel_drops(dev));
	/* Announcements sent for the front-end (SEND_RARP, after a migration). */
	devkind_save_u64(d, "rarps", net_dev_rarps(dev));
	for (unsigned int i = 0; i < net_dev_nr_queues(dev); i++) {
		struct net_queue_stats st;

		net_dev_queue_stats(dev, i, &st);
		json_object_array_add(qs, queue_stats(id, &st, lines));
	}
	json_object_object_add(d, "queues", qs);
	json_object_object_add(d, "lines", lines);
	json_object_array_add(arr, d);
	return true;
}

static void net_metrics(void *dev, struct metrics *m)
{
	const char *id = net_dev_id(dev);
	char l[192];

	snprintf(l, sizeof(l), "device=\"%s\"", id);
	metrics_u64(m, M_NET_KERNEL_DROPS, "", l, net_dev_kernel_drops(dev));
	for (unsigned int q = 0; q < net_dev_nr_queues(dev); q++) {
		struct net_queue_stats st;

		net_dev_queue_stats(dev, q, &st);
		snprintf(l, sizeof(l), "device=\"%s\",queue=\"%u\"", id, q);
		metrics_u64(m, M_QUEUE_KICKS, "", l, st.kicks);
		metrics_u64(m, M_QUEUE_NOTIFICATIONS, "", l, st.notifies);
		metrics_u64(m, M_NET_PACKETS, "", l, st.packets);
		metrics_u64(m, M_NET_BYTES, "", l, st.bytes);
		metrics_u64(m, M_NET_NO_BUFFERS, "", l, st.no_buffers);
		for (int c = 0; c < NET_DROP__COUNT; c++) {
			snprintf(l, sizeof(l), "device=\"%s\",queue=\"%u\",cause=\"%s\"", id, q,
				 net_drop_name((enum net_drop)c));
			metrics_u64(m, M_NET_DROPS, "", l, st.drops[c]);
		}
	}
}

const struct devkind devkind_net = {
	.name = "net",
	.opts_size = sizeof(struct net_options),
	.parse = net_parse,
	.info = net_info,
	.create = net_create,
	.destroy = net_destroy,
	.id = net_id,
	.options = net_opts,
	.connected = net_connected,
	.active = net_active,
	.vu = net_vu,
	.describe = net_describe,
	.save = net_save,
	.stats = net_stats,
	.metrics = net_metrics,
};
