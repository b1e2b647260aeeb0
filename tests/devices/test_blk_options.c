// SPDX-License-Identifier: MIT
/*
 * test_blk_options.c - blk_options_parse() on good and bad --blk strings
 * (file and null back-ends), and blk_stats_format()'s /proc/diskstats line.
 */
#include <stdint.h>

#include "blk_test.h"
#include "backends/backend.h"
#include "devices/blk.h"

static void parse_ok(const char *s, struct blk_options *o)
{
	char err[256] = "untouched";

	if (blk_options_parse(s, o, err, sizeof(err)))
		FAIL("'%s' refused: %s", s, err);
}

static void parse_bad(const char *s, const char *why)
{
	struct blk_options o;
	char err[256] = "";

	if (!blk_options_parse(s, &o, err, sizeof(err)))
		FAIL("'%s' accepted", s);
	if (!strstr(err, why))
		FAIL("'%s': error '%s' does not mention '%s'", s, err, why);
}

static void test_defaults(void)
{
	struct blk_options o;

	parse_ok("id=vda,path=/img/a.raw,socket=/run/vda.sock", &o);
	CHECK(!strcmp(o.id, "vda"));
	CHECK(!strcmp(o.path, "/img/a.raw"));
	CHECK(!strcmp(o.socket, "/run/vda.sock"));
	CHECK(!o.readonly && !o.client && !o.no_locking);
	CHECK_EQ(o.num_queues, 1);
	CHECK_EQ(o.queue_size, 256);
	CHECK_EQ(o.cache, BLK_CACHE_WRITEBACK);
	CHECK_EQ(o.poll_us, 50);
	/* GET_ID falls back to the id. */
	CHECK(!strcmp(o.serial, "vda"));
}

static void test_everything(void)
{
	struct blk_options o;

	parse_ok("socket=/s,readonly=on,num-queues=64,queue-size=1024,cache=none,"
		 "serial=SN-0123456789abcdefg,client=on,path=/img/with,,comma,id=d.1_x-y",
		 &o);
	CHECK(!strcmp(o.id, "d.1_x-y"));
	CHECK(!strcmp(o.path, "/img/with,comma"));
	CHECK(!strcmp(o.socket, "/s"));
	CHECK(!strcmp(o.serial, "SN-0123456789abcdefg"));
	CHECK(o.readonly && o.client);
	CHECK_EQ(o.num_queues, 64);
	CHECK_EQ(o.queue_size, 1024);
	CHECK_EQ(o.cache, BLK_CACHE_NONE);

	parse_ok("id=a,path=p,socket=s,locking=off", &o);
	CHECK(o.no_locking);
	parse_ok("id=a,path=p,socket=s,locking=on", &o);
	CHECK(!o.no_locking);
	parse_bad("id=a,path=p,socket=s,locking=maybe", "locking: on or off expected");

	parse_ok("id=a,path=p,socket=s,poll-us=0", &o);
	CHECK_EQ(o.poll_us, 0);
	parse_ok("id=a,path=p,socket=s,poll-us=1000", &o);
	CHECK_EQ(o.poll_us, 1000);

	parse_ok("id=a,path=p,socket=s,readonly=off,client=no,cache=writeback,queue-size=4", &o);
	CHECK(!o.readonly && !o.client);
	CHECK_EQ(o.queue_size, 4);
	CHECK_EQ(o.cache, BLK_CACHE_WRITEBACK);

	/* A long id is cut to 20 bytes for the serial. */
	parse_ok("id=abcdefghijklmnopqrstuvwxyz,path=p,socket=s", &o);
	CHECK(!strcmp(o.serial, "abcdefghijklmnopqrst"));
}

static void test_null_backend(void)
{
	struct blk_options o;

	parse_ok("id=n0,backend=null,size=1G,socket=/s", &o);
	CHECK_EQ(o.backend, BLK_BACKEND_NULL);
	CHECK_EQ(o.size, 1ull << 30);
	CHECK(!o.path[0]);
	parse_ok("id=n0,size=4096,socket=/s,backend=null,readonly=on,num-queues=2", &o);
	CHECK_EQ(o.size, 4096);
	CHECK(o.readonly);
	CHECK_EQ(o.num_queues, 2);
	parse_ok("id=n0,backend=null,size=512,socket=/s", &o);
	CHECK_EQ(o.size, 512);
	parse_ok("id=n0,backend=null,size=3k,socket=/s", &o);
	CHECK_EQ(o.size, 3072);
	parse_ok("id=n0,backend=null,size=2M,socket=/s", &o);
	CHECK_EQ(o.size, 2u << 20);
	parse_ok("id=n0,backend=null,size=1t,socket=/s", &o);
	CHECK_EQ(o.size, 1ull << 40);
	parse_ok("id=f,backend=file,path=/img,socket=/s", &o);
	CHECK_EQ(o.backend, BLK_BACKEND_FILE);
	CHECK_EQ(o.size, 0);
	/* The default is still the file back-end. */
	parse_ok("id=f,path=/img,socket=/s", &o);
	CHECK_EQ(o.backend, BLK_BACKEND_FILE);

	parse_bad("id=n0,backend=null,socket=/s", "needs size=");
	parse_bad("id=n0,backend=null,size=1G,path=/img,socket=/s", "path= is not for");
	parse_bad("id=n0,size=1G,path=/img,socket=/s", "size= is only for backend=null");
	parse_bad("id=n0,backend=nul,size=1G,socket=/s", "backend");
	parse_bad("id=n0,backend=null,size=0,socket=/s", "size");
	parse_bad("id=n0,backend=null,size=1000,socket=/s", "size");
	parse_bad("id=n0,backend=null,size=k,socket=/s", "size");
	parse_bad("id=n0,backend=null,size=-512,socket=/s", "size");
	parse_bad("id=n0,backend=null,size=1x,socket=/s", "size");
	parse_bad("id=n0,backend=null,size=1Gb,socket=/s", "size");
	parse_bad("id=n0,backend=null,size=16777216t,socket=/s", "size");
	parse_bad("id=n0,backend=null,size=99999999999999999999999,socket=/s", "size");
	parse_bad("id=n0,backend=null,size=1G,size=2G,socket=/s", "twice");

	/* A slow (or stalled) disk for tests: null only, up to an hour. */
	parse_ok("id=n0,backend=null,size=1G,socket=/s", &o);
	CHECK_EQ(o.delay_ms, 0);
	parse_ok("id=n0,backend=null,size=1G,socket=/s,delay-ms=3600000", &o);
	CHECK_EQ(o.delay_ms, 3600000);
	parse_bad("id=n0,backend=null,size=1G,socket=/s,delay-ms=3600001", "delay-ms");
	parse_bad("id=n0,backend=null,size=1G,socket=/s,delay-ms=1s", "delay-ms");
	parse_bad("id=f,path=/img,socket=/s,delay-ms=5", "delay-ms= is only for backend=null");
}

static void test_stop_timeout(void)
{
	struct blk_options o;

	parse_ok("id=a,path=p,socket=s", &o);
	CHECK_EQ(o.stop_timeout_ms, 0); /* backend.h's default */
	parse_ok("id=a,path=p,socket=s,stop-timeout-ms=1", &o);
	CHECK_EQ(o.stop_timeout_ms, 1);
	parse_ok("id=a,path=p,socket=s,stop-timeout-ms=3600000", &o);
	CHECK_EQ(o.stop_timeout_ms, 3600000);
	parse_bad("id=a,path=p,socket=s,stop-timeout-ms=0", "stop-timeout-ms");
	parse_bad("id=a,path=p,socket=s,stop-timeout-ms=3600001", "stop-timeout-ms");
	parse_bad("id=a,path=p,socket=s,stop-timeout-ms=5s", "stop-timeout-ms");
}

static void test_nbd_backend(void)
{
	struct blk_options o;

	parse_ok("id=d,backend=nbd,uri=nbd://h:10809/exp,socket=/s", &o);
	CHECK_EQ(o.backend, BLK_BACKEND_NBD);
	CHECK(!strcmp(o.path, "nbd://h:10809/exp"));
	/* Keys in any order; ",," is a comma in the URI. */
	parse_ok("id=d,uri=nbd+unix:///e?socket=/run/a,,b.sock,socket=/s,backend=nbd", &o);
	CHECK_EQ(o.backend, BLK_BACKEND_NBD);
	CHECK(!strcmp(o.path, "nbd+unix:///e?socket=/run/a,b.sock"));
	parse_ok("id=d,backend=nbd,uri=nbds://h/e,socket=/s,readonly=on", &o);
	CHECK(o.readonly);

	parse_bad("id=d,backend=nbd,socket=/s", "needs uri=");
	parse_bad("id=d,backend=nbd,path=/img,socket=/s", "needs uri=");
	parse_bad("id=d,backend=nbd,uri=nbd://h/e,size=1G,socket=/s", "size= is only");
	parse_bad("id=d,backend=nbd,uri=http://h/e,socket=/s", "uri:");
	parse_bad("id=d,backend=nbd,uri=/tmp/x,socket=/s", "uri:");
	parse_bad("id=d,uri=nbd://h/e,socket=/s", "uri= goes with backend=nbd");
	parse_bad("id=d,backend=nbd,uri=nbd://h/e,path=/img,socket=/s", "twice");
	parse_bad("id=d,backend=nbd,uri=nbd://h/e,uri=nbd://h/f,socket=/s", "twice");
	CHECK(!strcmp(blk_disk_backend_name(BLK_BACKEND_NBD), "nbd"));
	CHECK(blk_disk_backend_ops(BLK_BACKEND_NBD) == &blk_backend_nbd_ops);
	CHECK(blk_disk_backend_ops(BLK_BACKEND_NULL) == &blk_backend_null_ops);
	CHECK(blk_disk_backend_ops(BLK_BACKEND_FILE) == &blk_backend_uring_ops);
}

static void test_rbd_backend(void)
{
	struct blk_options o;

	parse_ok("id=r0,backend=rbd,pool=rbd,image=vol1,socket=/s", &o);
	CHECK_EQ(o.backend, BLK_BACKEND_RBD);
	CHECK(!strcmp(o.rbd.pool, "rbd") && !strcmp(o.rbd.image, "vol1"));
	CHECK(!o.rbd.conf[0] && !o.rbd.user[0] && !o.path[0]);
	parse_ok("id=r0,image=v,conf=/etc/ceph/c,,1.conf,user=vhostd,backend=rbd,pool=p,socket=/s",
		 &o);
	CHECK(!strcmp(o.rbd.conf, "/etc/ceph/c,1.conf"));
	CHECK(!strcmp(o.rbd.user, "vhostd"));

	parse_bad("id=r0,backend=rbd,pool=rbd,socket=/s", "needs pool= and image=");
	parse_bad("id=r0,backend=rbd,image=v,socket=/s", "needs pool= and image=");
	parse_bad("id=r0,backend=rbd,pool=rbd,image=v,path=/img,socket=/s", "path= is not for");
	parse_bad("id=r0,backend=rbd,pool=rbd,image=v,size=1G,socket=/s", "size= is only for");
	parse_bad("id=r0,backend=rbd,pool=rbd,image=a/b,socket=/s", "not allowed");
	parse_bad("id=r0,backend=rbd,pool=r@s,image=v,socket=/s", "not allowed");
	parse_bad("id=r0,path=/img,pool=rbd,socket=/s", "are for backend=rbd");
	parse_bad("id=r0,backend=null,size=1G,image=v,socket=/s", "are for backend=rbd");
}

static void test_bad(void)
{
	char big[5000];

	parse_bad("", "empty");
	parse_bad("id=a,path=p", "socket");
	parse_bad("id=a,socket=s", "path");
	parse_bad("path=p,socket=s", "id");
	parse_bad("id=a,path=p,socket=s,sizes=3", "unknown option 'sizes'");
	parse_bad("id=a,path=p,socket=s,id=b", "twice");
	parse_bad("id=,path=p,socket=s", "empty value");
	parse_bad("id=a b,path=p,socket=s", "id");
	parse_bad("id=a/b,path=p,socket=s", "id");
	parse_bad("id=abcdefghijklmnopqrstuvwxyz0123456,path=p,socket=s", "id");
	parse_bad("id=a,path=p,socket=s,", "trailing comma");
	parse_bad("id=a,path=p,socket=s,readonly", "key=value");
	parse_bad("id=a,path=p,socket=s,readonly=maybe", "readonly");
	parse_bad("id=a,path=p,socket=s,client=1", "client");
	parse_bad("id=a,path=p,socket=s,cache=unsafe", "cache");
	parse_bad("id=a,path=p,socket=s,num-queues=0", "num-queues");
	parse_bad("id=a,path=p,socket=s,num-queues=65", "num-queues");
	parse_bad("id=a,path=p,socket=s,num-queues=-1", "num-queues");
	parse_bad("id=a,path=p,socket=s,num-queues=2x", "num-queues");
	parse_bad("id=a,path=p,socket=s,num-queues=99999999999999999999999", "num-queues");
	parse_bad("id=a,path=p,socket=s,poll-us=1001", "poll-us");
	parse_bad("id=a,path=p,socket=s,poll-us=-1", "poll-us");
	parse_bad("id=a,path=p,socket=s,poll-us=5us", "poll-us");
	parse_bad("id=a,path=p,socket=s,queue-size=100", "queue-size");
	parse_bad("id=a,path=p,socket=s,queue-size=2", "queue-size");
	parse_bad("id=a,path=p,socket=s,queue-size=2048", "queue-size");
	parse_bad("id=a,path=p,socket=s,serial=012345678901234567890", "serial");
	parse_bad("id=a,path=p,socket=s,serial=tab\there", "serial");
	parse_bad("id=a,path=p,socket=/tmp/0123456789012345678901234567890123456789012345678901"
		  "234567890123456789012345678901234567890123456789012345",
		  "socket");
	parse_bad("=x,id=a,path=p,socket=s", "unknown option ''");
	parse_bad("id=a,path=p,socket=s,thisoptionnameiswaytoolongtobeanoption=1", "too long");

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "id=a,socket=s,path=", 19);
	parse_bad(big, "too long");

	/* A NULL error buffer is allowed. */
	{
		struct blk_options o;

		CHECK(blk_options_parse("nonsense", &o, NULL, 0) == -EINVAL);
	}
}

static void test_format(void)
{
	struct blk_stats st;
	char line[512];
	int n;

	memset(&st, 0, sizeof(st));
	n = blk_stats_format(&st, "vda", line, sizeof(line));
	CHECK(!strcmp(line, "   0       0 vda 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"));
	CHECK_EQ(n, (int)strlen(line));

	st.ios[BLK_STAT_READ] = 1;
	st.merges[BLK_STAT_READ] = 2;
	st.sectors[BLK_STAT_READ] = 3;
	st.ticks_ms[BLK_STAT_READ] = 4;
	st.ios[BLK_STAT_WRITE] = 5;
	st.merges[BLK_STAT_WRITE] = 6;
	st.sectors[BLK_STAT_WRITE] = 7;
	st.ticks_ms[BLK_STAT_WRITE] = 8;
	st.in_flight = 9;
	st.io_ticks_ms = 10;
	st.time_in_queue_ms = 11;
	st.ios[BLK_STAT_DISCARD] = 12;
	st.merges[BLK_STAT_DISCARD] = 13;
	st.sectors[BLK_STAT_DISCARD] = 14;
	st.ticks_ms[BLK_STAT_DISCARD] = 15;
	st.ios[BLK_STAT_FLUSH] = 16;
	st.ticks_ms[BLK_STAT_FLUSH] = UINT64_MAX;
	blk_stats_format(&st, "disk-1", line, sizeof(line));
	CHECK(!strcmp(line, "   0       0 disk-1 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 "
			    "18446744073709551615\n"));

	/* Truncation behaves like snprintf: the full length is returned. */
	n = blk_stats_format(&st, "disk-1", line, 8);
	CHECK(n > 8);
	CHECK_EQ(strlen(line), 7);
}

int main(void)
{
	test_defaults();
	test_everything();
	test_null_backend();
	test_nbd_backend();
	test_rbd_backend();
	test_stop_timeout();
	test_bad();
	test_format();
	printf("ok\n");
	return 0;
}
