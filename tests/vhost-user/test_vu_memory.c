// SPDX-License-Identifier: MIT
/*
 * test_vu_memory.c - the memory table changes while both queues run.
 *
 * Two threads keep both queues full while the main thread sends
 * SET_MEM_TABLE again and hot-plugs regions in and out (ADD_MEM_REG /
 * REM_MEM_REG): every change must be acked, no request may be lost or
 * corrupted, and the rings must be stopped and restarted around each
 * change.  Then the buffers move into a hot-plugged region, which proves
 * the back-end really maps and uses it, and that region is unplugged.
 * Split and packed.  At the end /proc/self/maps shows the back-end has
 * unmapped every region it ever mapped.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "vu_test.h"

static struct vt_loop loop;
static struct echo_dev echo;
static struct vu_dev *dev;
static const char *sock_path;

/* Mappings of the front-end's memfds, ours and the back-end's alike. */
static int count_fe_mappings(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int n = 0;

	CHECK(f);
	while (fgets(line, sizeof(line), f))
		n += strstr(line, "memfd:vhostd-fe") != NULL;
	fclose(f);
	return n;
}

struct runners {
	atomic_bool stop;
	struct vt_io io[2];
	pthread_t thr[2];
};

static void start_io(struct runners *r, struct vu_fe *fe, uint8_t *area0, uint8_t *area1,
		     uint64_t seed)
{
	atomic_store(&r->stop, false);
	for (unsigned int q = 0; q < 2; q++) {
		r->io[q] = (struct vt_io){
			.fe = fe,
			.queue = q,
			.area = q ? area1 : area0,
			.area_len = 16 * VT_SLOT_SIZE,
			.depth = 16,
			.stop = &r->stop,
			.seed = seed + q,
		};
		CHECK(!pthread_create(&r->thr[q], NULL, vt_io_thread, &r->io[q]));
	}
}

static uint64_t stop_io(struct runners *r)
{
	uint64_t done = 0;

	atomic_store(&r->stop, true);
	for (unsigned int q = 0; q < 2; q++) {
		pthread_join(r->thr[q], NULL);
		CHECK(r->io[q].completed > 0);
		done += r->io[q].completed;
	}
	return done;
}

static void run(uint64_t features, const char *name)
{
	struct vu_fe *fe = vt_connect(sock_path, 2, 64, features, 4);
	unsigned int starts;
	struct runners r;
	uint8_t *a0, *a1, *hot;
	uint64_t done;

	fprintf(stderr, "%s: memory table changes under I/O\n", name);
	a0 = vu_fe_alloc(fe, 16 * VT_SLOT_SIZE, 4096);
	a1 = vu_fe_alloc(fe, 16 * VT_SLOT_SIZE, 4096);
	CHECK(a0 && a1);
	/* Region 0, mapped here and in the back-end. */
	CHECK_EQ(count_fe_mappings(), 2);

	/* Phase 1: buffers in region 0; the table changes around them. */
	starts = atomic_load(&echo.starts);
	start_io(&r, fe, a0, a1, 1);
	for (int i = 0; i < 10; i++) {
		usleep(2000);
		CHECK_EQ(vu_fe_resend_mem_table(fe), 0);
	}
	for (int i = 0; i < 10; i++) {
		void *p;

		usleep(2000);
		p = vu_fe_add_region(fe, 1u << 20);
		CHECK(p);
		usleep(2000);
		CHECK_EQ(vu_fe_remove_region(fe, p), 0);
	}
	done = stop_io(&r);
	/* Each of the 30 changes stopped and restarted both rings. */
	CHECK(atomic_load(&echo.starts) - starts >= 60);
	fprintf(stderr, "  %llu requests across 30 table changes\n", (unsigned long long)done);
	CHECK_EQ(count_fe_mappings(), 2);

	/* Phase 2: buffers in a hot-plugged region, while the table keeps changing. */
	hot = vu_fe_add_region(fe, 2u << 20);
	CHECK(hot);
	CHECK_EQ(count_fe_mappings(), 4);
	start_io(&r, fe, hot, hot + (1u << 20), 100);
	for (int i = 0; i < 5; i++) {
		void *p;

		usleep(5000);
		CHECK_EQ(vu_fe_resend_mem_table(fe), 0);
		p = vu_fe_add_region(fe, 1u << 20);
		CHECK(p);
		CHECK_EQ(vu_fe_remove_region(fe, p), 0);
	}
	done = stop_io(&r);
	fprintf(stderr, "  %llu requests in a hot-plugged region\n", (unsigned long long)done);
	CHECK_EQ(vu_fe_remove_region(fe, hot), 0);
	/* Unplugged: the back-end let go of it too. */
	CHECK_EQ(count_fe_mappings(), 2);

	/* Phase 3: and region 0 still works. */
	start_io(&r, fe, a0, a1, 200);
	usleep(20000);
	stop_io(&r);

	vu_fe_disconnect(fe);
	vt_wait_disconnected(dev);
	CHECK_EQ(atomic_load(&echo.starts), atomic_load(&echo.stops));
	CHECK_EQ(count_fe_mappings(), 0);
}

int main(void)
{
	int fds;

	dev = vt_echo_start(&loop, &echo, &sock_path, 2, 256);
	fds = vt_count_fds();

	run(VT_FEATURES_SPLIT | VT_FEATURES_EVENT_IDX | VT_FEATURES_INDIRECT, "split");
	run(VT_FEATURES_SPLIT | VT_FEATURES_PACKED | VT_FEATURES_EVENT_IDX, "packed");
	run(VT_FEATURES_SPLIT, "split, no event idx");
	CHECK_EQ(vt_count_fds(), fds);

	vt_echo_stop(&loop, dev);
	fprintf(stderr, "ok\n");
	return 0;
}
