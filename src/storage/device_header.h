/*
 * device_header.h - the header at the start of every device or file of the
 * device engine (and of every shadow file of the memory engine).
 *
 * The first STORAGE_HEADER_SIZE (8 MiB) bytes of a device are its header
 * area; wblock 0.. of that area are never used for records.  Only the first
 * 4 KiB page holds fields today; the next 64 KiB are reserved for per-
 * partition metadata the cluster will keep there (16 bytes x 4096 partitions,
 * as Aerospike's header does).  Layout of the first page (little-endian):
 *
 *   off  size  field
 *     0     8  magic "RECFSDV1"
 *     8     4  format version (DEVICE_HEADER_VERSION)
 *    12     4  write-block-size
 *    16    32  namespace name, NUL-padded
 *    48     4  number of devices in the namespace
 *    52     4  index of this device (0-based)
 *    56     4  flags (DEVICE_F_CLEAN: shut down cleanly; DEVICE_F_STALE:
 *              wblocks at or above the high water may hold an erased
 *              format's records, zeroed before the mark passes them)
 *    60     4  reserved, 0
 *    64     8  signature: random, shared by every device of the namespace
 *    72     8  device size in bytes when formatted
 *    80     4  high water: no wblock id >= this was ever written
 *    84     4  reserved, 0
 *    88     8  created, ms since RECFS_EPOCH
 *    96     8  opens: times the device was opened for writing
 *   ...        zero
 *  4092     4  CRC32C of bytes [0, 4092)
 */
#ifndef RECFS_STORAGE_DEVICE_HEADER_H
#define RECFS_STORAGE_DEVICE_HEADER_H

#include <stdbool.h>
#include <stdint.h>

#include "../config/config.h"

#define DEVICE_HEADER_PAGE 4096
/*
 * Version 2: the wblocks may hold records of format version 2 (record.h),
 * which a version 1 build would skip as not records.  A version 1 device
 * (records of version 1 only) is still read, and its header is rewritten
 * as version 2 when the daemon opens it for writing.
 */
#define DEVICE_HEADER_VERSION 2
#define DEVICE_HEADER_VERSION_MIN 1
#define DEVICE_F_CLEAN 0x1
#define DEVICE_F_STALE 0x2
#define DEVICE_PMETA_OFFSET 4096
#define DEVICE_PMETA_SIZE (16 * 4096)

struct device_header {
	uint32_t version;
	uint32_t write_block_size;
	char ns_name[CONFIG_NAME_MAX + 1];
	uint32_t n_devices;
	uint32_t device_index;
	uint32_t flags;
	uint64_t signature;
	uint64_t device_size;
	uint32_t high_water;
	uint64_t created_ms;
	uint64_t opens;
};

/* Encode into a DEVICE_HEADER_PAGE-byte page (zeroed first). */
void device_header_encode(const struct device_header *h, uint8_t *page);

/*
 * Decode a page: 0 and *h filled; 1 if the page is all zeros (a fresh
 * device); RECFS_EFORMAT (not a recfs device, or a damaged header: CRC),
 * RECFS_EVERSION (a format version outside DEVICE_HEADER_VERSION_MIN ..
 * DEVICE_HEADER_VERSION).  why (may be NULL) gets a
 * sentence for the log.
 */
int device_header_decode(const uint8_t *page, struct device_header *h, char *why, size_t why_size);

#endif
