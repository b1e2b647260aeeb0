// SPDX-License-Identifier: MIT
/*
 * vhostd.c - the daemon: one vhost-user-blk back-end per --blk option, one
 * vhost-user-scsi controller per --scsi option with its --lun disks, a
 * JSON-RPC control socket, and a clean stop on SIGTERM or SIGINT.
 *
 * Everything is checked before anything starts (options, duplicate ids and
 * sockets, that every image opens; backend=null has none), so a bad command line leaves nothing
 * behind.  If a device still fails to start, the ones already started are
 * torn down (which removes their sockets) before exiting.
 *
 * Exit status: 0 after a signal, 1 when something failed at run time, 2 for
 * a usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
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
#include <unistd.h>

#include "common/evloop.h"
#include "common/kvopts.h"
#include "common/log.h"
#include "control.h"
#include "devices/blk.h"
#include "devices/scsi.h"
#include "engine/engine.h"
#include "rpc.h"

#ifndef VHOSTD_VERSION
#define VHOSTD_VERSION "unknown"
#endif

#define EXIT_USAGE 2
/* A sanity bound: each device holds a socket, an image and queue threads. */
#define VHOSTD_MAX_DEVS 256

struct vhostd {
	struct blk_options *opts; /* one per --blk, in command-line order */
	unsigned int nopts;
	struct blk_dev **devs;		/* started devices: rpc.count of them */
	struct scsi_options *scsi_opts; /* one per --scsi */
	unsigned int nscsi;
	struct scsi_lun_options *luns; /* one per --lun */
	unsigned int nluns;
	struct scsi_dev **scsi_devs; /* started controllers: rpc.nscsi of them */
	struct rpc_devices rpc;
	const char *control_path;
	unsigned int io_threads;
	struct evloop *loop;
	struct ctl_server *ctl;
	int sig_fd;
};

static const char usage_text[] =
	"Usage: vhostd --blk id=NAME,path=FILE,socket=PATH[,OPTIONS] [--blk ...]\n"
	"              [--scsi id=NAME,socket=PATH[,OPTIONS] --lun scsi=NAME,... ...]\n"
	"              [--io-threads N] [--control PATH] [--log-level LEVEL]\n"
	"\n"
	"Serve disk images to QEMU (or any vhost-user front-end) as virtio-blk\n"
	"devices and virtio-scsi controllers over vhost-user unix sockets.\n"
	"\n"
	"  --blk SPEC         add a device (repeatable); SPEC options:\n"
	"                       id=NAME          device name (vda, ...), unique\n"
	"                       path=FILE        raw image or block device\n"
	"                       backend=null     instead of path=: no storage, reads\n"
	"                                        return zeroes, writes are dropped\n"
	"                       size=BYTES       backend=null's capacity (k/m/g/t suffix)\n"
	"                       backend=nbd,uri=URI  instead of path=: an NBD export,\n"
	"                                        nbd://HOST[:PORT]/EXPORT or\n"
	"                                        nbd+unix:///EXPORT?socket=PATH\n"
	"                       socket=PATH      vhost-user socket to listen on, unique\n"
	"                       readonly=on      refuse writes (VIRTIO_BLK_F_RO)\n"
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
	"                       backend=nbd,uri=URI      an NBD export\n"
	"                       readonly=on      refuse writes (DATA PROTECT)\n"
	"                       serial=STR       VPD 0x80 and the ids of VPD 0x83 (1..36\n"
	"                                        characters; default NAME-T-L)\n"
	"                       cache=none|writeback  O_DIRECT or page cache (default)\n"
	"                       block-size=512|4096  logical block size (default: the\n"
	"                                        device's, at least 512)\n"
	"  --io-threads N     I/O threads serving every queue of every device (default:\n"
	"                     one per online CPU, at most 8; 0: a thread per queue)\n"
	"  --control PATH     JSON-RPC 2.0 control socket (see vhostctl)\n"
	"  --log-level LEVEL  error, warn, info (default) or debug\n"
	"  -h, --help         show this help and exit\n"
	"  -V, --version      show the version and exit\n"
	"\n"
	"SIGTERM or SIGINT: stop taking requests, finish the in-flight ones, remove\n"
	"the sockets and exit 0.  See vhostd(8).\n";

/* --- command line --- */

enum { OPT_BLK = 0x100, OPT_CONTROL, OPT_LOG_LEVEL, OPT_IO_THREADS, OPT_SCSI, OPT_LUN };

static const struct option long_options[] = {
	{"blk", required_argument, NULL, OPT_BLK},
	{"scsi", required_argument, NULL, OPT_SCSI},
	{"lun", required_argument, NULL, OPT_LUN},
	{"control", required_argument, NULL, OPT_CONTROL},
	{"log-level", required_argument, NULL, OPT_LOG_LEVEL},
	{"io-threads", required_argument, NULL, OPT_IO_THREADS},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0},
};

/* Print one usage error line; returns -1 so callers can `return usage_error(...)`. */
__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_error("%s (try 'vhostd --help')", msg);
	return -1;
}

static int add_blk(struct vhostd *d, const char *spec)
{
	struct blk_options *opts;
	char err[256] = "";

	if (d->nopts == VHOSTD_MAX_DEVS)
		return usage_error("more than %d --blk devices", VHOSTD_MAX_DEVS);
	opts = realloc(d->opts, (d->nopts + 1) * sizeof(*opts));
	if (!opts) {
		log_error("out of memory");
		return -1;
	}
	d->opts = opts;
	if (blk_options_parse(spec, &opts[d->nopts], err, sizeof(err)))
		return usage_error("--blk %s: %s", spec, err[0] ? err : "invalid");
	d->nopts++;
	return 0;
}

static int add_scsi(struct vhostd *d, const char *spec)
{
	struct scsi_options *opts;
	char err[256] = "";

	if (d->nscsi == VHOSTD_MAX_DEVS)
		return usage_error("more than %d --scsi controllers", VHOSTD_MAX_DEVS);
	opts = realloc(d->scsi_opts, (d->nscsi + 1) * sizeof(*opts));
	if (!opts) {
		log_error("out of memory");
		return -1;
	}
	d->scsi_opts = opts;
	if (scsi_options_parse(spec, &opts[d->nscsi], err, sizeof(err)))
		return usage_error("--scsi %s: %s", spec, err[0] ? err : "invalid");
	d->nscsi++;
	return 0;
}

static int add_lun(struct vhostd *d, const char *spec)
{
	struct scsi_lun_options *o;
	char err[256] = "";

	if (d->nluns == VHOSTD_MAX_DEVS * 4)
		return usage_error("more than %d --lun disks", VHOSTD_MAX_DEVS * 4);
	o = realloc(d->luns, (d->nluns + 1) * sizeof(*o));
	if (!o) {
		log_error("out of memory");
		return -1;
	}
	d->luns = o;
	if (scsi_lun_options_parse(spec, &o[d->nluns], err, sizeof(err)))
		return usage_error("--lun %s: %s", spec, err[0] ? err : "invalid");
	d->nluns++;
	return 0;
}

/* The --scsi controller named @id, or NULL. */
static const struct scsi_options *find_scsi(const struct vhostd *d, const char *id)
{
	for (unsigned int i = 0; i < d->nscsi; i++) {
		if (!strcmp(d->scsi_opts[i].id, id))
			return &d->scsi_opts[i];
	}
	return NULL;
}

/* Every --lun names a controller, no target/lun twice, at most SCSI_MAX_LUNS each. */
static int check_luns(const struct vhostd *d)
{
	for (unsigned int i = 0; i < d->nluns; i++) {
		const struct scsi_lun_options *a = &d->luns[i];
		unsigned int n = 1;

		if (!find_scsi(d, a->scsi))
			return usage_error("--lun %s:%u:%u: no --scsi controller '%s'", a->scsi,
					   a->target, a->lun, a->scsi);
		for (unsigned int j = 0; j < i; j++) {
			const struct scsi_lun_options *b = &d->luns[j];

			if (strcmp(a->scsi, b->scsi))
				continue;
			if (a->target == b->target && a->lun == b->lun)
				return usage_error("%s: target %u LUN %u given twice", a->scsi,
						   a->target, a->lun);
			n++;
		}
		if (n > SCSI_MAX_LUNS)
			return usage_error("%s: more than %d LUNs", a->scsi, SCSI_MAX_LUNS);
	}
	return 0;
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

	d->io_threads = eng_pool_default_threads();
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":hV", long_options, NULL)) != -1) {
		switch (opt) {
		case OPT_BLK:
			if (add_blk(d, optarg))
				return -1;
			break;
		case OPT_SCSI:
			if (add_scsi(d, optarg))
				return -1;
			break;
		case OPT_LUN:
			if (add_lun(d, optarg))
				return -1;
			break;
		case OPT_CONTROL:
			/* sun_path: 108 bytes with the NUL (checked here: a usage error). */
			if (!optarg[0] || strlen(optarg) >= 108)
				return usage_error("--control %s: empty or longer than 107 bytes",
						   optarg);
			d->control_path = optarg;
			break;
		case OPT_LOG_LEVEL:
			level = log_level_parse(optarg);
			if (level < 0)
				return usage_error(
					"--log-level %s: expected error, warn, info or debug",
					optarg);
			log_set_level(level);
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
	if (!d->nopts && !d->nscsi)
		return usage_error("no device: give at least one --blk or --scsi");
	for (unsigned int i = 0; i < d->nopts; i++) {
		int k = d->opts[i].io_thread;

		if (k >= 0 && (unsigned int)k >= d->io_threads)
			return usage_error("--blk %s: io-thread=%d, but --io-threads is %u",
					   d->opts[i].id, k, d->io_threads);
	}
	for (unsigned int i = 0; i < d->nscsi; i++) {
		int k = d->scsi_opts[i].io_thread;

		if (k >= 0 && (unsigned int)k >= d->io_threads)
			return usage_error("--scsi %s: io-thread=%d, but --io-threads is %u",
					   d->scsi_opts[i].id, k, d->io_threads);
	}
	return check_luns(d);
}

/* Two devices on one id or one socket would make no sense to anyone. */
static int check_unique(const struct vhostd *d)
{
	const struct blk_options *a, *b;

	for (unsigned int i = 0; i < d->nscsi; i++) {
		const struct scsi_options *s = &d->scsi_opts[i];

		if (d->control_path && !strcmp(s->socket, d->control_path))
			return usage_error("%s: socket %s is also the control socket", s->id,
					   s->socket);
		for (unsigned int j = 0; j < i; j++) {
			if (!strcmp(s->id, d->scsi_opts[j].id))
				return usage_error("duplicate device id '%s'", s->id);
			if (!strcmp(s->socket, d->scsi_opts[j].socket))
				return usage_error("%s and %s: same socket %s", d->scsi_opts[j].id,
						   s->id, s->socket);
		}
		for (unsigned int j = 0; j < d->nopts; j++) {
			if (!strcmp(s->id, d->opts[j].id))
				return usage_error("duplicate device id '%s'", s->id);
			if (!strcmp(s->socket, d->opts[j].socket))
				return usage_error("%s and %s: same socket %s", d->opts[j].id,
						   s->id, s->socket);
		}
	}

	for (unsigned int i = 0; i < d->nopts; i++) {
		a = &d->opts[i];
		if (d->control_path && !strcmp(a->socket, d->control_path))
			return usage_error("%s: socket %s is also the control socket", a->id,
					   a->socket);
		for (unsigned int j = 0; j < i; j++) {
			b = &d->opts[j];
			if (!strcmp(a->id, b->id))
				return usage_error("duplicate device id '%s'", a->id);
			if (!strcmp(a->socket, b->socket))
				return usage_error("%s and %s: same socket %s", b->id, a->id,
						   a->socket);
		}
	}
	return 0;
}

/* One image to check: a --blk device's or a --lun's. */
struct image_ref {
	char name[64];
	const char *path; /* NULL: backend=null */
	bool readonly;
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
	unsigned int n = d->nopts + d->nluns;
	struct image_ref *im;
	int fd, ret = 0;

	im = calloc(n ? n : 1, sizeof(*im));
	if (!im)
		return 1;
	for (unsigned int i = 0; i < d->nopts; i++) {
		snprintf(im[i].name, sizeof(im[i].name), "%s", d->opts[i].id);
		im[i].path = d->opts[i].backend == BLK_BACKEND_FILE ? d->opts[i].path : NULL;
		im[i].readonly = d->opts[i].readonly;
	}
	for (unsigned int i = 0; i < d->nluns; i++) {
		const struct scsi_lun_options *l = &d->luns[i];
		struct image_ref *r = &im[d->nopts + i];

		snprintf(r->name, sizeof(r->name), "%s:%u:%u", l->scsi, l->target, l->lun);
		r->path = l->backend == BLK_BACKEND_FILE ? l->path : NULL;
		r->readonly = l->readonly;
	}
	for (unsigned int i = 0; i < n && !ret; i++) {
		/* backend=null and nbd have no local image and match nothing. */
		if (!im[i].path)
			continue;
		fd = open(im[i].path, (im[i].readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &im[i].st)) {
			log_error("%s: cannot open %s%s: %s", im[i].name, im[i].path,
				  im[i].readonly ? "" : " for reading and writing",
				  strerror(errno));
			ret = 1;
		}
		if (fd >= 0)
			close(fd);
		for (unsigned int j = 0; j < i && !ret; j++) {
			if (!im[j].path)
				continue;
			if (im[j].st.st_dev == im[i].st.st_dev &&
			    im[j].st.st_ino == im[i].st.st_ino) {
				usage_error("%s and %s: same image %s", im[j].name, im[i].name,
					    im[i].path);
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
	const struct blk_options *o;
	char err[512];
	bool stale;

	for (unsigned int i = 0; i < d->nopts; i++) {
		o = &d->opts[i];
		if (!o->client && ctl_socket_path_check(o->socket, &stale, err, sizeof(err))) {
			log_error("%s: %s", o->id, err);
			return -1;
		}
	}
	for (unsigned int i = 0; i < d->nscsi; i++) {
		const struct scsi_options *so = &d->scsi_opts[i];

		if (!so->client && ctl_socket_path_check(so->socket, &stale, err, sizeof(err))) {
			log_error("%s: %s", so->id, err);
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

	if (check_unique(d))
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

	if (read(d->sig_fd, &si, sizeof(si)) != sizeof(si))
		return;
	log_info("%s: finishing in-flight requests and exiting", strsignal((int)si.ssi_signo));
	evloop_stop(d->loop);
}

static void stop_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
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

/* Does @msg already start with "@id:"?  Then it is not prefixed again. */
static bool msg_has_id(const char *msg, const char *id)
{
	size_t n = strlen(id);

	return !strncmp(msg, id, n) && msg[n] == ':';
}

/* Each --scsi controller with its --lun disks, in command-line order. */
static int scsi_devices_start(struct vhostd *d)
{
	struct scsi_lun_options *mine;
	char err[512];

	d->scsi_devs = calloc(d->nscsi ? d->nscsi : 1, sizeof(*d->scsi_devs));
	mine = calloc(d->nluns ? d->nluns : 1, sizeof(*mine));
	if (!d->scsi_devs || !mine) {
		free(mine);
		log_error("out of memory");
		return -1;
	}
	d->rpc.scsi_devs = d->scsi_devs;
	for (unsigned int i = 0; i < d->nscsi; i++) {
		const struct scsi_options *o = &d->scsi_opts[i];
		unsigned int n = 0;
		struct scsi_dev *dev;

		for (unsigned int j = 0; j < d->nluns; j++) {
			if (!strcmp(d->luns[j].scsi, o->id))
				mine[n++] = d->luns[j];
		}
		err[0] = '\0';
		dev = scsi_dev_new(o, mine, n, &vu_evloop_watch_ops, d->loop, err, sizeof(err));
		if (!dev) {
			if (msg_has_id(err, o->id))
				log_error("%s", err);
			else
				log_error("%s: %s", o->id, err[0] ? err : "cannot start");
			free(mine);
			return -1;
		}
		d->scsi_devs[d->rpc.nscsi++] = dev;
		log_info("%s: serving %u LUN(s) on %s", o->id, n, o->socket);
	}
	free(mine);
	return 0;
}

static int devices_start(struct vhostd *d)
{
	const struct blk_options *o;
	struct blk_dev *dev;
	char err[512];

	d->devs = calloc(d->nopts, sizeof(*d->devs));
	if (!d->devs) {
		log_error("out of memory");
		return -1;
	}
	d->rpc.devs = d->devs;
	for (unsigned int i = 0; i < d->nopts; i++) {
		o = &d->opts[i];
		err[0] = '\0';
		dev = blk_dev_new(o, &vu_evloop_watch_ops, d->loop, err, sizeof(err));
		if (!dev) {
			if (msg_has_id(err, o->id))
				log_error("%s", err);
			else
				log_error("%s: %s", o->id, err[0] ? err : "cannot start");
			return -1;
		}
		d->devs[d->rpc.count++] = dev;
		log_info("%s: serving %s (%" PRIu64 " sectors) on %s", o->id,
			 o->backend == BLK_BACKEND_NULL ? "the null back-end" : o->path,
			 blk_dev_capacity_sectors(dev), o->socket);
	}
	return scsi_devices_start(d);
}

/* --- life cycle --- */

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
	if (d->control_path) {
		d->ctl = ctl_server_new(d->control_path, d->loop, rpc_methods, &d->rpc, err,
					sizeof(err));
		if (!d->ctl) {
			log_error("%s", err);
			return -1;
		}
	}
	return devices_start(d);
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
	while (d->rpc.nscsi)
		scsi_dev_free(d->scsi_devs[--d->rpc.nscsi]);
	while (d->rpc.count)
		blk_dev_free(d->devs[--d->rpc.count]);
	eng_pool_shutdown();
	if (d->sig_fd >= 0) {
		evloop_del(d->loop, d->sig_fd);
		close(d->sig_fd);
	}
	if (d->loop)
		evloop_free(d->loop);
	free(d->devs);
	free(d->opts);
	free(d->scsi_devs);
	free(d->scsi_opts);
	free(d->luns);
}

int main(int argc, char **argv)
{
	struct vhostd d = {.sig_fd = -1};
	int ret;

	ret = parse_args(&d, argc, argv);
	if (ret) {
		free(d.opts);
		free(d.scsi_opts);
		free(d.luns);
		return ret < 0 ? EXIT_USAGE : 0;
	}
	ret = preflight(&d);
	if (ret) {
		free(d.opts);
		free(d.scsi_opts);
		free(d.luns);
		return ret;
	}
	ret = vhostd_start(&d) ? 1 : vhostd_run(&d);
	vhostd_stop(&d);
	if (!ret)
		log_info("stopped");
	return ret;
}
