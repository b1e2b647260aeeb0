/* SPDX-License-Identifier: MIT */
/*
 * metrics.h - Prometheus text exposition (format 0.0.4) of the daemon's
 * counters, served over HTTP by libmicrohttpd (--metrics ADDR:PORT).
 *
 * A scrape is built on the daemon's event loop thread, like every control
 * method, so it never races with a device being added or removed: the
 * HTTP server (libmicrohttpd's own thread) asks the loop for it through an
 * eventfd and waits for the text (503 if the loop does not answer within
 * 5 s).  It answers GET (and HEAD) /metrics only; at most
 * METRICS_MAX_CONNS connections at a time, each dropped after
 * METRICS_TIMEOUT_S idle.
 *
 * Names and labels follow Prometheus' conventions: vhostd_ prefix, base
 * units in the name (_seconds, _bytes), _total for counters, labels
 * device (the id), type (blk, scsi, ...), lun ("T:L" of a SCSI LUN), queue
 * (the virtqueue index) and op (read, write, discard, flush).  Each family
 * is declared once in metrics.c's table; a device kind adds samples to
 * families (devkind.h's metrics op), and the scrape prints every family
 * that has samples under one HELP and TYPE.
 */
#ifndef VHOSTD_DAEMON_METRICS_H
#define VHOSTD_DAEMON_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct devset;

#define METRICS_MAX_CONNS 16
#define METRICS_TIMEOUT_S 10

enum metric_family {
	M_BUILD_INFO,
	M_DEVICE_CONNECTED,
	M_DEVICE_ACTIVE,
	M_DISK_COMPLETED,
	M_DISK_MERGED,
	M_DISK_BYTES,
	M_DISK_TIME,
	M_DISK_IN_FLIGHT,
	M_DISK_IO_TIME,
	M_DISK_IO_TIME_WEIGHTED,
	M_DISK_SIZE,
	M_DISK_REQUEST_DURATION,
	M_QUEUE_KICKS,
	M_QUEUE_NOTIFICATIONS,
	M_QUEUE_COMPLETED,
	M_QUEUE_IN_FLIGHT,
	M_NET_PACKETS,
	M_NET_BYTES,
	M_NET_DROPS,
	M_NET_NO_BUFFERS,
	M_NET_KERNEL_DROPS,
	M__COUNT
};

struct metrics;

/*
 * One sample of @f: "NAME@suffix{@labels} @value".  @labels is the
 * label list without braces (values escaped by the caller with
 * metrics_label(), or known to be safe: ids are [A-Za-z0-9_.-]).
 */
void metrics_u64(struct metrics *m, enum metric_family f, const char *suffix, const char *labels,
		 uint64_t value);
void metrics_double(struct metrics *m, enum metric_family f, const char *suffix, const char *labels,
		    double value);

struct blk_stats;
struct blk_lat_hist;

/* A disk's diskstats counters and its latency histogram, labelled @labels. */
void metrics_disk(struct metrics *m, const char *labels, const struct blk_stats *st,
		  const struct blk_lat_hist *h);

/* The whole exposition text (malloc'd, NUL-terminated), or NULL. */
char *metrics_scrape(struct devset *set, size_t *len);

struct metrics_server;

/*
 * Serve metrics_scrape(@set) on @addr ("IPv4:PORT", "[IPv6]:PORT"; port 0
 * picks a free one), watched from @loop (a struct evloop).  NULL with a
 * message in @err.
 */
struct metrics_server *metrics_server_new(const char *addr, void *loop, struct devset *set,
					  char *err, size_t err_len);
/* The port it listens on. */
unsigned int metrics_server_port(const struct metrics_server *srv);
void metrics_server_free(struct metrics_server *srv);

/* Is @addr an ADDR:PORT metrics_server_new() takes?  0, or -1 with a message. */
int metrics_addr_check(const char *addr, char *err, size_t err_len);

#endif /* VHOSTD_DAEMON_METRICS_H */
