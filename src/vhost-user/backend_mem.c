// SPDX-License-Identifier: MIT
/*
 * backend_mem.c - guest memory for the back-end: SET_MEM_TABLE,
 * ADD_MEM_REG / REM_MEM_REG (CONFIGURE_MEM_SLOTS), GET_MAX_MEM_SLOTS.
 *
 * Every table change builds a new immutable memmap (memmap.h) and installs
 * it while the rings are stopped; the rings pick it up when they restart.
 * A region can outlive one map: ADD/REM_MEM_REG carry the untouched
 * regions into the next map, and a request still in flight may hold the
 * previous one.  So each mapping carries its own count of the maps that
 * use it, and the regions' release hook unmaps it when the last goes.
 *
 * Each region's descriptor is checked before it is mapped: it must be a
 * regular file (memfd, tmpfs, hugetlbfs) that really is as long as the
 * region claims, because touching a page past the end of a shared file
 * mapping raises SIGBUS and would take the whole daemon down.  (The
 * dispatcher has already checked it is a file and not, say, a socket.)
 *
 * Address space is shared by every device: a front-end can describe
 * terabytes of sparse memfd at no cost to itself, so the regions of one
 * device may not add up to more than its max-guest-memory (counted in
 * mapped bytes, before anything is mapped).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend_priv.h"
#include "common/log.h"

/*
 * Live mappings and how many maps use each.  Process-wide because the
 * release hook only gets the region, and the last reference can be dropped
 * from any device's queue thread; a mapping's address identifies it.
 */
struct vu_mapping {
	void *addr;
	size_t len;
	unsigned int refs;
	struct vu_mapping *next;
};

static pthread_mutex_t mappings_lock = PTHREAD_MUTEX_INITIALIZER;
static struct vu_mapping *mappings;

static int mapping_add(void *addr, size_t len)
{
	struct vu_mapping *m = malloc(sizeof(*m));

	if (!m)
		return -ENOMEM;
	m->addr = addr;
	m->len = len;
	m->refs = 1;
	pthread_mutex_lock(&mappings_lock);
	m->next = mappings;
	mappings = m;
	pthread_mutex_unlock(&mappings_lock);
	return 0;
}

/* One more map will use region @r's mapping. */
static void region_get(const struct mem_region *r)
{
	pthread_mutex_lock(&mappings_lock);
	for (struct vu_mapping *m = mappings; m; m = m->next) {
		if (m->addr == r->mmap_addr) {
			m->refs++;
			break;
		}
	}
	pthread_mutex_unlock(&mappings_lock);
}

/* The memmap release hook (and our own undo): one map fewer uses the mapping. */
static void region_put(struct mem_region *r)
{
	struct vu_mapping **pp, *m = NULL;

	pthread_mutex_lock(&mappings_lock);
	for (pp = &mappings; *pp; pp = &(*pp)->next) {
		if ((*pp)->addr == r->mmap_addr) {
			if (--(*pp)->refs == 0) {
				m = *pp;
				*pp = m->next;
			}
			break;
		}
	}
	pthread_mutex_unlock(&mappings_lock);
	if (m) {
		munmap(m->addr, m->len);
		free(m);
	}
}

static void regions_put(struct mem_region *regions, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		region_put(&regions[i]);
}

/* Granule a file must be mapped in: its huge page size on hugetlbfs. */
static size_t map_align(const struct stat *st)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t blk = (size_t)st->st_blksize;

	return blk > page && !(blk & (blk - 1)) ? blk : page;
}

/*
 * The size check above holds only at this instant: a front-end that
 * shrinks the file later turns our next touch of the lost pages into
 * SIGBUS, which kills the daemon (io_uring would just get -EFAULT, but the
 * rings and request headers are read with plain loads).  A memfd sealed
 * with F_SEAL_SHRINK cannot shrink, and that is what QEMU's memfd backend
 * does by default (seal=on).  We keep serving unsealed memory, as QEMU
 * users with seal=off or DPDK's virtio-user expect, but say what it
 * risks.  A file on tmpfs or hugetlbfs cannot be sealed at all
 * (F_GET_SEALS fails): nothing to check there.
 */
static void warn_if_shrinkable(struct vu_dev *dev, const char *what, int fd)
{
	int seals = fcntl(fd, F_GET_SEALS);

	if (seals >= 0 && !(seals & F_SEAL_SHRINK))
		log_warn("%s: %s: memfd not sealed against shrinking (F_SEAL_SHRINK); "
			 "a front-end that truncates it crashes the daemon",
			 dev->name, what);
}

/* "64 GiB", "1536 MiB" or "4096 bytes", for the limit's log lines. */
static const char *size_text(uint64_t v, char *buf, size_t len)
{
	if (v && !(v & ((1ull << 30) - 1)))
		snprintf(buf, len, "%llu GiB", (unsigned long long)(v >> 30));
	else if (v && !(v & ((1ull << 20) - 1)))
		snprintf(buf, len, "%llu MiB", (unsigned long long)(v >> 20));
	else
		snprintf(buf, len, "%llu bytes", (unsigned long long)v);
	return buf;
}

/* Mapped bytes of the current table: what max-guest-memory counts. */
static uint64_t mapped_bytes(const struct vu_dev *dev)
{
	uint64_t sum = 0;

	for (unsigned int i = 0; dev->mem && i < dev->mem->nr; i++)
		sum += dev->mem->regions[i].mmap_size;
	return sum;
}

/*
 * Validate one region description and map it.  @what names it in the log
 * ("region 2"); @used is what the regions mapped before it take, and grows
 * by this one.  VU_OK with @out filled, or VU_CLOSE (logged).
 */
static enum vu_result map_region(struct vu_dev *dev, const struct vhost_user_msg *msg,
				 const char *what, const struct vhost_user_mem_region *w, int fd,
				 uint64_t *used, struct mem_region *out)
{
	char limit[32], total[32];
	uint64_t size = w->memory_size, file_end, map_off, map_len;
	size_t align;
	struct stat st;
	void *p;

	if (!size)
		return vu_reject(dev, msg, "%s is empty", what);
	/* Every end is computed once, overflow-checked, from the peer's values. */
	if (w->guest_phys_addr + size < w->guest_phys_addr ||
	    w->userspace_addr + size < w->userspace_addr ||
	    __builtin_add_overflow(w->mmap_offset, size, &file_end))
		return vu_reject(dev, msg, "%s wraps the 64-bit address space", what);
	if (fstat(fd, &st) < 0)
		return vu_reject(dev, msg, "%s: fstat: %s", what, strerror(errno));
	if (!S_ISREG(st.st_mode)) /* ufd_classify() said so already; cheap to keep */
		return vu_reject(dev, msg, "%s: descriptor is not a memory file", what);
	if (st.st_size < 0 || file_end > (uint64_t)st.st_size)
		return vu_reject(dev, msg,
				 "%s ends at file offset %#llx, past the file's %lld bytes", what,
				 (unsigned long long)file_end, (long long)st.st_size);

	warn_if_shrinkable(dev, what, fd);

	align = map_align(&st);
	map_off = w->mmap_offset & ~(uint64_t)(align - 1);
	map_len = file_end - map_off;
	if (map_len > SIZE_MAX - align)
		return vu_reject(dev, msg, "%s is too large to map", what);
	map_len = (map_len + align - 1) & ~(uint64_t)(align - 1);
	if (map_len > dev->max_guest_memory - *used)
		return vu_reject(dev, msg,
				 "%s would bring guest memory to %s, over this device's "
				 "max-guest-memory=%s",
				 what, size_text(*used + map_len, total, sizeof(total)),
				 size_text(dev->max_guest_memory, limit, sizeof(limit)));
	*used += map_len;

	p = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd,
		 (off_t)map_off);
	if (p == MAP_FAILED)
		return vu_reject(dev, msg, "%s: mmap of %#llx bytes: %s", what,
				 (unsigned long long)map_len, strerror(errno));
	if (mapping_add(p, map_len)) {
		munmap(p, map_len);
		return vu_reject(dev, msg, "%s: out of memory", what);
	}
	*out = (struct mem_region){
		.gpa = w->guest_phys_addr,
		.size = size,
		.uva = w->userspace_addr,
		.hva = (uint8_t *)p + (w->mmap_offset - map_off),
		.release = region_put,
		.mmap_addr = p,
		.mmap_size = map_len,
	};
	return VU_OK;
}

/*
 * Make @regions (whose mapping references we hold) the device's memory.
 * The rings are stopped (VU_MSG_STOP_ALL) and take the new map when they
 * restart; the old map goes once its last user lets go.
 */
static enum vu_result install_map(struct vu_dev *dev, const struct vhost_user_msg *msg,
				  struct mem_region *regions, unsigned int n)
{
	struct memmap *map = memmap_new(regions, n);

	if (!map) {
		int err = errno;

		regions_put(regions, n);
		return vu_reject(dev, msg, "%s",
				 err == EINVAL ? "memory regions overlap" : "out of memory");
	}
	memmap_put(dev->mem);
	dev->mem = map;
	log_debug("%s: %u memory region%s", dev->name, n, n == 1 ? "" : "s");
	return VU_OK;
}

enum vu_result vu_set_mem_table(struct vu_dev *dev, struct vhost_user_msg *msg, int *fds,
				unsigned int nfds)
{
	const struct vhost_user_mem_table *t = &msg->payload.mem;
	struct mem_region regions[VHOST_USER_MEM_TABLE_MAX_REGIONS];
	uint32_t n = t->nregions;
	uint64_t used = 0;
	unsigned int i;

	if (n > VHOST_USER_MEM_TABLE_MAX_REGIONS)
		return vu_reject(dev, msg, "%u regions, at most %u", n,
				 VHOST_USER_MEM_TABLE_MAX_REGIONS);
	if (msg->hdr.size !=
	    offsetof(struct vhost_user_mem_table, regions) + n * sizeof(t->regions[0]))
		return vu_reject(dev, msg, "payload size %u does not hold %u regions",
				 msg->hdr.size, n);
	/* "The size and ordering of the fds matches the number and ordering of regions." */
	if (nfds != n)
		return vu_reject(dev, msg, "%u regions but %u file descriptors", n, nfds);

	for (i = 0; i < n; i++) {
		char what[16];

		snprintf(what, sizeof(what), "region %u", i);
		if (map_region(dev, msg, what, &t->regions[i], fds[i], &used, &regions[i]) !=
		    VU_OK) {
			regions_put(regions, i);
			return VU_CLOSE;
		}
	}
	/* The descriptors are closed by the dispatcher: the mappings keep the files. */
	return install_map(dev, msg, regions, n);
}

/* Take a reference on every current region into @regions; returns how many. */
static unsigned int copy_current(struct vu_dev *dev, struct mem_region *regions)
{
	unsigned int n = dev->mem ? dev->mem->nr : 0;

	for (unsigned int i = 0; i < n; i++) {
		regions[i] = dev->mem->regions[i];
		region_get(&regions[i]);
	}
	return n;
}

enum vu_result vu_add_mem_reg(struct vu_dev *dev, struct vhost_user_msg *msg, int *fds,
			      unsigned int nfds)
{
	struct mem_region regions[MEMMAP_MAX_REGIONS];
	uint64_t used = mapped_bytes(dev);
	unsigned int n;

	if (dev->mem && dev->mem->nr >= MEMMAP_MAX_REGIONS)
		return vu_reject(dev, msg, "all %u memory slots are in use", MEMMAP_MAX_REGIONS);
	n = copy_current(dev, regions);
	if (map_region(dev, msg, "region", &msg->payload.mem_reg.region, fds[0], &used,
		       &regions[n]) != VU_OK) {
		regions_put(regions, n);
		return VU_CLOSE;
	}
	return install_map(dev, msg, regions, n + 1);
}

enum vu_result vu_rem_mem_reg(struct vu_dev *dev, struct vhost_user_msg *msg, int *fds,
			      unsigned int nfds)
{
	const struct vhost_user_mem_region *w = &msg->payload.mem_reg.region;
	struct mem_region regions[MEMMAP_MAX_REGIONS];
	unsigned int n = 0, found = 0;

	/* Identified by guest address, user address and size; the offset is ignored. */
	for (unsigned int i = 0; dev->mem && i < dev->mem->nr; i++) {
		const struct mem_region *r = &dev->mem->regions[i];

		if (r->gpa == w->guest_phys_addr && r->uva == w->userspace_addr &&
		    r->size == w->memory_size) {
			found++;
			continue;
		}
		regions[n] = *r;
		region_get(&regions[n]);
		n++;
	}
	if (!found) {
		regions_put(regions, n);
		return vu_reject(dev, msg, "no region at guest address %#llx, size %#llx",
				 (unsigned long long)w->guest_phys_addr,
				 (unsigned long long)w->memory_size);
	}
	return install_map(dev, msg, regions, n);
}

enum vu_result vu_get_max_mem_slots(struct vu_dev *dev, struct vhost_user_msg *msg, int *fds,
				    unsigned int nfds)
{
	msg->payload.u64 = MEMMAP_MAX_REGIONS;
	msg->hdr.size = sizeof(msg->payload.u64);
	return VU_OK;
}

void vu_mem_drop(struct vu_dev *dev)
{
	memmap_put(dev->mem);
	dev->mem = NULL;
}
