// SPDX-License-Identifier: MIT
/*
 * vhostd.c - the daemon: one device per --KIND option of the device kinds
 * table (devkind.h: --blk, --scsi with its --lun disks) or per object of
 * --config, a JSON-RPC control socket that adds and removes them at run
 * time (rpc.c, devset.c), Prometheus metrics (metrics.c), systemd's notify
 * protocol, and a clean stop on SIGTERM or SIGINT.
 *
 * Everything is checked before anything starts (options, config file,
 * duplicate ids and sockets, that every image opens; backend=null has
 * none), so a bad command line leaves nothing behind.  If a device still
 * fails to start, the ones already started are torn down (which removes
 * their sockets) before exiting.
 *
 * Exit status: 0 after a signal, 1 when something failed at run time, 2 for
 * a usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <json-c/json.h>
#include <systemd/sd-daemon.h>

#include "common/evloop.h"
#include "common/kvopts.h"
#include "common/log.h"
#include "common/util.h"
#include "control.h"
#include "devices/blk.h"
#include "devices/diskopts.h"
#include "devset.h"
#include "engine/engine.h"
#include "metrics.h"
#include "rpc.h"

#ifndef VHOSTD_VERSION
#define VHOSTD_VERSION "unknown"
#endif

#define EXIT_USAGE 2

/* One device (or LUN) to start, from the command line or --config. */
struct vhd_spec {
	const struct devkind *kind;
	void *opts;	 /* kind->opts_size bytes, parsed */
	char where[320]; /* "--blk" or "FILE: devices[N]": for messages */
};

struct vhostd {
	struct vhd_spec *specs;
	unsigned int nspecs;
	struct devset set;
	const char *control_path;
	const char *control_group;
	const char *metrics_addr;
	struct metrics_server *metrics;
	unsigned int io_threads;
	struct evloop *loop;
	struct ctl_server *ctl;
	int sig_fd;
	int wd_fd; /* systemd watchdog timer, or -1 */
};

static const char usage_text[] =
	"Usage: vhostd [--blk id=NAME,path=FILE,socket=PATH[,OPTIONS] ...]\n"
	"              [--scsi id=NAME,socket=PATH[,OPTIONS] --lun scsi=NAME,... ...]\n"
	"              [--net id=NAME,socket=PATH,tap=IF|macvtap=IF|backend=null|loopback ...]\n"
	"              [--config FILE] [--io-threads N] [--control PATH]\n"
	"              [--control-group GROUP] [--metrics ADDR:PORT] [--log-level LEVEL]\n"
	"              [--log-format text|json] [--log-file PATH]\n"
	"\n"
	"Serve disk images to QEMU (or any vhost-user front-end) as virtio-blk\n"
	"devices and virtio-scsi controllers, and network interfaces as virtio-net\n"
	"devices, over vhost-user unix sockets.\n"
	"\n"
	"  --blk SPEC         add a device (repeatable); SPEC options:\n"
	"                       id=NAME          device name (vda, ...), unique\n"
	"                       path=FILE        raw image or block device\n"
	"                       backend=null     instead of path=: no storage, reads\n"
	"                                        return zeroes, writes are dropped\n"
	"                       size=BYTES       backend=null's capacity (k/m/g/t suffix)\n"
	"                       backend=rbd,pool=P,image=I[,conf=FILE][,user=NAME]\n"
	"                                        instead of path=: a Ceph RBD image\n"
	"                                        through librbd (conf: a ceph.conf;\n"
	"                                        user: the cephx client, default admin)\n"
	"                       backend=nbd,uri=URI  instead of path=: an NBD export,\n"
	"                                        nbd://HOST[:PORT]/EXPORT or\n"
	"                                        nbd+unix:///EXPORT?socket=PATH\n"
	"                       socket=PATH      vhost-user socket to listen on, unique\n"
	"                       readonly=on      refuse writes (VIRTIO_BLK_F_RO)\n"
	"                       locking=off      no lock on the image, so a second\n"
	"                                        daemon can open it (live migration)\n"
	"                       num-queues=N     request queues offered (1..64, default 1)\n"
	"                       queue-size=N     largest ring accepted (default 256)\n"
	"                       cache=none|writeback  O_DIRECT or page cache (default)\n"
	"                       serial=STR       reported by VIRTIO_BLK_T_GET_ID\n"
	"                       poll-us=N        spin on an idle queue before sleeping\n"
	"                                        (0..1000 microseconds, default 50)\n"
	"                       client=on        connect to the socket, do not listen\n"
	"                       io-thread=K      serve every queue on I/O thread K\n"
	"                                        (default: each on the least loaded)\n"
	"                       max-guest-memory=BYTES  most guest RAM the front-end\n"
	"                                        may map (default 64G)\n"
	"  --scsi SPEC        add a virtio-scsi controller (repeatable); SPEC options:\n"
	"                       id=NAME          controller name, unique\n"
	"                       socket=PATH      vhost-user socket to listen on, unique\n"
	"                       num-queues=N     request queues (1..62, default 1)\n"
	"                       queue-size=N     largest ring accepted (default 128)\n"
	"                       poll-us=N, io-thread=K, client=on, max-guest-memory=BYTES\n"
	"                                        as for --blk\n"
	"  --lun SPEC         add a disk to a controller (repeatable); SPEC options:\n"
	"                       scsi=NAME        the --scsi controller\n"
	"                       target=T         0..255\n"
	"                       lun=L            0..16383; target/lun unique per controller\n"
	"                       path=FILE        raw image or block device, or\n"
	"                       backend=null,size=BYTES  no storage\n"
	"                       backend=rbd,pool=P,image=I[,conf=FILE][,user=NAME]\n"
	"                                        a Ceph RBD image, as for --blk\n"
	"                       backend=nbd,uri=URI      an NBD export\n"
	"                       readonly=on      refuse writes (DATA PROTECT)\n"
	"                       locking=off      as for --blk\n"
	"                       serial=STR       VPD 0x80 and the ids of VPD 0x83 (1..36\n"
	"                                        characters; default NAME-T-L)\n"
	"                       cache=none|writeback  O_DIRECT or page cache (default)\n"
	"                       block-size=512|4096  logical block size (default: the\n"
	"                                        device's, at least 512)\n"
	"  --config FILE      start the devices of a JSON file: {\"devices\": [{\"type\":\n"
	"                     \"blk\"|\"scsi\"|\"lun\"|\"net\", KEY: VALUE, ...}, ...]} (the keys\n"
	"                     of --blk, --scsi, --lun, --net; what vhostctl save-config writes)\n"
	"  --net SPEC         add a virtio-net device (repeatable); SPEC options:\n"
	"                       id=NAME          device name, unique\n"
	"                       socket=PATH      vhost-user socket to listen on, unique\n"
	"                       tap=IF           an existing tap (multi_queue vnet_hdr)\n"
	"                       macvtap=IF       an existing macvtap (its /dev/tapN)\n"
	"                       backend=null     tx frames counted and dropped, no rx\n"
	"                       backend=loopback each pair's tx comes back on its rx\n"
	"                       mac=MAC          the device's address (default: from id)\n"
	"                       queues=N         queue pairs (1..31, default 1)\n"
	"                       queue-size=N     largest ring accepted (default 1024)\n"
	"                       mtu=N            offer VIRTIO_NET_F_MTU with this MTU\n"
	"                       poll-us=N, io-thread=K, client=on, max-guest-memory=BYTES\n"
	"                                        as for --blk\n"
	"  --io-threads N     I/O threads serving every queue of every device (default:\n"
	"                     one per online CPU, at most 8; 0: a thread per queue)\n"
	"  --control PATH     JSON-RPC 2.0 control socket (see vhostctl), mode 0600\n"
	"  --control-group GROUP  also let GROUP use it (mode 0660)\n"
	"  --metrics ADDR:PORT  serve Prometheus metrics at http://ADDR:PORT/metrics\n"
	"                     (127.0.0.1:9100, [::1]:9100; port 0: any free one)\n"
	"  --log-level LEVEL  error, warn, info (default) or debug\n"
	"  --log-format FMT   text (default) or json: one object per line\n"
	"  --log-file PATH    append to PATH instead of stderr; SIGHUP reopens it\n"
	"  -h, --help         show this help and exit\n"
	"  -V, --version      show the version and exit\n"
	"\n"
	"SIGTERM or SIGINT: stop taking requests, finish the in-flight ones, remove\n"
	"the sockets and exit 0.  SIGHUP: reopen --log-file.  Under systemd\n"
	"(Type=notify): READY=1 once every device listens, STOPPING=1, WATCHDOG=1.\n"
	"See vhostd(8).\n";

/* --- command line --- */

enum {
	OPT_CONTROL = 0x100,
	OPT_LOG_LEVEL,
	OPT_IO_THREADS,
	OPT_CONFIG,
	OPT_CONTROL_GROUP,
	OPT_METRICS,
	OPT_LOG_FORMAT,
	OPT_LOG_FILE,
	OPT_KIND = 0x200, /* + the kind's index in devkinds[]: --blk, --scsi, --lun */
};

static const struct option fixed_options[] = {
	{"control", required_argument, NULL, OPT_CONTROL},
	{"control-group", required_argument, NULL, OPT_CONTROL_GROUP},
	{"config", required_argument, NULL, OPT_CONFIG},
	{"metrics", required_argument, NULL, OPT_METRICS},
	{"log-level", required_argument, NULL, OPT_LOG_LEVEL},
	{"log-format", required_argument, NULL, OPT_LOG_FORMAT},
	{"log-file", required_argument, NULL, OPT_LOG_FILE},
	{"io-threads", required_argument, NULL, OPT_IO_THREADS},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
};

#define MAX_KINDS 16
/* One option per device kind, then the fixed ones, then the terminator. */
static struct option long_options[MAX_KINDS + ARRAY_SIZE(fixed_options) + 1];

static void long_options_init(void)
{
	size_t n = 0;

	for (size_t k = 0; devkinds[k] && k < MAX_KINDS; k++)
		long_options[n++] = (struct option){devkinds[k]->name, required_argument, NULL,
						    OPT_KIND + (int)k};
	for (size_t i = 0; i < ARRAY_SIZE(fixed_options); i++)
		long_options[n++] = fixed_options[i];
	long_options[n] = (struct option){NULL, 0, NULL, 0};
}

/* Print one usage error line; returns -1 so callers can `return usage_error(...)`. */
__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_error("%s (try 'vhostd --help')", msg);
	return -1;
}

/* A new spec of @kind at the end of the list: NULL when out of memory. */
static struct vhd_spec *spec_new(struct vhostd *d, const struct devkind *kind)
{
	struct vhd_spec *v, *s;

	if (d->nspecs == DEVSET_MAX_DEVS * 4) {
		usage_error("more than %d devices and LUNs", DEVSET_MAX_DEVS * 4);
		return NULL;
	}
	v = realloc(d->specs, (d->nspecs + 1) * sizeof(*v));
	if (!v)
		goto oom;
	d->specs = v;
	s = &v[d->nspecs];
	s->kind = kind;
	s->opts = calloc(1, kind->opts_size);
	if (!s->opts)
		goto oom;
	d->nspecs++;
	return s;
oom:
	log_error("out of memory");
	return NULL;
}

static void specs_free(struct vhostd *d)
{
	for (unsigned int i = 0; i < d->nspecs; i++)
		free(d->specs[i].opts);
	free(d->specs);
	d->specs = NULL;
	d->nspecs = 0;
}

/* --KIND SPEC: parsed by the kind's own parser. */
static int add_option_spec(struct vhostd *d, const struct devkind *kind, const char *spec)
{
	struct vhd_spec *s = spec_new(d, kind);
	char err[512] = "";

	if (!s)
		return -1;
	snprintf(s->where, sizeof(s->where), "--%s", kind->name);
	if (kind->parse(spec, s->opts, err, sizeof(err)))
		return usage_error("--%s %s: %s", kind->name, spec, err[0] ? err : "invalid");
	return 0;
}

/* The whole of @path, NUL-terminated, at most 16 MiB; NULL after a message. */
static char *read_file(const char *path)
{
	size_t len = 0, cap = 65536;
	char *buf = malloc(cap), *p;
	FILE *f = fopen(path, "re");
	size_t n;

	if (!f || !buf) {
		usage_error("--config %s: %s", path, strerror(errno));
		goto fail;
	}
	while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
		len += n;
		if (len + 1 == cap) {
			if (cap >= (16u << 20)) {
				usage_error("--config %s: larger than 16 MiB", path);
				goto fail;
			}
			p = realloc(buf, cap * 2);
			if (!p) {
				usage_error("--config %s: out of memory", path);
				goto fail;
			}
			buf = p;
			cap *= 2;
		}
	}
	if (ferror(f)) {
		usage_error("--config %s: %s", path, strerror(errno));
		goto fail;
	}
	/* The parser stops at a NUL: what follows would be silently ignored. */
	p = memchr(buf, '\0', len);
	if (p) {
		usage_error("%s: a NUL byte at offset %zu", path, (size_t)(p - buf));
		goto fail;
	}
	fclose(f);
	buf[len] = '\0';
	return buf;
fail:
	if (f)
		fclose(f);
	free(buf);
	return NULL;
}

/* The line of byte @off in @text, 1-based. */
static unsigned int line_of(const char *text, size_t off)
{
	unsigned int line = 1;

	for (size_t i = 0; i < off && text[i]; i++)
		line += text[i] == '\n';
	return line;
}

/*
 * --config FILE: {"devices": [{"type": KIND, KEY: VALUE, ...}, ...]}, each
 * object parsed as device-add parses its params.  Errors name the file,
 * the object (its index and id) and the key.
 */
static int add_config(struct vhostd *d, const char *path)
{
	struct json_tokener *tok;
	struct json_object *root, *devs;
	char *text = read_file(path);
	int ret = -1;

	if (!text)
		return -1;
	tok = json_tokener_new();
	if (!tok) {
		free(text);
		return usage_error("out of memory");
	}
	root = json_tokener_parse_ex(tok, text, (int)strlen(text));
	if (!root || json_tokener_get_parse_end(tok) < strlen(text)) {
		size_t end = json_tokener_get_parse_end(tok);

		/* Only white space may follow the object. */
		if (root && !text[end + strspn(text + end, " \t\r\n")])
			goto parsed;
		/*
		 * json-c says "continue" when the text ends inside a value
		 * (an empty or cut-short file): say that instead.
		 */
		usage_error("%s: line %u: %s", path, line_of(text, end),
			    root ? "text after the JSON object"
			    : json_tokener_get_error(tok) == json_tokener_continue
				    ? "the JSON ends too early"
				    : json_tokener_error_desc(json_tokener_get_error(tok)));
		goto out;
	}
parsed:
	if (ctl_json_dup_keys(text, strlen(text), root)) {
		usage_error("%s: a key appears twice in one object", path);
		goto out;
	}
	if (!json_object_is_type(root, json_type_object) ||
	    !json_object_object_get_ex(root, "devices", &devs) ||
	    !json_object_is_type(devs, json_type_array) || json_object_object_length(root) != 1) {
		usage_error("%s: {\"devices\": [...]} expected, and nothing else", path);
		goto out;
	}
	for (size_t i = 0; i < json_object_array_length(devs); i++) {
		struct json_object *o = json_object_array_get_idx(devs, i), *t, *id;
		const struct devkind *kind;
		char obj[192], spec[8192], err[512] = "";
		struct vhd_spec *s;

		snprintf(obj, sizeof(obj), "%s: devices[%zu]", path, i);
		if (json_object_is_type(o, json_type_object) &&
		    (json_object_object_get_ex(o, "id", &id) ||
		     json_object_object_get_ex(o, "scsi", &id)) &&
		    json_object_is_type(id, json_type_string))
			snprintf(obj + strlen(obj), sizeof(obj) - strlen(obj), " (%.64s)",
				 json_object_get_string(id));
		if (!json_object_is_type(o, json_type_object) ||
		    !json_object_object_get_ex(o, "type", &t) ||
		    !json_object_is_type(t, json_type_string)) {
			usage_error("%s: an object with \"type\" expected", obj);
			goto out;
		}
		kind = devkind_find(json_object_get_string(t));
		if (!kind) {
			usage_error("%s: type: unknown device type '%.32s'", obj,
				    json_object_get_string(t));
			goto out;
		}
		s = spec_new(d, kind);
		if (!s)
			goto out;
		snprintf(s->where, sizeof(s->where), "%s", obj);
		if (devkind_spec_from_json(o, spec, sizeof(spec), err, sizeof(err)) ||
		    kind->parse(spec, s->opts, err, sizeof(err))) {
			usage_error("%s: %s", obj, err[0] ? err : "invalid");
			goto out;
		}
	}
	ret = 0;
out:
	json_object_put(root);
	json_tokener_free(tok);
	free(text);
	return ret;
}

/* getopt_long's own messages are off: report the offending word ourselves. */
static int bad_option(char **argv, int ret)
{
	const char *word = argv[optind - 1];

	if (ret == ':')
		return usage_error("option '%s' needs an argument", word);
	if (optopt && word[0] == '-' && word[1] != '-')
		return usage_error("unknown option '-%c'", optopt);
	return usage_error("unknown option '%s'", word);
}

/* 0: go on; 1: done (help, version); -1: usage error, already reported. */
static int parse_args(struct vhostd *d, int argc, char **argv)
{
	unsigned long n;
	int opt, level;

	long_options_init();
	log_detect_journal();
	d->io_threads = eng_pool_default_threads();
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":hV", long_options, NULL)) != -1) {
		if (opt >= OPT_KIND && opt < OPT_KIND + MAX_KINDS) {
			if (add_option_spec(d, devkinds[opt - OPT_KIND], optarg))
				return -1;
			continue;
		}
		switch (opt) {
		case OPT_CONFIG:
			if (add_config(d, optarg))
				return -1;
			break;
		case OPT_CONTROL:
			/* sun_path: 108 bytes with the NUL (checked here: a usage error). */
			if (!optarg[0] || strlen(optarg) >= 108)
				return usage_error("--control %s: empty or longer than 107 bytes",
						   optarg);
			d->control_path = optarg;
			break;
		case OPT_METRICS: {
			char err[256];

			if (metrics_addr_check(optarg, err, sizeof(err)))
				return usage_error("%s", err);
			d->metrics_addr = optarg;
			break;
		}
		case OPT_CONTROL_GROUP:
			if (!getgrnam(optarg))
				return usage_error("--control-group %s: no such group", optarg);
			d->control_group = optarg;
			break;
		case OPT_LOG_LEVEL:
			level = log_level_parse(optarg);
			if (level < 0)
				return usage_error(
					"--log-level %s: expected error, warn, info or debug",
					optarg);
			log_set_level(level);
			break;
		case OPT_LOG_FORMAT:
			level = log_format_parse(optarg);
			if (level < 0)
				return usage_error("--log-format %s: expected text or json",
						   optarg);
			log_set_format(level);
			break;
		case OPT_LOG_FILE:
			level = log_set_file(optarg);
			if (level)
				return usage_error("--log-file %s: %s", optarg, strerror(-level));
			break;
		case OPT_IO_THREADS:
			if (kv_parse_uint(optarg, 0, ENG_MAX_THREADS, &n))
				return usage_error("--io-threads %s: 0..%d expected", optarg,
						   ENG_MAX_THREADS);
			d->io_threads = (unsigned int)n;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 1;
		case 'V':
			printf("vhostd %s\n", VHOSTD_VERSION);
			return 1;
		default:
			return bad_option(argv, opt);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	/* With a control socket, devices may all come later (device-add). */
	if (!d->nspecs && !d->control_path)
		return usage_error("no device: give at least one --blk, --scsi or --net, or --control");
	if (d->control_group && !d->control_path)
		return usage_error("--control-group without --control");
	return 0;
}

/* The spec of kind @kind named @name, or NULL. */
static const struct vhd_spec *find_spec(const struct vhostd *d, const char *kind, const char *name)
{
	struct devkind_info in;

	for (unsigned int i = 0; i < d->nspecs; i++) {
		if (strcmp(d->specs[i].kind->name, kind))
			continue;
		d->specs[i].kind->info(d->specs[i].opts, &in);
		if (!strcmp(in.name, name))
			return &d->specs[i];
	}
	return NULL;
}

/*
 * Two devices on one name or one socket would make no sense to anyone; a
 * child names an existing parent; io-thread= is within the pool.
 */
static int check_specs(const struct vhostd *d)
{
	struct devkind_info a, b;

	for (unsigned int i = 0; i < d->nspecs; i++) {
		const struct vhd_spec *s = &d->specs[i];

		s->kind->info(s->opts, &a);
		if (a.parent && !find_spec(d, s->kind->parent, a.parent))
			return usage_error("%s %s: no --%s device '%s'", s->where, a.name,
					   s->kind->parent, a.parent);
		if (a.io_thread >= 0 && (unsigned int)a.io_thread >= d->io_threads)
			return usage_error("%s %s: io-thread=%d, but --io-threads is %u", s->where,
					   a.name, a.io_thread, d->io_threads);
		if (a.socket && d->control_path && !strcmp(a.socket, d->control_path))
			return usage_error("%s: socket %s is also the control socket", a.name,
					   a.socket);
		for (unsigned int j = 0; j < i; j++) {
			d->specs[j].kind->info(d->specs[j].opts, &b);
			if (!strcmp(a.name, b.name))
				return usage_error("duplicate device id '%s'", a.name);
			if (a.socket && b.socket && !strcmp(a.socket, b.socket))
				return usage_error("%s and %s: same socket %s", b.name, a.name,
						   a.socket);
		}
	}
	return 0;
}

/* One image to check: a --blk device's or a --lun's. */
struct image_ref {
	struct devkind_info in;
	struct stat st;
};

/*
 * Open every image the way its device will, before starting any, so a
 * typo in the second --blk does not briefly bring up the first.  The same
 * image twice is refused too: the back-end locks it, so the second device
 * would fail only after the first had started.  Returns an exit status.
 */
static int check_images(const struct vhostd *d)
{
	struct image_ref *im;
	int fd, ret = 0;

	im = calloc(d->nspecs ? d->nspecs : 1, sizeof(*im));
	if (!im)
		return 1;
	for (unsigned int i = 0; i < d->nspecs && !ret; i++) {
		d->specs[i].kind->info(d->specs[i].opts, &im[i].in);
		/* backend=null, rbd and nbd have no local image and match nothing. */
		if (!im[i].in.image)
			continue;
		fd = open(im[i].in.image, (im[i].in.readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &im[i].st)) {
			log_error("%s: cannot open %s%s: %s", im[i].in.name, im[i].in.image,
				  im[i].in.readonly ? "" : " for reading and writing",
				  strerror(errno));
			ret = 1;
		}
		if (fd >= 0)
			close(fd);
		for (unsigned int j = 0; j < i && !ret; j++) {
			if (!im[j].in.image)
				continue;
			if (im[j].st.st_dev == im[i].st.st_dev &&
			    im[j].st.st_ino == im[i].st.st_ino) {
				usage_error("%s and %s: same image %s", im[j].in.name,
					    im[i].in.name, im[i].in.image);
				ret = EXIT_USAGE;
			}
		}
	}
	free(im);
	return ret;
}

/* Every socket we will listen on must be creatable: checked before any starts. */
static int check_sockets(const struct vhostd *d)
{
	struct devkind_info in;
	char err[512];
	bool stale;

	for (unsigned int i = 0; i < d->nspecs; i++) {
		d->specs[i].kind->info(d->specs[i].opts, &in);
		if (in.socket && !in.client &&
		    ctl_socket_path_check(in.socket, &stale, err, sizeof(err))) {
			log_error("%s: %s", in.name, err);
			return -1;
		}
	}
	if (d->control_path && ctl_socket_path_check(d->control_path, &stale, err, sizeof(err))) {
		log_error("control %s", err);
		return -1;
	}
	return 0;
}

/* Everything that can be known before starting.  Returns an exit status. */
static int preflight(const struct vhostd *d)
{
	int ret;

	if (check_specs(d))
		return EXIT_USAGE;
	ret = check_images(d);
	if (ret)
		return ret;
	return check_sockets(d) ? 1 : 0;
}

/* --- signals --- */

static void on_signal(void *arg, uint32_t events)
{
	struct vhostd *d = arg;
	struct signalfd_siginfo si;
	int r;

	if (read(d->sig_fd, &si, sizeof(si)) != sizeof(si))
		return;
	if (si.ssi_signo == SIGHUP) {
		/* logrotate moved the file: go on in a new one by the same name. */
		r = log_reopen();
		if (r)
			log_error("SIGHUP: cannot reopen the log file: %s", strerror(-r));
		else
			log_info("SIGHUP: log file reopened");
		return;
	}
	sd_notify(0, "STOPPING=1");
	log_info("%s: finishing in-flight requests and exiting", strsignal((int)si.ssi_signo));
	evloop_stop(d->loop);
}

static void stop_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
}

/* systemd's watchdog: the loop is alive if it gets to say so. */
static void on_watchdog(void *arg, uint32_t events)
{
	struct vhostd *d = arg;
	uint64_t n;

	if (read(d->wd_fd, &n, sizeof(n)) == sizeof(n))
		sd_notify(0, "WATCHDOG=1");
}

/* WatchdogSec=: WATCHDOG=1 at half the interval, from the loop.  0 or -1. */
static int watchdog_start(struct vhostd *d)
{
	struct itimerspec its;
	uint64_t usec;

	if (sd_watchdog_enabled(0, &usec) <= 0)
		return 0;
	usec /= 2;
	its.it_value.tv_sec = (time_t)(usec / 1000000);
	its.it_value.tv_nsec = (long)(usec % 1000000) * 1000;
	if (!usec)
		its.it_value.tv_nsec = 1000;
	its.it_interval = its.it_value;
	d->wd_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (d->wd_fd < 0 || timerfd_settime(d->wd_fd, 0, &its, NULL) ||
	    evloop_add(d->loop, d->wd_fd, EPOLLIN, on_watchdog, d)) {
		log_error("cannot start the watchdog timer: %s", strerror(errno));
		return -1;
	}
	log_debug("systemd watchdog: WATCHDOG=1 every %" PRIu64 " us", usec);
	return 0;
}

/*
 * SIGTERM and SIGINT are blocked before any queue thread exists, so every
 * thread inherits the mask and the signals only ever arrive on the
 * signalfd, read by the loop.  A peer that hangs up must not kill us:
 * SIGPIPE is ignored and writes fail with EPIPE instead.
 */
static int signals_start(struct vhostd *d)
{
	sigset_t set;
	int ret;

	signal(SIGPIPE, SIG_IGN);
	stop_signals(&set);
	sigaddset(&set, SIGHUP); /* reopen the log file */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	d->sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (d->sig_fd < 0) {
		log_error("signalfd: %s", strerror(errno));
		return -1;
	}
	ret = evloop_add(d->loop, d->sig_fd, EPOLLIN, on_signal, d);
	if (ret) {
		log_error("cannot watch the signalfd: %s", strerror(-ret));
		return -1;
	}
	return 0;
}

/* --- devices --- */

/* Each device with its children, in the order given. */
static int devices_start(struct vhostd *d)
{
	for (unsigned int i = 0; i < d->nspecs; i++) {
		const struct vhd_spec *s = &d->specs[i];
		const struct devkind *ck = devkind_child_of(s->kind);
		struct devkind_info in, cin;
		unsigned int n = 0;
		char *children = NULL, err[768] = "";
		int r;

		if (s->kind->parent)
			continue; /* started with its parent */
		s->kind->info(s->opts, &in);
		if (ck) {
			children = calloc(d->nspecs, ck->opts_size);
			if (!children) {
				log_error("out of memory");
				return -1;
			}
			for (unsigned int j = 0; j < d->nspecs; j++) {
				if (d->specs[j].kind != ck)
					continue;
				ck->info(d->specs[j].opts, &cin);
				if (!strcmp(cin.parent, in.name))
					memcpy(children + n++ * ck->opts_size, d->specs[j].opts,
					       ck->opts_size);
			}
		}
		r = devset_add(&d->set, s->kind, s->opts, children, n, err, sizeof(err));
		free(children);
		if (r) {
			log_error("%s", err);
			return -1;
		}
		if (!strcmp(s->kind->name, "blk")) {
			const struct blk_options *o = s->opts;
			char where[300];

			log_info("%s: serving %s (%" PRIu64 " sectors) on %s", in.name,
				 blk_disk_describe(o->backend, o->path, &o->rbd, where, sizeof(where)),
				 blk_dev_capacity_sectors(d->set.v[d->set.n - 1].dev), in.socket);
		} else
			log_info("%s: serving %u %s(s) on %s", in.name, n, ck ? ck->name : "queue",
				 in.socket);
	}
	return 0;
}

/* --- life cycle --- */

/* --control-group: the group may connect too (0660). */
static int control_share(const struct vhostd *d)
{
	struct group *g = getgrnam(d->control_group);

	if (!g || chown(d->control_path, (uid_t)-1, g->gr_gid) || chmod(d->control_path, 0660)) {
		log_error("--control-group %s: %s: %s", d->control_group, d->control_path,
			  g ? strerror(errno) : "no such group");
		return -1;
	}
	return 0;
}

static int vhostd_start(struct vhostd *d)
{
	char err[512];
	int ret;

	d->loop = evloop_new();
	if (!d->loop) {
		log_error("cannot create the event loop: %s", strerror(errno));
		return -1;
	}
	if (signals_start(d))
		return -1;
	ret = eng_pool_init(d->io_threads);
	if (ret < 0) {
		log_error("cannot start %u I/O threads: %s", d->io_threads, strerror(-ret));
		return -1;
	}
	d->set.loop = d->loop;
	d->set.control_path = d->control_path;
	/* 0: a thread per queue, io-thread= has nothing to name. */
	d->set.io_threads = eng_pool_threads();
	if (d->control_path) {
		d->ctl = ctl_server_new(d->control_path, d->loop, rpc_methods, &d->set, err,
					sizeof(err));
		if (!d->ctl) {
			log_error("%s", err);
			return -1;
		}
		if (d->control_group && control_share(d))
			return -1;
	}
	if (d->metrics_addr) {
		d->metrics =
			metrics_server_new(d->metrics_addr, d->loop, &d->set, err, sizeof(err));
		if (!d->metrics) {
			log_error("%s", err);
			return -1;
		}
		log_info("metrics on http://%s/metrics (port %u)", d->metrics_addr,
			 metrics_server_port(d->metrics));
	}
	if (devices_start(d) || watchdog_start(d))
		return -1;
	/* Every configured device listens (or connects): ready for front-ends. */
	sd_notifyf(0, "READY=1\nSTATUS=serving %u device(s)", d->set.n);
	return 0;
}

static int vhostd_run(struct vhostd *d)
{
	sigset_t set;
	int ret;

	ret = evloop_run(d->loop);
	if (ret) {
		log_error("event loop: %s", strerror(-ret));
		return 1;
	}
	/* A second SIGTERM while in-flight requests drain ends us at once. */
	stop_signals(&set);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	return 0;
}

/* Tear down whatever vhostd_start() got to, in reverse order. */
static void vhostd_stop(struct vhostd *d)
{
	ctl_server_free(d->ctl);
	metrics_server_free(d->metrics);
	devset_clear(&d->set);
	eng_pool_shutdown();
	if (d->sig_fd >= 0) {
		evloop_del(d->loop, d->sig_fd);
		close(d->sig_fd);
	}
	if (d->wd_fd >= 0) {
		evloop_del(d->loop, d->wd_fd);
		close(d->wd_fd);
	}
	if (d->loop)
		evloop_free(d->loop);
	specs_free(d);
}

int main(int argc, char **argv)
{
	struct vhostd d = {.sig_fd = -1, .wd_fd = -1};
	int ret;

	ret = parse_args(&d, argc, argv);
	if (ret) {
		specs_free(&d);
		return ret < 0 ? EXIT_USAGE : 0;
	}
	ret = preflight(&d);
	if (ret) {
		specs_free(&d);
		return ret;
	}
	ret = vhostd_start(&d) ? 1 : vhostd_run(&d);
	vhostd_stop(&d);
	if (!ret)
		log_info("stopped");
	return ret;
}
