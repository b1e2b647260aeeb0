// SPDX-License-Identifier: MIT
/*
 * vhostd-fio.c - a fio external ioengine that drives a vhost-user-blk
 * device directly, as a virtio driver, with no VM in between:
 *
 *	fio --thread --ioengine=external:build/vhostd-fio.so \
 *	    --socket=/run/vda.sock --filename=vda --rw=randread ...
 *
 * One vhost-user connection per fio process (our front-end, frontend.h),
 * shared by every job; each job takes the next virtqueue, so numjobs=N
 * needs a device with N queues, and jobs must be threads (thread=1): a
 * forked job could not share the connection.  fio's I/O buffers are
 * allocated by the engine (iomem_alloc) as a memfd region that is offered
 * to the device (vu_fe_add_region: ADD_MEM_REG, or a new SET_MEM_TABLE),
 * so data moves between the device and fio's buffers with no copy; each
 * io_u's request header, discard range and status byte sit in the shared
 * memory of the connection.  Requests go through our driver-side ring
 * (virtq_drv.h), split or packed (packed=1), published in one store per
 * batch at commit; completions are reaped by polling the used ring
 * (poll=1) or by waiting on the queue's call eventfd.
 *
 * Options: socket=PATH (required), packed=0|1, poll=0|1, queue_size=N
 * (default: enough for iodepth).  The size of the "file" is the device's
 * capacity; filename= is only a label.
 */
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fio.h"
#include "optgroup.h"

#include "devices/virtio_blk.h"
#include "vhost-user/frontend.h"

struct vfio_options {
	void *pad; /* fio's option structs start with this */
	char *socket;
	unsigned int packed;
	unsigned int poll;
	unsigned int queue_size;
};

static struct fio_option vfio_opts[] = {
	{
		.name = "socket",
		.lname = "vhost-user socket",
		.type = FIO_OPT_STR_STORE,
		.off1 = offsetof(struct vfio_options, socket),
		.help = "vhost-user-blk socket of the device",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "packed",
		.lname = "packed virtqueue",
		.type = FIO_OPT_BOOL,
		.off1 = offsetof(struct vfio_options, packed),
		.help = "Use the packed ring layout (VIRTIO_F_RING_PACKED)",
		.def = "0",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "poll",
		.lname = "poll for completions",
		.type = FIO_OPT_BOOL,
		.off1 = offsetof(struct vfio_options, poll),
		.help = "Poll the used ring instead of waiting for the call eventfd",
		.def = "0",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "queue_size",
		.lname = "virtqueue size",
		.type = FIO_OPT_INT,
		.off1 = offsetof(struct vfio_options, queue_size),
		.help = "Ring size (0: the power of two that holds iodepth, at least 256)",
		.def = "0",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = NULL,
	},
};

/* The connection every job of this process shares. */
static struct {
	pthread_mutex_t lock;
	struct vu_fe *fe;
	unsigned int refs;
	unsigned int next_queue;
	bool packed;
	uint64_t capacity; /* bytes */
} g = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* An io_u's part of shared memory. */
struct vfio_slot {
	struct virtio_blk_outhdr hdr;
	struct virtio_blk_discard_write_zeroes range;
	uint8_t status;
};

struct vfio_job {
	unsigned int q;
	struct virtq_drv *vq;
	struct vfio_slot *slots; /* [iodepth], shared memory */
	unsigned int nslots;
	struct io_u **events;
	unsigned int queued; /* added since the last commit */
	void *buffers;	     /* our iomem region */
};

#define VFIO_SHARED_MEM (32u << 20) /* rings and slots of every queue */

static int vfio_connect_locked(struct thread_data *td)
{
	struct vfio_options *o = td->eo;
	struct vu_fe_config cfg;
	uint64_t cap = 0;
	uint16_t qs = 256;

	if (g.fe)
		return 0;
	if (!o->socket || !*o->socket) {
		log_err("vhostd-fio: socket= is required\n");
		return -EINVAL;
	}
	if (o->queue_size)
		qs = (uint16_t)o->queue_size;
	else
		while (qs < td->o.iodepth && qs < 32768)
			qs <<= 1;
	cfg = (struct vu_fe_config){
		.socket_path = o->socket,
		.mem_size = VFIO_SHARED_MEM,
		.num_queues = 0,
		.queue_size = qs,
		.features = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_RING_F_EVENT_IDX |
			    1ull << VIRTIO_RING_F_INDIRECT_DESC | 1ull << VIRTIO_BLK_F_FLUSH |
			    1ull << VIRTIO_BLK_F_DISCARD | 1ull << VIRTIO_BLK_F_WRITE_ZEROES |
			    1ull << VIRTIO_BLK_F_MQ | 1ull << VIRTIO_BLK_F_SEG_MAX |
			    1ull << VIRTIO_BLK_F_BLK_SIZE |
			    (o->packed ? 1ull << VIRTIO_F_RING_PACKED : 0),
		.indirect_max = 4,
	};
	g.fe = vu_fe_connect(&cfg);
	if (!g.fe) {
		log_err("vhostd-fio: cannot connect to %s: %s\n", o->socket, strerror(errno));
		return -errno;
	}
	if (o->packed && !(vu_fe_features(g.fe) & (1ull << VIRTIO_F_RING_PACKED))) {
		log_err("vhostd-fio: %s refused the packed ring\n", o->socket);
		vu_fe_disconnect(g.fe);
		g.fe = NULL;
		return -ENOTSUP;
	}
	vu_fe_get_config(g.fe, &cap, sizeof(cap));
	g.capacity = le64toh(cap) * 512;
	g.packed = o->packed;
	g.next_queue = 0;
	return 0;
}

static int vfio_get(struct thread_data *td)
{
	int r;

	pthread_mutex_lock(&g.lock);
	r = vfio_connect_locked(td);
	if (!r)
		g.refs++;
	pthread_mutex_unlock(&g.lock);
	return r;
}

static void vfio_put(void)
{
	pthread_mutex_lock(&g.lock);
	if (g.refs && !--g.refs) {
		vu_fe_disconnect(g.fe);
		g.fe = NULL;
	}
	pthread_mutex_unlock(&g.lock);
}

static int vfio_init(struct thread_data *td)
{
	struct vfio_options *o = td->eo;
	struct vfio_job *j;
	int r;

	if (!td->o.use_thread) {
		log_err("vhostd-fio: jobs share one vhost-user connection: use thread=1\n");
		return 1;
	}
	if (vfio_get(td))
		return 1;
	j = calloc(1, sizeof(*j));
	if (!j)
		goto fail;
	j->nslots = td->o.iodepth;
	j->events = calloc(j->nslots, sizeof(*j->events));
	pthread_mutex_lock(&g.lock);
	r = -ENOSPC;
	if (!!o->packed != g.packed)
		log_err("vhostd-fio: every job must use the same packed=\n");
	else if (g.next_queue >= vu_fe_num_queues(g.fe))
		log_err("vhostd-fio: more jobs than the device's %u queues\n",
			vu_fe_num_queues(g.fe));
	else {
		j->q = g.next_queue++;
		j->slots = vu_fe_alloc(g.fe, j->nslots * sizeof(*j->slots), 64);
		r = j->slots ? 0 : -ENOMEM;
	}
	pthread_mutex_unlock(&g.lock);
	if (r || !j->events)
		goto fail;
	j->vq = vu_fe_queue(g.fe, j->q);
	virtq_drv_set_batch_publish(j->vq, true);
	if (o->poll)
		virtq_drv_disable_cb(j->vq);
	td->io_ops_data = j;
	return 0;

fail:
	if (j)
		free(j->events);
	free(j);
	vfio_put();
	return 1;
}

static void vfio_cleanup(struct thread_data *td)
{
	struct vfio_job *j = td->io_ops_data;

	if (!j)
		return;
	free(j->events);
	free(j);
	td->io_ops_data = NULL;
	vfio_put();
}

/* fio's buffers: a memfd region the device maps, so data moves in place. */
static int vfio_iomem_alloc(struct thread_data *td, size_t size)
{
	void *p;

	if (vfio_get(td))
		return 1;
	pthread_mutex_lock(&g.lock);
	p = vu_fe_add_region(g.fe, size);
	pthread_mutex_unlock(&g.lock);
	if (!p) {
		log_err("vhostd-fio: cannot share %zu bytes of buffers: %s\n", size,
			strerror(errno));
		vfio_put();
		return 1;
	}
	td->orig_buffer = p;
	return 0;
}

static void vfio_iomem_free(struct thread_data *td)
{
	if (!td->orig_buffer)
		return;
	pthread_mutex_lock(&g.lock);
	if (g.fe)
		vu_fe_remove_region(g.fe, td->orig_buffer);
	pthread_mutex_unlock(&g.lock);
	td->orig_buffer = NULL;
	vfio_put();
}

static int vfio_get_file_size(struct thread_data *td, struct fio_file *f)
{
	if (vfio_get(td))
		return 1;
	f->real_file_size = g.capacity;
	fio_file_set_size_known(f);
	vfio_put();
	return 0;
}

static int vfio_open_file(struct thread_data *td, struct fio_file *f)
{
	return 0;
}

static int vfio_close_file(struct thread_data *td, struct fio_file *f)
{
	return 0;
}

static enum fio_q_status vfio_queue(struct thread_data *td, struct io_u *io_u)
{
	struct vfio_job *j = td->io_ops_data;
	struct vfio_slot *s = &j->slots[io_u->index];
	struct virtq_sg sg[3];
	unsigned int nout = 1, nin = 1, n = 0;
	uint32_t type;
	int r;

	fio_ro_check(td, io_u);
	switch (io_u->ddir) {
	case DDIR_READ:
		type = VIRTIO_BLK_T_IN;
		break;
	case DDIR_WRITE:
		type = VIRTIO_BLK_T_OUT;
		break;
	case DDIR_SYNC:
	case DDIR_DATASYNC:
		type = VIRTIO_BLK_T_FLUSH;
		break;
	case DDIR_TRIM:
		type = VIRTIO_BLK_T_DISCARD;
		break;
	default:
		io_u->error = EINVAL;
		return FIO_Q_COMPLETED;
	}
	s->hdr.type = htole32(type);
	s->hdr.ioprio = 0;
	s->hdr.sector = htole64(io_u->offset >> 9);
	s->status = 0xff;
	sg[n++] = (struct virtq_sg){vu_fe_addr(g.fe, &s->hdr), sizeof(s->hdr)};
	if (type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_OUT) {
		if ((io_u->offset | io_u->xfer_buflen) & 511) {
			io_u->error = EINVAL;
			return FIO_Q_COMPLETED;
		}
		sg[n++] = (struct virtq_sg){(uint64_t)(uintptr_t)io_u->xfer_buf,
					    (uint32_t)io_u->xfer_buflen};
		if (type == VIRTIO_BLK_T_OUT)
			nout++;
		else
			nin++;
	} else if (type == VIRTIO_BLK_T_DISCARD) {
		s->hdr.sector = 0;
		s->range.sector = htole64(io_u->offset >> 9);
		s->range.num_sectors = htole32((uint32_t)(io_u->xfer_buflen >> 9));
		s->range.flags = 0;
		sg[n++] = (struct virtq_sg){vu_fe_addr(g.fe, &s->range), sizeof(s->range)};
		nout++;
	}
	sg[n++] = (struct virtq_sg){vu_fe_addr(g.fe, &s->status), 1};
	r = virtq_drv_add_sgs(j->vq, sg, nout, nin, io_u);
	if (r == -ENOSPC)
		return FIO_Q_BUSY;
	if (r < 0) {
		io_u->error = -r;
		return FIO_Q_COMPLETED;
	}
	j->queued++;
	return FIO_Q_QUEUED;
}

static int vfio_commit(struct thread_data *td)
{
	struct vfio_job *j = td->io_ops_data;
	int r;

	if (!j->queued)
		return 0;
	j->queued = 0;
	r = vu_fe_kick(g.fe, j->q); /* publishes the batch, kicks if asked to */
	return r < 0 ? r : 0;
}

/* Move finished requests into the events array; how many. */
static unsigned int vfio_reap(struct thread_data *td, struct vfio_job *j, unsigned int n,
			      unsigned int max)
{
	struct io_u *io_u;
	uint32_t len;

	while (n < max && (io_u = virtq_drv_get_buf(j->vq, &len))) {
		uint8_t st = j->slots[io_u->index].status;

		if (st == VIRTIO_BLK_S_OK)
			io_u->error = 0;
		else
			io_u->error = st == VIRTIO_BLK_S_UNSUPP ? EOPNOTSUPP : EIO;
		io_u->resid = 0;
		j->events[n++] = io_u;
	}
	return n;
}

static int vfio_getevents(struct thread_data *td, unsigned int min, unsigned int max,
			  const struct timespec *t)
{
	struct vfio_options *o = td->eo;
	struct vfio_job *j = td->io_ops_data;
	unsigned int n = 0;
	int w, timeout_ms = t ? (int)(t->tv_sec * 1000 + t->tv_nsec / 1000000) : -1;

	if (max > j->nslots)
		max = j->nslots;
	for (;;) {
		n = vfio_reap(td, j, n, max);
		if (n >= min || n == max)
			return (int)n;
		if (virtq_drv_is_broken(j->vq)) {
			log_err("vhostd-fio: the device broke the ring protocol\n");
			return -EIO;
		}
		if (o->poll)
			continue;
		/* Sleep only when nothing slipped in since the last look. */
		if (!virtq_drv_enable_cb(j->vq)) {
			virtq_drv_disable_cb(j->vq);
			continue;
		}
		w = vu_fe_wait_call(g.fe, j->q, timeout_ms < 0 ? 1000 : timeout_ms);
		virtq_drv_disable_cb(j->vq);
		if (w < 0)
			return -EIO;
		/* Without this a dead back-end leaves fio waiting for good. */
		if (!w && vu_fe_hung_up(g.fe)) {
			log_err("vhostd-fio: the back-end closed the connection\n");
			return -EIO;
		}
		if (!w && timeout_ms >= 0)
			return (int)vfio_reap(td, j, n, max);
	}
}

static struct io_u *vfio_event(struct thread_data *td, int event)
{
	struct vfio_job *j = td->io_ops_data;

	return j->events[event];
}

static struct ioengine_ops vfio_ops = {
	.name = "vhostd",
	.version = FIO_IOOPS_VERSION,
	.flags = FIO_DISKLESSIO | FIO_NOEXTEND | FIO_NODISKUTIL | FIO_MEMALIGN,
	.init = vfio_init,
	.cleanup = vfio_cleanup,
	.queue = vfio_queue,
	.commit = vfio_commit,
	.getevents = vfio_getevents,
	.event = vfio_event,
	.open_file = vfio_open_file,
	.close_file = vfio_close_file,
	.get_file_size = vfio_get_file_size,
	.iomem_alloc = vfio_iomem_alloc,
	.iomem_free = vfio_iomem_free,
	.options = vfio_opts,
	.option_struct_size = sizeof(struct vfio_options),
};

/* What fio looks up in an external engine. */
void get_ioengine(struct ioengine_ops **ops);
void get_ioengine(struct ioengine_ops **ops)
{
	*ops = &vfio_ops;
}
