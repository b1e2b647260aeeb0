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
 * was there before for any fault outside the table) replaces the faulting
 * page with an anonymous zero page and returns: the access is retried and
 * reads zeroes.  On a range's first fault it also marks the range
 * faulted, raises the owner's flag and writes 1 to the owner's eventfd;
 * the owner learns of it on its own thread and takes it from there
 * (vhost-user marks the device broken).  A replaced page stays a private
 * zero page until the range is unmapped.
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
 * Guard [@start, @start + @len), a whole mapping whose pages are @page
 * bytes (a power of two; a huge page size on hugetlbfs, which cannot be
 * split) and to which @start and @len are aligned.  On its first fault
 * the handler sets *@flag (if not NULL) and writes 1 to @notify_fd (if
 * >= 0: a non-blocking eventfd of ours, never a peer's).  Returns the slot
 * (>= 0), -EINVAL for a bad page size or alignment, or -ENOSPC when the
 * table is full.
 */
int sigbus_guard_add(void *start, size_t len, size_t page, int notify_fd, atomic_bool *flag);

/*
 * Withdraw a slot before unmapping its range: when this returns no handler
 * uses it any more, and the range may be unmapped (and its address reused).
 */
void sigbus_guard_remove(int slot);

/* Has a page of the slot's range faulted (and become a zero page)? */
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
