/* SPDX-License-Identifier: MIT */
/*
 * virtio_scsi.h - the virtio SCSI host device's wire format (virtio 1.2,
 * 5.6): feature bits, queue layout, the request and response headers of
 * the request, control and event queues, and the configuration space.
 *
 * Everything is little-endian on the wire and in config space.  Our own
 * definitions (the numbers are the spec's, as in Linux's
 * include/uapi/linux/virtio_scsi.h); static asserts check the layout.
 */
#ifndef VHOSTD_DEVICES_VIRTIO_SCSI_H
#define VHOSTD_DEVICES_VIRTIO_SCSI_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

/* Virtio device ID (5, "Device Types"). */
#define VIRTIO_ID_SCSI 8

/* Feature bits (5.6.3). */
#define VIRTIO_SCSI_F_INOUT   0 /* a request may carry data both ways (not offered) */
#define VIRTIO_SCSI_F_HOTPLUG 1 /* hot-plug events on the event queue */
#define VIRTIO_SCSI_F_CHANGE  2 /* parameter-change events */
#define VIRTIO_SCSI_F_T10_PI  3 /* protection information (not offered) */

/* Queues (5.6.2): control, event, then num_queues request queues. */
#define VIRTIO_SCSI_CTRL_QUEUE	0
#define VIRTIO_SCSI_EVENT_QUEUE 1
#define VIRTIO_SCSI_REQ_QUEUE0	2

/* Defaults of the configuration space (5.6.4). */
#define VIRTIO_SCSI_CDB_SIZE   32
#define VIRTIO_SCSI_SENSE_SIZE 96

/* Response codes of request and control queue requests (5.6.6.1). */
#define VIRTIO_SCSI_S_OK		 0
#define VIRTIO_SCSI_S_FUNCTION_COMPLETE	 0
#define VIRTIO_SCSI_S_OVERRUN		 1
#define VIRTIO_SCSI_S_ABORTED		 2
#define VIRTIO_SCSI_S_BAD_TARGET	 3
#define VIRTIO_SCSI_S_RESET		 4
#define VIRTIO_SCSI_S_BUSY		 5
#define VIRTIO_SCSI_S_TRANSPORT_FAILURE	 6
#define VIRTIO_SCSI_S_TARGET_FAILURE	 7
#define VIRTIO_SCSI_S_NEXUS_FAILURE	 8
#define VIRTIO_SCSI_S_FAILURE		 9
#define VIRTIO_SCSI_S_FUNCTION_SUCCEEDED 10
#define VIRTIO_SCSI_S_FUNCTION_REJECTED	 11
#define VIRTIO_SCSI_S_INCORRECT_LUN	 12

/* Task attributes of a command request. */
#define VIRTIO_SCSI_S_SIMPLE  0
#define VIRTIO_SCSI_S_ORDERED 1
#define VIRTIO_SCSI_S_HEAD    2
#define VIRTIO_SCSI_S_ACA     3

/* Control queue request types (5.6.6.2). */
#define VIRTIO_SCSI_T_TMF	   0
#define VIRTIO_SCSI_T_AN_QUERY	   1
#define VIRTIO_SCSI_T_AN_SUBSCRIBE 2

/* Task management function subtypes. */
#define VIRTIO_SCSI_T_TMF_ABORT_TASK	     0
#define VIRTIO_SCSI_T_TMF_ABORT_TASK_SET     1
#define VIRTIO_SCSI_T_TMF_CLEAR_ACA	     2
#define VIRTIO_SCSI_T_TMF_CLEAR_TASK_SET     3
#define VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET    4
#define VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET 5
#define VIRTIO_SCSI_T_TMF_QUERY_TASK	     6
#define VIRTIO_SCSI_T_TMF_QUERY_TASK_SET     7

/* Event types (5.6.6.3). */
#define VIRTIO_SCSI_T_NO_EVENT	      0
#define VIRTIO_SCSI_T_TRANSPORT_RESET 1
#define VIRTIO_SCSI_T_ASYNC_NOTIFY    2
#define VIRTIO_SCSI_T_PARAM_CHANGE    3
#define VIRTIO_SCSI_T_EVENTS_MISSED   0x80000000u

/* TRANSPORT_RESET reasons. */
#define VIRTIO_SCSI_EVT_RESET_HARD    0
#define VIRTIO_SCSI_EVT_RESET_RESCAN  1
#define VIRTIO_SCSI_EVT_RESET_REMOVED 2

/* Asynchronous notification classes (the event_requested bits). */
#define VIRTIO_SCSI_EVT_ASYNC_OPERATIONAL_CHANGE 2
#define VIRTIO_SCSI_EVT_ASYNC_POWER_MGMT	 4
#define VIRTIO_SCSI_EVT_ASYNC_EXTERNAL_REQUEST	 8
#define VIRTIO_SCSI_EVT_ASYNC_MEDIA_CHANGE	 16
#define VIRTIO_SCSI_EVT_ASYNC_MULTI_HOST	 32
#define VIRTIO_SCSI_EVT_ASYNC_DEVICE_BUSY	 64

/*
 * A command request (5.6.6.1): this header (with cdb_size bytes of CDB),
 * then data-out; the device writes the response header, then data-in.
 * The driver may split either header over several descriptors, so both
 * are gathered / scattered with iov_to_buf() / iov_from_buf().
 */
struct virtio_scsi_cmd_req {
	uint8_t lun[8];	   /* 1, target, flat LUN (2 bytes), 0 ... */
	uint64_t tag;	   /* le64, the command's identifier */
	uint8_t task_attr; /* VIRTIO_SCSI_S_SIMPLE ... */
	uint8_t prio;
	uint8_t crn;
	uint8_t cdb[VIRTIO_SCSI_CDB_SIZE];
} __attribute__((packed));
static_assert(sizeof(struct virtio_scsi_cmd_req) == 51, "virtio_scsi_cmd_req layout");

struct virtio_scsi_cmd_resp {
	uint32_t sense_len;	   /* le32: bytes of sense written */
	uint32_t resid;		   /* le32: data bytes not transferred */
	uint16_t status_qualifier; /* le16 */
	uint8_t status;		   /* SCSI status (GOOD, CHECK CONDITION, ...) */
	uint8_t response;	   /* VIRTIO_SCSI_S_* */
	uint8_t sense[VIRTIO_SCSI_SENSE_SIZE];
} __attribute__((packed));
static_assert(sizeof(struct virtio_scsi_cmd_resp) == 108, "virtio_scsi_cmd_resp layout");

/* Control queue: task management (5.6.6.2). */
struct virtio_scsi_ctrl_tmf_req {
	uint32_t type;	  /* le32 VIRTIO_SCSI_T_TMF */
	uint32_t subtype; /* le32 VIRTIO_SCSI_T_TMF_* */
	uint8_t lun[8];
	uint64_t tag; /* le64: ABORT_TASK / QUERY_TASK's command */
} __attribute__((packed));
static_assert(sizeof(struct virtio_scsi_ctrl_tmf_req) == 24, "tmf req layout");

struct virtio_scsi_ctrl_tmf_resp {
	uint8_t response;
} __attribute__((packed));

/* Control queue: asynchronous notification query / subscribe. */
struct virtio_scsi_ctrl_an_req {
	uint32_t type; /* le32 VIRTIO_SCSI_T_AN_QUERY / _SUBSCRIBE */
	uint8_t lun[8];
	uint32_t event_requested; /* le32 */
} __attribute__((packed));
static_assert(sizeof(struct virtio_scsi_ctrl_an_req) == 16, "an req layout");

struct virtio_scsi_ctrl_an_resp {
	uint32_t event_actual; /* le32 */
	uint8_t response;
} __attribute__((packed));
static_assert(sizeof(struct virtio_scsi_ctrl_an_resp) == 5, "an resp layout");

/* Event queue: one device-writable buffer per event (5.6.6.3). */
struct virtio_scsi_event {
	uint32_t event; /* le32 VIRTIO_SCSI_T_*, maybe | EVENTS_MISSED */
	uint8_t lun[8];
	uint32_t reason; /* le32 */
} __attribute__((packed));
static_assert(sizeof(struct virtio_scsi_event) == 16, "event layout");

/* Configuration space (5.6.4). */
struct virtio_scsi_config {
	uint32_t num_queues; /* request queues */
	uint32_t seg_max;
	uint32_t max_sectors;
	uint32_t cmd_per_lun;
	uint32_t event_info_size;
	uint32_t sense_size; /* writable by the driver */
	uint32_t cdb_size;   /* writable by the driver */
	uint16_t max_channel;
	uint16_t max_target;
	uint32_t max_lun;
} __attribute__((packed));
static_assert(offsetof(struct virtio_scsi_config, sense_size) == 20, "config layout");
static_assert(offsetof(struct virtio_scsi_config, max_channel) == 28, "config layout");
static_assert(sizeof(struct virtio_scsi_config) == 36, "config layout");

#endif /* VHOSTD_DEVICES_VIRTIO_SCSI_H */
