// SPDX-License-Identifier: MIT
/*
 * fuzz_scsi_cdb.c - libFuzzer harness of the SCSI command parser
 * (src/devices/scsi_disk.c): any CDB, any parameter data, any buffer
 * sizes, against a disk of 4096 blocks.  Checks, beyond ASan/UBSan: no
 * byte is written past the data-in buffers, a block operation stays
 * inside the disk and inside the buffers of its direction, sense is
 * either absent or 18 bytes of fixed format, and an overrun moves nothing.
 *
 * Input: flags (1 byte: 1 read-only, 2 4 KiB blocks, 4 absent LUN,
 * 8 REPORT LUNS through the target), data-in length (2 bytes, le, at most
 * 8192), where the data-in buffer splits (1 byte), the CDB (16 bytes),
 * then the data-out bytes.  Seeds: tests/fuzz/scsi-corpus.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "devices/scsi_disk.h"

#define IN_MAX	   8192u
#define GUARD	   64u
#define HDR	   20u
#define DISK_BYTES (4096ull * 4096)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t in[IN_MAX + GUARD], pattern[IN_MAX + GUARD];
	static struct scsi_task t;
	struct scsi_disk_config cfg;
	struct scsi_disk d;
	struct iovec in_iov[2], out_iov[1];
	struct scsi_bufs b;
	uint8_t cdb[32] = {0};
	size_t in_len, split;
	uint8_t flags;
	enum scsi_op op;

	if (size < HDR)
		return 0;
	check_abort_on_failure();
	flags = data[0];
	in_len = (size_t)(data[1] | data[2] << 8) % (IN_MAX + 1);
	split = in_len ? (size_t)data[3] * in_len / 256 : 0;
	memcpy(cdb, data + 4, 16);

	cfg = (struct scsi_disk_config){
		.size = DISK_BYTES,
		.block_size = (flags & 2) ? 4096 : 512,
		.physical_block_size = 4096,
		.readonly = flags & 1,
		.writeback = true,
		.serial = "FUZZ-SERIAL",
	};
	CHECK_EQ(scsi_disk_init(&d, &cfg), 0);
	memset(in, 0xa5, sizeof(in));
	in_iov[0] = (struct iovec){in, split};
	in_iov[1] = (struct iovec){in + split, in_len - split};
	out_iov[0] = (struct iovec){(void *)(data + HDR), size - HDR};
	b = (struct scsi_bufs){
		.out = out_iov,
		.out_cnt = 1,
		.out_len = size - HDR,
		.in = in_iov,
		.in_cnt = 2,
		.in_len = in_len,
	};

	if (flags & 8) {
		static const uint16_t luns[] = {0, 1, 2, 300, 16383};

		scsi_report_luns(&t, cdb, luns, 5, &b);
		op = SCSI_OP_NONE;
	} else if (flags & 4) {
		scsi_absent_lun(&t, cdb, &b);
		op = SCSI_OP_NONE;
	} else {
		/* Twice: the second sees no power-on unit attention. */
		scsi_disk_exec(&d, &t, cdb, &b);
		op = scsi_disk_exec(&d, &t, cdb, &b);
	}

	/*
	 * Nothing past in_len was written.  memcmp against a pattern, not a
	 * byte loop: the loop (instrumented for coverage) took most of the
	 * time of an input.
	 */
	if (!pattern[0])
		memset(pattern, 0xa5, sizeof(pattern));
	CHECK(!memcmp(in + in_len, pattern, IN_MAX + GUARD - in_len));
	CHECK(t.data_in <= in_len);
	CHECK(t.sense_len == 0 || (t.sense_len == SCSI_SENSE_LEN && t.sense[0] == 0x70));
	CHECK((t.status == SCSI_STATUS_GOOD) == !t.sense_len);
	if (t.overrun) {
		CHECK_EQ(t.data_in, 0);
		CHECK_EQ(op, SCSI_OP_NONE);
	}
	if (op == SCSI_OP_NONE)
		return 0;
	CHECK_EQ(t.status, SCSI_STATUS_GOOD);
	switch (op) {
	case SCSI_OP_READ:
	case SCSI_OP_WRITE:
		CHECK(t.nblocks);
		CHECK(t.nblocks * cfg.block_size <= (op == SCSI_OP_READ ? in_len : size - HDR));
		/* fall through */
	case SCSI_OP_WRITE_ZEROES:
	case SCSI_OP_WRITE_SAME:
		CHECK(t.lba <= scsi_disk_blocks(&d) && t.nblocks <= scsi_disk_blocks(&d) - t.lba);
		CHECK(op == SCSI_OP_READ || !cfg.readonly);
		break;
	case SCSI_OP_UNMAP:
		CHECK(!cfg.readonly);
		CHECK(t.nr_ranges && t.nr_ranges <= SCSI_UNMAP_MAX_DESC);
		for (unsigned int i = 0; i < t.nr_ranges; i++)
			CHECK(t.ranges[i].lba <= scsi_disk_blocks(&d) &&
			      t.ranges[i].nblocks <= scsi_disk_blocks(&d) - t.ranges[i].lba);
		break;
	default:
		break;
	}
	scsi_task_io_done(&t, -5);
	CHECK_EQ(t.status, SCSI_STATUS_CHECK_CONDITION);
	return 0;
}
