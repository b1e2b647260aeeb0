// SPDX-License-Identifier: MIT
/*
 * inflight_scsi_client - crash-safe reconnect of a virtio-scsi controller
 * (issue 9), through our own front-end: QEMU 7.2's vhost-user-scsi cannot
 * reconnect at all.  Like inflight_client (virtio-blk), it survives vhostd
 * being killed (SIGKILL) and restarted on the same socket: it keeps the
 * in-flight region, reconnects and sends it back (vu_fe_reconnect), and
 * the rings go on where the used rings say.  One LUN at target 0, LUN 0,
 * 512-byte blocks; every queue of the controller (control, event, two or
 * more request queues) runs.
 *
 * A command answered CHECK CONDITION / UNIT ATTENTION is sent again, as
 * Linux does: a new vhostd's LUN starts with the power-on attention, so
 * the first command after a restart (maybe one started again) gets it.
 *
 * inflight_scsi_client SOCKET verify SECONDS DIR
 *   SLOTS slots spread over the request queues, each owning one 4 KiB
 *   block: write generation g (WRITE(10) or WRITE(16), every 8 bytes say
 *   LBA, g and their offset), read it back (READ(10)/(16)), check, g+1.
 *   Whenever DIR/restarted appears the client reconnects (and removes the
 *   flag); DIR/ready is created once I/O runs.  After SECONDS it drains
 *   and reads every block once more: it must hold the last generation (a
 *   lost write shows an older one, a write repeated late too).  Four event
 *   buffers stay posted all along: none may come back (no event happened).
 *
 * inflight_scsi_client SOCKET burst N DIR
 *   On a slow LUN (backend=null,delay-ms=2500): N commands at once, the
 *   odd ones INQUIRY (answered at once), the even ones WRITE (none done
 *   before the kill); then ABORT TASK for write 4, which waits for it.
 *   Once the INQUIRYs are in, DIR/ready; on DIR/restarted, reconnect.
 *   Every write and the TMF complete exactly once, no INQUIRY again, the
 *   TMF after write 4, which it aborts again (a TMF may not finish before
 *   what it aborts: it waits for the commands started again); then N
 *   more, to see the rings serve new chains.
 *
 * inflight_scsi_client SOCKET event 0 DIR
 *   Post four event buffers, create DIR/ready and wait for DIR/restarted:
 *   meanwhile the script hot-adds a LUN, and vhostd (VHOSTD_TEST_CRASH=
 *   filled:1) dies with the event written but not published.  After the
 *   reconnect exactly one buffer comes back, saying events were missed
 *   (the event itself died with vhostd), the three others stay posted.
 *   Then DIR/ready2: the script hot-adds the LUN again, and its event
 *   comes in the next buffer.
 */
#include <endian.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "devices/virtio_scsi.h"
#include "vhost-user/frontend.h"

#define SLOTS	     64
#define BLOCK	     4096
#define SECTORS	     (BLOCK / 512)
#define NEV	     4
#define ABORTED_SLOT 4
#define TOK_TMF	     ((uintptr_t)1000)
#define TOK_EV	     ((uintptr_t)2000)

#define CHECK_CONDITION 0x02
#define UNIT_ATTENTION	0x06

struct slot {
	struct virtio_scsi_cmd_req *req;
	struct virtio_scsi_cmd_resp *resp;
	uint64_t *data;
	unsigned int q; /* vring */
	uint64_t gen;
	bool writing;
	bool inquiry; /* burst: answered at once, out of the writes' order */
	bool busy;
	unsigned int completions;
	unsigned long seq; /* burst: when it last completed */
};

static const char *dir;
static struct vu_fe *fe;
static unsigned int nq; /* vrings: control, event, request queues */
static unsigned int nrq;
static struct slot slots[SLOTS];
static struct virtio_scsi_event *evbuf[NEV];
static unsigned int ev_done;
static uint32_t ev_last;
static unsigned long seq, uas;

static void die(const char *what)
{
	fprintf(stderr, "inflight_scsi_client: %s\n", what);
	exit(1);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static bool exists(const char *name)
{
	char p[4096];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return access(p, F_OK) == 0;
}

static void touch(const char *name)
{
	char p[4096];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	f = fopen(p, "w");
	if (!f)
		die("cannot create a flag file");
	fclose(f);
}

static void unflag(const char *name)
{
	char p[4096];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	unlink(p);
}

static uint64_t lba_of(unsigned int i)
{
	return (uint64_t)i * SECTORS;
}

/* Every 8 bytes of a block say which LBA, which generation, which word. */
static uint64_t word(unsigned int i, uint64_t gen, unsigned int k)
{
	return lba_of(i) << 40 | (gen & 0xffffff) << 16 | k;
}

static bool matches(const struct slot *s, unsigned int i)
{
	for (unsigned int k = 0; k < BLOCK / 8; k++) {
		if (s->data[k] != word(i, s->gen, k))
			return false;
	}
	return true;
}

static void put_be(uint8_t *p, uint64_t v, unsigned int n)
{
	for (unsigned int k = 0; k < n; k++)
		p[k] = (uint8_t)(v >> (8 * (n - 1 - k)));
}

/* Fill slot @i's command: INQUIRY, or READ / WRITE of its block, (10) or (16). */
static void build(struct slot *s, unsigned int i, bool fill)
{
	uint8_t *cdb = s->req->cdb;
	bool big = (i + s->gen) & 1;

	memset(s->req, 0, sizeof(*s->req));
	s->req->lun[0] = 1; /* target 0, LUN 0 */
	s->req->tag = htole64(i + 1);
	s->req->task_attr = VIRTIO_SCSI_S_SIMPLE;
	if (s->inquiry) {
		cdb[0] = 0x12;
		put_be(cdb + 3, 96, 2);
		return;
	}
	if (big) {
		cdb[0] = s->writing ? 0x8a : 0x88;
		put_be(cdb + 2, lba_of(i), 8);
		put_be(cdb + 10, SECTORS, 4);
	} else {
		cdb[0] = s->writing ? 0x2a : 0x28;
		put_be(cdb + 2, lba_of(i), 4);
		put_be(cdb + 7, SECTORS, 2);
	}
	if (!fill)
		return;
	for (unsigned int k = 0; k < BLOCK / 8; k++)
		s->data[k] = s->writing ? word(i, s->gen, k) : 0xa5a5a5a5a5a5a5a5ull;
}

static void post(unsigned int i, bool fill)
{
	struct slot *s = &slots[i];
	struct virtq_sg sg[3];
	unsigned int n = 0, out;

	build(s, i, fill);
	memset(s->resp, 0xff, sizeof(*s->resp));
	sg[n++] = (struct virtq_sg){vu_fe_addr(fe, s->req), sizeof(*s->req)};
	if (s->writing && !s->inquiry)
		sg[n++] = (struct virtq_sg){vu_fe_addr(fe, s->data), BLOCK};
	out = n;
	sg[n++] = (struct virtq_sg){vu_fe_addr(fe, s->resp), sizeof(*s->resp)};
	if (!s->writing || s->inquiry)
		sg[n++] = (struct virtq_sg){vu_fe_addr(fe, s->data), s->inquiry ? 96 : BLOCK};
	if (virtq_drv_add_sgs(vu_fe_queue(fe, s->q), sg, out, n - out, (void *)(uintptr_t)(i + 1)))
		die("cannot add a command");
	s->busy = true;
}

static void kick_all(void)
{
	for (unsigned int q = 0; q < nq; q++)
		vu_fe_kick(fe, q);
}

/* Wait up to @ms for a call on any queue. */
static void wait_any(int ms)
{
	struct pollfd pfd[16];
	eventfd_t v;

	for (unsigned int q = 0; q < nq; q++)
		pfd[q] = (struct pollfd){.fd = vu_fe_call_fd(fe, q), .events = POLLIN};
	if (poll(pfd, nq, ms) <= 0)
		return;
	for (unsigned int q = 0; q < nq; q++) {
		if (pfd[q].revents & POLLIN)
			eventfd_read(pfd[q].fd, &v);
	}
}

static void reconnect_if_asked(void)
{
	if (!exists("restarted"))
		return;
	unflag("restarted");
	if (vu_fe_reconnect(fe, 10000))
		die("reconnect failed");
	kick_all();
	fprintf(stderr, "inflight_scsi_client: reconnected\n");
}

/* The sense key of a CHECK CONDITION (fixed or descriptor format). */
static unsigned int sense_key(const struct virtio_scsi_cmd_resp *r)
{
	if (le32toh(r->sense_len) < 3)
		return 0xff;
	if ((r->sense[0] & 0x7f) >= 0x72)
		return r->sense[1] & 0x0f;
	return r->sense[2] & 0x0f;
}

/*
 * The event queue: a completed buffer is counted and posted again only
 * in verify mode (where none may come at all).
 */
static void harvest_events(void)
{
	uintptr_t token;

	while ((token = (uintptr_t)virtq_drv_get_buf(vu_fe_queue(fe, 1), NULL))) {
		if (token < TOK_EV || token >= TOK_EV + NEV)
			die("an event queue completion that was never posted");
		ev_last = le32toh(evbuf[token - TOK_EV]->event);
		ev_done++;
	}
	if (virtq_drv_is_broken(vu_fe_queue(fe, 1)))
		die("the event ring broke the driver's rules (a buffer completed twice?)");
}

static void post_events(void)
{
	for (uintptr_t k = 0; k < NEV; k++) {
		struct virtq_sg sg = {vu_fe_addr(fe, evbuf[k]), sizeof(*evbuf[k])};

		memset(evbuf[k], 0xee, sizeof(*evbuf[k]));
		if (virtq_drv_add_sgs(vu_fe_queue(fe, 1), &sg, 0, 1, (void *)(TOK_EV + k)))
			die("cannot post an event buffer");
	}
	vu_fe_kick(fe, 1);
}

/*
 * Take what the request queues completed: every completion of a command
 * in flight, response OK, status GOOD, checked; a unit attention is sent
 * again unchanged.  Returns how many moved on.
 */
static unsigned int harvest(bool verify)
{
	unsigned int n = 0;

	for (unsigned int q = 2; q < nq; q++) {
		struct virtq_drv *drv = vu_fe_queue(fe, q);
		uintptr_t token;

		while ((token = (uintptr_t)virtq_drv_get_buf(drv, NULL))) {
			unsigned int i = (unsigned int)(token - 1);
			struct slot *s = &slots[i];

			if (i >= SLOTS || !s->busy || s->q != q)
				die("a completion for a command not in flight (twice?)");
			s->busy = false;
			s->completions++;
			s->seq = ++seq;
			if (s->resp->response == VIRTIO_SCSI_S_ABORTED && !verify) {
				n++;
				continue; /* burst: write 4, aborted by the TMF */
			}
			if (s->resp->response != VIRTIO_SCSI_S_OK)
				die("a command failed (virtio-scsi response)");
			if (s->resp->status == CHECK_CONDITION &&
			    sense_key(s->resp) == UNIT_ATTENTION) {
				uas++;
				if (verify) {
					post(i, false); /* the same command again */
					continue;
				}
				n++;
				continue;
			}
			if (s->resp->status)
				die("a command failed (SCSI status)");
			n++;
			if (!verify || s->inquiry)
				continue;
			if (!s->writing) {
				if (!matches(s, i)) {
					fprintf(stderr,
						"inflight_scsi_client: block %u: generation "
						"%llu expected, word 0 is %#llx\n",
						i, (unsigned long long)s->gen,
						(unsigned long long)s->data[0]);
					die("read back other data than was written");
				}
				s->gen++;
			}
			s->writing = !s->writing;
		}
		if (virtq_drv_is_broken(drv))
			die("a request ring broke the driver's rules (a head completed twice?)");
	}
	return n;
}

static unsigned int nr_busy(void)
{
	unsigned int busy = 0;

	for (unsigned int i = 0; i < SLOTS; i++)
		busy += slots[i].busy;
	return busy;
}

static void drain(double secs)
{
	double stall = now_s() + secs;

	while (nr_busy()) {
		if (now_s() > stall)
			die("commands in flight never completed");
		reconnect_if_asked();
		kick_all();
		wait_any(20);
		harvest(true);
	}
}

static int verify(double secs)
{
	double end = now_s() + secs;
	unsigned long done = 0;
	bool flagged = false;

	post_events();
	for (unsigned int i = 0; i < SLOTS; i++)
		slots[i].writing = true;
	while (now_s() < end) {
		for (unsigned int i = 0; i < SLOTS; i++) {
			if (!slots[i].busy)
				post(i, true);
		}
		kick_all();
		if (!flagged && done > 1000) {
			touch("ready");
			flagged = true;
		}
		wait_any(20);
		done += harvest(true);
		harvest_events();
		reconnect_if_asked();
	}
	drain(20);
	/* The last generation written must be on disk: read every block back. */
	for (unsigned int i = 0; i < SLOTS; i++) {
		/* Next a write: the last done was the read of gen - 1. */
		if (slots[i].writing)
			slots[i].gen--;
		slots[i].writing = false;
		post(i, true);
	}
	kick_all();
	drain(20);
	harvest_events();
	if (ev_done)
		die("an event buffer came back, but no event happened");
	if (!done)
		die("no command completed");
	fprintf(stderr,
		"inflight_scsi_client: verify: %lu commands (%lu unit attentions sent again), "
		"every block checked\n",
		done, uas);
	vu_fe_disconnect(fe);
	return 0;
}

/* The ABORT TASK for write 4, and its response. */
static struct virtio_scsi_ctrl_tmf_req *tmf_req;
static struct virtio_scsi_ctrl_tmf_resp *tmf_resp;
static unsigned int tmf_done;
static unsigned long tmf_seq;

static void harvest_tmf(void)
{
	uintptr_t token;

	while ((token = (uintptr_t)virtq_drv_get_buf(vu_fe_queue(fe, 0), NULL))) {
		if (token != TOK_TMF || tmf_done)
			die("a control queue completion twice, or never posted");
		tmf_done++;
		tmf_seq = ++seq;
	}
	if (virtq_drv_is_broken(vu_fe_queue(fe, 0)))
		die("the control ring broke the driver's rules");
}

static void post_tmf(uint64_t tag)
{
	struct virtq_sg sg[2];

	memset(tmf_req, 0, sizeof(*tmf_req));
	tmf_req->type = htole32(VIRTIO_SCSI_T_TMF);
	tmf_req->subtype = htole32(VIRTIO_SCSI_T_TMF_ABORT_TASK);
	tmf_req->lun[0] = 1;
	tmf_req->tag = htole64(tag);
	memset(tmf_resp, 0xff, sizeof(*tmf_resp));
	sg[0] = (struct virtq_sg){vu_fe_addr(fe, tmf_req), sizeof(*tmf_req)};
	sg[1] = (struct virtq_sg){vu_fe_addr(fe, tmf_resp), sizeof(*tmf_resp)};
	if (virtq_drv_add_sgs(vu_fe_queue(fe, 0), sg, 1, 1, (void *)TOK_TMF))
		die("cannot post the TMF");
	vu_fe_kick(fe, 0);
}

static void burst_wait(unsigned int want, unsigned int *done, double secs)
{
	double end = now_s() + secs;

	while (*done < want && now_s() < end) {
		wait_any(50);
		*done += harvest(false);
		harvest_tmf();
	}
	if (*done < want) {
		fprintf(stderr, "inflight_scsi_client: %u of %u completed\n", *done, want);
		die("commands lost across the restart");
	}
}

static int burst(unsigned int n)
{
	unsigned int done = 0, retried = 0;
	double end;

	/* The new LUN's power-on unit attention, out of the way first. */
	slots[0].writing = false;
	for (int k = 0; k < 5; k++) {
		slots[0].inquiry = false;
		post(0, true);
		kick_all();
		done = 0;
		burst_wait(1, &done, 5);
		if (!slots[0].resp->status)
			break;
	}
	if (slots[0].resp->status)
		die("READ keeps failing on the slow LUN");
	for (unsigned int i = 0; i < n; i++)
		slots[i].completions = 0;
	done = 0;
	for (unsigned int i = 0; i < n; i++) {
		slots[i].inquiry = i & 1;
		slots[i].writing = true;
		post(i, true);
	}
	kick_all();
	end = now_s() + 5;
	while (done < n / 2 && now_s() < end) {
		wait_any(20);
		done += harvest(false);
	}
	for (unsigned int i = 0; i < n; i++) {
		if (slots[i].busy != !(i & 1))
			die("not just the INQUIRYs completed before the kill: too fast to test");
	}
	/*
	 * It waits for write 4 (2.5 s away): in flight at the kill too.  Not
	 * write 0 or 2: the first command on each request queue after the
	 * restart may get the power-on unit attention at once; write 4 comes
	 * after write 0 on its queue, so it runs, and the TMF started again
	 * must find it and abort it.
	 */
	post_tmf(ABORTED_SLOT + 1);
	usleep(100000);
	harvest_tmf();
	if (tmf_done)
		die("ABORT TASK finished before the write it aborts");
	touch("ready");
	while (!exists("restarted")) {
		done += harvest(false);
		harvest_tmf();
		usleep(10000);
	}
	if (done != n / 2 || tmf_done)
		die("a write or the TMF completed before the kill: too fast to test");
	reconnect_if_asked();
	burst_wait(n, &done, 20);
	end = now_s() + 10;
	while (!tmf_done && now_s() < end) {
		wait_any(50);
		harvest_tmf();
		done += harvest(false);
	}
	if (!tmf_done)
		die("the TMF in flight at the kill never completed after the restart");
	if (tmf_resp->response != VIRTIO_SCSI_S_FUNCTION_COMPLETE)
		die("the TMF started again did not answer FUNCTION COMPLETE");
	if (tmf_seq < slots[ABORTED_SLOT].seq)
		die("the TMF started again finished before the write it aborts");
	if (slots[ABORTED_SLOT].resp->response != VIRTIO_SCSI_S_ABORTED)
		die("the TMF started again did not abort the write started again");
	/* Each write once; the unit attention's and the aborted one go again. */
	for (unsigned int i = 0; i < n; i++) {
		if (slots[i].completions != 1)
			die("a command did not complete exactly once");
		if (!slots[i].inquiry &&
		    (slots[i].resp->status || slots[i].resp->response != VIRTIO_SCSI_S_OK)) {
			post(i, true);
			retried++;
		}
	}
	kick_all();
	burst_wait(n + retried, &done, 20);
	/* N more: the rings serve new chains. */
	for (unsigned int i = 0; i < n; i++)
		post(i, true);
	kick_all();
	burst_wait(2 * n + retried, &done, 20);
	usleep(200000);
	if (harvest(false))
		die("a completion after all were in");
	harvest_tmf();
	fprintf(stderr,
		"inflight_scsi_client: burst: %u writes and an ABORT TASK across the kill, each "
		"once, the TMF after the write it aborted; %u sent again\n",
		n / 2, retried);
	vu_fe_disconnect(fe);
	return 0;
}

static int event(void)
{
	double end;

	post_events();
	touch("ready");
	while (!exists("restarted")) {
		harvest_events();
		usleep(10000);
	}
	if (ev_done)
		die("an event buffer came back before the kill: the crash hook missed it");
	reconnect_if_asked();
	end = now_s() + 10;
	while (!ev_done && now_s() < end) {
		wait_any(50);
		harvest_events();
	}
	usleep(300000);
	harvest_events();
	if (ev_done != 1)
		die("not exactly one event buffer came back after the restart");
	if (ev_last != (VIRTIO_SCSI_T_NO_EVENT | VIRTIO_SCSI_T_EVENTS_MISSED))
		die("the event buffer in flight at the kill did not say events were missed");
	/*
	 * The next event takes the next buffer: a ring resumed at the wrong
	 * place would hand back the first one again (the driver sees a
	 * buffer completed twice) or skip one.
	 */
	touch("ready2");
	end = now_s() + 10;
	while (ev_done < 2 && now_s() < end) {
		wait_any(50);
		harvest_events();
	}
	if (ev_done != 2 || ev_last != VIRTIO_SCSI_T_TRANSPORT_RESET)
		die("the hot-plug after the restart did not come in the next buffer");
	fprintf(stderr,
		"inflight_scsi_client: event: the buffer in flight came back once, "
		"events missed; %u still posted\n",
		NEV - ev_done);
	vu_fe_disconnect(fe);
	return 0;
}

int main(int argc, char **argv)
{
	struct vu_fe_config cfg = {
		.num_queues = 0, /* every queue the controller has */
		.queue_size = 128,
		.features = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_RING_F_EVENT_IDX |
			    1ull << VIRTIO_SCSI_F_HOTPLUG | 1ull << VIRTIO_SCSI_F_CHANGE,
		.mem_size = 4u << 20,
		.inflight = true,
	};

	if (argc != 5)
		die("usage: inflight_scsi_client SOCKET verify|burst|event ARG DIR");
	cfg.socket_path = argv[1];
	dir = argv[4];
	/* INFLIGHT_PACKED=1: the same on packed rings (positions from the region). */
	if (getenv("INFLIGHT_PACKED") && !strcmp(getenv("INFLIGHT_PACKED"), "1"))
		cfg.features |= 1ull << VIRTIO_F_RING_PACKED;
	fe = vu_fe_connect(&cfg);
	if (!fe)
		die("cannot connect");
	if (!vu_fe_has_inflight(fe))
		die("the back-end offers no in-flight region");
	nq = vu_fe_num_queues(fe);
	if (nq < 3 || nq > 16)
		die("a controller with 1..14 request queues expected");
	nrq = nq - 2;
	for (unsigned int i = 0; i < SLOTS; i++) {
		slots[i].req = vu_fe_alloc(fe, sizeof(*slots[i].req), 16);
		slots[i].resp = vu_fe_alloc(fe, sizeof(*slots[i].resp), 16);
		slots[i].data = vu_fe_alloc(fe, BLOCK, BLOCK);
		slots[i].q = 2 + (i / 2) % nrq; /* burst: both kinds on every queue */
		slots[i].writing = true;
		if (!slots[i].req || !slots[i].resp || !slots[i].data)
			die("out of shared memory");
	}
	for (unsigned int k = 0; k < NEV; k++) {
		evbuf[k] = vu_fe_alloc(fe, sizeof(*evbuf[k]), 16);
		if (!evbuf[k])
			die("out of shared memory");
	}
	tmf_req = vu_fe_alloc(fe, sizeof(*tmf_req), 16);
	tmf_resp = vu_fe_alloc(fe, sizeof(*tmf_resp), 16);
	if (!tmf_req || !tmf_resp)
		die("out of shared memory");
	if (!strcmp(argv[2], "verify"))
		return verify(atof(argv[3]));
	if (!strcmp(argv[2], "burst")) {
		unsigned int n = (unsigned int)atoi(argv[3]);

		if (n < 2 * ABORTED_SLOT || n > SLOTS)
			die("burst: 8..64 commands");
		return burst(n);
	}
	if (!strcmp(argv[2], "event"))
		return event();
	die("unknown mode");
	return 1;
}
