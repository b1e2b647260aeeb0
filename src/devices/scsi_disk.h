/* SPDX-License-Identifier: MIT */
/*
 * scsi_disk.h - SCSI direct-access block device emulation (the SPC-4 /
 * SBC-3 subset that Linux's sd and sg drivers and sg3-utils use), apart
 * from any transport: virtio-scsi (scsi.c) hands it a copied CDB and the
 * data buffers, and gets back either a finished command (status, fixed
 * format sense, data-in written) or one block operation to carry out.
 *
 * Trust.  The CDB is a copy the caller made once; parameter data (MODE
 * SELECT pages, UNMAP descriptors, the WRITE SAME block) is copied out of
 * the data-out buffers once into bounded storage before it is looked at.
 * Every LBA range is checked against the capacity with overflow-safe
 * arithmetic before an operation is returned, and a transfer that needs
 * more bytes than the driver's buffers hold is refused (overrun) before
 * anything is read or written.
 *
 * Where QEMU's scsi-hd answers a command, the answer has the same fields
 * (vendor, product and revision strings aside).  Extensions over it: the
 * control mode page, REPORT SUPPORTED OPERATION CODES and sense-key
 * specific field pointers on INVALID FIELD IN CDB.
 *
 * Threads.  A struct scsi_disk is shared by every request queue of its
 * controller: the capacity, the write cache flag and the pending unit
 * attentions are atomics, everything else is fixed at creation.
 */
#ifndef VHOSTD_DEVICES_SCSI_DISK_H
#define VHOSTD_DEVICES_SCSI_DISK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* SCSI status codes (SAM-5). */
#define SCSI_STATUS_GOOD	    0x00
#define SCSI_STATUS_CHECK_CONDITION 0x02
#define SCSI_STATUS_BUSY	    0x08

/* Sense keys (SPC-4 4.5.6). */
#define SCSI_SK_NO_SENSE	0x0
#define SCSI_SK_NOT_READY	0x2
#define SCSI_SK_MEDIUM_ERROR	0x3
#define SCSI_SK_ILLEGAL_REQUEST 0x5
#define SCSI_SK_UNIT_ATTENTION	0x6
#define SCSI_SK_DATA_PROTECT	0x7
#define SCSI_SK_ABORTED_COMMAND 0xb

/* Fixed-format sense data length we return (SPC-4 4.5.3). */
#define SCSI_SENSE_LEN 18

/* Largest emulated data-in / parameter list we build or accept. */
#define SCSI_PARAM_MAX 4096
/* UNMAP block descriptors per command (VPD 0xB0; 255 fit in 4 KiB). */
#define SCSI_UNMAP_MAX_DESC 255
/* Blocks per UNMAP descriptor / WRITE SAME, in 512-byte sectors (VPD 0xB0). */
#define SCSI_MAX_UNMAP_SECTORS (1u << 22) /* 2 GiB */
/* LUNs a REPORT LUNS may list (the transport's limit per target). */
#define SCSI_REPORT_LUNS_MAX 256

/* Pending unit attentions, highest priority first (reported in this order). */
enum scsi_ua {
	SCSI_UA_RESET = 1u << 0,	    /* 29h/00h POWER ON, RESET, OR BUS DEVICE RESET */
	SCSI_UA_CAPACITY_CHANGED = 1u << 1, /* 2Ah/09h CAPACITY DATA HAS CHANGED */
	SCSI_UA_LUNS_CHANGED = 1u << 2,	    /* 3Fh/0Eh REPORTED LUNS DATA HAS CHANGED */
};

struct scsi_disk_config {
	uint64_t size;		      /* bytes */
	uint32_t block_size;	      /* 512 or 4096 */
	uint32_t physical_block_size; /* >= block_size, a power of two */
	uint32_t discard_granularity; /* bytes; 0: the block size */
	bool readonly;
	bool no_unmap;	    /* the storage cannot deallocate (an NBD server without trim) */
	bool writeback;	    /* WCE at power on */
	const char *serial; /* VPD 0x80 (first 36 bytes) and the ids of VPD 0x83 */
};

/* One logical unit's SCSI state. */
struct scsi_disk {
	uint32_t block_size;
	uint8_t block_shift;
	uint8_t phys_exp; /* log2(physical / logical) */
	bool readonly;
	bool no_unmap;		    /* no logical block provisioning advertised */
	uint32_t unmap_granularity; /* logical blocks */
	char serial[37];
	char t10_id[21]; /* the serial cut to 20, as QEMU's device_id */
	uint64_t naa;	 /* NAA 6 identifier derived from the serial */

	_Atomic uint64_t nr_blocks;
	atomic_bool wce;
	atomic_uint ua; /* enum scsi_ua bits */

	/*
	 * The sense of the last command that ended in CHECK CONDITION, until
	 * one ends GOOD (QEMU's SCSIDevice sense): what REQUEST SENSE returns.
	 * Under a spin lock, taken only on those two paths.
	 */
	atomic_flag sense_lock;
	atomic_uchar last_sense_len; /* read without the lock on the GOOD path */
	uint8_t last_sense[SCSI_SENSE_LEN];
};

/* The data buffers of one command, after the transport's headers. */
struct scsi_bufs {
	const struct iovec *out;
	unsigned int out_cnt;
	size_t out_len;
	const struct iovec *in;
	unsigned int in_cnt;
	size_t in_len;
};

/* What a command still needs once parsed. */
enum scsi_op {
	SCSI_OP_NONE,	      /* finished: status, sense and data-in are set */
	SCSI_OP_READ,	      /* read lba/nblocks into the data-in buffers */
	SCSI_OP_WRITE,	      /* write lba/nblocks from the data-out buffers */
	SCSI_OP_FLUSH,	      /* SYNCHRONIZE CACHE, or MODE SELECT turning WCE off */
	SCSI_OP_UNMAP,	      /* deallocate every range */
	SCSI_OP_WRITE_ZEROES, /* lba/nblocks read back as zeroes (maybe unmapped) */
	SCSI_OP_WRITE_SAME,   /* write ws_block over lba/nblocks */
};

#define SCSI_IO_FUA   1u /* durable when completed */
#define SCSI_IO_UNMAP 2u /* WRITE_ZEROES may deallocate */

struct scsi_range {
	uint64_t lba;
	uint32_t nblocks;
};

/*
 * One command's state, embedded in the transport's request slot (no
 * allocation per command).  Filled by scsi_disk_exec() and friends.
 */
struct scsi_task {
	/* result */
	uint8_t status;
	bool overrun;	   /* the CDB needs more buffer than given: not executed */
	uint8_t sense_len; /* 0 or SCSI_SENSE_LEN */
	uint8_t sense[SCSI_SENSE_LEN];
	uint32_t data_in; /* bytes written to the data-in buffers */

	/* the block operation, if op != SCSI_OP_NONE */
	uint8_t op;    /* enum scsi_op */
	uint8_t flags; /* SCSI_IO_* */
	uint8_t opcode;
	uint64_t lba;
	uint64_t nblocks;
	uint16_t nr_ranges;
	union {
		struct scsi_range ranges[SCSI_UNMAP_MAX_DESC];
		uint8_t ws_block[SCSI_PARAM_MAX]; /* one logical block */
	};
};

/* Set up @d from @cfg.  0 or -EINVAL (bad block sizes). */
int scsi_disk_init(struct scsi_disk *d, const struct scsi_disk_config *cfg);
/* A new size (bytes) after the image grew or shrank: capacity UA raised. */
void scsi_disk_resize(struct scsi_disk *d, uint64_t size);
uint64_t scsi_disk_blocks(const struct scsi_disk *d);
/* Raise unit attentions (enum scsi_ua bits) for the next command. */
void scsi_disk_set_ua(struct scsi_disk *d, unsigned int ua);
/* LOGICAL UNIT RESET: mode pages back to power-on values, UA RESET. */
void scsi_disk_reset(struct scsi_disk *d, bool writeback);

/*
 * Parse and run @cdb (a copy of @cdb_len bytes, at least 16; the rest
 * zero) against @d.  Returns the op left to do (SCSI_OP_NONE: @t is
 * complete).  @d->readonly refuses writes with DATA PROTECT.
 */
enum scsi_op scsi_disk_exec(struct scsi_disk *d, struct scsi_task *t, const uint8_t *cdb,
			    const struct scsi_bufs *b);
/* The block operation of @t finished with @res (>= 0 or -errno): status and sense. */
void scsi_task_io_done(struct scsi_task *t, int64_t res);
/* @t is complete (status final): remember its sense, or forget the last one. */
void scsi_disk_task_done(struct scsi_disk *d, const struct scsi_task *t);

/*
 * Target-level commands, answered for any LUN of an existing target
 * (SPC-4 and QEMU's scsi-bus): REPORT LUNS lists @luns (@n of them,
 * LUN 0 always included), a command to a LUN the target lacks gets
 * peripheral qualifier 3 for INQUIRY and LOGICAL UNIT NOT SUPPORTED
 * otherwise.
 */
bool scsi_cdb_is_report_luns(const uint8_t *cdb);
void scsi_report_luns(struct scsi_task *t, const uint8_t *cdb, const uint16_t *luns, unsigned int n,
		      const struct scsi_bufs *b);
void scsi_absent_lun(struct scsi_task *t, const uint8_t *cdb, const struct scsi_bufs *b);

/* Fill @t with CHECK CONDITION and fixed-format sense key/asc/ascq. */
void scsi_task_check(struct scsi_task *t, uint8_t key, uint8_t asc, uint8_t ascq);

#endif /* VHOSTD_DEVICES_SCSI_DISK_H */
