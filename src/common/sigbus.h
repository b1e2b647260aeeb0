/* SPDX-License-Identifier: MIT */
/*
 * sigbus.h - shared file mappings that an untrusted peer can pull away.
 *
 * Guest memory is a file the front-end owns (a memfd, a tmpfs or hugetlbfs
 * file) mapped MAP_SHARED here.  If the front-end shrinks the file, or
 * hugetlbfs has no page to give, our next load or store there raises
 * SIGBUS, and SIGBUS kills the whole daemon.  Every such mapping is
 * entered in a process-wide, fixed-size, lock-free table of guarded
 * ranges.  A SIGBUS handler (installed once, chaining to whatever handler
 * was there before for any fault outside the table) replaces the whole
 * faulting range with anonymous zero pages, marks it faulted, raises the
 * owner's flag, writes 1 to the owner's eventfd and returns: the access is
 * retried and reads zeroes.  The owner learns of it on its own thread and
 * takes it from there (vhost-user marks the device broken).  The range
 * stays zeroes until it is unmapped.
 *
 * The handler uses only lock-free atomics, mmap(), write() and, on the way
 * to a previous handler or the default action, sigaction() and raise().
 *
 * A SIGBUS from a memory access is synchronous: if the faulting thread
 * blocks it, the kernel kills the process without running any handler.
 * So a thread that may touch guest memory must leave SIGBUS unblocked
 * (sigbus_block_other_signals()).  A kernel access (io_uring, a syscall's
 * copy) gets -EFAULT instead and raises nothing.
 */
#ifndef VHOSTD_COMMON_SIGBUS_H
#define VHOSTD_COMMON_SIGBUS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

/* Ranges the table holds at once; sigbus_guard_add() says -ENOSPC beyond. */
#define SIGBUS_GUARD_SLOTS 4096

/* Install the handler, once for the process (later calls return at once): 0 or -errno. */
int sigbus_guard_init(void);

/*
 * Guard [@start, @start + @len), a whole mapping (page aligned, in the
 * mapping's own page size, as MAP_FIXED needs on hugetlbfs).  On a fault
 * inside it the handler sets *@flag (if not NULL) and writes 1 to
 * @notify_fd (if >= 0: a non-blocking eventfd of ours, never a peer's).
 * Returns the slot (>= 0), or -ENOSPC when the table is full.
 */
int sigbus_guard_add(void *start, size_t len, int notify_fd, atomic_bool *flag);

/*
 * Withdraw a slot before unmapping its range: when this returns no handler
 * uses it any more, and the range may be unmapped (and its address reused).
 */
void sigbus_guard_remove(int slot);

/* Has the slot's range faulted (and become zero pages)? */
bool sigbus_guard_faulted(int slot);

/*
 * @notify_fd and @flag are going away (their owner is freed): no handler
 * will use them once this returns, even for ranges still guarded.
 */
void sigbus_guard_disown(int notify_fd, atomic_bool *flag);

/*
 * For threads other than the main one: block every signal except SIGBUS
 * (the whole mask is set, so an inherited block on SIGBUS goes too), which
 * must reach the handler (see above).  Call it first thing.
 */
void sigbus_block_other_signals(void);

#endif /* VHOSTD_COMMON_SIGBUS_H */
