// SPDX-License-Identifier: MIT
/*
 * devset.c - the devices of a running vhostd (devset.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kvopts.h"
#include "common/log.h"
#include "control.h"
#include "devset.h"
#include "vhost-user/backend.h"

struct devset_entry *devset_find(const struct devset *set, const char *id)
{
	for (unsigned int i = 0; i < set->n; i++) {
		if (!strcmp(set->v[i].kind->id(set->v[i].dev), id))
			return &set->v[i];
	}
	return NULL;
}

/* The running device listening on @socket, or NULL. */
static struct devset_entry *find_socket(const struct devset *set, const char *socket)
{
	for (unsigned int i = 0; i < set->n; i++) {
		const struct devset_entry *e = &set->v[i];
		struct devkind_info in;

		e->kind->info(e->kind->options(e->dev), &in);
		if (in.socket && !strcmp(in.socket, socket))
			return &set->v[i];
	}
	return NULL;
}

int devset_check(const struct devset *set, const struct devkind *kind, const void *opts, char *err,
		 size_t err_len)
{
	struct devset_entry *other;
	struct devkind_info in;
	bool stale;
	char msg[512];

	kind->info(opts, &in);
	if (kind->parent) {
		struct devset_entry *p = devset_find(set, in.parent);

		if (!p || strcmp(p->kind->name, kind->parent))
			return kv_err(err, err_len, "%s: no %s device '%s'", in.name, kind->parent,
				      in.parent);
		return 0;
	}
	if (devset_find(set, in.name))
		return kv_err(err, err_len, "%s: a device with that id exists", in.name);
	if (set->n >= DEVSET_MAX_DEVS)
		return kv_err(err, err_len, "%s: already %d devices", in.name, DEVSET_MAX_DEVS);
	if (in.io_thread >= 0 && (unsigned int)in.io_thread >= set->io_threads)
		return kv_err(err, err_len, "%s: io-thread=%d, but there are %u I/O threads",
			      in.name, in.io_thread, set->io_threads);
	if (!in.socket)
		return 0; /* nothing to listen on */
	if (set->control_path && !strcmp(in.socket, set->control_path))
		return kv_err(err, err_len, "%s: socket %s is the control socket", in.name,
			      in.socket);
	other = find_socket(set, in.socket);
	if (other)
		return kv_err(err, err_len, "%s: socket %s is %s's", in.name, in.socket,
			      other->kind->id(other->dev));
	if (!in.client && ctl_socket_path_check(in.socket, &stale, msg, sizeof(msg)))
		return kv_err(err, err_len, "%s: %s", in.name, msg);
	return 0;
}

int devset_add(struct devset *set, const struct devkind *kind, const void *opts,
	       const void *children, unsigned int nchildren, char *err, size_t err_len)
{
	struct devkind_info in;
	char msg[512] = "";
	void *dev;
	int r;

	r = devset_check(set, kind, opts, err, err_len);
	if (r)
		return r;
	kind->info(opts, &in);
	if (kind->parent) {
		struct devset_entry *p = devset_find(set, in.parent);

		r = p->kind->add_child(p->dev, opts, msg, sizeof(msg));
		if (r)
			return kv_err(err, err_len, "%s", msg[0] ? msg : "cannot add it");
		return 0;
	}
	if (set->n == set->cap) {
		unsigned int cap = set->cap ? set->cap * 2 : 8;
		struct devset_entry *v = realloc(set->v, cap * sizeof(*v));

		if (!v)
			return kv_err(err, err_len, "out of memory");
		set->v = v;
		set->cap = cap;
	}
	dev = kind->create(opts, children, nchildren, set->loop, msg, sizeof(msg));
	if (!dev) {
		size_t n = strlen(in.name);

		/* The models prefix some messages with the id already. */
		if (!strncmp(msg, in.name, n) && msg[n] == ':')
			return kv_err(err, err_len, "%s", msg);
		return kv_err(err, err_len, "%s: %s", in.name, msg[0] ? msg : "cannot start");
	}
	set->v[set->n++] = (struct devset_entry){kind, dev};
	return 0;
}

static void devset_retired(void *arg)
{
	struct devset_retiring *r = arg;
	char name[64];

	snprintf(name, sizeof(name), "%s", r->kind->id(r->dev));
	*r->pprev = r->next;
	if (r->next)
		r->next->pprev = r->pprev;
	r->kind->destroy(r->dev);
	free(r);
	log_info("%s: removed (its queues are stopped)", name);
}

/*
 * Out of the set now, freed once its rings are stopped: a drain that
 * takes long, or a back-end that never answers, holds up neither this
 * call nor the loop (the stop gives up after the device's stop-timeout-ms).
 */
static void devset_retire(struct devset *set, struct devset_entry *e)
{
	struct devset_retiring *r = malloc(sizeof(*r));
	unsigned int i = (unsigned int)(e - set->v);
	struct devset_entry gone = *e;

	if (!r) {
		/* Out of memory: the old way, waiting here. */
		log_warn("%s: removed under its front-end (force)", gone.kind->id(gone.dev));
		gone.kind->destroy(gone.dev);
	}
	memmove(&set->v[i], &set->v[i + 1], (set->n - i - 1) * sizeof(*set->v));
	set->n--;
	if (!r)
		return;
	*r = (struct devset_retiring){.set = set, .kind = gone.kind, .dev = gone.dev};
	r->next = set->retiring;
	r->pprev = &set->retiring;
	if (set->retiring)
		set->retiring->pprev = &r->next;
	set->retiring = r;
	log_warn("%s: removed under its front-end (force); its queues stop in the background",
		 gone.kind->id(gone.dev));
	vu_dev_retire(gone.kind->vu(gone.dev), devset_retired, r);
}

int devset_remove(struct devset *set, const char *name, bool force, char *err, size_t err_len)
{
	struct devset_entry *e = devset_find(set, name);
	char msg[512] = "";
	unsigned int i;

	if (!e) {
		/* A child: "PARENT:..." names its parent. */
		for (i = 0; i < set->n; i++) {
			const char *id = set->v[i].kind->id(set->v[i].dev);
			size_t n = strlen(id);

			if (set->v[i].kind->remove_child && !strncmp(name, id, n) && name[n] == ':')
				break;
		}
		if (i == set->n)
			return kv_err(err, err_len, "no device named '%.64s'", name);
		if (set->v[i].kind->remove_child(set->v[i].dev, name, msg, sizeof(msg)))
			return kv_err(err, err_len, "%s", msg[0] ? msg : "cannot remove it");
		return 0; /* the parent logs it */
	}
	if (e->kind->active(e->dev)) {
		if (!force)
			return kv_err(err, err_len,
				      "%s: a front-end is driving it (queues started); detach it "
				      "in the front-end first, or remove with force",
				      name);
		if (e->kind->vu) {
			devset_retire(set, e);
			return 0;
		}
		log_warn("%s: removed under its front-end (force)", name);
	}
	e->kind->destroy(e->dev);
	i = (unsigned int)(e - set->v);
	memmove(&set->v[i], &set->v[i + 1], (set->n - i - 1) * sizeof(*set->v));
	set->n--;
	log_info("%s: removed", name);
	return 0;
}

void devset_clear(struct devset *set)
{
	/* vu_dev_free waits for their stops (bounded) and never calls back. */
	while (set->retiring) {
		struct devset_retiring *r = set->retiring;

		set->retiring = r->next;
		r->kind->destroy(r->dev);
		free(r);
	}
	while (set->n) {
		struct devset_entry *e = &set->v[--set->n];

		e->kind->destroy(e->dev);
	}
	free(set->v);
	set->v = NULL;
	set->cap = 0;
}
