// SPDX-License-Identifier: MIT
/*
 * ring_stress.c - set up the two sides of a ring and run them against each
 * other: in two threads of this process, or in a parent (driver) and a
 * forked child (device) sharing a memfd that each maps at its own address.
 *
 *	ring_stress [--packed] [--event-idx] [--indirect] [--processes]
 *		    [--qsize N] [--requests N] [--small]
 *	ring_stress --all [--small]	every layout x event-idx x transport
 *
 * --small makes every request one readable and at most one writable buffer
 * of 1..16 bytes, so the figures measure the ring rather than our checks.
 *
 * Requests default to 1,000,000; that or --requests is multiplied by
 * VHOSTD_STRESS_SCALE (and by 1/4 under a sanitizer).  One line per configuration goes to stdout:
 * requests per second and how many kicks and calls were really made.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stress.h"
#include "test_util.h"

#define STRESS_REQUESTS	    1000000ull
#define STRESS_MIN_REQUESTS 20000ull
/* Thread mode: a device-visible address that is no host address of ours. */
#define STRESS_THREAD_GPA 0x4000000000ull

/*
 * With EVENT_IDX and batching on both sides, each notification should
 * cover several requests: fail above one per this many.
 */
#define STRESS_MAX_NOTIFY_RATIO 4
/* Smallest ring for which the suppression checks apply. */
#define STRESS_MIN_BATCH_RING 64

struct stress_run {
	struct stress_shared *sh;
	void *drv_map; /* the driver's mapping of the block */
	void *dev_map; /* thread mode: the device's second mapping */
	struct virtq_drv *vq;
};

static void *map_block(int fd, size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED)
		FAIL("mmap memfd: %m");
	return p;
}

static void *device_thread(void *arg)
{
	struct stress_run *run = arg;

	stress_device_run(run->sh, run->dev_map);
	return NULL;
}

/*
 * The child: map the block twice and use the second mapping, and make the
 * driver's address inaccessible here, so only a translated address works.
 */
static void device_process(struct stress_shared *sh)
{
	void *first, *second;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	first = map_block(sh->memfd, sh->mem_size);
	second = map_block(sh->memfd, sh->mem_size);
	munmap(first, sh->mem_size);
	if (mmap((void *)(uintptr_t)sh->mem_uva, sh->mem_size, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
		FAIL("cover the driver's mapping: %m");
	CHECK(second != (void *)(uintptr_t)sh->mem_uva);
	stress_device_run(sh, second);
	fflush(stdout);
	_exit(0);
}

static void setup(struct stress_run *run, const struct stress_cfg *cfg)
{
	struct stress_shared *sh;

	/* Shared, so the child's counters reach the parent. */
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		FAIL("mmap: %m");
	memset(sh, 0, sizeof(*sh));
	sh->cfg = *cfg;
	sh->mem_size = stress_mem_size(cfg);
	sh->memfd = memfd_create("vhostd-stress", MFD_CLOEXEC);
	sh->kick_fd = eventfd(0, EFD_CLOEXEC);
	sh->call_fd = eventfd(0, EFD_CLOEXEC);
	if (sh->memfd < 0 || sh->kick_fd < 0 || sh->call_fd < 0)
		FAIL("memfd/eventfd: %m");
	if (ftruncate(sh->memfd, (off_t)sh->mem_size))
		FAIL("ftruncate: %m");
	run->sh = sh;
	run->drv_map = map_block(sh->memfd, sh->mem_size);
	sh->mem_uva = (uint64_t)(uintptr_t)run->drv_map;
	/* As in vhost-user: process mode uses the front-end's address as gpa. */
	sh->mem_dma = cfg->processes ? sh->mem_uva : STRESS_THREAD_GPA;
	run->vq = virtq_drv_new(cfg->num, stress_features(cfg), run->drv_map, sh->mem_dma,
				stress_indirect_max(cfg));
	if (!run->vq)
		FAIL("virtq_drv_new: %m");
	virtq_drv_get_addrs(run->vq, &sh->addrs);
}

static void teardown(struct stress_run *run)
{
	struct stress_shared *sh = run->sh;

	virtq_drv_free(run->vq);
	munmap(run->drv_map, sh->mem_size);
	if (run->dev_map)
		munmap(run->dev_map, sh->mem_size);
	close(sh->memfd);
	close(sh->kick_fd);
	close(sh->call_fd);
	munmap(sh, sizeof(*sh));
}

static void print_header(void)
{
	printf("%-6s %-9s %-8s %-9s %-5s %5s %8s %6s %8s %7s %8s %6s %7s %8s %6s %6s %6s %5s\n",
	       "layout", "event_idx", "indirect", "transport", "bufs", "qsize", "requests", "secs",
	       "req/s", "kicks", "kick/req", "kick%", "calls", "call/req", "call%", "indir%",
	       "resets", "maps");
}

static double percent(uint64_t part, uint64_t whole)
{
	return whole ? 100.0 * (double)part / (double)whole : 0;
}

static void report(const struct stress_shared *sh, double secs)
{
	const struct stress_cfg *cfg = &sh->cfg;
	double n = (double)cfg->requests;

	printf("%-6s %-9s %-8s %-9s %-5s %5u %8llu %6.2f %8.0f %7llu %8.4f %6.1f %7llu %8.4f %6.1f "
	       "%6.1f %6llu %5llu\n",
	       cfg->packed ? "packed" : "split", cfg->event_idx ? "on" : "off",
	       cfg->indirect ? "on" : "off", cfg->processes ? "processes" : "threads",
	       cfg->small ? "small" : "mixed", cfg->num, (unsigned long long)cfg->requests, secs,
	       n / secs, (unsigned long long)sh->kicks, (double)sh->kicks / n,
	       percent(sh->kicks, sh->kick_checks), (unsigned long long)sh->calls,
	       (double)sh->calls / n, percent(sh->calls, sh->call_checks),
	       percent(sh->indirect_chains, cfg->requests), (unsigned long long)sh->device_resets,
	       (unsigned long long)sh->device_maps);
	fflush(stdout);
}

/*
 * Suppression must be real.  The bar: with EVENT_IDX, fewer than a
 * quarter as many kicks and calls as requests.  That alone would pass with
 * no suppression at all when batches are big, so also: of the times a side
 * asked whether to notify, at most 3/4 of the answers may be yes for calls
 * (the driver sleeps rarely, and asks for a call late; we see 5-40%) and,
 * with EVENT_IDX, at most 85% for kicks (the device polls while busy; we
 * see 10-60%).  A side that ignores suppression says yes every time.
 * Tiny rings cannot batch, so they are exempt.
 */
static void check_suppression(const struct stress_shared *sh)
{
	const struct stress_cfg *cfg = &sh->cfg;

	if (cfg->num < STRESS_MIN_BATCH_RING)
		return;
	if (cfg->event_idx && sh->kicks * STRESS_MAX_NOTIFY_RATIO > cfg->requests)
		FAIL("%llu kicks for %llu requests: kicks are not being suppressed",
		     (unsigned long long)sh->kicks, (unsigned long long)cfg->requests);
	if (cfg->event_idx && sh->calls * STRESS_MAX_NOTIFY_RATIO > cfg->requests)
		FAIL("%llu calls for %llu requests: calls are not being suppressed",
		     (unsigned long long)sh->calls, (unsigned long long)cfg->requests);
	if (sh->calls * 4 > sh->call_checks * 3)
		FAIL("%llu of %llu should_notify() said yes: calls are not being suppressed",
		     (unsigned long long)sh->calls, (unsigned long long)sh->call_checks);
	if (cfg->event_idx && sh->kicks * 20 > sh->kick_checks * 17)
		FAIL("%llu of %llu kick_prepare() said yes: kicks are not being suppressed",
		     (unsigned long long)sh->kicks, (unsigned long long)sh->kick_checks);
}

static void run_config(const struct stress_cfg *cfg)
{
	struct stress_run run = {0};
	struct stress_shared *sh;
	pthread_t thread;
	pid_t pid;
	uint64_t t0;
	double secs;
	int status;

	setup(&run, cfg);
	sh = run.sh;
	t0 = test_now_ns();
	if (cfg->processes) {
		fflush(NULL);
		/* Not fork()'s result straight into shared memory: the child's 0 would race. */
		pid = fork();
		if (pid < 0)
			FAIL("fork: %m");
		if (pid == 0)
			device_process(sh);
		sh->device_pid = pid;
	} else {
		run.dev_map = map_block(sh->memfd, sh->mem_size);
		if (pthread_create(&thread, NULL, device_thread, &run))
			FAIL("pthread_create");
	}

	stress_driver_run(sh, run.vq, run.drv_map);

	if (cfg->processes) {
		if (waitpid(sh->device_pid, &status, 0) != sh->device_pid)
			FAIL("waitpid: %m");
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			FAIL("device process failed (status %#x)", status);
	} else {
		pthread_join(thread, NULL);
	}
	secs = (double)(test_now_ns() - t0) / 1e9;
	report(sh, secs);

	check_suppression(sh);
	/* The device's own count of notifications it asked for must match ours. */
	CHECK_EQ(sh->dev_notified, sh->calls);
	teardown(&run);
}

static void usage(const char *prog)
{
	fprintf(stderr,
		"usage: %s [--packed] [--event-idx] [--indirect] [--processes] [--qsize N]\n"
		"          [--requests N] [--small] | --all [--small]\n",
		prog);
	exit(2);
}

int main(int argc, char **argv)
{
	/* clang-format off */
	static const struct option opts[] = {
		{ "packed", no_argument, NULL, 'p' },
		{ "event-idx", no_argument, NULL, 'e' },
		{ "indirect", no_argument, NULL, 'i' },
		{ "processes", no_argument, NULL, 'P' },
		{ "qsize", required_argument, NULL, 'q' },
		{ "requests", required_argument, NULL, 'n' },
		{ "all", no_argument, NULL, 'a' },
		{ "small", no_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	/* clang-format on */
	struct stress_cfg cfg = {.num = 256, .watchdog_ms = 15000};
	bool all = false;
	uint64_t min;
	int c;

	setvbuf(stdout, NULL, _IOLBF, 0);
	cfg.requests = STRESS_REQUESTS;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			cfg.packed = true;
			break;
		case 'e':
			cfg.event_idx = true;
			break;
		case 'i':
			cfg.indirect = true;
			break;
		case 'P':
			cfg.processes = true;
			break;
		case 'q':
			cfg.num = (uint16_t)atoi(optarg);
			break;
		case 'n':
			cfg.requests = strtoull(optarg, NULL, 0);
			break;
		case 'a':
			all = true;
			break;
		case 's':
			cfg.small = true;
			break;
		default:
			usage(argv[0]);
		}
	}
	/* Scaled, but never below the floor (or what was asked, if less). */
	min = cfg.requests < STRESS_MIN_REQUESTS ? cfg.requests : STRESS_MIN_REQUESTS;
	cfg.requests = test_scaled(cfg.requests, min);
	cfg.seed = test_seed(0x5eed0000ull + cfg.num);
	print_header();
	if (!all) {
		run_config(&cfg);
		return 0;
	}
	for (int i = 0; i < 8; i++) {
		cfg.packed = i & 1;
		cfg.event_idx = i & 2;
		cfg.processes = i & 4;
		cfg.indirect = true;
		run_config(&cfg);
	}
	return 0;
}
