// SPDX-License-Identifier: MIT
/*
 * rpc.c - vhostd's control methods: what the devices are and how busy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "devices/blk.h"
#include "devices/scsi.h"
#include "devset.h"
#include "engine/engine.h"
#include "rpc.h"

#ifndef VHOSTD_VERSION
#define VHOSTD_VERSION "unknown"
#endif

static void add_str(struct json_object *obj, const char *key, const char *val)
{
	json_object_object_add(obj, key, json_object_new_string(val));
}

static void add_u64(struct json_object *obj, const char *key, uint64_t val)
{
	json_object_object_add(obj, key, json_object_new_uint64(val));
}

/* Methods without parameters accept none, an empty object or an empty array. */
static int no_params(struct json_object *params, char *err, size_t err_len)
{
	if (!params ||
	    (json_object_is_type(params, json_type_object) && !json_object_object_length(params)) ||
	    (json_object_is_type(params, json_type_array) && !json_object_array_length(params)))
		return 0;
	snprintf(err, err_len, "this method takes no parameters");
	return CTL_ERR_INVALID_PARAMS;
}

static int rpc_list_devices(void *opaque, struct json_object *params, struct json_object **result,
			    char *err, size_t err_len)
{
	struct devset *set = opaque;
	struct json_object *arr;

	if (no_params(params, err, err_len))
		return CTL_ERR_INVALID_PARAMS;
	arr = json_object_new_array();

	for (unsigned int i = 0; i < set->n; i++)
		json_object_array_add(arr, set->v[i].kind->describe(set->v[i].dev));
	*result = json_object_new_object();
	json_object_object_add(*result, "devices", arr);
	return 0;
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
	struct devset *set = opaque;
	struct json_object *arr;
	const char *name;
	bool found = false;
	int ret;

	ret = stats_name(params, &name, err, err_len);
	if (ret)
		return ret;
	arr = json_object_new_array();
	for (unsigned int i = 0; i < set->n; i++) {
		if (set->v[i].kind->stats && set->v[i].kind->stats(set->v[i].dev, name, arr))
			found = true;
	}
	if (name && !found) {
		json_object_put(arr);
		snprintf(err, err_len, "no device named '%.64s'", name);
		return CTL_ERR_INVALID_PARAMS;
	}
	*result = json_object_new_object();
	json_object_object_add(*result, "devices", arr);
	/* The clock the counters run on, for rates (vhostctl iostat). */
	add_u64(*result, "time-ns", eng_now_ns());
	return 0;
}

/* ---- virtio-scsi LUNs at run time ---- */

static int add_device(struct devset *set, const struct devkind *kind, struct json_object *params,
		      char *name, char *err, size_t err_len);
static int params_check(struct json_object *params, const char *const *allowed, char *err,
			size_t err_len);

static struct scsi_dev *find_scsi(struct devset *set, const char *name)
{
	struct devset_entry *e = devset_find(set, name);

	return e && !strcmp(e->kind->name, "scsi") ? e->dev : NULL;
}

/*
 * The controller, target and LUN of a scsi-* call: {"name": N, "target":
 * T, "lun": L, ...}.  0, or CTL_ERR_INVALID_PARAMS with a message.
 */
static int scsi_params(struct devset *devs, struct json_object *params, struct scsi_dev **dev,
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
 * scsi-add-lun {"name", "target", "lun", and the --lun keys}: device-add
 * of type "lun" with "name" for "scsi".
 */
static int rpc_scsi_add_lun(void *opaque, struct json_object *params, struct json_object **result,
			    char *err, size_t err_len)
{
	const struct devkind *kind = devkind_find("lun");
	struct json_object *p;
	struct scsi_dev *dev;
	unsigned int target, lun;
	char name[64];
	int ret;

	ret = scsi_params(opaque, params, &dev, &target, &lun, err, err_len);
	if (ret)
		return ret;
	/*
	 * "name" becomes the LUN's "scsi": a "scsi" of its own would replace
	 * it (the LUN on another controller than the one checked), and a
	 * "type" would be dropped unseen.
	 */
	if (json_object_object_get_ex(params, "scsi", NULL) ||
	    json_object_object_get_ex(params, "type", NULL)) {
		snprintf(err, err_len, "unknown parameter '%s' (the controller is \"name\")",
			 json_object_object_get_ex(params, "scsi", NULL) ? "scsi" : "type");
		return CTL_ERR_INVALID_PARAMS;
	}
	p = json_object_new_object();
	json_object_object_foreach(params, key, v)
	{
		json_object_object_add(p, strcmp(key, "name") ? key : "scsi", json_object_get(v));
	}
	ret = add_device(opaque, kind, p, name, err, err_len);
	json_object_put(p);
	if (ret)
		return ret;
	*result = json_object_new_object();
	return 0;
}

static int rpc_scsi_remove_lun(void *opaque, struct json_object *params,
			       struct json_object **result, char *err, size_t err_len)
{
	static const char *const keys[] = {"name", "target", "lun", NULL};
	struct scsi_dev *dev;
	unsigned int target, lun;
	int ret = params_check(params, keys, err, err_len);

	if (!ret)
		ret = scsi_params(opaque, params, &dev, &target, &lun, err, err_len);
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
	static const char *const keys[] = {"name", "target", "lun", NULL};
	struct scsi_dev *dev;
	unsigned int target, lun;
	int ret = params_check(params, keys, err, err_len);

	if (!ret)
		ret = scsi_params(opaque, params, &dev, &target, &lun, err, err_len);
	if (ret)
		return ret;
	if (scsi_dev_resize_lun(dev, target, lun, err, err_len))
		return CTL_ERR_INVALID_PARAMS;
	*result = json_object_new_object();
	return 0;
}

/* ---- devices of any kind at run time (devkind.h, devset.h) ---- */

/* Refuse keys other than @allowed (NULL-terminated) and a non-object. */
static int params_check(struct json_object *params, const char *const *allowed, char *err,
			size_t err_len)
{
	if (!params || !json_object_is_type(params, json_type_object)) {
		snprintf(err, err_len, "params must be a JSON object");
		return CTL_ERR_INVALID_PARAMS;
	}
	json_object_object_foreach(params, key, v)
	{
		const char *const *a;

		(void)v;
		for (a = allowed; *a && strcmp(*a, key); a++)
			;
		if (!*a) {
			snprintf(err, err_len, "unknown parameter '%.64s'", key);
			return CTL_ERR_INVALID_PARAMS;
		}
	}
	return 0;
}

/* params["name"], a string, or NULL after a message. */
static const char *param_name(struct json_object *params, char *err, size_t err_len)
{
	struct json_object *n;

	if (!json_object_object_get_ex(params, "name", &n) ||
	    !json_object_is_type(n, json_type_string)) {
		snprintf(err, err_len, "\"name\": the device's name (a string) expected");
		return NULL;
	}
	return json_object_get_string(n);
}

/*
 * Parse @params with @kind's own key=value parser, then add it to the set;
 * its name goes to @name (64 bytes).
 */
static int add_device(struct devset *set, const struct devkind *kind, struct json_object *params,
		      char *name, char *err, size_t err_len)
{
	struct devkind_info in;
	char spec[8192], msg[512] = "";
	void *opts;
	int ret = CTL_ERR_INVALID_PARAMS;

	if (devkind_spec_from_json(params, spec, sizeof(spec), msg, sizeof(msg))) {
		snprintf(err, err_len, "%s: %s", kind->name, msg);
		return CTL_ERR_INVALID_PARAMS;
	}
	opts = calloc(1, kind->opts_size);
	if (!opts) {
		snprintf(err, err_len, "out of memory");
		return CTL_ERR_INTERNAL;
	}
	if (kind->parse(spec, opts, msg, sizeof(msg)))
		snprintf(err, err_len, "%s: %s", kind->name, msg[0] ? msg : "invalid");
	else if (devset_add(set, kind, opts, NULL, 0, err, err_len))
		; /* the message names the device */
	else
		ret = 0;
	kind->info(opts, &in);
	snprintf(name, sizeof(in.name), "%s", in.name);
	free(opts);
	return ret;
}

/* device-show's object for @name: a device or a child (a LUN). */
static struct json_object *show(struct devset *set, const char *name)
{
	struct devset_entry *e = devset_find(set, name);
	struct json_object *d;

	if (e)
		return e->kind->describe(e->dev);
	for (unsigned int i = 0; i < set->n; i++) {
		e = &set->v[i];
		if (e->kind->describe_child) {
			d = e->kind->describe_child(e->dev, name);
			if (d)
				return d;
		}
	}
	return NULL;
}

/* device-add {"type": KIND, KEY: VALUE, ...} -> the device-show object. */
static int rpc_device_add(void *opaque, struct json_object *params, struct json_object **result,
			  char *err, size_t err_len)
{
	const struct devkind *kind;
	struct json_object *t;
	char kinds[128] = "", name[64];
	int ret;

	for (const struct devkind *const *k = devkinds; *k; k++)
		snprintf(kinds + strlen(kinds), sizeof(kinds) - strlen(kinds), "%s%s",
			 k == devkinds ? "" : ", ", (*k)->name);
	if (!params || !json_object_is_type(params, json_type_object) ||
	    !json_object_object_get_ex(params, "type", &t) ||
	    !json_object_is_type(t, json_type_string)) {
		snprintf(err, err_len,
			 "{\"type\": KIND, KEY: VALUE, ...} expected "
			 "(KIND: %s)",
			 kinds);
		return CTL_ERR_INVALID_PARAMS;
	}
	kind = devkind_find(json_object_get_string(t));
	if (!kind) {
		snprintf(err, err_len, "unknown type '%.32s' (KIND: %s)", json_object_get_string(t),
			 kinds);
		return CTL_ERR_INVALID_PARAMS;
	}
	ret = add_device(opaque, kind, params, name, err, err_len);
	if (ret)
		return ret;
	*result = show(opaque, name); /* what was added, as device-show shows it */
	if (!*result)
		*result = json_object_new_object();
	return 0;
}

/* device-remove {"name": NAME[, "force": bool]} -> {} once it is gone. */
static int rpc_device_remove(void *opaque, struct json_object *params, struct json_object **result,
			     char *err, size_t err_len)
{
	static const char *const keys[] = {"name", "force", NULL};
	struct json_object *f;
	const char *name;
	bool force = false;
	int ret;

	ret = params_check(params, keys, err, err_len);
	if (ret)
		return ret;
	name = param_name(params, err, err_len);
	if (!name)
		return CTL_ERR_INVALID_PARAMS;
	if (json_object_object_get_ex(params, "force", &f)) {
		if (!json_object_is_type(f, json_type_boolean)) {
			snprintf(err, err_len, "\"force\": true or false expected");
			return CTL_ERR_INVALID_PARAMS;
		}
		force = json_object_get_boolean(f);
	}
	if (devset_remove(opaque, name, force, err, err_len))
		return CTL_ERR_INVALID_PARAMS;
	*result = json_object_new_object();
	return 0;
}

/* device-show {"name": NAME} -> the device's (or LUN's) list-devices object. */
static int rpc_device_show(void *opaque, struct json_object *params, struct json_object **result,
			   char *err, size_t err_len)
{
	static const char *const keys[] = {"name", NULL};
	const char *name;
	int ret;

	ret = params_check(params, keys, err, err_len);
	if (ret)
		return ret;
	name = param_name(params, err, err_len);
	if (!name)
		return CTL_ERR_INVALID_PARAMS;
	*result = show(opaque, name);
	if (!*result) {
		snprintf(err, err_len, "no device named '%.64s'", name);
		return CTL_ERR_INVALID_PARAMS;
	}
	return 0;
}

/* save-config -> {"devices": [device-add params, ...]}: what --config takes. */
static int rpc_save_config(void *opaque, struct json_object *params, struct json_object **result,
			   char *err, size_t err_len)
{
	struct devset *set = opaque;
	struct json_object *arr;

	if (no_params(params, err, err_len))
		return CTL_ERR_INVALID_PARAMS;
	arr = json_object_new_array();
	for (unsigned int i = 0; i < set->n; i++)
		set->v[i].kind->save(set->v[i].dev, arr);
	*result = json_object_new_object();
	json_object_object_add(*result, "devices", arr);
	return 0;
}

static int rpc_version(void *opaque, struct json_object *params, struct json_object **result,
		       char *err, size_t err_len)
{
	if (no_params(params, err, err_len))
		return CTL_ERR_INVALID_PARAMS;
	*result = json_object_new_object();
	add_str(*result, "name", "vhostd");
	add_str(*result, "version", VHOSTD_VERSION);
	return 0;
}

const struct ctl_method rpc_methods[] = {
	{"device-add", rpc_device_add},
	{"device-remove", rpc_device_remove},
	{"device-show", rpc_device_show},
	{"save-config", rpc_save_config},
	{"list-devices", rpc_list_devices},
	{"scsi-add-lun", rpc_scsi_add_lun},
	{"scsi-remove-lun", rpc_scsi_remove_lun},
	{"scsi-resize", rpc_scsi_resize},
	{"stats", rpc_stats},
	{"version", rpc_version},
	{NULL, NULL},
};
