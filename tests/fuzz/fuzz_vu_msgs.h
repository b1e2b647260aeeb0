/* SPDX-License-Identifier: MIT */
/*
 * fuzz_vu_msgs.h - the input format of fuzz_vu_msgs (a vhost-user front-end
 * as hostile as a byte string can make it), shared with the seed
 * generator.
 *
 * An input is one byte of device choice (bit 0: the virtio-scsi controller,
 * else the virtio-blk disk) and then operations, each one byte of kind
 * (taken modulo FUZZ_VU_OP__COUNT) and its operands:
 *
 *   MSG       fds (1 byte: count in bits 0-1, 0..3), one pool index per fd
 *             (1 byte each, modulo FUZZ_VU_POOL), the 12-byte vhost-user
 *             header as sent, then min(header size, FUZZ_VU_MAX_PAYLOAD)
 *             payload bytes (zeroes past the input's end), in one
 *             sendmsg.  A size past the protocol's maximum is refused on
 *             the header alone.
 *   WRITE     memfd (1 byte, modulo FUZZ_VU_NR_MEMFD), offset (4 bytes le),
 *             length (2 bytes le), the bytes: what the guest writes into
 *             its memory (rings, requests), clipped to the file.
 *   TRUNCATE  memfd (1 byte), new size (4 bytes le, modulo the file's
 *             size + 1): a front-end that shrinks memory it shared.
 *   RECONNECT close the connection and connect again.
 *
 * After every operation the harness serves the back-end (every watched
 * descriptor that is readable, a bounded number of rounds), reads and drops
 * its replies, and serves every started queue once (fuzz_engine.h).
 */
#ifndef VHOSTD_TESTS_FUZZ_VU_MSGS_H
#define VHOSTD_TESTS_FUZZ_VU_MSGS_H

enum fuzz_vu_op {
	FUZZ_VU_MSG,
	FUZZ_VU_WRITE,
	FUZZ_VU_TRUNCATE,
	FUZZ_VU_RECONNECT,
	FUZZ_VU_OP__COUNT
};

/* The descriptor pool, by index. */
enum fuzz_vu_fd {
	FUZZ_VU_MEM_1M,	   /* memfd, 1 MiB: guest RAM */
	FUZZ_VU_MEM_64K,   /* memfd, 64 KiB */
	FUZZ_VU_MEM_4K,	   /* memfd, 4 KiB */
	FUZZ_VU_KICK,	   /* eventfd */
	FUZZ_VU_CALL,	   /* eventfd */
	FUZZ_VU_ERR,	   /* eventfd */
	FUZZ_VU_SEMAPHORE, /* eventfd in semaphore mode: refused as a ring fd */
	FUZZ_VU_PIPE,	   /* a pipe's read end */
	FUZZ_VU_DEVNULL,   /* /dev/null */
	FUZZ_VU_EMPTY,	   /* memfd of 0 bytes */
	FUZZ_VU_POOL
};

#define FUZZ_VU_NR_MEMFD    3 /* the first three */
#define FUZZ_VU_MAX_PAYLOAD 512

#endif /* VHOSTD_TESTS_FUZZ_VU_MSGS_H */
