/* SPDX-License-Identifier: MIT */
/*
 * fuzz_engine.h - a synchronous stand-in for src/engine/engine.c, linked
 * into the device-level fuzz harnesses instead of it (it defines every
 * function of engine.h, so the linker never pulls engine.o out of the
 * static library).
 *
 * Why: the real engine serves queues on I/O threads; a start or stop is a
 * handshake with another thread and a request is served whenever that
 * thread wakes.  A fuzz input wants the opposite: everything it causes
 * happens before the call returns, on the caller's thread, in the same
 * order every time, at thousands of inputs a second.  So here a started
 * queue is only served when the harness calls fuzz_eng_run(), which does
 * what one pass of an I/O thread does for that queue (reap, pop every
 * available chain into a slot of its head, start it, reap, publish), and a
 * stop drains the same way.  Device-model code runs unchanged.
 *
 * Another thread (virtio-scsi's TMF thread) may call eng_queue_call(); it
 * runs under one process-wide lock that fuzz_eng_run() also holds, which
 * is the guarantee the real engine gives (one callback at a time per
 * queue).  The checks the real engine makes on hostile chains (head out of
 * range or already in flight) are made here too, and a model that leaves
 * a request in flight at stop aborts the run.
 */
#ifndef VHOSTD_TESTS_FUZZ_ENGINE_H
#define VHOSTD_TESTS_FUZZ_ENGINE_H

#include <stdbool.h>

#include "engine/engine.h"

/* Serve @eq once, as an I/O thread's pass does.  Returns chains popped. */
unsigned int fuzz_eng_run(struct eng_queue *eq);
/* Serve every started queue until none has work (bounded).  Chains popped. */
unsigned int fuzz_eng_run_all(void);
/*
 * Wait (lock released) until no started queue has a request in flight, at
 * most FUZZ_ENG_WAIT_MS: for work another thread finishes (a TMF).  A
 * queue woken meanwhile is reaped and published, as an I/O thread would.
 * False on timeout: the harness calls that a hang.
 */
#define FUZZ_ENG_WAIT_MS 5000
bool fuzz_eng_wait_idle(void);
/* Requests popped and not completed on @eq. */
unsigned int fuzz_eng_inflight(const struct eng_queue *eq);
bool fuzz_eng_halted(const struct eng_queue *eq);
/* Queues started and not stopped (a leak check between inputs). */
unsigned int fuzz_eng_nr_queues(void);
/* Hold / release the lock that eng_queue_call() takes. */
void fuzz_eng_lock(void);
void fuzz_eng_unlock(void);

#endif /* VHOSTD_TESTS_FUZZ_ENGINE_H */
