/* SPDX-License-Identifier: MIT */
/*
 * ufd.h - file descriptors handed to us by an untrusted peer.
 *
 * A descriptor received over SCM_RIGHTS can be anything: a pipe or a
 * regular file where an eventfd belongs (a queue that looks kicked forever
 * spins a core), a semaphore-mode eventfd holding a huge count, a socket
 * whose last close() lingers for minutes, an eventfd whose counter sits at
 * its maximum so that a plain write() sleeps until the peer reads it.  And
 * the peer keeps its own reference to the same open file description, so
 * it can clear O_NONBLOCK, read our eventfd or re-arm SO_LINGER whenever it
 * likes: whatever we check or set on the file can change behind our back.
 * This module holds the three things that stay safe regardless:
 *
 *  - ufd_classify(): what a descriptor really is (fstat, fstatfs, the
 *    /proc/self/fd link and, for an eventfd, /proc/self/fdinfo's
 *    "eventfd-semaphore" line, shown since Linux 6.2), to refuse it at
 *    receipt with a one-line description.
 *  - ufd_close(): a close that never blocks the caller.  Eventfds and files
 *    on tmpfs/hugetlbfs (memfds) are closed at once: their release cannot
 *    sleep.  Anything else (a socket, a pipe, a file on NFS or FUSE whose
 *    flush can wait on a server, a device node) is handed to one closer
 *    thread; a socket's linger is zeroed first so that its close aborts
 *    instead of waiting.  A socket that carries descriptors in flight must
 *    go there too (ufd_close_async): its release drops those descriptors,
 *    and their last close would run on our thread.  The closer closes in
 *    order and never drops one: a close that does block delays the ones
 *    queued behind it (they stay open meanwhile), nothing more.
 *  - struct ufd_signal: eventfd writes that never block the caller, even
 *    when the peer has cleared O_NONBLOCK and filled the counter.  Writes
 *    go through a small io_uring, which tries them at once and otherwise
 *    completes them from a kernel worker; at most a few are in flight per
 *    descriptor, and none is needed while the eventfd is already readable.
 *    ufd_eventfd_read() is the read-side twin (RWF_NOWAIT, for kick fds).
 */
#ifndef VHOSTD_COMMON_UFD_H
#define VHOSTD_COMMON_UFD_H

#include <stdbool.h>
#include <stdint.h>

#include <liburing.h>

enum ufd_kind {
	UFD_EVENTFD,	       /* counter mode: what kick/call/err fds must be */
	UFD_EVENTFD_SEMAPHORE, /* EFD_SEMAPHORE: one read takes one count */
	UFD_MEMFILE,	       /* regular file on tmpfs (memfd) or hugetlbfs */
	UFD_FILE,	       /* regular file on any other file system */
	UFD_SOCKET,
	UFD_PIPE,
	UFD_OTHER, /* directories, devices, other anonymous inodes */
	UFD_BAD,   /* not an open descriptor (fstat failed) */
};

struct ufd_info {
	enum ufd_kind kind;
	char desc[96]; /* for log lines: "a pipe (pipe:[1234])" */
};

/* Classify @fd; never blocks.  Returns info->kind. */
enum ufd_kind ufd_classify(int fd, struct ufd_info *info);

/* A descriptor's kind is fit for guest memory (memfd, tmpfs, hugetlbfs or other file). */
static inline bool ufd_kind_is_memory(enum ufd_kind k)
{
	return k == UFD_MEMFILE || k == UFD_FILE;
}

/* Set O_NONBLOCK (belt and braces: the peer can clear it again).  0 or -errno. */
int ufd_set_nonblock(int fd);

/* Close an untrusted descriptor without ever blocking the caller (see above). */
void ufd_close(int fd);
/* The same, always through the closer thread (sockets that may carry descriptors). */
void ufd_close_async(int fd);
/* Wait until the closer has nothing queued (tests); false after @timeout_ms. */
bool ufd_closer_wait_idle(int timeout_ms);

/*
 * Read an eventfd's counter without blocking whatever its O_NONBLOCK says:
 * 1 with *@v set, 0 if it was zero (the peer may have read it first), -errno.
 */
int ufd_eventfd_read(int fd, uint64_t *v);

/* In-flight writes one slot may have before it relies on readability alone. */
#define UFD_SIGNAL_MAX_INFLIGHT 4

struct ufd_signal_slot {
	uint16_t gen; /* bumped when the slot's descriptor changes */
	uint8_t inflight;
};

/*
 * Non-blocking eventfd signalling for @nslots descriptors (a queue's call
 * fd: one slot; a device's err fds: one per queue).  Not thread-safe: one
 * thread at a time signals through one struct (a queue thread while its
 * queue runs, the loop thread otherwise).
 */
struct ufd_signal {
	struct io_uring ring;
	bool ready; /* ring set up (lazily, on the first signal) */
	unsigned int nslots;
	struct ufd_signal_slot *slots;
};

int ufd_signal_init(struct ufd_signal *s, unsigned int nslots);
void ufd_signal_destroy(struct ufd_signal *s);
/* Set the io_uring up now rather than on the first signal.  0 or -errno. */
int ufd_signal_setup(struct ufd_signal *s);
/* Close the io_uring (cancelling writes in flight) and forget every slot. */
void ufd_signal_reset(struct ufd_signal *s);
/*
 * Add 1 to eventfd @fd (slot @slot's descriptor); never blocks.  0, or
 * -errno if no io_uring could be set up (nothing was written).
 */
int ufd_signal(struct ufd_signal *s, unsigned int slot, int fd);
/* Slot @slot's descriptor is about to change: cancel its writes in flight. */
void ufd_signal_forget(struct ufd_signal *s, unsigned int slot);

#endif /* VHOSTD_COMMON_UFD_H */
