// SPDX-License-Identifier: MIT
/*
 * sigbus.c - the guarded-range table and the SIGBUS handler (sigbus.h).
 *
 * Async-signal safety.  The handler can interrupt any thread anywhere,
 * including one that holds malloc's or the log's lock, so it may call
 * only async-signal-safe functions: no malloc, no stdio, no log_*(), no
 * mutex, nothing that might take a lock.  It uses lock-free atomics
 * (checked at compile time), mmap() (a bare system call in glibc and
 * musl, without locks or allocation, though POSIX does not list it),
 * write(), sigaction() and raise().  It saves and restores errno.
 *
 * A slot's life: FREE -> CLAIMED (sigbus_guard_add() won the CAS and fills
 * it in) -> LIVE (published, release) -> DEAD (withdrawn) -> FREE.  A
 * handler that wants a LIVE slot first counts itself in the slot's users,
 * then checks again that it is LIVE and covers the address; the remover
 * marks it DEAD and then waits for users to drop to 0.  Both sides are
 * sequentially consistent (store, then load of the other's variable), so
 * either the handler sees DEAD and leaves the slot alone, or the remover
 * sees the handler and waits for it: the range is never unmapped, and its
 * address never reused, while a handler is about to mmap over it.
 *
 * Only the faulting page is replaced (in the range's own page size:
 * hugetlbfs cannot split a huge page): one page of anonymous memory is
 * all a replacement costs, even under strict overcommit, whatever the size
 * of the range; the pages the file still has stay shared; and each page
 * the peer took away costs one signal, once.  Two threads faulting on the
 * same page both replace it, harmlessly: it holds nothing anyone may rely
 * on.  The owner is told on the range's first fault only.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sigbus.h"

/* The handler must not take a lock, not even inside an atomic operation. */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2 && ATOMIC_POINTER_LOCK_FREE == 2 &&
		       ATOMIC_BOOL_LOCK_FREE == 2 && ATOMIC_LONG_LOCK_FREE == 2,
	       "the SIGBUS handler needs lock-free atomics");
_Static_assert(sizeof(uintptr_t) == sizeof(long) && sizeof(size_t) == sizeof(long),
	       "uintptr_t and size_t are as wide as long");

enum slot_state {
	SLOT_FREE,
	SLOT_CLAIMED,
	SLOT_LIVE,
	SLOT_DEAD,
};

struct guard_slot {
	atomic_uint state; /* enum slot_state */
	atomic_uint users; /* handlers inside this slot */
	_Atomic(uintptr_t) start;
	_Atomic(size_t) len;
	_Atomic(size_t) page; /* the mapping's page size: what one fault replaces */
	atomic_int notify_fd;
	_Atomic(atomic_bool *) flag;
	atomic_bool faulted; /* some page of it was replaced */
};

static struct guard_slot slots[SIGBUS_GUARD_SLOTS];
/* Slots at or past this index were never used: the handler stops there. */
static atomic_uint slots_used;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_error;
/* The handler we replaced; written once, before ours is installed. */
static struct sigaction previous;

/* --- the handler (async-signal-safe code only, down to sigbus_handler) --- */

/* Inside [start, start + len)?  Written so that nothing overflows. */
static bool in_range(uintptr_t a, uintptr_t start, size_t len)
{
	return a >= start && a - start < len;
}

/*
 * Replace the page holding @addr with a zero page and, the first time,
 * tell the owner.  False if that is impossible (out of memory): the
 * caller lets the process die as it would have without us.
 */
static bool zero_page(struct guard_slot *s, uintptr_t addr, size_t page)
{
	uintptr_t at = addr & ~(uintptr_t)(page - 1);
	atomic_bool *flag;
	uint64_t one = 1;
	int fd;

	if (mmap((void *)at, page, PROT_READ | PROT_WRITE,
		 MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0) == MAP_FAILED)
		return false;
	if (atomic_exchange(&s->faulted, true))
		return true;
	flag = atomic_load(&s->flag);
	if (flag)
		atomic_store(flag, true);
	fd = atomic_load(&s->notify_fd);
	/* Our own non-blocking eventfd: this cannot block, and a full counter is news enough. */
	if (fd >= 0 && write(fd, &one, sizeof(one)) < 0) {
		/* Nothing to do about it here; the flag is set. */
	}
	return true;
}

/* Is @addr in a guarded range?  Then it is dealt with: true. */
static bool handle_guest_fault(uintptr_t addr)
{
	unsigned int n = atomic_load_explicit(&slots_used, memory_order_acquire);

	for (unsigned int i = 0; i < n; i++) {
		struct guard_slot *s = &slots[i];
		uintptr_t start;
		size_t len;
		bool handled = false;

		/* A cheap look first; only a match is worth the users dance. */
		if (atomic_load_explicit(&s->state, memory_order_relaxed) != SLOT_LIVE ||
		    !in_range(addr, atomic_load_explicit(&s->start, memory_order_relaxed),
			      atomic_load_explicit(&s->len, memory_order_relaxed)))
			continue;
		atomic_fetch_add(&s->users, 1);
		start = atomic_load(&s->start);
		len = atomic_load(&s->len);
		if (atomic_load(&s->state) == SLOT_LIVE && in_range(addr, start, len))
			handled = zero_page(s, addr, atomic_load(&s->page));
		atomic_fetch_sub(&s->users, 1);
		if (handled)
			return true;
	}
	return false;
}

/* Not ours: what would have happened without us. */
static void chain(int sig, siginfo_t *si, void *uc)
{
	struct sigaction dfl;

	if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
		if (previous.sa_flags & SA_SIGINFO)
			previous.sa_sigaction(sig, si, uc);
		else
			previous.sa_handler(sig);
		return;
	}
	/* A synchronous SIGBUS cannot be ignored: SIG_IGN means death too. */
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigaction(SIGBUS, &dfl, NULL);
	/*
	 * A fault re-runs its instruction on return and dies of it, with the
	 * right address in the core; a SIGBUS sent by kill() is sent again
	 * (it stays pending while this handler runs).
	 */
	if (si->si_code <= 0)
		raise(SIGBUS);
}

static void sigbus_handler(int sig, siginfo_t *si, void *uc)
{
	int saved_errno = errno;

	/*
	 * si_code > 0: the kernel's, for a fault; <= 0: sent by someone.  A
	 * hardware memory error (BUS_MCEERR_*) is not the peer's doing, and
	 * retrying on a page we replaced ourselves would loop: not ours.
	 */
	if (si->si_code <= 0 || si->si_code == BUS_MCEERR_AR || si->si_code == BUS_MCEERR_AO ||
	    !handle_guest_fault((uintptr_t)si->si_addr))
		chain(sig, si, uc);
	errno = saved_errno;
}

/* --- everything below runs in ordinary thread context --- */

static void install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = sigbus_handler;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	/*
	 * Whatever was there is chained to: the default action, or a
	 * sanitizer's handler (ASan's handle_sigbus=1 installs one before
	 * main(); it reports and aborts, as it would without us).
	 */
	if (sigaction(SIGBUS, &sa, &previous))
		init_error = -errno;
}

int sigbus_guard_init(void)
{
	pthread_once(&init_once, install);
	return init_error;
}

int sigbus_guard_add(void *start, size_t len, size_t page, int notify_fd, atomic_bool *flag)
{
	if (!page || (page & (page - 1)) || ((uintptr_t)start | len) & (page - 1))
		return -EINVAL;
	for (unsigned int i = 0; i < SIGBUS_GUARD_SLOTS; i++) {
		struct guard_slot *s = &slots[i];
		unsigned int expect = SLOT_FREE, used;

		if (!atomic_compare_exchange_strong(&s->state, &expect, SLOT_CLAIMED))
			continue;
		atomic_store(&s->start, (uintptr_t)start);
		atomic_store(&s->len, len);
		atomic_store(&s->page, page);
		atomic_store(&s->notify_fd, notify_fd);
		atomic_store(&s->flag, flag);
		atomic_store(&s->faulted, false);
		/* The handler's scan must reach the slot before it is live. */
		used = atomic_load(&slots_used);
		while (used < i + 1 && !atomic_compare_exchange_weak(&slots_used, &used, i + 1))
			;
		atomic_store_explicit(&s->state, SLOT_LIVE, memory_order_release);
		return (int)i;
	}
	return -ENOSPC;
}

/* Wait out handlers inside @s; they are short and never block. */
static void wait_users(struct guard_slot *s)
{
	while (atomic_load(&s->users))
		sched_yield();
}

void sigbus_guard_remove(int slot)
{
	struct guard_slot *s;

	if (slot < 0 || slot >= SIGBUS_GUARD_SLOTS)
		return;
	s = &slots[slot];
	atomic_store(&s->state, SLOT_DEAD);
	wait_users(s);
	atomic_store_explicit(&s->state, SLOT_FREE, memory_order_release);
}

bool sigbus_guard_faulted(int slot)
{
	return slot >= 0 && slot < SIGBUS_GUARD_SLOTS && atomic_load(&slots[slot].faulted);
}

void sigbus_guard_disown(int notify_fd, atomic_bool *flag)
{
	unsigned int n = atomic_load(&slots_used);

	for (unsigned int i = 0; i < n; i++) {
		struct guard_slot *s = &slots[i];
		atomic_bool *f = flag;
		int fd = notify_fd;
		bool mine = false;

		/* Compare-and-swap: a slot reused by another owner keeps its own. */
		if (notify_fd >= 0 && atomic_compare_exchange_strong(&s->notify_fd, &fd, -1))
			mine = true;
		if (flag && atomic_compare_exchange_strong(&s->flag, &f, NULL))
			mine = true;
		if (mine)
			wait_users(s);
	}
}

void sigbus_block_other_signals(void)
{
	sigset_t set;

	/* SETMASK, not BLOCK: SIGBUS may be blocked in the mask we inherited. */
	sigfillset(&set);
	sigdelset(&set, SIGBUS);
	pthread_sigmask(SIG_SETMASK, &set, NULL);
}
