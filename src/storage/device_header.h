/*
 * device_header.h - the header at the start of every device or file of the
 * device engine (and of every shadow file of the memory engine).
 *
 * The first STORAGE_HEADER_SIZE (8 MiB) bytes of a device are its header
 * area; wblock 0.. of that area are never used for records.  Only the first
 * 4 KiB page holds fields; the next 64 KiB (the pmeta area) hold one 16-byte
 * slot per partition (4096 of them) with the partition's version, which the
 * cluster sets (device_pversion.c writes them; docs/storage-format.md).
 * Layout of the first page (little-endian):
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
#define DEVICE_PMETA_SLOT 16
#define DEVICE_PMETA_SLOTS 4096
#define DEVICE_PMETA_SIZE (DEVICE_PMETA_SLOT * DEVICE_PMETA_SLOTS)
/* Slots per 4 KiB page of the pmeta area (the unit store_one rewrites). */
#define DEVICE_PMETA_PAGE_SLOTS (DEVICE_HEADER_PAGE / DEVICE_PMETA_SLOT)

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

/*
 * One partition's slot in the pmeta area, at DEVICE_PMETA_OFFSET + 16 x
 * partition id (little-endian):
 *
 *   off  size  field
 *     0     8  version (0: the partition holds no data here); with flag
 *              DEVICE_PMETA_F_DROPPED: the drop time instead (ms since
 *              2010-01-01, the clock of last-update times), the version being 0
 *     8     4  flags: DEVICE_PMETA_F_DROPPED, the others 0
 *    12     4  CRC32C of bytes [0, 12)
 *
 * Version 0 without a drop is stored as 16 zero bytes, as a fresh device
 * holds, so a never-written area and a stored 0 look alike.
 */
#define DEVICE_PMETA_F_DROPPED 0x1u
/* drop_ms: 0, or the time the partition's copy was dropped (version 0). */
void device_pmeta_slot_encode_ex(uint64_t version, uint64_t drop_ms, uint8_t slot[DEVICE_PMETA_SLOT]);
/* 0 and *version, *drop_ms set (16 zero bytes: 0, 0); RECFS_ECHECKSUM if
 * the CRC does not match or an unknown flag is set (both 0). */
int device_pmeta_slot_decode_ex(const uint8_t slot[DEVICE_PMETA_SLOT], uint64_t *version, uint64_t *drop_ms);
/* Is a copy last updated at lut_ms stale on a device whose slot for its
 * partition says dropped at drop_ms (0: not dropped)?  Older than the drop:
 * yes, unless it is a set's marker (kept on every node whatever its
 * partition; a drop leaves it).  Cold start skips such copies and
 * recfs-check counts them apart: one rule for both. */
static inline bool device_pmeta_copy_dropped(uint64_t drop_ms, uint64_t lut_ms, bool set_marker)
{
	return drop_ms != 0 && lut_ms < drop_ms && !set_marker;
}
/* The same without a drop time (a dropped slot decodes as version 0). */
void device_pmeta_slot_encode(uint64_t version, uint8_t slot[DEVICE_PMETA_SLOT]);
int device_pmeta_slot_decode(const uint8_t slot[DEVICE_PMETA_SLOT], uint64_t *version);

#endif
