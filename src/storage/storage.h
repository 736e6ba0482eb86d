/*
 * storage.h - the storage engine interface: one ops table that the memory
 * engine (storage_memory.c) and the device engine implement.
 *
 * An engine stores flat records (record.h) in write blocks (wblocks) of
 * write-block-size bytes, allocated in 16-byte rblocks, and answers with a
 * location: which file or stripe, which rblock, how many rblocks.  It never
 * interprets records beyond their header; everything about which copy is
 * current belongs to the owner (the namespace), which the engine calls back
 * during defragmentation and cold start.
 *
 * Threads: write/read/free/sync may be called concurrently from any thread.
 * The engine runs its own background threads (defrag; flushers for device
 * and shadow).  Callbacks into the owner run on those threads.
 *
 * Lock order: the owner calls write/free while holding a record lock; the
 * engine never calls the owner while holding an engine lock.
 */
#ifndef RECFS_STORAGE_STORAGE_H
#define RECFS_STORAGE_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../config/config.h"
#include "../record/record.h"

/* Bytes reserved at the start of every device, file or stripe image for the
 * header (docs/storage-format.md, Device layout); record locations count from the start of the file. */
#define STORAGE_HEADER_SIZE (8u << 20)

/* Partitions whose version the engine keeps (one slot each per device):
 * every partition of a namespace (PARTITION_COUNT, base/digest.h). */
#define STORAGE_PARTITIONS 4096

/*
 * A location: file/stripe id (7 bits), rblock id = byte offset / 16 (37
 * bits: 2 TiB), rblock count - 1 (19 bits: 8 MiB).  0 = nowhere.
 */
typedef uint64_t storage_loc;

static inline storage_loc
storage_loc_make(uint32_t file_id, uint64_t offset, uint32_t size)
{
	return ((uint64_t)file_id << 56) | ((offset / RBLOCK_SIZE) << 19) |
	    (uint64_t)(size / RBLOCK_SIZE - 1);
}
static inline uint32_t storage_loc_file(storage_loc l) { return (uint32_t)(l >> 56); }
static inline uint64_t storage_loc_offset(storage_loc l) { return ((l >> 19) & ((1ULL << 37) - 1)) * RBLOCK_SIZE; }
static inline uint32_t storage_loc_size(storage_loc l) { return (uint32_t)((l & ((1u << 19) - 1)) + 1) * RBLOCK_SIZE; }

struct storage;

/* Callbacks into the owner (the namespace). */
struct storage_owner {
	void *arg;
	/*
	 * Defrag found the record at old_loc (flat bytes, size).  If the index
	 * still points there, the owner (holding the record lock) calls
	 * storage_defrag_copy(), re-points the index, frees old_loc and
	 * returns 1; if the copy is stale it returns 0; < 0 on error.
	 */
	int (*relocate)(void *arg, struct storage *st, const uint8_t *flat, uint32_t size,
	    storage_loc old_loc);
	/* Cold start found a verified, decoded record at loc (size bytes):
	 * index it if it is the newest copy seen.  Called from one scan thread
	 * per device, concurrently for different devices. */
	int (*load)(void *arg, struct storage *st, const struct record *r, uint32_t size,
	    storage_loc loc);
	/* Optional: cold start found a copy whose header is intact
	 * (record_flat_header_check) but whose body is damaged, at loc.  r is
	 * what record_flat_salvage made of it, parts what it proved
	 * (RECORD_SALVAGE_*).  Returns 1 when the copy became its record's
	 * current copy (marked damaged): its bytes then count as live, and
	 * defrag moves them like any record's. */
	int (*load_damaged)(void *arg, struct storage *st, const struct record *r, unsigned parts,
	    uint32_t size, storage_loc loc);
	/* Optional: the scan will load a record with digest d soon: start
	 * loading what its lookup touches (the index is far larger than the
	 * caches, and one record's work hides the next ones' misses).  Called
	 * twice per record: two records ahead (!near: what needs no load) and
	 * one ahead (near: what the first step brought in points to). */
	void (*hint)(void *arg, const struct digest *d, bool near);
	/* Optional: the cold start scan is over (every copy seen), before the
	 * engine rebuilds its free space from the live bytes: the owner may
	 * still change which copies are live (storage_free, storage_keep).
	 * For torn writes (storage_may_be_torn).  No other thread runs. */
	void (*scanned)(void *arg, struct storage *st);
	/* Cold start finished: every copy has been seen (drop superseded
	 * tombstones, delete expired records durably). */
	void (*loaded)(void *arg, struct storage *st);
};

/* The space figures that decide stop-writes, read without locks. */
struct storage_space {
	uint64_t used_bytes;
	uint64_t total_bytes;
	uint32_t free_pct;
};

struct storage_stats {
	uint64_t total_bytes;       /* usable bytes (incl. headers), data_total_bytes */
	uint64_t used_bytes;        /* live record bytes, data_used_bytes */
	uint32_t avail_pct;         /* min over files/stripes of free wblock space, data_avail_pct */
	uint64_t n_wblocks;
	uint64_t free_wblocks;      /* free queue + never used */
	uint64_t write_q;           /* buffers waiting for their device/shadow write */
	uint64_t defrag_q;          /* wblocks waiting for defrag */
	uint64_t pending_free_bytes; /* space on its way back without new writes: the
	                             * defrag queue's, wblocks defrag is emptying, and
	                             * superseded bytes of buffers waiting for their write */
	uint64_t defrag_reads;      /* wblocks defragmented */
	uint64_t defrag_writes;     /* defrag buffers filled */
	uint64_t defrag_records;    /* records moved by defrag */
	uint64_t writes;            /* full buffers written / wblocks filled */
	uint64_t partial_writes;
	uint64_t reads;
	uint64_t cache_reads;       /* reads served from RAM buffers */
	uint64_t read_errors;
	uint64_t write_errors;
	uint64_t checksum_errors;
	uint64_t write_waits;       /* writers that waited for the write cache */
	uint64_t cold_start_dropped; /* copies the cold start skipped: their partition was dropped */
	uint64_t pversion_syncs;    /* syncs of a device for the partition versions */
	uint64_t pversion_pages;    /* pages of the partition versions written */
	bool shadow;                /* write_q is the shadow write queue */
};

struct storage_ops {
	const char *name;
	/* Set up (allocate RAM, open files, cold start through owner->load). */
	int (*open)(struct storage *st);
	/* Stop threads; clean = write every buffer and mark storage clean. */
	void (*close)(struct storage *st, bool clean);
	/* Store a record of flat_size bytes (record_flat_size(r)); *loc = where.
	 * -ENOSPC when no free wblock is left for client writes. */
	int (*write)(struct storage *st, const struct record *r, uint32_t flat_size, storage_loc *loc);
	/* The same for a record already encoded (flat, size bytes: its own
	 * size field), stored as it is.  Call through storage_write_flat,
	 * which validates the bytes first, or storage_write_encoded for bytes
	 * already validated or encoded by the caller. */
	int (*write_flat)(struct storage *st, const uint8_t *flat, uint32_t size, storage_loc *loc);
	/* Copy the flat record at loc into buf (storage_loc_size(loc) bytes),
	 * verifying it: RECFS_ECHECKSUM / RECFS_EFORMAT / -EIO (logged with
	 * file and offset). */
	int (*read)(struct storage *st, storage_loc loc, uint8_t *buf);
	/* n reads as read does (locs[i] into bufs[i], each one's result in
	 * rcs[i]), the device reads of all of them in flight at once.  May be
	 * NULL: storage_read_many reads them one by one. */
	void (*read_many)(struct storage *st, unsigned n, const storage_loc *locs, uint8_t *const *bufs,
	    int *rcs);
	/* The record copy at loc is superseded: drop its bytes from live counts. */
	void (*free)(struct storage *st, storage_loc loc);
	/*
	 * Before a client write takes its record lock: if free space is down to
	 * the defrag reserve while defrag or queued buffers are about to give
	 * some back, wait for it (bounded).  Waiting here and not inside write
	 * matters: defrag needs record locks to make space.  May be NULL.
	 */
	void (*wait_space)(struct storage *st, const struct digest *d);
	/* Return once the record at loc is durable. */
	int (*sync)(struct storage *st, storage_loc loc);
	/* Return once every write made so far (deletes included) is durable. */
	int (*sync_all)(struct storage *st);
	/* From owner->relocate: copy flat bytes to a defrag buffer. */
	int (*defrag_copy)(struct storage *st, const uint8_t *flat, uint32_t size, storage_loc *new_loc);
	void (*stats)(struct storage *st, struct storage_stats *out);
	/* Without locks, for the write path's stop-writes test: what stats
	 * gives as used_bytes and total_bytes, and the free wblocks of the
	 * fullest file or stripe in percent (avail_pct as of the last
	 * allocation or release). */
	void (*space)(struct storage *st, struct storage_space *out);
	/* Walk every record copy on storage that verifies or whose header is
	 * intact (current and stale ones, RAM buffers included), calling fn
	 * for each; fn may trust only the header of a copy.  Stop early when *stop
	 * becomes true.  For the tomb raider.  May be NULL (nothing persistent). */
	int (*scan)(struct storage *st, void (*fn)(void *arg, const uint8_t *flat, uint32_t size),
	    void *arg, const bool *stop);
	/* A dynamic parameter in *cfg changed (e.g. defrag-lwm-pct: re-sweep). */
	void (*config_changed)(struct storage *st);
	/* Cold start, from owner->scanned only: the copy at loc, which the
	 * scan did not count as live (or freed), is live after all.  May be
	 * NULL (an engine without cold start). */
	void (*keep)(struct storage *st, storage_loc loc);
	/* Partition versions (storage_pversions_load and the two stores
	 * below).  NULL: an engine that persists nothing (all 0). */
	int (*pversions_load)(struct storage *st, uint64_t out[STORAGE_PARTITIONS]);
	int (*pversions_store)(struct storage *st, const uint64_t v[STORAGE_PARTITIONS]);
	int (*pversion_store_one)(struct storage *st, uint32_t pid, uint64_t v);
	int (*pversion_drop)(struct storage *st, uint32_t pid, uint64_t drop_ms);
	int (*pversions_drop)(struct storage *st, const uint32_t *pids, unsigned n, uint64_t drop_ms);
};

struct storage {
	const struct storage_ops *ops;
	const char *ns_name;
	struct storage_config *cfg;      /* live: dynamic parameters change in place */
	struct storage_owner owner;
	void *priv;                      /* engine state */
	bool persistent;                 /* survives restarts: deletes write tombstones */
	bool clean_start;                /* set by open: the cold start loaded devices that
	                                  * were all closed cleanly (nothing written since
	                                  * their last clean close is missing) */
	/* Cold start, set before owner->scanned: on file f not shut down
	 * cleanly, a copy with a last-update time >= torn_from_ms[f] may be a
	 * write the crash tore: within torn_window_ms of the newest copy on f
	 * (flush-max-ms + 1000 ms).  0: f was shut down cleanly, no copy on it
	 * can be torn (storage_may_be_torn). */
	uint64_t torn_from_ms[CONFIG_FILES_MAX];
	uint32_t torn_window_ms;
};

/* Create and open the engine named by cfg->type.  *out is set before the
 * engine opens (owner callbacks during the cold start may use it), and
 * NULL again on failure. */
int storage_open(struct storage **out, const char *ns_name, struct storage_config *cfg,
    const struct storage_owner *owner);
/* Close (see ops->close) and free. */
void storage_close(struct storage *st, bool clean);

/* Largest record (flat bytes) the engine accepts. */
uint32_t storage_max_record_size(const struct storage_config *cfg);

extern const struct storage_ops storage_memory_ops;
extern const struct storage_ops storage_device_ops;
/* The memory engine with shadow files: the device engine with every wblock
 * resident in RAM (storage_device.c). */
extern const struct storage_ops storage_shadow_ops;

static inline int storage_write(struct storage *st, const struct record *r, uint32_t size, storage_loc *loc)
{ return st->ops->write(st, r, size, loc); }
/*
 * Store an encoded record (replica writes and migration bring records as
 * bytes): flat must be one whole record that record_flat_decode accepts,
 * size bytes long as its header says.  Malformed bytes are -EBADMSG and
 * nothing is written; otherwise as storage_write (-EFBIG, -ENOSPC, -EIO).
 */
int storage_write_flat(struct storage *st, const uint8_t *flat, uint32_t size, storage_loc *loc);
/*
 * The same for bytes this process checked or made itself a moment ago:
 * decoded by record_flat_accept (every field parsed, the CRC verified) or
 * encoded by record_flat_encode, and not changed since.  Stored as they
 * are, without a second decode and CRC pass over them (a 128 KiB record's
 * CRC costs about as much as its copy).  Same returns as storage_write.
 */
int storage_write_encoded(struct storage *st, const uint8_t *flat, uint32_t size, storage_loc *loc);

/*
 * Partition versions: one u64 per partition, kept durably in every device
 * or shadow file of the namespace (the pmeta area, docs/storage-format.md),
 * all devices holding the same table.  What a version means is the
 * cluster's business; 0 means "no data for this partition here", and is
 * what a fresh or erased device holds.  The engine without files (memory,
 * no shadow) persists nothing: load gives all 0 and the stores return 0 -
 * it restarts empty, so 0 is the truth.  Callable from any thread (the
 * engine serializes them); each is a synchronous write plus fdatasync per
 * device, so not for the write path of every record.
 *
 * storage_pversions_load reads every device/shadow file: a slot that fails
 * its CRC, or a partition whose devices disagree, gives 0 (logged with file
 * and offset).  It never fails for damaged slots; 0, or -errno/-ENOMEM if
 * a file cannot be read at all (then out is all 0).
 */
int storage_pversions_load(struct storage *st, uint64_t out[STORAGE_PARTITIONS]);
/* The whole table (64 KiB per device), durable on every device before it
 * returns.  0 or -errno (logged; devices may then disagree, which a later
 * load reads as 0 for those partitions). */
int storage_pversions_store(struct storage *st, const uint64_t v[STORAGE_PARTITIONS]);
/* One partition's slot: rewrites only the 4 KiB page that holds it on each
 * device, durable before it returns.  -EINVAL if pid >= STORAGE_PARTITIONS,
 * else as storage_pversions_store.  Each call costs a sync per device:
 * when many partitions change at once, store the whole table instead. */
int storage_pversion_store_one(struct storage *st, uint32_t pid, uint64_t v);
/*
 * This node's copy of partition pid is about to be dropped (it is no longer
 * a replica): version 0, and the drop time drop_ms (clock_epoch_ms: the
 * clock of last-update times) kept durably with it, before any record
 * leaves the index.  A cold start then skips every copy of the partition
 * whose last-update time is older than drop_ms (its bytes stay on the
 * device until defragmentation; counted in cold_start_dropped, never live),
 * so a dropped copy never comes back; newer ones (written after the drop,
 * by a node alone) load as before.  The drop time lasts until a store
 * gives the partition a version again (a copy here again).  As
 * storage_pversion_store_one otherwise; 0 with nothing done for an engine
 * without files.
 */
int storage_pversion_drop(struct storage *st, uint32_t pid, uint64_t drop_ms);
/* storage_pversion_drop of the n partitions pids[] at once: one write of
 * the table and one sync per device for all of them (a node that stops
 * being a replica of many partitions at once).  -EINVAL if a pid is out of
 * range (nothing stored), else as storage_pversions_store. */
int storage_pversions_drop(struct storage *st, const uint32_t *pids, unsigned n, uint64_t drop_ms);

/* Into a buffer aligned to STORAGE_READ_ALIGN, a record the device engine
 * stores at an aligned offset (a large file's chunk starts its write
 * block) is read straight into it, with no bounce buffer and copy. */
#define STORAGE_READ_ALIGN 4096
static inline int storage_read(struct storage *st, storage_loc loc, uint8_t *buf)
{ return st->ops->read(st, loc, buf); }
/* Several records read at once (a migration's batch): as n storage_read,
 * without waiting for each device read before the next is issued. */
static inline void storage_read_many(struct storage *st, unsigned n, const storage_loc *locs,
    uint8_t *const *bufs, int *rcs)
{
	if (st->ops->read_many != NULL) {
		st->ops->read_many(st, n, locs, bufs, rcs);
		return;
	}
	for (unsigned i = 0; i < n; i++)
		rcs[i] = st->ops->read(st, locs[i], bufs[i]);
}
static inline void storage_free(struct storage *st, storage_loc loc)
{ st->ops->free(st, loc); }
static inline void storage_wait_space(struct storage *st, const struct digest *d)
{ if (st->ops->wait_space != NULL) st->ops->wait_space(st, d); }
static inline int storage_sync(struct storage *st, storage_loc loc)
{ return st->ops->sync(st, loc); }
static inline int storage_sync_all(struct storage *st)
{ return st->ops->sync_all(st); }
static inline int storage_defrag_copy(struct storage *st, const uint8_t *flat, uint32_t size, storage_loc *loc)
{ return st->ops->defrag_copy(st, flat, size, loc); }
static inline void storage_keep(struct storage *st, storage_loc loc)
{ st->ops->keep(st, loc); }
/* Cold start: may the copy at loc, last written at lut_ms, be a write that
 * an unclean stop tore (never acknowledged as durable)?  See torn_from_ms. */
static inline bool storage_may_be_torn(const struct storage *st, storage_loc loc, uint64_t lut_ms)
{
	uint32_t f = storage_loc_file(loc);

	return f < CONFIG_FILES_MAX && st->torn_from_ms[f] != 0 && lut_ms >= st->torn_from_ms[f];
}
static inline void storage_stats(struct storage *st, struct storage_stats *out)
{ st->ops->stats(st, out); }
static inline void storage_space(struct storage *st, struct storage_space *out)
{ st->ops->space(st, out); }

#endif
