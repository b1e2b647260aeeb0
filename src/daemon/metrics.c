// SPDX-License-Identifier: MIT
/*
 * metrics.c - Prometheus metrics over libmicrohttpd (metrics.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "common/evloop.h"
#include "common/log.h"
#include "devices/blk.h"
#include "devset.h"
#include "metrics.h"

#ifndef VHOSTD_VERSION
#define VHOSTD_VERSION "unknown"
#endif

static const struct {
	const char *name, *type, *help;
} families[M__COUNT] = {
	[M_BUILD_INFO] = {"vhostd_build_info", "gauge", "Always 1; the version in a label."},
	[M_DEVICE_CONNECTED] = {"vhostd_device_connected", "gauge",
				"1 while a vhost-user front-end is connected."},
	[M_DEVICE_ACTIVE] = {"vhostd_device_active", "gauge",
			     "1 while the front-end drives the device (a queue started)."},
	[M_DISK_COMPLETED] = {"vhostd_disk_completed_total", "counter",
			      "Requests completed (diskstats ios)."},
	[M_DISK_MERGED] = {"vhostd_disk_merged_total", "counter",
			   "Requests merged (diskstats merges; vhostd never merges)."},
	[M_DISK_BYTES] = {"vhostd_disk_bytes_total", "counter",
			  "Bytes transferred by successful requests (diskstats sectors x 512)."},
	[M_DISK_TIME] = {"vhostd_disk_time_seconds_total", "counter",
			 "Time requests spent in flight (diskstats ticks)."},
	[M_DISK_IN_FLIGHT] = {"vhostd_disk_in_flight_requests", "gauge",
			      "Requests in flight now (diskstats in_flight)."},
	[M_DISK_IO_TIME] = {"vhostd_disk_io_time_seconds_total", "counter",
			    "Time with at least one request in flight (diskstats io_ticks)."},
	[M_DISK_IO_TIME_WEIGHTED] = {"vhostd_disk_io_time_weighted_seconds_total", "counter",
				     "Sum of the requests' times in flight (diskstats "
				     "time_in_queue)."},
	[M_DISK_SIZE] = {"vhostd_disk_size_bytes", "gauge", "Capacity."},
	[M_DISK_REQUEST_DURATION] = {"vhostd_disk_request_duration_seconds", "histogram",
				     "Request latency, from pop to completion."},
	[M_QUEUE_KICKS] = {"vhostd_queue_kicks_total", "counter",
			   "Kicks from the driver (kick eventfd reads that found one or more)."},
	[M_QUEUE_NOTIFICATIONS] = {"vhostd_queue_notifications_total", "counter",
				   "Interrupts sent to the driver (call eventfd writes)."},
	[M_QUEUE_COMPLETED] = {"vhostd_queue_completed_total", "counter",
			       "Requests completed on this virtqueue."},
	[M_QUEUE_IN_FLIGHT] = {"vhostd_queue_in_flight_requests", "gauge",
			       "Requests in flight on this virtqueue."},
	[M_NET_PACKETS] = {"vhostd_net_packets_total", "counter",
			   "Frames sent (tx queues) or received (rx queues) on this virtqueue."},
	[M_NET_BYTES] = {"vhostd_net_bytes_total", "counter",
			 "Bytes of those frames, without the virtio-net header."},
	[M_NET_DROPS] = {"vhostd_net_dropped_packets_total", "counter",
			 "Frames dropped on this virtqueue, by cause."},
	[M_NET_NO_BUFFERS] = {"vhostd_net_rx_no_buffers_total", "counter",
			      "Times a received frame waited for the driver's rx buffers."},
	[M_NET_KERNEL_DROPS] = {"vhostd_net_kernel_dropped_packets_total", "counter",
				"Frames the back-end's kernel side dropped (tap: tx_dropped)."},
};

static const char *const op_names[BLK_STAT__COUNT] = {
	[BLK_STAT_READ] = "read",
	[BLK_STAT_WRITE] = "write",
	[BLK_STAT_DISCARD] = "discard",
	[BLK_STAT_FLUSH] = "flush",
};

/* ---- the text ---- */

struct buf {
	char *p;
	size_t len, cap;
};

struct metrics {
	struct buf fam[M__COUNT];
	bool oom;
};

__attribute__((format(printf, 3, 4))) static void buf_printf(struct metrics *m, struct buf *b,
							     const char *fmt, ...)
{
	va_list ap;
	int n;

	if (m->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			m->oom = true;
			return;
		}
		if (b->p && b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap ? b->cap * 2 : 4096;
		while (cap <= b->len + (size_t)n)
			cap *= 2;
		char *p = realloc(b->p, cap);

		if (!p) {
			m->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
}

void metrics_u64(struct metrics *m, enum metric_family f, const char *suffix, const char *labels,
		 uint64_t value)
{
	buf_printf(m, &m->fam[f], "%s%s{%s} %llu\n", families[f].name, suffix, labels,
		   (unsigned long long)value);
}

void metrics_double(struct metrics *m, enum metric_family f, const char *suffix, const char *labels,
		    double value)
{
	buf_printf(m, &m->fam[f], "%s%s{%s} %.9g\n", families[f].name, suffix, labels, value);
}

void metrics_disk(struct metrics *m, const char *labels, const struct blk_stats *st,
		  const struct blk_lat_hist *h)
{
	char l[512];

	for (int d = 0; d < BLK_STAT__COUNT; d++) {
		uint64_t cum = 0;

		snprintf(l, sizeof(l), "%s,op=\"%s\"", labels, op_names[d]);
		metrics_u64(m, M_DISK_COMPLETED, "", l, st->ios[d]);
		metrics_u64(m, M_DISK_MERGED, "", l, st->merges[d]);
		metrics_u64(m, M_DISK_BYTES, "", l, st->sectors[d] * 512);
		metrics_double(m, M_DISK_TIME, "", l, (double)h->sum_ns[d] / 1e9);
		/* Cumulative buckets: le = 2^(i + BLK_LAT_SHIFT) ns, in seconds. */
		for (int i = 0; i < BLK_LAT_BUCKETS; i++) {
			char lb[600];

			cum += h->b[d][i];
			if (i == BLK_LAT_BUCKETS - 1)
				snprintf(lb, sizeof(lb), "%s,le=\"+Inf\"", l);
			else
				snprintf(lb, sizeof(lb), "%s,le=\"%.9f\"", l,
					 (double)(1ull << (i + BLK_LAT_SHIFT)) / 1e9);
			metrics_u64(m, M_DISK_REQUEST_DURATION, "_bucket", lb, cum);
		}
		metrics_double(m, M_DISK_REQUEST_DURATION, "_sum", l, (double)h->sum_ns[d] / 1e9);
		metrics_u64(m, M_DISK_REQUEST_DURATION, "_count", l, cum);
	}
	metrics_u64(m, M_DISK_IN_FLIGHT, "", labels, st->in_flight);
	metrics_double(m, M_DISK_IO_TIME, "", labels, (double)st->io_ticks_ms / 1e3);
	metrics_double(m, M_DISK_IO_TIME_WEIGHTED, "", labels, (double)st->time_in_queue_ms / 1e3);
}

char *metrics_scrape(struct devset *set, size_t *len)
{
	struct metrics m = {0};
	struct buf out = {0};
	char l[256];

	metrics_u64(&m, M_BUILD_INFO, "", "version=\"" VHOSTD_VERSION "\"", 1);
	for (unsigned int i = 0; i < set->n; i++) {
		const struct devset_entry *e = &set->v[i];

		snprintf(l, sizeof(l), "device=\"%s\",type=\"%s\"", e->kind->id(e->dev),
			 e->kind->name);
		metrics_u64(&m, M_DEVICE_CONNECTED, "", l, e->kind->connected(e->dev));
		metrics_u64(&m, M_DEVICE_ACTIVE, "", l, e->kind->active(e->dev));
		if (e->kind->metrics)
			e->kind->metrics(e->dev, &m);
	}
	for (int f = 0; f < M__COUNT; f++) {
		if (!m.fam[f].len)
			continue;
		buf_printf(&m, &out, "# HELP %s %s\n# TYPE %s %s\n%.*s", families[f].name,
			   families[f].help, families[f].name, families[f].type, (int)m.fam[f].len,
			   m.fam[f].p);
	}
	for (int f = 0; f < M__COUNT; f++)
		free(m.fam[f].p);
	if (m.oom) {
		free(out.p);
		return NULL;
	}
	*len = out.len;
	return out.p;
}

/* ---- the HTTP server ---- */

/*
 * libmicrohttpd runs its own thread, polling with poll(): in its epoll
 * modes (0.9.75), driven by our loop or by its own thread, connections
 * that clients closed stayed in CLOSE-WAIT once the connection limit was
 * reached, and scrapers were locked out for good (tests/daemon/metrics.sh
 * floods it).  A scrape must still be built on the loop's thread, where
 * devices come and go: the HTTP thread asks for one through an eventfd
 * and waits (at most METRICS_WAIT_MS) for the loop to hand the text back.
 */
#define METRICS_WAIT_MS 5000

struct metrics_server {
	struct MHD_Daemon *mhd;
	struct evloop *loop;
	struct devset *set;
	int efd; /* "a scrape is wanted", read by the loop */
	unsigned int port;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t asked, served; /* scrapes asked for / built, under lock */
	char *text;		/* the last one built, under lock */
	size_t len;
	bool closing;
};

/* On the HTTP thread: a copy of a scrape built after this call, or NULL. */
static char *scrape_from_loop(struct metrics_server *srv, size_t *len)
{
	struct timespec ts;
	uint64_t one = 1, mine;
	char *copy = NULL;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += METRICS_WAIT_MS / 1000;
	pthread_mutex_lock(&srv->lock);
	mine = ++srv->asked;
	if (write(srv->efd, &one, sizeof(one)) != sizeof(one))
		log_debug("metrics: eventfd: %s", strerror(errno));
	while (!srv->closing && srv->served < mine) {
		if (pthread_cond_timedwait(&srv->cond, &srv->lock, &ts) == ETIMEDOUT)
			break;
	}
	if (!srv->closing && srv->served >= mine && srv->text) {
		copy = malloc(srv->len + 1);
		if (copy) {
			memcpy(copy, srv->text, srv->len + 1);
			*len = srv->len;
		}
	}
	pthread_mutex_unlock(&srv->lock);
	return copy;
}

/* On the loop's thread: build the scrapes asked for. */
static void on_scrape_wanted(void *arg, uint32_t events)
{
	struct metrics_server *srv = arg;
	uint64_t n, asked;
	size_t len = 0;
	char *text;

	if (read(srv->efd, &n, sizeof(n)) != sizeof(n))
		return;
	pthread_mutex_lock(&srv->lock);
	asked = srv->asked;
	pthread_mutex_unlock(&srv->lock);
	text = metrics_scrape(srv->set, &len);
	pthread_mutex_lock(&srv->lock);
	free(srv->text);
	srv->text = text;
	srv->len = len;
	srv->served = asked;
	pthread_cond_broadcast(&srv->cond);
	pthread_mutex_unlock(&srv->lock);
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload_data,
			      size_t *upload_data_size, void **con_cls)
{
	struct metrics_server *srv = cls;
	struct MHD_Response *r;
	unsigned int status = MHD_HTTP_OK;
	enum MHD_Result ret;
	char *text = NULL;
	size_t len = 0;
	const char *msg = NULL;

	if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
		status = MHD_HTTP_METHOD_NOT_ALLOWED;
		msg = "only GET /metrics\n";
	} else if (strcmp(url, "/metrics")) {
		status = MHD_HTTP_NOT_FOUND;
		msg = "only GET /metrics\n";
	} else {
		text = scrape_from_loop(srv, &len);
		if (!text) {
			status = MHD_HTTP_SERVICE_UNAVAILABLE;
			msg = "the daemon is busy or stopping\n";
		}
	}
	if (msg)
		r = MHD_create_response_from_buffer(strlen(msg), (void *)msg,
						    MHD_RESPMEM_PERSISTENT);
	else
		r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
				msg ? "text/plain; charset=utf-8"
				    : "text/plain; version=0.0.4; charset=utf-8");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[256];
	size_t n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = '\0';
	log_debug("metrics: %s", msg);
}

/* "1.2.3.4:PORT" or "[::1]:PORT" into @ss.  0, or -1 with a message. */
static int parse_addr(const char *addr, struct sockaddr_storage *ss, bool *v6, char *err,
		      size_t err_len)
{
	struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
				 .ai_socktype = SOCK_STREAM};
	struct addrinfo *res;
	char host[128];
	const char *colon, *h = addr;
	size_t hl;
	char *end;
	unsigned long port;
	int r;

	colon = strrchr(addr, ':');
	if (!colon || colon == addr)
		goto bad;
	hl = (size_t)(colon - addr);
	if (addr[0] == '[') {
		if (hl < 3 || addr[hl - 1] != ']')
			goto bad;
		h = addr + 1;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		goto bad;
	memcpy(host, h, hl);
	host[hl] = '\0';
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (!colon[1] || *end || errno || port > 65535 || colon[1] < '0' || colon[1] > '9')
		goto bad;
	r = getaddrinfo(host, colon + 1, &hints, &res);
	if (r) {
		snprintf(err, err_len, "--metrics %s: %s", addr, gai_strerror(r));
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*v6 = res->ai_family == AF_INET6;
	freeaddrinfo(res);
	return 0;
bad:
	snprintf(err, err_len, "--metrics %s: ADDR:PORT expected (1.2.3.4:9100, [::1]:9100)", addr);
	return -1;
}

int metrics_addr_check(const char *addr, char *err, size_t err_len)
{
	struct sockaddr_storage ss;
	bool v6;

	return parse_addr(addr, &ss, &v6, err, err_len);
}

struct metrics_server *metrics_server_new(const char *addr, void *loop, struct devset *set,
					  char *err, size_t err_len)
{
	struct metrics_server *srv;
	struct sockaddr_storage ss;
	const union MHD_DaemonInfo *info;
	pthread_condattr_t ca;
	bool v6;

	if (parse_addr(addr, &ss, &v6, err, err_len))
		return NULL;
	srv = calloc(1, sizeof(*srv));
	if (!srv) {
		snprintf(err, err_len, "out of memory");
		return NULL;
	}
	srv->loop = loop;
	srv->set = set;
	pthread_mutex_init(&srv->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&srv->cond, &ca);
	pthread_condattr_destroy(&ca);
	srv->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (srv->efd < 0 || evloop_add(loop, srv->efd, EPOLLIN, on_scrape_wanted, srv)) {
		snprintf(err, err_len, "--metrics %s: cannot watch an eventfd", addr);
		if (srv->efd >= 0)
			close(srv->efd);
		srv->efd = -1;
		goto fail;
	}
	/* Its thread inherits the daemon's blocked SIGTERM/SIGINT. */
	errno = 0;
	srv->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
					    MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0),
				    0, NULL, NULL, answer, srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
				    NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				    MHD_OPTION_CONNECTION_LIMIT, (unsigned int)METRICS_MAX_CONNS,
				    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)METRICS_TIMEOUT_S,
				    MHD_OPTION_END);
	if (!srv->mhd) {
		snprintf(err, err_len, "--metrics %s: cannot listen: %s", addr,
			 strerror(errno ? errno : EADDRINUSE));
		goto fail;
	}
	info = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_BIND_PORT);
	srv->port = info ? info->port : 0;
	return srv;
fail:
	metrics_server_free(srv);
	return NULL;
}

unsigned int metrics_server_port(const struct metrics_server *srv)
{
	return srv->port;
}

void metrics_server_free(struct metrics_server *srv)
{
	if (!srv)
		return;
	/* A scrape waiting for the loop (this thread) gives up: no deadlock. */
	pthread_mutex_lock(&srv->lock);
	srv->closing = true;
	pthread_cond_broadcast(&srv->cond);
	pthread_mutex_unlock(&srv->lock);
	if (srv->mhd)
		MHD_stop_daemon(srv->mhd);
	if (srv->efd >= 0) {
		evloop_del(srv->loop, srv->efd);
		close(srv->efd);
	}
	free(srv->text);
	pthread_cond_destroy(&srv->cond);
	pthread_mutex_destroy(&srv->lock);
	free(srv);
}
