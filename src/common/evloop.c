// SPDX-License-Identifier: MIT
/*
 * evloop.c - epoll event loop.
 *
 * Each watch is a heap object whose address is the epoll cookie.
 * evloop_del() never frees it on the spot: the events of the current
 * epoll_wait() round may still name it, so it is flagged dead and parked
 * on a list that is freed once the round is over.  That is what makes
 * deleting any watch, including the running one, safe from a callback.
 *
 * add/mod/del/stop may also be called from other threads (a mutex guards
 * the tables and an eventfd wakes epoll_wait); callbacks always run on the
 * thread inside evloop_run(), without the mutex held.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "evloop.h"
#include "log.h"

#define EVLOOP_MAX_EVENTS 64

struct evloop_watch {
	int fd;
	uint32_t events;
	evloop_cb cb;
	void *arg;
	bool dead;
	struct evloop_watch *next_dead;
};

struct evloop {
	int epfd;
	int wake_fd; /* eventfd: evloop_stop() from any thread */
	atomic_bool stop;
	pthread_mutex_t lock;
	struct evloop_watch **by_fd; /* indexed by fd */
	unsigned int nr_slots;
	struct evloop_watch *dead; /* deleted, freed after the round */
};

struct evloop *evloop_new(void)
{
	struct epoll_event ev = {.events = EPOLLIN};
	struct evloop *loop = calloc(1, sizeof(*loop));

	if (!loop)
		return NULL;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	loop->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (loop->epfd < 0 || loop->wake_fd < 0)
		goto fail;
	/* data.ptr NULL marks the wake-up eventfd. */
	ev.data.ptr = NULL;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->wake_fd, &ev) < 0)
		goto fail;
	pthread_mutex_init(&loop->lock, NULL);
	atomic_init(&loop->stop, false);
	return loop;

fail:
	if (loop->epfd >= 0)
		close(loop->epfd);
	if (loop->wake_fd >= 0)
		close(loop->wake_fd);
	free(loop);
	return NULL;
}

static void free_dead(struct evloop *loop)
{
	struct evloop_watch *w, *next;

	pthread_mutex_lock(&loop->lock);
	w = loop->dead;
	loop->dead = NULL;
	pthread_mutex_unlock(&loop->lock);
	for (; w; w = next) {
		next = w->next_dead;
		free(w);
	}
}

void evloop_free(struct evloop *loop)
{
	if (!loop)
		return;
	for (unsigned int i = 0; i < loop->nr_slots; i++)
		free(loop->by_fd[i]);
	free(loop->by_fd);
	free_dead(loop);
	close(loop->epfd);
	close(loop->wake_fd);
	pthread_mutex_destroy(&loop->lock);
	free(loop);
}

/* Make by_fd[] hold index @fd; called with the lock held. */
static int grow_slots(struct evloop *loop, int fd)
{
	unsigned int n = loop->nr_slots ? loop->nr_slots : 64;
	struct evloop_watch **p;

	if ((unsigned int)fd < loop->nr_slots)
		return 0;
	while (n <= (unsigned int)fd)
		n *= 2;
	p = realloc(loop->by_fd, n * sizeof(*p));
	if (!p)
		return -ENOMEM;
	memset(p + loop->nr_slots, 0, (n - loop->nr_slots) * sizeof(*p));
	loop->by_fd = p;
	loop->nr_slots = n;
	return 0;
}

int evloop_add(struct evloop *loop, int fd, uint32_t events, evloop_cb cb, void *arg)
{
	struct epoll_event ev = {.events = events};
	struct evloop_watch *w;
	int r;

	if (fd < 0 || !cb)
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->fd = fd;
	w->events = events;
	w->cb = cb;
	w->arg = arg;
	ev.data.ptr = w;

	pthread_mutex_lock(&loop->lock);
	r = grow_slots(loop, fd);
	if (!r && loop->by_fd[fd])
		r = -EEXIST;
	if (!r && epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		r = -errno;
	if (!r)
		loop->by_fd[fd] = w;
	pthread_mutex_unlock(&loop->lock);
	if (r)
		free(w);
	return r;
}

int evloop_mod(struct evloop *loop, int fd, uint32_t events)
{
	struct epoll_event ev = {.events = events};
	struct evloop_watch *w;
	int r = 0;

	pthread_mutex_lock(&loop->lock);
	w = fd >= 0 && (unsigned int)fd < loop->nr_slots ? loop->by_fd[fd] : NULL;
	if (!w) {
		r = -ENOENT;
	} else {
		ev.data.ptr = w;
		if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
			r = -errno;
		else
			w->events = events;
	}
	pthread_mutex_unlock(&loop->lock);
	return r;
}

void evloop_del(struct evloop *loop, int fd)
{
	struct evloop_watch *w;

	pthread_mutex_lock(&loop->lock);
	w = fd >= 0 && (unsigned int)fd < loop->nr_slots ? loop->by_fd[fd] : NULL;
	if (w) {
		/* May fail if the fd was closed first; the watch dies anyway. */
		epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
		loop->by_fd[fd] = NULL;
		w->dead = true;
		w->next_dead = loop->dead;
		loop->dead = w;
	}
	pthread_mutex_unlock(&loop->lock);
}

void evloop_stop(struct evloop *loop)
{
	atomic_store(&loop->stop, true);
	eventfd_write(loop->wake_fd, 1);
}

/* Run the callback of one fired watch unless it died earlier this round. */
static void dispatch(struct evloop *loop, struct evloop_watch *w, uint32_t events)
{
	evloop_cb cb;
	void *arg;

	pthread_mutex_lock(&loop->lock);
	cb = w->dead ? NULL : w->cb;
	arg = w->arg;
	pthread_mutex_unlock(&loop->lock);
	if (cb)
		cb(arg, events);
}

int evloop_run(struct evloop *loop)
{
	struct epoll_event events[EVLOOP_MAX_EVENTS];
	int ret = 0;

	while (!atomic_load(&loop->stop)) {
		int n = epoll_wait(loop->epfd, events, EVLOOP_MAX_EVENTS, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			log_error("evloop: epoll_wait: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++) {
			if (!events[i].data.ptr) {
				eventfd_t v;

				eventfd_read(loop->wake_fd, &v);
				continue;
			}
			dispatch(loop, events[i].data.ptr, events[i].events);
		}
		free_dead(loop);
	}
	atomic_store(&loop->stop, false);
	return ret;
}
