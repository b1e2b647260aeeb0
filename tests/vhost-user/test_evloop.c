// SPDX-License-Identifier: MIT
/*
 * test_evloop.c - the epoll loop's contract (common/evloop.h).
 *
 * The case that matters: a callback deletes watches, its own and another
 * one whose event fired in the same epoll_wait() round, and even re-adds
 * the fd with a new callback.  The dead watch's callback must not run and
 * nothing may be freed under the loop (ASan in build-san checks the
 * latter).  Also: -EEXIST for a second watch on one fd, evloop_mod,
 * evloop_stop() from another thread, and running the loop again.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vu_test.h"

static struct evloop *loop;
static int efd[3];
static int calls[3];
static int late_calls;
static int late_fd = -1;

static void late_cb(void *arg, uint32_t events)
{
	eventfd_t v;

	eventfd_read(efd[(intptr_t)arg], &v);
	late_calls++;
	evloop_stop(loop);
}

/* Whichever of the two fires first kills both. */
static void killer_cb(void *arg, uint32_t events)
{
	int me = (int)(intptr_t)arg, other = me == 0 ? 1 : 0;
	eventfd_t v;

	calls[me]++;
	eventfd_read(efd[me], &v);
	/* Delete ourselves and the other watch, whose event is pending this round... */
	evloop_del(loop, efd[me]);
	evloop_del(loop, efd[other]);
	/* ...and give the other fd a new watch: only the new callback may run. */
	CHECK_EQ(evloop_add(loop, efd[other], EPOLLIN, late_cb, (void *)(intptr_t)other), 0);
	late_fd = other;
}

static void *stopper(void *arg)
{
	usleep(50 * 1000);
	evloop_stop(loop);
	return NULL;
}

static void noop_cb(void *arg, uint32_t events)
{
	calls[2]++;
}

int main(void)
{
	pthread_t thr;

	loop = evloop_new();
	CHECK(loop);
	for (int i = 0; i < 3; i++) {
		efd[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		CHECK(efd[i] >= 0);
	}

	/* One watch per fd. */
	CHECK_EQ(evloop_add(loop, efd[2], EPOLLIN, noop_cb, NULL), 0);
	CHECK_EQ(evloop_add(loop, efd[2], EPOLLIN, noop_cb, NULL), -EEXIST);
	CHECK_EQ(evloop_mod(loop, efd[2], EPOLLIN | EPOLLET), 0);
	CHECK_EQ(evloop_mod(loop, efd[0], EPOLLIN), -ENOENT);
	evloop_del(loop, 12345); /* unknown: harmless */

	/*
	 * Both 0 and 1 are readable before the loop runs, so they fire in one
	 * round.  Watch 0 kills itself and watch 1; watch 1's old callback
	 * must then be skipped, and its new one runs in a later round.
	 */
	CHECK_EQ(evloop_add(loop, efd[0], EPOLLIN, killer_cb, (void *)(intptr_t)0), 0);
	CHECK_EQ(evloop_add(loop, efd[1], EPOLLIN, killer_cb, (void *)(intptr_t)1), 0);
	eventfd_write(efd[1], 1);
	eventfd_write(efd[0], 1);
	CHECK_EQ(evloop_run(loop), 0);
	CHECK_EQ(calls[0] + calls[1], 1);
	CHECK_EQ(late_calls, 1);

	/* evloop_stop() from another thread wakes a loop with nothing to do. */
	evloop_del(loop, efd[late_fd]);
	CHECK(!pthread_create(&thr, NULL, stopper, NULL));
	CHECK_EQ(evloop_run(loop), 0);
	pthread_join(thr, NULL);
	CHECK_EQ(calls[2], 0);

	/* And it runs again afterwards. */
	eventfd_write(efd[2], 1);
	CHECK(!pthread_create(&thr, NULL, stopper, NULL));
	CHECK_EQ(evloop_run(loop), 0);
	pthread_join(thr, NULL);
	CHECK_EQ(calls[2], 1); /* edge-triggered: once */

	evloop_free(loop);
	for (int i = 0; i < 3; i++)
		close(efd[i]);
	fprintf(stderr, "ok\n");
	return 0;
}
