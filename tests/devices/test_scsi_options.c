// SPDX-License-Identifier: MIT
/*
 * test_scsi_options.c - --scsi and --lun option strings: defaults, every
 * key, and every refusal with its one-line message.
 */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "devices/scsi.h"

static void scsi_ok(const char *spec, struct scsi_options *o)
{
	char err[256] = "";

	if (scsi_options_parse(spec, o, err, sizeof(err)))
		FAIL("'%s' refused: %s", spec, err);
}

static void scsi_bad(const char *spec, const char *msg)
{
	struct scsi_options o;
	char err[256] = "";

	CHECK_MSG(scsi_options_parse(spec, &o, err, sizeof(err)) != 0, "'%s' accepted", spec);
	CHECK_MSG(strstr(err, msg), "'%s': message '%s' lacks '%s'", spec, err, msg);
	CHECK(!strchr(err, '\n'));
}

static void lun_ok(const char *spec, struct scsi_lun_options *o)
{
	char err[256] = "";

	if (scsi_lun_options_parse(spec, o, err, sizeof(err)))
		FAIL("'%s' refused: %s", spec, err);
}

static void lun_bad(const char *spec, const char *msg)
{
	struct scsi_lun_options o;
	char err[256] = "";

	CHECK_MSG(scsi_lun_options_parse(spec, &o, err, sizeof(err)) != 0, "'%s' accepted", spec);
	CHECK_MSG(strstr(err, msg), "'%s': message '%s' lacks '%s'", spec, err, msg);
}

int main(void)
{
	struct scsi_lun_options l;
	struct scsi_options o;

	scsi_ok("id=sc0,socket=/tmp/s.sock", &o);
	CHECK(!strcmp(o.id, "sc0"));
	CHECK_EQ(o.num_queues, 1);
	CHECK_EQ(o.queue_size, 128);
	CHECK_EQ(o.poll_us, 50);
	CHECK_EQ(o.io_thread, -1);
	scsi_ok("id=a,socket=s,num-queues=62,queue-size=1024,poll-us=0,io-thread=3,client=on,"
		"max-guest-memory=2G,stop-timeout-ms=2500",
		&o);
	CHECK_EQ(o.stop_timeout_ms, 2500);
	CHECK_EQ(o.num_queues, 62);
	CHECK_EQ(o.queue_size, 1024);
	CHECK_EQ(o.io_thread, 3);
	CHECK(o.client);
	CHECK_EQ(o.max_guest_memory, 2ull << 30);
	scsi_bad("id=a,socket=s,stop-timeout-ms=0", "stop-timeout-ms");
	scsi_bad("socket=s", "id= is required");
	scsi_bad("id=a", "socket= is required");
	scsi_bad("id=a b,socket=s", "id:");
	scsi_bad("id=a,socket=s,num-queues=0", "num-queues: 1..62");
	scsi_bad("id=a,socket=s,num-queues=63", "num-queues: 1..62");
	scsi_bad("id=a,socket=s,queue-size=100", "power of two");
	scsi_bad("id=a,socket=s,path=x", "path");
	scsi_bad("id=a,socket=s,id=b", "id");

	lun_ok("scsi=sc0,target=0,lun=0,path=/x.img", &l);
	CHECK(!strcmp(l.scsi, "sc0"));
	CHECK_EQ(l.backend, BLK_BACKEND_FILE);
	CHECK_EQ(l.cache, BLK_CACHE_WRITEBACK);
	CHECK_EQ(l.block_size, 0);
	CHECK(!l.no_locking);
	CHECK(!strcmp(l.serial, "sc0-0-0"));
	lun_ok("scsi=sc0,target=255,lun=16383,backend=null,size=1G,readonly=on,serial=ABC,,D,"
	       "cache=none,block-size=4096,locking=off",
	       &l);
	CHECK(l.no_locking);
	CHECK_EQ(l.target, 255);
	CHECK_EQ(l.lun, 16383);
	CHECK_EQ(l.backend, BLK_BACKEND_NULL);
	CHECK_EQ(l.size, 1ull << 30);
	CHECK(l.readonly);
	CHECK(!strcmp(l.serial, "ABC,D"));
	CHECK_EQ(l.cache, BLK_CACHE_NONE);
	CHECK_EQ(l.block_size, 4096);
	lun_ok("scsi=sc0,target=1,lun=2,backend=nbd,uri=nbd+unix:///?socket=/run/n.sock", &l);
	CHECK_EQ(l.backend, BLK_BACKEND_NBD);
	CHECK(!strcmp(l.path, "nbd+unix:///?socket=/run/n.sock"));
	lun_ok("scsi=sc0,target=0,lun=1,backend=null,size=1G,delay-ms=2500", &l);
	CHECK_EQ(l.delay_ms, 2500);
	lun_bad("scsi=a,target=0,lun=0,path=x,delay-ms=5", "delay-ms= is only for backend=null");
	lun_bad("scsi=a,target=0,lun=0,backend=null,size=1G,delay-ms=3600001", "delay-ms");
	lun_bad("target=0,lun=0,path=x", "scsi= is required");
	lun_bad("scsi=a,lun=0,path=x", "target= is required");
	lun_bad("scsi=a,target=0,path=x", "lun= is required");
	lun_bad("scsi=a,target=256,lun=0,path=x", "target: 0..255");
	lun_bad("scsi=a,target=0,lun=16384,path=x", "lun: 0..16383");
	lun_bad("scsi=a,target=0,lun=0", "path= is required");
	lun_bad("scsi=a,target=0,lun=0,backend=null", "needs size=");
	lun_bad("scsi=a,target=0,lun=0,backend=nbd", "needs uri=");
	lun_bad("scsi=a,target=0,lun=0,backend=nbd,uri=ftp://x", "uri:");
	lun_bad("scsi=a,target=0,lun=0,uri=nbd://h/e", "goes with backend=nbd");
	lun_bad("scsi=a,target=0,lun=0,backend=null,size=1M,path=x", "not for backend=null");
	lun_bad("scsi=a,target=0,lun=0,path=x,size=1M", "only for backend=null");
	lun_ok("scsi=sc0,target=1,lun=2,backend=rbd,pool=rbd,image=vol,conf=/c.conf,user=u", &l);
	CHECK_EQ(l.backend, BLK_BACKEND_RBD);
	CHECK(!strcmp(l.rbd.pool, "rbd") && !strcmp(l.rbd.image, "vol"));
	CHECK(!strcmp(l.rbd.conf, "/c.conf") && !strcmp(l.rbd.user, "u"));
	lun_bad("scsi=a,target=0,lun=0,backend=rbd,pool=rbd", "needs pool= and image=");
	lun_bad("scsi=a,target=0,lun=0,path=x,image=v", "are for backend=rbd");
	lun_bad("scsi=a,target=0,lun=0,path=x,block-size=1024", "512 or 4096");
	lun_bad("scsi=a,target=0,lun=0,backend=null,size=6k,block-size=4096", "multiple of block");
	lun_bad("scsi=a,target=0,lun=0,path=x,serial=0123456789012345678901234567890123456",
		"serial");
	lun_bad("scsi=a,target=0,lun=0,path=x,cache=maybe", "cache:");
	lun_bad("scsi=a,target=0,lun=0,path=x,bogus=1", "bogus");
	printf("ok\n");
	return 0;
}
