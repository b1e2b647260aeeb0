// SPDX-License-Identifier: MIT
/*
 * migverify.c - the guest side of blk-migrate: a verifying workload whose
 * result depends on the device's writes into guest memory surviving a live
 * migration.  Built static on the host and run inside the test guest.
 *
 *   migverify DEV CONTROL_OFFSET SECONDS
 *
 * Four workers (two per vCPU, so both queues carry requests, and while one
 * checks its data the other's read is in flight) each own a quarter of a
 * 32 MiB region of DEV in 256 KiB chunks and an 8 MiB buffer.  First
 * every chunk is written with generation 0.  Then, pass after pass, until
 * SECONDS have gone by:
 *   1. a quarter of the worker's chunks is rewritten with the pass's
 *      generation (O_DIRECT);
 *   2. every buffer slot is read (O_DIRECT: the device writes straight into
 *      it) from a different chunk than last pass, and checked at once;
 *   3. the whole buffer is checked again.
 * The passes go on until the host writes "vhostd-migrated" into the
 * 512-byte sector at CONTROL_OFFSET of the image (after the migration has
 * completed) and each worker has done AFTER_PASSES more passes, or until
 * SECONDS have gone by, whichever comes first.
 *
 * Every 512-byte sector carries words derived from (chunk, sector,
 * generation), so a sector from another chunk or generation never passes.
 *
 * How a migration that loses device writes shows: the buffers are written
 * only by the device (the CPU only reads them after the first touch), so
 * QEMU's own dirty tracking never sees them change; only the back-end's
 * dirty log makes QEMU send them again.  A read in flight when the source
 * stops its rings is completed by the source's back-end into memory QEMU
 * then has no reason to send: the guest on the destination sees the
 * completion with the buffer's old contents, and the immediate check
 * fails.  Four workers make sure some read is in flight at that moment.
 * Step 3 would catch pages written earlier and never sent again (under
 * TCG, QEMU 7.2 has so far sent those anyway; see tests/guest/README.md).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHUNK	    (256u * 1024)
#define NCHUNK	    128u /* 32 MiB region */
#define WORKERS	    4u
#define PER_WORKER  (NCHUNK / WORKERS)
#define SECTOR	    512u
#define WORDS_CHECK 8u /* words checked per sector */
#define AFTER_PASSES 3u /* passes after the host says the guest has moved */
#define MARKER	    "vhostd-migrated"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t word(unsigned int chunk, unsigned int sector, unsigned int gen, unsigned int i)
{
	uint64_t x = (uint64_t)chunk << 40 | (uint64_t)sector << 24 | (uint64_t)gen << 8 | i;

	x *= 0x9e3779b97f4a7c15ull;
	return x ^ x >> 29;
}

static void fill(uint8_t *p, unsigned int chunk, unsigned int gen)
{
	for (unsigned int s = 0; s < CHUNK / SECTOR; s++) {
		uint64_t *w = (uint64_t *)(p + (size_t)s * SECTOR);

		for (unsigned int i = 0; i < SECTOR / 8; i++)
			w[i] = word(chunk, s, gen, i);
	}
}

/* -1 if @p holds (chunk, gen), else the first bad sector. */
static int check(const uint8_t *p, unsigned int chunk, unsigned int gen)
{
	for (unsigned int s = 0; s < CHUNK / SECTOR; s++) {
		const uint64_t *w = (const uint64_t *)(p + (size_t)s * SECTOR);

		for (unsigned int i = 0; i < WORDS_CHECK; i++) {
			unsigned int k = i * (SECTOR / 8 / WORDS_CHECK);

			if (w[k] != word(chunk, s, gen, k))
				return (int)s;
		}
	}
	return -1;
}

/* Which (chunk, gen) sector @sec of a chunk holds, for the failure message. */
static int identify(const uint8_t *p, unsigned int sec, unsigned int maxgen, unsigned int *chunk,
		    unsigned int *gen)
{
	const uint64_t *w = (const uint64_t *)p;

	for (unsigned int c = 0; c < NCHUNK; c++) {
		for (unsigned int g = 0; g <= maxgen; g++) {
			if (w[0] == word(c, sec, g, 0)) {
				*chunk = c;
				*gen = g;
				return 1;
			}
		}
	}
	return 0;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	printf("migverify: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	exit(1);
}

/* Has the host written the marker into the control sector? */
static int migrated(int fd, uint8_t *sec, off_t control)
{
	if (pread(fd, sec, SECTOR, control) != SECTOR)
		die("read of the control sector failed: %s", strerror(errno));
	return !memcmp(sec, MARKER, sizeof(MARKER));
}

static void worker(const char *dev, unsigned int w, off_t control, double end)
{
	unsigned int after = 0;
	unsigned int gen[PER_WORKER] = {0}, slot_chunk[PER_WORKER], slot_gen[PER_WORKER];
	uint8_t *buf, *wbuf;
	cpu_set_t set;
	int fd;

	CPU_ZERO(&set);
	CPU_SET(w % 2, &set);
	sched_setaffinity(0, sizeof(set), &set);
	fd = open(dev, O_RDWR | O_DIRECT);
	if (fd < 0)
		die("open %s: %s", dev, strerror(errno));
	buf = mmap(NULL, (size_t)PER_WORKER * CHUNK, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	wbuf = mmap(NULL, CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	/* wbuf doubles as the control sector's buffer (O_DIRECT: aligned). */
	if (buf == MAP_FAILED || wbuf == MAP_FAILED)
		die("out of memory");

	for (unsigned int i = 0; i < PER_WORKER; i++) {
		unsigned int c = i * WORKERS + w;

		fill(wbuf, c, 0);
		if (pwrite(fd, wbuf, CHUNK, (off_t)c * CHUNK) != CHUNK)
			die("initial write of chunk %u failed: %s", c, strerror(errno));
	}
	for (unsigned int pass = 1; now() < end && after < AFTER_PASSES; pass++) {
		double t0 = now();

		if (after || migrated(fd, wbuf, control))
			after++;
		for (unsigned int i = pass % 4; i < PER_WORKER; i += 4) {
			unsigned int c = i * WORKERS + w;

			fill(wbuf, c, pass);
			if (pwrite(fd, wbuf, CHUNK, (off_t)c * CHUNK) != CHUNK)
				die("pass %u: write of chunk %u failed: %s", pass, c,
				    strerror(errno));
			gen[i] = pass;
		}
		for (unsigned int s = 0; s < PER_WORKER; s++) {
			unsigned int i = (s + pass * 19) % PER_WORKER, c = i * WORKERS + w;
			uint8_t *p = buf + (size_t)s * CHUNK;
			int bad;

			if (pread(fd, p, CHUNK, (off_t)c * CHUNK) != CHUNK)
				die("pass %u: read of chunk %u failed: %s", pass, c,
				    strerror(errno));
			bad = check(p, c, gen[i]);
			if (bad >= 0)
				die("pass %u: chunk %u sector %d read wrong at once (want gen %u)",
				    pass, c, bad, gen[i]);
			slot_chunk[s] = c;
			slot_gen[s] = gen[i];
		}
		/* The device's writes into this memory must still be there. */
		for (unsigned int s = 0; s < PER_WORKER; s++) {
			const uint8_t *p = buf + (size_t)s * CHUNK;
			int bad = check(p, slot_chunk[s], slot_gen[s]);

			if (bad >= 0) {
				unsigned int oc = 0, og = 0;
				const uint8_t *sec = p + (size_t)bad * SECTOR;

				if (identify(sec, (unsigned int)bad, pass, &oc, &og))
					printf("migverify: slot %u sector %d holds chunk %u gen %u\n", s,
					       bad, oc, og);
				die("pass %u: STALE buffer: slot %u sector %d (chunk %u gen %u) "
				    "changed after its check",
				    pass, s, bad, slot_chunk[s], slot_gen[s]);
			}
		}
		printf("migverify: worker %u pass %u ok in %.2fs%s\n", w, pass, now() - t0,
		       after ? " (moved)" : "");
		if (pass == 2 && w == 0)
			printf("MIGRATE-READY\n");
		fflush(stdout);
	}
	close(fd);
	exit(0);
}

int main(int argc, char **argv)
{
	double end;
	int status, failed = 0;

	if (argc != 4) {
		fprintf(stderr, "usage: migverify DEV CONTROL_OFFSET SECONDS\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	end = now() + atof(argv[3]);
	for (unsigned int w = 0; w < WORKERS; w++) {
		if (fork() == 0)
			worker(argv[1], w, (off_t)strtoull(argv[2], NULL, 0), end);
	}
	for (unsigned int w = 0; w < WORKERS; w++) {
		if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
			failed = 1;
	}
	printf("migverify: %s\n", failed ? "FAILED" : "all passes verified");
	return failed;
}
