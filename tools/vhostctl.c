// SPDX-License-Identifier: MIT
/*
 * vhostctl.c - ask a running vhostd about its devices over the JSON-RPC
 * control socket (one request line, one reply line; see vhostd(8)).
 *
 * Exit status: 0 on success, 1 when the daemon cannot be reached or
 * answers with an error, 2 for a usage error.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#ifndef VHOSTD_VERSION
#define VHOSTD_VERSION "unknown"
#endif

#define DEFAULT_CONTROL "/run/vhostd/control.sock"
#define EXIT_USAGE	2
/* A reply longer than this is not from vhostd. */
#define MAX_REPLY    (16u << 20)
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static const char usage_text[] =
	"Usage: vhostctl [--control PATH] [--timeout SECONDS] [--json] COMMAND\n"
	"\n"
	"Commands:\n"
	"  list                 the devices, as a table\n"
	"  stats [NAME]         I/O counters, one /proc/diskstats line per disk and\n"
	"                       one line per virtio-net queue\n"
	"  version              the daemon's version\n"
	"  scsi-add-lun NAME TARGET LUN PATH [--readonly] [--serial S]\n"
	"                       add a disk to virtio-scsi controller NAME (PATH: an\n"
	"                       image, or an NBD URI for an NBD server's export)\n"
	"  scsi-remove-lun NAME TARGET LUN\n"
	"                       remove it (its I/O in flight finishes first)\n"
	"  scsi-resize NAME TARGET LUN\n"
	"                       tell the guest the image's new size\n"
	"  add KIND SPEC        add a device at run time: KIND blk, scsi or lun, SPEC\n"
	"                       the KEY=VALUE,... of vhostd's --blk, --scsi, --lun\n"
	"  remove NAME [--force]\n"
	"                       remove a device or LUN (ID:T:L); refused while a\n"
	"                       front-end drives it, unless --force\n"
	"  show NAME            one device or LUN, KEY VALUE per line\n"
	"  iostat [-x] [NAME...] [INTERVAL [COUNT]]\n"
	"                       r/s, w/s, rkB/s, wkB/s, %util (-x: also await,\n"
	"                       request size, discards, flushes, aqu-sz) per disk\n"
	"                       over each INTERVAL seconds (default: one report\n"
	"                       over 1 s; no COUNT: until interrupted)\n"
	"  save-config [FILE]   the running devices as vhostd --config reads them\n"
	"                       (FILE written beside and renamed into place)\n"
	"  raw METHOD [PARAMS]  call any method (PARAMS: a JSON object or array)\n"
	"                       and print its result as JSON\n"
	"\n"
	"  --control PATH     vhostd's control socket (default: $VHOSTD_CONTROL,\n"
	"                     else " DEFAULT_CONTROL ")\n"
	"  --timeout SECONDS  give up waiting for the reply (default 5)\n"
	"  --json             print the daemon's answer as JSON (every command)\n"
	"  -h, --help         show this help and exit\n"
	"  -V, --version      show the version and exit\n";

struct ctl {
	const char *path;
	int timeout_ms;
	int fd;
	bool json; /* --json: print the daemon's result as JSON, not a table */
};

static void print_json(struct json_object *obj)
{
	printf("%s\n", json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PRETTY |
								   JSON_C_TO_STRING_NOSLASHESCAPE));
}

__attribute__((format(printf, 1, 2))) static void error(const char *fmt, ...)
{
	va_list ap;

	fputs("vhostctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* --- the connection --- */

static int ctl_connect(struct ctl *c)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	if (strlen(c->path) >= sizeof(sa.sun_path)) {
		error("control socket path too long: %s", c->path);
		return -1;
	}
	strcpy(sa.sun_path, c->path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa))) {
		error("cannot reach vhostd at %s: %s (is it running with --control?)", c->path,
		      strerror(errno));
		return -1;
	}
	return 0;
}

static int send_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len) {
		n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read one reply line (malloc'd, NUL-terminated) within the timeout. */
static char *recv_line(struct ctl *c)
{
	int64_t deadline = now_ms() + c->timeout_ms;
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap), *p;
	struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
	ssize_t n;
	int left;

	while (buf && !memchr(buf, '\n', len)) {
		left = (int)(deadline - now_ms());
		if (left <= 0 || poll(&pfd, 1, left) == 0) {
			error("no reply from vhostd at %s within %d ms", c->path, c->timeout_ms);
			goto fail;
		}
		if (len + 1 == cap) {
			if (cap >= MAX_REPLY)
				goto bad;
			p = realloc(buf, cap * 2);
			if (!p)
				goto fail;
			buf = p;
			cap *= 2;
		}
		n = recv(c->fd, buf + len, cap - len - 1, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			error("vhostd at %s closed the connection: %s", c->path,
			      n ? strerror(errno) : "no reply");
			goto fail;
		}
		len += (size_t)n;
	}
	if (!buf)
		return NULL;
	buf[len] = '\0';
	*strchr(buf, '\n') = '\0';
	return buf;
bad:
	error("reply from %s is too long", c->path);
fail:
	free(buf);
	return NULL;
}

/* --- JSON-RPC --- */

/* The "result" of @reply, or NULL after printing its error. */
static struct json_object *reply_result(const char *method, struct json_object *reply)
{
	struct json_object *err, *msg = NULL, *code = NULL, *result;

	if (!json_object_is_type(reply, json_type_object)) {
		error("%s: the reply is not a JSON-RPC object", method);
		return NULL;
	}
	if (json_object_object_get_ex(reply, "error", &err)) {
		json_object_object_get_ex(err, "message", &msg);
		json_object_object_get_ex(err, "code", &code);
		error("%s: %s (error %d)", method, msg ? json_object_get_string(msg) : "failed",
		      code ? json_object_get_int(code) : 0);
		return NULL;
	}
	if (!json_object_object_get_ex(reply, "result", &result)) {
		error("%s: the reply has neither result nor error", method);
		return NULL;
	}
	/* A null result becomes an empty object, so NULL always means failure. */
	return result ? json_object_get(result) : json_object_new_object();
}

static int send_request(struct ctl *c, const char *method, struct json_object *params)
{
	struct json_object *req = json_object_new_object();
	const char *s;
	int ret;

	json_object_object_add(req, "jsonrpc", json_object_new_string("2.0"));
	json_object_object_add(req, "id", json_object_new_int(1));
	json_object_object_add(req, "method", json_object_new_string(method));
	if (params)
		json_object_object_add(req, "params", params);
	s = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	ret = send_all(c->fd, s, strlen(s)) || send_all(c->fd, "\n", 1) ? -1 : 0;
	if (ret)
		error("cannot send to vhostd at %s: %s", c->path, strerror(errno));
	json_object_put(req);
	return ret;
}

/*
 * Connect, call @method with @params (consumed, may be NULL).  Returns a
 * new reference to the result, or NULL after one message.
 */
static struct json_object *rpc_call(struct ctl *c, const char *method, struct json_object *params)
{
	struct json_object *reply, *result;
	char *line;

	if (ctl_connect(c)) {
		json_object_put(params);
		return NULL;
	}
	if (send_request(c, method, params))
		return NULL;
	line = recv_line(c);
	if (!line)
		return NULL;
	reply = json_tokener_parse(line);
	result = reply_result(method, reply);
	json_object_put(reply);
	free(line);
	return result;
}

/*
 * Call @method and return the "devices" array of its result, which the
 * caller puts through *@result; NULL (and nothing to put) after a message.
 */
static struct json_object *rpc_devices(struct ctl *c, const char *method,
				       struct json_object *params, struct json_object **result)
{
	struct json_object *devs;

	*result = rpc_call(c, method, params);
	if (!*result)
		return NULL;
	if (!json_object_object_get_ex(*result, "devices", &devs) ||
	    !json_object_is_type(devs, json_type_array)) {
		error("%s: the reply has no device list", method);
		json_object_put(*result);
		*result = NULL;
		return NULL;
	}
	return devs;
}

static const char *str_of(struct json_object *obj, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(obj, key, &v) || !v)
		return "-";
	return json_object_get_string(v);
}

static uint64_t u64_of(struct json_object *obj, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(obj, key, &v) ? json_object_get_uint64(v) : 0;
}

static bool bool_of(struct json_object *obj, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(obj, key, &v) && json_object_get_boolean(v);
}

/* --- commands --- */

static void human_size(uint64_t bytes, char *buf, size_t len)
{
	static const char units[] = "BKMGTPE";
	double v = (double)bytes;
	int u = 0;

	while (v >= 1024 && units[u + 1]) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%" PRIu64 "B", bytes);
	else
		snprintf(buf, len, "%.1f%c", v, units[u]);
}

#define LIST_COLS 9

static const char *const list_head[LIST_COLS] = {
	"ID", "TYPE", "SIZE", "SECTORS", "RO", "QUEUES", "CONNECTED", "SOCKET", "PATH",
};

/*
 * The PATH column: the image file, "rbd:POOL/IMAGE" for a Ceph image, or
 * "(null back-end)" for a disk with no path, rather than nothing.
 */
static void disk_where(struct json_object *disk, char *buf, size_t len)
{
	const char *be = str_of(disk, "backend");

	if (*str_of(disk, "path"))
		snprintf(buf, len, "%s", str_of(disk, "path"));
	else if (!strcmp(be, "rbd"))
		snprintf(buf, len, "rbd:%s/%s", str_of(disk, "pool"), str_of(disk, "image"));
	else
		snprintf(buf, len, "(%s back-end)", strcmp(be, "-") ? be : "null");
}

/* A virtio-net device: no size; QUEUES are its pairs, PATH its back-end. */
static void list_net_row(struct json_object *d, char cells[LIST_COLS][4096])
{
	snprintf(cells[0], sizeof(cells[0]), "%s", str_of(d, "id"));
	snprintf(cells[1], sizeof(cells[1]), "net");
	snprintf(cells[2], sizeof(cells[2]), "-");
	snprintf(cells[3], sizeof(cells[3]), "-");
	snprintf(cells[4], sizeof(cells[4]), "-");
	snprintf(cells[5], sizeof(cells[5]), "%" PRIu64, u64_of(d, "queues"));
	snprintf(cells[6], sizeof(cells[6]), "%s", bool_of(d, "connected") ? "yes" : "no");
	snprintf(cells[7], sizeof(cells[7]), "%s", str_of(d, "socket"));
	snprintf(cells[8], sizeof(cells[8]), "%s%s%s mac %s", str_of(d, "backend"),
		 *str_of(d, "interface") ? " " : "", str_of(d, "interface"), str_of(d, "mac"));
}

static void list_row(struct json_object *d, char cells[LIST_COLS][4096])
{
	if (!strcmp(str_of(d, "type"), "net")) {
		list_net_row(d, cells);
		return;
	}
	human_size(u64_of(d, "size"), cells[2], sizeof(cells[2]));
	snprintf(cells[0], sizeof(cells[0]), "%s", str_of(d, "id"));
	snprintf(cells[1], sizeof(cells[1]), "%s", str_of(d, "type"));
	snprintf(cells[3], sizeof(cells[3]), "%" PRIu64, u64_of(d, "capacity"));
	snprintf(cells[4], sizeof(cells[4]), "%s", bool_of(d, "readonly") ? "yes" : "no");
	snprintf(cells[5], sizeof(cells[5]), "%" PRIu64, u64_of(d, "num-queues"));
	snprintf(cells[6], sizeof(cells[6]), "%s", bool_of(d, "connected") ? "yes" : "no");
	snprintf(cells[7], sizeof(cells[7]), "%s", str_of(d, "socket"));
	disk_where(d, cells[8], sizeof(cells[8]));
}

/* A virtio-scsi controller: one row per LUN ("NAME:T:L"), the controller's queues and socket. */
static void list_lun_row(struct json_object *d, struct json_object *lun,
			 char cells[LIST_COLS][4096])
{
	human_size(u64_of(lun, "size"), cells[2], sizeof(cells[2]));
	snprintf(cells[0], sizeof(cells[0]), "%s", str_of(lun, "name"));
	snprintf(cells[1], sizeof(cells[1]), "scsi");
	snprintf(cells[3], sizeof(cells[3]), "%" PRIu64, u64_of(lun, "size") / 512);
	snprintf(cells[4], sizeof(cells[4]), "%s", bool_of(lun, "readonly") ? "yes" : "no");
	snprintf(cells[5], sizeof(cells[5]), "%" PRIu64, u64_of(d, "num-queues"));
	snprintf(cells[6], sizeof(cells[6]), "%s", bool_of(d, "connected") ? "yes" : "no");
	snprintf(cells[7], sizeof(cells[7]), "%s", str_of(d, "socket"));
	disk_where(lun, cells[8], sizeof(cells[8]));
}

/* The LUNs of a virtio-scsi controller entry, or NULL for a blk device. */
static struct json_object *luns_of(struct json_object *d)
{
	struct json_object *luns;

	if (strcmp(str_of(d, "type"), "scsi") || !json_object_object_get_ex(d, "luns", &luns) ||
	    !json_object_is_type(luns, json_type_array))
		return NULL;
	return luns;
}

static void list_print(char (*cells)[LIST_COLS][4096], size_t rows)
{
	size_t width[LIST_COLS] = {0}, w;

	for (size_t r = 0; r < rows; r++) {
		for (int i = 0; i < LIST_COLS; i++) {
			w = strlen(cells[r][i]);
			width[i] = w > width[i] ? w : width[i];
		}
	}
	for (size_t r = 0; r < rows; r++) {
		for (int i = 0; i < LIST_COLS - 1; i++)
			printf("%-*s  ", (int)width[i], cells[r][i]);
		printf("%s\n", cells[r][LIST_COLS - 1]);
	}
}

static int cmd_list(struct ctl *c, int argc, char **argv)
{
	struct json_object *result, *devs;
	char(*cells)[LIST_COLS][4096];
	size_t n, rows;

	devs = rpc_devices(c, "list-devices", NULL, &result);
	if (!devs)
		return 1;
	if (c->json) {
		print_json(result);
		json_object_put(result);
		return 0;
	}
	n = json_object_array_length(devs);
	rows = 1;
	for (size_t r = 0; r < n; r++) {
		struct json_object *luns = luns_of(json_object_array_get_idx(devs, r));

		rows += luns ? json_object_array_length(luns) : 1;
	}
	cells = calloc(rows, sizeof(*cells));
	if (!cells) {
		json_object_put(result);
		return 1;
	}
	for (int i = 0; i < LIST_COLS; i++)
		snprintf(cells[0][i], sizeof(cells[0][i]), "%s", list_head[i]);
	rows = 1;
	for (size_t r = 0; r < n; r++) {
		struct json_object *d = json_object_array_get_idx(devs, r), *luns = luns_of(d);

		if (!luns) {
			list_row(d, cells[rows++]);
			continue;
		}
		for (size_t l = 0; l < json_object_array_length(luns); l++)
			list_lun_row(d, json_object_array_get_idx(luns, l), cells[rows++]);
	}
	list_print(cells, rows);
	free(cells);
	json_object_put(result);
	return 0;
}

static int cmd_stats(struct ctl *c, int argc, char **argv)
{
	struct json_object *params = NULL, *result, *devs;
	size_t n;

	if (argc == 2) {
		params = json_object_new_object();
		json_object_object_add(params, "name", json_object_new_string(argv[1]));
	}
	devs = rpc_devices(c, "stats", params, &result);
	if (!devs)
		return 1;
	if (c->json) {
		print_json(result);
		json_object_put(result);
		return 0;
	}
	n = json_object_array_length(devs);
	for (size_t i = 0; i < n; i++) {
		struct json_object *d = json_object_array_get_idx(devs, i), *lines;

		/* virtio-net: a line per queue. */
		if (json_object_object_get_ex(d, "lines", &lines) &&
		    json_object_is_type(lines, json_type_array)) {
			for (size_t l = 0; l < json_object_array_length(lines); l++)
				printf("%s\n",
				       json_object_get_string(json_object_array_get_idx(lines, l)));
			continue;
		}
		printf("%s\n", str_of(d, "diskstats"));
	}
	json_object_put(result);
	return 0;
}

static int cmd_version(struct ctl *c, int argc, char **argv)
{
	struct json_object *result = rpc_call(c, "version", NULL);

	if (!result)
		return 1;
	if (c->json)
		print_json(result);
	else
		printf("%s %s\n", str_of(result, "name"), str_of(result, "version"));
	json_object_put(result);
	return 0;
}

/* NAME TARGET LUN as the params of a scsi-* method; NULL after a usage error. */
static struct json_object *scsi_addr(char **argv)
{
	struct json_object *p;
	char *end;
	long t, l;

	t = strtol(argv[2], &end, 10);
	if (*end || end == argv[2] || t < 0 || t > 255) {
		error("TARGET: 0..255 expected, not '%s'", argv[2]);
		return NULL;
	}
	l = strtol(argv[3], &end, 10);
	if (*end || end == argv[3] || l < 0 || l > 16383) {
		error("LUN: 0..16383 expected, not '%s'", argv[3]);
		return NULL;
	}
	p = json_object_new_object();
	json_object_object_add(p, "name", json_object_new_string(argv[1]));
	json_object_object_add(p, "target", json_object_new_int64(t));
	json_object_object_add(p, "lun", json_object_new_int64(l));
	return p;
}

/* Call a method whose result only matters with --json. */
static int scsi_call(struct ctl *c, const char *method, struct json_object *params)
{
	struct json_object *result = rpc_call(c, method, params);

	if (!result)
		return 1;
	if (c->json)
		print_json(result);
	json_object_put(result);
	return 0;
}

/*
 * SPEC "key=value,key=value" as a JSON object of strings; ",," is a comma
 * in a value, as the daemon's options read it.  The daemon checks the keys
 * and values with the parser its --KIND options use.  NULL after a message.
 */
static struct json_object *spec_to_json(const char *spec)
{
	struct json_object *o = json_object_new_object();
	size_t len = strlen(spec);
	char *key = malloc(len + 1), *val = malloc(len + 1);
	const char *p = spec;

	if (!key || !val)
		goto fail;
	while (*p) {
		size_t k = 0, v = 0;

		while (*p && *p != '=' && *p != ',')
			key[k++] = *p++;
		key[k] = '\0';
		if (*p != '=' || !k) {
			error("add: '%s': key=value expected", spec);
			goto fail;
		}
		p++;
		for (; *p; p++) {
			if (*p == ',' && p[1] != ',')
				break;
			val[v++] = *p;
			if (*p == ',')
				p++; /* ",," */
		}
		val[v] = '\0';
		if (*p == ',' && !*++p) {
			error("add: '%s': ends in a comma", spec);
			goto fail;
		}
		if (json_object_object_get_ex(o, key, NULL)) {
			error("add: key '%s' given twice", key);
			goto fail;
		}
		json_object_object_add(o, key, json_object_new_string(val));
	}
	free(key);
	free(val);
	return o;
fail:
	free(key);
	free(val);
	json_object_put(o);
	return NULL;
}

static int cmd_add(struct ctl *c, int argc, char **argv)
{
	struct json_object *p = spec_to_json(argv[2]);

	if (!p)
		return EXIT_USAGE;
	json_object_object_add(p, "type", json_object_new_string(argv[1]));
	return scsi_call(c, "device-add", p);
}

static int cmd_remove(struct ctl *c, int argc, char **argv)
{
	struct json_object *p;

	if (argc == 3 && strcmp(argv[2], "--force")) {
		error("remove: unexpected '%s' (only --force)", argv[2]);
		return EXIT_USAGE;
	}
	p = json_object_new_object();
	json_object_object_add(p, "name", json_object_new_string(argv[1]));
	if (argc == 3)
		json_object_object_add(p, "force", json_object_new_boolean(1));
	return scsi_call(c, "device-remove", p);
}

static int cmd_show(struct ctl *c, int argc, char **argv)
{
	struct json_object *p = json_object_new_object(), *result, *luns;

	json_object_object_add(p, "name", json_object_new_string(argv[1]));
	result = rpc_call(c, "device-show", p);
	if (!result)
		return 1;
	if (c->json) {
		print_json(result);
	} else {
		json_object_object_foreach(result, key, v)
		{
			if (!strcmp(key, "luns"))
				continue;
			printf("%-12s %s\n", key, v ? json_object_get_string(v) : "");
		}
		/* A controller's LUNs by name, as `list` shows them. */
		if (json_object_object_get_ex(result, "luns", &luns)) {
			printf("%-12s", "luns");
			for (size_t i = 0; i < json_object_array_length(luns); i++)
				printf(" %s", str_of(json_object_array_get_idx(luns, i), "name"));
			printf("\n");
		}
	}
	json_object_put(result);
	return 0;
}

/* save-config [FILE]: the running devices as --config reads them. */
static int cmd_save_config(struct ctl *c, int argc, char **argv)
{
	struct json_object *result = rpc_call(c, "save-config", NULL);
	char tmp[4096];
	FILE *f;
	int ret = 0;

	if (!result)
		return 1;
	if (argc == 1) {
		print_json(result);
		json_object_put(result);
		return 0;
	}
	/* Written beside it and renamed: a crash never leaves half a config. */
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", argv[1]) >= sizeof(tmp)) {
		error("save-config: path too long");
		json_object_put(result);
		return EXIT_USAGE;
	}
	f = fopen(tmp, "we");
	if (!f ||
	    fprintf(f, "%s\n",
		    json_object_to_json_string_ext(
			    result, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE)) <
		    0 ||
	    fflush(f) || fsync(fileno(f))) {
		error("save-config: %s: %s", tmp, strerror(errno));
		ret = 1;
	}
	if (f && fclose(f) && !ret) {
		error("save-config: %s: %s", tmp, strerror(errno));
		ret = 1;
	}
	if (!ret && rename(tmp, argv[1])) {
		error("save-config: %s: %s", argv[1], strerror(errno));
		ret = 1;
	}
	if (ret && f)
		unlink(tmp);
	if (!ret && c->json)
		print_json(result);
	json_object_put(result);
	return ret;
}

static int cmd_scsi_add_lun(struct ctl *c, int argc, char **argv)
{
	struct json_object *p = scsi_addr(argv);

	if (!p)
		return EXIT_USAGE;
	/* An NBD URI instead of a path: the LUN is an NBD server's export. */
	if (!strncmp(argv[4], "nbd://", 6) || !strncmp(argv[4], "nbd+unix://", 11) ||
	    !strncmp(argv[4], "nbds://", 7) || !strncmp(argv[4], "nbds+unix://", 12)) {
		json_object_object_add(p, "backend", json_object_new_string("nbd"));
		json_object_object_add(p, "uri", json_object_new_string(argv[4]));
	} else {
		json_object_object_add(p, "path", json_object_new_string(argv[4]));
	}
	for (int i = 5; i < argc; i++) {
		if (!strcmp(argv[i], "--readonly")) {
			json_object_object_add(p, "readonly", json_object_new_boolean(1));
		} else if (!strcmp(argv[i], "--serial") && i + 1 < argc) {
			json_object_object_add(p, "serial", json_object_new_string(argv[++i]));
		} else {
			error("scsi-add-lun: unexpected '%s'", argv[i]);
			json_object_put(p);
			return EXIT_USAGE;
		}
	}
	return scsi_call(c, "scsi-add-lun", p);
}

static int cmd_scsi_remove_lun(struct ctl *c, int argc, char **argv)
{
	struct json_object *p = scsi_addr(argv);

	return p ? scsi_call(c, "scsi-remove-lun", p) : EXIT_USAGE;
}

static int cmd_scsi_resize(struct ctl *c, int argc, char **argv)
{
	struct json_object *p = scsi_addr(argv);

	return p ? scsi_call(c, "scsi-resize", p) : EXIT_USAGE;
}

/* --- iostat --- */

/* One disk's counters at one moment (the stats method's fields). */
struct io_sample {
	char name[64];
	uint64_t ios[4], sectors[4], ticks[4]; /* read, write, discard, flush */
	uint64_t io_ticks, time_in_queue;
};

static const char *const io_dirs[4] = {"read", "write", "discard", "flush"};

static uint64_t sub_u64(struct json_object *o, const char *dir, const char *key)
{
	struct json_object *d;

	return json_object_object_get_ex(o, dir, &d) ? u64_of(d, key) : 0;
}

/* Does a stats entry named @id match one of @names (a device, its LUNs, or one LUN)? */
static bool io_selected(const char *id, char **names, int n)
{
	if (!n)
		return true;
	for (int i = 0; i < n; i++) {
		size_t l = strlen(names[i]);

		if (!strcmp(id, names[i]) || (!strncmp(id, names[i], l) && id[l] == ':'))
			return true;
	}
	return false;
}

/* Every selected disk's counters, and the daemon's clock; -1 after a message. */
static int io_sample_all(struct ctl *c, char **names, int nnames, struct io_sample **out,
			 size_t *count, uint64_t *t_ns)
{
	struct json_object *result, *devs;
	size_t n;

	devs = rpc_devices(c, "stats", NULL, &result);
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	if (!devs)
		return -1;
	*t_ns = u64_of(result, "time-ns");
	n = json_object_array_length(devs);
	*out = calloc(n ? n : 1, sizeof(**out));
	*count = 0;
	if (!*out) {
		json_object_put(result);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		struct json_object *d = json_object_array_get_idx(devs, i);
		struct io_sample *s = &(*out)[*count];

		/* Disks only: another kind's entry (net) has no diskstats. */
		if (!json_object_object_get_ex(d, "diskstats", NULL) ||
		    !io_selected(str_of(d, "id"), names, nnames))
			continue;
		snprintf(s->name, sizeof(s->name), "%s", str_of(d, "id"));
		for (int k = 0; k < 4; k++) {
			s->ios[k] = sub_u64(d, io_dirs[k], "ios");
			s->sectors[k] = sub_u64(d, io_dirs[k], "sectors");
			s->ticks[k] = sub_u64(d, io_dirs[k], "ticks-ms");
		}
		s->io_ticks = u64_of(d, "io-ticks-ms");
		s->time_in_queue = u64_of(d, "time-in-queue-ms");
		(*count)++;
	}
	json_object_put(result);
	for (int i = 0; i < nnames; i++) {
		bool found = false;

		for (size_t k = 0; k < *count && !found; k++)
			found = io_selected((*out)[k].name, &names[i], 1);
		if (!found) {
			error("iostat: no device named '%s'", names[i]);
			free(*out);
			return -1;
		}
	}
	return 0;
}

/* The counters' growth, or 0 if they went back (the device was re-added). */
static double io_delta(uint64_t a, uint64_t b)
{
	return b >= a ? (double)(b - a) : 0;
}

/*
 * One report: the columns of sysstat's iostat, computed as it does from
 * the diskstats fields over @secs (the daemon's clock).
 */
static void io_report(struct ctl *c, const struct io_sample *a, size_t na,
		      const struct io_sample *b, size_t nb, double secs, bool x)
{
	static const char *const cols_x[] = {"r/s",   "rkB/s",	 "r_await",  "rareq-sz", "w/s",
					     "wkB/s", "w_await", "wareq-sz", "d/s",	 "dkB/s",
					     "f/s",   "f_await", "aqu-sz",   "%util"};
	static const char *const cols[] = {"r/s", "w/s", "rkB/s", "wkB/s", "%util"};
	struct json_object *rep = NULL, *arr = NULL;
	const char *const *names = x ? cols_x : cols;
	size_t ncols = x ? ARRAY_LEN(cols_x) : ARRAY_LEN(cols);

	if (c->json) {
		rep = json_object_new_object();
		arr = json_object_new_array();
		json_object_object_add(rep, "interval-s", json_object_new_double(secs));
	} else {
		printf("%-16s", "Device");
		for (size_t i = 0; i < ncols; i++)
			printf(" %9s", names[i]);
		printf("\n");
	}
	for (size_t i = 0; i < nb; i++) {
		const struct io_sample *p = NULL, *q = &b[i];
		double v[14], ms = secs * 1000, ios[4], sec[4], tk[4];
		struct json_object *d;

		for (size_t k = 0; k < na && !p; k++)
			p = strcmp(a[k].name, q->name) ? NULL : &a[k];
		if (!p)
			continue; /* added since the last sample: next report */
		for (int k = 0; k < 4; k++) {
			ios[k] = io_delta(p->ios[k], q->ios[k]);
			sec[k] = io_delta(p->sectors[k], q->sectors[k]);
			tk[k] = io_delta(p->ticks[k], q->ticks[k]);
		}
		double util = io_delta(p->io_ticks, q->io_ticks) / ms * 100;
		double aqu = io_delta(p->time_in_queue, q->time_in_queue) / ms;

		if (util > 100)
			util = 100;
		if (x) {
			double all[14] = {
				ios[0] / secs,
				sec[0] / 2 / secs,
				ios[0] ? tk[0] / ios[0] : 0,
				ios[0] ? sec[0] / 2 / ios[0] : 0,
				ios[1] / secs,
				sec[1] / 2 / secs,
				ios[1] ? tk[1] / ios[1] : 0,
				ios[1] ? sec[1] / 2 / ios[1] : 0,
				ios[2] / secs,
				sec[2] / 2 / secs,
				ios[3] / secs,
				ios[3] ? tk[3] / ios[3] : 0,
				aqu,
				util,
			};
			memcpy(v, all, sizeof(all));
		} else {
			double some[5] = {ios[0] / secs, ios[1] / secs, sec[0] / 2 / secs,
					  sec[1] / 2 / secs, util};
			memcpy(v, some, sizeof(some));
		}
		if (c->json) {
			d = json_object_new_object();
			json_object_object_add(d, "name", json_object_new_string(q->name));
			for (size_t k = 0; k < ncols; k++)
				json_object_object_add(d, names[k], json_object_new_double(v[k]));
			json_object_array_add(arr, d);
		} else {
			printf("%-16s", q->name);
			for (size_t k = 0; k < ncols; k++)
				printf(" %9.2f", v[k]);
			printf("\n");
		}
	}
	if (c->json) {
		json_object_object_add(rep, "devices", arr);
		printf("%s\n",
		       json_object_to_json_string_ext(rep, JSON_C_TO_STRING_PLAIN |
								   JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(rep);
	} else {
		printf("\n");
	}
	fflush(stdout);
}

/* A positive decimal number of seconds, or a count: -1 if @s is not one. */
static double io_number(const char *s, bool integer)
{
	char *end;
	double v;

	if (!*s || !strchr("0123456789", *s))
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || !(v > 0) || v > 86400 * 365 || (integer && v != (double)(long)v))
		return -1;
	return v;
}

/*
 * iostat [-x] [NAME...] [INTERVAL [COUNT]]: reports over INTERVAL seconds
 * (1 report over 1 s without one; forever without COUNT).  Each report is
 * the interval's own, like `iostat -y`: there is no "since boot" one.
 */
static int cmd_iostat(struct ctl *c, int argc, char **argv)
{
	struct io_sample *prev = NULL, *cur = NULL;
	size_t nprev = 0, ncur = 0;
	uint64_t t0, t1;
	double interval = 1, count = 1;
	bool x = false;
	int first = 1, last = argc, ret = 0;

	if (argc > 1 && !strcmp(argv[1], "-x")) {
		x = true;
		first = 2;
	}
	for (int i = first; i < argc; i++) {
		if (argv[i][0] == '-') {
			error("iostat: unknown option '%s' (only -x, first)", argv[i]);
			return EXIT_USAGE;
		}
	}
	/*
	 * Trailing numbers: INTERVAL [COUNT].  As for iostat, a trailing word
	 * that starts with a digit is a number, never a device name.
	 */
	if (last > first && isdigit((unsigned char)argv[last - 1][0])) {
		bool two = last - 1 > first && isdigit((unsigned char)argv[last - 2][0]);

		interval = io_number(argv[last - (two ? 2 : 1)], false);
		count = two ? io_number(argv[last - 1], true) : 0; /* 0: forever */
		if (interval < 0 || count < 0) {
			error("iostat: INTERVAL (seconds) [COUNT (a positive integer)] expected, "
			      "not '%s%s%s'",
			      argv[last - (two ? 2 : 1)], two ? " " : "",
			      two ? argv[last - 1] : "");
			return EXIT_USAGE;
		}
		last -= two ? 2 : 1;
	}
	if (interval < 0.01) {
		error("iostat: INTERVAL of at least 0.01 s expected");
		return EXIT_USAGE;
	}
	if (io_sample_all(c, argv + first, last - first, &prev, &nprev, &t0))
		return 1;
	for (unsigned long n = 0; !count || n < (unsigned long)count; n++) {
		struct timespec ts = {(time_t)interval,
				      (long)((interval - (double)(time_t)interval) * 1e9)};

		nanosleep(&ts, NULL);
		if (io_sample_all(c, argv + first, last - first, &cur, &ncur, &t1)) {
			ret = 1;
			break;
		}
		io_report(c, prev, nprev, cur, ncur, t1 > t0 ? (double)(t1 - t0) / 1e9 : interval,
			  x);
		free(prev);
		prev = cur;
		nprev = ncur;
		t0 = t1;
	}
	free(prev);
	return ret;
}

static int cmd_raw(struct ctl *c, int argc, char **argv)
{
	struct json_object *params = NULL, *result;

	if (argc == 3) {
		params = json_tokener_parse(argv[2]);
		if (!json_object_is_type(params, json_type_object) &&
		    !json_object_is_type(params, json_type_array)) {
			error("raw: PARAMS must be a JSON object or array: %s", argv[2]);
			json_object_put(params);
			return EXIT_USAGE;
		}
	}
	result = rpc_call(c, argv[1], params);
	if (!result)
		return 1;
	printf("%s\n", json_object_to_json_string_ext(
			       result, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(result);
	return 0;
}

/* Word counts include the command itself; checked before connecting. */
static const struct command {
	const char *name;
	const char *usage;
	int min_words, max_words;
	int (*run)(struct ctl *c, int argc, char **argv);
} commands[] = {
	{"list", "list", 1, 1, cmd_list},
	{"stats", "stats [NAME]", 1, 2, cmd_stats},
	{"version", "version", 1, 1, cmd_version},
	{"raw", "raw METHOD [JSON-PARAMS]", 2, 3, cmd_raw},
	{"add", "add KIND KEY=VALUE[,KEY=VALUE...]", 3, 3, cmd_add},
	{"remove", "remove NAME [--force]", 2, 3, cmd_remove},
	{"show", "show NAME", 2, 2, cmd_show},
	{"save-config", "save-config [FILE]", 1, 2, cmd_save_config},
	{"iostat", "iostat [-x] [NAME...] [INTERVAL [COUNT]]", 1, 64, cmd_iostat},
	{"scsi-add-lun", "scsi-add-lun NAME TARGET LUN PATH [--readonly] [--serial S]", 5, 8,
	 cmd_scsi_add_lun},
	{"scsi-remove-lun", "scsi-remove-lun NAME TARGET LUN", 4, 4, cmd_scsi_remove_lun},
	{"scsi-resize", "scsi-resize NAME TARGET LUN", 4, 4, cmd_scsi_resize},
};

static int command_run(struct ctl *c, const struct command *cmd, int argc, char **argv)
{
	int ret;

	if (argc < cmd->min_words || argc > cmd->max_words) {
		error("usage: vhostctl [OPTIONS] %s", cmd->usage);
		return EXIT_USAGE;
	}
	ret = cmd->run(c, argc, argv);
	if (c->fd >= 0)
		close(c->fd);
	return ret;
}

/* --- main --- */

static const struct option long_options[] = {
	{"control", required_argument, NULL, 'c'}, {"timeout", required_argument, NULL, 't'},
	{"json", no_argument, NULL, 'j'},	   {"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},	   {NULL, 0, NULL, 0},
};

static int parse_timeout(const char *s, int *ms)
{
	char *end;
	double v;

	/* strtod would also take " 5", "nan" and hex: only plain decimals. */
	if (!((*s >= '0' && *s <= '9') || *s == '.') || s[strspn(s, "0123456789.eE+-")])
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v > 0 && v <= 3600))
		return -1;
	/* Rounded up: a positive timeout never becomes "do not wait at all". */
	*ms = (int)(v * 1000);
	if ((double)*ms < v * 1000)
		(*ms)++;
	return 0;
}

/* Options; returns -1 to exit 0, >0 an exit status, 0 to run a command. */
static int parse_args(struct ctl *c, int argc, char **argv)
{
	int opt;

	opterr = 0;
	/* "+": options end at the command, so `raw METHOD '-1'` is not an option. */
	while ((opt = getopt_long(argc, argv, "+:hV", long_options, NULL)) != -1) {
		switch (opt) {
		case 'c':
			c->path = optarg;
			break;
		case 't':
			if (parse_timeout(optarg, &c->timeout_ms)) {
				error("--timeout %s: expected seconds, more than 0", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'j':
			c->json = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return -1;
		case 'V':
			printf("vhostctl %s\n", VHOSTD_VERSION);
			return -1;
		case ':':
			error("option '%s' needs an argument (try 'vhostctl --help')",
			      argv[optind - 1]);
			return EXIT_USAGE;
		default:
			error("unknown option '%s' (try 'vhostctl --help')", argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind == argc) {
		error("no command given (try 'vhostctl --help')");
		return EXIT_USAGE;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct ctl c = {.timeout_ms = 5000, .fd = -1};
	int ret;

	c.path = getenv("VHOSTD_CONTROL");
	if (!c.path || !c.path[0])
		c.path = DEFAULT_CONTROL;
	ret = parse_args(&c, argc, argv);
	if (ret)
		return ret < 0 ? 0 : ret;
	argc -= optind;
	argv += optind;
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (!strcmp(argv[0], commands[i].name))
			return command_run(&c, &commands[i], argc, argv);
	}
	error("unknown command '%s' (try 'vhostctl --help')", argv[0]);
	return EXIT_USAGE;
}
