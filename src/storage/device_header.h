/*
 * device_header.h - the header at the start of every device or file of the
 * device engine (and of every shadow file of the memory engine).
 *
 * The first STORAGE_HEADER_SIZE (8 MiB) bytes of a device are its header
 * area; wblock 0.. of that area are never used for records.  Only the first
 * 4 KiB page holds fields; the pmeta area holds one slot per partition (4096
 * of them) with the partition's version, which the cluster sets
 * (device_pversion.c writes them; docs/storage-format.md): from format
 * version 3 on 128 KiB at 128 KiB (32-byte slots), before that 64 KiB right
 * after the first page (16-byte slots).
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
 * Version 3: the pmeta area moves to DEVICE_PMETA_OFFSET with 32-byte slots
 * (drop time, regain mark), and records may carry a regain mark, which an
 * older build would reject as damaged.  A version 1 or 2 device is still
 * read (its 16-byte slots at DEVICE_PMETA_OFFSET_V2); opened for writing,
 * its table is written in the new area (synced) before its header says 3,
 * so a crash between the two leaves the old table in force.
 */
#define DEVICE_HEADER_VERSION 3
#define DEVICE_HEADER_VERSION_MIN 1
#define DEVICE_F_CLEAN 0x1
#define DEVICE_F_STALE 0x2
#define DEVICE_PMETA_OFFSET (128u << 10)
#define DEVICE_PMETA_SLOT 32
#define DEVICE_PMETA_SLOTS 4096
#define DEVICE_PMETA_SIZE (DEVICE_PMETA_SLOT * DEVICE_PMETA_SLOTS)
/* Versions 1 and 2. */
#define DEVICE_PMETA_OFFSET_V2 4096
#define DEVICE_PMETA_SLOT_V2 16
#define DEVICE_PMETA_SIZE_V2 (DEVICE_PMETA_SLOT_V2 * DEVICE_PMETA_SLOTS)
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
 * One partition's slot in the pmeta area, version 3: at DEVICE_PMETA_OFFSET
 * + 32 x partition id (little-endian):
 *
 *   off  size  field
 *     0     8  version (0: the partition holds no data here)
 *     8     8  drop time: 0, or when this node last dropped its copy of the
 *              partition (ms since 2010-01-01, the clock of last-update
 *              times); kept when the partition is regained
 *    16     2  regain mark: the last mark given to a regain of the partition
 *              here (copies stored under the regain carry it)
 *    18     2  reserved, 0
 *    20     4  flags: DEVICE_PMETA_F_REGAINED, the others 0
 *    24     4  reserved, 0
 *    28     4  CRC32C of bytes [0, 28)
 *
 * A slot of zeros (never written, or version 0 never dropped) has no CRC.
 *
 * Versions 1 and 2 (16 bytes at DEVICE_PMETA_OFFSET_V2 + 16 x id): the
 * version, or with flag 0x1 at offset 8 the drop time (version 0); flags
 * u32 at 8, CRC32C of [0, 12) at 12.  Such a slot reads as its version or
 * drop time, mark 0, not regained.
 */
struct device_pmeta {
	uint64_t version;
	uint64_t drop_ms;          /* 0: never dropped */
	uint16_t mark;             /* the last regain mark given */
	bool regained;             /* a version was stored since the drop: copies
	                            * older than the drop that carry mark load */
};
#define DEVICE_PMETA_F_REGAINED 0x2u
#define DEVICE_PMETA_F_DROPPED_V2 0x1u

void device_pmeta_slot_encode3(const struct device_pmeta *s, uint8_t slot[DEVICE_PMETA_SLOT]);
/* 0 and *s set (zeros: all 0); RECFS_ECHECKSUM if the CRC does not match
 * or an unknown flag or reserved byte is set (*s all 0). */
int device_pmeta_slot_decode3(const uint8_t slot[DEVICE_PMETA_SLOT], struct device_pmeta *s);
/* A version 1 or 2 slot (16 bytes), the same way. */
int device_pmeta_slot_decode_v2(const uint8_t slot[DEVICE_PMETA_SLOT_V2], struct device_pmeta *s);
/* Partition p's slot in a pmeta area read from a device whose header has
 * format version hdr_version (the area as long as that version's). */
int device_pmeta_area_decode(const uint8_t *area, uint32_t hdr_version, uint32_t p, struct device_pmeta *s);
static inline uint64_t device_pmeta_area_offset(uint32_t hdr_version)
{
	return hdr_version >= 3 ? DEVICE_PMETA_OFFSET : DEVICE_PMETA_OFFSET_V2;
}
static inline uint32_t device_pmeta_area_size(uint32_t hdr_version)
{
	return hdr_version >= 3 ? DEVICE_PMETA_SIZE : DEVICE_PMETA_SIZE_V2;
}

/* The next regain mark after mark (never 0: 0 is a copy stored normally). */
static inline uint16_t device_pmeta_next_mark(uint16_t mark)
{
	return mark == UINT16_MAX ? 1 : (uint16_t)(mark + 1);
}

/*
 * Is a copy (last updated at lut_ms, carrying regain mark copy_mark) stale
 * on a device whose slot for its partition says s?  Older than the drop,
 * unless the partition was regained and the copy was stored under that
 * regain (its mark is the slot's), or it is a set's marker (kept on every
 * node whatever its partition; a drop leaves it).  Cold start skips such
 * copies and recfs-check counts them apart: one rule for both.
 */
static inline bool device_pmeta_copy_stale(uint64_t drop_ms, bool regained, uint16_t slot_mark,
    uint64_t lut_ms, uint16_t copy_mark, bool set_marker)
{
	return drop_ms != 0 && lut_ms < drop_ms && !(regained && copy_mark == slot_mark) && !set_marker;
}

/* Version 3 slots of version v, never dropped; and their version. */
void device_pmeta_slot_encode(uint64_t version, uint8_t slot[DEVICE_PMETA_SLOT]);
int device_pmeta_slot_decode(const uint8_t slot[DEVICE_PMETA_SLOT], uint64_t *version);

#endif
