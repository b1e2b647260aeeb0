// SPDX-License-Identifier: MIT
/*
 * test_sigbus.c - the SIGBUS guard on its own (common/sigbus.h).
 *
 *  - A guarded shared mapping whose file shrinks reads zeroes where the
 *    file lost its pages instead of killing us, and still shares the page
 *    the file kept; the owner's flag and eventfd say so, once.
 *  - Several threads faulting on it at once all survive, and a thread
 *    with every other signal blocked (the engine's mask) does too.
 *  - What is not ours still kills: a fault outside every guarded range, a
 *    SIGBUS sent with kill(), a fault on a thread that blocks SIGBUS, and
 *    a fault in a range withdrawn with sigbus_guard_remove() (each in a
 *    child process; under ASan its own handler reports and exits).
 *  - The table is full at SIGBUS_GUARD_SLOTS, and slots come back.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "common/sigbus.h"

#define SIZE (256u << 10)

struct region {
	int fd;
	volatile uint8_t *p;
	int slot;
	int efd;
	atomic_bool flag;
};

static void region_open(struct region *r, bool guard)
{
	r->fd = memfd_create("sigbus-test", MFD_CLOEXEC);
	CHECK(r->fd >= 0 && !ftruncate(r->fd, SIZE));
	r->p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
	CHECK(r->p != MAP_FAILED);
	memset((void *)r->p, 0x5a, SIZE);
	r->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	CHECK(r->efd >= 0);
	atomic_init(&r->flag, false);
	r->slot = guard ? sigbus_guard_add((void *)r->p, SIZE, 4096, r->efd, &r->flag) : -1;
	CHECK(!guard || r->slot >= 0);
}

static void region_close(struct region *r)
{
	sigbus_guard_remove(r->slot);
	munmap((void *)r->p, SIZE);
	close(r->fd);
	close(r->efd);
}

/* Sum of every byte: touches every page. */
static unsigned long sum(volatile uint8_t *p)
{
	unsigned long s = 0;

	for (size_t i = 0; i < SIZE; i += 512)
		s += p[i];
	return s;
}

static void shrink_reads_zeroes(void)
{
	struct region r;
	uint64_t v;

	region_open(&r, true);
	CHECK_EQ(sum(r.p), (unsigned long)(SIZE / 512) * 0x5a);
	CHECK(!sigbus_guard_faulted(r.slot));
	CHECK(!ftruncate(r.fd, 4096));
	/* The page the file kept, then zeroes for every page it lost, twice. */
	CHECK_EQ(sum(r.p), (unsigned long)(4096 / 512) * 0x5a);
	CHECK_EQ(sum(r.p), (unsigned long)(4096 / 512) * 0x5a);
	r.p[SIZE - 1] = 7; /* writable */
	CHECK_EQ(r.p[SIZE - 1], 7);
	/* The first page is still the file's. */
	CHECK_EQ(pwrite(r.fd, "\x11", 1, 0), 1);
	CHECK_EQ(r.p[0], 0x11);
	CHECK(sigbus_guard_faulted(r.slot));
	CHECK(atomic_load(&r.flag));
	CHECK_EQ(read(r.efd, &v, sizeof(v)), (ssize_t)sizeof(v));
	CHECK_EQ(v, 1ull);
	region_close(&r);
	fprintf(stderr, "ok: a shrunk file reads zeroes, flag and eventfd set once\n");
}

static volatile uint8_t *shared_p;
static atomic_bool go, stop;

static void *toucher(void *arg)
{
	unsigned long s = 0;

	if (arg)
		sigbus_block_other_signals();
	while (!atomic_load(&go))
		;
	while (!atomic_load(&stop))
		s += sum(shared_p);
	return (void *)s;
}

static void many_threads(void)
{
	pthread_t t[4];
	struct region r;

	region_open(&r, true);
	shared_p = r.p;
	atomic_store(&go, false);
	atomic_store(&stop, false);
	for (uintptr_t i = 0; i < 4; i++)
		CHECK(!pthread_create(&t[i], NULL, toucher, (void *)(i & 1)));
	atomic_store(&go, true);
	usleep(10000);
	CHECK(!ftruncate(r.fd, 0));
	for (int i = 0; i < 500 && !sigbus_guard_faulted(r.slot); i++)
		usleep(10000);
	CHECK(sigbus_guard_faulted(r.slot));
	usleep(10000); /* they go on reading zeroes */
	atomic_store(&stop, true);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	CHECK_EQ(sum(r.p), 0ul);
	CHECK_EQ(read(r.efd, &(uint64_t){0}, 8), 8); /* one write: the first fault */
	CHECK_EQ(read(r.efd, &(uint64_t){0}, 8), -1);
	region_close(&r);
	fprintf(stderr, "ok: four threads faulting at once (two with the engine's mask)\n");
}

/* --- what still kills: in a child --- */

enum death {
	DIE_UNGUARDED,
	DIE_KILL,
	DIE_BLOCKED,
	DIE_WITHDRAWN,
};

static void *blocked_toucher(void *arg)
{
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	return (void *)sum(arg);
}

static void child(enum death how)
{
	struct region r;
	pthread_t t;

	region_open(&r, how != DIE_UNGUARDED);
	if (how == DIE_WITHDRAWN) {
		sigbus_guard_remove(r.slot);
		r.slot = -1;
	}
	CHECK(!ftruncate(r.fd, 0));
	switch (how) {
	case DIE_KILL:
		kill(getpid(), SIGBUS);
		break;
	case DIE_BLOCKED:
		pthread_create(&t, NULL, blocked_toucher, (void *)r.p);
		pthread_join(t, NULL);
		break;
	default:
		sum(r.p);
		break;
	}
	_exit(0); /* survived: wrong */
}

#ifdef __SANITIZE_ADDRESS__
#define SANITIZER_ABORT SIGABRT
#else
#define SANITIZER_ABORT SIGBUS /* no sanitizer: SIGBUS itself, nothing else */
#endif

static void must_die(enum death how, const char *what)
{
	int status;
	pid_t pid;

	fflush(stderr);
	pid = fork();
	CHECK(pid >= 0);
	if (!pid) {
		/* ASan's report of the fault is expected noise here. */
		int null = open("/dev/null", O_WRONLY);

		dup2(null, STDERR_FILENO);
		child(how);
	}
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	/*
	 * Killed by SIGBUS, or by a sanitizer's handler (chained to): it
	 * exits with an error, or aborts with ASAN_OPTIONS=abort_on_error=1
	 * as scripts/test.sh runs it.
	 */
	if (WIFSIGNALED(status) ? WTERMSIG(status) != SIGBUS && WTERMSIG(status) != SANITIZER_ABORT
				: WEXITSTATUS(status) == 0)
		FAIL("%s: the child survived or died otherwise (status %#x)", what, status);
	fprintf(stderr, "ok: %s still kills (%s %d)\n", what,
		WIFSIGNALED(status) ? "signal" : "exit",
		WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
}

static void table_full(void)
{
	static int slots[SIGBUS_GUARD_SLOTS];
	uint8_t *base = (uint8_t *)0x100000;

	/* Addresses only: nothing is mapped there and nothing touches them. */
	for (unsigned int i = 0; i < SIGBUS_GUARD_SLOTS; i++) {
		slots[i] = sigbus_guard_add(base + i * 4096ul, 4096, 4096, -1, NULL);
		CHECK(slots[i] >= 0);
	}
	CHECK_EQ(sigbus_guard_add(base, 4096, 4096, -1, NULL), -ENOSPC);
	sigbus_guard_remove(slots[17]);
	CHECK_EQ(sigbus_guard_add(base, 4096, 3000, -1, NULL), -EINVAL);
	CHECK_EQ(sigbus_guard_add(base + 512, 4096, 4096, -1, NULL), -EINVAL);
	slots[17] = sigbus_guard_add(base, 4096, 4096, -1, NULL);
	CHECK_EQ(slots[17], 17);
	for (unsigned int i = 0; i < SIGBUS_GUARD_SLOTS; i++)
		sigbus_guard_remove(slots[i]);
	fprintf(stderr, "ok: %u slots, then -ENOSPC, and they come back\n", SIGBUS_GUARD_SLOTS);
}

int main(void)
{
	CHECK_EQ(sigbus_guard_init(), 0);
	CHECK_EQ(sigbus_guard_init(), 0);
	/* Children first, before this process has threads. */
	must_die(DIE_UNGUARDED, "a fault outside every guarded range");
	must_die(DIE_KILL, "SIGBUS sent with kill()");
	must_die(DIE_BLOCKED, "a fault on a thread that blocks SIGBUS");
	must_die(DIE_WITHDRAWN, "a fault in a withdrawn range");
	shrink_reads_zeroes();
	many_threads();
	table_full();
	fprintf(stderr, "ok\n");
	return 0;
}
