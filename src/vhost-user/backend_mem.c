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
 * mapping raises SIGBUS.  (The dispatcher has already checked it is a file
 * and not, say, a socket.)  The check holds only at that instant: the
 * front-end can shrink the file later, and hugetlbfs may have no page to
 * give when we first touch one.  So every mapping is also entered in the
 * process-wide SIGBUS guard (common/sigbus.h) until just before it is
 * unmapped: a fault there turns the lost page into a zero page instead
 * of killing the daemon, and raises dev->mem_fault and the device's
 * broken_fd; the loop thread then marks the device broken
 * (vu_mem_report_faults) and keeps its rings stopped until a memory table
 * without that mapping arrives.
 *
 * The dirty-page log of a migration (SET_LOG_BASE) is a file of the
 * front-end's too, mapped and guarded the same way; it is replaced only
 * while the rings are stopped, and the rings borrow it (virtq.h).
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
#include "common/sigbus.h"

/*
 * Live mappings and how many maps use each.  Process-wide because the
 * release hook only gets the region, and the last reference can be dropped
 * from any device's queue thread; a mapping's address identifies it.
 */
struct vu_mapping {
	void *addr;
	size_t len;
	unsigned int refs;
	int guard; /* SIGBUS guard slot */
	struct vu_mapping *next;
};

static pthread_mutex_t mappings_lock = PTHREAD_MUTEX_INITIALIZER;
static struct vu_mapping *mappings;

/*
 * A new mapping of @dev's, in pages of @page bytes, guarded against SIGBUS:
 * 0, -ENOMEM or -ENOSPC (guard table full).
 */
static int mapping_add(struct vu_dev *dev, void *addr, size_t len, size_t page)
{
	struct vu_mapping *m = malloc(sizeof(*m));
	int guard;

	if (!m)
		return -ENOMEM;
	guard = sigbus_guard_add(addr, len, page, dev->broken_fd, &dev->mem_fault);
	if (guard < 0) {
		free(m);
		return guard;
	}
	m->guard = guard;
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
		/* Withdrawn first: once unmapped, the address may be reused. */
		sigbus_guard_remove(m->guard);
		munmap(m->addr, m->len);
		free(m);
	}
}

/* Has a page of the mapping behind region @r faulted (and turned to zeroes)? */
static bool region_faulted(const struct mem_region *r)
{
	bool faulted = false;

	pthread_mutex_lock(&mappings_lock);
	for (struct vu_mapping *m = mappings; m; m = m->next) {
		if (m->addr == r->mmap_addr) {
			faulted = sigbus_guard_faulted(m->guard);
			break;
		}
	}
	pthread_mutex_unlock(&mappings_lock);
	return faulted;
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
 * A memfd sealed with F_SEAL_SHRINK cannot shrink, and that is what QEMU's
 * memfd backend does by default (seal=on).  We serve unsealed memory too,
 * as QEMU users with seal=off or DPDK's virtio-user expect: a front-end
 * that truncates it only breaks its own device (see the top of this file).
 * Said once per region, as a hint for whoever reads the log after that.
 * A file on tmpfs or hugetlbfs cannot be sealed at all (F_GET_SEALS
 * fails): nothing to say there.
 */
static void note_if_shrinkable(struct vu_dev *dev, const char *what, int fd)
{
	int seals = fcntl(fd, F_GET_SEALS);

	if (seals >= 0 && !(seals & F_SEAL_SHRINK))
		log_info("%s: %s: memfd not sealed against shrinking (F_SEAL_SHRINK); "
			 "if the front-end truncates it, the device needs a reset",
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
	int r;

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

	note_if_shrinkable(dev, what, fd);

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
	r = mapping_add(dev, p, map_len, align);
	if (r) {
		munmap(p, map_len);
		if (r == -ENOSPC)
			return vu_reject(dev, msg,
					 "%s: the daemon already guards %u mappings of guest "
					 "memory, its most",
					 what, SIGBUS_GUARD_SLOTS);
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
	/* A mapping that faulted may be carried over (ADD/REM_MEM_REG). */
	dev->mem_poisoned = false;
	for (unsigned int i = 0; i < map->nr; i++)
		dev->mem_poisoned |= region_faulted(&map->regions[i]);
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
	memset(dev->mem_dups, 0, sizeof(dev->mem_dups));
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

/* The mapped region that @w describes exactly (guest and user address, size), or -1. */
static int region_index(const struct vu_dev *dev, const struct vhost_user_mem_region *w)
{
	for (unsigned int i = 0; dev->mem && i < dev->mem->nr; i++) {
		const struct mem_region *r = &dev->mem->regions[i];

		if (r->gpa == w->guest_phys_addr && r->uva == w->userspace_addr &&
		    r->size == w->memory_size)
			return (int)i;
	}
	return -1;
}

/*
 * The map is rebuilt in the same order (copy_current() first, the new
 * region last; REM_MEM_REG keeps the others' order), so the duplicate
 * counts move with their regions.
 */
static void dups_remove(struct vu_dev *dev, unsigned int i)
{
	unsigned int n = dev->mem ? dev->mem->nr : 0;

	memmove(&dev->mem_dups[i], &dev->mem_dups[i + 1], (n - i - 1) * sizeof(dev->mem_dups[0]));
	dev->mem_dups[n - 1] = 0;
}

enum vu_result vu_add_mem_reg(struct vu_dev *dev, struct vhost_user_msg *msg, int *fds,
			      unsigned int nfds)
{
	struct mem_region regions[MEMMAP_MAX_REGIONS];
	uint64_t used = mapped_bytes(dev);
	unsigned int n;
	int dup;

	/*
	 * The same region again: QEMU with queues=N sends every region once
	 * per queue pair (ADD_MEM_REG is not one of its "one-time" requests,
	 * SET_MEM_TABLE is).  Counted, so that only the last REM_MEM_REG of
	 * it unmaps it; the descriptor is closed by the dispatcher.
	 */
	dup = region_index(dev, &msg->payload.mem_reg.region);
	if (dup >= 0) {
		dev->mem_dups[dup]++;
		log_debug("%s: region at %#llx added again (%u)", dev->name,
			  (unsigned long long)msg->payload.mem_reg.region.guest_phys_addr,
			  dev->mem_dups[dup]);
		return VU_OK;
	}

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
	int dup = region_index(dev, w);

	/* One of several ADD_MEM_REGs of it is taken back: it stays mapped. */
	if (dup >= 0 && dev->mem_dups[dup]) {
		dev->mem_dups[dup]--;
		return VU_OK;
	}
	if (dup >= 0)
		dups_remove(dev, (unsigned int)dup);

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

/* The rings are stopped: nothing borrows the log any more. */
static void log_unmap(struct vu_dev *dev)
{
	struct mem_region r = {.mmap_addr = dev->log.mmap_addr};

	if (dev->log.mmap_addr)
		region_put(&r);
	memset(&dev->log, 0, sizeof(dev->log));
}

void vu_mem_drop(struct vu_dev *dev)
{
	memmap_put(dev->mem);
	dev->mem = NULL;
	dev->mem_poisoned = false;
	memset(dev->mem_dups, 0, sizeof(dev->mem_dups));
	log_unmap(dev);
}

/*
 * The biggest log we map: one bit per 4 KiB page, so 256 MiB of bitmap
 * covers 8 TiB of guest-physical address space (QEMU sizes its log to the
 * highest guest address, holes included).
 */
#define VU_LOG_MAX_SIZE (256ull << 20)

/*
 * "Migration": with LOG_SHMFD the log is a shared file, mmap_size bytes
 * at mmap_offset, and the front-end waits for a reply (QEMU reads one
 * before it goes on).  A new log replaces the old one (QEMU resizes its
 * log when guest memory grows, then reads the old one a last time); the
 * rings were stopped for this message, so no bit lands in the old one
 * after our reply.
 */
enum vu_result vu_set_log_base(struct vu_dev *dev, struct vhost_user_msg *msg, int *fds,
			       unsigned int nfds)
{
	const struct vhost_user_log l = msg->payload.log;
	uint64_t file_end, map_off, map_len;
	struct stat st;
	size_t align;
	void *p;
	int r;

	if (!l.mmap_size || l.mmap_size > VU_LOG_MAX_SIZE)
		return vu_reject(dev, msg, "log size %#llx outside 1..%#llx",
				 (unsigned long long)l.mmap_size, VU_LOG_MAX_SIZE);
	if (__builtin_add_overflow(l.mmap_offset, l.mmap_size, &file_end))
		return vu_reject(dev, msg, "log offset %#llx wraps the file",
				 (unsigned long long)l.mmap_offset);
	if (fstat(fds[0], &st) < 0)
		return vu_reject(dev, msg, "log: fstat: %s", strerror(errno));
	if (!S_ISREG(st.st_mode) || st.st_size < 0 || file_end > (uint64_t)st.st_size)
		return vu_reject(dev, msg,
				 "log ends at file offset %#llx, past the file's %lld bytes",
				 (unsigned long long)file_end, (long long)st.st_size);
	align = map_align(&st);
	map_off = l.mmap_offset & ~(uint64_t)(align - 1);
	map_len = (file_end - map_off + align - 1) & ~(uint64_t)(align - 1);
	p = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], (off_t)map_off);
	if (p == MAP_FAILED)
		return vu_reject(dev, msg, "log: mmap of %#llx bytes: %s",
				 (unsigned long long)map_len, strerror(errno));
	/* A log file the front-end shrinks raises SIGBUS like guest memory. */
	r = mapping_add(dev, p, map_len, align);
	if (r) {
		munmap(p, map_len);
		return vu_reject(dev, msg, "log: %s",
				 r == -ENOSPC ? "too many guarded mappings" : "out of memory");
	}
	log_unmap(dev);
	dev->log = (struct dlog){
		.bits = (uint8_t *)p + (l.mmap_offset - map_off),
		.size = l.mmap_size,
		.mmap_addr = p,
		.mmap_size = map_len,
	};
	log_info("%s: dirty-page log of %llu KiB (guest memory up to %llu MiB)%s", dev->name,
		 (unsigned long long)(l.mmap_size >> 10),
		 (unsigned long long)(l.mmap_size * 8 * DLOG_PAGE_SIZE >> 20),
		 dev->log_broken_for_test ? "; TEST SWITCH: no bit will be set" : "");
	msg->payload.u64 = 0;
	msg->hdr.size = sizeof(msg->payload.u64);
	return VU_OK;
}

/* Has the page the SIGBUS handler replaced been one of the log's? */
static bool log_faulted(const struct vu_dev *dev)
{
	bool faulted = false;

	pthread_mutex_lock(&mappings_lock);
	for (struct vu_mapping *m = mappings; m; m = m->next) {
		if (dev->log.mmap_addr && m->addr == dev->log.mmap_addr) {
			faulted = sigbus_guard_faulted(m->guard);
			break;
		}
	}
	pthread_mutex_unlock(&mappings_lock);
	return faulted;
}

void vu_mem_report_faults(struct vu_dev *dev)
{
	char why[256];

	for (unsigned int i = 0; dev->mem && i < dev->mem->nr; i++) {
		const struct mem_region *r = &dev->mem->regions[i];

		if (!region_faulted(r))
			continue;
		dev->mem_poisoned = true;
		snprintf(why, sizeof(why),
			 "guest memory region %u (guest address %#llx, %#llx bytes) is gone "
			 "(the front-end truncated its memory file, or hugetlbfs had no page "
			 "for it); reading zeroes until a new memory table",
			 i, (unsigned long long)r->gpa, (unsigned long long)r->size);
		vu_dev_set_broken(dev, why);
		return;
	}
	if (log_faulted(dev)) {
		vu_dev_set_broken(dev, "the dirty-page log is gone (the front-end truncated "
				       "its log file)");
		return;
	}
	/* A request still held an earlier table, and that one faulted. */
	vu_dev_set_broken(dev, "guest memory of an earlier memory table is gone "
			       "(the front-end truncated its memory file?)");
}
