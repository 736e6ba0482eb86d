/*
 * check.h - recfs-check internals shared by tools/recfs-check.c (options,
 * classification, the two passes), tools/check_file.c (opening a storage
 * file, its header, walking its wblocks), tools/check_table.c (the digest
 * table) and tools/check_report.c (text and JSON output).
 *
 * The checker is offline and read-only: it never writes to a storage file
 * and it links the engine only for the pure functions that define the
 * on-storage format (device_header_decode, record_flat_*), so what it calls
 * a record, a damaged record or a valid header is exactly what recfsd's
 * cold start calls one, and the newest copy of a record is chosen by the
 * same function (record_copy_is_newer, record.h).
 *
 * Memory is bounded by the number of distinct digests (one table slot per
 * digest, whatever the number of copies) plus one counter per wblock.
 */
#ifndef RECFS_TOOLS_CHECK_H
#define RECFS_TOOLS_CHECK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "base/digest.h"
#include "base/file_lock.h"
#include "record/record.h"
#include "storage/device_header.h"

/* Exit statuses (recfs-check(1)). */
#define CHECK_EXIT_CLEAN 0
#define CHECK_EXIT_CORRUPT 1
#define CHECK_EXIT_USAGE 2

/* Fill histogram buckets: 0%, 1-10%, 11-20%, ..., 91-100%. */
#define CHECK_FILL_BUCKETS 11

/* Damaged partition version slots listed per file (all are counted). */
#define CHECK_PVER_LIST 16

/* Corrupt records remembered for --json (all are counted). */
#define CHECK_CORRUPT_LIST_MAX 1000

/* What one file (or the whole set) holds. */
struct check_counts {
	uint64_t wblocks;           /* wblocks scanned */
	uint64_t records;           /* good record copies */
	uint64_t live;              /* newest copy, not tombstone/marker/expired */
	uint64_t superseded;        /* an older copy of a record */
	uint64_t tombstones;        /* newest copy is a tombstone */
	uint64_t tombstones_reclaimable; /* ... with no older copy: dropped at next start */
	uint64_t expired;           /* newest copy past its void time */
	uint64_t set_markers;       /* newest copy is a set marker */
	uint64_t corrupt;           /* damaged candidates and unreadable wblocks */
	uint64_t damaged;           /* newest copy damaged, header intact: recfsd marks
	                             * the record damaged (reads EIO) */
	uint64_t torn;              /* ... but on a file not shut down cleanly and among
	                             * its last writes: a torn write, recfsd keeps the
	                             * previous version (or drops the record) */
	uint64_t order_conflicts;   /* records whose copies disagree on order */
	uint64_t dropped;           /* copies of dropped partitions: older than the
	                             * drop time of their partition's slot, skipped
	                             * as by cold start (in no other count) */
	uint64_t bytes_live;        /* storage bytes of live records */
	uint64_t bytes_in_use;      /* bytes a cold start counts as live */
	uint64_t fill[CHECK_FILL_BUCKETS]; /* wblocks by live-byte share */
};

enum check_file_state {
	CHECK_FILE_VALID,           /* header decoded and consistent */
	CHECK_FILE_EMPTY,           /* all-zero header page: never formatted */
	CHECK_FILE_INVALID,         /* not scanned: see why */
};

struct check_file {
	const char *path;
	int fd;
	bool is_block;
	uint64_t size;              /* bytes readable */
	struct file_lock_holder holder; /* a recfsd holding the file (base/file_lock.h) */
	enum check_file_state state;
	char why[200];              /* INVALID, or short: the reason */
	bool short_file;            /* shorter than its high-water mark */
	struct device_header hdr;
	uint32_t first;             /* first data wblock id */
	uint32_t n_wblocks;         /* whole wblocks the file holds */
	uint32_t scan_end;          /* wblocks [first, scan_end) are scanned */
	uint32_t *live_bytes;       /* [id - first]: live bytes, after pass 1 */
	struct check_counts counts;
	uint64_t newest_ms;         /* newest last-update time of a copy whose header is
	                             * intact (pass 1): the torn-write window ends there */
	/* The partition versions in the pmeta area (VALID files). */
	uint64_t *pver;             /* [partition]: version, 0 for a damaged slot */
	uint32_t pver_set;          /* partitions with a version (non-zero) */
	uint32_t pver_bad;          /* slots failing their CRC */
	uint32_t pver_bad_pid[CHECK_PVER_LIST]; /* the first of them */
	uint64_t *pdrop;            /* [partition]: drop time in this file's slot, else 0 */
	uint32_t pdrop_set;         /* partitions with a drop time here */
	uint32_t *pkeep;            /* [partition]: CHECK_KEEP(mark) if the slot says
	                             * regained, else 0 */
	uint32_t pregained_set;     /* partitions regained here (with a drop time) */
	const uint64_t *set_drop;   /* [partition]: the drop time recfsd applies (the
	                             * set's files agree on the slot), else 0; set by
	                             * the set check before any walk (NULL: none) */
	const uint32_t *set_keep;   /* [partition]: pkeep where set_drop is set */
};

/* A regained slot's mark, as pkeep holds it (0: not regained). */
#define CHECK_KEEP(mark) (0x10000u | (uint32_t)(mark))

/* ---- one file (check_file.c) ---------------------------------------------- */

/* Open path read-only and find its size: 0 or -errno (fd stays -1). */
int check_file_open(struct check_file *f, const char *path);
/* Read and validate the header page and set state, first, scan_end (all
 * true: up to the end of the file, else up to the high-water mark).
 * 0, or -errno if the page could not be read. */
int check_file_header(struct check_file *f, bool all);
void check_file_close(struct check_file *f);
/* Read a VALID file's partition versions into pver, pver_set, pver_bad and
 * the drop times and regains into pdrop, pkeep, pdrop_set, pregained_set
 * (device_pmeta_area_decode, as
 * recfsd reads them).  0, -ENOMEM or -errno;
 * bytes past the end of the file count as zero (version 0). */
int check_file_pversions(struct check_file *f);

enum check_item_kind {
	CHECK_ITEM_RECORD,          /* a verified, decoded record copy */
	CHECK_ITEM_CORRUPT,         /* a damaged candidate */
	CHECK_ITEM_READ_ERROR,      /* a wblock that could not be read */
	CHECK_ITEM_DROPPED,         /* a copy (intact, or damaged with its header
	                             * intact) of a partition dropped after it was
	                             * written (set_drop): not present for recfsd */
};

/* One thing the walk found, valid during the callback only. */
struct check_item {
	enum check_item_kind kind;
	uint64_t offset;            /* byte offset in the file */
	uint32_t size;              /* bytes on storage (RECORD; CORRUPT if known) */
	const struct record *rec;   /* RECORD; DROPPED (decoded or salvaged) */
	uint64_t drop_ms;           /* DROPPED, and CORRUPT with header_ok when the
	                             * copy is stale by it: its partition's drop time */
	const char *why;            /* CORRUPT, READ_ERROR */
	bool has_digest;            /* CORRUPT: the structural check passed */
	struct digest digest;       /* CORRUPT with has_digest (unproven unless header_ok) */
	bool header_ok;             /* CORRUPT: record_flat_header_check passed */
	const struct record *salvage; /* CORRUPT with header_ok: record_flat_salvage */
	unsigned salvage_parts;     /* ... and what it proved (RECORD_SALVAGE_*) */
	const uint8_t *raw;         /* CORRUPT: the candidate's bytes ... */
	uint32_t raw_avail;         /* ... readable up to the wblock end */
};

typedef int (*check_item_fn)(void *arg, struct check_file *f, const struct check_item *it);

/*
 * Walk wblocks [first, scan_end) of f the way cold start does and call fn
 * for every record copy, damaged candidate and unreadable wblock, in file
 * order.  Stops early if fn returns non-zero (returned).  0 or -ENOMEM.
 */
int check_file_walk(struct check_file *f, check_item_fn fn, void *arg);

/* ---- the digest table (check_table.c) ----------------------------------- */

/* The newest copy of one digest seen so far: 48 bytes, so the table
 * costs about 100 bytes per record at its worst load. */
struct check_entry {
	struct digest digest;
	uint16_t generation;
	uint8_t flags;              /* RECORD_F_* of the newest copy */
	uint8_t used : 1;
	uint8_t older_live : 1;     /* a non-tombstone copy older than the newest exists */
	uint8_t conflict : 1;       /* two copies disagree: generation vs last-update */
	uint8_t damaged : 1;        /* the newest copy's body is damaged (header intact):
	                             * a damaged record unless it is a tombstone or marker */
	uint8_t older_intact : 1;   /* an intact copy older than the newest exists (what
	                             * recfsd falls back to after a torn write) */
	uint32_t void_time;
	uint32_t rblocks : 20;      /* size of the newest copy / 16 */
	uint32_t file : 12;         /* index into the files given */
	uint64_t last_update_ms;
	uint64_t offset;            /* of the newest copy */
};

static inline uint32_t check_entry_size(const struct check_entry *e)
{
	return (uint32_t)e->rblocks * RBLOCK_SIZE;
}

struct check_table {
	struct check_entry *slots;
	uint64_t cap;               /* power of 2 */
	uint64_t n;
};

int check_table_init(struct check_table *t);
void check_table_fini(struct check_table *t);

/* What adding a copy did. */
enum check_merge {
	CHECK_MERGE_NEW,            /* first copy of its digest */
	CHECK_MERGE_NEWER,          /* replaced the newest copy */
	CHECK_MERGE_OLDER,          /* an older (or equal) copy */
};

/*
 * Add a copy (file index, offset, size) and keep the newest per digest by
 * the engine's rule.  A damaged copy whose header is intact takes part too
 * (r from record_flat_salvage, damaged true), as in cold start.  *conflict
 * is set when this copy and the newest so far order one way by generation
 * and the other way by last-update time.  Returns a CHECK_MERGE_* or
 * -ENOMEM.
 */
int check_table_merge(struct check_table *t, const struct record *r, bool damaged, uint16_t file,
    uint64_t offset, uint32_t size, bool *conflict, struct check_entry *other);
/* The entry of d, or NULL. */
const struct check_entry *check_table_find(const struct check_table *t, const struct digest *d);

/* ---- classification ------------------------------------------------------ */

enum check_state {
	CHECK_LIVE,
	CHECK_SUPERSEDED,
	CHECK_TOMBSTONE,
	CHECK_EXPIRED,
	CHECK_SET_MARKER,
	CHECK_DAMAGED,
};

const char *check_state_name(enum check_state s);
/* State of the newest copy e at time now (s since RECFS_EPOCH). */
enum check_state check_entry_state(const struct check_entry *e, uint32_t now);

/* ---- output (check_report.c) -------------------------------------------- */

struct check_corrupt {
	uint16_t file;
	uint64_t offset;
	bool has_digest;
	struct digest digest;
	char why[96];
};

/* Everything the report needs. */
struct check_run {
	struct check_file *files;
	unsigned n_files;
	const char *ns_name;        /* NULL if no file had a valid header */
	uint32_t n_devices;         /* from the headers */
	uint32_t wbs;
	uint32_t torn_window_ms;    /* flush-max-ms (--flush-max-ms) + 1000 */
	unsigned n_valid, n_empty, n_invalid;
	uint32_t pver_bad;          /* damaged version slots, all files */
	uint32_t pver_differ;       /* partitions whose version differs between files */
	uint32_t pver_differ_first; /* ... the lowest of them */
	uint64_t *pdrop;            /* [partition]: the drop time every valid file's
	                             * slot agrees on, else 0 (as recfsd reads them) */
	uint32_t *pkeep;            /* [partition]: the regain mark they agree on */
	struct check_counts total;
	uint64_t digests;           /* distinct records */
	uint64_t chunks;            /* live chunks of large files */
	uint64_t orphaned_chunks;   /* ... that no live head names */
	struct check_corrupt *corrupt_list;
	unsigned n_corrupt_list;
	char **warnings;            /* set-level notes (incomplete set, ...) */
	unsigned n_warnings;
	int exit_status;
};

void check_report_text(FILE *out, const struct check_run *run);
void check_report_json(FILE *out, const struct check_run *run);
/* Bytes as printable text: \\, \xNN for control, space and non-ASCII. */
void check_print_escaped(FILE *out, const void *s, size_t len);

#endif
